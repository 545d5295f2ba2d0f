"""TEI's error bodies and status codes: ``{"error": ..., "error_type": ...}``.

| error_type | status | when |
| --- | --- | --- |
| ``Validation`` | 422 | a field of the wrong type or value, malformed JSON, an input over ``--max-input-length``, more inputs than ``--max-client-batch-size`` (TEI 1.9's code) |
| ``Validation`` | 413 | a body over ``--payload-limit`` |
| ``Validation`` | 415 | a body that is not sent as ``Content-Type: application/json`` |
| ``Tokenizer`` | 422 | the tokenizer rejected an input |
| ``Empty`` | 400 | an empty batch, an empty input |
| ``Overloaded`` | 429 | fewer free ``--max-concurrent-requests`` permits than the request's inputs (one each, as TEI) |
| ``Backend`` | 424 | the forward failed (only its batch's requests) or gave NaN / infinity, or the model cannot do this task |
| ``Unhealthy`` | 503 | a worker is down |

Every error answered by a route counts once in ``te_request_failure`` under TEI's ``err`` label
(:attr:`ServeError.metric`): ``validation`` (a bad field, an empty batch), ``batch_size`` (over
``--max-client-batch-size``), ``tokenization`` (an input TEI's tokenization step refuses: empty, too long,
a token id outside the vocabulary, an unknown prompt, the tokenizer's own error), ``model_type`` (the route
does not fit the model), ``overloaded`` (429), ``inference`` (a failed forward, NaN). Requests refused
before a route (401, 413, 415), as TEI's layers refuse them, are not counted.

``error_type`` is written as TEI's serde writes its ``ErrorType`` enum: capitalised. The OpenAI routes answer
TEI's flat ``{"message", "code", "type"}`` together with OpenAI's ``{"error": {"message", "type", "param",
"code"}}``, so that clients of either read their fields.
"""

from __future__ import annotations

STATUS = {
    "validation": 422,
    "tokenizer": 422,
    "empty": 400,
    "overloaded": 429,
    "backend": 424,
    "unhealthy": 503,
    "unauthorized": 401,
}


def wire_type(error_type: str) -> str:
    """``error_type`` as TEI writes it (``"validation"`` -> ``"Validation"``)."""
    return error_type[:1].upper() + error_type[1:]


def error_body(message: str, error_type: str, status: int, openai: bool = False) -> dict:
    """The JSON body of an error: TEI's, or on the OpenAI routes TEI's flat fields and OpenAI's ``error``."""
    kind = wire_type(error_type)
    if openai:
        return {
            "error": {"message": message, "type": kind, "param": None, "code": status},
            "message": message,
            "code": status,
            "type": kind,
        }
    return {"error": message, "error_type": kind}


#: TEI's ``te_request_failure`` label of each error type, where no other is given
METRIC = {"tokenizer": "tokenization", "empty": "validation", "backend": "inference"}


class ServeError(Exception):
    """An error answered with TEI's body; ``status`` defaults to the error type's, ``metric`` (the
    ``te_request_failure`` label) to TEI's label of the type. ``counted``: already in the counter."""

    def __init__(
        self,
        message: str,
        error_type: str = "validation",
        status: int | None = None,
        metric: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type
        self.status = status if status is not None else STATUS[error_type]
        self.metric = metric or METRIC.get(error_type, error_type)
        self.counted = False

    def body(self, openai: bool = False) -> dict:
        return error_body(self.message, self.error_type, self.status, openai)


def too_many_inputs(field: str, n: int, limit: int) -> ServeError:
    return ServeError(
        f"`{field}`: batch size {n} > maximum allowed batch size {limit} (--max-client-batch-size)",
        "validation",
        metric="batch_size",
    )


def overloaded(limit: int, inputs: int = 1) -> ServeError:
    """The 429 of a request whose ``inputs`` found fewer slots free: as TEI, each input in flight holds one
    of the ``--max-concurrent-requests`` permits."""
    if inputs <= 1:
        return ServeError(
            f"Model is overloaded: all {limit} permits are in use (--max-concurrent-requests; each input "
            "in flight holds one)",
            "overloaded",
        )
    return ServeError(
        f"Model is overloaded: the request's {inputs} inputs need a permit each, and fewer than {inputs} "
        f"of the {limit} are free (--max-concurrent-requests; each input in flight holds one)",
        "overloaded",
    )
