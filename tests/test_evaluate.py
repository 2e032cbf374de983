"""evaluate.py's pieces on small frames: the synthetic oracle's truth, count and ranking reports, the gathered
columns and the ranking tie-break."""

from __future__ import annotations

import datetime as dt

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from rapids_engage.evaluate import evaluate_targets, gather, oracle_probabilities, score, tiebreak
from rapids_engage.layout import Layout, Target
from rapids_engage.metrics import RowError, average_precision, grouped_by_quantile

DAY = 86_400
T0 = 1_600_041_600  # 2020-09-14 00:00 UTC


def _truth(tmp_path, days: dict[int, list[int]]):
    """day offset -> ids: truth files day=YYYY-MM-DD/part.parquet with p_like = id / 100."""
    for offset, ids in days.items():
        d = tmp_path / "truth" / f"day={dt.datetime.fromtimestamp(T0 + offset * DAY, dt.timezone.utc):%Y-%m-%d}"
        d.mkdir(parents=True)
        pd.DataFrame({"id": ids, "p_like": np.array(ids) / 100}).to_parquet(d / "part.parquet")
    return tmp_path / "truth"


def test_the_oracle_reads_the_truth_from_the_cutoff_s_day_on(tmp_path):
    """The cut-off falls within a day: that day's truth holds the first validation rows (a day later, no oracle)."""
    truth = _truth(tmp_path, {0: [1, 2], 1: [3, 4], 2: [5, 6]})
    got = oracle_probabilities(truth, np.array([6, 3, 4, 5]), T0 + DAY + 3600, ["like"], "id")
    assert got["id"].tolist() == [6, 3, 4, 5] and got["p_like"].tolist() == [0.06, 0.03, 0.04, 0.05]
    assert oracle_probabilities(truth, np.array([3, 5]), T0 + DAY, ["like"], "id") is not None


def test_no_oracle_when_the_truth_misses_a_validation_row(tmp_path):
    """Not an oracle of the other rows, misaligned with the predictions."""
    truth = _truth(tmp_path, {0: [1, 2], 1: [3, 4]})
    assert oracle_probabilities(truth, np.array([3, 9, 4]), T0 + 3600, ["like"], "id") is None
    assert oracle_probabilities(truth, np.array([3, 4]), T0 + 3600, ["like"], None) is None
    assert oracle_probabilities(tmp_path / "nowhere", np.array([3, 4]), T0 + 3600, ["like"], "id") is None
    assert oracle_probabilities(truth, np.array([3, 4]), T0 + 5 * DAY, ["like"], "id") is None  # no truth that late


def test_a_count_report_is_of_the_counts_with_negative_predictions_as_zero():
    """Count labels and predictions are log1p counts; a prediction below 0 (a count below 0) is taken as 0."""
    layout = Layout("table", ("row_id",), "t", (Target("n", "n", "count"),))
    counts = np.array([0.0, 1.0, 3.0, 8.0])
    frame = pd.DataFrame({"row_id": range(4), "t": 0, "n": np.log1p(counts)})
    got = score(frame, layout, "n", np.log1p(np.array([1.0, 1.0, 3.0, 7.0])) - np.array([1.5, 0, 0, 0]))
    assert got["kind"] == "count" and got["mean"] == pytest.approx(3.0)
    assert got["mean_pred"] == pytest.approx((0 + 1 + 3 + 7) / 4)
    assert got["mae"] == pytest.approx(0.25)


def test_evaluate_gives_a_ranking_target_s_scores_rank_metrics_only():
    """``scores``: targets whose predictions are a ranking model's scores, labelled rows or not."""
    layout = Layout("table", ("row_id",), "t", (Target("click", "click", "binary"),), group="imp")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"row_id": np.arange(60), "t": 0, "imp": np.repeat(np.arange(6), 10),
                          "click": (rng.random(60) < 0.4).astype(float)})
    scores = {"click": rng.normal(0, 3, 60)}
    for rows in (frame, frame.assign(click=frame["click"].mask(frame.index % 5 == 0))):
        got = evaluate_targets(rows, scores, ["click"], layout, None, ("click",))["click"]
        assert got["rce"] is None and got["log_loss"] is None and got["map@10"] is not None
        assert got["rce_chance"] is None and got["rce_chance_se"] is None  # RCE's chance level of rescaled scores: none


def test_gather_keeps_the_extra_columns():
    layout = Layout("table", ("row_id",), "t", (Target("like", "like", "binary"),))
    valid = dd.from_pandas(pd.DataFrame({"row_id": range(6), "t": 0, "like": [0, 1] * 3, "te_x": np.arange(6) / 10,
                                         "other": 1}), npartitions=2)
    frame, preds = gather(None, valid, {"like": valid["te_x"]}, ["like"], layout, ["te_x"])
    assert list(frame.columns) == ["row_id", "t", "like", "te_x"] and preds["like"].tolist() == frame["te_x"].tolist()


def test_the_ranking_tiebreak_is_a_hash_of_the_row_key_whatever_the_row_order():
    grouped = Layout("table", ("row_id",), "t", (Target("click", "click", "binary"),), group="imp")
    frame = pd.DataFrame({"row_id": np.arange(50) * 7, "t": 0, "imp": np.repeat(np.arange(5), 10), "click": 0.0})
    ties = tiebreak(frame, grouped)
    assert ties is not None and len(np.unique(ties)) == 50
    order = np.random.default_rng(0).permutation(50)
    assert (tiebreak(frame.iloc[order], grouped) == ties[order]).all()
    assert tiebreak(frame, Layout("table", ("row_id",), "t", (Target("click", "click", "binary"),))) is None


def test_a_ranking_model_s_scores_leave_out_the_grouped_rce_and_group_ap_by_popularity():
    """With a popularity column: AP / RCE grouped by its quantiles; a ranking model's scores keep the AP only."""
    layout = Layout("table", ("row_id",), "t", (Target("click", "click", "binary"),), popularity="followers")
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"row_id": np.arange(200), "t": 0, "followers": rng.integers(0, 1000, 200),
                          "click": (rng.random(200) < 0.3).astype(float)})
    p = rng.uniform(0.05, 0.95, 200)
    got = score(frame, layout, "click", p)
    want = grouped_by_quantile(average_precision, frame["click"].to_numpy(), p, frame["followers"].to_numpy(float))
    assert got["ap_grouped"] == pytest.approx(want["mean"]) and got["rce_grouped"] is not None
    scores = score(frame, layout, "click", np.log(p / (1 - p)) * 40, probabilities=False)
    assert scores["rce_grouped"] is None and scores["ap_grouped"] == pytest.approx(got["ap_grouped"])


def test_unlabelled_rows_keep_their_ranking_tiebreak():
    """Rows left out for a missing label: the others' tied scores are ordered by their own row keys' hash."""
    layout = Layout("table", ("row_id",), "t", (Target("click", "click", "binary"),), group="imp")
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"row_id": np.arange(80) * 3, "t": 0, "imp": np.repeat(np.arange(8), 10),
                          "click": (rng.random(80) < 0.3).astype(float)})
    partial = frame.assign(click=frame["click"].mask(np.arange(80) % 3 == 0))
    known = partial["click"].notna().to_numpy()
    pred = np.full(80, 0.5)  # every score tied: the tie-break alone ranks
    got = evaluate_targets(partial, {"click": pred}, ["click"], layout, None)["click"]
    want = score(frame[known].reset_index(drop=True), layout, "click", pred[known])
    assert got["map@10"] == pytest.approx(want["map@10"]) and got["mrr"] == pytest.approx(want["mrr"])


def test_a_bad_value_among_unlabelled_rows_names_the_caller_s_row():
    """Rows without a label are left out first: a NaN prediction at row 40 of the frame given was named by its place
    among the labelled rows (row 26); the error names the frame's row, for a binary and a count target."""
    layout = Layout("table", ("row_id",), "t", (Target("click", "click", "binary"), Target("n", "n", "count")))
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"row_id": np.arange(80), "t": 0, "click": (rng.random(80) < 0.3).astype(float),
                          "n": np.log1p(rng.integers(0, 5, 80)).astype(float)})
    unlabelled = np.arange(80) % 3 == 0
    frame = frame.assign(click=frame["click"].mask(unlabelled), n=frame["n"].mask(unlabelled))
    for target in ("click", "n"):
        pred = rng.uniform(0.05, 0.95, 80)
        pred[40] = np.nan
        with pytest.raises(RowError) as raised:
            evaluate_targets(frame, {target: pred}, [target], layout, None)
        assert raised.value.row == 40 and str(raised.value).startswith("p has 1 NaN or infinite value(s), the first at row 40 ")
        assert f"(target {target}: the row among the 80 given, of which the 27 without a label" in str(raised.value)


def test_the_oracle_scores_the_binary_targets_only(tmp_path):
    """The truth holds probabilities of the binary targets: their oracle RCE / AP, none for a count target."""
    layout = Layout("table", ("row_id",), "t", (Target("like", "like", "binary"), Target("n", "n", "count")))
    rng = np.random.default_rng(3)
    p_true = rng.uniform(0.05, 0.95, 100)
    frame = pd.DataFrame({"row_id": np.arange(100), "t": 0, "like": (rng.random(100) < p_true).astype(float),
                          "n": np.log1p(rng.integers(0, 5, 100))})
    truth = pd.DataFrame({"row_id": np.arange(100), "p_like": p_true})
    got = evaluate_targets(frame, {"like": p_true, "n": frame["n"].to_numpy()}, ["like", "n"], layout, truth)
    assert got["like"]["oracle_rce"] == pytest.approx(got["like"]["rce"])
    assert got["like"]["oracle_ap"] == pytest.approx(average_precision(frame["like"].to_numpy(), p_true))
    assert "oracle_rce" not in got["n"] and "oracle_ap" not in got["n"]


def test_the_oracle_leaves_out_the_unlabelled_rows_as_the_model_s_metrics_do():
    """A row without a label has no place in the oracle's RCE / AP either (it made them fail on its NaN label)."""
    layout = Layout("table", ("row_id",), "t", (Target("like", "like", "binary"),))
    rng = np.random.default_rng(4)
    p_true = rng.uniform(0.05, 0.95, 100)
    y = (rng.random(100) < p_true).astype(float)
    frame = pd.DataFrame({"row_id": np.arange(100), "t": 0, "like": np.where(np.arange(100) % 7 == 0, np.nan, y)})
    truth = pd.DataFrame({"row_id": np.arange(100), "p_like": p_true})
    got = evaluate_targets(frame, {"like": p_true}, ["like"], layout, truth)["like"]
    known = np.arange(100) % 7 != 0
    assert got["unlabelled_rows"] == 15 and got["oracle_rce"] == pytest.approx(got["rce"])
    assert got["oracle_ap"] == pytest.approx(average_precision(y[known], p_true[known]))


def test_ranked_rows_are_the_labelled_rows_of_binary_targets_in_groups():
    """The ranking plot's rows: each binary target's labelled rows, their groups, hash tie-break and the model's and
    baselines' scores aligned with them; none for count targets or without a group."""
    from rapids_engage.baselines import Scores
    from rapids_engage.evaluate import ranked_rows

    layout = Layout("table", ("row_id",), "t", (Target("click", "click", "binary"), Target("n", "n", "count")), group="imp")
    frame = pd.DataFrame({"row_id": range(5), "t": 0, "imp": [1, 1, 1, 2, 2], "click": [1.0, None, 0.0, 0.0, 1.0], "n": 0.0})
    preds = {"click": np.array([0.1, 0.2, 0.3, 0.4, 0.5]), "n": np.zeros(5)}
    got = ranked_rows(frame, layout, preds, {"click": {"constant": Scores(np.arange(5.0))}, "n": {"constant": Scores(np.zeros(5))}})
    assert set(got) == {"click"}
    rows = got["click"]
    assert list(rows.labels) == [1.0, 0.0, 0.0, 1.0] and list(rows.groups) == [1, 1, 2, 2]
    assert list(rows.ties) == list(tiebreak(frame, layout)[[0, 2, 3, 4]])
    assert {k: list(v) for k, v in rows.scores.items()} == {"model": [0.1, 0.3, 0.4, 0.5], "constant": [0.0, 2.0, 3.0, 4.0]}
    assert ranked_rows(frame, Layout("table", ("row_id",), "t", layout.targets), preds, {}) == {}
