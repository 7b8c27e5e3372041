"""A real two-node Ray cluster: two network namespaces joined by a veth pair (10.77.0.1 and
10.77.0.2; nothing else reachable), `ray start --head` in one, `ray start --address` in the
other, one CPU each; python -m qrr.ray_rerank submitted from the head's namespace with two
actors scores every row as `qrr score` does, once each, with rows scored on both nodes.
Needs root and iproute2 (skipped otherwise, unless QRR_REQUIRE_RAY=1, as in CI)."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import c_api_scores
from ray_support import (TwoNodes, check_against, make_rows, need_ray, netns_unavailable,
                         read_jsonl, skip_or_fail, write_jsonl)

pytestmark = pytest.mark.timeout(400)


def test_two_nodes_score_every_row_once(tied, tmp_path):
    need_ray()
    why = netns_unavailable()
    if why:
        skip_or_fail(why)
    rows = make_rows(1600, seed=11)
    src = write_jsonl(tmp_path / "pairs.jsonl", rows)
    out = tmp_path / "scored.jsonl"
    cluster = TwoNodes()
    try:
        cluster.open()
        done = subprocess.run(
            cluster.exec(0, sys.executable, "-m", "qrr.ray_rerank", tied, str(src), str(out),
                         "--address", cluster.address, "--actors", "2", "--batch-size", "50"),
            env=cluster.env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        cluster.close()
    last = done.stderr.strip().splitlines()[-1]
    print(last)
    m = re.fullmatch(r"qrr\.ray_rerank: 1600 rows, [0-9.]+ pairs/s, [0-9.]+ s, 2 nodes "
                     r"\(10\.77\.0\.1: (\d+), 10\.77\.0\.2: (\d+)\) -> .*", last)
    assert m, last
    a, b = int(m.group(1)), int(m.group(2))
    assert a > 0 and b > 0 and a + b == 1600
    worst = check_against(read_jsonl(out), rows, c_api_scores(tied, [
        {"query": r["query"], "document": r["document"]} for r in rows]))
    print(f"rows per node: 10.77.0.1 {a}, 10.77.0.2 {b}; max |score - qrr score| {worst:.3g}")
