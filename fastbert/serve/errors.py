"""TEI's error bodies and status codes: ``{"error": ..., "error_type": ...}``.

| error_type | status | when |
| --- | --- | --- |
| ``validation`` | 413 | too many inputs (``--max-client-batch-size``), a body over ``--payload-limit`` |
| ``validation`` | 422 | a field of the wrong type or value, malformed JSON, an input over ``--max-input-length`` |
| ``tokenizer`` | 422 | the tokenizer rejected an input |
| ``empty`` | 400 | an empty batch |
| ``overloaded`` | 429 | more than ``--max-concurrent-requests`` in flight |
| ``backend`` | 424 | the forward failed (only its batch's requests), or the model cannot do this task |
| ``unhealthy`` | 503 | a worker is down |

The OpenAI route answers OpenAI's shape: ``{"message": ..., "code": status, "type": error_type}``.
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


class ServeError(Exception):
    """An error answered with TEI's body; ``status`` defaults to the error type's."""

    def __init__(self, message: str, error_type: str = "validation", status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type
        self.status = status if status is not None else STATUS[error_type]

    def body(self, openai: bool = False) -> dict:
        if openai:
            return {"message": self.message, "code": self.status, "type": self.error_type}
        return {"error": self.message, "error_type": self.error_type}


def too_many_inputs(field: str, n: int, limit: int) -> ServeError:
    return ServeError(
        f"`{field}`: batch size {n} > maximum allowed batch size {limit} (--max-client-batch-size)",
        "validation",
        413,
    )


def overloaded(limit: int) -> ServeError:
    return ServeError(
        f"Model is overloaded: {limit} requests in flight (--max-concurrent-requests)", "overloaded"
    )
