"""Clients nobody here wrote against ``fastbert serve`` on the embedded MiniLM: huggingface_hub's
InferenceClient, the openai client, plain httpx; vectors equal sentence-transformers' ``encode`` within 1e-5."""

from __future__ import annotations

import base64

import numpy as np
import pytest

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The new movie is awesome, the critics loved it and so did the audience in every city it opened in.",
    " ",  # no token but the special ones (an empty string is refused, as TEI: tests/serve/test_faults.py)
    "x",
    "Paris is the capital of France. " * 6,
]
TOL = 1e-5


def test_inference_client_feature_extraction(minilm_server, st_minilm):
    hub = pytest.importorskip("huggingface_hub")
    client = hub.InferenceClient(base_url=minilm_server.url)
    for text in SENTENCES[:3]:
        got = np.asarray(client.feature_extraction(text))  # TEI answers [[...]] for one input
        want = st_minilm.encode([text], convert_to_numpy=True)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=TOL, rtol=0)


def test_inference_client_sentence_similarity(minilm_server, st_minilm):
    hub = pytest.importorskip("huggingface_hub")
    client = hub.InferenceClient(base_url=minilm_server.url)
    got = client.sentence_similarity(SENTENCES[0], other_sentences=SENTENCES[1:3])
    v = st_minilm.encode(SENTENCES[:3], convert_to_numpy=True)
    want = [float(v[0] @ v[1]), float(v[0] @ v[2])]
    np.testing.assert_allclose(got, want, atol=TOL, rtol=0)


def test_openai_client_embeddings(minilm_server, st_minilm):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=minilm_server.url + "/v1", api_key="unused", max_retries=0, timeout=60)
    want = st_minilm.encode(SENTENCES, convert_to_numpy=True)
    res = client.embeddings.create(input=SENTENCES, model="all-MiniLM-L6-v2")
    got = np.asarray([d.embedding for d in sorted(res.data, key=lambda d: d.index)])
    np.testing.assert_allclose(got, want, atol=TOL, rtol=0)
    ids = st_minilm.tokenizer(SENTENCES)["input_ids"]
    assert res.usage.prompt_tokens == res.usage.total_tokens == sum(len(x) for x in ids)
    assert res.model == minilm_server.state.served_model_name
    # base64 (what the openai client asks for by default when numpy is around) and token ids
    raw = minilm_server.client.post(
        "/v1/embeddings", json={"input": [ids[0], SENTENCES[1]], "encoding_format": "base64"}
    ).json()
    got = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in raw["data"]])
    np.testing.assert_allclose(got, want[:2], atol=TOL, rtol=0)


def test_httpx_embed_and_embed_all(minilm_server, st_minilm):
    c = minilm_server.client
    r = c.post("/embed", json={"inputs": SENTENCES})
    assert r.status_code == 200, r.text
    want = st_minilm.encode(SENTENCES, convert_to_numpy=True)
    np.testing.assert_allclose(np.asarray(r.json()), want, atol=TOL, rtol=0)
    assert int(r.headers["x-compute-tokens"]) > 0
    # normalize=false: the pooled vector before sentence-transformers' Normalize module
    raw = np.asarray(c.post("/embed", json={"inputs": SENTENCES[:2], "normalize": False}).json())
    norms = np.linalg.norm(raw, axis=1, keepdims=True)
    assert np.all(np.abs(norms - 1) > 1e-3)
    np.testing.assert_allclose(raw / norms, want[:2], atol=TOL, rtol=0)
    # every token's vector
    tokens = c.post("/embed_all", json={"inputs": SENTENCES[1]}).json()
    want_tokens = st_minilm.encode([SENTENCES[1]], output_value="token_embeddings")[0].numpy()
    np.testing.assert_allclose(np.asarray(tokens[0]), want_tokens, atol=TOL, rtol=0)
    # POST / is /embed for an embedding model
    root = np.asarray(c.post("/", json={"inputs": SENTENCES[0]}).json())
    np.testing.assert_allclose(root, want[:1], atol=TOL, rtol=0)


def test_tokenize_decode_and_truncation(minilm_server, st_minilm):
    c = minilm_server.client
    text = "Héllo wörld, tokenize me."
    toks = c.post("/tokenize", json={"inputs": text}).json()[0]
    assert [t["id"] for t in toks] == st_minilm.tokenizer(text)["input_ids"]
    assert toks[0]["special"] and toks[0]["start"] is None
    first = toks[1]
    assert text.encode()[first["start"] : first["stop"]].decode() == first["text"]
    assert c.post("/decode", json={"ids": [t["id"] for t in toks]}).json() == [
        st_minilm.tokenizer.decode([t["id"] for t in toks], skip_special_tokens=True)
    ]
    long = "word " * 400
    r = c.post("/embed", json={"inputs": long, "truncate": False})
    assert r.status_code == 422 and "256" in r.json()["error"] and r.json()["error_type"] == "Validation"
    for body in ({"inputs": long, "truncate": True}, {"inputs": long}):  # --auto-truncate is on by default
        got = np.asarray(c.post("/embed", json=body).json())
        np.testing.assert_allclose(got, st_minilm.encode([long]), atol=TOL, rtol=0)


def test_info_health_metrics_openapi(minilm_server):
    c = minilm_server.client
    info = c.get("/info").json()
    assert info["model_type"] == {"embedding": {"pooling": "mean"}}
    assert info["max_input_length"] == 256 and info["model_dtype"] == "float32"
    for key in (
        "max_concurrent_requests",
        "max_batch_tokens",
        "max_client_batch_size",
        "auto_truncate",
        "version",
    ):
        assert key in info
    assert c.get("/health").status_code == 200
    c.post("/embed", json={"inputs": "metrics"})
    text = c.get("/metrics").text
    for name in (
        "te_request_count",
        "te_request_success",
        "te_request_duration_bucket",
        "te_queue_size",
        "te_batch_next_size_bucket",
        "te_batch_next_tokens_bucket",
        "te_request_input_length_bucket",
    ):
        assert name in text, name
    paths = c.get("/openapi.json").json()["paths"]
    for p in (
        "/embed",
        "/embed_all",
        "/embed_sparse",
        "/rerank",
        "/predict",
        "/similarity",
        "/tokenize",
        "/decode",
        "/v1/embeddings",
        "/health",
        "/info",
        "/metrics",
        "/",
    ):
        assert p in paths, p
