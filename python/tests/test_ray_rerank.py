"""python -m qrr.ray_rerank: 1,600 pairs of JSON lines through a fresh process (its own local
Ray on loopback) score as `qrr score` does, every id once, in order, every field kept as it
was; Parquet in and out; bad rows, a missing model and bad paths stop with one line naming
the row or the file, and leave no output (nor a partial one) behind."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import c_api_scores
from ray_support import (PACKAGE_ROOT, check_against, make_rows, need_ray, no_scorers_left,
                         read_jsonl, write_jsonl)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(autouse=True)
def _ray_here():
    need_ray()
    no_scorers_left()


def score_lines(rows):
    return [{"query": r["query"], "document": r["document"]} for r in rows]


def leftovers(directory):
    return sorted(n for n in os.listdir(directory) if ".partial-" in n)


def test_json_lines_through_the_command_equal_qrr_score(tied, tmp_path):
    rows = make_rows(1600)
    rows[5]["extra"] = {"kept": ["as", "is"], "n": 1.0}
    rows[6]["code"] = "007"  # a string that looks like a number stays a string
    src = write_jsonl(tmp_path / "pairs.jsonl", rows)
    out = tmp_path / "scored.jsonl"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [PACKAGE_ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.pop("RAY_ADDRESS", None)
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


def test_a_line_that_is_not_json_is_named(local_ray, tied, tmp_path, capsys):
    src = tmp_path / "pairs.jsonl"
    src.write_text('{"id": 1, "query": "q", "document": "d"}\n{"id": 2, "query": \n')
    assert run_main(tied, src, tmp_path / "scored.parquet") == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"qrr.ray_rerank: {src} line 2: not JSON: Expecting value"), err
    assert os.listdir(tmp_path) == ["pairs.jsonl"]


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
