#!/usr/bin/env bash
# cpu_bench.sh — `make bench`: the CPU benchmark of docs/benchmarks.md in one run.
#  1. a 0.6B-shape random checkpoint from build/qgen (kept in $QRR_BENCH_DIR between runs)
#  2. conversion to f16 and int8: time, peak memory, file size
#  3. qrr bench on both files: 1 query x 32 documents (50-400 words, mean ~200 tokens),
#     the shared-prefix saving (32 x ~150 tokens), one-pair latency, open-to-first-score
#  4. the kernels against the machine's measured peak (build/gemm_bench, when built)
#  5. the peer: Transformers fp32 on the CPU with the same prompts and threads, when torch
#     and transformers are importable (pip install -r tools/requirements.txt)
# Environment: QRR_BENCH_DIR (default /tmp/qrr-bench), THREADS (default 2), SKIP_PEER=1.
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

for dt in f16 int8; do
  say ""
  say "== qrr bench, $dt, $threads threads, 1 query x 32 documents"
  "$bin/qrr" bench "$dir/model-0.6b-$dt.qrr" --threads "$threads" --docs 32 --repeat 3 \
    --write-workload "$dir/workload.jsonl" | tee -a "$results"
  say "== shared prefix, $dt: 32 documents of ~150 words behind the shared prompt prefix"
  "$bin/qrr" bench "$dir/model-0.6b-$dt.qrr" --threads "$threads" --docs 32 --min-words 150 \
    --max-words 150 --repeat 3 --compare-share | tee -a "$results"
done

if [ -x "$bin/gemm_bench" ]; then
  say ""
  say "== kernels against the measured peak"
  "$bin/gemm_bench" | tee -a "$results"
fi

if [ "${SKIP_PEER:-0}" != 1 ] && python3 -c "import torch, transformers" 2>/dev/null; then
  say ""
  say "== peer: Transformers fp32 on the CPU, same workload, $threads threads"
  python3 bench/transformers_cpu.py --model "$dir/model-0.6b" --workload "$dir/workload.jsonl" \
    --threads "$threads" | tee -a "$results"
else
  say ""
  say "(peer skipped: torch/transformers not importable; pip install -r tools/requirements.txt)"
fi
echo
echo "results in $results"
