"""predict: the same numbers as the C API for every reference case, the reference scores
within the tolerances of docs/ci.md, logits with raw=True or an identity activation_fn, a
lone pair, batching, NumPy arrays of pairs, and CrossEncoder.predict's arguments in its
order with its output types."""
from __future__ import annotations

import inspect
import math
import sys

import numpy as np
import pytest

import qrr
from conftest import c_api_scores, cases, group_key, reference_lines


def predict_cases(model: qrr.Reranker, lines, batch_size=32, **kw):
    """predict over the reference cases, one call per (instruction, max_length) group."""
    out = np.empty(len(lines), dtype=np.float32)
    groups = {}
    for i, line in enumerate(lines):
        groups.setdefault(group_key(line), []).append(i)
    for (instruction, max_length), idx in groups.items():
        pairs = [(lines[i]["query"], lines[i]["document"]) for i in idx]
        out[idx] = model.predict(pairs, instruction=instruction, max_length=max_length,
                                 batch_size=batch_size, **kw)
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
        identity = predict_cases(model, lines, activation_fn=lambda x: x)
    assert np.array_equal(identity, logits)
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


def test_an_argument_that_is_not_a_sequence_is_named(tied):
    """None, or a number, where pairs or documents go is a TypeError naming the argument,
    not Python's "object is not iterable"."""
    with qrr.Reranker(tied) as model:
        with pytest.raises(TypeError, match="^pairs must be .* not NoneType$"):
            model.predict(None)
        with pytest.raises(TypeError, match="^pairs must be .* not int$"):
            model.score_grouped(5)
        with pytest.raises(TypeError, match="^documents must be a list of str, not NoneType$"):
            model.rank("q", None)

        def failing_pairs():
            yield ("q", "d")
            raise TypeError("the caller's own error")
        with pytest.raises(TypeError, match="^the caller's own error$"):
            model.predict(failing_pairs())


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


CROSS_ENCODER_PREDICT = [("batch_size", 32), ("show_progress_bar", None), ("activation_fn", None),
                         ("apply_softmax", False), ("convert_to_numpy", True),
                         ("convert_to_tensor", False)]


def test_the_signature_is_cross_encoders():
    """sentence-transformers' CrossEncoder.predict(sentences, batch_size, show_progress_bar,
    activation_fn, apply_softmax, convert_to_numpy, convert_to_tensor), in that order, with
    those defaults; qrr's own arguments only by keyword after them."""
    params = list(inspect.signature(qrr.Reranker.predict).parameters.values())[1:]
    assert params[0].name == "pairs"
    positional = [(p.name, p.default) for p in params[1:]
                  if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert positional == CROSS_ENCODER_PREDICT
    assert [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY] == [
        "instruction", "raw", "max_length", "truncate"]


def test_a_long_prompt_is_cut_at_its_end_unless_truncate_is_false(tied):
    """The recipe's cut: the document's end goes first, so two documents that differ only
    past the cut score alike; truncate=False refuses such a prompt, naming why."""
    model = qrr.Reranker(tied, threads=1)
    words = "words " * 150
    cut = model.predict([("q", words + "apple"), ("q", words + "banana pear")], max_length=128,
                        raw=True)
    assert cut[0] == cut[1]
    assert model.predict(("q", "apple"), max_length=128, truncate=False) == \
        model.predict(("q", "apple"), max_length=128)
    with pytest.raises(qrr.QrrError) as e:
        model.predict(("q", words), max_length=128, truncate=False)
    assert e.value.status_name == "QRR_ERR_TOO_LONG" and "truncation is off" in str(e.value)
    with pytest.raises(TypeError, match="truncate must be a bool"):
        model.predict(("q", "d"), truncate=1)
    ids = model.prompt_ids("q", words, max_length=128)
    assert len(ids) == 128
    with pytest.raises(qrr.QrrError):
        model.prompt_ids("q", words, max_length=128, truncate=False)


PAIRS = [("What is the capital of China?", d) for d in ("Beijing.", "Seoul.", "Gravity.")]


def test_positional_arguments_as_cross_encoder_passes_them(tied, capsys):
    with qrr.Reranker(tied) as model:
        scores = model.predict(PAIRS, batch_size=1)
        logits = model.predict(PAIRS, batch_size=1, raw=True)
        assert np.array_equal(model.predict(PAIRS, 1), scores)
        with pytest.raises(ValueError, match="batch_size must be an int >= 1, not 0"):
            model.predict(PAIRS, 0)
        model.predict(PAIRS, 1, True)
        assert "3/3" in capsys.readouterr().err
        got = model.predict(PAIRS, 1, False, np.tanh, False, False, False)
    assert got == np.tanh(logits).tolist()


def test_activation_fn_gets_the_logits(tied):
    with qrr.Reranker(tied) as model:
        logits = model.predict(PAIRS, raw=True)
        assert np.array_equal(model.predict(PAIRS, activation_fn=np.negative), -logits)
        lone = model.predict(PAIRS[0], activation_fn=np.negative)
        assert np.ndim(lone) == 0 and lone == -model.predict(PAIRS[0], raw=True)
        # CrossEncoder's default: the sigmoid, which is what predict returns without one
        sigmoid = model.predict(PAIRS, activation_fn=lambda x: 1 / (1 + np.exp(-x)))
        assert np.max(np.abs(sigmoid - model.predict(PAIRS))) <= 1e-6
        with pytest.raises(TypeError, match="activation_fn must be callable or None, not str"):
            model.predict(PAIRS, activation_fn="sigmoid")
        with pytest.raises(ValueError, match="activation_fn must return one number per pair"):
            model.predict(PAIRS, activation_fn=lambda x: x[:1])
        with pytest.raises(ValueError, match="raw=True and activation_fn"):
            model.predict(PAIRS, activation_fn=np.negative, raw=True)


def test_output_types_as_cross_encoder_gives_them(tied):
    """convert_to_numpy=False: a list of floats (one float for a lone pair); apply_softmax
    changes nothing with one score per pair; show_progress_bar=None shows nothing."""
    with qrr.Reranker(tied) as model:
        scores = model.predict(PAIRS)
        as_list = model.predict(PAIRS, convert_to_numpy=False)
        one = model.predict(PAIRS[1], convert_to_numpy=False)
        one_numpy = model.predict(PAIRS[1])
        softmaxed = model.predict(PAIRS, apply_softmax=True, show_progress_bar=None)
    assert type(as_list) is list and all(type(x) is float for x in as_list)
    assert as_list == scores.tolist()
    assert type(one) is float and one == float(one_numpy)
    assert np.array_equal(softmaxed, scores)


def test_convert_to_tensor_without_torch_names_the_argument(tied, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch fails, installed or not
    with qrr.Reranker(tied) as model:
        with pytest.raises(ImportError, match="convert_to_tensor=True needs torch"):
            model.predict(PAIRS, convert_to_tensor=True)


def test_convert_to_tensor_gives_a_torch_tensor(tied):
    torch = pytest.importorskip("torch")
    with qrr.Reranker(tied) as model:
        scores = model.predict(PAIRS)
        tensor = model.predict(PAIRS, convert_to_numpy=False, convert_to_tensor=True)
        one = model.predict(PAIRS[0], convert_to_tensor=True)
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32
    assert np.array_equal(tensor.numpy(), scores)
    assert isinstance(one, torch.Tensor) and one.ndim == 0 and float(one) == float(scores[0])
