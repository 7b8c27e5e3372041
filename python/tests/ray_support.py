"""Helpers of the qrr.ray tests: whether Ray is here, rows to rerank, the processes a test
started (found under a pid, killed by pid), and a two-node Ray cluster in two network
namespaces joined by a veth pair, which nothing outside them can reach. Nothing here
imports ray: qrr.ray.init_local must run first in the test process."""
from __future__ import annotations

import gc
import importlib.util
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest

import qrr
from conftest import REFERENCE

HAVE_RAY = importlib.util.find_spec("ray") is not None
# .ci/run sets QRR_REQUIRE_RAY=1: there a missing Ray or namespace support fails the tests.
REQUIRED = os.environ.get("QRR_REQUIRE_RAY") == "1"
PACKAGE_ROOT = str(Path(qrr.__file__).resolve().parent.parent)


def skip_or_fail(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"{reason} (QRR_REQUIRE_RAY=1)")
    pytest.skip(reason)


def need_ray() -> None:
    if not HAVE_RAY:
        skip_or_fail('ray is not installed: pip install "./python[ray]"')


# ---- rows --------------------------------------------------------------------------------

def make_rows(n: int, n_queries: int = 40, seed: int = 1) -> List[dict]:
    """n rows {"id", "query", "document"}: queries in random order (so a batch holds many
    of them), documents of one to four of the reference's tokenizer strings (every script,
    emoji, special tokens written as text)."""
    with open(REFERENCE / "inputs.json") as f:
        strings = [s for s in json.load(f)["tokenizer_strings"] if s.strip()]
    rnd = random.Random(seed)
    queries = [f"query {q}: {rnd.choice(strings)[:80]}" for q in range(n_queries)]
    return [{"id": i, "query": rnd.choice(queries),
             "document": " ".join(rnd.choice(strings)[:200] for _ in range(rnd.randint(1, 4)))}
            for i in range(n)]


def write_jsonl(path: Path, rows: List[dict]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def read_jsonl(path: Path) -> List[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def check_against(got: List[dict], rows: List[dict], want) -> float:
    """Every input row once, in input order, all columns kept, and score/logit within 1e-5
    of want ([(score, logit)] from `qrr score`); returns the largest score difference."""
    assert len(got) == len(rows)
    assert [g["id"] for g in got] == [r["id"] for r in rows]
    worst = 0.0
    for g, r, (score, logit) in zip(got, rows, want):
        assert {k: g[k] for k in r} == r
        assert abs(g["score"] - score) <= 1e-5, g["id"]
        assert abs(g["logit"] - logit) <= 1e-5, g["id"]
        worst = max(worst, abs(g["score"] - score))
    return worst


# ---- processes ---------------------------------------------------------------------------

def children_map() -> Dict[int, List[int]]:
    kids: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def descendants(root: int) -> List[int]:
    kids = children_map()
    out, todo = [], [root]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def scorer_pids(root: int) -> List[int]:
    """The scoring actors' processes under root (Ray titles them after the class)."""
    return sorted(p for p in descendants(root) if cmdline(p).startswith("ray::MapWorker(")
                  and "_Scorer" in cmdline(p))


def no_scorers_left(within: float = 30) -> None:
    """Before a test: the scoring actors of earlier tests are gone, so that each test has
    the CPUs to itself. A failed job's actors live as long as something holds its
    exception (pytest keeps a test's log records until its teardown is over), hence the
    collection, and the wait."""
    gc.collect()
    deadline = time.monotonic() + within
    while scorer_pids(os.getpid()):
        if time.monotonic() > deadline:
            pytest.fail(f"scoring actors of an earlier test still run after {within} s: "
                        f"{scorer_pids(os.getpid())}")
        time.sleep(0.2)
        gc.collect()


def kill_pids(pids: List[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def bounded(fn, seconds: float):
    """fn() on a thread; its result, or a test failure after `seconds`."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the test's thread
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        pytest.fail(f"did not finish in {seconds} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


# ---- a two-node cluster in network namespaces --------------------------------------------

def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)


def netns_unavailable() -> Optional[str]:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2's ip"
    probe = f"qrrprobe{os.getpid()}"
    done = _run("ip", "netns", "add", probe)
    if done.returncode != 0:
        return f"ip netns add failed: {done.stderr.strip()}"
    _run("ip", "netns", "del", probe)
    return None


class TwoNodes:
    """Namespaces A and B joined by a veth pair (10.77.0.1 and 10.77.0.2, lo up in each),
    a Ray head in A and a worker in B, one CPU each. Ports stay inside the namespaces.
    close() ends every process of both namespaces by pid and deletes the namespaces
    (which deletes the veth pair), whatever state they are in."""

    def __init__(self) -> None:
        tag = os.getpid()
        self.ns = [f"qrrA{tag}", f"qrrB{tag}"]
        self.veth = [f"qrrva{tag % 100000}", f"qrrvb{tag % 100000}"]
        self.ip = ["10.77.0.1", "10.77.0.2"]
        self.address = f"{self.ip[0]}:6379"
        self.tmp = Path(tempfile.mkdtemp(prefix="qrrc"))  # short: Ray's socket paths
        home = self.tmp / "home"
        home.mkdir()
        (home / "ray_bootstrap_config.yaml").write_text("{}\n")  # see qrr.ray.init_local
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("RAY_") and k not in ("HOME", "PYTHONPATH")}
        env.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token",
                   RAY_AUTH_TOKEN=secrets.token_hex(32),
                   PYTHONPATH=os.pathsep.join(
                       [PACKAGE_ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
                   PYTHONUSERBASE=os.environ.get("PYTHONUSERBASE") or _user_base())
        self.env = env
        self.nodes: List[subprocess.Popen] = []
        self.logs: List[List[str]] = []

    def exec(self, i: int, *cmd: str) -> List[str]:
        return ["ip", "netns", "exec", self.ns[i], *cmd]

    def open(self) -> "TwoNodes":
        steps = [["ip", "netns", "add", self.ns[0]], ["ip", "netns", "add", self.ns[1]],
                 ["ip", "link", "add", self.veth[0], "type", "veth", "peer", "name",
                  self.veth[1]]]
        for i in (0, 1):
            steps += [["ip", "link", "set", self.veth[i], "netns", self.ns[i]],
                      ["ip", "-n", self.ns[i], "addr", "add", f"{self.ip[i]}/24", "dev",
                       self.veth[i]],
                      ["ip", "-n", self.ns[i], "link", "set", self.veth[i], "up"],
                      ["ip", "-n", self.ns[i], "link", "set", "lo", "up"]]
        for step in steps:
            done = _run(*step)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(step)}: {done.stderr.strip()}")
        ray = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block",
               "--num-cpus", "1", "--disable-usage-stats"]
        self._start(0, ray + ["--head", "--node-ip-address", self.ip[0], "--port", "6379",
                              "--include-dashboard=false", "--temp-dir",
                              str(self.tmp / "a")])
        self._start(1, ray + ["--address", self.address, "--node-ip-address", self.ip[1],
                              "--temp-dir", str(self.tmp / "b")])
        return self

    def _start(self, i: int, cmd: List[str]) -> None:
        """Start node i and wait (at most 60 s) for `ray start` to say it runs."""
        proc = subprocess.Popen(self.exec(i, *cmd), env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        self.nodes.append(proc)
        lines: List[str] = []
        self.logs.append(lines)
        started = threading.Event()

        def read():
            for line in proc.stdout:
                lines.append(line)
                if "Ray runtime started" in line:
                    started.set()
        threading.Thread(target=read, daemon=True).start()
        if not started.wait(60):
            raise RuntimeError(f"ray start in {self.ns[i]} did not start in 60 s:\n"
                               + "".join(lines[-30:]))

    def close(self) -> None:
        # Every process in the namespaces is one this cluster started: kill them all by
        # pid (a head told to stop drains for up to 30 s first).
        for _ in range(3):
            pids = [int(p) for ns in self.ns
                    for p in _run("ip", "netns", "pids", ns).stdout.split()]
            if not pids:
                break
            kill_pids(pids)
            time.sleep(0.2)
        for proc in self.nodes:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for ns in self.ns:
            _run("ip", "netns", "del", ns)  # deletes the veth pair with it
        _run("ip", "link", "del", self.veth[0])  # if it never left this namespace
        shutil.rmtree(self.tmp, ignore_errors=True)


def _user_base() -> str:
    import site
    return site.getuserbase()
