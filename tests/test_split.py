"""The forward-in-time split and its refusals: a nearly empty side, a target with nothing to learn."""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from rapids_engage.data import DataError
from rapids_engage.split import time_split

DAY = 86_400


def events(n: int = 3_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"t": 1_600_000_000 + rng.integers(0, 10 * DAY, n), "like": (rng.random(n) < 0.3).astype("int8")})


def test_split_at_the_cutoff():
    df = events()
    train, valid, info = time_split(dd.from_pandas(df, npartitions=3), 24, "t", ["like"])
    train, valid = train.compute(), valid.compute()
    assert info.cutoff == df["t"].max() - 24 * 3600
    assert (train["t"] <= info.cutoff).all() and (valid["t"] > info.cutoff).all() and len(train) + len(valid) == len(df)


def test_a_stray_far_future_time_is_refused():
    """One mistyped time decades ahead would leave its row alone in the validation window."""
    df = events()
    df.loc[5, "t"] = 2_900_000_000
    with pytest.raises(DataError, match=r"validation side of the split holds 1 of 3,000 rows.*2061.*outliers"):
        time_split(dd.from_pandas(df, npartitions=3), 24, "t", ["like"])


def test_events_all_at_one_time_are_refused_saying_so():
    """Not 'valid_hours covers the whole data (0.0 h); lower it': no valid_hours splits them."""
    df = events().assign(t=1_600_000_000)
    with pytest.raises(DataError, match=r"^every row has the same t, 2020-09-13 12:26"):
        time_split(dd.from_pandas(df, npartitions=3), 24, "t", ["like"])


@pytest.mark.parametrize("value", [0, 1])
def test_a_constant_target_is_refused(value):
    """E.g. every positive row of a target quarantined at ingest: training would learn nothing."""
    df = events().assign(hot=np.int8(value))
    with pytest.raises(DataError, match=f"target 'hot' is {value} on all"):
        time_split(dd.from_pandas(df, npartitions=3), 24, "t", ["like", "hot"])


def test_rows_at_the_cutoff_are_training_rows():
    """Train: time <= cutoff; validation: time > cutoff (a row exactly at the cutoff is a training row)."""
    t0 = 1_600_000_000
    times = [t0, t0 + 1, t0 + DAY, t0 + DAY, t0 + DAY + 1, t0 + 2 * DAY]  # cutoff = t0 + DAY
    df = pd.DataFrame({"t": times, "like": np.array([0, 1, 0, 1, 0, 1], dtype="int8")})
    train, valid, info = time_split(dd.from_pandas(df, npartitions=2), 24, "t", ["like"])
    assert info.cutoff == t0 + DAY
    assert sorted(train.compute()["t"]) == times[:4] and sorted(valid.compute()["t"]) == times[4:]
    # the count of training rows in the refusal of a constant target includes the rows at the cutoff
    with pytest.raises(DataError, match="target 'hot' is 0 on all 4 training rows"):
        time_split(dd.from_pandas(df.assign(hot=np.int8(0)), npartitions=2), 24, "t", ["like", "hot"])


def test_predict_history_validation_takes_the_events_after_the_cutoff_only(tmp_path):
    """``predict --history validation`` folds in the run's validation events: time > cutoff, as the split
    made them (a training row at the cutoff must not be counted a second time)."""
    import json

    from rapids_engage.backend import CPU
    from rapids_engage.predict import history_events

    t0 = 1_600_000_000
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"t": [t0, t0 + DAY, t0 + DAY + 1, t0 + 2 * DAY], "like": [0, 1, 0, 1]}).to_parquet(data / "part.0.parquet")
    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    (run / "report.json").write_text(json.dumps({"split": {"data_dir": str(data), "cutoff": t0 + DAY}}))
    got = history_events("validation", run / "models", CPU, "t")
    assert sorted(got["t"]) == [t0 + DAY + 1, t0 + 2 * DAY]


@pytest.mark.parametrize("gap, why", [("24", "key split.gap_hours is a string, not a number or null"),
                                       (-24, "key split.gap_hours is -24, below 0"),
                                       (float("nan"), "key split.gap_hours is nan, not a finite number"),
                                       (float("inf"), "key split.gap_hours is inf, not a finite number"),
                                       ({"cutoff": float("inf")}, "key split.cutoff is inf, not a finite number")])
def test_predict_history_validation_refuses_a_damaged_gap(tmp_path, gap, why):
    """A report.json whose ``split.gap_hours`` is not a number of hours >= 0 (edited by hand, damaged) was a
    ValueError traceback (text) or a filter that left purged rows out (negative), and a NaN / Infinity gap or cut-off
    (JSON's NaN, Infinity) a ValueError naming no file / an OverflowError traceback: now it names the file and key."""
    import json

    from rapids_engage.atomic import DamagedFile
    from rapids_engage.backend import CPU
    from rapids_engage.predict import history_events

    (tmp_path / "data").mkdir()
    (tmp_path / "models").mkdir()
    report = tmp_path / "report.json"
    split = {"data_dir": str(tmp_path / "data"), "cutoff": 1_600_000_000} | (gap if isinstance(gap, dict) else {"gap_hours": gap})
    report.write_text(json.dumps({"split": split}))
    with pytest.raises(DamagedFile, match=f"^{report} is damaged \\({why}\\)"):
        history_events("validation", tmp_path / "models", CPU, "t")


def test_rows_without_a_time_are_refused_not_lost():
    """A null time is neither <= nor > the cut-off: such rows were silently in neither split (hand-made parquet
    of data.source: parquet), while the side checks counted them as training rows."""
    df = events().astype({"t": "Int64"})
    df.loc[:9, "t"] = pd.NA
    with pytest.raises(DataError, match=r"^10 row\(s\) have no t \(null\)"):
        time_split(dd.from_pandas(df, npartitions=3), 24, "t", ["like"])


@pytest.mark.parametrize("hours", [0, -1])
def test_a_window_of_no_hours_is_refused(hours):
    """Not 'the validation side of the split holds 0 of 3,000 rows' (a data problem): the setting is wrong."""
    with pytest.raises(ValueError, match=r"^split.valid_hours must be > 0"):
        time_split(dd.from_pandas(events(), npartitions=3), hours, "t", ["like"])


def test_a_window_under_a_second_is_refused_naming_valid_hours():
    """0.0001 h is 0.36 s, which rounds to a 0 s window: refused, but the message blamed a far-off time in the data
    (the config refuses it when loaded: test_config)."""
    with pytest.raises(ValueError, match=r"^split.valid_hours=0.0001 is 0.36 s, which rounds to no window"):
        time_split(dd.from_pandas(events(), npartitions=3), 0.0001, "t", ["like"])
    df = events()
    df.loc[::2, "t"] = df["t"].max()  # half the rows in the last second
    _, _, info = time_split(dd.from_pandas(df, npartitions=3), 0.0003, "t", ["like"])
    assert info.max_time - info.cutoff == 1  # 1.08 s: one second


def test_the_window_is_valid_hours_to_the_nearest_second():
    """1.005 h is 3,618 s, but 1.005 * 3600 is 3617.9999999999995 in floating point: truncated, a second off."""
    df = events()
    _, _, info = time_split(dd.from_pandas(df, npartitions=3), 1.005, "t", ["like"])
    assert info.cutoff == df["t"].max() - 3618
    assert (info.min_time, info.max_time) == (df["t"].min(), df["t"].max())


def test_a_window_over_the_whole_data_is_refused_as_such():
    """Not 'the training side of the split holds 0 of 3,000 rows': valid_hours is the setting to lower."""
    df = events()
    span = (df["t"].max() - df["t"].min()) / 3600
    assert span < 240
    with pytest.raises(ValueError, match=rf"^split.valid_hours=240 covers the whole data \({span:.1f} h\)"):
        time_split(dd.from_pandas(df, npartitions=3), 240, "t", ["like"])


def test_a_window_reaching_the_first_time_leaves_its_rows_for_training():
    """cutoff == the first time: the rows at that time are training rows (time <= cutoff), not 'the whole data'."""
    t0 = 1_600_000_000
    df = pd.DataFrame({"t": [t0] * 10 + list(t0 + DAY + np.arange(10)), "like": np.int8([0, 1] * 10)})
    train, valid, info = time_split(dd.from_pandas(df, npartitions=2), (DAY + 9) / 3600, "t", ["like"])
    assert info.cutoff == t0
    assert train.compute()["t"].tolist() == [t0] * 10 and len(valid.compute()) == 10


def test_a_side_of_exactly_the_smallest_share_is_accepted_and_a_nearly_empty_training_side_refused():
    """Refused under MIN_SIDE_SHARE (0.1 %) of the rows, either side: 1 row of 1,000 is accepted, 1 of 1,001 not."""
    t0 = 1_600_000_000
    early = pd.DataFrame({"t": t0 + np.arange(999) * 60, "like": np.int8(np.arange(999) % 2)})
    one_late = pd.concat([early, pd.DataFrame({"t": [t0 + 10 * DAY], "like": np.int8([1])})], ignore_index=True)
    _, valid, _ = time_split(dd.from_pandas(one_late, npartitions=2), 24, "t", ["like"])
    assert len(valid.compute()) == 1
    late = pd.DataFrame({"t": t0 + 10 * DAY + np.arange(999) * 60, "like": np.int8(np.arange(999) % 2)})
    one_early = pd.concat([pd.DataFrame({"t": [t0], "like": np.int8([1])}), late], ignore_index=True)
    train, _, _ = time_split(dd.from_pandas(one_early, npartitions=2), 24, "t", [])
    assert len(train.compute()) == 1
    with pytest.raises(DataError, match=r"^the training side of the split holds 1 of 1,001 rows"):
        time_split(dd.from_pandas(pd.concat([one_early, late.tail(1)]), npartitions=2), 24, "t", [])


def test_a_target_constant_on_the_training_rows_only_is_refused():
    """Its validation positives do not make it learnable: the check is on the training labels."""
    df = events()
    cutoff = df["t"].max() - 24 * 3600
    df.loc[df["t"] <= cutoff, "like"] = 0
    assert df["like"].max() == 1
    with pytest.raises(DataError, match=rf"target 'like' is 0 on all {(df['t'] <= cutoff).sum():,} training rows"):
        time_split(dd.from_pandas(df, npartitions=3), 24, "t", ["like"])


def test_shuffle_labels_draws_each_partition_apart():
    """Each partition permutes with its own draw (the seed and the partition number): two partitions of the same
    days are not permuted alike."""
    from rapids_engage.split import shuffle_labels

    half = pd.DataFrame({"t": 1_600_000_000 + np.arange(40), "like": np.arange(40)})
    frame = dd.from_pandas(pd.concat([half, half], ignore_index=True), npartitions=2, sort=False)
    assert frame.npartitions == 2 and frame.map_partitions(len).compute().tolist() == [40, 40]
    shuffled = shuffle_labels(frame, ["like"], seed=1, time_column="t")["like"].compute().to_numpy()
    assert sorted(shuffled[:40]) == sorted(shuffled[40:]) == list(range(40))
    assert (shuffled[:40] != shuffled[40:]).any()


#: data.partition_rows, data.min_partition_rows and the worker threads (min_partitions) of read_events
#: (files of 100, 150, 250 and three of 500 rows, 4 days)
SIZINGS = {"a partition per file": (None, None, 1), "merged into one": (None, 10**6, 1), "merged into two": (None, 10**6, 2),
           "split": (450, None, 1), "split and merged": (450, 10**6, 1)}


@pytest.mark.parametrize("sizing", SIZINGS)
def test_validation_rows_are_read_from_the_files_that_hold_them_alone(tmp_path, sizing):
    """The validation side read every input file to keep the last day; the files whose footer statistics end at or
    before the cut-off are not read now, and every partition is the same (rows, order, dtypes; empty ones too)."""
    import dask

    from rapids_engage.data import read_events
    from rapids_engage.features.labels import add_labels
    from rapids_engage.schema import EVENT_TIME
    from rapids_engage.synthetic import SyntheticSpec, generate

    import pyarrow.parquet as pq

    generate(tmp_path, SyntheticSpec(rows=2_000, days=4, seed=3))  # a file of 500 rows a day
    first = sorted((tmp_path / "data").rglob("*.parquet"))[0]
    table = pq.read_table(first)
    for i, (start, end) in enumerate([(0, 100), (100, 250), (250, 500)]):  # small files to merge
        pq.write_table(table.slice(start, end - start), first.with_name(f"{first.stem}-{i}.parquet"))
    first.unlink()
    partition_rows, min_partition_rows, threads = SIZINGS[sizing]

    def read(**later):
        return add_labels(read_events(tmp_path / "data", partition_rows=partition_rows, min_partition_rows=min_partition_rows,
                                      min_partitions=threads, **later), ["like"])

    with dask.config.set(scheduler="synchronous"):
        _, whole, info = time_split(read(), 24, EVENT_TIME, ["like"])
        _, skipping, _ = time_split(read(), 24, EVENT_TIME, ["like"], later=lambda cutoff: read(later_than=cutoff))
        want = [whole.get_partition(i).compute() for i in range(whole.npartitions)]
        earlier = [f for f in sorted((tmp_path / "data").rglob("*.parquet"))
                   if pd.read_parquet(f, columns=[EVENT_TIME])[EVENT_TIME].max() <= info.cutoff]
        assert len(earlier) == 4 and (len(want) == 1 or not len(want[0]))  # files without validation rows; empty partitions
        for f in earlier:  # read, they would fail the validation rows
            f.unlink()
        assert skipping.npartitions == whole.npartitions
        print(sizing, [len(p) for p in want])
        for i, expected in enumerate(want):
            got = skipping.get_partition(i).compute()
            assert got.dtypes.equals(expected.dtypes), i
            pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True), check_exact=True)


def test_a_gap_purges_the_training_rows_before_the_validation_window_and_counts_them():
    """split.gap_hours: training rows end gap_hours before the cut-off, validation rows are those of no gap, the rows
    between are in neither split (the oracle: the frame filtered by hand)."""
    df = events(seed=1)
    frame = dd.from_pandas(df, npartitions=3)
    _, no_gap, plain = time_split(frame, 24, "t", ["like"])
    train, valid, info = time_split(frame, 24, "t", ["like"], gap_hours=36)
    cutoff = df["t"].max() - 24 * 3600
    in_gap = (df["t"] > cutoff - 36 * 3600) & (df["t"] <= cutoff)
    assert (info.cutoff, info.gap, info.train_end, info.purged) == (cutoff, 36 * 3600, cutoff - 36 * 3600, in_gap.sum())
    assert info.purged > 0 and (plain.gap, plain.purged, plain.train_end) == (0, 0, cutoff)
    pd.testing.assert_frame_equal(train.compute(), df[df["t"] <= cutoff - 36 * 3600])
    pd.testing.assert_frame_equal(valid.compute(), no_gap.compute())
    assert len(train.compute()) + info.purged + len(valid.compute()) == len(df)


def test_a_gap_rounds_to_whole_seconds_and_keeps_a_row_at_its_end_for_training():
    t0 = 1_600_000_000
    times = [t0, t0 + DAY - 3600, t0 + DAY - 3599, t0 + DAY, t0 + 2 * DAY]  # cutoff t0 + DAY, gap 1 h (3600.4 s)
    df = pd.DataFrame({"t": times, "like": np.int8([0, 1, 0, 1, 1])})
    train, valid, info = time_split(dd.from_pandas(df, npartitions=2), 24, "t", ["like"], gap_hours=3600.4 / 3600)
    assert info.gap == 3600 and info.purged == 2
    assert sorted(train.compute()["t"]) == times[:2] and valid.compute()["t"].tolist() == times[4:]


def test_a_gap_that_purges_every_training_row_is_refused_naming_gap_hours():
    df = events()
    span = (df["t"].max() - df["t"].min()) / 3600
    with pytest.raises(ValueError, match=r"^split.gap_hours=300 purges every training row: .* lower split.gap_hours"):
        time_split(dd.from_pandas(df, npartitions=3), 24, "t", ["like"], gap_hours=300)
    assert span - 24 < 300


def test_a_gap_that_leaves_too_few_training_rows_is_refused_naming_gap_hours():
    """Not the valid_hours message (the validation window is right): the gap took the training side."""
    t0 = 1_600_000_000
    df = pd.DataFrame({"t": [t0] + list(t0 + 2 * DAY + np.arange(1_999) * 60), "like": np.int8([1] + [0, 1] * 999 + [0])})
    cutoff = df["t"].max() - 24 * 3600
    purged = int(((df["t"] > t0) & (df["t"] <= cutoff)).sum())
    with pytest.raises(DataError, match=rf"^split.gap_hours=47 purges {purged:,} of the {purged + 1:,} rows before the "
                                        r"validation window, leaving 1 of 2,000 rows for training; lower split.gap_hours"):
        time_split(dd.from_pandas(df, npartitions=2), 24, "t", ["like"], gap_hours=47)


def test_the_constant_target_check_counts_the_training_rows_left_by_the_gap():
    df = events()
    cutoff = df["t"].max() - 24 * 3600
    df.loc[df["t"] <= cutoff - 24 * 3600, "like"] = 0  # positives in the gap only
    n_train = int((df["t"] <= cutoff - 24 * 3600).sum())
    time_split(dd.from_pandas(df, npartitions=3), 24, "t", ["like"])  # learnable with the gap's rows
    with pytest.raises(DataError, match=rf"target 'like' is 0 on all {n_train:,} training rows"):
        time_split(dd.from_pandas(df, npartitions=3), 24, "t", ["like"], gap_hours=24)


@pytest.mark.parametrize("hours", [-1, float("nan"), float("inf")])
def test_a_gap_out_of_range_is_refused(hours):
    with pytest.raises(ValueError, match=r"^split.gap_hours must be a number of hours >= 0"):
        time_split(dd.from_pandas(events(), npartitions=3), 24, "t", ["like"], gap_hours=hours)


def test_shuffle_labels_keeps_the_columns_dtypes_and_nulls():
    """A label and its engagement time move together, their dtypes and nulls kept (an engagement time is null where
    the row has no positive): through the columns' arrays a nullable Int64 came back float64 on pandas, and cudf
    refuses the array of a column with nulls. A repeated index label stays where it was."""
    from rapids_engage.split import shuffle_labels

    n = 60
    like = np.arange(n) % 3 == 0
    part = pd.DataFrame({
        "t": 1_600_000_000 + np.arange(n) * 7_200,  # 5 days of 12 rows
        "like": pd.array(np.where(like, 1, 0), dtype="Int8"),
        "like_at": pd.array(np.where(like, 1_600_000_000 + np.arange(n), None), dtype="Int64"),
    }, index=np.arange(n) // 2)
    part.loc[5, "like"] = pd.NA  # unlabelled rows (index 5: two of them)
    shuffled = shuffle_labels(dd.from_pandas(part, npartitions=1, sort=False), ["like", "like_at"], seed=1, time_column="t")
    got = shuffled.compute()
    assert got.dtypes.to_dict() == part.dtypes.to_dict() and got.index.equals(part.index)
    assert (got["t"].to_numpy() == part["t"].to_numpy()).all()
    assert not got["like"].equals(part["like"])  # permuted
    assert (got["like_at"].notna() == got["like"].eq(1).fillna(False)).all()  # each label with its own time
    for column in ("like", "like_at"):  # each day keeps its values
        per_day = [[sorted(g[column].fillna(-1).tolist()) for _, g in f.groupby(f["t"] // DAY)] for f in (got, part)]
        assert per_day[0] == per_day[1], column
