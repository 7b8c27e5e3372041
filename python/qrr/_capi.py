"""The C API of libqrr (include/qrr.h) through ctypes: finding the library, the structs and
the signatures. Nothing here scores or decides; reranker.py builds on these calls.

ctypes releases the GIL for the duration of every call into the library, so threads
scoring with different Reranker objects run in parallel.
"""
from __future__ import annotations

import ctypes
import os
from ctypes import (POINTER, Structure, c_char_p, c_double, c_float, c_int, c_int32,
                    c_size_t, c_uint32, c_uint64, c_void_p)
from pathlib import Path
from typing import Dict

_HERE = Path(__file__).resolve().parent
# Bundled by the package build (setup.py): the shared library and the converter.
_BUNDLED_LIBRARY = _HERE / "_lib" / "libqrr.so.0"
_BUNDLED_QCONVERT = _HERE / "_lib" / "qconvert"
# A QRR_CUDA=1 package's CUDA module, which libqrr looks for beside itself.
_BUNDLED_CUDA_MODULE = _HERE / "_lib" / "libqrr_cuda.so.0"

# The shared libraries libqrr links (the Makefile's LDLIBS_RT) and qconvert adds (LDLIBS_CV),
# with the Debian package that holds each. libqrr links no CUDA library: a QRR_CUDA=1 package
# adds the CUDA module (_lib/libqrr_cuda.so.0), loaded by libqrr only for device="cuda".
LIBRARY_PACKAGES = {"libxxhash.so.0": "libxxhash0", "libutf8proc.so.2": "libutf8proc2",
                    "libpcre2-8.so.0": "libpcre2-8-0", "libz.so.1": "zlib1g"}
QCONVERT_PACKAGES = {**LIBRARY_PACKAGES, "libjansson.so.4": "libjansson4"}

QRR_OK = 0
QRR_DEVICE_CPU = 0
QRR_DEVICE_CUDA = 1
QRR_ERR_BUFFER_TOO_SMALL = -4


class ModelParams(Structure):
    _fields_ = [("verify_weights", c_int)]


class CtxParams(Structure):
    _fields_ = [("n_threads", c_int), ("device", c_int), ("max_batch_tokens", c_int),
                ("share_prefix", c_int)]


class ScoreParams(Structure):
    _fields_ = [("instruction", c_char_p), ("max_length", c_int),
                ("instruction_len", c_size_t), ("truncate", c_int)]


class Group(Structure):
    """qrr_group: one query's complete prompts (token ids) and where their results go."""
    _fields_ = [("ids", POINTER(POINTER(c_int32))), ("lens", POINTER(c_size_t)),
                ("n", c_size_t), ("scores", POINTER(c_float)), ("logits", POINTER(c_float))]


class Stats(Structure):
    _fields_ = [("tokens", c_size_t), ("tokens_computed", c_size_t)]


class ModelInfo(Structure):
    _fields_ = [
        ("format_version", c_uint32), ("quant_version", c_uint32), ("file_bytes", c_uint64),
        ("verify_seconds", c_double),
        ("arch", c_char_p),
        ("n_layers", c_int), ("hidden", c_int), ("n_heads", c_int), ("n_kv_heads", c_int),
        ("head_dim", c_int), ("intermediate", c_int), ("vocab_size", c_int),
        ("max_position", c_int),
        ("rms_eps", c_double), ("rope_theta", c_double),
        ("tied", c_int),
        ("weight_dtype", c_char_p),
        ("quant_block", c_int),
        ("head_kind", c_char_p), ("label_source", c_char_p),
        ("yes_id", c_int32), ("no_id", c_int32),
        ("max_length", c_int),
        ("n_prefix_ids", c_size_t), ("n_suffix_ids", c_size_t),
        ("tokenizer_ids", c_size_t), ("tokenizer_merges", c_size_t),
        ("tokenizer_added", c_size_t),
        ("n_tensors", c_size_t), ("tensor_bytes", c_uint64),
    ]


class TensorInfo(Structure):
    _fields_ = [("name", c_char_p), ("dtype", c_char_p), ("ndim", c_int),
                ("dims", c_uint64 * 4), ("bytes", c_uint64)]


def _bundled(variable: str, bundled: Path, error: type) -> str:
    """$variable when set, else the bundled file; error when neither is there."""
    env = os.environ.get(variable)
    if env:
        return env
    if bundled.exists():
        return str(bundled)
    raise error(f"qrr: no {bundled.name} at {bundled} and {variable} is not set: install the "
                "package with pip install ./python (an editable install, pip install -e, has "
                f"no bundled files), or set {variable}")


def library_path() -> str:
    """The libqrr to load: $QRR_LIBRARY (e.g. a build tree's build/libqrr.so), else the
    library bundled with the package."""
    return _bundled("QRR_LIBRARY", _BUNDLED_LIBRARY, ImportError)


def qconvert_path() -> str:
    """The converter qrr.convert runs: $QRR_QCONVERT, else the bundled one."""
    return _bundled("QRR_QCONVERT", _BUNDLED_QCONVERT, FileNotFoundError)


def missing_library_hint(message: str, packages: Dict[str, str]) -> str:
    """A HINT line for a loader error (message): the Debian package of the library it names,
    when it is one of packages, and every package to install."""
    named = [f"{so} is in {pkg}" for so, pkg in packages.items() if so in message]
    return "HINT: " + "; ".join(named + ["install the Debian packages it needs: apt-get "
                                         f"install {' '.join(packages.values())}"])


def _load(path: str) -> ctypes.CDLL:
    try:
        return ctypes.CDLL(path)
    except OSError as e:  # a library it links is missing, most often
        if os.path.exists(path):
            hint = missing_library_hint(str(e), LIBRARY_PACKAGES)
        else:  # the bundled one is checked by _bundled: QRR_LIBRARY names no file
            hint = ("HINT: QRR_LIBRARY names a file that does not exist: unset it to use the "
                    "library installed with the package, or point it at a built libqrr.so "
                    "(build/libqrr.so after make)")
        raise ImportError(f"qrr: cannot load {path}: {e}\n{hint}") from e


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    P = POINTER
    sigs = {
        "qrr_model_default_params": (ModelParams, []),
        "qrr_ctx_default_params": (CtxParams, []),
        "qrr_score_default_params": (ScoreParams, []),
        "qrr_model_open": (c_int, [c_char_p, ModelParams, P(c_void_p)]),
        "qrr_model_close": (None, [c_void_p]),
        "qrr_ctx_create": (c_int, [c_void_p, CtxParams, P(c_void_p)]),
        "qrr_ctx_free": (None, [c_void_p]),
        "qrr_ctx_score_len": (c_int, [c_void_p, c_char_p, c_size_t, P(c_char_p), P(c_size_t),
                                      c_size_t, ScoreParams, P(c_float), P(c_float)]),
        "qrr_ctx_score_groups": (c_int, [c_void_p, P(Group), c_size_t]),
        "qrr_ctx_last_stats": (Stats, [c_void_p]),
        "qrr_model_tokenize": (c_int, [c_void_p, c_char_p, c_size_t, P(c_int32), c_size_t,
                                       P(c_size_t)]),
        "qrr_model_decode": (c_int, [c_void_p, P(c_int32), c_size_t, c_char_p, c_size_t,
                                     P(c_size_t)]),
        "qrr_model_prompt_ids_len": (c_int, [c_void_p, c_char_p, c_size_t, c_char_p, c_size_t,
                                             ScoreParams, P(c_int32), c_size_t, P(c_size_t)]),
        "qrr_model_get_info": (c_int, [c_void_p, P(ModelInfo)]),
        "qrr_model_meta_str": (c_void_p, [c_void_p, c_char_p, P(c_size_t)]),
        "qrr_model_meta_key": (c_char_p, [c_size_t]),
        "qrr_model_tensor": (c_int, [c_void_p, c_size_t, P(TensorInfo)]),
        "qrr_last_error": (c_char_p, []),
        "qrr_status_str": (c_char_p, [c_int]),
        "qrr_version": (c_char_p, []),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


def cuda_module_hint() -> str:
    """A HINT line for device="cuda" refused because no CUDA module could be loaded, when the
    library loaded is the package's own and the package has no module: a CPU-only install.
    Empty otherwise (a build tree's library: the library's message says what to build)."""
    if Path(LIBRARY_PATH).resolve() != _BUNDLED_LIBRARY or _BUNDLED_CUDA_MODULE.exists():
        return ""
    return ("HINT: this package was installed without CUDA: reinstall it with the CUDA "
            "module, QRR_CUDA=1 pip install ./python from a qrr checkout (needs nvcc)")


LIBRARY_PATH = library_path()  # the libqrr this process loaded
lib = _declare(_load(LIBRARY_PATH))
