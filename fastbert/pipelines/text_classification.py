"""``text-classification`` (``sentiment-analysis``): label and score of a text or a text pair."""

from __future__ import annotations

from typing import Any

from .base import Pipeline, label_name, model_output, sigmoid, softmax

_FUNCTIONS = ("sigmoid", "softmax", "none")


class TextClassificationPipeline(Pipeline):
    """``text-classification``: label and score of a text or a ``{"text", "text_pair"}`` pair."""

    task = "text-classification"
    _NO_TOP_K = object()

    def _sanitize(
        self,
        function_to_apply: Any = None,
        top_k: Any = _NO_TOP_K,
        truncation: Any = None,
        return_all_scores: bool | None = None,
        **tokenizer_kwargs: Any,
    ):
        post: dict[str, Any] = {}
        if return_all_scores is None:
            return_all_scores = getattr(self.model.config, "return_all_scores", None)
        if top_k is not self._NO_TOP_K and not (isinstance(top_k, int) or top_k is None):
            top_k = self._NO_TOP_K  # as transformers 4.57: a top_k that is not an int is not used
        if top_k is not self._NO_TOP_K:
            if top_k is not None and top_k < 0:  # 0: no label at all (an empty list), as transformers
                raise ValueError(f"top_k must be at least 0 or None, got {top_k}")
            post["top_k"] = top_k
            post["_legacy"] = False
        elif return_all_scores is not None:
            # transformers 4's deprecated spelling (gone from transformers 5): every label's score, in label
            # order, or the best one; the output keeps its legacy shape
            self._warn_param(
                "return_all_scores",
                "`return_all_scores` is now deprecated,  if want a similar functionality use `top_k=None` instead of"
                " `return_all_scores=True` or `top_k=1` instead of `return_all_scores=False`.",
            )
            post["top_k"] = None if return_all_scores else 1
        if function_to_apply is not None:
            name = getattr(function_to_apply, "value", function_to_apply)
            name = str(name).lower()
            if name not in _FUNCTIONS:
                raise ValueError(
                    f"Unrecognized `function_to_apply` argument: {function_to_apply!r} (use sigmoid, softmax or none)"
                )
            post["function_to_apply"] = name
        pre: dict[str, Any] = {"tokenizer_kwargs": tokenizer_kwargs}
        if truncation is not None:
            pre["truncation"] = truncation
        return {"preprocess": pre, "postprocess": post}

    def preprocess(self, item: Any, truncation: Any = None, tokenizer_kwargs: dict | None = None):
        kwargs = dict(tokenizer_kwargs or {})
        if isinstance(item, dict):
            if "text" not in item:
                raise ValueError('a text pair is a dictionary {"text": "My text", "text_pair": "My pair"}')
            # the dict's other keys are the tokenizer's, as transformers' tokenizer(**inputs)
            extra = {k: v for k, v in item.items() if k not in ("text", "text_pair")}
            truncation = extra.pop("truncation", truncation)
            kwargs.update(extra)
            enc = self._encode(item["text"], item.get("text_pair"), truncation=truncation, **kwargs)
        elif isinstance(item, list) and len(item) == 1 and isinstance(item[0], list) and len(item[0]) == 2:
            enc = self._encode(item[0][0], item[0][1], truncation=truncation, **kwargs)
        elif isinstance(item, str):
            enc = self._encode(item, truncation=truncation, **kwargs)
        else:
            raise ValueError(
                "The pipeline received invalid inputs, if you are trying to send text pairs, you can try to send a"
                ' dictionary `{"text": "My text", "text_pair": "My pair"}` in order to send a text pair.'
            )
        return [self._feature(enc)]

    def extract(self, output, attention_mask, lengths, features, **_):
        logits = model_output(output, "logits")
        return list(logits.float().cpu().unbind(0))

    def _default_function(self) -> str:
        config = self.model.config
        problem = getattr(config, "problem_type", None)
        num_labels = getattr(config, "num_labels", None) or len(getattr(config, "id2label", {}) or {})
        if problem == "regression":
            return "none"
        if problem == "multi_label_classification" or num_labels == 1:
            return "sigmoid"
        if problem == "single_label_classification" or num_labels > 1:
            return "softmax"
        fn = getattr(config, "function_to_apply", None)
        return str(fn).lower() if fn else "none"

    def _label(self, i: int) -> str:
        return label_name(self.model.config, i)

    def postprocess(
        self, item, features, function_to_apply: str | None = None, top_k: Any = 1, _legacy: bool = True
    ):
        fn = function_to_apply or self._default_function()
        outputs = features[0]["output"].numpy()
        scores = sigmoid(outputs) if fn == "sigmoid" else softmax(outputs) if fn == "softmax" else outputs
        if top_k == 1 and _legacy:
            return {"label": self._label(int(scores.argmax())), "score": scores.max().item()}
        result = [{"label": self._label(i), "score": s.item()} for i, s in enumerate(scores)]
        if not _legacy:
            result.sort(key=lambda x: x["score"], reverse=True)
            if top_k is not None:
                result = result[:top_k]
        return result

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        out = super().__call__(inputs, **kwargs)
        # as transformers: one text gives a list, unless top_k is given to this call
        if isinstance(inputs, str) and "top_k" not in kwargs:
            return [out]
        return out
