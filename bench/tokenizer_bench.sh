#!/bin/sh
# tokenizer_bench.sh — run build/bench/tokenizer_bench and the Hugging Face twin on the same
# documents (single thread each), and print the two lines together. `make bench-tokenizer`
# builds the program and runs this from the repository root. Needs python3 and `tokenizers`.
set -eu
: "${QRR_REFERENCE:=$(cd "$(dirname "$0")/../.." && pwd)/shared/reference}"
export QRR_REFERENCE
BUILD=${QRR_BUILD:-build}
if [ ! -x "$BUILD/bench/tokenizer_bench" ]; then
    echo "tokenizer_bench.sh: $BUILD/bench/tokenizer_bench is not built: run make bench-tokenizer" >&2
    exit 2
fi
corpus=$(mktemp /tmp/qrr-tok-corpus.XXXXXX)
trap 'rm -f "$corpus"' EXIT
ours=$("$BUILD/bench/tokenizer_bench" --corpus "$corpus" "$@")
tokens=$(printf '%s\n' "$ours" | sed -n 's/.*MB, \([0-9]*\) tokens.*/\1/p')
theirs=$(python3 bench/tokenizer_bench.py "$corpus" --tokens "$tokens") || {
    printf '%s\n%s\n' "$ours" "$theirs"; exit 1; }
printf '%s\n%s\n' "$ours" "$theirs"
