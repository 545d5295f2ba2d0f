"""Batching across requests by token budget: one queue of inputs, one model worker thread per device.

Each request puts its inputs (token-id rows) on one FIFO queue and awaits a future. A worker (a thread
that owns one device's model) takes, whenever it is free, the inputs waiting at that moment in arrival
order until the next one would pass ``max_batch_tokens`` real tokens (or ``max_batch_requests`` inputs),
runs them as one packed forward, and hands every output back to its request; the request's future
resolves when its last input is done, with outputs in input order.

The policy: a worker never waits for a batch to fill. A lone request runs at once, as a batch of its own
inputs; under load, inputs queue while the workers are busy and the next forward takes all of them
(up to the budget), so batches, and throughput, grow with the load. A request whose client went away is
marked cancelled and its inputs that no forward has taken yet are dropped. An exception in a forward fails
the requests of that batch only (:class:`InferenceError`); the worker goes on with the next batch.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from typing import Any

from .engine import ServedModel


class InferenceError(RuntimeError):
    """A forward failed: the requests of its batch get a 424."""


class Request:
    """The inputs of one request in the queue and the future its handler awaits."""

    __slots__ = ("rows", "ops", "results", "left", "future", "loop", "cancelled", "enqueued", "queue_time")

    def __init__(self, rows: list, ops: list[str], loop: asyncio.AbstractEventLoop) -> None:
        self.rows = rows
        self.ops = ops
        self.results: list[Any] = [None] * len(rows)
        self.left = len(rows)
        self.loop = loop
        self.future: asyncio.Future = loop.create_future()
        self.cancelled = False
        self.enqueued = time.perf_counter()
        self.queue_time = 0.0

    def _resolve(self, error: BaseException | None) -> None:  # on the event loop
        if self.future.done():
            return
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(self.results)

    def finish(self, error: BaseException | None = None) -> None:  # from a worker thread
        self.loop.call_soon_threadsafe(self._resolve, error)


class Batcher:
    """The queue and the workers (one thread per :class:`ServedModel`)."""

    def __init__(
        self,
        models: list[ServedModel],
        max_batch_tokens: int,
        max_batch_requests: int | None = None,
        metrics: Any = None,
    ) -> None:
        self.models = models
        self.max_batch_tokens = int(max_batch_tokens)
        self.max_batch_requests = max_batch_requests
        self.metrics = metrics
        self._queue: collections.deque[tuple[Request, int]] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []

    # ----------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._threads:
            return
        self._stopping = False
        for k, model in enumerate(self.models):
            t = threading.Thread(
                target=self._work, args=(model,), name=f"fastbert-serve-worker-{k}", daemon=True
            )
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then end the workers."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)
        self._threads = []

    # -------------------------------------------------------------------------------------- submit
    def enqueue(self, rows: list, ops: list[str]) -> Request:
        """Queue ``rows``; await the returned request's ``future`` for their outputs (in order). Setting
        its ``cancelled`` (a client gone) drops the inputs no forward has taken yet."""
        req = Request(rows, ops, asyncio.get_running_loop())
        if not rows:
            req.future.set_result([])
            return req
        with self._cond:
            if self._stopping:
                raise InferenceError("the server is shutting down")
            self._queue.extend((req, i) for i in range(len(rows)))
            self._set_queue_size()
            self._cond.notify()
        return req

    def alive(self) -> bool:
        """Every worker thread is running."""
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def queued(self) -> int:
        return len(self._queue)

    def _set_queue_size(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_size.set(len(self._queue))

    # -------------------------------------------------------------------------------------- worker
    def _take(self) -> list[tuple[Request, int]] | None:
        """The next batch: queued inputs in arrival order within the token budget; None to stop."""
        with self._cond:
            while True:
                while self._queue and self._queue[0][0].cancelled:
                    self._queue.popleft()
                if self._queue:
                    break
                self._set_queue_size()  # the inputs of gone clients just dropped are not waiting (TEI)
                if self._stopping:
                    return None
                self._cond.wait()
            batch: list[tuple[Request, int]] = []
            tokens = 0
            while self._queue:
                req, i = self._queue[0]
                if req.cancelled:
                    self._queue.popleft()
                    continue
                n = len(req.rows[i][0])
                if batch and (
                    tokens + n > self.max_batch_tokens
                    or (self.max_batch_requests is not None and len(batch) >= self.max_batch_requests)
                ):
                    break
                self._queue.popleft()
                batch.append((req, i))
                tokens += n
            self._set_queue_size()
            if self._queue:
                self._cond.notify()  # another worker may take the rest
            if self.metrics is not None:
                self.metrics.batch_next_size.observe(len(batch))
                self.metrics.batch_next_tokens.observe(tokens)
            return batch

    def _work(self, model: ServedModel) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            start = time.perf_counter()
            for req, _ in batch:
                if req.queue_time == 0.0:
                    req.queue_time = start - req.enqueued
            try:
                outs = model.run([req.rows[i] for req, i in batch], [req.ops[i] for req, i in batch])
            except Exception as e:  # the batch's requests fail; the worker goes on
                error = InferenceError(f"inference failed: {type(e).__name__}: {e}")
                for req in {id(r): r for r, _ in batch}.values():
                    req.cancelled = True  # its inputs still queued are dropped
                    req.finish(error)
                continue
            if self.metrics is not None:
                self.metrics.inference_duration.observe(time.perf_counter() - start)
            done = []
            with self._cond:  # a request's inputs may finish on several workers
                for (req, i), out in zip(batch, outs):
                    req.results[i] = out
                    req.left -= 1
                    if req.left == 0:
                        done.append(req)
            for req in done:
                req.finish()
