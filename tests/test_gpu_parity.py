"""CPU vs GPU on the same data (``gpu`` marker: skipped without a GPU and RAPIDS).

Run on a GPU machine with ``python -m pytest -m gpu``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from rapids_engage.backend import resolve
from rapids_engage.features import CountEncoder, TargetEncoder
from rapids_engage.features.counts import with_day
from rapids_engage.features.frames import group_ids
from rapids_engage.features.history import HistoryEncoder
from rapids_engage.pipeline import main

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module", autouse=True)
def gpu_backend():
    """The GPU backend initialised as the pipeline does it (cuML's library loaded before cudf);
    dask's dataframe backend is put back afterwards for the other test modules."""
    import dask

    with dask.config.set({"dataframe.backend": dask.config.get("dataframe.backend")}):
        yield resolve("1").init()


def _events(n=5_000, seed=0):
    """Events with a string key that has nulls, many ties in time and two labels."""
    rng = np.random.default_rng(seed)
    lang = rng.choice(["en", "ja", "es", ""], n).astype(object)
    lang[rng.random(n) < 0.1] = None
    return pd.DataFrame({
        "engaging_user_id": rng.integers(0, 200, n).astype("int64"),
        "language": lang,
        "tweet_timestamp": (1_612_396_800 + rng.integers(0, 3 * 96, n) * 900).astype("int64"),
        "like": rng.integers(0, 2, n).astype("int8"),
        "reply": (rng.random(n) < 0.1).astype("int8"),
    })


def _assert_same(gpu, cpu, columns):
    for c in columns:
        np.testing.assert_allclose(gpu[c].to_pandas().to_numpy(dtype=float, na_value=np.nan),
                                   cpu[c].to_numpy(dtype=float, na_value=np.nan), atol=1e-9, err_msg=c)


def _frame(n=20_000, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "tweet_id": rng.integers(0, 2**62, n),
        "engaging_user_id": rng.integers(0, 500, n),
        "language": rng.integers(0, 7, n),
        "like": rng.integers(0, 2, n).astype("int8"),
        "reply": (rng.random(n) < 0.05).astype("int8"),
    })


def test_target_encoding_null_keys_and_labels_on_gpu():
    """Null keys get the prior (out of fold and at serving) and missing labels are refused, as on CPU."""
    import cudf

    rows = _events().assign(tweet_id=np.arange(5_000, dtype="int64"))
    cpu_enc, gpu_enc = TargetEncoder("language", row_key="tweet_id"), TargetEncoder("language", row_key="tweet_id")
    cpu = cpu_enc.fit_transform(rows, ["like", "reply"])
    gpu = gpu_enc.fit_transform(cudf.from_pandas(rows), ["like", "reply"])
    _assert_same(gpu, cpu, ["te_language_like", "te_language_reply"])
    _assert_same(gpu_enc.transform(cudf.from_pandas(rows)), cpu_enc.transform(rows), ["te_language_like"])
    assert gpu["te_language_like"].notna().all() and gpu_enc.prior_ == pytest.approx(cpu_enc.prior_, abs=1e-12)
    with pytest.raises(ValueError, match="missing label values"):
        TargetEncoder("language", row_key="tweet_id").fit(cudf.from_pandas(rows.assign(like=rows["like"].astype(float).where(rows.index > 0))), "like")


def test_target_encoding_parity():
    import cudf

    train, test = _frame(seed=0), _frame(seed=1)
    cols = ["engaging_user_id", "language"]
    cpu = TargetEncoder(cols).fit_transform(train, ["like", "reply"])
    gpu = TargetEncoder(cols).fit_transform(cudf.from_pandas(train), ["like", "reply"]).to_pandas()
    for c in ("te_engaging_user_id__language_like", "te_engaging_user_id__language_reply"):
        np.testing.assert_allclose(gpu[c].to_numpy(), cpu[c].to_numpy(), atol=1e-6)
    enc_c, enc_g = TargetEncoder(cols).fit(train, ["like"]), TargetEncoder(cols).fit(cudf.from_pandas(train), ["like"])
    np.testing.assert_allclose(
        enc_g.transform(cudf.from_pandas(test)).to_pandas()["te_engaging_user_id__language_like"].to_numpy(),
        enc_c.transform(test)["te_engaging_user_id__language_like"].to_numpy(), atol=1e-6)


def test_encodings_by_key_parity():
    """Target encodings, counts and per-day counts computed where the key's rows are (the path of
    tables above ``broadcast_limit``), on dask_cudf and on dask.dataframe: the same values and tables."""
    import cudf
    import dask.dataframe as dd

    from rapids_engage.features.by_key import encode_by_key
    from rapids_engage.features.counts import DAY
    from rapids_engage.features.folds import assign_folds
    from rapids_engage.features.frames import Checkpoints

    events = with_day(_events().assign(tweet_id=np.arange(5_000)), "tweet_timestamp")
    key, targets = ["engaging_user_id", "language"], ["like", "reply"]
    out = {}
    for name, frame in (("cpu", events), ("gpu", cudf.from_pandas(events))):
        # each partition indexed from 0 (as parquet reads are): shuffled partitions repeat labels
        parts = dd.from_pandas(frame, npartitions=3, sort=False).map_partitions(lambda p: p.reset_index(drop=True))
        frame = assign_folds(parts, ["tweet_id", "engaging_user_id"], 5).persist()
        te, cnt = TargetEncoder(key, smooth=3), CountEncoder(key)
        te.set_fold_totals(te.fold_totals_graph(frame, targets).compute(), targets)
        rows = encode_by_key(frame, [te], [cnt], [cnt], Checkpoints(), 0).compute()
        rows = rows.to_pandas() if name == "gpu" else rows
        out[name] = rows.sort_values("tweet_id").reset_index(drop=True), te, cnt
    (cpu, te_c, cnt_c), (gpu, te_g, cnt_g) = out["cpu"], out["gpu"]
    _assert_same(cudf.from_pandas(gpu), cpu, [*te_c.output_names(), cnt_c.total_name, cnt_c.daily_name, DAY])
    assert te_g.prior_ == pytest.approx(te_c.prior_, abs=1e-12)
    for table_g, table_c in ((te_g.stats_, te_c.stats_), (cnt_g.counts_, cnt_c.counts_)):
        table_g = table_g.compute().to_pandas().sort_values(key, na_position="first").reset_index(drop=True)
        table_c = table_c.compute().sort_values(key, na_position="first").reset_index(drop=True)
        pd.testing.assert_frame_equal(table_g, table_c, check_dtype=False, atol=1e-9)


def test_string_features_on_repeated_labels_and_odd_whitespace():
    """Row-wise string features on a cudf partition whose labels repeat (partitions merged from
    several files) and whose text has no-break spaces and control characters: pandas' values."""
    import cudf

    from rapids_engage.features.content import _first_id
    from rapids_engage.features.table_content import _words, count_items

    lists = pd.Series(["ab" * 16 + "\t" + "cd" * 16, "", "zz"], index=[0, 0, 1], dtype="str")
    np.testing.assert_array_equal(_first_id(cudf.from_pandas(lists)).to_pandas().to_numpy(), _first_id(lists).to_numpy())
    text = pd.Series(["\xa0a b\xa0", "\x01x|y\x01", " ", None, "\u3000c|d|e", "|a||b| |", "a  b\t\tc", "x.(y*.", "\ta\t", "a | | |b \t|"],
                     index=[0, 0, 1, 1, 2, 2, 3, 3, 3, 4], dtype="str")  # empty, blank, leading and trailing items
    for sep in (" ", "|", "\t", ".", ".(", "||", " |"):
        np.testing.assert_array_equal(count_items(cudf.from_pandas(text), sep).to_pandas().to_numpy(), count_items(text, sep).to_numpy())
    words = pd.Series(["Show HN:  x", "Ask\tHN", "\xa0a \u3000 b\n", "\x01x y", None], dtype="str")  # runs of whitespace
    np.testing.assert_array_equal(_words(cudf.from_pandas(words)).to_pandas().to_numpy(), _words(words).to_numpy())
    from rapids_engage.config import TableConfig, TargetSpec
    from rapids_engage.features.table_content import derived_keys
    from rapids_engage.layout import table_layout

    layout = table_layout(TableConfig(format="csv", time="t", row_id=["id"], targets={"y": TargetSpec("y", "binary")}, url=["url"]))
    urls = pd.DataFrame({"url": pd.Series(["http://user@B.com:80/", "https://u:p@www.a.com/x", "https://medium.com/@s", "", None,
                                               " ", "\xa0http://c.org/ \n"], dtype="str")})  # blank; padded
    np.testing.assert_array_equal(derived_keys(cudf.from_pandas(urls), layout)["url_domain"].to_pandas().to_numpy(),
                                  derived_keys(urls, layout)["url_domain"].to_numpy())


def test_list_counts_mentions_and_validation_read_written_after_the_h200_session(tmp_path):
    """Code first written after the H200 session (commits 6981be8, 046c2ac, 68db60b), reviewed against the cudf
    26.10 docs and libcudf's regex source but never run on a GPU: the list count without the regex (literal
    ``str.len`` / ``str.replace``), n_mentions' two regex counts (``[^\\t]`` matches a newline in libcudf as in
    Python), both on dask_cudf's meta frame first (where cudf 26.10 gave ``bool[pyarrow]`` results once,
    43db5fe), and ``read_events(later_than=)``'s empty partitions made from that meta: each against pandas."""
    import cudf

    from rapids_engage.data import input_footers, read_events
    from rapids_engage.features.key_columns import _rowwise
    from rapids_engage.features.content import _token_counts, content_features, feature_names
    from rapids_engage.features.table_content import _plain_count_items, count_items
    from rapids_engage.synthetic import SyntheticSpec, generate

    plain = {"\t": pd.Series(["137\t1\t137", "137\t137", "1137\t1370", "", "101\t\xe9\t137", "137"], index=[0, 0, 1, 2, 2, 3], dtype="str"),
             " ": pd.Series(["a b c", "x", "", "\xe9 d"], dtype="str")}
    for sep, lists in plain.items():
        assert _plain_count_items(lists, sep) is not None  # the path without the regex, on both
        np.testing.assert_array_equal(count_items(cudf.from_pandas(lists), sep).to_pandas().to_numpy(), count_items(lists, sep).to_numpy())
    tokens = pd.Series(["137\t137", "137\n\t137", " 137\t137 ", "1137\t1370\t137", "", "\t137\t\t137\t", "137\t\xe9137"], dtype="str")
    got = _token_counts(cudf.from_pandas(tokens), {"n": 137})["n"]
    assert str(got.dtype) == "int32" and got.to_pandas().tolist() == _token_counts(tokens, {"n": 137})["n"].tolist() == [2, 1, 0, 1, 0, 2, 1]

    generate(tmp_path, SyntheticSpec(rows=2_000, days=3, seed=2))
    footers = input_footers(tmp_path / "data")
    whole = read_events(tmp_path / "data", footers=footers)
    cut = int(whole["tweet_timestamp"].max().compute()) - 3600
    later = read_events(tmp_path / "data", later_than=cut, footers=footers)
    assert type(later._meta).__module__.startswith("cudf") and later.npartitions == whole.npartitions
    parts = [later.get_partition(i).compute() for i in range(later.npartitions)]
    empty, read = [p for p in parts if len(p) == 0], [p for p in parts if len(p)]
    assert empty and read  # files without rows after the cut stand as empty partitions of the meta
    assert dict(empty[0].dtypes) == dict(read[0].dtypes) == dict(whole._meta.dtypes)
    merged = read_events(tmp_path / "data", later_than=cut, footers=footers, min_partition_rows=10**6)  # concatenated on a worker
    assert merged.npartitions == 1
    valid = merged[merged["tweet_timestamp"] > cut].compute().to_pandas().reset_index(drop=True)
    pd.testing.assert_frame_equal(valid, whole[whole["tweet_timestamp"] > cut].compute().to_pandas().reset_index(drop=True))
    gpu = _rowwise(merged, content_features).compute().to_pandas()  # content_features ran on the dask_cudf meta first
    cpu = content_features(merged.compute().to_pandas())
    for name in feature_names():
        np.testing.assert_allclose(gpu[name].to_numpy(dtype=float), cpu[name].to_numpy(dtype=float), rtol=1e-12, err_msg=name)


def test_pipeline_cpu_gpu_store_parity_and_rce(tmp_path):
    """The whole pipeline on both backends: every stored feature equal (integers exactly, floats
    within 1e-6), then RCE close (the boosters differ: GPU and CPU hist build different sketches)."""
    common = ["--rows", "200000", "--quiet", "--debug", "--set", f"data.cache_dir={tmp_path / 'cache'}"]
    assert main(["--gpus", "0", "--out", str(tmp_path / "cpu"), *common]) == 0
    assert main(["--gpus", "1", "--out", str(tmp_path / "gpu"), *common]) == 0
    cpu = json.loads((tmp_path / "cpu" / "report.json").read_text())
    gpu = json.loads((tmp_path / "gpu" / "report.json").read_text())
    assert gpu["backend"] == "gpu" and cpu["backend"] == "cpu"
    assert cpu["rows"] == gpu["rows"] and cpu["features"] == gpu["features"]
    key = ["tweet_id", "engaging_user_id"]
    for split in ("train", "valid"):
        frames = [pd.read_parquet(Path(r["store"]["path"]) / r["store"]["version"] / split) for r in (cpu, gpu)]
        want, got = (f.sort_values(key).reset_index(drop=True) for f in frames)
        for c in cpu["features"]:
            if want[c].dtype.kind in "iub":
                np.testing.assert_array_equal(got[c].to_numpy(), want[c].to_numpy(), err_msg=f"{split}.{c}")
            else:
                np.testing.assert_allclose(got[c].to_numpy(dtype=float, na_value=np.nan),
                                           want[c].to_numpy(dtype=float, na_value=np.nan), rtol=0, atol=1e-6, err_msg=f"{split}.{c}")
    for t, tol in (("like", 0.5), ("retweet", 0.5), ("reply", 1.5), ("quote", 1.5)):  # rare: early stopping on few positives
        assert abs(cpu["targets"][t]["rce"] - gpu["targets"][t]["rce"]) <= tol, t
    _serving_parity(tmp_path / "cpu", cpu)
    _serving_parity(tmp_path / "gpu", gpu)


def _serving_parity(run, report):
    """A run's models and store served on the CPU and on the GPU: the same features and predictions."""
    import cudf

    from rapids_engage.backend import CPU
    from rapids_engage.serve import Scorer
    from rapids_engage.store import FeatureStore

    split = report["split"]
    rows = pd.read_parquet(split["data_dir"], filters=[("tweet_timestamp", ">", split["cutoff"])])
    rows = rows.drop(columns=["day"], errors="ignore").iloc[:5000].reset_index(drop=True)
    on_cpu, on_gpu = Scorer(run, CPU), Scorer(run, resolve("1"))
    want, got = on_cpu.predict(rows), on_gpu.predict(cudf.from_pandas(rows)).to_pandas()
    for t in on_cpu.targets:
        np.testing.assert_allclose(got["pred_" + t].to_numpy(), want["pred_" + t].to_numpy(), atol=1e-5, err_msg=t)

    class Typed:  # the records already typed: predict_records' device handling alone
        def read(self, records):
            return records, pd.DataFrame({"record": pd.Series([], dtype="int64"), "column": [], "reason": [], "detail": []})

    on_gpu._reader = Typed()
    answered, _ = on_gpu.predict_records(rows.iloc[:50])
    assert isinstance(answered, pd.DataFrame)  # a service's answer: on the host, whatever the scorer's device
    # against the same 50 rows scored on the CPU: a served row's history counts the earlier rows of its batch
    # (the 5,000 rows above hold more of them), so the first 50 of that batch score otherwise (seen on the CPU too)
    np.testing.assert_allclose(answered["pred_like"].to_numpy(), on_cpu.predict(rows.iloc[:50])["pred_like"].to_numpy(), atol=1e-5)
    store = FeatureStore(report["store"]["path"])
    names = report["features"]
    key = ["tweet_id", "engaging_user_id"]
    on_gpu = store.transform(cudf.from_pandas(rows)).compute().sort_values(key).reset_index(drop=True)
    on_cpu = store.transform(rows).compute().sort_values(key).reset_index(drop=True)  # history shuffles rows
    _assert_same(on_gpu, on_cpu, names)


def test_distinct_count_estimates_parity():
    """cuDF's row hashes (xxhash64) size key tables as pandas' do: exact below the sketch size,
    within a few percent above it, null string keys included."""
    import cudf
    import dask.dataframe as dd

    from rapids_engage.features.cardinality import distinct_counts

    events = pd.concat([_events(), _events(n=200_000, seed=5).assign(engaging_user_id=np.arange(200_000) % 50_000)])
    groups = [["language"], ["engaging_user_id", "language"]]
    cpu = distinct_counts(dd.from_pandas(events, npartitions=3), groups)
    gpu = distinct_counts(dd.from_pandas(cudf.from_pandas(events), npartitions=3), groups)
    assert gpu[0] == cpu[0] == 5  # four strings and null
    exact = len(events[groups[1]].drop_duplicates())
    assert abs(gpu[1] / exact - 1) < 0.08 and abs(cpu[1] / exact - 1) < 0.08


def test_group_ids_with_null_keys_parity():
    import cudf

    keys = _events()[["engaging_user_id", "language"]]
    cpu, gpu = group_ids(keys), group_ids(cudf.from_pandas(keys)).get()
    first_cpu = pd.Series(np.arange(len(cpu))).groupby(cpu).transform("min").to_numpy()
    first_gpu = pd.Series(np.arange(len(gpu))).groupby(gpu).transform("min").to_numpy()
    np.testing.assert_array_equal(first_gpu, first_cpu)  # the same partition of the rows


def test_key_ids_with_null_keys_in_several_columns_parity():
    """cudf's ngroup nulls the id of the last sorted key only: rows with a null in one of several key
    columns must get -1, and every keyed row a dense id, as on the CPU (the per-day counts' keys)."""
    import cudf

    from rapids_engage.features.counts import DAY
    from rapids_engage.features.frames import key_ids

    events = with_day(_events(), "tweet_timestamp")
    for columns in (["engaging_user_id", "language"], ["language", DAY], ["language"]):
        cpu, gpu = key_ids(events, columns), key_ids(cudf.from_pandas(events), columns).get()
        np.testing.assert_array_equal(gpu < 0, cpu < 0, err_msg=str(columns))
        assert sorted(set(gpu[gpu >= 0].tolist())) == list(range(int(cpu.max()) + 1))
        first_cpu = pd.Series(np.arange(len(cpu))).groupby(cpu).transform("min").to_numpy()
        first_gpu = pd.Series(np.arange(len(gpu))).groupby(gpu).transform("min").to_numpy()
        np.testing.assert_array_equal(first_gpu, first_cpu, err_msg=str(columns))


def test_history_parity_with_null_keys():
    import cudf

    events = _events().sort_values("tweet_timestamp", kind="stable").reset_index(drop=True)
    cut = int(events["tweet_timestamp"].quantile(0.8))
    train, new = events[events["tweet_timestamp"] <= cut], events[events["tweet_timestamp"] > cut]
    key = ["engaging_user_id", "language"]
    make = lambda: HistoryEncoder(key, ["like", "reply"], (3600, 86400), days=(1,), rates=True)  # noqa: E731
    cpu_enc, gpu_enc = make(), make()
    cpu, gpu = cpu_enc.fit_transform(train), gpu_enc.fit_transform(cudf.from_pandas(train))
    _assert_same(gpu, cpu, cpu_enc.output_names())
    _assert_same(gpu_enc.transform(cudf.from_pandas(new)), cpu_enc.transform(new), cpu_enc.output_names())
    _assert_same(gpu_enc.transform(cudf.from_pandas(new.iloc[:1])), cpu_enc.transform(new.iloc[:1]), cpu_enc.output_names())


def test_counts_parity_including_a_one_row_batch():
    import cudf

    train, new = _events(seed=1), _events(n=500, seed=2)
    enc = CountEncoder(["engaging_user_id", "language"]).fit(train)
    gpu_enc = CountEncoder(["engaging_user_id", "language"]).fit(cudf.from_pandas(train))
    _assert_same(gpu_enc.transform(cudf.from_pandas(new)), enc.transform(new), enc.output_names())
    for batch in (new, new.iloc[[3]]):
        got = gpu_enc.daily_counts(with_day(cudf.from_pandas(batch)))
        assert got.index.to_pandas().equals(batch.index)
        np.testing.assert_array_equal(got.to_pandas().to_numpy(), enc.daily_counts(with_day(batch)).to_numpy())


def test_input_checks_of_this_release_on_gpu(tmp_path):
    """The checks added on the CPU (2026-12-02) behave the same on cudf / cupy inputs."""
    import cudf
    import cupy

    from rapids_engage import metrics as m
    from rapids_engage.data import DataError
    from rapids_engage.features.value_checks import check_values
    from rapids_engage.features.content import content_features

    # a fold holding every training row: the full prior, as on the CPU
    rows = pd.DataFrame({"tweet_id": [5, 5, 5], "engaging_user_id": [7, 7, 7], "k": list("aba"), "like": [1, 0, 1]})
    cpu = TargetEncoder("k").fit_transform(rows, "like")["te_k_like"].to_numpy()
    gpu = TargetEncoder("k").fit_transform(cudf.from_pandas(rows), "like")["te_k_like"].to_numpy()
    np.testing.assert_allclose(gpu, cpu, rtol=1e-12)
    # metrics refuse NaN scores and labels outside 0/1 on cupy arrays too
    with pytest.raises(ValueError, match="p has 1 NaN"):
        m.roc_auc(cupy.asarray([0, 1, 0, 1]), cupy.asarray([0.1, np.nan, 0.3, 0.4]))
    with pytest.raises(ValueError, match="row 1 holds 2"):
        m.average_precision(cupy.asarray([0, 2, 0, 1]), cupy.asarray([0.1, 0.2, 0.3, 0.4]))
    # a null time is named; a null list column counts as empty
    frame = cudf.DataFrame({"tweet_timestamp": cudf.Series([1_600_000_000, None], dtype="int64", index=[10, 11])})
    with pytest.raises(DataError, match="column 'tweet_timestamp' has 1 null value\\(s\\), the first at index 11"):
        check_values(frame, "tweet_timestamp")
    from rapids_engage.synthetic import SyntheticSpec, generate

    generate(tmp_path, SyntheticSpec(rows=500, days=2, seed=1))
    part = pd.read_parquet(tmp_path / "data").head(50).reset_index(drop=True)
    part.loc[part.index[:5], "hashtags"] = None
    want = content_features(part.assign(hashtags=part["hashtags"].fillna("")))
    got = content_features(cudf.from_pandas(part)).to_pandas()
    assert (got["n_hashtags"].to_numpy() == want["n_hashtags"].to_numpy()).all()


def test_additions_of_2026_12_02_on_gpu(tmp_path):
    """History extension, tied@k, the skew check, TargetEncoder(keep_input=False) and rank training
    sorted by group: the same on cudf / cupy / dask_cudf as on the CPU."""
    import cudf
    import cupy
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from rapids_engage import metrics as m
    from rapids_engage.skew import shifted_features

    # history: the training state extended with later events serves as a state fitted on both
    events = _events(6_000, seed=3)
    cut, later = 1_612_396_800 + 100 * 900, 1_612_396_800 + 200 * 900
    train, extra, new = (events[events.tweet_timestamp < cut], events[(events.tweet_timestamp >= cut) & (events.tweet_timestamp < later)],
                         events[events.tweet_timestamp >= later].drop(columns=["like", "reply"]))
    enc = lambda: HistoryEncoder("engaging_user_id", ["like", "reply"], (3600, 86400), days=(1,), rates=True)  # noqa: E731
    cpu = enc().fit(train).extend(extra).transform(new)
    gpu = enc().fit(cudf.from_pandas(train)).extend(cudf.from_pandas(extra)).transform(cudf.from_pandas(new))
    _assert_same(gpu, cpu, enc().fit(train).output_names())
    # tied@k on cupy arrays
    y, p, g = np.array([1, 0, 0, 0, 1, 0]), np.array([0.9, 0.5, 0.5, 0.3, 0.2, 0.1]), np.array([1, 1, 1, 2, 2, 2])
    assert m.ranking_report(cupy.asarray(y), cupy.asarray(p), cupy.asarray(g), k=2)["tied@2"] == pytest.approx(0.25)
    # skew on cudf samples
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"f": rng.normal(size=4_000), "y": (rng.random(4_000) < 0.3).astype(float)})
    frame["leak"] = frame["y"] * rng.random(4_000)
    valid = frame.assign(leak=0.0)
    want = shifted_features(frame, valid, "y", ["f", "leak"], {"f": 0.5, "leak": 0.5})
    got = shifted_features(cudf.from_pandas(frame), cudf.from_pandas(valid), "y", ["f", "leak"], {"f": 0.5, "leak": 0.5})
    assert [d["feature"] for d in got] == [d["feature"] for d in want] == ["leak"]
    # the encodings alone, on cudf
    rows = cudf.from_pandas(_frame(2_000))
    out = TargetEncoder("language", keep_input=False).fit_transform(rows, "like")
    assert list(out.columns) == ["te_language_like"] and isinstance(out, cudf.DataFrame)
    # rank training: dask_cudf frames sorted by (group, row key) before xgboost.dask, no re-sort warning
    from rapids_engage.config import TrainConfig
    from rapids_engage.train_shared_matrix import train_targets

    imp = pd.DataFrame({"row_id": np.arange(3_000), "page": np.repeat(np.arange(300), 10) * 7919 % 1_000_003,
                        "a": rng.normal(size=3_000), "click": (rng.random(3_000) < 0.2).astype("int8")})
    cfg = TrainConfig(targets=["click"], max_depth=3, num_boost_round=10, per_target={"click": {"objective": "rank:ndcg"}})
    backend = resolve("1").init()
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
        parts = [dd.from_pandas(cudf.from_pandas(imp.sample(frac=1.0, random_state=s)), npartitions=3) for s in (1, 2)]
        model = train_targets(client, backend, cfg, {"click": "binary"}, *parts, ["a"], group="page", row_key=("row_id",))["click"]
    assert model.ranks and model.booster.num_boosted_rounds() >= 1


def test_operations_of_2026_12_02b_on_gpu(tmp_path):
    """On a GPU run: Ctrl-C ends it in one line (dask-cuda workers ignore the terminal's SIGINT); a rerun
    killed while training leaves the last run's models; a copied dataset is a store cache hit; a training
    interrupted on a LocalCUDACluster frees xgboost.dask's worker locks for the next."""
    import _thread
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import threading
    import time

    import cudf
    import dask.dataframe as dd
    from dask_cuda import LocalCUDACluster
    from distributed import Client

    from rapids_engage.config import TrainConfig
    from rapids_engage.synthetic import SyntheticSpec, generate
    from rapids_engage.train_locks import lock_queues
    from rapids_engage.train_shared_matrix import train_targets

    out, cache = tmp_path / "run", tmp_path / "cache"
    cmd = [sys.executable, "-m", "rapids_engage.pipeline", "--gpus", "1", "--rows", "200000", "--out", str(out),
           "--set", f"data.cache_dir={cache}", "--no-plots"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline and not any((out / "store").glob(".tmp-*")):
        time.sleep(0.05)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 130 and output.strip().splitlines()[-1] == "error: interrupted", output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert subprocess.run(cmd + ["--quiet"], capture_output=True, text=True, timeout=900).returncode == 0
    before = {p.name: p.read_bytes() for p in (out / "models").iterdir()}
    proc = subprocess.Popen(cmd + ["--quiet", "--set", "train.learning_rate=0.3"], start_new_session=True)
    while proc.poll() is None and time.monotonic() < deadline and not any(out.glob(".tmp-models-*/*.json")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert {p.name: p.read_bytes() for p in (out / "models").iterdir()} == before
    # a copied dataset: the same store version
    generate(tmp_path / "orig", SyntheticSpec(rows=4_000, days=3, seed=5))
    shutil.copytree(tmp_path / "orig", tmp_path / "copy", copy_function=shutil.copy)
    versions = []
    for name in ("orig", "copy"):
        assert main(["features", "--gpus", "1", "--quiet", "--out", str(tmp_path / f"f-{name}"), "--set", "data.source=parquet",
                     "--set", f"data.path={tmp_path / name}", "--set", f"features.store={tmp_path / 'store'}",
                     "--set", f"data.cache_dir={cache}"]) == 0
        versions.append(json.loads((tmp_path / f"f-{name}" / "features.json").read_text())["store"])
    assert versions[1]["cache_hit"] and versions[1]["version"] == versions[0]["version"]
    # an interrupted training on dask-cuda workers leaves their locks free
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=4_000), "b": rng.normal(size=4_000)})
    x["like"] = (x["a"] + rng.normal(size=4_000) > 0).astype("float32")
    frames = [dd.from_pandas(cudf.from_pandas(f), npartitions=2) for f in (x.iloc[:2_000], x.iloc[2_000:])]
    backend = resolve("1").init()
    # cuDF spilling on, as the pipeline's clusters have it: dask-cuda turned it on in this process for the run
    # above, and a worker without it cannot take the spillable frames this process sends
    with LocalCUDACluster(n_workers=1, dashboard_address=None, enable_cudf_spill=True) as cluster, Client(cluster) as client:
        held = lambda: {i for q in lock_queues(client, client.nthreads()).values() for i in q}  # noqa: E731

        def interrupt_once_locked() -> None:
            stop = time.monotonic() + 120
            while time.monotonic() < stop and not held():
                time.sleep(0.02)
            _thread.interrupt_main()

        threading.Thread(target=interrupt_once_locked, daemon=True).start()
        with Client(cluster) as stopped, pytest.raises(KeyboardInterrupt):
            train_targets(stopped, backend, TrainConfig(targets=["like"], max_depth=6, num_boost_round=20_000,
                                                        early_stopping_rounds=0), {"like": "binary"}, *frames, ["a", "b"])
        assert held() == set()


def test_history_extend_keeps_the_state_on_its_device():
    """A state fitted (or loaded) on the GPU stays there when extended with pandas events, and a pandas
    state stays on the host when extended with cudf events: the events move, not the state (a state on
    the other device would be copied back on every later serving call). Values as on the CPU."""
    import cudf

    events = _events(6_000, seed=4)
    cut, later = 1_612_396_800 + 100 * 900, 1_612_396_800 + 200 * 900
    train, extra, new = (events[events.tweet_timestamp < cut], events[(events.tweet_timestamp >= cut) & (events.tweet_timestamp < later)],
                         events[events.tweet_timestamp >= later].drop(columns=["like", "reply"]))
    enc = lambda: HistoryEncoder(["engaging_user_id", "language"], ["like", "reply"], (3600, 86400), days=(1,), rates=True)  # noqa: E731
    cpu = enc().fit(train).extend(extra)
    on_gpu = enc().fit(cudf.from_pandas(train)).extend(extra)  # pandas events, GPU state
    on_cpu = enc().fit(train).extend(cudf.from_pandas(extra))  # cudf events, host state
    assert isinstance(on_gpu.state_, cudf.DataFrame) and isinstance(on_cpu.state_, pd.DataFrame)
    want = cpu.transform(new)
    _assert_same(on_gpu.transform(cudf.from_pandas(new)), want, cpu.output_names())
    pd.testing.assert_frame_equal(on_cpu.transform(new), want)


def test_cudf_events_with_null_ids_extend_a_host_state_as_pandas_events_do():
    """cudf events moved to a pandas state: cudf's to_pandas made an integer column with a null float64, so a
    row key with one was refused as not integers, and 64-bit ids above 2**53 lost their low digits (keys merged).
    Now they arrive as nullable Int64 (backend.host_frame) and extend the state exactly as the pandas events."""
    import cudf

    from rapids_engage.backend import host_frame

    events = _events(2_000, seed=6).drop(columns=["language"])
    events = events.assign(engaging_user_id=events["engaging_user_id"] + 2**60, tweet_id=np.arange(len(events)))
    events = events.astype({"engaging_user_id": "Int64", "tweet_id": "Int64"})
    cut = 1_612_396_800 + 200 * 900
    train, extra = events[events.tweet_timestamp < cut], events[events.tweet_timestamp >= cut].copy()
    extra.iloc[:5, extra.columns.get_loc("engaging_user_id")] = pd.NA
    extra.iloc[5:10, extra.columns.get_loc("tweet_id")] = pd.NA
    moved = host_frame(cudf.from_pandas(extra))
    assert moved.dtypes["engaging_user_id"] == "Int64" and moved.dtypes["tweet_id"] == "Int64"
    pd.testing.assert_frame_equal(moved, extra)
    enc = lambda: HistoryEncoder(["engaging_user_id"], ["like", "reply"], (3600,), row_key=["tweet_id"]).fit(train)  # noqa: E731
    want, got = enc().extend(extra), enc().extend(cudf.from_pandas(extra))
    pd.testing.assert_frame_equal(got.state_, want.state_)
    np.testing.assert_array_equal(got.last_ids_, want.last_ids_)


def test_scorer_moves_a_dask_frame_of_the_other_device():
    """Scorer.extend_history takes a dask frame (FeatureBuilder.extend_history gathers one): on a GPU scorer a
    dask pandas frame, on a CPU scorer a dask_cudf frame, is gathered and moved (cudf.from_pandas raised a
    TypeError on the dask frame; a dask_cudf collection has no to_pandas)."""
    import cudf
    import dask.dataframe as dd

    from rapids_engage.backend import CPU
    from rapids_engage.serve import Scorer

    rows = _frame(200)
    gpu, cpu = Scorer.__new__(Scorer), Scorer.__new__(Scorer)  # the device move alone: no run needed
    gpu.backend, cpu.backend = resolve("1").init(), CPU
    moved = gpu._on_device(dd.from_pandas(rows, npartitions=3))
    assert isinstance(moved, cudf.DataFrame)
    pd.testing.assert_frame_equal(moved.to_pandas(), rows)
    back = cpu._on_device(dd.from_pandas(cudf.from_pandas(rows), npartitions=3))
    assert isinstance(back, pd.DataFrame)
    pd.testing.assert_frame_equal(back, rows)
    same = dd.from_pandas(cudf.from_pandas(rows), npartitions=3)
    assert gpu._on_device(same) is same  # on the scorer's device: left lazy, as before


def test_float_values_of_bool_and_int_columns_with_nulls():
    """backend.float_values: nulls become NaN in every numeric dtype on cudf, as on pandas."""
    import cudf

    from rapids_engage.backend import float_values

    for values, dtype in (([True, None, False], "boolean"), ([1, None, 3], "Int64"), ([1.5, None, 2.0], "Float64")):
        host = pd.Series(values, dtype=dtype)
        got = float_values(cudf.from_pandas(host)).get()
        np.testing.assert_array_equal(got, float_values(host), err_msg=dtype)
        assert np.isnan(got[1]) and got.dtype == np.float64


def test_keys_of_another_kind_than_fitted_are_refused_on_gpu():
    """cudf's strings are of dtype object: the check of number keys served as text must fire as on the CPU."""
    import cudf

    events = cudf.from_pandas(_events(500).fillna({"language": "en"}))
    enc = TargetEncoder("engaging_user_id", row_key=("engaging_user_id", "tweet_timestamp")).fit(events, "like")
    with pytest.raises(TypeError, match=r"the key column 'engaging_user_id' holds text \((object|str)\) but held numbers"):
        enc.transform(events.astype({"engaging_user_id": "str"}))
    counts = CountEncoder("language", per_day=False).fit(events)
    with pytest.raises(TypeError, match=r"the key column 'language' holds numbers \(int64\) but held text \((object|str)\)"):
        counts.transform(events.assign(language=1))


def test_missing_binary_labels_of_rows_to_score_on_gpu():
    """predict's binary labels on cudf: a null (int8 column) or a NaN (float column) stays a missing label, as on
    the CPU (an int8 cast keeps a null but turns a NaN into an arbitrary integer)."""
    import cudf

    from rapids_engage.features import add_labels
    from rapids_engage.layout import Layout, Target

    layout = Layout("table", ("row_id",), "event_time", (Target("up", "up", "binary"),))
    want = add_labels(pd.DataFrame({"up": pd.array([1, None, 0, None], dtype="Int8")}), ["up"], layout, missing=True)
    want = want["up"].to_numpy(dtype=float, na_value=np.nan)
    for up in (cudf.Series([1, None, 0, None], dtype="int8"), cudf.Series([1.0, np.nan, 0.0, np.nan], nan_as_null=False)):
        got = add_labels(cudf.DataFrame({"up": up}), ["up"], layout, missing=True)["up"]
        np.testing.assert_array_equal(got.to_pandas().to_numpy(dtype=float, na_value=np.nan), want)


# ---- table configs on the GPU (configs/hn.yaml- and configs/mind.yaml-like), never run on one before 2026-12-04 ----
#: The backend flag of the GPU side of the table tests (a constant: a dry run of their plumbing on the CPU sets it to "0").
GPUS = "1"


def _posts_csv(path: Path, n: int = 6_000, seed: int = 0) -> None:
    """Hacker News-like posts: authors of different skill, titles (Show HN / Ask HN), urls of a few sites
    (blank, absent, www.), two counts (points, comments) over 10 days."""
    rng = np.random.default_rng(seed)
    authors = np.array([f"user{i}" for i in range(250)])
    skill = rng.normal(0.0, 1.0, len(authors))
    a = rng.integers(0, len(authors), n)
    kind = rng.choice(["Show HN: ", "Ask HN: ", "", ""], n)
    title = np.char.add(kind.astype(str), rng.choice(["A tool", "Why  it fails", "Rust\tnotes", "new thing"], n))
    url = rng.choice(["https://www.github.com/x", "http://blog.example.org/p?q=1", "https://news.site.com/a", "", " "], n)
    url = np.where(kind == "Ask HN: ", "", url)
    points = rng.poisson(np.exp(1.0 + 0.8 * skill[a] + 0.5 * (kind == "Show HN: ")))
    comments = rng.poisson(np.exp(0.5 + 0.6 * skill[a] + 0.8 * (kind == "Ask HN: ")))
    pd.DataFrame({"id": rng.permutation(n) + 1_000, "author": authors[a], "title": title, "url": url,
                  "time": np.sort(rng.integers(1_600_000_000, 1_600_000_000 + 10 * 86400, n)),
                  "points": points, "comments": comments}).to_csv(path, index=False)


def _impressions_csv(path: Path, n_impressions: int = 1_000, seed: int = 0) -> None:
    """MIND-like impressions, one row per shown article (the exploded form): a click per impression or none,
    the article's category, subcategory and title, the user's earlier clicks (a space-separated list, some empty)."""
    rng = np.random.default_rng(seed)
    news = np.array([f"N{i}" for i in range(400)])
    appeal = rng.normal(0.0, 1.0, len(news))
    category = rng.choice(["news", "sports", "finance", "tv"], len(news))
    size = rng.integers(3, 13, n_impressions)
    imp = np.repeat(np.arange(n_impressions) + 1, size)
    user = np.repeat(rng.integers(0, 300, n_impressions), size)
    t = np.repeat(np.sort(rng.integers(1_573_000_000, 1_573_000_000 + 5 * 86400, n_impressions)), size)
    item = rng.integers(0, len(news), len(imp))
    click = (rng.random(len(imp)) < 1 / (1 + np.exp(-(appeal[item] - 2.0)))).astype(int)
    history = np.array([" ".join(rng.choice(news, k)) for k in rng.integers(0, 5, n_impressions)])
    frame = pd.DataFrame({"impression_id": imp, "user_id": [f"U{u}" for u in user], "time": t, "news_id": news[item],
                          "click": click, "category": category[item], "subcategory": np.char.add(category[item], "_x"),
                          "title": np.where(appeal[item] > 0, "Big  news today", "A story"), "history": np.repeat(history, size)})
    frame.drop_duplicates(["impression_id", "news_id"]).to_csv(path, index=False)


def _table_config(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


def _posts_config(tmp: Path) -> Path:
    """configs/hn.yaml's features on :func:`_posts_csv`; comments trained on raw counts (count:poisson)."""
    csv = tmp / "posts.csv"
    _posts_csv(csv)
    return _table_config(tmp / "posts.yaml", f"""
data:
  source: table
  path: {csv}
  cache_dir: {tmp / 'cache'}
  table:
    format: csv
    time: time
    time_format: unix
    row_id: [id]
    item: id
    creator: author
    targets:
      points: {{column: points, kind: count}}
      comments: {{column: comments, kind: count}}
    text: [title]
    url: [url]
cluster: {{n_workers: 1}}
split: {{valid_hours: 48}}
features:
  target_encoding: {{n_folds: 5, smooth: 20, keys: [[author], [url_domain], [title_first_word], [author, url_domain]]}}
  counts: [[author], [url_domain]]
  history: {{keys: [[author], [url_domain]], windows: [86400, 604800]}}
train:
  targets: [points, comments]
  max_depth: 4
  max_bin: 128
  num_boost_round: 60
  early_stopping_rounds: 10
  per_target: {{comments: {{objective: "count:poisson"}}}}
""")


def _impressions_config(tmp: Path) -> Path:
    """configs/mind.yaml's features on :func:`_impressions_csv`, click ranked by impression (rank:ndcg)."""
    csv = tmp / "impressions.csv"
    _impressions_csv(csv)
    return _table_config(tmp / "impressions.yaml", f"""
data:
  source: table
  path: {csv}
  cache_dir: {tmp / 'cache'}
  table:
    format: csv
    time: time
    time_format: unix
    row_id: [impression_id, news_id]
    user: user_id
    item: news_id
    group: impression_id
    targets:
      click: {{column: click, kind: binary}}
    categorical: [category, subcategory]
    text: [title]
    lists: [history]
cluster: {{n_workers: 1}}
split: {{valid_hours: 24}}
features:
  target_encoding: {{n_folds: 5, smooth: 20, keys: [[news_id], [category], [user_id], [user_id, category]]}}
  counts: [[news_id], [user_id]]
  history: {{keys: [[news_id], [user_id]], windows: [3600, 86400], rates: false}}
train:
  targets: [click]
  max_depth: 6
  max_bin: 128
  num_boost_round: 60
  early_stopping_rounds: 10
  per_target: {{click: {{objective: "rank:ndcg"}}}}
""")


def _run(*argv) -> dict:
    """A pipeline command (``argv`` as on the command line) that must succeed; its report.json / predict.json."""
    args = [str(a) for a in argv]
    assert main([*args, "--quiet", *([] if args[0] == "predict" else ["--no-plots"])]) == 0, args
    out = Path(args[args.index("--out") + 1])
    return json.loads((out / ("predict.json" if args[0] == "predict" else "report.json")).read_text())


def _store_frames(report: dict, split: str) -> pd.DataFrame:
    """A run's stored rows of ``split``, sorted by row key (history features shuffle them)."""
    key = list(report["layout"]["row_key"])
    frame = pd.read_parquet(Path(report["store"]["path"]) / report["store"]["version"] / split)
    return frame.sort_values(key).reset_index(drop=True)


def _assert_same_store(gpu: dict, cpu: dict) -> None:
    """Every stored feature and label of two runs equal: integers exactly, floats within 1e-6."""
    assert gpu["backend"] == "gpu" and cpu["backend"] == "cpu" or GPUS == "0"
    assert gpu["features"] == cpu["features"] and gpu["rows"] == cpu["rows"]
    for split in ("train", "valid"):
        got, want = _store_frames(gpu, split), _store_frames(cpu, split)
        assert set(got.columns) == set(want.columns), split
        for c in [*cpu["features"], *cpu["targets"]]:
            if want[c].dtype.kind in "iub":
                np.testing.assert_array_equal(got[c].to_numpy(), want[c].to_numpy(), err_msg=f"{split}.{c}")
            else:
                np.testing.assert_allclose(got[c].to_numpy(dtype=float, na_value=np.nan), want[c].to_numpy(dtype=float, na_value=np.nan),
                                           rtol=0, atol=1e-6, err_msg=f"{split}.{c}")


def _assert_close_metrics(gpu: dict, cpu: dict, tolerances: dict[str, dict[str, float]]) -> None:
    """Per target, each named metric within its absolute tolerance (the boosters differ: GPU and CPU sketches)."""
    for t, tols in tolerances.items():
        for name, tol in tols.items():
            assert abs(gpu[t][name] - cpu[t][name]) <= tol, (t, name, gpu[t][name], cpu[t][name])


def test_count_table_on_gpu_with_predict_and_external_memory(tmp_path):
    """A Hacker News-like table (configs/hn.yaml's features; log1p points, count:poisson comments) on the GPU against
    the CPU: the same store, close RMSE / Spearman, the same constant baselines (a mean count and a mean log1p);
    the predict command on the GPU scores the GPU run's validation rows as the same run scored on the CPU does; and
    train.external_memory on the GPU (the same store, found again) trains models as good as the CPU's."""
    config = _posts_config(tmp_path)
    runs = {name: _run("--config", config, "--gpus", flag, "--out", tmp_path / name) for name, flag in (("cpu", "0"), ("gpu", GPUS))}
    cpu, gpu = runs["cpu"], runs["gpu"]
    _assert_same_store(gpu, cpu)
    for t in ("points", "comments"):
        for name in ("rmse", "rmse_log1p"):  # the mean of the same labels
            assert gpu["targets"][t]["baselines"]["constant"][name] == pytest.approx(cpu["targets"][t]["baselines"]["constant"][name], rel=1e-6)
        assert gpu["targets"][t]["rmse_log1p"] < gpu["targets"][t]["baselines"]["constant"]["rmse_log1p"], t
    assert gpu["targets"]["comments"]["objective"] == "count:poisson" and gpu["targets"]["points"]["objective"] == "reg:squarederror"
    _assert_close_metrics(gpu["targets"], cpu["targets"], {t: {"rmse_log1p": 0.05, "spearman": 0.05} for t in ("points", "comments")})
    # predict on the GPU from the GPU run: the validation rows score as the same models and state score them on the CPU
    from rapids_engage.layout import Layout

    data_dir = Path(gpu["split"]["data_dir"])
    layout = Layout.load(data_dir.parent)
    rows = pd.read_parquet(data_dir)
    rows = rows[rows[layout.time] > gpu["split"]["cutoff"]].drop(columns=["day"], errors="ignore")
    rows.to_parquet(tmp_path / "new.parquet", index=False)
    scored = {flag: _run("predict", "--model-dir", tmp_path / "gpu", "--input", tmp_path / "new.parquet", "--out", tmp_path / f"p{flag}",
                         "--gpus", flag) for flag in ("0", GPUS)}
    assert scored[GPUS]["rows"] == gpu["rows"]["valid"]
    for t in ("points", "comments"):
        assert scored[GPUS]["metrics"][t]["rmse_log1p"] == pytest.approx(gpu["targets"][t]["rmse_log1p"], rel=1e-4), t
    preds = [pd.read_parquet(tmp_path / f"p{flag}" / "predictions").sort_values("row_id").reset_index(drop=True) for flag in ("0", GPUS)]
    assert list(preds[1].columns) == list(preds[0].columns) and (preds[1]["row_id"].to_numpy() == preds[0]["row_id"].to_numpy()).all()
    for t in ("points", "comments"):
        assert (preds[1]["pred_" + t] >= 0).all()  # counts, not log1p
        np.testing.assert_allclose(preds[1]["pred_" + t].to_numpy(), preds[0]["pred_" + t].to_numpy(), rtol=1e-5, atol=1e-5, err_msg=t)
    # train.external_memory on the GPU, on the store the GPU run built (a cache hit: the training alone), against the CPU
    # run (on the CPU, with one worker, external memory trains the same models as xgboost.dask: equal metrics at 6,000 rows)
    ext = _run("--config", config, "--gpus", GPUS, "--out", tmp_path / "ext-gpu", "--set", "train.external_memory=true",
               "--set", f"features.store={Path(gpu['store']['path'])}")
    assert ext["store"]["version"] == gpu["store"]["version"]
    _assert_close_metrics(ext["targets"], cpu["targets"], {t: {"rmse_log1p": 0.05, "spearman": 0.05} for t in ("points", "comments")})
    for t in ("points", "comments"):
        assert ext["targets"][t]["rmse_log1p"] < ext["targets"][t]["baselines"]["constant"]["rmse_log1p"], t


def test_group_auc_on_gpu():
    """The within-group AUC (written on the CPU, 2026-12-04) on cupy arrays and a cudf group column: the CPU's values."""
    import cudf
    import cupy

    from rapids_engage import metrics as m

    rng = np.random.default_rng(4)
    y, p, g = (rng.random(5_000) < 0.1).astype(float), rng.choice([0.1, 0.5, 0.9], 5_000), rng.integers(0, 300, 5_000) * 7
    want = m.group_auc(y, p, g)
    assert 0.45 < want < 0.55
    assert m.group_auc(cupy.asarray(y), cupy.asarray(p), cudf.Series(g)) == pytest.approx(want, abs=1e-12)
    assert m.ranking_report(cupy.asarray(y), cupy.asarray(p), cupy.asarray(g))["group_auc"] == pytest.approx(want, abs=1e-12)
    assert m.group_auc(cupy.asarray(y), cupy.zeros(5_000), cupy.asarray(g)) == 0.5


def test_ranking_table_audit_on_gpu(tmp_path):
    """A MIND-like table (configs/mind.yaml's features: a group, a list column, categoricals) trained with rank:ndcg,
    audited on the GPU against the CPU: the real-label runs store the same features and rank as well (MAP@10,
    NDCG@10), and the audit's checks agree (the time travel of the history features compares as many rows, none
    differing; the shuffled-label run is noise at this size, so only its check's presence is compared)."""
    config = _impressions_config(tmp_path)
    audits, runs = {}, {}
    for name, flag in (("cpu", "0"), ("gpu", GPUS)):
        out = tmp_path / name
        assert main(["audit", "--config", str(config), "--gpus", flag, "--out", str(out), "--quiet", "--no-plots",
                     "--shuffles", "1"]) in (0, 1)  # auto could run 3 on one backend: other check names
        audits[name] = json.loads((out / "audit.json").read_text())
        runs[name] = json.loads((out / "report.json").read_text())
    cpu, gpu = runs["cpu"], runs["gpu"]
    _assert_same_store(gpu, cpu)
    click = gpu["targets"]["click"]
    assert click["n_groups"] == cpu["targets"]["click"]["n_groups"] > 50
    assert click["map@10"] > click["baselines"]["constant"]["map@10"]
    _assert_close_metrics(gpu["targets"], cpu["targets"], {"click": {"map@10": 0.05, "ndcg@10": 0.05, "auc": 0.05}})
    checks = [{c["check"]: c for c in audits[name]["checks"]} for name in ("cpu", "gpu")]
    assert list(checks[1]) == list(checks[0])
    assert "shuffled labels: click within-group AUC <= 0.55" in checks[1]  # a rank:* model's scores: within its groups
    assert click["group_auc"] == pytest.approx(cpu["targets"]["click"]["group_auc"], abs=0.05)
    for name, check in checks[0].items():
        if name.startswith(("time travel", "time order", "train/valid overlap", "row keys")):
            assert checks[1][name]["passed"] and check["passed"], name
            assert checks[1][name]["detail"] == check["detail"], name


def test_a_cluster_without_spilling_after_an_in_process_run(tmp_path):
    """After an in-process GPU run (dask-cuda turns cuDF spilling on in the client process: seen on an H200),
    a user's own ``LocalCUDACluster`` without spilling still computes on cudf frames this process makes.
    Written on the CPU to settle a question left by the first GPU session: whether the client's spill state
    leaks into later work, and whether restoring cudf's ``spill`` option would be enough."""
    import cudf
    import dask.dataframe as dd
    from dask_cuda import LocalCUDACluster
    from distributed import Client

    before = cudf.get_option("spill")
    assert main(["features", "--gpus", "1", "--quiet", "--rows", "3000", "--out", str(tmp_path / "run"),
                 "--set", f"data.cache_dir={tmp_path / 'cache'}"]) == 0
    after = cudf.get_option("spill")
    frame = dd.from_pandas(cudf.DataFrame({"a": np.arange(1_000), "b": np.arange(1_000) % 7}), npartitions=2)
    with LocalCUDACluster(n_workers=1, dashboard_address=None, enable_cudf_spill=False) as cluster, Client(cluster):
        sums = frame.groupby("b")["a"].sum().compute().to_pandas().sort_index()
    assert sums.to_dict() == pd.Series(np.arange(1_000)).groupby(np.arange(1_000) % 7).sum().to_dict(), (before, after)


def test_ranking_curves_of_cudf_and_cupy_inputs_are_the_cpu_s():
    """The ranking plot's NDCG@k / MAP@k for every k (one table of groups x k on the device) and their bootstrap band
    from a cudf label column, cupy scores and group ids and a host tie-break: the same as from numpy."""
    import cudf
    import cupy

    from rapids_engage import metrics as m

    rng = np.random.default_rng(7)
    g = rng.integers(0, 300, 5_000)
    y, p, ties = (rng.random(5_000) < 0.1).astype(float), rng.integers(0, 4, 5_000).astype(float), rng.permutation(5_000)
    want = m.ranking_at_every_k(y, p, g, 10, tiebreak=ties, resamples=50)
    got = m.ranking_at_every_k(cudf.Series(y), cupy.asarray(p), cupy.asarray(g), 10, tiebreak=ties, resamples=50)
    assert got["k"] == want["k"] and (got["n_groups"], got["largest_group"]) == (want["n_groups"], want["largest_group"])
    assert got["map"] == pytest.approx(want["map"], abs=1e-12) and got["ndcg"] == pytest.approx(want["ndcg"], abs=1e-12)
    for band in ("map_band", "ndcg_band"):  # the bootstrap draws on the host: the same band from the device's tables
        assert [list(v) for v in got[band]] == [pytest.approx(list(v), abs=1e-12) for v in want[band]]


def test_event_log_labels_on_gpu():
    """``event_labels``' per-partition steps on cudf as on pandas: a staged file's rows located (kinds coded, a
    cumsum of row positions), labelled (``label_partition``: a sort, shifts, cumsum, groupby cummin / cummax,
    ``iloc[::-1]``, a take), sorted back by locator and attached to the staged rows (a take): ties in time, events of
    several types at one millisecond, the horizon's edge, anchors after the cut-off flagged."""
    import cudf

    from rapids_engage.config import EventsSpec
    from rapids_engage.ingest.event_labels import LEFT_OUT, LOC, anchor_labels, attach, label_partition, located
    from rapids_engage.ingest.table_types import EVENT_MS

    rng = np.random.default_rng(3)
    n = 20_000
    frame = pd.DataFrame({
        "visitorid": rng.integers(0, 300, n).astype("int64"),
        "itemid": rng.integers(0, 8, n).astype("int64"),
        EVENT_MS: (1_433_000_000_000 + rng.integers(0, 2_000, n) * 1_800_000 + rng.integers(0, 3, n)).astype("int64"),
        "event": rng.choice(["view", "view", "view", "addtocart", "transaction"], n),
        "row_id": rng.permutation(n).astype("int64"),
    })
    spec = EventsSpec(column="event", anchor="view", horizon_hours=24, targets={"cart": "addtocart", "buy": "transaction"})
    cutoff = int(frame[EVENT_MS].quantile(0.9))
    order = ["visitorid", "itemid", LOC]

    def labelled(staged):
        rows = located(staged, spec, 3)
        each = label_partition(rows, "visitorid", "itemid", spec, cutoff).sort_values(order).reset_index(drop=True)
        labels = anchor_labels(rows, "visitorid", "itemid", spec, cutoff).set_index(LOC).sort_index()
        return each, attach(staged, labels, spec)

    cpu, gpu = labelled(frame), labelled(cudf.from_pandas(frame))
    assert cpu[0]["cart"].sum() > 100 and cpu[0][LEFT_OUT].any()
    for on_gpu, on_cpu in zip(gpu, cpu):
        pd.testing.assert_frame_equal(on_gpu.to_pandas(), on_cpu, check_dtype=False)


def test_split_with_a_gap_on_gpu():
    """``time_split(gap_hours=)`` on dask_cudf: the same training, validation and purged rows as on dask/pandas."""
    import dask.dataframe as dd
    pytest.importorskip("dask_cudf")  # dask's cudf backend

    from rapids_engage.split import time_split

    rows = _events(n=20_000).assign(tweet_id=np.arange(20_000, dtype="int64"))
    cpu_frame = dd.from_pandas(rows, npartitions=4)
    gpu_frame = cpu_frame.to_backend("cudf")
    (ct, cv, ci), (gt, gv, gi) = (time_split(f, 12, "tweet_timestamp", ["like", "reply"], gap_hours=6)
                                  for f in (cpu_frame, gpu_frame))
    assert (gi.cutoff, gi.purged) == (ci.cutoff, ci.purged) and ci.purged > 0
    for cpu, gpu in ((ct, gt), (cv, gv)):
        cpu = cpu.compute().sort_values("tweet_id", ignore_index=True)
        gpu = gpu.compute().to_pandas().sort_values("tweet_id", ignore_index=True)
        pd.testing.assert_frame_equal(gpu, cpu, check_dtype=False)


#: The engagement time columns of :func:`_engaged` (``features.history.label_time: engagement``).
ENGAGED = {"like": "like_at", "reply": "reply_at"}


def _engaged(events: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``events`` with a row number and an engagement time per target (nullable Int64, null for some rows): the
    event's time plus 0 s to 2 days, or before it (clamped to it)."""
    rng = np.random.default_rng(seed)
    out = events.assign(row=np.arange(len(events), dtype="int64"))
    for column in ENGAGED.values():
        delays = rng.choice([0, 1, 900, 3600, 5400, 86_400, 172_800, -900], len(events))
        at = pd.array(events["tweet_timestamp"].to_numpy() + delays, dtype="Int64")
        at[rng.random(len(events)) < 0.15] = pd.NA
        out[column] = at
    return out


def _engagement_history(events: pd.DataFrame, gpu: bool) -> dict[str, pd.DataFrame]:
    """A history with ``label_time: engagement`` (null keys, label_delay) on one device, as pandas frames by row:
    the training fit's features, served rows with and without labels, the state, rows served after
    :meth:`~HistoryEncoder.extend`, and the dask fit (shuffled by key: its rows back in order)."""
    import dask.dataframe as dd

    from rapids_engage.backend import to_host
    from rapids_engage.features.history import fit_history

    def device(frame: pd.DataFrame):
        return resolve("1").from_pandas(frame) if gpu else frame

    key = ["engaging_user_id", "language"]
    make = lambda: HistoryEncoder(key, ["like", "reply"], (3600, 86400), days=(1,), rates=True, label_delay=900,  # noqa: E731
                                  engagement=ENGAGED)
    t = events["tweet_timestamp"]
    train, extra, new = events[t < t.quantile(0.6)], events[(t >= t.quantile(0.6)) & (t < t.quantile(0.8))], events[t >= t.quantile(0.8)]
    enc = make()
    names = enc.output_names(["like", "reply"])
    out = {"fit": enc.fit_transform(device(train)), "served": enc.transform(device(new)),
           "served_unlabelled": enc.transform(device(new.drop(columns=["like", "reply", *ENGAGED.values()])), labels=False),
           "extended": make().fit(device(train)).extend(device(extra)).transform(device(new), labels=False)}
    out = {name: to_host(frame)[["row", *names]] for name, frame in out.items()}
    out["state"] = to_host(enc.state_).sort_values([*key, "tweet_timestamp"], ignore_index=True)
    frame = dd.from_pandas(train, npartitions=3)
    features, _ = fit_history(frame.to_backend("cudf") if gpu else frame, make())
    out["dask_fit"] = to_host(features.compute())[["row", *names]]
    return {name: frame.sort_values("row", ignore_index=True) if "row" in frame else frame for name, frame in out.items()}


def test_history_with_engagement_label_times_on_gpu():
    """``label_time: engagement`` on cudf as on pandas: the positives moved to their engagement times (cupy
    ``flatnonzero`` / ``concatenate``), the state's event rows (a frame filtered by a cupy mask, nullable engagement
    times filled before ``.values``, blocks concatenated, ``Series.where`` in the aggregation), serving with and
    without labels, extending, and the dask fit on dask_cudf."""
    events = _engaged(_events(6_000, seed=5), seed=5)
    cpu, gpu = _engagement_history(events, gpu=False), _engagement_history(events, gpu=True)
    assert cpu["fit"]["hist_engaging_user_id__language_like"].sum() > 0  # positives counted at all
    for name, want in cpu.items():
        if name == "state":
            pd.testing.assert_frame_equal(gpu[name], want, check_dtype=False)
            continue
        for c in want.columns:
            np.testing.assert_allclose(gpu[name][c].to_numpy(dtype=float, na_value=np.nan),
                                       want[c].to_numpy(dtype=float, na_value=np.nan), atol=1e-9, err_msg=f"{name}: {c}")


def _event_log_ingest(tmp: Path, backend: str) -> pa.Table:
    """A small event log ingested with ``data.table.events`` under dask's ``backend`` (the pipeline sets it before
    its data stage): every day's labelled rows in part order."""
    import dask
    import pyarrow.parquet as pq

    from rapids_engage.config import EventsSpec, TableConfig
    from rapids_engage.ingest import ingest_table

    rng = np.random.default_rng(7)
    n, hour = 4_000, 3_600_000
    log = pd.DataFrame({"timestamp": 1_433_116_800_000 + rng.integers(0, 10 * 24 * hour, n), "visitorid": rng.integers(0, 40, n),
                        "event": rng.choice(["view", "view", "addtocart", "transaction"], n), "itemid": rng.integers(0, 15, n)})
    log.to_csv(tmp / "events.csv", index=False)
    spec = TableConfig(format="csv", time="timestamp", time_format="unix_ms", row_id=["visitorid", "itemid", "timestamp"],
                       user="visitorid", item="itemid", events=EventsSpec("event", "view", 6, {"cart": "addtocart", "buy": "transaction"}))
    out = tmp / backend
    shutil.rmtree(out, ignore_errors=True)
    with dask.config.set({"dataframe.backend": backend}):
        ingest_table(str(tmp / "events.csv"), out, spec)
    return pa.concat_tables([pq.read_table(p) for p in sorted((out / "data").rglob("*.parquet"))])


def test_event_log_ingest_under_the_cudf_backend(tmp_path, monkeypatch):
    """The labelling pass of ``data.table.events`` on dask_cudf (``dd.from_map`` of cudf's ``read_parquet``, a shuffle
    by key, ``set_index`` on the int64 locator with a division per staged file, each file's anchors gathered and
    written from cudf): the same rows and labels in the same order as under pandas, in one partition and in a
    partition per staged file."""
    from rapids_engage.ingest import event_labels

    given, label = [], event_labels.label_partition  # the library of each frame labelled
    monkeypatch.setattr(event_labels, "label_partition", lambda df, *a: given.append(type(df).__module__.split(".")[0]) or label(df, *a))
    for rows in (10**9, 1):
        monkeypatch.setattr(event_labels, "ROWS_PER_PARTITION", rows)
        given.clear()
        cpu = _event_log_ingest(tmp_path, "pandas")
        assert set(given) == {"pandas"} and cpu.num_rows > 1_000 and pc.sum(cpu["cart"]).as_py() > 0
        given.clear()
        gpu = _event_log_ingest(tmp_path, "cudf")
        assert set(given) == {"cudf"}
        assert gpu.equals(cpu), rows


SESSION_NAMES = ["sess_n", "sess_age", "sess_index"]


def _session_events(n: int = 3_000, seed: int = 8) -> pd.DataFrame:
    """Events of (user, lang) keys with nulls in both columns, many ties in time, gaps below, at and above 30 minutes
    (a 600 s grid), and 64-bit row ids."""
    rng = np.random.default_rng(seed)
    user = pd.array(rng.integers(0, 60, n), dtype="Int64")
    user[rng.random(n) < 0.08] = pd.NA
    lang = rng.choice(["en", "ja", ""], n).astype(object)
    lang[rng.random(n) < 0.05] = None
    return pd.DataFrame({"user": user, "lang": pd.Series(lang, dtype="str"),
                         "tweet_timestamp": (1_600_000_000 + rng.integers(0, 400, n) * 600).astype("int64"),
                         "rid": np.arange(n, dtype="int64") + 2**60})


def _sessions(**kw):
    from rapids_engage.features.sessions import SessionEncoder

    return SessionEncoder(["user", "lang"], 1800, "tweet_timestamp", row_key=["rid"], **kw)


def _by_key(state) -> pd.DataFrame:
    from rapids_engage.backend import to_host

    return to_host(state).sort_values(["user", "lang"]).reset_index(drop=True)


def _assert_same_values(got, want, columns):
    """``got`` (pandas or cudf) holds ``want``'s (pandas) values of ``columns``, row by row."""
    from rapids_engage.backend import to_host

    for c in columns:
        np.testing.assert_array_equal(to_host(got[c]).to_numpy(dtype=np.int64), want[c].to_numpy(dtype=np.int64), err_msg=c)


def test_session_features_fit_serve_and_extend_on_cudf_as_on_pandas(tmp_path):
    """features/sessions.py (2026-12-05) on cudf / cupy: cupy argsort / flatnonzero / cumsum of bools / scatter, cudf
    iloc with a cupy gather map, masks of cupy booleans, the state's left merge + isna flag, the last second's row ids
    on the device; extend with events sent again, on the state's device and across devices both ways (the state stays
    where it is); save / load into cudf. Values, state and last ids as on pandas."""
    import cudf

    from rapids_engage.features.sessions import SessionEncoder

    events = _session_events()
    t = events["tweet_timestamp"]
    cut, later = 1_600_000_000 + 250 * 600, 1_600_000_000 + 320 * 600
    train, extra, new = events[t < cut], events[(t >= cut) & (t < later)], events[t >= later]
    again = train[train["tweet_timestamp"] == train["tweet_timestamp"].max()]  # sent again, as a `time >= end` filter does
    assert len(again) > 1
    cpu, gpu = _sessions(), _sessions()
    _assert_same_values(gpu.fit_transform(cudf.from_pandas(train)), cpu.fit_transform(train), SESSION_NAMES)
    assert isinstance(gpu.state_, cudf.DataFrame) and gpu.t_end_ == cpu.t_end_
    np.testing.assert_array_equal(gpu.last_ids_, cpu.last_ids_)
    pd.testing.assert_frame_equal(_by_key(gpu.state_), _by_key(cpu.state_), check_dtype=False)
    batch = pd.concat([again, extra])
    for rows in (batch, batch.iloc[:1], batch.iloc[-1:]):
        _assert_same_values(gpu.transform(cudf.from_pandas(rows)), cpu.transform(rows), SESSION_NAMES)
    cpu.extend(batch)
    extended = {"gpu state, gpu events": _sessions().fit(cudf.from_pandas(train)).extend(cudf.from_pandas(batch)),
                "gpu state, host events": _sessions().fit(cudf.from_pandas(train)).extend(batch),
                "host state, gpu events": _sessions().fit(train).extend(cudf.from_pandas(batch))}
    for name, enc in extended.items():
        assert isinstance(enc.state_, pd.DataFrame) == name.startswith("host"), name
        assert enc.t_end_ == cpu.t_end_ and enc.extended_, name
        np.testing.assert_array_equal(enc.last_ids_, cpu.last_ids_, err_msg=name)
        pd.testing.assert_frame_equal(_by_key(enc.state_), _by_key(cpu.state_), check_dtype=False, obj=name)
        resent = pd.concat([extra[extra["tweet_timestamp"] == cpu.t_end_], new])  # the extended state's last second again
        _assert_same_values(enc.transform(cudf.from_pandas(resent)), cpu.transform(resent), SESSION_NAMES)
    extended["gpu state, gpu events"].save(tmp_path)
    loaded = SessionEncoder.load(tmp_path, df_lib=cudf)
    assert isinstance(loaded.state_, cudf.DataFrame)
    np.testing.assert_array_equal(loaded.last_ids_, cpu.last_ids_)
    _assert_same_values(loaded.transform(cudf.from_pandas(new)), cpu.transform(new), SESSION_NAMES)


def test_session_features_on_dask_cudf_as_on_dask_pandas():
    """fit_sessions / session_features on dask_cudf (shuffle on the key, the state gathered or left partitioned by key,
    the last second's rows computed with the state, ids shipped to the workers): dask pandas' values and state."""
    import cudf
    import dask.dataframe as dd

    from rapids_engage.features.sessions import fit_sessions, session_features

    events = _session_events(2_000, seed=9)
    t = events["tweet_timestamp"]
    cut = 1_600_000_000 + 300 * 600
    train, new = events[t < cut], events[t >= cut]
    batch = pd.concat([train[train["tweet_timestamp"] == train["tweet_timestamp"].max()], new])  # with re-sent events
    for limit in (None, 10):  # the state gathered; partitioned by key (more rows than the limit)
        out = {}
        for name, lib in (("cpu", None), ("gpu", cudf)):
            def parts(frame, n, lib=lib):
                frame = lib.from_pandas(frame) if lib else frame
                return dd.from_pandas(frame, npartitions=n, sort=False).map_partitions(lambda p: p.reset_index(drop=True))

            enc = _sessions()
            fitted = fit_sessions(parts(train, 3), enc, limit=limit)[0].compute()
            served = session_features(parts(batch, 2), enc, fit=False).compute()
            out[name] = fitted, served, enc
        (fit_c, serve_c, enc_c), (fit_g, serve_g, enc_g) = out["cpu"], out["gpu"]
        assert type(fit_g).__module__.startswith("cudf") and type(serve_g).__module__.startswith("cudf")
        for got, want in ((fit_g, fit_c), (serve_g, serve_c)):
            got, want = got.to_pandas().sort_values("rid"), want.sort_values("rid")
            _assert_same_values(got, want, SESSION_NAMES)
        np.testing.assert_array_equal(enc_g.last_ids_, enc_c.last_ids_)
        state_g = enc_g.state_.compute() if hasattr(enc_g.state_, "dask") else enc_g.state_
        state_c = enc_c.state_.compute() if hasattr(enc_c.state_, "dask") else enc_c.state_
        pd.testing.assert_frame_equal(_by_key(state_g), _by_key(state_c), check_dtype=False)


def test_content_features_of_null_and_categorical_tweet_types_and_odd_separators_on_cudf():
    """content.py's tweet_type_code (2026-12-05: per-type ``==``, ``fillna(False)``, a sum of int32 flags) on cudf
    strings with nulls and categoricals (cudf's ``==`` of a categorical looked the value up among its categories and
    raised ValueError for one not there: _plain_values casts to the categories' values first), and
    table_content._plain_count_items' one regex scan ``[whitespace but sep]|sepsep`` on libcudf: it sends each odd
    list (another whitespace, a doubled separator, one at either end) to the regex count, as on pandas."""
    import cudf

    from rapids_engage.features.content import content_features, feature_names
    from rapids_engage.features.table_content import _plain_count_items, count_items

    t = 1612396800
    n = 5
    part = pd.DataFrame({"text_tokens": ["101\t137\t102", None, "137", "", "5\t6"], "hashtags": ["a" * 32, None, "", "b" * 32, ""],
                         "present_media": ["Photo", None, "Video\tGIF", "", "Photo\tPhoto"], "present_links": ["l", None, "", "m", ""],
                         "present_domains": ["d" * 32, None, "", "", ""], "tweet_timestamp": [t] * n,
                         "engaging_user_account_creation": [t - 86400] * n, "engaged_with_user_account_creation": [t - 2 * 86400] * n,
                         **{c: [1, 2, 3, 4, 5] for c in ("engaged_with_user_follower_count", "engaged_with_user_following_count",
                                                        "engaging_user_follower_count", "engaging_user_following_count")},
                         **{c: [True, False, True, False, True] for c in ("engaged_with_user_is_verified", "engaging_user_is_verified",
                                                                          "engagee_follows_engager")}}).astype(
                             {c: "str" for c in ("text_tokens", "hashtags", "present_media", "present_links", "present_domains")})
    types, some = [None, "Reply", "Poll", "Quote", "Retweet"], [None, "Reply", "Poll", "Poll", "Reply"]
    for dtype, values in (("str", types), ("object", types), ("category", types), ("category", some)):  # no Quote, Retweet, TopLevel
        rows = part.assign(tweet_type=pd.Series(values, dtype=dtype))
        gpu, cpu = content_features(cudf.from_pandas(rows)), content_features(rows)
        assert str(gpu["tweet_type_code"].dtype) == "int32"
        for name in feature_names():
            np.testing.assert_allclose(gpu[name].to_pandas().to_numpy(dtype=float), cpu[name].to_numpy(dtype=float), err_msg=f"{values} {dtype} {name}")
    nulls = part.assign(tweet_type=pd.Series([None] * n, dtype="str"))  # an all-null column (cudf: a special case of ==)
    assert content_features(cudf.from_pandas(nulls))["tweet_type_code"].to_pandas().tolist() == [0] * n
    for sep, odd in (("\t", ["a\t\tb", "\ta", "a\t", "a\x0bb", "a b", "a\xa0b", "a\u3000b"]), (" ", ["a  b", " a", "a\tb", "a\nb"]),
                     ("|", ["a||b", "|a", "a|", "a b", "a\x1fb"])):
        plain = pd.Series(["a" + sep + "b", "c", "", "d" + sep + "e" + sep + "f"], dtype="str")
        assert _plain_count_items(cudf.from_pandas(plain), sep) is not None
        for text in odd:
            lists = pd.concat([plain, pd.Series([text], dtype="str")], ignore_index=True)
            assert _plain_count_items(lists, sep) is None and _plain_count_items(cudf.from_pandas(lists), sep) is None, (sep, text)
            np.testing.assert_array_equal(count_items(cudf.from_pandas(lists), sep).to_pandas().to_numpy(), count_items(lists, sep).to_numpy())


def test_shuffle_labels_with_null_engagement_times_on_gpu():
    """The leakage control's label shuffle on cudf, whose label and engagement-time columns hold nulls (no positive,
    unlabelled rows): the same permutation as on pandas, dtypes and nulls kept (cudf refused the columns' arrays)."""
    import cudf
    import dask.dataframe as dd

    from rapids_engage.split import shuffle_labels

    rows = _events()
    rows = rows.assign(like=rows["like"].astype("Int8").mask(rows.index % 17 == 0),
                       like_at=(rows["tweet_timestamp"] + 60).astype("Int64").where(rows["like"] == 1))
    args = (["like", "like_at"], 3, "tweet_timestamp")
    cpu = shuffle_labels(dd.from_pandas(rows, npartitions=1, sort=False), *args).compute()
    gpu = shuffle_labels(dd.from_pandas(cudf.from_pandas(rows), npartitions=1, sort=False), *args).compute()
    assert gpu["like_at"].dtype == np.int64 and int(gpu["like_at"].null_count) == int(rows["like_at"].isna().sum())
    _assert_same(gpu, cpu, ["like", "like_at", "tweet_timestamp"])


def test_scorer_matrix_of_integer_and_bool_features_with_nulls_on_gpu():
    """Scorer's booster input on cudf: an int64 / bool feature column with nulls (a numeric input column passed
    through) is float32 with NaN, as on pandas (filled before the cast, cudf refused NaN in an integer column)."""
    import cudf

    from rapids_engage.serve import _matrix

    host = pd.DataFrame({"n": pd.array([3, None, 2**40], dtype="Int64"), "flag": pd.array([True, None, False], dtype="boolean"),
                         "x": [0.5, float("nan"), 1.0]})
    np.testing.assert_array_equal(_matrix(cudf.from_pandas(host), ["x", "flag", "n"]).get(), _matrix(host, ["x", "flag", "n"]))
