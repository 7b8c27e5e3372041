"""rank: CrossEncoder.rank's shape of answer, ordered best first, from predict's scores;
a negative top_k and a str for the documents refused."""
from __future__ import annotations

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
