"""The audit's out-of-fold check: a training row's target encodings must not see the labels of its own fold.

An encoding that uses a row's own fold (its own label) leaks into the training rows only: the validation rows use the
full-training statistics, so the shuffled-label check cannot see it (a model of shuffled labels that trusts its
encodings scores the validation rows worse, not better). Here the training rows' encodings are recomputed, by the
feature build's own code, with the labels of one fold flipped: that fold's rows must keep the encodings the store
holds, as their encodings come from the other folds alone.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from .audit_compare import co_partitioned, per_partition_counts, sorted_differences, totals
from .config import Config
from .features.build import FeatureBuilder
from .features.folds import FOLD
from .features.frames import key_name
from .features.groups import only
from .layout import Layout
from .split import training_end


#: The column marking the rows whose labels :func:`flip_fold_labels` flipped.
FLIPPED = "_flipped"
#: The count of the fold's rows in the per-partition counts (:func:`_fold_counts`).
ROWS = "_rows"


def flip_fold_labels(frame: Any, fold: int, targets: list[str]) -> Any:
    """``frame`` (with :data:`~.features.folds.FOLD`) with the labels of the rows of ``fold`` flipped (a positive to 0,
    else 1), the other rows' as they were, and those rows marked (:data:`FLIPPED`)."""
    inside = frame[FOLD] == fold
    flipped = {t: frame[t].where(~inside, (frame[t].fillna(0) <= 0).astype(frame[t].dtype)) for t in targets}
    return frame.assign(**flipped, **{FLIPPED: inside})


class FoldFlippedBuilder(FeatureBuilder):
    """A :class:`~.features.build.FeatureBuilder` whose training rows of fold ``fold`` have their labels flipped once
    the folds are assigned (:func:`flip_fold_labels`)."""

    def __init__(self, config: Any, targets: list[str], layout: Layout, fold: int) -> None:
        super().__init__(config, targets, layout)
        self.fold = fold

    def _with_folds(self, frame: Any, keep: Any) -> Any:
        return flip_fold_labels(super()._with_folds(frame, keep), self.fold, self.targets)


def out_of_fold_checks(cfg: Config, real: dict, seed: int = 0) -> list[dict]:
    """One check per target-encoding key of ``cfg``: the training rows of fold ``seed`` mod ``n_folds``, their labels
    flipped, keep the encodings of the run's store (``real``: its report), compared row by row (by row key, time and
    the fold key's stored columns; copies of a row sharing them, by their encodings' order:
    :func:`~.audit_compare.sorted_differences`); a difference names its feature, so its key and target. Runs on the
    current dask client, partition by partition where the rows lie (:mod:`.audit_compare`: only counts come back); the
    encodings are rebuilt from the run's input (the training rows up to :func:`~.split.training_end`)."""
    import dask.dataframe as dd

    from .data import read_events
    from .features import add_labels

    te = cfg.features.target_encoding
    if not te.keys:
        return [{"check": "out of fold (target encodings)", "passed": True, "detail": "no target encodings configured"}]
    layout, targets = Layout.from_dict(real["layout"]), list(cfg.train.targets)
    time, fold = layout.time, seed % te.n_folds
    builder = FoldFlippedBuilder(only(cfg.features, {f"te_{key_name(k)}" for k in te.keys}), targets, layout, fold)
    events = add_labels(read_events(Path(real["split"]["data_dir"]), layout), targets, layout)
    train = events[events[time] <= training_end(real["split"])]
    store = dd.read_parquet(str(Path(real["store"]["path"]) / real["store"]["version"] / "train"))
    matched = list(dict.fromkeys([*layout.row_key, time, *(c for c in layout.fold_key() if c in store.columns)]))
    names = [[enc.output_name(t) for t in targets] for enc in builder.target_encoders]
    columns = list(dict.fromkeys([*matched, *(n for ns in names for n in ns)]))
    with tempfile.TemporaryDirectory(prefix="audit-folds-", dir=cfg.out) as scratch:  # fresh reads it: counted inside
        fresh = builder.fit_transform(train, scratch=scratch)
        fresh, stored = co_partitioned(fresh[fresh[FLIPPED]][columns], store[columns], matched)  # the fold's rows alone
        flat = [n for ns in names for n in ns]
        counts = totals(per_partition_counts(_fold_counts, fresh, stored, [ROWS, *flat], matched, names).compute())
    rows = counts[ROWS]
    checks = []
    for key, ns in zip(te.keys, names):
        differing = {n: counts[n] for n in ns}
        d = sum(differing.values())
        named = "; " + ", ".join(f"{n}: {c:,}" for n, c in differing.items() if c) if d else ""
        checks.append({
            "check": f"out of fold: te_{key_name(key)} unchanged by its own fold's labels", "passed": d == 0 and rows > 0,
            "detail": f"{rows:,} training rows of fold {fold} (of {te.n_folds}), their labels flipped; "
                      f"{d:,} encodings differ from the store's{named}",
        })
    return checks


def _fold_counts(fresh: Any, stored: Any, matched: list[str], names: list[list[str]]) -> dict:
    """A partition pair's counts: :data:`ROWS`, ``fresh``'s rows (the fold's), and for each encoding how many differ
    from the store's (:func:`~.audit_compare.sorted_differences` per target-encoding key's ``names``), of the stored
    rows that share a fold row's ``matched`` values (of each row key, its copies)."""
    stored = stored.merge(fresh[matched].drop_duplicates(), on=matched)
    counts = {ROWS: len(fresh)}
    for ns in names:
        counts.update(sorted_differences(fresh, stored, matched, ns))
    return counts
