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

from .backend import to_host_f64
from .config import Config
from .features.build import FeatureBuilder
from .features.folds import FOLD
from .features.frames import key_name
from .features.groups import only
from .layout import Layout
from .split import training_end


#: The column marking the rows whose labels :func:`flip_fold_labels` flipped.
FLIPPED = "_flipped"


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
    the fold key's stored columns; copies of a row sharing them, by their encodings' order: :func:`_differing`); a
    difference names its feature, so its key and target. Runs on the current dask client; the encodings are rebuilt
    from the run's input (the training rows up to :func:`~.split.training_end`)."""
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
    with tempfile.TemporaryDirectory(prefix="audit-folds-", dir=cfg.out) as scratch:
        fresh = builder.fit_transform(train, scratch=scratch)
        fresh = fresh[fresh[FLIPPED]][columns].compute()  # the fold's rows alone
    stored = store[columns].compute()
    stored = stored.merge(fresh[matched].drop_duplicates(), on=matched)  # the fold's rows (of each row key, its copies)
    checks = []
    for key, ns in zip(te.keys, names):
        differing = {n: _differing(fresh, stored, matched, ns, n) for n in ns}
        d = sum(differing.values())
        named = "; " + ", ".join(f"{n}: {c:,}" for n, c in differing.items() if c) if d else ""
        checks.append({
            "check": f"out of fold: te_{key_name(key)} unchanged by its own fold's labels", "passed": d == 0 and len(fresh) > 0,
            "detail": f"{len(fresh):,} training rows of fold {fold} (of {te.n_folds}), their labels flipped; "
                      f"{d:,} encodings differ from the store's{named}",
        })
    return checks


def _differing(fresh: Any, stored: Any, matched: list[str], names: list[str], name: str) -> int:
    """How many of ``fresh``'s encodings ``name`` differ from ``stored``'s (both: computed frames of the same rows),
    rows paired by ``matched`` (row key, time, fold key) and, among copies of a row sharing those, by the order of
    their encodings ``names``: a merge on ``matched`` paired each copy with every copy (a difference without a leak);
    rows that ``stored`` lacks count as differing."""
    import numpy as np

    order = [*matched, *names]
    x = to_host_f64(fresh.sort_values(order)[name].reset_index(drop=True))
    y = to_host_f64(stored.sort_values(order)[name].reset_index(drop=True))
    if len(x) != len(y):
        return max(len(x), len(y))
    return int((~(np.isclose(x, y, rtol=1e-12, atol=0.0) | (np.isnan(x) & np.isnan(y)))).sum())
