"""Encodings of high-cardinality keys computed where the key's training rows are.

A key table above ``features.broadcast_limit`` rows is not sent to every partition. Rather than
reduce it by a shuffle, join it by another and route the values home by a third, the training
rows' narrow columns (position, key, fold, labels, day) are shuffled once on the key: a partition
then holds every row of its keys, so each row's values come from that partition alone (out-of-fold
target encodings: :meth:`TargetEncoder.partition_oof`; counts: :meth:`CountEncoder.partition_counts`;
per-day counts), and so do the key tables (:meth:`TargetEncoder.partition_stats`,
:meth:`CountEncoder.partition_table`). One shuffle per distinct key, whose checkpoint the next key's
shuffle reads; each key's values, computed from its checkpoint, are routed home on their own
(:func:`~.frames.route_back`), never carried through a later key's shuffle or checkpoint. The
partitions' tables, persisted on the workers, are the fitted state (gathered when they turn out
small, as by :func:`~.frames.key_tables`). The values equal those of the table joins (the
invariance tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dask

from ..backend import series_like
from .counts import DAY, CountEncoder
from .folds import FOLD
from .frames import POSITION, Checkpoints, drop_per_partition, is_dask, key_ids, key_tables, meta_with, narrow_frame, route_back
from .key_values import shuffle_by_key
from .target_encoding import TargetEncoder


@dataclass
class KeyPass:
    """The encodings of one key computed in one shuffle of the training rows on it (stateless
    copies of the encoders: only what the partition functions need travels in the graph)."""

    columns: list[str]
    target_encoder: TargetEncoder | None = None
    count_encoder: CountEncoder | None = None  # its total count
    daily_encoder: CountEncoder | None = None  # its per-day count

    def needs(self) -> list[str]:
        """The narrow columns the pass reads."""
        te = self.target_encoder
        return [*self.columns, *([FOLD, *te.targets_] if te else []), *([DAY] if self.daily_encoder else [])]

    def new_columns(self) -> dict[str, str]:
        out = dict.fromkeys(self.target_encoder.output_names() if self.target_encoder else [], "float64")
        if self.count_encoder:
            out[self.count_encoder.total_name] = "int64"
        if self.daily_encoder:
            out[self.daily_encoder.daily_name] = "int64"
        return out

    def values(self, part: Any) -> Any:
        """The pass's row values of ``part`` (every row of its keys), with each row's :data:`~.frames.POSITION`."""
        ids = key_ids(part, self.columns)
        added = self.target_encoder.partition_oof(part, ids) if self.target_encoder else {}
        if self.count_encoder:
            added[self.count_encoder.total_name] = self.count_encoder.partition_counts(ids)
        if self.daily_encoder:
            added[self.daily_encoder.daily_name] = self.daily_encoder.partition_daily_counts(part)
        return part[[POSITION]].assign(**{name: series_like(part, column) for name, column in added.items()})

    def te_table(self, part: Any) -> Any:
        return self.target_encoder.partition_stats(part, key_ids(part, self.columns))

    def count_table(self, part: Any) -> Any:
        return self.count_encoder.partition_table(part, key_ids(part, self.columns))


def key_passes(
    target_encoders: list[TargetEncoder], count_encoders: list[CountEncoder], daily_encoders: list[CountEncoder]
) -> list[KeyPass]:
    """One :class:`KeyPass` per distinct key of the given encoders (target encoders after
    :meth:`~TargetEncoder.set_fold_totals`), in first-seen order."""
    passes: dict[tuple[str, ...], KeyPass] = {}

    def of(columns: list[str]) -> KeyPass:
        return passes.setdefault(tuple(columns), KeyPass(list(columns)))

    for enc in target_encoders:
        of(enc.columns).target_encoder = enc.oof_state()
    for enc in count_encoders:
        of(enc.columns).count_encoder = CountEncoder(enc.columns, enc.per_day, enc.time_column)
    for enc in daily_encoders:
        of(enc.columns).daily_encoder = CountEncoder(enc.columns, enc.per_day, enc.time_column)
    return list(passes.values())


def encode_by_key(
    frame: Any,
    target_encoders: list[TargetEncoder],
    count_encoders: list[CountEncoder],
    daily_encoders: list[CountEncoder],
    checkpoint: Checkpoints,
    limit: int | None,
    rows: Any = None,
) -> Any:
    """``frame`` (dask training rows) plus the out-of-fold encodings of ``target_encoders``, the
    counts of ``count_encoders`` and the per-day counts of ``daily_encoders``, computed key by key
    as the module says; fits ``stats_`` / ``counts_`` of those encoders (tables of more than
    ``limit`` rows stay partitioned on the workers). Partition *i* of the output is partition *i*
    of ``frame``, same order. ``rows``: a frame of the same partitions, rows and order holding the narrow
    columns, read instead of ``frame`` for them (kept rows, where ``frame`` computes further columns)."""
    passes = key_passes(target_encoders, count_encoders, daily_encoders)
    if not passes:
        return frame
    te_of = {tuple(enc.columns): enc for enc in target_encoders}
    count_of = {tuple(enc.columns): enc for enc in count_encoders}
    needs = list(dict.fromkeys(c for p in passes for c in p.needs()))
    narrow = narrow_frame(frame if rows is None else rows, needs)
    fitted: list[tuple[Any, str]] = []  # (encoder, attribute) of each table
    tables, values = [], []
    for i, p in enumerate(passes):
        later = {c for q in passes[i:] for c in q.needs()}  # what earlier passes alone read is not shuffled again
        narrow = drop_per_partition(narrow, [c for c in needs if c in narrow.columns and c not in later])
        shuffled = checkpoint(shuffle_by_key(narrow, p.columns))  # read for the tables, then the values
        graphs = []
        if p.target_encoder:
            graphs.append(shuffled.map_partitions(p.te_table, meta=p.te_table(shuffled._meta)))
            fitted.append((te_of[tuple(p.columns)], "stats_"))
        if p.count_encoder:
            graphs.append(shuffled.map_partitions(p.count_table, meta=p.count_table(shuffled._meta)))
            fitted.append((count_of[tuple(p.columns)], "counts_"))
        tables += dask.persist(*graphs)  # started now: later passes do not keep this shuffle alive
        values.append((shuffled.map_partitions(p.values, meta=meta_with(shuffled._meta[[POSITION]], p.new_columns())),
                       [(None, p.new_columns())]))  # read from the checkpoint when the rows are, not shuffled again
        narrow = shuffled
    for (enc, attribute), table in zip(fitted, key_tables(tables, limit, [True] * len(tables))):
        setattr(enc, attribute, table if is_dask(table) else table.reset_index(drop=True))
    return route_back(frame, values)
