"""`qrr serve` through the Cohere Python SDK, as a Cohere user would point it at the server
(`cohere.Client` for /v1/rerank, `cohere.ClientV2` for /v2/rerank): the reference cases
score as Transformers scored them, best first with their original indices; the server's
refusals reach the SDK as its own typed errors. .ci/run installs the SDK and sets
QRR_REQUIRE_CLIENTS=1, where a missing SDK fails instead of skipping."""
from __future__ import annotations

import os
import re
import subprocess
from collections import defaultdict

import pytest

from conftest import BUILD, reference_lines

pytestmark = pytest.mark.timeout(120)

# f32 files: the tolerance of docs/ci.md's first row, against Transformers' fp64 scores
TOL_SCORE = 1e-5
API_KEY = "k3y-for-tests"
MAX_DOCUMENTS = 40  # above TEI's 32 texts: framework rerankers send every retrieved document


def need_cohere():
    try:
        import cohere
    except ImportError:
        if os.environ.get("QRR_REQUIRE_CLIENTS") == "1":
            pytest.fail("the cohere package is missing (QRR_REQUIRE_CLIENTS=1)")
        pytest.skip("the cohere package is not installed")
    return cohere


@pytest.fixture(scope="module")
def server(tied):
    """`qrr serve` on the tiny model, any free loopback port, with an API key."""
    qrr_cli = BUILD / "qrr"
    if not qrr_cli.exists():
        pytest.skip(f"no {qrr_cli} to serve with (set QRR_BUILD)")
    proc = subprocess.Popen([str(qrr_cli), "serve", tied, "--port", "0", "--threads", "1",
                             "--api-key", API_KEY, "--max-documents", str(MAX_DOCUMENTS),
                             "--quiet"],
                            stderr=subprocess.PIPE, text=True)
    url = None
    try:
        for line in proc.stderr:
            found = re.search(r"listening on (http://\S+)", line)
            url = found.group(1) if found else url
            if "ready" in line:
                break
        assert url and proc.poll() is None, "qrr serve did not start"
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stderr.close()


DEFAULT_INSTRUCTION = ("Given a web search query, retrieve relevant passages that answer "
                       "the query")


def reference_groups():
    """The reference cases of tiny-tied without a length limit, grouped by query and
    instruction (none: the default): (query, instruction) -> [(document, Transformers' fp64
    score)]."""
    groups = defaultdict(list)
    for o in reference_lines("tiny-tied"):
        if not o.get("max_length"):
            key = (o["query"], o["instruction"] or DEFAULT_INSTRUCTION)
            groups[key].append((o["document"], o["fp64"]["score"]))
    assert max(map(len, groups.values())) >= 2
    return groups


def instruction_option(instruction):
    """The request field qrr adds to Cohere's API, sent through the SDK's extra fields."""
    return {"additional_body_parameters": {"instruction": instruction}}


def check_ranking(results, docs, top_n):
    """results (the SDK's items) hold the top_n documents best first, each with its own
    index and within the tolerance of Transformers' score."""
    want = sorted(range(len(docs)), key=lambda i: -docs[i][1])[:top_n]
    assert len(results) == len(want)
    for r in results:
        assert abs(r.relevance_score - docs[r.index][1]) <= TOL_SCORE, (r, docs[r.index])
    scores = [r.relevance_score for r in results]
    assert scores == sorted(scores, reverse=True)
    # equal reference scores may come in either order; the set of the best top_n may not
    assert sorted(docs[r.index][1] for r in results) == sorted(docs[i][1] for i in want)


def test_cohere_v1_client(server):
    cohere = need_cohere()
    client = cohere.Client(base_url=server, api_key=API_KEY)
    for (query, instruction), docs in reference_groups().items():
        top_n = max(1, len(docs) - 1)
        got = client.rerank(model="tiny-tied", query=query, documents=[d for d, _ in docs],
                            top_n=top_n, return_documents=True,
                            request_options=instruction_option(instruction))
        check_ranking(got.results, docs, top_n)
        for r in got.results:
            assert r.document.text == docs[r.index][0]


def test_cohere_v2_client(server):
    cohere = need_cohere()
    client = cohere.ClientV2(base_url=server, api_key=API_KEY)
    for (query, instruction), docs in reference_groups().items():
        got = client.rerank(model="tiny-tied", query=query, documents=[d for d, _ in docs],
                            request_options=instruction_option(instruction))
        check_ranking(got.results, docs, len(docs))


def test_refusals_reach_the_sdk_as_its_errors(server):
    cohere = need_cohere()
    from cohere.core.api_error import ApiError
    client = cohere.ClientV2(base_url=server, api_key=API_KEY)
    docs = [f"document {i}: " + "word " * (i % 7) for i in range(MAX_DOCUMENTS + 1)]
    got = client.rerank(model="tiny-tied", query="q", documents=docs[:MAX_DOCUMENTS])
    assert sorted(r.index for r in got.results) == list(range(MAX_DOCUMENTS))
    with pytest.raises(ApiError) as too_many:
        client.rerank(model="tiny-tied", query="q", documents=docs)
    assert too_many.value.status_code == 422
    assert "--max-documents" in too_many.value.body["message"]  # where Cohere puts it
    with pytest.raises(ApiError) as empty:
        client.rerank(model="tiny-tied", query="q", documents=[])
    assert empty.value.status_code == 400
    wrong_key = cohere.ClientV2(base_url=server, api_key="not-" + API_KEY)
    with pytest.raises(ApiError) as refused:
        wrong_key.rerank(model="tiny-tied", query="q", documents=["d"])
    assert refused.value.status_code == 401
