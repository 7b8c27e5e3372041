#!/usr/bin/env python3
"""gpu_report.py — the benchmark table at the end of the GPU check's summary.txt: for each
shape, our runs (bench/gpu_bench.c) beside Transformers bf16 (bench/transformers_gpu.py) from
the JSON files the steps left in WORK/logs, with the ratios and the fraction of the card's
measured f16 GEMM rate (bench/gemm_peak.cu). Standard library only.

  gpu_report.py WORK     (prints the table; nothing when no benchmark ran)
"""
import json
import os
import sys


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            lines = [x for x in f.read().splitlines() if x.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


def linear_params(config_path):
    """Linear-layer weights one token goes through: layers x (q|k|v + o + gate|up + down)."""
    try:
        with open(config_path, encoding="utf-8") as f:
            c = json.load(f)
    except (OSError, ValueError):
        return None
    h, i, layers = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    d = c.get("head_dim") or h // c["num_attention_heads"]
    q, k = c["num_attention_heads"] * d, c["num_key_value_heads"] * d
    return layers * (h * (q + 2 * k) + q * h + 3 * h * i)


def main():
    work = sys.argv[1]
    logs = os.path.join(work, "logs")
    peak = load(os.path.join(logs, "peak.json"))
    out = []
    if peak:
        out.append(f"card ceilings (8192^3 through cuBLASLt): f16 {peak['f16_tflops']} TFLOP/s, "
                   f"int8 {peak['i8_tops']} TOP/s, copy {peak['copy_tbps']} TB/s")
    for shape, model in (("06b", "m06"), ("8b", "m8b")):
        runs = [f"bench_{shape}_f16", f"bench_{shape}_int8_w8a8", f"bench_{shape}_int8",
                f"bench_{shape}_int8_w8a16", f"bench_{shape}_f16_simple",
                f"bench_{shape}_f16_nographs", f"bench_{shape}_int8_nographs",
                f"bench_{shape}_f16_2k", f"bench_{shape}_int8_2k",
                f"bench_{shape}_f16_tune", f"bench_{shape}_int8_tune",
                f"hf_{shape}_keep1", f"hf_{shape}_official"]
        rows = [(r, load(os.path.join(logs, r + ".json"))) for r in runs]
        rows = [(r, x) for r, x in rows if x]
        if not rows:
            continue
        hf = dict(rows).get(f"hf_{shape}_keep1")
        params = linear_params(os.path.join(work, model, "config.json"))
        out.append("")
        out.append(f"{shape}: {rows[0][1].get('pairs')} pairs, prompts cut to 256 tokens"
                   + (f"; ratios against hf_{shape}_keep1 (Transformers bf16, sdpa, "
                      f"logits_to_keep=1)" if hf else ""))
        out.append(f"{'run':24s} {'tokens/s':>10s} {'pairs/s':>9s} {'b1 ms':>8s} "
                   f"{'x HF tok/s':>10s} {'x HF b1':>8s} {'%f16 peak':>9s} {'dev MiB':>8s}")
        for name, r in rows:
            theirs = name.startswith("hf_")
            ratio = (f"{r['tokens_per_s'] / hf['tokens_per_s']:.2f}"
                     if hf and not theirs else "-")
            ratio1 = (f"{hf['latency_one_pair_s'] / r['latency_one_pair_s']:.2f}"
                      if hf and not theirs else "-")
            frac = "-"
            if peak and params and peak.get("f16_tflops") and r.get("seconds"):
                tokens = r.get("tokens_computed", r["tokens"])
                frac = f"{100 * 2.0 * params * tokens / r['seconds'] / (peak['f16_tflops'] * 1e12):.0f}%"
            mem = r.get("ctx_device_mib", r.get("max_memory_mib", 0))
            out.append(f"{name:24s} {r['tokens_per_s']:10.0f} {r['pairs_per_s']:9.1f} "
                       f"{1e3 * r['latency_one_pair_s']:8.2f} {ratio:>10s} {ratio1:>8s} "
                       f"{frac:>9s} {mem:8.0f}")
    if out:
        out.append("(b1: one pair alone; %f16 peak: linear-layer FLOPs of the tokens computed, the "
                   "shared prefix once, over the measured f16 rate; dev MiB: device memory the "
                   "context took, or Transformers' peak)")
    print("\n".join(out))


if __name__ == "__main__":
    main()
