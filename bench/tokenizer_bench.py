#!/usr/bin/env python3
# tokenizer_bench.py — the same documents as bench/tokenizer_bench.c (read from the corpus file
# it writes) through Hugging Face `tokenizers`, single thread: encode_batch on one Rayon
# thread (RAYON_NUM_THREADS=1), and encode() per document; prints the faster, in the C
# program's format, and checks the total token count against the one given with --tokens.
import argparse
import json
import os
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer  # noqa: E402  (after the environment is set)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", help="JSON lines written by tokenizer_bench --corpus")
    ap.add_argument("--tokens", type=int, default=None, help="qrr's total token count")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    ref = os.environ.get("QRR_REFERENCE") or os.path.join(os.path.dirname(__file__), "..", "..",
                                                          "shared", "reference")
    tok = Tokenizer.from_file(os.path.join(ref, "tokenizer", "tokenizer.json"))
    with open(args.corpus, encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)

    results = {}
    for mode in ("encode_batch", "encode"):
        best, tokens = float("inf"), 0
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            if mode == "encode_batch":
                encs = tok.encode_batch(docs, add_special_tokens=False)
            else:
                encs = [tok.encode(d, add_special_tokens=False) for d in docs]
            best = min(best, time.perf_counter() - t0)
            tokens = sum(len(e.ids) for e in encs)
        results[mode] = (best, tokens)
    mode = min(results, key=lambda m: results[m][0])
    best, tokens = results[mode]
    print("hf tokenizers %7.2f MB/s  %10.0f tokens/s  (%d docs, %.2f MB, %d tokens, best of %d, "
          "%s, tokenizers %s)" % (n_bytes / best / 1e6, tokens / best, len(docs), n_bytes / 1e6,
                                  tokens, args.rounds, mode, __import__("tokenizers").__version__))
    if args.tokens is not None and args.tokens != tokens:
        print("token counts differ: qrr %d, Hugging Face %d" % (args.tokens, tokens))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
