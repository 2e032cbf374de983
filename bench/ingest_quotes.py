"""CSV ingest with stray quotes: ``python bench/ingest_quotes.py [--rows 200000] [--rates 0 0.01 0.05]``.

Per rate, writes a CSV of ``--rows`` rows (header ``id,user,ts,clicked,likes,score,lang,body``) where
that fraction of the lines holds a stray ``"`` opening a field that is never closed (mostly the
``body`` text, as in ``"27 inch screen``, else the ``lang`` or ``user`` field), and ``--quoted`` of
them a properly quoted text (commas, doubled quotes, some with a newline). Ingests it with
:func:`rapids_engage.ingest.ingest_table` (CPU, default read blocks) and prints the seconds, the rows/s
and two digests of the output, so that runs of two versions of the code on the same files can be
compared: of the rows (per day, sorted by ``row_id``) and the quarantine rows (sorted by line, detail
included), and of both in the order written. ``--gzip`` writes gzip
files. Writes the numbers to ``bench/results/ingest_quotes-<rows>[-gzip].json`` (``--json FILE``: there
instead; give one per checkout when comparing two). Nothing here asserts.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rapids_engage.cli import positive_int, seed_int, writable_dir
from rapids_engage.config import TableConfig, TargetSpec
from rapids_engage.ingest import ingest_table
from rapids_engage.ingest.bench import device
from rapids_engage.report import write_json

HEADER = ["id", "user", "ts", "clicked", "likes", "score", "lang", "body"]
SPEC = TableConfig(format="csv", time="ts", time_format="unix", row_id=["id"], user="user", item="id",
                   targets={"click": TargetSpec("clicked", "binary"), "like": TargetSpec("likes", "count")},
                   numeric=["score"], categorical=["lang"], text=["body"])
WORDS = np.array(["great", "screen", "battery", "price", "fast", "broken", "love", "return", "inch", "cable"])


def write_csv(path: Path, rows: int, rate: float, quoted: float, seed: int, gz: bool) -> int:
    """Write the file; returns the number of stray-quote lines."""
    rng = np.random.default_rng(seed)
    i = np.arange(rows)
    words = WORDS[rng.integers(0, len(WORDS), (rows, 3))]
    body = pd.Series([" ".join(w) for w in words.tolist()])
    frame = pd.DataFrame({"id": "x" + pd.Series(i).astype(str), "user": "u" + pd.Series(i % 997).astype(str),
                          "ts": (1_600_000_000 + i * 2).astype(str), "clicked": (i % 2).astype(str),
                          "likes": (i % 5).astype(str), "score": np.round(rng.random(rows), 3).astype(str),
                          "lang": rng.choice(["en", "de", "fr"], rows), "body": body})
    good = rng.random(rows) < quoted
    newline = good & (rng.random(rows) < 0.3)
    frame.loc[good, "body"] = '"' + body[good].str.replace(" ", ', ""', n=1) + '"" 15"" screen"'
    frame.loc[newline, "body"] = '"' + body[newline] + '\nsecond line of it"'
    stray = (rng.random(rows) < rate) & ~good
    where = rng.choice(["body"] * 7 + ["lang", "lang", "user"], rows)
    for col in ("body", "lang", "user"):
        at = stray & (where == col)
        frame.loc[at, col] = '"' + frame.loc[at, col]
    text = ",".join(HEADER) + "\n" + "\n".join(frame[HEADER].agg(",".join, axis=1)) + "\n"
    data = text.encode()
    path.write_bytes(gzip.compress(data, compresslevel=1) if gz else data)
    return int(stray.sum())


def digests(out: Path) -> tuple[str, str]:
    """sha256 (first 16 hex digits) of the output: (the rows of each day sorted by ``row_id`` and the
    quarantine rows sorted by line, the rows and the quarantine rows in the order written)."""
    content, order = hashlib.sha256(), hashlib.sha256()
    q = out / "quarantine.parquet"
    frames = [(str(d.relative_to(out)), pq.read_table(d).to_pandas()) for d in sorted((out / "data").glob("day=*"))]
    if q.exists():
        frames.append(("quarantine", pq.read_table(q).to_pandas().drop(columns=["file"])))
    for name, frame in frames:
        for h, f in ((order, frame), (content, frame.sort_values("line" if name == "quarantine" else "row_id"))):
            h.update(name.encode())
            h.update(pd.util.hash_pandas_object(f, index=False).values.tobytes())
    return content.hexdigest()[:16], order.hexdigest()[:16]


def run(rows: int, rate: float, quoted: float, seed: int, gz: bool, work: str | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="ingest-quotes-", dir=work) as tmp:
        path = Path(tmp) / ("events.csv.gz" if gz else "events.csv")
        strays = write_csv(path, rows, rate, quoted, seed, gz)
        t = time.perf_counter()
        result = ingest_table(path, Path(tmp) / "out", SPEC)
        secs = time.perf_counter() - t
        return {"rows": rows, "stray_rate": rate, "stray_lines": strays, "quoted": quoted, "gzip": gz,
                "mb_on_disk": round(path.stat().st_size / 1e6, 2), "ingest_s": round(secs, 3),
                "rows_per_s": round(rows / secs), "ingested_rows": result.ingested_rows,
                "quarantined_rows": result.quarantined_rows,
                **dict(zip(("digest", "order_digest"), digests(Path(tmp) / "out")))}


def fraction(text: str) -> float:
    """An argparse ``type``: a fraction of the lines in [0, 1] (``--rates 1 5`` meant as percent wrote
    stray quotes on every line, twice, without a word)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction of the lines in [0, 1], got {text}")
    return value


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=positive_int, default=200_000)
    ap.add_argument("--rates", type=fraction, nargs="+", default=[0.0, 0.01, 0.05], help="fractions of stray-quote lines")
    ap.add_argument("--quoted", type=fraction, default=0.0, help="fraction of lines with a properly quoted text")
    ap.add_argument("--gzip", action="store_true", help="write gzip files")
    ap.add_argument("--seed", type=seed_int, default=0)
    ap.add_argument("--work", help="parent of the scratch directory (default: the system temp dir)")
    ap.add_argument("--json", help="where the results go (default: bench/results/ingest_quotes-<rows>[-gzip].json)")
    args = ap.parse_args(argv)
    out = Path(args.json or Path(__file__).parent / "results" / f"ingest_quotes-{args.rows}{'-gzip' if args.gzip else ''}.json")
    writable_dir(ap, "--json", out.parent)
    if args.work is not None:
        writable_dir(ap, "--work", args.work)
    results = []
    for rate in args.rates:
        r = run(args.rows, rate, args.quoted, args.seed, args.gzip, args.work)
        results.append(r)
        print(f"rate {rate:g}: {r['rows']:,} rows ({r['stray_lines']:,} stray-quote lines, {r['quarantined_rows']:,} "
              f"quarantined), {r['mb_on_disk']:.1f} MB in {r['ingest_s']:.2f} s -> {r['rows_per_s']:,} rows/s; "
              f"digest {r['digest']} (in order: {r['order_digest']})", flush=True)
    info = {"device": device(), "python": platform.python_version(), "pyarrow": pa.__version__, "results": results}
    print(f"device: {info['device']}")
    write_json(out, info)
    print(f"-> {out}")


if __name__ == "__main__":
    main()
