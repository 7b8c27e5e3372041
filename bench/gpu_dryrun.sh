#!/usr/bin/env bash
# gpu_dryrun.sh — `make gpu-dryrun`: the GPU check kit proven on this machine before any GPU
# time is spent. Copies the kit into an empty temporary directory and runs its run.sh there
# with --device cpu (the CPU stands in for every GPU step; what only a GPU can do is skipped
# and says so), a small deadline, a clean environment and LD_LIBRARY_PATH holding only the
# kit; then a run cut short by its deadline and a run killed mid-step, which must still leave
# summary.txt and logs.tgz in $OUT. Exit 0 only when all of that holds.
#
#   bench/gpu_dryrun.sh KIT_DIR [DEADLINE_SECONDS]   (default 170)
set -u
kit=$(cd "${1:?usage: gpu_dryrun.sh KIT_DIR [DEADLINE]}" && pwd)
deadline=${2:-170}
py=$(python3 -c 'import sys; print(sys.executable)') || { echo "gpu_dryrun: no python3"; exit 1; }
tmp=$(mktemp -d /tmp/qrr-dryrun.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cp -a "$kit" "$tmp/gpu-kit"
bad=0
fail() { echo "gpu_dryrun: FAIL: $*"; bad=1; }

# kit_run OUT WORK [run.sh options]: run.sh as on a bare machine: nothing from this shell's
# environment, PATH without the CUDA toolkit, LD_LIBRARY_PATH = the kit alone
kit_run() {
    local out=$1 work=$2
    shift 2
    env -i HOME="$tmp" PATH="/usr/local/bin:/usr/bin:/bin" LANG=C.UTF-8 \
        LD_LIBRARY_PATH="$tmp/gpu-kit" OUT="$out" QRR_KIT_WORK="$work" PYTHON="$py" \
        bash "$tmp/gpu-kit/run.sh" --device cpu --pairs 16 --bench-pairs 8 --bench-repeat 2 \
        --shape06 "--shape 0.6b --layers 2" --disk-8b 1 --min-left-8b 60 \
        --shape8b "--shape 8b --layers 1 --hidden 256 --intermediate 512 --heads 4 --kv-heads 2" \
        "$@"
}

# out_ok OUT: only summary.txt and logs.tgz (at most 6 files), a readable archive
out_ok() {
    local n
    n=$(find "$1" -type f | wc -l)
    [ "$n" -le 6 ] || fail "$1 holds $n files (at most 6)"
    [ -s "$1/summary.txt" ] || fail "no $1/summary.txt"
    tar -tzf "$1/logs.tgz" > "$tmp/list" 2>/dev/null || fail "$1/logs.tgz is not a readable archive"
    grep -q 'logs/preflight.log' "$tmp/list" || fail "$1/logs.tgz has no logs/preflight.log"
}

echo "== 1. the whole check, --device cpu, deadline ${deadline}s, in $tmp"
t0=$(date +%s)
kit_run "$tmp/out1" "$tmp/work" --deadline "$deadline"
rc=$?
echo "== run.sh exit $rc after $(( $(date +%s) - t0 ))s"
[ $rc = 0 ] || fail "run.sh exited $rc"
out_ok "$tmp/out1"
for s in preflight sanity gemm_probe parity_f16_tc parity_f16_simple parity_int8_w8a8 \
         parity_int8_w8a16 parity_upload prefix_f16 prefix_int8 memcheck_f16 memcheck_int8 \
         gen_06b ref_06b parity_06b cpu_vs_cuda_06b bench_06b_f16 bench_06b_int8_w8a8 \
         bench_06b_int8_w8a16 bench_06b_f16_simple hf_06b_keep1 hf_06b_official gen_8b \
         bench_8b_f16 bench_8b_int8 hf_8b_keep1; do
    grep -q "^$s  *\(ok\|skipped\) " "$tmp/out1/summary.txt" ||
        fail "summary.txt has no ok or skipped line for $s"
done
grep -q "FAIL\|timeout " "$tmp/out1/summary.txt" && grep -n "FAIL\|timeout " "$tmp/out1/summary.txt"

echo "== 2. a deadline too short for most steps: they must be skipped, and say why"
kit_run "$tmp/out2" "$tmp/work" --deadline 25 > "$tmp/run2.txt" 2>&1
rc=$?
[ $rc = 0 ] || { tail -n 20 "$tmp/run2.txt"; fail "run.sh --deadline 25 exited $rc"; }
out_ok "$tmp/out2"
grep -q "skipped  *0  deadline: needs about" "$tmp/out2/summary.txt" ||
    fail "no step was skipped for the deadline"
grep "deadline: needs" "$tmp/out2/summary.txt" | head -n 3

echo "== 3. killed (SIGKILL, the whole process group) 12 s in: what \$OUT holds must stand"
setsid bash -c "$(declare -f kit_run); tmp='$tmp' py='$py' kit_run '$tmp/out3' '$tmp/work' --deadline 120" \
    > "$tmp/run3.txt" 2>&1 &
pid=$!
sleep 12
# the steps run in process groups of their own (timeout's): end the whole session
for p in $(ps -o pid= -s "$pid" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
wait "$pid" 2>/dev/null
out_ok "$tmp/out3"
grep -q "^preflight  *ok" "$tmp/out3/summary.txt" || fail "the killed run's summary lacks its preflight"
grep "state:\|running" "$tmp/out3/summary.txt"

echo
echo "== the summary of run 1 ($tmp/out1/summary.txt)"
cat "$tmp/out1/summary.txt"
[ $bad = 0 ] && echo "gpu_dryrun: PASS" || echo "gpu_dryrun: FAIL"
exit $bad
