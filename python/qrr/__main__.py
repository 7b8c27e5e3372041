"""python -m qrr score|info: the qrr command's two everyday commands over the Python package.

    python -m qrr score MODEL.qrr [--threads N] [--device cpu|cuda] [--no-verify]
        JSON lines {"query", "document", "instruction"?, "max_length"?} on stdin ->
        {"score", "logit"} (or {"error"}) on stdout, one line per line, in order.
    python -m qrr info MODEL.qrr [--json] [--no-verify]

Exit codes as the qrr command's: 0 ok, 1 a model or a line failed, 2 usage.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from . import QrrError, Reranker


def _score(model: Reranker) -> int:
    failures = 0
    for lineno, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            o = json.loads(line)
            if not isinstance(o, dict):
                raise ValueError("expected a JSON object")
            query, document = o.get("query"), o.get("document")
            if not isinstance(query, str) or not isinstance(document, str):
                raise ValueError('needs string fields "query" and "document"')
            scores, logits = model._score_pairs([(query, document)], o.get("instruction"), 1,
                                                False, o.get("max_length") or None)
            out = {"score": float(scores[0]), "logit": float(logits[0])}
        except (ValueError, TypeError, QrrError) as e:
            failures += 1
            out = {"error": f"line {lineno}: {e}"}
            print(f"python -m qrr score: line {lineno}: {e}", file=sys.stderr)
        print(json.dumps(out), flush=True)
    return 1 if failures else 0


def _info(model: Reranker, as_json: bool) -> int:
    info = model.info()
    if as_json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"model        {info['arch']}, {info['n_layers']} layers, hidden {info['hidden']}, "
          f"heads {info['n_heads']}/{info['n_kv_heads']} (q/kv), head_dim {info['head_dim']}, "
          f"intermediate {info['intermediate']}, vocab {info['vocab_size']}")
    print(f"weights      {info['weight_dtype']}")
    print(f"head         {info['head_kind']}; labels {info['label_source']}")
    print(f"             {info['strings']['label_reason']}")
    print(f"prompts      max_length {info['max_length']}, prefix {info['n_prefix_ids']} tokens, "
          f"suffix {info['n_suffix_ids']} tokens")
    print(f"tokenizer    {info['tokenizer_ids']} ids, {info['tokenizer_merges']} merges, "
          f"{info['tokenizer_added']} added tokens")
    print(f"tensors      {info['n_tensors']}, {info['tensor_bytes'] / (1 << 20):.1f} MiB")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qrr", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    score = sub.add_parser("score", help="JSON lines of (query, document) on stdin -> scores")
    score.add_argument("model")
    score.add_argument("--threads", type=int, default=0)
    score.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    score.add_argument("--no-verify", action="store_true")
    info = sub.add_parser("info", help="what a .qrr file holds")
    info.add_argument("model")
    info.add_argument("--json", action="store_true")
    info.add_argument("--no-verify", action="store_true")
    args = parser.parse_args(argv)
    try:
        model = Reranker(args.model, threads=getattr(args, "threads", 0),
                         device=getattr(args, "device", "cpu"), verify=not args.no_verify)
    except (QrrError, ValueError) as e:
        print(f"python -m qrr {args.command}: cannot open model: {e}", file=sys.stderr)
        return 1
    with model:
        return _score(model) if args.command == "score" else _info(model, args.json)


if __name__ == "__main__":
    sys.exit(main())
