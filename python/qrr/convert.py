"""qrr.convert: a Hugging Face Qwen3-Reranker directory to a .qrr file, by running the
qconvert program bundled with the package. The converter (JSON, safetensors, quantizers)
is deliberately not part of libqrr, so the library stays small and never parses JSON."""
from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from typing import Optional, Union

from . import _capi
from ._args import int_arg, path_arg
from .errors import QrrError

PathLike = Union[str, "os.PathLike[str]"]
_EXIT_STATUS = {1: "bad input", 2: "usage error", 3: "I/O error writing the output"}
# qconvert ends a failure's message with the status code's name, on a line of its own
_STATUS_NAME = re.compile(r"\((QRR_ERR_[A-Z0-9_]+)\)\s*$")
DTYPES = ("f32", "f16", "bf16", "int8")
# qconvert's bounds on --max-length and --quant-block (format/qrr_format.h): checked here so
# that a value out of them is named as this function's argument, not as qconvert's option.
MAX_POSITION = 1 << 24  # QRR_MAX_POSITION
MAX_INTERMEDIATE = 262144  # QRR_MAX_INTERMEDIATE


def _labels_option(labels: Sequence[str]) -> str:
    """--labels NO,YES from a (no, yes) pair of str; a str alone would be split into its
    characters."""
    if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence):
        raise TypeError(f"labels must be a (no, yes) pair of str, not {type(labels).__name__}")
    if len(labels) != 2 or not all(isinstance(x, str) for x in labels):
        raise ValueError(f"labels must be a (no, yes) pair of str, not {labels!r}")
    if any("," in x for x in labels):  # qconvert's --labels NO,YES could not be split
        raise ValueError(f"labels must not contain a comma: {labels!r}")
    return f"{labels[0]},{labels[1]}"


def convert(src_dir: PathLike, dst: PathLike, dtype: str = "int8",
            labels: Optional[Sequence[str]] = None, max_length: Optional[int] = None,
            force: bool = False, quant_block: Optional[int] = None) -> str:
    """Convert the model directory src_dir (config.json, *.safetensors, tokenizer.json,
    optional config_sentence_transformers.json) into the .qrr file dst and return its path.

    ``dtype``: "f32", "f16", "bf16" or "int8" for the linear layers and the embedding.
    ``labels``: the (no, yes) token strings, overriding config.json and inference.
    ``max_length``: the default prompt length limit to record (1..2**24; the model may
    allow fewer). ``force``: convert a directory that looks like an embedding model.
    ``quant_block``: int8 scales per block of this many inputs instead of per row. An
    argument of the wrong kind or out of those bounds raises TypeError or ValueError
    naming it, before qconvert runs; what only the model can tell raises QrrError with
    qconvert's message (it names the file and field at fault); a failed conversion leaves
    no output file.
    """
    src, out = path_arg(src_dir, "src_dir"), path_arg(dst, "dst")
    if not isinstance(dtype, str):
        raise TypeError(f"dtype must be a str, not {type(dtype).__name__}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    cmd = [_capi.qconvert_path(), "-o", out, "--dtype", dtype, "--quiet"]
    if labels is not None:
        cmd += ["--labels", _labels_option(labels)]
    if max_length is not None:
        cmd += ["--max-length", str(int_arg(max_length, "max_length", 1, MAX_POSITION))]
    if quant_block is not None:
        block = int_arg(quant_block, "quant_block", 1, MAX_INTERMEDIATE)
        if dtype != "int8":
            raise ValueError(f"quant_block needs dtype='int8', not {dtype!r}")
        cmd += ["--quant-block", str(block)]
    if force:
        cmd.append("--force")
    cmd += ["--", src]  # a directory named "-x" is no option
    stdout, stderr, status = _run(cmd)
    if status != 0:
        message = stderr.strip() or stdout.strip()
        if "error while loading shared libraries" in message:  # the loader's, not qconvert's
            message += "\n" + _capi.missing_library_hint(message, _capi.QCONVERT_PACKAGES)
        if status < 0:
            message = f"qconvert ended by signal {-status}: {message}"
        named = _STATUS_NAME.search(message)
        # status: qconvert's exit status (negative: the signal that ended it)
        raise QrrError(message, status, named.group(1) if named else
                       _EXIT_STATUS.get(status, "qconvert failed"))
    return os.fspath(dst)


def _cannot_run(program: str, e: OSError) -> QrrError:
    """QrrError for a qconvert that could not start; status 127 (not found) or 126 (not
    executable), as a shell would give."""
    if os.environ.get("QRR_QCONVERT"):
        fix = ("QRR_QCONVERT names it: point it at a built qconvert (build/qconvert after "
               "make), or unset it to use the one installed with the package")
    else:
        fix = "it came with the package: reinstall the package (pip install ./python)"
    status = 127 if isinstance(e, FileNotFoundError) else 126
    return QrrError(f"cannot run qconvert {program}: {e.strerror or e}; {fix}", status,
                    "cannot run qconvert")


def _run(cmd: list) -> tuple:
    """(stdout, stderr, exit status) of qconvert. Interrupted here (KeyboardInterrupt, or
    any exception), it gets SIGTERM, on which it removes its temporary output, and is
    waited for before the exception goes on: subprocess.run would SIGKILL it, leaving a
    temporary file as large as the model."""
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, errors="replace")
    except OSError as e:  # no such file, or not an executable program
        raise _cannot_run(cmd[0], e) from None
    with proc:
        try:
            stdout, stderr = proc.communicate()
        except BaseException:
            proc.terminate()
            proc.communicate()  # reads what it still writes, so that it never blocks
            raise
    return stdout, stderr, proc.returncode
