"""The leakage audit's control from several shuffled-label runs: each target's metrics over the shuffles as one
run's (their mean, and a standard error that counts the shuffles' spread), which :func:`.audit.shuffled_check`
compares with its bound as it does one run's.

Why a mean, and which standard error. A model fitted to shuffled labels can still rank the validation rows through
label-free features (a visitor's view count), in a direction set by its noise: on ``bench/event_log.py``'s 300k log,
buy's shuffled RCE over seeds 0 / 1 / 2 was 0.65 / -1.31 / 1.44, about 9 times the spread ``rce_chance_se`` allows
(that one treats the predictions as fixed and permutes the validation labels). Over independent shuffles that
direction averages out, while a leak (label information the features carry) gives skill in every shuffle: the mean's
excess over chance is the test. Its standard error has two parts: the validation labels' chance (``rce_chance_se``,
exact for each run's predictions; every shuffle is scored on the same labels, so it is not divided by N: taken
whole, as correlated) and the shuffles' own spread ``s`` (the sample standard deviation across them), ``s / sqrt(N)``
for a mean of N; together ``sqrt(se_chance² + s² / N)``, and the bound stays chance + :data:`.audit.CHANCE_SES` of
them. The spread counts only from :data:`MIN_SPREAD_SHUFFLES` shuffles: two give it one degree of freedom (almost any
value), so 2 keep one run's bound, for their mean. One shuffle is exactly one run's check.

Three standard errors of an estimated spread are not one in 700 as with a known one: where the noise-fitting
dominates, a clean target exceeds them about once in 20 audits at 3 shuffles, 1 in 50 at 5 and 1 in 130 at 10
(Student t with N - 1 degrees of freedom). The t quantile that keeps one in 700 (19.2 at 3 shuffles, 6.6 at 5) was not
taken: on that log it put cart's bound at 5.6 (whose one shuffle passes 0.5 on every seed, and whose mean of 3 with 3
standard errors still has 0.5), so a leak of 5 RCE points would pass. A leak does not widen the spread (it adds the same
skill to every shuffle), so a consistent one fails the mean as it failed one run.

So ``--shuffles auto`` escalates instead (:data:`.audit.AUTO_STAGES`: 1 -> 3 -> 5 -> 10): while a check fails on the
mean of all the shuffles so far it adds more, and fails only at the last stage. A clean target must then exceed the
bound at every stage, whose means share their first shuffles but not their spread's luck: ``bench/audit_escalation.py``
(this model, a clean target's and a leak's, 400,000 audits each) gives 1 in 850 where the noise-fitting dominates
(spread 9 x ``se``; 1 in 27 stopping at 3), 1 in 4,700 on the event log's buy (1 in 81), at 1.85 / 1.36 shuffled runs
for a clean audit against 1.74 / 1.32. A leak must fail every stage: one well above the spread does (5 RCE points on
buy 97 %, as before; 2 points 30 % (37 %); on cart 96 % or more), at 10 runs for a FAIL, not 3; one the noise-fitting
swamps is caught less often than stopping at 3 (noise-dominated, 5 x ``se``: 3.5 % (14 %); 10 x ``se``: 21 % (33 %)). 1 -> 3 -> 10 fails as
rarely but costs a clean audit more (every fail at 3 runs 7 more); 1 -> 3 -> 5 still fails 1 in 125.

Count targets: the mean RMSE (and its constant's, which the shuffles share: each keeps every day's labels) against
the fixed 0.99 ratio, without a spread (that bound has no standard error). ``--shuffles auto`` escalates them too: the
bound does not widen, but the mean of more shuffles is less noisy, so a clean target's one shuffle below it can pass
at 3 (Hacker News, 5 shuffles: points / comments RMSE(log1p) spread 0.0023 / 0.0017, 0.20 / 0.14 % of the constant's
against the bound's 1 %), while a leak fails every stage (10 runs). A ranking model's within-group AUC:
as RCE, with ``group_auc_se`` as its chance part.
"""

from __future__ import annotations

import copy
import math
import statistics
from typing import Any

#: Shuffles from which their spread widens the bound (fewer: one run's bound).
MIN_SPREAD_SHUFFLES = 3
#: The metrics whose bound is chance + standard errors, and their chance standard error's key.
CHANCE_SE = {"rce": "rce_chance_se", "group_auc": "group_auc_se"}


def mean_of_shuffles(runs: list[dict], seeds: list[int]) -> dict:
    """One target's metrics over its shuffled-label ``runs`` (one metrics dict each, shuffled with ``seeds``), in the
    shape of one run's: the metric means, the chance standard errors combined with the shuffles' spread (module
    docstring), and ``shuffles``, the record audit.json keeps (``seeds``, ``metric``, ``values``, ``mean``,
    ``spread``; ``chance_se``: the chance part of the mean's standard error). One run: itself with its record."""
    if len(runs) != len(seeds) or not runs:
        raise ValueError(f"{len(runs)} shuffled run(s) for {len(seeds)} seed(s)")
    metric = _metric(runs[0])
    values = [run.get(metric) for run in runs]
    mean = _mean(values)
    spread = None if len(runs) < 2 or _undefined(mean) else statistics.stdev(values)
    record = {"seeds": list(seeds), "metric": metric, "values": values, "mean": mean, "spread": spread}
    if metric in CHANCE_SE:
        ses = [run.get(CHANCE_SE[metric]) for run in runs]
        record["chance_se"] = None if any(_undefined(s) for s in ses) else math.sqrt(statistics.fmean(s ** 2 for s in ses))
    if len(runs) == 1:
        return runs[0] | {"shuffles": record}
    merged = copy.deepcopy(runs[0]) | {metric: mean}
    if metric == "rce":
        merged["rce_chance"] = _mean([run.get("rce_chance") for run in runs])
    if metric in CHANCE_SE and record["chance_se"] is not None:
        widen = spread ** 2 / len(runs) if spread is not None and len(runs) >= MIN_SPREAD_SHUFFLES else 0.0
        merged[CHANCE_SE[metric]] = math.sqrt(record["chance_se"] ** 2 + widen)
    constant = (merged.get("baselines") or {}).get("constant")
    if metric not in CHANCE_SE and constant is not None:  # a count target: its constant's RMSE too
        constant[metric] = _mean([((run.get("baselines") or {}).get("constant") or {}).get(metric) for run in runs])
    merged["shuffles"] = record
    return merged


def shuffles_phrase(metrics: dict, digits: int = 3) -> str:
    """`` over 3 shuffles (seeds 0, 1, 2: 0.652 / -1.307 / 1.440; spread 1.416)`` for a mean over shuffles, else ``""``."""
    record = metrics.get("shuffles") or {}
    if len(record.get("values") or []) < 2:
        return ""
    values = " / ".join(_fmt(v, digits) for v in record["values"])
    spread = "" if record.get("spread") is None else f"; spread {record['spread']:.{digits}f}"
    return (f" over {len(record['values'])} shuffles (seeds {', '.join(str(s) for s in record['seeds'])}: "
            f"{values}{spread})")


def spread_phrase(metrics: dict) -> str:
    """How the standard error of a mean over shuffles is made, for a check's detail; ``""`` for one shuffle or two
    (one run's bound)."""
    record = metrics.get("shuffles") or {}
    n, spread, chance = len(record.get("values") or []), record.get("spread"), record.get("chance_se")
    if n < MIN_SPREAD_SHUFFLES or spread is None or chance is None:
        return ""
    return f" of a mean of {n} shuffles: chance on these rows ({chance:.2f}) with their spread ({spread:.2f} / sqrt {n})"


def _metric(metrics: dict) -> str:
    """The metric a target's shuffled-label check reads: ``rce``, ``group_auc`` (a ranking model) or a count's RMSE."""
    if metrics.get("kind") == "count":
        from .audit import _rmse_key

        return _rmse_key(metrics)
    return "group_auc" if metrics.get("rce") is None else "rce"


def _mean(values: list[Any]) -> float | None:
    """Their mean; None where all are None (no such metric), NaN where any is undefined (one class: all are)."""
    if all(v is None for v in values):
        return None
    if any(_undefined(v) for v in values):
        return float("nan")
    return statistics.fmean(values)


def _fmt(value: Any, digits: int) -> str:
    return "nan" if _undefined(value) else f"{value:.{digits}f}"


def _undefined(value: Any) -> bool:
    return value is None or value != value
