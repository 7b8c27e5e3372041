"""docs/python.md's Ray example, run as written in a fresh process (its own local Ray on
loopback) beside a Parquet file of candidates: it ends, and scored/ holds every row once
with the scores `qrr score` gives. Two actors on this machine's CPUs and a read that asks
Ray for a CPU, as the example's are, is also the case a pool holding every CPU once hung."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import c_api_scores
from ray_support import PACKAGE_ROOT, check_against, make_rows, need_ray, no_scorers_left

pytestmark = pytest.mark.timeout(300)

DOC = Path(__file__).resolve().parents[2] / "docs" / "python.md"


def ray_example() -> str:
    """The first python block after the heading of the Ray section."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## On a Ray cluster"):]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, f"no python block in {DOC}'s Ray section"
    return found.group(1)


def test_the_documented_example_runs_as_written(tied, tmp_path):
    need_ray()
    no_scorers_left()
    import pyarrow as pa
    import pyarrow.parquet as pq
    rows = make_rows(500, seed=11)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "candidates.parquet")
    os.symlink(tied, tmp_path / "reranker.qrr")
    code = ray_example()
    assert "candidates.parquet" in code and "reranker.qrr" in code and "scored/" in code
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [PACKAGE_ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=240, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    got = sorted(pq.read_table(tmp_path / "scored").to_pylist(), key=lambda r: r["id"])
    worst = check_against(got, rows, c_api_scores(tied, [
        {"query": r["query"], "document": r["document"]} for r in rows]))
    print(f"docs/python.md's example: {len(got)} rows, max |score - qrr score| = {worst:.3g}")
