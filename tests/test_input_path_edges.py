"""Input paths at their edges: a file whose name holds glob characters, symbolic links inside a directory."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rapids_engage.ingest.recsys import input_paths
from rapids_engage.input_files import expand

CSV = "id,user,ts,clicked\na1,u1,1600000000,1\n"
#: fingerprint_files of test_an_ordinary_store_keeps_its_files_order_and_fingerprint's tree, by the Path.rglob listing
FINGERPRINT = "89eaa6ab978ac76f02855310ebf242412264de218f561679527e81aa3704d345"


def test_a_file_named_with_glob_characters_is_that_file(tmp_path):
    """'events[1].csv' was read as a glob: it read 'events1.csv' beside it instead (or matched nothing)."""
    named, other = tmp_path / "events[1].csv", tmp_path / "events1.csv"
    named.write_text(CSV)
    other.write_text(CSV)
    assert input_paths(str(named)) == [named]
    assert expand(f"{tmp_path}/*.csv") == sorted([named, other], key=str)  # a glob is still one


def test_predict_reads_a_file_named_with_glob_characters(tmp_path):
    from rapids_engage.predict import input_exists, input_files

    named = tmp_path / "rows[2021].parquet"
    pq.write_table(pa.table({"row_id": [1]}), named)
    assert input_exists(named) and input_files(named) == [named]


def test_a_directory_reads_its_linked_folders_once(tmp_path):
    """A folder linked into the directory (ln -s /big/disk/day2 data/day2) was skipped without a word; a link back up
    (a loop) is read once."""
    root, elsewhere = tmp_path / "data", tmp_path / "disk" / "day2"
    (root / "day1").mkdir(parents=True)
    elsewhere.mkdir(parents=True)
    (root / "day1" / "a.csv").write_text(CSV)
    (elsewhere / "b.csv").write_text(CSV)
    (root / "day2").symlink_to(elsewhere)
    (root / "day1" / "up").symlink_to(root)  # a loop
    assert input_paths(str(root)) == [root / "day1" / "a.csv", root / "day2" / "b.csv"]
    assert input_paths(f"{root}/") == [root / "day1" / "a.csv", root / "day2" / "b.csv"]


def test_hidden_folders_above_the_directory_are_the_user_s_own(tmp_path):
    """Only names below the given directory are skipped as markers: /home/u/.data/x is read."""
    root = tmp_path / ".data" / "_x"
    root.mkdir(parents=True)
    (root / "a.csv").write_text(CSV)
    assert input_paths(str(root)) == [root / "a.csv"] == expand(Path(root))


def test_predict_input_reads_linked_folders_and_upper_case_parquet(tmp_path):
    """predict --input DIR (store.parquet_files) skipped the files of a linked folder (Path.rglob does not follow it)
    and 'B.PARQUET', without a word; a link back up is read once, hidden and '_' names below DIR stay skipped."""
    from rapids_engage.predict import input_files

    root, elsewhere = tmp_path / "new", tmp_path / "disk" / "day2"
    (root / "day1").mkdir(parents=True)
    elsewhere.mkdir(parents=True)
    for f in (root / "day1" / "a.parquet", elsewhere / "b.parquet", root / "day1" / "C.PARQUET"):
        pq.write_table(pa.table({"row_id": [1]}), f)
    (root / "day2").symlink_to(elsewhere)
    (root / "day1" / "up").symlink_to(root)  # a loop
    (root / "day1" / ".a.parquet.1a2b3c4d.99.part").write_bytes(b"")  # an atomic write's temporary
    (root / "_temporary").mkdir()
    pq.write_table(pa.table({"row_id": [1]}), root / "_temporary" / "x.parquet")
    assert input_files(root) == [root / "day1" / "C.PARQUET", root / "day1" / "a.parquet", root / "day2" / "b.parquet"]


def test_an_ordinary_store_keeps_its_files_order_and_fingerprint(tmp_path):
    """Folding the listing into input_files' walk changed nothing for a plain tree: same files in the same (path part)
    order, same fingerprint (the hex is what the Path.rglob listing gave)."""
    from rapids_engage.store import fingerprint_files, parquet_files

    names = ["day=1/part-0.parquet", "day=1/part-1.parquet", "day=1-x/part-0.parquet", "day=10/a.parquet",
             "b.parquet", "day=1/manifest.json", "day=1/.part-0.parquet.1a2b.7.part", "_metadata", "x.parquet/p.parquet"]
    for i, name in enumerate(names):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"row %d" % i)
    rglob = sorted(f for f in tmp_path.rglob("*.parquet")
                   if not f.is_dir() and not any(p.startswith((".", "_")) for p in f.relative_to(tmp_path).parts))
    assert parquet_files(tmp_path) == rglob
    assert [f.relative_to(tmp_path).as_posix() for f in rglob][:3] == ["b.parquet", "day=1/part-0.parquet",
                                                                      "day=1/part-1.parquet"]  # before day=1-x
    assert fingerprint_files(tmp_path) == FINGERPRINT
