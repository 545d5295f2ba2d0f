"""Request validation of ``fastbert serve`` against TEI's router (router/src/http/server.rs, types.rs) and
OpenAI's ``/v1/embeddings``, where a review found errors naming the wrong field or answers a client of either
would not get. Tiny random checkpoints on 127.0.0.1 only."""

from __future__ import annotations

import pytest
from serve_helpers import serving

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


@pytest.fixture(scope="module")
def base_server(tiny):
    with serving(model=tiny["base"], pooling="mean") as srv:
        yield srv


def _error(r) -> str:
    assert r.status_code == 422, r.text
    body = r.json()
    return body["error"] if isinstance(body["error"], str) else body["error"]["message"]


def test_a_token_id_outside_the_vocabulary_is_named_where_it_is(base_server):
    """The error named ``inputs[0]`` for any bad id of a single token-id input (``[5, 6, 99999]``: the id
    at inputs[2]) and ``ids[0]`` on /decode: it names the input as the other errors do, and the position."""
    c = base_server.client
    message = _error(c.post("/embed", json={"inputs": [5, 6, 99999]}))
    assert message.startswith("`inputs`:") and "99999 at position 2" in message, message
    message = _error(c.post("/v1/embeddings", json={"input": [[5], [6, 99999]]}))
    assert message.startswith("`input[1]`:") and "99999 at position 1" in message, message
    message = _error(c.post("/embed_all", json={"inputs": ["the cat", [7, 8, 9, 4294967296]]}))
    assert message.startswith("`inputs[1]`:") and "4294967296 at position 3" in message, message
    message = _error(c.post("/decode", json={"ids": [5, 99999]}))
    assert message.startswith("`ids`:") and "99999 at position 1" in message, message
    message = _error(c.post("/decode", json={"ids": [[5], [6, 7, 99999]]}))
    assert message.startswith("`ids[1]`:") and "99999 at position 2" in message, message
