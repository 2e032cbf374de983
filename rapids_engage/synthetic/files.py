"""The synthetic data's files: where each chunk's data and truth go, how they are written (canonical parquet
or the official RecSys 2021 text format) and the removal of an earlier run's leftovers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from ..atomic import remove_stale_partials, write_file
from ..schema import DTYPES, RAW_COLUMNS
from .ids import arrow_hex
from .spec import Step


def chunk_paths(out: Path, fmt: str, k: int, step: Step) -> tuple[Path, Path]:
    """(data file, truth file) of the ``k``-th chunk."""
    name = f"part-{k:05d}"
    truth = out / "truth" / f"day={step.date}" / f"{name}.parquet"
    if fmt == "raw":
        return out / "raw" / f"{name}.tsv", truth
    return out / "data" / f"day={step.date}" / f"{name}.parquet", truth


def canonical_schema() -> pa.Schema:
    """The Arrow schema of the canonical columns, with pandas metadata (Int64, str) attached."""
    template = pd.DataFrame({c: pd.Series([], dtype=DTYPES[c]) for c in RAW_COLUMNS})
    schema = pa.Schema.from_pandas(template, preserve_index=False)
    return pa.schema([pa.field(c, schema.field(c).type) for c in RAW_COLUMNS], metadata=schema.metadata)


def write_parquet(cols: dict[str, pa.Array], schema: pa.Schema, path: Path) -> None:
    table = pa.Table.from_arrays([cols[c] for c in RAW_COLUMNS], schema=schema)
    write_file(path, lambda p: pq.write_table(table, p))


def write_tsv(cols: dict[str, pa.Array], path: Path) -> None:
    """The official text format: ``\\x01``-separated fields, hex ids, true/false, "" = no engagement."""
    raw = dict(cols)
    for c in ("tweet_id", "engaged_with_user_id", "engaging_user_id"):
        raw[c] = arrow_hex(cols[c].to_numpy())
    table = pa.table({c: raw[c] for c in RAW_COLUMNS})
    options = pcsv.WriteOptions(include_header=False, delimiter="\x01", quoting_style="none")
    write_file(path, lambda p: pcsv.write_csv(table, str(p), options))



def remove_stale(out: Path, written: set[Path]) -> None:
    """Delete part files of an earlier run in this run's folders that this run did not write, and what killed
    runs left half-written."""
    remove_stale_partials(out)
    for sub, pattern in (("data", "part-*.parquet"), ("truth", "part-*.parquet"), ("raw", "part-*.tsv")):
        for f in (out / sub).rglob(pattern):
            if f not in written:
                f.unlink()

