"""The progress bar of long predict calls: tqdm when it is installed, else a counter line
on stderr; nothing at all when not asked for."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator


class _Nothing:
    def update(self, n: int) -> None:
        pass


class _Counter:
    def __init__(self, total: int, desc: str):
        self.total, self.done, self.desc = total, 0, desc

    def update(self, n: int) -> None:
        self.done += n
        sys.stderr.write(f"\r{self.desc}: {self.done}/{self.total} pairs")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")


@contextmanager
def progress(total: int, show: bool, desc: str) -> Iterator[object]:
    if not show:
        yield _Nothing()
        return
    try:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, desc=desc, unit="pair")
    except ImportError:
        bar = _Counter(total, desc)
    try:
        yield bar
    finally:
        bar.close()
