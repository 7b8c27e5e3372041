#!/usr/bin/env python3
"""Reference yes/no scores from Hugging Face Transformers for a Qwen3 reranker directory.

Builds each prompt with the official recipe (prefix, body and suffix tokenized separately,
only the body truncated, no special tokens added), runs the model on the CPU in fp32 (and
fp64 with --fp64, and one left-padded batch with --batch) and writes one JSON line per case
in the schema of the reference data's scores_public.jsonl. Not used at run time; needs
torch and transformers (tools/requirements.txt). See docs/reference.md.
"""

import argparse
import json
import sys

PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query "
    'and the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
    "<|im_start|>user\n"
)
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
DEFAULT_MAX_LENGTH = 8192


def body_text(instruction, query, document):
    if instruction is None:
        instruction = DEFAULT_INSTRUCTION
    return f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"


def prompt_ids(tokenizer, instruction, query, document, max_length=DEFAULT_MAX_LENGTH):
    """Token ids of one prompt: ids(prefix) + ids(body)[:room] + ids(suffix)."""
    enc = lambda text: tokenizer.encode(text, add_special_tokens=False)
    prefix, suffix = enc(PREFIX), enc(SUFFIX)
    body = enc(body_text(instruction, query, document))
    room = max(0, max_length - len(prefix) - len(suffix))
    return prefix + body[:room] + suffix


def read_cases(path):
    """JSON lines of {query, document, [instruction], [max_length]}, or a JSON object with a
    "cases" list (the reference data's inputs.json)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    stripped = text.lstrip()
    if stripped.startswith("{") and '"cases"' in text:
        try:
            return json.loads(text)["cases"]
        except json.JSONDecodeError:
            pass  # one object per line after all
    cases = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        case = json.loads(line)
        if "query" not in case or "document" not in case:
            sys.exit(f"{path}:{n}: a case needs \"query\" and \"document\"")
        cases.append(case)
    return cases


def is_seqcls(model_dir):
    with open(f"{model_dir}/config.json", encoding="utf-8") as f:
        config = json.load(f)
    return any(a.endswith("ForSequenceClassification") for a in config.get("architectures", []))


def load_model(model_dir, seqcls, dtype):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    cls = AutoModelForSequenceClassification if seqcls else AutoModelForCausalLM
    model = cls.from_pretrained(model_dir, dtype=dtype)
    model.eval()
    torch.set_grad_enabled(False)
    return model


def score_one(model, ids, seqcls, yes_id, no_id):
    """Logits and score of one unpadded prompt, in the model's dtype."""
    import torch

    out = model(input_ids=torch.tensor([ids])).logits
    if seqcls:
        logit = out[0, 0]
        return {"logit": logit.item(), "score": torch.sigmoid(logit).item()}
    last = out[0, -1]
    pair = torch.stack([last[no_id], last[yes_id]])  # softmax([no, yes])[1], as Qwen does
    score = torch.log_softmax(pair, dim=0)[1].exp()
    return {"logit_yes": last[yes_id].item(), "logit_no": last[no_id].item(), "score": score.item()}


def score_batch(model, all_ids, seqcls, yes_id, no_id, pad_id):
    """Scores of all prompts in one left-padded batch, as the published example runs it
    (attention mask, no position ids); the fp32 logits' softmax is taken in fp64."""
    import torch

    width = max(len(ids) for ids in all_ids)
    input_ids = torch.full((len(all_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(all_ids), width), dtype=torch.long)
    for i, ids in enumerate(all_ids):
        input_ids[i, width - len(ids):] = torch.tensor(ids)
        mask[i, width - len(ids):] = 1
    out = model(input_ids=input_ids, attention_mask=mask).logits
    if seqcls:
        return torch.sigmoid(out[:, 0].double()).tolist()
    pair = torch.stack([out[:, -1, no_id], out[:, -1, yes_id]], dim=1).double()
    return torch.log_softmax(pair, dim=1)[:, 1].exp().tolist()


def compare(rows, ref_path, tolerance):
    """Holds rows against a reference file's lines for the same (model, case): token ids
    must be equal, fp32 values within tolerance. Prints the largest differences; returns
    whether everything passed."""
    key = lambda r: (r["model"], r["instruction"], r["query"], r["document"], r.get("max_length"))
    with open(ref_path, encoding="utf-8") as f:
        ref = {key(r): r for r in map(json.loads, filter(str.strip, f))}
    worst, ok, matched = {}, True, 0
    for row in rows:
        r = ref.get(key(row))
        if r is None:
            print(f"compare: no reference line for {row['model']}: {row['query']!r}", file=sys.stderr)
            ok = False
            continue
        matched += 1
        if row["ids"] != r["ids"]:
            print(f"compare: token ids differ for {row['query']!r}", file=sys.stderr)
            ok = False
        for prec in ("fp32", "fp64"):
            for k in r.get(prec, {}) if prec in row else ():
                d = abs(row[prec][k] - r[prec][k])
                worst[f"{prec}.{k}"] = max(worst.get(f"{prec}.{k}", 0.0), d)
        if "fp32_batched_score" in row and "fp32_batched_score" in r:
            d = abs(row["fp32_batched_score"] - r["fp32_batched_score"])
            worst["fp32_batched_score"] = max(worst.get("fp32_batched_score", 0.0), d)
    print(f"compare: {matched} of {len(rows)} cases found in {ref_path}, token ids "
          f"{'identical' if ok else 'NOT identical'}", file=sys.stderr)
    for k, d in sorted(worst.items()):
        bad = k.startswith("fp32") and d > tolerance
        ok = ok and not bad
        print(f"compare:   max |diff| {k:20s} {d:.3e}{'  > tolerance' if bad else ''}", file=sys.stderr)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir", help="Hugging Face model directory (config.json, safetensors)")
    ap.add_argument("cases", help="JSON lines: query, document, optional instruction (null = "
                    "default) and max_length; or a JSON object with a \"cases\" list")
    ap.add_argument("--tokenizer", metavar="DIR",
                    help="directory with tokenizer.json (default: the model directory)")
    ap.add_argument("--model-name", help="value of the \"model\" field (default: the directory's name)")
    ap.add_argument("--fp64", action="store_true", help="also run the model in float64")
    ap.add_argument("--batch", action="store_true",
                    help="also score all cases in one left-padded batch (fp32_batched_score)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    ap.add_argument("-o", "--out", help="output file (default: stdout)")
    ap.add_argument("--compare", metavar="REF_JSONL",
                    help="also compare with a reference file (e.g. scores_public.jsonl): exit 1 "
                    "unless token ids are identical and fp32 values within --tolerance")
    ap.add_argument("--tolerance", type=float, default=1e-6,
                    help="largest fp32 difference --compare accepts (default 1e-6)")
    args = ap.parse_args()

    import os
    import torch
    from transformers import AutoTokenizer

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or args.model_dir)
    seqcls = is_seqcls(args.model_dir)
    yes_id = tokenizer.convert_tokens_to_ids("yes")
    no_id = tokenizer.convert_tokens_to_ids("no")
    if not seqcls and (yes_id is None or no_id is None or yes_id == tokenizer.unk_token_id):
        sys.exit("the tokenizer has no single \"yes\"/\"no\" token")
    name = args.model_name or os.path.basename(os.path.normpath(args.model_dir))
    cases = read_cases(args.cases)

    rows = []
    for case in cases:
        row = {"model": name, "instruction": case.get("instruction"), "query": case["query"],
               "document": case["document"]}
        if case.get("max_length") is not None:
            row["max_length"] = case["max_length"]
        row["ids"] = prompt_ids(tokenizer, row["instruction"], row["query"], row["document"],
                                case.get("max_length") or DEFAULT_MAX_LENGTH)
        rows.append(row)

    passes = [("fp32", torch.float32)] + ([("fp64", torch.float64)] if args.fp64 else [])
    for key, dtype in passes:
        model = load_model(args.model_dir, seqcls, dtype)
        for row in rows:
            row[key] = score_one(model, row["ids"], seqcls, yes_id, no_id)
        if args.batch and key == "fp32":
            pad_id = tokenizer.pad_token_id
            if pad_id is None:
                sys.exit("--batch needs a pad token in the tokenizer")
            for row, s in zip(rows, score_batch(model, [r["ids"] for r in rows], seqcls, yes_id,
                                                no_id, pad_id)):
                row["fp32_batched_score"] = s
        del model

    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    for row in rows:
        if "fp32_batched_score" in row:  # last, as in the reference files
            row["fp32_batched_score"] = row.pop("fp32_batched_score")
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
    if args.out:
        out.close()
    if args.compare and not compare(rows, args.compare, args.tolerance):
        sys.exit(1)


if __name__ == "__main__":
    main()
