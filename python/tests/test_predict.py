"""predict: the same numbers as the C API for every reference case, the reference scores
within the tolerances of docs/ci.md, logits with raw=True, a lone pair, batching."""
from __future__ import annotations

import math

import numpy as np
import pytest

import qrr
from conftest import c_api_scores, cases, group_key, reference_lines


def predict_cases(model: qrr.Reranker, lines, raw=False, batch_size=32):
    """predict over the reference cases, one call per (instruction, max_length) group."""
    out = np.empty(len(lines), dtype=np.float32)
    groups = {}
    for i, line in enumerate(lines):
        groups.setdefault(group_key(line), []).append(i)
    for (instruction, max_length), idx in groups.items():
        pairs = [(lines[i]["query"], lines[i]["document"]) for i in idx]
        out[idx] = model.predict(pairs, instruction=instruction, max_length=max_length,
                                 raw=raw, batch_size=batch_size)
    return out


@pytest.mark.parametrize("name", ["tiny-tied", "tiny-seqcls"])
def test_predict_equals_the_c_api(models, name):
    lines = cases(name)
    want = c_api_scores(models[name], lines)
    with qrr.Reranker(models[name], threads=1) as model:
        scores = predict_cases(model, lines)
        logits = predict_cases(model, lines, raw=True)
    assert len(scores) == len(lines) == 15
    assert np.max(np.abs(scores - [s for s, _ in want])) <= 1e-6
    assert np.max(np.abs(logits - [l for _, l in want])) <= 1e-6


def test_predict_meets_the_reference_scores(tied):
    """f32 weights on the CPU: |score - fp64 reference| <= 1e-5 (docs/ci.md's table)."""
    lines = cases("tiny-tied")
    ref = reference_lines("tiny-tied")
    with qrr.Reranker(tied) as model:
        scores = predict_cases(model, lines)
        logits = predict_cases(model, lines, raw=True)
    for i, o in enumerate(ref):
        delta = o["fp64"]["logit_yes"] - o["fp64"]["logit_no"]
        assert abs(scores[i] - o["fp64"]["score"]) <= 1e-5, i
        assert abs(logits[i] - delta) <= 1e-4, i


def test_raw_logits_are_the_scores_before_the_sigmoid(tied):
    pairs = [("What is the capital of China?", d) for d in ("Beijing.", "Seoul.", "Gravity.")]
    with qrr.Reranker(tied) as model:
        scores = model.predict(pairs)
        logits = model.predict(pairs, raw=True)
    assert scores.dtype == np.float32 and scores.shape == (3,)
    for s, l in zip(scores, logits):
        assert abs(s - 1 / (1 + math.exp(-l))) <= 1e-6


def test_one_pair_alone_gives_one_number(tied):
    with qrr.Reranker(tied) as model:
        one = model.predict(("q", "d"))
        many = model.predict([("q", "d")])
    assert np.ndim(one) == 0 and one == many[0]


def test_batching_and_query_order_do_not_change_scores(tied):
    queries = ["What is the capital of China?", "Where is Seoul?"]
    pairs = [(queries[i % 2], f"Document number {i} about a city.") for i in range(10)]
    with qrr.Reranker(tied, threads=1) as model:
        together = model.predict(pairs, batch_size=64)
        one_by_one = model.predict(pairs, batch_size=1)
        alone = np.array([model.predict(p) for p in pairs])
    assert np.max(np.abs(together - one_by_one)) <= 1e-6
    assert np.max(np.abs(together - alone)) <= 1e-6


def test_numpy_arrays_of_pairs(tied):
    """Rows of a NumPy array are pairs (np.str_ is a str), of a str array or an object one,
    and score as the same pairs given as tuples; a row of two str alone is one pair."""
    pairs = [("What is the capital of China?", "Beijing."), ("Where is Seoul?", "In Korea.")]
    with qrr.Reranker(tied) as model:
        want = model.predict(pairs)
        for dtype in (str, object):
            assert np.array_equal(model.predict(np.array(pairs, dtype=dtype)), want)
            assert model.predict(np.array(pairs[1], dtype=dtype)) == want[1]
        scores, _ = model.score_grouped(np.array(pairs))
        assert np.array_equal(scores, want)
        with pytest.raises(TypeError, match="pair 0 must be a"):
            model.predict(np.array([["q", "d", "e"]]))


def test_empty_input_and_texts_with_nul(tied):
    with qrr.Reranker(tied) as model:
        assert model.predict([]).shape == (0,)
        with_nul = model.predict(("q", "a\0b"))
        without = model.predict(("q", "ab"))
        assert with_nul != without  # the NUL byte is part of the text, not its end


def test_progress_bar_when_asked(tied, capsys):
    with qrr.Reranker(tied) as model:
        quiet = model.predict([("q", "d")] * 3)
        shown = model.predict([("q", "d")] * 3, show_progress_bar=True)
    assert "3/3" in capsys.readouterr().err
    assert np.array_equal(quiet, shown)
