#!/usr/bin/env python3
"""kit_trim.py — the reference data as the GPU check kit carries it: the same files, except
that in the tiny checkpoints every embedding (and lm_head) row of a token that no reference
prompt holds is replaced by a copy of row 0. The reference cases read only the rows of their
own prompt tokens and of "yes"/"no", so their scores are unchanged (the kit's parity steps
check exactly that), while the random rows that made up nearly all of the bytes now compress
to almost nothing. Standard library only.

  kit_trim.py REFERENCE_DIR OUT_DIR
"""
import json
import os
import shutil
import struct
import sys

ROW_TENSORS = ("model.embed_tokens.weight", "lm_head.weight")
SIZES = {"BF16": 2, "F16": 2, "F32": 4}


def keep_ids(ref):
    """Every token id of every reference prompt, and the "yes" and "no" tokens."""
    ids = set()
    with open(os.path.join(ref, "scores_public.jsonl"), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                ids.update(json.loads(line)["ids"])
    with open(os.path.join(ref, "tokenizer", "tokenizer.json"), encoding="utf-8") as f:
        vocab = json.load(f)["model"]["vocab"]
    ids.update(vocab[t] for t in ("yes", "no"))
    return ids


def trim(src, dst, keep):
    """Copy one safetensors file, repeating row 0 over the rows outside keep."""
    with open(src, "rb") as f:
        data = bytearray(f.read())
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base, changed = 8 + n, 0
    for name, t in header.items():
        if name not in ROW_TENSORS:
            continue
        rows, cols = t["shape"]
        width = cols * SIZES[t["dtype"]]
        start, end = (base + x for x in t["data_offsets"])
        if end - start != rows * width:
            sys.exit(f"kit_trim: {src}: {name} holds {end - start} bytes, not {rows} x {width}")
        row0 = bytes(data[start:start + width])
        for r in range(1, rows):
            if r not in keep:
                data[start + r * width:start + (r + 1) * width] = row0
                changed += 1
    with open(dst, "wb") as f:
        f.write(data)
    return changed


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    ref, out = sys.argv[1], sys.argv[2]
    keep = keep_ids(ref)
    os.makedirs(out, exist_ok=True)
    for name in ("README.md", "inputs.json", "scores_public.jsonl"):
        shutil.copy(os.path.join(ref, name), os.path.join(out, name))
    shutil.copytree(os.path.join(ref, "tokenizer"), os.path.join(out, "tokenizer"),
                    dirs_exist_ok=True)
    notes = [f"Embedding and lm_head rows outside the {len(keep)} token ids of the reference "
             "prompts (and yes/no) repeat row 0; see bench/kit_trim.py."]
    models = os.path.join(ref, "models")
    for model in sorted(os.listdir(models)):
        os.makedirs(os.path.join(out, "models", model), exist_ok=True)
        for name in sorted(os.listdir(os.path.join(models, model))):
            src, dst = os.path.join(models, model, name), os.path.join(out, "models", model, name)
            if name.endswith(".safetensors"):
                notes.append(f"models/{model}/{name}: {trim(src, dst, keep)} rows replaced")
            else:
                shutil.copy(src, dst)
    with open(os.path.join(out, "TRIMMED.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(notes) + "\n")
    print("\n".join(notes))


if __name__ == "__main__":
    main()
