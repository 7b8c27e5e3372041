"""python -m qrr score|info: the qrr command's two everyday commands over the Python package.

    python -m qrr score MODEL.qrr [--threads N] [--device cpu|cuda] [--no-verify]
        JSON lines {"query", "document", "instruction"?, "max_length"?, "truncate"?} on
        stdin (UTF-8) ->
        {"score", "logit"} (or {"error"}) on stdout, one line per line, in order.
    python -m qrr info MODEL.qrr [--json] [--no-verify] [--no-tensors]
        (--json: qrr info --json's document)
    python -m qrr --version
        the package's version and that of the libqrr it loaded

Exit codes as the qrr command's: 0 ok, 1 a model or a line failed, 2 usage.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from importlib import metadata
from typing import List, Optional

from . import QrrError, Reranker, __version__, _capi
from ._args import DEVICE_HELP, MAX_THREADS
from ._jsonl import BOM as _BOM, decode as _decode, parse as _parse
from .reranker import MAX_LENGTH_CAP


class _OutputError(Exception):
    """stdout refused a write (a closed pipe, a full disk)."""


def _write(text: str) -> None:
    try:
        print(text, flush=True)
    except OSError as e:
        raise _OutputError(e.strerror or str(e)) from None


def _number(x: float) -> str:
    """A float32 as the qrr command (jansson) writes it: 9 significant digits (exact for
    float32), ".0" on a whole number, an exponent without "+" or leading zeros (1e-5)."""
    text = f"{x:.9g}"
    if "e" not in text:
        return text if "." in text else text + ".0"
    mantissa, exponent = text.split("e")
    sign = "-" if exponent.startswith("-") else ""
    return f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"


def _json_line(out: dict) -> str:
    """One answer as `qrr score` writes it: a score line byte for byte; an error line in the
    same compact ASCII form (the messages are this module's own)."""
    if "error" in out:
        return json.dumps(out, separators=(",", ":"))
    return f'{{"score":{_number(out["score"])},"logit":{_number(out["logit"])}}}'


def _field(o: dict, key: str) -> str:
    if key not in o:
        raise ValueError(f'missing field "{key}"')
    if not isinstance(o[key], str):
        raise ValueError(f'field "{key}" must be a string')
    return o[key]


def _max_length(o: dict) -> Optional[int]:
    """The line's "max_length", checked as the qrr command checks it; None: the default."""
    ml = o.get("max_length")
    if ml is not None and (isinstance(ml, bool) or not isinstance(ml, int)
                           or not 0 <= ml <= MAX_LENGTH_CAP):
        raise ValueError(f'field "max_length" must be an integer in [0, {MAX_LENGTH_CAP}] '
                         "(0 = the model's default) or null")
    return ml or None


def _score_line(model: Reranker, raw: bytes) -> dict:
    o = _parse(_decode(raw))  # the bytes as the qrr command reads them
    if "ids" in o:
        raise ValueError('lines of token ids ("ids") are for the qrr command\'s score only')
    truncate = o.get("truncate")  # the qrr command's order of checks
    if truncate is not None and not isinstance(truncate, bool):
        raise ValueError('field "truncate" must be true, false or null')
    instruction = o.get("instruction")
    if instruction is not None and not isinstance(instruction, str):
        raise ValueError('field "instruction" must be a string or null')
    max_length = _max_length(o)
    query, document = _field(o, "query"), _field(o, "document")
    # the prompt's ids first and then the score, as qrr score does: the same messages
    scores, logits = model.score_grouped([(query, document)], instruction, max_length,
                                         truncate=truncate is not False)
    return {"score": float(scores[0]), "logit": float(logits[0])}


def _score(model: Reranker) -> int:
    failures = 0
    for lineno, line in enumerate(sys.stdin.buffer, 1):
        if lineno == 1 and line.startswith(_BOM):  # skipped, as qrr score skips it
            line = line[len(_BOM):]
        if not line.strip():
            continue
        try:
            out = _score_line(model, line)
        except (ValueError, TypeError, QrrError) as e:
            failures += 1
            out = {"error": f"line {lineno}: {e}"}
            print(f"python -m qrr score: line {lineno}: {e}", file=sys.stderr)
        _write(_json_line(out))
    return 1 if failures else 0


def _info_document(info: dict, open_seconds: float, tensors: bool) -> dict:
    """`qrr info --json`'s document, key for key, from Reranker.info()."""
    strings = info["strings"]
    head = {"kind": info["head_kind"], "source": info["label_source"],
            "reason": strings.get("label_reason", ""), "no": strings.get("label_no", ""),
            "yes": strings.get("label_yes", "")}
    if info["head_kind"] == "yes/no":
        head.update(no_id=info["no_id"], yes_id=info["yes_id"])
    try:
        provenance = json.loads(strings.get("provenance", ""))
    except ValueError:  # kept as the string it is, as the qrr command keeps it
        provenance = strings.get("provenance", "")
    doc = {
        "file": {"version": info["format_version"], "quant_version": info["quant_version"],
                 "bytes": info["file_bytes"]},
        "model": {"arch": info["arch"], "weights": info["weight_dtype"],
                  "layers": info["n_layers"], "hidden": info["hidden"],
                  "heads": info["n_heads"], "kv_heads": info["n_kv_heads"],
                  "head_dim": info["head_dim"], "intermediate": info["intermediate"],
                  "vocab": info["vocab_size"], "max_position": info["max_position"],
                  "rms_eps": info["rms_eps"], "rope_theta": info["rope_theta"],
                  "tied": info["tied"], "max_length": info["max_length"],
                  "quant_block": info["quant_block"]},
        "head": head,
        "prompts": {"prefix": strings.get("prefix", ""), "suffix": strings.get("suffix", ""),
                    "query": strings.get("query_template", ""),
                    "document": strings.get("document_template", ""),
                    "instruction": strings.get("instruction", ""),
                    "prefix_tokens": info["n_prefix_ids"], "suffix_tokens": info["n_suffix_ids"]},
        "tokenizer": {"ids": info["tokenizer_ids"], "merges": info["tokenizer_merges"],
                      "added": info["tokenizer_added"]},
        "tensors": [{"name": t["name"], "type": t["dtype"], "shape": t["shape"],
                     "bytes": t["bytes"]} for t in info["tensors"]],
        "tensor_count": info["n_tensors"], "tensor_bytes": info["tensor_bytes"],
        "provenance": provenance,
        "timing": {"open_seconds": open_seconds, "verify_seconds": info["verify_seconds"]},
    }
    if not tensors:
        del doc["tensors"]
    return doc


def _info(model: Reranker, as_json: bool, tensors: bool, open_seconds: float) -> int:
    info = model.info()
    if as_json:
        _write(json.dumps(_info_document(info, open_seconds, tensors), indent=2))
        return 0
    _write(f"model        {info['arch']}, {info['n_layers']} layers, hidden {info['hidden']}, "
           f"heads {info['n_heads']}/{info['n_kv_heads']} (q/kv), head_dim {info['head_dim']}, "
           f"intermediate {info['intermediate']}, vocab {info['vocab_size']}")
    _write(f"weights      {info['weight_dtype']}")
    _write(f"head         {info['head_kind']}; labels {info['label_source']}")
    _write(f"             {info['strings']['label_reason']}")
    _write(f"prompts      max_length {info['max_length']}, prefix {info['n_prefix_ids']} tokens, "
           f"suffix {info['n_suffix_ids']} tokens")
    _write(f"tokenizer    {info['tokenizer_ids']} ids, {info['tokenizer_merges']} merges, "
           f"{info['tokenizer_added']} added tokens")
    _write(f"tensors      {info['n_tensors']}, {info['tensor_bytes'] / (1 << 20):.1f} MiB")
    return 0


def _threads(text: str) -> int:
    """--threads as the qrr command takes it: a bad value is a usage error (exit 2)."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if not 0 <= n <= MAX_THREADS:
        raise argparse.ArgumentTypeError(f"must be 0..{MAX_THREADS}, not {text!r}")
    return n


def _lose_output() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush of what stdout could
    not take fails no more (a second error, with a traceback, at exit)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _version() -> str:
    """The package's version (its installed metadata) and that of the libqrr it loaded."""
    try:
        package = metadata.version("qrr")
    except metadata.PackageNotFoundError:  # run from a source tree, not installed
        package = "not installed"
    return f"qrr package {package}, libqrr {__version__} ({_capi.LIBRARY_PATH})"


class _Version(argparse.Action):
    """--version: one line as it is (argparse's own action wraps it to the terminal's width,
    which would cut the library's path)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(_version())
        parser.exit()


def _model_arguments(command: argparse.ArgumentParser) -> None:
    """The model file and --no-verify, which score and info both take."""
    command.add_argument("model", help="the .qrr file (made by qrr.convert or qconvert)")
    command.add_argument("--no-verify", action="store_true",
                         help="skip the weights' checksums at open (those of the linear "
                              "layers and the embedding: nearly all of the file)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m qrr", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action=_Version,
                        help="print the package's version and libqrr's, and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    score = sub.add_parser("score", help="JSON lines of (query, document) on stdin -> scores")
    _model_arguments(score)
    score.add_argument("--threads", type=_threads, default=0, metavar="N",
                       help=f"CPU threads, 0..{MAX_THREADS} (default 0: one per CPU)")
    score.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help=DEVICE_HELP)
    info = sub.add_parser("info", help="what a .qrr file holds")
    _model_arguments(info)
    info.add_argument("--json", action="store_true",
                      help="print qrr info --json's document instead of a summary")
    info.add_argument("--no-tensors", action="store_true",
                      help="with --json: leave out the list of tensors")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:  # the lines answered so far are out; the rest are not
        print(f"python -m qrr {args.command}: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    try:
        start = time.monotonic()
        model = Reranker(args.model, threads=getattr(args, "threads", 0),
                         device=getattr(args, "device", "cpu"), verify=not args.no_verify)
        open_seconds = time.monotonic() - start
    except (QrrError, ValueError) as e:
        print(f"python -m qrr {args.command}: cannot open model: {e}", file=sys.stderr)
        return 1
    with model:
        try:
            if args.command == "score":
                return _score(model)
            return _info(model, args.json, not args.no_tensors, open_seconds)
        except _OutputError as e:
            _lose_output()
            print(f"python -m qrr {args.command}: cannot write the output: {e}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
