"""qrr.convert: the bundled converter, with its options."""
from __future__ import annotations

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
