"""``sentence-embedding``: one pooled vector per input, as a sentence-transformers folder pools it."""

from __future__ import annotations

from typing import Any

import torch

from .feature_extraction import FeatureExtractionPipeline

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


def pooling_modes_from_config(cfg: dict[str, Any] | None) -> tuple[str, ...]:
    """Pooling modes of a sentence-transformers ``1_Pooling/config.json`` (old boolean keys or new)."""
    if not cfg:
        return ("mean",)
    mode = cfg.get("pooling_mode")
    if mode is not None:
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    else:
        modes = tuple(m for k, m in _LEGACY_POOLING_KEYS.items() if cfg.get(k, False)) or ("mean",)
    return modes


def check_pooling(pooling: Any) -> tuple[str, ...]:
    """Pooling modes from a name, a list of names or None (mean); a ValueError for others."""
    modes = (pooling,) if isinstance(pooling, str) else tuple(pooling or ("mean",))
    for m in modes:
        if m not in POOLING_MODES:
            raise ValueError(f"unknown pooling mode {m!r}: use one of {', '.join(POOLING_MODES)}")
    return modes


def pool(
    hidden: torch.Tensor, mask: torch.Tensor, lengths: list[int], modes: tuple[str, ...]
) -> torch.Tensor:
    """Sentence vectors (B, hidden × len(modes)) of fp32 hidden states (B, L, hidden) and the mask (B, L)."""
    mask = mask.to(hidden.dtype).unsqueeze(-1)  # (B, L, 1)
    vectors = []
    for mode in modes:
        if mode == "cls":
            vectors.append(hidden[:, 0])
        elif mode == "max":
            vectors.append(hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values)
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            total = (hidden * mask).sum(dim=1)
            count = mask.sum(dim=1).clamp(min=1e-9)
            vectors.append(total / (count if mode == "mean" else count.sqrt()))
        elif mode == "weightedmean":
            positions = torch.arange(1, hidden.shape[1] + 1, device=hidden.device, dtype=hidden.dtype)
            w = positions.view(1, -1, 1) * mask
            vectors.append((hidden * w).sum(dim=1) / w.sum(dim=1).clamp(min=1e-9))
        elif mode == "lasttoken":
            last = torch.tensor([L - 1 for L in lengths], device=hidden.device)
            vectors.append(hidden[torch.arange(len(lengths), device=hidden.device), last])
    return torch.cat(vectors, dim=-1)


class SentenceEmbeddingPipeline(FeatureExtractionPipeline):
    """``sentence-embedding``: one vector per input, pooled as the sentence-transformers folder says
    (``1_Pooling/config.json``: mean / CLS / max..., then ``Normalize`` when ``modules.json`` lists it).

    ``pooling=`` and ``normalize=`` given at construction or to a call override the folder's config."""

    task = "sentence-embedding"

    def __init__(self, *args: Any, pooling: Any = None, normalize: bool | None = None, **kwargs: Any) -> None:
        self.pooling = check_pooling(pooling)
        self.normalize = bool(normalize)
        super().__init__(*args, **kwargs)

    def _sanitize(
        self,
        truncation: Any = None,
        tokenize_kwargs: dict | None = None,
        return_tensors: bool | None = None,
        pooling: Any = None,
        normalize: bool | None = None,
    ):
        params = super()._sanitize(truncation, tokenize_kwargs, return_tensors)
        forward: dict[str, Any] = {}
        if pooling is not None:
            forward["pooling"] = check_pooling(pooling)
        if normalize is not None:
            forward["normalize"] = bool(normalize)
        return {**params, "forward": forward}

    def extract(self, output, attention_mask, lengths, features, pooling=None, normalize=None, **_):
        hidden = self._hidden(output).float()  # (B, L, hidden)
        pooled = pool(hidden, attention_mask, lengths, pooling or self.pooling)
        if self.normalize if normalize is None else normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return list(pooled.cpu().unbind(0))

    def postprocess(self, item, features, return_tensors: bool = False):
        v = features[0]["output"]
        return v if return_tensors else v.tolist()

    def _many(self, items, params):
        out = super()._many(items, params)
        if params["postprocess"].get("return_tensors") and out:
            return torch.stack(out)
        return out
