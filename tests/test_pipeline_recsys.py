"""Raw RecSys 2021 files through the whole pipeline: ingest (quarantine / strict), features, models, report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rapids_engage.pipeline import main
from rapids_engage.synthetic import SyntheticSpec, write_raw

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raw")
    write_raw(root, SyntheticSpec(rows=40_000, days=7, seed=3))
    files = sorted((root / "raw").glob("*.tsv"))
    lines = files[0].read_bytes().split(b"\n")
    lines[5] = lines[5].replace(b"\x01", b"\x01\x01", 1)  # wrong field count
    lines[9] = b"not a row"
    files[0].write_bytes(b"\n".join(lines))
    return root / "raw"


def _args(raw: Path, tmp: Path, *extra: str) -> list[str]:
    return [
        "--gpus", "0", "--out", str(tmp / "run"), "--quiet",
        "--set", "data.source=recsys", "--set", f"data.path={raw}/*.tsv", "--set", f"data.cache_dir={tmp / 'cache'}",
        "--set", "train.num_boost_round=40", "--set", "cluster.n_workers=2", "--set", "cluster.threads_per_worker=1", *extra,
    ]


def test_raw_files_run_end_to_end_with_quarantine(raw, tmp_path):
    assert main(_args(raw, tmp_path)) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    ingest = report["ingest"]
    assert ingest["quarantined_rows"] == 2
    assert ingest["input_rows"] == ingest["ingested_rows"] + ingest["quarantined_rows"] == 40_000
    assert report["rows"]["train"] + report["rows"]["valid"] == ingest["ingested_rows"]
    assert report["targets"]["like"]["rce"] > 0
    assert Path(ingest["quarantine"]).is_file()
    # the next run reuses the ingest and says so
    from rapids_engage.config import load_config
    from rapids_engage.data import resolve_dataset

    cfg = load_config(None, ["data.source=recsys", f"data.path={raw}/*.tsv", f"data.cache_dir={tmp_path / 'cache'}"])
    assert "39,998 rows ingested (by an earlier run: cached), 2 quarantined" in resolve_dataset(cfg).description


def test_strict_fails_naming_file_and_line(raw, tmp_path):
    cmd = [sys.executable, "-m", "rapids_engage.pipeline", *_args(raw, tmp_path, "--strict")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error:")
    assert ".tsv:6" in err[0]
