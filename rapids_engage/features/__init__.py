"""Feature groups: out-of-fold target encodings, counts, content/profile features, point-in-time history."""

from .build import VALUES_VERSION, FeatureBuilder
from .labels import add_labels
from .counts import CountEncoder
from .history import HistoryEncoder
from .estimator_conventions import NotFittedError
from .target_encoding import TargetEncoder

__all__ = ["VALUES_VERSION", "CountEncoder", "FeatureBuilder", "HistoryEncoder", "NotFittedError", "TargetEncoder", "add_labels"]
