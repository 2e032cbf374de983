"""Feature groups: out-of-fold target encodings, counts, content/profile features."""

from .build import FeatureBuilder, add_labels
from .counts import CountEncoder
from .target_encoding import TargetEncoder

__all__ = ["CountEncoder", "FeatureBuilder", "TargetEncoder", "add_labels"]
