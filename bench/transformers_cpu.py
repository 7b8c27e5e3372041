#!/usr/bin/env python3
"""The CPU peer of qrr's benchmark: Transformers fp32 on the CPU, official recipe.

Loads Qwen3ForCausalLM in fp32, builds the prompts exactly as tools/reference_scores.py
does (same token ids as qrr), and times two modes on the same left-padded batches:
  full      the published example: the model returns logits for every position and the
            whole vocabulary, the score reads the last position's no/yes logits;
  keep1     the same call with logits_to_keep=1 (only the last position's logits).
Each mode is warmed up once, then timed over --reps repetitions of the whole workload.
Prints one JSON line per mode. --latency adds one-pair-at-a-time timings.

Workload: JSON lines of {query, document, [instruction], [max_length]} (what
`qrr bench --write-workload` writes; consecutive lines with the same query, instruction
and max_length are one request), or lines of {query, documents: [...]}.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from reference_scores import DEFAULT_MAX_LENGTH, prompt_ids  # noqa: E402  same prompts as qrr


def read_workload(path):
    """Requests as lists of (instruction, query, document, max_length)."""
    requests, last_key = [], None
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            d = json.loads(line)
            docs = d["documents"] if "documents" in d else [d.get("document")]
            if "query" not in d or any(not isinstance(x, str) for x in docs):
                sys.exit(f"{path}:{n}: a line needs \"query\" and \"document\" (or \"documents\")")
            key = (d.get("instruction"), d["query"], d.get("max_length") or DEFAULT_MAX_LENGTH)
            if key != last_key or "documents" in d:
                requests.append([])
                last_key = key
            requests[-1].extend((key[0], key[1], doc, key[2]) for doc in docs)
    if not requests:
        sys.exit(f"{path}: no pairs")
    return requests


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def make_batches(requests, batch):
    """Token-id batches: each request's pairs in chunks of `batch` (0 = the whole request)."""
    out = []
    for req in requests:
        size = batch if batch > 0 else len(req)
        for i in range(0, len(req), size):
            out.append(req[i:i + size])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--model", required=True, help="model directory (qgen output, with tokenizer)")
    ap.add_argument("--workload", required=True, help="JSON lines, see below")
    ap.add_argument("--tokenizer", metavar="DIR", help="tokenizer directory (default: --model)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all)")
    ap.add_argument("--batch", type=int, default=0,
                    help="pairs per model call (default 0: all documents of a query at once)")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions (default 3)")
    ap.add_argument("--modes", default="keep1,full",
                    help="comma list of keep1, full (default keep1,full: peak RSS is a process "
                    "high-water mark, so the lighter mode goes first)")
    ap.add_argument("--latency", action="store_true", help="also time one pair at a time (batch 1)")
    ap.add_argument("--dump", metavar="FILE", help="write each pair's ids and scores as JSON lines")
    args = ap.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if any(m not in ("keep1", "full") for m in modes) or not modes:
        sys.exit("--modes: keep1 and/or full")
    if args.threads < 1 or args.reps < 1 or args.batch < 0:
        sys.exit("--threads and --reps must be >= 1, --batch >= 0")

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or args.model)
    yes_id, no_id = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    load_s = time.perf_counter() - t0

    requests = read_workload(args.workload)
    pairs = [p for req in requests for p in req]
    ids = {p: prompt_ids(tokenizer, p[0], p[1], p[2], p[3]) for p in pairs}

    def to_tensors(chunk):
        width = max(len(ids[p]) for p in chunk)
        x = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, p in enumerate(chunk):  # left padding, as the published example
            x[i, width - len(ids[p]):] = torch.tensor(ids[p])
            mask[i, width - len(ids[p]):] = 1
        return x, mask

    def score(x, mask, mode):
        kw = {"logits_to_keep": 1} if mode == "keep1" else {}
        logits = model(input_ids=x, attention_mask=mask, **kw).logits
        pair = torch.stack([logits[:, -1, no_id], logits[:, -1, yes_id]], dim=1)
        return torch.log_softmax(pair, dim=1)[:, 1].exp()

    def run(batches, mode):
        out = []
        for x, mask in batches:
            out.extend(score(x, mask, mode).tolist())
        return out

    tokens = sum(len(ids[p]) for p in pairs)
    scores = {}
    for mode in modes:
        chunks = make_batches(requests, args.batch)
        batches = [to_tensors(c) for c in chunks]
        padded = sum(x.numel() for x, _ in batches)
        scores[mode] = run(batches, mode)  # warm-up, and the scores for --dump
        times = []
        for _ in range(args.reps):
            t = time.perf_counter()
            run(batches, mode)
            times.append(time.perf_counter() - t)
        secs = statistics.median(times)
        print(json.dumps({
            "peer": "transformers-cpu-fp32", "mode": "logits_to_keep=1" if mode == "keep1" else "full",
            "threads": args.threads, "batch": args.batch or "all", "requests": len(requests),
            "pairs": len(pairs), "tokens": tokens, "padded_tokens": padded, "reps": args.reps,
            "seconds": round(secs, 4), "seconds_min": round(min(times), 4),
            "tokens_per_s": round(tokens / secs, 1), "pairs_per_s": round(len(pairs) / secs, 3),
            "peak_rss_mib": round(peak_rss_mib(), 1), "load_s": round(load_s, 2),
            "torch": torch.__version__,
        }), flush=True)

    if args.latency:
        for mode in modes:
            single = [to_tensors([p]) for p in pairs]
            score(*single[0], mode)  # warm-up
            lat = []
            for _ in range(args.reps):
                for x, mask in single:
                    t = time.perf_counter()
                    score(x, mask, mode)
                    lat.append(time.perf_counter() - t)
            lat.sort()
            print(json.dumps({
                "peer": "transformers-cpu-fp32", "mode": ("logits_to_keep=1" if mode == "keep1" else "full")
                + ", one pair at a time", "threads": args.threads, "pairs": len(pairs), "reps": args.reps,
                "latency_ms_median": round(1e3 * statistics.median(lat), 2),
                "latency_ms_p90": round(1e3 * lat[int(0.9 * (len(lat) - 1))], 2),
                "tokens_per_pair_mean": round(tokens / len(pairs), 1),
                "peak_rss_mib": round(peak_rss_mib(), 1),
            }), flush=True)

    if args.dump:
        with open(args.dump, "w", encoding="utf-8") as f:
            for i, p in enumerate(pairs):
                row = {"instruction": p[0], "query": p[1], "document": p[2], "ids": ids[p]}
                for mode in modes:
                    row[f"score_{mode}"] = scores[mode][i]
                f.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
