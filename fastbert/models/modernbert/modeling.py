"""ModernBERT on the shared engine, with transformers' module tree and parameter names
(``model.embeddings.tok_embeddings``, ``model.layers.0.attn.Wqkv``, ``attn.Wo``, ``mlp_norm``, ``mlp.Wi``,
``mlp.Wo``, ``attn_norm`` from layer 1 on, ``model.final_norm``; heads ``head.dense`` / ``head.norm``,
``decoder`` tied to the token embeddings, ``classifier``).

The recipe, always on packed tokens on ``sdpa`` and ``triton`` (``always_pack``: the window and RoPE run in
the varlen attention, positions restarting in every sequence; ``eager`` is transformers' padded twin):

- embeddings: ``tok_embeddings`` + LayerNorm (``norm_bias`` False: no bias); no position or type table;
- pre-norm layers: ``attn_norm`` (Identity on layer 0) -> fused ``Wqkv`` -> RoPE (the layer type's theta) ->
  global or local attention (``|i - j| <= local_attention // 2``) -> ``Wo`` + residual -> ``mlp_norm`` (the
  residual add and the norm in one op) -> GeGLU MLP (``Wi`` -> ``act(input) * gate`` -> ``Wo``) + residual;
- ``final_norm``, then the heads: ``head`` (dense + ``classifier_activation`` + LayerNorm), then ``decoder``
  (masked LM) or ``drop`` + ``classifier``; sequence classification and multiple choice pool by
  ``classifier_pooling`` (``cls`` or ``mean``).

Every layer calls only the op table's primitives and composites (``linear``, ``add_norm``, ``dense_glu``,
``dense_act``, ``embed``, ``attention`` with the layer type's :class:`~fastbert.core.ops.AttentionSpec`).
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from ... import outputs
from ...core.attention_ref import rope_cos_sin, rope_inv_freq
from ...core.ops import OpTable
from ...core.padding import unpack
from ..bert import modeling as bert
from ..engine import BertInputs, BertModel, BertPreTrainedModel, Encoded
from ..heads import (
    NoTokenTypesHead,
    _check_shape,
    conform_targets,
    fixed_cross_entropy,
    loss_kwargs_of,
    refuse_packed_labels,
)
from ..layers import LayerContext, _Module, _plain_module, embedding, fusable_linear, fused_embed, run_linear
from .config import SLIDING, ModernBertConfig


def _norm(ops: OpTable, m: nn.Module, x: torch.Tensor, residual: torch.Tensor | None = None, prenorm=False):
    """LayerNorm (optionally without bias) of ``x + residual`` through the table; with ``prenorm`` also the
    sum (the next residual)."""
    if type(m) is not nn.LayerNorm:  # replaced by hand: its own forward
        h = x if residual is None else x + residual
        return (m(h), h) if prenorm else m(h)
    return ops.add_norm(x, residual, None, m.weight, m.bias, m.eps, prenorm=prenorm)


# --------------------------------------------------------------------------------------------- transformers 4
#: transformers 4.57's ModernBERT forward keywords (its unpadded flash-attention inputs and the local layers'
#: mask), gone from transformers 5, which ignores them
TRANSFORMERS4_KEYWORDS = (
    "sliding_window_mask",
    "indices",
    "cu_seqlens",
    "max_seqlen",
    "batch_size",
    "seq_len",
)


def takes_transformers4_keywords(forward):
    """``forward`` that also takes transformers 4.57's ModernBERT keywords (:data:`TRANSFORMERS4_KEYWORDS`),
    as its era's code passes them: None is accepted (transformers 5 ignores them), and so are ``batch_size``
    and ``seq_len`` equal to the input's (transformers 4 reads them for the default mask and positions); any
    other value is refused by name. The signature stays transformers 5's (``inspect.signature`` follows the
    wrapper to ``forward``)."""
    names = frozenset(TRANSFORMERS4_KEYWORDS)

    @functools.wraps(forward)
    def wrapper(self, *args, **kwargs):
        if not names.isdisjoint(kwargs):
            given = {name: kwargs.pop(name) for name in TRANSFORMERS4_KEYWORDS if name in kwargs}
            _check_transformers4_keywords(forward, self, args, kwargs, given)
        return forward(self, *args, **kwargs)

    return wrapper


def _check_transformers4_keywords(forward, self, args, kwargs, given: dict) -> None:
    shape = None
    for name, value in given.items():
        if value is None:
            continue
        if name in ("batch_size", "seq_len"):
            if shape is None:
                shape = _flat_input_shape(inspect.signature(forward).bind(self, *args, **kwargs).arguments)
            want = shape[0] if name == "batch_size" else shape[1]
            if isinstance(value, bool) or not isinstance(value, int) or value != want:
                raise ValueError(
                    f"{name}={value!r} is transformers 4's {name} of the padded batch, which is {want} here "
                    f"(the encoder's input shape is {tuple(shape)}): pass {want} or None"
                )
        elif name == "sliding_window_mask":
            raise ValueError(
                "sliding_window_mask (transformers 4's mask of the local layers) is not supported by fastbert: "
                "the local layers' window is derived from attention_mask and config.local_attention, as "
                "transformers 4 and 5 derive it on their sdpa and eager paths; pass None"
            )
        else:
            raise ValueError(
                f"{name} (transformers 4's input of a batch unpadded beforehand, for its flash-attention path) is "
                "not supported by fastbert, which removes the padding itself: pass the padded input_ids (or "
                f"inputs_embeds) with attention_mask, and {name}=None"
            )


def _flat_input_shape(arguments: dict) -> tuple[int, int]:
    """(rows, length) of the encoder's input: multiple choice's (batch, choices, ...) flattened, as transformers
    4 passes it to its encoder."""
    ids, embeds = arguments.get("input_ids"), arguments.get("inputs_embeds")
    if isinstance(ids, torch.Tensor):
        dims = tuple(ids.shape)
    elif isinstance(embeds, torch.Tensor):
        dims = tuple(embeds.shape[:-1])
    else:
        raise ValueError("batch_size / seq_len given without input_ids or inputs_embeds")
    return math.prod(dims[:-1]), dims[-1]


# --------------------------------------------------------------------------------------------- modules
class ModernBertEmbeddings(_Module):
    """``tok_embeddings`` + ``norm`` (LayerNorm, bias by ``norm_bias``) + ``drop``."""

    def __init__(self, config: ModernBertConfig):
        super().__init__()
        self.config = config
        self.tok_embeddings = embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)
        self.drop = nn.Dropout(config.embedding_dropout)

    @property
    def word_embeddings(self) -> nn.Embedding:
        """BERT's name of ``tok_embeddings`` (what the shared driver reads)."""
        return self.tok_embeddings

    def forward(self, input_ids, inputs_embeds, ctx: LayerContext):
        """ids (T,) packed or (B, L) padded, or their embeddings -> (..., H)."""
        norm = self.norm
        if inputs_embeds is None and not ctx.dropout and _plain_module(self.tok_embeddings):
            return fused_embed(ctx.ops, norm, (input_ids, self.tok_embeddings))
        if inputs_embeds is None:
            inputs_embeds = self.tok_embeddings(input_ids)
        return self.drop(_norm(ctx.ops, norm, inputs_embeds))


class ModernBertMLP(_Module):
    """GeGLU: ``Wi`` gives [input | gate], ``act(input) * gate``, ``drop``, ``Wo``."""

    def __init__(self, config: ModernBertConfig):
        super().__init__()
        self.config = config
        self.Wi = nn.Linear(config.hidden_size, int(config.intermediate_size) * 2, bias=config.mlp_bias)
        self.hidden_activation = config.hidden_activation
        self.drop = nn.Dropout(config.mlp_dropout)
        self.Wo = nn.Linear(config.intermediate_size, config.hidden_size, bias=config.mlp_bias)

    def forward(self, hidden_states, ctx: LayerContext):
        ops, wi = ctx.ops, self.Wi
        if fusable_linear(wi):
            h = ops.dense_glu(hidden_states, wi.weight, wi.bias, self.hidden_activation)
        else:
            h = ops.glu(wi(hidden_states), None, self.hidden_activation)
        if ctx.dropout:
            h = self.drop(h)
        return run_linear(ops, self.Wo, h)


class ModernBertAttention(_Module):
    """Self-attention: fused ``Wqkv`` (no bias by default), RoPE and the window from the layer type's
    :class:`AttentionSpec`, ``Wo``, ``out_drop``."""

    def __init__(self, config: ModernBertConfig, layer_idx: int | None = None):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.Wqkv = nn.Linear(
            config.hidden_size, 3 * self.head_dim * self.num_heads, bias=config.attention_bias
        )
        self.Wo = nn.Linear(config.hidden_size, config.hidden_size, bias=config.attention_bias)
        self.out_drop = (
            nn.Dropout(config.attention_dropout) if config.attention_dropout > 0.0 else nn.Identity()
        )

    def forward(self, hidden_states, ctx: LayerContext, spec):
        """(T, H) packed or (B, L, H) padded -> the same shape, the probabilities (eager) or None."""
        h, d = self.num_heads, self.head_dim
        lead = hidden_states.shape[:-1]
        ops = ctx.ops
        q, k, v = run_linear(ops, self.Wqkv, hidden_states).view(*lead, 3, h, d).unbind(-3)  # (..., h, d)
        dropout_p = self.attention_dropout if self.training else 0.0
        context, probs = ops.attention(q, k, v, spec, self.scaling, dropout_p)
        out = run_linear(ops, self.Wo, context.reshape(*lead, h * d))
        if ctx.dropout:
            out = self.out_drop(out)
        return out, probs


class ModernBertEncoderLayer(_Module):
    gradient_checkpointing = False  # set by gradient_checkpointing_enable (``model_api``)

    def __init__(self, config: ModernBertConfig, layer_idx: int | None = None):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        if layer_idx == 0:
            self.attn_norm = nn.Identity()
        else:
            self.attn_norm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)
        self.attn = ModernBertAttention(config, layer_idx)
        self.mlp_norm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)
        self.mlp = ModernBertMLP(config)
        self.attention_type = config.layer_types[layer_idx]

    def forward(self, hidden_states, ctx: LayerContext, encoder_hidden_states=None, past_key_value=None):
        ops = ctx.ops
        x = hidden_states
        if type(self.attn_norm) is not nn.Identity:
            x = _norm(ops, self.attn_norm, hidden_states)
        attn_out, probs = self.attn(x, ctx, ctx.spec_for(self.attention_type))
        # residual add + mlp_norm in one op: (mlp_norm(h), h) with h = hidden + attn_out
        mlp_in, h = _norm(ops, self.mlp_norm, attn_out, hidden_states, prenorm=True)
        return h + self.mlp(mlp_in, ctx), probs, None, None


# --------------------------------------------------------------------------------------------- base
class ModernBertPreTrainedModel(BertPreTrainedModel):
    config_class = ModernBertConfig
    base_model_prefix = "model"
    _tied_weights_keys: dict[str, str] = {}

    def _init_weights(self, module: nn.Module) -> None:
        """transformers' ModernBERT initialisation: truncated normals (cutoff ``initializer_cutoff_factor``
        std) with ``initializer_range`` in, ``/ sqrt(2 layers)`` out, ``hidden_size ** -0.5`` for the
        classifiers; LayerNorm 1 / 0; biases 0."""
        cfg = self.config
        cutoff = cfg.initializer_cutoff_factor if cfg.initializer_cutoff_factor is not None else 3
        std_in = cfg.initializer_range
        std_out = cfg.initializer_range / math.sqrt(2.0 * max(cfg.num_hidden_layers, 1))

        def init(m: nn.Module, std: float) -> None:
            nn.init.trunc_normal_(m.weight, mean=0.0, std=std, a=-cutoff * std, b=cutoff * std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

        if isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.Linear, nn.Embedding)):
            init(module, _std_of(self, module, std_in, std_out))

    def get_input_embeddings(self) -> nn.Embedding:
        return self.base_model.embeddings.tok_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.base_model.embeddings.tok_embeddings = value

    def _lm_head(self) -> nn.Module | None:
        return None


def _std_of(model: nn.Module, module: nn.Module, std_in: float, std_out: float) -> float:
    """The standard deviation transformers initialises this Linear / Embedding with (found by identity:
    ``_init_weights`` also runs on a lone module whose weights a checkpoint did not give)."""
    for m in model.modules():
        if isinstance(m, ModernBertMLP) and module is m.Wo:
            return std_out
        if isinstance(m, ModernBertAttention) and module is m.Wo:
            return std_out
        if isinstance(m, ModernBertPredictionHead) and module is m.dense:
            return std_out
        if isinstance(m, ModernBertForMaskedLM) and module is m.decoder:
            return std_out
        if isinstance(m, _CLASSIFIERS) and module is m.classifier:
            return model.config.hidden_size**-0.5
    return std_in  # tok_embeddings, Wqkv, Wi (and anything added by hand)


def _consecutive(positions: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """A 0-d bool tensor: the positions of each row's real tokens count up by one with their index in the row
    (position minus index the same for all of them). Padded positions are not read (transformers' RoPE of the
    real tokens does not see them): a left-padded row may carry ``cumsum(mask) - 1`` positions with any value
    at the padding."""
    offsets = positions - torch.arange(positions.shape[-1], device=positions.device)
    if mask is None:
        return (offsets == offsets[:, :1]).all()
    real = mask.bool()
    offsets = offsets.expand(real.shape)
    hi = offsets.masked_fill(~real, torch.iinfo(offsets.dtype).min).amax(dim=-1)
    lo = offsets.masked_fill(~real, torch.iinfo(offsets.dtype).max).amin(dim=-1)
    return ((hi == lo) | ~real.any(dim=-1)).all()


class ModernBertModel(ModernBertPreTrainedModel, BertModel):
    """The bare ModernBERT encoder (transformers' ``ModernBertModel``): no pooler, ``final_norm`` at the end."""

    always_pack = True  # the window and RoPE run in the packed attention, also without padding
    position_table = False  # RoPE: any length, any position, as transformers' ModernBERT
    splits_restarting_positions = False  # transformers 5 builds this family's mask without position_ids
    honours_is_decoder = False  # an encoder only: transformers' attends both ways, is_decoder or not
    #: query/key/value are one plain linear (``Wqkv``), and so are the GLU's input and gate (``Wi``)
    linear_layout = ("layers", None, ("attn.Wqkv", "attn.Wo", "mlp.Wi", "mlp.Wo"))

    def __init__(self, config: ModernBertConfig, add_pooling_layer: bool = False):
        BertPreTrainedModel.__init__(self, config)  # not BertModel's modules
        self.embeddings = ModernBertEmbeddings(config)
        self.layers = nn.ModuleList(
            [ModernBertEncoderLayer(config, i) for i in range(config.num_hidden_layers)]
        )
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)
        self.pooler = None  # ModernBERT has none (``add_pooling_layer`` is accepted for the shared heads)
        self.__dict__["_rope_cache"] = {}
        self.post_init()

    def _layers(self) -> nn.ModuleList:
        return self.layers

    @takes_transformers4_keywords
    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        inputs_embeds=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        kwargs.pop("token_type_ids", None)  # a BERT tokenizer's: ModernBERT has no table
        enc = self.encode(BertInputs.of(locals()))
        out = outputs.BaseModelOutput(
            last_hidden_state=enc.last_hidden_state,
            hidden_states=enc.hidden_states,
            attentions=enc.attentions,
        )
        return self._return(out, return_dict)

    # -- the family's recipe on the shared driver
    def validate(self, inputs: BertInputs, past_length: int = 0, read_lengths: bool = True):
        inputs.token_type_ids = None  # no token-type table
        checked = super().validate(inputs, past_length, read_lengths)
        positions = inputs.position_ids
        if positions is not None:  # RoPE scores see offsets only: rows of consecutive positions are exact
            if positions.shape[-1] > 1 and not bool(_consecutive(positions, inputs.attention_mask)):
                raise ValueError(
                    "position_ids must count up by one along each row (ModernBERT's RoPE positions restart at "
                    "every sequence of the packed batch); other positions are not supported by fastbert"
                )
        return checked

    def _default_position_ids(self, inputs, batch: int, seqlen: int, past_length: int) -> torch.Tensor:
        device = inputs.reference.device
        return torch.arange(past_length, past_length + seqlen, device=device).expand(batch, seqlen)

    def _rope(
        self, layer_type: str, device: torch.device, positions: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 (n, D // 2) cos / sin of the layer type's theta for n = max_position_embeddings, or the next
        power of two that holds ``positions`` beyond it (built once per device, theta and n)."""
        theta = self.config.rope_theta_of(layer_type)
        head_dim = self.config.hidden_size // self.config.num_attention_heads
        n = self.config.max_position_embeddings
        if positions > n:
            n = 1 << (positions - 1).bit_length()
        key = (theta, head_dim, n, str(device))
        cache = self.__dict__.setdefault("_rope_cache", {})
        found = cache.get(key)
        if found is None:
            found = cache[key] = rope_cos_sin(rope_inv_freq(theta, head_dim, device), n)
        return found

    def _layer_specs(self, attn, ops: OpTable, positions: int) -> dict:
        """One :class:`AttentionSpec` per layer type: RoPE with its theta; the sliding layers' window, left
        out when no sequence of the batch is longer than half the window + 1 (every key is inside it then:
        the same result through plain attention)."""
        device = self.embeddings.tok_embeddings.weight.device
        local = self.config.local_attention
        longest = None
        if attn.q_packing is not None:
            longest = attn.q_packing.max_seqlen
        elif attn.key_mask is not None:
            longest = attn.key_mask.shape[1]
        specs = {}
        for kind in set(self.config.used_layer_types):
            window = local if kind == SLIDING and (longest is None or longest - 1 > local // 2) else 0
            specs[kind] = replace(attn, window=window, rotary=self._rope(kind, device, positions))
        return specs

    def _embed(self, inputs: BertInputs, ctx: LayerContext, batch: int, seqlen: int, past_length: int):
        ids, embeds = inputs.input_ids, inputs.inputs_embeds
        packing = ctx.attn.q_packing
        if packing is not None:
            from ...core.padding import pack

            ids, embeds = self._hooked_word_embeddings(ids, embeds)
            ids = pack(ids, packing) if ids is not None else None
            embeds = pack(embeds, packing) if embeds is not None else None
        return self.embeddings(ids, embeds, ctx), None

    def encode(self, inputs: BertInputs, keep_packed: bool = False, allow_pack: bool = True, host_reads=True):
        """The shared driver's layers, then ``final_norm`` on the (packed) tokens; the last hidden state in
        ``hidden_states`` is the normed one, as transformers returns it."""
        graphed = self._default_graphs(inputs, keep_packed, allow_pack, host_reads)  # replays this method
        if graphed is not None:
            return graphed
        enc = super().encode(inputs, keep_packed=True, allow_pack=allow_pack, host_reads=host_reads)
        enc.sequence = _norm(enc.ops, self.final_norm, enc.sequence)
        enc._padded = None
        if enc.hidden_states is not None:  # padded, as the other hidden states
            last = unpack(enc.sequence, enc.packing) if enc.packing is not None else enc.sequence
            enc.hidden_states = enc.hidden_states[:-1] + (last,)
        if not keep_packed and enc.packing is not None and not enc._packed_outputs():
            enc.sequence, enc.packing = enc.padded_sequence, None
        return enc


ModernBertPreTrainedModel.base_model_class = ModernBertModel


# --------------------------------------------------------------------------------------------- heads
class ModernBertPredictionHead(_Module):
    """``dense`` (bias by ``classifier_bias``) + ``classifier_activation`` + ``norm``."""

    def __init__(self, config: ModernBertConfig):
        super().__init__()
        self.config = config
        self.dense = nn.Linear(config.hidden_size, config.hidden_size, config.classifier_bias)
        self.activation = config.classifier_activation
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)

    def forward(self, hidden_states, ops: OpTable):
        dense, norm = self.dense, self.norm
        if fusable_linear(dense) and type(norm) is nn.LayerNorm:
            return ops.dense_act(
                hidden_states, dense.weight, dense.bias, self.activation, norm.weight, norm.bias, norm.eps
            )
        return norm(ops.bias_act(dense(hidden_states), None, self.activation))


class _PerToken:
    """The shared head protocol for the per-token heads, under another name than ``head`` (transformers'
    name of the :class:`ModernBertPredictionHead` module); token types are dropped (ModernBERT has none)."""

    def _run(self, inputs: BertInputs, return_dict, **targets):
        targets = conform_targets(self, inputs, targets)
        inputs.token_type_ids = None
        self.check_targets(inputs, **targets)
        allow_pack = self.allow_pack(inputs, **targets)
        refuse_packed_labels(self, targets.get("labels"), allow_pack)
        enc = self.base_model.encode(inputs, keep_packed=True, allow_pack=allow_pack)
        logits = self._logits(enc)
        return self._return(self.output(self.loss(logits, **targets), logits, enc), return_dict)


class ModernBertForMaskedLM(NoTokenTypesHead, ModernBertPreTrainedModel, bert.BertForMaskedLM):
    _tied_weights_keys = {"decoder.weight": "model.embeddings.tok_embeddings.weight"}
    per_token = True
    #: transformers' ModernBERT masked-LM loss (``ForMaskedLMLoss``) divides its sum by the Trainer's count
    loss_kwargs = ("num_items_in_batch",)
    forward = takes_transformers4_keywords(NoTokenTypesHead.forward)

    def __init__(self, config: ModernBertConfig):
        BertPreTrainedModel.__init__(self, config)
        self.model = ModernBertModel(config)
        self.head = ModernBertPredictionHead(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=config.decoder_bias)
        self.sparse_prediction = config.sparse_prediction
        self.sparse_pred_ignore_index = config.sparse_pred_ignore_index
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.decoder = new_embeddings

    def _lm_logits(self, hidden_states: torch.Tensor, ops: OpTable) -> torch.Tensor:
        return run_linear(ops, self.decoder, self.head(hidden_states, ops))

    def head_logits(self, enc: Encoded, labels=None):
        """Dense logits of every token; with ``sparse_prediction`` and labels, of the labelled tokens only
        (flattened), as transformers."""
        if self.sparse_prediction and labels is not None:
            states = enc.last_hidden_state.reshape(-1, enc.last_hidden_state.shape[-1])
            keep = labels.reshape(-1) != self.sparse_pred_ignore_index
            return self._lm_logits(states[keep.to(states.device)], enc.ops)
        return enc.per_token(self._lm_logits)

    def _run(self, inputs: BertInputs, return_dict, labels=None, num_items_in_batch=None):
        labels = conform_targets(self, inputs, {"labels": labels})["labels"]
        inputs.token_type_ids = None
        self.check_targets(inputs, labels=labels)
        allow_pack = self.allow_pack(inputs, labels=labels)
        refuse_packed_labels(self, labels, allow_pack)
        enc = self.base_model.encode(inputs, keep_packed=True, allow_pack=allow_pack)
        logits = self.head_logits(enc, labels)
        loss = None
        if labels is not None:
            target = labels.reshape(-1)
            if self.sparse_prediction:
                target = target[target != self.sparse_pred_ignore_index]
            loss = fixed_cross_entropy(
                logits.float().view(-1, self.config.vocab_size), target.to(logits.device), num_items_in_batch
            )
        return self._return(self.output(loss, logits, enc), return_dict)


def _pool(pooling: str, enc: Encoded, mask: torch.Tensor | None, first_real: bool) -> torch.Tensor:
    """The encoder's states -> (B, H): the ``cls`` token (position 0, or with ``first_real`` the first unmasked
    one, as transformers' multiple-choice head) or the ``mean`` over unmasked tokens; from the packed tokens
    by the cumulative lengths when :func:`~fastbert.core.padding.packed_outputs` left them packed."""
    packing = enc.packing
    if packing is not None:
        hidden = enc.sequence  # (T, H): each row's real tokens, one row after the other
        if pooling == "cls" and not first_real:
            return enc.first_token()
        if pooling == "cls":  # the first real token: a row's first packed one (zeros for a row without any)
            return enc.first_packed()
        sums = hidden.new_zeros(packing.batch, hidden.shape[-1]).index_add_(0, packing.rows, hidden)
        return sums / packing.seqlens[:, None].to(hidden.dtype)
    hidden = enc.last_hidden_state  # (B, L, H)
    if pooling == "cls":
        if first_real and mask is not None:
            rows = torch.arange(hidden.shape[0], device=hidden.device)
            return hidden[rows, mask.argmax(dim=-1).to(hidden.device)]
        return hidden[:, 0]
    if mask is None:
        mask = torch.ones(hidden.shape[:2], device=hidden.device, dtype=torch.bool)
    mask = mask.to(hidden.device)
    return (hidden * mask.unsqueeze(-1)).sum(dim=1) / mask.sum(dim=1, keepdim=True)


class _Classifier:
    """``head`` + ``drop`` + ``classifier`` on the pooled sequence (by ``classifier_pooling``)."""

    first_real = False  # cls pooling reads position 0 (multiple choice: the first unmasked token)

    def _init_classifier(self, config: ModernBertConfig, labels: int) -> None:
        BertPreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.model = ModernBertModel(config)
        self.head = ModernBertPredictionHead(config)
        self.drop = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, labels)
        self.post_init()

    def _classify(self, x: torch.Tensor, ops: OpTable) -> torch.Tensor:
        return run_linear(ops, self.classifier, self.drop(self.head(x, ops)))

    def _run(self, inputs: BertInputs, return_dict, labels=None, num_choices=None):
        inputs.token_type_ids = None
        if num_choices is None:
            self.check_targets(inputs, labels=labels)
        enc = self.base_model.encode(inputs)
        pooled = _pool(self.config.classifier_pooling, enc, inputs.attention_mask, self.first_real)
        logits = self._classify(pooled, enc.ops)
        if num_choices is not None:
            logits = logits.view(-1, num_choices)
        return self._return(self.output(self.loss(logits, labels=labels), logits, enc), return_dict)


class ModernBertForSequenceClassification(
    NoTokenTypesHead, _Classifier, ModernBertPreTrainedModel, bert.BertForSequenceClassification
):
    forward = takes_transformers4_keywords(NoTokenTypesHead.forward)

    def __init__(self, config: ModernBertConfig):
        self._init_classifier(config, config.num_labels)


class ModernBertForMultipleChoice(_Classifier, ModernBertPreTrainedModel, bert.BertForMultipleChoice):
    first_real = True

    def __init__(self, config: ModernBertConfig):
        self._init_classifier(config, 1)

    @takes_transformers4_keywords
    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        kwargs.pop("token_type_ids", None)
        inputs = BertInputs.of(locals())
        ref = inputs.reference
        if ref is None or ref.dim() < (3 if inputs.input_ids is not None else 4):  # embeds: (B, C, L, H)
            raise ValueError(
                f"{type(self).__name__} takes input of shape (batch, num_choices, sequence_length)"
            )
        _check_shape("labels", labels, ref.shape[:1])
        for name in ("input_ids", "attention_mask", "position_ids", "inputs_embeds"):
            t = getattr(inputs, name)
            if t is not None:  # (batch, choices, ...) -> (batch * choices, ...)
                tail = t.shape[-2:] if name == "inputs_embeds" else t.shape[-1:]  # as transformers' view
                setattr(inputs, name, t.reshape(-1, *tail))
        return self._run(inputs, return_dict, labels=labels, num_choices=ref.shape[1])

    def loss(self, logits, labels=None, **targets):
        return None if labels is None else F.cross_entropy(logits, labels)


class ModernBertForTokenClassification(
    NoTokenTypesHead, _PerToken, ModernBertPreTrainedModel, bert.BertForTokenClassification
):
    per_token = True
    forward = takes_transformers4_keywords(NoTokenTypesHead.forward)

    def __init__(self, config: ModernBertConfig):
        _Classifier._init_classifier(self, config, config.num_labels)

    def _logits(self, enc: Encoded):
        return enc.per_token(lambda x, ops: _Classifier._classify(self, x, ops))


class ModernBertForQuestionAnswering(_PerToken, ModernBertPreTrainedModel, bert.BertForQuestionAnswering):
    per_token = True
    #: transformers' ModernBERT QA loss (``ForQuestionAnsweringLoss``) divides by the Trainer's count too
    loss_kwargs = ("num_items_in_batch",)

    def __init__(self, config: ModernBertConfig):
        _Classifier._init_classifier(self, config, config.num_labels)

    @takes_transformers4_keywords
    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        start_positions=None,
        end_positions=None,
        inputs_embeds=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        kwargs.pop("token_type_ids", None)
        loss_kwargs = loss_kwargs_of(self, kwargs)
        return self._run(
            BertInputs.of(locals()),
            return_dict,
            start_positions=start_positions,
            end_positions=end_positions,
            **loss_kwargs,
        )

    def check_targets(self, inputs, num_items_in_batch=None, **positions):
        super().check_targets(inputs, **positions)

    def allow_pack(self, inputs, num_items_in_batch=None, **positions):
        return super().allow_pack(inputs, **positions)

    def loss(self, logits, start_positions=None, end_positions=None, num_items_in_batch=None):
        return bert.BertForQuestionAnswering.loss(
            self, logits, start_positions, end_positions, num_items_in_batch
        )

    def _logits(self, enc: Encoded):
        logits = enc.per_token(lambda x, ops: _Classifier._classify(self, x, ops))
        start_logits, end_logits = logits.split(1, dim=-1)
        return start_logits.squeeze(-1).contiguous(), end_logits.squeeze(-1).contiguous()


_CLASSIFIERS = (
    ModernBertForSequenceClassification,
    ModernBertForMultipleChoice,
    ModernBertForTokenClassification,
    ModernBertForQuestionAnswering,
)

__all__ = [
    "ModernBertForMaskedLM",
    "ModernBertForMultipleChoice",
    "ModernBertForQuestionAnswering",
    "ModernBertForSequenceClassification",
    "ModernBertForTokenClassification",
    "ModernBertModel",
    "ModernBertPreTrainedModel",
]
