"""Encoding: a pipeline and the token-budget batching around it; rows of a shard in, vectors out in order.

The model runs through the public pipeline API only (``fastbert.pipeline(task, model=..., device=...)``,
its ``tokenizer`` and a call on a list of texts).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from .batching import token_budget_batches
from .job import Job, pinned_commit
from .readers import ON_ERROR_HINT, Row, bad_row_message

#: the pipeline's warning of a row truncated to the model's maximum (``input of 600 tokens truncated to
#: the model's maximum of 512: ...``), which the encoder hides
TRUNCATION_WARNING = r"input (pair )?of \d+ tokens truncated to "


class Encoder:
    """A pipeline and the token-budget batching around it: texts in, float32 vectors out, in order.

    Building one loads the model and runs one text: a bad model, head, pooling or device fails here.
    """

    def __init__(self, job: Job, device: Any = None) -> None:
        import fastbert

        kwargs: dict[str, Any] = {}
        if job.task == "sentence-embedding":
            if job.pooling:
                kwargs["pooling"] = list(job.pooling)
            if job.normalize is not None:
                kwargs["normalize"] = job.normalize
        if job.max_length:
            kwargs["max_length"] = job.max_length
        # a hub model: the commit the job recorded, so that every worker and every resume loads the same
        # model, even when the revision (a branch, a tag) has moved since
        revision = pinned_commit(job.model_fingerprint) or job.revision
        if revision:
            kwargs["revision"] = revision
        if job.quantization:
            kwargs["model_kwargs"] = {"quantization": job.quantization}
        self.job = job
        self.pipe = fastbert.pipeline(
            job.task,
            model=job.model,
            device=device,
            torch_dtype=job.dtype,
            attn_implementation=job.attn_implementation,
            progress=False,
            **kwargs,
        )
        self.tokenizer = self.pipe.tokenizer
        self.max_length = int(getattr(self.pipe, "max_length", None) or job.max_length or 512)
        #: the prompt the sentence-embedding pipeline puts before each text (the folder's default), or ""
        self._prompt = self.pipe.default_prompt if job.task == "sentence-embedding" else ""
        self._label_index: dict[str, int] | None = None
        if job.task == "text-classification":
            id2label = getattr(self.pipe.model.config, "id2label", None) or {}
            self._label_index = {str(v): int(k) for k, v in id2label.items()}
        self.dimension = int(self._forward(["fastbert"]).shape[1])

    def describe(self) -> dict[str, Any]:
        """Pooling, normalisation and labels as the pipeline resolved them (what the vectors mean)."""
        d: dict[str, Any] = {"max_length": self.max_length}
        if self.job.task == "sentence-embedding":
            d["pooling"] = list(self.pipe.pooling)
            d["normalize"] = bool(self.pipe.normalize)
            if self._prompt:  # the folder's default prompt (config_sentence_transformers.json)
                d["prompt"] = self._prompt
            if self.pipe.truncate_dim is not None:
                d["truncate_dim"] = int(self.pipe.truncate_dim)
        elif self.job.task == "feature-extraction":
            d["pooling"] = list(self.job.pooling or ("mean",))
            d["normalize"] = bool(self.job.normalize)
        else:
            d["labels"] = [k for k, _ in sorted(self._label_index.items(), key=lambda kv: kv[1])]
        return d

    def lengths(self, texts: list[str]) -> list[int]:
        """Token count of each text, truncated to the model's maximum as the pipeline truncates."""
        if self._prompt:  # the pipeline puts it before every text
            texts = [self._prompt + t for t in texts]
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    def _forward(self, texts: list[str]):
        import numpy as np
        import torch

        with warnings.catch_warnings():
            # the pipeline's truncation warnings: one a row, and expected here (the job's max_length); any
            # other warning passes (a backend's fallback, said once: --attn-implementation triton on a CPU)
            warnings.filterwarnings("ignore", message=TRUNCATION_WARNING, category=UserWarning)
            if self.job.task == "sentence-embedding":
                # normalize=True in the call too: encode's normalize_embeddings, unit vectors also after the
                # cut of a folder's truncate_dim (the pipeline's normalize normalizes before it)
                call = {"normalize": True} if self.job.normalize else {}
                out = self.pipe(texts, batch_size=len(texts), return_tensors=True, **call)
                return out.float().numpy()
            if self.job.task == "feature-extraction":
                outs = self.pipe(texts, batch_size=len(texts), return_tensors=True)
                modes = self.job.pooling or ("mean",)
                rows = []
                for h in outs:
                    h = h[0].float()  # (tokens, hidden)
                    parts = []
                    for m in modes:
                        parts.append(h[0] if m == "cls" else h.max(dim=0).values if m == "max" else h.mean(0))
                    rows.append(torch.cat(parts))
                v = torch.stack(rows)
                if self.job.normalize:
                    v = torch.nn.functional.normalize(v, p=2, dim=1)
                return v.numpy()
            kw = {"top_k": None}
            if self.job.function_to_apply:
                kw["function_to_apply"] = self.job.function_to_apply
            outs = self.pipe(texts, batch_size=len(texts), **kw)
            idx = self._label_index
            v = np.zeros((len(texts), len(idx)), dtype=np.float32)
            for r, labels in enumerate(outs):
                for d in labels:
                    v[r, idx[str(d["label"])]] = d["score"]
            return v

    def batches(self, lengths: list[int]) -> list[list[int]]:
        """Row indices of each batch: sorted longest first, at most ``max_batch_tokens`` padded tokens."""
        return token_budget_batches(lengths, self.job.max_batch_tokens)

    def encode(self, texts: list[str], on_batch: Callable[[int, int], None] | None = None):
        """(vectors (n, dimension) float32 in input order, padded tokens computed)."""
        import numpy as np

        result = np.zeros((len(texts), self.dimension), dtype=np.float32)
        tokens = 0
        if not texts:
            return result, 0
        lengths = self.lengths(texts)
        for batch in self.batches(lengths):
            vec = self._forward([texts[i] for i in batch])
            result[batch] = vec
            n_tok = len(batch) * lengths[batch[0]]
            tokens += n_tok
            if on_batch is not None:
                on_batch(len(batch), n_tok)
        return result, tokens


def encode_rows(
    encoder: Encoder, rows: list[Row], on_batch: Callable[[int, int], None] | None = None
) -> tuple[list[Any], Any, Any, int, int]:
    """(ids, vectors (n, dim) float32, valid mask, bad rows, padded tokens) for rows of one shard.

    Bad rows follow ``on_error``: ``fail`` raises (naming the file and the line or row), ``skip`` drops
    them, ``empty`` keeps them with a null vector (those with an id: a row whose id cannot be read is
    dropped). Windows of ``window`` rows are length-sorted and batched together.
    """
    import numpy as np

    job = encoder.job
    bad = [r for r in rows if r.error is not None]
    if bad and job.on_error == "fail":
        raise ValueError(f"{bad_row(bad[0], job)} {ON_ERROR_HINT}")
    # "empty" keeps a bad row with a null vector when it has an id (a line that is not JSON has none)
    keep = [r for r in rows if r.error is None or (job.on_error == "empty" and r.id is not None)]
    vectors = np.zeros((len(keep), encoder.dimension), dtype=np.float32)
    valid = np.array([r.error is None for r in keep], dtype=bool)
    tokens = 0
    good_index = np.flatnonzero(valid)
    for start in range(0, len(good_index), job.window):
        idx = good_index[start : start + job.window]
        vec, tok = encoder.encode([keep[i].text for i in idx], on_batch)
        vectors[idx] = vec
        tokens += tok
    return [r.id for r in keep], vectors, valid, len(bad), tokens


def bad_row(row: Row, job: Job) -> str:
    """``path, line 2 (id 'r1'): empty text``: where a bad row is, its id when ids are a column, and why."""
    return bad_row_message(row, job.id_column)
