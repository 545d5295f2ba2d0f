"""TEI's Prometheus metrics: ``te_queue_size`` follows the queue when the inputs of gone clients are dropped."""

from __future__ import annotations

import asyncio
import threading
import time

from serve_helpers import httpx  # noqa: F401  (skips the module without the [serve] extra)


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
