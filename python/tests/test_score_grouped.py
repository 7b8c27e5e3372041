"""score_grouped: pairs in any order grouped by query over the whole list and scored through
qrr_ctx_score_groups: the C API's numbers in input order, each query's prompt prefix computed
once per call (from where the context's prompt head ends), any batch size the same, errors
naming the pair."""
from __future__ import annotations

import random

import numpy as np
import pytest

import qrr
from conftest import c_api_scores, cases, group_key

QUERIES = ["What is the capital of China?", "Where is Seoul?", "Which city hosts the Louvre?"]


def interleaved_pairs(n: int):
    """n pairs whose queries take turns, so that no two neighbours share a query."""
    return [(QUERIES[i % len(QUERIES)], f"Document {i}: a few words about city number {i}.")
            for i in range(n)]


def common_prefix(seqs):
    """What the library shares: the longest common prefix, leaving each sequence a token."""
    p = min(len(s) for s in seqs) - 1
    for s in seqs[1:]:
        j = 0
        while j < p and s[j] == seqs[0][j]:
            j += 1
        p = j
    return p


def leading_part(prompt, head):
    """How many of prompt's first tokens are the head's (leaving the prompt a token)."""
    j = 0
    while j < min(len(prompt) - 1, len(head)) and prompt[j] == head[j]:
        j += 1
    return j


@pytest.mark.parametrize("name", ["tiny-tied", "tiny-seqcls"])
def test_shuffled_reference_cases_equal_the_c_api(models, name):
    lines = cases(name)
    want = c_api_scores(models[name], lines)
    order = list(range(len(lines)))
    random.Random(7).shuffle(order)
    got = np.empty((2, len(lines)), dtype=np.float32)
    with qrr.Reranker(models[name], threads=1) as model:
        groups = {}
        for i in order:
            groups.setdefault(group_key(lines[i]), []).append(i)
        for (instruction, max_length), idx in groups.items():
            pairs = [(lines[i]["query"], lines[i]["document"]) for i in idx]
            scores, logits = model.score_grouped(pairs, instruction=instruction,
                                                 max_length=max_length)
            got[0, idx], got[1, idx] = scores, logits
    assert np.max(np.abs(got[0] - [s for s, _ in want])) <= 1e-5
    assert np.max(np.abs(got[1] - [l for _, l in want])) <= 1e-5


def test_interleaved_queries_keep_input_order_and_share_each_prefix(tied):
    pairs = interleaved_pairs(24)
    with qrr.Reranker(tied, threads=1) as model:
        alone = np.array([model.predict(p) for p in pairs])
        scores, logits = model.score_grouped(pairs, batch_size=64)  # one library call
        stats = model.last_stats()
        prompts = [model.prompt_ids(q, d) for q, d in pairs]
        head = model.prompt_ids("", "")  # the prompt head the context keeps
        raw = model.predict(pairs, raw=True)
    assert scores.dtype == np.float32 and scores.shape == (24,)
    assert np.max(np.abs(scores - alone)) <= 1e-5
    assert np.max(np.abs(logits - raw)) <= 1e-5
    tokens = sum(len(p) for p in prompts)
    saved = 0
    for q in QUERIES:
        group = [p for p, (pq, _) in zip(prompts, pairs) if pq == q]
        # the group's prefix is computed once, and not its opening the prompt head holds
        saved += (len(group) - 1) * common_prefix(group) + leading_part(group[0], head)
    assert stats["tokens"] == tokens
    assert stats["tokens_computed"] == tokens - saved
    assert saved > 0


def test_any_batch_size_gives_the_same_scores(tied):
    pairs = interleaved_pairs(17)
    with qrr.Reranker(tied, threads=1) as model:
        base, _ = model.score_grouped(pairs, batch_size=256)
        for batch_size in (1, 2, 5, 16):
            scores, _ = model.score_grouped(pairs, batch_size=batch_size)
            assert np.max(np.abs(scores - base)) <= 1e-5, batch_size


def test_empty_input_and_errors_name_the_pair(tied):
    with qrr.Reranker(tied) as model:
        scores, logits = model.score_grouped([])
        assert scores.shape == logits.shape == (0,)
        with pytest.raises(TypeError, match="query of pair 1 must be a str, not int"):
            model.score_grouped([("q", "d"), (5, "d")])
        with pytest.raises(TypeError, match="document of pair 0 must be a str, not NoneType"):
            model.score_grouped([("q", None)])
        with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
            model.score_grouped([("q", "d")], batch_size=0)
