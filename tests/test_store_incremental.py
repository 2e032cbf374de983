"""A changed feature config recomputes only the changed groups, and gives what a full build gives."""

from __future__ import annotations

import copy
import json
import os
import re

import pandas as pd
import pytest

from rapids_engage.backend import CPU
from rapids_engage.config import load_config
from rapids_engage.data import read_events
from rapids_engage.features import FeatureBuilder, add_labels
from rapids_engage.features.materialize import materialize
from rapids_engage.layout import RECSYS
from rapids_engage.schema import ROW_KEY
from rapids_engage.split import time_split
from rapids_engage.synthetic import SyntheticSpec, generate

TARGETS = ["like", "reply"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("incr")
    generate(root, SyntheticSpec(rows=8_000, days=4, seed=3))
    events = add_labels(read_events(root / "data"), TARGETS)
    train, valid, split = time_split(events, 24)
    return root / "data", train, valid, {"valid_hours": 24, "cutoff": split.cutoff}


def _config(te_keys, counts, history):
    cfg = copy.deepcopy(load_config().features)
    cfg.target_encoding.keys = te_keys
    cfg.counts = counts
    cfg.history.keys = history
    return cfg


def _build(cfg, store, data, rebuild=False):
    data_dir, train, valid, split = data
    logs: list[str] = []
    built = materialize(cfg, store, data_dir, train, valid, TARGETS, split, CPU, RECSYS, rebuild, logs.append)
    return built, logs


def _split(built, split):
    frame = built.store.read_split(built.version, split).compute()
    return frame.sort_values(list(ROW_KEY)).reset_index(drop=True)


def test_changed_groups_only_are_recomputed(data, tmp_path):
    user, creator, lang = ["engaging_user_id"], ["engaged_with_user_id"], ["language"]
    first = _config([user, lang], [user], [user])
    built_a, _ = _build(first, tmp_path / "store", data)
    assert not built_a.cache_hit and built_a.reused is None

    # one TE key added, one dropped, a count key added; content, te user, count user and history reused
    second = _config([user, creator], [user, creator], [user])
    built_b, logs = _build(second, tmp_path / "store", data)
    assert built_b.reused == {"from": built_a.version, "groups": ["cnt_engaging_user_id", "content", "hist_engaging_user_id", "te_engaging_user_id"]}
    assert any("reusing 4 feature groups" in line and "computing 2" in line for line in logs), logs

    # the same as building the second config from scratch, column for column
    full, _ = _build(second, tmp_path / "fresh", data)
    assert full.reused is None and full.version == built_b.version and full.features == built_b.features
    for split in ("train", "valid"):
        got, want = _split(built_b, split), _split(full, split)
        assert list(got.columns) == list(want.columns)
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=0, atol=1e-12)

    # the serving state is complete: copied groups + new groups, one spec
    state = built_b.store.version_dir(built_b.version) / "state"
    fresh_state = full.store.version_dir(full.version) / "state"
    assert sorted(p.name for p in state.iterdir()) == sorted(p.name for p in fresh_state.iterdir())
    assert json.loads((state / "features.json").read_text()) == json.loads((fresh_state / "features.json").read_text())
    served = built_b.store.builder(built_b.version).transform_frame(data[2].compute())
    assert list(served[built_b.features].columns) == built_b.features

    # same config again: a cache hit; --rebuild: a full build, nothing reused
    again, logs = _build(second, tmp_path / "store", data)
    assert again.cache_hit and any("cache hit" in line for line in logs)
    rebuilt, _ = _build(second, tmp_path / "store", data, rebuild=True)
    assert not rebuilt.cache_hit and rebuilt.reused is None


def test_reuse_picks_the_version_sharing_most_groups(data, tmp_path):
    user = ["engaging_user_id"]
    first = _config([user], [user], [])
    _build(first, tmp_path / "store", data)
    second = _config([user], [user], [])
    second.target_encoding.smooth = 5.0  # the TE group changes; content and counts are shared
    built, _ = _build(second, tmp_path / "store", data)
    assert built.reused["groups"] == ["cnt_engaging_user_id", "content"]
    # only the smooth-5 TE group: all of it is in the second version, nothing is computed
    third = _config([user], [], [])
    third.target_encoding.smooth, third.content = 5.0, False
    subset, logs = _build(third, tmp_path / "store", data)
    assert subset.reused == {"from": built.version, "groups": ["te_engaging_user_id"]}
    assert any("computing 0" in line for line in logs)
    full, _ = _build(third, tmp_path / "fresh", data)
    assert subset.features == full.features == FeatureBuilder(third, TARGETS).feature_names()
    for split in ("train", "valid"):
        pd.testing.assert_frame_equal(_split(subset, split), _split(full, split), check_exact=False, rtol=0, atol=1e-12)
    # a different input shares nothing: a full build
    moved = dict(zip(("data_dir", "train", "valid", "split"), data))
    other = (moved["data_dir"], moved["train"], moved["valid"], {**moved["split"], "cutoff": moved["split"]["cutoff"] - 1})
    built, _ = _build(third, tmp_path / "store", other)
    assert built.reused is None


def test_a_content_feature_added_by_the_code_is_a_new_version(data, tmp_path, monkeypatch):
    """A store built before a content feature existed is no cache hit and lends no content group."""
    from rapids_engage.features import content

    user = ["engaging_user_id"]
    cfg = _config([user], [user], [])
    monkeypatch.setattr(content, "TOKEN_COUNTS", {})
    old, _ = _build(cfg, tmp_path / "store", data)
    assert "n_mentions" not in old.features
    monkeypatch.undo()
    new, logs = _build(cfg, tmp_path / "store", data)
    assert not new.cache_hit and new.version != old.version and "n_mentions" in new.features
    assert new.reused is not None and "content" not in new.reused["groups"], logs
    assert set(new.reused["groups"]) == {"te_engaging_user_id", "cnt_engaging_user_id"}


def test_a_key_on_a_content_feature_is_computed_when_the_content_group_is_reused(data, tmp_path):
    """The content group comes from the older version; a new history key on ``hour`` still needs the hour."""
    user = ["engaging_user_id"]
    _build(_config([user], [], []), tmp_path / "store", data)
    cfg = _config([user], [], [["hour"]])
    built, logs = _build(cfg, tmp_path / "store", data)
    assert built.reused is not None and "content" in built.reused["groups"], logs
    full, _ = _build(cfg, tmp_path / "fresh", data)
    assert "hist_hour_n" in built.features and built.features == full.features
    pd.testing.assert_frame_equal(_split(built, "valid"), _split(full, "valid"), check_exact=False, rtol=0, atol=1e-12)


def test_a_version_built_meanwhile_by_another_run_is_used_not_replaced(data, tmp_path, monkeypatch):
    """Two runs build the same version (a store on a filesystem without locks: :mod:`.build_lock` lets both build):
    the later one keeps the first's files, which that run is reading (its files went from under it:
    FileNotFoundError when the two were partitioned differently)."""
    import contextlib

    import rapids_engage.features.materialize as materialize_module
    from rapids_engage.store import FeatureStore

    monkeypatch.setattr(materialize_module, "building", lambda *_args: contextlib.nullcontext())

    cfg = _config([["engaging_user_id"]], [], [])
    data_dir, train, valid, split = data
    publish, first = FeatureStore.publish, {}

    def other_run_first(self, *args, **kwargs):  # the other run publishes while this one still builds
        if not first:
            first["built"] = None
            first["built"], _ = _build(cfg, tmp_path / "store", data)
            first["frame"] = first["built"].store.read_split(first["built"].version, "train")
        return publish(self, *args, **kwargs)

    monkeypatch.setattr(FeatureStore, "publish", other_run_first)
    one = (data_dir, train.repartition(npartitions=1), valid.repartition(npartitions=1), split)
    built, logs = _build(cfg, tmp_path / "store", one)
    assert built.version == first["built"].version and built.cache_hit
    assert any("built by another run meanwhile" in line for line in logs), logs
    assert len(first["frame"].compute()) == built.rows["train"]  # the first run's files are still there
    assert [p.name for p in (tmp_path / "store").iterdir() if p.is_dir()] == [built.version]


def test_a_version_built_meanwhile_and_gone_again_is_a_missing_version_not_a_type_error(data, tmp_path, monkeypatch):
    """Replaced or deleted between the other run's publish and this run's reading of it (`store --delete`):
    `manifest["features"]` of None raised a TypeError."""
    from rapids_engage.store import FeatureStore, MissingVersion

    def published_meanwhile_then_deleted(self, tmp, version, manifest, replace=True):
        self.discard(tmp)
        return False

    monkeypatch.setattr(FeatureStore, "publish", published_meanwhile_then_deleted)
    with pytest.raises(MissingVersion, match="no intact version"):
        _build(_config([["engaging_user_id"]], [], []), tmp_path / "store", data)


@pytest.mark.parametrize("edit, reused", [
    (lambda m: m.update(groups=None), None),
    (lambda m: m.update(definition=None), None),
    (lambda m: m["groups"].update(content="x"), ["te_engaging_user_id"]),
])
def test_a_manifest_edited_to_record_no_groups_lends_none(data, tmp_path, edit, reused):
    """A hand-edited manifest with ``groups: null`` or ``definition: null`` (intact to the store: null is
    'not recorded') ended the next build of another config in an AttributeError traceback while looking for
    a version to reuse; it lends no groups now, and a group entry of another shape is not shared."""
    user = ["engaging_user_id"]
    first, _ = _build(_config([user], [user], []), tmp_path / "store", data)
    path = first.store.version_dir(first.version) / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
    assert first.store.check(first.version)[1] is None
    built, _ = _build(_config([user], [], []), tmp_path / "store", data)
    assert not built.cache_hit and (built.reused and built.reused["groups"]) == reused


@pytest.mark.parametrize("fails", [False, True], ids=["built", "build-fails"])
def test_store_keep_during_a_reusing_build_spares_the_version_it_reads(data, tmp_path, monkeypatch, capsys, fails):
    """A build reusing feature groups of an older version reads that version's parquet while it builds, but only the
    new version was marked in use: `store --keep 0` run meanwhile deleted the older one from under it. The older
    version is marked in use for the build, and the mark goes with it, whether it is published or fails."""
    from rapids_engage.features import materialize as materialize_module
    from rapids_engage.pipeline import main
    from rapids_engage.store import FeatureStore

    user = ["engaging_user_id"]
    store = tmp_path / "store"
    old, _ = _build(_config([user], [user], []), store, data)
    real = materialize_module.write_split
    kept: list[str] = []

    def housekeeping(frame, out):  # the reusing build's first write, once it reads the older version
        if not kept:
            assert main(["store", str(store), "--keep", "0"]) == 0
            kept.append(capsys.readouterr().out)
            if fails:
                raise RuntimeError("the build failed")
        return real(frame, out)

    monkeypatch.setattr(materialize_module, "write_split", housekeeping)
    if fails:
        with pytest.raises(RuntimeError, match="the build failed"):
            _build(_config([user, ["language"]], [user], []), store, data)
    else:
        new, _ = _build(_config([user, ["language"]], [user], []), store, data)
        assert new.reused["from"] == old.version and FeatureStore(store).versions() == sorted([old.version, new.version])
    line = " ".join(kept[0].split())
    assert re.search(rf"keeping {old.version}: the build of version \w+ in {re.escape(str(store))}/\.tmp-\S+ "
                     rf"\(process {os.getpid()}\) reads it \(--force deletes it\)", line), line
    assert old.version in FeatureStore(store).versions()
    assert not (store / ".in-use").exists()  # released after the build, published or failed
    assert main(["store", str(store), "--keep", "0", "--quiet"]) == 0  # and deletable then
    assert FeatureStore(store).versions() == []


def test_a_version_deleted_before_the_reusing_build_marks_it_is_built_in_full(data, tmp_path, monkeypatch):
    """The older version chosen for its groups may be deleted before the build marks it in use: the build then
    computes every group (it read the gone version's parquet and failed)."""
    from contextlib import contextmanager

    from rapids_engage.features import materialize as materialize_module
    from rapids_engage.pipeline import main

    user = ["engaging_user_id"]
    store = tmp_path / "store"
    old, _ = _build(_config([user], [user], []), store, data)
    real = materialize_module.use_lock

    @contextmanager
    def deleted_first(path, version):  # `store --delete` just before the mark (taken under the version's use lock)
        if version == old.version:
            assert main(["store", str(store), "--delete", old.version, "--quiet"]) == 0
        with real(path, version):
            yield

    monkeypatch.setattr(materialize_module, "use_lock", deleted_first)
    new, logs = _build(_config([user, ["language"]], [user], []), store, data)
    assert new.reused is None and not new.cache_hit, logs
    assert f"feature store: version {old.version} is gone; building in full" in logs
    full, _ = _build(_config([user, ["language"]], [user], []), tmp_path / "fresh", data)
    assert new.version == full.version and new.features == full.features


def test_a_changed_session_config_recomputes_the_session_group_alone(data, tmp_path):
    user = ["engaging_user_id"]
    off = _config([user], [user], [])
    built_off, _ = _build(off, tmp_path / "store", data)
    definition = built_off.store.manifest(built_off.version)["definition"]["features"]
    assert "session" not in definition  # versions built before session features keep their ids
    on = copy.deepcopy(off)
    on.session.enabled = True
    built_on, logs = _build(on, tmp_path / "store", data)
    assert built_on.reused["groups"] == ["cnt_engaging_user_id", "content", "te_engaging_user_id"]
    shorter = copy.deepcopy(on)
    shorter.session.gap = 600
    built_short, logs = _build(shorter, tmp_path / "store", data)
    assert built_short.reused == {"from": built_on.version, "groups": ["cnt_engaging_user_id", "content", "te_engaging_user_id"]}
    assert any("computing 1" in line for line in logs), logs
    assert not _split(built_short, "valid")["sess_n"].equals(_split(built_on, "valid")["sess_n"])  # recomputed, not lent
    state = built_short.store.version_dir(built_short.version) / "state"
    assert json.loads((state / "sess.json").read_text())["params"]["gap"] == 600


def test_a_session_state_from_before_its_row_ids_is_served_as_it_was_and_lent_to_no_new_version(data, tmp_path):
    """The session state keeps its last second's row ids now. A version built before (same definition, same values:
    the same id) stays a cache hit and its state is read as it was (none known); a new version computes its own
    session state rather than copying that one (the group's signature names the state's format)."""
    import hashlib

    from rapids_engage.store import MANIFEST, list_files

    user = ["engaging_user_id"]
    on = _config([user], [user], [])
    on.session.enabled = True
    built, _ = _build(on, tmp_path / "store", data)
    root = built.store.version_dir(built.version)
    state = json.loads((root / "state" / "sess.json").read_text())
    assert state["params"]["row_key"] == list(ROW_KEY) and state["last_ids"] > 0
    # as the code before wrote it: no row ids, and the group's signature of its definition then
    old = {"params": {k: v for k, v in state["params"].items() if k != "row_key"}, "t_end": state["t_end"]}
    (root / "state" / "sess.json").write_text(json.dumps(old))
    (root / "state" / "sess.last_ids.parquet").unlink()
    manifest = json.loads((root / MANIFEST).read_text())
    then = {"session": {"key": None, "gap": 1800}, "names": ["sess_n", "sess_age", "sess_index"]}
    manifest["groups"]["sess"]["signature"] = hashlib.sha256(json.dumps(then, sort_keys=True).encode()).hexdigest()[:16]
    manifest["files"] = list_files(root)
    (root / MANIFEST).write_text(json.dumps(manifest))
    again, _ = _build(on, tmp_path / "store", data)
    assert again.cache_hit and again.version == built.version
    assert len(built.store.builder(built.version).session_encoders[0].last_ids_) == 0
    wider = copy.deepcopy(on)
    wider.target_encoding.keys = [user, ["language"]]
    new, logs = _build(wider, tmp_path / "store", data)
    assert new.reused == {"from": built.version, "groups": ["cnt_engaging_user_id", "content", "te_engaging_user_id"]}, logs
    fresh = json.loads((new.store.version_dir(new.version) / "state" / "sess.json").read_text())
    assert fresh["last_ids"] == state["last_ids"]
