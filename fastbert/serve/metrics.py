"""Prometheus metrics under text-embeddings-inference's names (``prometheus_client``, one registry per app).

TEI's counters (``te_request_count``, ``te_request_success``, ``te_request_failure``, ...) keep their exact
names: prometheus_client would append ``_total`` to a Counter, so they are kept as gauges that only
grow. Histograms (``te_request_duration``, ``te_batch_next_size``...) are prometheus_client Histograms.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest

_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_TOKEN_BUCKETS = (16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.request_count = Gauge("te_request_count", "Requests received", ["method"], registry=r)
        self.request_success = Gauge("te_request_success", "Requests answered", ["method"], registry=r)
        self.request_failure = Gauge("te_request_failure", "Requests failed", ["err"], registry=r)
        self.embed_count = Gauge("te_embed_count", "Embed requests", ["method"], registry=r)
        self.predict_count = Gauge("te_predict_count", "Predict requests", ["method"], registry=r)
        self.request_duration = Histogram(
            "te_request_duration", "Request duration (s)", buckets=_DURATION_BUCKETS, registry=r
        )
        self.tokenization_duration = Histogram(
            "te_request_tokenization_duration", "Tokenization (s)", buckets=_DURATION_BUCKETS, registry=r
        )
        self.queue_duration = Histogram(
            "te_request_queue_duration", "Time queued (s)", buckets=_DURATION_BUCKETS, registry=r
        )
        self.request_inference_duration = Histogram(
            "te_request_inference_duration",
            "Inference of a request (s)",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.inference_duration = Histogram(
            "te_batch_inference_duration", "One forward (s)", buckets=_DURATION_BUCKETS, registry=r
        )
        self.input_length = Histogram(
            "te_request_input_length", "Tokens of an input", buckets=_TOKEN_BUCKETS, registry=r
        )
        self.queue_size = Gauge("te_queue_size", "Inputs waiting for a forward", registry=r)
        self.batch_next_size = Histogram(
            "te_batch_next_size", "Inputs of a forward", buckets=_SIZE_BUCKETS, registry=r
        )
        self.batch_next_tokens = Histogram(
            "te_batch_next_tokens", "Tokens of a forward", buckets=_TOKEN_BUCKETS, registry=r
        )
        self.in_flight = Gauge("te_requests_in_flight", "Requests being served", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
