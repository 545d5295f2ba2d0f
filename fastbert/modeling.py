"""The BERT family: embeddings, layer, encoder, pooler, heads and the nine classes.

Module and parameter names are transformers' (``bert.encoder.layer.0.attention.self.query.weight`` ...),
so checkpoints load and save unchanged. Each forward resolves ``attn_implementation`` once into an op
table (``fastbert.ops``): every op that differs by backend — attention included — comes from it, so
nothing here branches on a backend. When the batch has padding and the table packs (``sdpa``,
``triton``), the real tokens are packed once after the mask is read, every layer runs on them only,
and the result is re-padded once (padded positions are zero).

Self-attention has transformers' ``query``/``key``/``value`` ``nn.Linear`` modules (PEFT wraps them,
names match); their weights share one contiguous storage so the projection runs as one GEMM while nothing
wraps or replaces them (see :class:`BertSelfAttention`).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import outputs
from .config import BertConfig, check_attn_implementation, default_attn_implementation
from .generation import GenerationMixin
from .loading import PreTrainedMixin
from .model_api import TransformersModelAPI
from .ops import AttentionSpec, OpTable, activation, resolve
from .padding import Packing, extents, full_packing, host_read, lengths, pack, packing_from_mask, unpack

# --------------------------------------------------------------------------------------------- per forward


@dataclass(frozen=True)
class LayerContext:
    """What every layer of one forward shares: the op table and how attention sees the tokens."""

    ops: OpTable
    attn: AttentionSpec  # self-attention
    cross: AttentionSpec | None = None  # cross-attention keys (the encoder's states)
    past_length: int = 0  # keys already in the cache
    use_cache: bool = False  # return each layer's keys/values
    dropout: bool = False  # training with dropout: the plain modules run (the tables have no dropout)


#: forward arguments that must be tensors when given (a list or a numpy array is refused by name)
_TENSOR_ARGUMENTS = (
    "input_ids",
    "attention_mask",
    "token_type_ids",
    "position_ids",
    "inputs_embeds",
    "encoder_hidden_states",
    "encoder_attention_mask",
    "labels",
    "next_sentence_label",
    "start_positions",
    "end_positions",
)
#: integer id dtypes the embedding lookup does not take: converted to int64 (transformers fails on them)
_SMALL_INT_DTYPES = frozenset(
    getattr(torch, n) for n in ("uint8", "int8", "int16", "uint16", "uint32", "uint64") if hasattr(torch, n)
)


@dataclass
class BertInputs:
    """The encoder's inputs of one call, as the classes' ``forward`` received them."""

    input_ids: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None
    token_type_ids: torch.Tensor | None = None
    position_ids: torch.Tensor | None = None
    inputs_embeds: torch.Tensor | None = None
    encoder_hidden_states: torch.Tensor | None = None
    encoder_attention_mask: torch.Tensor | None = None
    past_key_values: Any = None
    use_cache: bool | None = None
    output_attentions: bool | None = None
    output_hidden_states: bool | None = None

    @classmethod
    def of(cls, args: dict) -> BertInputs:
        """The inputs among a ``forward``'s arguments (its ``locals()``); TypeError for unknown keywords."""
        extra = dict(args.get("kwargs") or {})
        extra.pop("return_dict", None)
        extra.pop("num_items_in_batch", None)  # the Trainer's loss kwarg: heads that use it take it first
        if extra:
            raise TypeError(f"forward() got unexpected keyword arguments {sorted(extra)}")
        for name in _TENSOR_ARGUMENTS:
            value = args.get(name)
            if value is not None and not isinstance(value, torch.Tensor):
                raise TypeError(
                    f"{name} must be a torch.Tensor, got {type(value).__name__}: make one with torch.tensor(...) "
                    "(or call the tokenizer with return_tensors='pt')"
                )
        values = {f.name: args[f.name] for f in dataclasses.fields(cls) if f.name in args}
        for name in ("input_ids", "token_type_ids", "position_ids"):  # uint8, int8, int16 ... ids: as int64
            t = values.get(name)
            if t is not None and t.dtype in _SMALL_INT_DTYPES:
                values[name] = t.long()
        if values.get("past_key_values") is None and args.get("cache") is not None:
            values["past_key_values"] = args["cache"]
        return cls(**values)

    @property
    def reference(self) -> torch.Tensor | None:
        return self.input_ids if self.input_ids is not None else self.inputs_embeds

    def batch_shape(self, dims: int = 2) -> tuple | None:
        ref = self.reference
        return tuple(ref.shape[:dims]) if ref is not None else None


@dataclass
class Encoded:
    """The encoder's result. ``sequence`` is packed (T, H) when ``packing`` is set, else padded (B, L, H)."""

    sequence: torch.Tensor
    packing: Packing | None
    ops: OpTable
    pooled: torch.Tensor | None = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    cross_attentions: tuple | None = None
    past_key_values: tuple | None = None
    _padded: torch.Tensor | None = field(default=None, repr=False)

    @property
    def last_hidden_state(self) -> torch.Tensor:
        """(B, L, H), padded positions zero (re-padded once)."""
        if self._padded is None:
            self._padded = unpack(self.sequence, self.packing) if self.packing is not None else self.sequence
        return self._padded

    def per_token(self, head) -> torch.Tensor:
        """``head(x, ops)`` on every token: on the packed tokens when packed (then re-padded once)."""
        y = head(self.sequence, self.ops)
        return unpack(y, self.packing) if self.packing is not None else y


# --------------------------------------------------------------------------------------------- modules
class _Module(nn.Module):
    """An ``nn.Module`` whose submodules are also plain instance attributes.

    Reading ``self.dense`` then skips ``nn.Module.__getattr__`` (a Python call per access, about a tenth
    of a small forward's host time). Registration is unchanged (``_modules`` holds them: state dicts,
    ``apply``, ``to`` see nothing different); assigning or deleting a submodule keeps both in step.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if isinstance(value, nn.Module):
            self.__dict__[name] = value
        elif name in self.__dict__.get("_modules", ()):
            self.__dict__.pop(name, None)  # a submodule set to None

    def __delattr__(self, name: str) -> None:
        if name in self._modules:
            self.__dict__.pop(name, None)
        super().__delattr__(name)


# --------------------------------------------------------------------------------------------- attention
_QKV_NAMES = ("query", "key", "value")


def _adjacent(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor | None:
    """``cat([a, b, c])`` as a view without a copy, when the three tensors lie one after another in one
    storage (the fused layout); None otherwise (then the caller concatenates)."""
    if not (a.is_contiguous() and b.is_contiguous() and c.is_contiguous()) or a.device.type == "meta":
        return None
    step = a.numel() * a.element_size()
    start = a.data_ptr()
    if b.data_ptr() != start + step or c.data_ptr() != start + 2 * step or not a.shape == b.shape == c.shape:
        return None
    same_storage = a.untyped_storage().data_ptr() == c.untyped_storage().data_ptr()
    if a.dtype != b.dtype or a.dtype != c.dtype or not same_storage:
        return None
    return a.detach().as_strided((3 * a.shape[0], *a.shape[1:]), a.stride())


def _plain_linear_params(m: nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(weight, bias) of an ``nn.Linear`` itself (not a subclass, a PEFT layer or a replacement) with a bias,
    no hooks and no ``forward`` of its own (accelerate's hooks replace the instance's ``forward``); None for
    anything else. Reads the module's dicts directly: this runs per layer per forward."""
    d = m.__dict__
    if type(m) is not nn.Linear or "forward" in d:
        return None
    if d["_forward_hooks"] or d["_forward_pre_hooks"] or d["_backward_hooks"] or d.get("_backward_pre_hooks"):
        return None
    params = d["_parameters"]
    weight, bias = params.get("weight"), params.get("bias")
    return None if weight is None or bias is None else (weight, bias)


class BertSelfAttention(_Module):
    """Self- (or cross-) attention with transformers' ``query``/``key``/``value`` ``nn.Linear`` modules.

    Self-attention keeps their weights (and biases) in one contiguous (3H, H) storage, rows in
    query/key/value order, so the three projections run as one GEMM on a view of it — no copy that could
    go stale: every in-place edit, ``load_state_dict`` or optimizer step writes that storage. When the
    layout is broken (a parameter replaced or moved one by one), the fused GEMM concatenates the three
    weights of that call (moves through ``to()`` restore the layout); when gradients are needed it
    concatenates too, so they reach the three parameters. When any of the three modules is not a plain
    ``nn.Linear`` (a PEFT LoRA layer, a module replaced by hand, a hook on it), the three modules run
    themselves, unfused.
    """

    def __init__(self, config: BertConfig, is_cross_attention: bool = False):
        super().__init__()
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.scaling = self.attention_head_size**-0.5
        self.is_cross_attention = is_cross_attention
        h, n = config.hidden_size, self.all_head_size
        self.query = nn.Linear(h, n)
        self.key = nn.Linear(h, n)
        self.value = nn.Linear(h, n)
        if not is_cross_attention:
            self.fuse_qkv_storage()
            self.register_load_state_dict_post_hook(_refuse_after_load)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.position_embedding_type = config.position_embedding_type
        self.relative = self.position_embedding_type in ("relative_key", "relative_key_query")
        if self.relative:
            self.max_position_embeddings = config.max_position_embeddings
            self.distance_embedding = nn.Embedding(
                2 * config.max_position_embeddings - 1, self.attention_head_size
            )

    def fuse_qkv_storage(self) -> bool:
        """Put query/key/value's weights (and biases) in one contiguous storage each, when they are plain
        ``nn.Linear`` modules of one dtype and device and not laid out so already. The parameters stay the
        same objects (``param.data`` is re-pointed, values kept). Returns whether the layout is fused."""
        self.__dict__.pop("_fused_views", None)  # views of the storage the parameters may be leaving
        lins = tuple(getattr(self, n) for n in _QKV_NAMES)
        if not all(type(m) is nn.Linear and m.bias is not None for m in lins):
            return False
        for kind in ("weight", "bias"):
            ts = [getattr(m, kind) for m in lins]
            if ts[0].device.type != "meta" and _adjacent(*ts) is not None:
                continue
            if len({(t.dtype, t.device, t.shape) for t in ts}) != 1:
                return False
            with torch.no_grad():
                fused = torch.cat([t.detach() for t in ts])  # (3n, ...)
            rows = ts[0].shape[0]
            for i, t in enumerate(ts):
                t.data = fused[i * rows : (i + 1) * rows]
        return True

    def __getstate__(self):  # copies and pickles leave the cached views behind
        state = self.__dict__.copy()
        state.pop("_fused_views", None)
        return state

    def __setstate__(self, state):  # a deep copy or an unpickled model: each parameter apart, fuse again
        super().__setstate__(state)
        if not self.is_cross_attention:
            self.fuse_qkv_storage()

    def _apply(self, fn, *args, **kwargs):
        self.__dict__.pop("_fused_views", None)  # a move frees the old storage: let it go
        out = super()._apply(fn, *args, **kwargs)
        if not self.is_cross_attention:  # a move or a cast converts each parameter apart: fuse again
            self.fuse_qkv_storage()
        return out

    def fused_qkv(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(3n, H) weight and (3n,) bias of the fused projection, or None when query/key/value must run as
        modules (one of them wrapped, replaced or hooked)."""
        q = _plain_linear_params(self.query)
        k = _plain_linear_params(self.key)
        v = _plain_linear_params(self.value)
        if q is None or k is None or v is None:
            return None
        ws, bs = (q[0], k[0], v[0]), (q[1], k[1], v[1])
        if torch.compiler.is_compiling():  # storage addresses are not traceable: the graph concatenates
            return torch.cat(ws), torch.cat(bs)
        if not (torch.is_grad_enabled() and any(t.requires_grad for t in ws + bs)):
            # the views of the last call, while the six tensors still start where they did (the views
            # keep that memory alive, so the same addresses are the same memory: never stale)
            key = (*(t.data_ptr() for t in ws + bs), ws[0].shape, ws[0].dtype)
            cached = self.__dict__.pop("_fused_views", None)  # never holds on to memory no longer used
            if cached is not None and cached[0] == key:
                self.__dict__["_fused_views"] = cached
                return cached[1]
            weight, bias = _adjacent(*ws), _adjacent(*bs)
            if weight is not None and bias is not None:
                self.__dict__["_fused_views"] = (key, (weight, bias))
                return weight, bias
        return torch.cat(ws), torch.cat(bs)  # gradients reach the three parameters; never stale

    def extra_repr(self) -> str:
        hook = self.__dict__.get("qkv_linear")
        return "" if hook is None else f"qkv quantization={hook!r}"

    def _relative_bias(self, query: torch.Tensor, key: torch.Tensor, past_length: int) -> torch.Tensor:
        """transformers 4's relative position scores, (B, h, Lq, Lk), before the 1/sqrt(d) scaling.

        query/key are (B, L, h, d).
        """
        q_len, k_len = query.shape[1], key.shape[1]
        if past_length > 0:
            pos_l = torch.full((q_len, 1), k_len - 1, dtype=torch.long, device=query.device)
        else:
            pos_l = torch.arange(q_len, dtype=torch.long, device=query.device).view(-1, 1)
        pos_r = torch.arange(k_len, dtype=torch.long, device=query.device).view(1, -1)
        distance = pos_l - pos_r
        positional = self.distance_embedding(distance + self.max_position_embeddings - 1).to(query.dtype)
        scores = torch.einsum("blhd,lrd->bhlr", query, positional)
        if self.position_embedding_type == "relative_key_query":
            scores = scores + torch.einsum("brhd,lrd->bhlr", key, positional)
        return scores

    def forward(self, hidden_states, ctx: LayerContext, encoder_hidden_states=None, past_key_value=None):
        """hidden_states (T, H) packed or (B, L, H) padded → context of the same shape, probs, present kv."""
        h, d = self.num_attention_heads, self.attention_head_size
        lead = hidden_states.shape[:-1]
        if self.is_cross_attention:
            spec = ctx.cross
            q = self.query(hidden_states).view(*lead, h, d)
            if past_key_value is not None:  # (B, h, Lenc, d), computed on the first step
                k, v = past_key_value[0].transpose(1, 2), past_key_value[1].transpose(1, 2)
            else:
                enc_lead = encoder_hidden_states.shape[:-1]
                k = self.key(encoder_hidden_states).view(*enc_lead, h, d)
                v = self.value(encoder_hidden_states).view(*enc_lead, h, d)
        else:
            spec = ctx.attn
            fused = self.fused_qkv()
            if fused is not None:
                # a load-time transform of the fused projection (the int8 copy of fastbert.quant) runs it
                hook = self.__dict__.get("qkv_linear")
                linear = ctx.ops.linear if hook is None else hook
                qkv = linear(hidden_states, *fused)  # (..., 3 * h * d)
                q, k, v = qkv.view(*lead, 3, h, d).unbind(-3)  # (..., h, d) views
            else:  # wrapped or replaced modules: each runs itself
                q = self.query(hidden_states).view(*lead, h, d)
                k = self.key(hidden_states).view(*lead, h, d)
                v = self.value(hidden_states).view(*lead, h, d)
            if past_key_value is not None:
                k = torch.cat([past_key_value[0].transpose(1, 2), k], dim=1)
                v = torch.cat([past_key_value[1].transpose(1, 2), v], dim=1)
        present = (k.transpose(1, 2), v.transpose(1, 2)) if ctx.use_cache else None
        bias = None
        if self.relative and not self.is_cross_attention:
            bias = self._relative_bias(q, k, ctx.past_length) * self.scaling
        dropout_p = self.dropout.p if self.training else 0.0
        context, probs = ctx.ops.attention(q, k, v, spec, self.scaling, dropout_p, bias)
        return context.reshape(*lead, h * d), probs, present


def _refuse_after_load(module: BertSelfAttention, incompatible_keys) -> None:
    module.fuse_qkv_storage()  # load_state_dict(assign=True) put the checkpoint's tensors in place


def _dense_add_layernorm(module, hidden_states, residual, ctx: LayerContext):
    """LayerNorm(dropout(dense(x)) + residual): the table's GEMM and fused add + LayerNorm."""
    if ctx.dropout:
        return module.LayerNorm(module.dropout(module.dense(hidden_states)) + residual)
    dense, ln = module.dense, module.LayerNorm
    return ctx.ops.dense_add_layernorm(
        hidden_states, dense.weight, dense.bias, residual, ln.weight, ln.bias, ln.eps
    )


class BertSelfOutput(_Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor, ctx: LayerContext):
        return _dense_add_layernorm(self, hidden_states, input_tensor, ctx)


class BertAttention(_Module):
    def __init__(self, config: BertConfig, is_cross_attention: bool = False):
        super().__init__()
        self.self = BertSelfAttention(config, is_cross_attention=is_cross_attention)
        self.output = BertSelfOutput(config)

    def forward(self, hidden_states, ctx: LayerContext, encoder_hidden_states=None, past_key_value=None):
        context, probs, present = self.self(hidden_states, ctx, encoder_hidden_states, past_key_value)
        return self.output(context, hidden_states, ctx), probs, present


class BertIntermediate(_Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.hidden_act = config.hidden_act
        self.intermediate_act_fn = activation(config.hidden_act)

    def forward(self, hidden_states, ctx: LayerContext):
        dense = self.dense
        return ctx.ops.dense_act(hidden_states, dense.weight, dense.bias, self.hidden_act)


class BertOutput(_Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor, ctx: LayerContext):
        return _dense_add_layernorm(self, hidden_states, input_tensor, ctx)


class BertLayer(_Module):
    gradient_checkpointing = False  # set by gradient_checkpointing_enable (``model_api``)

    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.is_decoder = config.is_decoder
        self.add_cross_attention = config.add_cross_attention
        if self.add_cross_attention:
            if not self.is_decoder:
                raise ValueError("add_cross_attention=True needs is_decoder=True in the config")
            self.crossattention = BertAttention(config, is_cross_attention=True)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, hidden_states, ctx: LayerContext, encoder_hidden_states=None, past_key_value=None):
        self_past = past_key_value[:2] if past_key_value is not None else None
        attention_output, probs, present = self.attention(hidden_states, ctx, past_key_value=self_past)
        cross_probs = None
        if ctx.cross is not None:
            cross_past = (
                past_key_value[2:] if past_key_value is not None and len(past_key_value) == 4 else None
            )
            attention_output, cross_probs, cross_present = self.crossattention(
                attention_output, ctx, encoder_hidden_states, cross_past
            )
            if present is not None:
                present = present + cross_present
        layer_output = self.output(self.intermediate(attention_output, ctx), attention_output, ctx)
        return layer_output, probs, cross_probs, present


class BertEncoder(_Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.layer = nn.ModuleList([BertLayer(config) for _ in range(config.num_hidden_layers)])


class BertEmbeddings(_Module):
    """word + position + token-type embeddings, LayerNorm, dropout."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.position_embedding_type = config.position_embedding_type
        self.register_buffer(
            "position_ids", torch.arange(config.max_position_embeddings).expand((1, -1)), persistent=False
        )
        self.register_buffer(
            "token_type_ids", torch.zeros(self.position_ids.size(), dtype=torch.long), persistent=False
        )

    def forward(self, input_ids, token_type_ids, position_ids, inputs_embeds, ctx: LayerContext):
        """All ids have the same shape, (T,) packed or (B, L) padded; returns (..., H)."""
        absolute = self.position_embedding_type == "absolute"
        if inputs_embeds is None and absolute and not ctx.dropout and _plain_module(self.word_embeddings):
            ln = self.LayerNorm
            out = ctx.ops.embed_layernorm(
                input_ids.reshape(-1),
                position_ids.reshape(-1),
                token_type_ids.reshape(-1),
                self.word_embeddings.weight,
                self.position_embeddings.weight,
                self.token_type_embeddings.weight,
                ln.weight,
                ln.bias,
                ln.eps,
                validate=False,  # ids were validated by the model
            )
            return out.view(*input_ids.shape, out.shape[-1])
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        embeddings = inputs_embeds + self.token_type_embeddings(token_type_ids)
        if absolute:
            embeddings = embeddings + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))


def _plain_module(module: nn.Module) -> bool:
    """A plain nn.Embedding without hooks and without a gradient to take: the fused embedding op may read its
    weight directly. A hooked one (``enable_input_require_grads``, adapters), a replaced one, or one being
    trained (its ``padding_idx`` row must get no gradient, as in nn.Embedding) is called as a module."""
    return (
        type(module) is nn.Embedding
        and not module._forward_hooks
        and not module._forward_pre_hooks
        and not (module.weight.requires_grad and torch.is_grad_enabled())
    )


class BertPooler(_Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states):
        """(B, L, H) → (B, H), from position 0."""
        return self.pool(hidden_states[:, 0])

    def pool(self, first: torch.Tensor) -> torch.Tensor:
        """(B, H) first-position states → (B, H)."""
        return self.activation(self.dense(first))


class BertPredictionHeadTransform(_Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.hidden_act = config.hidden_act
        self.transform_act_fn = activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states, ops: OpTable):
        dense, ln = self.dense, self.LayerNorm
        return ops.dense_act_layernorm(
            hidden_states, dense.weight, dense.bias, ln.weight, ln.bias, ln.eps, self.hidden_act
        )


class BertLMPredictionHead(_Module):
    #: ``decoder.bias`` is ``self.bias`` (tied by ``tie_weights``; zeroed by ``_init_weights``)
    ties_decoder_bias = True

    def __init__(self, config: BertConfig):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=True)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.decoder.bias = self.bias

    def forward(self, hidden_states, ops: OpTable):
        return self.decoder(self.transform(hidden_states, ops))


class BertOnlyMLMHead(_Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)

    def forward(self, sequence_output, ops: OpTable):
        return self.predictions(sequence_output, ops)


class BertOnlyNSPHead(_Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.seq_relationship = nn.Linear(config.hidden_size, 2)

    def forward(self, pooled_output):
        return self.seq_relationship(pooled_output)


class BertPreTrainingHeads(_Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)
        self.seq_relationship = nn.Linear(config.hidden_size, 2)

    def forward(self, sequence_output, pooled_output, ops: OpTable):
        return self.predictions(sequence_output, ops), self.seq_relationship(pooled_output)


# --------------------------------------------------------------------------------------------- base class
class BertPreTrainedModel(PreTrainedMixin, TransformersModelAPI, _Module):
    """Weight initialisation, backend choice, loading/saving (``PreTrainedMixin``)."""

    config_class = BertConfig
    base_model_prefix = "bert"
    _tied_weights_keys: dict[str, str] = {}

    def __init__(self, config: BertConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(f"config must be a fastbert.BertConfig, got {type(config).__name__}")
        config.validate()  # types and ranges of every field, when the model is built (as transformers)
        self.config = config
        self._fallback_warned: set[str] = set()
        #: bumped whenever the parameters may have moved (``to()``, ``_apply``, loading with assign):
        #: whoever holds their addresses (a CUDA graph) compares it
        self.weights_version = 0
        self.register_load_state_dict_post_hook(_after_load)

    def _bump_weights_version(self) -> None:
        for module in self.modules():
            if isinstance(module, BertPreTrainedModel):
                module.weights_version += 1

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self.weights_version = getattr(self, "weights_version", 0) + 1
        return out

    # -- initialisation, as transformers' _init_weights
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif getattr(module, "ties_decoder_bias", False):  # an MLM head's output bias
            nn.init.zeros_(module.bias)
        elif isinstance(module, BertEmbeddings):  # buffers too: after to_empty() they hold garbage
            with torch.no_grad():
                n = module.position_ids.shape[-1]
                module.position_ids.copy_(torch.arange(n, device=module.position_ids.device).expand(1, -1))
                module.token_type_ids.zero_()

    def post_init(self) -> None:
        """Initialise every weight and tie the decoder to the word embeddings."""
        self.apply(self._init_weights)
        self.tie_weights()
        if getattr(self.config, "gradient_checkpointing", False):  # transformers' legacy config flag
            self.gradient_checkpointing_enable()

    def tie_weights(self) -> None:
        head = self.get_output_embeddings()
        if head is not None and getattr(self.config, "tie_word_embeddings", True):
            head.weight = self.get_input_embeddings().weight
        for module in self.modules():
            if getattr(module, "ties_decoder_bias", False):
                module.decoder.bias = module.bias

    def get_input_embeddings(self) -> nn.Embedding:
        base = getattr(self, self.base_model_prefix, self)
        return base.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        base = getattr(self, self.base_model_prefix, self)
        base.embeddings.word_embeddings = value

    def get_output_embeddings(self) -> nn.Linear | None:
        head = self._lm_head()
        return head.decoder if head is not None else None

    def _lm_head(self) -> nn.Module | None:
        """The language-modelling head (its ``decoder`` is tied to the word embeddings), None without one."""
        return getattr(getattr(self, "cls", None), "predictions", None)

    def _new_base(self, config: BertConfig, add_pooling_layer: bool = True) -> None:
        """The family's bare encoder under ``base_model_prefix`` (``self.bert``, ``self.roberta`` ...)."""
        setattr(
            self, self.base_model_prefix, self.base_model_class(config, add_pooling_layer=add_pooling_layer)
        )

    # -- backend
    @property
    def attn_implementation(self) -> str:
        return self.config._attn_implementation or default_attn_implementation(self.device)

    def set_attn_implementation(self, name: str) -> None:
        self.config._attn_implementation = check_attn_implementation(name)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Parameters (each counted once), as transformers: only trainable ones, without nn.Embedding weights."""
        skip = set()
        if exclude_embeddings:
            skip = {id(m.weight) for m in self.modules() if isinstance(m, nn.Embedding)}
        return sum(
            p.numel()
            for p in self.parameters()
            if (p.requires_grad or not only_trainable) and id(p) not in skip
        )

    def cuda_graphs(self, max_batch: int = 8, max_seqlen: int = 128, enabled: bool = True, runner=None):
        """Opt in to CUDA graphs for small batches on the triton backend (see ``fastbert.cuda_graphs``).

        Each (batch, length) bucket up to ``max_batch`` × ``max_seqlen`` is captured on first use and
        replayed after; other shapes and calls run the normal forward. ``enabled=False`` turns it off.
        Returns the model.
        """
        from .cuda_graphs import install

        install(self, max_batch, max_seqlen, enabled, runner)
        return self

    def _warn_fallback(self, reason: str) -> None:
        if reason not in self._fallback_warned:
            self._fallback_warned.add(reason)
            warnings.warn(f"fastbert: {reason}", stacklevel=5)

    def _base(self) -> BertModel:
        return getattr(self, self.base_model_prefix)

    def _return(self, output, return_dict: bool | None):
        if return_dict is None:
            return_dict = self.config.return_dict
        return output if return_dict else output.to_tuple()


def _after_load(module: BertPreTrainedModel, incompatible_keys) -> None:
    module._bump_weights_version()  # load_state_dict(assign=True) may have moved the parameters


def _cache_layers(cache) -> list[tuple]:
    """(keys, values) per filled layer of one cache: a transformers ``Cache`` (read through its public
    ``layers`` / ``key_cache`` attributes, no import of transformers) or legacy tuples; [] when empty."""
    layers = getattr(cache, "layers", None)
    if layers is not None:  # transformers 5: layers with .keys / .values, None until first filled
        out = []
        for layer in layers:
            keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
            if not isinstance(keys, torch.Tensor) or keys.dim() != 4:
                break
            out.append((keys, values))
        return out
    if hasattr(cache, "key_cache"):  # transformers 4's DynamicCache
        return [(k, v) for k, v in zip(cache.key_cache, cache.value_cache) if isinstance(k, torch.Tensor)]
    if hasattr(cache, "to_legacy_cache"):
        cache = cache.to_legacy_cache()
    return [tuple(layer) for layer in cache if len(layer)]


def _as_legacy_cache(past_key_values):
    """Past keys/values as legacy tuples, per layer (k, v) or (k, v, cross_k, cross_v); None when empty.

    An ``EncoderDecoderCache`` whose cross-attention part is empty (or partly filled) gives (k, v) layers:
    the cross-attention keys are then computed from the encoder's states, as transformers does."""
    if past_key_values is None:
        return None
    if hasattr(past_key_values, "self_attention_cache"):  # transformers' EncoderDecoderCache
        own = _cache_layers(past_key_values.self_attention_cache)
        cross = _cache_layers(past_key_values.cross_attention_cache)
        if not own:
            return None
        if len(cross) == len(own):
            return tuple(tuple(s) + tuple(c) for s, c in zip(own, cross))
        return tuple(tuple(s) for s in own)
    layers = _cache_layers(past_key_values)
    return tuple(tuple(layer) for layer in layers) if layers else None


_RANGE_FIELDS = {
    "input_ids": "vocab_size",
    "token_type_ids": "type_vocab_size",
    "position_ids": "max_position_embeddings",
}


@dataclass(frozen=True)
class _Checked:
    """What validation learnt, with the one host read of the forward."""

    batch: int
    seqlen: int
    seqlens: torch.Tensor | None = None  # (B,) int32 real tokens of attention_mask
    seqlens_host: tuple[int, ...] | None = None
    enc_seqlens: torch.Tensor | None = None
    enc_seqlens_host: tuple[int, ...] | None = None

    @property
    def padded(self) -> bool:
        return self.seqlens_host is not None and any(n != self.seqlen for n in self.seqlens_host)

    def enc_padded(self, enc_len: int) -> bool:
        return self.enc_seqlens_host is not None and any(n != enc_len for n in self.enc_seqlens_host)


# --------------------------------------------------------------------------------------------- BertModel
class BertModel(BertPreTrainedModel):
    """The bare BERT encoder (transformers' ``BertModel``), with an optional pooler."""

    embeddings_class: type[nn.Module] = BertEmbeddings

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = self.embeddings_class(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        past_key_values: Any = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        cache: Any = None,
        **kwargs: Any,
    ):
        enc = self.encode(BertInputs.of(locals()))
        out = outputs.BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=enc.last_hidden_state,
            pooler_output=enc.pooled,
            hidden_states=enc.hidden_states,
            past_key_values=enc.past_key_values,
            attentions=enc.attentions,
            cross_attentions=enc.cross_attentions,
        )
        return self._return(out, return_dict)

    # -- validation: on the host, before anything runs, with one device->host read
    def validate(self, inputs: BertInputs, past_length: int = 0, read_lengths: bool = True) -> _Checked:
        """Check shapes, dtypes and id ranges (ValueError naming the argument); with ``read_lengths``, the
        masks' lengths come back in the same single device->host read."""
        cfg = self.config
        input_ids, inputs_embeds = inputs.input_ids, inputs.inputs_embeds
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids or inputs_embeds")
        if input_ids is not None:
            if input_ids.dim() != 2:
                raise ValueError(
                    f"input_ids must be (batch, sequence_length), got shape {tuple(input_ids.shape)}"
                )
            if (
                input_ids.dtype.is_floating_point
                or input_ids.dtype.is_complex
                or input_ids.dtype == torch.bool
            ):
                raise ValueError(f"input_ids must be integer token ids, got {input_ids.dtype}")
            shape = tuple(input_ids.shape)
            name = "input_ids"
        else:
            if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != cfg.hidden_size:
                raise ValueError(
                    f"inputs_embeds must be (batch, sequence_length, {cfg.hidden_size}), got {tuple(inputs_embeds.shape)}"
                )
            shape = tuple(inputs_embeds.shape[:2])
            name = "inputs_embeds"
        if 0 in shape:
            raise ValueError(
                f"{name} has shape {tuple(inputs.reference.shape)}: the batch and the sequence length must be "
                "at least 1 (an empty batch has nothing to encode)"
            )
        mask = inputs.attention_mask
        if mask is not None and tuple(mask.shape) != (shape[0], shape[1] + past_length):
            raise ValueError(
                f"attention_mask has shape {tuple(mask.shape)}, expected {(shape[0], shape[1] + past_length)} "
                "(batch, past + sequence length)"
            )
        for field_name in ("token_type_ids", "position_ids"):
            t = getattr(inputs, field_name)
            if t is None:
                continue
            if tuple(t.shape) != shape and not (t.dim() == 2 and t.shape[0] == 1 and t.shape[1] == shape[1]):
                raise ValueError(f"{field_name} has shape {tuple(t.shape)}, expected {shape} like input_ids")
            if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
                raise ValueError(f"{field_name} must be integer ids, got {t.dtype}")
        enc, enc_mask = inputs.encoder_hidden_states, inputs.encoder_attention_mask
        if enc is not None and enc_mask is not None and tuple(enc_mask.shape) != tuple(enc.shape[:2]):
            raise ValueError(
                f"encoder_attention_mask has shape {tuple(enc_mask.shape)}, expected {tuple(enc.shape[:2])}"
            )
        absolute = cfg.position_embedding_type == "absolute"
        limit, why = self._length_limit()
        if absolute and inputs.position_ids is None and shape[1] + past_length > limit:
            raise ValueError(
                f"sequence length {shape[1] + past_length} is longer than {why}: truncate the input"
            )
        # value ranges and mask lengths: one host read for all of them
        checks = [
            (n, t)
            for n, t in (
                ("input_ids", input_ids),
                ("token_type_ids", inputs.token_type_ids),
                ("position_ids", inputs.position_ids if absolute else None),
            )
            if t is not None
        ]
        parts = [torch.stack(torch.aminmax(t)).to(torch.long) for _, t in checks]
        seqlens = enc_seqlens = None
        if read_lengths and mask is not None:
            seqlens = lengths(mask)
            parts.append(seqlens)
        if read_lengths and enc is not None and enc_mask is not None:
            enc_seqlens = lengths(enc_mask)
            parts.append(enc_seqlens)
        values = host_read(torch.cat([p.to(torch.long) for p in parts])) if parts else []
        for i, (n, _) in enumerate(checks):
            lo, hi = values[2 * i], values[2 * i + 1]
            limit = getattr(cfg, _RANGE_FIELDS[n])
            if lo < 0 or hi >= limit:
                raise ValueError(
                    f"{n} holds {lo if lo < 0 else hi}, outside [0, {limit}) ({_RANGE_FIELDS[n]} = {limit})"
                )
        rest = values[2 * len(checks) :]
        seqlens_host = enc_host = None
        if seqlens is not None:
            seqlens_host, rest = tuple(rest[: shape[0]]), rest[shape[0] :]
        if enc_seqlens is not None:
            enc_host = tuple(rest)
        return _Checked(shape[0], shape[1], seqlens, seqlens_host, enc_seqlens, enc_host)

    def _length_limit(self) -> tuple[int, str]:
        """The longest input the position embeddings cover (without explicit position_ids), and why."""
        n = self.config.max_position_embeddings
        return n, f"max_position_embeddings ({n})"

    def _default_position_ids(
        self, inputs: BertInputs, batch: int, seqlen: int, past_length: int
    ) -> torch.Tensor:
        """(B, L) position ids when none are given: BERT's 0..L-1 after the cached positions. Computed on
        the padded batch, before packing (a family's policy may read the padded ids)."""
        position_ids = self.embeddings.position_ids[:, past_length : past_length + seqlen]
        return position_ids.expand(batch, seqlen)

    def _resolve(self, output_attentions: bool, past: Any, no_real_tokens: bool = False) -> OpTable:
        """The op table of this forward: ``attn_implementation``, or the table a fallback rule says (warned
        once per reason)."""
        cfg = self.config
        table, reason = resolve(
            self.attn_implementation,
            output_attentions=output_attentions,
            position_embedding_type=cfg.position_embedding_type,
            dropout=self.training and (cfg.hidden_dropout_prob > 0 or cfg.attention_probs_dropout_prob > 0),
            needs_grad=lambda: torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters()),
            cache=past is not None,
            device=lambda: self.device,
            no_real_tokens=no_real_tokens,
        )
        if reason is not None:
            self._warn_fallback(reason)
        return table

    # -- the forward, in parts
    def encode(
        self,
        inputs: BertInputs,
        keep_packed: bool = False,
        allow_pack: bool = True,
        host_reads: bool = True,
    ) -> Encoded:
        """The encoder on ``inputs``. ``keep_packed``: the sequence stays packed (a per-token head runs on
        real tokens only). ``allow_pack=False``: padded throughout (a loss over padded positions).
        ``host_reads=False``: no device->host read at all (inputs validated by the caller, padded with a
        key mask), so the call can be captured in a CUDA graph."""
        cfg = self.config
        output_attentions = (
            cfg.output_attentions if inputs.output_attentions is None else inputs.output_attentions
        )
        output_hidden_states = (
            cfg.output_hidden_states if inputs.output_hidden_states is None else inputs.output_hidden_states
        )
        use_cache = (
            (cfg.use_cache if inputs.use_cache is None else inputs.use_cache) if cfg.is_decoder else False
        )
        past = _as_legacy_cache(inputs.past_key_values)
        past_length = past[0][0].shape[2] if past is not None else 0
        checkpointing = self.training and torch.is_grad_enabled() and self.is_gradient_checkpointing
        if checkpointing and use_cache:
            self._warn_fallback("use_cache=True is incompatible with gradient checkpointing: use_cache=False")
            use_cache = False
        if host_reads:
            checked = self.validate(inputs, past_length)
        else:
            ref = inputs.reference
            checked = _Checked(ref.shape[0], ref.shape[1])
        no_real_tokens = checked.seqlens_host is not None and not any(checked.seqlens_host)
        ops = self._resolve(output_attentions, past, no_real_tokens)
        can_pack = (
            host_reads
            and ops.packs
            and past is None
            and not use_cache
            and cfg.position_embedding_type == "absolute"
            and allow_pack
        )
        ctx = self._context(inputs, checked, ops, can_pack, past_length, use_cache)
        hidden, enc_states = self._embed(inputs, ctx, checked.batch, checked.seqlen, past_length)
        packing = ctx.attn.q_packing

        def repad(x):
            return unpack(x, packing) if packing is not None else x

        all_hidden = (repad(hidden),) if output_hidden_states else None
        all_attn = () if output_attentions else None
        all_cross = () if output_attentions and ctx.cross is not None else None
        presents = () if use_cache else None
        for i, layer in enumerate(self.encoder.layer):
            layer_past = past[i] if past is not None else None
            if checkpointing and layer.gradient_checkpointing:  # recomputed in the backward pass
                out = layer._gradient_checkpointing_func(layer.forward, hidden, ctx, enc_states, layer_past)
            else:
                out = layer(hidden, ctx, enc_states, layer_past)
            hidden, probs, cross_probs, present = out
            if output_hidden_states:
                all_hidden += (repad(hidden),)
            if output_attentions:
                all_attn += (probs,)
                if all_cross is not None:
                    all_cross += (cross_probs,)
            if use_cache:
                presents += (present,)

        enc = Encoded(
            sequence=hidden,
            packing=packing,
            ops=ops,
            hidden_states=all_hidden,
            attentions=all_attn,
            cross_attentions=all_cross,
            past_key_values=presents,
        )
        enc.pooled = self._pool(enc, inputs.attention_mask, zero_padded_first=not host_reads)
        if not keep_packed and packing is not None:
            enc.sequence, enc.packing = enc.last_hidden_state, None
        return enc

    def _context(self, inputs: BertInputs, checked: _Checked, ops: OpTable, can_pack, past_length, use_cache):
        """The per-forward attention description: packed once when the batch has padding and may pack."""
        cfg = self.config
        mask, enc, enc_mask = (
            inputs.attention_mask,
            inputs.encoder_hidden_states,
            inputs.encoder_attention_mask,
        )
        causal = cfg.is_decoder
        attn = AttentionSpec(causal=causal)
        if can_pack and checked.padded:
            packing = packing_from_mask(mask, checked.seqlens, checked.seqlens_host)
            attn = AttentionSpec(causal=causal, q_packing=packing, k_packing=packing)
        elif mask is not None and (checked.padded or checked.seqlens_host is None):
            key_lengths = extents(mask) if ops.wants_key_lengths else None
            attn = AttentionSpec(causal=causal, key_mask=mask.bool(), key_lengths=key_lengths)
        cross = None
        if enc is not None and cfg.is_decoder:  # an encoder (is_decoder=False) ignores them, as transformers
            if not cfg.add_cross_attention:
                raise ValueError(
                    "encoder_hidden_states were given, but the model has no cross-attention layers: "
                    "set add_cross_attention=True in the config"
                )
            enc_len = enc.shape[1]
            if attn.q_packing is not None:
                if enc_mask is not None and checked.enc_padded(enc_len):
                    k_packing = packing_from_mask(enc_mask, checked.enc_seqlens, checked.enc_seqlens_host)
                else:
                    k_packing = full_packing(enc.shape[0], enc_len, enc.device)
                cross = AttentionSpec(q_packing=attn.q_packing, k_packing=k_packing)
            elif enc_mask is not None and (checked.enc_padded(enc_len) or checked.enc_seqlens_host is None):
                cross = AttentionSpec(key_mask=enc_mask.bool())
            else:
                cross = AttentionSpec()
        dropout = self.training and cfg.hidden_dropout_prob > 0
        return LayerContext(ops, attn, cross, past_length, use_cache, dropout)

    def _embed(self, inputs: BertInputs, ctx: LayerContext, batch: int, seqlen: int, past_length: int):
        """Embeddings of the real tokens ((T, H) packed or (B, L, H)) and the encoder's states to attend."""
        emb = self.embeddings
        position_ids, token_type_ids = inputs.position_ids, inputs.token_type_ids
        if position_ids is None:
            position_ids = self._default_position_ids(inputs, batch, seqlen, past_length)
        elif position_ids.shape[0] != batch:
            position_ids = position_ids.expand(batch, seqlen)
        if token_type_ids is None:
            token_type_ids = emb.token_type_ids[:, :seqlen].expand(batch, seqlen)
        elif token_type_ids.shape[0] != batch:
            token_type_ids = token_type_ids.expand(batch, seqlen)
        ids, embeds, enc_states = inputs.input_ids, inputs.inputs_embeds, inputs.encoder_hidden_states
        packing = ctx.attn.q_packing
        if packing is not None:
            ids = pack(ids, packing) if ids is not None else None
            embeds = pack(embeds, packing) if embeds is not None else None
            token_type_ids, position_ids = pack(token_type_ids, packing), pack(position_ids, packing)
            if ctx.cross is not None:
                enc_states = pack(enc_states, ctx.cross.k_packing)
        return emb(
            ids, token_type_ids, position_ids, embeds, ctx
        ), enc_states if ctx.cross is not None else None

    def _pool(self, enc: Encoded, attention_mask, zero_padded_first: bool = False) -> torch.Tensor | None:
        """The pooler on position 0. Packed, a padded position 0 pools zeros; padded, it pools what the
        layers computed there (as transformers), unless ``zero_padded_first`` asks for the packed rule."""
        if self.pooler is None:
            return None
        packing, hidden = enc.packing, enc.sequence
        if packing is None:
            first = hidden[:, 0]
            if zero_padded_first and attention_mask is not None:
                first = first * attention_mask[:, :1].to(hidden.dtype)
            return self.pooler.pool(first)
        # position 0 of sequence b is packed row cu_seqlens[b] when it is a real token, else zero
        if packing.total == 0:
            return self.pooler.pool(hidden.new_zeros(packing.batch, hidden.shape[-1]))
        rows = packing.cu_seqlens[:-1].long().clamp(max=packing.total - 1)
        first = hidden[rows] * attention_mask[:, :1].to(hidden.dtype)  # (B, H)
        return self.pooler.pool(first)


# --------------------------------------------------------------------------------------------- heads
def _labels_ignore_padding(labels: torch.Tensor | None, attention_mask: torch.Tensor | None) -> bool:
    """Per-token labels that ignore (-100) every padded position: the loss then needs no padded logits,
    and the forward may run on packed tokens. Otherwise it runs padded, so the loss equals transformers'."""
    if labels is None or attention_mask is None:
        return True
    if labels.shape != attention_mask.shape:
        return False
    return bool((labels[attention_mask == 0] == -100).all())


def _check_shape(name: str, t: torch.Tensor | None, shape: tuple | None) -> None:
    """A target of the wrong shape: a ValueError before the forward runs."""
    if t is not None and shape is not None and tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {tuple(shape)}")


class _BertHead(BertPreTrainedModel):
    """A head on the shared encoder: each class says what its head computes, its loss and its output.

    ``per_token`` heads run on the packed tokens (and re-pad their logits once); the others read the
    pooled first token.
    """

    per_token = False

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        return self._run(BertInputs.of(locals()), return_dict, labels=labels)

    def _run(self, inputs: BertInputs, return_dict: bool | None, **targets):
        self.check_targets(inputs, **targets)
        allow_pack = self.allow_pack(inputs, **targets)
        enc = self._base().encode(inputs, keep_packed=self.per_token, allow_pack=allow_pack)
        logits = self.head(enc, **targets)
        return self._return(self.output(self.loss(logits, **targets), logits, enc), return_dict)

    def check_targets(self, inputs: BertInputs, labels=None, **targets) -> None:
        _check_shape("labels", labels, inputs.batch_shape(2 if self.per_token else 1))

    def allow_pack(self, inputs: BertInputs, labels=None, **targets) -> bool:
        return not self.per_token or _labels_ignore_padding(labels, inputs.attention_mask)

    def head(self, enc: Encoded, **targets):
        """The logits of this head (from the encoder's result)."""
        raise NotImplementedError

    def loss(self, logits, **targets):
        """The loss against the targets; None when they are not given."""
        raise NotImplementedError

    def output(self, loss, logits, enc: Encoded):
        raise NotImplementedError


class BertForPreTraining(_BertHead):
    _tied_weights_keys = {
        "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }
    per_token = True

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self._new_base(config)
        self.cls = BertPreTrainingHeads(config)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        next_sentence_label=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        return self._run(
            BertInputs.of(locals()), return_dict, labels=labels, next_sentence_label=next_sentence_label
        )

    def check_targets(self, inputs, labels=None, next_sentence_label=None):
        shape = inputs.batch_shape()
        _check_shape("labels", labels, shape)
        _check_shape("next_sentence_label", next_sentence_label, shape and shape[:1])

    def head(self, enc, **targets):
        return enc.per_token(self.cls.predictions), self.cls.seq_relationship(enc.pooled)

    def loss(self, logits, labels=None, next_sentence_label=None):
        if labels is None or next_sentence_label is None:
            return None
        prediction_scores, seq_relationship_score = logits
        return F.cross_entropy(
            prediction_scores.view(-1, self.config.vocab_size), labels.view(-1)
        ) + F.cross_entropy(seq_relationship_score.view(-1, 2), next_sentence_label.view(-1))

    def output(self, loss, logits, enc):
        return outputs.BertForPreTrainingOutput(
            loss=loss,
            prediction_logits=logits[0],
            seq_relationship_logits=logits[1],
            hidden_states=enc.hidden_states,
            attentions=enc.attentions,
        )


class BertLMHeadModel(GenerationMixin, _BertHead):
    """BERT as a causal language model (``is_decoder=True``), with cross-attention when configured;
    ``generate`` from ``fastbert.generation``."""

    _tied_weights_keys = BertForPreTraining._tied_weights_keys
    per_token = True

    def __init__(self, config: BertConfig):
        super().__init__(config)
        if not config.is_decoder:
            warnings.warn(
                "BertLMHeadModel is meant to be used with is_decoder=True in the config", stacklevel=2
            )
        self._new_base(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        labels=None,
        past_key_values=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        cache=None,
        logits_to_keep=0,
        **kwargs,
    ):
        """transformers' arguments; ``logits_to_keep`` (an int: the last n positions, 0 = all; or a tensor of
        positions) limits the head to those positions; the loss keyword arguments of transformers' causal-LM
        loss (``num_items_in_batch``, ``shift_labels``, ``ignore_index``) are taken from ``kwargs``."""
        loss_kwargs = {k: kwargs.pop(k) for k in _CAUSAL_LOSS_KWARGS if k in kwargs}
        inputs = BertInputs.of(locals())
        if labels is not None:
            inputs.use_cache = False
        return self._run(inputs, return_dict, labels=labels, logits_to_keep=logits_to_keep, **loss_kwargs)

    def allow_pack(self, inputs, labels=None, shift_labels=None, ignore_index=-100, **targets):
        """Packed only when no padded position's logits reach the loss (the labels are shifted here)."""
        if labels is None or inputs.attention_mask is None:
            return True
        targets_ = _shifted_labels(labels, shift_labels, ignore_index)
        if targets_.shape != inputs.attention_mask.shape:
            return False
        return bool((targets_[inputs.attention_mask == 0] == ignore_index).all())

    def head(self, enc, logits_to_keep=0, **targets):
        if isinstance(logits_to_keep, int) and logits_to_keep == 0:
            return enc.per_token(self._lm_head())
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        return self._lm_head()(enc.last_hidden_state[:, keep], enc.ops)

    def loss(
        self, logits, labels=None, shift_labels=None, num_items_in_batch=None, ignore_index=-100, **targets
    ):
        """transformers' ``ForCausalLMLoss``: token t predicts token t + 1 (or ``shift_labels``), in fp32; summed
        and divided by ``num_items_in_batch`` when it is given, else the mean over the labelled tokens."""
        if labels is None:
            return None
        targets_ = _shifted_labels(labels, shift_labels, ignore_index).reshape(-1).to(logits.device)
        reduction = "sum" if num_items_in_batch is not None else "mean"
        loss = F.cross_entropy(
            logits.float().view(-1, self.config.vocab_size),
            targets_,
            ignore_index=ignore_index,
            reduction=reduction,
        )
        if num_items_in_batch is not None:
            if torch.is_tensor(num_items_in_batch):
                num_items_in_batch = num_items_in_batch.to(loss.device)
            loss = loss / num_items_in_batch
        return loss

    def output(self, loss, logits, enc):
        return outputs.CausalLMOutputWithCrossAttentions(
            loss=loss,
            logits=logits,
            past_key_values=enc.past_key_values,
            hidden_states=enc.hidden_states,
            attentions=enc.attentions,
            cross_attentions=enc.cross_attentions,
        )


#: transformers' causal-LM loss keyword arguments (``ForCausalLMLoss``)
_CAUSAL_LOSS_KWARGS = ("num_items_in_batch", "shift_labels", "ignore_index")


def _shifted_labels(
    labels: torch.Tensor, shift_labels: torch.Tensor | None, ignore_index: int
) -> torch.Tensor:
    """The target of each position: ``shift_labels`` when given, else the next position's label."""
    if shift_labels is not None:
        return shift_labels
    return F.pad(labels, (0, 1), value=ignore_index)[..., 1:]


class BertForMaskedLM(_BertHead):
    _tied_weights_keys = BertForPreTraining._tied_weights_keys
    per_token = True

    def __init__(self, config: BertConfig):
        super().__init__(config)
        if config.is_decoder:
            warnings.warn(
                "BertForMaskedLM wants bi-directional attention: set is_decoder=False", stacklevel=2
            )
        self._new_base(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        return self._run(BertInputs.of(locals()), return_dict, labels=labels)

    def head(self, enc, **targets):
        return enc.per_token(self._lm_head())

    def loss(self, logits, labels=None):
        if labels is None:
            return None
        return F.cross_entropy(logits.view(-1, self.config.vocab_size), labels.view(-1))

    def output(self, loss, logits, enc):
        return outputs.MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=enc.hidden_states, attentions=enc.attentions
        )


class BertForNextSentencePrediction(_BertHead):
    def __init__(self, config: BertConfig):
        super().__init__(config)
        self._new_base(config)
        self.cls = BertOnlyNSPHead(config)
        self.post_init()

    def head(self, enc, **targets):
        return self.cls(enc.pooled)

    def loss(self, logits, labels=None):
        return None if labels is None else F.cross_entropy(logits.view(-1, 2), labels.view(-1))

    def output(self, loss, logits, enc):
        return outputs.NextSentencePredictorOutput(
            loss=loss, logits=logits, hidden_states=enc.hidden_states, attentions=enc.attentions
        )


def _classifier_dropout(config: BertConfig) -> nn.Dropout:
    p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
    return nn.Dropout(p)


class BertForSequenceClassification(_BertHead):
    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self._new_base(config)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def check_targets(self, inputs, labels=None):
        batch = inputs.batch_shape(1)
        if labels is not None and batch is not None and (labels.dim() == 0 or labels.shape[0] != batch[0]):
            raise ValueError(
                f"labels has batch size {labels.shape[0] if labels.dim() else 0}, the input has {batch[0]}"
            )

    def head(self, enc, **targets):
        return self.classifier(self.dropout(enc.pooled))

    def loss(self, logits, labels=None):
        if labels is None:
            return None
        if self.config.problem_type is None:
            if self.num_labels == 1:
                self.config.problem_type = "regression"
            elif labels.dtype in (torch.long, torch.int):
                self.config.problem_type = "single_label_classification"
            else:
                self.config.problem_type = "multi_label_classification"
        if self.config.problem_type == "regression":
            if self.num_labels == 1:
                return F.mse_loss(logits.squeeze(), labels.squeeze())
            return F.mse_loss(logits, labels)
        if self.config.problem_type == "single_label_classification":
            return F.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))
        if tuple(labels.shape) != tuple(logits.shape):
            raise ValueError(
                f"multi-label labels must have shape {tuple(logits.shape)}, got {tuple(labels.shape)}"
            )
        return F.binary_cross_entropy_with_logits(logits, labels)

    def output(self, loss, logits, enc):
        return outputs.SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=enc.hidden_states, attentions=enc.attentions
        )


class BertForMultipleChoice(_BertHead):
    def __init__(self, config: BertConfig):
        super().__init__(config)
        self._new_base(config)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def _run(self, inputs: BertInputs, return_dict: bool | None, labels=None):
        ref = inputs.reference
        if ref is None or ref.dim() < 3:
            raise ValueError(
                "BertForMultipleChoice takes input of shape (batch, num_choices, sequence_length)"
            )
        _check_shape("labels", labels, ref.shape[:1])
        for name in ("input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds"):
            t = getattr(inputs, name)
            if t is not None:  # (batch, choices, ...) → (batch * choices, ...)
                setattr(inputs, name, t.reshape(-1, *t.shape[2:]))
        return super()._run(inputs, return_dict, labels=labels, num_choices=ref.shape[1])

    def check_targets(self, inputs, labels=None, num_choices=None):
        pass  # checked against the unflattened batch in forward

    def allow_pack(self, inputs, labels=None, num_choices=None):
        return True

    def head(self, enc, labels=None, num_choices=None):
        return self.classifier(self.dropout(enc.pooled)).view(-1, num_choices)

    def loss(self, logits, labels=None, num_choices=None):
        return None if labels is None else F.cross_entropy(logits, labels)

    def output(self, loss, logits, enc):
        return outputs.MultipleChoiceModelOutput(
            loss=loss, logits=logits, hidden_states=enc.hidden_states, attentions=enc.attentions
        )


class BertForTokenClassification(_BertHead):
    per_token = True

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self._new_base(config, add_pooling_layer=False)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def head(self, enc, **targets):
        return enc.per_token(lambda x, ops: self.classifier(self.dropout(x)))

    def loss(self, logits, labels=None):
        return None if labels is None else F.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))

    def output(self, loss, logits, enc):
        return outputs.TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=enc.hidden_states, attentions=enc.attentions
        )


class BertForQuestionAnswering(_BertHead):
    per_token = True

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self._new_base(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        start_positions=None,
        end_positions=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        return self._run(
            BertInputs.of(locals()), return_dict, start_positions=start_positions, end_positions=end_positions
        )

    def check_targets(self, inputs, start_positions=None, end_positions=None):
        pass

    def allow_pack(self, inputs, start_positions=None, end_positions=None):
        return start_positions is None and end_positions is None

    def head(self, enc, **targets):
        logits = enc.per_token(lambda x, ops: self.qa_outputs(x))
        start_logits, end_logits = logits.split(1, dim=-1)
        return start_logits.squeeze(-1).contiguous(), end_logits.squeeze(-1).contiguous()

    def loss(self, logits, start_positions=None, end_positions=None):
        if start_positions is None or end_positions is None:
            return None
        start_logits, end_logits = logits
        if start_positions.dim() > 1:
            start_positions = start_positions.squeeze(-1)
        if end_positions.dim() > 1:
            end_positions = end_positions.squeeze(-1)
        ignored_index = start_logits.size(1)  # positions outside the input are ignored, as transformers
        start_positions = start_positions.clamp(0, ignored_index)
        end_positions = end_positions.clamp(0, ignored_index)
        return (
            F.cross_entropy(start_logits, start_positions, ignore_index=ignored_index)
            + F.cross_entropy(end_logits, end_positions, ignore_index=ignored_index)
        ) / 2

    def output(self, loss, logits, enc):
        return outputs.QuestionAnsweringModelOutput(
            loss=loss,
            start_logits=logits[0],
            end_logits=logits[1],
            hidden_states=enc.hidden_states,
            attentions=enc.attentions,
        )


BertPreTrainedModel.base_model_class = BertModel

MODEL_CLASSES: dict[str, type[BertPreTrainedModel]] = {
    cls.__name__: cls
    for cls in (
        BertModel,
        BertForPreTraining,
        BertLMHeadModel,
        BertForMaskedLM,
        BertForNextSentencePrediction,
        BertForSequenceClassification,
        BertForMultipleChoice,
        BertForTokenClassification,
        BertForQuestionAnswering,
    )
}
