#!/usr/bin/env bash
# ray_bench.sh — Ray's overhead, measured (`make bench-ray`): the same pairs through
# `qrr score` in one process (1 and 2 threads) and through python -m qrr.ray_rerank on a
# local Ray instance (loopback only) with 1 and 2 actors of one thread each; the tiny
# reference model (100,000 pairs) and a 0.6B-shape int8 model with random weights (10,000
# pairs). Every Ray run's scores are checked against `qrr score`'s (every id once, <= 1e-5).
#
#   QRR_BUILD        build folder (default build)
#   QRR_REFERENCE    reference data (default ../shared/reference)
#   PYTHON           a python with qrr and ray[data] (default python3)
#   TINY_PAIRS, BIG_PAIRS   default 100000 and 10000
#   BENCH_DIR        work folder (default $QRR_BUILD/bench-ray; the 0.6B files take 0.6 GB)
#   RUNS             "qrr ray" (default), or one of them; BATCH rows per batch (default 256),
#                    the same for `qrr score --batch` and `--batch-size`
# Output: a table on stdout and in $BENCH_DIR/results.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
B=$(cd "${QRR_BUILD:-build}" && pwd)
REF=$(cd "${QRR_REFERENCE:-../shared/reference}" && pwd)
PY=${PYTHON:-python3}
TINY_PAIRS=${TINY_PAIRS:-100000}
BIG_PAIRS=${BIG_PAIRS:-10000}
RUNS=${RUNS:-qrr ray}
BATCH=${BATCH:-256}
W=${BENCH_DIR:-$B/bench-ray}
mkdir -p "$W"
RESULTS=$W/results.txt
: > "$RESULTS"
export QRR_REFERENCE=$REF
export PYTHONPATH=$PWD/python${PYTHONPATH:+:$PYTHONPATH}
export QRR_LIBRARY=${QRR_LIBRARY:-$B/libqrr.so}
"$PY" -c 'import ray, qrr.ray' || { echo "ray_bench: $PY lacks ray[data] or qrr"; exit 1; }

say() { echo "$*" | tee -a "$RESULTS"; }

# The models: the tiny reference checkpoint (f32), and the 0.6B shape from qgen (int8).
if [ ! -f "$W/tiny.qrr" ]; then
  rm -rf "$W/tiny" && mkdir "$W/tiny"
  ln -s "$REF"/models/tiny-tied/* "$REF"/tokenizer/* "$W/tiny/"
  "$B/qconvert" "$W/tiny" -o "$W/tiny.qrr" --dtype f32 --quiet
fi
if [ ! -f "$W/q06.qrr" ]; then
  rm -rf "$W/q06"
  "$B/qgen" -o "$W/q06" --shape 0.6b --tokenizer "$REF/tokenizer" --seed 1 --quiet
  "$B/qconvert" "$W/q06" -o "$W/q06.qrr" --dtype int8 --quiet
  rm -rf "$W/q06"
fi
# The pairs: 100 candidates per query, a query's candidates together.
"$PY" bench/ray_pairs.py "$TINY_PAIRS" $((TINY_PAIRS / 100)) 8 40 1 > "$W/tiny.jsonl"
"$PY" bench/ray_pairs.py "$BIG_PAIRS" $((BIG_PAIRS / 100)) 8 24 2 > "$W/q06.jsonl"

# bench NAME MODEL PAIRS: the four runs, wall time of each whole process.
bench() {
  local name=$1 model=$2 pairs=$3 n t0 t1 line
  n=$(wc -l < "$pairs")
  say "== $name: $n pairs ($(nproc) CPUs; load average now $(cut -d' ' -f1-3 /proc/loadavg))"
  for threads in 1 2; do
    [[ " $RUNS " == *" qrr "* ]] || break
    t0=$(date +%s.%N)
    "$B/qrr" score "$model" --threads "$threads" --batch "$BATCH" < "$pairs" \
      > "$W/$name.qrr$threads.jsonl"
    t1=$(date +%s.%N)
    say "$(awk -v n="$n" -v a="$t0" -v b="$t1" -v t="$threads" 'BEGIN {
      printf "qrr score, one process, %d thread(s): %8.1f pairs/s  %7.1f s", t, n / (b - a), b - a }')"
  done
  for actors in 1 2; do
    [[ " $RUNS " == *" ray "* ]] || break
    t0=$(date +%s.%N)
    "$PY" -m qrr.ray_rerank "$model" "$pairs" "$W/$name.ray$actors.jsonl" --actors "$actors" \
      --threads-per-actor 1 --batch-size "$BATCH" 2> "$W/$name.ray$actors.log"
    t1=$(date +%s.%N)
    line=$(tail -n 1 "$W/$name.ray$actors.log")
    case $line in "qrr.ray_rerank: $n rows"*) ;; *) say "FAILED: $line"; exit 1 ;; esac
    job=$(sed -E 's/.* rows, ([0-9.]+) pairs.s, ([0-9.]+) s.*/\1 \2/' <<<"$line")
    say "$(awk -v n="$n" -v a="$t0" -v b="$t1" -v k="$actors" -v job="$job" 'BEGIN {
      split(job, j, " ")
      printf "qrr.ray_rerank, %d actor(s) x 1 thread:  %8.1f pairs/s  %7.1f s", k, n / (b - a), b - a
      printf " (the job: %.1f pairs/s, %.1f s)", j[1], j[2] }')"
    "$PY" - "$W/$name.qrr1.jsonl" "$pairs" "$W/$name.ray$actors.jsonl" <<'EOF' | tee -a "$RESULTS"
import json, sys
want = [json.loads(l) for l in open(sys.argv[1])]
rows = [json.loads(l) for l in open(sys.argv[2])]
got = [json.loads(l) for l in open(sys.argv[3])]
assert [g["id"] for g in got] == [r["id"] for r in rows], "ids differ"
worst = max(abs(g["score"] - w["score"]) for g, w in zip(got, want))
assert worst <= 1e-5, worst
print(f"  every id once, in order; max |score - qrr score| = {worst:.2g}")
EOF
  done
}

bench tiny "$W/tiny.qrr" "$W/tiny.jsonl"
bench 0.6b-int8 "$W/q06.qrr" "$W/q06.jsonl"
echo "ray_bench: results in $RESULTS"
