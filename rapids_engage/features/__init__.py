"""Feature groups: out-of-fold target encodings, counts, content/profile features, point-in-time history."""

from .build import FeatureBuilder, add_labels
from .counts import CountEncoder
from .history import HistoryEncoder
from .target_encoding import TargetEncoder

__all__ = ["CountEncoder", "FeatureBuilder", "HistoryEncoder", "TargetEncoder", "add_labels"]
