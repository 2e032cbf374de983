"""The audit's split checks on hand-made splits: time order, overlap, repeated row keys."""

from __future__ import annotations

import pandas as pd
import pytest

from rapids_engage.audit import split_checks
from rapids_engage.layout import RECSYS


def _audit_runs_faked(monkeypatch, fake_run) -> None:
    """The audit's runs replaced by ``fake_run`` (``pipeline.run``'s signature), its cluster and store checks by none."""
    import contextlib

    import rapids_engage.audit as audit
    import rapids_engage.cluster as cluster
    import rapids_engage.pipeline as pipeline

    monkeypatch.setattr(pipeline, "run", fake_run)
    monkeypatch.setattr(cluster, "start_cluster", lambda *a, **k: contextlib.nullcontext())
    monkeypatch.setattr(audit, "split_checks", lambda *a, **k: [])
    monkeypatch.setattr(audit, "time_travel_checks", lambda *a, **k: [])
    monkeypatch.setattr(audit, "out_of_fold_checks", lambda *a, **k: [])
    monkeypatch.setattr(audit, "real_version_held", lambda real, out, log=None: contextlib.nullcontext(out / "store"))


def _write(store, split, rows):
    (store / split).mkdir(parents=True)
    frame = pd.DataFrame(rows, columns=["tweet_id", "engaging_user_id", RECSYS.time])
    # two files: a repeat may sit in another file than its first row
    frame.iloc[: len(frame) // 2].to_parquet(store / split / "part.0.parquet")
    frame.iloc[len(frame) // 2:].to_parquet(store / split / "part.1.parquet")


def test_repeated_row_keys_are_counted_per_split(tmp_path):
    """Copies of a row key share a fold under every fold method (the fold key keeps them together): they pass."""
    _write(tmp_path, "train", [(1, 1, 10), (2, 1, 11), (1, 1, 12), (3, 2, 13), (1, 1, 14), (2, 2, 15)])
    _write(tmp_path, "valid", [(7, 1, 30), (8, 1, 31), (8, 1, 32), (9, 9, 33)])
    checks = {c["check"]: c for c in split_checks(tmp_path, 20, RECSYS)}
    keys = checks["row keys unique"]
    assert keys["passed"]
    assert keys["detail"] == ("2 training and 1 validation row(s) repeat a row key (tweet_id, engaging_user_id); their "
                              "copies share a fold, so no label crosses folds, but they count twice")
    assert checks["time order"]["passed"] and checks["train/valid overlap"]["passed"]


def test_unique_row_keys_pass(tmp_path):
    _write(tmp_path, "train", [(1, 1, 10), (1, 2, 11), (2, 1, 12), (2, 2, 13)])
    _write(tmp_path, "valid", [(1, 1, 30), (5, 5, 31)])  # (1, 1) in both: the overlap check's business
    checks = {c["check"]: c for c in split_checks(tmp_path, 20, RECSYS)}
    assert checks["row keys unique"]["passed"]
    assert checks["row keys unique"]["detail"].startswith("0 training and 0 validation")
    assert not checks["train/valid overlap"]["passed"] and checks["train/valid overlap"]["detail"] == "1 row key(s) in both"


def test_audit_passes_rebuild_and_its_command_line_to_both_runs(tmp_path, monkeypatch):
    """``audit --rebuild`` recomputes the features of both runs (it was parsed and ignored: both runs were
    cache hits), and both runs' report.json / report.md name the audit's command (``run.command`` was null)."""
    import rapids_engage.pipeline as pipeline

    calls = []

    def fake_run(cfg, **kwargs):
        calls.append(kwargs)
        return {"targets": {"like": {"kind": "binary", "rce": 0.0 if kwargs.get("shuffle_seed") is not None else 9.0}},
                "store": {"path": str(tmp_path), "version": "v"}, "split": {"cutoff": 0}, "layout": RECSYS.to_dict()}

    _audit_runs_faked(monkeypatch, fake_run)
    argv = ["audit", "--gpus", "0", "--out", str(tmp_path / "out"), "--rows", "1000", "--rebuild", "--quiet"]
    assert pipeline.main(argv) == 0
    assert [c.get("shuffle_seed") is not None for c in calls] == [False, True]
    assert all(c["rebuild"] for c in calls)
    assert all(c["command"] == "python -m rapids_engage.pipeline " + " ".join(argv) for c in calls)



def test_the_shuffled_run_boosts_the_real_models_rounds_without_early_stopping(tmp_path, monkeypatch):
    """The shuffled-label run was early-stopped on the (real) validation labels: a model of noise kept the rounds
    in which its noise happened to rank the validation rows, and the 300k shop log's audit failed (RCE up to 5.6 by
    seed). It boosts each target for the real model's rounds (best_iteration + 1), no early stopping: it sees no
    validation label."""
    import rapids_engage.pipeline as pipeline

    trains = []

    def fake_run(cfg, **kwargs):
        trains.append(cfg.train)
        best = {"like": 33, "reply": 0, "retweet": None}
        return {"targets": {t: {"kind": "binary", "rce": 0.0 if kwargs.get("shuffle_seed") is not None else 9.0,
                                "best_iteration": best.get(t, 5)} for t in cfg.train.targets},
                "store": {"path": str(tmp_path), "version": "v"}, "split": {"cutoff": 0}, "layout": RECSYS.to_dict()}

    _audit_runs_faked(monkeypatch, fake_run)
    argv = ["audit", "--gpus", "0", "--out", str(tmp_path / "out"), "--rows", "1000", "--quiet",
            "--set", "train.targets=[like, reply, retweet]", "--set", "train.per_target.reply.early_stopping_rounds=9"]
    assert pipeline.main(argv) == 0
    real, control = trains
    assert real.early_stopping_rounds > 0 and real.per_target == {"reply": {"early_stopping_rounds": 9}}
    assert control.early_stopping_rounds == 0
    assert control.per_target == {"like": {"num_boost_round": 34, "early_stopping_rounds": 0},
                                  "reply": {"num_boost_round": 1, "early_stopping_rounds": 0},
                                  "retweet": {"early_stopping_rounds": 0}}  # no best_iteration: its rounds as set


def test_a_target_without_validation_positives_is_inconclusive_not_a_fail():
    """A rare target with no positive in the validation window has no RCE (NaN): the audit said
    'FAIL: validation RCE nan with shuffled training labels (real labels: nan)' and exited 1, showing no leak."""
    from rapids_engage.audit import shuffled_check

    nan = float("nan")
    real = {"kind": "binary", "rce": nan, "auc": nan, "n": 39, "positive_rate": 0.0}
    check = shuffled_check("quote", {"kind": "binary", "rce": nan, "auc": nan}, real)
    assert check["passed"] and check["inconclusive"] and check["check"] == "shuffled labels: quote RCE <= 0.5"
    assert "RCE undefined: the validation labels are all one class on 39 validation rows (0 positives)" in check["detail"]
    ranking = shuffled_check("click", {"rce": None, "auc": nan, "group_auc": nan}, {"rce": None, "auc": nan, "group_auc": nan})
    assert ranking["passed"] and ranking["inconclusive"] and ranking["check"] == "shuffled labels: click within-group AUC <= 0.55"
    assert ranking["detail"].startswith("validation within-group AUC undefined: no group holds both a positive and a negative row")


def test_a_ranking_model_is_audited_on_its_within_group_auc():
    """A rank:* model's scores order a group's rows and are not comparable across groups: the check read their pooled
    AUC (MIND's real-label model: 0.468, while it ranks within impressions), so it was always inconclusive and
    passed a shuffled run with skill within the groups. It reads the within-group AUC (metrics.group_auc) now."""
    from rapids_engage.audit import shuffled_check

    real = {"kind": "binary", "rce": None, "auc": 0.468, "group_auc": 0.62, "n": 39_375, "positive_rate": 0.0378, "n_groups": 968}
    sound = shuffled_check("click", {"kind": "binary", "rce": None, "auc": 0.47, "group_auc": 0.503}, real)
    assert sound["passed"] and "inconclusive" not in sound, sound
    assert sound["check"] == "shuffled labels: click within-group AUC <= 0.55"
    assert sound["detail"] == ("validation within-group AUC 0.503 with shuffled labels (real labels: 0.620) on 39,375 "
                               "validation rows (1,488 positives), 968 groups with a positive")
    leak = shuffled_check("click", {"kind": "binary", "rce": None, "auc": 0.45, "group_auc": 0.6}, real)  # pooled: no skill
    assert not leak["passed"] and "inconclusive" not in leak, leak
    weak = shuffled_check("click", {"rce": None, "auc": 0.6, "group_auc": 0.54}, real | {"auc": 0.7, "group_auc": 0.53})
    assert weak["passed"] and weak["inconclusive"] and "inconclusive: the real-label model" in weak["detail"]


def test_repeated_row_keys_in_other_groups_fail_as_folds_keep_the_group(tmp_path):
    """A grouped table's folds keep its group together (``Layout.fold_key``): copies of a row key in two groups may lie
    in different folds, where one's label encodes the other's. The check said "their copies share a hash fold" and passed."""
    from dataclasses import replace

    from rapids_engage.layout import Layout

    layout = replace(Layout.from_dict(RECSYS.to_dict()), kind="table", row_key=("row_id",), group="impression_id")
    for split, rows in (("train", [(1, 10, 10), (1, 10, 11), (2, 10, 12), (2, 11, 13), (3, 12, 14), (2, 13, 15)]),
                        ("valid", [(7, 20, 30), (8, 21, 31)])):
        (tmp_path / split).mkdir(parents=True)
        pd.DataFrame(rows, columns=["row_id", "impression_id", layout.time]).to_parquet(tmp_path / split / "part.0.parquet")
    keys = {c["check"]: c for c in split_checks(tmp_path, 20, layout)}["row keys unique"]
    assert not keys["passed"], keys
    assert keys["detail"].startswith("3 training and 0 validation row(s) repeat a row key (row_id); 2 of them in "
                                     "another impression_id than the key's first"), keys["detail"]
    assert "share a fold" not in keys["detail"]
    same_group = tmp_path / "same"
    for split, rows in (("train", [(1, 10, 10), (1, 10, 11), (2, 11, 12)]), ("valid", [(7, 20, 30)])):
        (same_group / split).mkdir(parents=True)
        pd.DataFrame(rows, columns=["row_id", "impression_id", layout.time]).to_parquet(same_group / split / "part.0.parquet")
    keys = {c["check"]: c for c in split_checks(same_group, 20, layout)}["row keys unique"]
    assert keys["passed"] and "share a fold" in keys["detail"], keys


@pytest.mark.parametrize(("train_last", "valid_first", "passed"), [(20, 21, True), (21, 22, False), (19, 20, False)])
def test_time_order_puts_a_row_at_the_cutoff_in_training(tmp_path, train_last, valid_first, passed):
    """As the split makes them: training rows have time <= cutoff < validation rows (cut-off 20 here)."""
    _write(tmp_path, "train", [(1, 1, 10), (2, 1, train_last)])
    _write(tmp_path, "valid", [(3, 1, valid_first), (4, 1, 40)])
    check = {c["check"]: c for c in split_checks(tmp_path, 20, RECSYS)}["time order"]
    assert check["passed"] is passed
    assert check["detail"].startswith("last training event 1970-01-01 00:00") and "<= cut-off 1970-01-01 00:00" in check["detail"]


@pytest.mark.parametrize(("train_last", "passed"), [(15, True), (16, False)])
def test_time_order_with_a_gap_ends_training_at_the_cut_off_less_the_gap(tmp_path, train_last, passed):
    """split.gap_hours: a training row in the gap (cut-off 20, training end 15) fails, though before the cut-off."""
    _write(tmp_path, "train", [(1, 1, 10), (2, 1, train_last)])
    _write(tmp_path, "valid", [(3, 1, 21), (4, 1, 40)])
    check = {c["check"]: c for c in split_checks(tmp_path, 20, RECSYS, train_end=15)}["time order"]
    assert check["passed"] is passed
    assert "<= training end 1970-01-01 00:00 UTC (the cut-off less split.gap_hours) < cut-off 1970-01-01" in check["detail"]


def test_unique_row_keys_say_nothing_of_copies(tmp_path):
    _write(tmp_path, "train", [(1, 1, 10), (1, 2, 11)])
    _write(tmp_path, "valid", [(5, 5, 31), (6, 5, 32)])
    keys = {c["check"]: c for c in split_checks(tmp_path, 20, RECSYS)}["row keys unique"]
    assert keys == {"check": "row keys unique", "passed": True,
                    "detail": "0 training and 0 validation row(s) repeat a row key (tweet_id, engaging_user_id)"}


def test_overlap_counts_row_keys_not_pairs_of_their_copies(tmp_path):
    """A key twice in training and twice in validation is one row key in both: the detail said '4 row key(s) in
    both' (the rows of the join of the two splits' keys, copies times copies)."""
    _write(tmp_path, "train", [(1, 1, 10), (1, 1, 11), (2, 1, 12), (3, 1, 13)])
    _write(tmp_path, "valid", [(1, 1, 30), (1, 1, 31), (2, 1, 32), (9, 9, 33)])
    overlap = {c["check"]: c for c in split_checks(tmp_path, 20, RECSYS)}["train/valid overlap"]
    assert overlap == {"check": "train/valid overlap", "passed": False, "detail": "2 row key(s) in both"}


def test_count_and_ranking_checks_are_inconclusive_without_real_skill():
    """Hacker News points: the real-label model's RMSE(log1p) 1.1314 vs the constant's 1.1400 (ratio 0.992) has
    no more skill than the 0.99 bound, yet the audit said a plain 'pass' (and a shuffled run's noise below the bound
    would have been FAIL, exit 1); only the binary RCE check knew 'inconclusive'. The ranking check (within-group
    AUC) likewise."""
    from rapids_engage.audit import shuffled_check

    def count(rmse, const):
        return {"kind": "count", "rmse_log1p": rmse, "baselines": {"constant": {"rmse_log1p": const}}}

    hn = shuffled_check("points", count(1.1394, 1.1400), count(1.1314, 1.1400))
    assert hn["passed"] and hn["inconclusive"] and "inconclusive" in hn["detail"]
    noisy = shuffled_check("points", count(1.1200, 1.1400), count(1.1314, 1.1400))  # ratio 0.982: noise, no skill to leak
    assert noisy["passed"] and noisy["inconclusive"]
    sound = shuffled_check("points", count(1.1394, 1.1400), count(0.9000, 1.1400))
    assert sound["passed"] and "inconclusive" not in sound
    assert not shuffled_check("points", count(1.0000, 1.1400), count(0.9000, 1.1400))["passed"]  # a leak
    rank_weak = shuffled_check("click", {"rce": None, "group_auc": 0.57}, {"rce": None, "group_auc": 0.53})
    assert rank_weak["passed"] and rank_weak["inconclusive"]
    rank_sound = shuffled_check("click", {"rce": None, "group_auc": 0.52}, {"rce": None, "group_auc": 0.67})
    assert rank_sound["passed"] and "inconclusive" not in rank_sound
    assert not shuffled_check("click", {"rce": None, "group_auc": 0.60}, {"rce": None, "group_auc": 0.67})["passed"]


def test_a_raw_count_objective_s_check_compares_rmse_of_counts():
    """For count:poisson / reg:tweedie / reg:gamma the constant baseline predicts the mean count, the best constant on
    counts but not on log1p: the check compared RMSE(log1p), where Hacker News' shuffled tweedie model scored 0.9948 of
    the constant (0.005 from a FAIL without a leak) while on counts it was 0.9999. Such targets compare RMSE of counts."""
    from rapids_engage.audit import shuffled_check

    def count(objective, log1p, const_log1p, rmse, const_rmse):
        return {"kind": "count", "objective": objective, "rmse_log1p": log1p, "rmse": rmse,
                "baselines": {"constant": {"rmse_log1p": const_log1p, "rmse": const_rmse}}}

    shuffled = count("reg:tweedie", 1.1200, 1.1400, 48.130, 48.135)  # log1p ratio 0.982, counts 0.9999
    real = count("reg:tweedie", 1.0000, 1.1400, 40.0, 48.135)
    check = shuffled_check("points", shuffled, real)
    assert check["passed"] and "RMSE >= 0.99" in check["check"] and "48.1300" in check["detail"], check
    assert not shuffled_check("points", count("count:poisson", 1.13, 1.14, 45.0, 48.135), real)["passed"]  # a leak
    squared = shuffled_check("points", count("reg:squarederror", 1.1200, 1.1400, 48.130, 48.135), real)
    assert not squared["passed"] and "RMSE(log1p)" in squared["check"]  # log1p models stay on log1p


def _own_label_spans(original):
    """span_features whose whole-history positives count the event's own label (a planted leak)."""
    def leaky(xp, g, t, n, lab, pos, *args, **kwargs):
        out = original(xp, g, t, n, lab, pos, *args, **kwargs)
        return out | {target: out[target] + p for target, p in pos.items()}
    return leaky



def _time_travel_check(tmp_path, copies: int = 0, label_time: str = "event", broadcast_limit: int | None = None) -> dict:
    """The time-travel check of 600 synthetic events (``copies``: of the first rows, the same row key an hour
    later), its store's training rows computed by ``history_features`` as a run's (``label_time``: the history's)."""
    import dask

    from rapids_engage.audit import time_travel_checks
    from rapids_engage.config import load_config
    from rapids_engage.data import read_events
    from rapids_engage.features import add_labels
    from rapids_engage.features.configured_encoders import history_encoder
    from rapids_engage.features.key_columns import with_key_columns
    from rapids_engage.features.label_times import engagement_times
    from rapids_engage.features.history import history_features
    from rapids_engage.synthetic import SyntheticSpec, generate

    generate(tmp_path, SyntheticSpec(rows=600, days=2, seed=3))
    if copies:
        first = sorted((tmp_path / "data").rglob("*.parquet"))[0]
        rows = pd.read_parquet(first)
        later = rows.head(copies).assign(**{RECSYS.time: rows[RECSYS.time].head(copies) + 3600})
        pd.concat([rows, later]).to_parquet(first, index=False)
    cfg = load_config()
    cfg.train.targets, cfg.features.history.keys, cfg.features.history.label_time = ["like"], [["engaging_user_id"]], label_time
    if broadcast_limit is not None:
        cfg.features.broadcast_limit = broadcast_limit
    time = RECSYS.time
    with dask.config.set(scheduler="sync"):
        events = with_key_columns(add_labels(read_events(tmp_path / "data"), ["like"]), RECSYS, [["engaging_user_id"]])
        cutoff = int(events[time].max().compute()) - 3600
        engagement = engagement_times(cfg.features.history, RECSYS, ["like"])
        enc = history_encoder(cfg.features.history, ["engaging_user_id"], ["like"], time, engagement=engagement)
        store = history_features(events[events[time] <= cutoff], enc).compute()  # the store's rows, as the run's
        (tmp_path / "store" / "v" / "train").mkdir(parents=True)
        store.to_parquet(tmp_path / "store" / "v" / "train" / "part.0.parquet")
        real = {"layout": RECSYS.to_dict(), "split": {"data_dir": str(tmp_path / "data"), "cutoff": cutoff},
                "store": {"path": str(tmp_path / "store"), "version": "v"}}
        (check,) = time_travel_checks(cfg, real)
    return check


@pytest.mark.parametrize("leak", [False, True])
def test_time_travel_fails_a_history_feature_that_counts_its_own_label(tmp_path, monkeypatch, leak):
    """A history feature that counts the event's own label (the same code in the store and in the check) passed:
    the check recomputed the features up to each cut with the same labels, and the shuffled-label check cannot see a
    leak into training rows only (validation rows see no labels of their window). The labels of each key's last
    events are now flipped there, which no feature of a training row may notice."""
    from rapids_engage.features import history_encoder

    if leak:
        monkeypatch.setattr(history_encoder, "span_features", _own_label_spans(history_encoder.span_features))
    check = _time_travel_check(tmp_path)
    assert check["check"] == "time travel: hist_engaging_user_id unchanged without the future or own labels"
    assert check["passed"] is not leak, check
    assert ("; 0 differ" in check["detail"]) is not leak, check


def test_time_travel_matches_copies_of_a_row_key_by_time(tmp_path):
    """20 row keys repeated an hour later (the row-key check passes them): each copy's features were compared with
    every copy's (a merge on the row key alone), '80 differ', FAIL without a leak; rows are matched by their time too."""
    check = _time_travel_check(tmp_path, copies=20)
    assert check["passed"], check
    assert check["detail"].startswith("984 row comparisons") and check["detail"].endswith("; 0 differ"), check


def test_time_travel_collects_no_rows_onto_one_process(tmp_path, refuse_rows):
    """Issue #3: the store's rows up to each cut and the recomputed history features were computed onto the driver
    (then merged); they are compared partition by partition where they lie, only a row of counts per partition back."""
    import rapids_engage.audit

    refuse_rows(rapids_engage.audit, "time_travel_checks", [*RECSYS.row_key, RECSYS.time])
    check = _time_travel_check(tmp_path, copies=20)
    assert check["passed"] and check["detail"].startswith("984 row comparisons"), check


def test_time_travel_keeps_a_history_state_over_the_broadcast_limit_on_the_cluster(tmp_path, refuse_rows):
    """The recomputed history state (a row per key and event time) was gathered onto the driver whatever its size:
    the check fitted without the feature build's ``broadcast_limit``; over it the state stays partitioned by key."""
    import rapids_engage.audit

    refuse_rows(rapids_engage.audit, "time_travel_checks", ["engaging_user_id", RECSYS.time])
    check = _time_travel_check(tmp_path, copies=20, broadcast_limit=0)
    assert check["passed"] and check["detail"].startswith("984 row comparisons"), check


def test_time_travel_recomputes_history_with_engagement_label_times(tmp_path):
    """With ``label_time: engagement`` the check reads the engagement timestamps too (it stopped on their absence)."""
    check = _time_travel_check(tmp_path, label_time="engagement")
    assert check["passed"] and check["detail"].endswith("; 0 differ"), check


def test_a_ranking_model_s_bound_is_three_standard_errors_of_chance():
    """A fixed 0.55 was looser than MIND's real skill (within-group AUC 0.531 on 968 impressions, where chance moves it
    by 0.0095): every audit of a rank:* model there was inconclusive. The bound is 0.5 + 3 standard errors of a
    scorer without skill on the validation groups (group_auc_se), so MIND's real model shows skill and a shuffled
    model at 0.513 passes; one at 0.54 (more than chance allows) fails; a report without the error keeps 0.55."""
    from rapids_engage.audit import group_auc_bound, shuffled_check

    real = {"rce": None, "group_auc": 0.531, "group_auc_se": 0.0095, "n": 39_375, "positive_rate": 0.0378, "n_groups": 968}
    sound = shuffled_check("click", {"rce": None, "group_auc": 0.513, "group_auc_se": 0.0095}, real)
    assert sound["passed"] and "inconclusive" not in sound, sound
    assert sound["check"] == "shuffled labels: click within-group AUC <= 0.528"
    assert sound["detail"].endswith("; the bound is 0.5 + 3 x 0.0095, the standard error of a scorer without skill on these groups")
    assert not shuffled_check("click", {"rce": None, "group_auc": 0.54, "group_auc_se": 0.0095}, real)["passed"]
    assert group_auc_bound({"group_auc": 0.6}) == 0.55 and group_auc_bound({"group_auc_se": None}) == 0.55


def test_few_positives_raise_the_rce_bound_to_what_chance_gives():
    """A clean run with 5 validation positives failed the fixed 0.5 (quote: shuffled RCE 2.14): chance alone moves RCE
    by several points there. The bound is the larger of 0.5 and the mean + 3 standard errors of RCE with the labels
    permuted (rce_chance, rce_chance_se); on many positives it stays 0.5, and a leak far above chance still fails."""
    from rapids_engage.audit import rce_bound, shuffled_check

    real = {"kind": "binary", "rce": 1.5, "n": 2_143, "positive_rate": 5 / 2_143}
    few = {"kind": "binary", "rce": 2.14, "rce_chance": -9.2, "rce_chance_se": 7.0}
    check = shuffled_check("quote", few, real)
    assert check["passed"] and check["inconclusive"], check  # the real model's 1.5 is within chance too
    assert check["check"] == "shuffled labels: quote RCE <= 11.8" and "the bound is -9.20 + 3 x 7.00" in check["detail"]
    assert not shuffled_check("quote", few | {"rce": 40.0}, real | {"rce": 45.0})["passed"]  # a leak gives both skill
    many = {"kind": "binary", "rce": 0.7, "rce_chance": -4.9, "rce_chance_se": 0.37}
    assert rce_bound(many) == 0.5 and not shuffled_check("like", many, real | {"rce": 17.0})["passed"]
    assert rce_bound({"rce": 0.1}) == 0.5


def _binary_runs(rces, chances=None, ses=None):
    """Shuffled-label reports of one binary target ``buy`` with these RCEs (and chance means / standard errors)."""
    chances, ses = chances or [-0.9] * len(rces), ses or [0.16] * len(rces)
    return [{"targets": {"buy": {"kind": "binary", "rce": r, "rce_chance": c, "rce_chance_se": s}}}
            for r, c, s in zip(rces, chances, ses)]


SHOP_BUY = {"targets": {"buy": {"kind": "binary", "rce": 22.1, "n": 29_580, "positive_rate": 1_648 / 29_580}}}


def test_noise_fitting_that_alternates_across_shuffles_passes_on_their_mean():
    """bench/event_log.py's 300k log, buy, shuffle seeds 0 / 1 / 2 (RCE 0.65 / -1.31 / 1.44, chance -1.16 / -0.70 /
    -0.86 +- 0.17 / 0.14 / 0.16): one shuffle failed 2 of 3 seeds with no leak; the mean of the three passes, its
    bound counting their spread."""
    from rapids_engage.audit import shuffled_checks

    runs = _binary_runs([0.6518, -1.3074, 1.4402], [-1.16, -0.7037, -0.8622], [0.1744, 0.1439, 0.1589])
    assert [shuffled_checks(SHOP_BUY, [r], [s])[0]["passed"] for s, r in enumerate(runs)] == [False, True, False]
    (check,) = shuffled_checks(SHOP_BUY, runs, [0, 1, 2])
    assert check["passed"] and "inconclusive" not in check, check
    assert check["check"] == "shuffled labels: buy mean RCE <= 1.59"
    assert check["detail"].startswith("mean validation RCE 0.262 over 3 shuffles (seeds 0, 1, 2: 0.652 / -1.307 / "
                                      "1.440; spread 1.415) with shuffled training labels (real labels: 22.10)"), check
    assert check["detail"].endswith("; the bound is -0.91 + 3 x 0.83, the standard error of a mean of 3 shuffles: "
                                    "chance on these rows (0.16) with their spread (1.41 / sqrt 3)"), check
    assert check["shuffles"]["values"] == [0.6518, -1.3074, 1.4402] and check["shuffles"]["seeds"] == [0, 1, 2]
    assert check["shuffles"]["spread"] == pytest.approx(1.41476, abs=1e-4)


@pytest.mark.parametrize("n", [3, 5])
def test_a_consistent_small_leak_across_shuffles_fails_on_their_mean(n):
    """A leak gives skill in every shuffle: its spread stays small, so the mean's bound stays near one run's and a
    leak of 1 RCE point fails (noise-fitting did not hide it)."""
    from rapids_engage.audit import shuffled_checks

    rces = [1.0 + (0.05 if i % 2 else -0.05) for i in range(n)]
    (check,) = shuffled_checks(SHOP_BUY, _binary_runs(rces, [-0.5] * n, [0.1] * n), list(range(n)))
    assert not check["passed"] and check["check"] == "shuffled labels: buy mean RCE <= 0.5", check
    # the same mean from noise that spans -3 .. 5 passes: the spread is in the bound
    noisy = [1.0 + (4.0 if i % 2 else -4.0) for i in range(n - 1)] + [1.0]
    assert shuffled_checks(SHOP_BUY, _binary_runs(noisy, [-0.5] * n, [0.1] * n), list(range(n)))[0]["passed"]


@pytest.mark.parametrize("metrics", [
    {"kind": "binary", "rce": 0.7, "rce_chance": -4.9, "rce_chance_se": 0.37},  # many positives: 0.5
    {"kind": "binary", "rce": 2.14, "rce_chance": -9.2, "rce_chance_se": 7.0},  # few: chance's bound
    {"kind": "binary", "rce": float("nan"), "auc": float("nan")},  # one class
    {"rce": None, "group_auc": 0.54, "group_auc_se": 0.0095},
    {"kind": "count", "rmse_log1p": 1.1394, "baselines": {"constant": {"rmse_log1p": 1.1400}}},
])
def test_one_shuffle_is_one_runs_check_exactly(metrics):
    """``--shuffles 1`` checks as the audit did before shuffles were counted: the same check, bound and detail."""
    from rapids_engage.audit import shuffled_check, shuffled_checks

    real = {"kind": "binary", "rce": 17.0, "group_auc": 0.62, "n": 2_143, "positive_rate": 0.01,
            "rmse_log1p": 0.9, "baselines": {"constant": {"rmse_log1p": 1.14}}}
    (check,) = shuffled_checks({"targets": {"t": real}}, [{"targets": {"t": metrics}}], [4])
    assert check.pop("target") == "t" and check.pop("shuffles")["seeds"] == [4]
    assert check == shuffled_check("t", metrics, real)


def test_two_shuffles_keep_one_runs_bound_and_ranking_and_count_checks_read_the_mean():
    """Two shuffles give their spread one degree of freedom: their mean meets one run's bound (from their mean
    chance terms). A ranking model's within-group AUC and a count's RMSE are averaged likewise."""
    from rapids_engage.audit import rce_bound, shuffled_checks

    (two,) = shuffled_checks(SHOP_BUY, _binary_runs([0.6518, -1.3074], [-1.16, -0.70], [0.17, 0.14]), [0, 1])
    assert two["passed"] and two["check"] == "shuffled labels: buy mean RCE <= 0.5"
    assert rce_bound({"rce_chance": -0.93, "rce_chance_se": 0.17}) == 0.5
    real = {"rce": None, "group_auc": 0.531, "group_auc_se": 0.0095}
    ranking = [{"targets": {"click": {"rce": None, "group_auc": a, "group_auc_se": 0.0095}}} for a in (0.54, 0.55, 0.56)]
    (rank,) = shuffled_checks({"targets": {"click": real | {"group_auc": 0.6}}}, ranking, [0, 1, 2])
    se = (0.0095 ** 2 + 0.01 ** 2 / 3) ** 0.5  # the spread of 0.54 / 0.55 / 0.56 is 0.01: their mean 0.55 fails
    assert rank["check"] == f"shuffled labels: click mean within-group AUC <= {0.5 + 3 * se:.3g}" and not rank["passed"]
    assert "standard error of a mean of 3 shuffles: chance on these rows (0.01)" in rank["detail"], rank

    def count(rmse):
        return {"targets": {"points": {"kind": "count", "rmse_log1p": rmse, "baselines": {"constant": {"rmse_log1p": 1.14}}}}}

    (points,) = shuffled_checks(count(0.9), [count(1.10), count(1.14)], [0, 1])  # ratios 0.965, 1.0: mean 0.982
    assert not points["passed"] and points["detail"].startswith("mean RMSE(log1p) 1.1200 vs constant 1.1400 over 2 shuffles")


#: A clean target's shuffled RCE by seed where the noise-fitting dominates: 0.65 fails one run's 0.5, the mean of 3
#: (2.05, spread 1.26: bound -0.9 + 3 x 0.75 = 1.34) fails too, the mean of 5 (0.33) passes.
ESCALATED = {0: 0.65, 1: 3.0, 2: 2.5, 3: -2.0, 4: -2.5}


def _fake_audit(tmp_path, monkeypatch, rce_by_seed):
    """``pipeline.main`` of an audit whose runs are faked: the real run's buy RCE 22, a shuffled run's from its seed."""
    calls = []

    def fake_run(cfg, **kwargs):
        seed = kwargs.get("shuffle_seed")
        calls.append((seed, cfg.out, cfg.features.store))
        rce = 22.0 if seed is None else rce_by_seed[seed]
        return {"targets": {"buy": {"kind": "binary", "rce": rce, "rce_chance": -0.9, "rce_chance_se": 0.16}},
                "store": {"path": str(tmp_path), "version": "v"}, "split": {"cutoff": 0}, "layout": RECSYS.to_dict()}

    _audit_runs_faked(monkeypatch, fake_run)
    return calls


@pytest.mark.parametrize(("argv", "rce_by_seed", "seeds", "code"), [
    ([], {0: 0.1}, [0], 0),  # auto: a pass on one shuffle stops there
    ([], {0: 0.65, 1: -1.31, 2: 1.44}, [0, 1, 2], 0),  # auto: a fail on one: 3, their mean passes
    (["--seed", "7"], {s: 2.0 + (s % 3) / 10 for s in range(7, 17)}, list(range(7, 17)), 1),  # auto: a leak fails at 10
    ([], ESCALATED, [0, 1, 2, 3, 4], 0),  # auto: fails on 1 and on the mean of 3, passes on the mean of 5
    (["--shuffles", "1"], {0: 0.65}, [0], 1),  # today's audit
    (["--shuffles", "3"], ESCALATED, [0, 1, 2], 1),  # an explicit count: no more, whatever the mean
    (["--shuffles", "2", "--seed", "5"], {5: 0.1, 6: 0.2}, [5, 6], 0),
])
def test_audit_shuffles_and_seed_flags(tmp_path, monkeypatch, argv, rce_by_seed, seeds, code):
    """``audit --shuffles N|auto --seed S``: shuffle i uses seed S + i, in shuffled-labels/, shuffled-labels-2/ ...
    (one store); audit.json records each shuffle's RCE and their mean and spread."""
    import json

    import rapids_engage.pipeline as pipeline

    calls = _fake_audit(tmp_path, monkeypatch, rce_by_seed)
    out = tmp_path / "out"
    assert pipeline.main(["audit", "--gpus", "0", "--out", str(out), "--rows", "1000", "--quiet", *argv]) == code
    assert [c[0] for c in calls] == [None, *seeds]
    dirs = [out / "shuffled-labels", *(out / f"shuffled-labels-{i}" for i in range(2, len(seeds) + 1))]
    assert [c[1] for c in calls[1:]] == [str(d) for d in dirs]
    assert {c[2] for c in calls[1:]} == {str(out / "shuffled-labels" / "store")}
    result = json.loads((out / "audit.json").read_text())
    record = result["shuffles"]
    assert record["n"] == len(seeds) and record["seeds"] == seeds and record["auto"] is ("--shuffles" not in argv)
    assert record["runs"] == [str(d) for d in dirs]
    buy = record["targets"]["buy"]
    assert buy["values"] == [rce_by_seed[s] for s in seeds] and buy["mean"] == pytest.approx(sum(buy["values"]) / len(seeds))
    assert (buy["spread"] is None) is (len(seeds) == 1)
    assert all("target" not in c and "shuffles" not in c for c in result["checks"])
    stages = record["stages"]  # each stage's verdict: the last one's is the audit's
    assert [s["n"] for s in stages][-1] == len(seeds) and stages[-1]["passed"] is (code == 0)
    assert all(not s["passed"] and s["targets"] == {"buy": False} for s in stages[:-1])


def test_auto_shuffles_escalate_while_a_check_fails_and_stop_at_the_first_passing_stage(tmp_path, monkeypatch, capsys):
    """``--shuffles auto`` failed a clean audit whenever the mean of 3 did (about 1 in 20 where noise-fitting
    dominates): it adds shuffles (1 -> 3 -> 5 -> 10) while a check fails on the mean of all so far, saying so in a
    line each time, and stops at the first stage that passes; a consistent leak fails at the last."""
    import json

    import rapids_engage.pipeline as pipeline

    calls = _fake_audit(tmp_path, monkeypatch, ESCALATED)
    out = tmp_path / "out"
    assert pipeline.main(["audit", "--gpus", "0", "--out", str(out), "--rows", "1000"]) == 0
    assert [c[0] for c in calls] == [None, 0, 1, 2, 3, 4]
    stages = json.loads((out / "audit.json").read_text())["shuffles"]["stages"]
    assert [(s["n"], s["passed"]) for s in stages] == [(1, False), (3, False), (5, True)]
    log = " ".join("".join(capsys.readouterr()).split())
    assert "failed on one shuffle (buy): 2 more (--shuffles auto: 1 -> 3 -> 5 -> 10), the checks on the mean of 3" in log
    assert "failed on the mean of 3 shuffles (buy): 2 more (--shuffles auto: 1 -> 3 -> 5 -> 10), the checks on the mean of 5" in log
    assert "the mean of 5 shuffles (buy)" not in log


def test_audit_json_names_the_shuffled_runs_by_absolute_paths(tmp_path, monkeypatch):
    """audit.json's ``shuffles.runs`` are absolute, as report.json's paths: with a relative ``--out`` (the default
    is ``<config out>/audit``) they were relative to the directory the audit started in."""
    import json

    import rapids_engage.pipeline as pipeline

    _fake_audit(tmp_path, monkeypatch, {0: 0.65, 1: -1.31, 2: 1.44})
    monkeypatch.chdir(tmp_path)
    assert pipeline.main(["audit", "--gpus", "0", "--out", "out", "--rows", "1000", "--quiet"]) == 0
    runs = json.loads((tmp_path / "out" / "audit.json").read_text())["shuffles"]["runs"]
    assert runs == [str(tmp_path / "out" / d) for d in ("shuffled-labels", "shuffled-labels-2", "shuffled-labels-3")]


def test_an_audit_with_fewer_shuffles_removes_an_earlier_audit_s_extra_runs(tmp_path, monkeypatch):
    """A 3-shuffle audit of an --out, then one that passes on one shuffle: shuffled-labels-2/ and -3/ stayed,
    passing for this audit's runs. They go (only run directories: a stray folder of that name with no run in it
    stays)."""
    import rapids_engage.pipeline as pipeline

    _fake_audit(tmp_path, monkeypatch, {0: 0.1})
    out = tmp_path / "out"
    for i in (2, 3):
        (out / f"shuffled-labels-{i}").mkdir(parents=True)
        (out / f"shuffled-labels-{i}" / "report.json").write_text("{}")
    (out / "shuffled-labels-9").mkdir()  # no run wrote it
    assert pipeline.main(["audit", "--gpus", "0", "--out", str(out), "--rows", "1000", "--quiet"]) == 0
    assert sorted(p.name for p in out.glob("shuffled-labels-*")) == ["shuffled-labels-9"]


def test_an_earlier_audit_s_extra_run_linked_elsewhere_loses_its_link_only(tmp_path, monkeypatch):
    """An extra run directory that is a link (a run moved to another disk): rmtree refused it ('Cannot call rmtree on a
    symbolic link') and the audit died after all its runs, before audit.json. The link goes; what it points to stays."""
    import rapids_engage.pipeline as pipeline

    _fake_audit(tmp_path, monkeypatch, {0: 0.1})
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "report.json").write_text("{}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "shuffled-labels-2").symlink_to(elsewhere, target_is_directory=True)
    assert pipeline.main(["audit", "--gpus", "0", "--out", str(out), "--rows", "1000", "--quiet"]) == 0
    assert not (out / "shuffled-labels-2").exists() and (elsewhere / "report.json").exists()
    assert (out / "audit.json").exists()


def test_audit_shuffles_flags_parse():
    from rapids_engage.pipeline import build_parser

    parser = build_parser("audit")
    args = parser.parse_args([])
    assert args.shuffles is None and args.seed == 0
    args = parser.parse_args(["--shuffles", "auto", "--seed", "3"])
    assert args.shuffles is None and args.seed == 3
    assert parser.parse_args(["--shuffles", "5"]).shuffles == 5
    for bad in (["--shuffles", "0"], ["--shuffles", "three"], ["--seed", "-1"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--shuffles", "3"])  # a run has no shuffles
