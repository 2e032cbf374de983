"""A second run of the same config finds its store version before the split's pass over the data: the split's
counts come from the version's manifest (issue 3: the cache hit's cost)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rapids_engage import run_stages
from rapids_engage.features import materialize
from rapids_engage.pipeline import main

pytestmark = pytest.mark.slow


@pytest.fixture
def passes(monkeypatch) -> list[str]:
    """In order, "split" per split counted (:func:`~rapids_engage.split.time_split`: the pass over the data) and "hash"
    per input fingerprinted (its files' digests)."""
    calls: list[str] = []

    def recorded(name: str, real):
        def record(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)
        return record

    monkeypatch.setattr(run_stages, "time_split", recorded("split", run_stages.time_split))
    monkeypatch.setattr(materialize, "fingerprint_files", recorded("hash", materialize.fingerprint_files))
    return calls


def _features(tcp_cluster, tmp: Path, out: Path, *extra: str) -> dict:
    argv = ["features", "--gpus", "0", "--rows", "3000", "--out", str(out), "--store", str(tmp / "store"),
            "--scheduler-address", tcp_cluster.scheduler_address, "--set", f"data.cache_dir={tmp / 'cache'}",
            "--set", "synthetic.days=4", "--set", "train.targets=[like]", "--set", "split.gap_hours=6",
            "--set", "features.history.keys=[]", "--set", "features.target_encoding.keys=[[language]]", *extra]
    assert main(argv) == 0
    return json.loads((out / "features.json").read_text())


def _said(capsys) -> list[str]:
    """The run's split and feature-store lines printed since the last call."""
    text = "".join(capsys.readouterr())
    return [line.strip() for line in text.splitlines() if line.strip().startswith(("split:", "feature store:"))]


def test_a_cache_hit_takes_the_split_counts_from_the_store(tcp_cluster, tmp_path, passes, capsys):
    out = tmp_path / "run"
    built = _features(tcp_cluster, tmp_path, out)
    manifest_path = Path(built["store"]["path"]) / built["store"]["version"] / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    counts = manifest["split_counts"]
    assert counts["purged"] == built["split"]["purged_rows"] > 0 and counts["rows"] > counts["valid"] > 0
    assert counts["rows"] - counts["valid"] - counts["purged"] == built["rows"]["train"]
    # a first run: the split's pass (and its checks, its errors) before the input's hashing, as before the lookup
    assert passes == ["split", "hash"]
    capsys.readouterr()

    hit = _features(tcp_cluster, tmp_path, out)
    hit_log = _said(capsys)
    assert passes[2:] == ["hash"], "the cache hit counted the split again"
    assert hit["store"]["cache_hit"] and hit["store"]["version"] == built["store"]["version"]
    assert hit["split"] == built["split"] and hit["rows"] == built["rows"]

    # a version built before manifests kept the counts: the hit counts them, and says and reports the same
    del manifest["split_counts"]
    manifest_path.write_text(json.dumps(manifest, indent=1))
    counted = _features(tcp_cluster, tmp_path, out)
    assert passes.count("split") == 2
    assert counted["store"]["cache_hit"] and counted["split"] == hit["split"] and counted["rows"] == hit["rows"]
    assert _said(capsys) == hit_log
    assert any(line.startswith("split: ") and "purged" in line for line in hit_log), hit_log
    # ... and records them there (same version, files and creation time): the next hit takes them
    recorded = json.loads(manifest_path.read_text())
    assert recorded == manifest | {"split_counts": counts}
    _features(tcp_cluster, tmp_path, out)
    assert passes.count("split") == 2

    # another split definition or input: another version, counted
    _features(tcp_cluster, tmp_path, tmp_path / "gap", "--set", "split.gap_hours=7")
    assert passes.count("split") == 3
    _features(tcp_cluster, tmp_path, tmp_path / "rows", "--rows", "3100")
    assert passes.count("split") == 4
    # --rebuild counts, as before
    _features(tcp_cluster, tmp_path, out, "--rebuild")
    assert passes.count("split") == 5


def test_a_run_of_some_of_a_versions_targets_takes_its_split_counts(tcp_cluster, tmp_path, passes, capsys):
    wide = _features(tcp_cluster, tmp_path, tmp_path / "wide", "--set", "train.targets=[like,reply]")
    assert passes == ["split", "hash"]
    wide_log = _said(capsys)

    some = _features(tcp_cluster, tmp_path, tmp_path / "some")
    assert passes[2:] == ["hash"], "a run of some of the version's targets counted the split again"
    assert some["store"]["cache_hit"] and some["store"]["version"] == wide["store"]["version"]
    assert some["split"] == wide["split"] and some["rows"] == wide["rows"]
    purged = [line for line in wide_log if line.startswith("split: ")]
    assert purged and [line for line in _said(capsys) if line.startswith("split: ")] == purged
