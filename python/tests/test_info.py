"""info and tokenize: what the accessors report equals `qrr info --json`; token ids equal
Hugging Face's for the reference strings."""
from __future__ import annotations

import json
import subprocess
import unicodedata

import pytest

import qrr
from conftest import BUILD, REFERENCE


def test_info_matches_qrr_info(tied):
    with qrr.Reranker(tied) as model:
        info = model.info()
    assert info["n_layers"] == 3 and info["hidden"] == 32 and info["head_dim"] == 128
    assert info["weight_dtype"] == "f32" and info["tied"] is True
    assert info["head_kind"] == "yes/no" and info["label_source"] == "inferred"
    assert (info["yes_id"], info["no_id"]) == (9693, 2152)
    assert info["strings"]["label_yes"] == "yes" and info["max_length"] == 8192
    assert len(info["tensors"]) == info["n_tensors"] == 36
    if not (BUILD / "qrr").exists():
        pytest.skip("no qrr command to compare with")
    c = json.loads(subprocess.run([str(BUILD / "qrr"), "info", "--json", tied],
                                  capture_output=True, text=True, check=True).stdout)
    assert c["model"]["vocab"] == info["vocab_size"]
    assert c["model"]["intermediate"] == info["intermediate"]
    assert c["head"]["reason"] == info["strings"]["label_reason"]
    assert c["prompts"]["prefix"] == info["strings"]["prefix"]
    assert c["tokenizer"]["merges"] == info["tokenizer_merges"]
    assert [t["shape"] for t in c["tensors"]] == [t["shape"] for t in info["tensors"]]


def test_single_logit_model(models):
    with qrr.Reranker(models["tiny-seqcls"]) as model:
        info = model.info()
    assert info["head_kind"] == "single-logit" and info["yes_id"] == -1


def test_tokenize_matches_hugging_face(tied):
    with open(REFERENCE / "tokenizer_public.jsonl") as f:
        lines = [json.loads(l) for _, l in zip(range(80), f)]
    with qrr.Reranker(tied) as model:
        for o in lines:
            assert model.tokenize(o["text"]) == o["ids"], o["text"]
            # decoding gives the normalized text back (the tokenizer applies NFC)
            assert model.decode(o["ids"]) == unicodedata.normalize("NFC", o["text"])


def test_prompt_ids_match_the_reference(tied):
    with open(REFERENCE / "scores_public.jsonl") as f:
        o = next(l for l in map(json.loads, f) if l["model"] == "tiny-tied")
    with qrr.Reranker(tied) as model:
        assert model.prompt_ids(o["query"], o["document"], o["instruction"]) == o["ids"]
