"""The feature catalog of a run, built from :class:`~rapids_engage.config.FeaturesConfig`.

:class:`FeatureBuilder` fits every encoder on the training rows only and
returns out-of-fold values for them (``fit_transform``); validation, test and
new rows get full-training statistics (``transform``). Its fitted state is a
directory of parquet tables + JSON (``save`` / ``load``): the serving state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config import FeaturesConfig
from ..schema import ROW_KEY, TARGETS
from .content import content_features, derived_keys, feature_names
from .counts import CountEncoder
from .frames import as_dask
from .target_encoding import TargetEncoder


def add_labels(frame: Any, targets: list[str]) -> Any:
    """int8 label columns: 1 where the target's engagement timestamp is present."""
    return frame.assign(**{t: frame[TARGETS[t]].notnull().astype("int8") for t in targets})


def _rowwise(frame: Any, fn: Any) -> Any:
    frame = as_dask(frame)
    return frame.map_partitions(fn, meta=fn(frame._meta))


class FeatureBuilder:
    """All feature groups of one config, for the given label columns."""

    def __init__(self, config: FeaturesConfig, targets: list[str]) -> None:
        self.config = config
        self.targets = list(targets)
        te = config.target_encoding
        self.target_encoders = [
            TargetEncoder(key, te.n_folds, te.smooth, te.fold_method, te.seed, ROW_KEY) for key in te.keys
        ]
        self.count_encoders = [CountEncoder(key) for key in config.counts]

    def feature_names(self) -> list[str]:
        names = feature_names() if self.config.content else []
        for enc in self.count_encoders:
            names += enc.output_names()
        for enc in self.target_encoders:
            names += [enc.output_name(t) for t in self.targets]
        return names

    def _rowwise_features(self, frame: Any) -> Any:
        frame = _rowwise(frame, derived_keys)
        return _rowwise(frame, content_features) if self.config.content else frame

    def fit_transform(self, train: Any) -> Any:
        """Fit on ``train`` (labels present); out-of-fold encodings for its rows."""
        frame = self._rowwise_features(train)
        for enc in self.count_encoders:
            frame = enc.fit(frame).transform(frame)
        for enc in self.target_encoders:
            frame = enc.fit_transform(frame, self.targets)
        return frame

    def transform(self, frame: Any) -> Any:
        """Features for rows outside the training set, from the fitted state only."""
        frame = self._rowwise_features(frame)
        for enc in self.count_encoders:
            frame = enc.transform(frame)
        for enc in self.target_encoders:
            frame = enc.transform(frame)
        return frame

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for enc in [*self.target_encoders, *self.count_encoders]:
            enc.save(directory)
        spec = {
            "targets": self.targets,
            "features": self.feature_names(),
            "target_encoding": [f"te_{e.name}" for e in self.target_encoders],
            "counts": [f"cnt_{e.name}" for e in self.count_encoders],
        }
        (directory / "features.json").write_text(json.dumps(spec, indent=1))

    @classmethod
    def load(cls, directory: str | Path, config: FeaturesConfig, df_lib: Any = None) -> FeatureBuilder:
        directory = Path(directory)
        spec = json.loads((directory / "features.json").read_text())
        builder = cls(config, spec["targets"])
        builder.target_encoders = [TargetEncoder.load(directory, n, df_lib) for n in spec["target_encoding"]]
        builder.count_encoders = [CountEncoder.load(directory, n, df_lib) for n in spec["counts"]]
        return builder

