"""Event-log labelling: ``python bench/event_log.py [--rows 300000] [--ingest-workers 1] [--work DIR] [--json FILE]``.

Writes a RetailRocket-like log of about ``--rows`` events (view / addtocart / transaction, Unix-millisecond times,
Zipf item popularity; a visitor's keenness and an item's price, category and availability at the view drive carts,
minutes after the view, and purchases, an hour or so after the cart; 30 % of views repeat a pair's earlier view) over
4 weeks as ``events-week{1..4}.csv`` plus ``items.csv`` (category, price) and ``item_properties.csv`` (RetailRocket's
long form, ``timestamp,itemid,property,value``: a weekly snapshot of each item's ``available``, which flips over time,
its ``categoryid`` and another property), and ``shop.yaml``: README's "Event logs" config for them (``available`` joined
as of each view), which
``python -m rapids_engage.pipeline --config <work>/shop.yaml --out ...`` runs. Then ingests the log twice, each in a
fresh process on ``--ingest-workers`` processes (``data.ingest_workers``): as a plain table (``events`` unset: every row
kept) and labelled (``data.table.events``), and prints
seconds, rows/s and peak RSS of each. Writes the numbers to ``bench/results/event_log-<rows>.json`` (``--json FILE``:
there instead). Nothing here asserts.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from rapids_engage.cli import positive_int, seed_int, writable_dir
from rapids_engage.ingest.bench import device, fresh_process_json, workers_arg
from rapids_engage.report import write_json

T0 = 1_433_116_800_000  # 2015-06-01 UTC, ms
DAY = 86_400_000
WEEKS = 4
NAMES = np.array(["view", "addtocart", "transaction"])
CONFIG = """\
data:
  source: table
  path: {work}/events-week*.csv
  table:
    format: csv
    header: true
    time: timestamp
    time_format: unix_ms
    row_id: [visitorid, itemid, timestamp]
    user: visitorid
    item: itemid
    events: {{column: event, anchor: view, horizon_hours: 24, targets: {{cart: addtocart, buy: transaction}}}}
    join:
      - {{path: {work}/items.csv, format: csv, header: true, key: itemid, keep: [categoryid, price]}}
      - {{path: {work}/item_properties.csv, format: csv, header: true, key: itemid, time: timestamp, property: property,
         value: value, keep: [available]}}
    categorical: [categoryid]
    numeric: [price, available]
split: {{valid_hours: 72, gap_hours: 24}}
features:
  target_encoding: {{keys: [[visitorid], [itemid], [categoryid], [visitorid, categoryid]]}}
  counts: [[visitorid], [itemid]]
  history: {{keys: [[visitorid], [visitorid, categoryid]]}}
train: {{targets: [cart, buy]}}
"""


def _items(rng: np.random.Generator, n_items: int, out: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Write ``items.csv`` and ``item_properties.csv``; returns each item's appeal (cheap, some categories), and its
    weekly snapshots' times and ``available`` (items x weeks: snapshot ``w`` in the day before week ``w`` starts; an
    item's availability flips at a snapshot with probability 0.2)."""
    cat = rng.integers(0, 300, n_items)
    price = np.round(np.exp(rng.normal(3.5, 1.0, n_items)), 2)
    ids = np.arange(n_items).astype(str)
    table = pa.table({"itemid": ids, "categoryid": cat.astype(str), "price": price})
    pcsv.write_csv(table, out / "items.csv", pcsv.WriteOptions(quoting_style="none"))
    flips = rng.random((n_items, WEEKS)) < 0.2
    flips[:, 0] = rng.random(n_items) < 0.2  # the first snapshot: 80 % available
    avail = 1 - np.cumsum(flips, axis=1) % 2
    at = T0 - DAY + np.arange(WEEKS) * 7 * DAY + rng.integers(0, DAY, (n_items, WEEKS))
    item, week = np.repeat(np.arange(n_items), WEEKS), np.tile(np.arange(WEEKS), n_items)
    snapshots = [(at.ravel(), avail.ravel().astype(str), "available"), (at[:, 0], cat.astype(str), "categoryid"),
                 (at.ravel() + 1, np.char.add("n", (item * 7 + week).astype(str)), "888")]  # 888: not joined
    rows = pa.table({"timestamp": np.concatenate([t for t, _, _ in snapshots]),
                     "itemid": np.concatenate([ids[item], ids, ids[item]]),
                     "property": np.concatenate([np.full(len(t), name) for t, _, name in snapshots]),
                     "value": np.concatenate([v for _, v, _ in snapshots])})
    rows = rows.take(pa.array(np.argsort(rows["timestamp"].to_numpy(), kind="stable")))
    pcsv.write_csv(rows, out / "item_properties.csv", pcsv.WriteOptions(quoting_style="none"))
    return -0.5 * (np.log(price) - 3.5) + np.where(cat % 7 == 0, 0.8, 0.0), at, avail


def _available(at: np.ndarray, avail: np.ndarray, item: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Each view's item availability as of the view (its latest snapshot strictly before it; 1 before any)."""
    last = (at[item] < t[:, None]).sum(axis=1) - 1  # snapshots are in time order per item
    return np.where(last >= 0, avail[item, np.maximum(last, 0)], 1)


def _views(rng: np.random.Generator, n_views: int, n_items: int, n_visitors: int) -> tuple[np.ndarray, ...]:
    """(visitor, item, time) of the views: popular items (Zipf), busy visitors (Pareto), 30 % repeated pairs."""
    n_first = int(n_views * 0.7)
    rank = rng.zipf(1.3, n_first * 2)
    item = rank[rank <= n_items][:n_first] - 1
    item = np.concatenate([item, rng.integers(0, n_items, n_first - len(item))])
    item = rng.permutation(n_items)[item]  # popular items are any ids
    visitor = np.minimum((rng.pareto(1.2, n_first) * n_visitors / 20).astype(np.int64), n_visitors - 1)
    t = T0 + rng.integers(0, WEEKS * 7 * DAY, n_first)
    rep = rng.integers(0, n_first, n_views - n_first)
    return (np.concatenate([visitor, visitor[rep]]), np.concatenate([item, item[rep]]),
            np.concatenate([t, t[rep] + rng.integers(1, DAY, len(rep))]))


def write_log(rows: int, out: Path, seed: int = 0) -> dict[str, int]:
    """Write the log's files into ``out``; returns its counts by event type."""
    rng = np.random.default_rng(seed)
    n_items, n_visitors = max(2000, int(20 * rows**0.5)), max(1000, rows // 12)
    appeal, at, avail = _items(rng, n_items, out)
    keen = rng.normal(0, 1, n_visitors)
    n_views = int(rows * 0.92)
    visitor, item, t = _views(rng, n_views, n_items, n_visitors)
    appeal = appeal[item] + np.where(_available(at, avail, item, t) == 1, 0.3, -1.0)
    carted = rng.random(n_views) < 1 / (1 + np.exp(3.2 - 0.9 * keen[visitor] - appeal))
    ct = t[carted] + rng.exponential(20 * 60_000, carted.sum()).astype(np.int64) + 1
    cv, ci = visitor[carted], item[carted]
    bought = rng.random(len(ct)) < 0.3 + 0.2 * (keen[cv] > 1)
    bt = ct[bought] + rng.exponential(3_600_000, bought.sum()).astype(np.int64) + 1
    kind = np.concatenate([np.zeros(n_views, np.int8), np.ones(len(ct), np.int8), np.full(len(bt), 2, np.int8)])
    ts, vis, itm = np.concatenate([t, ct, bt]), np.concatenate([visitor, cv, cv[bought]]), np.concatenate([item, ci, ci[bought]])
    txn = np.concatenate([np.full(n_views + len(ct), -1), np.arange(len(bt))])
    keep = ts < T0 + WEEKS * 7 * DAY
    order = np.argsort(ts[keep], kind="stable")
    ts, vis, itm, kind, txn = (a[keep][order] for a in (ts, vis, itm, kind, txn))
    week = (ts - T0) // (7 * DAY)
    for w in range(WEEKS):
        m = week == w
        table = pa.table({"timestamp": ts[m], "visitorid": vis[m], "event": NAMES[kind[m]], "itemid": itm[m],
                          "transactionid": pa.array(txn[m], pa.int64(), mask=txn[m] < 0)})
        pcsv.write_csv(table, out / f"events-week{w + 1}.csv", pcsv.WriteOptions(quoting_style="none"))
    return {name: int((kind == i).sum()) for i, name in enumerate(NAMES)}


#: Run by a fresh ``python -c`` (its own peak RSS): ingest the log (labelled, or as a plain table) and print, as JSON,
#: seconds, rows out and peak RSS.
INGEST = """
import json, shutil, sys, time
from pathlib import Path
from rapids_engage.config import load_config
from rapids_engage.ingest import ingest_table
from rapids_engage.ingest.bench import own_peak_rss_mib
config, out, labelled, workers = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
cfg = load_config(config)
spec = cfg.data.table
if not labelled:
    spec.events = None
shutil.rmtree(out, ignore_errors=True)
start = time.perf_counter()
result = ingest_table(cfg.data.path, Path(out), spec, workers=workers if workers == "auto" else int(workers))
seconds = time.perf_counter() - start
print(json.dumps({"seconds": round(seconds, 2), "rows_out": result.output_rows,
                  "peak_rss_mib": round(own_peak_rss_mib())}))
"""


def _ingest(config: Path, out: Path, labelled: bool, workers: int | str = 1) -> dict:
    """The :data:`INGEST` of ``config`` into ``out`` in a fresh process on ``workers`` processes; its numbers."""
    return fresh_process_json(INGEST, [str(config), str(out), "1" if labelled else "0", str(workers)],
                              f"the ingest of {config}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=positive_int, default=300_000, help="events, about")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--ingest-workers", type=workers_arg, default=1,
                   help="ingest processes: a number >= 1 or auto (data.ingest_workers; default 1)")
    p.add_argument("--work", default=tempfile.gettempdir(), help="folder of the log, its config and the ingests")
    p.add_argument("--json", help="results file (default: bench/results/event_log-<rows>.json)")
    args = p.parse_args(argv)
    work = writable_dir(p, "--work", Path(args.work) / "event_log").resolve()
    out = Path(args.json) if args.json else Path(__file__).parent / "results" / f"event_log-{args.rows}.json"
    writable_dir(p, "--json", out.parent)
    counts = write_log(args.rows, work, args.seed)
    events = sum(counts.values())
    (work / "shop.yaml").write_text(CONFIG.format(work=work))
    print(f"{events:,} events ({', '.join(f'{n} {k}' for k, n in counts.items())}) in {work}", flush=True)
    runs = {}
    for name, labelled in (("plain", False), ("events", True)):
        run = _ingest(work / "shop.yaml", work / f"ingest-{name}", labelled, args.ingest_workers)
        run["rows_per_s"] = round(events / run["seconds"]) if run["seconds"] else None
        runs[name] = run
        print(f"{name:>6}: {run['seconds']:8.2f} s  {run['rows_per_s']:>10,} events/s  {run['rows_out']:>11,} rows out  "
              f"peak RSS {run['peak_rss_mib']:,} MiB", flush=True)
    write_json(out, {"device": device(), "ingest_workers": args.ingest_workers, "rows": events, "events": counts, "runs": runs,
                     "config": str(work / "shop.yaml")})
    print(f"-> {out}\nthe whole run: python -m rapids_engage.pipeline --config {work / 'shop.yaml'} --out {work / 'run'}")


if __name__ == "__main__":
    main()
