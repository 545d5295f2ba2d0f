"""``fill-mask``: the most likely tokens at each mask, as transformers' fill-mask pipeline."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from .base import Pipeline, _preview, keyword_dict, model_output, warn_at_caller, whole_number


class FillMaskPipeline(Pipeline):
    """``fill-mask``: the ``top_k`` most likely tokens at each ``[MASK]``, optionally among ``targets``."""

    task = "fill-mask"

    def _sanitize(
        self,
        top_k: int | None = None,
        targets: Any = None,
        truncation: Any = None,
        tokenizer_kwargs: dict | None = None,
    ):
        if getattr(self.tokenizer, "mask_token_id", None) is None:
            raise ValueError("fill-mask: the tokenizer defines no mask token")
        post: dict[str, Any] = {}
        if top_k is not None:
            post["top_k"] = whole_number("top_k", top_k, minimum=0)  # 0: no token, [] per mask (transformers)
        if targets is not None:
            post["target_ids"] = self._target_ids(targets)
        pre: dict[str, Any] = {"tokenizer_kwargs": keyword_dict("tokenizer_kwargs", tokenizer_kwargs)}
        if truncation is not None:
            pre["truncation"] = truncation
        return {"preprocess": pre, "postprocess": post}

    def _target_ids(self, targets: Any) -> np.ndarray:
        if isinstance(targets, str):
            targets = [targets]
        targets = list(targets) if isinstance(targets, Iterable) else targets
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            # (the tokenizer's error on a target named its text input, not targets)
            raise ValueError(f"targets must be a token (str) or a list of them, got {targets!r}")
        vocab = self.tokenizer.get_vocab()
        ids = []
        for target in targets:
            id_ = vocab.get(target)
            if id_ is None:
                pieces = self.tokenizer(
                    target,
                    add_special_tokens=False,
                    return_attention_mask=False,
                    return_token_type_ids=False,
                    max_length=1,
                    truncation=True,
                )["input_ids"]
                if len(pieces) == 0:
                    self._warn_param(
                        "targets",
                        f"The specified target token `{target}` does not exist in the model vocabulary. "
                        "We cannot replace it with anything meaningful, ignoring it",
                    )
                    continue
                id_ = pieces[0]
                self._warn_param(
                    "targets",
                    f"The specified target token `{target}` does not exist in the model vocabulary. "
                    f"Replacing with `{self.tokenizer.convert_ids_to_tokens(id_)}`.",
                )
            ids.append(id_)
        ids = list(set(ids))
        if not ids:
            raise ValueError("At least one target must be provided when passed.")
        return np.array(ids)

    def preprocess(self, text: Any, truncation: Any = None, tokenizer_kwargs: dict | None = None):
        if not isinstance(text, str):
            raise ValueError(f"fill-mask takes a text (str), got {type(text).__name__}")
        kwargs = dict(tokenizer_kwargs or {})
        truncation = kwargs.pop("truncation", truncation)
        enc = self._encode(text, truncation=truncation, **kwargs)
        ids = list(enc["input_ids"])
        mask_id = self.tokenizer.mask_token_id
        positions = [i for i, t in enumerate(ids) if t == mask_id]
        whole = self._untruncated_masks(text, kwargs, len(ids)) or positions
        if not positions:
            if whole:  # the input has masks, all past the truncation point
                raise ValueError(
                    f"fill-mask: the input's mask token{'s' if len(whole) > 1 else ''} "
                    f"({self.tokenizer.mask_token} at token {', '.join(map(str, whole))}) "
                    f"{'were' if len(whole) > 1 else 'was'} truncated away: the input is cut at "
                    f"{self._limit_text(kwargs)}; shorten the text before the mask or raise max_length. "
                    f"Input starts: {_preview(text)}"
                )
            raise ValueError(
                f"fill-mask: no mask token ({self.tokenizer.mask_token}) found in the input {_preview(text)}"
            )
        if len(whole) > len(positions):
            warn_at_caller(
                f"fill-mask: {len(whole) - len(positions)} of the input's {len(whole)} mask tokens were "
                f"truncated away (cut at {self._limit_text(kwargs)}): results for the first {len(positions)} only. "
                f"Input starts: {_preview(text)}"
            )
        return [self._feature(enc, positions=positions)]

    def _untruncated_masks(self, text: str, kwargs: dict[str, Any], kept: int) -> list[int]:
        """Token positions of the mask tokens of the whole input; tokenized again only when the input
        filled the length it is cut at (it may have been cut), else none are missing: []."""
        if kept < self._cut_at(kwargs):
            return []
        # without the caller's max_length (tokenizer_kwargs), which cuts the input without truncation=
        whole = {k: v for k, v in kwargs.items() if k not in ("max_length", "padding")}
        ids = list(self.tokenizer(text, verbose=False, **whole)["input_ids"])
        if len(ids) <= kept:
            return []
        return [i for i, t in enumerate(ids) if t == self.tokenizer.mask_token_id]

    def _cut_at(self, kwargs: dict[str, Any]) -> int:
        """The length an input is cut at: the tokenizer_kwargs' ``max_length`` where it is below the model's."""
        given = kwargs.get("max_length")
        return min(given, self.max_length) if isinstance(given, int) and given > 0 else self.max_length

    def _limit_text(self, kwargs: dict[str, Any]) -> str:
        if self._cut_at(kwargs) < self.max_length:
            return f"tokenizer_kwargs' max_length={self._cut_at(kwargs)} tokens"
        if getattr(self, "_max_length_given", False):
            return f"max_length={self.max_length} tokens"
        return f"the model's maximum of {self.max_length} tokens"

    def extract(self, output, attention_mask, lengths, features, **_):
        # a loaded BertForPreTraining names its masked-LM scores prediction_logits
        has_logits = (
            ("logits" in output) if isinstance(output, dict) else getattr(output, "logits", None) is not None
        )
        logits = model_output(output, "logits" if has_logits else "prediction_logits")
        outs = []
        for r, f in enumerate(features):
            pos = torch.tensor(f["positions"], device=logits.device)
            outs.append(logits[r].index_select(0, pos).float().cpu())
        return outs

    def postprocess(self, item, features, top_k: int = 5, target_ids: np.ndarray | None = None):
        feat = features[0]
        if target_ids is not None and target_ids.shape[0] < top_k:
            top_k = target_ids.shape[0]
        input_ids = np.array(feat["input_ids"])
        probs = feat["output"].softmax(dim=-1)
        if target_ids is not None:
            probs = probs[..., torch.as_tensor(target_ids)]
        top_k = min(top_k, probs.shape[-1])
        values, predictions = probs.topk(top_k)
        pad_id = self.tokenizer.pad_token_id
        single = values.shape[0] == 1
        result = []
        for i, (vals, preds) in enumerate(zip(values.tolist(), predictions.tolist())):
            row = []
            for v, p in zip(vals, preds):
                tokens = input_ids.copy()
                if target_ids is not None:
                    p = int(target_ids[p])
                tokens[feat["positions"][i]] = p
                tokens = tokens[np.where(tokens != pad_id)]
                sequence = self.tokenizer.decode(tokens.tolist(), skip_special_tokens=single)
                row.append(
                    {"score": v, "token": p, "token_str": self.tokenizer.decode([p]), "sequence": sequence}
                )
            result.append(row)
        return result[0] if single else result

    def _many(self, items, params):
        out = super()._many(items, params)
        return out[0] if len(items) == 1 else out
