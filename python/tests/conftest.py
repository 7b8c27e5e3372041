"""Fixtures of the Python package's tests: the reference data, small converted models (made
with qrr.convert from the reference checkpoints), and the C API's own answers through the
build's `qrr score`, which the package must reproduce.

Environment: QRR_REFERENCE (default ../shared/reference from the repository root), QRR_BUILD
(the build holding `qrr`, default build/); QRR_LIBRARY and QRR_QCONVERT choose the library
and the converter the package uses (default: the ones installed with it)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

import qrr

REPO = Path(__file__).resolve().parents[2]
REFERENCE = Path(os.environ.get("QRR_REFERENCE") or REPO.parent / "shared" / "reference")
BUILD = Path(os.environ.get("QRR_BUILD") or REPO / "build")


def reference_lines(model: str) -> List[dict]:
    with open(REFERENCE / "scores_public.jsonl") as f:
        return [o for o in map(json.loads, f) if o["model"] == model]


def model_dir(name: str, under: Path) -> Path:
    """A model directory: the reference checkpoint's files and the tokenizer, linked."""
    d = under / name
    d.mkdir()
    for src in list((REFERENCE / "models" / name).iterdir()) + list((REFERENCE / "tokenizer").iterdir()):
        (d / src.name).symlink_to(src.resolve())
    return d


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> Dict[str, str]:
    """tiny-tied (yes/no head) and tiny-seqcls (single logit) converted to f32."""
    tmp = tmp_path_factory.mktemp("models")
    out = {}
    for name in ("tiny-tied", "tiny-seqcls"):
        out[name] = qrr.convert(model_dir(name, tmp), tmp / f"{name}.qrr", dtype="f32")
    return out


@pytest.fixture(scope="session")
def tied(models) -> str:
    return models["tiny-tied"]


def c_api_scores(model: str, lines: List[dict]) -> List[Tuple[float, float]]:
    """(score, logit) of each line as the C API computes them (the build's `qrr score`,
    which prints float32 values with 9 significant digits: exact)."""
    qrr_cli = BUILD / "qrr"
    if not qrr_cli.exists():
        pytest.skip(f"no {qrr_cli} to compare with (set QRR_BUILD)")
    text = "".join(json.dumps(o) + "\n" for o in lines)
    done = subprocess.run([str(qrr_cli), "score", model, "--threads", "1"], input=text,
                          capture_output=True, text=True, check=True)
    answers = [json.loads(l) for l in done.stdout.splitlines()]
    assert len(answers) == len(lines), done.stderr
    return [(a["score"], a["logit"]) for a in answers]


def cases(model: str) -> List[dict]:
    """The reference cases as `qrr score` input lines."""
    out = []
    for o in reference_lines(model):
        line = {"query": o["query"], "document": o["document"], "instruction": o["instruction"]}
        if o.get("max_length"):
            line["max_length"] = o["max_length"]
        out.append(line)
    return out


def group_key(line: dict) -> Tuple[Optional[str], Optional[int]]:
    return line["instruction"], line.get("max_length")


@pytest.fixture(scope="session")
def local_ray():
    """A local Ray instance in this process for the qrr.ray tests (qrr.ray.init_local: every
    port on 127.0.0.1), 2 CPUs, a small object store, its files in a private directory;
    shut down at the end, and any process of it left over killed by pid."""
    import logging
    import shutil
    import tempfile

    from ray_support import cmdline, descendants, kill_pids, need_ray
    need_ray()
    from qrr.ray import init_local
    tmp = tempfile.mkdtemp(prefix="qrrr", dir="/tmp")  # short: Ray's socket paths
    init_local(num_cpus=2, object_store_memory=256 << 20, _temp_dir=tmp,
               logging_level=logging.WARNING)
    import ray
    try:
        yield ray
    finally:
        ray.shutdown()
        kill_pids([p for p in descendants(os.getpid()) if "ray" in cmdline(p)])
        shutil.rmtree(tmp, ignore_errors=True)


def pytest_configure(config):
    # Tests that start Ray carry @pytest.mark.timeout (pytest-timeout, which .ci/run
    # installs); without the plugin the mark is only a note.
    if not config.pluginmanager.hasplugin("timeout"):
        config.addinivalue_line("markers", "timeout(seconds): time limit (pytest-timeout)")
