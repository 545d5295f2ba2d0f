"""ModernBertConfig: transformers' ``ModernBertConfig`` (``model_type`` ``modernbert``), fields and defaults.

Two forms of ``config.json`` are read, as transformers reads them:

- the current one: ``layer_types`` (``"full_attention"`` / ``"sliding_attention"`` per layer) and
  ``rope_parameters`` (``{"full_attention": {"rope_type": "default", "rope_theta": ...}, "sliding_attention":
  {...}}``);
- the one real checkpoints on the hub carry: ``global_attn_every_n_layers`` (layer i is global when
  ``i % n == 0``), ``global_rope_theta``, ``local_rope_theta`` (and often BERT's ``layer_norm_eps`` /
  ``position_embedding_type``, kept as they are).

The written form is transformers 5's: ``layer_types`` and ``rope_parameters`` (``global_attn_every_n_layers``
is kept when it was given, as transformers keeps it; the two thetas are folded into ``rope_parameters``).

Fewer layers than ``layer_types`` lists (``from_pretrained(path, num_hidden_layers=k)``, or
``config.num_hidden_layers = k`` before building: a checkpoint truncated for distillation or pruning) build the
first k, of the first k types, as transformers builds them; ``config.json`` is written with those k types
(transformers 5.25 refuses to save such a config: its ``layer_types`` must have one entry per layer).

The shared engine reads BERT's names: ``attention_probs_dropout_prob`` reads ``attention_dropout``, and
``hidden_dropout_prob`` the largest of ``embedding_dropout`` / ``mlp_dropout`` / ``attention_dropout``
(ModernBERT has neither field). A value given or set under either BERT name is kept and written back unread,
as transformers' ModernBERT keeps it as an unused attribute (it is not ModernBERT's dropout). BERT's other
fields are written to ``config.json`` only when the input had them; BERT's ``hidden_act`` among them is not
an alias: transformers' ModernBERT keeps it as an unused attribute and its MLP runs ``hidden_activation``
(default ``gelu``), and so does fastbert.
"""

from __future__ import annotations

import copy
from typing import Any

from ...config import _BERT_DEFAULTS, _INT, _NUMBER, BertConfig, _field_type_error, _is_kind

FULL, SLIDING = "full_attention", "sliding_attention"
LAYER_TYPES = (FULL, SLIDING)

#: transformers' ``ModernBertConfig.default_theta``
DEFAULT_THETA = {FULL: 160_000.0, SLIDING: 10_000.0}

#: every field of transformers' ModernBertConfig with its default (``layer_types`` / ``rope_parameters``
#: None: derived in ``__init__``)
MODERNBERT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 50368,
    "hidden_size": 768,
    "intermediate_size": 1152,
    "num_hidden_layers": 22,
    "num_attention_heads": 12,
    "hidden_activation": "gelu",
    "max_position_embeddings": 8192,
    "initializer_range": 0.02,
    "initializer_cutoff_factor": 2.0,
    "norm_eps": 1e-5,
    "norm_bias": False,
    "pad_token_id": 50283,
    "eos_token_id": 50282,
    "bos_token_id": 50281,
    "cls_token_id": 50281,
    "sep_token_id": 50282,
    "attention_bias": False,
    "attention_dropout": 0.0,
    "layer_types": None,
    "rope_parameters": None,
    "local_attention": 128,
    "embedding_dropout": 0.0,
    "mlp_bias": False,
    "mlp_dropout": 0.0,
    "decoder_bias": True,
    "classifier_pooling": "cls",
    "classifier_dropout": 0.0,
    "classifier_bias": False,
    "classifier_activation": "gelu",
    "deterministic_flash_attn": False,
    "sparse_prediction": False,
    "sparse_pred_ignore_index": -100,
    "tie_word_embeddings": True,
}

#: BERT's dropouts the engine reads, derived from ModernBERT's (a value given under these names is kept
#: unread, as transformers keeps it: not ``hidden_act`` either, its MLP runs ``hidden_activation``)
_DERIVED = ("attention_probs_dropout_prob", "hidden_dropout_prob")

#: BERT's fields the engine reads that ModernBERT does not have: written only when the input had them
_BERT_ONLY = tuple(k for k in _BERT_DEFAULTS if k not in MODERNBERT_DEFAULTS and k not in _DERIVED)

_BOOLS = (
    "norm_bias",
    "attention_bias",
    "mlp_bias",
    "decoder_bias",
    "classifier_bias",
    "deterministic_flash_attn",
    "sparse_prediction",
)
_DROPOUTS = ("attention_dropout", "embedding_dropout", "mlp_dropout", "classifier_dropout")
#: ModernBERT's numeric fields (kind, None allowed), checked when the config is made, as BERT's are; the
#: dropouts first: the shared checks read BERT's derived ``hidden_dropout_prob``, their largest
_FIELD_TYPES = {
    "attention_dropout": (_NUMBER, False),
    "embedding_dropout": (_NUMBER, False),
    "mlp_dropout": (_NUMBER, False),
    "norm_eps": (_NUMBER, False),
    "initializer_cutoff_factor": (_NUMBER, True),  # None: transformers' initialisation cuts at 3 std
    "sparse_pred_ignore_index": (_INT, False),
}


class ModernBertConfig(BertConfig):
    """Configuration of a ModernBERT model, field for field as transformers' ``ModernBertConfig``:
    pre-norm layers with LayerNorm (``norm_bias`` False: no bias), a fused ``Wqkv``, RoPE with one theta
    per layer type, global or local (sliding window of ``local_attention`` tokens) attention by
    ``layer_types``, a GeGLU MLP, and no position or token-type tables."""

    model_type = "modernbert"
    compatible_model_types = ("modernbert",)
    family_name = "ModernBERT"
    _activation_field = "hidden_activation"
    _family_defaults: dict[str, Any] = {
        k: v for k, v in MODERNBERT_DEFAULTS.items() if k not in ("layer_types", "rope_parameters")
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs = dict(kwargs)
        #: the BERT-only fields the input had (written back as they came)
        given_bert = {k for k in _BERT_ONLY if k in kwargs}
        given_dropouts = {k: kwargs.pop(k) for k in _DERIVED if k in kwargs}  # kept, unread (see _DERIVED)
        layer_types = kwargs.pop("layer_types", None)
        rope_parameters = copy.deepcopy(kwargs.pop("rope_parameters", None))
        rope_scaling = kwargs.pop("rope_scaling", None)
        global_theta = kwargs.pop("global_rope_theta", None)
        local_null = "local_rope_theta" in kwargs and kwargs["local_rope_theta"] is None
        local_theta = kwargs.pop("local_rope_theta", None)
        # transformers 4's ModernBertAttention: local layers without a theta (null) use the global one
        if local_null:
            local_theta = global_theta if global_theta is not None else DEFAULT_THETA[FULL]
        #: transformers 4's switch of its torch.compile'd layers (``from_pretrained(path,
        #: reference_compile=False)``): kept, unread (fastbert compiles nothing), never written, as transformers
        reference_compile = kwargs.pop("reference_compile", None)
        kwargs.setdefault("type_vocab_size", 1)  # no token-type table: only type 0 (the engine's range check)
        super().__init__(**kwargs)
        self._given_bert = given_bert
        self._bert_dropouts = given_dropouts  # BertConfig.__init__ set BERT's defaults through the setters
        self.reference_compile = reference_compile
        if layer_types is None:
            every = getattr(self, "global_attn_every_n_layers", 3)  # the hub form (kept as given)
            if isinstance(every, bool) or not isinstance(every, int) or every < 1:
                raise ValueError(
                    f"config field global_attn_every_n_layers must be a positive integer, got {every!r}"
                )
            layer_types = [SLIDING if i % every else FULL for i in range(self.num_hidden_layers)]
        #: a list (a string is refused by validate, not read as a list of letters)
        self.layer_types = list(layer_types) if isinstance(layer_types, (list, tuple)) else layer_types
        if rope_parameters is None:
            rope_parameters = {SLIDING: {"rope_type": "default"}, FULL: {"rope_type": "default"}}
        if not isinstance(rope_parameters, dict) or not all(
            k in LAYER_TYPES and isinstance(v, dict) for k, v in rope_parameters.items()
        ):
            raise ValueError(
                f"config field rope_parameters must map the layer types {LAYER_TYPES} to their RoPE parameters "
                f"(as transformers' ModernBertConfig), got {rope_parameters!r}"
            )
        if rope_scaling is not None:
            for kind in LAYER_TYPES:
                rope_parameters.setdefault(kind, {"rope_type": "default"}).update(rope_scaling)
        for kind, theta in ((FULL, global_theta), (SLIDING, local_theta)):
            params = rope_parameters.get(kind)
            if params is None:
                params = rope_parameters[kind] = {"rope_type": "default"}
            params.setdefault("rope_type", params.pop("type", "default"))
            params.setdefault("rope_theta", theta if theta is not None else DEFAULT_THETA[kind])
        self.rope_parameters = rope_parameters

    # ----------------------------------------------------------------- BERT's names the engine reads
    @property
    def hidden_dropout_prob(self) -> float:
        """The largest dropout of the embeddings, the MLP and attention (the engine's "trains with dropout")."""
        return max(self.embedding_dropout, self.mlp_dropout, self.attention_dropout)

    @hidden_dropout_prob.setter
    def hidden_dropout_prob(self, value: Any) -> None:
        self.__dict__.setdefault("_bert_dropouts", {})["hidden_dropout_prob"] = value  # kept, unread

    @property
    def attention_probs_dropout_prob(self) -> float:
        """ModernBERT's ``attention_dropout`` (the engine reads BERT's name)."""
        return self.attention_dropout

    @attention_probs_dropout_prob.setter
    def attention_probs_dropout_prob(self, value: Any) -> None:
        self.__dict__.setdefault("_bert_dropouts", {})["attention_probs_dropout_prob"] = value  # kept, unread

    @property
    def sliding_window(self) -> int:
        """Half the window, as transformers: a local layer's query i sees key j iff |i - j| <= this."""
        return self.local_attention // 2

    @sliding_window.setter
    def sliding_window(self, value: int) -> None:
        self.local_attention = value * 2

    @property
    def used_layer_types(self) -> list[str]:
        """The types of the layers a model of this config has: the first ``num_hidden_layers`` of
        ``layer_types`` (transformers' layer i reads ``layer_types[i]``; a config whose layer count was lowered
        after ``layer_types`` was derived lists more)."""
        return list(self.layer_types[: self.num_hidden_layers])

    def rope_theta_of(self, layer_type: str) -> float:
        """The RoPE theta of a layer type (not named ``rope_theta``: a config.json may carry a ``rope_theta``
        field, which transformers' ModernBERT keeps unread and which would hide a method of that name)."""
        return float(self.rope_parameters[layer_type]["rope_theta"])

    # ----------------------------------------------------------------- validation and serialisation
    def _check_types(self) -> None:
        for name, (kind, nullable) in _FIELD_TYPES.items():
            value = getattr(self, name)
            if not (value is None and nullable) and not _is_kind(value, kind):
                raise _field_type_error(name, kind + (" or null" if nullable else ""), value)
        super()._check_types()

    def validate(self) -> None:
        where = f"{self._config_file}: " if getattr(self, "_config_file", None) else ""

        def bad(message: str) -> ValueError:
            return ValueError(f"{where}config field {message}")

        # before the shared checks: they read hidden_dropout_prob, derived from these (a bad one was named
        # hidden_dropout_prob, or failed in max() with a TypeError)
        for name in _DROPOUTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise bad(f"{name} is a dropout probability: it must be in [0, 1], got {value!r}")
        super().validate()
        types = self.layer_types
        if not isinstance(types, list) or len(types) < self.num_hidden_layers:
            raise bad(
                f"layer_types must list one type per layer ({self.num_hidden_layers}; a longer list is read up "
                f"to num_hidden_layers, as transformers reads it), got {types!r}"
            )
        for t in types:
            if t not in LAYER_TYPES:
                raise bad(f"layer_types holds {t!r}; ModernBERT's layer types are {LAYER_TYPES}")
        for kind in set(self.used_layer_types):
            params = self.rope_parameters.get(kind) if isinstance(self.rope_parameters, dict) else None
            if not isinstance(params, dict):
                raise bad(f"rope_parameters has no entry for {kind!r}")
            if params.get("rope_type", "default") != "default":
                raise bad(
                    f"rope_parameters[{kind!r}] has rope_type {params.get('rope_type')!r}: fastbert has the "
                    "default RoPE only (as every released ModernBERT checkpoint)"
                )
            theta = params.get("rope_theta")
            if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not theta > 0:
                raise bad(f"rope_parameters[{kind!r}]['rope_theta'] must be a positive number, got {theta!r}")
        width = self.hidden_size // self.num_attention_heads
        given = self.__dict__.get("head_dim")
        if given is not None and (isinstance(given, bool) or not isinstance(given, int)):
            raise bad(f"head_dim must be an integer or null, got {given!r}")
        if given and given != width:  # transformers' RoPE reads head_dim or, when 0 or null, the width
            raise bad(
                f"head_dim is {given}, not hidden_size / num_attention_heads = {width}: ModernBERT's attention "
                f"splits hidden_size into heads of {width} and its RoPE rotates head_dim dimensions, which runs "
                "only when the two are equal (transformers' forward fails on the shapes); fastbert does not run "
                "it: remove head_dim from the config or set it to the width"
            )
        if width % 2:
            raise bad(f"hidden_size / num_attention_heads = {width} must be even for RoPE")
        local = self.local_attention
        if isinstance(local, bool) or not isinstance(local, int) or local < 2:
            raise bad(f"local_attention must be an integer >= 2 (the window, in tokens), got {local!r}")
        if self.classifier_pooling not in ("cls", "mean"):
            raise bad(f"classifier_pooling must be 'cls' or 'mean', got {self.classifier_pooling!r}")
        if not 0.0 < self.norm_eps < 1.0:
            raise bad(f"norm_eps must be a small positive number (0 < eps < 1), got {self.norm_eps}")
        for name in _BOOLS:
            if not isinstance(getattr(self, name), bool):
                raise bad(f"{name} must be a boolean (true/false), got {getattr(self, name)!r}")
        from ...core.layers_ref import activation

        try:
            activation(self.classifier_activation, "classifier_activation")  # the field the error names
        except ValueError as e:
            raise bad(f"classifier_activation: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        layers = self.num_hidden_layers
        if (
            isinstance(out.get("layer_types"), list)
            and isinstance(layers, int)
            and len(out["layer_types"]) > layers
        ):
            out["layer_types"] = out["layer_types"][:layers]  # a truncated model: the types of its layers
        out.pop("reference_compile", None)  # transformers drops it when writing
        given = getattr(self, "_given_bert", set())
        for name in _BERT_ONLY:
            if name not in given:
                out.pop(name, None)
        out.update(copy.deepcopy(getattr(self, "_bert_dropouts", {})))  # BERT's names given: written back
        return dict(sorted(out.items()))
