"""Incremental ingest (:mod:`rapids_engage.ingest.incremental`): a day's new raw files ingested alone onto an earlier
cache entry give what a full ingest of all the files gives; a changed file, an event log: a full ingest saying why;
a failed incremental build leaves the earlier entry and no new one."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from rapids_engage.config import TableConfig, TargetSpec, from_dict
from rapids_engage.data import recsys_dataset, table_dataset
from rapids_engage.ingest import incremental as incremental_mod
from rapids_engage.synthetic import SyntheticSpec, write_raw

HEADER = "id,user,ts,clicked,lang\n"
DAY = 86_400
T0 = 1_600_000_000


def day_file(folder: Path, name: str, day: int, bad: bool = True, late: bool = True) -> Path:
    """A CSV of events on ``day`` (and one the next day when ``late``), with a bad time row when ``bad``."""
    rows = [f"{name}-{k},u{k % 3},{T0 + day * DAY + k * 3600},{k % 2},{'en' if k % 2 else 'fr'}" for k in range(5)]
    if late:
        rows.append(f"{name}-late,u9,{T0 + (day + 1) * DAY + 60},1,en")
    if bad:
        rows.insert(2, f"{name}-bad,u1,yesterday,1,en")
    path = folder / name
    path.write_text(HEADER + "\n".join(rows) + "\n")
    return path


def table_cfg(folder: Path, cache: Path, **table):
    cfg = from_dict({"data": {"source": "table", "path": str(folder / "*.csv"), "cache_dir": str(cache),
                              "ingest_workers": 1}})
    spec = TableConfig(format="csv", time="ts", time_format="unix", row_id=["id"], user="user", item="id",
                       targets={"click": TargetSpec("clicked", "binary")}, categorical=["lang"], **table)
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, table=spec))


def entry(dataset) -> Path:
    return dataset.data_dir.parent


def days(root: Path, sort_by: str) -> dict:
    """Each day's rows (its parts read together, sorted by ``sort_by``) and each part's schema."""
    out = {}
    for day in sorted((root / "data").iterdir()):
        parts = sorted(day.glob("*.parquet"))
        schemas = {pq.read_schema(p).remove_metadata().to_string() for p in parts}
        frame = pq.read_table(parts).to_pandas().sort_values(sort_by).reset_index(drop=True)
        out[day.name] = (frame, schemas)
    return out


def assert_same_entry(incremental: Path, full: Path, sort_by: str) -> None:
    """The same rows per day, types, quarantine rows and summary (but its own paths and file count)."""
    got, want = days(incremental, sort_by), days(full, sort_by)
    assert got.keys() == want.keys()
    for day, (frame, schemas) in want.items():
        assert got[day][1] == schemas, day
        assert got[day][0].dtypes.equals(frame.dtypes), day
        assert got[day][0].equals(frame), day
    quarantine = [pq.read_table(r / "quarantine.parquet").to_pylist() if (r / "quarantine.parquet").is_file() else []
                  for r in (incremental, full)]
    assert quarantine[0] == quarantine[1]
    skip = ("out_dir", "elapsed_s", "output_files", "quarantine_file")
    summaries = [{k: v for k, v in json.loads((r / "ingest.json").read_text()).items() if k not in skip}
                 for r in (incremental, full)]
    assert summaries[0] == summaries[1]


def test_a_new_file_is_ingested_alone_onto_the_earlier_entry_as_a_full_ingest_would(tmp_path):
    """Every file was parsed again each day (a new cache entry, a full copy): now the earlier entry's parts are
    linked and only the new file is ingested, a file sorting between the earlier ones too; the rows per day, their
    types, the quarantine (in input order), the empty files and the counts are a full ingest's."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, day in (("d1.csv", 0), ("d3.csv", 2)):
        day_file(raw, name, day)
    (raw / "d4.csv").write_text(HEADER)  # empty: listed in empty_files
    earlier = table_dataset(table_cfg(raw, tmp_path / "cache"))
    day_file(raw, "d2.csv", 1)
    now = table_dataset(table_cfg(raw, tmp_path / "cache"))
    assert f"1 new file(s) ingested, 3 reused from {entry(earlier)}" in now.description
    full = table_dataset(table_cfg(raw, tmp_path / "fresh"))
    assert "reused" not in full.description and "full ingest" not in full.description  # no earlier entry: no reason
    assert_same_entry(entry(now), entry(full), "row_id")
    summary = json.loads((entry(now) / "ingest.json").read_text())
    assert summary["empty_files"] == [str(raw / "d4.csv")] and summary["quarantined_rows"] == 3
    assert summary["first_quarantined"].startswith("d1.csv:4")
    linked = next((entry(now) / "data").glob("day=*/part-00002-*.parquet"))  # d3, third file now: renamed, linked
    assert linked.stat().st_nlink == 2
    assert "cached" in table_dataset(table_cfg(raw, tmp_path / "cache")).description


def test_a_changed_file_is_a_full_ingest_saying_which(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    day_file(raw, "d1.csv", 0)
    day_file(raw, "d2.csv", 1)
    earlier = table_dataset(table_cfg(raw, tmp_path / "cache"))
    day_file(raw, "d1.csv", 0, bad=False)  # rewritten: another digest
    day_file(raw, "d3.csv", 2)
    now = table_dataset(table_cfg(raw, tmp_path / "cache"))
    assert f"full ingest: d1.csv changed since {entry(earlier)}" in now.description
    assert json.loads((entry(now) / "ingest.json").read_text())["quarantined_rows"] == 2
    (raw / "d2.csv").unlink()  # its late row shares day 3's part with d3's rows: sliced out of it
    gone = table_dataset(table_cfg(raw, tmp_path / "cache"))
    assert f"0 new file(s) ingested, 2 reused, 1 removed from {entry(now)}" in gone.description
    assert_same_entry(entry(gone), entry(table_dataset(table_cfg(raw, tmp_path / "fresh"))), "row_id")


def test_an_event_log_is_a_full_ingest_saying_why(tmp_path):
    """An event log's labels look at later events, which a new file may hold: never built onto an earlier entry."""
    from rapids_engage.config import EventsSpec

    raw = tmp_path / "raw"
    raw.mkdir()
    head = "visitor,ts,event,item\n"
    (raw / "a.csv").write_text(head + "".join(f"v{k % 2},{T0 + k * 600},view,i{k % 3}\n" for k in range(12)))
    events = EventsSpec(column="event", anchor="view", horizon_hours=1, targets={"cart": "addtocart"})

    def cfg():
        c = from_dict({"data": {"source": "table", "path": str(raw / "*.csv"), "cache_dir": str(tmp_path / "cache"),
                                "ingest_workers": 1}})
        spec = TableConfig(format="csv", time="ts", time_format="unix", user="visitor", item="item", events=events)
        return dataclasses.replace(c, data=dataclasses.replace(c.data, table=spec))

    table_dataset(cfg())
    (raw / "b.csv").write_text(head + f"v0,{T0 + 3000},addtocart,i1\n" + f"v1,{T0 + 90_000},view,i2\n")
    assert "full ingest: an event log (labels look at later events" in table_dataset(cfg()).description


def test_a_failed_incremental_build_leaves_the_earlier_entry_and_no_new_one(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    raw.mkdir()
    day_file(raw, "d1.csv", 0)
    earlier = entry(table_dataset(table_cfg(raw, tmp_path / "cache")))
    before = {p.relative_to(earlier): p.read_bytes() for p in earlier.rglob("*") if p.is_file()}
    day_file(raw, "d2.csv", 1)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # a run stopped after the new file's ingest and the links

    monkeypatch.setattr(incremental_mod, "merge_quarantines", killed)
    with pytest.raises(KeyboardInterrupt):
        table_dataset(table_cfg(raw, tmp_path / "cache"))
    assert {p.relative_to(earlier): p.read_bytes() for p in earlier.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".input-")) == [earlier.name]
    monkeypatch.undo()
    assert "1 new file(s) ingested, 1 reused" in table_dataset(table_cfg(raw, tmp_path / "cache")).description


def test_recsys_files_ingest_incrementally_as_in_full(tmp_path):
    """RecSys ids are hashed, not assigned: a new day's TSV ingested alone gives a full ingest's rows."""
    source = tmp_path / "source"
    write_raw(source, SyntheticSpec(rows=3_000, days=3, seed=5))
    files = sorted((source / "raw").glob("*.tsv"))
    lines = files[-1].read_bytes().split(b"\n")
    lines[3] = b"not a row"
    files[-1].write_bytes(b"\n".join(lines))
    raw = tmp_path / "raw"
    raw.mkdir()

    def cfg(cache: str):
        return from_dict({"data": {"source": "recsys", "path": str(raw / "*.tsv"), "cache_dir": str(tmp_path / cache),
                                   "ingest_workers": 1}})

    for f in files[:-1]:
        shutil.copy(f, raw / f.name)
    earlier = recsys_dataset(cfg("cache"))
    shutil.copy(files[-1], raw / files[-1].name)
    now = recsys_dataset(cfg("cache"))
    assert f"1 new file(s) ingested, {len(files) - 1} reused from {entry(earlier)}" in now.description
    assert_same_entry(entry(now), entry(recsys_dataset(cfg("fresh"))), "tweet_id")
    (raw / files[0].name).unlink()  # the oldest day's file deleted: its day's part left out
    slid = recsys_dataset(cfg("cache"))
    assert f"0 new file(s) ingested, {len(files) - 1} reused, 1 removed from {entry(now)}" in slid.description
    assert_same_entry(entry(slid), entry(recsys_dataset(cfg("fresh2"))), "tweet_id")


def test_an_earlier_entry_missing_a_part_is_not_built_on(tmp_path):
    """A part deleted from the earlier folder (its ingest.json still there) would have left its rows out of every
    later day's data without a word: the parts are counted against those it wrote, and a full ingest says so."""
    raw = tmp_path / "raw"
    raw.mkdir()
    day_file(raw, "d1.csv", 0)
    earlier = entry(table_dataset(table_cfg(raw, tmp_path / "cache")))
    next((earlier / "data").glob("day=*/*.parquet")).unlink()
    day_file(raw, "d2.csv", 1)
    now = table_dataset(table_cfg(raw, tmp_path / "cache"))
    assert f"full ingest: {earlier} holds 1 of the 2 parts it wrote" in now.description
    assert json.loads((entry(now) / "ingest.json").read_text())["output_rows"] == 12


@pytest.mark.parametrize("when, why", [("_link", "was deleted meanwhile"),
                                       ("merge_quarantines", "holds 0 of the 2 quarantined rows it wrote")])
def test_an_earlier_entry_deleted_during_the_build_is_a_full_ingest(tmp_path, monkeypatch, when, why):
    """`rm -r` of the earlier folder while a run builds on it (after its parts were linked, before its quarantine was
    read) published the entry with the earlier files' quarantined rows missing though counted in ingest.json; while
    linking, it was taken for 'not a day folder of an ingest'. A full ingest now, saying so."""
    raw = tmp_path / "raw"
    raw.mkdir()
    day_file(raw, "d1.csv", 0)
    day_file(raw, "d2.csv", 1)
    earlier = entry(table_dataset(table_cfg(raw, tmp_path / "cache")))
    day_file(raw, "d3.csv", 2)
    real = getattr(incremental_mod, when)

    def deleting(*args):  # after linking the first part; before reading the quarantine
        done = real(*args) if when == "_link" else None
        shutil.rmtree(earlier, ignore_errors=True)
        return done if when == "_link" else real(*args)

    monkeypatch.setattr(incremental_mod, when, deleting)
    now = table_dataset(table_cfg(raw, tmp_path / "cache"))
    assert f"full ingest: {earlier}" in now.description and why in now.description
    summary = json.loads((entry(now) / "ingest.json").read_text())
    assert summary["quarantined_rows"] == 3 == pq.read_metadata(entry(now) / "quarantine.parquet").num_rows
    assert (entry(now) / "layout.json").is_file()


def test_a_day_growing_by_a_file_per_run_keeps_a_full_ingests_parts(tmp_path):
    """Old and new parts were never merged: hourly files, one more per run, left a day with a part per file for
    ever (what compact.py ended: a file, a task and a footer read per part per pass). The days the new files write
    into are merged again, as a full ingest's, into new files: the earlier entries' stay as they were."""
    raw = tmp_path / "raw"
    raw.mkdir()
    earlier = []
    for hour in range(4):
        day_file(raw, f"h{hour:02d}.csv", 0, bad=False)
        earlier.append(entry(now := table_dataset(table_cfg(raw, tmp_path / "cache"))))
    before = {p: p.read_bytes() for p in earlier[-2].rglob("*.parquet")}
    assert "1 new file(s) ingested, 3 reused" in now.description
    full = entry(table_dataset(table_cfg(raw, tmp_path / "fresh")))
    assert_same_entry(entry(now), full, "row_id")
    count = {e: {d.name: len(list(d.glob("*.parquet"))) for d in (e / "data").iterdir()} for e in (entry(now), full)}
    assert count[entry(now)] == count[full] == {"day=2020-09-13": 1, "day=2020-09-14": 1}
    assert json.loads((entry(now) / "ingest.json").read_text())["output_files"] == 2
    assert {p: p.read_bytes() for p in earlier[-2].rglob("*.parquet")} == before


def test_a_rolling_window_drops_the_removed_files_parts_as_a_full_ingest_would(tmp_path):
    """The oldest day's file deleted as a new one arrives (a 3-day window) was a full ingest every day: now the removed
    file's parts (its rows alone) are left out, its quarantined rows too, the counts recounted; sliding 3 times, each
    entry is a full ingest's of the same files (rows per day, types, quarantine, ingest.json)."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for day in range(3):
        day_file(raw, f"d{day}.csv", day, bad=day != 1, late=False)
    previous = entry(table_dataset(table_cfg(raw, tmp_path / "cache")))
    for day in range(3, 6):
        (raw / f"d{day - 3}.csv").unlink()
        day_file(raw, f"d{day}.csv", day, bad=day % 2 == 0, late=False)
        now = table_dataset(table_cfg(raw, tmp_path / "cache"))
        assert f"1 new file(s) ingested, 2 reused, 1 removed from {previous}" in now.description
        full = entry(table_dataset(table_cfg(raw, tmp_path / f"fresh{day}")))
        assert_same_entry(entry(now), full, "row_id")
        summary = json.loads((entry(now) / "ingest.json").read_text())
        assert len(summary["rows_per_day"]) == 3 and summary["output_files"] == 3
        previous = entry(now)
    assert summary["quarantined_rows"] == 1 and summary["first_quarantined"].startswith("d4.csv")  # d0's, d2's left out
    (raw / "d3.csv").unlink()  # the window shrinks: no new file
    now = table_dataset(table_cfg(raw, tmp_path / "cache"))
    assert f"0 new file(s) ingested, 2 reused, 1 removed from {previous}" in now.description
    assert_same_entry(entry(now), entry(table_dataset(table_cfg(raw, tmp_path / "fresh"))), "row_id")


def strip_ranges(cache: Path) -> None:
    """The parts.json of each entry in ``cache`` as written before row ranges were recorded."""
    for path in cache.glob("*/parts.json"):
        held = json.loads(path.read_text())
        del held["ranges"]
        path.write_text(json.dumps(held))


def test_a_removed_file_whose_rows_share_a_part_with_a_kept_ones_is_sliced_out_of_it(tmp_path):
    """Hourly files merged into one part per day: removing an hour was a full ingest; its row range is sliced out of
    the day's part into a new file (the earlier entry's part, a hard link, left as it was), as a full ingest's. An
    entry whose parts.json records no row ranges (written before them): a full ingest naming the part, as before."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for hour in range(4):
        day_file(raw, f"h{hour:02d}.csv", 0, late=False)
    earlier = entry(table_dataset(table_cfg(raw, tmp_path / "cache")))
    recorded = json.loads((earlier / "parts.json").read_text())
    assert recorded["parts"] == {"day=2020-09-13/part-00000-00000.parquet": [0, 1, 2, 3]}
    assert recorded["ranges"] == {"day=2020-09-13/part-00000-00000.parquet": [[h, 0, 5 * h, 5 * h + 5] for h in range(4)]}
    before = {p: p.read_bytes() for p in earlier.rglob("*.parquet")}
    (raw / "h01.csv").unlink()
    (raw / "h00.csv").unlink()
    now = table_dataset(table_cfg(raw, tmp_path / "cache"))
    assert f"0 new file(s) ingested, 2 reused, 2 removed from {earlier}" in now.description
    assert_same_entry(entry(now), entry(table_dataset(table_cfg(raw, tmp_path / "fresh"))), "row_id")
    assert json.loads((entry(now) / "parts.json").read_text())["ranges"] == {
        "day=2020-09-13/part-00000-00000.parquet": [[0, 0, 0, 5], [1, 0, 5, 10]]}
    assert {p: p.read_bytes() for p in earlier.rglob("*.parquet")} == before
    strip_ranges(tmp_path / "cache")
    (raw / "h02.csv").unlink()
    old = table_dataset(table_cfg(raw, tmp_path / "cache"))
    assert (f"full ingest: h02.csv of {entry(now)} is gone and its part day=2020-09-13/part-00000-00000.parquet holds "
            "rows of h03.csv too (its parts.json records no row ranges") in old.description
    assert_same_entry(entry(old), entry(table_dataset(table_cfg(raw, tmp_path / "fresh2"))), "row_id")


def test_a_cut_short_part_to_be_rewritten_is_a_full_ingest_naming_it(tmp_path):
    """A part linked is not read, but one rewritten without a removed file's rows is: a damaged one (cut short)
    crashed the ingest (ArrowInvalid: Parquet magic bytes not found). A full ingest naming it now."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for hour in range(3):
        day_file(raw, f"h{hour:02d}.csv", 0, late=False)
    earlier = entry(table_dataset(table_cfg(raw, tmp_path / "cache")))
    part = earlier / "data" / "day=2020-09-13" / "part-00000-00000.parquet"
    held = part.read_bytes()
    part.unlink()
    part.write_bytes(held[: len(held) // 2])
    (raw / "h00.csv").unlink()
    now = table_dataset(table_cfg(raw, tmp_path / "cache"))
    assert f"full ingest: {part} is unreadable (" in now.description, now.description
    assert_same_entry(entry(now), entry(table_dataset(table_cfg(raw, tmp_path / "fresh"))), "row_id")
    next((entry(now) / "data").rglob("*.parquet")).unlink()  # gone: said as a linked part's, not 'deleted meanwhile'
    (raw / "h01.csv").unlink()
    gone = table_dataset(table_cfg(raw, tmp_path / "cache"))
    assert f"full ingest: {entry(now)} holds 0 of the 1 parts it wrote" in gone.description, gone.description


def test_daily_files_with_late_rows_slide_as_a_full_ingest(tmp_path):
    """Daily dumps whose last rows fall in the next day (late events around midnight) share that day's part with the
    next file's rows: removing the oldest file was a full ingest every day. Its rows are sliced out of the shared part
    now; sliding a 3-day window 3 times, each entry is a full ingest's (rows per day, types, quarantine, ingest.json)."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for day in range(3):
        day_file(raw, f"d{day}.csv", day, bad=day != 1)
    previous = entry(table_dataset(table_cfg(raw, tmp_path / "cache")))
    for day in range(3, 6):
        (raw / f"d{day - 3}.csv").unlink()
        day_file(raw, f"d{day}.csv", day, bad=day % 2 == 0)
        now = table_dataset(table_cfg(raw, tmp_path / "cache"))
        assert f"1 new file(s) ingested, 2 reused, 1 removed from {previous}" in now.description
        full = entry(table_dataset(table_cfg(raw, tmp_path / f"fresh{day}")))
        assert_same_entry(entry(now), full, "row_id")
        summary = json.loads((entry(now) / "ingest.json").read_text())
        assert summary["output_files"] == json.loads((full / "ingest.json").read_text())["output_files"] == 4
        assert list(summary["rows_per_day"].values()) == [5, 6, 6, 1]  # first day: no late row of a removed file
        previous = entry(now)
    assert summary["quarantined_rows"] == 1 and summary["first_quarantined"].startswith("d4.csv")
    strip_ranges(tmp_path / "cache")  # older entries: its removed file's late row is in a part it shares, so a full ingest
    (raw / "d3.csv").unlink()
    old = table_dataset(table_cfg(raw, tmp_path / "cache"))
    assert "full ingest: d3.csv of " in old.description and "records no row ranges" in old.description, old.description


def test_an_entry_recording_no_part_sources_is_a_full_ingest_when_a_file_is_removed(tmp_path):
    """An entry written before parts.json: which parts hold a removed file's rows is unknown, so a full ingest."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for day in range(2):
        day_file(raw, f"d{day}.csv", day, late=False)
    earlier = entry(table_dataset(table_cfg(raw, tmp_path / "cache")))
    (earlier / "parts.json").unlink()
    (raw / "d0.csv").unlink()
    day_file(raw, "d2.csv", 2, late=False)
    now = table_dataset(table_cfg(raw, tmp_path / "cache"))
    assert f"full ingest: d0.csv of {earlier} is gone (its parts.json does not say" in now.description
    assert json.loads((entry(now) / "ingest.json").read_text())["quarantined_rows"] == 2


@pytest.mark.parametrize("edit, why", [
    (lambda held: held["parts"].update({next(iter(held["parts"])): [7]}), "is not the input positions of a part"),
    (lambda held: held["files"][1].update(rows_per_day=[1]), "key files[1].rows_per_day is an array, not an object"),
    (lambda held: held["files"][0].update(rows="5"), "key files[0].rows is a string, not a number"),
    (lambda held: held["files"].append(held["files"][0]), "counts 3 input files, not its 2")])
def test_a_damaged_parts_json_is_a_full_ingest_naming_it(tmp_path, edit, why):
    """A hand-edited or cut parts.json crashed the build (IndexError, AttributeError) or summed its counts as they
    were: each field is checked as read, and a full ingest names the file and what is wrong."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for day in range(2):
        day_file(raw, f"d{day}.csv", day, late=False)
    earlier = entry(table_dataset(table_cfg(raw, tmp_path / "cache")))
    held = json.loads((earlier / "parts.json").read_text())
    edit(held)
    (earlier / "parts.json").write_text(json.dumps(held))
    day_file(raw, "d2.csv", 2, late=False)
    now = table_dataset(table_cfg(raw, tmp_path / "cache"))
    assert f"full ingest: {earlier / 'parts.json'} " in now.description and why in now.description
    assert_same_entry(entry(now), entry(table_dataset(table_cfg(raw, tmp_path / "fresh"))), "row_id")


def test_an_earlier_entry_of_none_of_todays_files_is_not_built_on(tmp_path):
    """An entry all of whose files are gone was built on ('2 new file(s) ingested, 0 reused, 3 removed'): nothing
    linked, its folder read for nothing. A full ingest now, saying so."""
    raw = tmp_path / "raw"
    raw.mkdir()
    day_file(raw, "d0.csv", 0)
    earlier = entry(table_dataset(table_cfg(raw, tmp_path / "cache")))
    (raw / "d0.csv").unlink()
    day_file(raw, "d1.csv", 1)
    now = table_dataset(table_cfg(raw, tmp_path / "cache"))
    assert f"full ingest: no file of {earlier} is one of today's" in now.description
    assert_same_entry(entry(now), entry(table_dataset(table_cfg(raw, tmp_path / "fresh"))), "row_id")
