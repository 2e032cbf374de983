"""Plots (PNG) and report.md from small random data and tiny CPU XGBoost models."""

from __future__ import annotations

import sys

import matplotlib.colors
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
    written = plots.write_all(tmp_path, labels, preds, boosters, histories, best, counts=counts, ranked={"like": _ranked()})
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
    assert not list(tmp_path.glob("*.part"))
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


# --------------------------------------------------------------------------- what the panels show


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions draw, kept instead of written (``_save`` releases them)."""
    kept: list = []

    def keep(fig, path):
        kept.append(fig)
        return path

    for module in (plots.classification, plots.counts, plots.importance, plots.learning, plots.ranking):  # where each looks it up
        monkeypatch.setattr(module, "_save", keep)
    return kept


def _rare(n: int = 12_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A well-calibrated rare target (~0.8% positive) with predictions over two orders of magnitude."""
    rng = np.random.default_rng(seed)
    p = rng.beta(0.5, 60, n)
    return (rng.random(n) < p).astype(float), p


def test_equal_count_bins_cover_all_rows_and_keep_ties_together():
    p = np.r_[np.full(400, 0.01), np.linspace(0.02, 0.9, 1100)]  # a heavy tie, then distinct values
    bins = plots.equal_count_bins(p, 15)
    assert bins.min() == 0 and bins.max() <= 14 and len(bins) == len(p)
    assert len(np.unique(bins[:400])) == 1  # tied predictions share a bin
    distinct = np.bincount(bins[400:])
    assert distinct[distinct > 0].max() - distinct[distinct > 0].min() <= 100  # equal-count bins past the tie

    y, p = _rare()
    curve = plots.quantile_calibration(y, p)
    assert curve["count"].sum() == len(p) and len(curve["count"]) == plots.CALIBRATION_BINS
    assert curve["count"].min() >= len(p) // plots.CALIBRATION_BINS  # no bin of 1-2 rows
    assert np.all(np.diff(curve["mean_pred"]) > 0)
    np.testing.assert_allclose((curve["frac_pos"] * curve["count"]).sum(), y.sum())
    small = plots.quantile_calibration(y[:100], p[:100])  # fewer bins, each of MIN_BIN_ROWS rows or more
    assert small["count"].sum() == 100 and small["count"].min() >= plots.MIN_BIN_ROWS


def test_calibration_axes_fit_the_data(tmp_path, figures):
    y_rare, p_rare = _rare()
    rng = np.random.default_rng(1)
    p_common = rng.uniform(0.05, 0.9, 5000)
    y_common = (rng.random(5000) < p_common).astype(float)
    plots.calibration_curves({"rare": y_rare, "common": y_common}, {"rare": p_rare, "common": p_common}, tmp_path / "c.png")
    rare, common = figures[0].axes[:2]
    assert rare.get_xscale() == rare.get_yscale() == "log"  # predictions span orders of magnitude
    assert rare.get_xlim() == rare.get_ylim() and rare.get_xlim()[1] < 0.2  # not the whole of [0, 1]
    assert common.get_xscale() == "linear" and 0 < common.get_xlim()[0] < 0.1 and common.get_xlim()[1] < 1.0
    texts = [t.get_text() for t in rare.get_legend().get_texts()]
    assert f"mean prediction {p_rare.mean():.4f}\nvs positive rate {y_rare.mean():.4f}" in texts
    assert "perfectly calibrated" in texts
    # the legend's ECE is report.json's, on its own bins (equal-width), not the drawn bins of equal rows
    from rapids_engage.metrics import ECE_BINS, binary_report
    ece = binary_report(y_rare, p_rare)["ece"]
    assert f"model (ECE {plots.panels._fmt(ece)}, {ECE_BINS} equal-width bins)" in texts


def test_calibration_title_counts_the_bins_drawn(tmp_path, figures):
    # 111 validation rows (the demo at 3,000 rows) make 5 bins of 20+ rows; the title said "15 bins"
    y, p = _rare(111)
    plots.calibration_curves({"a": y, "b": y}, {"a": p, "b": p}, tmp_path / "c.png")
    assert figures[0].get_suptitle().startswith("Calibration (5 bins of equal rows")
    plots.calibration_curves({"a": y, "b": np.r_[y, y, y]}, {"a": p, "b": np.r_[p, p, p]}, tmp_path / "c.png")
    assert figures[1].get_suptitle().startswith(f"Calibration (up to {plots.CALIBRATION_BINS} bins of equal rows")


def test_calibration_greys_out_small_bins(tmp_path, figures):
    # 19 rows: one bin, under MIN_BIN_ROWS
    plots.calibration_curves({"t": np.r_[np.zeros(15), np.ones(4)]}, {"t": np.linspace(0.1, 0.5, 19)}, tmp_path / "c.png")
    texts = [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()]
    assert f"bin < {plots.MIN_BIN_ROWS} rows" in texts


def test_pr_axis_fits_rare_targets_and_draws_the_oracle(tmp_path, figures):
    y, p = _rare()
    oracle = p + np.random.default_rng(2).normal(0, 0.001, len(p))
    plots.pr_curves({"rare": y, "like": (p > 0.01).astype(float)}, {"rare": p, "like": p}, tmp_path / "pr.png",
                    oracle={"rare": oracle})
    rare, like = figures[0].axes[:2]
    top = rare.get_ylim()[1]
    assert 2 * y.mean() <= top < 0.5
    labels = [t.get_text() for t in rare.get_legend().get_texts()]
    assert any(lab.startswith("oracle (AP ") for lab in labels) and any(lab.startswith("positive rate") for lab in labels)
    assert not any(t.get_text().startswith("oracle") for t in like.get_legend().get_texts())  # no oracle for it
    assert plots.pr_top([], 0.0) == 1.02 and plots.pr_top([{"recall": [0.5], "precision": [0.99]}], 0.3) == 1.02


def test_pr_steps_enclose_the_average_precision(tmp_path, figures):
    # steps "post" held each precision over the recall of the *next* threshold: the first stretch at the
    # curve's start (precision 1), so the area under the drawn curve was not the AP of the legend
    rng = np.random.default_rng(0)
    p = rng.random(300)
    y = (rng.random(300) < 0.2 * p).astype(float)
    plots.pr_curves({"t": y}, {"t": p}, tmp_path / "pr.png")
    line = figures[0].axes[0].lines[0]
    recall, precision = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    assert line.get_drawstyle() == "steps-pre"  # the value at x[i] holds over (x[i-1], x[i]]
    from rapids_engage.metrics import average_precision

    assert np.sum(np.diff(recall) * precision[1:]) == pytest.approx(average_precision(y, p), rel=1e-9)


def test_feature_importance_ranks_by_total_gain(tmp_path, figures):
    class Booster:
        asked: list = []

        def get_score(self, importance_type):
            self.asked.append(importance_type)
            return {"gain": {"rare": 9.0, "common": 1.0}, "total_gain": {"rare": 9.0, "common": 500.0}}[importance_type]

    plots.feature_importance({"t": Booster()}, tmp_path / "fi.png")
    ax = figures[0].axes[0]
    assert Booster.asked == ["total_gain"]
    assert ax.get_xlabel() == "total gain"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["rare", "common"]  # largest on top


def test_feature_importance_keeps_room_for_bars_beside_long_names(tmp_path, figures):
    # 130-character feature names (target encodings of several long columns) took the whole fixed-width
    # panel: constrained layout squeezed the bars to a sliver and the panels' axis labels overlapped
    class Booster:
        def __init__(self, scores):
            self.scores = scores

        def get_score(self, importance_type):
            return self.scores

    long = {"te_" + "engaging_user_id__engaged_with_user_id__language__tweet_type__hour" * 2 + f"_{i}": 100.0 - i for i in range(20)}
    plots.feature_importance({"like": Booster(long), "reply": Booster({"a": 1.0, "b": 2.0})}, tmp_path / "fi.png")
    fig = figures[0]
    fig.canvas.draw()  # constrained layout places the axes
    for ax in fig.axes[:2]:
        assert ax.get_position().width * fig.get_figwidth() > 2.0  # inches of bars
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert max(map(len, labels)) == plots.MAX_LABEL_CHARS and labels[-1].startswith("te_engaging") and labels[-1].endswith("hour_0")
    assert len(set(labels)) == 20 and plots.short_name("f_a") == "f_a"


def test_learning_curves_labels_baselines_and_integer_rounds(tmp_path, figures):
    histories = {"like": {"logloss": [0.6, 0.5, 0.45, 0.46]}, "points": {"rmse": [1.2, 1.1, 1.05]},
                 "click": {"ndcg@10": [0.2, 0.3, 0.31]}}
    baselines = {"like": {"log_loss": 0.67}, "points": {"rmse_log1p": 1.14, "rmse": 49.0}, "click": {"ndcg@10": 0.25}}
    train = {"like": {"logloss": [0.6, 0.45, 0.38, 0.33]}}
    plots.learning_curves(histories, {"like": 2, "points": 2}, tmp_path / "lc.png", baselines=baselines, log1p={"points"}, train=train)
    like, points, click = figures[0].axes[:3]
    assert like.get_ylabel() == "logloss" and points.get_ylabel() == "RMSE (log1p)"
    assert click.get_ylabel() == "ndcg@10"
    labelled = {line.get_label(): line for line in like.get_lines()}
    assert list(labelled["train logloss"].get_ydata()) == train["like"]["logloss"]
    assert labelled["train logloss"].get_linestyle() == "--"
    assert labelled["train logloss"].get_color() == labelled["valid logloss"].get_color()
    assert not any(line.get_label().startswith("train") for line in points.get_lines())  # no training history given

    def horizontal(ax):
        return [line.get_ydata()[0] for line in ax.get_lines() if len(set(line.get_ydata())) == 1 and len(line.get_ydata()) == 2
                and tuple(line.get_xdata()) == (0, 1)]

    assert horizontal(like) == [0.67] and horizontal(points) == [1.14]
    assert horizontal(click) == []  # XGBoost's ndcg is not the report's: no baseline line
    for ax in (like, points, click):
        assert all(float(t).is_integer() for t in ax.get_xticks())
    assert plots.metric_label("rmse", log1p=False) == ("RMSE", "rmse")


def test_log1p_targets_leave_out_raw_count_objectives():
    x = np.random.default_rng(0).normal(size=(50, len(FEATURES)))
    y = np.random.default_rng(1).poisson(3.0, 50).astype(float)

    def fit(objective):
        return xgb.train({"objective": objective, "nthread": 1}, xgb.DMatrix(x, label=y, feature_names=FEATURES), 2)

    boosters = {"points": fit("reg:squarederror"), "comments": fit("count:poisson")}
    assert plots.log1p_targets(["points", "comments", "views"], boosters) == {"points", "views"}
    assert plots.log1p_targets(["points"], None) == {"points"}


def test_count_ticks_are_counts():
    assert plots.count_ticks(np.log1p(1.0), np.log1p(665.0)) == [1, 3, 10, 30, 100, 300]
    assert plots.count_ticks(0.0, np.log1p(400.0))[:3] == [0, 1, 3]
    narrow = plots.count_ticks(1.3, 2.3)  # predicted counts 2.7 .. 9
    assert len(narrow) >= 3 and all(1.3 <= np.log1p(t) <= 2.3 for t in narrow)
    assert plots.count_ticks(1.0, 1.0) == []
    # predicted comments 0.25 .. 3.6 (HN): the axis's lower third, where most predictions lie, had no tick under 1
    assert plots.count_ticks(np.log1p(0.25), np.log1p(3.6)) == [0.3, 1, 3]
    assert [plots.counts._count_label(c) for c in (0, 0.5, 3000, 30_000, 3e6)] == ["0", "0.5", "3000", "30k", "3M"]


def test_count_predictions_panel(tmp_path, figures):
    rng = np.random.default_rng(3)
    y = np.log1p(rng.poisson(20.0, 2000).astype(float))
    p = 0.5 * y + 1.0 + rng.normal(0, 0.1, 2000)
    plots.count_predictions({"points": y}, {"points": p}, tmp_path / "cp.png")
    fig = figures[0]
    ax = fig.axes[0]
    assert len(fig.axes) == 2  # the panel and its colorbar
    assert ax.get_xlim()[0] >= y.min() - 0.5 and ax.get_ylim()[0] >= p.min() - 0.5  # fitted, not from 0
    assert ax.get_ylim()[1] < y.max()  # the predictions' own range
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert "10" in labels and "30" in labels
    assert "RMSE log1p" in fig.get_suptitle() and "Spearman" in fig.get_suptitle()  # one panel: one title
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["diagonal", "median prediction"]
    mx, my = plots.binned_medians(y, p)
    assert len(mx) >= 5 and np.all(np.diff(mx) > 0)


def test_one_panel_has_one_title(tmp_path, figures):
    y, p = _rare(2000)
    plots.pr_curves({"click": y}, {"click": p}, tmp_path / "pr.png")
    plots.calibration_curves({"click": y, "other": y}, {"click": p, "other": p}, tmp_path / "c.png")
    one, two = figures
    click = plots.positives_title("click", y)
    assert one.axes[0].get_title() == "" and one.get_suptitle() == f"Precision-recall (validation)\n{click}"
    assert [ax.get_title() for ax in two.axes[:2]] == [click, plots.positives_title("other", y)]
    assert "click" not in two.get_suptitle()


def test_write_all_passes_baselines_and_oracle(tmp_path, run):
    labels, preds, boosters, histories, best = run
    oracle = {"like": np.asarray(preds["like"]) * 0.9}
    written = plots.write_all(tmp_path, labels, preds, boosters, histories, best,
                              baselines={"like": {"log_loss": 0.7}}, oracle=oracle)
    assert set(written) == {"pr_curves", "calibration", "feature_importance", "learning_curves"}
    for rel in written.values():
        _assert_png(tmp_path / rel)


def test_binary_panels_say_how_few_positives_their_curves_rest_on(tmp_path, figures):
    # the demo's quote: 13 positives in 2,143 validation rows, 15 calibration bins of ~1 positive each; the
    # panels said neither, and the bins' rates (0, 0.007, 0.014) read as miscalibration
    rng = np.random.default_rng(4)
    p = rng.uniform(0.002, 0.012, 2143)
    y = np.zeros(2143)
    y[rng.choice(2143, 13, replace=False)] = 1.0
    plots.pr_curves({"quote": y, "like": (p > 0.007).astype(float)}, {"quote": p, "like": p}, tmp_path / "pr.png")
    plots.calibration_curves({"quote": y, "like": y}, {"quote": p, "like": p}, tmp_path / "c.png")
    for fig in figures:
        assert fig.axes[0].get_title() == "quote (13 positives in 2,143 rows)"
    ax = figures[1].axes[0]
    assert "95% interval of the bin's rate" in [t.get_text() for t in ax.get_legend().get_texts()]
    # a bin of ~143 rows and at most a few positives: its interval reaches from 0 past the diagonal
    low, high = plots.wilson_interval(np.array([0.0, 1 / 143]), np.array([143, 143]))
    assert low[0] == 0.0 and 0.0 < low[1] < 1 / 143 < 0.026 < high[0] < high[1] < 0.05
    assert plots.positives_title("t", np.array([0.0, 1.0])) == "t (1 positive in 2 rows)"


def test_learning_curve_legends_leave_the_curves_and_the_baseline_visible(tmp_path, figures):
    # HN comments: the legend, inside the panel (loc="best"), hid the constant baseline's dotted line
    valid = list(1.16 + 0.01 * (np.arange(70) / 20.0 - 1.0) ** 2)
    train = list(1.19 - 0.06 * np.arange(70) / 70)
    plots.learning_curves({"comments": {"rmse": valid}}, {"comments": 19}, tmp_path / "lc.png",
                          baselines={"comments": {"rmse_log1p": 1.1751}}, log1p={"comments"}, train={"comments": {"rmse": train}})
    fig = figures[0]
    fig.canvas.draw()
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    legend, panel = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
    assert legend.y1 <= panel.y0  # under the panel, covering no line


def _ranked(n_groups: int = 60, size: int = 12, seed: int = 5):
    """Groups of ``size`` rows (one without a positive) scored by a model, a constant and a noisier baseline."""
    from rapids_engage.evaluate import RankedRows

    rng = np.random.default_rng(seed)
    n = n_groups * size
    groups = np.repeat(np.arange(n_groups), size)
    y = (rng.random(n) < 0.2).astype(float)
    y[groups == 0] = 0.0
    model = np.round(y + rng.normal(0, 0.8, n), 1)  # ties within groups: ordered by the tie-break
    scores = {"model": model, "constant": np.full(n, 0.2), "popularity": rng.integers(0, 3, n).astype(float)}
    return RankedRows(y, groups, rng.permutation(n), scores)


def test_ranking_panel_curves_end_at_the_report_s_map_and_ndcg(tmp_path, figures):
    """The ranking plot draws, per scorer, NDCG@k (solid) and MAP@k (dashed) for k = 1..10 whose k=10 points are
    ranking_report's map@10 / ndcg@10 with the same tie-break; the groups averaged in the title; the legend below."""
    from rapids_engage.metrics import ranking_report

    rows = _ranked()
    plots.ranking_curves({"click": rows}, tmp_path / "r.png")
    fig = figures[0]
    ax = fig.axes[0]
    assert "click (59 groups with a positive)" in fig.get_suptitle()
    assert ax.get_xlabel().startswith("k") and ax.get_ylabel()
    lines = [line for line in ax.get_lines() if len(line.get_xdata())]
    assert len(lines) == 2 * len(rows.scores)  # NDCG@k and MAP@k of each scorer
    for (name, s), ndcg, map_ in zip(rows.scores.items(), lines[::2], lines[1::2]):
        report = ranking_report(rows.labels, s, rows.groups, k=10, tiebreak=rows.ties)
        assert list(ndcg.get_xdata()) == list(range(1, 11)) and ndcg.get_linestyle() == "-" and map_.get_linestyle() == "--"
        assert ndcg.get_ydata()[-1] == pytest.approx(report["ndcg@10"], abs=1e-12)
        assert map_.get_ydata()[-1] == pytest.approx(report["map@10"], abs=1e-12)
        assert ndcg.get_ydata()[0] == pytest.approx(map_.get_ydata()[0])  # both precision@1 at k = 1
        assert f"NDCG@10 {report['ndcg@10']:.4f}, MAP@10 {report['map@10']:.4f}" in ndcg.get_label()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert ax.get_legend().get_window_extent(renderer).y1 <= ax.get_window_extent(renderer).y0


def test_ranking_panel_bands_the_model_s_curves_with_the_bootstrap_interval(tmp_path, figures):
    """The model's NDCG@k and MAP@k curves (not the baselines') have a band in their colour: ranking_at_every_k's 95%
    bootstrap interval over the groups (plots.BAND_RESAMPLES resamples, seeded), named in the legend."""
    from rapids_engage.metrics import ranking_at_every_k

    rows = _ranked(size=6)
    plots.ranking_curves({"click": rows}, tmp_path / "r.png")
    ax = figures[0].axes[0]
    bands = [c for c in ax.collections if len(c.get_paths())]
    assert len(bands) == 2
    want = ranking_at_every_k(rows.labels, rows.scores["model"], rows.groups, 10, tiebreak=rows.ties,
                              resamples=plots.BAND_RESAMPLES, seed=plots.BAND_SEED)
    model = ax.get_lines()[0]
    for band, key in zip(bands, ("ndcg_band", "map_band")):
        low, high = want[key]
        xy = band.get_paths()[0].vertices
        assert set(np.round(xy[:, 0], 9)) == {1, 2, 3, 4, 5, 6}  # up to the largest group, as the curves
        assert xy[:, 1].min() == pytest.approx(min(low[:6])) and xy[:, 1].max() == pytest.approx(max(high[:6]))
        assert tuple(band.get_facecolor()[0][:3]) == pytest.approx(matplotlib.colors.to_rgb(model.get_color()))
        assert min(low[:6]) < max(high[:6])
    assert "model: 95% band (bootstrap over groups)" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_ranking_curves_stop_at_the_largest_group_and_say_when_no_group_has_a_positive(tmp_path, figures):
    small, empty = _ranked(size=4), _ranked(n_groups=3, size=5)
    empty = type(empty)(np.zeros(15), empty.groups, empty.ties, empty.scores)
    plots.ranking_curves({"click": small, "none": empty}, tmp_path / "r.png")
    first, second = figures[0].axes[:2]
    assert all(list(line.get_xdata()) == [1, 2, 3, 4] for line in first.get_lines() if len(line.get_xdata()))
    assert "MAP@4" in first.get_lines()[0].get_label()
    assert second.get_title() == "none (0 groups with a positive)"
    assert [t.get_text() for t in second.texts] == ["no group with a positive"]


def test_write_all_draws_the_ranking_plot_only_for_targets_ranked_within_groups(tmp_path):
    assert plots.write_all(tmp_path, {}, {}, ranked={"click": _ranked()}) == {"ranking": "plots/ranking.png"}
    _assert_png(tmp_path / "plots" / "ranking.png")
    assert plots.write_all(tmp_path / "ungrouped", {}, {}, ranked={}) == {}
    assert not (tmp_path / "ungrouped" / "plots").exists()
