#!/usr/bin/env bash
# cpu_bench.sh — `make bench`: the CPU benchmark of docs/benchmarks.md in one run.
#  1. a 0.6B-shape random checkpoint from build/qgen (kept in $QRR_BENCH_DIR between runs)
#  2. conversion to f16 and int8: time, peak memory, file size
#  3. qrr bench on both files: 1 query x 32 documents (50-400 words, mean ~200 tokens),
#     the shared-prefix saving (32 x ~150 tokens), one-pair latency, open-to-first-score
#  4. the kernels against the machine's measured peak (build/gemm_bench, when built)
#  5. the peer: Transformers fp32 on the CPU with the same prompts and threads, when torch
#     and transformers are importable (pip install -r tools/requirements.txt)
# Environment: QRR_BENCH_DIR (default /tmp/qrr-bench), THREADS (default 2), SKIP_PEER=1,
# REPEAT_F16 (default 1), REPEAT_INT8 (default 2), REPEAT_PEER (default 1): timed runs whose
# median is reported. At 2 threads the whole run takes about 15 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${QRR_BUILD:-build}
dir=${QRR_BENCH_DIR:-/tmp/qrr-bench}
threads=${THREADS:-2}
ref=${QRR_REFERENCE:-../shared/reference}
mkdir -p "$dir"
results="$dir/results.txt"
: > "$results"
say() { printf '%s\n' "$*" | tee -a "$results"; }

if [ ! -f "$dir/model-0.6b/config.json" ]; then
  tok=()
  [ -f "$ref/tokenizer/tokenizer.json" ] && tok=(--tokenizer "$ref/tokenizer")
  echo "writing a 0.6B-shape checkpoint to $dir/model-0.6b (once)"
  rm -rf "$dir/model-0.6b"
  /usr/bin/time -f "%e s, peak RSS %M KiB" "$bin/qgen" -o "$dir/model-0.6b" --shape 0.6b --seed 1 "${tok[@]}" --quiet
fi
say "checkpoint: $(du -sh --apparent-size "$dir/model-0.6b" | cut -f1) ($dir/model-0.6b)"

for dt in f16 int8; do
  out="$dir/model-0.6b-$dt.qrr"
  /usr/bin/time -f "%e %M" -o "$dir/time-$dt.txt" "$bin/qconvert" "$dir/model-0.6b" -o "$out" --dtype "$dt" --quiet
  read -r secs kib < "$dir/time-$dt.txt"
  say "convert $dt: ${secs} s, peak RSS $((kib / 1024)) MiB, file $(stat -c %s "$out" | awk '{printf "%.3f GB", $1/1e9}')"
done

reps_f16=${REPEAT_F16:-1}; reps_int8=${REPEAT_INT8:-2}
for dt in f16 int8; do
  reps=$([ "$dt" = f16 ] && echo "$reps_f16" || echo "$reps_int8")
  say ""
  say "== qrr bench, $dt, $threads threads, 1 query x 32 documents"
  "$bin/qrr" bench "$dir/model-0.6b-$dt.qrr" --threads "$threads" --docs 32 --repeat "$reps" \
    --write-workload "$dir/workload.jsonl" | tee -a "$results"
done
say ""
say "== shared prefix, int8: 32 documents of 150 words behind the shared prompt prefix"
"$bin/qrr" bench "$dir/model-0.6b-int8.qrr" --threads "$threads" --docs 32 --min-words 150 \
  --max-words 150 --repeat 1 --compare-share | tee -a "$results"

if [ -x "$bin/gemm_bench" ]; then
  say ""
  say "== kernels against the measured peak"
  "$bin/gemm_bench" | tee -a "$results"
fi

export HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error TQDM_DISABLE=1
if [ "${SKIP_PEER:-0}" != 1 ] && python3 -c "import torch, transformers" 2>/dev/null; then
  say ""
  say "== peer: Transformers fp32 on the CPU, same workload, $threads threads"
  python3 bench/transformers_cpu.py --model "$dir/model-0.6b" --workload "$dir/workload.jsonl" \
    --threads "$threads" --reps "${REPEAT_PEER:-1}" | tee -a "$results"
  say "== peer one-pair latency (the first document of the workload, as qrr bench's latency line)"
  head -n 1 "$dir/workload.jsonl" > "$dir/workload-one.jsonl"
  python3 bench/transformers_cpu.py --model "$dir/model-0.6b" --workload "$dir/workload-one.jsonl" \
    --threads "$threads" --reps 3 --modes keep1 --latency | tee -a "$results"
else
  say ""
  say "(peer skipped: torch/transformers not importable; pip install -r tools/requirements.txt)"
fi
echo
echo "results in $results"
