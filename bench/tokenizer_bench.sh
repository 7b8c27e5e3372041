#!/bin/sh
# tokenizer_bench.sh — build bench/tokenizer_bench.c, run it and the Hugging Face twin on the
# same documents (single thread each), and print the two lines together. Run from the
# repository root. Needs gcc, the libraries of the Makefile, python3 and `tokenizers`.
set -eu
: "${QRR_REFERENCE:=$(cd "$(dirname "$0")/../.." && pwd)/shared/reference}"
export QRR_REFERENCE
BUILD=${QRR_BUILD:-build}
CC=${CC:-cc}
mkdir -p "$BUILD/bench"
$CC -std=c11 -O2 -D_GNU_SOURCE -Wall -Wextra -Wstrict-prototypes -Iinclude -Iformat -Iruntime -Iconvert \
    bench/tokenizer_bench.c runtime/tokenizer.c runtime/tok_*.c convert/tokenizer_import.c \
    format/qrr_status.c format/qrr_diag.c -o "$BUILD/bench/tokenizer_bench" -ljansson -lutf8proc -lpcre2-8 -lpthread
corpus=$(mktemp /tmp/qrr-tok-corpus.XXXXXX)
trap 'rm -f "$corpus"' EXIT
ours=$("$BUILD/bench/tokenizer_bench" --corpus "$corpus" "$@")
tokens=$(printf '%s\n' "$ours" | sed -n 's/.*MB, \([0-9]*\) tokens.*/\1/p')
theirs=$(python3 bench/tokenizer_bench.py "$corpus" --tokens "$tokens") || {
    printf '%s\n%s\n' "$ours" "$theirs"; exit 1; }
printf '%s\n%s\n' "$ours" "$theirs"
