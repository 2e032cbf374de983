"""Throughput and memory check of the raw ingest (not a test): ``python -m rapids_engage.ingest.bench [--mb 200] [--files N] [--gzip] [--ingest-workers N]``.

Generates ``--files`` raw RecSys-like files (default 1) of about ``--mb`` MB each (uncompressed, within a row; random,
valid rows plus 0.1% corrupt ones), ingests them in a fresh subprocess and prints
rows/s, MB/s and the subprocess's peak RSS (its own ``VmHWM``: the ingest
alone, not the generator), its CPU seconds, and its worker processes' largest RSS and CPU seconds (sampled
every 0.1 s). ``--input FILE`` ingests an existing raw file
instead (nothing generated, the file is kept); ``--json FILE`` also writes the
numbers there. Scratch data goes to a temporary directory under ``--work``
(default: the system temp dir) and is deleted at the end.
See ``bench/README.md`` for recorded results.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..atomic import write_text
from ..cli import positive_int, seed_int, writable_dir
from ..schema import RAW_COLUMNS

T0 = 1_612_396_800  # 2021-02-04T00:00:00Z
DAYS = 21
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


def _hex(rng: np.random.Generator, n: int, pool: int | None = None) -> pa.Array:
    """``n`` random 32-char lowercase hex ids (drawn from ``pool`` distinct ones if given)."""
    k = pool or n
    chars = _HEX[rng.integers(0, 16, (k, 32), dtype=np.uint8)]
    strings = pa.Array.from_buffers(pa.string(), k, [None, pa.py_buffer(np.arange(0, 32 * k + 1, 32, dtype=np.int32)),
                                                     pa.py_buffer(chars)])
    return strings if pool is None else strings.take(pa.array(rng.integers(0, pool, n)))


def _ints(rng: np.random.Generator, lo: int, hi: int, n: int) -> pa.Array:
    return pc.cast(pa.array(rng.integers(lo, hi, n)), pa.string())


def _chunk(rng: np.random.Generator, n: int, token_pool: pa.Array) -> bytes:
    """``n`` newline-terminated raw lines (24 fields), 0.1% of them with a separator dropped."""
    bools = lambda p: pa.array(rng.random(n) < p).cast(pa.string())  # noqa: E731 ("true" / "false")
    empty = pa.array([""] * n)

    def eng(p: float) -> pa.Array:
        return pc.if_else(pa.array(rng.random(n) < p), _ints(rng, T0, T0 + DAYS * 86400, n), empty)

    cols = {
        "text_tokens": token_pool.take(pa.array(rng.integers(0, len(token_pool), n))),
        "hashtags": pc.if_else(pa.array(rng.random(n) < 0.2), _hex(rng, n, 5000), empty),
        "tweet_id": _hex(rng, n),
        "present_media": pa.array(rng.choice(["", "", "Photo", "Video", "Photo\tPhoto"], n)),
        "present_links": empty,
        "present_domains": empty,
        "tweet_type": pa.array(rng.choice(["TopLevel", "Retweet", "Quote", "Reply"], n)),
        "language": _hex(rng, n, 60),
        "tweet_timestamp": _ints(rng, T0, T0 + DAYS * 86400, n),
        "engaged_with_user_id": _hex(rng, n, 100_000),
        "engaged_with_user_follower_count": _ints(rng, 0, 10**7, n),
        "engaged_with_user_following_count": _ints(rng, 0, 10**5, n),
        "engaged_with_user_is_verified": bools(0.1),
        "engaged_with_user_account_creation": _ints(rng, 1_200_000_000, T0, n),
        "engaging_user_id": _hex(rng, n, 200_000),
        "engaging_user_follower_count": _ints(rng, 0, 10**4, n),
        "engaging_user_following_count": _ints(rng, 0, 10**4, n),
        "engaging_user_is_verified": bools(0.05),
        "engaging_user_account_creation": _ints(rng, 1_200_000_000, T0, n),
        "engagee_follows_engager": bools(0.5),
        "reply_timestamp": eng(0.03),
        "retweet_timestamp": eng(0.09),
        "retweet_with_comment_timestamp": eng(0.007),
        "like_timestamp": eng(0.4),
    }
    parts = [cols[c] for c in RAW_COLUMNS]
    parts[-1] = pc.binary_join_element_wise(parts[-1], empty, "\n")  # each line ends with "\n"
    lines = pc.binary_join_element_wise(*parts, "\x01")
    bad = np.zeros(n, bool)
    bad[rng.integers(0, n, max(1, n // 1000))] = True  # 0.1% corrupt rows: 23 fields
    lines = pc.if_else(pa.array(bad), pc.replace_substring(lines, "\x01", "", max_replacements=1), lines)
    offsets = np.frombuffer(lines.buffers()[1], np.int32)[lines.offset : lines.offset + n + 1]
    return lines.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]]


#: Rows per generated chunk, at most.
CHUNK_ROWS = 50_000
#: A first guess of the bytes of a raw row, for a first chunk of ``PROBE_ROWS`` at most (then the mean of those written).
ROW_BYTES, PROBE_ROWS = 400, 1_000


def generate(path: Path, mb: float, seed: int = 0, gz: bool = False) -> tuple[int, int]:
    """Write about ``mb`` MB (uncompressed) of raw rows to ``path`` (a row more at most: each chunk is
    sized by the mean row so far, so a small ``mb`` is not a whole chunk); returns (rows, uncompressed bytes)."""
    rng = np.random.default_rng(seed)
    token_pool = pa.array(["\t".join(map(str, rng.integers(100, 30000, rng.integers(8, 60)))) for _ in range(2000)])
    rows, size, goal = 0, 0, mb * 1e6
    opener = (lambda p: gzip.open(p, "wb", compresslevel=1)) if gz else (lambda p: open(p, "wb"))
    with opener(path) as out:
        while size < goal:
            per_row = size / rows if rows else ROW_BYTES
            n = int(min(CHUNK_ROWS if rows else PROBE_ROWS, max(1, (goal - size) // per_row)))
            data = _chunk(rng, n, token_pool)
            out.write(data)
            size += len(data)
            rows += n
    return rows, size


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else its architecture (``platform`` gives only that on Linux)."""
    try:
        with open("/proc/cpuinfo") as info:
            return next(x.split(":", 1)[1].strip() for x in info if x.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def device() -> str:
    """This machine in words, e.g. ``2-core CPU (AMD EPYC), 24 GB RAM, no GPU``."""
    cpu = cpu_model()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = "no GPU"
    if shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
        gpu = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else gpu
    return f"{os.cpu_count()}-core CPU ({cpu}), {mem:.0f} GB RAM, {gpu}"


def _ingest_child(paths: str, out: str, block_mb: int, workers: str) -> None:
    from .recsys import ingest_recsys

    cpu = time.process_time()
    res = ingest_recsys(paths.split(os.pathsep), out, block_size=block_mb << 20, workers=workers if workers == "auto" else int(workers))
    cpu = time.process_time() - cpu
    peak_mb = own_peak_rss_mib()
    print(json.dumps({"rows": res.input_rows, "ingested": res.ingested_rows, "quarantined": res.quarantined_rows,
                      "elapsed_s": res.elapsed_s, "peak_rss_mb": round(peak_mb, 1), "output_files": res.output_files,
                      "workers": res.workers, "main_cpu_s": round(cpu, 2)}))


def _worker_usage(proc: subprocess.Popen) -> tuple[float, float]:
    """(the largest RSS in MiB, the CPU seconds in all) of the processes below ``proc`` (its forkserver and
    workers), sampled every 0.1 s until ``proc`` ends (a process's last 0.1 s may be missed)."""
    import psutil

    peak, cpu = 0, {}
    parent = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            for child in parent.children(recursive=True):
                try:
                    peak = max(peak, child.memory_info().rss)
                    times = child.cpu_times()
                    cpu[child.pid] = times.user + times.system
                except psutil.Error:  # ended meanwhile
                    pass
        except psutil.Error:
            break
        time.sleep(0.1)
    return round(peak / 2**20, 1), round(sum(cpu.values()), 2)


def _raw_bytes(path: Path) -> int:
    """Uncompressed size of ``path`` in bytes (gzip files are read through)."""
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    if gz:
        size = 0
        with gzip.open(path, "rb") as f:
            while chunk := f.read(16 << 20):
                size += len(chunk)
        return size
    return path.stat().st_size


def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="ingest-bench-", dir=args.work) as tmp:
        gen_s = None
        if args.input:
            raws = [Path(args.input)]
        else:
            raws = [Path(tmp) / (f"raw-{i}.tsv" + (".gz" if args.gzip else "")) for i in range(args.files)]
            t = time.perf_counter()
            rows = sum(generate(raw, args.mb, seed=args.seed + i, gz=args.gzip)[0] for i, raw in enumerate(raws))
            gen_s = time.perf_counter() - t
            print(f"generated {rows:,} rows in {len(raws)} file(s), {sum(r.stat().st_size for r in raws):,} bytes on disk "
                  f"in {gen_s:.1f} s", flush=True)
        cmd = [sys.executable, "-m", "rapids_engage.ingest.bench", "--block-mb", str(args.block_mb),
               "--ingest-workers", str(args.ingest_workers), "--child", os.pathsep.join(map(str, raws)), str(Path(tmp) / "out")]
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        worker_rss, worker_cpu = _worker_usage(proc)
        stdout, stderr = proc.communicate()
        wall = time.perf_counter() - t
        if proc.returncode:
            sys.exit(f"ingest failed ({proc.returncode}):\n{stderr}")
        info = json.loads(stdout.strip().splitlines()[-1])
        raw = raws[0]
        disk_bytes = sum(r.stat().st_size for r in raws)
        raw_bytes = sum(_raw_bytes(r) for r in raws) if (args.gzip or args.input) else disk_bytes
        disk_mb, raw_mb = disk_bytes / 1e6, raw_bytes / 1e6
    secs = info["elapsed_s"]
    return {
        "device": device(),
        "input": "gzip" if raw.name.endswith(".gz") else "plain",
        "rows": info["rows"],
        "ingested_rows": info["ingested"],
        "quarantined_rows": info["quarantined"],
        "mb_asked": None if args.input else args.mb,
        "bytes_on_disk": disk_bytes,
        "bytes_uncompressed": raw_bytes,
        "mb_on_disk": round(disk_mb, 1),
        "mb_uncompressed": round(raw_mb, 1),
        "ingest_s": secs,
        "process_wall_s": round(wall, 1),
        "rows_per_s": round(info["rows"] / secs),
        "mb_per_s_on_disk": round(disk_mb / secs, 1),
        "mb_per_s_uncompressed": round(raw_mb / secs, 1),
        "peak_rss_mb": info["peak_rss_mb"],
        "peak_worker_rss_mb": worker_rss,
        "main_cpu_s": info["main_cpu_s"],  # CPU seconds of the ingest's own process (what stays serial, and its threads)
        "worker_cpu_s": worker_cpu,  # CPU seconds of its worker processes and their forkserver
        "files": len(raws),
        "ingest_workers": info["workers"],
        "output_files": info["output_files"],
        "block_mb": args.block_mb,
        "generate_s": None if gen_s is None else round(gen_s, 1),
        "python": platform.python_version(),
        "pyarrow": pa.__version__,
    }


def own_peak_rss_mib() -> float:
    """This process's own peak RSS in MiB: Linux's ``VmHWM``, not ``ru_maxrss``, which Linux keeps across fork and exec
    (a fresh child's is at least the peak of the process that started it: a bench that generated its data first
    overstated its ingest's peak); ``ru_maxrss`` where there is no ``/proc``."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fresh_process_json(code: str, args: list[str], what: str) -> dict:
    """Run ``code`` (a ``python -c`` script printing a JSON object as its last line) in a fresh process with ``args``:
    that object; SystemExit naming ``what`` and the child's last error line when it fails."""
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{what} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def workers_arg(value: str) -> int | str:
    """``--ingest-workers``: ``auto`` or a whole number >= 1."""
    return value if value == "auto" else positive_int(value)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=200, help="uncompressed MB to generate (default 200)")
    ap.add_argument("--files", type=positive_int, default=1, help="files to generate, each of --mb (default 1)")
    ap.add_argument("--gzip", action="store_true", help="generate gzip-compressed files")
    ap.add_argument("--block-mb", type=positive_int, default=64, help="ingest block size in MiB (default 64)")
    ap.add_argument("--ingest-workers", type=workers_arg, default="auto",
                    help="ingest processes: a number >= 1 or auto (default; as data.ingest_workers)")
    ap.add_argument("--seed", type=seed_int, default=0)
    ap.add_argument("--input", help="ingest this existing raw file instead of generating one")
    ap.add_argument("--work", help="parent of the scratch directory (default: the system temp dir)")
    ap.add_argument("--json", help="also write the results to this JSON file")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if not args.mb > 0:
        ap.error(f"argument --mb: expected MB > 0, got {args.mb:g}")
    if args.child:
        _ingest_child(*args.child, args.block_mb, str(args.ingest_workers))
        return
    if args.work is not None:  # made, as the other benches' --work, rather than tempfile's traceback
        args.work = str(writable_dir(ap, "--work", args.work))
    r = run(args)
    print(f"ingest ({r['input']}, {r['files']} file(s)): {r['rows']:,} rows ({r['quarantined_rows']:,} quarantined), {r['bytes_on_disk']:,} bytes on disk"
          f" ({r['bytes_uncompressed']:,} raw) in {r['ingest_s']:.1f} s -> {r['rows_per_s']:,} rows/s, "
          f"{r['mb_per_s_on_disk']:.1f} MB/s on disk ({r['mb_per_s_uncompressed']:.1f} MB/s raw); "
          f"peak RSS {r['peak_rss_mb']:,.0f} MiB; {r['output_files']} parquet files (process wall {r['process_wall_s']:.1f} s)"
          + (f"; on {r['ingest_workers']} worker processes (peak RSS: the main process's; a worker's at most "
             f"{r['peak_worker_rss_mb']:,.0f} MiB; CPU s: main {r['main_cpu_s']:.2f}, workers {r['worker_cpu_s']:.2f})"
             if r["ingest_workers"] > 1 else "; in process (1 worker)"))
    print(f"device: {r['device']}")
    if args.json:
        write_text(args.json, json.dumps(r, indent=1) + "\n")


if __name__ == "__main__":
    main()
