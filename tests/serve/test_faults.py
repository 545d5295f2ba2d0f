"""Faults: bad bodies (422 naming the field), limits (413), a client killed mid-request (its slot freed, its
queued work dropped), a failing forward (424 for its batch only, the server goes on), the API key (401)."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from serve_helpers import httpx, serving


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"inputs": ["the cat"', "malformed JSON"),
        (b'{"inputs": 5}', "`inputs`"),
        (b'{"inputs": [["the", 3]]}', "`inputs[0]"),
        (b'{"inputs": "the cat", "normalize": "yes"}', "`normalize`"),
        (b'{"inputs": "the cat", "truncate": 1}', "`truncate`"),
        (b'{"inputs": "the cat", "truncation_direction": "up"}', "`truncation_direction`"),
        (b'{"inputs": [-1]}', "`inputs"),
        (b'{"inputs": [99999]}', "token id 99999"),
        (b'{"text": "no inputs"}', "`inputs`"),
        (b'["not", "an", "object"]', "`body`"),
        (b"\xff\xfe", "malformed JSON"),
        # json.loads raises other than a JSONDecodeError on these: FastAPI answered them 400 {"detail": ...}
        pytest.param(b'{"inputs": "caf\xe9"}', "malformed JSON", id="latin-1"),
        pytest.param(b"[" * 5000 + b"]" * 5000, "malformed JSON", id="nested-past-the-recursion-limit"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(base_server, body, field):
    r = base_server.client.post("/embed", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error_type"] == "Validation" and field in r.json()["error"]


def test_undecodable_bodies_are_422_on_every_route(base_server):
    """A body that is not UTF-8, or nested past Python's recursion limit, is malformed JSON as any other: a 422
    in TEI's body, OpenAI's on its routes (FastAPI answered /embed and /v1/embeddings 400 {"detail": ...}, and
    POST / and /vertex, which read the body themselves, 500 on the nesting)."""
    c = base_server.client
    latin1 = b'{"inputs": "caf\xe9", "input": "caf\xe9", "instances": [{"inputs": "caf\xe9"}]}'
    nested = b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    for body in (latin1, nested):
        for path in ("/embed", "/", "/vertex", "/tokenize"):
            r = c.post(path, content=body, headers={"content-type": "application/json"})
            assert r.status_code == 422, (path, r.text)
            assert r.json()["error_type"] == "Validation" and "malformed JSON" in r.json()["error"]
        r = c.post("/v1/embeddings", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["type"] == "Validation" and "malformed JSON" in r.json()["error"]["message"]
    assert c.post("/nowhere", json={}).status_code == 404  # other HTTP errors stay FastAPI's


def test_limits(base_server):
    c = base_server.client
    r = c.post("/embed", json={"inputs": ["the cat"] * 10_000})
    # TEI 1.9+: every validation error, the batch size too, is a 422
    assert r.status_code == 422 and "`inputs`" in r.json()["error"] and "10000" in r.json()["error"]
    r = c.post(
        "/embed",
        content=b'{"inputs": "' + b"a" * 10_000_000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413 and "payload limit" in r.json()["error"]
    assert "of 10000014 bytes" in r.json()["error"]  # the declared size

    def chunks():  # a body that declares no size: the size read when the limit tripped is not its size
        yield b'{"inputs": "'
        for _ in range(5):
            yield b"a" * 1_000_000
        yield b'"}'

    r = c.post("/embed", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json()["error"] == (
        "request body is more than the payload limit of 2000000 bytes (--payload-limit)"
    )
    r = c.post("/embed", json={"inputs": []})
    assert r.status_code == 400 and r.json()["error_type"] == "Empty"
    r = c.post("/v1/embeddings", json={"input": ["the cat"] * 10_000})
    assert (
        r.status_code == 422
        and set(r.json()) == {"error", "message", "code", "type"}
        and "`input`" in r.json()["message"]
    )
    r = c.post("/embed", json={"inputs": "the " * 100, "truncate": False})
    assert r.status_code == 422 and "64" in r.json()["error"]
    assert c.post("/embed", json={"inputs": "the " * 100, "truncate": True}).status_code == 200


def _held(model):
    """Make ``model.run`` wait for the returned event; the rows it ran go into the returned list."""
    gate = threading.Event()
    seen: list = []
    run = model.run

    def held(rows, ops):
        model.entered.set()
        gate.wait(60)
        seen.extend(tuple(r[0]) for r in rows)
        return run(rows, ops)

    model.entered = threading.Event()
    model.run = held
    return gate, seen, run


def test_client_killed_mid_request_frees_its_slot_and_drops_its_work(base_server):
    srv = base_server
    model = srv.state.models[0]
    gate, seen, run = _held(model)
    try:
        first = threading.Thread(
            target=lambda: httpx.post(srv.url + "/embed", json={"inputs": "the sun"}, timeout=60)
        )
        first.start()  # its forward waits on the gate
        deadline = time.monotonic() + 30
        assert model.entered.wait(30)
        body = json.dumps({"inputs": "green leaf river"}).encode()
        host, port = srv.url.removeprefix("http://").split(":")
        sock = socket.create_connection((host, int(port)))
        sock.sendall(
            b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        while (srv.state.in_flight < 2 or srv.state.batcher.queued() < 1) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert srv.state.in_flight == 2 and srv.state.batcher.queued() == 1
        sock.close()  # the client is killed while its input waits in the queue
        while srv.state.in_flight > 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert srv.state.in_flight == 1  # its slot is free at once
        gate.set()
        first.join(60)
        assert srv.state.in_flight == 0
        killed = tuple(srv.state.tokenizer.encode(["green leaf river"], False)[0][0])
        assert seen and killed not in seen  # its input never reached a forward
    finally:
        model.run = run
        gate.set()


def test_failing_forward_fails_its_batch_only(base_server):
    srv = base_server
    model = srv.state.models[0]
    run = model.run
    bad = srv.state.tokenizer.encode(["photosynthesis"], False)[0][0][1]

    def flaky(rows, ops):
        if any(bad in r[0] for r in rows):
            raise RuntimeError("simulated device failure")
        return run(rows, ops)

    model.run = flaky
    try:
        r = srv.client.post("/embed", json={"inputs": "plants create energy through photosynthesis"})
        assert (
            r.status_code == 424 and r.json()["error_type"] == "Backend" and "simulated" in r.json()["error"]
        )
        assert srv.client.post("/embed", json={"inputs": "the cat"}).status_code == 200
        assert srv.client.get("/health").status_code == 200
    finally:
        model.run = run


def test_api_key(tiny):
    with serving(model=tiny["base"], api_key="s3cret") as srv:
        c = srv.client
        assert c.get("/health").status_code == 200
        # outside TEI's API-key layer: the health routes, Prometheus' scrape and the API docs
        for path in ("/health", "/", "/ping", "/metrics", "/docs", "/api-doc/openapi.json", "/openapi.json"):
            assert c.get(path).status_code == 200, path
        assert c.head("/health").status_code == 200
        for method, path in (
            ("post", "/embed"),
            ("get", "/info"),
            ("post", "/"),
            ("post", "/vertex"),
            ("post", "/tokenize"),
            ("post", "/v1/embeddings"),
        ):
            r = getattr(c, method)(
                path, **({"json": {"inputs": "x", "input": "x"}} if method == "post" else {})
            )
            assert r.status_code == 401, path
        r = c.post("/embed", json={"inputs": "x"}, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        r = c.post("/embed", json={"inputs": "x"}, headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200
