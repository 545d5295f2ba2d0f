"""The ASGI app (FastAPI on uvicorn): text-embeddings-inference's routes and OpenAI's ``/v1/embeddings``.

Routes: ``POST /embed /embed_all /embed_sparse /predict /rerank /similarity /tokenize /decode
/v1/embeddings /embeddings /vertex``, ``POST /`` (the model's task, as TEI routes it: see :func:`_root`),
``GET /health /info /metrics``, and the OpenAPI schema at ``/openapi.json`` (``/docs``).

Tokenizing and writing large responses run on worker threads, as TEI's tokenization workers do: one
request's megabytes of text never hold up the others (``/health`` answers meanwhile).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Awaitable
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from . import schemas
from .batcher import Batcher, InferenceError
from .engine import (
    CLASSIFIER,
    EMBEDDING,
    PROMPT_EXCLUDED,
    RERANKER,
    InputTooLong,
    ModelSpec,
    ServedModel,
    Tokenizer,
    cosines,
    default_devices,
    default_max_batch_tokens,
    describe_model,
    normalize,
)
from .errors import ServeError, error_body, overloaded, too_many_inputs
from .guard import OPENAI_PATHS, OVERLOADED, SLOTS, Guard
from .metrics import Metrics
from .options import ServeOptions
from .responses import check_finite, json_off_loop, json_response, parse, scores_of, validation_message

#: TEI's MAX_CHAR_MULTIPLIER: an input over max_input_length x 250 characters is cut there before it is
#: tokenized (with truncation) or refused (without)
MAX_CHAR_MULTIPLIER = 250
#: /info's names of the pooling modes whose TEI name differs from sentence-transformers'
_TEI_POOLING = {"lasttoken": "last_token"}


class SimilarityInputs(str):
    """The field of /similarity's inputs, embedded as one list ``[source_sentence, *sentences]``: input 0 is
    named ``inputs.source_sentence`` and input k ``inputs.sentences[k - 1]`` in error messages."""

    def name(self, k: int) -> str:
        return "inputs.source_sentence" if k == 0 else f"inputs.sentences[{k - 1}]"


class RerankPairs(str):
    """The field of /rerank's inputs, the pairs ``(query, texts[k])``: an error names what is at fault, the
    ``query`` (a lone surrogate in it, or too long alone), ``texts[k]`` (a lone surrogate in it), or the pair
    (``query`` and ``texts[k]`` together too long, or both empty)."""

    def part(self, k: int, i: int) -> str:
        """The name of text ``i`` (0 the query, 1 the text) of pair ``k``."""
        return "query" if i == 0 else f"texts[{k}]"

    def pair(self, k: int) -> str:
        return f"`query` and `texts[{k}]`"

    def too_long(self, k: int, query: int, total: int, maximum: int) -> tuple[str, int]:
        """(what is named, its length) when pair ``k`` is over ``maximum`` (characters or tokens): the query
        when it is too long alone, else the pair together."""
        return ("`query`", query) if query > maximum else (f"{self.pair(k)} together", total)


def first_at_or_above(ids: list[int], limit: int) -> int | None:
    """The position of the first id of ``ids`` at or above ``limit`` (outside a vocabulary), or None."""
    return next((j for j, t in enumerate(ids) if t >= limit), None)


def input_name(field: str, k: int, n: int) -> str:
    """How an error message names input ``k`` of ``n`` of ``field`` (``field[k]``; the field alone for one)."""
    if isinstance(field, SimilarityInputs):
        return field.name(k)
    return f"{field}[{k}]" if n > 1 else field


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


class Server:
    """What the routes share: the model description, tokenizer, batcher, metrics and the in-flight count."""

    def __init__(self, options: ServeOptions, spec: ModelSpec, models: list[ServedModel]) -> None:
        self.options = options
        self.spec = spec
        self.models = models
        self.tokenizer = Tokenizer(spec)
        tasks = ("predict",) if spec.kind in (CLASSIFIER, RERANKER) else ("embed",)
        self.metrics = Metrics(spec.max_input_length, tasks)
        self.max_batch_tokens = default_max_batch_tokens(options, [m.device for m in models], spec)
        self.batcher = Batcher(models, self.max_batch_tokens, options.max_batch_requests, self.metrics)
        #: the slots taken (TEI's permits of --max-concurrent-requests: one per input), and the requests
        #: holding them (te_requests_in_flight)
        self.in_flight = 0
        self.requests = 0
        #: set when a shutdown signal came (run_server): a request cancelled then is answered 503 quietly
        self.stopping = False
        from fastbert import __version__

        self.version = __version__

    @property
    def served_model_name(self) -> str:
        return self.options.served_model_name or self.spec.model_id

    def info(self) -> dict[str, Any]:
        spec = self.spec
        if spec.kind == EMBEDDING:
            pooling = "+".join(_TEI_POOLING.get(m, m) for m in spec.pooling.split("+"))
            model_type: dict[str, Any] = {"embedding": {"pooling": pooling}}
        else:
            label2id = {v: int(k) for k, v in spec.id2label.items()}
            model_type = {spec.kind: {"id2label": spec.id2label, "label2id": label2id}}
        return {
            "model_id": spec.model_id,
            "model_sha": None,
            "model_dtype": self.models[0].dtype_name,
            "quantization": self.models[0].quantization,  # fastbert's, beside TEI's fields
            "served_model_name": self.served_model_name,
            "model_type": model_type,
            "max_concurrent_requests": self.options.max_concurrent_requests,
            "max_input_length": spec.max_input_length,
            "max_batch_tokens": self.max_batch_tokens,
            "max_batch_requests": self.options.max_batch_requests,
            "max_client_batch_size": self.options.max_client_batch_size,
            "auto_truncate": self.options.auto_truncate,
            "tokenization_workers": 1,
            "version": self.version,
            "sha": None,
            "docker_label": None,
        }

    # ------------------------------------------------------------------------------- concurrency
    def take_slots(self, scope: dict, n: int = 1) -> bool:
        """``n`` of the ``--max-concurrent-requests`` slots (TEI's permits) for the request of ``scope`` (the
        Guard gives them back once it is answered); False, taking none, when fewer are free."""
        if self.in_flight + n > self.options.max_concurrent_requests:
            return False
        if n and not scope.get(SLOTS):
            self.requests += 1
        self.in_flight += n
        scope[SLOTS] = scope.get(SLOTS, 0) + n
        self.metrics.in_flight.set(self.requests)
        return True

    def release_slots(self, scope: dict) -> None:
        n = scope.pop(SLOTS, 0)
        if n:
            self.in_flight -= n
            self.requests -= 1
        self.metrics.in_flight.set(self.requests)

    def admit(self, request: Request, inputs: int = 1) -> None:
        """TEI's ``try_acquire_permit``, where TEI calls it (the request counted in ``te_request_count``,
        its batch checked), and as often: one permit per input, so a request of ``inputs`` inputs holds that
        many slots (the Guard took its first on arrival). A 429 when the Guard found every slot taken as
        the request came in, or fewer than its inputs are free now (none taken: it runs nothing)."""
        scope = request.scope
        limit = self.options.max_concurrent_requests
        if scope.get(OVERLOADED):
            raise overloaded(limit, inputs)
        more = inputs - scope.get(SLOTS, 0)
        if more > 0 and not self.take_slots(scope, more):
            raise overloaded(limit, inputs)

    # -------------------------------------------------------------------------------- shared steps
    def check_count(self, field: str, n: int) -> None:
        if n == 0:
            raise ServeError(f"`{field}` cannot be empty", "empty")
        if n > self.options.max_client_batch_size:
            raise too_many_inputs(field, n, self.options.max_client_batch_size)

    def prompt(self, prompt_name: str | None) -> str:
        """The prompt of a request: its ``prompt_name``'s, else the server's default (TEI's rule)."""
        if prompt_name is None:
            return self.spec.default_prompt or ""
        name = prompt_name
        if name not in self.spec.prompts:
            known = ", ".join(sorted(self.spec.prompts)) or "none"
            raise ServeError(
                f"`prompt_name`: {name!r} is not a prompt of this model (its prompts: {known})",
                metric="tokenization",
            )
        return self.spec.prompts[name]

    def check_inputs(self, field: str, inputs: list[Any], truncate: bool, direction: str) -> list[Any]:
        """``inputs`` with TEI's checks before tokenizing: an empty input is a 400 (a pair only when both
        texts are empty), and one over ``max_input_length`` x 250 characters is a 422 without truncation;
        with it, a text is cut to that many characters (each of a pair to half) on the side truncation
        drops (token ids are left whole: truncation cuts them)."""
        limit = self.spec.max_input_length * MAX_CHAR_MULTIPLIER
        pairs = isinstance(field, RerankPairs)
        out = []
        for k, x in enumerate(inputs):
            where = input_name(field, k, len(inputs))
            texts = x if isinstance(x, tuple) else (x,)
            if all(len(t) == 0 for t in texts):
                what = f"{field.pair(k)} cannot both be empty" if pairs else f"`{where}` cannot be empty"
                raise ServeError(what, "empty", metric="tokenization")
            for i, t in enumerate(texts):
                if isinstance(t, str) and not t.isascii():
                    try:
                        t.encode("utf-8")
                    except UnicodeEncodeError as e:  # a lone surrogate ("\ud800" in the JSON)
                        raise ServeError(
                            f"`{field.part(k, i) if pairs else where}` is not valid Unicode: "
                            f"{e.object[e.start : e.end]!r} at character {e.start} is a lone surrogate",
                            metric="tokenization",
                        ) from None
            chars = sum(len(t) for t in texts)
            if chars > limit:
                if not truncate:
                    named, given = f"`{where}`", chars
                    if pairs:
                        named, given = field.too_long(k, len(texts[0]), chars, limit)
                    raise ServeError(
                        f"Input validation error: {named} must have less than {limit} characters. "
                        f"Given: {given}",
                        metric="tokenization",
                    )
                if isinstance(x, tuple):
                    x = tuple(_cut(t, limit // 2, direction) for t in x)
                elif isinstance(x, str):
                    x = _cut(x, limit, direction)
            out.append(x)
        return out

    @property
    def id_limit(self) -> int:
        """The ids a forward can take: below the tokenizer's vocabulary and the model's embedding table (a
        tokenizer may hold added tokens the model was not resized for)."""
        vocab = self.tokenizer.vocab_size
        return min(vocab, self.spec.vocab_size) if self.spec.vocab_size else vocab

    def check_ids(self, field: str, inputs: list[Any]) -> None:
        """A 422 naming the input (as the other errors name it) and the position in it when a token-id input
        holds an id outside the vocabulary; checked on the request's ids, before any truncation."""
        vocab = self.id_limit
        for k, x in enumerate(inputs):
            if isinstance(x, list) and x and isinstance(x[0], int):
                j = first_at_or_above(x, vocab)
                if j is not None:
                    raise ServeError(
                        f"`{input_name(field, k, len(inputs))}`: token id {x[j]} at position {j} is not below "
                        f"the vocabulary size {vocab}",
                        metric="tokenization",
                    )

    def check_rows(self, field: str, rows: list[tuple[list[int], list[int]]]) -> None:
        """A 422 for a text the tokenizer turned into an id the model's embedding table lacks (a token added
        to the tokenizer only): in the batch's forward it would fail the other clients' requests too."""
        limit = self.id_limit
        if limit >= self.tokenizer.vocab_size:
            return
        for k, (ids, _) in enumerate(rows):
            j = first_at_or_above(ids, limit)
            if j is not None:
                raise ServeError(
                    f"`{input_name(field, k, len(rows))}`: its token {j} has id {ids[j]}, which the model's "
                    f"vocabulary of {limit} lacks (the tokenizer's ids run below {self.tokenizer.vocab_size})",
                    metric="tokenization",
                )

    def encode(
        self,
        field: str,
        inputs: list[Any],
        truncate: bool | None,
        direction: str,
        prompt: str = "",
        request: Request | None = None,
    ):
        truncate = self.options.auto_truncate if truncate is None else truncate
        start = time.perf_counter()
        inputs = self.check_inputs(field, inputs, truncate, direction.lower())
        self.check_ids(field, inputs)
        if prompt:
            # as TEI: a token-id input is decoded (special tokens skipped), the prompt put before the text,
            # and the whole encoded with special tokens
            inputs = [
                prompt + (x if isinstance(x, str) else self.tokenizer.decode(x, True))
                if isinstance(x, (str, list))
                else x
                for x in inputs
            ]
        try:
            rows = self.tokenizer.encode(inputs, truncate, direction.lower())
        except InputTooLong as e:
            named, given = f"`{input_name(field, e.index, len(inputs))}`", e.length
            if isinstance(field, RerankPairs):
                query = len(self.tokenizer.plain.encode(inputs[e.index][0]).ids)
                named, given = field.too_long(e.index, query, e.length, e.maximum)
            # the OpenAI route (its field `input`) has no `truncate`: only the server's option truncates there
            hint = "" if field == "input" else "pass truncate=true, or "
            raise ServeError(
                f"Input validation error: {named} must have less than {e.maximum} tokens. Given: {given} "
                f"({hint}start the server with --auto-truncate)",
                "validation",
                metric="tokenization",
            ) from None
        except Exception as e:  # the tokenizer refused an input
            raise ServeError(f"Tokenization error: {e}", "tokenizer") from None
        self.check_rows(field, rows)
        for ids, _ in rows:
            self.metrics.input_length.observe(len(ids))
        elapsed = time.perf_counter() - start
        self.metrics.tokenization_duration.observe(elapsed)
        if request is not None:
            _timing(request)["tokenization"] += elapsed
        return rows

    async def encode_off_loop(self, *args: Any, **kwargs: Any):
        """:meth:`encode` on a worker thread (the tokenizer releases the GIL): the event loop goes on."""
        return await asyncio.to_thread(self.encode, *args, **kwargs)

    def require(self, kinds: tuple[str, ...], what: str) -> None:
        if self.spec.kind not in kinds:
            raise ServeError(f"model is not {_ARTICLE[what]}", "backend", metric="model_type")

    async def run(self, request: Request, rows: list, ops: list[str]) -> list[Any]:
        """The outputs of ``rows``; a client that disconnects meanwhile cancels its queued inputs."""
        self.admit(request)  # (the routes admit before tokenizing; no forward without a slot)
        try:
            queued = self.batcher.enqueue(rows, ops)
        except InferenceError as e:
            raise ServeError(str(e), "backend") from None
        try:
            results = await _unless_disconnected(request, queued.future)
        except InferenceError as e:
            raise ServeError(str(e), "backend") from None
        finally:
            if not queued.future.done() or queued.future.cancelled():
                queued.cancelled = True  # its inputs not yet in a forward are dropped, now
        end = time.perf_counter()
        queue = queued.queue_time if rows else 0.0
        inference = max(end - queued.enqueued - queue, 0.0) if rows else 0.0
        self.metrics.queue_duration.observe(queue)
        self.metrics.request_inference_duration.observe(inference)
        timing = _timing(request)
        timing["queue"] += queue
        timing["inference"] += inference
        # TEI's te_embed_success / te_predict_success and te_embed_*duration / te_predict_*duration: each
        # input whose inference answered (a run's inputs are all of one kind)
        if rows:
            kind = "predict" if ops[0] == "scores" else "embed"
            self.metrics.inputs_done(kind, len(rows), timing["tokenization"], queue, inference)
        return results


async def _json_object(request: Request) -> dict:
    """The request's body, a JSON object (a 422 naming what is wrong otherwise)."""
    try:
        payload = json.loads(await request.body())
    except (ValueError, RecursionError) as e:  # RecursionError: arrays nested past Python's limit
        raise ServeError(f"malformed JSON body: {e}") from None
    if not isinstance(payload, dict):
        raise ServeError("Input validation error: `body`: Input should be a valid dictionary")
    return payload


def _cut(text: str, limit: int, direction: str) -> str:
    return text[-limit:] if direction == "left" else text[:limit]


def _timing(request: Request) -> dict[str, float]:
    """Seconds a request spent tokenizing, queued and in forwards (TEI's x-*-time headers)."""
    return request.scope.setdefault("fastbert.timing", {"tokenization": 0.0, "queue": 0.0, "inference": 0.0})


_ARTICLE = {
    "embed": "an embedding model",
    "all": "an embedding model with token outputs",
    "sparse": "an embedding model with SPLADE pooling (serve a MaskedLM model with --pooling splade)",
    "predict": "a classifier model",
    "rerank": "a re-ranker model",
}


async def _unless_disconnected(request: Request, work: Awaitable) -> Any:
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watch.cancel()
    if task in done:
        return task.result()
    task.cancel()  # the batcher drops this request's inputs no forward has taken
    raise ClientGone


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _as_list(inputs: Any) -> tuple[list[Any], bool]:
    """(inputs as a batch, whether the request was one input): a string or a list of ids is one input."""
    if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
        return [inputs], True
    return list(inputs), False


def _best_first(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``items`` (``/predict``'s labels, ``/rerank``'s texts) best score first, in place, as TEI orders them:
    a stable ascending sort, then reversed, so equal scores come out in reverse input order."""
    items.sort(key=lambda p: p["score"])
    items.reverse()
    return items


def _predict_seqs(raw: Any) -> tuple[list[Any], bool]:
    """/predict's ``inputs`` as a batch, and whether it was one input: a string or a pair of strings is."""
    single = isinstance(raw, str) or (
        isinstance(raw, list) and bool(raw) and all(isinstance(x, str) for x in raw) and len(raw) <= 2
    )
    return ([raw] if single else list(raw)), single


def _inputs_of(route: str, body: Any) -> int:
    """The number of inputs of a /vertex instance parsed as ``route``'s body."""
    if route == "rerank":
        return len(body.texts)
    if route == "predict":
        return len(_predict_seqs(body.inputs)[0])
    return len(_as_list(body.inputs)[0])


def create_app(
    options: ServeOptions | None = None,
    *,
    spec: ModelSpec | None = None,
    models: list[ServedModel] | None = None,
) -> Any:
    """The ASGI app serving ``options.model`` (loaded here unless ``spec``/``models`` are given): a FastAPI
    app wrapped in the auth / payload-limit guard. Its workers start with the app's lifespan."""
    options = options or ServeOptions()
    if options.threads is not None:
        import torch

        torch.set_num_threads(options.threads)
    if spec is None:
        spec = describe_model(options)
        for note in spec.notes:
            warnings.warn(f"fastbert serve: {note}", stacklevel=2)
    if models is None:
        models = [ServedModel(spec, options, d) for d in default_devices(options)]
    server = Server(options, spec, models)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        server.batcher.start()
        try:
            yield
        except asyncio.CancelledError:
            # uvicorn's forced exit (a second Ctrl-C) skips the lifespan's shutdown and cancels it: the
            # workers still end their forward below (the inputs of the cancelled requests are dropped; a
            # thread left in a forward at exit aborts the process), and no traceback is logged
            if not server.stopping:
                raise
        finally:
            await asyncio.to_thread(server.batcher.stop)

    app = FastAPI(
        title="fastbert serve (Text Embeddings Inference API)",
        version=server.version,
        description="text-embeddings-inference- and OpenAI-compatible server on fastbert's packed forward",
        lifespan=lifespan,
    )
    app.state.server = server
    m = server.metrics

    # ----------------------------------------------------------------------------------- errors
    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, e: ServeError):
        if not e.counted:  # every error answer, once, under TEI's label
            m.request_failure.labels(e.metric).inc()
        return json_response(e.body(openai=request.url.path in OPENAI_PATHS), e.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        m.request_failure.labels("validation").inc()
        err = ServeError(validation_message(list(e.errors())), "validation")
        return json_response(err.body(openai=request.url.path in OPENAI_PATHS), 422)

    @app.exception_handler(HTTPException)
    async def _unreadable(request: Request, e: HTTPException):
        # FastAPI answers a body its json.loads fails on with other than a JSONDecodeError (invalid UTF-8,
        # a UnicodeDecodeError; arrays nested past Python's recursion limit) 400 {"detail": ...}: it is
        # malformed JSON as any other, TEI's (or OpenAI's) 422. Other HTTP errors (404, 405) are FastAPI's.
        cause = e.__cause__
        if e.status_code != 400 or not isinstance(cause, (ValueError, RecursionError)):
            return await http_exception_handler(request, e)
        m.request_failure.labels("validation").inc()
        err = ServeError(f"malformed JSON body: {cause}", "validation")
        return json_response(err.body(openai=request.url.path in OPENAI_PATHS), 422)

    @app.exception_handler(ClientGone)
    async def _gone(request: Request, e: ClientGone):
        m.request_failure.labels("client_disconnected").inc()
        return Response(status_code=499)

    # ----------------------------------------------------------------------------------- routes
    def _headers(request: Request, rows: list, chars: int, start: float) -> dict[str, str]:
        """TEI's response headers (router/src/lib.rs ``ResponseMetadata``): times in whole milliseconds."""
        elapsed = str(int((time.perf_counter() - start) * 1000))
        timing = _timing(request)
        return {
            "x-compute-type": models[0].device.type,
            "x-compute-time": elapsed,
            "x-compute-characters": str(chars),
            "x-compute-tokens": str(sum(len(r[0]) for r in rows)),
            "x-total-time": elapsed,
            "x-tokenization-time": str(int(timing["tokenization"] * 1000)),
            "x-queue-time": str(int(timing["queue"] * 1000)),
            "x-inference-time": str(int(timing["inference"] * 1000)),
        }

    def _chars(inputs: list[Any]) -> int:
        return sum(len(x) if isinstance(x, str) else len(x) for x in inputs)

    def _count(single: bool) -> str:
        """``te_request_count`` of a request (single or batch), as TEI's routes count it on arrival."""
        kind = "single" if single else "batch"
        m.request_count.labels(kind).inc()
        return kind

    async def tokenize_inputs(request: Request, body: Any, field: str = "inputs") -> tuple[list[Any], list]:
        """An embedding request's inputs (``body.inputs``), counted against the limit and tokenized with its
        prompt, truncation and direction: (inputs, rows)."""
        inputs, _ = _as_list(body.inputs)
        server.check_count(field, len(inputs))
        server.admit(request, len(inputs))
        m.embed_count.inc(len(inputs))  # TEI's te_embed_count: each input that reaches Infer::embed
        rows = await server.encode_off_loop(
            field,
            inputs,
            body.truncate,
            body.truncation_direction,
            server.prompt(body.prompt_name),
            request=request,
        )
        return inputs, rows

    async def embed_vectors(
        request: Request, body: schemas.EmbedRequest, field: str = "inputs"
    ) -> tuple[list[list[float]], list, list]:
        server.require((EMBEDDING,), "embed")
        if body.normalize and server.spec.pooling == "splade":
            # TEI (core/src/infer.rs embed_pooled): a SPLADE vector is not normalised; normalize=false gives
            # the dense SPLADE vector
            raise ServeError(
                "`normalize` is not available for SPLADE models (pass normalize=false)",
                "backend",
                metric="model_type",
            )
        if not server.spec.include_prompt and server.prompt(body.prompt_name):
            raise ServeError(f"`prompt_name` {body.prompt_name!r}: {PROMPT_EXCLUDED}")
        inputs, rows = await tokenize_inputs(request, body, field)
        outs = await server.run(request, rows, ["pooled"] * len(rows))
        check_finite(outs)
        vectors = []
        for v in outs:
            v = np.asarray(v, dtype=np.float32)
            if body.dimensions is not None:
                if body.dimensions > v.shape[-1]:
                    # TEI and OpenAI refuse it rather than answer the full vector
                    raise ServeError(
                        f"`dimensions`: {body.dimensions} is more than the embedding's {v.shape[-1]} dimensions"
                    )
                v = v[: body.dimensions]
            if body.normalize:
                v = normalize(v)
            vectors.append(v)
        return vectors, rows, inputs

    @app.post("/embed", response_model=list[list[float]], responses=_ERRORS)
    async def embed(request: Request, body: schemas.EmbedRequest):
        """Pooled embeddings (TEI ``/embed``): one vector per input, normalised unless ``normalize=false``."""
        start = time.perf_counter()
        kind = _count(_as_list(body.inputs)[1])
        vectors, rows, inputs = await embed_vectors(request, body)
        m.request_success.labels(kind).inc()
        headers = _headers(request, rows, _chars(inputs), start)
        return await json_off_loop(vectors, sum(v.size for v in vectors), headers)

    @app.post("/embed_all", response_model=list[list[list[float]]], responses=_ERRORS)
    async def embed_all(request: Request, body: schemas.EmbedAllRequest):
        """Every token's hidden state of each input (TEI ``/embed_all``)."""
        start = time.perf_counter()
        kind = _count(_as_list(body.inputs)[1])  # before the model's kind, as TEI counts it
        if server.spec.pooling == "splade":
            raise ServeError(
                "model is not an embedding model with token outputs (it is a SPLADE model)",
                "backend",
                metric="model_type",
            )
        server.require((EMBEDDING,), "all")
        inputs, rows = await tokenize_inputs(request, body)
        outs = [np.asarray(o) for o in await server.run(request, rows, ["all"] * len(rows))]
        check_finite(outs)
        m.request_success.labels(kind).inc()
        headers = _headers(request, rows, _chars(inputs), start)
        return await json_off_loop(outs, sum(o.size for o in outs), headers)

    @app.post("/embed_sparse", response_model=list[list[schemas.SparseValue]], responses=_ERRORS)
    async def embed_sparse(request: Request, body: schemas.EmbedSparseRequest):
        """SPLADE sparse vectors (TEI ``/embed_sparse``): the non-zero ``{index, value}`` of each input."""
        start = time.perf_counter()
        result, rows, inputs = await sparse_values(request, body)
        headers = _headers(request, rows, _chars(inputs), start)
        return await json_off_loop(result, sum(len(r) for r in result), headers)

    async def sparse_values(request: Request, body: schemas.EmbedSparseRequest):
        kind = _count(_as_list(body.inputs)[1])  # before the model's kind, as TEI counts it
        if server.spec.pooling != "splade":
            raise ServeError(f"model is not {_ARTICLE['sparse']}", "backend", metric="model_type")
        inputs, rows = await tokenize_inputs(request, body)
        outs = [np.asarray(o) for o in await server.run(request, rows, ["sparse"] * len(rows))]
        check_finite(outs)
        result = []
        for v in outs:
            idx = np.flatnonzero(v)
            result.append([{"index": int(i), "value": v[i]} for i in idx])
        m.request_success.labels(kind).inc()
        return result, rows, inputs

    async def predict_scores(request: Request, body: schemas.PredictRequest):
        seqs, single = _predict_seqs(body.inputs)
        kind = _count(single)  # before the model's kind: TEI counts the request first
        server.require((CLASSIFIER, RERANKER), "predict")
        server.check_count("inputs", len(seqs))
        server.admit(request, len(seqs))
        m.predict_count.inc(len(seqs))
        items = [s if isinstance(s, str) else (s[0] if len(s) == 1 else (s[0], s[1])) for s in seqs]
        rows = await server.encode_off_loop(
            "inputs", items, body.truncate, body.truncation_direction, request=request
        )
        outs = await server.run(request, rows, ["scores"] * len(rows))
        labels = server.spec.id2label
        result = []
        for logits in outs:
            scores = scores_of(np.asarray(logits), body.raw_scores)
            if np.isnan(scores).any():
                raise ServeError("score is NaN", "backend")
            preds = [{"score": s, "label": labels.get(str(i), f"LABEL_{i}")} for i, s in enumerate(scores)]
            result.append(_best_first(preds))
        m.request_success.labels(kind).inc()
        return (result[0] if single else result), rows, items

    @app.post(
        "/predict",
        response_model=list[schemas.Prediction] | list[list[schemas.Prediction]],
        responses=_ERRORS,
    )
    async def predict(request: Request, body: schemas.PredictRequest):
        """Class scores (TEI ``/predict``): a string, a pair ``[a, b]``, or a batch of strings and pairs."""
        start = time.perf_counter()
        result, rows, items = await predict_scores(request, body)
        chars = sum(len(x) if isinstance(x, str) else len(x[0]) + len(x[1]) for x in items)
        return json_response(result, headers=_headers(request, rows, chars, start))

    async def rerank_scores(request: Request, body: schemas.RerankRequest):
        if not body.texts:  # before the model's kind, as TEI checks them
            raise ServeError("`texts` cannot be empty", "empty")
        server.require((RERANKER,), "rerank")
        m.request_count.labels("batch").inc()
        server.check_count("texts", len(body.texts))
        server.admit(request, len(body.texts))
        m.predict_count.inc(len(body.texts))
        rows = await server.encode_off_loop(
            RerankPairs("texts"),
            [(body.query, t) for t in body.texts],
            body.truncate,
            body.truncation_direction,
            request=request,
        )
        outs = await server.run(request, rows, ["scores"] * len(rows))
        ranks = []
        for index, logits in enumerate(outs):
            score = scores_of(np.asarray(logits)[:1], body.raw_scores)[0]  # a float32, as TEI's
            if math.isnan(score):
                raise ServeError("score is NaN", "backend")
            rank = {"index": index, "score": score}
            if body.return_text:
                rank = {"index": index, "text": body.texts[index], "score": score}
            ranks.append(rank)
        m.request_success.labels("batch").inc()
        return _best_first(ranks), rows

    @app.post("/rerank", response_model=list[schemas.Rank], responses=_ERRORS)
    async def rerank(request: Request, body: schemas.RerankRequest):
        """Scores of ``texts`` against ``query`` by a cross-encoder (TEI ``/rerank``), best first."""
        start = time.perf_counter()
        ranks, rows = await rerank_scores(request, body)
        chars = len(body.query) * len(body.texts) + sum(len(t) for t in body.texts)
        return json_response(ranks, headers=_headers(request, rows, chars, start))

    async def similarity_scores(request: Request, body: schemas.SimilarityRequest):
        params = body.parameters or schemas.SimilarityParameters()
        if not body.inputs.sentences:
            raise ServeError("`inputs.sentences` cannot be empty", "empty")
        m.request_count.labels("batch").inc()
        server.require((EMBEDDING,), "embed")  # after the count: TEI's /similarity counts it in /embed first
        server.check_count("inputs.sentences", len(body.inputs.sentences) + 1)
        server.admit(request, len(body.inputs.sentences) + 1)
        embed_body = schemas.EmbedRequest(
            inputs=[body.inputs.source_sentence, *body.inputs.sentences],
            truncate=params.truncate,
            truncation_direction=params.truncation_direction,
            prompt_name=params.prompt_name,
            normalize=False,  # as TEI: the cosine of the raw vectors (SPLADE's too, which refuse normalize)
        )
        vectors, rows, inputs = await embed_vectors(request, embed_body, SimilarityInputs("inputs.sentences"))
        sims = cosines(vectors[0], vectors[1:])
        m.request_success.labels("batch").inc()
        return sims, rows, inputs

    @app.post("/similarity", response_model=list[float], responses=_ERRORS)
    async def similarity(request: Request, body: schemas.SimilarityRequest):
        """Cosine similarity of ``source_sentence`` to each of ``sentences`` (TEI ``/similarity``)."""
        start = time.perf_counter()
        sims, rows, inputs = await similarity_scores(request, body)
        return json_response(sims, headers=_headers(request, rows, _chars(inputs), start))

    @app.post("/tokenize", response_model=list[list[schemas.SimpleToken]], responses=_ERRORS)
    async def tokenize(body: schemas.TokenizeRequest):
        """Tokens of each input: id, text, special, start/stop byte offsets (TEI ``/tokenize``)."""
        inputs = [body.inputs] if isinstance(body.inputs, str) else list(body.inputs)
        server.check_count("inputs", len(inputs))
        prompt = server.prompt(body.prompt_name)
        inputs = server.check_inputs("inputs", inputs, False, "right")  # TEI: /tokenize never truncates

        def tokens() -> list:
            return [server.tokenizer.tokens(prompt + x, body.add_special_tokens) for x in inputs]

        return json_response(await asyncio.to_thread(tokens))

    @app.post("/decode", response_model=list[str], responses=_ERRORS)
    async def decode(body: schemas.DecodeRequest):
        """Text of token ids (TEI ``/decode``): one list or a batch of lists. As TEI (the tokenizers
        library's decode), an id that is no token of the vocabulary is left out."""
        ids = body.ids
        batch = [ids] if not ids or isinstance(ids[0], int) else list(ids)
        server.check_count("ids", len(batch))
        for k, row in enumerate(batch):
            if not row:
                raise ServeError(f"`{f'ids[{k}]' if len(batch) > 1 else 'ids'}` cannot be empty", "empty")

        def texts() -> list[str]:
            return [server.tokenizer.decode(list(r), body.skip_special_tokens) for r in batch]

        return json_response(await asyncio.to_thread(texts))

    async def openai(request: Request, body: schemas.OpenAIEmbeddingsRequest):
        """OpenAI's embeddings API: ``input`` a string, a list of strings, token ids or lists of them."""
        start = time.perf_counter()
        kind = _count(_as_list(body.input)[1])
        embed_body = schemas.EmbedRequest(inputs=body.input, normalize=True, dimensions=body.dimensions)
        vectors, rows, inputs = await embed_vectors(request, embed_body, "input")
        data = []
        for i, v in enumerate(vectors):
            if body.encoding_format == "base64":
                emb: Any = base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")
            else:
                emb = v
            data.append({"object": "embedding", "embedding": emb, "index": i})
        tokens = sum(len(r[0]) for r in rows)
        m.request_success.labels(kind).inc()
        content = {
            "object": "list",
            "data": data,
            "model": server.served_model_name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        headers = _headers(request, rows, _chars(inputs), start)
        return await json_off_loop(content, sum(v.size for v in vectors), headers)

    openai_doc = {"response_model": schemas.OpenAIEmbeddingsResponse, "responses": _OPENAI_ERRORS}
    app.post("/v1/embeddings", **openai_doc)(openai)
    app.post("/embeddings", include_in_schema=False, **openai_doc)(openai)

    @app.post("/", responses=_ERRORS)
    async def root(request: Request):
        """The model's task, as TEI routes ``POST /``: a classifier's ``/predict``, a re-ranker's ``/rerank``
        (``{"query", "texts"}``; ``{"inputs"}`` bodies go to ``/predict``), an embedding model's ``/embed``
        (``/similarity`` for ``{"inputs": {"source_sentence", "sentences"}}``, ``/embed_sparse`` for SPLADE)."""
        payload = await _json_object(request)
        if server.spec.kind == EMBEDDING:
            if isinstance(payload.get("inputs"), dict):
                return await similarity(request, parse(schemas.SimilarityRequest, payload))
            if server.spec.pooling == "splade":
                return await embed_sparse(request, parse(schemas.EmbedSparseRequest, payload))
            return await embed(request, parse(schemas.EmbedRequest, payload))
        if server.spec.kind == RERANKER and "query" in payload:
            return await rerank(request, parse(schemas.RerankRequest, payload))
        return await predict(request, parse(schemas.PredictRequest, payload))

    app.post("/invocations", include_in_schema=False)(root)  # TEI's AWS SageMaker route: POST /

    @app.post("/vertex", responses=_ERRORS)
    async def vertex(request: Request):
        """Vertex AI's prediction route (TEI ``/vertex``): ``{"instances": [...]}``, each instance the body
        of the model's route (``/rerank``'s ``{"query", "texts"}`` on any model, as TEI matches it first;
        else ``/predict`` for classifiers and re-rankers, ``/embed_sparse`` for SPLADE, ``/embed``), answered
        ``{"predictions": [...]}`` in order; the first error fails the request.

        Every instance is parsed first (a 422 naming the first bad one). As TEI runs each instance through
        its route, each instance's inputs count against ``--max-client-batch-size`` (a 422 above it), and
        each input of each instance takes one of the ``--max-concurrent-requests`` slots (a 429 unless all
        are free)."""
        payload = await _json_object(request)
        instances = payload.get("instances")
        if not isinstance(instances, list):
            raise ServeError("Input validation error: `instances`: Input should be a valid list")

        def parsed(k: int, instance: Any) -> tuple[str, Any]:
            where = f"instances[{k}]"
            if isinstance(instance, dict) and "query" in instance and "texts" in instance:
                from pydantic import ValidationError

                try:
                    return "rerank", schemas.RerankRequest.model_validate(instance)
                except ValidationError:
                    pass
            if server.spec.kind in (CLASSIFIER, RERANKER):
                return "predict", parse(schemas.PredictRequest, instance, where)
            if server.spec.pooling == "splade":
                return "sparse", parse(schemas.EmbedSparseRequest, instance, where)
            return "embed", parse(schemas.EmbedRequest, instance, where)

        bodies = [parsed(k, x) for k, x in enumerate(instances)]
        counts = [_inputs_of(route, body) for route, body in bodies]
        limit = server.options.max_client_batch_size
        for k, n in enumerate(counts):
            if n > limit:  # as the instance's route refuses it (TEI checks each instance, not their sum)
                m.request_count.labels("batch").inc()
                raise too_many_inputs(f"instances[{k}]", n, limit)
        total = sum(counts)
        if bodies:
            try:
                server.admit(request, total)  # each instance's inputs, a slot each, as TEI's routes take them
            except ServeError:
                m.request_count.labels("batch").inc()
                raise

        async def one(route: str, body: Any) -> Any:
            if route == "rerank":
                return (await rerank_scores(request, body))[0]
            if route == "predict":
                return (await predict_scores(request, body))[0]
            if route == "sparse":
                return (await sparse_values(request, body))[0]
            kind = _count(_as_list(body.inputs)[1])
            vectors = (await embed_vectors(request, body))[0]
            m.request_success.labels(kind).inc()
            return vectors

        results = await asyncio.gather(*(one(*b) for b in bodies), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        for e in errors[1:]:  # each failed instance counts, as each of TEI's route calls does
            if isinstance(e, ServeError) and not e.counted:
                m.request_failure.labels(e.metric).inc()
                e.counted = True
        if errors:
            raise errors[0]
        return await json_off_loop({"predictions": results}, None)

    @app.get("/health", responses={503: {"model": schemas.ErrorResponse}})
    async def health():
        """200 when every model worker is alive (TEI ``/health``; HEAD too, as axum answers it)."""
        if not server.batcher.alive():
            return json_response(error_body("unhealthy", "unhealthy", 503), 503)
        return Response(status_code=200)

    # TEI answers GET / (the Inference API's health route) and GET /ping (SageMaker's) as /health, and HEAD
    # as GET (axum's get routes do)
    app.head("/health", include_in_schema=False)(health)
    for path in ("/", "/ping"):
        app.api_route(path, methods=["GET", "HEAD"], include_in_schema=False)(health)

    @app.get("/api-doc/openapi.json", include_in_schema=False)
    async def api_doc():
        """The OpenAPI document where TEI serves it (also at ``/openapi.json``)."""
        return json_response(app.openapi())

    @app.get("/info", response_model=schemas.Info)
    async def info():
        """The served model and the router's limits (TEI ``/info``)."""
        return json_response(server.info())

    @app.get("/metrics", response_class=Response)
    async def metrics():
        """Prometheus metrics under TEI's names."""
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(m.render(), media_type=CONTENT_TYPE_LATEST)

    return Guard(app, server)


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": schemas.ErrorResponse, "description": text}
    for code, text in (
        (400, "Batch is empty"),
        (413, "Payload too large"),
        (415, "Body not sent as application/json"),
        (422, "Tokenization or validation error, batch size error"),
        (424, "Inference error"),
        (429, "Model is overloaded"),
    )
}
_OPENAI_ERRORS = {
    code: {"model": schemas.OpenAIErrorResponse, "description": v["description"]}
    for code, v in _ERRORS.items()
}


# ============================================================================================ running it


def load(options: ServeOptions) -> tuple[ModelSpec, list[ServedModel]]:
    """Describe and load the model on every device (errors: clear ``OSError``/``ValueError``)."""
    spec = describe_model(options)
    models = [ServedModel(spec, options, d) for d in default_devices(options)]
    return spec, models


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def startup_line(address: str, spec: ModelSpec, models: list[ServedModel]) -> str:
    devices = ",".join(str(m.device) for m in models)
    return (
        f"fastbert serve: listening on {address} model={spec.model_id} ({spec.kind}) "
        f"device={devices} dtype={models[0].dtype_name}"
        + (f" quantization={models[0].quantization}" if models[0].quantization else "")
    )


def run_server(options: ServeOptions) -> int:
    """Serve until SIGTERM / SIGINT: then stop accepting, answer what is in flight, stop the workers and end:
    0 after SIGTERM, as TEI (a stop that went as asked is no failure), KeyboardInterrupt after SIGINT."""
    import uvicorn

    spec, models = load(options)
    app = create_app(options, spec=spec, models=models)
    sock = bind(options.host, options.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(startup_line(f"http://{shown}:{port}", spec, models), file=sys.stderr, flush=True)
    for note in spec.notes:
        print(f"fastbert serve: note: {note}", file=sys.stderr, flush=True)
    # keep-alive: a client's idle connection stays open 75 s (uvicorn's 5 s default races clients that
    # reuse a pooled connection just as the server closes it). The requests still running when the
    # graceful shutdown's wait ends (--graceful-shutdown-timeout, or a second Ctrl-C) are cancelled; the
    # Guard answers them 503 (app.state.server.stopping).
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=options.graceful_shutdown_timeout or None,
        timeout_keep_alive=75,
    )
    server = uvicorn.Server(config)
    handle_exit = server.handle_exit

    def signalled(sig: int, frame: Any) -> None:  # uvicorn's handler, telling the app first
        app.server.stopping = True
        handle_exit(sig, frame)

    server.handle_exit = signalled
    # uvicorn re-raises the signal that stopped it once it has shut down, under the handler it found then:
    # SIGTERM's is made ours for that, so that the process returns 0 instead of being killed by it (exit
    # status 143, which Docker and Kubernetes report as an error); SIGINT's stays KeyboardInterrupt (130)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signalled) if main else None
    try:
        server.run(sockets=[sock])
    finally:
        if main:  # (None: a handler not set from Python, which cannot be put back)
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    return 0
