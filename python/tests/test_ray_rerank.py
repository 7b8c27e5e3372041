"""python -m qrr.ray_rerank: 1,600 pairs of JSON lines through a fresh process (its own local
Ray on loopback) score as `qrr score` does, every id once, in order, every field kept as it
was; Parquet in and out; bad rows, a missing model and bad paths stop with one line naming
the row or the file, and leave no output (nor a partial one) behind."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from conftest import c_api_scores
from ray_support import (PACKAGE_ROOT, check_against, descendants, kill_pids, make_rows,
                         need_ray, no_scorers_left, read_jsonl, write_jsonl)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(autouse=True)
def _ray_here():
    need_ray()
    no_scorers_left()


def score_lines(rows):
    return [{"query": r["query"], "document": r["document"]} for r in rows]


def leftovers(directory):
    return sorted(n for n in os.listdir(directory) if ".partial-" in n)


def command_env() -> dict:
    """The environment of python -m qrr.ray_rerank in a fresh process (its own local Ray)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [PACKAGE_ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.pop("RAY_ADDRESS", None)
    return env


def test_json_lines_through_the_command_equal_qrr_score(tied, tmp_path):
    rows = make_rows(1600)
    rows[5]["extra"] = {"kept": ["as", "is"], "n": 1.0}
    rows[6]["code"] = "007"  # a string that looks like a number stays a string
    src = write_jsonl(tmp_path / "pairs.jsonl", rows)
    out = tmp_path / "scored.jsonl"
    env = command_env()
    done = subprocess.run([sys.executable, "-m", "qrr.ray_rerank", tied, str(src), str(out),
                           "--actors", "2", "--batch-size", "64"],
                          capture_output=True, text=True, timeout=240, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert "%|" not in done.stderr  # no progress bar when stderr is not a terminal
    assert re.fullmatch(r"qrr\.ray_rerank: 1600 rows, [0-9.]+ pairs/s, [0-9.]+ s, 1 node "
                        r"\(127\.0\.0\.1: 1600\) -> .*scored\.jsonl", last), last
    got = read_jsonl(out)
    worst = check_against(got, rows, c_api_scores(tied, score_lines(rows)))
    print(f"1600 rows, every id once, max |score - qrr score| = {worst:.3g}")
    assert got[5]["extra"] == {"kept": ["as", "is"], "n": 1.0}
    assert got[6]["code"] == "007"
    assert leftovers(tmp_path) == []


def run_main(*argv):
    from qrr.ray_rerank import main
    return main([str(a) for a in argv])


def test_parquet_in_parquet_out_and_a_directory_of_parts(local_ray, tied, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    rows = make_rows(300, seed=9)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "pairs.parquet")
    want = c_api_scores(tied, score_lines(rows))
    assert run_main(tied, tmp_path / "pairs.parquet", tmp_path / "scored.parquet",
                    "--actors", "1") == 0
    check_against(pq.read_table(tmp_path / "scored.parquet").to_pylist(), rows, want)
    assert run_main(tied, tmp_path / "pairs.parquet", tmp_path / "parts", "--actors", "1") == 0
    parts = sorted((tmp_path / "parts").iterdir())
    assert parts and all(p.suffix == ".parquet" for p in parts)
    got = [r for p in parts for r in pq.read_table(p).to_pylist()]
    check_against(got, rows, want)
    assert leftovers(tmp_path) == []


def test_an_empty_parquet_input_gives_its_columns_and_no_rows(local_ray, tied, tmp_path):
    """No rows in, no rows out, but the output keeps the input's columns and adds score and
    logit, so that a job reading its schema downstream still works."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"id": pa.array([], pa.int64()), "query": pa.array([], pa.string()),
                             "document": pa.array([], pa.string())}), tmp_path / "empty.parquet")
    want = pa.schema([("id", pa.int64()), ("query", pa.string()), ("document", pa.string()),
                      ("score", pa.float32()), ("logit", pa.float32())])
    assert run_main(tied, tmp_path / "empty.parquet", tmp_path / "scored.parquet") == 0
    table = pq.read_table(tmp_path / "scored.parquet")
    assert table.num_rows == 0 and table.schema.equals(want)
    assert run_main(tied, tmp_path / "empty.parquet", tmp_path / "parts") == 0
    parts = list((tmp_path / "parts").iterdir())
    assert len(parts) == 1 and pq.read_table(parts[0]).schema.equals(want)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("document"), "no 'document' (missing or null)"),
    (lambda r: r.update(query=5), "'query' must be a string, not int 5"),
    (lambda r: r.update(score=0.5), "already has a 'score' field"),
])
def test_a_bad_row_stops_the_job_naming_it_and_writes_nothing(local_ray, tied, tmp_path,
                                                              capsys, change, message):
    rows = make_rows(600, seed=4)
    change(rows[7])
    src = write_jsonl(tmp_path / "pairs.jsonl", rows)
    assert run_main(tied, src, tmp_path / "scored.jsonl", "--actors", "1") == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == f"qrr.ray_rerank: {src} line 8 (id=7): {message}"
    assert not (tmp_path / "scored.jsonl").exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("line, message", [
    ('{"id": 2, "query": ', "not valid JSON: Expecting value (column 20)"),
    # what `qrr score` (and python -m qrr score) refuse, refused alike, in the same words
    ('{"id": 2, "query": "q", "document": "d", "query": "r"}',
     'not valid JSON: duplicate object key "query"'),
    ('{"id": 2, "query": "q", "document": "d", "x": NaN}', "not valid JSON: NaN is no JSON value"),
    ('{"id": 2, "query": "q", "document": "\\udc80"}',
     "not valid JSON: a \\u escape names a lone surrogate"),
    ('["q", "d"]', "expected a JSON object"),
])
def test_a_line_that_is_not_json_is_named(local_ray, tied, tmp_path, capsys, line, message):
    src = tmp_path / "pairs.jsonl"
    src.write_text('{"id": 1, "query": "q", "document": "d"}\n' + line + "\n")
    assert run_main(tied, src, tmp_path / "scored.parquet") == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == f"qrr.ray_rerank: {src} line 2: {message}"
    assert os.listdir(tmp_path) == ["pairs.jsonl"]


def test_a_byte_order_mark_starting_a_file_is_skipped(local_ray, tied, tmp_path):
    """As `qrr score` skips it: at the start of each file of a directory input."""
    rows = make_rows(40, seed=3)
    (tmp_path / "in").mkdir()
    for name, part in (("a.jsonl", rows[:25]), ("b.jsonl", rows[25:])):
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part)
        (tmp_path / "in" / name).write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert run_main(tied, tmp_path / "in", tmp_path / "scored.jsonl", "--actors", "1",
                    "--batch-size", "10") == 0
    check_against(read_jsonl(tmp_path / "scored.jsonl"), rows,
                  c_api_scores(tied, score_lines(rows)))


def test_nan_from_parquet_is_never_written_as_json(local_ray, tied, tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq
    rows = make_rows(20, seed=5)
    for r in rows:
        r["weight"] = 1.0
    rows[3]["weight"] = float("nan")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "pairs.parquet")
    assert run_main(tied, tmp_path / "pairs.parquet", tmp_path / "scored.jsonl",
                    "--actors", "1") == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"qrr.ray_rerank: {tmp_path / 'scored.jsonl'}: a row holds NaN or an infinity, "
        "which JSON cannot: write Parquet")
    assert sorted(os.listdir(tmp_path)) == ["pairs.parquet"]


def test_a_pool_too_big_for_this_machine_is_refused_at_once(tied, tmp_path):
    """Without --address the local instance has the machine's CPUs and no more: a pool
    that needs more is refused, not left waiting for them."""
    src = write_jsonl(tmp_path / "pairs.jsonl", make_rows(10))
    threads = os.cpu_count()  # two actors of as many threads as the machine has CPUs
    proc = subprocess.Popen([sys.executable, "-m", "qrr.ray_rerank", tied, str(src),
                             str(tmp_path / "scored.jsonl"), "--actors", "2",
                             "--threads-per-actor", str(threads)],
                            stderr=subprocess.PIPE, text=True, env=command_env(), cwd=tmp_path)
    start = time.monotonic()
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("python -m qrr.ray_rerank waits for CPUs that never come")
    finally:  # by pid: what is left of it and its local Ray, when it failed
        kill_pids(descendants(proc.pid) + [proc.pid])
    print(f"refused in {time.monotonic() - start:.1f} s")
    assert proc.returncode == 1, err[-3000:]
    assert re.fullmatch(rf"qrr\.ray_rerank: --actors 2 x --threads-per-actor {threads} "
                        rf"needs {2 * threads} CPUs, more than the [0-9]+ of this machine: "
                        r"use fewer, or join a cluster with --address",
                        err.strip().splitlines()[-1]), err[-3000:]
    assert sorted(os.listdir(tmp_path)) == ["pairs.jsonl"]


def test_a_cuda_pool_with_more_actors_than_gpus_is_refused(local_ray):
    """--device cuda asks a GPU of every actor: on the local instance, a pool of more actors
    than it has GPUs is refused as a CPU pool too big is, not left waiting for them."""
    import ray
    from qrr._ray_io import UsageError
    from qrr.ray_rerank import check_local_pool
    gpus = int(ray.cluster_resources().get("GPU", 0))
    with pytest.raises(UsageError, match=rf"^--device cuda takes a GPU per actor: {gpus + 1} "
                       rf"needed, this machine has {gpus}: use fewer --actors, or join a "
                       r"cluster with --address$"):
        check_local_pool(gpus + 1, 1, "cuda")
    if gpus == 0:  # no set size: one actor, still one GPU more than there are
        with pytest.raises(UsageError, match="1 needed, this machine has 0"):
            check_local_pool(None, 1, "cuda")
    if gpus + 1 <= int(ray.cluster_resources().get("CPU", 0)):  # no GPU asked for: it fits
        check_local_pool(gpus + 1, 1, "cpu")


def test_an_output_with_nowhere_to_go_is_refused_before_the_job(local_ray, tied, tmp_path,
                                                                capsys):
    src = write_jsonl(tmp_path / "pairs.jsonl", make_rows(10))
    for out, where in ((tmp_path / "nodir" / "o.parquet", tmp_path / "nodir"),
                       (tmp_path / "nodir" / "parts", tmp_path / "nodir"),
                       (src / "o.jsonl", src)):  # a file is no directory
        assert run_main(tied, src, out) == 1
        assert capsys.readouterr().err.strip() == \
            f"qrr.ray_rerank: {out}: no directory {where} to write it in"
    assert sorted(os.listdir(tmp_path)) == ["pairs.jsonl"]


def test_the_input_is_never_the_output(local_ray, tied, tmp_path, capsys):
    src = write_jsonl(tmp_path / "pairs.jsonl", make_rows(10))
    before = src.read_bytes()
    os.link(src, tmp_path / "link.jsonl")
    (tmp_path / "in").mkdir()
    write_jsonl(tmp_path / "in" / "a.jsonl", make_rows(10))
    os.symlink(tmp_path / "in", tmp_path / "alias")
    refused = [(src, src, "the same file as the input"),
               (src, tmp_path / "link.jsonl", "the same file as the input"),  # a hard link
               (tmp_path / "in", tmp_path / "in" / "scored.jsonl", "inside the input directory"),
               (tmp_path / "in", tmp_path / "alias" / "parts", "inside the input directory")]
    for inp, out, message in refused:
        assert run_main(tied, inp, out) == 1
        assert capsys.readouterr().err.strip() == f"qrr.ray_rerank: {out}: {message} {inp}"
    assert src.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["alias", "in", "link.jsonl", "pairs.jsonl"]
    assert os.listdir(tmp_path / "in") == ["a.jsonl"]


def test_a_missing_model_or_input_is_named_before_ray_starts(tmp_path, capsys):
    src = write_jsonl(tmp_path / "pairs.jsonl", make_rows(3))
    missing = tmp_path / "missing.qrr"
    assert run_main(missing, src, tmp_path / "scored.jsonl") == 1
    assert capsys.readouterr().err.strip() == \
        f"qrr.ray_rerank: cannot open the model: {missing}: No such file or directory"
    assert run_main(missing, tmp_path / "nope.jsonl", tmp_path / "scored.jsonl") == 1
    assert capsys.readouterr().err.strip() == \
        f"qrr.ray_rerank: {tmp_path / 'nope.jsonl'}: No such file or directory"
    assert run_main(missing, tmp_path / "pairs.csv", tmp_path / "scored.jsonl") == 1
    assert "cannot tell the format from the name" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["pairs.jsonl"]


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as caught:
        run_main("m.qrr", "in.jsonl", "out.jsonl", "--actors", "0")
    assert caught.value.code == 2
    assert "--actors must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:  # the library's bound, even where a cluster
        run_main("m.qrr", "in.jsonl", "out.jsonl", "--threads-per-actor", "1025")  # has CPUs
    assert caught.value.code == 2
    assert "--threads-per-actor must be at most 1024" in capsys.readouterr().err
