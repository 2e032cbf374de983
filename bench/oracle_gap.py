"""How much of the synthetic oracle RCE can any model learn? ``python bench/oracle_gap.py --rows 1000000``.

The oracle RCE (report.json ``oracle_rce``) scores the generator's true probabilities, which
include effects no finite sample identifies: a random effect per (user, creator) pair that most
pairs show once or twice, and per-user / per-creator effects of users with a handful of rows.
This bench splits the oracle like the pipeline (the last ``--valid-hours`` are validation) and
scores, on the validation rows:

* ``oracle``: the true probabilities;
* ``oracle_without_pair``: the Bayes probability when the pair effect is unknown (its uniform
  distribution integrated out by quadrature, every other effect known);
* ``structured_map``: a learner that KNOWS the generator's functional form: logistic regression on
  the exact design (one-hot user, creator, language, media, tweet type; the follow flag, the
  standardised log text length and profile counts; the generator's previous-day history
  covariate), an L2 prior per coefficient (MAP), fitted on the training rows only. Its C is
  picked on the validation rows, so it is an optimistic ceiling for a learner that has to
  discover the structure from these rows;
* ``pipeline`` (with ``--report``): the RCE of a pipeline run on the same data, and its share of the
  oracle's and the structured learner's RCE (``pipeline_over_oracle`` / ``_structured``; null, "n/a" in
  the table, when that RCE is not positive: a ratio to it means nothing).

Writes ``bench/results/oracle_gap-<rows>.json`` (``--results DIR``: there instead) and prints a markdown table. Uses the
generator's own helpers (``rapids_engage.synthetic.world``) to recompute the pair effect from the ids.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from rapids_engage.synthetic import world as S
from rapids_engage.cli import positive_int, seed_int, writable_dir
from rapids_engage.hashing import combine
from rapids_engage.metrics import rce
from rapids_engage.report import write_json
from rapids_engage.schema import TARGETS, TRUE_PROB_PREFIX
from rapids_engage.synthetic import SyntheticSpec, generate

DAY = 86400


def generated(root: Path, spec: SyntheticSpec) -> Path:
    """``root`` holding the data of ``spec``: generated there unless it holds them already (same spec)."""
    info = root / "synthetic.json"
    if not (info.is_file() and json.loads(info.read_text()).get("spec") == asdict(spec)):
        generate(root, spec)
    return root


def load(root: Path) -> pd.DataFrame:
    """Data and truth of a generated dataset, one frame (rows in tweet-id order of the truth)."""
    cols = [
        "tweet_id", "tweet_timestamp", "engaging_user_id", "engaged_with_user_id", "language", "present_media",
        "tweet_type", "text_tokens", "engagee_follows_engager", *TARGETS.values(),
    ]  # fmt: skip
    data = pd.read_parquet(root / "data", columns=cols)
    truth = pd.read_parquet(root / "truth")
    frame = data.merge(truth[["tweet_id", *[TRUE_PROB_PREFIX + t for t in S.T]]], on="tweet_id", validate="1:1")
    for t in S.T:
        frame[t] = frame[TARGETS[t]].notna().to_numpy()
    return frame


def indices(world: S.World, ids: np.ndarray) -> np.ndarray:
    """Generator user indices of canonical int64 user ids."""
    order = np.argsort(world.user_ids)
    pos = np.searchsorted(world.user_ids[order], ids)
    return order[pos]


def pair_effect(world: S.World, u: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The generator's (user, creator) logit effect, from the same hash."""
    pair = S.uniform(combine([u, c], int(S.salt(world.seed, 7))))
    return (pair - 0.5) * (np.sqrt(12.0) * S.PAIR_SD)


def history_covariates(frame: pd.DataFrame, u: np.ndarray) -> np.ndarray:
    """(n, 4): the generator's history term without its effect sizes, from the previous UTC day's rows."""
    day = frame["tweet_timestamp"].to_numpy() // DAY
    keys = pd.DataFrame({"u": u, "day": day, **{t: frame[t].to_numpy().astype(np.int64) for t in S.T}})
    daily = keys.groupby(["u", "day"]).agg(imp=("u", "size"), **{t: (t, "sum") for t in S.T}).reset_index()
    daily["day"] += 1  # yesterday's counts, keyed by today
    prev = keys[["u", "day"]].merge(daily, on=["u", "day"], how="left").fillna(0)
    imp = prev["imp"].to_numpy()[:, None]
    rate = prev[S.T].to_numpy() / np.maximum(imp, 1.0)
    return np.where(imp > 0, (rate - S.RATES) * imp / (imp + 1.0), 0.0)


def design(frame: pd.DataFrame, u: np.ndarray, c: np.ndarray, world: S.World, hist: np.ndarray):
    """Sparse design of the generator's logit (one column block per effect) and the history columns."""
    import scipy.sparse as sp

    n = len(frame)
    blocks = [
        sp.csr_matrix((np.ones(n), (np.arange(n), u)), shape=(n, world.user_ids.size)),
        sp.csr_matrix((np.ones(n), (np.arange(n), c)), shape=(n, world.user_ids.size)),
    ]
    for col in ("language", "present_media", "tweet_type"):
        codes, uniques = pd.factorize(frame[col])
        blocks.append(sp.csr_matrix((np.ones(n), (np.arange(n), codes)), shape=(n, len(uniques))))
    length = np.log(frame["text_tokens"].str.count("\t").to_numpy() + 1.0)
    dense = np.column_stack([
        frame["engagee_follows_engager"].to_numpy(dtype=float),
        (length - S.LOG_LEN_MEAN) / S.LOG_LEN_SD,
        S.std_log(world.following)[u],
        S.std_log(world.followers)[c],
    ])  # fmt: skip
    return sp.hstack(blocks + [sp.csr_matrix(dense)]).tocsr(), hist


def structured_map(X, hist: np.ndarray, y: np.ndarray, train: np.ndarray, j: int, cs: list[float], max_iter: int) -> tuple[float, float]:
    """(best validation RCE, its C) of the MAP logistic regression for target ``j``."""
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression

    Xj = sp.hstack([X, sp.csr_matrix(hist[:, [j]])]).tocsr()
    best = (-np.inf, None)
    for c in cs:
        model = LogisticRegression(C=c, max_iter=max_iter, tol=1e-6).fit(Xj[train], y[train])
        score = rce(y[~train].astype(float), model.predict_proba(Xj[~train])[:, 1])
        best = max(best, (score, c), key=lambda b: b[0])
    return best


def share(ours: float | None, ref: float) -> float | None:
    """The pipeline's RCE as a share of a reference RCE; None without a pipeline RCE or when the reference
    is not positive (no better than the base rate: a ratio to it means nothing, as in tiny runs)."""
    return None if ours is None or not ref > 0 else ours / ref


def share_text(ours: float | None, ref: float, name: str) -> str:
    """:func:`share` for the table: a percentage, "–" without a pipeline, else "n/a" with the reason."""
    if ours is None:
        return "–"
    got = share(ours, ref)
    return f"{got:.0%}" if got is not None else f"n/a ({name} RCE {ref:.2f} <= 0)"


def report_targets(parser: argparse.ArgumentParser, report: str | None, spec: SyntheticSpec, valid_hours: float) -> dict:
    """The ``targets`` of ``--report``, a run on the same rows (the data of ``spec``, the same validation
    window); else its RCE is not comparable: a usage error."""
    if report is None:
        return {}
    try:
        data = json.loads(Path(report).read_text())
        run_rows = data["rows"]["train"] + data["rows"]["valid"] + (data.get("split") or {}).get("purged_rows", 0)
        targets = data["targets"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        parser.error(f"--report {report}: not a pipeline run's report.json ({type(e).__name__}: {e})")
    if run_rows != spec.rows:
        parser.error(f"--report {report} is a run on {run_rows:,} rows, not --rows {spec.rows:,}: its RCE is not comparable")
    for differs in _other_data(data, spec, valid_hours):
        parser.error(f"--report {report} is a run with {differs}: its RCE is not comparable")
    return targets


def _other_data(run: dict, spec: SyntheticSpec, valid_hours: float) -> list[str]:
    """How the run of a report.json read other rows than this bench (its config's, where it has one)."""
    config = run.get("config") or {}
    if not config:
        return []
    if config["data"]["source"] != "synthetic":
        return [f"data.source {config['data']['source']}, not the synthetic data"]
    ours = {"days": f"--days {spec.days}", "seed": f"--seed {spec.seed}", "n_users": "the default (rows / 20)",
            "chunk_rows": f"the default {spec.chunk_rows}"}
    synthetic = config.get("synthetic", {})
    out = [f"synthetic.{k} {synthetic.get(k)}, not {ours[k]}" for k in ours if synthetic.get(k) != getattr(spec, k)]
    if run["split"]["valid_hours"] != valid_hours:
        out.append(f"split.valid_hours {run['split']['valid_hours']}, not --valid-hours {valid_hours}")
    if run["split"].get("gap_hours"):  # its training rows end before the cut-off; the bench's reach it
        out.append(f"split.gap_hours {run['split']['gap_hours']}, not 0 (this bench trains on every row up to the cut-off)")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=positive_int, default=1_000_000)
    parser.add_argument("--seed", type=seed_int, default=42)
    parser.add_argument("--days", type=positive_int, default=28)
    parser.add_argument("--valid-hours", type=float, default=24.0)
    parser.add_argument("--work", default="/tmp/oracle_gap", help="where the data are generated")
    parser.add_argument("--report", help="report.json of a pipeline run on the same data, shown beside")
    parser.add_argument("--c", type=float, nargs="+", default=[0.1, 0.3, 1.0], help="L2 strengths tried (C = prior variance)")
    parser.add_argument("--max-iter", type=int, default=500, help="L-BFGS iterations per fit")
    parser.add_argument("--results", default=str(Path(__file__).parent / "results"),
                        help="where oracle_gap-<rows>.json goes (default: bench/results)")
    args = parser.parse_args(argv)
    results = writable_dir(parser, "--results", args.results)
    spec = SyntheticSpec(rows=args.rows, days=args.days, seed=args.seed)
    pipeline = report_targets(parser, args.report, spec, args.valid_hours)
    root = generated(Path(args.work) / f"synthetic-{args.rows}-{args.seed}", spec)
    start = time.perf_counter()
    frame = load(root)
    world = S.World(spec)
    u = indices(world, frame["engaging_user_id"].to_numpy())
    c = indices(world, frame["engaged_with_user_id"].to_numpy())
    t = frame["tweet_timestamp"].to_numpy()
    train = t <= t.max() - int(round(args.valid_hours * 3600))
    valid = ~train

    p = frame[[TRUE_PROB_PREFIX + x for x in S.T]].to_numpy()
    z_without_pair = np.log(p / (1 - p)) - pair_effect(world, u, c)[:, None]
    q = ((np.arange(32) + 0.5) / 32 - 0.5) * np.sqrt(12.0) * S.PAIR_SD  # quadrature of the uniform pair effect
    p_without_pair = np.mean([1 / (1 + np.exp(-(z_without_pair + v))) for v in q], axis=0)
    X, hist = design(frame, u, c, world, history_covariates(frame, u))

    rows = {}
    for j, target in enumerate(S.T):
        y = frame[target].to_numpy()
        yv = y[valid].astype(float)
        smap, best_c = structured_map(X, hist, y, train, j, args.c, args.max_iter)
        rows[target] = {
            "oracle": rce(yv, p[valid, j]),
            "oracle_without_pair": rce(yv, p_without_pair[valid, j]),
            "structured_map": smap,
            "structured_map_c": best_c,
            "pipeline": pipeline.get(target, {}).get("rce"),
        }
        ours = rows[target]["pipeline"]
        rows[target] |= {"pipeline_over_oracle": share(ours, rows[target]["oracle"]),
                         "pipeline_over_structured": share(ours, smap)}
    result = {
        "rows": args.rows,
        "valid_rows": int(valid.sum()),
        "seed": args.seed,
        "report": args.report,
        "seconds": round(time.perf_counter() - start, 1),
        "targets": rows,
    }
    out = results / f"oracle_gap-{args.rows}.json"
    write_json(out, result)
    print("| target | oracle RCE | pair unknown | structured MAP (C) | pipeline | pipeline / oracle | pipeline / structured |")
    print("|---|---|---|---|---|---|---|")
    for target, r in rows.items():
        ours = r["pipeline"]
        print(
            f"| {target} | {r['oracle']:.2f} | {r['oracle_without_pair']:.2f} | {r['structured_map']:.2f} "
            f"({r['structured_map_c']}) | {'–' if ours is None else round(ours, 2)} | "
            f"{share_text(ours, r['oracle'], 'oracle')} | {share_text(ours, r['structured_map'], 'structured')} |"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
