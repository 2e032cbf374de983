"""The day writer's memory: what it buffers and the parts it keeps open are bounded, whatever the input's length."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rapids_engage.ingest.writer import SECONDS_PER_DAY, DayWriter

SCHEMA = pa.schema([("t", pa.int64()), ("v", pa.int64()), ("s", pa.string())])


def _tables(n_tables: int, rows: int, days: int, seed: int = 0) -> list[pa.Table]:
    """Tables whose rows fall on ``days`` days in no order (every table on every day), ``v`` numbering the rows."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_tables):
        t = rng.integers(0, days, rows) * SECONDS_PER_DAY + rng.integers(0, SECONDS_PER_DAY, rows)
        v = np.arange(k * rows, (k + 1) * rows)
        out.append(pa.table({"t": t, "v": v, "s": pa.array([f"text {i:08d}" for i in v])}, schema=SCHEMA))
    return out


def _held(writer: DayWriter) -> int:
    """The bytes of the distinct Arrow buffers the writer's buffered rows keep alive."""
    seen = {}
    for parts in writer._buf.values():
        for table in parts:
            for column in table.columns:
                for chunk in column.chunks:
                    seen.update({b.address: b.size for b in chunk.buffers() if b is not None})
    return sum(seen.values())


def test_buffered_rows_hold_what_they_count_and_open_parts_are_capped(tmp_path):
    """Rows spread over many days in every table: the old writer buffered each day's rows as slices of the whole
    table, so one day left unflushed kept every day's rows alive (its memory twice its limit and more), and it kept
    a part open per day (each holding its last row group's dictionary encoders: a year of days, a year of parts).
    Now a flushed day frees its rows, at most ``max_open_parts`` parts are open, and every row is written once, in
    its day's input order (parts read in name order)."""
    tables = _tables(40, 500, days=12)
    limit = 60_000
    writer = DayWriter(tmp_path / "d", SCHEMA, max_buffer_bytes=limit, max_open_parts=3, time_column="t")
    opened = []
    for table in tables:
        writer.write(table)
        assert writer.buffered_bytes() <= limit
        assert _held(writer) <= 1.1 * limit  # what the buffers count, but the validity bitmaps' rounding
        opened.append(len(writer._open))
    writer.close()
    assert max(opened) == 3
    every = pa.concat_tables(tables)
    day = every["t"].to_numpy() // SECONDS_PER_DAY
    for d in np.unique(day):
        parts = sorted((tmp_path / "d").glob(f"day={np.datetime64(int(d), 'D')}/*.parquet"))
        got = pa.concat_tables([pq.read_table(p) for p in parts])
        assert got["v"].to_numpy().tolist() == every["v"].to_numpy()[day == d].tolist()
    assert sum(writer.rows_per_day.values()) == every.num_rows == sum(pq.read_metadata(p).num_rows for p in
                                                                        (tmp_path / "d").rglob("*.parquet"))


def test_days_written_to_least_recently_are_flushed_first(tmp_path):
    """Time-ordered input, a day larger than the days before it: when the buffers are full the days no longer
    written to go first, each a whole row group, and the day still filling stays buffered (the largest went first:
    the day still filling, cut in two row groups)."""
    writer = DayWriter(tmp_path / "d", SCHEMA, max_buffer_bytes=22_000, time_column="t")

    def rows(day: int, start: int, n: int) -> pa.Table:
        t = day * SECONDS_PER_DAY + np.arange(start, start + n)
        return pa.table({"t": t, "v": t, "s": pa.array(["x" * 10] * n)}, schema=SCHEMA)

    writer.write(pa.concat_tables([rows(d, 0, 100) for d in range(5)]))  # 5 small days: ~3,000 bytes each
    for k in range(6):  # then a day of 6 x 50 rows, ~1,500 bytes each: the buffers pass 22,000 at the 5th
        writer.write(rows(5, 50 * k, 50))
    writer.close()
    for d in range(6):
        (part,) = (tmp_path / "d").glob(f"day={np.datetime64(d, 'D')}/*.parquet")
        assert pq.read_metadata(part).num_row_groups == 1, d
    assert writer.rows_per_day == {str(np.datetime64(d, "D")): 300 if d == 5 else 100 for d in range(6)}
