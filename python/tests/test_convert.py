"""qrr.convert: the bundled converter, with its options."""
from __future__ import annotations

import numpy as np
import pytest

import qrr
from conftest import model_dir


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
