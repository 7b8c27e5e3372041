"""rank: CrossEncoder.rank's shape of answer, ordered best first, from predict's scores;
CrossEncoder.rank's arguments in its order; a negative top_k and a str for the documents
refused."""
from __future__ import annotations

import inspect
import sys

import numpy as np
import pytest

import qrr

QUERY = "What is the capital of China?"
DOCS = ["Gravity is a force.", "Beijing is the capital of China.", "Seoul.", "A city.",
        "The Great Wall."]


def test_rank_orders_by_predict_scores(tied):
    with qrr.Reranker(tied) as model:
        scores = model.predict([(QUERY, d) for d in DOCS])
        ranked = model.rank(QUERY, DOCS)
    assert [h["corpus_id"] for h in ranked] == sorted(range(len(DOCS)), key=lambda i: -scores[i])
    assert all(set(h) == {"corpus_id", "score"} for h in ranked)
    assert [h["score"] for h in ranked] == sorted((float(s) for s in scores), reverse=True)
    for h in ranked:
        assert h["score"] == float(scores[h["corpus_id"]])


def test_top_k_and_documents(tied):
    with qrr.Reranker(tied) as model:
        full = model.rank(QUERY, DOCS, return_documents=True)
        top = model.rank(QUERY, DOCS, top_k=2, return_documents=True)
        assert model.rank(QUERY, []) == []
    assert top == full[:2]
    for h in full:
        assert h["text"] == DOCS[h["corpus_id"]]


def test_instruction_changes_the_ranking_scores(tied):
    with qrr.Reranker(tied) as model:
        default = model.rank(QUERY, DOCS)
        other = model.rank(QUERY, DOCS, instruction="Find documents about physics")
    assert {h["corpus_id"]: h["score"] for h in default} != {h["corpus_id"]: h["score"] for h in other}


def test_the_signature_is_cross_encoders():
    """CrossEncoder.rank(query, documents, top_k, return_documents, batch_size,
    show_progress_bar, activation_fn, apply_softmax, convert_to_numpy, convert_to_tensor),
    in that order, with those defaults; qrr's own arguments only by keyword after them."""
    params = list(inspect.signature(qrr.Reranker.rank).parameters.values())[1:]
    positional = [(p.name, p.default) for p in params[2:]
                  if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert [p.name for p in params[:2]] == ["query", "documents"]
    assert positional == [("top_k", None), ("return_documents", False), ("batch_size", 32),
                          ("show_progress_bar", None), ("activation_fn", None),
                          ("apply_softmax", False), ("convert_to_numpy", True),
                          ("convert_to_tensor", False)]
    assert [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY] == [
        "instruction", "max_length", "truncate"]


def test_positional_arguments_as_cross_encoder_passes_them(tied, monkeypatch):
    """The 5th argument is batch_size, the 7th activation_fn (negated logits rank the
    documents worst first); the scores stay floats whatever convert_to_numpy and
    convert_to_tensor say, so neither needs torch."""
    monkeypatch.setitem(sys.modules, "torch", None)
    with qrr.Reranker(tied) as model:
        best_first = model.rank(QUERY, DOCS, None, True, batch_size=2)
        assert model.rank(QUERY, DOCS, None, True, 2) == best_first
        with pytest.raises(ValueError, match="batch_size"):
            model.rank(QUERY, DOCS, None, True, 0)
        logits = model.predict([(QUERY, d) for d in DOCS], raw=True)
        worst_first = model.rank(QUERY, DOCS, 3, False, 32, False, np.negative, True, False, True)
    assert [h["corpus_id"] for h in worst_first] == [h["corpus_id"] for h in best_first[::-1]][:3]
    for h in worst_first:
        assert type(h["score"]) is float and h["score"] == -float(logits[h["corpus_id"]])


def test_bad_arguments(tied):
    with qrr.Reranker(tied) as model:
        assert model.rank(QUERY, DOCS, top_k=0) == []
        assert len(model.rank(QUERY, DOCS, top_k=np.int64(2))) == 2
        with pytest.raises(ValueError, match="top_k"):
            model.rank(QUERY, DOCS, top_k=-1)
        for top_k in (1.5, "2", True):
            with pytest.raises(TypeError):
                model.rank(QUERY, DOCS, top_k=top_k)
        with pytest.raises(TypeError, match="documents must be a list of str, not str"):
            model.rank(QUERY, "abc")  # not three documents "a", "b", "c"
        with pytest.raises(TypeError, match="documents must be a list of str, not bytes"):
            model.rank(QUERY, b"abc")
