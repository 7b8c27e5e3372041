"""qrr — Qwen3-Reranker scoring through libqrr, from Python.

    import qrr
    model = qrr.Reranker("reranker.qrr", threads=4)
    model.predict([("What is the capital of China?", "Beijing is the capital.")])
    model.rank("What is the capital of China?", ["Gravity is a force.", "Beijing."])

qrr.convert makes the .qrr from a Hugging Face model directory. Errors raise QrrError with
the library's message. docs/python.md has the rest, with a table from CrossEncoder.
"""
from ._capi import lib as _lib
from .convert import convert
from .errors import QrrError
from .reranker import Reranker

__version__: str = _lib.qrr_version().decode()

__all__ = ["Reranker", "QrrError", "convert", "__version__"]
