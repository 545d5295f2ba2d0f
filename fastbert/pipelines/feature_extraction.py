"""``feature-extraction``: the last hidden state of every token of each input."""

from __future__ import annotations

from typing import Any

import torch

from .base import Pipeline, keyword_dict


class FeatureExtractionPipeline(Pipeline):
    """``feature-extraction``: the last hidden state of every token, ``[1][tokens][hidden]`` per input.

    Each result has its own input's length whatever ``batch_size`` (transformers 4.57 and 5 pad every result
    of a batch to its longest when ``batch_size > 1``). Rows at padding asked for in ``tokenize_kwargs`` are
    zeros on the packed backends, transformers' values with ``attn_implementation="eager"``
    (docs/README-pipelines.md).
    """

    task = "feature-extraction"

    def _sanitize(
        self, truncation: Any = None, tokenize_kwargs: dict | None = None, return_tensors: bool | None = None
    ):
        pre: dict[str, Any] = {"tokenize_kwargs": keyword_dict("tokenize_kwargs", tokenize_kwargs)}
        if truncation is not None:
            if "truncation" in pre["tokenize_kwargs"]:
                raise ValueError(
                    "truncation parameter defined twice (given as keyword argument as well as in tokenize_kwargs)"
                )
            pre["truncation"] = truncation
        post = {"return_tensors": bool(return_tensors)} if return_tensors is not None else {}
        return {"preprocess": pre, "postprocess": post}

    def _text_input(self, item: Any) -> tuple[Any, Any]:
        if isinstance(item, dict):
            if "text" not in item:
                raise ValueError(f"{self.task}: a dict input needs a 'text' key (and optionally 'text_pair')")
            return item["text"], item.get("text_pair")
        if not isinstance(item, str):
            raise ValueError(f"{self.task} takes a text (str), got {type(item).__name__}")
        return item, None

    def preprocess(self, item: Any, truncation: Any = None, tokenize_kwargs: dict | None = None):
        text, pair = self._text_input(item)
        kwargs = dict(tokenize_kwargs or {})
        truncation = kwargs.pop("truncation", truncation)
        return [self._feature(self._encode(text, pair, truncation=truncation, **kwargs))]

    @staticmethod
    def _hidden(output: Any) -> torch.Tensor:
        if isinstance(output, (tuple, list)):
            return output[0]
        h = getattr(output, "last_hidden_state", None)
        if h is None:
            h = output[0]
        return h

    def extract(self, output, attention_mask, lengths, features, **_):
        hidden = self._hidden(output)
        return [hidden[r, :L].cpu() for r, L in enumerate(lengths)]

    def postprocess(self, item, features, return_tensors: bool = False):
        h = features[0]["output"].unsqueeze(0)
        return h if return_tensors else h.tolist()
