#!/usr/bin/env bash
# Raw RecSys 2021 ingest at scale: generate a ~MB-sized raw file (default 5000 MB),
# ingest it on the CPU in a fresh process, report rows/s, MB/s and peak RSS.
#
#   bench/ingest_recsys.sh [MB] [extra args for python -m rapids_engage.ingest.bench, e.g. --gzip]
#
# Env: WORK (scratch parent, default /tmp; the scratch dir is deleted at the end),
#      PYTHON (default: python on PATH), RESULTS (default bench/results).
# Writes bench/results/ingest-<MB>mb[-gzip].json. Target: peak RSS of the ingest <= 3 GiB (ru_maxrss).
# Needs about 2.2 x MB of free disk under WORK (raw file + parquet output).
set -euo pipefail

MB=${1:-5000}
shift || true
WORK=${WORK:-/tmp}
PYTHON=${PYTHON:-python}
HERE=$(cd "$(dirname "$0")" && pwd)
RESULTS=${RESULTS:-$HERE/results}
SUFFIX=""
for a in "$@"; do [[ $a == --gzip ]] && SUFFIX="-gzip"; done

need_mb=$(( MB * 22 / 10 ))
free_mb=$(df -Pm "$WORK" | awk 'NR == 2 {print $4}')
echo "scratch: $WORK, ${free_mb} MB free, ~${need_mb} MB needed"
df -h "$WORK"
if (( free_mb < need_mb )); then
    echo "not enough free disk under $WORK for ${MB} MB; pass a smaller MB or set WORK" >&2
    exit 1
fi

mkdir -p "$RESULTS"
json="$RESULTS/ingest-${MB}mb${SUFFIX}.json"
timelog=$(mktemp)
trap 'rm -f "$timelog"' EXIT
# /usr/bin/time -v: max RSS over the driver and its waited-for children (the generator runs in the
# driver, the ingest in a child); the bench's own "peak RSS" is the ingest process alone.
if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -v -o "$timelog" "$PYTHON" -m rapids_engage.ingest.bench --mb "$MB" --work "$WORK" --json "$json" "$@"
    grep -E "Maximum resident set size|Elapsed \(wall clock\)" "$timelog"
else
    "$PYTHON" -m rapids_engage.ingest.bench --mb "$MB" --work "$WORK" --json "$json" "$@"
fi
echo "results: $json"
"$PYTHON" - "$json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
ok = r["peak_rss_mb"] <= 3 * 1024
print(f"peak RSS {r['peak_rss_mb']:,.0f} MiB: {'OK' if ok else 'OVER'} the 3 GiB target")
sys.exit(0 if ok else 2)
EOF
