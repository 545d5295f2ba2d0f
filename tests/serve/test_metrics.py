"""TEI's Prometheus metrics: every error answer counts once in ``te_request_failure`` under TEI's label, a
429 counts in ``te_request_count`` too, and ``te_queue_size`` follows the queue when the inputs of gone
clients are dropped."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from serve_helpers import requests_held, serving


def _counters(srv) -> tuple[float, float, dict[str, float]]:
    """(te_request_count, te_request_success, te_request_failure by err label) of a server."""
    count = success = 0.0
    failure: dict[str, float] = {}
    for family in srv.state.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "te_request_count":
                count += sample.value
            elif sample.name == "te_request_success":
                success += sample.value
            elif sample.name == "te_request_failure":
                failure[sample.labels["err"]] = sample.value
    return count, success, failure


def _posted(srv, path: str, body) -> tuple[int, float, float, dict[str, float]]:
    """The status of ``body`` posted to ``path`` and the counters' changes: count, success, failure."""
    c0, s0, f0 = _counters(srv)
    r = srv.client.post(path, json=body)
    c1, s1, f1 = _counters(srv)
    failure = {k: v - f0.get(k, 0.0) for k, v in f1.items() if v != f0.get(k, 0.0)}
    return r.status_code, c1 - c0, s1 - s0, failure


@pytest.mark.parametrize(
    ("path", "body", "status", "label"),
    [
        ("/embed", {"inputs": []}, 400, "validation"),
        ("/embed", {"inputs": ["a", ""]}, 400, "tokenization"),
        ("/embed", {"inputs": ["a"] * 33}, 422, "batch_size"),
        ("/embed", {"inputs": [[2, 99999, 3]]}, 422, "tokenization"),
        ("/embed", {"inputs": "a", "dimensions": 1000}, 422, "validation"),
        ("/embed", {"inputs": "a", "prompt_name": "nope"}, 422, "tokenization"),
        ("/embed", {"inputs": "the cat " * 100, "truncate": False}, 422, "tokenization"),
        ("/embed", {"inputs": 5}, 422, "validation"),
        ("/rerank", {"query": "a", "texts": ["b"]}, 424, "model_type"),
        ("/vertex", {"instances": [{"inputs": 5}]}, 422, "validation"),
        ("/vertex", {"instances": [{"inputs": ""}, {"inputs": []}]}, 400, None),
        ("/v1/embeddings", {"input": []}, 400, "validation"),
    ],
)
def test_every_error_answer_counts_as_a_failure(base_server, path, body, status, label):
    got, count, success, failure = _posted(base_server, path, body)
    assert got == status
    assert success == 0
    if label is None:  # two failed vertex instances: each counted, as TEI counts each route call
        assert count == 2 and failure == {"tokenization": 1, "validation": 1}, (count, failure)
    else:
        assert failure == {label: 1}, failure
        assert count in (0, 1)  # 0: refused before the route counted it (a body that does not parse)


def test_answered_requests_count_as_successes(base_server):
    for path, body, n in (
        ("/embed", {"inputs": "the cat"}, 1),
        ("/vertex", {"instances": [{"inputs": "the cat"}, {"inputs": ["a dog", "the sky"]}]}, 2),
    ):
        assert _posted(base_server, path, body) == (200, n, n, {})


def test_non_finite_output_counts_as_an_inference_failure(base_server, monkeypatch):
    model = base_server.state.models[0]
    monkeypatch.setattr(model, "run", lambda rows, ops: [np.full(32, np.nan, np.float32) for _ in rows])
    assert _posted(base_server, "/embed", {"inputs": "the cat"}) == (424, 1, 0, {"inference": 1})


def test_429_counts_as_a_request_and_an_overloaded_failure(tiny):
    """As TEI (te_request_count before try_acquire_permit): a 429 is a request received and a failure."""
    with serving(model=tiny["base"], max_concurrent_requests=1) as srv:
        with requests_held(srv, ["the cat"]) as statuses:
            for path, body in (("/embed", {"inputs": "one too many"}), ("/v1/embeddings", {"input": "x"})):
                assert _posted(srv, path, body) == (429, 1, 0, {"overloaded": 1})
        assert statuses == [200]
        assert srv.state.in_flight == 0


class _HeldModel:
    """A stand-in for a ServedModel whose forward waits for ``gate``; ``entered`` is set when one starts."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()

    def run(self, rows, ops):
        self.entered.set()
        self.gate.wait(60)
        return [len(r[0]) for r in rows]


def _gauge(metrics, name: str) -> float:
    return metrics.registry.get_sample_value(name)


def test_queue_size_drops_the_inputs_of_a_gone_client():
    """A request whose client left while it waited behind a forward: its inputs are dropped, and once the
    queue is empty te_queue_size says 0 (it kept the dead inputs until the next request before)."""
    from fastbert.serve.batcher import Batcher
    from fastbert.serve.metrics import Metrics

    async def scenario() -> tuple[float, float]:
        metrics = Metrics()
        model = _HeldModel()
        batcher = Batcher([model], max_batch_tokens=64, metrics=metrics)
        batcher.start()
        try:
            first = batcher.enqueue([([1, 2, 3], [1, 1, 1])], ["pooled"])
            assert await asyncio.to_thread(model.entered.wait, 30)  # its forward holds the worker
            gone = batcher.enqueue([([1, 2], [1, 1])] * 5, ["pooled"] * 5)
            queued = _gauge(metrics, "te_queue_size")
            gone.cancelled = True  # the client disconnected (what Server.run does)
            model.gate.set()
            assert await asyncio.wait_for(first.future, 30) == [3]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with batcher._cond:  # the worker drops and sets the gauge under this lock
                    if not batcher._queue:
                        return queued, _gauge(metrics, "te_queue_size")
                await asyncio.sleep(0.01)
            raise AssertionError("the gone client's inputs were never dropped")
        finally:
            model.gate.set()
            await asyncio.to_thread(batcher.stop)

    queued, idle = asyncio.run(scenario())
    assert queued == 5
    assert idle == 0


def _types_and_samples(text: str) -> tuple[dict[str, str], list[str]]:
    types = dict(line.split()[2:4] for line in text.splitlines() if line.startswith("# TYPE "))
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    return types, samples


def _les(samples: list[str], name: str) -> list[float]:
    prefix = f'{name}_bucket{{le="'
    return [float(s[len(prefix) :].split('"')[0]) for s in samples if s.startswith(prefix)]


def test_metrics_text_has_teis_types_names_and_buckets(base_server):
    """/metrics as TEI's exporter writes it: the counters typed ``counter`` under TEI's names (they were
    gauges: prometheus_client would have written a Counter as NAME_total), no ``_created`` series (a
    timestamp that never changes), and the histograms on TEI's buckets (router/src/prometheus.rs): durations
    from 15 us by x1.5 (they began at 1 ms: every tokenization fell in the first bucket), batch sizes 1 to
    4096, batch tokens 1 to 2**20, input lengths the powers of two up to the model's maximum."""
    c = base_server.client
    assert c.post("/embed", json={"inputs": "the cat"}).status_code == 200
    assert c.post("/embed", json={"inputs": []}).status_code == 400
    types, samples = _types_and_samples(c.get("/metrics").text)
    for name in ("te_request_count", "te_request_success", "te_request_failure", "te_embed_count"):
        assert types[name] == "counter", (name, types.get(name))
    for name in ("te_queue_size", "te_requests_in_flight"):
        assert types[name] == "gauge"
    for name in ("te_request_duration", "te_request_tokenization_duration", "te_batch_next_size"):
        assert types[name] == "histogram"
    assert not [s for s in samples if "_total" in s or "_created" in s]
    assert not [n for n in types if n.endswith(("_total", "_created"))]
    assert any(s.startswith('te_request_failure{err="validation"} ') for s in samples)
    assert any(s.startswith('te_request_success{method="single"} ') for s in samples)
    durations = _les(samples, "te_request_tokenization_duration")
    assert len(durations) == 36 and durations[-1] == float("inf")
    np.testing.assert_allclose(durations[:-1], [1e-5 * 1.5**k for k in range(1, 36)], rtol=1e-9)
    assert _les(samples, "te_request_duration") == durations
    assert _les(samples, "te_batch_next_size") == [2.0**k for k in range(13)] + [float("inf")]
    assert _les(samples, "te_batch_next_tokens") == [2.0**k for k in range(21)] + [float("inf")]
    max_input_length = base_server.state.spec.max_input_length
    want = [2.0**k for k in range(20) if 2**k <= max_input_length] + [float("inf")]
    assert _les(samples, "te_request_input_length") == want


def test_counters_count_and_refuse_to_go_down():
    from prometheus_client import CollectorRegistry

    from fastbert.serve.metrics import Counter

    registry = CollectorRegistry()
    plain = Counter("x_count", "doc", registry=registry)
    labelled = Counter("y_count", "doc", ["err"], registry=registry)
    plain.inc()
    plain.inc(2)
    labelled.labels("a").inc()
    assert registry.get_sample_value("x_count") == 3
    assert registry.get_sample_value("y_count", {"err": "a"}) == 1
    with pytest.raises(ValueError, match="cannot go down"):
        plain.inc(-1)
    with pytest.raises(ValueError, match="labels"):
        labelled.inc()
    with pytest.raises(ValueError, match="labels"):
        labelled.labels("a", "b")


def _values(srv, *names: str) -> list[float]:
    return [srv.state.metrics.registry.get_sample_value(name) or 0.0 for name in names]


def test_embed_and_predict_counters_count_inputs_as_tei(base_server, tiny):
    """te_embed_count / te_predict_count and their _success are TEI's per-input counters without labels
    (they counted requests, by a `method` label TEI's lack; the _success ones were missing), and TEI's
    per-input histograms te_embed_duration, te_embed_{tokenization,queue,inference}_duration (te_predict_*
    alike) take one observation per input answered (they were missing)."""
    names = ("te_embed_count", "te_embed_success", "te_predict_count", "te_predict_success")
    hists = tuple(
        f"te_{kind}{part}_duration_count"
        for kind in ("embed", "predict")
        for part in ("", "_tokenization", "_queue", "_inference")
    )
    before = _values(base_server, *names, *hists)
    assert base_server.client.post("/embed", json={"inputs": ["the cat", "a dog", "sky"]}).status_code == 200
    assert base_server.client.post("/embed", json={"inputs": ["the cat", ""]}).status_code == 400
    after = _values(base_server, *names, *hists)
    assert [a - b for a, b in zip(after, before)] == [5, 3, 0, 0] + [3] * 4 + [0] * 4
    families = {f.name: f for f in base_server.state.metrics.registry.collect()}
    assert all(not s.labels for n in names[:2] for s in families[n].samples)
    with serving(model=tiny["classifier"]) as srv:
        r = srv.client.post("/predict", json={"inputs": [["the cat", "a dog"], ["sky"]]})
        assert r.status_code == 200, r.text
        assert _values(srv, *names, *hists) == [0, 0, 2, 2] + [0] * 4 + [2] * 4


def test_a_route_the_model_cannot_serve_counts_as_a_request(base_server, tiny):
    """As TEI's routes (te_request_count first, then Infer's model check): a 424 for the model's kind counts
    in te_request_count too (/predict, /embed_sparse, /embed_all, /similarity counted none)."""
    for path, body in (("/predict", {"inputs": "the cat"}), ("/embed_sparse", {"inputs": "the cat"})):
        assert _posted(base_server, path, body) == (424, 1, 0, {"model_type": 1})
    with serving(model=tiny["classifier"]) as srv:
        for path, body in (
            ("/embed_all", {"inputs": "the cat"}),
            ("/similarity", {"inputs": {"source_sentence": "a", "sentences": ["b"]}}),
        ):
            assert _posted(srv, path, body) == (424, 1, 0, {"model_type": 1}), path


def test_only_the_served_tasks_per_task_metrics_are_exported(base_server, tiny):
    """An embedding model's /metrics has no te_predict_* (they could never change), a classifier's no
    te_embed_*; TEI shows a metric once used."""
    types, _ = _types_and_samples(base_server.client.get("/metrics").text)
    assert "te_embed_count" in types and "te_embed_duration" in types
    assert not [n for n in types if n.startswith("te_predict_")], types
    with serving(model=tiny["classifier"]) as srv:
        types, _ = _types_and_samples(srv.client.get("/metrics").text)
    assert "te_predict_count" in types and "te_predict_inference_duration" in types
    assert not [n for n in types if n.startswith("te_embed_")], types
