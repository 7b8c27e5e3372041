"""The one exception qrr raises for what the library or the converter refused."""
from __future__ import annotations

from . import _capi


class QrrError(RuntimeError):
    """A libqrr call failed. The message is the library's own (qrr_last_error(): it names
    the file, field, tensor or argument); ``status`` is the qrr_status code and
    ``status_name`` its name (e.g. "QRR_ERR_IO")."""

    def __init__(self, message: str, status: int = -1, status_name: str = "QRR_ERR_UNKNOWN"):
        super().__init__(message)
        self.status = status
        self.status_name = status_name


def check(status: int) -> None:
    """Raise QrrError for a failed status, with the message this thread's call left."""
    if status != _capi.QRR_OK:
        raise last_error(status)


def last_error(status: int) -> QrrError:
    message = (_capi.lib.qrr_last_error() or b"").decode("utf-8", "replace")
    name = _capi.lib.qrr_status_str(status).decode()
    return QrrError(message or name, status, name)
