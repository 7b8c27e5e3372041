"""Checks of Python-side arguments, shared by Reranker, convert and qrr.ray: each refusal is a
TypeError (wrong kind of value) or ValueError (out of range) that names the argument. Bounds
are checked here because ctypes would silently wrap a larger Python int to 32 bits. Also the
help of the command-line options that python -m qrr and python -m qrr.ray_rerank share."""
from __future__ import annotations

import operator
import os
from typing import Any, Optional, Union

import numpy as np

MAX_THREADS = 1024  # the library's bound on n_threads (runtime/context.c)

# --device of python -m qrr score and python -m qrr.ray_rerank
DEVICE_HELP = ("cpu (default), or cuda for a GPU (needs the CUDA module: QRR_CUDA=1 pip "
               "install ./python)")


def int_arg(value: Any, name: str, lo: int, hi: Optional[int] = None) -> int:
    """value as a Python int in [lo, hi] (hi None: no upper bound). Any integer is taken,
    NumPy's too (operator.index); a bool, a float or a str is not."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not a bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, not {type(value).__name__}") from None
    if v < lo or (hi is not None and v > hi):
        bounds = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be an int {bounds}, not {v}")
    return v


def bool_arg(value: Any, name: str, none_ok: bool = False, ints_ok: bool = False) -> Optional[bool]:
    """value as a Python bool: True, False or NumPy's bools (None too where none_ok, the ints
    0 and 1 where ints_ok). Anything else is refused: the string "no" is truthy, and taking
    it as True would quietly do the opposite of what was asked."""
    if value is None and none_ok:
        return None
    if isinstance(value, (bool, np.bool_)) or (ints_ok and type(value) is int and value in (0, 1)):
        return bool(value)
    also = " or None" if none_ok else " (or 0/1)" if ints_ok else ""
    raise TypeError(f"{name} must be a bool{also}, not {value!r}")


def path_arg(path: Union[str, bytes, "os.PathLike[Any]"], name: str) -> bytes:
    """A file name as C and the operating system take it: str, bytes or os.PathLike, spelled
    as the operating system does (a non-UTF-8 name survives)."""
    try:
        raw = os.fsencode(path)
    except TypeError:
        raise TypeError(f"{name} must be a str, bytes or os.PathLike, not "
                        f"{type(path).__name__}") from None
    if b"\0" in raw:  # the C string would end there: another file
        raise ValueError(f"{name} must not contain a NUL character: {path!r}")
    return raw
