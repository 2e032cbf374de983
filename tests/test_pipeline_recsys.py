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


def test_raw_files_run_end_to_end_with_quarantine(raw, tmp_path, tcp_cluster):
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
    _raw_records_score_as_ingest_then_predict(raw, tmp_path, tcp_cluster.scheduler_address)


def _raw_records_score_as_ingest_then_predict(raw: Path, tmp_path: Path, scheduler: str) -> None:
    """A service of a RecSys run gets raw lines or dicts of fields: Scorer.predict_records types them as
    ingest does and scores them as predict does; bad and stale records come back apart. (The predict runs on the
    in-process worker at ``scheduler``: no cluster start.)"""
    import numpy as np
    import pandas as pd

    from rapids_engage.schema import TEST_COLUMNS
    from rapids_engage.serve import Scorer

    last_day = sorted(raw.glob("*.tsv"))[-1].read_text().splitlines()  # the validation day: after training
    lines = ["\x01".join(line.split("\x01")[:20]) for line in last_day[:40]]  # as test rows: no engagements
    (tmp_path / "new.tsv").write_text("\n".join(lines) + "\n")
    assert main(["ingest", "--input", str(tmp_path / "new.tsv"), "--out", str(tmp_path / "ingested"), "--quiet"]) == 0
    assert main(["predict", "--model-dir", str(tmp_path / "run"), "--input", str(tmp_path / "ingested"),
                 "--out", str(tmp_path / "scored"), "--gpus", "0", "--quiet", "--scheduler-address", scheduler]) == 0
    key = ["tweet_id", "engaging_user_id"]
    want = pd.read_parquet(tmp_path / "scored" / "predictions").sort_values(key, ignore_index=True)
    first_day = sorted(raw.glob("*.tsv"))[0].read_text().splitlines()[0]  # before the end of training
    fields = lines[1].split("\x01")
    bad = "\x01".join([*fields[:2], "zz" + fields[2][2:], *fields[3:]])  # a malformed tweet id (the third field)
    scorer = Scorer(tmp_path / "run")
    preds, rejected = scorer.predict_records([lines[0], bad, "", "\x01".join(first_day.split("\x01")[:20]), *lines[1:]])
    assert rejected[["record", "reason"]].values.tolist() == [[1, "invalid_id"], [2, "field_count"], [3, "before_training_end"]]
    assert preds.index.tolist() == [0, *range(4, 43)]  # each prediction's record
    got = preds.sort_values(key, ignore_index=True)
    assert got[key].equals(want[key])
    for t in ("like", "retweet", "reply", "quote"):
        np.testing.assert_allclose(got[f"pred_{t}"], want[f"pred_{t}"], rtol=0, atol=1e-6)
    # dicts of the fields, in their natural Python form, give the same rows
    dicts = [dict(zip(TEST_COLUMNS, line.split("\x01"))) for line in lines[:5]]
    for d in dicts:
        d["text_tokens"] = d["text_tokens"].split("\t")
        d["engaging_user_is_verified"] = d["engaging_user_is_verified"] == "true"
        d["tweet_timestamp"] = int(d["tweet_timestamp"])
    from_dicts, none = scorer.predict_records(dicts)
    assert none.empty
    pd.testing.assert_frame_equal(from_dicts.reset_index(drop=True), preds.loc[[0, 4, 5, 6, 7]].reset_index(drop=True))


def test_strict_fails_naming_file_and_line(raw, tmp_path):
    cmd = [sys.executable, "-m", "rapids_engage.pipeline", *_args(raw, tmp_path, "--strict")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error:")
    assert ".tsv:6" in err[0]


def _small_raw(tmp_path: Path) -> Path:
    write_raw(tmp_path / "gen", SyntheticSpec(rows=2_000, days=2, seed=5, chunk_rows=1_000))
    return tmp_path / "gen" / "raw"


def _resolve(path: str, tmp_path: Path):
    from rapids_engage.config import load_config
    from rapids_engage.data import resolve_dataset

    return resolve_dataset(load_config(None, ["data.source=recsys", f"data.path={path}", f"data.cache_dir={tmp_path / 'cache'}"]))


def test_a_test_file_in_a_run_is_refused(tmp_path):
    """A 20-field test file has no engagements: its rows would train and validate as negatives. Said before
    the ingest (hours of it at scale), and the same with the test file's lines first corrupt: the file's
    kind is voted on its first lines as the ingest votes."""
    from rapids_engage.data import DataError

    raw = _small_raw(tmp_path)
    last = sorted(raw.glob("*.tsv"))[-1]
    lines = [b"\x01".join(line.split(b"\x01")[:20]) for line in last.read_bytes().splitlines()]
    last.write_bytes(b"\n".join([b"a\x01b", *lines]))
    with pytest.raises(DataError, match=rf"1 test file\(s\) of 20 fields.*{last.name}.*`ingest` then `predict`"):
        _resolve(f"{raw}/*.tsv", tmp_path)
    assert not list((tmp_path / "cache").glob("recsys-*")), "refused after ingesting"


def test_an_input_that_is_no_file_is_named(tmp_path):
    """A directory or a broken link among the matches: one line naming it, not the hashing's OSError."""
    from rapids_engage.ingest import IngestError

    raw = _small_raw(tmp_path)
    (raw / "part-99998.tsv").mkdir()
    with pytest.raises(IngestError, match="part-99998.tsv: a directory, not an input file; it holds no file"):
        _resolve(f"{raw}/*.tsv", tmp_path)
    (raw / "part-99998.tsv").rmdir()
    (raw / "part-99999.tsv").symlink_to(tmp_path / "gone.tsv")
    with pytest.raises(IngestError, match="part-99999.tsv: no such input file"):
        _resolve(f"{raw}/*.tsv", tmp_path)


def test_a_directory_as_data_path_reads_its_files_as_its_glob(tmp_path):
    """data.path naming a directory reads the files at any depth below it, as the glob of them does (so does
    ingest --input's); a directory a glob matches is refused with that glob as a hint."""
    from rapids_engage.ingest import IngestError
    from rapids_engage.ingest.recsys import input_paths

    raw = _small_raw(tmp_path)
    (raw / "more").mkdir()
    (raw / "more" / "part-0.tsv").write_bytes(b"")
    assert input_paths(str(raw)) == input_paths(f"{raw}/**/*.tsv") == sorted([*raw.glob("*.tsv"), raw / "more" / "part-0.tsv"])
    with pytest.raises(IngestError, match=rf"{raw}/more: a directory, not an input file; name its files by a glob, "
                                          rf"e.g. '{raw}/more/\*\*/\*\.tsv' \(every such file below it\)"):
        input_paths(f"{raw}/*")


def test_empty_files_are_named_in_the_data_line(tmp_path):
    """A file without rows (a truncated download) is named, not just counted among the files."""
    import gzip

    raw = _small_raw(tmp_path)
    (raw / "part-99999.tsv").write_bytes(gzip.compress(b""))
    assert f"rows ingested, 0 quarantined, 1 empty file(s) ({raw / 'part-99999.tsv'})" in _resolve(f"{raw}/*.tsv", tmp_path).description
