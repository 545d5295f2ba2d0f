"""What the routes send back: request bodies parsed into their schemas (a 422 naming the field), JSON
responses (orjson's shortest float32 where installed; large ones written on a worker thread), the check
that a model's output is finite, and classifier scores from logits."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
from fastapi.responses import Response

from .errors import ServeError

#: responses with more numbers than this are written on a worker thread
LARGE_RESPONSE = 65536


def parse(schema: Any, payload: Any, where: str = "") -> Any:
    """``payload`` validated by ``schema`` (a pydantic model), or a 422 naming the field (under ``where``)."""
    from pydantic import ValidationError

    try:
        return schema.model_validate(payload)
    except ValidationError as e:
        message = validation_message(list(e.errors()))
        if where:
            message = message.replace("error: `", f"error: `{where}.", 1)
        raise ServeError(message, "validation") from None


try:
    import orjson
except ImportError:  # the [serve] extra installs it; without it, the standard library's json
    orjson = None


def _plain(o: Any) -> Any:
    if isinstance(o, (np.ndarray, np.generic)):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def dumps(content: Any) -> bytes:
    """JSON bytes of ``content``, whose numbers may be numpy arrays and scalars: with orjson, float32 values
    are written shortest (``0.1007048``, as TEI's serde writes its f32), else as Python floats."""
    if orjson is not None:
        return orjson.dumps(content, default=_plain, option=orjson.OPT_SERIALIZE_NUMPY)
    return json.dumps(content, separators=(",", ":"), allow_nan=False, default=_plain).encode()


def json_response(content: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(dumps(content), status_code=status, media_type="application/json", headers=headers)


async def json_off_loop(content: Any, numbers: int | None, headers: dict | None = None) -> Response:
    """:func:`json_response`, written on a worker thread when it holds more than ``LARGE_RESPONSE`` numbers (or an
    unknown count, None)."""
    if numbers is not None and numbers <= LARGE_RESPONSE:
        return json_response(content, headers=headers)
    body = await asyncio.to_thread(dumps, content)
    return Response(body, media_type="application/json", headers=headers)


def check_finite(arrays: list[np.ndarray]) -> None:
    """A 424 when the model's output holds NaN or infinity (an overflow): never a vector of them."""
    for a in arrays:
        if not np.isfinite(np.asarray(a)).all():
            raise ServeError("the model's output holds NaN or infinity", "backend")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(88.8+) is inf in float32: the score is 0, as TEI's
        return np.float32(1) / (np.float32(1) + np.exp(-x))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x))
    return e / e.sum(dtype=np.float32)


def scores_of(logits: np.ndarray, raw: bool) -> np.ndarray:
    """/predict's and /rerank's scores of one input's logits, in float32 as TEI computes them (core/src/infer.rs
    ``predict``: sigmoid of one logit, softmax of several, on the backend's f32 logits): a score above
    0.99999997 is 1.0, so saturated scores tie, and each is written shortest as TEI's f32 (``0.49823478``)."""
    logits = np.asarray(logits, dtype=np.float32)
    if raw:
        return logits
    return _sigmoid(logits) if logits.shape[-1] == 1 else _softmax(logits)


_TYPE_NAMES = ("str", "int", "bool", "list", "dict")


def _is_field(p: Any) -> bool:
    """Whether ``p`` of an error's loc is a field name (not an index, nor the tag of a union's member)."""
    return isinstance(p, str) and p.isidentifier() and p not in _TYPE_NAMES


def _field_of(loc: tuple) -> str:
    parts: list[str] = []
    for p in loc[1:] if loc and loc[0] == "body" else loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif _is_field(p):
            parts.append(("." if parts else "") + p)
    return "".join(parts) or "body"


def _furthest(errors: list[dict]) -> dict:
    """The error to name first: when the first is one member's of a union (``inputs`` a string, token ids or
    a list of them), the error of the member that got furthest into the value (``["a", 5]``: the list of
    inputs, at ``inputs[1]``; ``[[1], [2, "x"]]``: ``inputs[1][1]``), not the string member's refusal of
    the whole list. A length limit counts past the items (they passed): ``["a", "b", "c"]`` on /predict is
    a pair of too many strings, not a batch of which ``"a"`` is no list."""
    first = errors[0]
    loc = tuple(first.get("loc", ()))
    cut = next((i for i, p in enumerate(loc) if isinstance(p, str) and not _is_field(p)), None)
    if cut is None:
        return first

    def reach(e: dict) -> tuple[int, ...]:
        where = tuple(p for p in tuple(e.get("loc", ()))[cut:] if isinstance(p, int))
        if e.get("type") in ("too_long", "too_short"):
            where += ((e.get("ctx") or {}).get("actual_length", 0),)
        return where

    members = [e for e in errors if tuple(e.get("loc", ()))[:cut] == loc[:cut]]

    def item(e: dict) -> int:  # the item an error is in (-1: the whole value)
        return next((p for p in tuple(e.get("loc", ()))[cut:] if isinstance(p, int)), -1)

    # a member reaches as far as it got into its first refused item: the list of inputs refuses every item
    # of ``[-1, 2]`` (no item is a string or a list), the token ids refuse -1 first, and that is named
    by_member: dict[Any, list[dict]] = {}
    for e in members:
        by_member.setdefault(tuple(e.get("loc", ()))[cut], []).append(e)

    def got(es: list[dict]) -> tuple[int, ...]:
        k = min(item(e) for e in es)
        return max(reach(e) for e in es if item(e) == k)

    best = max(by_member.values(), key=got)  # the first of those that got as far
    return max(best, key=reach)  # its furthest error


def validation_message(errors: list[dict]) -> str:
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
    if errors and first.get("type") != "json_invalid":
        first = _furthest(errors)
        errors = [first, *(e for e in errors if e is not first)]
    if first.get("type") == "json_invalid":
        ctx = first.get("ctx", {}) or {}
        return f"malformed JSON body: {ctx.get('error', first.get('msg'))} (at character {first['loc'][-1]})"
    fields = []
    for e in errors:
        f = _field_of(tuple(e.get("loc", ())))
        if f not in fields:
            fields.append(f)
    msg = f"Input validation error: `{fields[0]}`: {first.get('msg')}"
    if len(fields) > 1:
        msg += f" (also: {', '.join(f'`{f}`' for f in fields[1:4])})"
    return msg
