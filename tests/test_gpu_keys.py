"""Key handling on cudf / dask_cudf against the pandas path of the same code (``gpu`` marker: skipped without a GPU
and RAPIDS; run on a GPU machine with ``python -m pytest -m gpu``, ``bench/gpu_session.sh``'s tests step).

Paths that were GPU-unverified (reviewed against cudf 26.10's source only): the key-partitioned feature build
(``encode_by_key``'s per-key shuffles, ``route_back`` with several routed frames, ``shuffle_joins``) on dask_cudf;
``group_ids`` of categorical keys by ``.cat.codes``; ``frames.cast_to_state``'s ``.cat.add_categories`` /
``Index.difference``; the history state's ``groupby(..., observed=True)`` on categorical keys; ``key_values``' routing of
categorical keys by their values (dask_cudf hashes a categorical's codes) in the key shuffles, hash joins and
``split_out`` groupbys.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rapids_engage.backend import host_frame, resolve

pytestmark = pytest.mark.gpu

TARGETS = ["like", "retweet", "reply", "quote"]
T = "tweet_timestamp"


@pytest.fixture(scope="module", autouse=True)
def gpu_backend():
    """The GPU backend initialised as the pipeline does it (cuML's library loaded before cudf); dask's dataframe
    backend is put back afterwards for the other test modules."""
    import dask

    with dask.config.set({"dataframe.backend": dask.config.get("dataframe.backend")}):
        yield resolve("1").init()


# ---- the key-partitioned feature build --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic_events(tmp_path_factory) -> pd.DataFrame:
    """6,000 labelled synthetic events over 3 days (pandas)."""
    import dask

    from rapids_engage.data import read_events
    from rapids_engage.features import add_labels
    from rapids_engage.synthetic import SyntheticSpec, generate

    root = tmp_path_factory.mktemp("gpu_keys")
    generate(root, SyntheticSpec(rows=6_000, days=3, seed=11))
    with dask.config.set({"dataframe.backend": "pandas"}):
        return add_labels(read_events(root / "data"), TARGETS).compute().reset_index(drop=True)


def partitioned_build(events: pd.DataFrame, backend: str, limit: int | None = 0) -> dict[str, pd.DataFrame]:
    """The training and validation features (host frames, in output order) of ``events`` in 3 partitions on dask's
    ``backend`` ("pandas" or "cudf"), every key table above ``limit`` rows (0: all) kept partitioned: fitting takes
    the per-key shuffles of :func:`~rapids_engage.features.by_key.encode_by_key` and routes each key's values home
    (one routed frame per key in :func:`~rapids_engage.features.frames.route_back`); serving shuffle-joins the
    partitioned tables (:func:`~rapids_engage.features.frames.shuffle_joins`); the history and session states stay
    partitioned by key."""
    import dask
    import dask.dataframe as dd

    from rapids_engage.config import load_config
    from rapids_engage.features import FeatureBuilder
    from rapids_engage.schema import ROW_KEY
    from rapids_engage.split import time_split

    cfg = load_config().features
    cfg.broadcast_limit = limit
    cfg.session.enabled = True
    with dask.config.set({"dataframe.backend": backend}):
        frame = dd.from_pandas(events, npartitions=3, sort=False)
        frame = (frame.to_backend("cudf") if backend == "cudf" else frame).persist()
        train, valid, _ = time_split(frame, 24)
        builder = FeatureBuilder(cfg, TARGETS)
        columns = [*ROW_KEY, *builder.feature_names()]
        out = {"train": builder.fit_transform(train)[columns].compute(), "valid": builder.transform(valid)[columns].compute()}
    return {"partitioned": builder.partitioned, **{name: host_frame(rows) for name, rows in out.items()}}


def assert_same_rows(got: pd.DataFrame, want: pd.DataFrame, what: str) -> None:
    """``got`` holds ``want``'s columns, rows and index in the same order: integers and bools exactly, floats within
    1e-6 (nulls where ``want`` has them)."""
    assert list(got.columns) == list(want.columns), f"{what}: columns {list(got.columns)} != {list(want.columns)}"
    assert len(got) == len(want), f"{what}: {len(got)} rows != {len(want)}"
    np.testing.assert_array_equal(got.index.to_numpy(), want.index.to_numpy(), err_msg=f"{what}: index (row order)")
    for c in want.columns:
        g, w = got[c].reset_index(drop=True), want[c].reset_index(drop=True)
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g.to_numpy(dtype=float, na_value=np.nan), w.to_numpy(dtype=float, na_value=np.nan),
                                       rtol=0, atol=1e-6, err_msg=f"{what}: {c}")
        else:
            pd.testing.assert_series_equal(g, w, check_dtype=False, check_exact=True, obj=f"{what}: {c}")


def test_features_with_every_key_table_partitioned_on_dask_cudf_as_on_dask_pandas(synthetic_events):
    """``features.broadcast_limit`` 0 on dask_cudf: the per-key routing shuffles of the training rows, ``route_back``
    of several routed frames (one per key) and the serving shuffle joins give dask pandas' features: the same
    columns, rows in the same order (partition *i* of the output is partition *i* of the input), integers
    exactly, floats within 1e-6; the same tables kept partitioned."""
    cpu, gpu = partitioned_build(synthetic_events, "pandas"), partitioned_build(synthetic_events, "cudf")
    assert len(cpu["partitioned"]) > 1 and gpu["partitioned"] == cpu["partitioned"]  # several keys routed home
    assert len(cpu["train"]) > 1_000 and len(cpu["valid"]) > 1_000
    for name in ("train", "valid"):
        assert_same_rows(gpu[name], cpu[name], name)


# ---- categorical keys -------------------------------------------------------------------------------------------


def test_group_ids_and_cast_to_state_of_categorical_keys_on_cudf():
    """``group_ids`` of categorical keys by their codes (cudf keeps a null's code null where pandas has -1) with a
    null categorical key and a string key with nulls; ``cast_to_state`` adding the categories a state lacks
    (``Index.difference`` then ``.cat.add_categories``) from categorical and from string rows: pandas' groups,
    categories and values."""
    import cudf

    from rapids_engage.features.frames import cast_to_state, group_ids

    rng = np.random.default_rng(3)
    n = 400
    user = pd.Series(pd.Categorical(rng.choice([f"u{i}" for i in range(12)], n), categories=[f"u{i}" for i in range(14)]))
    user[rng.random(n) < 0.1] = None
    lang = pd.Series(rng.choice(["en", "ja", ""], n), dtype="str").where(rng.random(n) >= 0.1)
    for keys in (pd.DataFrame({"user": user}), pd.DataFrame({"user": user, "lang": lang})):
        cpu, gpu = group_ids(keys), group_ids(cudf.from_pandas(keys)).get()
        first_cpu = pd.Series(np.arange(n)).groupby(cpu).transform("min").to_numpy()
        first_gpu = pd.Series(np.arange(n)).groupby(gpu).transform("min").to_numpy()
        np.testing.assert_array_equal(first_gpu, first_cpu, err_msg=str(list(keys.columns)))  # the same partition of the rows
    assert len(np.unique(group_ids(cudf.from_pandas(pd.DataFrame({"user": user})[user.isna()])).get())) == 1  # nulls: one group

    state = pd.DataFrame({"user": pd.Categorical(["a", "b", None], categories=["a", "b", "y"]), "n": [1, 2, 3]})
    incoming = {"categorical": pd.Categorical(["c", "a", None, "d"], categories=["a", "c", "d", "z"]),
                "string": pd.Series(["c", "a", None, "d"], dtype="str")}
    for kind, users in incoming.items():
        rows = pd.DataFrame({"user": users, "n": [4, 5, 6, 7]})
        want_state, want_rows = cast_to_state(state, rows)
        got_state, got_rows = cast_to_state(cudf.from_pandas(state), cudf.from_pandas(rows))
        assert isinstance(got_state, cudf.DataFrame) and isinstance(got_rows, cudf.DataFrame), kind
        got_cats = sorted(got_state["user"].cat.categories.to_pandas().tolist())
        assert got_cats == sorted(want_state["user"].cat.categories.tolist()), (kind, got_cats)
        assert str(got_rows["user"].dtype) == "category", kind
        assert sorted(got_rows["user"].cat.categories.to_pandas().tolist()) == got_cats, kind
        for got, want in ((got_state, want_state), (got_rows, want_rows)):  # no value lost to a missing category
            assert _values(got["user"].to_pandas()) == _values(want["user"]), kind
        merged = cudf.concat([got_state, got_rows], ignore_index=True)  # what the encoders' extend does next
        assert _values(merged["user"].to_pandas()) == _values(pd.concat([want_state, want_rows])["user"]), kind


def _values(column: pd.Series) -> list:
    """A host column's values as a list, None for each null."""
    return [None if pd.isna(v) else v for v in column.astype(object)]


def categorical_parts() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, extra, new) events of a categorical ``user`` key (categories a part does not use, nulls; ``extra`` and
    ``new`` bring categories the earlier parts lack) and a string ``lang`` key with nulls, 60 s apart on average."""
    rng = np.random.default_rng(12)

    def part(n, names, start, seed_row):
        user = pd.Series(pd.Categorical(rng.choice(names[:-2], n), categories=names))  # the last two: absent
        user[rng.random(n) < 0.06] = None
        lang = pd.Series(rng.choice(["en", "ja"], n), dtype="str").where(rng.random(n) >= 0.05)
        return pd.DataFrame({"user": user, "lang": lang, T: np.sort(start + rng.integers(0, n * 60, n)).astype("int64"),
                             "rid": np.arange(seed_row, seed_row + n, dtype="int64"), "like": rng.integers(0, 2, n).astype("int8"),
                             "reply": (rng.random(n) < 0.2).astype("int8"), "row": np.arange(seed_row, seed_row + n)})

    t0 = 1_612_396_800
    train = part(1_500, [f"u{i}" for i in range(0, 40)], t0, 0)
    extra = part(600, [f"u{i}" for i in range(30, 60)], t0 + 1_500 * 60, 10_000)
    new = part(400, [f"u{i}" for i in range(20, 70)], t0 + 2_100 * 60, 20_000)
    return train, extra, new


def _state_rows(state, key: list[str]) -> pd.DataFrame:
    """A state on the host with its categorical keys as strings, sorted: comparable across libraries."""
    state = host_frame(state)
    state = state.astype({c: "str" for c in key if str(state[c].dtype) == "category"})
    return state.sort_values(list(state.columns), na_position="first", ignore_index=True)


def categorical_encoders(kind: str, device) -> dict[str, object]:
    """A history or session encoder on ``key`` fitted on ``device(train)`` and its outputs: the training features, the
    fitted state, then the state extended by ``extra`` (on the device, and from host events) and the features of
    ``new`` served from it (host frames)."""
    from rapids_engage.features.history_encoder import HistoryEncoder
    from rapids_engage.features.sessions import SessionEncoder

    key = ["user", "lang"]
    make = {"history": lambda: HistoryEncoder(key, ["like", "reply"], (3_600, 86_400), time_column=T, days=(1,), rates=True,
                                              row_key=["rid"]),
            "session": lambda: SessionEncoder(key, 1_800, T, row_key=["rid"])}[kind]
    train, extra, new = categorical_parts()
    enc = make()
    out = {"fit": host_frame(enc.fit_transform(device(train)))}
    out["fit state"] = _state_rows(enc.state_, key)
    served = new.drop(columns=["like", "reply"])
    for events in ("device", "host"):
        extended = make().fit(device(train)).extend(device(extra) if events == "device" else extra)
        out[f"state extended by {events} events"] = _state_rows(extended.state_, key)
        out[f"served after extending by {events} events"] = host_frame(extended.transform(device(served)))
    return out


@pytest.mark.parametrize("kind", ["history", "session"])
def test_encoders_of_a_categorical_key_on_cudf_as_on_pandas(kind):
    """History and session encoders on cudf with a categorical key that has unused categories and nulls: the history
    state's ``groupby(..., observed=True)`` (no row per absent category), ``group_ids`` by ``.cat.codes``, and
    ``extend`` with categories new to the state (``cast_to_state``), from cudf and from pandas events: pandas' features
    (row by row), states and served features."""
    import cudf

    cpu, gpu = categorical_encoders(kind, lambda frame: frame), categorical_encoders(kind, cudf.from_pandas)
    served, n = cpu["served after extending by device events"], {"history": "hist_user__lang_n", "session": "sess_n"}[kind]
    only_extended = served["user"].isin([f"u{i}" for i in range(40, 58)])  # keys the state has from extend alone
    assert (served.loc[only_extended, n] > 0).any()  # their state served (earlier events counted)
    for name, want in cpu.items():
        got = gpu[name]
        if "state" in name:
            assert got["user"].isin([f"u{i}" for i in range(30, 40)]).any(), name  # old keys kept
            assert "extended" not in name or got["user"].isin([f"u{i}" for i in range(40, 58)]).any(), name  # new ones added
            pd.testing.assert_frame_equal(got, want, check_dtype=False, obj=f"{kind} {name}")
            continue
        assert list(got.columns) == list(want.columns), name
        for c in [c for c in want.columns if c.startswith(("hist_", "sess_")) or c == "row"]:
            np.testing.assert_allclose(got[c].to_numpy(dtype=float, na_value=np.nan), want[c].to_numpy(dtype=float, na_value=np.nan),
                                       rtol=0, atol=1e-9, err_msg=f"{kind} {name}: {c}")


def differently_coded(frame: pd.DataFrame, n: int, device) -> object:
    """``frame`` in ``n`` dask partitions of ``device`` frames whose ``user`` is a categorical of the partition's own
    values, in an order of its own (as a parquet file's dictionary): a key's codes differ between partitions."""
    import dask.dataframe as dd

    bounds = np.linspace(0, len(frame), n + 1).astype(int)
    parts = []
    for i in range(n):
        part = frame.iloc[bounds[i] : bounds[i + 1]].reset_index(drop=True).astype({"user": object})
        values = sorted(part["user"].dropna().unique())
        part["user"] = pd.Categorical(part["user"], categories=values[::-1] if i % 2 else values)
        parts.append(device(part))
    return dd.from_map(lambda part: part, parts)


@pytest.mark.parametrize("limit", [None, 0])
def test_categorical_keys_of_differently_coded_partitions_meet_on_dask_cudf(limit):
    """dask_cudf routes a categorical by its codes (``hash_object_cudf`` -> cudf ``hash_values``): through
    :mod:`~rapids_engage.features.key_values` the rows of a key meet whatever each partition's categories. History and
    session features of 4 such cudf partitions, fitted (state gathered / partitioned) and served, and the by-key
    counts (tables partitioned: shuffle joins, a ``split_out`` groupby for the per-day counts): pandas' in-memory ones."""
    import cudf

    from rapids_engage.features.by_key import encode_by_key
    from rapids_engage.features.counts import DAY, CountEncoder
    from rapids_engage.features.frames import Checkpoints
    from rapids_engage.features.history import HistoryEncoder, history_features
    from rapids_engage.features.sessions import SessionEncoder, session_features

    train, _, new = categorical_parts()
    for make, run in ((lambda: HistoryEncoder("user", ["like", "reply"], (3_600,), time_column=T), history_features),
                      (lambda: SessionEncoder("user", 1_800, T), session_features)):
        want = make().fit_transform(train).set_index("row").sort_index()
        enc = make()
        got = host_frame(run(differently_coded(train, 4, cudf.from_pandas), enc, limit=limit).compute())
        served = host_frame(run(differently_coded(new, 3, cudf.from_pandas), enc, fit=False).compute())
        for what, have, ref in (("fit", got, want), ("served", served, make().fit(train).transform(new).set_index("row"))):
            have, ref = have.set_index("row").sort_index(), ref.sort_index()
            for c in [c for c in ref.columns if c.startswith(("hist_", "sess_"))]:
                np.testing.assert_allclose(have[c].to_numpy(dtype=float, na_value=np.nan), ref[c].to_numpy(dtype=float, na_value=np.nan),
                                           rtol=0, atol=1e-9, err_msg=f"{what} {c} (limit {limit})")
    days = train.assign(**{DAY: train[T] // 86_400})
    cnt = CountEncoder("user", time_column=T)
    got = host_frame(encode_by_key(differently_coded(days, 4, cudf.from_pandas), [], [cnt], [cnt], Checkpoints(), 0).compute())
    users = got["user"].astype(object)
    for name, by in (("cnt_user", users), ("cnt_day_user", users.astype(str) + "|" + got[DAY].astype(str))):
        want = by.map(by[users.notna()].value_counts()).where(users.notna(), 0)
        np.testing.assert_array_equal(got[name].to_numpy(dtype=np.int64), want.to_numpy(dtype=np.int64), err_msg=name)
