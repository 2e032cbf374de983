"""An unclosed quote in a CSV file: only the line it opens on is quarantined (``unclosed_quote``), the lines
it ran over are read as records, in one read block or across many; quoted fields that really hold
newlines stay one value."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rapids_engage.config import TableConfig, TargetSpec
from rapids_engage.ingest import StrictModeError, hash_strings, ingest_table
from rapids_engage.ingest import read_delimited, table_read
from rapids_engage.ingest import table as table_mod

HEADER = ["id", "user", "ts", "clicked", "likes", "score", "lang", "body"]
SPEC = TableConfig(format="csv", time="ts", time_format="unix", row_id=["id"], user="user", item="id",
                   targets={"click": TargetSpec("clicked", "binary"), "like": TargetSpec("likes", "count")},
                   numeric=["score"], categorical=["lang"], text=["body"])
BLOCKS = [16 << 20, 4096, 700, 200]


def row(i: int, **values: str) -> str:
    fields = dict(zip(HEADER, [f"x{i}", f"u{i % 7}", str(1600000000 + i), str(i % 2), str(i % 5), "0.5", "en",
                               f"text {i}"])) | values
    return ",".join(fields[c] for c in HEADER)


def lines_of(n: int, **edits: dict[str, str]) -> list[str]:
    """A header and ``n`` rows; ``edits``: row number (as ``r<i>``) -> values."""
    return [",".join(HEADER)] + [row(i, **edits.get(f"r{i}", {})) for i in range(n)]


def ingest(tmp: Path, text: str | bytes, name: str, block: int, monkeypatch, zipped: bool = False, **kw):
    monkeypatch.setattr(table_read, "BLOCK_BYTES", block)
    data = text.encode() if isinstance(text, str) else text
    path = tmp / (f"{name}-{block}.csv" + (".gz" if zipped else ""))
    path.write_bytes(gzip.compress(data) if zipped else data)
    out = tmp / f"{name}-{block}-out"
    result = ingest_table(path, out, SPEC, chunk_rows=50, **kw)
    q = pd.DataFrame(pq.read_table(out / "quarantine.parquet").to_pylist()) if result.quarantined_rows else \
        pd.DataFrame(columns=["line", "column", "reason", "detail", "raw"])
    frame = pq.read_table(out / "data").to_pandas() if result.output_rows else pd.DataFrame(columns=["id", "body"])
    assert result.input_rows == result.ingested_rows + result.quarantined_rows == len(frame) + len(q)
    return result, frame, q.sort_values("line").reset_index(drop=True)


def ids(frame: pd.DataFrame) -> set[int]:
    return set(frame.id.tolist())


def want_ids(n: int, bad: set[int]) -> set[int]:
    return set(hash_strings([f"x{i}" for i in range(n) if i not in bad]).tolist())


@pytest.mark.parametrize("block", BLOCKS)
def test_an_unclosed_quote_to_the_end_of_the_file_quarantines_one_line(tmp_path, monkeypatch, block):
    """The walk-through's file: a stray quote in a text field, no quote after it (the record runs to the end)."""
    n = 300
    lines = lines_of(n, r30={"body": '"unclosed'})
    result, frame, q = ingest(tmp_path, "\n".join(lines) + "\n", "eof", block, monkeypatch)
    assert q[["line", "column", "reason"]].values.tolist() == [[32, "body", "unclosed_quote"]]
    assert q.raw[0] == lines[31] and "not closed before lines that look like records" in q.detail[0]
    assert (result.input_rows, result.ingested_rows) == (n, n - 1)
    assert ids(frame) == want_ids(n, {30})
    assert "text 31" in set(frame.body) and not frame.body.str.contains("\n").any()


@pytest.mark.parametrize("block", BLOCKS)
def test_an_unclosed_quote_mid_record_closed_by_a_later_stray_quote(tmp_path, monkeypatch, block):
    """A stray quote in the middle of a record runs to the next (also stray) quote: both lines are
    quarantined, every other line is a row, whatever the read blocks."""
    n = 400
    lines = lines_of(n, r40={"lang": '"en'}, r250={"user": '"u9'})
    text = "\n".join(lines) + "\n"
    result, frame, q = ingest(tmp_path, text, "mid", block, monkeypatch)
    assert q[["line", "column", "reason"]].values.tolist() == [[42, "lang", "unclosed_quote"],
                                                               [252, "user", "unclosed_quote"]]
    assert (result.input_rows, result.ingested_rows) == (n, n - 2) and ids(frame) == want_ids(n, {40, 250})


@pytest.mark.parametrize("zipped", [False, True])
def test_a_quote_opening_at_the_end_of_a_read_block_resumes_in_the_next(tmp_path, monkeypatch, zipped):
    """The stray quote's line is the last line of a read block and the lines it ran over fill the next
    blocks: pyarrow gives up on that record, the reader starts again on the line after it."""
    block, n = 2048, 800
    lines = lines_of(n)
    size = 0
    for k, line in enumerate(lines):  # the row whose line ends just before a block boundary
        size += len(line) + 1
        if size > 3 * block - 120:
            break
    lines[k] = lines[k].replace(",en,", ',"en,')
    restarts = []
    spy = read_delimited._DelimitedReader._restart
    monkeypatch.setattr(read_delimited._DelimitedReader, "_restart", lambda self: restarts.append(1) or spy(self))
    result, frame, q = ingest(tmp_path, "\n".join(lines) + "\n", "edge", block, monkeypatch, zipped=zipped)
    assert restarts, "the record should have run past a read block"
    assert q[["line", "column", "reason"]].values.tolist() == [[k + 1, "lang", "unclosed_quote"]]
    assert "ran past a read block" in q.detail[0]
    assert (result.input_rows, result.ingested_rows) == (n, n - 1) and ids(frame) == want_ids(n, {k - 1})


@pytest.mark.parametrize("block", BLOCKS)
def test_quoted_newlines_that_do_not_look_like_records_stay_one_value(tmp_path, monkeypatch, block):
    n = 120
    lines = lines_of(n, r10={"body": '"a text\nover three\nlines, with a comma"'},
                     r60={"body": '"say ""hi""\nand bye"'})
    result, frame, q = ingest(tmp_path, "\n".join(lines) + "\n", "multi", block, monkeypatch)
    assert q.empty and result.ingested_rows == n
    body = dict(zip(frame.id, frame.body))
    assert body[hash_strings(["x10"])[0]] == "a text\nover three\nlines, with a comma"
    assert body[hash_strings(["x60"])[0]] == 'say "hi"\nand bye'
    assert body[hash_strings(["x11"])[0]] == "text 11"


def test_bad_rows_inside_the_lines_read_again_keep_their_reasons(tmp_path, monkeypatch):
    n = 60
    lines = lines_of(n, r5={"body": '"oops'}, r20={"ts": "yesterday"}, r30={"likes": "-1"})
    lines[41] = "x40,u,1600000000"  # wrong field count
    data = ("\n".join(lines) + "\n").encode().replace(b"text 50", b"caf\xe9")
    result, frame, q = ingest(tmp_path, data, "inner", 16 << 20, monkeypatch)
    assert q[["line", "reason"]].values.tolist() == [[7, "unclosed_quote"], [22, "bad_time"], [32, "bad_target"],
                                                     [42, "wrong_field_count"], [52, "invalid_utf8"]]
    assert ids(frame) == want_ids(n, {5, 20, 30, 40, 50})


def test_strict_mode_stops_at_the_unclosed_quote(tmp_path, monkeypatch):
    lines = lines_of(50, r12={"body": '"oops'})
    path = tmp_path / "s.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(StrictModeError, match=rf"^{path}:14:body: unclosed_quote"):
        ingest_table(path, tmp_path / "out", SPEC, strict=True)


def test_an_unclosed_quote_in_line_mode_says_so(tmp_path, monkeypatch):
    """After a line longer than a read block the rest is read line by line; a stray quote there is unclosed_quote too."""
    n = 100
    lines = lines_of(n, r10={"body": "y" * 3000}, r50={"lang": '"en'})
    result, frame, q = ingest(tmp_path, "\n".join(lines) + "\n", "lines", 1000, monkeypatch)
    assert q[["line", "reason"]].values.tolist() == [[52, "unclosed_quote"]]
    assert ids(frame) == want_ids(n, {50})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 149), st.integers(0, 7)), min_size=1, max_size=6), st.booleans())
def test_stray_quotes_lose_no_clean_line_whatever_the_blocks(monkeypatch, strays, zipped):
    """Quotes opening random fields of random lines: every line without one is a row, the counts add up,
    and the rows and the quarantine are the same for every read block size."""
    n = 150
    lines = lines_of(n)
    for i, f in strays:
        fields = lines[i + 1].split(",")
        fields[f] = '"' + fields[f]
        lines[i + 1] = ",".join(fields)
    clean = {i for i in range(n) if '"' not in lines[i + 1]}
    seen = []
    with tempfile.TemporaryDirectory() as tmp:
        for block in (16 << 20, 1000, 300):
            result, frame, q = ingest(Path(tmp), "\n".join(lines) + "\n", "fuzz", block, monkeypatch, zipped=zipped)
            assert want_ids(n, set(range(n)) - clean) <= ids(frame)
            assert set(q.reason) <= set(table_mod.REASONS) and result.input_rows <= n
            seen.append((sorted(ids(frame)), q[["line", "reason"]].values.tolist(), result.input_rows))
    assert seen[1] == seen[0] and seen[2] == seen[0]


def test_a_long_quoted_record_after_an_unclosed_quote_is_read_whole(tmp_path, monkeypatch):
    """After an unclosed quote pyarrow reads smaller blocks (RESUME_BLOCK); a longer good record is still one value."""
    monkeypatch.setattr(read_delimited, "RESUME_BLOCK", 256)
    n = 200
    text = "a few words,\n" * 80  # a multi-line text whose lines do not look like records, longer than 256 bytes
    lines = lines_of(n, r20={"lang": '"en'}, r30={"body": f'"{text}end"'}, r100={"user": '"u0'})
    results = []
    for block in (16 << 20, 4096):
        result, frame, q = ingest(tmp_path, "\n".join(lines) + "\n", "long", block, monkeypatch)
        assert q[["line", "reason"]].values.tolist() == [[22, "unclosed_quote"], [182, "unclosed_quote"]]
        assert dict(zip(frame.id, frame.body))[hash_strings(["x30"])[0]] == text + "end"
        results.append((sorted(ids(frame)), result.input_rows))
    assert results[0] == results[1] and results[0][1] == n
