"""Point-in-time history features against a brute-force O(n^2) oracle (hypothesis)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapids_engage.features.history import HistoryEncoder, history_features, window_label
from rapids_engage.features import NotFittedError

T = "tweet_timestamp"
TARGETS = ["like", "reply"]
WINDOWS = (3600, 7200)
DAYS = (1, 2)
KEYS = {"single": ["engaging_user_id"], "pair": ["engaging_user_id", "engaged_with_user_id"]}


def encoder(key: list[str], windows=WINDOWS, delay: int = 0) -> HistoryEncoder:
    """Every kind of span: whole history, rolling windows, calendar days, with rates."""
    return HistoryEncoder(key, TARGETS, windows, days=DAYS, rates=True, label_delay=delay)


def make_frame(n: int, n_users: int, n_times: int, seed: int, start: int = 0, step: int = 900) -> pd.DataFrame:
    """Few keys, few distinct times (many ties, times on window and day boundaries), random labels."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "engaging_user_id": rng.integers(0, n_users, n).astype("int64"),
            "engaged_with_user_id": rng.integers(0, 3, n).astype("int64"),
            T: (start + rng.integers(0, n_times, n) * step).astype("int64"),
            "like": rng.integers(0, 2, n).astype("int8"),
            "reply": (rng.random(n) < 0.3).astype("int8"),
        }
    )
    frame.index = rng.permutation(np.arange(100, 100 + n))  # a non-default index that must survive
    frame.attrs["start"] = start  # where the tests' cut times count from
    return frame


def at(frame: pd.DataFrame, steps: int) -> int:
    """The time ``steps`` quarter hours after the frame's start (:func:`make_frame`)."""
    return frame.attrs["start"] + steps * 900


def oracle(
    frame: pd.DataFrame, key: list[str], targets: list[str], windows=WINDOWS, days=DAYS, labelled=None, delay=0, engaged=None
) -> dict[str, np.ndarray]:
    """Every feature row by row from its definition (same key, strictly earlier time).

    ``labelled``: rows whose labels are known (default all); the others are events only.
    A label counts for row i only when it is known before t_i - ``delay``: at its event's time, or
    with ``engaged`` (target -> engagement time column) at its engagement time (the event's when
    null or earlier); positives then fall in a span by that time, events by theirs.
    """
    keys = list(map(tuple, frame[key].to_numpy()))
    keyed = frame[key].notna().all(axis=1).to_numpy()  # a key with a null is no key: no history, in none
    t = frame[T].to_numpy()
    known = np.ones(len(frame), dtype=bool) if labelled is None else np.asarray(labelled)
    label = {x: (frame[x].to_numpy() > 0) & known for x in targets}
    at = {x: t if engaged is None else np.maximum(t, frame[engaged[x]].fillna(t.min() - 1).to_numpy(np.int64)) for x in targets}
    name = "__".join(key)
    out: dict[str, list] = {}

    def put(col: str, value) -> None:
        out.setdefault(f"hist_{name}_{col}", []).append(value)

    for i in range(len(frame)):
        same = np.array([keyed[i] and keyed[j] and keys[j] == keys[i] for j in range(len(frame))], dtype=bool)
        before = same & (t < t[i])
        settled = known & (t < t[i] - delay)
        day = t[i] // 86400 * 86400
        spans = {"": lambda s: s == s}
        spans.update({f"_{window_label(w)}": lambda s, w=w: s >= t[i] - w for w in windows})
        spans.update({f"_prev{d}d": lambda s, d=d: (s >= day - d * 86400) & (s < day) for d in days})
        y = {x: same & label[x] & (at[x] < t[i] - delay) for x in targets}  # a positive known before t_i - delay
        for suffix, inside in spans.items():
            put(f"n{suffix}", int((before & inside(t)).sum()))
            n_known = int((before & inside(t) & settled).sum())
            for x in targets:
                hits = int((y[x] & inside(at[x])).sum())
                put(f"{x}{suffix}", hits)
                put(f"{x}_rate{suffix}", hits / n_known if n_known else np.nan)
        put("dt_prev", int(t[i] - t[before].max()) if before.any() else -1)
        for x in targets:
            put(f"dt_prev_{x}", int(t[i] - at[x][y[x]].max()) if y[x].any() else -1)
    return {k: np.asarray(v, dtype=np.float64 if "_rate" in k else np.int64) for k, v in out.items()}


def assert_features(got: pd.DataFrame, want: dict[str, np.ndarray]) -> None:
    assert sorted(want) == sorted(c for c in got.columns if c.startswith("hist_"))
    for col, expected in want.items():
        np.testing.assert_array_equal(got[col].to_numpy(), expected, err_msg=col)  # exact; NaN == NaN here


#: Start times: the epoch, before it (negative times, a day boundary between steps: -10 days - 7.5 min),
#: and far after it (2200-01-01, beyond 2**32 s).
STARTS = [0, -10 * 86400 - 450, -7, 7_258_118_400]


def frames_of(steps: list[int], starts: list[int] = STARTS) -> st.SearchStrategy:
    return st.builds(
        make_frame,
        n=st.integers(1, 60),
        n_users=st.integers(1, 5),
        n_times=st.integers(1, 16),
        seed=st.integers(0, 10**6),
        start=st.sampled_from(starts),
        step=st.sampled_from(steps),
    )


frames = frames_of([900, 21600])  # 16 steps of 6 h: spans cross UTC days


def test_names_and_small_example():
    df = pd.DataFrame({"u": [1, 1, 1, 2, 1], T: [0, 0, 3600, 0, 7200], "like": np.int8([1, 0, 1, 1, 0])}, index=list("abcde"))
    enc = HistoryEncoder("u", windows=(3600, 86400))
    out = enc.fit_transform(df)
    assert enc.targets_ == ["like"]  # targets=None: the schema targets present
    assert enc.output_names() == [
        "hist_u_n", "hist_u_like", "hist_u_n_1h", "hist_u_like_1h", "hist_u_n_24h", "hist_u_like_24h",
        "hist_u_dt_prev", "hist_u_dt_prev_like",
    ]  # fmt: skip
    assert list(out.columns) == [*df.columns, *enc.output_names()]
    assert list(out.index) == list("abcde")
    assert out["hist_u_n"].tolist() == [0, 0, 2, 0, 3]
    assert out["hist_u_like"].tolist() == [0, 0, 1, 0, 2]
    assert out["hist_u_n_1h"].tolist() == [0, 0, 2, 0, 1]  # [t - 1h, t): the event 1h earlier counts
    assert out["hist_u_dt_prev"].tolist() == [-1, -1, 3600, -1, 3600]
    assert out["hist_u_dt_prev_like"].tolist() == [-1, -1, 3600, -1, 3600]
    assert all(out[c].dtype == np.int64 for c in enc.output_names())


@settings(max_examples=40, deadline=None)
@given(frame=frames, key=st.sampled_from(sorted(KEYS)), delay=st.sampled_from([0, 0, 900, 3600, 86400]))
def test_fit_transform_matches_oracle(frame, key, delay):
    key = KEYS[key]
    out = encoder(key, delay=delay).fit_transform(frame)
    assert out.index.equals(frame.index)
    pd.testing.assert_frame_equal(out[frame.columns], frame)
    assert_features(out, oracle(frame, key, TARGETS, delay=delay))


@settings(max_examples=30, deadline=None)
@given(frame=frames, key=st.sampled_from(sorted(KEYS)), seed=st.integers(0, 10**6))
def test_null_keys_have_no_history_and_are_in_none(frame, key, seed):
    """A row whose key has a null: no earlier events (as a first event), and it counts for no one."""
    key = KEYS[key]
    null = np.random.default_rng(seed).random(len(frame)) < 0.3
    frame = frame.assign(**{key[-1]: frame[key[-1]].astype("Int64").mask(null)})
    assert_features(encoder(key).fit_transform(frame), oracle(frame, key, TARGETS))


@settings(max_examples=30, deadline=None)
@given(frame=frames, cut=st.integers(0, 16), seed=st.integers(0, 10**6))
def test_labels_at_or_after_t_never_change_features_at_t(frame, cut, seed):
    enc = encoder(KEYS["pair"])
    base = enc.fit_transform(frame)
    t0 = at(frame, cut)
    changed = frame.copy()
    late = (changed[T] >= t0).to_numpy()
    rng = np.random.default_rng(seed)
    for x in TARGETS:
        changed.loc[late, x] = rng.integers(0, 2, late.sum()).astype("int8")
    again = enc.fit_transform(changed)
    upto = (frame[T] <= t0).to_numpy()  # rows at t0 see none of the changed labels
    names = enc.output_names()
    pd.testing.assert_frame_equal(again.loc[upto, names], base.loc[upto, names])


@settings(max_examples=30, deadline=None)
@given(frame=frames, seed=st.integers(0, 10**6))
def test_invariant_to_row_order(frame, seed):
    enc = encoder(KEYS["single"])
    base = enc.fit_transform(frame)
    shuffled = frame.iloc[np.random.default_rng(seed).permutation(len(frame))]
    out = enc.fit_transform(shuffled)
    assert out.index.equals(shuffled.index)
    pd.testing.assert_frame_equal(out.loc[frame.index], base)


def split(frame: pd.DataFrame, cut: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train: times < cut, and some rows AT cut; new: the rest (all at or after the end of train)."""
    coin = np.random.default_rng(seed).random(len(frame)) < 0.5
    t = frame[T].to_numpy()
    in_train = (t < cut) | ((t == cut) & coin)
    return frame[in_train], frame[~in_train]


def split3(frame: pd.DataFrame, cuts: tuple[int, int], seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, events, new): :func:`split` at ``cuts[0]`` quarter hours; of the rest, the events before ``cuts[1]``
    quarter hours later (at the training end too: ties), and the new rows after them."""
    cut = at(frame, cuts[0])
    train, rest = split(frame, cut, seed)
    later = rest[T] >= cut + cuts[1] * 900
    return train, rest[~later], rest[later]


@settings(max_examples=30, deadline=None)
@given(
    frame=frames,
    cut=st.integers(1, 16),
    seed=st.integers(0, 10**6),
    key=st.sampled_from(sorted(KEYS)),
    delay=st.sampled_from([0, 0, 900, 86400]),
)
def test_transform_continues_fit_transform(frame, cut, seed, key, delay):
    key = KEYS[key]
    train, new = split(frame, at(frame, cut), seed)
    if len(train) == 0:
        return
    # new rows may share the last training time (ties stay invisible to each other)
    enc = encoder(key, delay=delay).fit(train)
    names = enc.output_names()
    whole = encoder(key, delay=delay).fit_transform(pd.concat([train, new]))
    # labels of new rows used: every feature equals the one-pass computation
    out = enc.transform(new)
    assert out.index.equals(new.index)
    pd.testing.assert_frame_equal(out[names], whole.loc[new.index, names])
    # labels absent (serving): in-frame rows count as events, only training positives count,
    # and rates divide by the labelled (training) events only
    unlabeled = enc.transform(new.drop(columns=TARGETS))
    assert list(unlabeled.columns) == [*new.drop(columns=TARGETS).columns, *names]
    both = pd.concat([train, new])
    want = oracle(both, key, TARGETS, labelled=np.arange(len(both)) < len(train), delay=delay)
    assert_features(unlabeled[names], {k: v[len(train) :] for k, v in want.items()})
    pd.testing.assert_frame_equal(enc.transform(new, labels=False)[names], unlabeled[names])


@settings(max_examples=15, deadline=None)
@given(frame=frames_of([900], [0]), cut=st.integers(1, 16), seed=st.integers(0, 10**6))
def test_huge_time_span_uses_time_ranks(frame, cut, seed):
    """Times spread over ~2^62 s: key id * time span overflows int64, so times are ranked first."""
    step, windows = 2**58, (2**58, 2**59)
    frame = frame.assign(**{T: frame[T] // 900 * step})
    frame.loc[frame.index[0], "engaging_user_id"] = 99  # >= 2 keys, so key count * span >= 2^62
    frame.loc[frame.index[-1], T] = 15 * step
    key = KEYS["single"]
    out = encoder(key, windows).fit_transform(frame)
    assert_features(out, oracle(frame, key, TARGETS, windows))
    train, new = split(frame, cut * step, seed)
    if len(train):
        names = encoder(key, windows).fit(train).output_names()
        got = encoder(key, windows).fit(train).transform(new)[names]
        pd.testing.assert_frame_equal(got, out.loc[new.index, names])


def test_save_load_roundtrip(tmp_path):
    frame = make_frame(400, 20, 200, seed=3)
    train, new = split(frame, 150 * 900, seed=4)
    enc = encoder(KEYS["pair"]).fit(train)
    enc.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "hist_engaging_user_id__engaged_with_user_id.json",
        "hist_engaging_user_id__engaged_with_user_id.parquet",
    ]
    back = HistoryEncoder.load(tmp_path, "hist_engaging_user_id__engaged_with_user_id")
    assert back.params() == enc.params() and back.targets_ == enc.targets_ and back.t_end_ == enc.t_end_
    pd.testing.assert_frame_equal(back.transform(new), enc.transform(new))
    empty = back.transform(new.iloc[:0])
    assert len(empty) == 0 and list(empty.columns) == [*new.columns, *enc.output_names()]
    # the state keeps only what later events can reach: a summary per key + the last window per (key, time)
    assert len(enc.state_) < len(train)


def test_transform_refuses_earlier_events_and_needs_fit():
    frame = make_frame(50, 3, 10, seed=1)
    with pytest.raises(NotFittedError, match="not fitted"):
        HistoryEncoder("engaging_user_id", TARGETS).transform(frame)
    enc = HistoryEncoder("engaging_user_id", TARGETS).fit(frame)
    with pytest.raises(ValueError, match="at or after the end of the training window"):
        enc.transform(frame)
    with pytest.raises(ValueError, match="not in the frame"):
        HistoryEncoder("nope", TARGETS).fit_transform(frame)
    with pytest.raises(ValueError, match="> 0"):
        HistoryEncoder("engaging_user_id", windows=(0,)).fit(frame)


def test_rows_carrying_some_labels_only_use_none_of_them():
    """A frame with one target's labels but not another's counted the first one's in-frame positives but not
    its in-frame labelled events (the rate's denominator, shared by the targets): rates above 1."""
    train = pd.DataFrame({"engaging_user_id": [1], T: [0], "like": [1], "reply": [0]})
    new = pd.DataFrame({"engaging_user_id": [1, 1, 1], T: [10, 20, 30], "like": [1, 1, 0]})  # no reply labels
    enc = encoder(KEYS["single"]).fit(train)
    names = enc.output_names()
    out = enc.transform(new)
    assert (out[[n for n in names if "_rate" in n]].fillna(0) <= 1).all().all()
    pd.testing.assert_frame_equal(out[names], enc.transform(new, labels=False)[names])
    with pytest.raises(ValueError, match="reply"):
        enc.transform(new, labels=True)


def test_dask_wrapper_matches_in_memory():
    import dask.dataframe as dd

    frame = make_frame(600, 40, 300, seed=7, step=3600).reset_index(names="row")
    key = KEYS["single"]
    want = encoder(key).fit_transform(frame).set_index("row").sort_index()
    enc = encoder(key)
    got = history_features(dd.from_pandas(frame, npartitions=4), enc).compute().set_index("row").sort_index()
    pd.testing.assert_frame_equal(got[want.columns], want)
    ref = encoder(key).fit(frame)
    state_cols = list(ref.state_.columns)
    order = [*key, T]
    pd.testing.assert_frame_equal(
        enc.state_.sort_values(order).reset_index(drop=True), ref.state_[state_cols].sort_values(order).reset_index(drop=True)
    )
    later = make_frame(200, 40, 50, seed=8, start=int(frame[T].max()), step=3600).reset_index(names="row")
    served = history_features(dd.from_pandas(later, npartitions=3), enc, fit=False).compute().set_index("row").sort_index()
    pd.testing.assert_frame_equal(served, ref.transform(later).set_index("row").sort_index())


def test_label_delay_longer_than_every_span_still_continues_fit_transform():
    """The serving state must keep every event whose label a served row may not see yet."""
    frame = make_frame(300, 4, 16, seed=11)
    train, new = split(frame, 12 * 900, seed=12)
    enc = HistoryEncoder(KEYS["single"], TARGETS, (900,), rates=True, label_delay=5 * 900).fit(train)
    names = enc.output_names()
    whole = HistoryEncoder(KEYS["single"], TARGETS, (900,), rates=True, label_delay=5 * 900).fit_transform(frame)
    pd.testing.assert_frame_equal(enc.transform(new)[names], whole.loc[new.index, names])


@settings(max_examples=30, deadline=None)
@given(frame=frames, cut=st.integers(1, 16), seed=st.integers(0, 10**6), key=st.sampled_from(sorted(KEYS)))
def test_transform_of_successive_batches_with_string_and_null_keys(frame, cut, seed, key):
    """Keys as strings with nulls (no key: no history, as in fit); one fitted encoder serves batch after
    batch from its key index, each batch equal to the one-pass computation over train + batch."""
    key = KEYS[key]
    rng = np.random.default_rng(seed)
    for col in key:
        text = frame[col].map(lambda v: f"u{v}").astype(object)
        text[rng.random(len(frame)) < 0.2] = None
        frame = frame.assign(**{col: text})
    train, new = split(frame, at(frame, cut), seed)
    if len(train) == 0:
        return
    enc = encoder(key).fit(train)
    names = enc.output_names()
    for batch in (new.iloc[::2], new.iloc[1::2], new.iloc[:0]):
        whole = encoder(key).fit_transform(pd.concat([train, batch]))
        pd.testing.assert_frame_equal(enc.transform(batch)[names], whole.loc[batch.index, names])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 2)), st.one_of(st.none(), st.sampled_from(["", "a", "0"]))),
                min_size=1, max_size=30))
def test_group_ids_put_equal_keys_together_nulls_included(pairs):
    """group_ids: rows share an id exactly when their keys are equal, a null equal to a null only
    (the filled value of a null, 0 or "", is a key of its own)."""
    from rapids_engage.features.frames import group_ids

    keys = pd.DataFrame({"n": pd.array([p[0] for p in pairs], dtype="Int64"),
                         "s": pd.array([p[1] for p in pairs], dtype="str")})
    gid = group_ids(keys)
    assert gid.dtype == np.int64 and sorted(set(gid)) == list(range(len(set(gid))))
    norm = [tuple("<null>" if v is None else v for v in p) for p in pairs]
    for i in range(len(pairs)):
        for j in range(len(pairs)):
            assert (gid[i] == gid[j]) == (norm[i] == norm[j]), (pairs[i], pairs[j])


@settings(max_examples=40, deadline=None)
@given(frame=frames, cuts=st.tuples(st.integers(1, 16), st.integers(0, 8)), seed=st.integers(0, 10**6),
       key=st.sampled_from(sorted(KEYS)), delay=st.sampled_from([0, 900, 86400]))
def test_extending_the_state_with_later_events_equals_fitting_on_both(frame, cuts, seed, key, delay):
    """Serving the day after the validation window: the state fitted on training, extended with the
    validation events (labelled), serves later rows as a state fitted on both does."""
    key = KEYS[key]
    train, events, new = split3(frame, cuts, seed)
    if len(train) == 0:
        return
    extended = encoder(key, delay=delay).fit(train).extend(events)
    both = encoder(key, delay=delay).fit(pd.concat([train, events]))
    assert extended.t_end_ == both.t_end_
    names = both.output_names()
    served = new.drop(columns=TARGETS)
    pd.testing.assert_frame_equal(extended.transform(served)[names], both.transform(served)[names])
    everything = pd.concat([train, events, new])
    want = oracle(everything, key, TARGETS, labelled=np.arange(len(everything)) < len(train) + len(events), delay=delay)
    assert_features(extended.transform(served)[names], {k: v[len(train) + len(events):] for k, v in want.items()})


def test_extend_refuses_earlier_or_unlabelled_events():
    frame = make_frame(40, 3, 8, seed=2)
    cut = int(frame[T].median())
    enc = encoder(["engaging_user_id"]).fit(frame[frame[T] <= cut])
    with pytest.raises(Exception, match="extend the serving state, which ends at .*: 1 of 1 events are earlier"):
        enc.extend(frame[frame[T] < cut].head(1))
    later = frame[frame[T] > cut].head(3).astype({"like": "float64"})
    later.iloc[0, later.columns.get_loc("like")] = np.nan
    with pytest.raises(Exception, match=r"need every label: column\(s\) \['like'\] have missing values"):
        enc.extend(later)
    assert enc.extend(frame.head(0)) is enc


def test_rows_before_an_extended_state_end_are_not_said_to_precede_training():
    """After extend, the state ends with the events: rows refused for preceding it are told so (the
    message named "the end of the training window" with the events' end date, as `predict --history
    validation` of the validation rows showed)."""
    frame = make_frame(40, 3, 8, seed=2)
    cut = int(frame[T].median())
    enc = encoder(["engaging_user_id"]).fit(frame[frame[T] <= cut])
    assert enc.window() == "the training window"
    enc.extend(frame[frame[T] > cut])
    with pytest.raises(Exception, match=r"end of the training window and the history events folded in \("):
        enc.transform(frame[frame[T] > cut].drop(columns=TARGETS))
    assert HistoryEncoder(**enc.params()).set_state(enc.state_, enc.t_end_, enc.targets_).window() == "the training window"


def test_positive_rates_are_positives_per_keyed_event_of_the_serving_state():
    """The rates the no-engagement check of extend_history takes: training's, then with what extend folded in;
    an event without a key is not counted (mutation round 3)."""
    train = pd.DataFrame({"engaging_user_id": pd.array([1, 2, 2, 3, None], dtype="Int64"), T: [0, 1, 2, 3, 4],
                          "like": [1, 0, 0, 0, 1], "reply": [0, 0, 0, 1, 0]})
    enc = encoder(KEYS["single"]).fit(train)
    assert enc.positive_rates() == {"like": 0.25, "reply": 0.25}
    enc.extend(pd.DataFrame({"engaging_user_id": [1, 4, 4, 4], T: [10, 11, 12, 13], "like": [1, 1, 1, 0], "reply": 0}))
    assert enc.positive_rates() == {"like": 0.5, "reply": 0.125}
    with pytest.raises(NotFittedError):
        encoder(KEYS["single"]).positive_rates()


def test_refit_detects_the_targets_of_the_new_frame():
    """A second fit of an encoder with targets=None kept the first fit's targets: a frame without one of
    them was refused ('columns ['like'] are not in the frame'), and a new target was left out."""
    df = pd.DataFrame({"u": [1, 1, 2], T: [0, 10, 20], "like": [1, 0, 1], "reply": [0, 1, 0]})
    enc = HistoryEncoder("u", windows=(3600,)).fit(df)
    assert enc.targets_ == ["like", "reply"]
    assert enc.fit(df.drop(columns="like")).targets_ == ["reply"]
    assert enc.fit(df.assign(retweet=1)).targets_ == ["like", "retweet", "reply"]
    assert "hist_u_dt_prev_retweet" in enc.fit_transform(df.assign(retweet=1)).columns


def test_dask_frames_a_missing_time_and_unfitted_names_are_one_line_errors():
    """fit of a dask frame raised 'int() argument must be ... not 'Scalar'', fit without the time column a bare
    KeyError, output_names() before fit an AttributeError on targets_."""
    import dask.dataframe as dd

    df = pd.DataFrame({"u": [1, 1, 2], T: [0, 10, 20], "like": [1, 0, 1]})
    enc = HistoryEncoder("u", ["like"])
    with pytest.raises(NotFittedError, match="not fitted"):
        enc.output_names()
    with pytest.raises(TypeError, match=r"in-memory frames \(pandas or cudf\); for a dask frame use .*history_features"):
        enc.fit(dd.from_pandas(df, npartitions=1))
    with pytest.raises(ValueError, match=rf"columns \['{T}'\] are not in the frame"):
        enc.fit(df.drop(columns=T))
    with pytest.raises(TypeError, match="in-memory frames"):
        enc.fit(df).transform(dd.from_pandas(df.assign(**{T: 30}), npartitions=1))


def with_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a unique int64 row key ``tweet_id``."""
    return frame.assign(tweet_id=frame.index.to_numpy().astype("int64"))


def keyed_encoder(key: list[str]) -> HistoryEncoder:
    return HistoryEncoder(key, TARGETS, WINDOWS, days=DAYS, rates=True, row_key=["tweet_id"])


@settings(max_examples=40, deadline=None)
@given(frame=frames, cuts=st.tuples(st.integers(1, 16), st.integers(0, 8)), seed=st.integers(0, 10**6),
       key=st.sampled_from(sorted(KEYS)))
def test_events_sent_again_at_the_state_end_count_once(frame, cuts, seed, key):
    """Events the state holds at its last second, sent again (as a ``time >= end`` filter does) to extend
    and to transform, are known by their row key: extend skips them, transform gives them their features
    but does not count them as events of later rows (both counted them twice)."""
    key, frame = KEYS[key], with_ids(frame)
    train, events, new = split3(frame, cuts, seed)
    if len(train) == 0:
        return
    enc = keyed_encoder(key).fit(train)
    enc.extend(pd.concat([train[train[T] == enc.t_end_], events]))  # the training end's events again, then new ones
    held = pd.concat([train, events])
    served = pd.concat([held[held[T] == enc.t_end_], new]).drop(columns=TARGETS)  # the (new) end's events again
    everything = pd.concat([train, events, new])
    want = oracle(everything, key, TARGETS, labelled=np.arange(len(everything)) < len(held))
    want = pd.DataFrame(want, index=everything.index).loc[served.index]
    names = enc.output_names()
    assert_features(enc.transform(served)[names], {c: want[c].to_numpy() for c in names})


def test_the_state_end_s_row_ids_survive_save_load_dask_and_extend(tmp_path):
    import dask.dataframe as dd

    frame = with_ids(make_frame(300, 10, 40, seed=5))
    frame.loc[frame.index[frame[T] == frame[T].max()][:1], "tweet_id"] = None  # an event without its id: never matched
    frame = frame.astype({"tweet_id": "Int64"})
    end = int(frame[T].max())
    at_end = frame[frame[T] == end]
    enc = keyed_encoder(KEYS["single"]).fit(frame)
    assert sorted(enc.last_ids_.tolist()) == sorted(enc.last_ids(at_end.dropna(subset=["tweet_id"]), end).tolist())
    assert len(enc.last_ids_) == at_end["tweet_id"].notna().sum() > 0
    history_features(dd.from_pandas(frame, npartitions=3), dasked := keyed_encoder(KEYS["single"])).compute()
    np.testing.assert_array_equal(dasked.last_ids_, enc.last_ids_)
    enc.save(tmp_path)
    back = HistoryEncoder.load(tmp_path, "hist_engaging_user_id")
    np.testing.assert_array_equal(back.last_ids_, enc.last_ids_)
    before = back.state_.copy()
    back.extend(at_end.dropna(subset=["tweet_id"]))  # all held already: nothing changes
    pd.testing.assert_frame_equal(back.state_.sort_values(back.state_.columns.tolist()).reset_index(drop=True),
                                  before.sort_values(before.columns.tolist()).reset_index(drop=True))
    back.extend(at_end[at_end["tweet_id"].isna()])  # without its id: counted as new
    assert int(back.state_["_n"].sum()) == int(before["_n"].sum()) + 1
    later = frame.assign(**{T: end + 60}).head(3)
    back.extend(later)  # a later second: its events are the state's last ones now
    assert back.t_end_ == end + 60 and sorted(back.last_ids_.tolist()) == sorted(back.last_ids(later, end + 60).tolist())
    with pytest.raises(Exception, match=r"row key column\(s\) \{'tweet_id': 'object'\} are not integers"):
        back.transform(later.astype({"tweet_id": "str"}).astype({"tweet_id": "object"}))


def test_extend_keeps_the_state_s_integer_key_dtype_and_64_bit_ids_exact():
    """The state and the events it is extended with are concatenated in the state's dtypes: an int64 state stays
    int64 with nullable Int64 events (ids and row ids with nulls, as cudf events arrive on the host), an Int64 one
    Int64 with int64 events (pandas alone made the first Int64); ids above 2**53 keep their low digits."""
    frame = with_ids(make_frame(300, 10, 40, seed=7))
    frame = frame.assign(engaging_user_id=frame["engaging_user_id"] + 2**60)
    cut = at(frame, 30)
    train, events = frame[frame[T] < cut], frame[frame[T] >= cut].astype({"engaging_user_id": "Int64", "tweet_id": "Int64"})
    events.iloc[:3, events.columns.get_loc("engaging_user_id")] = pd.NA  # no key: no state row
    events.iloc[3:6, events.columns.get_loc("tweet_id")] = pd.NA  # no row id: a new event
    keyed = events.dropna(subset=["engaging_user_id"])
    for state_dtype, events_dtype in (("int64", "Int64"), ("Int64", "int64")):
        enc = keyed_encoder(KEYS["single"]).fit(train.astype({"engaging_user_id": state_dtype}))
        enc.extend(keyed.astype({"engaging_user_id": "int64"}) if events_dtype == "int64" else events)  # (int64: no null key)
        assert enc.state_.dtypes["engaging_user_id"] == state_dtype
        both = keyed_encoder(KEYS["single"]).fit(pd.concat([train, keyed]).astype({"engaging_user_id": state_dtype}))
        order = ["engaging_user_id", T]
        pd.testing.assert_frame_equal(enc.state_.sort_values(order).reset_index(drop=True),
                                      both.state_.sort_values(order).reset_index(drop=True))
        assert set(enc.state_["engaging_user_id"].astype("int64")) == set(frame["engaging_user_id"])


def test_only_events_of_the_state_end_with_a_whole_row_key_are_taken_as_sent_again():
    """An event is one the state holds (sent again) only at the state's last second and with a whole row key of
    that second: one without its row key is new even beside an event of row key 0 (what a missing id is
    hashed as), and so is a later event with a row key of the last second (mutation round 6: both were dropped)."""
    frame = with_ids(make_frame(300, 10, 40, seed=5))
    end = int(frame[T].max())
    frame.loc[frame.index[frame[T] == end][0], "tweet_id"] = 0
    frame = frame.astype({"tweet_id": "Int64"})
    at_end = frame[frame[T] == end]
    enc = keyed_encoder(KEYS["single"]).fit(frame)
    n = int(enc.state_["_n"].sum())
    enc.extend(at_end.head(1).assign(tweet_id=pd.array([None], dtype="Int64")))  # the end's second, no row key
    assert int(enc.state_["_n"].sum()) == n + 1
    enc.extend(at_end.assign(**{T: end + 60}))  # a later second, row keys of the end's events
    assert int(enc.state_["_n"].sum()) == n + 1 + len(at_end) and enc.t_end_ == end + 60


def test_a_row_key_of_floats_is_refused():
    """Events are told apart by integer row ids: a float row key (1.5 and 1.9 would hash alike) is refused."""
    frame = with_ids(make_frame(100, 5, 41, seed=6))
    with pytest.raises(Exception, match=r"row key column\(s\) \{'tweet_id': 'float64'\} are not integers"):
        keyed_encoder(KEYS["single"]).fit(frame.astype({"tweet_id": "float64"}))


def test_a_repeated_window_or_day_is_refused():
    """Two spans of one length gave two features of one name (a run's training failed in XGBoost)."""
    frame = make_frame(20, 3, 5, seed=1)
    with pytest.raises(ValueError, match=r"^HistoryEncoder windows must be distinct and > 0 seconds, got \[3600, 3600\]$"):
        HistoryEncoder("engaging_user_id", ["like"], (3600, 3600)).fit(frame)
    with pytest.raises(ValueError, match=r"^HistoryEncoder days must be distinct whole UTC days >= 1, got \[1, 1\]$"):
        HistoryEncoder("engaging_user_id", ["like"], (3600,), days=(1, 1)).fit(frame)


def test_many_ids_at_the_state_end_are_a_parquet_column_shipped_once(tmp_path):
    """Date-only times put a whole day's events at the state's end. Their row-key hashes (``last_ids_``)
    were a JSON list in the state file (~23 bytes an id) and went with every task of a partitioned
    state's transform; they are a uint64 parquet column beside the state now, one object of the graph,
    and serve the same values (the end's events sent again count once, as the oracle says)."""
    import json

    import cloudpickle
    import dask.dataframe as dd

    from rapids_engage.data import DataError

    day = 86400
    frame = with_ids(make_frame(1200, 30, 3, seed=11, step=day))  # 3 dates: ~400 events at the last
    end = int(frame[T].max())
    n_end = int((frame[T] == end).sum())
    enc = keyed_encoder(KEYS["single"])
    history_features(dd.from_pandas(frame, npartitions=3), enc, limit=0).compute()  # the state stays partitioned
    assert isinstance(enc.state_, dd.DataFrame) and len(enc.last_ids_) == n_end > 300
    enc.save(tmp_path)
    stem = tmp_path / "hist_engaging_user_id"
    assert json.loads(stem.with_suffix(".json").read_text())["last_ids"] == n_end  # their number, not the list
    ids = pd.read_parquet(tmp_path / "hist_engaging_user_id.last_ids.parquet")
    assert ids.dtypes.to_dict() == {"row_id": np.dtype("uint64")}
    np.testing.assert_array_equal(ids["row_id"].to_numpy(), enc.last_ids_)
    back = HistoryEncoder.load(tmp_path, "hist_engaging_user_id")
    np.testing.assert_array_equal(back.last_ids_, enc.last_ids_)

    new = make_frame(60, 30, 1, seed=12, start=end + day)
    new.index = np.arange(10**6, 10**6 + len(new))
    new = with_ids(new)
    served = pd.concat([frame[frame[T] == end], new]).drop(columns=TARGETS)  # the end's events sent again, then new ones
    everything = pd.concat([frame, new])
    want = pd.DataFrame(oracle(everything, KEYS["single"], TARGETS, labelled=np.arange(len(everything)) < len(frame)),
                        index=everything.index).loc[served.index]
    names = back.output_names()
    assert_features(back.transform(served)[names], {c: want[c].to_numpy() for c in names})
    lazy = history_features(dd.from_pandas(served, npartitions=4), enc, fit=False)
    tasks = [cloudpickle.dumps(task) for task in dict(lazy.__dask_graph__()).values()]
    assert sum(enc.last_ids_.tobytes() in task for task in tasks) == 1  # was one per state partition
    got = lazy.compute().set_index("tweet_id").loc[served["tweet_id"]]
    assert_features(got[names], {c: want[c].to_numpy() for c in names})

    # a state saved with the ids as a JSON list (the first code that kept them) loads alike
    legacy = json.loads(stem.with_suffix(".json").read_text()) | {"last_ids": enc.last_ids_[::-1].tolist()}
    stem.with_suffix(".json").write_text(json.dumps(legacy))
    (tmp_path / "hist_engaging_user_id.last_ids.parquet").unlink()
    np.testing.assert_array_equal(HistoryEncoder.load(tmp_path, "hist_engaging_user_id").last_ids_, enc.last_ids_)
    stem.with_suffix(".json").write_text(json.dumps(legacy | {"last_ids": n_end}))  # the count, the file gone
    with pytest.raises(DataError, match=r"hist_engaging_user_id\.last_ids\.parquet: cannot read the column 'row_id'"):
        HistoryEncoder.load(tmp_path, "hist_engaging_user_id")


def test_served_time_since_a_positive_before_1970():
    """Negative (pre-1970) times: the state's last positive time is the positive's, not the -1 of the
    rows without one (a max over both took -1, and served dt_prev_like read 1 s instead of 30 days)."""
    day = 86400
    train = pd.DataFrame({"u": [1, 1, 1, 1], T: [-30 * day, -20 * day, -5, -5], "like": np.int8([1, 0, 1, 0])})
    new = pd.DataFrame({"u": [1], T: [0], "like": np.int8([0])}, index=[9])
    enc = HistoryEncoder("u", ["like"], windows=(3600,)).fit(train)
    assert enc.transform(new)["hist_u_dt_prev_like"].tolist() == [5]
    old = HistoryEncoder("u", ["like"], windows=(3600,)).fit(train.iloc[:2])
    assert old.transform(new)["hist_u_dt_prev_like"].tolist() == [30 * day]


def test_times_near_the_int64_limits_match_the_oracle_and_beyond_them_are_refused():
    """Times up to +-(2**62 - 1) s with windows up to 2**61 s: exact (a time minus a window near int64's
    minimum wrapped round, and a window count came out -2); beyond, a one-line error naming the column."""
    edge = 2**62 - 1
    ts = [-edge, -edge, -edge + 3600, -1, 0, 0, edge - 3600, edge]
    frame = pd.DataFrame({"engaging_user_id": [1, 1, 1, 1, 1, 2, 1, 1], T: np.array(ts, dtype="int64"),
                          "like": np.int8([1, 0, 1, 0, 1, 1, 0, 1]), "reply": np.int8([0, 1, 0, 0, 1, 0, 1, 0])})
    windows = (3600, 2**61)
    key = KEYS["single"]
    out = encoder(key, windows).fit_transform(frame)
    assert_features(out, oracle(frame, key, TARGETS, windows))
    names = encoder(key, windows).output_names(TARGETS)
    served = encoder(key, windows).fit(frame.iloc[:-1]).transform(frame.iloc[-1:])
    pd.testing.assert_frame_equal(served[names], out.iloc[-1:][names])
    for t in (-(2**62), 2**62, np.iinfo(np.int64).min):
        beyond = frame.assign(**{T: frame[T].where(frame.index != 3, t)})
        with pytest.raises(ValueError, match=rf"column '{T}' holds {t}, beyond the \+-2\*\*62 seconds"):
            encoder(key, windows).fit_transform(beyond)
    with pytest.raises(ValueError, match="under 2\\*\\*62 seconds, got 4611686018427387904"):
        HistoryEncoder(key, TARGETS, (2**62,)).fit(frame)


@settings(max_examples=12, deadline=None)
@given(frame=frames, cut=st.integers(1, 16), seed=st.integers(0, 10**6), key=st.sampled_from(sorted(KEYS)),
       parts=st.tuples(st.integers(1, 4), st.integers(1, 3)), limit=st.sampled_from([None, 0]))
def test_dask_form_over_partitions_matches_the_oracle(frame, cut, seed, key, parts, limit):
    """The dask form on 1-4 partitions (a key's same-second events may start in different ones), with an
    in-memory or a partitioned state, equals the oracle on training rows and the in-memory serving."""
    import dask.dataframe as dd

    key, frame = KEYS[key], frame.reset_index(names="row")
    train, new = split(frame, at(frame, cut), seed)
    if len(train) == 0:
        return
    enc = encoder(key)
    got = history_features(dd.from_pandas(train, npartitions=parts[0], sort=False), enc, limit=limit).compute()
    got = got.set_index("row").loc[train["row"]]
    assert_features(got, oracle(train, key, TARGETS))
    if len(new):
        served = history_features(dd.from_pandas(new, npartitions=parts[1], sort=False), enc, fit=False).compute()
        want = encoder(key).fit(train).transform(new).set_index("row")
        pd.testing.assert_frame_equal(served.set_index("row").loc[want.index], want)


def test_fitting_the_dask_form_reads_the_shuffled_rows_in_two_passes_whatever_the_limit():
    """After the shuffled rows are kept, the fit read them for their last time, then for the state (persisted,
    sized, gathered) and the row ids at that time apart: up to 5 round trips to a cluster. Now the last time and
    the rows' count take one pass, the state and the ids another (a state that may exceed the limit is sized in
    it); the state and ids are the same whatever the limit."""
    import dask.dataframe as dd
    from dask.callbacks import Callback

    frame = with_ids(make_frame(300, 10, 40, seed=5))
    passes = []

    class Passes(Callback):
        def _start(self, dsk):
            passes.append(dsk)

    fitted = {}
    for limit, want in ((None, 3), (10**6, 3), (0, 4)):  # the first pass keeps the shuffled rows (persist)
        enc = keyed_encoder(KEYS["single"])
        passes.clear()
        with Passes():
            history_features(dd.from_pandas(frame, npartitions=3), enc, limit=limit)
        assert len(passes) == want, (limit, len(passes))
        state = enc.state_.compute() if limit == 0 else enc.state_
        fitted[limit] = (state.sort_values(list(state.columns)).reset_index(drop=True), enc.last_ids_)
    for state, ids in fitted.values():
        pd.testing.assert_frame_equal(state, fitted[None][0])
        np.testing.assert_array_equal(ids, fitted[None][1])
    assert len(fitted[None][1]) > 0


@pytest.mark.parametrize("key", list(KEYS))
def test_rows_indexed_by_their_key_columns_match_the_oracle_and_keep_their_index(key):
    """An index whose levels are named like the key columns (``set_index(key, drop=False)``) made pandas refuse
    the key's groupby as ambiguous in fit_transform, transform and extend."""
    frame = make_frame(300, 6, 40, seed=3)
    train, later = frame[frame[T] < at(frame, 20)], frame[frame[T] >= at(frame, 20)]
    first, second = later[later[T] < at(frame, 30)], later[later[T] >= at(frame, 30)]
    indexed = frame.set_index(KEYS[key], drop=False)
    got = encoder(KEYS[key]).fit_transform(indexed)
    assert got.index.equals(indexed.index)
    assert_features(got, oracle(frame, KEYS[key], TARGETS))
    enc = encoder(KEYS[key]).fit(train.set_index(KEYS[key], drop=False)).extend(first.set_index(KEYS[key], drop=False))
    served = enc.transform(second.set_index(KEYS[key], drop=False), labels=False)
    want = encoder(KEYS[key]).fit(pd.concat([train, first])).transform(second, labels=False)
    pd.testing.assert_frame_equal(served.reset_index(drop=True), want.reset_index(drop=True))


# ---- label_time engagement: a positive counts from its engagement time ----------------------------------

ENGAGED = {x: f"{x}_at" for x in TARGETS}
#: Engagement delays: none (at the event), on and beside the 900 s grid of the frames' times and the 1 h window,
#: a day, and before the event (clamped to it).
DELAYS = np.array([0, 1, 899, 900, 901, 3600, 5400, 86400, -900])


def engaged_encoder(key: list[str], delay: int = 0) -> HistoryEncoder:
    return HistoryEncoder(key, TARGETS, WINDOWS, days=DAYS, rates=True, label_delay=delay, engagement=ENGAGED)


def with_engagements(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``frame`` with an engagement time per target (nullable Int64): its event time plus a delay of
    :data:`DELAYS` for most rows (negatives' are never read), null for some (positives: at the event)."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    for x, column in ENGAGED.items():
        at = pd.array(frame[T].to_numpy() + rng.choice(DELAYS, len(frame)), dtype="Int64")
        at[rng.random(len(frame)) < 0.15] = pd.NA
        out[column] = at
    return out


def test_engagement_counts_a_positive_only_after_its_engagement_time():
    """An impression at 0 liked at 7200: not a like for events at 3600 or 7200 (strictly before), one at 7201;
    the 1 h window counts it by its engagement time; dt_prev_like is from the engagement."""
    df = pd.DataFrame({"u": [1, 1, 1, 1, 1], T: [0, 3600, 7200, 7201, 10800], "like": np.int8([1, 0, 0, 0, 0]),
                       "like_at": pd.array([7200, None, None, None, None], dtype="Int64")})
    out = HistoryEncoder("u", ["like"], (3600,), rates=True, engagement={"like": "like_at"}).fit_transform(df)
    assert out["hist_u_like"].tolist() == [0, 0, 0, 1, 1]
    assert out["hist_u_like_1h"].tolist() == [0, 0, 0, 1, 1]  # engaged at 7200: in [t - 1h, t) up to 10800
    assert out["hist_u_dt_prev_like"].tolist() == [-1, -1, -1, 1, 3600]
    assert out["hist_u_n"].tolist() == [0, 1, 2, 3, 4] and out["hist_u_dt_prev"].tolist() == [-1, 3600, 3600, 1, 3599]
    assert out["hist_u_like_rate"].tolist()[1:] == [0.0, 0.0, 1 / 3, 1 / 4]  # over the labelled earlier events
    event = HistoryEncoder("u", ["like"], (3600,), rates=True).fit_transform(df)
    assert event["hist_u_like"].tolist() == [0, 1, 1, 1, 1]  # event label times (the default): from the impression on


@settings(max_examples=40, deadline=None)
@given(frame=frames, key=st.sampled_from(sorted(KEYS)), delay=st.sampled_from([0, 0, 900, 3600]), seed=st.integers(0, 10**6))
def test_engagement_fit_transform_matches_the_oracle(frame, key, delay, seed):
    """Never a positive whose engagement time (+ label_delay) is >= t: the oracle's definition, row by row."""
    key, frame = KEYS[key], with_engagements(frame, seed)
    out = engaged_encoder(key, delay).fit_transform(frame)
    pd.testing.assert_frame_equal(out[frame.columns], frame)
    assert_features(out, oracle(frame, key, TARGETS, delay=delay, engaged=ENGAGED))


@settings(max_examples=30, deadline=None)
@given(frame=frames, cut=st.integers(1, 16), seed=st.integers(0, 10**6), key=st.sampled_from(sorted(KEYS)),
       delay=st.sampled_from([0, 0, 900]))
def test_engagement_serving_continues_training(frame, cut, seed, key, delay, tmp_path_factory):
    """Rows after the end of training T: served with their labels, as computed in one training frame; served
    without (labels=False), as the oracle with training's labels only, training positives engaged after T
    (kept in the state) counting once engaged; the same after save / load."""
    key, frame = KEYS[key], with_engagements(frame, seed)
    train, new = split(frame, at(frame, cut), seed)
    if len(train) == 0:
        return
    enc = engaged_encoder(key, delay).fit(train)
    names = enc.output_names()
    whole = engaged_encoder(key, delay).fit_transform(pd.concat([train, new]))
    pd.testing.assert_frame_equal(enc.transform(new)[names], whole.loc[new.index, names])
    served = new.drop(columns=[*TARGETS, *ENGAGED.values()])
    both = pd.concat([train, new])
    want = oracle(both, key, TARGETS, labelled=np.arange(len(both)) < len(train), delay=delay, engaged=ENGAGED)
    assert_features(enc.transform(served)[names], {k: v[len(train):] for k, v in want.items()})
    directory = tmp_path_factory.mktemp("state")
    enc.save(directory)
    back = HistoryEncoder.load(directory, enc.prefix + "_" + enc.name)
    assert back.engagement == ENGAGED
    pd.testing.assert_frame_equal(back.transform(served, labels=False), enc.transform(served, labels=False))


@settings(max_examples=25, deadline=None)
@given(frame=frames, cuts=st.tuples(st.integers(1, 16), st.integers(0, 8)), seed=st.integers(0, 10**6),
       key=st.sampled_from(sorted(KEYS)))
def test_engagement_extending_the_state_equals_fitting_on_both(frame, cuts, seed, key):
    key, frame = KEYS[key], with_engagements(frame, seed)
    train, events, new = split3(frame, cuts, seed)
    if len(train) == 0:
        return
    extended = engaged_encoder(key).fit(train).extend(events)
    served = new.drop(columns=TARGETS)
    everything = pd.concat([train, events, new])
    want = oracle(everything, key, TARGETS, labelled=np.arange(len(everything)) < len(train) + len(events), engaged=ENGAGED)
    assert_features(extended.transform(served)[extended.output_names()], {k: v[len(train) + len(events):] for k, v in want.items()})


@settings(max_examples=12, deadline=None)
@given(frame=frames, cut=st.integers(1, 16), seed=st.integers(0, 10**6), key=st.sampled_from(sorted(KEYS)),
       parts=st.tuples(st.integers(1, 4), st.integers(1, 3)), limit=st.sampled_from([None, 0]))
def test_engagement_dask_form_over_partitions_matches_the_oracle(frame, cut, seed, key, parts, limit):
    """Whatever the partition counts and state form: the oracle on training rows, the in-memory serving on new ones."""
    import dask.dataframe as dd

    key, frame = KEYS[key], with_engagements(frame, seed).reset_index(names="row")
    train, new = split(frame, at(frame, cut), seed)
    if len(train) == 0:
        return
    enc = engaged_encoder(key)
    got = history_features(dd.from_pandas(train, npartitions=parts[0], sort=False), enc, limit=limit).compute()
    assert_features(got.set_index("row").loc[train["row"]], oracle(train, key, TARGETS, engaged=ENGAGED))
    if len(new):
        served = history_features(dd.from_pandas(new, npartitions=parts[1], sort=False), enc, fit=False, labels=False).compute()
        want = engaged_encoder(key).fit(train).transform(new, labels=False).set_index("row")
        pd.testing.assert_frame_equal(served.set_index("row").loc[want.index], want)


def test_engagement_needs_its_time_columns():
    frame = make_frame(20, 3, 8, seed=1)
    with pytest.raises(ValueError, match="like_at"):
        engaged_encoder(KEYS["single"]).fit_transform(frame)
    enc = engaged_encoder(KEYS["single"]).fit(with_engagements(frame, 2))
    with pytest.raises(ValueError, match="like_at"):
        enc.transform(frame.assign(**{T: frame[T] + 10**6}))  # labels without their engagement times
    with pytest.raises(ValueError, match="no engagement time column for target.*'reply'"):
        HistoryEncoder(KEYS["single"], TARGETS, engagement={"like": "like_at"}).fit(with_engagements(frame, 2))


def test_label_time_engagement_reads_recsys_engagement_timestamps_and_refuses_tables():
    from rapids_engage.config import ConfigError, FeaturesConfig, HistoryConfig
    from rapids_engage.features.build import FeatureBuilder
    from rapids_engage.features.key_checks import check_keys
    from rapids_engage.layout import RECSYS, Layout, Target

    cfg = FeaturesConfig(history=HistoryConfig(keys=[["engaging_user_id"]], label_time="engagement"))
    builder = FeatureBuilder(cfg, ["like", "quote"], RECSYS)
    assert builder.history_encoders[0].engagement == {"like": "like_timestamp", "quote": "retweet_with_comment_timestamp"}
    table = Layout("table", ("row_id",), "t", (Target("click", "click", "binary"),), user="u")
    cfg = FeaturesConfig(target_encoding=cfg.target_encoding.__class__(keys=[["u"]]), counts=[["u"]],
                         history=HistoryConfig(keys=[["u"]], label_time="engagement"))
    with pytest.raises(ConfigError, match=r"features.history.label_time: engagement .* which only RecSys data .* and "
                                          r"event logs \(data.table.events: <target>_time columns\) carry"):
        check_keys(cfg, table)
    cfg.history.label_time = "event"
    check_keys(cfg, table)
    assert FeatureBuilder(cfg, ["click"], table).history_encoders[0].engagement is None


def test_label_time_engagement_reads_an_event_logs_label_times():
    """An event log's layout names each target's labelling event time (``<target>_time``): ``auto`` resolves to
    ``engagement`` there (with history keys) and the history reads those columns; a plain table's stays ``event``.
    The layout file holds a target's time only where set (RecSys' and plain tables' unchanged)."""
    from rapids_engage.config import EventsSpec, FeaturesConfig, HistoryConfig, TableConfig
    from rapids_engage.config.table_spec import TargetSpec
    from rapids_engage.features.build import FeatureBuilder
    from rapids_engage.features.key_checks import check_keys
    from rapids_engage.features.label_times import label_time
    from rapids_engage.layout import RECSYS, Layout, table_layout

    log = table_layout(TableConfig(format="csv", time="ts", row_id=["u", "i", "ts"], user="u", item="i",
                                   events=EventsSpec("event", "view", 24, {"cart": "addtocart", "buy": "transaction"})))
    assert [(t.name, t.column, t.time) for t in log.targets] == [("cart", "cart", "cart_time"), ("buy", "buy", "buy_time")]
    assert Layout.from_dict(log.to_dict()) == log and "time" not in RECSYS.to_dict()["targets"][0]
    te = FeaturesConfig().target_encoding.__class__(keys=[["u"]])
    cfg = FeaturesConfig(target_encoding=te, counts=[["u"]], history=HistoryConfig(keys=[["u"]]))
    assert cfg.history.label_time == "auto" and label_time(cfg.history, log) == "engagement"
    check_keys(cfg, log)
    assert FeatureBuilder(cfg, ["buy"], log).history_encoders[0].engagement == {"buy": "buy_time"}
    plain = table_layout(TableConfig(format="csv", time="ts", row_id=["u"], user="u", targets={"click": TargetSpec("c")}))
    assert label_time(cfg.history, plain) == "event" and "time" not in plain.to_dict()["targets"][0]


def test_label_time_event_keeps_the_history_groups_signature():
    """A store version built before label_time lends its history groups to event label times (the default), not to
    engagement ones."""
    from rapids_engage.config import FeaturesConfig, HistoryConfig
    from rapids_engage.features.groups import groups, signatures

    cfg = FeaturesConfig(history=HistoryConfig(keys=[["engaging_user_id"]], label_time="event"))
    assert "label_time" not in groups(cfg)["hist_engaging_user_id"]["history"]
    before = signatures(cfg)["hist_engaging_user_id"]
    cfg.history.label_time = "engagement"
    assert groups(cfg)["hist_engaging_user_id"]["history"]["label_time"] == "engagement"
    assert signatures(cfg)["hist_engaging_user_id"] != before


def test_label_time_auto_is_engagement_on_recsys_data_and_event_on_tables():
    """The default counts a positive once it happened where the data say when (RecSys), else from its event; the
    resolved value, not ``auto``, is what the store's definition and signatures hold (an ``event`` one: those of
    versions built before ``auto``)."""
    from rapids_engage.config import FeaturesConfig, HistoryConfig, TargetEncodingConfig
    from rapids_engage.features.build import FeatureBuilder
    from rapids_engage.features.key_checks import check_keys
    from rapids_engage.features.label_times import resolve_label_time
    from rapids_engage.features.groups import groups
    from rapids_engage.layout import RECSYS, Layout, Target

    recsys = FeaturesConfig(history=HistoryConfig(keys=[["engaging_user_id"]]))
    assert recsys.history.label_time == "auto"
    resolved = resolve_label_time(recsys, RECSYS)
    assert resolved.history.label_time == "engagement" and recsys.history.label_time == "auto"  # a copy
    assert groups(resolved)["hist_engaging_user_id"]["history"]["label_time"] == "engagement"
    assert FeatureBuilder(recsys, ["like"], RECSYS).history_encoders[0].engagement == {"like": "like_timestamp"}
    # no history keys: nothing to count, and the definition stays that of the versions built before
    assert resolve_label_time(FeaturesConfig(), RECSYS).history.label_time == "event"

    table = Layout("table", ("row_id",), "t", (Target("click", "click", "binary"),), user="u")
    cfg = FeaturesConfig(target_encoding=TargetEncodingConfig(keys=[["u"]]), counts=[["u"]], history=HistoryConfig(keys=[["u"]]))
    check_keys(cfg, table)  # auto never asks a table for engagement times
    resolved = resolve_label_time(cfg, table)
    assert resolved.history.label_time == "event" and "label_time" not in groups(resolved)["hist_u"]["history"]
    assert FeatureBuilder(cfg, ["click"], table).history_encoders[0].engagement is None
    # given, a value is kept as it is
    cfg.history.label_time = "event"
    assert resolve_label_time(cfg, RECSYS).history.label_time == "event"


def test_history_state_of_a_categorical_key_under_pandas_2_groupby_default(monkeypatch):
    """pandas 2 (no longer supported) groups a categorical by every category unless told observed=True:
    the state's aggregate got a row of NaN times per category absent from one of its groupbys, and fit / extend
    failed ('Cannot convert non-finite values (NA or inf) to integer'). Emulated here by that default."""
    groupby = pd.DataFrame.groupby
    monkeypatch.setattr(pd.DataFrame, "groupby", lambda self, *a, observed=False, **k: groupby(self, *a, observed=observed, **k))
    events = pd.DataFrame({"user": pd.Categorical(["a", "b", "a"], categories=["a", "b", "z"]), T: [0, 10, 20],
                           "rid": [1, 2, 3], "like": [1, 0, 1]})
    state = HistoryEncoder("user", ["like"], time_column=T, row_key=["rid"]).fit(events).state_
    assert sorted(state["user"].astype(str)) == ["a", "a", "b"] and state.notna().all().all(), state
