"""The features of a row do not depend on the partitioning or on the number of workers."""

from __future__ import annotations

import dask.dataframe as dd
import pandas as pd
import pytest
from distributed import Client, LocalCluster

from rapids_engage.config import load_config
from rapids_engage.data import read_events
from rapids_engage.features import FeatureBuilder, add_labels
from rapids_engage.schema import ROW_KEY
from rapids_engage.split import time_split
from rapids_engage.synthetic import SyntheticSpec, generate

TARGETS = ["like", "retweet", "reply", "quote"]


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    root = tmp_path_factory.mktemp("inv")
    generate(root, SyntheticSpec(rows=20_000, days=5, seed=7))
    frame = add_labels(read_events(root / "data"), list(TARGETS)).compute()
    return frame.reset_index(drop=True)


def _features(
    events: pd.DataFrame, npartitions: int, n_workers: int, broadcast_limit: int | None = None, state_dir=None, scratch=None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    cfg = load_config().features
    cfg.broadcast_limit = broadcast_limit
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, Client(cluster):
        # persisted once: the rows are not shipped in the graph of every compute of the build (same partitions)
        frame = dd.from_pandas(events, npartitions=npartitions, sort=False).persist()
        train, valid, _ = time_split(frame, 24)
        builder = FeatureBuilder(cfg, TARGETS)
        names = builder.feature_names()
        tr = builder.fit_transform(train, scratch=scratch and scratch / "train")[[*ROW_KEY, *names]].compute()
        va = builder.transform(valid, scratch=scratch and scratch / "valid")[[*ROW_KEY, *names]].compute()
        if state_dir is not None:
            builder.save(state_dir)
    key = list(ROW_KEY)
    return tr.sort_values(key).reset_index(drop=True), va.sort_values(key).reset_index(drop=True)


@pytest.fixture(scope="module")
def base(events) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The reference: one partition, one worker, every key table broadcast."""
    return _features(events, npartitions=1, n_workers=1)


@pytest.mark.slow
def test_features_identical_for_any_partitioning_and_worker_count(events, base):
    base_train, base_valid = base
    for npart, workers in [(7, 2)]:
        train, valid = _features(events, npartitions=npart, n_workers=workers)
        pd.testing.assert_frame_equal(train, base_train, check_exact=False, rtol=0, atol=1e-12)
        pd.testing.assert_frame_equal(valid, base_valid, check_exact=False, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_partitioned_key_tables_on_disk_give_the_broadcast_features(events, base, tmp_path):
    """broadcast_limit 0: every key table stays partitioned on the workers and is shuffle-joined;
    the history state stays partitioned by key and meets the validation rows of its keys. With
    intermediates: disk (the build's frames written as parquet and read back, as on CPU by default):
    no value changes. (Partitioned tables held in memory: the next test's.)"""
    base_train, base_valid = base
    state, scratch = tmp_path / "state", tmp_path / "scratch"
    train, valid = _features(events, npartitions=5, n_workers=2, broadcast_limit=0, state_dir=state, scratch=scratch)
    pd.testing.assert_frame_equal(train, base_train, check_exact=False, rtol=0, atol=1e-12)
    pd.testing.assert_frame_equal(valid, base_valid, check_exact=False, rtol=0, atol=1e-12)
    # shuffled by the history key (its state, key tables and narrow columns read from there; the rows with their
    # history features are not kept too, their features computed once, for the rows written), then one shuffle of
    # the training rows per distinct key of the partitioned tables (target encodings, counts and per-day counts together)
    features = load_config().features
    keys = {tuple(k) for k in [*features.target_encoding.keys, *features.counts]}
    assert len(list((scratch / "train").iterdir())) == 1 + len(keys)
    # the serving state was written by the workers as parquet parts; read back, it serves the same features
    assert (state / "te_engaging_user_id.parquet").is_dir()
    assert (state / "hist_engaging_user_id.parquet").is_dir()  # the history state too: shuffled with the rows
    builder = FeatureBuilder.load(state, features)
    rows = events[events["tweet_timestamp"] > events["tweet_timestamp"].max() - 24 * 3600]
    served = builder.transform_frame(rows)[[*ROW_KEY, *builder.feature_names()]]
    served = served.sort_values(list(ROW_KEY)).reset_index(drop=True)
    pd.testing.assert_frame_equal(served, base_valid, check_exact=False, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_tables_are_partitioned_by_their_estimated_size(events, base):
    """Above the limit, only the tables whose estimated rows exceed it are reduced partitioned;
    the mixed build (intermediates in memory, as on GPU by default) gives the all-broadcast features."""
    cfg = load_config().features
    cfg.broadcast_limit = 3_000
    frame = dd.from_pandas(events, npartitions=4, sort=False)
    n_langs, n_pairs = events["language"].nunique(), len(events[["engaging_user_id", "engaged_with_user_id"]].drop_duplicates())
    assert n_langs * 1.1 < 3_000 < n_pairs  # the data straddle the limit
    outs = FeatureBuilder(cfg, TARGETS)._split_outs(frame, [["language"], ["engaging_user_id", "engaged_with_user_id"], None])
    assert outs == [1, 4, 1]
    base_train, base_valid = base
    train, valid = _features(events, npartitions=4, n_workers=2, broadcast_limit=3_000)
    pd.testing.assert_frame_equal(train, base_train, check_exact=False, rtol=0, atol=1e-12)
    pd.testing.assert_frame_equal(valid, base_valid, check_exact=False, rtol=0, atol=1e-12)


def test_serving_a_labelled_batch_in_memory_gives_the_features_of_transform(events):
    """Serving parity, without a cluster: transform_frame (Scorer, predict_records) of validation rows that carry
    their labels equals transform's features of the same rows, history included (a batch's own labels must not
    reach its history features), in the builder's feature order."""
    train, valid, _ = time_split(dd.from_pandas(events, npartitions=2, sort=False), 24)
    builder = FeatureBuilder(load_config().features, TARGETS)
    builder.fit_transform(train).compute(scheduler="sync")
    names = builder.feature_names()
    assert any(n.startswith("hist_") for n in names) and any(n.startswith("te_") for n in names)
    key = list(ROW_KEY)
    want = builder.transform(valid)[[*key, *names]].compute(scheduler="sync").sort_values(key).reset_index(drop=True)
    rows = valid.compute()
    assert set(TARGETS) <= set(rows.columns)  # labelled rows: the case a leak of the batch's labels would show
    served = builder.transform_frame(rows)[[*key, *names]].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(served, want, check_exact=False, rtol=0, atol=1e-12)


def test_without_daily_counts_a_row_served_alone_gets_its_batch_features(events):
    """daily_counts false: no cnt_day_* (counted over the scored batch), so the count and target
    encodings of a row do not depend on the rows scored with it."""
    cfg = load_config(overrides=["features.daily_counts=false", "features.history.keys=[]"]).features
    train, valid, _ = time_split(dd.from_pandas(events, npartitions=2, sort=False), 24)
    builder = FeatureBuilder(cfg, TARGETS)
    builder.fit_transform(train).compute(scheduler="sync")
    names = builder.feature_names()
    assert names and not [n for n in names if n.startswith("cnt_day_")]
    batch = valid.compute().iloc[:40]
    together = builder.transform_frame(batch)[names]
    alone = pd.concat([builder.transform_frame(batch.iloc[[i]]) for i in range(len(batch))])[names]
    pd.testing.assert_frame_equal(alone, together)
    with_daily = FeatureBuilder(load_config().features, TARGETS).feature_names()
    assert set(with_daily) - set(names) >= {f"cnt_day_{k}" for k in ("engaging_user_id", "first_hashtag")}


def test_a_history_key_on_a_content_column_extends_and_serves(events):
    """A history key may name a row-wise content column (``hour``), even with content features off: the
    serving state's extension (``predict --history``) and the audit's time-travel check computed the
    derived keys only, and failed with ``KeyError: ['hour'] not in index``."""
    cfg = load_config(overrides=["features.content=false", "features.history.keys=[[hour]]", "features.target_encoding.keys=[]",
                                 "features.counts=[]"]).features
    train, valid, _ = time_split(dd.from_pandas(events, npartitions=2, sort=False), 24)
    builder = FeatureBuilder(cfg, TARGETS)
    builder.fit_transform(train).compute(scheduler="sync")
    valid = valid.compute().sort_values("tweet_timestamp")
    extra, later = valid.iloc[: len(valid) // 2], valid.iloc[len(valid) // 2:]
    builder.extend_history(extra)
    seen = pd.concat([train.compute(), extra])
    hours = pd.to_datetime(seen["tweet_timestamp"], unit="s", utc=True).dt.hour
    for _, row in later.iloc[::500].iterrows():
        served = builder.transform_frame(row.to_frame().T.astype(later.dtypes))
        hour = pd.Timestamp(row["tweet_timestamp"], unit="s", tz="UTC").hour
        assert served["hist_hour_n"].iloc[0] == ((hours == hour) & (seen["tweet_timestamp"] < row["tweet_timestamp"])).sum()


def test_the_audit_s_events_carry_every_column_a_key_names(events):
    """The time-travel check recomputes history from the raw events: a key on ``hour`` needs the content column."""
    from rapids_engage.features.key_columns import with_key_columns
    from rapids_engage.layout import RECSYS

    frame = dd.from_pandas(events.drop(columns=["hour"], errors="ignore"), npartitions=2)
    assert "hour" in with_key_columns(frame, RECSYS, [["engaging_user_id"], ["hour"]]).columns
    plain = with_key_columns(frame, RECSYS, [["engaging_user_id"]])
    assert "hour" not in plain.columns and "first_hashtag" in plain.columns  # derived keys always


def test_the_build_names_the_key_tables_it_kept_partitioned(events):
    """Which path a key table took (broadcast, or partitioned above features.broadcast_limit) was said nowhere:
    a limit that changed nothing could not be told from one silently ignored."""
    from rapids_engage.features.materialize import _log_partitioned

    cfg = load_config(overrides=["features.broadcast_limit=3000", "features.history.keys=[]"]).features
    train, _, _ = time_split(dd.from_pandas(events, npartitions=4, sort=False), 24)
    builder = FeatureBuilder(cfg, TARGETS)
    assert builder.partitioned is None
    builder.fit_transform(train)  # lazy, but the tables' paths are chosen here
    assert "counts engaging_user_id+engaged_with_user_id" in builder.partitioned
    assert "target encoding engaging_user_id+engaged_with_user_id" in builder.partitioned
    assert not [p for p in builder.partitioned if "language" in p.split()[-1].split("+") and "+" not in p]
    lines: list[str] = []
    _log_partitioned(builder, cfg, lines.append)
    assert len(lines) == 1 and lines[0].startswith(
        f"feature store: {len(builder.partitioned)} key table(s) estimated above features.broadcast_limit 3,000 rows kept partitioned: ")
    assert lines[0].endswith("; the others broadcast")


@pytest.fixture
def history_only(events):
    """(a FeatureBuilder of history features alone fitted on the training day, the validation rows by time,
    the engagement columns)."""
    cfg = load_config(overrides=["features.target_encoding.keys=[]", "features.counts=[]"]).features
    train, valid, _ = time_split(dd.from_pandas(events, npartitions=1, sort=False), 24)
    builder = FeatureBuilder(cfg, TARGETS)
    builder.fit_transform(train).compute(scheduler="sync")
    return builder, valid.compute().sort_values("tweet_timestamp"), [builder.layout.target(t).column for t in TARGETS]


def test_a_few_history_events_without_engagement_extend_the_state(history_only):
    """RecSys events hold no engagement more often than not: a small labelled batch without any (a minute's
    events) was refused as a test file's rows. Refused only when labelled events would hold none by chance
    with a negligible probability at the training positive rates."""
    from rapids_engage.data import DataError

    builder, valid, engagements = history_only
    quiet = valid[valid[engagements].isna().all(axis=1)]
    user = quiet["engaging_user_id"].iloc[0]
    batch = quiet[quiet["engaging_user_id"] == user].iloc[:3]
    later = batch.iloc[[-1]].assign(tweet_timestamp=batch["tweet_timestamp"].max() + 1)
    before = builder.transform_frame(later)["hist_engaging_user_id_n"].iloc[0]
    builder.extend_history(batch)
    assert builder.transform_frame(later)["hist_engaging_user_id_n"].iloc[0] == before + len(batch)
    with pytest.raises(DataError, match="history events hold no engagement at all"):  # a test file's rows
        builder.extend_history(valid.assign(**{c: pd.NA for c in engagements}).iloc[:200])


def test_the_refusal_of_a_large_engagement_free_batch_says_a_chance_above_zero(history_only):
    """A test file's worth of rows made the chance underflow to 0.0: 'with a chance under 0e+00'."""
    from rapids_engage.data import DataError

    builder, valid, engagements = history_only
    rows = pd.concat([valid] * (20_000 // len(valid) + 1)).assign(**{c: pd.NA for c in engagements})
    assert builder._no_engagement_chance(len(rows)) == 0.0  # underflows
    with pytest.raises(DataError, match="history events hold no engagement at all") as err:
        builder.extend_history(rows)
    assert "0e+00" not in str(err.value) and "under 2e-308" in str(err.value)


def test_history_events_without_engagement_are_refused_from_a_chance_under_one_in_a_million(history_only):
    """The no-engagement check's bound: the fewest events that would hold none with a chance under
    one in a million (NO_ENGAGEMENT_CHANCE) at the highest training rate are refused, one fewer extend the state (mutation round 3)."""
    import math

    from rapids_engage.data import DataError

    bound = 1e-6  # NO_ENGAGEMENT_CHANCE
    builder, valid, engagements = history_only
    rate = max(builder.history_encoders[0].positive_rates().values())
    n = math.floor(math.log(bound) / math.log(1 - rate)) + 1  # (1 - rate) ** n < the bound
    assert (1 - rate) ** n < bound <= (1 - rate) ** (n - 1) and 5 < n < 200
    quiet = valid.assign(**{c: pd.NA for c in engagements})
    with pytest.raises(DataError, match="history events hold no engagement at all"):
        builder.extend_history(quiet.iloc[:n])
    builder.extend_history(quiet.iloc[: n - 1])


def test_rows_indexed_by_a_key_column_get_their_features_and_keep_their_index(events):
    """Rows indexed by a key column as well (``set_index("engaging_user_id", drop=False)``, a notebook's habit):
    pandas refuses a groupby on a column an index level is also named after ('is both an index level and a
    column label, which is ambiguous'), so Scorer.predict, transform_frame, extend_history and
    FeatureStore.transform failed on them. They now get the features of the same rows with a default
    index, the index named as it came."""
    cfg = load_config(overrides=["features.target_encoding.keys=[[engaging_user_id]]", "features.counts=[[engaging_user_id]]",
                                 "features.history.keys=[[engaging_user_id]]", "features.content=false"]).features
    train, valid, _ = time_split(dd.from_pandas(events, npartitions=2, sort=False), 24)
    builder = FeatureBuilder(cfg, TARGETS)
    builder.fit_transform(train).compute(scheduler="sync")
    names, key = builder.feature_names(), list(ROW_KEY)
    valid = valid.compute().sort_values("tweet_timestamp", kind="stable").reset_index(drop=True)
    extra, rows = valid.iloc[: len(valid) // 2], valid.iloc[len(valid) // 2:]
    builder.extend_history(extra.set_index("engaging_user_id", drop=False))
    want = builder.transform_frame(rows)[names]
    indexed = rows.set_index("engaging_user_id", drop=False)
    served = builder.transform_frame(indexed)
    assert served.index.equals(indexed.index)
    pd.testing.assert_frame_equal(served[names].reset_index(drop=True), want.reset_index(drop=True))
    lazy = builder.transform(indexed)[[*key, *names]].compute(scheduler="sync")
    assert lazy.index.name == "engaging_user_id" and (lazy.index == lazy["engaging_user_id"]).all()
    by_key = lazy.reset_index(drop=True).sort_values(key).reset_index(drop=True)
    want_by_key = builder.transform_frame(rows)[[*key, *names]].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(by_key, want_by_key, check_exact=False, rtol=0, atol=1e-12)


def test_engagement_label_times_come_from_the_recsys_timestamps(events):
    """``label_time: engagement``: the build carries the ``<engagement>_timestamp`` columns to the history (train: in
    frame; valid: served from the state), and no further unless asked to, and the values are the encoder's on those
    times, not the event-time ones."""
    from rapids_engage.features.configured_encoders import history_encoder
    from rapids_engage.features.label_times import engagement_times
    from rapids_engage.layout import RECSYS
    from rapids_engage.schema import EVENT_TIME

    cfg = load_config().features
    cfg.target_encoding.keys, cfg.counts, cfg.content, cfg.history.label_time = [], [], False, "engagement"
    train, valid, _ = time_split(dd.from_pandas(events, npartitions=3, sort=False), 24)
    builder = FeatureBuilder(cfg, TARGETS)
    names, key = builder.feature_names(), list(ROW_KEY)
    engagement = engagement_times(cfg.history, RECSYS, TARGETS)
    carried = list(engagement.values())
    assert set(carried) <= set(builder.fit_transform(train, carry=carried).columns)
    features = builder.fit_transform(train)
    assert not set(carried) & set(features.columns)  # dropped once the history has read them: not shuffled further
    got = [features[[*key, *names]].compute(), builder.transform(valid)[[*key, *names]].compute()]
    enc = history_encoder(cfg.history, ["engaging_user_id"], TARGETS, EVENT_TIME, engagement=engagement)
    train, valid = train.compute(), valid.compute()
    want = [enc.fit_transform(train), enc.transform(valid, labels=False)]
    for g, w in zip(got, want):
        pd.testing.assert_frame_equal(g.sort_values(key).reset_index(drop=True), w[[*key, *names]].sort_values(key).reset_index(drop=True))
    at_events = history_encoder(cfg.history, ["engaging_user_id"], TARGETS, EVENT_TIME).fit_transform(train)
    assert (at_events["hist_engaging_user_id_like"] != want[0]["hist_engaging_user_id_like"]).any()  # the times were read
