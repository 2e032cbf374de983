"""Throughput check of the raw ingest (not a test): ``python -m rapids_engage.ingest.bench [--mb 200] [--gzip]``.

Generates a raw RecSys-like file of about ``--mb`` MB (random, valid rows plus
0.1% corrupt ones), ingests it in a fresh subprocess and prints rows/s, MB/s and
the subprocess's peak RSS.
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..schema import RAW_COLUMNS


def _hex(rng: np.random.Generator, n: int, pool: int | None = None) -> pa.Array:
    vals = rng.integers(0, 2**63, (pool or n, 2), dtype=np.int64)
    strings = np.array([f"{a:016x}{b:016x}" for a, b in vals])
    return pa.array(strings if pool is None else strings[rng.integers(0, pool, n)])


def _chunk(rng: np.random.Generator, n: int, token_pool: np.ndarray) -> bytes:
    t0 = 1_612_396_800
    ints = lambda lo, hi: pa.array(rng.integers(lo, hi, n).astype(str))  # noqa: E731
    bools = lambda p: pa.array(np.where(rng.random(n) < p, "true", "false"))  # noqa: E731
    eng = lambda p: pa.array(np.where(rng.random(n) < p, (t0 + rng.integers(0, 21 * 86400, n)).astype(str), ""))  # noqa: E731
    hashtags = pa.array(np.where(rng.random(n) < 0.2, np.array(_hex(rng, n, 5000).to_pylist(), dtype=object), ""))
    cols = {
        "text_tokens": pa.array(token_pool[rng.integers(0, len(token_pool), n)]),
        "hashtags": hashtags,
        "tweet_id": _hex(rng, n),
        "present_media": pa.array(rng.choice(["", "", "Photo", "Video", "Photo\tPhoto"], n)),
        "present_links": pa.array([""] * n),
        "present_domains": pa.array([""] * n),
        "tweet_type": pa.array(rng.choice(["TopLevel", "Retweet", "Quote", "Reply"], n)),
        "language": _hex(rng, n, 60),
        "tweet_timestamp": ints(t0, t0 + 21 * 86400),
        "engaged_with_user_id": _hex(rng, n, 100_000),
        "engaged_with_user_follower_count": ints(0, 10**7),
        "engaged_with_user_following_count": ints(0, 10**5),
        "engaged_with_user_is_verified": bools(0.1),
        "engaged_with_user_account_creation": ints(1_200_000_000, t0),
        "engaging_user_id": _hex(rng, n, 200_000),
        "engaging_user_follower_count": ints(0, 10**4),
        "engaging_user_following_count": ints(0, 10**4),
        "engaging_user_is_verified": bools(0.05),
        "engaging_user_account_creation": ints(1_200_000_000, t0),
        "engagee_follows_engager": bools(0.5),
        "reply_timestamp": eng(0.03),
        "retweet_timestamp": eng(0.09),
        "retweet_with_comment_timestamp": eng(0.007),
        "like_timestamp": eng(0.4),
    }
    lines = pc.binary_join_element_wise(*[cols[c] for c in RAW_COLUMNS], "\x01").to_pylist()
    for i in rng.integers(0, n, max(1, n // 1000)):  # 0.1% corrupt rows
        lines[i] = lines[i].replace("\x01", "", 1)
    return ("\n".join(lines) + "\n").encode()


def generate(path: Path, mb: float, seed: int = 0, gz: bool = False) -> int:
    """Write about ``mb`` MB of raw rows to ``path``; returns the row count."""
    rng = np.random.default_rng(seed)
    token_pool = np.array(["\t".join(map(str, rng.integers(100, 30000, rng.integers(8, 60)))) for _ in range(2000)])
    rows, size = 0, 0
    opener = gzip.open if gz else open
    with opener(path, "wb") as out:
        while size < mb * 1e6:
            data = _chunk(rng, 50_000, token_pool)
            out.write(data)
            size += len(data)
            rows += 50_000
    return rows


def _ingest_child(path: str, out: str, block_mb: int) -> None:
    from .recsys import ingest_recsys

    res = ingest_recsys([path], out, block_size=block_mb << 20)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": res.input_rows, "ingested": res.ingested_rows, "quarantined": res.quarantined_rows,
                      "elapsed_s": res.elapsed_s, "peak_rss_mb": round(peak_mb, 1), "output_files": res.output_files}))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=float, default=200)
    ap.add_argument("--gzip", action="store_true")
    ap.add_argument("--block-mb", type=int, default=64)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _ingest_child(*args.child, args.block_mb)
        return
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / ("raw.tsv.gz" if args.gzip else "raw.tsv")
        t = time.perf_counter()
        rows = generate(raw, args.mb, gz=args.gzip)
        print(f"generated {rows:,} rows, {raw.stat().st_size / 1e6:.0f} MB on disk in {time.perf_counter() - t:.1f} s")
        cmd = [sys.executable, "-m", "rapids_engage.ingest.bench", "--block-mb", str(args.block_mb), "--child", str(raw), str(Path(tmp) / "out")]
        t = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t
        info = json.loads(out.stdout.strip().splitlines()[-1])
        size = raw.stat().st_size / 1e6
        print(f"ingest: {info['rows']:,} rows ({info['quarantined']:,} quarantined) in {info['elapsed_s']:.1f} s "
              f"-> {info['rows'] / info['elapsed_s']:,.0f} rows/s, {size / info['elapsed_s']:.1f} MB/s on disk; "
              f"peak RSS {info['peak_rss_mb']:.0f} MB; {info['output_files']} parquet files (process wall {wall:.1f} s)")


if __name__ == "__main__":
    main()
