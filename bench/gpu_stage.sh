#!/usr/bin/env bash
# Stage the GPU stack for a lent machine in as few calls as its 64 MiB transfers allow (bench/README.md,
# "GPU session"). Run from the project root: bench/gpu_stage.sh [EXTRA_PACKAGE==VER ...]
#
# ../shared/gpu/stage.sh's pinned wheels without cuML and what only cuML needs (cuml, libcuml, libcuvs,
# libraft, pylibraft, nvforest, libnvforest, treelite: ~360 MB; without cuML the pipeline fits the
# target-encoding baseline on the host), plus dacite (the GPU image lacks it), cut into parts of
# 61,000,000 bytes (the ~3 MB tree rides along under 64 MiB): 8 parts instead of 15. Each part's call took
# ~5 s of device time on the H200 (2026-12-04), the first one ~30 s with the machine's start.
set -euo pipefail
root="$(git rev-parse --show-toplevel)"
cd "$root"
shared="${SHARED_GPU:-$root/../shared/gpu}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cuml_only='cuml libcuml libcuvs libraft pylibraft nvforest libnvforest treelite'
cp "$shared/stage.sh" "$shared/install.sh" "$work/"
grep -vE "^($(tr ' ' '|' <<< "$cuml_only"))[-=]" "$shared/wheels.txt" > "$work/wheels.txt"
grep -q 'import cuml, cudf,' "$work/install.sh" || { echo "install.sh changed: its import check names no cuml to drop" >&2; exit 1; }
sed -i 's/import cuml, cudf,/import cudf,/; s/, .cuml., cuml.__version__//' "$work/install.sh"
for name in $cuml_only; do rm -f .gpu/wheels/"$name"[-_]*.whl; done  # left by a full staging
bash "$work/stage.sh" dacite==1.9.2 "$@" > /dev/null
rm -rf .gpu/p[0-9]*
tar cf .gpu/all.tar -C .gpu wheels
split -b 61000000 -d -a 2 .gpu/all.tar .gpu/part.
rm .gpu/all.tar
n=0
for f in .gpu/part.*; do
  d=.gpu/p$(printf %02d $n); mkdir -p "$d"; mv "$f" "$d/"; n=$((n+1))
done
last=$(printf %02d $((n-1)))
cp "$work/install.sh" ".gpu/p$last/install.sh"
echo "Made $n parts under .gpu/ ($(du -sm .gpu/wheels | cut -f1) MB of wheels). Send them in order, back to back:"
for i in $(seq 0 $((n-2))); do
  p=$(printf %02d $i)
  echo "  run  carry=[\".gpu/p$p\"]  command: mkdir -p /tmp/stage && cp .gpu/p$p/part.* /tmp/stage/"
done
commit=$(git rev-parse --short HEAD)  # the device's copy of the tree may carry a stale .git
echo "  run  carry=[\".gpu/p$last\"]  command: bash .gpu/p$last/install.sh; COMMIT=$commit STEPS=\"imports tests\" bash bench/gpu_session.sh"
echo "and at once (the machine goes back 30 s after a call, /tmp/site with it):"
echo "  run  command: COMMIT=$commit STEPS=\"tables pipeline\" bash bench/gpu_session.sh"
echo "  run  command: COMMIT=$commit STEPS=\"cluster scaling latency\" bash bench/gpu_session.sh"
