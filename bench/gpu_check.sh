#!/usr/bin/env bash
# gpu_check.sh — the one script for a GPU machine with PyTorch and Transformers: builds qrr
# with CUDA, checks parity (reference cases on the GPU, the 0.6B shape against Transformers
# fp32), runs compute-sanitizer on a small run, and benchmarks us against Transformers bf16
# (sdpa, official recipe, logits_to_keep=1) on the same card. Prints a table last.
# Every step's failure is reported and the script goes on where it can.
#
#   bench/gpu_check.sh                  full run (about 6-8 minutes on an H100)
#   QRR_GPU_SKIP_8B=1 bench/gpu_check.sh  without the 8B shape
#   QRR_GPU_BUILD=DIR                   build directory (default build/)
# Logs and JSON results go to $OUT (or /tmp/qrr-gpu-out); models to $QRR_GPU_WORK
# (or /tmp/qrr-gpu).
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-/tmp/qrr-gpu-out}
WORK=${QRR_GPU_WORK:-/tmp/qrr-gpu}
BUILD=${QRR_GPU_BUILD:-build}
case $BUILD in /*) B=$BUILD ;; *) B=$ROOT/$BUILD ;; esac
mkdir -p "$OUT" "$WORK"
STEPS=$OUT/steps.txt
: > "$STEPS"
T_START=$(date +%s)

say() { echo "[$(( $(date +%s) - T_START ))s] $*"; }
# step NAME TIMEOUT CMD...: run CMD with a time limit, output to $OUT/NAME.log, record the result.
step() {
    local name=$1 limit=$2; shift 2
    local t0=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$? secs=$(( $(date +%s) - t0 ))
    if [ $rc -eq 0 ]; then
        say "ok    $name (${secs}s)"; echo "$name ok ${secs}s" >> "$STEPS"
    else
        local why="exit $rc"; [ $rc -eq 124 ] && why="timed out after ${limit}s"
        say "FAIL  $name ($why); last lines of $OUT/$name.log:"
        tail -n 15 "$OUT/$name.log" | sed 's/^/      /'
        echo "$name FAIL $why" >> "$STEPS"
    fi
    return $rc
}

# ---- 0. the card and the reference data ------------------------------------------------
CARD=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -n 1)
say "card: $CARD"
echo "$CARD" > "$OUT/card.txt"
REF=${QRR_REFERENCE:-}
for r in "$REF" "$ROOT/shared/reference" "$ROOT/../shared/reference"; do
    if [ -n "$r" ] && [ -f "$r/scores_public.jsonl" ]; then REF=$(cd "$r" && pwd); break; fi
done
if [ -z "$REF" ] || [ ! -f "$REF/scores_public.jsonl" ]; then
    say "FAIL  no reference data (set QRR_REFERENCE, or put shared/reference in the repo)"
    echo "reference FAIL missing" >> "$STEPS"
    REF=""
fi
export QRR_REFERENCE=$REF QRR_BUILD=$B
PY=${PYTHON:-python3}

# ---- 1. build -------------------------------------------------------------------------
TEST_BINS=$(ls tests/test_*.c 2>/dev/null | sed -e "s|^tests/\(.*\)\.c\$|$B/tests/\1|")
step build 300 make -j16 CUDA=1 BUILD="$B" all examples cuda-tools $TEST_BINS
make CUDA=1 BUILD="$B" cuda-report > "$OUT/cuda-report.txt" 2>&1

# ---- 2. the 8B shape in the background (generate + convert), CPU tests beside it --------
gen_model() { # DIR SHAPE: qgen + qconvert f16 and int8
    local dir=$1 shape=$2
    rm -rf "$dir" && "$B/qgen" -o "$dir" --shape "$shape" --dtype bf16 --tokenizer "$REF/tokenizer" --quiet &&
    "$B/qconvert" "$dir" -o "$dir-f16.qrr" --dtype f16 --quiet &&
    "$B/qconvert" "$dir" -o "$dir-int8.qrr" --dtype int8 --quiet
}
export -f gen_model
export B REF
GEN8=""
if [ -z "${QRR_GPU_SKIP_8B:-}" ] && [ -n "$REF" ]; then
    ( step gen_8b 420 bash -c 'gen_model "$0" 8b' "$WORK/m8b" ) > "$OUT/gen_8b.status" 2>&1 &
    GEN8=$!
fi
( step cpu_tests 300 make CUDA=1 BUILD="$B" test ) > "$OUT/cpu_tests.status" 2>&1 &
TESTS_PID=$!

# ---- 3. the card's ceilings -------------------------------------------------------------
step gemm_peak 120 "$B/gemm_peak" && tail -n 1 "$OUT/gemm_peak.log" > "$OUT/peak.json"

# ---- 4. reference cases on the GPU: the parity tests with QRR_TEST_DEVICE=cuda ----------
if [ -n "$REF" ]; then
    QRR_TEST_DEVICE=cuda step parity_cuda 180 "$B/tests/test_parity" --verbose --jobs 4
    QRR_TEST_DEVICE=cuda QRR_CUDA_ATTENTION=simple step parity_cuda_simple_attn 180 \
        "$B/tests/test_parity" --verbose --jobs 4
    QRR_TEST_DEVICE=cuda QRR_CUDA_INT8=w8a16 step parity_cuda_w8a16 180 \
        "$B/tests/test_parity" --verbose --jobs 4 --filter '*int8*'
fi

# ---- 5. the 0.6B shape, a workload, and the tiny model for the sanitizer ----------------
step gen_06b 300 bash -c 'gen_model "$0" 0.6b' "$WORK/m06"
TINY=$WORK/tiny-tied
if [ -n "$REF" ]; then
    rm -rf "$TINY" && mkdir -p "$TINY" && ln -s "$REF"/models/tiny-tied/* "$TINY"/ &&
        ln -s "$REF"/tokenizer/* "$TINY"/
    step tiny_convert 120 bash -c "'$B/qconvert' '$TINY' -o '$TINY-f16.qrr' --dtype f16 --quiet &&
        '$B/qconvert' '$TINY' -o '$TINY-int8.qrr' --dtype int8 --quiet"
fi
# 32 documents of 300 words: every prompt is cut to exactly --max-length 256 tokens.
step workload 120 "$B/qrr" bench "$TINY-f16.qrr" --docs 32 --min-words 300 --max-words 300 \
    --repeat 1 --threads 4 --write-workload "$WORK/work.jsonl"
$PY - "$WORK/work.jsonl" "$WORK/score_in.jsonl" <<'EOF'
import json, sys
with open(sys.argv[1]) as f, open(sys.argv[2], "w") as g:
    for i, line in enumerate(f):
        if i >= 16: break
        o = json.loads(line); o["max_length"] = 256
        g.write(json.dumps(o) + "\n")
EOF

# ---- 6. 0.6B parity against Transformers fp32 -------------------------------------------
step ref_06b 300 bash -c "'$PY' bench/transformers_gpu.py '$WORK/m06' '$WORK/work.jsonl' \
    --reference --pairs 16 --max-length 256 > '$OUT/ref_06b.jsonl'"
score_variant() { # NAME MODEL [ENV=VAL ...] -- extra qrr score args
    local name=$1 model=$2; shift 2
    step "score_$name" 180 env "$@" "$B/qrr" score "$model" --device cuda --no-verify \
        < "$WORK/score_in.jsonl" && cp "$OUT/score_$name.log" "$OUT/score_$name.jsonl"
}
score_variant f16 "$WORK/m06-f16.qrr" QRR_CUDA_ATTENTION=tc
score_variant f16_simple_attn "$WORK/m06-f16.qrr" QRR_CUDA_ATTENTION=simple
score_variant int8_w8a8 "$WORK/m06-int8.qrr" QRR_CUDA_INT8=w8a8
score_variant int8_w8a16 "$WORK/m06-int8.qrr" QRR_CUDA_INT8=w8a16
step score_f16_chunked 180 "$B/qrr" score "$WORK/m06-f16.qrr" --device cuda --no-verify \
    --max-batch-tokens 300 --batch 5 < "$WORK/score_in.jsonl" &&
    cp "$OUT/score_f16_chunked.log" "$OUT/score_f16_chunked.jsonl"
step parity_06b 60 $PY - "$OUT" <<'EOF'
import json, os, statistics, sys
out = sys.argv[1]
ref = [json.loads(l) for l in open(os.path.join(out, "ref_06b.jsonl"))]
tol = {"f16": (0.05, 5e-3), "f16_simple_attn": (0.05, 5e-3), "f16_chunked": (0.05, 5e-3),
       "int8_w8a8": (0.25, 0.06), "int8_w8a16": (0.25, 0.06)}
bad = 0
rows = []
for name, (td, ts) in tol.items():
    p = os.path.join(out, f"score_{name}.jsonl")
    if not os.path.exists(p):
        print(f"{name}: no output"); bad += 1; rows.append((name, None)); continue
    got = [json.loads(l) for l in open(p) if l.startswith("{")]
    if len(got) != len(ref) or any("logit" not in g for g in got):
        print(f"{name}: {len(got)} results for {len(ref)} references, or errors"); bad += 1
        rows.append((name, None)); continue
    ed = [abs(g["logit"] - r["logit"]) for g, r in zip(got, ref)]
    es = [abs(g["score"] - r["score"]) for g, r in zip(got, ref)]
    ok = max(ed) <= td and max(es) <= ts
    bad += not ok
    rows.append((name, (max(ed), statistics.median(ed), max(es), ok)))
    print(f"{name:16s} dlogit max {max(ed):.3g} median {statistics.median(ed):.3g} "
          f"dscore max {max(es):.3g}  tol {td}/{ts}  {'PASS' if ok else 'FAIL'}")
print("reference logits (first 4):", [round(r["logit"], 4) for r in ref[:4]])
json.dump({k: v for k, v in rows}, open(os.path.join(out, "parity_06b.json"), "w"))
sys.exit(1 if bad else 0)
EOF

# ---- 7. compute-sanitizer on a small run (prefix sharing, f16 and int8) -----------------
head -n 3 "$WORK/score_in.jsonl" > "$WORK/small.jsonl"
for v in f16 int8; do
    step "memcheck_$v" 240 compute-sanitizer --tool memcheck --leak-check no --error-exitcode 9 \
        "$B/qrr" score "$TINY-$v.qrr" --device cuda < "$WORK/small.jsonl"
done

# ---- 8. throughput and latency, 0.6B ------------------------------------------------------
wait $TESTS_PID 2>/dev/null; cat "$OUT/cpu_tests.status"
bench_ours() { # NAME MODEL [ENV=VAL ...]
    local name=$1 model=$2; shift 2
    step "bench_$name" 240 env "$@" "$B/gpu_bench" "$model" "$WORK/work.jsonl" --pairs 32 \
        --max-length 256 --repeat 10 && tail -n 1 "$OUT/bench_$name.log" > "$OUT/bench_$name.json"
}
bench_ours 06b_f16 "$WORK/m06-f16.qrr" QRR_CUDA_ATTENTION=tc
bench_ours 06b_int8 "$WORK/m06-int8.qrr" QRR_CUDA_INT8=w8a8
bench_ours 06b_int8_w8a16 "$WORK/m06-int8.qrr" QRR_CUDA_INT8=w8a16
bench_ours 06b_f16_simple_attn "$WORK/m06-f16.qrr" QRR_CUDA_ATTENTION=simple
step bench_06b_hf 300 $PY bench/transformers_gpu.py "$WORK/m06" "$WORK/work.jsonl" --bench \
    --pairs 32 --max-length 256 --repeat 10 && tail -n 1 "$OUT/bench_06b_hf.log" > "$OUT/bench_06b_hf.json"

# ---- 9. 8B ----------------------------------------------------------------------------------
if [ -n "$GEN8" ]; then
    wait $GEN8 2>/dev/null; cat "$OUT/gen_8b.status"
    if grep -q "gen_8b ok" "$STEPS"; then
        bench_ours 8b_f16 "$WORK/m8b-f16.qrr"
        bench_ours 8b_int8 "$WORK/m8b-int8.qrr"
        step bench_8b_hf 300 $PY bench/transformers_gpu.py "$WORK/m8b" "$WORK/work.jsonl" --bench \
            --pairs 32 --max-length 256 --repeat 5 && tail -n 1 "$OUT/bench_8b_hf.log" > "$OUT/bench_8b_hf.json"
    fi
fi

# ---- 10. the table -------------------------------------------------------------------------
$PY - "$OUT" <<'EOF'
import json, os, sys
out = sys.argv[1]
def load(name):
    try:
        return json.loads(open(os.path.join(out, name)).read().strip().splitlines()[-1])
    except Exception:
        return None
card = open(os.path.join(out, "card.txt")).read().strip()
peak = load("peak.json")
print()
print("=" * 100)
print(f"card: {card}")
if peak:
    print(f"measured ceilings: f16 GEMM {peak['f16_tflops']} TFLOP/s, int8 GEMM {peak['i8_tops']} TOP/s, "
          f"copy {peak['copy_tbps']} TB/s (8192^3, cuBLASLt)")
# linear-layer parameters per token (2 FLOP each): layers x (H*E + QD*H + 3*H*I)
shapes = {"06b": 28 * (1024 * 4096 + 2048 * 1024 + 3 * 1024 * 3072),
          "8b": 36 * (4096 * 6144 + 4096 * 4096 + 3 * 4096 * 12288)}
print(f"{'run':24s} {'tokens/s':>10s} {'pairs/s':>9s} {'b1 ms':>8s} {'x HF tok/s':>10s} "
      f"{'x HF b1':>8s} {'%f16 peak':>9s} {'dev MiB':>9s}")
for shape in ("06b", "8b"):
    hf = load(f"bench_{shape}_hf.json")
    names = [f"{shape}_f16", f"{shape}_int8", f"{shape}_int8_w8a16", f"{shape}_f16_simple_attn"]
    for n in names + [f"{shape}_hf"]:
        r = load(f"bench_{n}.json")
        if not r:
            if os.path.exists(os.path.join(out, f"bench_{n}.log")):
                print(f"{n:24s} FAILED (see bench_{n}.log)")
            continue
        ratio = f"{r['tokens_per_s'] / hf['tokens_per_s']:.2f}" if hf and n != f"{shape}_hf" else "-"
        ratio1 = f"{hf['latency_one_pair_s'] / r['latency_one_pair_s']:.2f}" if hf and n != f"{shape}_hf" else "-"
        comp = r.get("tokens_computed", r["tokens"])
        frac = "-"
        if peak:
            flops = 2.0 * shapes[shape] * comp / r["seconds"]
            frac = f"{100 * flops / (peak['f16_tflops'] * 1e12):.0f}%"
        mem = r.get("ctx_device_mib", r.get("max_memory_mib", 0))
        print(f"{n:24s} {r['tokens_per_s']:10.0f} {r['pairs_per_s']:9.1f} "
              f"{1e3 * r['latency_one_pair_s']:8.2f} {ratio:>10s} {ratio1:>8s} {frac:>9s} {mem:9.0f}")
par = load("parity_06b.json")
if par:
    print("0.6B parity vs Transformers fp32 (|dlogit| max / median, |dscore| max):")
    for k, v in par.items():
        print(f"  {k:18s} " + ("no result" if not v else f"{v[0]:.3g} / {v[1]:.3g}, {v[2]:.3g} {'PASS' if v[3] else 'FAIL'}"))
print("steps:", " ".join(f"{l.split()[0]}={l.split()[1]}" for l in open(os.path.join(out, "steps.txt"))))
print("(%f16 peak: linear-layer FLOPs of the tokens computed, prefix shared once, over the measured f16 GEMM rate;"
      " b1 = one pair of 256 tokens; dev MiB = device memory the context took)")
EOF
say "done; logs in $OUT"
