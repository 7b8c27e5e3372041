"""qrr.ray.rerank_dataset on a local Ray instance (loopback only): the C API's scores for
every row, once, with every column kept; bad rows named in the error; and a scoring actor
killed mid-job (by its pid) restarted by Ray with no row lost or scored twice."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from conftest import c_api_scores
from ray_support import (bounded, check_against, make_rows, need_ray, no_scorers_left,
                         scorer_pids)

pytestmark = pytest.mark.timeout(300)


def qrr_score_lines(rows, instruction=None):
    return [{"query": r["query"], "document": r["document"], "instruction": instruction}
            for r in rows]


@pytest.fixture(autouse=True)
def _ray_here():
    need_ray()
    no_scorers_left()


def by_id(rows):
    return sorted(rows, key=lambda r: r["id"])


def test_every_row_scored_once_as_qrr_score_does(local_ray, tied):
    from qrr.ray import rerank_dataset
    rows = make_rows(600)
    ds = local_ray.data.from_items(rows)
    out = rerank_dataset(ds, tied, actors=2, batch_size=64, node_column="node")
    got = by_id(bounded(out.take_all, 120))
    check_against([{k: v for k, v in g.items() if k != "node"} for g in got], rows,
                  c_api_scores(tied, qrr_score_lines(rows)))
    assert {g["node"] for g in got} == {"127.0.0.1"}


def test_the_instruction_reaches_every_row(local_ray, tied):
    from qrr.ray import rerank_dataset
    rows = make_rows(100, seed=3)
    instruction = "Given a question, find the passage that answers it"
    out = rerank_dataset(local_ray.data.from_items(rows), tied, instruction=instruction,
                         actors=1, batch_size=32)
    got = by_id(bounded(out.take_all, 120))
    check_against(got, rows, c_api_scores(tied, qrr_score_lines(rows, instruction)))
    plain = c_api_scores(tied, qrr_score_lines(rows))
    assert any(abs(g["score"] - s) > 1e-4 for g, (s, _) in zip(got, plain))


def test_a_row_without_a_document_fails_the_job_and_is_named(local_ray, tied):
    from qrr.ray import error_message, rerank_dataset
    rows = make_rows(20)
    rows[7]["document"] = None
    ds = local_ray.data.from_items(rows)
    with pytest.raises(Exception) as caught:
        bounded(rerank_dataset(ds, tied, actors=1, batch_size=8).take_all, 120)
    assert error_message(caught.value) == "row id=7: no 'document' (missing or null)"


def test_a_query_that_is_no_string_is_named(local_ray, tied):
    from qrr.ray import error_message, rerank_dataset
    rows = [{"id": i, "query": 100 + i, "document": "d"} for i in range(8)]
    ds = local_ray.data.from_items(rows)
    with pytest.raises(Exception) as caught:
        bounded(rerank_dataset(ds, tied, actors=1, batch_size=8).take_all, 120)
    assert error_message(caught.value) == "row id=0: 'query' must be a string, not int 100"


def test_a_missing_column_is_named(local_ray, tied):
    from qrr.ray import error_message, rerank_dataset
    ds = local_ray.data.from_items([{"id": 1, "question": "q", "document": "d"}])
    with pytest.raises(Exception) as caught:
        bounded(rerank_dataset(ds, tied, actors=1).take_all, 120)
    assert error_message(caught.value) == \
        "the dataset has no column 'query' (it has: id, question, document)"


def test_a_model_no_actor_can_open_is_named(local_ray, tmp_path):
    from qrr.ray import error_message, rerank_dataset
    missing = tmp_path / "missing.qrr"
    ds = local_ray.data.from_items(make_rows(4))
    with pytest.raises(Exception) as caught:
        bounded(rerank_dataset(ds, missing, actors=1).take_all, 120)
    assert error_message(caught.value) == f"{missing}: No such file or directory"


def test_a_killed_actor_is_restarted_and_no_row_is_lost(local_ray, tied):
    """SIGKILL one of two scoring actors once the first rows are back: Ray starts it again
    (a new process) and retries its batches; every row comes out exactly once."""
    from qrr.ray import rerank_dataset
    rows = make_rows(8000, seed=5)
    out = rerank_dataset(local_ray.data.from_items(rows), tied, actors=2, batch_size=8)
    me = os.getpid()
    seen_before, seen_after = set(), set()
    record = {}
    done = threading.Event()

    def watch():  # every scoring process once the victim is gone, however briefly it lives
        gone = False
        while not done.is_set():
            pids = set(scorer_pids(me))
            gone = gone or record["victim"] not in pids
            if gone:
                seen_after.update(pids)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)

    def run():
        got = []
        for batch in out.iter_batches(batch_format="pyarrow", batch_size=None):
            got += batch.to_pylist()
            if "victim" in record:
                # Hold the stream until the new process shows up, so that the job cannot
                # end before Ray has restarted the actor.
                deadline = time.monotonic() + 60
                while not seen_after - seen_before and time.monotonic() < deadline:
                    time.sleep(0.1)
                continue
            pids = set(scorer_pids(me))
            if len(pids) == 2:
                seen_before.update(pids)
                record["victim"] = min(pids)
                record["rows_then"] = len(got)
                os.kill(record["victim"], signal.SIGKILL)
                record["killed_at"] = time.monotonic()
                watcher.start()
        return got

    try:
        got = bounded(run, 240)
    finally:
        done.set()
        if watcher.is_alive():
            watcher.join()
    assert "victim" in record, "the two actors never showed up"
    assert record["rows_then"] < len(rows), "the job ended before the kill"
    restarted = seen_after - seen_before
    assert restarted, f"no new scoring process after killing {record['victim']}"
    assert record["victim"] not in seen_after
    print(f"killed actor pid {record['victim']} after {record['rows_then']} of {len(rows)} "
          f"rows; new scoring process(es) {sorted(restarted)}")
    check_against(by_id(got), rows, c_api_scores(tied, qrr_score_lines(rows)))


def test_a_pool_on_every_cpu_leaves_a_reader_one(local_ray, tied, tmp_path):
    """Two actors on the two CPUs, reading Parquet as Ray Data does by default (a read task
    asks for one CPU): each actor asks for half a CPU, so the read runs and the job ends."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from qrr.ray import actor_cpus, rerank_dataset
    assert actor_cpus(2, 1) == 0.5      # 2 of 2 CPUs: one CPU's worth left for the reader
    assert actor_cpus(1, 2) == 1.0
    assert actor_cpus(1, 1) == 1        # leaves one CPU already
    assert actor_cpus(3, 1) == 1        # too big for the cluster: left as asked
    assert actor_cpus(None, 2) == 2     # a growing pool: Ray Data sizes it
    rows = make_rows(300, seed=7)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "rows.parquet")
    ds = local_ray.data.read_parquet(str(tmp_path / "rows.parquet"))
    got = by_id(bounded(rerank_dataset(ds, tied, actors=2, batch_size=64).take_all, 120))
    check_against(got, rows, c_api_scores(tied, qrr_score_lines(rows)))


def test_int_arguments_are_checked_before_anything_runs():
    """rerank_dataset's counts take NumPy integers and refuse a bool, a float or a str,
    naming the argument, before the dataset is touched (None here)."""
    import numpy as np
    import qrr.ray
    for kw, name in ((dict(batch_size=True), "batch_size"), (dict(actors=1.5), "actors"),
                     (dict(threads_per_actor="2"), "threads_per_actor")):
        with pytest.raises(TypeError, match=f"^{name} must be an int, not "):
            qrr.ray.rerank_dataset(None, "m.qrr", **kw)
    with pytest.raises(ValueError, match=r"^batch_size must be an int >= 1, not 0"):
        qrr.ray.rerank_dataset(None, "m.qrr", batch_size=0)
    with pytest.raises(AttributeError, match="map_batches"):  # the checks passed
        qrr.ray.rerank_dataset(None, "m.qrr", batch_size=np.int64(2), actors=np.int32(1))

