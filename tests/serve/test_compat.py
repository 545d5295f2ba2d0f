"""Compatibility with text-embeddings-inference (TEI) and OpenAI's embeddings API, where a client of either
would notice a difference: response headers, `dimensions` limits, SPLADE's `normalize`, the health and
SageMaker routes, CORS, prompts on token-id inputs. Tiny random checkpoints on 127.0.0.1 only.

References: TEI's router (router/src/http/server.rs, router/src/lib.rs ``ResponseMetadata``), its core
(core/src/infer.rs ``embed_pooled``, core/src/tokenization.rs ``tokenize_input``)."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from serve_helpers import serving

TIMING_HEADERS = (
    "x-compute-time",
    "x-compute-characters",
    "x-compute-tokens",
    "x-total-time",
    "x-tokenization-time",
    "x-queue-time",
    "x-inference-time",
)


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_tei_timing_headers_on_every_inference_route(base_server):
    """TEI answers every inference route with x-compute-time, x-tokenization-time, x-queue-time and
    x-inference-time (milliseconds) besides x-compute-characters / -tokens / x-total-time."""
    c = base_server.client
    before = _metric(c.get("/metrics").text, "te_request_queue_duration_count")
    requests = [
        ("/embed", {"inputs": ["the cat", "the dog"]}),
        ("/embed_all", {"inputs": "the cat"}),
        ("/v1/embeddings", {"input": "the cat"}),
        ("/similarity", {"inputs": {"source_sentence": "the cat", "sentences": ["the dog"]}}),
        ("/", {"inputs": "the cat"}),
    ]
    for path, body in requests:
        r = c.post(path, json=body)
        assert r.status_code == 200, (path, r.text)
        for name in TIMING_HEADERS:
            assert name in r.headers, (path, name)
            assert int(r.headers[name]) >= 0, (path, name, r.headers[name])
        assert int(r.headers["x-compute-time"]) <= int(r.headers["x-total-time"]) + 1
    assert c.post("/embed", json={"inputs": "the cat"}).headers["x-compute-characters"] == "7"
    # te_request_queue_duration (README: TEI's names) is observed once per request that ran a forward
    after = _metric(c.get("/metrics").text, "te_request_queue_duration_count")
    assert after - before >= len(requests)


def test_tei_timing_headers_on_rerank_and_predict(tiny):
    with serving(model=tiny["reranker"]) as srv:
        for path, body in (
            ("/rerank", {"query": "the cat", "texts": ["the dog", "a car"]}),
            ("/predict", {"inputs": [["the cat", "the dog"], ["a car"]]}),
        ):
            r = srv.client.post(path, json=body)
            assert r.status_code == 200, (path, r.text)
            for name in TIMING_HEADERS:
                assert int(r.headers[name]) >= 0, (path, name)


def test_dimensions_larger_than_the_embedding_is_a_validation_error(base_server):
    """TEI (core/src/infer.rs embed_pooled): `dimensions` above the embedding size is a 422 Validation error,
    not the full vector; OpenAI refuses it too. The tiny model's vectors have 32 values."""
    c = base_server.client
    r = c.post("/embed", json={"inputs": "the cat", "dimensions": 33})
    assert r.status_code == 422, r.text
    assert r.json()["error_type"] == "Validation" and "`dimensions`" in r.json()["error"]
    r = c.post("/v1/embeddings", json={"input": ["the cat"], "dimensions": 1000})
    assert r.status_code == 422, r.text
    assert set(r.json()) == {"error", "message", "code", "type"} and "`dimensions`" in r.json()["message"]
    assert r.json()["error"] == {
        "message": r.json()["message"],
        "type": "Validation",
        "param": None,
        "code": 422,
    }
    full = np.asarray(c.post("/embed", json={"inputs": "the cat", "dimensions": 32}).json())
    assert full.shape == (1, 32)
    cut = np.asarray(c.post("/embed", json={"inputs": "the cat", "dimensions": 8}).json())
    assert cut.shape == (1, 8) and abs(np.linalg.norm(cut) - 1) < 1e-5


def test_health_and_sagemaker_routes(base_server):
    """TEI serves GET / and GET /ping as /health, POST /invocations as POST / (SageMaker), and its OpenAPI
    document at /api-doc/openapi.json."""
    c = base_server.client
    assert c.get("/").status_code == 200
    assert c.get("/ping").status_code == 200
    body = {"inputs": ["the cat", "the dog"]}
    r = c.post("/invocations", json=body)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json(), c.post("/embed", json=body).json(), atol=1e-6, rtol=0)
    assert "x-inference-time" in r.headers
    doc = c.get("/api-doc/openapi.json")
    assert doc.status_code == 200 and "/embed" in doc.json()["paths"]


def test_health_routes_need_no_key_but_invocations_does(tiny):
    """TEI puts /health, GET / and /ping outside the API-key layer; /invocations is behind it."""
    with serving(model=tiny["base"], api_key="k3y") as srv:
        c = srv.client
        assert c.get("/").status_code == 200
        assert c.get("/ping").status_code == 200
        assert c.post("/invocations", json={"inputs": "the cat"}).status_code == 401
        assert c.post("/", json={"inputs": "the cat"}).status_code == 401
        ok = c.post("/invocations", json={"inputs": "the cat"}, headers={"Authorization": "Bearer k3y"})
        assert ok.status_code == 200, ok.text
        # a browser's CORS preflight carries no key: TEI's CORS layer answers it before the key is checked
        pre = c.options(
            "/embed",
            headers={
                "Origin": "http://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "*"


def test_cors_any_origin_by_default(base_server):
    """TEI's default CORS layer allows any origin (GET, POST, content-type): browser clients work."""
    c = base_server.client
    origin = {"Origin": "http://app.example"}
    pre = c.options(
        "/embed",
        headers={
            **origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert pre.status_code == 200, pre.text
    assert pre.headers["access-control-allow-origin"] == "*"
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert "content-type" in pre.headers["access-control-allow-headers"].lower()
    r = c.post("/embed", json={"inputs": "the cat"}, headers=origin)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
    # errors carry it as well, or the browser hides them from the page
    r = c.post("/embed", json={"inputs": []}, headers=origin)
    assert r.status_code == 400 and r.headers["access-control-allow-origin"] == "*"
    assert c.get("/info", headers=origin).headers["access-control-allow-origin"] == "*"
    # no Origin: no CORS headers
    assert "access-control-allow-origin" not in c.post("/embed", json={"inputs": "the cat"}).headers


def test_cors_allow_origin_list(tiny):
    """TEI's --cors-allow-origin: only the listed origins are allowed."""
    with serving(model=tiny["base"], cors_allow_origin=("http://ok.example",)) as srv:
        c = srv.client
        pre = {"Access-Control-Request-Method": "POST"}
        r = c.options("/embed", headers={"Origin": "http://ok.example", **pre})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://ok.example"
        r = c.options("/embed", headers={"Origin": "http://evil.example", **pre})
        assert "access-control-allow-origin" not in r.headers
        r = c.post("/embed", json={"inputs": "the cat"}, headers={"Origin": "http://evil.example"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_cors_cli_option():
    import argparse

    from fastbert.serve.cli import add_cli_arguments, options_from_args

    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    assert options_from_args(parser.parse_args([])).cors_allow_origin is None
    args = parser.parse_args(["--cors-allow-origin", "http://a.example,http://b.example"])
    assert options_from_args(args).cors_allow_origin == ("http://a.example", "http://b.example")


def test_splade_refuses_normalize_like_tei(tiny):
    """TEI (core/src/infer.rs embed_pooled): `normalize` is not available for SPLADE models: /embed with the
    default normalize=true and /v1/embeddings are a 424; /embed normalize=false is the dense SPLADE vector,
    and /similarity (which embeds with normalize=false) works."""
    texts = ["the cat is green", "paris is the capital of france"]
    with serving(model=tiny["mlm"], pooling="splade") as srv:
        c = srv.client
        r = c.post("/embed", json={"inputs": texts})
        assert r.status_code == 424 and r.json()["error_type"] == "Backend", r.text
        assert "normalize" in r.json()["error"]
        r = c.post("/v1/embeddings", json={"input": texts})
        assert r.status_code == 424 and r.json()["type"] == "Backend", r.text
        dense = np.asarray(c.post("/embed", json={"inputs": texts, "normalize": False}).json())
        sparse = c.post("/embed_sparse", json={"inputs": texts}).json()
        for row, values in zip(dense, sparse):
            want = np.zeros_like(row)
            for v in values:
                want[v["index"]] = v["value"]
            np.testing.assert_allclose(row, want, atol=1e-6, rtol=0)
        r = c.post("/similarity", json={"inputs": {"source_sentence": texts[0], "sentences": texts[1:]}})
        assert r.status_code == 200, r.text
        a, b = dense.astype(np.float64)
        np.testing.assert_allclose(r.json(), [a @ b / np.linalg.norm(a) / np.linalg.norm(b)], atol=1e-5)


def test_similarity_scores_stay_within_minus_one_and_one(tiny):
    """/similarity's cosines are in [-1, 1], a sentence against itself at most 1.0: from vectors normalized
    in float32 about half of all self-similarities came out above 1 (1.0000000013), which ``math.acos``
    refuses. A tiny random model's vectors all sit near one direction: scores near 1 either way."""
    from fastbert.serve.engine import cosines

    rng = np.random.default_rng(0)
    vectors = [rng.standard_normal(384).astype(np.float32) for _ in range(64)]
    for v in vectors:
        assert cosines(v, [v, -v]) == pytest.approx([1.0, -1.0], abs=1e-12)
        assert -1.0 <= min(cosines(v, [v, -v])) and max(cosines(v, [v, -v])) <= 1.0
    texts = ["the cat is green", "paris is the capital of france", "the cat is green"]
    with serving(model=tiny["base"]) as srv:
        r = srv.client.post("/similarity", json={"inputs": {"source_sentence": texts[0], "sentences": texts}})
        assert r.status_code == 200, r.text
        scores = r.json()
        assert all(-1.0 <= s <= 1.0 for s in scores), scores
        assert [math.acos(s) for s in scores]  # a client's angle
        assert scores[0] == scores[2] == pytest.approx(1.0, abs=1e-12)
        # written as float32, as TEI's f32 similarities (and every other number of the server)
        assert all(str(np.float32(s)) == s for s in json.loads(r.text, parse_float=str)), r.text


def test_similarity_parameters_reach_the_embedding(tmp_path):
    """/similarity's ``parameters`` (TEI's SimilarityParameters): ``prompt_name`` and ``truncate`` /
    ``truncation_direction`` embed as /embed does with them; the score is the cosine of those vectors. On
    the real MiniLM (a tiny random model's cosines all sit within 1e-5 of 1), with prompts added."""
    from fastbert.hub import embedded_model_path

    model = tmp_path / "minilm"
    shutil.copytree(embedded_model_path(), model)
    (model / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"query": "query: where is ", "passage": ""}})
    )

    def cosine(a, b):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    texts = ["the sky is blue", "paris is the capital of france"]
    long = "the sky is blue and the sea is green " * 3 + "but paris is the capital of france"
    with serving(model=str(model), max_input_length=16, auto_truncate=False) as srv:
        c = srv.client
        body = {"inputs": {"source_sentence": texts[0], "sentences": texts[1:]}}
        scores = {}
        for name in ("passage", "query"):
            params = {"prompt_name": name}
            scores[name] = c.post("/similarity", json={**body, "parameters": params}).json()
            a, b = c.post("/embed", json={"inputs": texts, "normalize": False, **params}).json()
            assert scores[name] == pytest.approx([cosine(a, b)], abs=1e-5), params
        assert abs(scores["query"][0] - scores["passage"][0]) > 1e-2  # the prompt reached the embedding
        long_body = {"inputs": {"source_sentence": long, "sentences": texts[1:]}}
        r = c.post("/similarity", json={**long_body, "parameters": {"truncate": False}})
        assert r.status_code == 422, r.text  # over 16 tokens, truncation not asked
        for side in ("right", "left"):
            params = {"truncate": True, "truncation_direction": side}
            scores[side] = c.post("/similarity", json={**long_body, "parameters": params}).json()
            a, b = c.post("/embed", json={"inputs": [long, texts[1]], "normalize": False, **params}).json()
            assert scores[side] == pytest.approx([cosine(a, b)], abs=1e-5), side
        assert abs(scores["left"][0] - scores["right"][0]) > 1e-2  # other tokens kept


def test_tokenize_and_decode_flags(tiny):
    """/tokenize ``add_special_tokens=false`` gives the text's tokens alone; /decode
    ``skip_special_tokens=false`` keeps [CLS] and [SEP] (TEI's TokenizeRequest / DecodeRequest)."""
    from fastbert import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny["base"])
    text = "the sky is blue"
    with serving(model=tiny["base"]) as srv:
        c = srv.client
        plain = c.post("/tokenize", json={"inputs": text, "add_special_tokens": False}).json()[0]
        assert [t["id"] for t in plain] == tok(text, add_special_tokens=False)["input_ids"]
        assert not any(t["special"] for t in plain)
        ids = tok(text)["input_ids"]
        kept = c.post("/decode", json={"ids": ids, "skip_special_tokens": False}).json()
        assert kept == [tok.decode(ids, skip_special_tokens=False)] and "[CLS]" in kept[0]
        assert c.post("/decode", json={"ids": ids}).json() == [tok.decode(ids, skip_special_tokens=True)]


def test_tokenize_offsets_are_utf8_bytes(tiny):
    """/tokenize's start/stop are byte offsets of the UTF-8 text (TEI), for 1- to 4-byte characters: each
    token's bytes decode to its text; found in one pass over the text (it was encoded up to every token)."""
    from fastbert.serve.engine import _byte_offsets

    text = "a é € 𝄞 the sky, naïve café — 東京 🙂 done"
    at = _byte_offsets(text)
    assert [at(i) for i in range(len(text) + 1)] == [len(text[:i].encode()) for i in range(len(text) + 1)]
    assert _byte_offsets("plain ascii")(5) == 5
    with serving(model=tiny["base"]) as srv:
        tokens = srv.client.post("/tokenize", json={"inputs": text}).json()[0]
    raw = text.encode()
    words = [t for t in tokens if not t["special"]]
    assert words and all(raw[t["start"] : t["stop"]].decode() == t["text"] for t in words), tokens


def test_prompts_apply_to_token_id_inputs(prompt_model):
    """TEI (core/src/tokenization.rs tokenize_input): with a prompt, token-id inputs are decoded, the prompt
    put before the text, and the result encoded with special tokens: ids and text embed alike."""
    with serving(model=prompt_model) as srv:
        c = srv.client
        # "passage" is the empty prompt: the ids of the text alone, [CLS] and [SEP] included
        tokens = c.post("/tokenize", json={"inputs": "the sky is blue", "prompt_name": "passage"}).json()[0]
        ids = [t["id"] for t in tokens]
        for extra in ({}, {"prompt_name": "query"}):
            want = c.post("/embed", json={"inputs": "the sky is blue", **extra}).json()
            got = c.post("/embed", json={"inputs": ids, **extra}).json()
            np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
        plain = c.post("/embed", json={"inputs": "the sky is blue", "prompt_name": "passage"}).json()
        assert not np.allclose(plain, want, atol=1e-4)  # the prompt changes the vector
        # a token id outside the vocabulary is still a 422 naming it, with a prompt as without
        r = c.post("/embed", json={"inputs": [[ids[1], 99999]], "prompt_name": "query"})
        assert r.status_code == 422 and "99999" in r.json()["error"]
