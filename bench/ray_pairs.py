"""ray_pairs.py — write N (query, document) rows as JSON lines for bench/ray_bench.sh: Q
queries with N/Q candidate documents each (a query's candidates together, as a retrieval
run emits them), plain words drawn from the reference inputs (112 of them), seeded.

    python3 bench/ray_pairs.py N Q MIN_WORDS MAX_WORDS SEED > pairs.jsonl
"""
import json
import os
import random
import sys
from pathlib import Path

REFERENCE = Path(os.environ.get("QRR_REFERENCE") or
                 Path(__file__).resolve().parents[2] / "shared" / "reference")


def main() -> int:
    n, n_queries, lo, hi, seed = (int(a) for a in sys.argv[1:6])
    with open(REFERENCE / "inputs.json") as f:
        inputs = json.load(f)
    words = sorted({w.strip('.,;:!?()"') for s in inputs["tokenizer_strings"] for w in s.split()})
    words = [w for w in words if w.isascii() and w.isalpha() and 2 <= len(w) <= 12]
    rnd = random.Random(seed)
    per_query = -(-n // n_queries)
    out = sys.stdout
    for i in range(n):
        q = i // per_query
        rq = random.Random(seed * 1000003 + q)
        query = f"query {q}: " + " ".join(rq.choice(words) for _ in range(rq.randint(4, 10)))
        document = " ".join(rnd.choice(words) for _ in range(rnd.randint(lo, hi)))
        out.write(json.dumps({"id": i, "query": query, "document": document},
                             ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
