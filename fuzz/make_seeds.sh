#!/usr/bin/env bash
# make_seeds.sh — build the seed corpora of the fuzz targets from the reference data and from
# small models made with qgen and qconvert. Nothing here is committed: run it before fuzzing
# (`make fuzz` does). Also writes OUT/model.qrr, the small model fuzz_score_jsonl scores with.
#   fuzz/make_seeds.sh OUT_DIR      (needs $QRR_BUILD/qgen and $QRR_BUILD/qconvert, python3)
set -euo pipefail
out=${1:?usage: make_seeds.sh OUT_DIR}
build=${QRR_BUILD:-build}
ref=${QRR_REFERENCE:-../shared/reference}
for p in "$build/qgen" "$build/qconvert"; do
  [ -x "$p" ] || { echo "make_seeds: $p missing (make BUILD=$build all)" >&2; exit 1; }
done
[ -f "$ref/tokenizer/tokenizer.json" ] || { echo "make_seeds: no reference data at $ref" >&2; exit 1; }
command -v python3 >/dev/null || { echo "make_seeds: python3 needed" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out"/{qrr_file,qrr_sections,safetensors,hf_config,tokenizer_import,tokenizer,score_jsonl}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Small models with qgen's own 523-id tokenizer: one layer, hidden 16, head_dim 8, so that a
# whole .qrr is a few tens of KiB and scoring it takes microseconds.
small="--layers 1 --hidden 16 --heads 2 --kv-heads 1 --head-dim 8 --intermediate 32 --quiet"
"$build/qgen" -o "$work/tied" $small --seed 1
"$build/qgen" -o "$work/untied" $small --seed 2 --untied --labels --shards 2
"$build/qgen" -o "$work/seqcls" $small --seed 3 --seqcls --dtype f32
for m in tied untied seqcls; do
  for dt in f32 f16 bf16 int8; do
    "$build/qconvert" "$work/$m" -o "$out/qrr_file/$m-$dt.qrr" --dtype "$dt" --max-length 256 --quiet
  done
done
"$build/qconvert" "$work/tied" -o "$out/qrr_file/tied-int8-block8.qrr" --dtype int8 \
  --quant-block 8 --quiet
cp "$out/qrr_file/tied-f16.qrr" "$out/model.qrr"

for f in "$work"/*/*.safetensors; do cp "$f" "$out/safetensors/$(basename "$(dirname "$f")")-$(basename "$f")"; done
for f in "$work"/*/config.json "$ref"/models/*/config.json; do
  n=$(basename "$(dirname "$f")")
  for flag in 0 1 2 6; do { printf "\\x0$flag"; cat "$f"; } > "$out/hf_config/$n-$flag.json"; done
done
printf '\x00{"prompts": {"query": "<Instruct>: {instruction}\\n<Query>: ", "document": "\\n<Document>: ", "prefix": "<|im_start|>system\\nJudge.<|im_end|>\\n", "suffix": "<|im_end|>\\n", "instruction": "Find it"}}' \
  > "$out/hf_config/sentence-transformers.json"
printf '\x00{"prompts": {"query": "query: "}, "default_prompt_name": null}' > "$out/hf_config/st-query.json"
printf '\x00no,yes' > "$out/hf_config/labels.txt"
cp "$work/tied/tokenizer.json" "$out/tokenizer_import/qgen.json"
{ cat "$work/tied/tokenizer.json"; printf '\n@@tokenizer_config.json@@\n'; cat "$work/tied/tokenizer_config.json"; } \
  > "$out/tokenizer_import/qgen-with-config.json"

python3 - "$ref" "$out" <<'PY'
import json, os, struct, sys, zlib
ref, out = sys.argv[1], sys.argv[2]

# qrr_sections: the decompressed META (first byte even) and TOKENIZER (odd) of each .qrr.
for name in sorted(os.listdir(f"{out}/qrr_file")):
    b = open(f"{out}/qrr_file/{name}", "rb").read()
    for kind, tag in ((0, b"\x00"), (1, b"\x01")):
        off, size = struct.unpack_from("<QQ", b, 32 + 40 * kind + 8)
        raw = zlib.decompress(b[off:off + size])
        open(f"{out}/qrr_sections/{name}-{kind}", "wb").write(tag + raw)

# safetensors: the reference checkpoints' headers (their data cut off: too big for seeds).
for root, _, files in os.walk(f"{ref}/models"):
    for f in files:
        if f.endswith(".safetensors"):
            b = open(os.path.join(root, f), "rb").read(1 << 20)
            (n,) = struct.unpack_from("<Q", b, 0)
            open(f"{out}/safetensors/ref-{os.path.basename(root)}-{f}", "wb").write(b[:8 + n])

# tokenizer: every reference string, and a few long mixed ones.
texts = [json.loads(l)["text"] for l in open(f"{ref}/tokenizer_public.jsonl", encoding="utf-8")]
for i, t in enumerate(texts):
    open(f"{out}/tokenizer/ref-{i:03d}", "wb").write(t.encode("utf-8"))
open(f"{out}/tokenizer/mixed", "wb").write("".join(texts[:40]).encode("utf-8"))

# score_jsonl: the reference cases as `qrr score` lines, ids lines and bad lines.
cases = json.load(open(f"{ref}/inputs.json", encoding="utf-8"))["cases"]
lines = []
for c in cases:
    o = {"query": c["query"], "document": c["document"]}
    if c.get("instruction") is not None: o["instruction"] = c["instruction"]
    if c.get("max_length"): o["max_length"] = c["max_length"]
    lines.append(json.dumps(o, ensure_ascii=False))
for i, l in enumerate(lines):
    open(f"{out}/score_jsonl/case-{i:02d}.jsonl", "w", encoding="utf-8").write(l + "\n")
open(f"{out}/score_jsonl/all.jsonl", "w", encoding="utf-8").write("\n".join(lines) + "\n")
same = [json.dumps({"query": "q", "document": d}) for d in ["a", "", "b c", "d" * 50]]
open(f"{out}/score_jsonl/group.jsonl", "w").write("\n".join(same) + "\n")
open(f"{out}/score_jsonl/ids.jsonl", "w").write('{"ids": [1, 2, 3]}\n{"ids": [4]}\n{"ids": []}\n')
open(f"{out}/score_jsonl/bad.jsonl", "w").write(
    '{"query": "q", "document": "d", "instruction": null, "max_length": 5}\nnot json\n[1]\n'
    '{"query": 1, "document": "d"}\n{"query": "q", "document": "d", "max_length": 0}\n'
    '{"ids": [999999]}\n\n')
PY
for d in "$out"/*/; do echo "make_seeds: $(ls "$d" | wc -l) seeds in $d"; done
