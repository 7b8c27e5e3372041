"""qrr.convert: the bundled converter, with its options."""
from __future__ import annotations

import pytest

import qrr
from conftest import model_dir


def test_convert_int8_with_options(tmp_path):
    src = model_dir("tiny-untied", tmp_path)
    out = qrr.convert(src, tmp_path / "untied.qrr", dtype="int8", max_length=512)
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


def test_paths_starting_with_a_dash_are_no_options(tmp_path, monkeypatch):
    (tmp_path / "-model").symlink_to(model_dir("tiny-tied", tmp_path))
    monkeypatch.chdir(tmp_path)
    assert qrr.convert("-model", "-out.qrr", dtype="f32") == "-out.qrr"
    with qrr.Reranker("-out.qrr") as model:
        assert model.info()["n_layers"] == 3
    with pytest.raises(qrr.QrrError, match="--help: not a model directory"):
        qrr.convert("--help", "help.qrr")
    assert not (tmp_path / "help.qrr").exists()
