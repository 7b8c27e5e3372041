#!/usr/bin/env bash
# serve_bench.sh — the server load test (`make bench-serve`): wrk against `qrr serve` on
# loopback, at 1, 8 and 64 connections, on the tiny reference model and on a 0.6B-shape
# int8 model; then, when LLAMA_SERVER and LLAMA_GGUF name a llama.cpp build and a GGUF of the
# same 0.6B-shape checkpoint, the same load against `llama-server --rerank`. Every run is
# bounded in time (SECONDS_PER_RUN) and every server is stopped by its own pid.
#
#   QRR_BUILD        build folder (default build)
#   QRR_REFERENCE    reference data (default ../shared/reference)
#   SECONDS_PER_RUN  wrk duration per concurrency for qrr serve (default 30)
#   PEER_SECONDS     the same for llama-server, which is slower per request (default 90)
#   THREADS          scoring threads of every server (default 2)
#   CONNECTIONS      default "1 8 64"
#   DOCS, WORDS      documents per request and words per document (default 8, 40)
#   LLAMA_SERVER, LLAMA_GGUF, LLAMA_ARGS   the peer (see docs/benchmarks.md for how we built it)
#   QRR_06B_DIR      a 0.6B-shape checkpoint to convert (default: written by qgen, seed 0;
#                    give the peer the same one)
# Output: a table on stdout, and one JSON line per run in $QRR_BUILD/bench-serve/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${QRR_BUILD:-build}
REF=${QRR_REFERENCE:-../shared/reference}
SECS=${SECONDS_PER_RUN:-30}
PEER_SECS=${PEER_SECONDS:-90}
THREADS=${THREADS:-2}
CONNS=${CONNECTIONS:-"1 8 64"}
DOCS=${DOCS:-8}
WORDS=${WORDS:-40}
OUT=$B/bench-serve
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: > "$RESULTS"
command -v wrk >/dev/null || { echo "serve_bench: wrk is not installed (apt-get install wrk)"; exit 1; }

# ---- models ---------------------------------------------------------------------------------
tiny=$OUT/tiny-tied-int8.qrr
if [ ! -f "$tiny" ]; then
  mkdir -p "$OUT/tiny-tied"
  ln -sf "$(realpath "$REF/models/tiny-tied")"/* "$(realpath "$REF/tokenizer")"/* "$OUT/tiny-tied/"
  "$B/qconvert" "$OUT/tiny-tied" -o "$tiny" --dtype int8 --quiet
fi
src06=${QRR_06B_DIR:-$OUT/Qwen3-Reranker-0.6B-qgen}
m06=$OUT/qwen3-0.6b-shape-int8.qrr
if [ ! -f "$m06" ]; then
  if [ ! -f "$src06/config.json" ]; then
    echo "serve_bench: writing a 0.6B-shape checkpoint with qgen (seed 0) into $src06"
    "$B/qgen" -o "$src06" --shape 0.6b --seed 0 --tokenizer "$REF/tokenizer" --quiet
  fi
  "$B/qconvert" "$src06" -o "$m06" --dtype int8 --quiet
fi

# ---- the request: one query, DOCS documents of WORDS words (the same for every server) ----
body=$OUT/body.json
python3 - "$DOCS" "$WORDS" > "$body" <<'EOF'
import json, random, sys
docs, words = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(7)
vocab = ("river city capital mountain history science music energy market people water "
         "language school garden winter summer travel museum library bridge").split()
texts = [" ".join(rng.choice(vocab) for _ in range(words)) for _ in range(docs)]
print(json.dumps({"model": "reranker", "query": "Which city is the capital of its country?",
                  "documents": texts}))
EOF

# ---- one server under load ------------------------------------------------------------------
pid=
stop_server() { if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; fi; }
trap stop_server EXIT

wait_ready() { # $1 = health URL
  for _ in $(seq 1 600); do
    curl -sf "$1" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || { echo "serve_bench: the server exited"; return 1; }
    sleep 0.1
  done
  echo "serve_bench: the server did not get ready"; return 1
}

# $1 server name, $2 model name, $3 URL (rerank route), $4 seconds per concurrency
load() {
  for c in $CONNS; do
    t=$(( c < 2 ? 1 : 2 ))
    line=$(QRR_BENCH_BODY=$body wrk -t"$t" -c"$c" -d"${4}s" --timeout 300s \
             -s bench/serve_wrk.lua "$3" | grep '^RESULT' || true)
    [ -n "$line" ] || { echo "serve_bench: wrk printed no result"; return 1; }
    eval "$(sed -e 's/^RESULT //' <<<"$line")"
    pairs_s=$(python3 -c "print(f'{$requests * $DOCS / $seconds:.2f}')")
    printf '%-12s %-30s %5s %9s %9s %9s %9s %9s %7s\n' "$1" "$2" "$c" "$requests" "$pairs_s" \
      "$p50_ms" "$p95_ms" "$p99_ms" "$((not_200 + socket_errors + timeouts))"
    printf '{"server":"%s","model":"%s","connections":%s,"seconds":%s,"requests":%s,"docs_per_request":%s,"words_per_doc":%s,"pairs_per_s":%s,"p50_ms":%s,"p95_ms":%s,"p99_ms":%s,"not_200":%s,"socket_errors":%s,"timeouts":%s,"threads":%s}\n' \
      "$1" "$2" "$c" "$seconds" "$requests" "$DOCS" "$WORDS" "$pairs_s" "$p50_ms" "$p95_ms" \
      "$p99_ms" "$not_200" "$socket_errors" "$timeouts" "$THREADS" >> "$RESULTS"
  done
}

port=$(( 20000 + RANDOM % 20000 ))
printf '%-12s %-30s %5s %9s %9s %9s %9s %9s %7s\n' server model conns requests pairs/s \
  p50_ms p95_ms p99_ms errors
for m in "$tiny" "$m06"; do
  name=$(basename "$m" .qrr)
  "$B/qrr" serve "$m" --port "$port" --threads "$THREADS" --quiet 2>"$OUT/qrr-serve.log" &
  pid=$!
  wait_ready "http://127.0.0.1:$port/health"
  load "qrr-serve" "$name" "http://127.0.0.1:$port/v1/rerank" "$SECS"
  stop_server
done

if [ -n "${LLAMA_SERVER:-}" ] && [ -n "${LLAMA_GGUF:-}" ]; then
  # shellcheck disable=SC2086
  "$LLAMA_SERVER" -m "$LLAMA_GGUF" --rerank --host 127.0.0.1 --port "$port" -t "$THREADS" \
    ${LLAMA_ARGS:-} >"$OUT/llama-server.log" 2>&1 &
  pid=$!
  wait_ready "http://127.0.0.1:$port/health"
  load "llama-server" "$(basename "$LLAMA_GGUF" .gguf)" "http://127.0.0.1:$port/v1/rerank" \
    "$PEER_SECS"
  stop_server
else
  echo "(llama-server not measured: set LLAMA_SERVER and LLAMA_GGUF; docs/benchmarks.md)"
fi
echo "results: $RESULTS"
