"""Input paths: ``data.path`` / ``ingest --input`` and ``predict --input`` each take a file, a glob or a directory (every
data file under it at any depth, Spark's and dask's ``_`` / ``.`` markers skipped); hive folders are not read as columns."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rapids_engage.config import TableConfig, TargetSpec, load_config
from rapids_engage.data import DataError, _raw_files
from rapids_engage.ingest import IngestError, ingest_table
from rapids_engage.ingest.recsys import input_paths

CSV = "id,user,ts,clicked\na1,u1,1600000000,1\na2,u2,1600000100,0\n"


def _spark_dir(root: Path) -> Path:
    """A directory as Spark writes it: parts at two depths, ``_SUCCESS``, hidden ``.crc`` files."""
    for name in ("part-0.csv", "a/part-1.csv", "b/c/part-2.csv"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(CSV)
    (root / "_SUCCESS").write_text("")
    (root / ".part-0.csv.crc").write_text("crc")
    (root / "a" / ".part-1.csv.crc").write_text("crc")
    return root


def _raw(path: Path | str, cache: Path) -> tuple[list[str], Path]:
    cfg = load_config(None, ["data.source=recsys", f"data.path={path}", f"data.cache_dir={cache}"])
    return _raw_files(cfg, "recsys", "salt")


def test_a_directory_is_its_data_files_at_any_depth_as_its_glob(tmp_path):
    """data.path / ingest --input naming a directory was refused ('name its files by a glob'), though Spark and dask
    write directories of parts with markers beside them."""
    root = _spark_dir(tmp_path / "events")
    want = [root / "a" / "part-1.csv", root / "b" / "c" / "part-2.csv", root / "part-0.csv"]  # sorted path order
    assert input_paths(str(root)) == want == input_paths(f"{root}/**/*.csv")
    assert _raw(root, tmp_path / "cache") == _raw(f"{root}/**/*.csv", tmp_path / "cache")  # same files, same cache entry
    (root / "_temporary" / "0").mkdir(parents=True)
    (root / "_temporary" / "0" / "part-9.csv").write_text(CSV)  # a Spark job's partial output: skipped
    assert input_paths(str(root)) == want
    (root / "part-3.csv.gz").write_bytes(b"")  # compressed: the same format
    assert input_paths(str(root)) == sorted([*want, root / "part-3.csv.gz"], key=str)


def test_a_directory_without_data_files_or_of_mixed_formats_is_named(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    (root / "_SUCCESS").write_text("")
    with pytest.raises(IngestError, match=f"^{root}: a directory holding no data files"):
        input_paths(str(root))
    with pytest.raises(DataError, match=f"^data.path {root}: a directory holding no data files"):
        _raw(root, tmp_path / "cache")
    (root / "a.csv").write_text(CSV)
    (root / "sub").mkdir()
    (root / "sub" / "b.json").write_text("{}")
    (root / "sub" / "c.json").write_text("{}")
    with pytest.raises(IngestError, match=rf"^{root}: a directory holding files of mixed formats \(2 \.json, 1 \.csv\); "
                                          rf"name the ones to read by a glob, e\.g\. '{root}/\*\*/\*\.json'$"):
        input_paths(str(root))


def _rows(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"row_id": [1, 2], "timestamp": [1_600_000_000] * 2}), path)
    return path


def test_predict_takes_a_glob(tmp_path, capsys):
    """predict --input refused a glob ('a parquet file or directory, not a glob'), which ingest takes."""
    from rapids_engage.commands import main
    from rapids_engage.predict import input_files

    new = tmp_path / "new"
    files = [_rows(new / "x.parquet"), _rows(new / "sub" / "y.parquet"), _rows(new / "ds.parquet" / "part-0.parquet")]
    (new / "notes.txt").write_text("not rows")
    assert input_files(Path(f"{new}/**/*.parquet")) == sorted(files, key=str)  # a directory matched: its files
    assert input_files(Path(f"{new}/*.parquet")) == sorted([files[0], files[2]], key=str)

    def predict(given: str) -> str:
        assert main(["predict", "--model-dir", str(tmp_path / "runs"), "--input", given, "--out", str(tmp_path / "o"),
                     "--gpus", "0"]) == 2
        return " ".join(capsys.readouterr().err.split())

    assert f"--model-dir {tmp_path / 'runs'} does not exist" in predict(f"{new}/**/*.parquet")  # the input passed
    assert f"input {new}/*.pq does not exist (a glob matching no file)" in predict(f"{new}/*.pq")


def test_a_column_named_only_by_a_hive_folder_says_those_are_not_read(tmp_path):
    """A time column kept only in ``ts=1600000000/`` folder names (hive partitioning) was a bare 'no column' error."""
    from rapids_engage.footers import read_footer
    from rapids_engage.layout import table_layout
    from rapids_engage.predict import _shared_columns

    root = tmp_path / "events"
    part = root / "ts=1600000000" / "part-0.csv"
    part.parent.mkdir(parents=True)
    part.write_text(CSV.replace(",ts,", ",when,"))
    spec = TableConfig(format="csv", time="ts", time_format="unix", row_id=["id"], user="user", item="id",
                       targets={"click": TargetSpec("clicked", "binary")})
    with pytest.raises(IngestError, match="no column 'ts'.*; 'ts' is named by the folder ts=1600000000 above it, but hive "
                                          r"partition columns \(key=value folders\) are not read: write the column into the files$"):
        ingest_table(str(root), tmp_path / "o", spec)
    layout = table_layout(spec)
    served = _rows(tmp_path / "new" / f"{layout.time}=1600000000" / "p.parquet")
    have = {c: ["x"] for c in layout.input_columns() if c != layout.time}
    pq.write_table(pa.table(have), served)
    with pytest.raises(DataError, match=rf"missing column\(s\) \['{layout.time}'\] needed to compute features; '{layout.time}' is "
                                        "named by the folder"):
        _shared_columns([read_footer(served)], layout)
