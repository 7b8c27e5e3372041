"""qrr.convert: the bundled converter, with its options."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import qrr
from conftest import BUILD, REFERENCE, model_dir


def test_convert_int8_with_options(tmp_path):
    src = model_dir("tiny-untied", tmp_path)
    out = qrr.convert(src, tmp_path / "untied.qrr", dtype="int8", max_length=np.int64(512))
    with qrr.Reranker(out) as model:
        info = model.info()
        assert info["weight_dtype"] == "int8" and info["max_length"] == 512
        assert info["tied"] is False and info["label_source"] == "config"
        assert 0 < model.predict(("What is the capital of China?", "Beijing.")) < 1


def test_labels_must_be_a_pair_of_str(tmp_path):
    src = model_dir("tiny-tied", tmp_path)
    for labels, error in (("ny", TypeError), ("no,yes", TypeError), (("no",), ValueError),
                          (("no", "yes", "maybe"), ValueError), (("no", 1), ValueError)):
        with pytest.raises(error, match="labels must be a"):
            qrr.convert(src, tmp_path / "out.qrr", labels=labels)
    assert not (tmp_path / "out.qrr").exists()


def test_a_label_with_a_comma_is_refused_before_qconvert_runs(tmp_path):
    """qconvert takes the labels as NO,YES: a comma in one would split it elsewhere."""
    src = model_dir("tiny-tied", tmp_path)
    for labels in (("n,o", "yes"), ("no", "yes,")):
        with pytest.raises(ValueError, match="^labels must not contain a comma") as e:
            qrr.convert(src, tmp_path / "out.qrr", labels=labels)
        assert "qconvert" not in str(e.value)
    assert not (tmp_path / "out.qrr").exists()


def test_a_failure_names_qconverts_status_code(tmp_path):
    """status_name is the QRR_ERR_* code qconvert names, as for the library's errors;
    status stays qconvert's exit status."""
    src = model_dir("tiny-tied", tmp_path)
    with pytest.raises(qrr.QrrError) as e:
        qrr.convert(src, tmp_path / "no-such-dir" / "out.qrr")
    assert (e.value.status, e.value.status_name) == (3, "QRR_ERR_IO")
    with pytest.raises(qrr.QrrError) as e:
        qrr.convert(src, tmp_path / "out.qrr", max_length=100000)
    assert (e.value.status, e.value.status_name) == (2, "QRR_ERR_INVALID_ARG")
    assert not (tmp_path / "out.qrr").exists()


def test_an_interrupted_conversion_leaves_no_temporary_file(tmp_path):
    """SIGINT to the Python process alone (not to qconvert) while qconvert writes: the
    KeyboardInterrupt goes on, and qconvert, told with SIGTERM, removes its temporary file
    (subprocess.run's SIGKILL would leave it, as large as the model)."""
    qgen = BUILD / "qgen"
    if not qgen.exists():
        pytest.skip(f"no {qgen} to make a model with (set QRR_BUILD)")
    src = tmp_path / "big"  # the 0.6B shape's embedding: a conversion of about 2 s
    subprocess.run([str(qgen), "-o", str(src), "--shape", "0.6b", "--layers", "1",
                    "--tokenizer", str(REFERENCE / "tokenizer")], check=True,
                   capture_output=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(qrr.__file__))]
        + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    proc = subprocess.Popen([sys.executable, "-c", "import qrr, sys; "
                             "qrr.convert(sys.argv[1], sys.argv[2])", str(src),
                             str(tmp_path / "out.qrr")],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not any(".tmp." in n for n in os.listdir(tmp_path)):  # qconvert is writing
            assert proc.poll() is None and time.monotonic() < deadline, "no temporary file"
            time.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert "KeyboardInterrupt" in err, err
    assert sorted(os.listdir(tmp_path)) == ["big"]


def test_arguments_are_checked_and_named_before_qconvert_runs(tmp_path):
    """Each argument of the wrong kind or out of qconvert's bounds is refused here, named
    as convert's argument (never as qconvert's --option, with its usage text)."""
    src = model_dir("tiny-tied", tmp_path)
    dst = tmp_path / "out.qrr"
    refused = [(dict(max_length=100.7), TypeError, "max_length must be an int, not float"),
               (dict(max_length="100"), TypeError, "max_length must be an int, not str"),
               (dict(max_length=True), TypeError, "max_length must be an int, not a bool"),
               (dict(max_length=0), ValueError, r"max_length must be an int in \[1, 16777216\], not 0"),
               (dict(max_length=2**24 + 1), ValueError, "max_length must be an int in"),
               (dict(quant_block=32.0), TypeError, "quant_block must be an int, not float"),
               (dict(quant_block=0), ValueError, r"quant_block must be an int in \[1, 262144\]"),
               (dict(quant_block=32, dtype="f16"), ValueError, "quant_block needs dtype='int8', not 'f16'"),
               (dict(dtype=None), TypeError, "dtype must be a str, not NoneType"),
               (dict(dtype="int4"), ValueError, "dtype must be one of f32, f16, bf16, int8, not 'int4'"),
               (dict(src_dir=None), TypeError, "src_dir must be a str, bytes or os.PathLike"),
               (dict(dst=3), TypeError, "dst must be a str, bytes or os.PathLike, not int"),
               (dict(dst=str(dst) + "\0x"), ValueError, "dst must not contain a NUL")]
    for kw, error, message in refused:
        args = {"src_dir": src, "dst": dst, **kw}
        with pytest.raises(error, match=f"^{message}") as e:
            qrr.convert(**args)
        assert "qconvert" not in str(e.value) and "--" not in str(e.value)
    assert not dst.exists()
    # what only the model can tell still comes from qconvert, as a QrrError
    with pytest.raises(qrr.QrrError, match="max-length 100000 is above"):
        qrr.convert(src, dst, max_length=100000)
    assert not dst.exists()


def test_paths_starting_with_a_dash_are_no_options(tmp_path, monkeypatch):
    (tmp_path / "-model").symlink_to(model_dir("tiny-tied", tmp_path))
    monkeypatch.chdir(tmp_path)
    assert qrr.convert("-model", "-out.qrr", dtype="f32") == "-out.qrr"
    with qrr.Reranker("-out.qrr") as model:
        assert model.info()["n_layers"] == 3
    with pytest.raises(qrr.QrrError, match="--help: not a model directory"):
        qrr.convert("--help", "help.qrr")
    assert not (tmp_path / "help.qrr").exists()
