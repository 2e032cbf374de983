"""Count (frequency) encodings of single- and multi-column keys.

``cnt_<key>``: rows with that key over the fitted window (no labels used);
new rows look the count up in the stored table, unseen keys count 0.
``cnt_day_<key>``: rows with that key on the same UTC day, computed from the
batch being transformed (no stored state).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..schema import EVENT_TIME
from .frames import as_dask, broadcast_join, is_dask, key_name

_DAY = "_day"


def _count_table(frame: Any, key: list[str], name: str) -> Any:
    return frame[key].assign(**{name: 1}).groupby(key).sum().reset_index().compute()


class CountEncoder:
    """sklearn-style count encoder for one key: ``fit`` learns the counts, ``transform`` joins them."""

    def __init__(self, columns: str | list[str], per_day: bool = True, time_column: str = EVENT_TIME) -> None:
        self.columns = [columns] if isinstance(columns, str) else list(columns)
        self.per_day = per_day
        self.time_column = time_column

    @property
    def name(self) -> str:
        return key_name(self.columns)

    def output_names(self) -> list[str]:
        return [f"cnt_{self.name}"] + ([f"cnt_day_{self.name}"] if self.per_day else [])

    def fit(self, X: Any, y: Any = None) -> CountEncoder:  # noqa: ARG002 - sklearn signature
        self.counts_ = _count_table(as_dask(X), self.columns, f"cnt_{self.name}")
        return self

    def transform(self, X: Any) -> Any:
        if not hasattr(self, "counts_"):
            raise RuntimeError(f"CountEncoder({self.name}) is not fitted")
        frame = as_dask(X)
        total = f"cnt_{self.name}"
        out = broadcast_join(frame, self.counts_, self.columns, {total: "float64"}, {total: 0})
        out = out.astype({total: "int64"})
        if self.per_day:
            daily = f"cnt_day_{self.name}"
            keyed = out.assign(**{_DAY: out[self.time_column] // 86400})
            table = _count_table(keyed, self.columns + [_DAY], daily)
            out = broadcast_join(keyed, table, self.columns + [_DAY], {daily: "int64"}).drop(columns=[_DAY])
        return out if is_dask(X) else out.compute()

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        return self.fit(X, y).transform(X)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.counts_.to_parquet(directory / f"cnt_{self.name}.parquet", index=False)
        params = {"columns": self.columns, "per_day": self.per_day, "time_column": self.time_column}
        (directory / f"cnt_{self.name}.json").write_text(json.dumps({"params": params}, indent=1))

    @classmethod
    def load(cls, directory: str | Path, name: str, df_lib: Any = None) -> CountEncoder:
        import pandas as pd

        directory = Path(directory)
        enc = cls(**json.loads((directory / f"{name}.json").read_text())["params"])
        enc.counts_ = (df_lib or pd).read_parquet(directory / f"{name}.parquet")
        return enc
