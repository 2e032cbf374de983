"""Generic table ingest: formats, typing, explode + side join, quarantine reasons, strict mode, fuzzing, real data."""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rapids_engage.config import ExplodeSpec, SideTableSpec, TableConfig, TargetSpec
from rapids_engage.ingest import IngestError, StrictModeError, hash_strings, ingest_table
from rapids_engage.ingest import recsys as recsys_mod
from rapids_engage.ingest import table as table_mod
from rapids_engage.ingest import table_read
from rapids_engage.layout import Layout, table_layout

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
HEADER = ["id", "user", "ts", "clicked", "likes", "score", "lang", "body"]
ROWS = [
    ["a1", "u1", "1600000000", "1", "3", "0.5", "en", "hello"],
    ["a2", "u2", "1600000100", "true", "0", "", "fr", "salut, toi"],
    ["a3", "u1", "1600090000", "False", "12", "-2", "en", "x"],
    ["a4", "", "1600180000.9", "0", "1e1", "1e3", "", ""],
]


def spec(**kw) -> TableConfig:
    base = dict(
        format="csv", time="ts", time_format="unix", row_id=["id"], user="user", item="id",
        targets={"click": TargetSpec("clicked", "binary"), "like": TargetSpec("likes", "count")},
        numeric=["score"], categorical=["lang"], text=["body"],
    )
    return TableConfig(**(base | kw))


def csv_text(rows: list[list[str]], sep: str = ",", header: list[str] | None = HEADER) -> str:
    def field(v: str) -> str:
        return f'"{v}"' if sep == "," and ("," in v or '"' in v) else v

    lines = ([sep.join(header)] if header else []) + [sep.join(field(v) for v in r) for r in rows]
    return "\n".join(lines) + "\n"


def run(tmp_path: Path, inputs, table_spec: TableConfig, name: str = "out", **kw):
    out = tmp_path / name
    result = ingest_table(inputs, out, table_spec, **kw)
    data = out / "data"
    frame = read_parquet(data) if data.is_dir() and any(data.rglob("*.parquet")) else pd.DataFrame()
    qpath = out / "quarantine.parquet"
    quarantine = pd.DataFrame(pq.read_table(qpath).to_pylist() if qpath.is_file() else [],
                              columns=["file", "line", "column", "reason", "detail", "raw"], dtype=object)
    assert result.input_rows == result.ingested_rows + result.quarantined_rows
    assert len(quarantine) == result.quarantined_rows
    assert len(frame) == result.output_rows == sum(result.rows_per_day.values())
    return result, frame, quarantine


def read_parquet(path: Path) -> pd.DataFrame:
    """The parquet data with int64 columns as Int64 (exact hashes, nulls kept)."""
    return pq.read_table(path).to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def by_id(frame: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    return frame.set_index("id").loc[hash_strings(ids)].reset_index()


# ---------------------------------------------------------------- typed output, formats


def test_csv_typed_output_days_and_layout(tmp_path):
    result, frame, quarantine = run(tmp_path, write(tmp_path / "t.csv", csv_text(ROWS)), spec())
    assert (result.input_rows, result.ingested_rows, result.quarantined_rows) == (4, 4, 0)
    assert result.rows_per_day == {"2020-09-13": 2, "2020-09-14": 1, "2020-09-15": 1}
    days = sorted(p.name for p in (tmp_path / "out" / "data").iterdir())
    assert days == ["day=2020-09-13", "day=2020-09-14", "day=2020-09-15"]
    schema = pq.read_schema(next((tmp_path / "out" / "data").rglob("*.parquet")))
    assert schema.names == ["row_id", "event_time", "user", "id", "clicked", "likes", "lang", "score", "body", "raw_id"]
    assert [str(t) for t in schema.types] == ["int64", "int64", "int64", "int64", "int8", "double", "string", "double",
                                              "string", "string"]
    got = by_id(frame, ["a1", "a2", "a3", "a4"])
    assert got.event_time.tolist() == [1600000000, 1600000100, 1600090000, 1600180000]
    assert got.clicked.tolist() == [1, 1, 0, 0]
    assert got.likes.tolist() == [3.0, 0.0, 12.0, 10.0]
    assert got.score.tolist()[0] == 0.5 and np.isnan(got.score[1]) and got.score.tolist()[2:] == [-2.0, 1000.0]
    assert got.lang.fillna("<null>").tolist() == ["en", "fr", "en", "<null>"]  # a blank categorical is null
    assert got.body.tolist() == ["hello", "salut, toi", "x", ""]
    assert (got.row_id == got.id).all()  # row_id [id] and item id hash the same text
    assert got.raw_id.tolist() == ["a1", "a2", "a3", "a4"]  # the text of the row_id column, as in the file
    assert got.user.tolist()[:3] == hash_strings(["u1", "u2", "u1"]).tolist() and got.user.isna().tolist()[3]  # no user
    layout = Layout.load(tmp_path / "out")
    assert layout == table_layout(spec()) and layout.row_key == ("row_id",) and layout.time == "event_time"
    assert (layout.row_id_columns, layout.raw_ids) == (("id",), ("raw_id",))
    assert json.loads((tmp_path / "out" / "ingest.json").read_text())["output_rows"] == 4
    assert not (tmp_path / "out" / "quarantine.parquet").exists()


def _as_jsonl(rows: list[list[str]]) -> str:
    def value(col: str, v: str):
        return int(v) if col == "likes" else v

    return "".join(json.dumps({c: value(c, v) for c, v in zip(HEADER, r)}) + "\n" for r in rows)


def _as_parquet(path: Path, rows: list[list[str]]) -> Path:
    frame = pd.DataFrame(rows, columns=HEADER)
    table = pa.table({c: pa.array(frame[c].tolist(), pa.string()) for c in HEADER})
    table = table.set_column(table.schema.get_field_index("likes"), "likes", pa.array([int(float(v)) for v in frame.likes]))
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize("fmt", ["tsv", "tsv.bz2", "jsonl", "jsonl.gz", "parquet", "csv.gz"])
def test_formats_give_the_csv_result(tmp_path, fmt):
    rows = [r[:4] + [str(int(float(r[4])))] + r[5:] for r in ROWS]  # integer likes (parquet int64)
    _, want, _ = run(tmp_path, write(tmp_path / "t.csv", csv_text(rows)), spec(), "csv")
    path = tmp_path / f"t.{fmt}"
    if fmt.startswith("tsv"):
        text = csv_text(rows, "\t").encode()
        write(path, bz2.compress(text) if fmt.endswith("bz2") else text)
    elif fmt.startswith("jsonl"):
        text = _as_jsonl(rows).encode()
        write(path, gzip.compress(text) if fmt.endswith("gz") else text)
    elif fmt == "csv.gz":
        write(path, gzip.compress(csv_text(rows).encode()))
    else:
        _as_parquet(path, rows)
    result, got, _ = run(tmp_path, path, spec(format=fmt.split(".")[0]), "other")
    assert result.ingested_rows == 4
    key = ["row_id"]
    pd.testing.assert_frame_equal(got.sort_values(key).reset_index(drop=True), want.sort_values(key).reset_index(drop=True))


def test_row_ids_deterministic_and_default_row_id(tmp_path):
    path = write(tmp_path / "t.csv", csv_text(ROWS))
    _, a, _ = run(tmp_path, path, spec(), "a")
    _, b, _ = run(tmp_path, [path], spec(), "b")
    assert a.row_id.tolist() == b.row_id.tolist()
    _, c, _ = run(tmp_path, path, spec(row_id=[]), "c")
    _, d, _ = run(tmp_path, path, spec(row_id=[]), "d")
    assert c.row_id.tolist() == d.row_id.tolist() and c.row_id.nunique() == 4
    want = hash_strings([f"t.csv\x1f{line}\x1f0" for line in (2, 3, 4, 5)])
    assert sorted(c.row_id) == sorted(want)


def test_raw_row_ids_keep_the_hashed_text_in_every_format(tmp_path):
    """``raw_<row_id column>`` holds the text that ``row_id`` hashes (as a CSV field would hold it: JSONL and
    parquet numbers as their digits), so predictions join back to the input on the user's own ids."""
    rows = [["00123", "u1", "1600000000", "1", "3", "0.5", "en", "x"], ["17", "u2", "1600000100", "0", "1", "", "fr", "y"],
            [" 9 ", "u1", "1600000200", "1", "0", "1", "en", "z"]]
    _, csv, _ = run(tmp_path, write(tmp_path / "t.csv", csv_text(rows)), spec(row_id=["id", "user"]), "csv")
    assert sorted(csv.raw_id) == [" 9 ", "00123", "17"] and sorted(csv.raw_user) == ["u1", "u1", "u2"]
    assert (csv.row_id == hash_strings(csv.raw_id + "\x1f" + csv.raw_user)).all()
    assert csv.raw_id.dtype != "Int64" and "raw_ts" not in csv  # text (leading zeros, blanks kept); row_id columns only
    records = "".join(json.dumps({"id": i, "user": "u", "ts": 1600000000 + i, "clicked": 1, "likes": 2}) + "\n"
                      for i in (12579008, 7))
    json_spec = spec(format="jsonl", numeric=[], categorical=[], text=[])
    _, jl, _ = run(tmp_path, write(tmp_path / "t.jsonl", records), json_spec, "jsonl")
    assert sorted(jl.raw_id) == ["12579008", "7"] and (jl.row_id == hash_strings(jl.raw_id)).all()
    pq.write_table(pa.table({"id": [12579008, 7], "user": ["u", "u"], "ts": [1600000000, 1600000001],
                             "clicked": [1, 0], "likes": [2, 3]}), tmp_path / "t.parquet")
    _, par, _ = run(tmp_path, tmp_path / "t.parquet", dataclasses.replace(json_spec, format="parquet"), "parquet")
    assert sorted(par.raw_id) == ["12579008", "7"] and sorted(par.row_id) == sorted(jl.row_id)
    _, default, _ = run(tmp_path, tmp_path / "t.csv", spec(row_id=[]), "default")  # file and line: nothing to keep
    assert not [c for c in default.columns if c.startswith("raw_")] and Layout.load(tmp_path / "default").raw_ids == ()


def test_a_raw_row_id_name_taken_by_another_column_is_an_error(tmp_path):
    path = write(tmp_path / "t.csv", csv_text(ROWS))
    with pytest.raises(IngestError, match="text of column 'id' is kept as 'raw_id', which is already a column of the "
                                          "ingested table; rename that column"):
        ingest_table(path, tmp_path / "o", spec(categorical=["lang", "raw_id"]))
    with pytest.raises(IngestError, match="'raw_id', which is already the label of target 'raw_id'"):
        ingest_table(path, tmp_path / "o", spec(targets={"raw_id": TargetSpec("clicked", "binary")}))
    with pytest.raises(IngestError, match="'raw_body_chars', which is already a feature of text column 'raw_body'"):
        ingest_table(path, tmp_path / "o", spec(row_id=["body_chars"], text=["raw_body"]))
    assert not (tmp_path / "o").exists()


def test_time_formats(tmp_path):
    cases = {
        "unix_ms": (["1600000000999", "1600000001000.5"], [1600000000, 1600000001]),
        "iso": (["2020-09-13T12:26:40Z", "2020-09-13 14:26:40+02:00", "2020-09-13T12:26:40.7", "2020-09-13"],
                [1600000000, 1600000000, 1600000000, 1599955200]),
        "%m/%d/%Y %H:%M": (["9/26/2016 3:26", "12/01/2016 13:05"], [1474860360, 1480597500]),
        "%m/%d/%Y %I:%M:%S %p": (["11/12/2019 2:14:46 PM", "11/12/2019 12:14:46 AM"], [1573568086, 1573517686]),
    }
    for i, (fmt, (values, want)) in enumerate(cases.items()):
        rows = [[f"x{j}", "u", v, "1", "1", "1", "en", "b"] for j, v in enumerate(values)]
        path = write(tmp_path / f"t{i}.csv", csv_text(rows))
        _, frame, _ = run(tmp_path, path, spec(time_format=fmt), f"o{i}")
        assert by_id(frame, [f"x{j}" for j in range(len(values))]).event_time.tolist() == want, fmt


def test_bom_crlf_quoted_newlines_and_blank_lines(tmp_path):
    text = ('\ufeffid,user,ts,clicked,likes,score,lang,body\r\n'
            'a1,u1,1600000000,1,3,0.5,en,"two\r\nlines"\r\n'
            '\r\n'
            'a2,u2,1600000000,1,3,0.5,en,"say ""hi"", ok"\r\n'
            '\n'
            'a3,u2,1600000000,1,3,0.5,en,plain\r\n'
            'a4,u2,bad,1,3,0.5,en,plain\r\n')
    result, frame, quarantine = run(tmp_path, write(tmp_path / "t.csv", text), spec())
    assert result.input_rows == 4 and result.ingested_rows == 3
    assert by_id(frame, ["a1", "a2", "a3"]).body.tolist() == ["two\r\nlines", 'say "hi", ok', "plain"]
    assert quarantine[["line", "column", "reason"]].values.tolist() == [[8, "ts", "bad_time"]]
    assert quarantine.raw[0] == "a4,u2,bad,1,3,0.5,en,plain"


def test_the_raw_of_a_quarantined_csv_row_keeps_its_quoting(tmp_path):
    """A bad row's raw is a CSV record of its fields: a field holding a comma, a quote or a newline stays
    quoted, so the raw reads back as the same fields (not 'salut, "toi"': two fields and a stray quote)."""
    text = ('id,user,ts,clicked,likes,score,lang,body\n'
            'a1,u1,bad,1,3,0.5,en,"salut, ""toi"""\n'
            'a2,u1,bad,1,3,0.5,"e""n","two\nlines"\n')
    _, _, q = run(tmp_path, write(tmp_path / "t.csv", text), spec())
    assert q.raw.tolist() == ['a1,u1,bad,1,3,0.5,en,"salut, ""toi"""', 'a2,u1,bad,1,3,0.5,"e""n","two\nlines"']
    tsv = 'id\tuser\tts\tclicked\tlikes\tscore\tlang\tbody\na1\tu1\tbad\t1\t3\t0.5\ten\tsay "hi", ok\n'
    _, _, q = run(tmp_path, write(tmp_path / "t.tsv", tsv), spec(format="tsv"), "tsv")  # no quoting: as read
    assert q.raw.tolist() == ['a1\tu1\tbad\t1\t3\t0.5\ten\tsay "hi", ok']

def test_mini_mind_explode_and_side_join(tmp_path):
    behaviors = write(tmp_path / "behaviors.tsv", (
        "1\tU1\t11/12/2019 2:14:46 PM\tN9 N8\tN1-1 N2-0 N3-0\n"
        "2\tU2\t11/13/2019 9:00:00 AM\t\tN2-1  N4-0\n"
        "3\tU1\t11/13/2019 9:00:00 AM\tN1\t\n"  # empty impression list
        "4\tU3\t11/14/2019 1:00:00 AM\tN1\tN1-1 N5\n"  # token without label
    ))
    news = write(tmp_path / "news.tsv", (
        "N1\tsports\tgolf\tTitle one\tabs\turl\t[]\t[]\n"
        "N2\tnews\tworld\tTitle \"two\"\tabs\turl\t[]\t[]\n"
        "N1\tdup\tdup\tignored duplicate\tabs\turl\t[]\t[]\n"
    ))
    mind = mind_spec(behaviors, news)
    with pytest.warns(UserWarning, match=r"news.tsv: 1 side-table row\(s\) repeat the news_id of an earlier row; the first"):
        result, frame, quarantine = run(tmp_path, behaviors, mind)
    assert (result.input_rows, result.ingested_rows, result.quarantined_rows, result.output_rows) == (4, 2, 2, 5)
    assert quarantine[["line", "column", "reason"]].values.tolist() == [
        [3, "impressions", "bad_explode_token"], [4, "impressions", "bad_explode_token"]]
    assert quarantine.raw.tolist()[1] == "4\tU3\t11/14/2019 1:00:00 AM\tN1\tN1-1 N5"
    assert quarantine.detail.tolist()[1] == ("a token without its label: 'N5', not ITEM-LABEL (rows without labels are for "
                                             "`ingest --unlabelled`, then `predict`)")
    got = frame.sort_values(["event_time", "row_id"]).drop(columns=["day"])
    want = pd.DataFrame({
        "impression_id": ["1", "1", "1", "2", "2"], "user_id": ["U1", "U1", "U1", "U2", "U2"],
        "news_id": ["N1", "N2", "N3", "N2", "N4"], "click": [1, 0, 0, 1, 0],
        "category": ["sports", "news", None, "news", None], "subcategory": ["golf", "world", None, "world", None],
        "title": ["Title one", 'Title "two"', "", 'Title "two"', ""],
        "event_time": [1573568086, 1573568086, 1573568086, 1573635600, 1573635600],
    })
    want["raw_impression_id"], want["raw_news_id"] = want.impression_id, want.news_id
    want["row_id"] = hash_strings(want.impression_id + "\x1f" + want.news_id)
    for c in ("impression_id", "user_id", "news_id"):
        want[c] = hash_strings(want[c])
    want = want.sort_values(["event_time", "row_id"])[got.columns.tolist()]
    assert got.columns.tolist() == ["row_id", "event_time", "user_id", "impression_id", "news_id", "click",
                                    "category", "subcategory", "title", "raw_impression_id", "raw_news_id"]
    for c in got.columns:
        assert got[c].fillna("<null>").tolist() == want[c].fillna("<null>").tolist(), c  # unmatched: null categories
    assert Layout.load(tmp_path / "out").item == "news_id"


def test_an_explode_summary_counts_the_event_rows(tmp_path):
    """`ingest` of a MIND file said '4 input rows: 2 ingested' and nothing of the 5 rows it wrote (one per
    shown article), where the run's data line says '5 event rows'."""
    behaviors = write(tmp_path / "behaviors.tsv", "1\tU1\t11/12/2019 2:14:46 PM\t\tN1-1 N2-0 N3-0\n"
                                                  "2\tU2\t11/13/2019 9:00:00 AM\tN1\tN2-1 N4-0\n")
    result, _, _ = run(tmp_path, behaviors, mind_spec(behaviors, write(tmp_path / "news.tsv", "")))
    assert result.summary() == f"2 input rows: 2 ingested, 0 quarantined, 5 event rows -> {tmp_path / 'out'}"


def test_rows_to_score_with_labelled_tokens_are_quarantined(tmp_path):
    """--unlabelled of a spec whose tokens carry labels: 'N1-1' would be read as an unseen item 'N1-1'."""
    from rapids_engage.ingest import RecordReader, ingest_table

    behaviors = write(tmp_path / "behaviors.tsv", (
        "1\tU1\t11/12/2019 2:14:46 PM\tN9\tN1 N2 N3\n"
        "2\tU2\t11/13/2019 9:00:00 AM\t\tN2 N4-0\n"  # a label left in
        "3\tU3\t11/13/2019 9:00:00 AM\t\tN2-x N5\n"  # an item id with the separator: fine
    ))
    news = write(tmp_path / "news.tsv", "N1\tsports\tgolf\tTitle one\tabs\turl\t[]\t[]\n")
    mind = mind_spec(behaviors, news)
    result = ingest_table(str(behaviors), tmp_path / "out", mind, unlabelled=True)
    assert (result.input_rows, result.ingested_rows, result.quarantine_counts) == (3, 2, {"bad_explode_token": 1})
    assert result.first_quarantined.startswith("behaviors.tsv:2 column impressions: a token with a label in rows without labels")
    rows, rejected = RecordReader(mind).read([{"impression_id": "7", "user_id": "U1", "time": "11/13/2019 9:00:00 AM",
                                              "impressions": "N1 N2-1"}])
    assert rows.empty and rejected[["record", "reason"]].values.tolist() == [[0, "bad_explode_token"]]


def mind_spec(behaviors: Path, news: Path) -> TableConfig:
    return TableConfig(
        format="tsv", header=False, columns=["impression_id", "user_id", "time", "history", "impressions"],
        time="time", time_format="%m/%d/%Y %I:%M:%S %p", row_id=["impression_id", "news_id"], user="user_id",
        group="impression_id", explode=ExplodeSpec(column="impressions", item="news_id", label="click"),
        targets={"click": TargetSpec("click", "binary")}, categorical=["category", "subcategory"], text=["title"],
        join=[SideTableSpec(path=str(news), key="news_id", keep=["category", "subcategory", "title"], format="tsv",
                            columns=["news_id", "category", "subcategory", "title", "abstract", "url",
                                     "title_entities", "abstract_entities"])],
    )


def test_explode_chunks_are_bounded_and_give_the_same_rows(tmp_path):
    lines = [f"{i}\tU{i % 7}\t11/12/2019 2:14:46 PM\t\t" + " ".join(f"N{j}-{j % 2}" for j in range(i % 9 + 1)) for i in range(300)]
    behaviors = write(tmp_path / "b.tsv", "\n".join(lines) + "\n")
    news = write(tmp_path / "n.tsv", "".join(f"N{j}\tc{j}\ts\tt{j}\ta\tu\t[]\t[]\n" for j in range(5)))
    _, big, _ = run(tmp_path, behaviors, mind_spec(behaviors, news), "big")
    result, small, _ = run(tmp_path, behaviors, mind_spec(behaviors, news), "small", chunk_rows=10)
    assert result.output_rows == sum(i % 9 + 1 for i in range(300)) and result.output_files >= 1
    key = ["row_id"]
    pd.testing.assert_frame_equal(big.sort_values(key).reset_index(drop=True), small.sort_values(key).reset_index(drop=True))


# ---------------------------------------------------------------- bad input


def test_every_reason_is_quarantined_with_file_line_column(tmp_path):
    good = ["g1", "u", "1600000000", "1", "1", "1", "en", "b"]
    csv = write(tmp_path / "a.csv", (
        csv_text([good]).encode()
        + b"w1,u,1600000000,1\n"                         # 3 wrong_field_count
        + b"\n"                                          # 4 blank: not a row
        + b"t1,u,yesterday,1,1,1,en,b\n"                 # 5 bad_time
        + b"n1,u,1600000000,1,1,abc,en,b\n"              # 6 bad_number (numeric)
        + b"n2,u,1600000000,1,\x00,1,en,b\n"             # 7 bad_target (a count target not a number)
        + b"b1,u,1600000000,yes,1,1,en,b\n"              # 8 bad_target (binary)
        + b"b2,u,1600000000,1,-4,1,en,b\n"               # 9 bad_target (negative count)
        + b"b3,u,1600000000,,1,1,en,b\n"                 # 10 bad_target (missing)
        + b"u1,u,1600000000,1,1,1,en,caf\xe9\n"          # 11 invalid_utf8
        + b"g2,u,1600000000,1,1,1,en,b\n"                # 12 fine
    ))
    empty = write(tmp_path / "c.csv", "id,user,ts,clicked,likes,score,lang,body\n")
    result, frame, q = run(tmp_path, [csv, empty], spec())
    got = q[["file", "line", "column", "reason"]].values.tolist()
    assert got == [
        [str(csv), 3, None, "wrong_field_count"], [str(csv), 5, "ts", "bad_time"], [str(csv), 6, "score", "bad_number"],
        [str(csv), 7, "likes", "bad_target"], [str(csv), 8, "clicked", "bad_target"], [str(csv), 9, "likes", "bad_target"],
        [str(csv), 10, "clicked", "bad_target"], [str(csv), 11, None, "invalid_utf8"],
    ]
    assert q.raw[0] == "w1,u,1600000000,1" and q.raw[7] == "u1,u,1600000000,1,1,1,en,caf\\xe9"
    assert (result.input_rows, result.ingested_rows) == (10, 2)
    assert result.empty_files == [str(empty)]
    assert sorted(frame.id) == sorted(hash_strings(["g1", "g2"]))
    assert result.quarantine_counts == {"bad_number": 1, "bad_target": 4, "bad_time": 1, "invalid_utf8": 1,
                                        "wrong_field_count": 1}
    assert q.detail[1] == "'yesterday' is not time_format unix" and q.detail[3] == "a target must be a finite number: '\\x00'"


def test_an_event_type_column_as_a_binary_target_points_to_the_event_log_recipe(tmp_path):
    """An e-commerce log's `event` column (view / addtocart) declared as a binary target quarantined every row as
    "not 0/1/true/false: 'view'", with nothing on what to do: the detail of text now says to map yes/no text or
    reshape an event log (README "Event logs"); a number that is not 0/1 keeps the short detail."""
    rows = [["e1", "u", "1600000000", "view", "1", "1", "en", "b"], ["e2", "u", "1600000001", "2", "1", "1", "en", "b"],
            ["e3", "u", "1600000002", "1", "1", "1", "en", "b"]]
    result, frame, q = run(tmp_path, write(tmp_path / "events.csv", csv_text(rows)), spec())
    assert q.reason.tolist() == ["bad_target", "bad_target"] and result.ingested_rows == 1
    assert q.detail[0].startswith("not 0/1/true/false (a label is 0/1 per row: map yes/no text to 0/1; a column of event types")
    assert 'README "Event logs"' in q.detail[0] and q.detail[0].endswith(": 'view'")
    assert q.detail[1] == "not 0/1/true/false: '2'"


def test_bad_json_and_jsonl_quirks(tmp_path):
    rows = [
        {"id": "j1", "user": 7, "ts": 1600000000, "clicked": True, "likes": 2, "score": None, "lang": "en", "body": "x"},
        "not json",
        [1, 2],
        "",
        {"id": "j2", "ts": "1600000000", "clicked": 0, "likes": 2.0, "lang": "en"},
    ]
    text = "\ufeff" + "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)
    path = write(tmp_path / "t.jsonl", text.encode() + b'{"id": "\xff"}\n')  # line 6: not UTF-8
    result, frame, q = run(tmp_path, path, spec(format="jsonl"))
    assert q[["line", "column", "reason"]].values.tolist() == [[2, None, "bad_json"], [3, None, "bad_json"],
                                                               [6, None, "invalid_utf8"]]
    assert (result.input_rows, result.ingested_rows) == (5, 2)
    got = by_id(frame, ["j1", "j2"])
    assert got.user[0] == hash_strings(["7"])[0] and pd.isna(got.user[1])  # a missing key: no user
    assert got.clicked.tolist() == [1, 0] and got.likes.tolist() == [2.0, 2.0]


def test_a_jsonl_record_naming_a_column_twice_is_quarantined(tmp_path):
    """`{"user": "u1", "user": "u2"}` kept the last value silently (json.loads); which one is meant is unknown, so the
    record is quarantined (`duplicate_key`, the column named), in strict mode an error naming file, line and column.
    A repeated field the table does not read is ignored, as the field is."""
    good = '"ts": 1600000000, "clicked": 1, "likes": 2, "score": 1, "lang": "en", "body": "b"'
    lines = ['{"id": "j1", "user": "u1", ' + good + '}',
             '{"id": "j2", "user": "u1", "user": "u2", ' + good + '}',
             '{"id": "j3", "user": "u1", "extra": 1, "extra": 2, ' + good + '}',
             '{"id": "j4", "user": "u1", "clicked": 0, ' + good + '}']
    path = write(tmp_path / "t.jsonl", "\n".join(lines) + "\n")
    result, frame, q = run(tmp_path, path, spec(format="jsonl"))
    assert q[["line", "column", "reason"]].values.tolist() == [[2, "user", "duplicate_key"], [4, "clicked", "duplicate_key"]]
    assert q.detail[0] == "key 'user' appears 2 times in the object: which value is meant is unknown"
    assert q.raw[0] == lines[1]
    assert result.quarantine_counts == {"duplicate_key": 2} and result.ingested_rows == 2
    assert sorted(frame.id) == sorted(hash_strings(["j1", "j3"]))
    assert set(q.reason) <= set(table_mod.REASONS)
    with pytest.raises(StrictModeError, match=rf"^{path}:2:user: duplicate_key"):
        ingest_table(path, tmp_path / "strict", spec(format="jsonl"), strict=True)


def test_a_jsonl_line_that_is_not_an_object_is_named_by_its_json_type(tmp_path):
    """A JSON value that is not an object is named as JSON names it (not by its Python type: 'a JSON NoneType')."""
    path = write(tmp_path / "t.jsonl", "null\n5\n1.5\n\"s\"\ntrue\n[1]\n")
    result, _, q = run(tmp_path, path, spec(format="jsonl"))
    kinds = ["null", "number", "number", "string", "boolean", "list"]
    assert q.detail.tolist() == [f"bad_json: a JSON {k}, not an object" for k in kinds]
    assert (result.input_rows, result.quarantined_rows) == (6, 6) and q.line.tolist() == [1, 2, 3, 4, 5, 6]

def test_parquet_missing_column_and_record_numbers(tmp_path):
    table = pa.table({"id": ["p1", "p2", "p3"], "ts": pa.array([1600000000, 1600000000, 1600000000]),
                      "clicked": [True, False, None], "likes": [1.0, 2.0, 3.0]})
    pq.write_table(table, tmp_path / "p.parquet")
    small = spec(format="parquet", user=None, numeric=[], categorical=[], text=[])
    result, frame, q = run(tmp_path, tmp_path / "p.parquet", small, chunk_rows=2)
    assert q[["line", "column", "reason"]].values.tolist() == [[3, "clicked", "bad_target"]]
    assert json.loads(q.raw[0]) == {"id": "p3", "ts": 1600000000, "clicked": None, "likes": 3.0}
    assert sorted(frame.id) == sorted(hash_strings(["p1", "p2"]))
    with pytest.raises(IngestError, match="p.parquet: no columns 'user', 'lang', 'score', 'body'; the schema has 'id'"):
        ingest_table(tmp_path / "p.parquet", tmp_path / "o2", spec(format="parquet"))


def test_parquet_with_a_declared_column_twice_is_an_error_naming_it(tmp_path):
    """A parquet schema naming a declared column twice (pyarrow writes it): which to read is unknown, so an
    IngestError naming the file, the column and its positions (pyarrow's KeyError before); a column not
    declared may repeat."""
    table = pa.table({"id": ["p1", "p2"], "ts": ["1700000000", "1700000060"], "clicked": [1, 0], "likes": [1, 2]})
    pq.write_table(pa.Table.from_arrays([*table.columns, pa.array([0, 1])], [*table.column_names, "clicked"]),
                   tmp_path / "p.parquet")
    small = spec(format="parquet", user=None, numeric=[], categorical=[], text=[])
    with pytest.raises(IngestError, match=r"p.parquet: the schema has 2 columns named 'clicked' \(at positions 3, 5\)"):
        ingest_table(tmp_path / "p.parquet", tmp_path / "o", small)
    pq.write_table(pa.Table.from_arrays([*table.columns, pa.array([0, 1]), pa.array([2, 3])], [*table.column_names, "x", "x"]),
                   tmp_path / "x.parquet")
    _, frame, q = run(tmp_path, tmp_path / "x.parquet", small, "ox")
    assert len(frame) == 2 and q.empty


def test_csv_tsv_header_with_a_declared_column_twice_is_an_error_naming_it(tmp_path):
    """A CSV / TSV header naming a declared column twice: the first was read and the second silently
    ignored; now an IngestError naming the file, the column and its positions, as for parquet. An
    undeclared column may repeat; a header-less file's ``columns`` may name no field twice."""
    small = spec(user=None, numeric=[], categorical=[], text=[])
    for sep, name in ((",", "a.csv"), ("\t", "a.tsv")):
        text = csv_text([["p1", "1700000000", "1", "1", "0"]], sep, ["id", "ts", "clicked", "likes", "clicked"])
        with pytest.raises(IngestError, match=rf"{name}: the header has 2 columns named 'clicked' \(at positions 3, 5\)"):
            ingest_table(write(tmp_path / name, text), tmp_path / "o", spec(format=name[2:], user=None, numeric=[],
                                                                              categorical=[], text=[]))
    text = csv_text([["p1", "1700000000", "1", "1", "0", "7"]], ",", ["id", "ts", "clicked", "likes", "x", "x"])
    _, frame, q = run(tmp_path, write(tmp_path / "x.csv", text), small, "ox")
    assert len(frame) == 1 and q.empty
    headerless = spec(user=None, numeric=[], categorical=[], text=[], header=False,
                      columns=["id", "ts", "clicked", "likes", "clicked"])
    with pytest.raises(IngestError, match=r"data.table.columns: 'clicked' is named 2 times \(at positions 3, 5\)"):
        ingest_table(write(tmp_path / "h.csv", "p1,1700000000,1,1,0\n"), tmp_path / "oh", headerless)


def test_parquet_timestamp_time_column(tmp_path):
    ts = pa.array([1600000000_000, None], pa.timestamp("ms", tz="Europe/Paris"))
    pq.write_table(pa.table({"id": ["p1", "p2"], "ts": ts, "clicked": [1, 1], "likes": [0, 1]}), tmp_path / "p.parquet")
    small = spec(format="parquet", user=None, numeric=[], categorical=[], text=[])
    # a pattern with the zone (%z, %Z: as for text with offsets) reads the instant too (every row was bad_time)
    for i, fmt in enumerate(["iso", "unix", "unix_ms", "%d/%m/%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%dT%H:%M:%S %Z"]):
        _, frame, q = run(tmp_path, tmp_path / "p.parquet", dataclasses.replace(small, time_format=fmt), f"o{i}")
        assert frame.event_time.tolist() == [1600000000] and q.reason.tolist() == ["bad_time"], fmt


def test_a_parquet_or_record_time_read_with_a_microseconds_pattern_is_its_instant(tmp_path):
    """A time_format holding %f (kept from a CSV of '2020-09-13T12:26:40.250+0000') quarantined every row of a parquet
    timestamp column, and of datetime records, as bad_time: arrow's strftime wrote the text '%f', which the pattern
    did not read back. The fraction of a second is dropped, as a text time's is; '%%f' is the text '%f'."""
    from rapids_engage.ingest.records import RecordReader

    ts = pa.array([1600000000_250, 1600000100_999], pa.timestamp("ms", tz="Europe/Paris"))
    pq.write_table(pa.table({"id": ["p1", "p2"], "ts": ts, "clicked": [1, 1], "likes": [0, 1]}), tmp_path / "p.parquet")
    small = spec(format="parquet", user=None, numeric=[], categorical=[], text=[])
    for i, fmt in enumerate(["%Y-%m-%dT%H:%M:%S.%f%z", "%d/%m/%Y %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S%%f"]):
        _, frame, q = run(tmp_path, tmp_path / "p.parquet", dataclasses.replace(small, time_format=fmt), f"o{i}")
        assert sorted(frame.event_time) == [1600000000, 1600000100] and q.empty, fmt
        records = [{"id": "r1", "ts": pd.Timestamp(1600000000_250, unit="ms", tz="UTC"), "clicked": 1, "likes": 0}]
        rows, rejected = RecordReader(dataclasses.replace(small, time_format=fmt), labelled=True).read(records)
        assert rows.event_time.tolist() == [1600000000] and rejected.empty, fmt


def test_wrong_field_count_lines_are_physical_across_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(table_read, "BLOCK_BYTES", 256)
    rng = np.random.default_rng(3)
    lines, bad_lines = [",".join(HEADER)], []
    for i in range(400):
        row = [f"r{i}", "u", "1600000000", "1", "2", "3", "en", f"body {i}"]
        kind = rng.integers(0, 12)
        if kind == 0:
            row = row[:5]
        elif kind == 1:
            row = row + ["extra"]
        elif kind == 2:
            lines.append("")
        elif kind == 3:
            row[-1] = '"quoted, with\nnewline"'
        if kind in (0, 1):
            bad_lines.append(sum(entry.count("\n") + 1 for entry in lines) + 1)  # physical line
        lines.append(",".join(row))
    path = write(tmp_path / "t.csv", gzip.compress(("\n".join(lines) + "\n").encode()))
    result, frame, q = run(tmp_path, path, spec(), chunk_rows=7)
    assert q.line.tolist() == bad_lines and set(q.reason) == {"wrong_field_count"}
    assert result.input_rows == 400


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_runaway_quote_or_long_line_falls_back_to_line_mode(tmp_path, monkeypatch, fmt):
    monkeypatch.setattr(table_read, "BLOCK_BYTES", 300)
    sep = "," if fmt == "csv" else "\t"
    rows = [[f"r{i}", "u", "1600000000", "1", "2", "3", "en", f"body {i}"] for i in range(200)]
    rows[60][-1] = "x" * 1000  # longer than a block
    lines = [sep.join(HEADER)] + [sep.join(r) for r in rows]
    if fmt == "csv":
        lines[100] = lines[100].replace(",u,", ',"u,')  # a quote opening a field, never closed
    result, frame, q = run(tmp_path, write(tmp_path / f"t.{fmt}", "\n".join(lines) + "\n"), spec(format=fmt))
    want_bad = [101] if fmt == "csv" else []
    assert q.line.tolist() == want_bad and set(q.reason) <= {"unclosed_quote"}
    good = [r[0] for i, r in enumerate(rows) if i + 2 not in want_bad]
    assert sorted(frame.id) == sorted(hash_strings(good)) and result.input_rows == 200
    assert by_id(frame, ["r60"]).body.tolist() == ["x" * 1000]


def test_csv_is_read_in_small_blocks_jsonl_in_large_ones(tmp_path, monkeypatch):
    """CSV / TSV go to pyarrow in DELIMITED_BLOCK_BYTES (it reads ~32 blocks ahead), JSONL in BLOCK_BYTES (its first
    block's keys checked), through the ingest's job as through a direct read."""
    seen = []
    for name in ("read_delimited", "read_jsonl"):
        reader = getattr(table_read, name)
        monkeypatch.setattr(table_read, name, lambda path, src, block, reader=reader: seen.append((src.fmt, block))
                            or reader(path, src, block))
    for fmt, text in (("csv", csv_text(ROWS)), ("tsv", csv_text(ROWS, "\t")), ("jsonl", _as_jsonl(ROWS[:3]))):
        run(tmp_path, write(tmp_path / f"t.{fmt}", text), spec(format=fmt), fmt)
    assert seen == [("csv", 2 << 20), ("tsv", 2 << 20), ("jsonl", 16 << 20)]


def test_a_files_writer_keeps_few_parts_open_and_its_rows_read_the_same(tmp_path, monkeypatch):
    """Each input file's writer has at most table.OPEN_PARTS parts open and table.BUFFER_BYTES of rows buffered (it
    kept a part open per day of the file, each holding its last row group's dictionary encoders: a year-long file,
    a year of them); tight caps cut more parts (merged back into one per day once written), and the rows read back
    the same, each day's in input order."""
    from rapids_engage.ingest.writer import DayWriter

    rows = [one_row(i, ts=str(1600000000 + 86_400 * ((i * 7) % 9) + i)) for i in range(90)]  # 9 days, no order
    path = write(tmp_path / "t.csv", csv_text(rows))
    result, frame, _ = run(tmp_path, path, spec(), "loose", chunk_rows=8)
    opened, write_part = [], DayWriter._write
    monkeypatch.setattr(DayWriter, "_write", lambda self, d: write_part(self, d) or opened.append(len(self._open)))
    monkeypatch.setattr(table_mod, "OPEN_PARTS", 2)
    monkeypatch.setattr(table_mod, "BUFFER_BYTES", 2_000)
    written, compact_parts = [], recsys_mod.compact_parts  # the parts the writer cut, before the merge
    monkeypatch.setattr(recsys_mod, "compact_parts",
                        lambda data: written.append(len(list(data.rglob("*.parquet")))) or compact_parts(data))
    tight, again, _ = run(tmp_path, path, spec(), "tight", chunk_rows=8)
    assert max(opened) == 2 and written[0] > tight.output_files == result.output_files == 9
    pd.testing.assert_frame_equal(again, frame)


def test_bare_carriage_return_keeps_later_line_numbers(tmp_path):
    text = csv_text(ROWS[:1]) + "a9,u,1600000000\r1,1,1,en,b\n" + "a5,u,bad,1,1,1,en,b\n"
    _, frame, q = run(tmp_path, write(tmp_path / "t.tsv", text.replace(",", "\t")), spec(format="tsv"))
    assert q[["line", "reason"]].values.tolist() == [[3, "wrong_field_count"], [3, "wrong_field_count"], [4, "bad_time"]]


def test_old_mac_line_ends_are_lines(tmp_path):
    """A file whose lines end in a bare \\r (Excel's "CSV (Macintosh)") was one line: every record on line 1,
    so the default row ids (file and line) were all the same and every bad row was on line 1."""
    text = csv_text(ROWS + [["a5", "u", "bad", "1", "1", "1", "en", "b"]]).replace("\n", "\r")
    _, frame, q = run(tmp_path, write(tmp_path / "t.csv", text), spec(row_id=[]))
    assert sorted(frame.row_id) == sorted(hash_strings([f"t.csv\x1f{line}\x1f0" for line in (2, 3, 4, 5)]))
    assert q[["line", "column", "reason"]].values.tolist() == [[6, "ts", "bad_time"]]


def test_strict_mode_names_file_line_column(tmp_path):
    good = ["g1", "u", "1600000000", "1", "1", "1", "en", "b"]
    path = write(tmp_path / "a.csv", csv_text([good, good[:2] + ["1600000000", "1", "-1", "1", "en", "b"],
                                               good[:2] + ["nope"] + good[3:]]))
    with pytest.raises(StrictModeError, match=rf"^{path}:3:likes: bad_target") as exc:
        ingest_table(path, tmp_path / "out", spec(), strict=True)
    assert (exc.value.line, exc.value.column, exc.value.reason) == (3, "likes", "bad_target")
    assert not (tmp_path / "out").exists()
    path = write(tmp_path / "b.csv", csv_text([good]) + "x,y\n")
    with pytest.raises(StrictModeError, match=rf"^{path}:3:-: wrong_field_count"):
        ingest_table(path, tmp_path / "out", spec(), strict=True)
    _, frame, _ = run(tmp_path, write(tmp_path / "c.csv", csv_text([good])), spec(), strict=True)
    assert len(frame) == 1


def test_spec_and_file_errors(tmp_path):
    path = write(tmp_path / "t.csv", csv_text(ROWS))
    with pytest.raises(IngestError, match="'lang' is both categorical and text"):
        ingest_table(path, tmp_path / "o", spec(text=["lang"]))
    with pytest.raises(IngestError, match="'user' is both user and categorical"):
        ingest_table(path, tmp_path / "o", spec(categorical=["user"]))
    # names the feature build gives its own columns (a table run failed with KeyError "['_day', '_fold'] not in index")
    renamed = write(tmp_path / "r.csv", csv_text(ROWS).replace("score", "_day", 1).replace("lang", "_fold", 1))
    with pytest.raises(IngestError, match=r"column '_day' \(numeric\) collides with the feature build's own '_day' column"):
        ingest_table(renamed, tmp_path / "o", spec(numeric=["_day"], categorical=[]))
    with pytest.raises(IngestError, match=r"column '_fold' \(categorical\) collides .* \(the target-encoding fold\)"):
        ingest_table(renamed, tmp_path / "o", spec(numeric=[], categorical=["_fold"]))
    with pytest.raises(IngestError, match=r"data.table.targets: the target name '_fold' collides"):
        ingest_table(path, tmp_path / "o", spec(targets={"_fold": TargetSpec("clicked", "binary")}))
    with pytest.raises(IngestError, match="format"):
        ingest_table(path, tmp_path / "o", spec(format="xlsx"))
    with pytest.raises(IngestError, match=r"data.table.categorical: 'lang' is not one of data.table.columns \(the header-less "
                                          r"csv's id, user, ts, clicked, likes, score\)"):
        ingest_table(path, tmp_path / "o", spec(header=False, columns=HEADER[:6]))
    with pytest.raises(IngestError, match=r"data.table.user: 'usr' is not one of .*; did you mean 'user'\?"):
        ingest_table(path, tmp_path / "o", spec(header=False, columns=HEADER, user="usr"))
    truncated = write(tmp_path / "t.csv.gz", gzip.compress(csv_text(ROWS * 50).encode())[:-30])
    with pytest.raises(IngestError, match=str(truncated)):
        ingest_table(truncated, tmp_path / "o", spec())
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- values: targets, keys, times, nested JSON


def one_row(i: int, **values: str) -> list[str]:
    """A good row ``x<i>`` with some values replaced (by column name)."""
    row = dict(zip(HEADER, [f"x{i}", "u", "1600000000", "1", "2", "0.5", "en", "b"])) | values
    return [row[c] for c in HEADER]


def count_reason(value: float) -> str | None:
    """The quarantine reason of a count target ``value`` written with repr (None: a good count)."""
    ok = value >= 0 and value == int(value) and value <= 2**53 if np.isfinite(value) else False
    return None if ok else "bad_target"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 2**60).map(float),
                          st.sampled_from([3.5, 3.7, 1e30, 2.0**53, 2.0**53 + 2, -0.0, float("nan")])),
                min_size=1, max_size=12))
def test_count_targets_must_be_non_negative_integers(values):
    rows = [one_row(i, likes=repr(v)) for i, v in enumerate(values)]
    rows += [one_row(100, likes="NaN"), one_row(101, likes="nan"), one_row(102, clicked="NaN")]
    with tempfile.TemporaryDirectory() as tmp:
        _, frame, q = run(Path(tmp), write(Path(tmp) / "t.csv", csv_text(rows)), spec())
    want = {i + 2: count_reason(v) for i, v in enumerate(values)}
    want |= {len(values) + k: "bad_target" for k in (2, 3, 4)}  # NaN, nan (count), NaN (binary)
    assert dict(zip(q.line, q.reason)) == {line: r for line, r in want.items() if r}
    assert set(q.column) <= {"likes", "clicked"}
    likes = frame.likes if len(frame) else pd.Series([], dtype=float)
    assert sorted(likes) == sorted(v for v in values if count_reason(v) is None)
    assert not np.signbit(likes).any()  # -0.0 stored as 0.0


def test_nan_in_a_numeric_feature_is_a_missing_value(tmp_path):
    rows = [one_row(0, score="NaN"), one_row(1, score=""), one_row(2, score="inf")]
    _, frame, q = run(tmp_path, write(tmp_path / "t.csv", csv_text(rows)), spec())
    assert q[["line", "column", "reason"]].values.tolist() == [[4, "score", "bad_number"]]
    assert frame.score.isna().all() and len(frame) == 2


def test_a_flag_in_a_numeric_column_reads_as_1_or_0(tmp_path):
    """true / false (any case: CSV flags like is_verified, JSON and parquet booleans) are 1 / 0 in a numeric column."""
    rows = [one_row(0, score="true"), one_row(1, score=" FALSE"), one_row(2, score="True"), one_row(3, score="yes")]
    _, frame, q = run(tmp_path, write(tmp_path / "t.csv", csv_text(rows)), spec(), "csv")
    assert q[["line", "column", "reason"]].values.tolist() == [[5, "score", "bad_number"]]
    assert by_id(frame, ["x0", "x1", "x2"]).score.tolist() == [1.0, 0.0, 1.0]
    records = "".join(json.dumps(dict(zip(HEADER, one_row(i)), score=v)) + "\n" for i, v in enumerate([True, False]))
    _, frame, q = run(tmp_path, write(tmp_path / "t.jsonl", records), spec(format="jsonl"), "jsonl")
    assert q.empty and by_id(frame, ["x0", "x1"]).score.tolist() == [1.0, 0.0]
    table = pa.table({c: [one_row(i)[k] for i in range(2)] for k, c in enumerate(HEADER)})
    pq.write_table(table.set_column(HEADER.index("score"), "score", pa.array([True, False])), tmp_path / "t.parquet")
    _, frame, q = run(tmp_path, tmp_path / "t.parquet", spec(format="parquet"), "parquet")
    assert q.empty and by_id(frame, ["x0", "x1"]).score.tolist() == [1.0, 0.0]

def test_blank_keys_are_null_and_a_blank_row_key_is_quarantined(tmp_path):
    rows = [one_row(0), one_row(1, user=""), one_row(2, user="  "), one_row(3, lang=""), one_row(4, id="")]
    _, frame, q = run(tmp_path, write(tmp_path / "t.csv", csv_text(rows)), spec())
    assert q[["line", "column", "reason", "detail"]].values.tolist() == [[6, "id", "missing_key",
                                                                          "missing row key value"]]
    got = by_id(frame, ["x0", "x1", "x2", "x3"])
    assert got.user.isna().tolist() == [False, True, True, False] and got.user[0] == hash_strings(["u"])[0]
    assert got.lang.isna().tolist() == [False, False, False, True]
    parts = sorted((tmp_path / "out" / "data").rglob("*.parquet"))
    assert pq.read_schema(parts[0]).field("user").type == pa.int64()
    days = [one_row(0), one_row(1, ts="1700000000", user=""), one_row(2, ts="1700000000", user="")]
    run(tmp_path, write(tmp_path / "d.csv", csv_text(days)), spec(), "days")  # nulls on one day only
    parts = sorted((tmp_path / "days" / "data").rglob("*.parquet"))
    assert len(parts) == 2 and [str(pd.read_parquet(p).user.dtype) for p in parts] == ["Int64", "Int64"]  # nulls or not
    # JSONL: a missing key, null or "" is no user; parquet: a null
    records = [{"id": "j0", "user": "u"}, {"id": "j1"}, {"id": "j2", "user": None}, {"id": "j3", "user": ""}]
    lines = "".join(json.dumps({"ts": 1600000000, "clicked": 1, "likes": 1} | r) + "\n" for r in records)
    small = spec(numeric=[], categorical=[], text=[])
    _, frame, _ = run(tmp_path, write(tmp_path / "t.jsonl", lines), dataclasses.replace(small, format="jsonl"), "j")
    assert by_id(frame, ["j0", "j1", "j2", "j3"]).user.isna().tolist() == [False, True, True, True]
    pq.write_table(pa.table({"id": ["p0", "p1", None], "user": ["u", None, "u"], "ts": [1600000000] * 3,
                             "clicked": [1] * 3, "likes": [1] * 3}), tmp_path / "t.parquet")
    _, frame, q = run(tmp_path, tmp_path / "t.parquet", dataclasses.replace(small, format="parquet"), "p")
    assert by_id(frame, ["p0", "p1"]).user.isna().tolist() == [False, True]
    assert q[["line", "column", "reason"]].values.tolist() == [[3, "id", "missing_key"]]


def test_json_lists_and_objects_only_in_list_columns(tmp_path):
    base = {"id": "j", "user": "u", "ts": 1600000000, "clicked": 1, "likes": 1, "score": 1, "lang": "en", "body": "b",
            "tags": ["a", "b"]}
    bad = [{"likes": [1]}, {"clicked": [1]}, {"user": {"name": "x"}}, {"score": [2]}, {"ts": [1600000000]},
           {"body": {"t": 1}}, {"lang": ["en"]}]
    lines = [base | {"id": f"j{i}"} | change for i, change in enumerate([{}, *bad])]
    path = write(tmp_path / "t.jsonl", "".join(json.dumps(r) + "\n" for r in lines))
    result, frame, q = run(tmp_path, path, spec(format="jsonl", lists=["tags"]))
    assert q[["line", "column", "reason"]].values.tolist() == [
        [2, "likes", "bad_target"], [3, "clicked", "bad_target"], [4, "user", "bad_json"], [5, "score", "bad_number"],
        [6, "ts", "bad_time"], [7, "body", "bad_json"], [8, "lang", "bad_json"]]
    assert q.detail[0] == "a JSON list where one value is expected: [1]"
    assert q.detail[2] == 'a JSON object where one value is expected: {"name": "x"}'
    assert frame.tags.tolist() == ["a b"] and result.ingested_rows == 1
    # parquet: a list / struct column where one value is expected
    table = pa.table({"id": ["p0", "p1"], "user": pa.array([{"n": "x"}, None], pa.struct([("n", pa.string())])),
                      "ts": [1600000000] * 2, "clicked": [1, 0], "likes": pa.array([[1], None], pa.list_(pa.int64()))})
    pq.write_table(table, tmp_path / "t.parquet")
    small = spec(format="parquet", numeric=[], categorical=[], text=[])
    _, frame, q = run(tmp_path, tmp_path / "t.parquet", small, "p")
    assert q[["line", "column", "reason"]].values.tolist() == [[1, "user", "bad_json"], [2, "likes", "bad_target"]]


def test_missing_columns_are_a_file_error_with_the_closest_names(tmp_path):
    good = csv_text([one_row(0)])
    cases = {
        "case.csv": (good.replace("ts,", "TS,", 1), "no column 'ts' (the header has 'TS')"),
        "space.csv": (good.replace("ts,", "ts ,", 1), "no column 'ts' (the header has 'ts ')"),
        "typo.csv": (good.replace("likes,", "lieks,", 1), "no column 'likes' (the header has 'lieks')"),
        "none.csv": (good.replace("score,", "zzz,", 1), "no column 'score'; the header has 'id', 'user', 'ts', "),
        "labels.csv": (csv_text([[v for c, v in zip(HEADER, one_row(0)) if c not in ("clicked", "likes")]],
                                header=[c for c in HEADER if c not in ("clicked", "likes")]),
                       "no columns 'clicked', 'likes'; the header has 'id', 'user', 'ts', 'score', 'lang', 'body'; "
                       "rows to score without labels: ingest with --unlabelled"),
    }
    ok = write(tmp_path / "a_ok.csv", good)
    for i, (name, (text, message)) in enumerate(cases.items()):
        path = write(tmp_path / name, text)
        for strict in (False, True):  # a file-level error either way, naming the file among several
            with pytest.raises(IngestError, match=f"^{re.escape(f'{path}: {message}')}"):
                ingest_table([ok, path], tmp_path / f"o{i}", spec(), strict=strict)
        assert not (tmp_path / f"o{i}").exists()
    header_only = write(tmp_path / "h.csv", "id,user,TS\n")
    with pytest.raises(IngestError, match="no columns 'ts' \\(the header has 'TS'\\), 'clicked'"):
        ingest_table(header_only, tmp_path / "h", spec())
    with pytest.raises(IngestError, match="no column 'author'; the header has 'id', 'user'"):
        ingest_table(ok, tmp_path / "c", spec(user="author"))  # a typo'd role column in the config
    # JSONL: a time / target / row key no record of the first block has; optional keys may be absent
    records = "".join(json.dumps({"id": f"j{i}", "Ts": 1600000000, "clicked": 1, "likes": 1}) + "\n" for i in range(3))
    with pytest.raises(IngestError, match="t.jsonl: no column 'ts' \\(the records have 'Ts'\\)$"):
        ingest_table(write(tmp_path / "t.jsonl", records), tmp_path / "j", spec(format="jsonl"))
    result, _, _ = run(tmp_path, write(tmp_path / "u.jsonl", records.replace('"Ts"', '"ts"')), spec(format="jsonl"))
    assert result.ingested_rows == 3
    # an optional key none of them has while they have one named like it: a misspelt config, not absent values
    with pytest.raises(IngestError, match="v.jsonl: no column 'user' \\(the records have 'User'\\)$"):
        ingest_table(write(tmp_path / "v.jsonl", records.replace('"Ts"', '"ts"').replace('"likes"', '"User": "u", "likes"')),
                     tmp_path / "v", spec(format="jsonl"))
    side = SideTableSpec(path=str(write(tmp_path / "side.csv", "id,Lang\nx0,en\n")), key="id", keep=["lang"],
                         format="csv", header=True)
    message = f"side table {tmp_path / 'side.csv'}: no column 'lang' (the header has 'Lang')"
    with pytest.raises(IngestError, match=re.escape(message)):
        ingest_table(ok, tmp_path / "s", spec(categorical=[], join=[side]))
    gone = dataclasses.replace(side, path=str(tmp_path / "gone.csv"))  # not 'gone.csv: no such input file' alone
    with pytest.raises(IngestError, match=re.escape(f"data.table.join: side table {tmp_path / 'gone.csv'}: no such")):
        ingest_table(ok, tmp_path / "g", spec(categorical=[], join=[gone]))
    with pytest.raises(IngestError, match="needs columns, or header: true to read its first line as them \\(a side table's header is false"):
        ingest_table(ok, tmp_path / "d", spec(categorical=[], join=[SideTableSpec(path=side.path, key="id", keep=["Lang"])]))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(-2 * 10**9, 5 * 10**18), min_size=1, max_size=10), st.sampled_from(["unix", "unix_ms"]))
def test_times_outside_1990_2100_are_bad_with_a_unit_hint(values, fmt):
    scale = 1000 if fmt == "unix_ms" else 1
    rows = [one_row(i, ts=str(v)) for i, v in enumerate(values)]
    with tempfile.TemporaryDirectory() as tmp:
        _, frame, q = run(Path(tmp), write(Path(tmp) / "t.csv", csv_text(rows)), spec(time_format=fmt))
    secs = [v // scale for v in values]
    good = [i for i, s in enumerate(secs) if 631_152_000 <= s < 4_102_444_800]
    assert sorted(frame.event_time if len(frame) else []) == sorted(secs[i] for i in good)
    assert sorted(q.line) == [i + 2 for i in range(len(values)) if i not in good] and set(q.reason) <= {"bad_time"}
    for line, detail in zip(q.line, q.detail):
        assert detail.startswith(f"{values[line - 2]} is out of range")


def test_time_range_hints_and_fractions(tmp_path):
    cases = {
        "unix": (["1474859640000", "1474859640000000", "0", "-1", "1473292620.5", "631152000", "4102444799"],
                 ["1474859640000 is out of range as seconds; milliseconds? set time_format: unix_ms",
                  "1474859640000000 is out of range as seconds; microseconds? convert them to seconds or milliseconds",
                  "0 is out of range (event times must be in 1990-01-01 .. 2099-12-31 UTC)",
                  "-1 is out of range (event times must be in 1990-01-01 .. 2099-12-31 UTC)"],
                 [631152000, 1473292620, 4102444799]),
        "unix_ms": (["1474859640", "1474859640999"],
                    ["1474859640 is out of range as milliseconds; seconds? set time_format: unix"], [1474859640]),
        "iso": (["1970-01-01T00:00:00Z", "2100-01-01", "1990-01-01", "2016-09-26T03:26:00.9Z", ""],
                ["1970-01-01T00:00:00Z is out of range (event times must be in 1990-01-01 .. 2099-12-31 UTC)",
                 "2100-01-01 is out of range (event times must be in 1990-01-01 .. 2099-12-31 UTC)", "missing time"],
                [631152000, 1474860360]),
    }
    for i, (fmt, (values, details, times)) in enumerate(cases.items()):
        rows = [one_row(j, ts=v) for j, v in enumerate(values)]
        _, frame, q = run(tmp_path, write(tmp_path / f"t{i}.csv", csv_text(rows)), spec(time_format=fmt), f"o{i}")
        assert q.detail.tolist() == details and set(q.reason) == {"bad_time"}, fmt
        assert sorted(frame.event_time) == times, fmt  # fractions of a second dropped


def test_result_summary_names_reasons_and_quarantine_file(tmp_path):
    rows = [one_row(0), one_row(1, likes="3.5"), one_row(2, ts="0"), one_row(3, likes="-1")]
    result, _, _ = run(tmp_path, write(tmp_path / "t.csv", csv_text(rows)), spec())
    q = tmp_path / "out" / "quarantine.parquet"
    assert result.quarantine_file == str(q) and q.is_file()
    assert result.summary() == (f"4 input rows: 1 ingested, 3 quarantined (bad_target 2, bad_time 1; see {q}); first: "
                                f"t.csv:3 column likes: a count must be a non-negative integer (at most 2**53): '3.5' "
                                f"-> {tmp_path / 'out'}")
    assert json.loads((tmp_path / "out" / "ingest.json").read_text())["quarantine_file"] == str(q)
    clean, _, _ = run(tmp_path, write(tmp_path / "c.csv", csv_text([one_row(0)])), spec(), "clean")
    assert clean.quarantine_file is None
    assert clean.summary() == f"1 input rows: 1 ingested, 0 quarantined -> {tmp_path / 'clean'}"


# ---------------------------------------------------------------- fuzz

GARBAGE = st.binary(min_size=1, max_size=4).filter(lambda b: b'"' not in b and b"\n" not in b)
FUZZ_ROWS = [[f"f{i}", f"u{i % 5}", str(1600000000 + 3600 * i), str(i % 2), str(i % 4), str(i / 3), "en", f"text {i}"]
             for i in range(60)]
FUZZ_LINES = [",".join(r).encode() for r in FUZZ_ROWS]


def corrupt(line: bytes, how: int, garbage: bytes, at: float) -> bytes:
    """Truncate the line, insert garbage bytes or add delimiters.

    No ``"``: a quote opening a field runs to the next one (CSV), taking clean lines with it.
    """
    cut = int(at * len(line))
    if how == 0:
        return line[:cut]
    if how == 1:
        return line[:cut] + garbage + line[cut:]
    return line[:cut] + b"," * (1 + len(garbage) % 3) + line[cut:]


def records(line: bytes) -> int:
    """Source rows a corrupted line makes: 1 if not UTF-8, else one per non-empty piece between bare CRs."""
    try:
        text = line.decode()
    except UnicodeDecodeError:
        return 1
    return sum(1 for piece in text.removesuffix("\r").split("\r") if piece)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, len(FUZZ_LINES) - 1), st.integers(0, 2), GARBAGE, st.floats(0, 1)), max_size=12),
       st.booleans())
def test_corrupted_csv_never_crashes_and_keeps_clean_lines(edits, zipped):
    lines = list(FUZZ_LINES)
    for i, how, garbage, at in edits:
        lines[i] = corrupt(lines[i], how, garbage, at)
    data = b",".join(h.encode() for h in HEADER) + b"\n" + b"\n".join(lines) + b"\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp) / "t.csv", gzip.compress(data) if zipped else data)
        result, frame, q = run(Path(tmp), path, spec(), chunk_rows=16)
        if result.quarantined_rows:  # strict mode stops at the first bad line
            with pytest.raises(StrictModeError, match=rf"^{path}:{min(q.line)}:"):
                ingest_table(path, Path(tmp) / "strict", spec(), chunk_rows=16, strict=True)
        else:
            assert ingest_table(path, Path(tmp) / "strict", spec(), strict=True).ingested_rows == result.ingested_rows
    clean = [i for i, line in enumerate(lines) if line == FUZZ_LINES[i]]
    assert set(hash_strings([FUZZ_ROWS[i][0] for i in clean])) <= set(frame.id)
    assert set(q.reason) <= set(table_mod.REASONS)
    assert set(q.line) <= {i + 2 for i in range(len(lines)) if i not in clean}  # physical lines of corrupted rows
    assert result.input_rows == sum(records(line) for line in lines)


# ---------------------------------------------------------------- real data (../shared/data)


@pytest.mark.skipif(not (SHARED / "hn" / "hacker_news.csv").is_file(), reason="needs ../shared/data/hn/hacker_news.csv")
def test_real_hacker_news(tmp_path):
    hn = TableConfig(
        format="csv", time="created_at", time_format="%m/%d/%Y %H:%M", row_id=["id"], item="id", creator="author",
        targets={"points": TargetSpec("num_points", "count"), "comments": TargetSpec("num_comments", "count")},
        text=["title"], url=["url"],
    )
    result, frame, _ = run(tmp_path, SHARED / "hn" / "hacker_news.csv", hn)
    assert result.input_rows == 14_635 and result.ingested_rows >= 14_600
    assert all(day.startswith("2016-09-") for day in result.rows_per_day)
    assert frame.row_id.is_unique and (frame.num_points >= 0).all() and frame.title.str.len().gt(0).mean() > 0.99


@pytest.mark.skipif(not (SHARED / "mind" / "behaviors.tsv").is_file(), reason="needs ../shared/data/mind")
def test_real_mind(tmp_path):
    behaviors = SHARED / "mind" / "behaviors.tsv"
    result, frame, _ = run(tmp_path, behaviors, mind_spec(behaviors, SHARED / "mind" / "news.tsv"))
    assert result.input_rows == 5_000 and result.ingested_rows == 5_000
    assert 180_000 < result.output_rows < 200_000 and frame.row_id.is_unique
    assert frame.groupby("impression_id").click.sum().min() >= 1
    assert all(day.startswith("2019-11-") for day in result.rows_per_day)
    assert (frame.category != "").any()


def test_present_targets_read_written_out_missing_values_as_absent(tmp_path):
    """A `present` target (e.g. an engagement time): "NaN", "null", "None", "NA" are no engagement."""
    table = spec(targets={"replied": TargetSpec("likes", "present")})
    texts = ["1612396800", "", "NaN", "null", "None", " NA ", "n/a", "yes"]
    rows = [one_row(i, likes=v) for i, v in enumerate(texts)]
    _, frame, q = run(tmp_path, write(tmp_path / "t.csv", csv_text(rows)), table)
    assert len(q) == 0
    assert by_id(frame, [f"x{i}" for i in range(len(texts))]).likes.tolist() == [1, 0, 0, 0, 0, 0, 0, 1]


def test_an_unclosed_quote_quarantines_its_line_and_the_lines_it_ran_over_are_rows(tmp_path):
    """The line an unclosed quote opens on (mid-file, or to the end of the file) is one bad row, the
    lines it ran over are read as rows: never rows vanished into a text value (tests/test_ingest_quotes.py)."""
    rows = [one_row(i, body="STRAY" if i == 3 else "b") for i in range(10)]
    text = csv_text(rows).replace("STRAY", '"oops', 1)  # body is the last field: the record runs to the end
    result, frame, q = run(tmp_path, write(tmp_path / "t.csv", text), spec())
    assert q[["line", "column", "reason"]].values.tolist() == [[5, "body", "unclosed_quote"]]
    assert "ran over 6 more lines" in q.detail[0] and q.raw[0] == "x3,u,1600000000,1,2,0.5,en,\"oops"
    assert sorted(frame.body) == ["b"] * 9 and result.input_rows == 10
    _assert_every_row_kept_or_quarantined(frame, q, 10)
    rows = [one_row(i, lang="STRAY" if i == 3 else "en") for i in range(10)]  # mid-record: to the next quote
    text = csv_text(rows).replace("STRAY", '"oops', 1).replace("x6,u", 'x6,"u', 1)
    _, frame, q = run(tmp_path, write(tmp_path / "t2.csv", text), spec(), name="out2")
    assert q[["line", "column", "reason"]].values.tolist() == [[5, "lang", "unclosed_quote"], [8, "user", "unclosed_quote"]]
    assert len(frame) == 8
    _assert_every_row_kept_or_quarantined(frame, q, 10)


def _assert_every_row_kept_or_quarantined(frame: pd.DataFrame, q: pd.DataFrame, n: int) -> None:
    kept = set(frame.id) if len(frame) else set()
    for i in range(n):
        assert hash_strings([f"x{i}"])[0] in kept or any(f"x{i}," in str(raw) for raw in q.raw), f"x{i} lost"


def test_a_blank_ranking_group_is_a_missing_key(tmp_path):
    """Ranking (XGBoost's qid) and the per-group metrics need every row in a group."""
    rows = [one_row(0), one_row(1, user=""), one_row(2, user=" ")]
    _, frame, q = run(tmp_path, write(tmp_path / "t.csv", csv_text(rows)), spec(user=None, group="user"))
    assert q[["line", "column", "reason", "detail"]].values.tolist() == [
        [3, "user", "missing_key", "missing ranking group value"], [4, "user", "missing_key", "missing ranking group value"]]
    assert len(frame) == 1 and frame.user.notna().all()


def test_the_summary_and_ingest_json_show_the_first_quarantined_row(tmp_path):
    """A run whose rows were (nearly) all quarantined for one reason shows one of them, on one short line."""
    iso = [one_row(i, ts="2024-03-01T01:00:23+01:00") for i in range(3)]
    a = write(tmp_path / "a.csv", csv_text(iso))
    result, _, _ = run(tmp_path, a, spec())
    first = "a.csv:2 column ts: '2024-03-01T01:00:23+01:00' is not time_format unix"
    assert result.first_quarantined == first and result.summary().count("\n") == 0
    assert f"; first: {first} -> " in result.summary()
    assert json.loads((tmp_path / "out" / "ingest.json").read_text())["first_quarantined"] == first
    long = write(tmp_path / "b.csv", csv_text([one_row(0), one_row(1, ts="9" * 500), one_row(2, ts="x")]))
    result, _, _ = run(tmp_path, [long, a], spec(), "out2")  # the first file's lowest line, detail cut short
    assert result.first_quarantined.startswith("b.csv:3 column ts: '999") and result.first_quarantined.endswith("...")
    assert len(result.first_quarantined) < 160
    clean, _, _ = run(tmp_path, write(tmp_path / "c.csv", csv_text([one_row(0)])), spec(), "out3")
    assert clean.first_quarantined is None and "first:" not in clean.summary()


@pytest.mark.parametrize("fmt, hint", [("isoo", "; did you mean 'iso'?"), ("unixms", "; did you mean 'unix_ms'?"),
                                       ("ISO", "; did you mean 'iso'?"), ("seconds", "")])
def test_a_time_format_typo_suggests_the_closest_name(tmp_path, fmt, hint):
    path = write(tmp_path / "t.csv", csv_text(ROWS))
    want = f"data.table.time_format must be unix, unix_ms, iso or a strptime pattern, got {fmt!r}{hint}"
    with pytest.raises(IngestError) as exc:
        ingest_table(path, tmp_path / "out", spec(time_format=fmt))
    assert str(exc.value) == want


@pytest.mark.parametrize("fmt, sep, hint", [
    ("tsv", ",", "; the header looks comma-separated: format: csv?"),
    ("csv", "\t", "; the header looks tab-separated: format: tsv?"),
    ("csv", ";", "; the header looks semicolon-separated: only comma (csv) and tab (tsv) separated files are read"),
    ("tsv", "|", "; the header looks pipe-separated: only comma (csv) and tab (tsv) separated files are read"),
])
def test_a_header_split_by_another_delimiter_says_so(tmp_path, fmt, sep, hint):
    path = write(tmp_path / "t.txt", "\n".join(sep.join(r) for r in [HEADER, *ROWS[:1]]) + "\n")
    with pytest.raises(IngestError, match="no columns") as exc:
        ingest_table(path, tmp_path / "out", spec(format=fmt))
    assert str(exc.value).endswith(hint)
    other = write(tmp_path / "o.csv", "\n".join(",".join(r) for r in [["a", "b", "c"], ["1", "2", "3"]]) + "\n")
    with pytest.raises(IngestError, match="no columns") as exc:
        ingest_table(other, tmp_path / "out", spec())
    assert "separated" not in str(exc.value)


def test_chunks_of_two_rows_quarantine_every_bad_row_once_and_the_first_is_the_lowest_line(tmp_path):
    """Bad rows between the good ones, read in chunks of two rows (the last one with a line read bad inside
    it): each is quarantined once, the first shown is the file's lowest bad line, and a file of one row is
    not empty."""
    rows = [one_row(0), one_row(1, ts="x"), one_row(2), one_row(3, clicked="yes"), one_row(4), one_row(5, score="abc"),
            one_row(6)]
    a = write(tmp_path / "a.csv", csv_text(rows) + "w1,u\n" + csv_text([one_row(7)], header=None))  # line 9: read bad
    one = write(tmp_path / "one.csv", csv_text([one_row(9)]))
    result, frame, q = run(tmp_path, [a, one], spec(), chunk_rows=2)
    assert q[["line", "reason"]].values.tolist() == [[3, "bad_time"], [5, "bad_target"], [7, "bad_number"],
                                                     [9, "wrong_field_count"]]
    assert (result.input_rows, result.ingested_rows, len(frame)) == (10, 6, 6)
    assert result.first_quarantined.startswith("a.csv:3 column ts:")
    assert result.empty_files == []


def test_default_row_ids_of_files_with_the_same_name_in_two_folders_differ(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    text = csv_text([one_row(i) for i in range(3)])
    paths = [write(tmp_path / d / "events.csv", text) for d in ("a", "b")]
    _, frame, _ = run(tmp_path, paths, spec(row_id=[]))
    assert len(frame) == 6 and frame.row_id.nunique() == 6


def test_a_jsonl_without_the_row_id_key_is_a_file_error(tmp_path):
    records = "".join(json.dumps({"user": "u", "ts": 1600000000 + i, "clicked": 1, "likes": 1}) + "\n" for i in range(3))
    with pytest.raises(IngestError, match="r.jsonl: no column 'id'"):
        ingest_table(write(tmp_path / "r.jsonl", records), tmp_path / "o", spec(format="jsonl"))


def test_binary_targets_written_as_floats_are_read(tmp_path):
    a = write(tmp_path / "a.csv", csv_text([one_row(0, clicked="1.0"), one_row(1, clicked="0.0"), one_row(2, clicked="0")]))
    result, frame, q = run(tmp_path, a, spec())
    assert result.quarantined_rows == 0
    assert by_id(frame, ["x0", "x1", "x2"]).clicked.tolist() == [1, 0, 0]


def test_a_header_naming_a_declared_column_twice_reads_neither(tmp_path):
    """Not the first of them silently (a wrong column read unnoticed): an error naming both positions."""
    text = csv_text([one_row(0) + ["de"]], header=[*HEADER, "lang"])
    with pytest.raises(IngestError, match=rf"the header has 2 columns named 'lang' \(at positions {HEADER.index('lang') + 1}, {len(HEADER) + 1}\)"):
        run(tmp_path, write(tmp_path / "a.csv", text), spec())


def test_side_table_malformed_rows_are_skipped_and_unmatched_numbers_are_missing(tmp_path):
    """A malformed side-table row is skipped with a warning (strict: an error naming its line); a row whose key
    the side table lacks gets no value: NaN for a numeric column, not a bad row."""
    side = write(tmp_path / "users.csv", "user,weight\nu1,2.5\nu2,1,extra\nu3,4\n")
    joined = spec(numeric=["score", "weight"],
                  join=[SideTableSpec(path=str(side), key="user", keep=["weight"], format="csv", header=True)])
    rows = [one_row(0, user="u1"), one_row(1, user="u3"), one_row(2, user="u9")]
    a = write(tmp_path / "a.csv", csv_text(rows))
    with pytest.warns(UserWarning, match=r"users.csv: skipped 1 malformed side-table rows"):
        result, frame, _ = run(tmp_path, a, joined)
    assert result.quarantined_rows == 0
    got = by_id(frame, ["x0", "x1", "x2"]).weight.tolist()
    assert got[:2] == [2.5, 4.0] and np.isnan(got[2])
    with pytest.raises(StrictModeError, match=r"users.csv:3:-: wrong_field_count"):
        ingest_table(a, tmp_path / "strict", joined, strict=True)


@pytest.mark.parametrize("sub", ["", "data"])
def test_a_parquet_source_at_an_ingest_s_data_folder_reads_its_layout(tmp_path, sub):
    """``data.source: parquet`` with ``data.path`` at the ``data/`` folder of an ingest (report.json's
    ``split.data_dir``): layout.json one level up was not read, the table was taken for RecSys data and the
    run ended in 'train.targets names 'click', which the data do not define (targets: like, retweet, ...)'."""
    from rapids_engage.config import from_dict
    from rapids_engage.data import parquet_dataset

    run(tmp_path, write(tmp_path / "t.csv", csv_text(ROWS)), spec())
    cfg = from_dict({"data": {"source": "parquet", "path": str(tmp_path / "out" / sub)}})
    dataset = parquet_dataset(cfg)
    assert dataset.layout == Layout.load(tmp_path / "out") and dataset.layout.kind == "table"
    assert dataset.data_dir == tmp_path / "out" / "data"


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(new_field=1), r"layout.json: unknown field 'new_field' \(written by a newer rapids_engage\?\)"),
    (lambda d: d["targets"][0].update(weight=2), r"layout.json: targets: unknown field 'weight'"),
    (lambda d: d.pop("time"), r"layout.json: field 'time' is missing"),
])
def test_a_layout_of_another_version_is_refused_naming_the_file_and_the_field(tmp_path, edit, message):
    """A layout.json with a field this version does not know (a newer ingest's) raised the constructor's
    bare TypeError 'Layout.__init__() got an unexpected keyword argument', a traceback in a run."""
    data = table_layout(spec()).to_dict()
    edit(data)
    (tmp_path / "layout.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message):
        Layout.load(tmp_path)


@pytest.mark.parametrize("edit, why", [
    (lambda d: d.update(row_key="row_id"), r"key row_key is a string, not an array"),
    (lambda d: d.update(row_key=["row_id", 7]), r"key row_key.1 is a number, not a string"),
    (lambda d: d.update(user=3), r"key user is a number, not a string or null"),
    (lambda d: d.update(list_sep=None), r"key list_sep is null, not a string"),
    (lambda d: d.update(categorical={}), r"key categorical is an object, not an array"),
    (lambda d: d.update(targets=["click"]), r"targets.0 is a string, not an object"),
    (lambda d: d["targets"][0].update(kind=1), r"key targets.0.kind is a number, not a string"),
])
def test_a_layout_field_of_another_type_is_refused_naming_the_file_and_the_field(tmp_path, edit, why):
    """A layout.json field of the wrong JSON type (an edit) was taken: a row_key string became the key's
    characters as columns (r, o, w, ...), a target string an 'unknown field' per character."""
    data = table_layout(spec()).to_dict()
    edit(data)
    (tmp_path / "layout.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f"{re.escape(str(tmp_path))}/layout.json is damaged \\({why}\\): ingest the data again"):
        Layout.load(tmp_path)


@pytest.mark.parametrize("text, why", [
    ('{"kind": "table", "row_key": ["row_id"], ', r"layout.json is damaged \(Expecting .*: not JSON, cut short or another format\)"),
    ("", r"layout.json is damaged \(empty\)"),
    ('["row_id"]', r"layout.json is damaged \(it is an array, not an object\)"),
])
def test_a_damaged_layout_is_refused_naming_the_file(tmp_path, text, why):
    """A layout.json cut short (a killed copy) or empty ended a run in 'error: Expecting value: line 1 column 1
    (char 0)' without the file's name (json's JSONDecodeError); one holding an array, in a TypeError traceback.
    (Found by the damaged-files sweep.)"""
    (tmp_path / "layout.json").write_text(text)
    with pytest.raises(ValueError, match=f"{re.escape(str(tmp_path))}/{why}: ingest the data again"):
        Layout.load(tmp_path)


@pytest.mark.parametrize("text, why", [
    ('{"input_rows": 4, "ingested_', "Unterminated string"),
    ("", "empty"),
    ('{"input_rows": 4}', "key files is missing"),
])
def test_a_damaged_ingest_summary_in_the_cache_is_ingested_again(tmp_path, text, why):
    """The ingest cache's ingest.json cut short (a killed copy of data.cache_dir) or empty stopped every run with
    'error: Expecting value: line 1 column 1 (char 0)' (naming no file), one without a key in a KeyError
    traceback, though the ingest could simply run again: a cache heals itself, and the data line says why.
    (Found by the damaged-files sweep.)"""
    from rapids_engage.config import from_dict
    from rapids_engage.data import table_dataset

    f = write(tmp_path / "t.csv", csv_text(ROWS))
    cfg = from_dict({"data": {"source": "table", "path": str(f), "cache_dir": str(tmp_path / "cache")}})
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, table=spec()))
    first = table_dataset(cfg)
    summary = first.data_dir.parent / "ingest.json"
    summary.write_text(text)
    again = table_dataset(cfg)
    assert f"its ingest.json was damaged ({why}" in again.description and "cached" not in again.description
    assert again.ingest == first.ingest and json.loads(summary.read_text())["input_rows"] == 4
    assert "cached" in table_dataset(cfg).description  # healed


@pytest.mark.parametrize("time_format", ["unix", "iso", "%Y-%m-%d %H:%M:%S"])
def test_records_of_a_parquet_file_read_by_pandas_type_as_its_ingest(tmp_path, time_format):
    """RecordReader given ``pd.read_parquet`` of a file gives the rows the file's ingest gives: a timestamp
    time column (tz-aware or naive: UTC) read in time_format (every record was bad_time but for iso), and
    an int id column with a missing value (float64 in pandas) hashed from "123", not "123.0" (another key)."""
    from rapids_engage.ingest import RecordReader

    ts = pd.to_datetime([1_700_000_000, 1_700_003_600, 1_700_090_000], unit="s", utc=True)
    frame = pd.DataFrame({"id": [7.0, 8.0, 9.0], "user": [123.0, None, 45.0], "ts": ts.tz_convert("Europe/Paris"),
                          "clicked": [1, 0, 1], "likes": [2.0, 0.0, 1.0]})
    small = spec(format="parquet", time_format=time_format, numeric=[], categorical=[], text=[])
    for name, part in (("paris", frame), ("naive", frame.assign(ts=ts.tz_localize(None)))):
        part.to_parquet(tmp_path / f"{name}.parquet", index=False)
        _, ingested, _ = run(tmp_path, tmp_path / f"{name}.parquet", small, f"o{name}")
        rows, rejected = RecordReader(small, labelled=True).read(pd.read_parquet(tmp_path / f"{name}.parquet"))
        assert rejected.empty
        assert rows["raw_id"].tolist() == ["7", "8", "9"] and rows["event_time"].tolist() == [1_700_000_000, 1_700_003_600, 1_700_090_000]
        ingested = ingested.drop(columns=["day"]).sort_values("event_time").reset_index(drop=True)
        pd.testing.assert_frame_equal(rows.reset_index(drop=True)[list(ingested.columns)], ingested, check_dtype=False)


def test_records_of_a_filtered_pandas_frame_are_those_rows_of_the_whole_frame():
    """A frame of some rows of a file (its index not 0..n-1: a filter, a slice) gives those rows as the whole
    frame gives them: its float and time columns' text kept to its own rows (mutation round 6: the converted
    columns were aligned on positions 0..n-1, so the rows took other rows' ids and times, or none)."""
    from rapids_engage.ingest import RecordReader

    ts = pd.to_datetime([1_700_000_000, 1_700_003_600, 1_700_090_000, 1_700_100_000], unit="s", utc=True)
    frame = pd.DataFrame({"id": [7.0, 8.0, 9.0, 10.0], "user": [123.0, None, 45.0, 6.0], "ts": ts,
                          "clicked": [1, 0, 1, 1], "likes": [2.0, 0.0, 1.0, 3.0]})
    reader = RecordReader(spec(format="parquet", time_format="unix", numeric=[], categorical=[], text=[]), labelled=True)
    whole, _ = reader.read(frame)
    some = frame[frame["clicked"] == 1].iloc[1:]  # index 2, 3
    rows, rejected = reader.read(some)
    assert rejected.empty and rows["raw_id"].tolist() == ["9", "10"]
    pd.testing.assert_frame_equal(rows.reset_index(drop=True), whole.iloc[2:].reset_index(drop=True))


def test_integral_float_ids_read_as_the_integer_in_jsonl_parquet_and_records(tmp_path):
    """JSONL ``123.0`` (pandas writes an int id column with a missing value as floats) is the id ``123``,
    the key of ``123``, as parquet and record input read it (``"123.0"`` was another key); floats of
    10 digits and more were ``1.234567e+10`` in parquet; a non-integral float id reads as parquet reads it."""
    from rapids_engage.ingest import RecordReader

    users = [7.0, 7, 12345670000.0, 12345670000, 2.5, None]
    small = spec(numeric=[], categorical=[], text=[])
    rows = [{"id": f"j{i}", "user": u, "ts": 1600000000, "clicked": 1, "likes": 1} for i, u in enumerate(users)]
    path = write(tmp_path / "t.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    _, jl, _ = run(tmp_path, path, dataclasses.replace(small, format="jsonl"), "j")
    ids = [f"j{i}" for i in range(len(users))]
    want = [*hash_strings(["7", "7", "12345670000", "12345670000", "2.5"]).tolist(), None]
    assert by_id(jl, ids).user.astype(object).where(lambda s: s.notna(), None).tolist() == want
    floats = pd.DataFrame(rows).assign(user=[u if u is None else float(u) for u in users])
    floats.to_parquet(tmp_path / "t.parquet", index=False)
    _, pq_frame, _ = run(tmp_path, tmp_path / "t.parquet", dataclasses.replace(small, format="parquet"), "p")
    pd.testing.assert_series_equal(by_id(pq_frame, ids).user, by_id(jl, ids).user)
    got, rejected = RecordReader(small, labelled=True).read(rows)
    assert rejected.empty and got["user"].astype(object).where(lambda s: s.notna(), None).tolist() == want


#: Float list items and their text: a float column's (``float_text``), a null item none.
FLOAT_ITEMS = {12345670000.0: "12345670000", 7.0: "7", -0.0: "0", 1e-7: "1e-7", 1.5: "1.5", 2.0**53: "9.007199254740992e+15",
               1e16: "1e+16", float("nan"): "nan", None: "", 123456789012.0: "123456789012"}
#: The same for float32 items: values a float32 holds, in its own text (a float32 column's).
FLOAT32_ITEMS = {7.0: "7", -0.0: "0", 1e-7: "1e-7", 1.5: "1.5", 2.0**24: "16777216", 1e16: "1e+16", float("nan"): "nan", None: ""}


@pytest.mark.parametrize("list_type", [pa.list_(pa.float64()), pa.large_list(pa.float64()), pa.list_(pa.float32())])
def test_float_list_items_read_as_float_columns_in_jsonl_parquet_and_records(tmp_path, list_type):
    """The float items of a list / explode column give one text, hence one key, from JSONL, parquet and
    records: a float column's (an integral float below 2**53 as the integer, any other as arrow prints it);
    a null item is no item. Parquet items were arrow's cast (``1.234567e+10``, ``-0``: another key than
    the JSONL record served), JSONL's Python's (``1e-07``, ``9007199254740992.0``), and a parquet list
    with a null item was null: no item at all (``bad_explode_token``). A slice of a list array (a record
    batch's) reads as those rows of the whole."""
    from rapids_engage.ingest import RecordReader
    from rapids_engage.ingest.read_parquet import arrow_text

    items = FLOAT32_ITEMS if list_type.value_type == pa.float32() else FLOAT_ITEMS
    sp = spec(numeric=[], categorical=[], text=[], item=None, lists=["tags"], explode=ExplodeSpec(column="imps", item="news"))
    rows = [{"id": "r0", "user": "u", "ts": 1600000000, "clicked": 1, "likes": 1, "imps": list(items), "tags": list(items)}]
    want_tags = [" ".join(items.values())]
    want_news = hash_strings([t for t in items.values() if t]).tolist()
    path = write(tmp_path / "t.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    _, jl, _ = run(tmp_path, path, dataclasses.replace(sp, format="jsonl"), "j")
    types = {"imps": list_type, "tags": list_type, "id": pa.string(), "user": pa.string()}
    pq.write_table(pa.table({k: pa.array([r[k] for r in rows], types.get(k)) for k in rows[0]}), tmp_path / "t.parquet")
    _, pf, q = run(tmp_path, tmp_path / "t.parquet", dataclasses.replace(sp, format="parquet"), "p")
    got, rejected = RecordReader(sp, labelled=True).read(rows)
    assert q.empty and rejected.empty
    for frame in (jl, pf, got):
        assert frame.tags.tolist() == want_tags * len(want_news) and frame.news.tolist() == want_news
    lists = pa.array([[1.5, None], None, [], [1e10, 2.5], [3.0]], list_type)
    whole = arrow_text(lists, "|", None)[0].tolist()
    assert whole == ["1.5|", "", "", "10000000000|2.5", "3"]
    assert [arrow_text(lists.slice(i, 2), "|", None)[0].tolist() for i in range(4)] == [whole[i:i + 2] for i in range(4)]


@pytest.mark.parametrize("item_type", [pa.float64(), pa.float32()])
def test_records_of_a_parquet_file_with_list_columns_read_by_pandas_type_as_its_ingest(tmp_path, item_type):
    """``pd.read_parquet`` gives a parquet list as a numpy array per row: RecordReader of that frame (and of
    its ``to_dict("records")``) gives the rows of the file's ingest, float32 items in their own text
    (``1.1``), a null item none (pandas gives a NaN: a frame's NaN item is none, as a NaN value is missing);
    ``str`` of the arrays gave ``['a' 'b']`` and the items ``[1.1``, ``12345670000.]``: other keys."""
    from rapids_engage.ingest import RecordReader

    sp = spec(format="parquet", numeric=[], categorical=[], text=[], item=None, lists=["tags"],
              explode=ExplodeSpec(column="imps", item="news"))
    imps = pa.array([[1.1, 12345670000.0, -0.0], [2.5, None], [7.0]], pa.list_(item_type))
    pq.write_table(pa.table({"id": ["r0", "r1", "r2"], "user": ["u", "v", "w"], "ts": [1600000000] * 3, "clicked": [1, 0, 1],
                             "likes": [1, 2, 3], "imps": imps, "tags": [["a", "b"], None, ["c", None]]}), tmp_path / "t.parquet")
    _, ingested, _ = run(tmp_path, tmp_path / "t.parquet", sp, "p")
    assert len(ingested) == 5 and sorted(set(ingested.tags)) == ["", "a b", "c "]  # a null item is none
    frame = pd.read_parquet(tmp_path / "t.parquet")
    reader = RecordReader(sp, labelled=True)
    order = ["raw_id", "news"]
    want = ingested.drop(columns=["day"]).sort_values(order).reset_index(drop=True)
    for records in [frame] + ([frame.to_dict("records")] if item_type == pa.float64() else []):  # a dict's float32: float64
        rows, rejected = reader.read(records)
        assert rejected.empty
        got = rows.reset_index(drop=True)[list(want.columns)].sort_values(order).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want, check_dtype=False)


@pytest.mark.parametrize("time_format", ["unix", "iso", "%Y-%m-%d %H:%M:%S"])
def test_records_as_dicts_with_datetimes_type_as_a_frame_does(time_format):
    """A list of dicts holding ``pd.Timestamp`` / ``datetime`` / ``date`` / ``np.datetime64`` times gives the
    rows a frame of the same times gives (the UTC instant in time_format; naive = UTC); they were ``str()``:
    local ISO text, bad_time for unix or a pattern."""
    import datetime as dt

    from rapids_engage.ingest import RecordReader

    stamp = pd.Timestamp(1_700_000_000, unit="s", tz="UTC")
    times = [stamp.tz_convert("Europe/Paris"), stamp.tz_convert("Europe/Paris").to_pydatetime(),
             dt.datetime(2023, 11, 14, 22, 13, 20), np.datetime64(1_700_000_000, "s"), np.datetime64(1_700_000_000 * 10**9, "ns")]
    small = spec(time_format=time_format, numeric=[], categorical=[], text=[])
    records = [{"id": f"a{i}", "user": "u", "clicked": 1, "likes": 1, "ts": t} for i, t in enumerate(times)]
    reader = RecordReader(small, labelled=True)
    rows, rejected = reader.read(records)
    framed, _ = reader.read(pd.DataFrame(records[:1]))
    assert rejected.empty and framed.event_time.tolist() == [1_700_000_000]
    assert rows.event_time.tolist() == [1_700_000_000] * len(times)
    day, _ = reader.read([records[0] | {"ts": dt.date(2023, 11, 14)}])
    assert day.event_time.tolist() == [1_699_920_000]


#: Each list type arrow gives from a parquet file besides list (pyarrow's stored arrow schema keeps the view and
#: fixed-size types; written without it they read back as lists), and a list of dictionary items (kept for strings,
#: float dictionaries read back as floats).
PARQUET_LIST_TYPES = {"fixed_size_list": lambda t: pa.list_(t, 2), "list_view": pa.list_view,
              "large_list_view": pa.large_list_view, "dictionary_items": lambda t: pa.list_(pa.dictionary(pa.int32(), t))}


@pytest.mark.parametrize("kind", list(PARQUET_LIST_TYPES))
@pytest.mark.parametrize("item_type", [pa.float64(), pa.string()])
def test_every_parquet_list_type_reads_as_a_list(tmp_path, kind, item_type):
    """A fixed_size_list, list_view, large_list_view or dictionary-item list column of a parquet file gives the
    ``lists`` text and ``explode`` items of the same values as a list: fixed_size_list and the views were
    JSON text (``[12000000000.0, 2.5]``: the explode items ``[12000000000.0,`` and ``2.5]``, ``<col>_len``
    of the text's spaces). A slice (a record batch's) reads as those rows of the whole."""
    from rapids_engage.ingest.read_parquet import arrow_text

    values = [[1.2e10, 2.5], None, [3.0, None], [7.0, -0.0]]
    if item_type == pa.string():
        values = [None if v is None else [None if x is None else f"n{x}" for x in v] for v in values]
    sp = spec(format="parquet", numeric=[], categorical=[], text=[], item=None, lists=["tags"],
              explode=ExplodeSpec(column="imps", item="news"))

    def ingest(list_type, name):
        lists = pa.array(values, list_type)
        pq.write_table(pa.table({"id": [f"r{i}" for i in range(4)], "user": ["u"] * 4, "ts": [1600000000] * 4,
                                 "clicked": [1] * 4, "likes": [1] * 4, "imps": lists, "tags": lists}), tmp_path / f"{name}.parquet")
        assert pq.read_schema(tmp_path / f"{name}.parquet").field("imps").type.equals(lists.type) or kind == "dictionary_items"
        return run(tmp_path, tmp_path / f"{name}.parquet", sp, name)[1:], arrow_text(lists, "|", None)[0].tolist(), lists

    (want, wq), want_text, _ = ingest(pa.list_(item_type), "list")
    (got, q), text, lists = ingest(PARQUET_LIST_TYPES[kind](item_type), kind)
    cols = ["line", "column", "reason"]
    assert q[cols].equals(wq[cols]) and wq.line.tolist() == [2] and len(want) == 5  # the null list's row: no item
    pd.testing.assert_frame_equal(got, want)
    assert text == want_text
    assert [arrow_text(lists.slice(i, 2), "|", None)[0].tolist() for i in range(3)] == [text[i:i + 2] for i in range(3)]


@pytest.mark.parametrize("list_type", [pa.list_(pa.list_(pa.float64())), pa.large_list(pa.list_(pa.float64(), 1)),
                                       pa.list_view(pa.large_list_view(pa.list_(pa.float64())))])
def test_a_parquet_list_of_lists_reads_as_the_items_of_its_lists_as_jsonl_and_records(tmp_path, list_type):
    """A parquet list of lists gives the items of its inner lists, in order, as a JSONL list of lists and
    records (a dict's nested list, a ``pd.read_parquet`` frame's arrays) do: it was JSON text, so the explode
    items were ``[[12000000000.0],`` and ``[2.5]]`` and ``<col>_len`` the text's spaces + 1."""
    from rapids_engage.ingest import RecordReader

    nested = [[[1.2e10], [2.5]], [[3.0], [1.2e10]]]
    if list_type.value_type.value_type != pa.float64():  # a view of lists: in a list
        nested = [[[v] for v in row] for row in nested]
    sp = spec(numeric=[], categorical=[], text=[], item=None, lists=["tags"], explode=ExplodeSpec(column="imps", item="news"))
    rows = [{"id": f"r{i}", "user": "u", "ts": 1600000000, "clicked": 1, "likes": 1, "imps": v, "tags": v} for i, v in enumerate(nested)]
    _, jl, _ = run(tmp_path, write(tmp_path / "t.jsonl", "".join(json.dumps(r) + "\n" for r in rows)), dataclasses.replace(sp, format="jsonl"), "j")
    types = {"imps": list_type, "tags": list_type}
    pq.write_table(pa.table({k: pa.array([r[k] for r in rows], types.get(k)) for k in rows[0]}), tmp_path / "t.parquet")
    parquet = dataclasses.replace(sp, format="parquet")
    _, pf, q = run(tmp_path, tmp_path / "t.parquet", parquet, "p")
    assert q.empty and jl.tags.tolist() == ["12000000000 2.5"] * 2 + ["3 12000000000"] * 2
    assert jl.news.tolist() == hash_strings(["12000000000", "2.5", "3", "12000000000"]).tolist()
    pd.testing.assert_frame_equal(pf, jl)
    for records in (rows, pd.read_parquet(tmp_path / "t.parquet")):
        got, rejected = RecordReader(parquet, labelled=True).read(records)
        assert rejected.empty and got.news.tolist() == jl.news.tolist() and got.tags.tolist() == jl.tags.tolist()
