"""Per-group ranking metrics: MAP@k, NDCG@k, MRR, within-group AUC, from one stable sort by (group, -score)."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from ..backend import argsort_stable, bincount, to_host
from .arrays import ArrayLike, RowError, _block_starts, _check_whole, _checked, _concat0, _in_memory, _mean, _on_gpu, _one_column, _raw
from .binary import _auc, _sorted_curve

# ------------------------------------------------------------------- ranking


@dataclass(frozen=True)
class _Ranked:
    """Rows sorted by (group, -score, label); per-row and per-group arrays."""

    xp: ModuleType
    seg: Any  # group index of each sorted row (0 .. n_groups - 1)
    rank: Any  # 0-based position inside its group
    rel: Any  # relevance (1.0 where y > 0)
    hits: Any  # relevant rows up to and including this one, inside its group
    n_pos: Any  # relevant rows per group
    order: Any = None  # the input row of each sorted row

    def per_group(self, weights: Any) -> Any:
        """Sum of ``weights`` (aligned with the sorted rows) per group."""
        return bincount(self.seg, weights=weights, minlength=len(self.n_pos))

    def mean(self, values: Any) -> float:
        """Mean over the groups with at least one positive (nan if none)."""
        has_pos = self.n_pos > 0
        return _mean(values[has_pos])


def _missing_ids(group: ArrayLike, xp: ModuleType) -> Any:
    """True where a group id is missing: None, NaN, NaT or a pandas / cudf null."""
    if hasattr(group, "isna"):  # a pandas / cudf Series
        return xp.asarray(_raw(group.isna())).ravel()
    if _on_gpu(group):  # a cupy array: only floats can be missing
        return xp.isnan(group).ravel() if group.dtype.kind == "f" else xp.zeros(group.size, dtype=bool)
    import pandas as pd

    return xp.asarray(pd.isna(np.asarray(group))).ravel()


def _ranking_inputs(y: ArrayLike, p: ArrayLike, group: ArrayLike) -> tuple[ModuleType, Any, Any, Any]:
    """(module, y, p, group ids) with the group ids kept in their own dtype. A missing id is an error: NaN ids
    each made a group of one (NaN != NaN), a perfectly ranked one when its row was relevant."""
    _in_memory(group, "group")
    xp, y, p = _checked(y, p, binary=False, others=(group,))
    _one_column(group, "group")
    missing = _missing_ids(group, xp)
    if len(missing) != len(y):
        raise ValueError(f"group has {len(missing)} rows, y has {len(y)}")
    if bool(missing.any()):
        raise RowError(f"group has {int(missing.sum())} missing id(s) (None, NaN or null), the first at row {{row}}: "
                       "every row must belong to a group", int(xp.argmax(missing)))
    return xp, y, p, xp.asarray(_raw(group)).ravel()


def _segments(y: Any, g: Any, order_desc: Any, xp: ModuleType) -> _Ranked:
    """Rows by group then descending score (a stable re-sort of ``order_desc`` by group);
    per-group positions and hit counts via cumsum."""
    order = order_desc[argsort_stable(g[order_desc])]
    gs, rel = g[order], (y[order] > 0).astype(xp.float64)
    new = _block_starts(gs, xp)
    seg = xp.cumsum(new) - 1
    starts = xp.nonzero(new)[0]
    rank = xp.arange(len(rel)) - starts[seg]
    cum = xp.cumsum(rel)
    before = _concat0(cum, xp)[starts]  # relevant rows before each group
    hits = cum - before[seg]
    n_pos = xp.diff(xp.concatenate([before, cum[-1:]]))
    return _Ranked(xp, seg, rank, rel, hits, n_pos, order)


def _order_desc_tied(y: Any, p: Any, tiebreak: Any, xp: ModuleType) -> Any:
    """Row order by descending score; ties by ascending ``tiebreak`` (e.g. a hash of the row key: as
    good as random, yet independent of the input order) or, without one, against the model
    (non-relevant rows first). Either way the ranking metrics do not depend on the row order."""
    second = y if tiebreak is None else xp.asarray(_raw(tiebreak)).ravel()
    if len(second) != len(p):
        raise ValueError(f"tiebreak has {len(second)} rows, p has {len(p)}")
    first = argsort_stable(second)
    return first[argsort_stable(-p[first])]


def _ranked_segments(y: ArrayLike, p: ArrayLike, group: ArrayLike) -> _Ranked:
    """The shared sorted-segment view used by every ranking metric."""
    xp, y, p, g = _ranking_inputs(y, p, group)
    return _segments(y, g, _order_desc_tied(y, p, None, xp), xp)



def _map_at_k(r: _Ranked, k: int) -> float:
    top = r.rank < k
    ap = r.per_group(r.rel * top * r.hits / (r.rank + 1)) / r.xp.minimum(r.n_pos, k).clip(1, None)
    return r.mean(ap)


def _tied_at_k(r: _Ranked, p: Any, k: int) -> float:
    """Share of the top-``k`` rows of the groups with a positive whose score another row of their
    group has too: the rows whose place the tie-break decides (nan if none)."""
    xp = r.xp
    ps, same_group = p[r.order], r.seg[1:] == r.seg[:-1]
    same = same_group & (ps[1:] == ps[:-1])  # rows sorted by score within a group: ties are neighbours
    tied = xp.zeros(len(ps), dtype=bool)
    tied[1:] |= same
    tied[:-1] |= same
    counted = (r.rank < k) & (r.n_pos[r.seg] > 0)
    return float(tied[counted].mean()) if bool(counted.any()) else float("nan")


def _ndcg_at_k(r: _Ranked, k: int) -> float:
    xp = r.xp
    dcg = r.per_group(r.rel * (r.rank < k) / xp.log2(r.rank + 2.0))
    top = min(k, int(r.n_pos.max()) if len(r.n_pos) else 0)  # not k: k=10**8 built 1.5 GB for 4 rows
    ideal = _concat0(xp.cumsum(1.0 / xp.log2(xp.arange(top) + 2.0)), xp)  # ideal[j]: j relevant on top
    idcg = ideal[xp.minimum(r.n_pos, top).astype(xp.int64)]
    return r.mean(dcg / xp.where(idcg > 0, idcg, 1.0))


def _mrr(r: _Ranked) -> float:
    first = r.rel * (r.hits == 1)  # the first relevant row of each group
    return r.mean(r.per_group(first / (r.rank + 1)))


def _group_auc(r: _Ranked, p: Any) -> float:
    """Mean over the groups with a relevant and a non-relevant row of their ROC AUC, ties 1/2. A tie block (one
    score in one group) is a run of the sorted rows: each relevant row in it beats the group's non-relevant rows
    below the block and half of those in it."""
    xp = r.xp
    ps, neg = p[r.order], 1.0 - r.rel
    new = _block_starts(ps, xp)
    new[1:] |= r.seg[1:] != r.seg[:-1]
    block = xp.cumsum(new) - 1
    starts = xp.nonzero(new)[0]
    pos_in, neg_in = bincount(block, weights=r.rel, minlength=len(starts)), bincount(block, weights=neg, minlength=len(starts))
    neg_above = (r.rank - (r.hits - r.rel))[starts]  # the group's non-relevant rows ranked above the block
    seg, n_neg = r.seg[starts], r.per_group(neg)
    wins = bincount(seg, weights=pos_in * (n_neg[seg] - neg_above - 0.5 * neg_in), minlength=len(r.n_pos))
    both = (r.n_pos > 0) & (n_neg > 0)
    return _mean(wins[both] / (r.n_pos[both] * n_neg[both]))


def _group_auc_null_se(r: _Ranked) -> float:
    """The standard error of :func:`_group_auc` for a scorer without skill (scores independent of the labels, no
    ties): a group of n1 relevant and n0 other rows has AUC variance (n0 + n1 + 1) / (12 n0 n1) (Mann-Whitney), and
    the mean over G groups sqrt(sum) / G; nan when no group holds both."""
    n_neg = r.per_group(1.0 - r.rel)
    both = (r.n_pos > 0) & (n_neg > 0)
    n1, n0 = r.n_pos[both], n_neg[both]
    return float(r.xp.sqrt(((n0 + n1 + 1) / (12 * n0 * n1)).sum())) / int(both.sum()) if bool(both.any()) else float("nan")


def map_at_k(y: ArrayLike, p: ArrayLike, group: ArrayLike, k: int = 10) -> float:
    """Mean over groups of AP@k = sum_{i<=k} precision@i * rel_i / min(k, positives in group)."""
    _check_whole("k", k)
    return _map_at_k(_ranked_segments(y, p, group), k)


def ndcg_at_k(y: ArrayLike, p: ArrayLike, group: ArrayLike, k: int = 10) -> float:
    """Mean over groups of NDCG@k: linear binary gains, log2(i + 1) discount, ideal DCG cut at k."""
    _check_whole("k", k)
    return _ndcg_at_k(_ranked_segments(y, p, group), k)


def mrr(y: ArrayLike, p: ArrayLike, group: ArrayLike) -> float:
    """Mean over groups of 1 / rank of the first positive."""
    return _mrr(_ranked_segments(y, p, group))


def group_auc(y: ArrayLike, p: ArrayLike, group: ArrayLike) -> float:
    """Within-group ROC AUC: the mean over the groups that hold a relevant (``y > 0``) and a non-relevant row of
    that group's AUC, ties counted 1/2 (a constant score gives 0.5, as does any scorer without skill in
    expectation); nan when no group holds both. Unlike the pooled AUC it compares rows of one group only,
    so a ranking model's scores, not comparable across groups, are read as they are meant."""
    xp, y, p, g = _ranking_inputs(y, p, group)
    return _group_auc(_segments(y, g, _order_desc_tied(y, p, None, xp), xp), p)




def ranking_report(y: ArrayLike, p: ArrayLike, group: ArrayLike, k: int = 10, tiebreak: ArrayLike | None = None) -> dict[str, Any]:
    """{"map@k", "ndcg@k", "mrr", "auc", "group_auc", "group_auc_se", "n_groups", "tied@k"}, all of the relevance
    ``y > 0`` (graded labels too); ``auc`` pools every row, ``group_auc`` is :func:`group_auc`, ``group_auc_se`` its
    standard error for a scorer without skill (what chance moves it by on these groups); ``n_groups`` counts the groups averaged
    (those with a positive). One sort is shared by the ranking metrics. Tied scores are
    ordered by ``tiebreak`` (e.g. hashed row keys), else against the model; ``tied@k`` is the
    share of the top-k rows of those groups that tie with another row of their group (how much
    of the ranking the tie-break decides: 1 for a constant score)."""
    _check_whole("k", k)
    xp, y, p, g = _ranking_inputs(y, p, group)
    order = _order_desc_tied(y, p, tiebreak, xp)  # shared by AUC (tie blocks: order-free) and the segments
    r = _segments(y, g, order, xp)
    return {
        f"map@{k}": _map_at_k(r, k),
        f"ndcg@{k}": _ndcg_at_k(r, k),
        "mrr": _mrr(r),
        "auc": _auc(*_sorted_curve((y[order] > 0).astype(xp.float64), p[order], xp), xp),  # of the relevance y > 0
        "group_auc": _group_auc(r, p),
        "group_auc_se": _group_auc_null_se(r),
        "n_groups": int((r.n_pos > 0).sum()),
        f"tied@{k}": _tied_at_k(r, p, k),
    }


def _per_group_every_k(r: _Ranked, k_max: int) -> tuple[Any, Any]:
    """(MAP@k, NDCG@k) of each group with a positive for k = 1 .. ``k_max`` (as :func:`_map_at_k` /
    :func:`_ndcg_at_k` at each k), two (groups x k_max) tables, the groups in the order of their ids: each
    group's top-``k_max`` terms go into a table by position, whose cumulative sums along the positions are
    every k's sums at once."""
    xp = r.xp
    has_pos = r.n_pos > 0
    n = int(has_pos.sum())
    row = xp.cumsum(has_pos) - 1  # each averaged group's row of the table
    kept = (r.rank < k_max) & has_pos[r.seg]
    cell = (row[r.seg] * k_max + r.rank)[kept].astype(xp.int64)
    rel, rank = r.rel[kept], r.rank[kept]

    def table(weights: Any) -> Any:
        return xp.cumsum(bincount(cell, weights=weights, minlength=n * k_max).reshape(n, k_max), axis=1)

    ks = xp.arange(1, k_max + 1)
    n_pos = r.n_pos[has_pos][:, None]
    precision = table(rel * r.hits[kept] / (rank + 1))
    gain = table(rel / xp.log2(rank + 2.0))
    ideal = _concat0(xp.cumsum(1.0 / xp.log2(xp.arange(k_max) + 2.0)), xp)  # ideal[j]: j relevant on top
    at_k = xp.minimum(n_pos, ks)
    return precision / at_k, gain / ideal[at_k.astype(xp.int64)]


#: Bootstrap resamples of the groups are drawn this many group indices at a time (a block of resamples x groups).
BOOTSTRAP_BLOCK = 1 << 22


def _bootstrap_draws(n: int, resamples: int, seed: int) -> Any:
    """Blocks (resamples x ``n``) of group indices drawn with replacement, ``resamples`` rows in all, from one
    generator seeded by ``seed`` (a block of at most :data:`BOOTSTRAP_BLOCK` indices)."""
    rng = np.random.default_rng(seed)
    per_block = max(1, BOOTSTRAP_BLOCK // max(n, 1))
    for start in range(0, resamples, per_block):
        yield rng.integers(0, n, size=(min(per_block, resamples - start), n))


def bootstrap_means(values: np.ndarray, resamples: int, seed: int = 0) -> np.ndarray:
    """(``resamples`` x columns): the column means of ``values`` (rows x columns, host) over resamples of its
    rows with replacement (:func:`_bootstrap_draws`); each resample's means are its rows' counts times ``values``."""
    _check_whole("resamples", resamples)
    n = len(values)
    means = []
    for idx in _bootstrap_draws(n, resamples, seed):
        b = len(idx)
        counts = np.bincount((idx + n * np.arange(b)[:, None]).ravel(), minlength=b * n).reshape(b, n)
        means.append(counts @ values / n)
    return np.concatenate(means)


#: The band of :func:`ranking_at_every_k`: the central 95% of the bootstrap means.
BAND_QUANTILES = (0.025, 0.975)


def ranking_at_every_k(
    y: ArrayLike, p: ArrayLike, group: ArrayLike, k_max: int = 10, tiebreak: ArrayLike | None = None,
    resamples: int = 0, seed: int = 0,
) -> dict[str, Any]:
    """{"k", "map", "ndcg", "n_groups", "largest_group"}: MAP@k and NDCG@k (host lists) for every k = 1 .. ``k_max``
    from one sort, of the groups with a positive (``n_groups`` of them, the largest of ``largest_group`` rows);
    ties ordered as :func:`ranking_report` orders them, so the values at k equal its ``map@k`` / ``ndcg@k``.
    ``resamples``: also "map_band" / "ndcg_band", ([low], [high]) per k: the 95% percentile bootstrap interval
    of the mean over groups (the groups with a positive resampled with replacement ``resamples`` times, a
    generator seeded by ``seed``; the same resamples for both metrics; None without a group)."""
    _check_whole("k_max", k_max)
    if resamples:
        _check_whole("resamples", resamples)
    xp, y, p, g = _ranking_inputs(y, p, group)
    r = _segments(y, g, _order_desc_tied(y, p, tiebreak, xp), xp)
    sizes = bincount(r.seg, minlength=len(r.n_pos))[r.n_pos > 0] if len(r.n_pos) else xp.zeros(0)
    n = int((r.n_pos > 0).sum())
    out = {"k": list(range(1, k_max + 1)), "map": [float("nan")] * k_max, "ndcg": [float("nan")] * k_max, "n_groups": n,
           "largest_group": int(sizes.max()) if len(sizes) else 0}
    if resamples:
        out["map_band"] = out["ndcg_band"] = None
    if n == 0:
        return out
    maps, ndcgs = _per_group_every_k(r, k_max)
    out.update({"map": maps.mean(axis=0).tolist(), "ndcg": ndcgs.mean(axis=0).tolist()})
    if resamples:
        both = np.hstack([to_host(maps), to_host(ndcgs)])  # groups x 2 k_max, on the host: the same draws on any device
        low, high = np.quantile(bootstrap_means(both, resamples, seed), BAND_QUANTILES, axis=0)
        out["map_band"] = (low[:k_max].tolist(), high[:k_max].tolist())
        out["ndcg_band"] = (low[k_max:].tolist(), high[k_max:].tolist())
    return out
