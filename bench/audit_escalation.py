"""How often ``audit --shuffles auto`` fails a clean target, and finds a leak, by how it adds shuffles: a Monte Carlo
of :mod:`rapids_engage.audit_shuffles`' model. ``python bench/audit_escalation.py [--trials 400000]``.

Each shuffle's validation RCE of one target is ``mu + c + e_i + d``: ``mu`` the chance level (``rce_chance``), ``c``
the validation labels' chance noise (standard error ``se``, one draw shared by every shuffle: they are scored on the
same labels), ``e_i`` the shuffle's own noise-fitting (spread ``s``, independent per shuffle) and ``d`` a leak (the
same skill in every shuffle; 0: a clean target). Each shuffle's report carries ``rce_chance = mu`` and
``rce_chance_se = se``. A rule checks the mean of its first N shuffles against the audit's bound
(:func:`rapids_engage.audit.rce_bound` of :func:`~rapids_engage.audit_shuffles.mean_of_shuffles`): ``fixed N`` is
``--shuffles N``; a list of stages runs the first, and the next while the check fails on the mean of all so far,
failing only at the last (``1, 3``: ``--shuffles auto`` before the escalation). Reported per scenario and rule: the
share of clean targets failed, of leaks caught, and the mean shuffled runs each costs.

Scenarios (``mu``, ``se``, ``s``): ``noise-dominated`` (0, 1, 9: the docstring's case, in units of ``se``), ``buy``
(-0.91, 0.16, 1.42: ``bench/event_log.py``'s 300k log, buy, seeds 0 / 1 / 2, s / se about 9) and ``cart`` (-0.5, 0.1,
0.52: that log's cart, its spread over the 3 seeds; ``mu`` and ``se`` chosen so the t quantile's bound is the 5.6 the
docstring names). The first trials of each are checked against the audit's own code (``--verify``, default 300):
the vectorised verdicts must be the audit's.

Writes ``<results>/audit_escalation.json`` and ``.md`` (a markdown table, also printed). No hardware dependence.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

SCENARIOS = {"noise-dominated": (0.0, 1.0, 9.0), "buy": (-0.91, 0.16, 1.42), "cart": (-0.5, 0.1, 0.52)}
RULES = {"fixed 3": (3,), "fixed 5": (5,), "fixed 10": (10,), "1 -> 3 (before)": (1, 3), "1 -> 3 -> 5": (1, 3, 5),
         "1 -> 3 -> 10": (1, 3, 10), "1 -> 3 -> 5 -> 10": (1, 3, 5, 10), "1 -> 3 -> 5 -> 10 -> 20": (1, 3, 5, 10, 20)}
LEAKS = (0.0, 2.0, 5.0, 10.0)


def failed(values: np.ndarray, n: int, mu: float, se: float) -> np.ndarray:
    """Whether the check fails on the mean of each row's first ``n`` shuffles (the audit's bound, vectorised)."""
    from rapids_engage.audit import CHANCE_SES, MAX_SHUFFLED_RCE
    from rapids_engage.audit_shuffles import MIN_SPREAD_SHUFFLES

    first = values[:, :n]
    widen = first.var(axis=1, ddof=1) / n if n >= MIN_SPREAD_SHUFFLES else 0.0
    bound = np.maximum(MAX_SHUFFLED_RCE, mu + CHANCE_SES * np.sqrt(se ** 2 + widen))
    return first.mean(axis=1) > bound


def verdicts(values: np.ndarray, stages: tuple[int, ...], mu: float, se: float) -> tuple[np.ndarray, np.ndarray]:
    """Each row's verdict under a rule (True: FAIL) and the shuffles it ran."""
    failing = np.ones(len(values), dtype=bool)
    runs = np.zeros(len(values), dtype=np.int64)
    for n in stages:
        runs[failing] = n
        failing &= failed(values, n, mu, se)
    return failing, runs


def audit_verdict(values: list[float], stages: tuple[int, ...], mu: float, se: float) -> tuple[bool, int]:
    """The same through the audit's own check (:func:`rapids_engage.audit.shuffled_checks`)."""
    from rapids_engage.audit import shuffled_checks

    real = {"targets": {"t": {"kind": "binary", "rce": 20.0}}}
    runs = [{"targets": {"t": {"kind": "binary", "rce": v, "rce_chance": mu, "rce_chance_se": se}}} for v in values]
    for n in stages:
        (check,) = shuffled_checks(real, runs[:n], list(range(n)))
        if check["passed"]:
            return False, n
    return True, stages[-1]


def simulate(trials: int, seed: int, verify: int) -> dict:
    rng = np.random.default_rng(seed)
    width = max(max(s) for s in RULES.values())
    results = {}
    for name, (mu, se, s) in SCENARIOS.items():
        noise = mu + rng.normal(0, se, (trials, 1)) + rng.normal(0, s, (trials, width))
        for d in LEAKS:
            values = noise + d
            for rule, stages in RULES.items():
                fail, runs = verdicts(values, stages, mu, se)
                for i in range(min(verify, trials)):
                    expected = audit_verdict(values[i].tolist(), stages, mu, se)
                    if expected != (bool(fail[i]), int(runs[i])):
                        raise AssertionError(f"{name} d={d} {rule} trial {i}: vectorised {fail[i], runs[i]}, audit {expected}")
                results.setdefault(name, {"mu": mu, "se": se, "s": s, "rules": {}})["rules"].setdefault(rule, {})[
                    f"d={d:g}"] = {"failed": float(fail.mean()), "mean_runs": float(runs.mean())}
    return results


def table(results: dict) -> str:
    head = ["scenario (mu, se, s)", "rule", "clean: FAIL", "clean: 1 in", "clean: runs",
            *(f"leak {d:g}: caught" for d in LEAKS[1:]), f"leak {LEAKS[-1]:g}: runs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, sc in results.items():
        for rule, by_leak in sc["rules"].items():
            clean = by_leak["d=0"]
            one_in = f"{1 / clean['failed']:,.0f}" if clean["failed"] else "never"
            lines.append("| " + " | ".join([
                f"{name} ({sc['mu']:g}, {sc['se']:g}, {sc['s']:g})", rule, f"{100 * clean['failed']:.2f} %", one_in,
                f"{clean['mean_runs']:.2f}", *(f"{100 * by_leak[f'd={d:g}']['failed']:.1f} %" for d in LEAKS[1:]),
                f"{by_leak[f'd={LEAKS[-1]:g}']['mean_runs']:.2f}"]) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=400_000, help="audits simulated per scenario and leak")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verify", type=int, default=300, help="trials per case checked against the audit's code")
    parser.add_argument("--results", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error(f"--trials {args.trials}: at least 1")
    results = simulate(args.trials, args.seed, args.verify)
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    record = {"trials": args.trials, "seed": args.seed, "verified_trials": args.verify, "scenarios": results}
    (out / "audit_escalation.json").write_text(json.dumps(record, indent=1) + "\n")
    markdown = table(results)
    (out / "audit_escalation.md").write_text(markdown)
    sys.stdout.write(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
