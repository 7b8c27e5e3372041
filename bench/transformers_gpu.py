#!/usr/bin/env python3
"""transformers_gpu.py — the peer for the GPU benchmark and an fp32 reference: Transformers
on a CUDA device (or the CPU, --device cpu) with Qwen's official reranker recipe (prefix,
body and suffix tokenized separately, only the body truncated, left padding, the logit
difference of the "yes" and "no" tokens at the last position). By default the model computes
logits at the last position only (logits_to_keep=1); --official computes them at every
position, as the published example does.

Modes:
  --reference   fp32 (no TF32), one JSON line per input pair: {"logit": yes - no, "score"}
  --bench       bf16 + sdpa: throughput of one batch of all pairs and batch-1 latency, one
                JSON line with the figures
Inputs: a JSON-lines workload ({"query", "document"} per line, as `qrr bench
--write-workload` writes it). Reads only local files: run with HF_HUB_OFFLINE=1.
"""
import argparse
import json
import math
import statistics
import sys
import time

PREFIX = ("<|im_start|>system\nJudge whether the Document meets the requirements based on "
          "the Query and the Instruct provided. Note that the answer can only be \"yes\" or "
          "\"no\".<|im_end|>\n<|im_start|>user\n")
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"


def load_pairs(path, limit):
    pairs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            o = json.loads(line)
            pairs.append((o["query"], o["document"]))
            if limit and len(pairs) >= limit:
                break
    if not pairs:
        sys.exit(f"transformers_gpu.py: no pairs in {path}")
    return pairs


class Recipe:
    """Tokenizes pairs the official way, into left-padded tensors on the device."""

    def __init__(self, tok, max_length, device):
        self.tok = tok
        self.max_length = max_length
        self.device = device
        self.prefix = tok.encode(PREFIX, add_special_tokens=False)
        self.suffix = tok.encode(SUFFIX, add_special_tokens=False)
        self.yes = tok.convert_tokens_to_ids("yes")
        self.no = tok.convert_tokens_to_ids("no")

    def __call__(self, pairs):
        import torch
        bodies = [f"<Instruct>: {INSTRUCTION}\n<Query>: {q}\n<Document>: {d}" for q, d in pairs]
        room = self.max_length - len(self.prefix) - len(self.suffix)
        enc = self.tok(bodies, padding=False, truncation="longest_first",
                       return_attention_mask=False, max_length=room, add_special_tokens=False)
        ids = [self.prefix + x + self.suffix for x in enc["input_ids"]]
        n = max(len(x) for x in ids)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        input_ids = torch.tensor([[pad] * (n - len(x)) + x for x in ids], dtype=torch.long)
        mask = torch.tensor([[0] * (n - len(x)) + [1] * len(x) for x in ids], dtype=torch.long)
        return input_ids.to(self.device), mask.to(self.device), sum(len(x) for x in ids)


def load_model(path, dtype, attn, device):
    from transformers import AutoModelForCausalLM
    kw = {"attn_implementation": attn}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kw)
    except TypeError:  # older Transformers name the argument torch_dtype
        model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=dtype, **kw)
    return model.to(device).eval()


def delta(model, recipe, input_ids, mask, official=False):
    import torch
    with torch.inference_mode():
        kw = {} if official else {"logits_to_keep": 1}
        out = model(input_ids=input_ids, attention_mask=mask, **kw)
        last = out.logits[:, -1, :].float()
        return (last[:, recipe.yes] - last[:, recipe.no]).double()


def synchronize(device):
    import torch
    if device == "cuda":
        torch.cuda.synchronize()


def reference(args):
    import torch
    from transformers import AutoTokenizer
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    tok = AutoTokenizer.from_pretrained(args.model)
    tok.padding_side = "left"
    model = load_model(args.model, torch.float32, "eager", args.device)
    recipe = Recipe(tok, args.max_length, args.device)
    pairs = load_pairs(args.workload, args.pairs)
    for i in range(0, len(pairs), 8):
        ids, mask, _ = recipe(pairs[i:i + 8])
        for dl in delta(model, recipe, ids, mask, args.official).tolist():
            score = 1.0 / (1.0 + math.exp(-dl)) if dl >= 0 else math.exp(dl) / (1.0 + math.exp(dl))
            print(json.dumps({"logit": dl, "score": score}))


def bench(args):
    import torch
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(args.model)
    tok.padding_side = "left"
    t0 = time.perf_counter()
    model = load_model(args.model, torch.bfloat16, "sdpa", args.device)
    load_s = time.perf_counter() - t0
    recipe = Recipe(tok, args.max_length, args.device)
    pairs = load_pairs(args.workload, args.pairs)

    def timed(batch, repeat):
        ends, fwd = [], []
        tokens = 0
        for r in range(repeat + 2):  # two warm-ups
            synchronize(args.device)
            a = time.perf_counter()
            ids, mask, tokens = recipe(batch)
            synchronize(args.device)
            b = time.perf_counter()
            delta(model, recipe, ids, mask, args.official).cpu()
            synchronize(args.device)
            c = time.perf_counter()
            if r >= 2:
                ends.append(c - a)
                fwd.append(c - b)
        return statistics.median(ends), statistics.median(fwd), tokens

    t_all, f_all, tokens = timed(pairs, args.repeat)
    t_one, f_one, tokens_one = timed(pairs[:1], args.repeat)
    cuda = args.device == "cuda"
    print(json.dumps({
        "peer": "transformers", "dtype": "bf16", "attn": "sdpa",
        "logits_to_keep": None if args.official else 1,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu", "pairs": len(pairs),
        "tokens": tokens,
        "seconds": t_all, "forward_seconds": f_all, "tokens_per_s": tokens / t_all,
        "pairs_per_s": len(pairs) / t_all, "latency_one_pair_s": t_one,
        "latency_forward_s": f_one, "latency_pair_tokens": tokens_one, "load_s": load_s,
        "max_memory_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else 0,
    }))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="Hugging Face model directory (config, weights, tokenizer)")
    ap.add_argument("workload", help="JSON lines of {query, document}")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--reference", action="store_true")
    mode.add_argument("--bench", action="store_true")
    ap.add_argument("--pairs", type=int, default=0, help="use the first N pairs (0 = all)")
    ap.add_argument("--max-length", type=int, default=8192)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--official", action="store_true",
                    help="logits at every position, as the published example (default: "
                    "logits_to_keep=1)")
    args = ap.parse_args()
    if args.reference:
        reference(args)
    else:
        bench(args)


if __name__ == "__main__":
    main()
