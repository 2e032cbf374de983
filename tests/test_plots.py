"""Plots (PNG) and report.md from small random data and tiny CPU XGBoost models."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from rapids_engage import plots
from rapids_engage.report_md import render_markdown, write_markdown

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FEATURES = ["f_a", "f_b", "f_c", "f_d"]


def _train(x: np.ndarray, y: np.ndarray, rounds: int = 6) -> tuple[xgb.Booster, dict[str, list[float]], int]:
    dtrain = xgb.DMatrix(x[:300], label=y[:300], feature_names=FEATURES)
    dvalid = xgb.DMatrix(x[300:], label=y[300:], feature_names=FEATURES)
    evals: dict = {}
    booster = xgb.train(
        {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 3, "eval_metric": "logloss",
         "device": "cpu", "nthread": 1},
        dtrain,
        num_boost_round=rounds,
        evals=[(dvalid, "valid")],
        evals_result=evals,
        verbose_eval=False,
    )
    history = {k: list(v) for k, v in evals["valid"].items()}
    return booster, history, int(np.argmin(history["logloss"]))


@pytest.fixture(scope="module")
def run():
    rng = np.random.default_rng(0)
    n = 500
    x = rng.normal(size=(n, len(FEATURES)))
    logit = 1.5 * x[:, 0] - x[:, 1] - 1.0
    y_like = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    y_reply = np.zeros(n, dtype=np.float32)  # a target without a single positive
    boosters, histories, best, labels, preds = {}, {}, {}, {}, {}
    for target, y in (("like", y_like), ("reply", y_reply)):
        booster, history, b = _train(x, y)
        boosters[target], histories[target], best[target] = booster, history, b
        labels[target] = y[300:]
        preds[target] = booster.predict(xgb.DMatrix(x[300:], feature_names=FEATURES))
    labels["like"] = pd.Series(labels["like"])  # Series and arrays both accepted
    return labels, preds, boosters, histories, best


def _report(run) -> dict:
    labels, preds, _, _, best = run
    from rapids_engage.metrics import binary_report

    targets = {}
    for t in labels:
        m = binary_report(labels[t], preds[t])
        m.update(oracle_rce=None, best_iteration=best[t])
        targets[t] = m
    targets["like"]["oracle_rce"] = 40.0
    targets["like"]["baselines"] = {"popularity": {"ap": 0.31, "rce": 1.5}, "constant": {"ap": 0.2, "rce": 0.0}}
    targets["like"]["ap_grouped"] = 0.5
    return {
        "version": "0.1.0",
        "backend": "cpu",
        "n_workers": 2,
        "rows": {"train": 300, "valid": 200},
        "targets": targets,
        "timings_s": {"data": 0.5, "features": 1.25, "train": 3.0},
        "memory": {"interval_s": 0.25, "host_scope": "RSS of the driver", "host_rss_peak_bytes": {"data": 2**30, "features": 3 * 2**29, "train": 2**31}},
        "data": "synthetic | 500 rows",
        "store": {"path": "/tmp/store", "version": "abc123", "cache_hit": True},
        "features": FEATURES,
        "models": "/tmp/out/models",
    }


def _assert_png(path) -> None:
    assert path.is_file(), path
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > 5_000, (path, len(data))


def test_write_all_and_markdown(tmp_path, run):
    labels, preds, boosters, histories, best = run
    pyplot_before = "matplotlib.pyplot" in sys.modules
    rng = np.random.default_rng(3)
    log_counts = np.log1p(rng.poisson(5.0, 300).astype(float))
    counts = ({"points": log_counts}, {"points": log_counts + rng.normal(0, 0.3, 300)})
    written = plots.write_all(tmp_path, labels, preds, boosters, histories, best, counts=counts)
    assert ("matplotlib.pyplot" in sys.modules) == pyplot_before  # plots never imports pyplot
    if pyplot_before:  # imported by another test: no figure may have been registered
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []
    assert written == plots.PLOT_FILES
    for rel in written.values():
        _assert_png(tmp_path / rel)
    assert not list((tmp_path / "plots").glob("*.part"))

    report = _report(run)
    md_path = write_markdown(report, written, tmp_path / "report.md")
    text = md_path.read_text()
    assert not (tmp_path / "report.md.part").exists()
    for target in ("like", "reply"):
        assert f"**{target}**" in text
    for rel in written.values():
        assert f"]({rel})" in text
    assert "abc123" in text and "cache hit" in text
    assert "AP popularity" in text and "RCE constant" in text
    assert "synthetic \\| 500 rows" in text  # pipes escaped inside the table
    like_row = next(line for line in text.splitlines() if line.startswith("| **like**"))
    rce = report["targets"]["like"]["rce"]
    assert f"{100 * rce / 40.0:.1f}%" in like_row
    reply_row = next(line for line in text.splitlines() if line.startswith("| **reply**"))
    assert "—" in reply_row  # AP / RCE / AUC undefined, oracle None
    assert "nan" not in text.lower().replace("nanos", "")
    assert "## Stage timings" in text and "4.75" in text
    assert "| features | 1.25 | 26.3% | 1.50 |" in text and "| **total** | **4.75** | 100.0% | 2.00 |" in text
    assert "peak GPU" not in text and "sampled every 0.25 s: RSS of the driver." in text


def test_degenerate_inputs(tmp_path):
    # all-zero labels, an empty split, a model without splits and an empty history: no crash
    labels = {"like": np.zeros(50), "empty": np.zeros(0)}
    preds = {"like": np.full(50, 0.1), "empty": np.zeros(0)}
    x = np.random.default_rng(1).normal(size=(60, len(FEATURES)))
    booster = xgb.train({"objective": "binary:logistic", "nthread": 1},
                        xgb.DMatrix(x, label=np.zeros(60), feature_names=FEATURES), 2)
    assert booster.get_score(importance_type="gain") == {}
    written = plots.write_all(tmp_path, labels, preds, {"like": booster}, {"like": {}, "reply": {"logloss": []}}, {})
    assert len(written) == 4
    for rel in written.values():
        _assert_png(tmp_path / rel)
    # nothing at all
    assert plots.write_all(tmp_path / "none", {}, {}, None, None, None) == {}
    # a count target without rows still gets its (annotated) panel
    written = plots.write_all(tmp_path / "counts", {}, {}, None, None, None, counts=({"n": np.zeros(0)}, {"n": np.zeros(0)}))
    _assert_png(tmp_path / "counts" / written["count_predictions"])


def test_markdown_minimal_report_and_absolute_plot_paths(tmp_path):
    report = {
        "backend": "gpu",
        "n_workers": 1,
        "rows": {"train": 10, "valid": 5},
        "targets": {"like": {"ap": float("nan"), "rce": None, "auc": 0.5, "positive_rate": 0.0, "oracle_rce": None}},
        "timings_s": {},
    }
    text = render_markdown(report, {"pr_curves": str(tmp_path / "plots" / "pr_curves.png")}, tmp_path)
    assert "**like**" in text and "](plots/pr_curves.png)" in text
    assert "nan" not in text.lower()
