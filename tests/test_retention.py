"""``features.keep_versions``: a daily job's store keeps its newest versions, pruned by the run itself at its end
with ``store --keep N``'s rules (never this run's version, never one in use; a failed run deletes nothing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rapids_engage import pipeline
from rapids_engage.config import ConfigError, from_dict
from rapids_engage.pipeline import main
from rapids_engage.store import FeatureStore

pytestmark = pytest.mark.slow


def _argv(tcp_cluster, tmp: Path, command: str, seed: int, keep: int | None) -> list[str]:
    """A small ``features`` or whole run (``run``) on the synthetic data of ``seed`` (another seed: another input, so
    another version)."""
    return [*([] if command == "run" else [command]), "--gpus", "0", "--rows", "2000", "--out", str(tmp / f"{command}-{seed}"), "--store", str(tmp / "store"),
            "--scheduler-address", tcp_cluster.scheduler_address, "--set", f"data.cache_dir={tmp / 'cache'}",
            "--set", "synthetic.days=3", "--set", f"synthetic.seed={seed}", "--set", "train.targets=[like]",
            "--set", "features.history.keys=[]", "--set", "features.target_encoding.keys=[[language]]",
            "--set", "features.counts=[[language]]", "--set", "train.num_boost_round=3",
            "--set", f"features.keep_versions={'null' if keep is None else keep}"]


def _features(tcp_cluster, tmp: Path, seed: int, keep: int | None) -> dict:
    assert main(_argv(tcp_cluster, tmp, "features", seed, keep)) == 0
    return json.loads((tmp / f"features-{seed}" / "features.json").read_text())["store"]


def _said(capsys) -> list[str]:
    return [line.strip() for line in "".join(capsys.readouterr()).splitlines() if "features.keep_versions" in line]


def test_three_daily_builds_keep_the_two_newest(tcp_cluster, tmp_path, capsys):
    built = [_features(tcp_cluster, tmp_path, seed, 2) for seed in (1, 2, 3)]
    versions = [b["version"] for b in built]
    assert len(set(versions)) == 3
    assert FeatureStore(tmp_path / "store").versions() == versions[1:]
    assert built[0]["retention"] == built[1]["retention"] | {"kept": versions[:1]}
    assert built[1]["retention"] == {"keep_versions": 2, "deleted": [], "kept": versions[:2], "freed_bytes": 0, "errors": []}
    last = built[2]["retention"]
    assert last["deleted"] == versions[:1] and last["kept"] == versions[1:] and last["freed_bytes"] > 0
    lines = _said(capsys)
    assert lines[-1].startswith(f"features.keep_versions 2: deleted 1 version(s) of {tmp_path / 'store'} ({versions[0]}; ")
    assert lines[-1].endswith(f"freed); kept 2: {versions[1]}, {versions[2]}")


def test_versions_in_use_and_this_runs_own_are_kept(tcp_cluster, tmp_path, capsys):
    v1, v2 = (_features(tcp_cluster, tmp_path, seed, None)["version"] for seed in (1, 2))
    served = tmp_path / "daily" / "models"  # a run sharing the store serves v1
    served.mkdir(parents=True)
    (served / "like.meta.json").write_text(json.dumps({"store": {"path": str(tmp_path / "store"), "version": v1}}))
    capsys.readouterr()
    v3 = _features(tcp_cluster, tmp_path, 3, 1)
    assert v3["retention"]["deleted"] == [v2] and FeatureStore(tmp_path / "store").versions() == [v1, v3["version"]]
    assert f"features.keep_versions: keeping {v1}: the models in {served} use it" in _said(capsys)

    # today's input is day 1's again: a cache hit on v1 (keep_versions is no part of a version's id); v1 is the
    # run's own, kept though older than the newest 1
    (served / "like.meta.json").unlink()
    again = _features(tcp_cluster, tmp_path, 1, 1)
    assert again["version"] == v1 and again["cache_hit"] and again["retention"]["deleted"] == []
    assert FeatureStore(tmp_path / "store").versions() == [v1, v3["version"]]
    assert f"features.keep_versions: keeping {v1}: this run's version" in _said(capsys)


def test_a_failed_run_deletes_nothing_and_a_run_prunes_once_published(tcp_cluster, tmp_path, monkeypatch):
    older = [_features(tcp_cluster, tmp_path, seed, None)["version"] for seed in (1, 2)]

    def broken(*args, **kwargs):
        raise RuntimeError("training failed")

    with monkeypatch.context() as patched:
        patched.setattr(pipeline, "train_stage", broken)
        try:
            code = main(_argv(tcp_cluster, tmp_path, "run", 3, 1))
        except RuntimeError:
            code = 1
    assert code != 0
    store = FeatureStore(tmp_path / "store")
    today = next(v for v in store.versions() if v not in older)
    assert store.versions() == [*older, today]  # the failed run's version built, none deleted

    assert main(_argv(tcp_cluster, tmp_path, "run", 3, 1)) == 0
    report = json.loads((tmp_path / "run-3" / "report.json").read_text())
    assert report["store"]["version"] == today and report["store"]["retention"]["deleted"] == older
    assert store.versions() == [today]


@pytest.mark.parametrize("value", [0, -1])
def test_keep_versions_below_one_is_refused_naming_the_key(value):
    with pytest.raises(ConfigError, match=r"features\.keep_versions: expected a whole number of versions >= 1"):
        from_dict({"features": {"keep_versions": value}})


def test_a_version_marked_after_the_selection_is_not_deleted_under_the_run(tcp_cluster, tmp_path, monkeypatch):
    """Run A's retention selects (no mark on v1 yet), run B marks v1 and finds it (a cache hit), then A deletes what it
    selected: v1 must stay, B's training reads it after. Deleted, B failed on its missing files."""
    from contextlib import contextmanager

    from rapids_engage import retention, store_admin

    v1, v2 = (_features(tcp_cluster, tmp_path, seed, None)["version"] for seed in (1, 2))
    store = FeatureStore(tmp_path / "store")
    early = {}
    real_in_use, real_train = pipeline.in_use, pipeline.train_stage

    @contextmanager
    def marking(path, version, *args, **kwargs):
        early.setdefault("selection", store_admin.select(store, 1, [], force=False, hint=""))  # A's, before B's mark
        with real_in_use(path, version, *args, **kwargs):
            yield

    def a_deletes_then_b_trains(*args, **kwargs):
        monkeypatch.setattr(retention, "select", lambda *_a, **_k: early["selection"])
        early["a"] = retention.apply_retention(store.path, 1, v2, lambda line: None)  # A's end, B's version cached
        return real_train(*args, **kwargs)

    monkeypatch.setattr(pipeline, "in_use", marking)
    monkeypatch.setattr(pipeline, "train_stage", a_deletes_then_b_trains)
    assert early.get("selection") is None
    assert main(_argv(tcp_cluster, tmp_path, "run", 1, None)) == 0  # B: day 1's input again, a cache hit on v1
    assert early["selection"].doomed == [v1]  # A chose it before B marked it
    assert early["a"]["deleted"] == [] and store.versions() == [v1, v2]
    report = json.loads((tmp_path / "run-1" / "report.json").read_text())
    assert report["store"]["version"] == v1 and report["store"]["cache_hit"]


def test_a_wider_version_deleted_between_lookup_and_mark_is_rebuilt_as_the_runs_own(tcp_cluster, tmp_path, monkeypatch,
                                                                                       capsys):
    """A run of some of a version's targets finds that wider version, which `store --delete` removes before the run marks
    it: the run builds its own version and says so (it raised MissingVersion naming the wider one)."""
    from rapids_engage.features import materialize as materialize_module

    wide = ["--set", "train.targets=[like,reply]"]
    assert main([*_argv(tcp_cluster, tmp_path, "features", 1, None), *wide]) == 0
    wider = json.loads((tmp_path / "features-1" / "features.json").read_text())["store"]["version"]
    real = materialize_module.wider_version

    def deleted_after_lookup(store, definition):
        found = real(store, definition)
        assert found is not None and found[0] == wider
        assert main(["store", str(store.path), "--delete", wider, "--quiet"]) == 0  # another job, before the mark
        return found

    monkeypatch.setattr(materialize_module, "wider_version", deleted_after_lookup)
    capsys.readouterr()
    assert main(_argv(tcp_cluster, tmp_path, "run", 1, None)) == 0  # like alone: a subset of the wider version's targets
    report = json.loads((tmp_path / "run-1" / "report.json").read_text())
    own = report["store"]["version"]
    assert own != wider and not report["store"]["cache_hit"]
    assert FeatureStore(tmp_path / "store").versions() == [own]
    assert f"feature store: version {wider} is gone; building version {own}" in "".join(capsys.readouterr())
