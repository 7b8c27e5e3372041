"""python -m qrr score|info mirror the qrr command: the same scores, line for line."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import c_api_scores, cases


def run(args, text=""):
    return subprocess.run([sys.executable, "-m", "qrr"] + args, input=text,
                          capture_output=True, text=True)


def test_score_mirrors_the_qrr_command(tied):
    lines = cases("tiny-tied") + [{"query": "q"}]
    done = run(["score", tied, "--threads", "1"], "".join(json.dumps(l) + "\n" for l in lines))
    assert done.returncode == 1  # the last line has no document
    out = [json.loads(l) for l in done.stdout.splitlines()]
    assert len(out) == len(lines)
    assert "document" in out[-1]["error"] and "line 16" in out[-1]["error"]
    for (score, logit), o in zip(c_api_scores(tied, lines[:-1]), out):
        assert abs(o["score"] - score) <= 1e-6 and abs(o["logit"] - logit) <= 1e-6


def test_info_and_usage(tied, tmp_path):
    done = run(["info", tied, "--json"])
    assert done.returncode == 0
    assert json.loads(done.stdout)["n_layers"] == 3
    assert "3 layers" in run(["info", tied]).stdout
    missing = run(["info", str(tmp_path / "none.qrr")])
    assert missing.returncode == 1 and "none.qrr" in missing.stderr
    assert run(["frobnicate"]).returncode == 2
