"""Request and response schemas (pydantic): TEI's field names, types and defaults, and OpenAI's embeddings.

Requests ignore fields they do not know (TEI's serde does the same; huggingface_hub's InferenceClient sends
``parameters``). Types are strict: ``"inputs": 5`` or ``"normalize": "yes"`` is a 422 naming the field.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

TokenId = Annotated[StrictInt, Field(ge=0)]
#: /decode's ids: TEI's ``Vec<u32>`` (an id past the vocabulary is skipped, as the tokenizer decodes)
DecodeId = Annotated[StrictInt, Field(ge=0, le=2**32 - 1)]
TokenIds = list[TokenId]  # an empty one is refused by the route, 400 as TEI's ``Empty``
InputType = StrictStr | TokenIds
Input = InputType | list[InputType]
TruncationDirection = Literal["right", "left", "Right", "Left"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class EmbedRequest(_Request):
    inputs: Input
    truncate: StrictBool | None = None
    truncation_direction: TruncationDirection = "right"
    prompt_name: StrictStr | None = None
    normalize: StrictBool = True
    dimensions: Annotated[StrictInt, Field(ge=1)] | None = None


class EmbedAllRequest(_Request):
    inputs: Input
    truncate: StrictBool | None = None
    truncation_direction: TruncationDirection = "right"
    prompt_name: StrictStr | None = None


class EmbedSparseRequest(EmbedAllRequest):
    pass


class SparseValue(BaseModel):
    index: int
    value: float


Sequence = Annotated[list[StrictStr], Field(min_length=1, max_length=2)]
#: as TEI's PredictInput: a string, a pair ``[a, b]``, or a batch of ``[a]`` / ``[a, b]`` lists (not of strings)
PredictInput = StrictStr | Sequence | Annotated[list[Sequence], Field(min_length=1)]


class PredictRequest(_Request):
    inputs: PredictInput
    truncate: StrictBool | None = None
    truncation_direction: TruncationDirection = "right"
    raw_scores: StrictBool = False


class Prediction(BaseModel):
    score: float
    label: str


class RerankRequest(_Request):
    query: StrictStr
    texts: list[StrictStr]
    truncate: StrictBool | None = None
    truncation_direction: TruncationDirection = "right"
    raw_scores: StrictBool = False
    return_text: StrictBool = False


class Rank(BaseModel):
    index: int
    text: str | None = None
    score: float


class SimilarityInput(_Request):
    source_sentence: StrictStr
    sentences: list[StrictStr]


class SimilarityParameters(_Request):
    truncate: StrictBool | None = None
    truncation_direction: TruncationDirection = "right"
    prompt_name: StrictStr | None = None


class SimilarityRequest(_Request):
    inputs: SimilarityInput
    parameters: SimilarityParameters | None = None


class TokenizeRequest(_Request):
    inputs: StrictStr | list[StrictStr]
    add_special_tokens: StrictBool = True
    prompt_name: StrictStr | None = None


class SimpleToken(BaseModel):
    id: int
    text: str
    special: bool
    start: int | None
    stop: int | None


class DecodeRequest(_Request):
    ids: list[DecodeId] | list[list[DecodeId]]
    skip_special_tokens: StrictBool = True


class OpenAIEmbeddingsRequest(_Request):
    input: Input
    model: StrictStr | None = None
    user: StrictStr | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[StrictInt, Field(ge=1)] | None = None


class OpenAIEmbedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    embedding: list[float] | str
    index: int


class OpenAIUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class OpenAIEmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIEmbedding]
    model: str
    usage: OpenAIUsage


class ErrorResponse(BaseModel):
    error: str
    error_type: str


class OpenAIError(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: int


class OpenAIErrorResponse(BaseModel):
    """OpenAI's ``{"error": {...}}`` and TEI's flat fields of its OpenAI route, in one body."""

    error: OpenAIError
    message: str
    code: int
    type: str


class Info(BaseModel):
    model_id: str
    model_sha: str | None = None
    model_dtype: str
    quantization: str | None = None
    served_model_name: str
    model_type: dict
    max_concurrent_requests: int
    max_input_length: int
    max_batch_tokens: int
    max_batch_requests: int | None = None
    max_client_batch_size: int
    auto_truncate: bool
    tokenization_workers: int
    version: str
    sha: str | None = None
    docker_label: str | None = None
