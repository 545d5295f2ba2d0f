"""Helpers of the ``fastbert serve`` tests: servers on 127.0.0.1 (in this process, uvicorn in a thread),
tiny random checkpoints saved by transformers, children with default signal dispositions."""

from __future__ import annotations

import contextlib
import os
import threading
import time

import pytest
import torch
from checkpoint_helpers import WORDS, save_tiny_checkpoints, wordpiece_vocab

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")
httpx = pytest.importorskip("httpx")
transformers = pytest.importorskip("transformers")

VOCAB = wordpiece_vocab(WORDS + "cat dog car sky blue".split())
MAX_POS = 64
HEADS = {
    "base": ("BertModel", {}),
    "mlm": ("BertForMaskedLM", {}),
    "classifier": ("BertForSequenceClassification", {"id2label": {0: "NEG", 1: "POS", 2: "NEU"}}),
    "reranker": ("BertForSequenceClassification", {"id2label": {0: "LABEL_0"}}),
}


def build_checkpoints(root) -> dict[str, str]:
    """Folders of tiny random checkpoints (hidden 32, 2 layers), each with a WordPiece tokenizer of VOCAB."""
    return save_tiny_checkpoints(root, HEADS, VOCAB, max_pos=MAX_POS, seed=100)


class Running:
    """A server in this process: ``url``, the ASGI ``app`` (its ``server`` state), an httpx ``client``."""

    def __init__(self, app, url: str, uv) -> None:
        self.app = app
        self.state = app.server
        self.url = url
        self.uvicorn = uv
        self.client = httpx.Client(base_url=url, timeout=60)


@contextlib.contextmanager
def serving(options=None, **kwargs):
    """Serve ``ServeOptions(**kwargs)`` on a free 127.0.0.1 port for the ``with`` block.

    On the CPU unless ``devices`` says otherwise: with no ``--devices`` the server takes the first GPU in
    float16 where there is one, and the tests compare its answers with float32 CPU references at 1e-5.
    One torch thread (restored after): the test process shares 2 cores with pytest and the clients, and
    an OpenMP team of 2 on oversubscribed cores spends its time at barriers (a tiny forward: ~1 ms on one
    thread, hundreds of ms on two)."""
    import uvicorn

    from fastbert.serve import ServeOptions
    from fastbert.serve.app import bind, create_app

    kwargs.setdefault("threads", 1)
    kwargs.setdefault("devices", ("cpu",))
    options = options or ServeOptions(**kwargs)
    threads = torch.get_num_threads()
    app = create_app(options)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    uv = uvicorn.Server(
        uvicorn.Config(
            app, log_level="warning", access_log=False, timeout_graceful_shutdown=10, timeout_keep_alive=75
        )
    )
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    running = Running(app, f"http://127.0.0.1:{port}", uv)
    try:
        yield running
    finally:
        running.client.close()
        uv.should_exit = True
        thread.join(30)
        sock.close()
        torch.set_num_threads(threads)


@contextlib.contextmanager
def requests_held(srv, texts: list[str]):
    """Post one /embed per text from threads while the model's forwards wait, until each holds a slot
    (``srv.state.in_flight``) and the worker holds the first forward (a request takes its slot before it
    reaches the queue: one held request is then out of the queue); yields the list their status codes are
    appended to, and on leaving lets the forwards go and waits for the answers."""
    import httpx

    model = srv.state.models[0]
    gate, entered = threading.Event(), threading.Event()
    run = model.run

    def held(rows, ops):
        entered.set()
        gate.wait(60)
        return run(rows, ops)

    model.run = held
    statuses: list[int] = []

    def send(text: str) -> None:
        statuses.append(httpx.post(srv.url + "/embed", json={"inputs": text}, timeout=60).status_code)

    threads = [threading.Thread(target=send, args=(text,)) for text in texts]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 30
        while srv.state.in_flight < len(texts) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert srv.state.in_flight == len(texts)
        assert entered.wait(30), "no forward started"
        yield statuses
    finally:
        gate.set()
        for t in threads:
            t.join(60)


def child_env() -> dict[str, str]:
    from fastbert.serve.cli import ENV_OPTIONS

    env = dict(os.environ)
    for option in ENV_OPTIONS:  # TEI's environment variables would change the server's options
        env.pop(option.upper(), None)
    env.setdefault("PYTHONPATH", os.getcwd())
    env["HF_HUB_OFFLINE"] = "1"
    return env


def default_signals() -> None:
    """preexec_fn of children we signal: background jobs inherit SIGINT/SIGTERM/SIGHUP ignored."""
    import signal

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)
