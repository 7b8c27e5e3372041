"""Threads: two Rerankers in two threads score at the same time (ctypes calls the library
without the GIL) and get the same numbers as alone; one Reranker shared by threads stays
correct (its calls take turns); close() waits for a call in another thread."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import qrr

QUERY = "What is known about the history and population of the capital city?"
# Long enough that one call takes a while on the tiny model.
PAIRS = [(QUERY, " ".join(["The city", "grew along the river"] * (20 + i))) for i in range(48)]


def run_threads(target, n):
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_two_rerankers_overlap_in_time(tied):
    alone = qrr.Reranker(tied, threads=1).predict(PAIRS)
    models = [qrr.Reranker(tied, threads=1) for _ in range(2)]
    intervals = [[], []]
    results = [[], []]

    def work(k):
        for _ in range(3):
            t0 = time.perf_counter()
            results[k].append(models[k].predict(PAIRS, batch_size=64))
            intervals[k].append((t0, time.perf_counter()))

    # A long switch interval: a thread gives up the GIL only where it releases it itself,
    # so the other thread's call can start inside this one's only if the call released it.
    old = sys.getswitchinterval()
    sys.setswitchinterval(30.0)
    try:
        run_threads(work, 2)
    finally:
        sys.setswitchinterval(old)
    overlap = sum(max(0.0, min(a1, b1) - max(a0, b0))
                  for a0, a1 in intervals[0] for b0, b1 in intervals[1])
    assert overlap > 0, intervals
    for r in results[0] + results[1]:
        assert np.array_equal(r, alone)
    for m in models:
        m.close()


def test_one_reranker_shared_by_threads(tied):
    model = qrr.Reranker(tied, threads=1)
    want = model.predict(PAIRS[:8])
    got = [None] * 4

    def work(k):
        got[k] = model.predict(PAIRS[:8])

    run_threads(work, 4)
    for g in got:
        assert np.array_equal(g, want)
    model.close()


# A thread calls one of the text calls over and over while the main thread closes the
# model: the main thread gets the GIL back while the other is inside the library, so
# without the lock close() would free the model under that call (a segfault).
CLOSE_DURING_CALLS = """
import sys, threading, time
import qrr
model = qrr.Reranker(sys.argv[1], threads=1)
text = "h\\u00e9llo w\\u00f6rld " * 2000
ids = model.tokenize(text)
call = {"tokenize": lambda: model.tokenize(text),
        "prompt_ids": lambda: model.prompt_ids("q", text),
        "decode": lambda: model.decode(ids),
        "info": model.info}[sys.argv[2]]
ended = []
def work():
    try:
        while True:
            call()
    except qrr.QrrError as e:
        ended.append(str(e))
worker = threading.Thread(target=work)
worker.start()
time.sleep(0.05)
model.close()
worker.join()
print(ended[0])
"""


@pytest.mark.parametrize("call", ["tokenize", "prompt_ids", "decode", "info"])
def test_close_waits_for_a_call_in_another_thread(tied, call):
    done = subprocess.run([sys.executable, "-c", CLOSE_DURING_CALLS, tied, call],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert done.stdout == f"{tied}: this Reranker is closed\n"
