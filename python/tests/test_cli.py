"""python -m qrr score|info mirror the qrr command: the same scores, line for line."""
from __future__ import annotations

import argparse
import errno
import json
import os
import re
import signal
import subprocess
import sys
from typing import List

import pytest

import qrr
from conftest import BUILD, c_api_scores, cases


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


def test_score_lines_are_the_qrr_commands_byte_for_byte(tied):
    qrr_cli = BUILD / "qrr"
    if not qrr_cli.exists():
        pytest.skip(f"no {qrr_cli} to compare with (set QRR_BUILD)")
    text = "".join(json.dumps(l) + "\n" for l in cases("tiny-tied"))
    ours = run(["score", tied, "--threads", "1"], text)
    theirs = subprocess.run([str(qrr_cli), "score", tied, "--threads", "1"], input=text,
                            capture_output=True, text=True, check=True)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout


def test_numbers_are_written_as_jansson_writes_them():
    """The reference cases give no exponent; small P("yes") values do (jansson: %.9g, ".0" on a
    whole number, no "+" or leading zeros in an exponent)."""
    from qrr.__main__ import _number
    cases = {3.2e-05: "3.2e-5", 1e-5: "1e-5", 1.0: "1.0", 0.0: "0.0", -2.5: "-2.5",
             123456789.0: "123456789.0", 1.5e10: "1.5e10", -3e-12: "-3e-12",
             0.217936367: "0.217936367", 1e100: "1e100"}
    for value, text in cases.items():
        assert _number(value) == text, value


def test_info_and_usage(tied, tmp_path):
    done = run(["info", tied, "--json"])
    assert done.returncode == 0
    assert json.loads(done.stdout)["model"]["layers"] == 3
    assert "3 layers" in run(["info", tied]).stdout
    missing = run(["info", str(tmp_path / "none.qrr")])
    assert missing.returncode == 1 and "none.qrr" in missing.stderr
    assert run(["frobnicate"]).returncode == 2


def test_info_json_is_the_qrr_commands_document(tied):
    """The same keys and values as `qrr info --json` (but the times), with and without
    --no-tensors."""
    qrr_cli = BUILD / "qrr"
    if not qrr_cli.exists():
        pytest.skip(f"no {qrr_cli} to compare with (set QRR_BUILD)")
    for extra in ([], ["--no-tensors"]):
        ours = json.loads(run(["info", tied, "--json"] + extra).stdout)
        theirs = json.loads(subprocess.run([str(qrr_cli), "info", tied, "--json"] + extra,
                                           capture_output=True, text=True, check=True).stdout)
        assert set(ours["timing"]) == set(theirs.pop("timing"))
        ours.pop("timing")
        assert ours == theirs
        assert ("tensors" in ours) == (extra == [])


def test_score_reads_utf8_whatever_the_locale(tied):
    """Lines are UTF-8 bytes, as `qrr score` reads them, not text in the locale's encoding;
    a line that is not UTF-8 gets its own error and the lines after it are scored."""
    good = [{"query": "Où est la tour Eiffel ?", "document": "À Paris, près de la Seine."},
            {"query": "q", "document": "Grüße aus Köln"}]
    data = (json.dumps(good[0], ensure_ascii=False).encode() + b"\n"
            + b'{"query": "q", "document": "\xff"}\n'
            + json.dumps(good[1], ensure_ascii=False).encode() + b"\n")
    env = dict(os.environ, PYTHONIOENCODING="latin-1")
    done = subprocess.run([sys.executable, "-m", "qrr", "score", tied, "--threads", "1"],
                          input=data, capture_output=True, env=env)
    assert done.returncode == 1, done.stderr
    out = [json.loads(l) for l in done.stdout.splitlines()]
    assert len(out) == 3
    assert out[1] == {"error": "line 2: not valid UTF-8 at column 29 (invalid start byte)"}
    for (score, logit), o in zip(c_api_scores(tied, good), [out[0], out[2]]):
        assert abs(o["score"] - score) <= 1e-6 and abs(o["logit"] - logit) <= 1e-6


def test_a_byte_order_mark_at_the_start_is_skipped(tied):
    lines = [{"query": "q", "document": "d"}] * 2
    data = b"\xef\xbb\xbf" + "".join(json.dumps(l) + "\n" for l in lines).encode()
    done = subprocess.run([sys.executable, "-m", "qrr", "score", tied, "--threads", "1"],
                          input=data, capture_output=True)
    assert done.returncode == 0, done.stderr
    out = [json.loads(l) for l in done.stdout.splitlines()]
    assert len(out) == 2
    for (score, logit), o in zip(c_api_scores(tied, lines), out):
        assert abs(o["score"] - score) <= 1e-6 and abs(o["logit"] - logit) <= 1e-6


def test_max_length_out_of_range_is_refused_as_qrr_does(tied):
    line = json.dumps({"query": "q", "document": "d", "max_length": 2**32 + 49}) + "\n"
    done = run(["score", tied], line)
    assert done.returncode == 1
    assert json.loads(done.stdout) == {"error": 'line 1: field "max_length" must be an integer '
                                       "in [0, 1000000] (0 = the model's default) or null"}


def test_lines_the_qrr_command_refuses_are_refused_alike(tied):
    """Strict JSON as jansson reads it (no repeated key, no NaN, no lone surrogate), the
    fields checked in the same order with the same words: the same lines fail."""
    qrr_cli = BUILD / "qrr"
    if not qrr_cli.exists():
        pytest.skip(f"no {qrr_cli} to compare with (set QRR_BUILD)")
    lines = ['{"query": "q", "query": "p", "document": "d"}',
             '{"query": "q", "document": "d", "max_length": NaN}',
             '{"query": "q", "document": "d", "max_length": -Infinity}',
             '{"query": "\\ud800", "document": "d"}',
             '{"query": "q", "document": "d", "instruction": 5}',
             '{"query": "q"}', '{"query": 5, "document": "d"}', '{"query": "q", "document": "d"',
             '[1]', '{"query": "q", "document": "d", "x": 1e400}',
             '{"query": "q", "document": "d", "x": 123456789012345678901234567890}',
             '{"query": "q", "document": "d", "x": -0, "y": 9223372036854775807}',
             '{"query": "q", "document": "d", "truncate": 1}',
             '{"query": "q", "document": "d", "truncate": "no", "instruction": 5}',
             '{"query": "' + "q " * 60 + '", "document": "d", "max_length": 80, "truncate": false}',
             '{"query": "q", "document": "' + "d " * 60 + '", "max_length": 80, "truncate": false}',
             '{"query": "q", "document": "d"}']
    text = "".join(line + "\n" for line in lines)
    ours = [json.loads(line) for line in run(["score", tied, "--threads", "1"], text).stdout.splitlines()]
    theirs = [json.loads(line) for line in subprocess.run(
        [str(qrr_cli), "score", tied, "--threads", "1"], input=text, capture_output=True,
        text=True).stdout.splitlines()]
    assert len(ours) == len(theirs) == len(lines)
    for i, (a, b) in enumerate(zip(ours, theirs), 1):
        assert ("error" in a) == ("error" in b), (i, a, b)
        if "error" in b and not b["error"].startswith(f"line {i}: not valid JSON"):
            assert a == b, (i, a, b)  # the field messages word for word
    assert ours[0]["error"].startswith('line 1: not valid JSON: duplicate object key "query"')
    # the last lines share a request in qrr score (its sums in another order: float32's last
    # digits may differ, docs/cli.md)
    assert "score" in ours[-1] and abs(ours[-1]["logit"] - theirs[-1]["logit"]) <= 1e-5
    # nesting beyond Python's reader (about 1,000 levels; qrr score takes 2,048): that line's
    # own error, and the next line is scored
    deep = '{"query": "q", "document": "d", "x": ' + "[" * 1500 + "]" * 1500 + "}\n"
    done = run(["score", tied, "--threads", "1"], deep + lines[-1] + "\n")
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert out[0] == {"error": "line 1: not valid JSON: nested too deeply for Python's reader"}
    assert "score" in out[1] and abs(out[1]["logit"] - theirs[-1]["logit"]) <= 1e-5


def test_unwritable_output_is_one_line_and_exit_1(tied):
    """A closed pipe (| head -0) or a full disk: one line on stderr, no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        closed = subprocess.run([sys.executable, "-m", "qrr", "score", tied],
                                input=b'{"query": "q", "document": "d"}\n', stdout=write_end,
                                stderr=subprocess.PIPE)
    finally:
        os.close(write_end)
    assert closed.returncode == 1
    assert closed.stderr.decode().splitlines() == [
        f"python -m qrr score: cannot write the output: {os.strerror(errno.EPIPE)}"]
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "qrr", "info", tied, "--json"],
                              stdout=full, stderr=subprocess.PIPE, text=True)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"python -m qrr info: cannot write the output: {os.strerror(errno.ENOSPC)}"]


def test_ctrl_c_is_one_line_and_exit_130(tied):
    """SIGINT while score waits for input: the lines answered so far are out, then one line
    on stderr (no traceback) and exit status 130, as a shell reports an interrupted job."""
    proc = subprocess.Popen([sys.executable, "-m", "qrr", "score", tied, "--threads", "1"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        proc.stdin.write('{"query": "q", "document": "d"}\n')
        proc.stdin.flush()
        first = proc.stdout.readline()  # answered: the process now waits on its stdin
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)  # stdin still open: the signal, not an end of input, stops it
        rest, err = proc.stdout.read(), proc.stderr.read()
    finally:
        proc.kill()
        for f in (proc.stdin, proc.stdout, proc.stderr):
            f.close()
    assert json.loads(first).keys() == {"score", "logit"} and rest == ""
    assert (proc.returncode, err) == (130, "python -m qrr score: interrupted\n")


def test_bad_option_value_is_a_usage_error(tied):
    for value in ("-1", "1025", "two"):
        done = run(["score", tied, "--threads", value])
        assert done.returncode == 2 and "--threads" in done.stderr, done.stderr


def undocumented(parser: argparse.ArgumentParser, command: str = "") -> List[str]:
    """The arguments of parser and of its subcommands that --help lists with no text."""
    bare = []
    for action in parser._actions:  # argparse has no public list of them
        if isinstance(action, argparse._SubParsersAction):  # each subcommand has its help
            for name, sub in action.choices.items():
                bare += undocumented(sub, f"{command}{name} ")
        elif not action.help:
            bare.append(command + (action.option_strings or [action.dest])[-1])
    return bare


def test_every_argument_has_help():
    """python -m qrr score|info and python -m qrr.ray_rerank describe every argument (and
    the latter's --help works without Ray: test_errors.py)."""
    from qrr.__main__ import _parser
    from qrr.ray_rerank import parser
    assert undocumented(_parser()) == []
    assert undocumented(parser()) == []
    done = run(["score", "--help"])
    assert done.returncode == 0
    assert "CPU threads, 0..1024 (default 0: one per CPU)" in " ".join(done.stdout.split())


def test_version_names_the_package_and_the_library():
    done = run(["--version"])
    assert done.returncode == 0, done.stderr
    named = re.fullmatch(r"qrr package (.+), libqrr (\S+) \((.+)\)\n", done.stdout)
    assert named, done.stdout
    package, library, path = named.groups()
    assert (library, path) == (qrr.__version__, qrr._capi.LIBRARY_PATH)
    assert package in (library, "not installed")  # built from the same header
    qrr_cli = BUILD / "qrr"
    if qrr_cli.exists():  # the C command of the build tree says the same version
        theirs = subprocess.run([str(qrr_cli), "--version"], capture_output=True, text=True,
                                check=True)
        assert theirs.stdout.splitlines()[0] == f"qrr {library}"
