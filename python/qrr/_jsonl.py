"""JSON lines read as the qrr command reads them (jansson): UTF-8 bytes, strict JSON, one
object a line. Shared by python -m qrr score and python -m qrr.ray_rerank, so that a line
one refuses the other refuses too, with the same words. Each refusal is a ValueError."""
from __future__ import annotations

import json

BOM = b"\xef\xbb\xbf"  # the byte-order mark some editors write at a UTF-8 file's start


def _no_duplicate_keys(pairs: list) -> dict:
    """A JSON object, refused as the qrr command's reader (jansson) refuses it when a key
    repeats (Python's json would keep the last)."""
    o = dict(pairs)
    if len(o) != len(pairs):
        seen = set()
        key = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"not valid JSON: duplicate object key {json.dumps(key)}")
    return o


def _no_constant(name: str) -> None:
    raise ValueError(f"not valid JSON: {name} is no JSON value")


def _int64(text: str) -> int:
    """A JSON integer as jansson holds it: a signed 64-bit number, else refused."""
    v = int(text)
    if not -2**63 <= v < 2**63:
        raise ValueError(f"not valid JSON: too big integer {text[:20]}")
    return v


def _finite(text: str) -> float:
    """A JSON real as jansson holds it: a finite double, else refused (1e400)."""
    v = float(text)
    if v in (float("inf"), float("-inf")):
        raise ValueError(f"not valid JSON: real number overflow {text[:20]}")
    return v


def _no_lone_surrogates(v: object) -> None:
    """Refuse a \\u escape that names half of a surrogate pair, as jansson does (Python's
    json decodes it into a string no UTF-8 can hold)."""
    if isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("not valid JSON: a \\u escape names a lone surrogate") from None
    elif isinstance(v, dict):
        for k, x in v.items():
            _no_lone_surrogates(k)
            _no_lone_surrogates(x)
    elif isinstance(v, list):
        for x in v:
            _no_lone_surrogates(x)


def decode(raw: bytes) -> str:
    """A line's bytes as UTF-8, whatever the locale's encoding."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"not valid UTF-8 at column {e.start + 1} ({e.reason})") from None


def parse(text: str) -> dict:
    """One input line as the qrr command reads it: strict JSON, an object."""
    try:
        o = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant,
                       parse_int=_int64, parse_float=_finite)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON: {e.msg} (column {e.pos + 1})") from None
    except RecursionError:  # Python's limit (about 1,000 levels) is below jansson's 2,048
        raise ValueError("not valid JSON: nested too deeply for Python's reader") from None
    _no_lone_surrogates(o)
    if not isinstance(o, dict):
        raise ValueError("expected a JSON object")
    return o
