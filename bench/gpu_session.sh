#!/usr/bin/env bash
# The GPU checks of a session with a lent machine, as one call (bench/README.md, "GPU session").
#
# Run on the GPU host from the project root, after ../shared/gpu/stage.sh's parts were installed
# into /tmp/site (bench/gpu_stage.sh prints the calls): the last part's call runs `bash .gpu/pNN/install.sh;
# STEPS="imports tests" bash bench/gpu_session.sh`, the next ones (at once, while /tmp/site lasts)
# `STEPS="tables pipeline"` and `STEPS="cluster scaling latency"` (+ generator where time is left): each stays under the
# device tool's 600 s per call
# (the whole set needs ~20 minutes of device time: a 15-minute session picks).
# Each step has its own time limit, so a failing step leaves time for the next; everything it
# measures lands in $OUT (the device tool's output folder; bench/results when unset).
#
#   ROWS=1000000     rows of the CPU-vs-GPU pipeline bench (both backends, same machine, one run)
#   GPU_ROWS=10000000  rows of the GPU-only run of the scaling curve (0: skip)
#   STEPS="imports tests tables pipeline cluster scaling generator latency"  the steps to run
#   COMMIT=abc1234   the commit measured (the device's copy of the tree may have no .git)
set -uo pipefail
export PYTHONPATH="$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
out="${OUT:-bench/results}"
mkdir -p "$out"
rows="${ROWS:-1000000}"
gpu_rows="${GPU_ROWS:-10000000}"
steps="${STEPS:-imports tests tables pipeline cluster scaling generator latency}"
log="$out/gpu-session.log"

stamp="$(mktemp)"  # results older than this are the committed ones, not this session's
step() { echo "== $1 ($(date +%T))" | tee -a "$log"; }
wants() { [[ " $steps " == *" $1 "* ]]; }
keep() { for f in "$@"; do [ -f "$f" ] && [ "$f" -nt "$stamp" ] && cp -p "$f" "$out/"; done; return 0; }
# a step's whole output goes to $OUT/<name>.log (a timed-out step still leaves what it printed);
# -k: a step that ignores SIGTERM (a stuck dask or CUDA worker) is killed 15 s later
run() { local name="$1" limit="$2"; shift 2
  timeout -k 15 "$limit" "$@" > "$out/$name.log" 2>&1; local rc=$?
  tail -30 "$out/$name.log" | tee -a "$log"; echo "($name: exit $rc)" | tee -a "$log"; }

step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$log"
echo "commit ${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}, $(nproc) cores" | tee -a "$log"

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
        optional = m == "cuml"  # only the baselines' logistic regression: fitted on the host without it
        missing += [] if optional else [m]
        print(f"  {m:24s} {'absent (optional)' if optional else 'MISSING'}: {type(exc).__name__}: {exc}")
raise SystemExit(f"missing: {' '.join(missing)}" if missing else 0)
EOF
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "stop: install what is missing first" | tee -a "$log"; exit 3; }
  # xgboost.dask on GPUs talks through NCCL even with one worker: say now whether it loads
  python3 -c "import ctypes, xgboost.collective as c; ctypes.CDLL(c._find_nccl() or 'libnccl.so.2'); print('  nccl loads')" \
    2>&1 | tail -1 | tee -a "$log"
else
  # a later call on a fresh machine (/tmp/site gone): stop before minutes of CPU-only work
  python3 -c "import rapids_engage.backend as b; b._load_gpu_libraries(); import dask_cuda, cupy; cupy.arange(2).sum()" > /dev/null 2>&1 \
    || { echo "stop: the GPU libraries do not import (install the staged parts first)" | tee -a "$log"; exit 3; }
fi

if wants tests; then
  step "pytest -m gpu (CPU/GPU parity; the pipeline parity test last: the slowest)"
  slow="tests/test_gpu_parity.py::test_pipeline_cpu_gpu_store_parity_and_rce"
  # one test process on the one GPU, without the suite's -n 2 (pytest-xdist, which the staged wheels may lack)
  serial=(-p no:cacheprovider -p no:xdist -o addopts=-ra)
  run gpu-tests "${TESTS_S:-150}" python3 -m pytest -m gpu -q "${serial[@]}" tests/test_gpu_parity.py --deselect "$slow" -k "not table"
  # key handling on dask_cudf / cudf (tests/test_gpu_keys.py: a 6,000-row build with every key table partitioned on
  # both backends, categorical keys coded differently per partition) and grouped parquet reads (list reads, a file at
  # a time with differing schemas, dictionary columns: tests/test_gpu_grouped_read.py): ~40-80 s estimated, its own
  # limit and log so that either run timing out leaves the other's results (this call: 150 + 120 + 240 s of limits,
  # each + 15 s to kill, under 600 s)
  run gpu-tests-keys "${TESTS_KEYS_S:-120}" python3 -m pytest -m gpu -q "${serial[@]}" tests/test_gpu_keys.py tests/test_gpu_grouped_read.py
  run gpu-tests-pipeline "${TESTS_PIPELINE_S:-240}" python3 -m pytest -m gpu -q "${serial[@]}" "$slow"
fi

if wants tables; then
  step "pytest -m gpu -k table (Hacker News-like counts with predict and external memory, MIND-like ranking through audit)"
  run gpu-tests-tables "${TABLES_S:-240}" python3 -m pytest -m gpu -q -p no:cacheprovider -p no:xdist -o addopts=-ra \
    tests/test_gpu_parity.py -k table
fi

if wants cluster; then
  step "pytest -m gpu tests/test_gpu_cluster.py (a 3,000-row run on an existing LocalCUDACluster via --scheduler-address)"
  run gpu-tests-cluster "${CLUSTER_S:-90}" python3 -m pytest -m gpu -q -p no:cacheprovider -p no:xdist -o addopts=-ra \
    tests/test_gpu_cluster.py
fi

if wants pipeline; then
  step "bench/pipeline.py --rows $rows --gpus 0 1 (GPU/CPU ratio per stage, one run)"
  run pipeline "${PIPELINE_S:-220}" python3 bench/pipeline.py --rows "$rows" --gpus 0 1
  keep "bench/results/pipeline-$rows.json"
fi

if wants scaling && [ "$gpu_rows" -gt 0 ]; then
  step "bench/pipeline.py --rows $gpu_rows --gpus 1 (scaling curve, GPU only)"
  run scaling "${SCALING_S:-170}" python3 bench/pipeline.py --rows "$gpu_rows" --gpus 1
  keep "bench/results/pipeline-$gpu_rows.json"
fi

if wants generator; then
  step "bench/synthetic_gen.py --rows 10000000 --workers 1 16 (the generator on the host's cores, same bytes)"
  run generator "${GENERATOR_S:-120}" python3 bench/synthetic_gen.py --rows 10000000 --workers 1 16
  keep bench/results/synthetic_gen-10000000.json
fi

if wants latency; then
  step "bench/latency.py --gpus 0 1 (1-core CPU latency and GPU batch throughput)"
  run latency "${LATENCY_S:-120}" python3 bench/latency.py --gpus 0 1
  keep bench/results/latency-gpu.json bench/results/latency-cpu.json
fi
step "done"
