#!/usr/bin/env python3
"""score_diff.py — holds one file of scores to another, line by line: what `qrr score` writes
({"score", "logit"} per line, or {"error"}) against the same from another device or setting,
or against bench/transformers_gpu.py --reference. Standard library only (the GPU check runs
it on a bare machine). Prints one line; exit 0 within tolerance, 1 not, 2 unreadable.

  score_diff.py GOT.jsonl WANT.jsonl --tol-logit 0.05 --tol-score 5e-3 [--name NAME]
"""
import argparse
import json
import statistics
import sys


def read(path):
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    rows.append({"error": f"{path}:{n}: not JSON ({e})"})
    except OSError as e:
        sys.exit(f"score_diff: {e}")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("got")
    ap.add_argument("want")
    ap.add_argument("--tol-logit", type=float, required=True)
    ap.add_argument("--tol-score", type=float, required=True)
    ap.add_argument("--name", default="")
    args = ap.parse_args()
    got, want = read(args.got), read(args.want)
    name = f"{args.name}: " if args.name else ""
    problems = []
    if len(got) != len(want):
        problems.append(f"{len(got)} lines against {len(want)}")
    dl, ds = [], []
    for i, (g, w) in enumerate(zip(got, want), 1):
        bad = [x for x in (g, w) if "logit" not in x or "score" not in x]
        if bad:
            problems.append(f"line {i}: {bad[0].get('error', 'no logit/score')}")
            continue
        dl.append((abs(g["logit"] - w["logit"]), i))
        ds.append(abs(g["score"] - w["score"]))
    worst = max(dl) if dl else (float("nan"), 0)
    ok = (not problems and dl and worst[0] <= args.tol_logit and max(ds) <= args.tol_score)
    figures = (f"{len(dl)} pairs, |dlogit| max {worst[0]:.3g} (line {worst[1]}) median "
               f"{statistics.median(x for x, _ in dl):.3g}, |dscore| max {max(ds):.3g}"
               if dl else "no pair compared")
    print(f"{name}{figures}; tolerance {args.tol_logit:g} / {args.tol_score:g}: "
          f"{'PASS' if ok else 'FAIL'}" + (f" ({'; '.join(problems[:3])})" if problems else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
