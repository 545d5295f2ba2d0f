"""The shared layers of the encoder families: BERT's module tree under transformers' names.

Self-attention has transformers' ``query``/``key``/``value`` ``nn.Linear`` modules (PEFT wraps them,
names match); their weights share one contiguous storage so the projection runs as one GEMM while nothing
wraps or replaces them (see :class:`BertSelfAttention`). Every layer receives the forward's
:class:`LayerContext` and calls the op table in it: nothing here branches on a backend. RoBERTa's family
and ELECTRA use these modules as they are (their parameter names are BERT's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..config import BertConfig
from ..core import prepack
from ..core.ops import AttentionSpec, OpTable, activation, fusable_linear
from ..core.tracing import traced
from ..core.weight_watch import DTYPE_NAMES as _DTYPE_NAMES

# --------------------------------------------------------------------------------------------- per forward


@dataclass(frozen=True)
class LayerContext:
    """What every layer of one forward shares: the op table and how attention sees the tokens."""

    ops: OpTable
    attn: AttentionSpec  # self-attention (every layer's, unless its layer type has its own spec)
    cross: AttentionSpec | None = None  # cross-attention keys (the encoder's states)
    past_length: int = 0  # keys already in the cache
    use_cache: bool = False  # return each layer's keys/values
    dropout: bool = False  # training with dropout: the plain modules run (the tables have no dropout)
    #: self-attention's spec per layer type (global / local layers, RoPE thetas, MPNet's bias): the
    #: driver's ``_layer_specs``
    layer_specs: Mapping[str, AttentionSpec] = field(default_factory=dict)

    def spec_for(self, layer_type: str) -> AttentionSpec:
        """Self-attention's spec of a layer of ``layer_type`` (``attn`` when the type has none of its own)."""
        return self.layer_specs.get(layer_type, self.attn)


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

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        # a model, or a part of it moved or cast by itself (``model.encoder.half()``): the prepacked CPU copies
        # of its old weights go now (fastbert.core.prepack.forget_moved), not when the model is deleted (they
        # hold the old weights' memory through their sampled view); a move that changed nothing keeps them
        prepack.forget_moved(self.parameters())
        return out


# ------------------------------------------------------------------------------------- linears by the table
def _plain_norm(norm: nn.Module) -> bool:
    return type(norm) is nn.LayerNorm


def run_linear(ops: OpTable, m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``m(x)``: the table's GEMM on a fusable linear, else the module itself."""
    return ops.linear(x, m.weight, m.bias) if fusable_linear(m) else m(x)


def dense_add_norm(ops: OpTable, linear: nn.Module, norm: nn.Module, x: torch.Tensor, residual: torch.Tensor):
    """``norm(linear(x) + residual)``: the table's GEMM + fused add + LayerNorm when both modules are plain;
    a wrapped linear (LoRA) runs as a module before the table's add + norm; a replaced norm runs itself."""
    if not _plain_norm(norm):
        return norm(linear(x) + residual)
    if fusable_linear(linear):
        return ops.dense_add_norm(x, linear.weight, linear.bias, residual, norm.weight, norm.bias, norm.eps)
    return ops.add_norm(linear(x), residual, None, norm.weight, norm.bias, norm.eps)


def dense_act(ops: OpTable, linear: nn.Module, x: torch.Tensor, act: str, norm: nn.Module | None = None):
    """``act(linear(x))``, then ``norm`` when given: the table's GEMM + fused bias + activation (+ LayerNorm)
    when the modules are plain; a wrapped linear runs as a module, a replaced norm runs itself."""
    plain_norm = norm is None or _plain_norm(norm)
    if fusable_linear(linear) and plain_norm:
        if norm is None:
            return ops.dense_act(x, linear.weight, linear.bias, act)
        return ops.dense_act(x, linear.weight, linear.bias, act, norm.weight, norm.bias, norm.eps)
    h = linear(x)
    if norm is None:
        return ops.bias_act(h, None, act)
    if plain_norm:
        return ops.bias_act(h, None, act, norm.weight, norm.bias, norm.eps)
    return norm(ops.bias_act(h, None, act))


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
        # transformers 4 builds cross-attention with absolute positions: no distance table there
        self.relative = (
            self.position_embedding_type in ("relative_key", "relative_key_query") and not is_cross_attention
        )
        if self.relative:
            self.max_position_embeddings = config.max_position_embeddings
            self.distance_embedding = embedding(
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
            rows = ts[0].shape[0]
            if ts[0].is_meta:  # no values to keep (and torch.cat on meta tensors imports torch._dynamo)
                fused = torch.empty((len(ts) * rows, *ts[0].shape[1:]), dtype=ts[0].dtype, device="meta")
            else:
                with torch.no_grad():
                    fused = torch.cat([t.detach() for t in ts])  # (3n, ...)
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
        if traced(ws[0]):  # storage addresses are not traceable: the graph concatenates
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
                # the view counts the query weight's in-place edits only: a load-time transform's copy
                # (fastbert.quant's WeightWatch) reads the three parameters' version counters from here
                weight.fastbert_parts = ws
                self.__dict__["_fused_views"] = (key, (weight, bias))
                return weight, bias
        weight = torch.cat(ws)  # gradients reach the three parameters; never stale
        weight.fastbert_parts = ws
        return weight, torch.cat(bs)

    def extra_repr(self) -> str:
        """What computes the fused projection, in the words of a quantized linear's repr: its load-time
        transform, or the model's dtype where the transform does not run (an int8 copy after ``.half()``) or
        where calibration kept it (``qkv_kept``, set by :func:`fastbert.quant.quantize`); nothing when the
        model was never quantized."""
        hook = self.__dict__.get("qkv_linear")
        if hook is None:
            kept = self.__dict__.get("qkv_kept")
            return "" if kept is None else f"qkv quantization={kept}"
        weight = next(iter(self.parameters()), None)
        if weight is not None and any(
            _plain_linear_params(m) is None for m in (self.query, self.key, self.value)
        ):
            # wrapped (PEFT's LoRA added after quantizing), replaced or hooked: forward runs the modules
            dtype = _DTYPE_NAMES.get(weight.dtype, str(weight.dtype))
            return (
                f"qkv quantization={dtype} ({hook.method} copy not used: query/key/value are wrapped, replaced or "
                "hooked and run as modules)"
            )
        return f"qkv quantization={repr(hook) if weight is None else hook.running(weight)}"

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
    return dense_add_norm(ctx.ops, module.dense, module.LayerNorm, hidden_states, residual)


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
        return dense_act(ctx.ops, self.dense, hidden_states, self.hidden_act)


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


def table_shape(embeddings: nn.Module) -> tuple[int, int]:
    """(rows, width) of the word-embedding table, read from its weight: the module may wrap the
    ``nn.Embedding`` (PEFT's trainable tokens, ``trainable_token_indices``), without ``num_embeddings``."""
    rows, width = embeddings.weight.shape
    return rows, width


def embedding(num_embeddings: int, embedding_dim: int, padding_idx: int | None = None) -> nn.Embedding:
    """``nn.Embedding(num_embeddings, embedding_dim, padding_idx)``. Built on the meta device (a model about
    to be loaded), it skips its random init: a meta tensor has no values, and torch's ``normal_`` on one runs
    a decomposition that imports ``torch._dynamo`` (about 2.5 s on a 2-core machine: most of a small
    model's ``from_pretrained``)."""
    if torch.get_default_device().type == "meta":
        weight = torch.empty(num_embeddings, embedding_dim)
        return nn.Embedding(num_embeddings, embedding_dim, padding_idx=padding_idx, _weight=weight)
    return nn.Embedding(num_embeddings, embedding_dim, padding_idx=padding_idx)


def position_ids_buffer(n: int) -> torch.Tensor:
    """The (1, n) ``arange(n)`` of the non-persistent ``position_ids`` buffer. On the meta device an empty one:
    ``torch.arange`` on meta imports sympy (about 0.8 s on a 2-core machine), and the buffer, which no
    checkpoint holds, is written again once the model has storage (``_build``, ``_init_weights``)."""
    if torch.get_default_device().type == "meta":
        return torch.empty(1, n, dtype=torch.long)
    return torch.arange(n).expand((1, -1))


class BertEmbeddings(_Module):
    """word + position + token-type embeddings, LayerNorm, dropout."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.position_embeddings = embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.position_embedding_type = config.position_embedding_type
        self.register_buffer(
            "position_ids", position_ids_buffer(config.max_position_embeddings), persistent=False
        )
        self.register_buffer(
            "token_type_ids", torch.zeros(self.position_ids.size(), dtype=torch.long), persistent=False
        )

    def forward(self, input_ids, token_type_ids, position_ids, inputs_embeds, ctx: LayerContext):
        """All ids have the same shape, (T,) packed or (B, L) padded; returns (..., H)."""
        absolute = self.position_embedding_type == "absolute"
        if inputs_embeds is None and absolute and not ctx.dropout and _plain_module(self.word_embeddings):
            return fused_embed(
                ctx.ops, self.LayerNorm, (input_ids, self.word_embeddings),
                (position_ids, self.position_embeddings), (token_type_ids, self.token_type_embeddings),
            )  # fmt: skip
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        embeddings = inputs_embeds + self.token_type_embeddings(token_type_ids)
        if absolute:
            embeddings = embeddings + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))


def fused_embed(ops: OpTable, norm: nn.LayerNorm, words: tuple, positions=(None, None), types=(None, None)):
    """norm(word + position + token-type embeddings) by the table's fused op: each of ``words``, ``positions``,
    ``types`` is (ids, nn.Embedding), ids of one shape, (T,) packed or (B, L) padded (None, None: a family
    without that table); ids were validated by the model. Returns (..., H)."""
    ids = words[0]
    flat = [None if i is None else i.reshape(-1) for i, _ in (words, positions, types)]
    weights = [None if e is None else e.weight for _, e in (words, positions, types)]
    out = ops.embed(*flat, *weights, norm.weight, norm.bias, norm.eps, validate=False)
    return out.view(*ids.shape, out.shape[-1])


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
