#!/usr/bin/env bash
# gpu_check.sh — the GPU check, copied by `make gpu-kit` to build/gpu-kit/run.sh: run from the
# kit alone on a bare GPU machine (no build, no ../shared, no network), it checks the CUDA path
# and benchmarks it against Transformers within one deadline, and after every step rewrites
# $OUT/summary.txt (a table: step, status, seconds, key figure) and $OUT/logs.tgz.
# `make gpu-dryrun` runs it with --device cpu, the CPU standing in for every GPU step.
#
#   bash build/gpu-kit/run.sh [--device cuda|cpu] [--deadline S] [--no-8b] [--disk-8b GB]
#        [--min-left-8b S] [--shape06 "QGEN ARGS"] [--shape8b "QGEN ARGS"] [--pairs N]
#        [--bench-pairs N] [--bench-repeat N] [--libs-only]
#   OUT (default /tmp/qrr-gpu-out): summary.txt and logs.tgz, nothing else (6 files at most)
#   QRR_KIT_WORK (default /tmp/qrr-kit): logs, unpacked reference data, generated models
#   PYTHON (default python3): the Python with torch and transformers
# Exit: 0 no step failed, 1 a step failed, 2 stopped early (preflight or sanity failed),
# 3 usage. docs/cuda.md says how to run it on a GPU machine and how to read the summary.
set -u
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

# ---- helpers shared by the driver and the steps ---------------------------------------
elapsed() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( DEADLINE - $(elapsed) )); }
# key TEXT: the step's key figure for the summary (one line)
key() { printf '%s\n' "$*" | tr '\t\n' '  ' > "$WORK/key/$STEP"; }
# skip REASON: end the step as skipped
skip() { key "$*"; exit 3; }
die() { key "$*"; echo "FAIL: $*"; exit 1; }
# j FILE FIELD: a top-level field of the last JSON line of FILE
j() { "$PY" -c 'import json,sys
l=[x for x in open(sys.argv[1]) if x.startswith("{")]
v=json.loads(l[-1]).get(sys.argv[2]) if l else None
print("" if v is None else (f"{v:.0f}" if isinstance(v, float) and abs(v) >= 100 else f"{v:.3g}" if isinstance(v, float) else v))' "$1" "$2" 2>/dev/null; }
# torch_py ARGS: Python for the steps that import torch, with the LD_LIBRARY_PATH the kit was
# started with: the CUDA directory check_libs adds for our programs could hand torch an older
# libcublasLt of the same major version than the one its wheel ships (undefined symbols)
torch_py() { LD_LIBRARY_PATH=${QRR_CALLER_LD_PATH-${LD_LIBRARY_PATH:-}} "$PY" "$@"; }
# check_line FILE: "15/15 lines, |dlogit| max 1e-6 median ..." from a `qrr check` report
check_line() {
    local lines worst med
    lines=$(sed -n 's/^  lines  *\([0-9]*\) checked, \([0-9]*\) within.*/\2\/\1/p' "$1")
    worst=$(sed -n 's/^  delta error  *worst \([^ ]*\).*/\1/p' "$1")
    med=$(sed -n 's/^  delta error.*median \([^ ]*\)$/\1/p' "$1")
    echo "${lines:-?} lines, |dlogit| max ${worst:-?} median ${med:-?}"
}

SYSTEM_LIBS=" linux-vdso.so.1 ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libdl.so.2 librt.so.1 \
libpthread.so.0 libstdc++.so.6 libgcc_s.so.1 "
# where the CUDA toolkit's libraries may be on a GPU machine
lib_dirs() {
    local d
    for d in ${CUDA_HOME:+$CUDA_HOME/lib64} /usr/local/cuda/lib64 \
             /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-*/lib64 \
             /usr/lib/x86_64-linux-gnu; do
        [ -d "$d" ] && echo "$d"
    done
    "$PY" -c 'import nvidia, os
for p in nvidia.__path__:
    for s in ("cu13/lib", "cublas/lib", "cuda_runtime/lib"): print(os.path.join(p, s))' \
        2>/dev/null | while read -r d; do [ -d "$d" ] && echo "$d"; done
}

# check_libs: make every library the kit's programs need resolve (adding the CUDA toolkit's
# directory to LD_LIBRARY_PATH), then hold each program's libraries to what may come from
# outside the kit: glibc, libstdc++, libgcc and the CUDA toolkit. Prints a line per program.
check_libs() {
    local bad=0 p lib d found line name path
    for lib in $(for p in "$KIT"/bin/*; do ldd "$p" 2>/dev/null; done |
                 sed -n 's/^[[:space:]]*\([^ ]*\) => not found.*/\1/p' | sort -u); do
        found=""
        for d in $(lib_dirs); do
            if [ -e "$d/$lib" ]; then found=$d; break; fi
        done
        if [ -n "$found" ]; then
            export LD_LIBRARY_PATH=$found${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
            echo "  $lib: found in $found (added to LD_LIBRARY_PATH)"
        else
            echo "  $lib: NOT FOUND; looked in: $(lib_dirs | tr '\n' ' ')and the loader's paths"
            bad=1
        fi
    done
    for p in "$KIT"/bin/*; do
        local sys=0 kit=0 cuda="" other=""
        while read -r line; do
            name=${line%% *}; name=${name##*/}
            path=$(echo "$line" | sed -n 's/.*=> \([^ ]*\).*/\1/p')
            case $line in
                *"not found"*) other="$other $name(not found)" ;;
                *"statically linked"*|*"not a dynamic"*) ;;
                *) if [ -n "$path" ] && [ "${path#"$KIT"/}" != "$path" ]; then kit=$((kit + 1))
                   elif [ "${SYSTEM_LIBS#* "$name" }" != "$SYSTEM_LIBS" ]; then sys=$((sys + 1))
                   else case $name in
                            libcublasLt.so.*|libcublas.so.*|libcudart.so.*|libcuda.so.*)
                                cuda="$cuda $name=$path" ;;
                            *) other="$other $name=${path:-?}" ;;
                        esac
                   fi ;;
            esac
        done < <(ldd "$p" 2>&1)
        if [ -n "$other" ]; then
            echo "  bin/${p##*/}: BAD, needs what the kit does not hold:$other"
            bad=1
        else
            echo "  bin/${p##*/}: ok ($sys from glibc/libstdc++/libgcc, $kit from the kit;" \
                 "CUDA toolkit:${cuda:- none})"
        fi
    done
    return $bad
}

# ---- the steps (each runs as `run.sh --step NAME` under a time limit) -------------------
# Each writes its log to stdout and its key figure with `key`; exit 0 ok, 3 skipped, else
# failed. The driver's settings come in the environment.

step_preflight() {
    echo "== kit"; cat "$KIT/MANIFEST"
    echo "== machine"; uname -a; ldd --version 2>&1 | head -n 1; nproc
    local card="cpu mode: no GPU asked for"
    if [ "$DEVICE" = cuda ]; then
        echo "== nvidia-smi"
        command -v nvidia-smi >/dev/null || die "nvidia-smi not found on PATH ($PATH)"
        nvidia-smi || die "nvidia-smi failed (exit $?)"
        card=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader |
               head -n 1) || die "nvidia-smi could not name the card"
    fi
    echo "== disk"; df -h "$WORK" /tmp
    local free_gb
    free_gb=$(df -Pk "$WORK" | awk 'NR == 2 { printf "%d", $4 / 1048576 }')
    echo "== libraries"
    check_libs || die "a program's libraries do not resolve: $(grep -h 'BAD\|NOT FOUND' "$LOG/preflight.log" 2>/dev/null | head -n 2 | tr -s ' ')"
    echo "== programs start"
    local p
    for p in "qrr --version" "qconvert --version" "qgen --help" "gpu_bench --help" \
             "gemm_peak --help"; do
        # shellcheck disable=SC2086
        "$KIT"/bin/$p > "$WORK/tmp.out" 2>&1 || { cat "$WORK/tmp.out"; die "bin/$p failed to run"; }
        head -n 1 "$WORK/tmp.out"
    done
    echo "== compute-sanitizer"
    local san=""
    for p in "$(command -v compute-sanitizer)" ${CUDA_HOME:+$CUDA_HOME/bin/compute-sanitizer} \
             /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer \
             /usr/local/cuda-*/bin/compute-sanitizer /opt/nvidia/*/compute-sanitizer*/compute-sanitizer; do
        if [ -n "$p" ] && [ -x "$p" ]; then san=$p; break; fi
    done
    echo "${san:-not found (looked on PATH, in \$CUDA_HOME/bin, /usr/local/cuda*/, /opt/nvidia/)}"
    echo "== python"
    local torch
    torch=$(torch_py -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, "cuda" if torch.cuda.is_available() else "no cuda")' 2>&1 | tail -n 1)
    echo "$PY: $torch"
    {
        echo "export LD_LIBRARY_PATH='${LD_LIBRARY_PATH:-}'"
        echo "SANITIZER='$san'"
        case $torch in torch*) echo "HAVE_TORCH=1" ;; *) echo "HAVE_TORCH=" ;; esac
        echo "CARD='${card//\'/}'"
        echo "FREE_GB=$free_gb"
    } > "$WORK/env.sh"
    command -v "$PY" >/dev/null || die "$PY not found: the comparisons need Python 3"
    key "$card; ${free_gb} GB free; libraries ok; compute-sanitizer: ${san:-NOT FOUND}; $torch"
}

# unpack the reference data, convert the tiny models, one CPU check: what every later step needs
step_sanity() {
    local ref=$WORK/ref t0 stamp
    t0=$(date +%s)
    stamp=$(cksum < "$KIT/data/reference.tar.xz")
    if [ "$(cat "$ref/.unpacked" 2>/dev/null)" != "$stamp" ]; then
        rm -rf "$ref" && mkdir -p "$ref" || die "cannot create $ref"
        if command -v xz >/dev/null; then
            tar -xJf "$KIT/data/reference.tar.xz" -C "$ref" || die "cannot unpack the reference data"
        else
            "$PY" -m tarfile -e "$KIT/data/reference.tar.xz" "$ref" ||
                die "cannot unpack the reference data (no xz; $PY -m tarfile failed)"
        fi
        echo "$stamp" > "$ref/.unpacked"
    fi
    local f
    for f in tokenizer/tokenizer.json tokenizer/tokenizer_config.json scores_public.jsonl \
             models/tiny-tied/config.json models/tiny-untied/config.json \
             models/tiny-seqcls/config.json; do
        [ -f "$ref/$f" ] || die "the reference data lacks $f"
    done
    echo "unpacked in $(( $(date +%s) - t0 ))s"
    local m d conv=0
    mkdir -p "$WORK/tiny"
    for m in tiny-tied tiny-untied tiny-seqcls; do
        d=$WORK/tiny/$m
        rm -rf "$d" && mkdir -p "$d" && ln -s "$ref/models/$m"/* "$ref/tokenizer"/* "$d"/ ||
            die "cannot lay out $d"
    done
    # "model dtype [qconvert args]", all converted at once
    local pids=() specs=("tiny-tied f16" "tiny-tied int8" "tiny-tied bf16" "tiny-untied f16"
        "tiny-untied int8" "tiny-seqcls f16" "tiny-seqcls int8" "tiny-seqcls f32"
        "tiny-tied int8b16 --dtype int8 --quant-block 16")
    local s name dt extra
    for s in "${specs[@]}"; do
        read -r name dt extra <<< "$s"
        # shellcheck disable=SC2086
        "$KIT/bin/qconvert" "$WORK/tiny/$name" -o "$WORK/tiny/$name-$dt.qrr" \
            ${extra:---dtype $dt} --quiet &
        pids+=($!)
    done
    for s in "${pids[@]}"; do wait "$s" && conv=$((conv + 1)); done
    [ "$conv" = "${#specs[@]}" ] || die "qconvert failed on $(( ${#specs[@]} - conv )) of ${#specs[@]} tiny models"
    ls -l "$WORK/tiny"/*.qrr
    "$KIT/bin/qrr" info "$WORK/tiny/tiny-tied-f16.qrr" | head -n 20
    "$KIT/bin/qrr" check "$WORK/tiny/tiny-tied-f16.qrr" "$ref/scores_public.jsonl" \
        --model tiny-tied --device cpu --show 2 > "$WORK/tmp.out" 2>&1
    local rc=$?
    cat "$WORK/tmp.out"
    [ $rc = 0 ] || die "tiny-tied f16 on the CPU does not match the reference: $(check_line "$WORK/tmp.out")"
    # The CUDA module (bin/libqrr_cuda.so.0) must load, in either mode: without a GPU the error
    # is then the module's own "no CUDA device"; "no CUDA module" means the kit is broken.
    local cuda score_rc
    "$KIT/bin/qrr" score "$WORK/tiny/tiny-tied-f16.qrr" --device cuda \
        < "$KIT/data/shared_query.jsonl" > /dev/null 2> "$WORK/tmp.err"
    score_rc=$?
    cat "$WORK/tmp.err"
    grep -q "no CUDA module" "$WORK/tmp.err" &&
        die "the CUDA module did not load: $(head -c 400 "$WORK/tmp.err")"
    # a crash leaves tmp.err empty (the shell reports the signal): the exit status tells
    if [ -s "$WORK/tmp.err" ]; then cuda="loads (here: $(head -n 1 "$WORK/tmp.err" | cut -c 1-80))"
    elif [ "$score_rc" != 0 ]; then cuda="loads, but qrr score exited $score_rc"
    else cuda="loads and scores"; fi
    key "data unpacked, ${#specs[@]} tiny files converted in $(( $(date +%s) - t0 ))s;" \
        "tiny-tied f16 on the CPU: $(check_line "$WORK/tmp.out"); CUDA module $cuda"
}

step_gemm_probe() {
    [ "$DEVICE" = cuda ] || skip "needs a GPU (ran only 'gemm_peak --help' in the preflight)"
    "$KIT/bin/gemm_peak" | tee "$LOG/gemm_peak.jsonl"
    local rc=${PIPESTATUS[0]} summary
    summary=$(grep '"f16_tflops"' "$LOG/gemm_peak.jsonl" | tail -n 1)
    [ -n "$summary" ] || die "gemm_peak printed no summary (exit $rc)"
    echo "$summary" > "$LOG/peak.json"
    key "f16 $(j "$LOG/peak.json" f16_tflops) TFLOP/s, int8 $(j "$LOG/peak.json" i8_tops) TOP/s," \
        "copy $(j "$LOG/peak.json" copy_tbps) TB/s; m=1,3,16,17,32 x 3 widths:" \
        "$(j "$LOG/peak.json" probes_wrong) wrong, $(j "$LOG/peak.json" int8_refused) int8 refused"
    return "$rc"
}

# parity VARIANT: qrr check of the tiny models' files for one kernel variant
step_parity() {
    local variant=$1 files=() want_i8="" want_att="" f m out rc=0 worst="" nl=0 np=0 desc
    case $variant in
        f16_tc)     export QRR_CUDA_ATTENTION=tc; want_att=tc
                    files=(tiny-tied-f16 tiny-untied-f16 tiny-seqcls-f16) ;;
        f16_simple) export QRR_CUDA_ATTENTION=simple; want_att=simple
                    files=(tiny-tied-f16 tiny-untied-f16 tiny-seqcls-f16) ;;
        int8_w8a8)  export QRR_CUDA_INT8=w8a8; want_i8=w8a8
                    files=(tiny-tied-int8 tiny-untied-int8 tiny-seqcls-int8) ;;
        int8_w8a16) export QRR_CUDA_INT8=w8a16; want_i8=w8a16
                    files=(tiny-tied-int8 tiny-untied-int8 tiny-seqcls-int8 tiny-tied-int8b16) ;;
        upload)     files=(tiny-tied-bf16 tiny-seqcls-f32) ;;
        graphs)     export QRR_CUDA_GRAPHS=always  # every case captured, then launched
                    files=(tiny-tied-f16 tiny-untied-f16 tiny-seqcls-f16 tiny-tied-int8
                           tiny-seqcls-int8) ;;
        tune)       export QRR_CUDA_GEMM_TUNE=1  # cuBLASLt's candidates timed per shape
                    files=(tiny-tied-f16 tiny-untied-f16 tiny-seqcls-f16 tiny-tied-int8
                           tiny-seqcls-int8) ;;
    esac
    [ "$variant" = graphs ] || export QRR_CUDA_SYNC=1  # (no graphs under QRR_CUDA_SYNC)
    for f in "${files[@]}"; do
        m=${f%-*}
        out=$LOG/parity_${variant}_$f.txt
        "$KIT/bin/qrr" check "$WORK/tiny/$f.qrr" "$WORK/ref/scores_public.jsonl" --model "$m" \
            --device "$DEVICE" --show 3 > "$out" 2>&1 || rc=1
        echo "== $f"; cat "$out"
        nl=$(( nl + $(sed -n 's/^  lines  *\([0-9]*\) checked.*/\1/p' "$out" | head -n 1) + 0 ))
        np=$(( np + $(sed -n 's/^  lines  *[0-9]* checked, \([0-9]*\) within.*/\1/p' "$out" | head -n 1) + 0 ))
        worst="$worst ${f#tiny-} $(sed -n 's/^  delta error  *worst \([^ ]*\).*/\1/p' "$out")"
        desc=$(sed -n 's/^  device  *//p' "$out")
        if [ "$DEVICE" = cuda ]; then
            # the variant asked for must be the one that ran (w8a8 may have moved some
            # weights to W8A16 where cuBLASLt refused them: the description counts them)
            if [ -n "$want_i8" ] && [ "${desc#*int8 $want_i8}" = "$desc" ]; then
                echo "FAIL: $f ran '$desc', not int8 $want_i8"; rc=1
            fi
            if [ -n "$want_att" ] && [ "${desc#*attention $want_att;}" = "$desc" ]; then
                echo "FAIL: $f ran '$desc', not attention $want_att"; rc=1
            fi
            if [ "$variant" = graphs ] && ! graphs_ran "$desc" always; then
                echo "FAIL: $f ran '$desc', not from captured graphs"; rc=1
            fi
            if [ "$variant" = tune ] && [ "${desc#*GEMM tuning on}" = "$desc" ]; then
                echo "FAIL: $f ran '$desc', without GEMM tuning"; rc=1
            elif [ "$variant" = tune ] && [ "${desc#*GEMM tuning on (0 shapes}" != "$desc" ]; then
                # not a failure (a shape with one candidate is not timed), but then this step
                # did not check tuned products at all
                echo "NOTE: $f: GEMM tuning on, but no shape was timed"
            fi
        fi
    done
    [ "$DEVICE" = cuda ] && desc=$(echo "$desc" | cut -d';' -f2,3,4)
    key "$np/$nl lines within tolerance; |dlogit| max:$worst; ${desc# }"
    return $rc
}

# device_tolerances DTYPE: tl and ts, the |dlogit| and score bounds of the device against
# the CPU (docs/ci.md's f16 and int8 ones; the CPU against itself in the dry run)
device_tolerances() {
    if [ "$1" = int8 ]; then tl=0.25 ts=0.06; else tl=0.05 ts=5e-3; fi
    if [ "$DEVICE" = cpu ] && [ "$1" = f16 ]; then tl=1e-4 ts=1e-5; fi
}

# prefix DTYPE: tiny-tied, 8 documents sharing one query: the device with and without
# prefix sharing and in small chunks (and with the simple attention), against the CPU
step_prefix() {
    local dt=$1 m=$WORK/tiny/tiny-tied-$1.qrr q=$KIT/data/shared_query.jsonl rc=0 tl ts
    local d=$LOG/prefix_$dt
    mkdir -p "$d"
    device_tolerances "$dt"
    export QRR_CUDA_SYNC=1
    "$KIT/bin/qrr" score "$m" --device cpu < "$q" > "$d/cpu.jsonl" || die "the CPU run failed"
    "$KIT/bin/qrr" score "$m" --device "$DEVICE" < "$q" > "$d/shared.jsonl" || rc=1
    "$KIT/bin/qrr" score "$m" --device "$DEVICE" --no-share-prefix < "$q" > "$d/unshared.jsonl" || rc=1
    "$KIT/bin/qrr" score "$m" --device "$DEVICE" --max-batch-tokens 96 < "$q" > "$d/chunked.jsonl" || rc=1
    QRR_CUDA_ATTENTION=simple "$KIT/bin/qrr" score "$m" --device "$DEVICE" < "$q" > "$d/simple.jsonl" || rc=1
    local v line keyline=""
    for v in shared unshared chunked simple; do
        line=$("$PY" "$KIT/py/score_diff.py" "$d/$v.jsonl" "$d/cpu.jsonl" --tol-logit "$tl" \
               --tol-score "$ts" --name "$DEVICE $v vs cpu") || rc=1
        echo "$line"
        keyline="$keyline $v $(echo "$line" | sed -n 's/.*|dlogit| max \([^ ]*\).*/\1/p')"
    done
    line=$("$PY" "$KIT/py/score_diff.py" "$d/unshared.jsonl" "$d/shared.jsonl" --tol-logit 0.05 \
           --tol-score 5e-3 --name "$DEVICE unshared vs shared") || rc=1
    echo "$line"
    key "8 docs, one query; |dlogit| vs the CPU:$keyline; unshared vs shared" \
        "$(echo "$line" | sed -n 's/.*|dlogit| max \([^ ]*\).*: \([A-Z]*\).*/\1 \2/p')" \
        "(tol $tl)"
    return $rc
}

# graphs_ran DESCRIPTION MODE: the context ran with QRR_CUDA_GRAPHS=MODE, captured at least
# one graph, launched forwards from graphs and never turned them off
graphs_ran() {
    local g
    g=$(echo "$1" | sed -n "s/.*graphs $2 (\([0-9]*\) captured, \([0-9]*\) graph launches).*/\1 \2/p")
    [ -n "$g" ] && [ "${g% *}" -ge 1 ] && [ "${g#* }" -ge 1 ] && [ "${1#*turned off}" = "$1" ]
}

# graphs DTYPE: tiny-tied, one-prompt requests of one shape but different tokens (the last 64
# ids of each distinct reference prompt, --batch 1), so that a captured graph is launched
# again on new ids: QRR_CUDA_GRAPHS=0, auto and always against the CPU, and graphs against none
step_graphs() {
    local dt=$1 m=$WORK/tiny/tiny-tied-$1.qrr q=$WORK/graph_prompts.jsonl rc=0 tl ts
    local d=$LOG/graphs_$dt v line desc keyline=""
    mkdir -p "$d"
    device_tolerances "$dt"
    "$PY" -c 'import json, sys
seen = set()
for line in open(sys.argv[1], encoding="utf-8"):
    ids = json.loads(line)["ids"] if line.strip() else []
    if len(ids) >= 64 and tuple(ids) not in seen:
        seen.add(tuple(ids))
        print(json.dumps({"ids": ids[-64:]}))' "$WORK/ref/scores_public.jsonl" > "$q" ||
        die "no prompts for the graph runs"
    echo "$(wc -l < "$q") requests of 64 tokens"
    "$KIT/bin/qrr" score "$m" --device cpu --batch 1 < "$q" > "$d/cpu.jsonl" || die "the CPU run failed"
    for v in 0 auto always; do
        QRR_CUDA_GRAPHS=$v "$KIT/bin/qrr" score "$m" --device "$DEVICE" --batch 1 --describe \
            < "$q" > "$d/$v.jsonl" 2> "$d/$v.err" || rc=1
        cat "$d/$v.err"
        desc=$(sed -n 's/^qrr score: context: //p' "$d/$v.err")
        if [ "$DEVICE" = cuda ] && [ "$v" != 0 ] && ! graphs_ran "$desc" "$v"; then
            echo "FAIL: QRR_CUDA_GRAPHS=$v ran '$desc'"; rc=1
        fi
        line=$("$PY" "$KIT/py/score_diff.py" "$d/$v.jsonl" "$d/cpu.jsonl" --tol-logit "$tl" \
               --tol-score "$ts" --name "$DEVICE graphs=$v vs cpu") || rc=1
        echo "$line"
        keyline="$keyline ${v/#0/off} $(echo "$line" | sed -n 's/.*|dlogit| max \([^ ]*\).*/\1/p')"
    done
    line=$("$PY" "$KIT/py/score_diff.py" "$d/always.jsonl" "$d/0.jsonl" --tol-logit "$tl" \
           --tol-score "$ts" --name "$DEVICE graphs always vs off") || rc=1
    echo "$line"
    key "$(wc -l < "$q") one-prompt requests of one shape; |dlogit| vs the CPU:$keyline; always vs off" \
        "$(echo "$line" | sed -n 's/.*|dlogit| max \([^ ]*\).*/\1/p');" \
        "$(echo "$desc" | sed -n 's/.*\(graphs always ([^)]*)\).*/\1/p')"
    return $rc
}

# memcheck DTYPE: compute-sanitizer on tiny-tied, the 8 documents, two kernel variants each
step_memcheck() {
    local dt=$1 rc=0 v errs="" n
    [ "$DEVICE" = cuda ] || skip "needs a GPU (compute-sanitizer)"
    [ -n "$SANITIZER" ] || skip "compute-sanitizer not found (see the preflight log)"
    local variants=("QRR_CUDA_ATTENTION=tc" "QRR_CUDA_ATTENTION=simple")
    [ "$dt" = int8 ] && variants=("QRR_CUDA_INT8=w8a8" "QRR_CUDA_INT8=w8a16")
    for v in "${variants[@]}"; do
        echo "== $v"
        env "$v" "$SANITIZER" --tool memcheck --leak-check no --error-exitcode 9 --print-limit 20 \
            "$KIT/bin/qrr" score "$WORK/tiny/tiny-tied-$dt.qrr" --device cuda \
            < "$KIT/data/shared_query.jsonl" > "$LOG/memcheck_${dt}_${v#*=}.txt" 2>&1 || rc=1
        cat "$LOG/memcheck_${dt}_${v#*=}.txt"
        # seen on gVisor machines: the sanitizer cannot attach to the card at all there
        grep -q "Device not supported" "$LOG/memcheck_${dt}_${v#*=}.txt" &&
            skip "compute-sanitizer says 'Device not supported' (this machine's runtime, not qrr; it ran on Firecracker machines)"
        n=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) error.*/\1/p' "$LOG/memcheck_${dt}_${v#*=}.txt" | tail -n 1)
        errs="$errs ${v#*=} ${n:-?} errors,"
    done
    key "memcheck:${errs%,}"
    return $rc
}

# gen_shape NAME "QGEN SHAPE ARGS" WHAT: qgen into $WORK/NAME, then NAME-f16.qrr and
# NAME-int8.qrr converted side by side
gen_shape() {
    local name=$1 shape=$2 what=$3 rc=0 start
    start=$(date +%s)
    rm -rf "${WORK:?}/$name" "$WORK/$name"-*.qrr
    # shellcheck disable=SC2086
    "$KIT/bin/qgen" -o "$WORK/$name" $shape --tokenizer "$WORK/ref/tokenizer" --quiet ||
        die "qgen $shape failed"
    echo "generated in $(( $(date +%s) - start ))s"
    "$KIT/bin/qconvert" "$WORK/$name" -o "$WORK/$name-f16.qrr" --dtype f16 --quiet & local a=$!
    "$KIT/bin/qconvert" "$WORK/$name" -o "$WORK/$name-int8.qrr" --dtype int8 --quiet & local b=$!
    wait $a || rc=1; wait $b || rc=1
    [ $rc = 0 ] || die "qconvert of the $what shape failed"
}

step_gen_06b() {
    local t0
    t0=$(date +%s)
    gen_shape m06 "$SHAPE06" 0.6B
    # 32 documents of 300 words (the tiny model writes them); every prompt cut to 256 tokens
    "$KIT/bin/qrr" bench "$WORK/tiny/tiny-tied-f16.qrr" --docs 32 --min-words 300 \
        --max-words 300 --repeat 1 --write-workload "$WORK/work.jsonl" > /dev/null ||
        die "qrr bench --write-workload failed"
    head -n "$PAIRS06" "$WORK/work.jsonl" | sed 's/}$/,"max_length":256}/' > "$WORK/pairs06.jsonl"
    cat "$WORK/m06/config.json"; ls -l "$WORK/m06" "$WORK"/m06-*.qrr
    key "qgen $SHAPE06: $(sed -n 's/.*"num_hidden_layers": *\([0-9]*\).*/\1/p' "$WORK/m06/config.json") layers," \
        "$(du -m "$WORK/m06-f16.qrr" | cut -f1) MB f16, $(du -m "$WORK/m06-int8.qrr" | cut -f1) MB int8," \
        "in $(( $(date +%s) - t0 ))s; $PAIRS06 pairs of 256 tokens"
}

need_06b() { [ -f "$WORK/m06-f16.qrr" ] && [ -f "$WORK/m06-int8.qrr" ] || skip "no 0.6B-shape files (gen_06b did not finish)"; }

# the Transformers fp32 reference on the CPU, in the schema `qrr check` reads
step_ref_06b() {
    need_06b
    [ -n "$HAVE_TORCH" ] || skip "needs torch and transformers ($PY cannot import them)"
    torch_py "$KIT/py/reference_scores.py" "$WORK/m06" "$WORK/pairs06.jsonl" --model-name m06 \
        -o "$LOG/ref_06b.jsonl" || die "reference_scores.py failed"
    key "Transformers fp32 on the CPU, $(wc -l < "$LOG/ref_06b.jsonl") pairs"
}

step_parity_06b() {
    need_06b
    [ -s "$LOG/ref_06b.jsonl" ] || skip "no Transformers reference (ref_06b did not run)"
    local rc=0 v f k=""
    export QRR_CUDA_SYNC=1
    for v in "f16 tc" "f16 simple" "int8 w8a8" "int8 w8a16"; do
        set -- $v
        local tol=()
        [ "$DEVICE" = cpu ] && [ "$1" = f16 ] && tol=(--tol-logit 1e-3 --tol-score 1e-4)
        f=$LOG/parity_06b_$1_$2.txt
        QRR_CUDA_ATTENTION=$([ "$2" = simple ] && echo simple || echo tc) \
        QRR_CUDA_INT8=$([ "$2" = w8a16 ] && echo w8a16 || echo w8a8) \
            "$KIT/bin/qrr" check "$WORK/m06-$1.qrr" "$LOG/ref_06b.jsonl" --device "$DEVICE" \
            --no-verify --show 3 "${tol[@]}" > "$f" 2>&1 || rc=1
        echo "== $v"; cat "$f"
        k="$k $1/$2 $(check_line "$f" | sed 's/ lines, |dlogit| max/:/; s/ median.*//'),"
    done
    key "vs Transformers fp32 (lines ok: |dlogit| max):${k%,}"
    return $rc
}

# the same pairs on the CPU and on the device, f16 and int8, and unshared on the device
step_cpu_vs_cuda_06b() {
    need_06b
    local rc=0 dt line k="" tl ts d=$LOG/cpu_vs_cuda_06b
    mkdir -p "$d"
    export QRR_CUDA_SYNC=1
    for dt in f16 int8; do
        [ "$dt" = int8 ] && { tl=0.25; ts=0.06; } || { tl=0.05; ts=5e-3; }
        "$KIT/bin/qrr" score "$WORK/m06-$dt.qrr" --device cpu --no-verify \
            < "$WORK/pairs06.jsonl" > "$d/cpu_$dt.jsonl" || rc=1
        "$KIT/bin/qrr" score "$WORK/m06-$dt.qrr" --device "$DEVICE" --no-verify \
            < "$WORK/pairs06.jsonl" > "$d/dev_$dt.jsonl" || rc=1
        "$KIT/bin/qrr" score "$WORK/m06-$dt.qrr" --device "$DEVICE" --no-verify --no-share-prefix \
            < "$WORK/pairs06.jsonl" > "$d/dev_unshared_$dt.jsonl" || rc=1
        line=$("$PY" "$KIT/py/score_diff.py" "$d/dev_$dt.jsonl" "$d/cpu_$dt.jsonl" --tol-logit "$tl" \
               --tol-score "$ts" --name "$dt $DEVICE vs cpu") || rc=1
        echo "$line"; k="$k $dt $(echo "$line" | sed -n 's/.*|dlogit| max \([^ ]*\).*/\1/p')"
        line=$("$PY" "$KIT/py/score_diff.py" "$d/dev_unshared_$dt.jsonl" "$d/dev_$dt.jsonl" \
               --tol-logit 0.05 --tol-score 5e-3 --name "$dt $DEVICE unshared vs shared") || rc=1
        echo "$line"; k="$k (unshared $(echo "$line" | sed -n 's/.*|dlogit| max \([^ ]*\).*/\1/p')),"
    done
    key "$PAIRS06 pairs, |dlogit| $DEVICE vs cpu:${k%,}"
    return $rc
}

# bench SHAPE DTYPE ENV: our throughput and batch-1 latency (bench/gpu_bench.c)
step_bench() {
    local shape=$1 dt=$2 envv=$3 model=$WORK/m$1-$2.qrr out
    shift 3 # the rest: more gpu_bench options
    [ -f "$model" ] || skip "no $model (its generation did not finish)"
    out=$LOG/${STEP}.json
    env $envv "$KIT/bin/gpu_bench" "$model" "$WORK/work.jsonl" --pairs "$BENCH_PAIRS" \
        --max-length 256 --repeat "$BENCH_REPEAT" --device "$DEVICE" "$@" | tee "$LOG/$STEP.out"
    bench_json "${PIPESTATUS[0]}" gpu_bench "$out"
    key "$(bench_figures "$out")" \
        "context $(j "$out" ctx_device_mib) MiB; $(j "$out" context | cut -d';' -f2,3,4 | sed 's/^ //')"
}

# bench_json RC PROGRAM OUT: the last JSON line of the step's output into OUT, or die
bench_json() {
    grep '^{' "$LOG/$STEP.out" | tail -n 1 > "$3"
    [ "$1" = 0 ] && [ -s "$3" ] || die "$2 failed (exit $1)"
}

# bench_figures JSON: the figures every benchmark step's key starts with
bench_figures() {
    echo "$(j "$1" tokens_per_s) tok/s, $(j "$1" pairs_per_s) pairs/s, batch-1" \
        "$(awk -v s="$(j "$1" latency_one_pair_s)" 'BEGIN { printf "%.2f", 1e3 * s }') ms,"
}

# hf SHAPE [--official]: Transformers bf16 + sdpa on the card
step_hf() {
    local shape=$1 out=$LOG/${STEP}.json
    shift
    [ -n "$HAVE_TORCH" ] || skip "needs torch and transformers"
    [ -f "$WORK/m$shape/config.json" ] || skip "no $shape checkpoint"
    # the dry run's CPU stands in for the card: the same script, --device cpu
    torch_py "$KIT/py/transformers_gpu.py" "$WORK/m$shape" "$WORK/work.jsonl" --bench \
        --device "$DEVICE" --pairs "$BENCH_PAIRS" --max-length 256 --repeat "$BENCH_REPEAT" \
        "$@" | tee "$LOG/$STEP.out"
    bench_json "${PIPESTATUS[0]}" transformers_gpu.py "$out"
    key "$(bench_figures "$out")" "max $(j "$out" max_memory_mib) MiB, load $(j "$out" load_s)s"
}

# the 8B shape, in the background from the start: generate, convert f16 and int8
step_gen_8b() {
    local t0
    t0=$(date +%s)
    gen_shape m8b "$SHAPE8B" 8B
    ls -l "$WORK/m8b" "$WORK"/m8b-*.qrr
    key "qgen $SHAPE8B + qconvert f16/int8 in the background, $(( $(date +%s) - t0 ))s"
}

# ---- the driver -------------------------------------------------------------------------

# record NAME STATUS SECONDS KEY
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$WORK/steps.tsv"; }

write_summary() { # [RUNNING_STEP LIMIT]
    local f=$OUT/summary.txt.part n s t k
    {
        echo "qrr GPU check: $(head -n 1 "$KIT/MANIFEST")"
        echo "device $DEVICE: ${CARD:-?}"
        echo "deadline ${DEADLINE}s, elapsed $(elapsed)s, state: $STATE"
        echo
        printf '%-22s %-8s %5s  %s\n' step status secs "key figure"
        while IFS=$'\t' read -r n s t k; do
            printf '%-22s %-8s %5s  %s\n' "$n" "$s" "$t" "$k"
        done < "$WORK/steps.tsv"
        if [ -n "${1:-}" ]; then printf '%-22s %-8s %5s  %s\n' "$1" running "-" "limit ${2}s"; fi
        if [ -n "$BG_PID" ]; then printf '%-22s %-8s %5s  %s\n' gen_8b running "-" "in the background since ${BG_T0}s"; fi
        if [ -s "$WORK/table.txt" ]; then echo; cat "$WORK/table.txt"; fi
        echo
        awk -F'\t' '{ n[$2]++ } END { printf "steps: %d ok, %d FAIL, %d timeout, %d skipped\n", n["ok"], n["FAIL"], n["timeout"], n["skipped"] }' "$WORK/steps.tsv"
        echo "logs: logs.tgz (one log per step, JSON results); a step's FAIL line there ends its log"
    } > "$f" && mv -f "$f" "$OUT/summary.txt"
    cp -f "$OUT/summary.txt" "$LOG/summary.txt"
    tar -czf "$OUT/logs.tgz.part" -C "$WORK" logs && mv -f "$OUT/logs.tgz.part" "$OUT/logs.tgz"
}

say() { printf '[%4ss] %s\n' "$(elapsed)" "$*"; }

# run NAME LIMIT NEED [STEP ARGS...]: the step under min(LIMIT, time left); skipped when
# fewer than NEED seconds are left. Returns the step's status (0 ok, 3 skipped, else failed).
run() {
    local name=$1 limit=$2 need=$3 rem rc t0 secs status k
    shift 3
    rem=$(left)
    if [ "$rem" -lt "$need" ]; then
        record "$name" skipped 0 "deadline: needs about ${need}s, ${rem}s left"
        say "skip  $name (deadline: ${rem}s left)"
        write_summary
        return 3
    fi
    [ "$limit" -gt $((rem - 3)) ] && limit=$((rem - 3))
    [ "$limit" -ge 1 ] || limit=1
    write_summary "$name" "$limit"
    rm -f "$WORK/key/$name"
    t0=$(date +%s)
    STEP=$name timeout -k 5 "$limit" bash "$SELF" --step "$name" "$@" > "$LOG/$name.log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - t0 ))
    k=$(cat "$WORK/key/$name" 2>/dev/null)
    case $rc in
        0) status=ok ;;
        3) status=skipped ;;
        124|137) status=timeout; k="killed at its limit of ${limit}s${k:+; $k}" ;;
        *) status=FAIL; [ -n "$k" ] || k="exit $rc: $(grep -v '^\s*$' "$LOG/$name.log" | tail -n 1 | cut -c1-150)" ;;
    esac
    record "$name" "$status" "$secs" "$k"
    say "$(printf '%-7s %-22s %4ss  %s' "$status" "$name" "$secs" "$k")"
    if [ "$status" = FAIL ] || [ "$status" = timeout ]; then
        tail -n 12 "$LOG/$name.log" | sed 's/^/        | /'
    fi
    write_summary
    return $rc
}

start_bg_8b() {
    local why=""
    [ -n "$NO_8B" ] && why="--no-8b"
    [ -z "$why" ] && [ "${FREE_GB:-0}" -lt "$DISK_8B" ] && why="${FREE_GB} GB free, needs $DISK_8B GB"
    [ -z "$why" ] && [ "$(left)" -lt "$MIN_LEFT_8B" ] && why="$(left)s left, needs $MIN_LEFT_8B s"
    if [ -n "$why" ]; then
        record gen_8b skipped 0 "$why"; say "skip  gen_8b ($why)"; return
    fi
    BG_T0=$(elapsed)
    ( STEP=gen_8b timeout -k 5 $(( $(left) - 90 )) bash "$SELF" --step gen_8b \
          > "$LOG/gen_8b.log" 2>&1 &
      echo $! > "$WORK/bg/gen_8b.pid"
      wait $!
      echo "$? $(( $(elapsed) - BG_T0 ))" > "$WORK/bg/gen_8b.rc" ) &
    BG_PID=$!
    say "start gen_8b in the background ($SHAPE8B)"
}

# wait for the background 8B generation while at least NEED seconds would remain
join_bg_8b() {
    local need=$1 rc secs k status
    [ -n "$BG_PID" ] || return 1
    while [ ! -f "$WORK/bg/gen_8b.rc" ] && [ "$(left)" -gt "$need" ]; do sleep 2; done
    if [ ! -f "$WORK/bg/gen_8b.rc" ]; then
        stop_bg
        record gen_8b skipped "$(( $(elapsed) - BG_T0 ))" "not finished with ${need}s left; stopped"
        BG_PID=""
        return 1
    fi
    read -r rc secs < "$WORK/bg/gen_8b.rc"
    BG_PID=""
    k=$(cat "$WORK/key/gen_8b" 2>/dev/null)
    case $rc in 0) status=ok ;; 124|137) status=timeout ;; *) status=FAIL ;; esac
    record gen_8b "$status" "$secs" "${k:-exit $rc}"
    say "$status  gen_8b (${secs}s in the background)"
    [ "$rc" = 0 ]
}

stop_bg() { # end the background generation: its `timeout` passes the signal on to the step
    [ -f "$WORK/bg/gen_8b.pid" ] && kill "$(cat "$WORK/bg/gen_8b.pid")" 2>/dev/null
    wait "$BG_PID" 2>/dev/null
}

finish() {
    if [ -n "$BG_PID" ]; then
        stop_bg
        record gen_8b skipped "$(( $(elapsed) - BG_T0 ))" "stopped unfinished at the end of the run"
        BG_PID=""
    fi
    "$PY" "$KIT/py/gpu_report.py" "$WORK" > "$WORK/table.txt" 2> "$LOG/report.log" || true
    write_summary
}

usage() { sed -n '2,17p' "$SELF" | sed 's/^# \{0,1\}//'; exit 3; }

main() {
    DEVICE=cuda DEADLINE=420 NO_8B="" DISK_8B=50 SHAPE06="--shape 0.6b" SHAPE8B="--shape 8b"
    PAIRS06=16 BENCH_PAIRS=32 BENCH_REPEAT=10 LIBS_ONLY="" MIN_LEFT_8B=240
    while [ $# -gt 0 ]; do
        case $1 in
            --device) DEVICE=$2; shift ;;
            --deadline) DEADLINE=$2; shift ;;
            --no-8b) NO_8B=1 ;;
            --disk-8b) DISK_8B=$2; shift ;;
            --min-left-8b) MIN_LEFT_8B=$2; shift ;;
            --shape06) SHAPE06=$2; shift ;;
            --shape8b) SHAPE8B=$2; shift ;;
            --pairs) PAIRS06=$2; shift ;;
            --bench-pairs) BENCH_PAIRS=$2; shift ;;
            --bench-repeat) BENCH_REPEAT=$2; shift ;;
            --libs-only) LIBS_ONLY=1 ;;
            -h|--help) usage ;;
            *) echo "run.sh: unknown option $1" >&2; usage ;;
        esac
        shift
    done
    case $DEVICE in cuda|cpu) ;; *) echo "run.sh: --device cuda or cpu" >&2; exit 3 ;; esac
    KIT=$(dirname "$SELF") PY=${PYTHON:-python3} QRR_CALLER_LD_PATH=${LD_LIBRARY_PATH:-}
    export KIT PY QRR_CALLER_LD_PATH DEVICE SHAPE06 SHAPE8B PAIRS06 BENCH_PAIRS BENCH_REPEAT
    if [ -n "$LIBS_ONLY" ]; then check_libs; exit; fi

    T0=$(date +%s) OUT=${OUT:-/tmp/qrr-gpu-out} WORK=${QRR_KIT_WORK:-/tmp/qrr-kit}
    LOG=$WORK/logs STATE=running CARD="" BG_PID="" BG_T0=0
    export T0 DEADLINE OUT WORK LOG HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
    mkdir -p "$OUT" "$WORK" || exit 3
    rm -rf "$LOG" "$WORK/key" "$WORK/bg" "$WORK/steps.tsv" "$WORK/table.txt"
    mkdir -p "$LOG" "$WORK/key" "$WORK/bg" && : > "$WORK/steps.tsv"
    rm -f "$OUT/summary.txt.part" "$OUT/logs.tgz.part"
    trap 'STATE="interrupted at $(elapsed)s"; finish; exit 2' INT TERM
    say "qrr GPU check, device $DEVICE, deadline ${DEADLINE}s; kit $KIT; logs $LOG; out $OUT"

    local early=""
    run preflight 60 5 || early="preflight failed"
    if [ -z "$early" ]; then
        # shellcheck disable=SC1091
        . "$WORK/env.sh"; export SANITIZER HAVE_TORCH
        run sanity 150 15 || early="the sanity step failed"
    fi
    if [ -n "$early" ]; then
        STATE="stopped: $early"
        say "STOP: $early; nothing else can run (see $LOG)"
        finish
        exit 2
    fi
    start_bg_8b
    run gemm_probe 90 15
    run parity_f16_tc 120 8 parity f16_tc
    run parity_f16_simple 120 8 parity f16_simple
    run parity_int8_w8a8 120 8 parity int8_w8a8
    run parity_int8_w8a16 120 8 parity int8_w8a16
    run parity_upload 120 8 parity upload
    run prefix_f16 120 8 prefix f16
    run prefix_int8 120 8 prefix int8
    run parity_graphs 120 8 parity graphs
    run parity_tune 120 8 parity tune
    run graphs_f16 120 8 graphs f16
    run graphs_int8 120 8 graphs int8
    run memcheck_f16 180 40 memcheck f16
    run memcheck_int8 180 40 memcheck int8
    run gen_06b 180 25
    run ref_06b 240 40
    run parity_06b 240 25
    run cpu_vs_cuda_06b 240 30
    run bench_06b_f16 150 20 bench 06 f16 QRR_CUDA_ATTENTION=tc
    run bench_06b_int8_w8a8 150 20 bench 06 int8 QRR_CUDA_INT8=w8a8
    run bench_06b_int8_w8a16 150 20 bench 06 int8 QRR_CUDA_INT8=w8a16
    run bench_06b_f16_simple 150 20 bench 06 f16 QRR_CUDA_ATTENTION=simple
    # cuBLASLt's candidates timed per shape against its heuristic's first choice
    run bench_06b_f16_tune 150 20 bench 06 f16 "QRR_CUDA_ATTENTION=tc QRR_CUDA_GEMM_TUNE=1"
    run bench_06b_int8_tune 150 20 bench 06 int8 "QRR_CUDA_INT8=w8a8 QRR_CUDA_GEMM_TUNE=1"
    run hf_06b_keep1 240 45 hf 06
    run hf_06b_official 240 45 hf 06 --official
    if join_bg_8b 150; then
        run bench_8b_f16 180 60 bench 8b f16 QRR_CUDA_ATTENTION=tc
        run bench_8b_int8 180 45 bench 8b int8 QRR_CUDA_INT8=w8a8
        run hf_8b_keep1 240 90 hf 8b
    else
        for s in bench_8b_f16 bench_8b_int8 hf_8b_keep1; do record "$s" skipped 0 "no 8B files"; done
    fi
    # what CUDA graphs gain: the 0.6B runs again without them
    run bench_06b_f16_nographs 150 20 bench 06 f16 "QRR_CUDA_ATTENTION=tc QRR_CUDA_GRAPHS=0"
    run bench_06b_int8_nographs 150 20 bench 06 int8 "QRR_CUDA_INT8=w8a8 QRR_CUDA_GRAPHS=0"
    # what the CUDA default chunk of 8,192 tokens gains: the 32-pair request in three forwards
    # of at most 2,048 tokens (the CPU default) instead of one
    run bench_06b_f16_2k 150 20 bench 06 f16 QRR_CUDA_ATTENTION=tc --max-batch-tokens 2048
    run bench_06b_int8_2k 150 20 bench 06 int8 QRR_CUDA_INT8=w8a8 --max-batch-tokens 2048
    local failed s
    failed=$(awk -F'\t' '$2 == "FAIL" || $2 == "timeout"' "$WORK/steps.tsv" | wc -l)
    STATE="done in $(elapsed)s, $failed step(s) failed"
    finish
    say "$STATE; summary in $OUT/summary.txt"
    cat "$OUT/summary.txt"
    [ "$failed" = 0 ]
}

# ---- dispatch -------------------------------------------------------------------------
# run.sh --step NAME [FUNCTION ARGS...]: one step (the function is step_NAME by default)
if [ "${1:-}" = --step ]; then
    shift 2
    fn=${1:-$STEP}
    [ $# -gt 0 ] && shift
    "step_$fn" "$@"
    exit $?
fi
main "$@"
