"""Per-file checks of ``predict --input`` from its parquet footers, before the cluster starts.

Dask reads every file of an input as the first file's column types, and the rows are checked per
partition, where no file is known: a file whose time column is a timestamp, or whose key column is
text, failed deep in the features with a traceback, and a null time or profile value was named by
an index of a partition that may hold several files. Each file is checked here, its name in the
message: its column types as the serving state reads them (:meth:`FeatureBuilder.check_rows` of an
empty frame of its schema, once per distinct schema), and, where its row groups' statistics show a
null in a column the features need, a time outside 1990-2100, a negative count or a label outside its
target's range (0/1, a count >= 0: the metrics took a negative count for an unlabelled row), its rows are read
and checked by :func:`.features.value_checks.check_values` / :func:`~.features.value_checks.check_labels` (the index is the
row's in the file).
"""

from __future__ import annotations

from typing import Any, Sequence

from .data import DataError
from .features import FeatureBuilder
from .features.labels import label_bounds
from .features.value_checks import check_labels, check_values
from .footers import Footer
from .schema import PLAUSIBLE_TIMES


def check_input_files(footers: Sequence[Footer], builder: FeatureBuilder) -> None:
    """A :class:`DataError` prefixed with the file's path for the first file of ``footers`` whose column types or
    values the serving state ``builder`` cannot give features to (see the module's docstring)."""
    time = builder.layout.time
    required, counts = builder.required_columns()
    checked: list[Any] = []  # the distinct arrow schemas checked so far
    for footer in footers:
        schema = footer.metadata.schema.to_arrow_schema()
        try:
            if not any(schema.equals(s) for s in checked):
                builder.check_rows(schema.empty_table().to_pandas())
                checked.append(schema)
            needed, positive = (tuple(c for c in cols if c in footer.names) for cols in (required, counts))
            labels = label_bounds(builder.layout, footer.names)
            if _may_fail(footer, time, needed, positive, labels):
                rows = _read_columns(footer, [time, *needed, *positive, *labels])
                check_labels(check_values(rows, time, needed, positive), labels)
        except DataError as exc:
            raise DataError(f"{footer.path}: {exc}") from None


def _may_fail(footer: Footer, time: str, required: Sequence[str], counts: Sequence[str],
              labels: dict[str, tuple[int, int | None]]) -> bool:
    """Whether the statistics of a row group of ``footer``'s file show a null in ``time`` or ``required``, a ``time``
    outside :data:`~.schema.PLAUSIBLE_TIMES`, a negative value of ``counts`` or a value of a target column outside its
    ``labels`` bounds (no statistics: not known here; the partitions' own check stands)."""
    for column in dict.fromkeys([time, *required, *counts, *labels]):
        if footer.leaf_index(column) is None:
            continue
        for _, rows, stats in footer.row_groups(column):
            if not rows or stats is None:
                continue
            if column in (time, *required) and (stats.null_count or 0) > 0:
                return True
            if not stats.has_min_max or not isinstance(stats.min, (int, float)):
                continue
            if column in labels and _outside(stats, *labels[column]):
                return True
            if column == time and not (PLAUSIBLE_TIMES[0] <= stats.min and stats.max < PLAUSIBLE_TIMES[1]):
                return True
            if column in counts and stats.min < 0:
                return True
    return False


def _outside(stats: Any, low: int, high: int | None) -> bool:
    """Whether a row group's min / max go below ``low`` or above ``high`` (None: no bound)."""
    return stats.min < low or (high is not None and stats.max > high)


def _read_columns(footer: Footer, columns: list[str]) -> Any:
    """``columns`` of ``footer``'s file as a pandas frame indexed by row from 0 (its footer not read again)."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(footer.path, metadata=footer.metadata).read(columns=list(dict.fromkeys(columns))).to_pandas()
