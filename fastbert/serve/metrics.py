"""Prometheus metrics under text-embeddings-inference's names, types and buckets (``prometheus_client``, one
registry per app).

TEI's counters (``te_request_count``, ``te_request_success``, ``te_request_failure``, ...) are counters of
TEI's exact names: prometheus_client writes a Counter as ``NAME_total``, so they are :class:`Counter` here,
a collector whose samples keep the name, written by :meth:`Metrics.render` (``# TYPE te_request_count
counter``, as TEI's exporter writes them). Histograms (``te_request_duration``, ``te_batch_next_size``...)
are prometheus_client Histograms on TEI's buckets (router/src/prometheus.rs); their ``_created`` series (a
timestamp that never changes, which TEI does not have) are left out of ``/metrics``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString


def _duration_buckets() -> tuple[float, ...]:
    """TEI's buckets of every ``*duration`` histogram: 35 steps of x1.5 from 15 microseconds (to ~14.6 s)."""
    buckets, value = [], 0.00001
    for _ in range(35):
        value *= 1.5
        buckets.append(value)
    return tuple(buckets)


_DURATION_BUCKETS = _duration_buckets()
#: TEI's te_batch_next_size buckets (1 to 4096) and te_batch_next_tokens buckets (1 to 2**20)
_SIZE_BUCKETS = tuple(float(2**k) for k in range(13))
_TOKEN_BUCKETS = tuple(float(2**k) for k in range(21))


def input_length_buckets(max_input_length: int | None) -> tuple[float, ...]:
    """TEI's te_request_input_length buckets: the powers of two up to 2**19 that are at most the model's
    ``max_input_length`` (all of them when it is not known)."""
    return tuple(float(2**k) for k in range(20) if max_input_length is None or 2**k <= max_input_length)


class Counter:
    """A counter written under its own name (no ``_total``), optionally with labels: ``.inc(n)``, or
    ``.labels(value).inc(n)``. Registered in a registry, ``registry.collect()`` yields it as a ``counter``
    family whose samples are named ``name``."""

    def __init__(
        self, name: str, documentation: str, labelnames: Iterable[str] = (), *, registry=None
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._values: dict[tuple[str, ...], float] = {} if self.labelnames else {(): 0.0}
        self._lock = threading.Lock()
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> _Child:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes the labels {self.labelnames}, got {values!r}")
        return _Child(self, tuple(str(v) for v in values))

    def inc(self, amount: float = 1) -> None:
        if self.labelnames:
            raise ValueError(f"{self.name} has labels {self.labelnames}: count through .labels(...)")
        self._inc((), amount)

    def _inc(self, key: tuple[str, ...], amount: float) -> None:
        if amount < 0:
            raise ValueError(f"{self.name} is a counter: it cannot go down by {amount}")
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def describe(self) -> list[Metric]:
        return [Metric(self.name, self.documentation, "counter")]

    def collect(self) -> list[Metric]:
        family = Metric(self.name, self.documentation, "counter")
        with self._lock:
            values = sorted(self._values.items())
        for key, value in values:
            family.add_sample(self.name, dict(zip(self.labelnames, key)), value)
        return [family]


class _Child:
    __slots__ = ("counter", "key")

    def __init__(self, counter: Counter, key: tuple[str, ...]) -> None:
        self.counter = counter
        self.key = key

    def inc(self, amount: float = 1) -> None:
        self.counter._inc(self.key, amount)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _counter_text(family: Metric) -> str:
    """A counter family in Prometheus' text format, its samples under the family's own name (TEI's)."""
    doc = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
    lines = [f"# HELP {family.name} {doc}", f"# TYPE {family.name} counter"]
    for s in family.samples:
        labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(s.labels.items()))
        lines.append(
            f"{s.name}{{{labels}}} {floatToGoString(s.value)}"
            if labels
            else f"{s.name} {floatToGoString(s.value)}"
        )
    return "\n".join(lines) + "\n"


class _Families:
    """Families already collected, as a collector for ``generate_latest``."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


class Metrics:
    """The server's metrics. ``tasks``: which of TEI's per-task metrics (``te_embed_*``, ``te_predict_*``)
    are exported, those of the served model's task (the other's could never change; TEI shows a metric only
    once used); None: both."""

    def __init__(self, max_input_length: int | None = None, tasks: tuple[str, ...] | None = None) -> None:
        r = self.registry = CollectorRegistry()
        tasks = ("embed", "predict") if tasks is None else tasks
        er = r if "embed" in tasks else None
        pr = r if "predict" in tasks else None
        self.request_count = Counter("te_request_count", "Requests received", ["method"], registry=r)
        self.request_success = Counter("te_request_success", "Requests answered", ["method"], registry=r)
        self.request_failure = Counter("te_request_failure", "Requests failed", ["err"], registry=r)
        # TEI's per-input counters (its router runs each input of a request through Infer): unlabelled
        self.embed_count = Counter("te_embed_count", "Inputs to embed", registry=er)
        self.embed_success = Counter("te_embed_success", "Inputs embedded", registry=er)
        self.predict_count = Counter("te_predict_count", "Inputs to classify or score", registry=pr)
        self.predict_success = Counter("te_predict_success", "Inputs classified or scored", registry=pr)
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
            "te_request_input_length",
            "Tokens of an input",
            buckets=input_length_buckets(max_input_length),
            registry=r,
        )
        self.queue_size = Gauge("te_queue_size", "Inputs waiting for a forward", registry=r)
        self.batch_next_size = Histogram(
            "te_batch_next_size", "Inputs of a forward", buckets=_SIZE_BUCKETS, registry=r
        )
        self.batch_next_tokens = Histogram(
            "te_batch_next_tokens", "Tokens of a forward", buckets=_TOKEN_BUCKETS, registry=r
        )
        self.in_flight = Gauge("te_requests_in_flight", "Requests being served", registry=r)
        # TEI's per-input histograms of Infer::embed / Infer::predict (te_embed_duration, ...)
        self.per_input = {
            kind: {
                part: Histogram(
                    f"te_{kind}{'_' + part if part else ''}_duration",
                    f"{what} of an input to {kind} (s)",
                    buckets=_DURATION_BUCKETS,
                    registry=er if kind == "embed" else pr,
                )
                for part, what in (
                    ("", "Tokenization, queue and inference"),
                    ("tokenization", "Tokenization"),
                    ("queue", "Time queued"),
                    ("inference", "Inference"),
                )
            }
            for kind in ("embed", "predict")
        }

    def inputs_done(self, kind: str, n: int, tokenization: float, queue: float, inference: float) -> None:
        """``n`` inputs of one request answered by ``kind`` (embed, predict): TEI's te_{kind}_success and
        its per-input histograms, each input with its request's times (they are tokenized and queued
        together)."""
        (self.embed_success if kind == "embed" else self.predict_success).inc(n)
        hists = self.per_input[kind]
        for part, value in (
            ("", tokenization + queue + inference),
            ("tokenization", tokenization),
            ("queue", queue),
            ("inference", inference),
        ):
            for _ in range(n):
                hists[part].observe(value)

    def render(self) -> bytes:
        """The registry in Prometheus' text format: counters under TEI's names, no ``_created`` series."""
        out = []
        for family in self.registry.collect():
            if family.type == "counter":
                out.append(_counter_text(family).encode())
                continue
            created = family.name + "_created"
            family.samples = [s for s in family.samples if s.name != created]
            out.append(generate_latest(_Families([family])))
        return b"".join(out)
