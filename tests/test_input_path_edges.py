"""Input paths at their edges: a file whose name holds glob characters, symbolic links inside a directory."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rapids_engage.ingest.recsys import input_paths
from rapids_engage.input_files import expand

CSV = "id,user,ts,clicked\na1,u1,1600000000,1\n"


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
