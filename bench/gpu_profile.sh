#!/usr/bin/env bash
# gpu_profile.sh — copied by `make gpu-kit` to build/gpu-kit/profile.sh: where the time of
# a forward goes on the card. Generates the 0.6B shape as the GPU check does (its preflight,
# sanity and gen_06b steps), then runs gpu_bench (32 pairs of 256 tokens, then one pair;
# CUDA graphs off, so that every kernel is its own launch) under Nsight Compute, timing
# each kernel, for f16 and int8, and breaks each kind of forward down by kernel.
#
#   bash build/gpu-kit/profile.sh [--device cuda|cpu]
#   OUT (default /tmp/qrr-profile-out): profile.txt, ncu_f16.csv, ncu_int8.csv
# About 2.5 minutes on an H200 (ncu replays every kernel). Kernel times under ncu include
# its cache flush before each kernel: compare them with each other, not with gpu_bench's.
# With --device cpu (no ncu) it checks the setup and runs gpu_bench once per file.
# Exit: 0 done, 1 a stage failed, 3 usage.
set -u
KIT=$(cd "$(dirname "$0")" && pwd)
DEVICE=cuda
case "${1:-}" in
    --device) DEVICE=${2:-}; [ "$DEVICE" = cuda ] || [ "$DEVICE" = cpu ] || exit 3 ;;
    "") ;;
    *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 3 ;;
esac
WORK=${QRR_KIT_WORK:-/tmp/qrr-kit} OUT=${OUT:-/tmp/qrr-profile-out} T0=$(date +%s)
export KIT DEVICE WORK LOG=$WORK/logs PY=${PYTHON:-python3} T0 DEADLINE=600 \
    SHAPE06="--shape 0.6b" PAIRS06=16 OUT HF_HUB_OFFLINE=1
mkdir -p "$WORK/key" "$LOG" "$OUT" || exit 1
for s in preflight sanity gen_06b; do
    STEP=$s bash "$KIT/run.sh" --step $s > "$LOG/$s.log" 2>&1 ||
        { tail -n 20 "$LOG/$s.log"; echo "profile: the $s stage failed"; exit 1; }
    # shellcheck disable=SC1091
    [ $s = preflight ] && . "$WORK/env.sh"
    echo "$s ok ($(( $(date +%s) - T0 ))s)"
done
export LD_LIBRARY_PATH
NCU=$(command -v ncu)
for p in /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu; do
    [ -z "$NCU" ] && [ -x "$p" ] && NCU=$p
done
[ "$DEVICE" = cpu ] || [ -n "$NCU" ] || { echo "profile: ncu not found"; exit 1; }
rc=0
: > "$OUT/profile.txt"
for dt in f16 int8; do
    bench=("$KIT/bin/gpu_bench" "$WORK/m06-$dt.qrr" "$WORK/work.jsonl" --pairs 32
           --max-length 256 --repeat 1 --device "$DEVICE")
    if [ "$DEVICE" = cpu ]; then
        "${bench[@]}" || rc=1
        continue
    fi
    QRR_CUDA_GRAPHS=0 timeout 240 "$NCU" --clock-control none --metrics gpu__time_duration.sum \
        --csv --page raw --log-file "$OUT/ncu_$dt.csv" "${bench[@]}" > "$LOG/profile_$dt.out" 2>&1 ||
        { echo "profile: ncu of $dt failed (exit $?)"; tail -n 5 "$LOG/profile_$dt.out"; rc=1; continue; }
    { echo "== $dt: $(grep '^{' "$LOG/profile_$dt.out" | tail -n 1 | cut -c1-160)"
      "$PY" "$KIT/py/ncu_summary.py" "$OUT/ncu_$dt.csv"; } >> "$OUT/profile.txt" || rc=1
    echo "$dt profiled ($(( $(date +%s) - T0 ))s)"
done
[ "$DEVICE" = cpu ] || cat "$OUT/profile.txt"
exit $rc
