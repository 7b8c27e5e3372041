#!/usr/bin/env bash
# demo.sh — qrr end to end on a fresh machine: install what is missing, build, write a small
# random-weight Qwen3 checkpoint with our generator, convert it to .qrr, show the file, and
# rerank a few documents. Uses the real Qwen3 tokenizer when QRR_TOKENIZER (a directory
# with tokenizer.json) or ../shared/reference/tokenizer exists, else the generator's own.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${QRR_DEMO_DIR:-/tmp/qrr-demo}

step() { printf '\n== %s\n' "$*"; }

step "1. dependencies"
tools/install-deps.sh

step "2. build"
make -j"$(nproc)" all examples >/dev/null
echo "built build/qconvert build/qrr build/qgen build/libqrr.a build/libqrr.so (libqrr.so.0)"

step "3. a random-weight checkpoint (tiny Qwen3 shape) in $work/model"
tok=${QRR_TOKENIZER:-../shared/reference/tokenizer}
tok_args=()
[ -f "$tok/tokenizer.json" ] && tok_args=(--tokenizer "$tok")
rm -rf "$work" && mkdir -p "$work"
build/qgen -o "$work/model" --shape tiny --seed 7 "${tok_args[@]}"
ls -l "$work/model"

step "4. convert to $work/model.qrr (int8 weights)"
build/qconvert "$work/model" -o "$work/model.qrr" --dtype int8

step "5. what the file holds"
build/qrr info "$work/model.qrr" --no-tensors

step "6. rerank: one query, four documents, best first"
build/examples/rerank "$work/model.qrr" "What is the capital of China?" \
  "The capital of China is Beijing." "Gravity is a force that attracts two bodies." \
  "Beijing is a large city in the north of China." "Seoul is the capital of Korea."
echo
echo "(random weights: the order is arbitrary; a converted Qwen3-Reranker ranks for real)"
