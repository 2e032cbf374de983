"""Point-in-time session features against a brute-force oracle (hypothesis): ties, gaps of exactly ``gap``,
single-event users, null keys; dask partition invariance; serving (fit then transform / extend) equals one pass,
events of the state's last second sent again included (counted once, by their row ids)."""

from __future__ import annotations

import re
from dataclasses import replace

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapids_engage.data import DataError
from rapids_engage.features.sessions import SessionEncoder, fit_sessions, session_features

T = "tweet_timestamp"
GAP = 1800
NAMES = ["sess_n", "sess_age", "sess_index"]


def make_frame(n: int, n_users: int, n_times: int, seed: int, step: int, nulls: bool = False) -> pd.DataFrame:
    """Few users, times on a grid of ``step`` (600, 900 or 1800 s: gaps below, at and above ``GAP``)."""
    rng = np.random.default_rng(seed)
    user = rng.integers(0, n_users, n).astype("float64")
    if nulls:
        user[rng.random(n) < 0.15] = np.nan
    frame = pd.DataFrame({"user": pd.array(user, dtype="Int64"),
                          T: (1_600_000_000 + rng.integers(0, n_times, n) * step).astype("int64")})
    frame.index = rng.permutation(np.arange(7, 7 + n))
    return frame.assign(rid=frame.index.to_numpy(dtype="int64"))  # the row key: an event's id


def oracle(frame: pd.DataFrame, gap: int = GAP) -> dict[str, np.ndarray]:
    """Each row from the definition: the user's distinct times up to and including t, cut where consecutive ones
    are more than ``gap`` apart; the row's session is the last run; its events are those strictly before t."""
    out = {name: [] for name in NAMES}
    users, t = frame["user"].to_numpy(), frame[T].to_numpy()
    for i in range(len(frame)):
        if pd.isna(users[i]):
            mine = np.array([t[i]])
            same = np.zeros(len(frame), dtype=bool)
        else:
            same = np.array([not pd.isna(u) and u == users[i] for u in users])
            mine = np.unique(t[same & (t <= t[i])])
        starts = [mine[0]] + [b for a, b in zip(mine[:-1], mine[1:]) if b - a > gap]
        start = starts[-1]
        out["sess_n"].append(int((same & (t >= start) & (t < t[i])).sum()))
        out["sess_age"].append(int(t[i] - start))
        out["sess_index"].append(len(starts) - 1)
    return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}


frames = st.builds(make_frame, n=st.integers(1, 50), n_users=st.integers(1, 4), n_times=st.integers(1, 20),
                   seed=st.integers(0, 10**6), step=st.sampled_from([600, 900, 1800]), nulls=st.booleans())


@settings(max_examples=40)
@given(frame=frames)
def test_features_match_the_oracle(frame):
    got = SessionEncoder("user", GAP, T).fit_transform(frame)
    assert got.index.equals(frame.index)
    for name, want in oracle(frame).items():
        np.testing.assert_array_equal(got[name].to_numpy(), want, err_msg=name)


@settings(max_examples=20)
@given(frame=frames)
def test_a_huge_time_span_uses_time_ranks_with_the_same_values(frame):
    far = pd.DataFrame({"user": pd.array([99], dtype="Int64"), T: [2**61]}, index=[-1])  # key ids x span >= 2**62
    got = SessionEncoder("user", GAP, T).fit_transform(pd.concat([frame, far]))
    pd.testing.assert_frame_equal(got.loc[frame.index, NAMES], SessionEncoder("user", GAP, T).fit_transform(frame)[NAMES])


def test_small_example_ties_exact_gap_and_a_single_event_user():
    t0 = 1_600_000_000
    frame = pd.DataFrame({"user": [1, 1, 1, 1, 1, 2], T: [t0, t0, t0 + 1800, t0 + 3601, t0 + 3601, t0]})
    got = SessionEncoder("user", GAP, T).fit_transform(frame)
    assert got["sess_n"].tolist() == [0, 0, 2, 0, 0, 0]  # tied rows see neither; a gap of exactly 1800 s continues
    assert got["sess_age"].tolist() == [0, 0, 1800, 0, 0, 0]
    assert got["sess_index"].tolist() == [0, 0, 0, 1, 1, 0]


def split(frame: pd.DataFrame, cut: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows before ``cut`` then the rest; of the rows at the last training time, a random part goes to the rest."""
    train, new = frame[frame[T] < cut], frame[frame[T] >= cut]
    if len(train):
        tied = train[T] == train[T].max()
        moved = tied & (np.random.default_rng(seed).random(len(train)) < 0.5)
        moved.iloc[np.flatnonzero(tied.to_numpy())[0]] = False  # training keeps one row of its last time
        train, new = train[~moved], pd.concat([train[moved], new])
    return train, new


@settings(max_examples=25)
@given(frame=frames, cut=st.integers(0, 20), seed=st.integers(0, 10**6))
def test_transform_and_extend_continue_the_computation_over_all_rows(frame, cut, seed):
    train, new = split(frame, 1_600_000_000 + cut * 600, seed)
    if not len(train):
        return
    whole = SessionEncoder("user", GAP, T).fit_transform(pd.concat([train, new]))
    enc = SessionEncoder("user", GAP, T).fit(train)
    pd.testing.assert_frame_equal(enc.transform(new)[NAMES], whole.loc[new.index, NAMES])
    # the state extended by the first half of the new rows serves the second half as the whole computation does
    half = new[new[T] < new[T].median()] if len(new) else new
    rest = new.drop(half.index)
    enc.extend(half)
    pd.testing.assert_frame_equal(enc.transform(rest)[NAMES], whole.loc[rest.index, NAMES])


def sent_again(train: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Some of ``train``'s events of its last second, as a ``time >= end`` filter sends them again."""
    last = train[train[T] == train[T].max()]
    return last[np.random.default_rng(seed).random(len(last)) < 0.7]


@settings(max_examples=25)
@given(frame=frames, cut=st.integers(1, 20), seed=st.integers(0, 10**6))
def test_events_sent_again_at_the_state_end_count_once(frame, cut, seed):
    """An event of the state's last second sent again (``predict --history`` with a ``time >= end`` filter, a batch
    repeating it) counted twice for its key's later rows (the state kept no row ids): transform gives it its training
    features and counts it once, extend skips it, and the ids carry on while the state's last second does."""
    train, new = split(frame, 1_600_000_000 + cut * 600, seed)
    if not len(train):
        return
    whole = SessionEncoder("user", GAP, T).fit_transform(pd.concat([train, new]))
    again = sent_again(train, seed)
    enc = SessionEncoder("user", GAP, T, row_key=["rid"]).fit(train)
    batch = pd.concat([again, new])
    pd.testing.assert_frame_equal(enc.transform(batch)[NAMES], whole.loc[batch.index, NAMES])
    half = new[new[T] < new[T].median()] if len(new) else new
    rest = new.drop(half.index)
    enc.extend(again).extend(pd.concat([again, half]))  # all sent again, then again with new events
    seen = pd.concat([train, half])
    again = seen[seen[T] == enc.t_end_]  # the extended state's last second: training's events and half's
    batch = pd.concat([again, rest])
    pd.testing.assert_frame_equal(enc.transform(batch)[NAMES], whole.loc[batch.index, NAMES])


@pytest.mark.parametrize("partitions", [1, 2, 3, 4])
def test_dask_values_state_and_serving_are_the_same_for_any_partitioning(partitions, tmp_path):
    frame = make_frame(400, 30, 60, seed=3, step=900, nulls=True).reset_index(names="row")
    train, new = frame[frame[T] < 1_600_000_000 + 45 * 900], frame[frame[T] >= 1_600_000_000 + 45 * 900]
    ref = SessionEncoder("user", GAP, T, row_key=["rid"])
    want = ref.fit_transform(train).set_index("row").sort_index()
    enc = SessionEncoder("user", GAP, T, row_key=["rid"])
    got = fit_sessions(dd.from_pandas(train, npartitions=partitions), enc)[0].compute().set_index("row").sort_index()
    pd.testing.assert_frame_equal(got[want.columns], want)
    def by_user(state):
        return state.sort_values("user").reset_index(drop=True)

    pd.testing.assert_frame_equal(by_user(enc.state_), by_user(ref.state_))
    assert len(enc.last_ids_) == (train[T] == train[T].max()).sum() > 1
    np.testing.assert_array_equal(enc.last_ids_, ref.last_ids_)
    enc.save(tmp_path)
    loaded = SessionEncoder.load(tmp_path)
    np.testing.assert_array_equal(loaded.last_ids_, enc.last_ids_)
    batch = pd.concat([train[train[T] == train[T].max()], new])  # with the last second's events sent again
    served = session_features(dd.from_pandas(batch, npartitions=partitions), loaded, fit=False).compute()
    whole = SessionEncoder("user", GAP, T).fit_transform(frame).set_index("row")
    pd.testing.assert_frame_equal(served.set_index("row").sort_index()[NAMES], whole.loc[sorted(batch["row"]), NAMES])


def test_a_partitioned_state_serves_as_a_gathered_one():
    frame = make_frame(300, 50, 100, seed=5, step=600).reset_index(names="row")
    train, new = frame[frame[T] < 1_600_000_000 + 70 * 600], frame[frame[T] >= 1_600_000_000 + 70 * 600]
    enc = SessionEncoder("user", GAP, T, row_key=["rid"])
    fit_sessions(dd.from_pandas(train, npartitions=3), enc, limit=10)[0].compute()
    assert hasattr(enc.state_, "dask")  # more rows than the limit: the state stays partitioned by key
    batch = pd.concat([train[train[T] == train[T].max()], new])  # with the last second's events sent again
    served = session_features(dd.from_pandas(batch, npartitions=2), enc, fit=False).compute().set_index("row").sort_index()
    whole = SessionEncoder("user", GAP, T).fit_transform(frame).set_index("row")
    pd.testing.assert_frame_equal(served[NAMES], whole.loc[served.index, NAMES])


def test_the_last_ids_survive_save_and_load_and_a_state_from_before_them_is_read_as_it_was(tmp_path):
    """The row ids go beside the state (``sess.last_ids.parquet``, their number in ``sess.json``); a state written
    before the session state kept them (no ``row_key`` in its params, no ``last_ids``) is read as it was served:
    none known, an event of its last second sent again counts again."""
    import json

    frame = make_frame(200, 10, 40, seed=8, step=600)
    train, new = frame[frame[T] < 1_600_000_000 + 30 * 600], frame[frame[T] >= 1_600_000_000 + 30 * 600]
    enc = SessionEncoder("user", GAP, T, row_key=["rid"]).fit(train)
    enc.save(tmp_path)
    saved = json.loads((tmp_path / "sess.json").read_text())
    assert saved["last_ids"] == len(enc.last_ids_) == (train[T] == train[T].max()).sum() > 1
    assert saved["params"]["row_key"] == ["rid"]
    np.testing.assert_array_equal(pd.read_parquet(tmp_path / "sess.last_ids.parquet")["row_id"].to_numpy(), enc.last_ids_)
    back = SessionEncoder.load(tmp_path)
    np.testing.assert_array_equal(back.last_ids_, enc.last_ids_)
    batch = pd.concat([train[train[T] == train[T].max()], new])
    pd.testing.assert_frame_equal(back.transform(batch), enc.transform(batch))
    old = {"params": {k: v for k, v in saved["params"].items() if k != "row_key"}, "t_end": saved["t_end"]}
    (tmp_path / "sess.json").write_text(json.dumps(old))
    (tmp_path / "sess.last_ids.parquet").unlink()
    legacy = SessionEncoder.load(tmp_path)
    assert legacy.row_key == [] and len(legacy.last_ids_) == 0
    pd.testing.assert_frame_equal(legacy.transform(batch), SessionEncoder("user", GAP, T).fit(train).transform(batch))


def test_rows_before_the_end_of_training_and_a_negative_gap_are_refused():
    frame = make_frame(20, 3, 10, seed=1, step=900)
    enc = SessionEncoder("user", GAP, T).fit(frame)
    with pytest.raises(DataError, match="session features serve rows at or after the end of the training window"):
        enc.transform(frame)
    with pytest.raises(ValueError, match=r"^SessionEncoder gap must be >= 0 seconds, got -1$"):
        SessionEncoder("user", -1, T).fit(frame)


def test_after_extend_refused_rows_are_told_the_state_ends_with_the_folded_events():
    """As the history's: the state extended ends with the events, not training (the message said "the training
    window" with the events' end)."""
    frame = make_frame(40, 3, 12, seed=2, step=900)
    cut = int(frame[T].median())
    enc = SessionEncoder("user", GAP, T, row_key=["rid"]).fit(frame[frame[T] <= cut])
    assert enc.window() == "the training window"
    enc.extend(frame[frame[T] > cut])
    with pytest.raises(DataError, match=r"^session features serve rows at or after the end of the training window and "
                                        r"the history events folded in \("):
        enc.transform(frame[frame[T] > cut])
    assert SessionEncoder(**enc.params()).set_state(enc.state_, enc.t_end_).window() == "the training window"
    # events to fold in that are earlier are told so as the history tells them (it said "serve rows ... score rows
    # from after it", advice for rows to score)
    with pytest.raises(DataError, match=r"^session events extend the serving state, which ends at .*: \d+ of \d+ "
                                        r"events are earlier \(the earliest at .*\); pass the events after it$"):
        enc.extend(frame[frame[T] > cut])


@pytest.mark.parametrize("bad, said", [(2**62, "holds 4611686018427387904, beyond the"),
                                       (None, "has 1 null time(s), the first at index 9: the features need a time")])
def test_a_bad_or_null_time_is_refused_by_the_session_features_by_name(bad, said):
    """The shared time check names the group that read the column (it said "history features" with sessions alone),
    and a null time is said to be one (pandas read it as int64's minimum, beyond the limit)."""
    frame = make_frame(20, 3, 10, seed=1, step=900)
    frame[T] = frame[T].astype("Int64").where(frame.index != 9, bad)
    served = SessionEncoder("user", GAP, T).fit(make_frame(5, 3, 1, seed=1, step=900))  # state ending before them
    for call in (SessionEncoder("user", GAP, T).fit, served.transform, served.extend):
        with pytest.raises(DataError, match=rf"^session features: column '{T}' {re.escape(said)}"):
            call(frame)


def test_the_feature_builder_fits_serves_saves_and_extends_session_features(tmp_path):
    from rapids_engage.config import load_config
    from rapids_engage.data import read_events
    from rapids_engage.features import FeatureBuilder, add_labels
    from rapids_engage.schema import ROW_KEY
    from rapids_engage.split import time_split
    from rapids_engage.synthetic import SyntheticSpec, generate

    generate(tmp_path, SyntheticSpec(rows=3_000, days=3, seed=4, n_users=10))
    events = add_labels(read_events(tmp_path / "data"), ["like"])
    train, valid, _ = time_split(events, 24)
    cfg = load_config(overrides=["features.session.enabled=true", "features.history.keys=[]", "features.counts=[]",
                                 "features.target_encoding.keys=[]", "features.content=false"]).features
    builder = FeatureBuilder(cfg, ["like"])
    assert builder.feature_names() == NAMES
    key, user, time = list(ROW_KEY), "engaging_user_id", "tweet_timestamp"
    fitted = builder.fit_transform(train).compute(scheduler="sync").sort_values(key).set_index(key)
    served = builder.transform(valid).compute(scheduler="sync").sort_values(key).set_index(key)
    rows = pd.concat([train.compute(), valid.compute()]).sort_values(key).reset_index(drop=True)
    whole = SessionEncoder(user, 1800, time).fit_transform(rows).set_index(key)
    assert whole["sess_n"].max() > 0 and whole["sess_index"].max() > 0  # sessions of several events, users of several
    pd.testing.assert_frame_equal(fitted[NAMES], whole.loc[fitted.index, NAMES])
    pd.testing.assert_frame_equal(served[NAMES], whole.loc[served.index, NAMES])
    builder.save(tmp_path / "state")
    loaded = FeatureBuilder.load(tmp_path / "state", cfg)
    batch = valid.compute().sort_values(time)
    train_rows = train.compute()
    again = train_rows[train_rows[time] == train_rows[time].max()]  # sent again, as a `time >= end` filter does
    in_memory = loaded.transform_frame(pd.concat([again, batch])).set_index(key)
    pd.testing.assert_frame_equal(in_memory[NAMES], whole.loc[in_memory.index, NAMES])
    first, rest = batch.iloc[: len(batch) // 2], batch.iloc[len(batch) // 2:]
    rest = rest[rest[time] >= first[time].max()]
    loaded.extend_history(pd.concat([again, first]))  # session features alone: the events need no label
    later = loaded.transform_frame(rest.drop(columns=["like"])).set_index(key)
    pd.testing.assert_frame_equal(later[NAMES], whole.loc[later.index, NAMES])


def test_the_session_key_defaults_to_the_user_and_a_table_without_one_must_name_it():
    from rapids_engage.config import ConfigError, load_config
    from rapids_engage.features.key_checks import check_keys
    from rapids_engage.layout import RECSYS, Layout, Target

    cfg = load_config(overrides=["features.session.enabled=true"]).features
    check_keys(cfg, RECSYS)  # the engaging user
    with pytest.raises(ConfigError, match=r"features.session.key: expected a non-empty list of column names, or null "
                                          r"\(the user\), got \[\]"):
        load_config(overrides=["features.session.enabled=true", "features.session.key=[]"])
    table = Layout("table", ("row_id",), "t", (Target("click", "click", "binary"),), item="item")
    cfg = load_config(overrides=["features.session.enabled=true", "features.target_encoding.keys=[]", "features.counts=[]",
                                 "features.history.keys=[]"]).features
    with pytest.raises(ConfigError, match=r"features.session.key: not set and the data name no user column .*"
                                          r"features.session.key: \[COLUMN\], or set data.table.user$"):
        check_keys(cfg, table)
    with pytest.raises(ConfigError, match=r"e.g. features.session.key: \[author\]"):  # a column of the table (it said
        check_keys(cfg, replace(table, creator="author"))                                  # [visitor_id], a column of none)
    cfg.session.key = ["itme"]
    with pytest.raises(ConfigError, match="features.session.key: no column 'itme' in the data: did you mean 'item'"):
        check_keys(cfg, table)
    cfg.session.key = ["item"]
    check_keys(cfg, table)


def _sessions_alone(tmp_path, seed):
    """Synthetic events (1,000 rows, 2 days) and a FeatureBuilder fitted on them with session features alone."""
    from rapids_engage.config import load_config
    from rapids_engage.data import read_events
    from rapids_engage.features import FeatureBuilder
    from rapids_engage.synthetic import SyntheticSpec, generate

    generate(tmp_path, SyntheticSpec(rows=1_000, days=2, seed=seed, n_users=30))
    events = read_events(tmp_path / "data").compute()
    cfg = load_config(overrides=["features.session.enabled=true", "features.history.keys=[]", "features.counts=[]",
                                 "features.target_encoding.keys=[]", "features.content=false"]).features
    builder = FeatureBuilder(cfg, ["like"])
    builder.fit_transform(add_like(events)).compute(scheduler="sync")
    return events, builder


def test_session_features_alone_end_the_serving_state_where_their_training_ends(tmp_path):
    """Without history keys the serving state's end was None: predict said no gap of days, --history recorded no end,
    and Scorer.predict_records let a record before it through, failing the whole batch, rather than rejecting it."""
    from rapids_engage.predict import history_gap

    events, builder = _sessions_alone(tmp_path, seed=4)
    end = int(events[T].max())
    assert builder.history_end() == end
    assert "3.0 days after the serving state ends" in history_gap(builder, end + 3 * 86_400)
    assert (builder.history_window(), builder.state_groups()) == ("the training window", "session features")
    builder.extend_history(events.assign(**{T: events[T] + 3 * 86_400}))  # two days of events, a day later
    assert builder.history_end() == end + 3 * 86_400
    # a served record before that end is refused naming what spans it (it said "the training window": history's
    # encoders only, and "history features would see the future" with none)
    assert builder.history_window() == "the training window and the history events folded in"


def test_predict_refuses_rows_before_a_session_state_s_end_before_the_cluster_starts(tmp_path):
    """With session features alone (no history keys) predict's early check looked at the history encoders only:
    rows earlier than the training end passed it and were refused by the session features once the cluster had
    started. Now the footers tell it first, with the session features' message and every early row counted."""
    import re

    from rapids_engage.predict import check_not_before, earliest_time
    from rapids_engage.schema import utc

    events, builder = _sessions_alone(tmp_path, seed=5)
    end = int(events[T].max())
    later = events.iloc[:70].assign(**{T: end + 60})
    later.to_parquet(tmp_path / "later.parquet", index=False)
    check_not_before(builder, [tmp_path / "later.parquet"], earliest_time([tmp_path / "later.parquet"], T))  # none early
    rows = pd.concat([events.iloc[:30], later]).sort_values(T)
    rows.to_parquet(tmp_path / "rows.parquet", index=False, row_group_size=20)
    early = int((rows[T] < end).sum())
    assert early == 30
    with pytest.raises(DataError, match=re.escape(f"session features serve rows at or after the end of the training window "
                                                  f"({utc(end)}): 30 of 100 rows are earlier (the earliest at "
                                                  f"{utc(int(rows[T].min()))}); score rows from after it")):
        check_not_before(builder, [tmp_path / "rows.parquet"], earliest_time([tmp_path / "rows.parquet"], T))


def add_like(events: pd.DataFrame) -> pd.DataFrame:
    from rapids_engage.features import add_labels

    return add_labels(events, ["like"])


@pytest.mark.parametrize("encoder", ["session", "history"])
def test_extend_with_a_categorical_key_keeps_the_new_categories_state(encoder):
    """A categorical key (library API: the pipeline reads keys as strings): extend cast the new events / state rows to
    the state's categories, so a key new in them became null (its state lost: 'c' served as never seen), and a null
    categorical key failed group_ids ('Cannot setitem on a Categorical with a new category'). Extending equals one fit
    over both parts."""
    from rapids_engage.features.frames import group_ids
    from rapids_engage.features.history_encoder import HistoryEncoder

    def part(users, t0, likes):
        return pd.DataFrame({"user": pd.Series(users, dtype="category"), T: [t0, t0 + 10, t0 + 20],
                             "rid": [t0 + 1, t0 + 2, t0 + 3], "like": likes})

    a, b, c = part(["a", "b", "a"], 0, [1, 0, 1]), part(["c", "a", "c"], 30, [1, 1, 0]), part(["c", "a", None], 60, [0] * 3)
    make = {"session": lambda: SessionEncoder("user", GAP, T, row_key=["rid"]),
            "history": lambda: HistoryEncoder("user", ["like"], time_column=T, row_key=["rid"])}[encoder]
    extended = make().fit(a).extend(b).transform(c)
    plain = make().fit(pd.concat([a, b]).astype({"user": object})).transform(c.astype({"user": object}))
    names = [n for n in extended.columns if n not in c.columns]
    assert names and (extended[names].to_numpy() == plain[names].to_numpy()).all(), (extended, plain)
    assert group_ids(c[["user"]]).tolist() == [0, 1, 2]
