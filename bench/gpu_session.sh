#!/usr/bin/env bash
# The GPU checks of a session with a lent machine, as one call (bench/README.md, "GPU session").
#
# Run on the GPU host from the project root, after ../shared/gpu/stage.sh's parts were installed
# into /tmp/site: the last part's call runs `bash .gpu/pNN/install.sh && STEPS="imports tests" bash
# bench/gpu_session.sh`, the next one (at once, while /tmp/site lasts) `STEPS="pipeline scaling
# latency" bash bench/gpu_session.sh`: each stays under the device tool's 600 s per call.
# Each step has its own time limit, so a failing step leaves time for the next; everything it
# measures lands in $OUT (the device tool's output folder; bench/results when unset).
#
#   ROWS=1000000     rows of the CPU-vs-GPU pipeline bench (both backends, same machine, one run)
#   GPU_ROWS=10000000  rows of the GPU-only run of the scaling curve (0: skip)
#   STEPS="imports tests pipeline scaling latency"  the steps to run
set -uo pipefail
export PYTHONPATH="$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
out="${OUT:-bench/results}"
mkdir -p "$out"
rows="${ROWS:-1000000}"
gpu_rows="${GPU_ROWS:-10000000}"
steps="${STEPS:-imports tests pipeline scaling latency}"
log="$out/gpu-session.log"

step() { echo "== $1 ($(date +%T))" | tee -a "$log"; }
wants() { [[ " $steps " == *" $1 "* ]]; }
keep() { for f in "$@"; do [ -f "$f" ] && cp "$f" "$out/"; done; return 0; }

step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$log"
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores" | tee -a "$log"

if wants imports; then
  step "imports (what the image lacks goes to ../shared/gpu/stage.sh as extra packages)"
  python3 - <<'EOF' 2>&1 | tee -a "$log"
import importlib
mods = ["cuml", "cudf", "dask_cudf", "dask_cuda", "rmm", "cupy", "xgboost", "dask", "distributed", "pandas",
        "pyarrow", "numpy", "sklearn", "scipy", "yaml", "dacite", "rich", "matplotlib", "psutil", "pytest",
        "hypothesis", "rapids_engage.pipeline"]
missing = []
for m in mods:  # cuml first: the 26.10 wheels need it before cudf
    try:
        mod = importlib.import_module(m)
        print(f"  {m:24s} {getattr(mod, '__version__', '')}")
    except Exception as exc:  # noqa: BLE001 - report every failure, then stop
        missing.append(m)
        print(f"  {m:24s} MISSING: {type(exc).__name__}: {exc}")
raise SystemExit(f"missing: {' '.join(missing)}" if missing else 0)
EOF
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "stop: install what is missing first" | tee -a "$log"; exit 3; }
fi

if wants tests; then
  step "pytest -m gpu (CPU/GPU parity)"
  timeout "${TESTS_S:-240}" python3 -m pytest -m gpu -q -x -p no:cacheprovider tests/test_gpu_parity.py 2>&1 \
    | tail -60 | tee -a "$log" "$out/gpu-tests.log"
fi

if wants pipeline; then
  step "bench/pipeline.py --rows $rows --gpus 0 1 (GPU/CPU ratio per stage, one run)"
  timeout "${PIPELINE_S:-240}" python3 bench/pipeline.py --rows "$rows" --gpus 0 1 2>&1 | tail -30 | tee -a "$log"
  keep "bench/results/pipeline-$rows.json"
fi

if wants scaling && [ "$gpu_rows" -gt 0 ]; then
  step "bench/pipeline.py --rows $gpu_rows --gpus 1 (scaling curve, GPU only)"
  timeout "${SCALING_S:-180}" python3 bench/pipeline.py --rows "$gpu_rows" --gpus 1 2>&1 | tail -30 | tee -a "$log"
  keep "bench/results/pipeline-$gpu_rows.json"
fi

if wants latency; then
  step "bench/latency.py --gpus 0 1 (1-core CPU latency and GPU batch throughput)"
  timeout "${LATENCY_S:-150}" python3 bench/latency.py --gpus 0 1 2>&1 | tail -30 | tee -a "$log"
  keep bench/results/latency-gpu.json bench/results/latency-cpu.json
fi
step "done"
