"""The rival of ``fastbert bench --suite serve``: a FastAPI + sentence-transformers embeddings server written
the straightforward way (one ``encode`` per request, in FastAPI's thread pool), with TEI's ``/embed`` shape.

``FASTBERT_BENCH_MODEL`` names the sentence-transformers folder; run with
``uvicorn fastbert.benchmark.serve_baseline:app``."""

from __future__ import annotations

import os

from fastapi import FastAPI
from pydantic import BaseModel
from sentence_transformers import SentenceTransformer

model = SentenceTransformer(os.environ["FASTBERT_BENCH_MODEL"], device="cpu")
app = FastAPI()


class EmbedRequest(BaseModel):
    inputs: str | list[str]
    normalize: bool = True


@app.post("/embed")
def embed(req: EmbedRequest) -> list[list[float]]:
    texts = [req.inputs] if isinstance(req.inputs, str) else req.inputs
    return model.encode(texts, normalize_embeddings=req.normalize).tolist()


@app.get("/health")
def health() -> None:
    return None
