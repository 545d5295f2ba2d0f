"""The BERT family: one model, three backends (``eager``, ``sdpa``, ``triton``).

Module and parameter names are transformers' (``bert.encoder.layer.0.attention.self.query.weight`` ...),
so checkpoints load and save unchanged. The backend changes how each op is computed, never what:

* ``eager`` — explicit matmul + softmax on the padded batch, the twin of transformers' eager path.
* ``sdpa``  — plain torch ops + ``scaled_dot_product_attention``; when the batch has padding, the real
  tokens are packed once after the mask is read, every Linear / LayerNorm / GELU runs on them only, and
  the result is re-padded once (padded positions are zero). The reference of the kernel path.
* ``triton`` — the same packed flow, each fused op taken from the Triton op table (``fastbert.ops``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import outputs as O
from .config import BertConfig
from .loading import PreTrainedMixin
from .ops import ACTIVATION_NAMES
from .padding import Packing, has_padding, pack, packing_from_mask, unpack

BACKENDS = ("eager", "sdpa", "triton")

_ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x))),
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
    "gelu_python": lambda x: x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0))),
}


def get_activation(name: Any):
    if callable(name):
        return name
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unsupported hidden_act {name!r}; supported: {sorted(_ACTIVATIONS)}") from None


# --------------------------------------------------------------------------------------------- attention
@dataclass
class AttentionMeta:
    """How attention sees the tokens of this forward: packed (varlen) or padded."""

    packing: Packing | None  # self-attention packing (packed mode) or None (padded mode)
    key_mask: torch.Tensor | None  # padded mode: (batch, keys) bool, True = attend; None = all
    causal: bool
    past_length: int = 0  # keys already in the cache
    use_cache: bool = False  # return each layer's keys/values
    enc_packing: Packing | None = None  # cross-attention keys, packed mode
    enc_key_mask: torch.Tensor | None = None  # cross-attention keys, padded mode (batch, enc_len) bool


def _additive_mask(
    key_mask: torch.Tensor | None, q_len: int, k_len: int, causal: bool, dtype: torch.dtype, device
) -> torch.Tensor | None:
    """(batch or 1, 1, q_len, k_len) additive mask with dtype's min at masked places (transformers' convention)."""
    allowed = None
    if key_mask is not None:
        allowed = key_mask[:, None, None, :].bool()
    if causal:
        q_pos = torch.arange(q_len, device=device)[:, None] + (k_len - q_len)
        c = (torch.arange(k_len, device=device)[None, :] <= q_pos)[None, None]
        allowed = c if allowed is None else (allowed & c)
    if allowed is None:
        return None
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)


def sdpa_padded(q, k, v, key_mask, scale, causal, bias=None, dropout_p=0.0):
    """Attention on padded tensors with torch SDPA. q (B, Lq, h, d), k/v (B, Lk, h, d) → (B, Lq, h, d)."""
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    mask = _additive_mask(key_mask, q.shape[2], k.shape[2], causal, q.dtype, q.device)
    if bias is not None:
        mask = bias if mask is None else mask + bias
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=scale)
    return out.transpose(1, 2)


def sdpa_varlen(q, k, v, q_packing: Packing, k_packing: Packing, scale, causal, dropout_p=0.0):
    """Attention on packed tokens, sequence by sequence with torch SDPA (no padding computed).

    q (Tq, h, d), k/v (Tk, h, d) → (Tq, h, d). A sequence with no keys gives zeros.

    On the CPU the loop is the fastest layout (measured: see README); on a GPU, where each call is a
    launch, the tokens are re-padded for one masked SDPA call instead.
    """
    if q.is_cuda:
        qp, kp, vp = unpack(q, q_packing), unpack(k, k_packing), unpack(v, k_packing)
        out = sdpa_padded(qp, kp, vp, k_packing_mask(k_packing), scale, causal, dropout_p=dropout_p)
        return pack(out, q_packing) * (k_packing.seqlens[q_packing_rows(q_packing)] > 0)[:, None, None]
    out = q.new_zeros(q.shape[0], q.shape[1], v.shape[2])
    qs = ks = 0
    for lq, lk in zip(q_packing.seqlens_host, k_packing.seqlens_host):
        if lq and lk:
            o = F.scaled_dot_product_attention(
                q[qs : qs + lq].transpose(0, 1).unsqueeze(0),
                k[ks : ks + lk].transpose(0, 1).unsqueeze(0),
                v[ks : ks + lk].transpose(0, 1).unsqueeze(0),
                dropout_p=dropout_p,
                is_causal=causal and lq > 1,
                scale=scale,
            )
            out[qs : qs + lq] = o[0].transpose(0, 1)
        qs += lq
        ks += lk
    return out


def k_packing_mask(packing: Packing) -> torch.Tensor:
    """(batch, seqlen) bool key mask of a packing: True at real tokens."""
    mask = torch.zeros(packing.batch * packing.seqlen, dtype=torch.bool, device=packing.indices.device)
    mask[packing.indices] = True
    return mask.view(packing.batch, packing.seqlen)


def q_packing_rows(packing: Packing) -> torch.Tensor:
    """(total,) sequence index of each packed token."""
    return packing.indices // packing.seqlen


def _version(t: torch.Tensor) -> int:
    """In-place update counter of a tensor (inference tensors have none: they cannot be updated outside
    inference mode)."""
    return 0 if t.is_inference() else t._version


class BertSelfAttention(nn.Module):
    def __init__(self, config: BertConfig, is_cross_attention: bool = False):
        super().__init__()
        self.config = config
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.scaling = self.attention_head_size**-0.5
        self.is_cross_attention = is_cross_attention
        self.query = nn.Linear(config.hidden_size, self.all_head_size)
        self.key = nn.Linear(config.hidden_size, self.all_head_size)
        self.value = nn.Linear(config.hidden_size, self.all_head_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.position_embedding_type = config.position_embedding_type
        if self.position_embedding_type in ("relative_key", "relative_key_query"):
            self.max_position_embeddings = config.max_position_embeddings
            self.distance_embedding = nn.Embedding(
                2 * config.max_position_embeddings - 1, self.attention_head_size
            )
        self._qkv_cache: tuple[tuple, torch.Tensor, torch.Tensor] | None = None

    # -- the fused QKV weight, built from query/key/value (which stay the parameters, under their names)
    def fused_qkv(self) -> tuple[torch.Tensor, torch.Tensor]:
        params = (
            self.query.weight,
            self.key.weight,
            self.value.weight,
            self.query.bias,
            self.key.bias,
            self.value.bias,
        )
        if torch.compiler.is_compiling():
            if self._qkv_cache is not None:
                return self._qkv_cache[1], self._qkv_cache[2]
            return torch.cat(params[:3]), torch.cat(params[3:])
        stamp = tuple((p.data_ptr(), _version(p), p.dtype) for p in params)
        if self._qkv_cache is None or self._qkv_cache[0] != stamp:
            with torch.no_grad():
                w, b = torch.cat(params[:3]), torch.cat(params[3:])
            self._qkv_cache = (stamp, w, b)
        return self._qkv_cache[1], self._qkv_cache[2]

    def _relative_bias(self, query: torch.Tensor, key: torch.Tensor, past_length: int) -> torch.Tensor:
        """transformers 4's relative position scores, (B, h, Lq, Lk), before the 1/sqrt(d) scaling.

        query/key are (B, h, L, d).
        """
        q_len, k_len = query.shape[2], key.shape[2]
        if past_length > 0:
            pos_l = torch.full((q_len, 1), k_len - 1, dtype=torch.long, device=query.device)
        else:
            pos_l = torch.arange(q_len, dtype=torch.long, device=query.device).view(-1, 1)
        pos_r = torch.arange(k_len, dtype=torch.long, device=query.device).view(1, -1)
        distance = pos_l - pos_r
        positional = self.distance_embedding(distance + self.max_position_embeddings - 1).to(query.dtype)
        scores = torch.einsum("bhld,lrd->bhlr", query, positional)
        if self.position_embedding_type == "relative_key_query":
            scores = scores + torch.einsum("bhrd,lrd->bhlr", key, positional)
        return scores

    def forward(
        self,
        hidden_states: torch.Tensor,
        meta: AttentionMeta,
        backend: str,
        ops: Any,
        encoder_hidden_states: torch.Tensor | None = None,
        past_key_value: tuple[torch.Tensor, torch.Tensor] | None = None,
        output_attentions: bool = False,
    ):
        """hidden_states (T, H) packed or (B, L, H) padded → context of the same shape, probs, present kv."""
        h, d = self.num_attention_heads, self.attention_head_size
        lead = hidden_states.shape[:-1]
        cross = self.is_cross_attention
        if cross and past_key_value is not None:
            q = self.query(hidden_states).view(*lead, h, d)
            k, v = past_key_value  # (B, h, Lenc, d), computed on the first step
            k, v = k.transpose(1, 2), v.transpose(1, 2)
        elif cross:
            q = self.query(hidden_states).view(*lead, h, d)
            enc_lead = encoder_hidden_states.shape[:-1]
            k = self.key(encoder_hidden_states).view(*enc_lead, h, d)
            v = self.value(encoder_hidden_states).view(*enc_lead, h, d)
        elif backend == "eager" or self.training or torch.is_grad_enabled():
            # the fused weight is a no-grad copy: with gradients, the three projections run as themselves
            q = self.query(hidden_states).view(*lead, h, d)
            k = self.key(hidden_states).view(*lead, h, d)
            v = self.value(hidden_states).view(*lead, h, d)
        else:
            w, b = self.fused_qkv()
            q, k, v = F.linear(hidden_states, w, b).view(*lead, 3, h, d).unbind(-3)  # (.., h, d) views
        if past_key_value is not None and not cross:
            k = torch.cat([past_key_value[0].transpose(1, 2), k], dim=1)
            v = torch.cat([past_key_value[1].transpose(1, 2), v], dim=1)
        present = (k.transpose(1, 2), v.transpose(1, 2)) if meta.use_cache else None

        causal = meta.causal and not cross
        dropout_p = self.dropout.p if self.training else 0.0
        relative = self.position_embedding_type != "absolute"
        probs = None
        if backend == "eager" or output_attentions:
            context, probs = self._eager(q, k, v, meta, causal, cross)
        elif meta.packing is not None:  # packed tokens
            k_packing = meta.enc_packing if cross else meta.packing
            if backend == "triton":
                context = ops.attention_varlen(
                    q,
                    k,
                    v,
                    meta.packing.cu_seqlens,
                    k_packing.cu_seqlens,
                    meta.packing.max_seqlen,
                    k_packing.max_seqlen,
                    self.scaling,
                    causal,
                    validate=False,  # cu_seqlens built by padding.packing_from_mask
                )
            else:
                context = sdpa_varlen(q, k, v, meta.packing, k_packing, self.scaling, causal, dropout_p)
        else:  # padded
            key_mask = meta.enc_key_mask if cross else meta.key_mask
            bias = None
            if relative and not cross:
                bias = (
                    self._relative_bias(q.transpose(1, 2), k.transpose(1, 2), meta.past_length) * self.scaling
                )
            if backend == "triton" and bias is None and dropout_p == 0.0:
                context = ops.attention_padded(q, k, v, key_mask, self.scaling, causal)
            else:
                context = sdpa_padded(q, k, v, key_mask, self.scaling, causal, bias, dropout_p)
        return context.reshape(*lead, h * d), probs, present

    def _eager(self, q, k, v, meta: AttentionMeta, causal: bool, cross: bool):
        """transformers' eager attention on padded (B, L, h, d) tensors; returns context and probabilities."""
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, h, L, d)
        scores = torch.matmul(q, k.transpose(-1, -2))
        if self.position_embedding_type != "absolute" and not cross:
            scores = scores + self._relative_bias(q, k, meta.past_length)
        scores = scores * self.scaling
        key_mask = meta.enc_key_mask if cross else meta.key_mask
        mask = _additive_mask(key_mask, q.shape[2], k.shape[2], causal, scores.dtype, scores.device)
        if mask is not None:
            scores = scores + mask
        probs = F.softmax(scores, dim=-1)
        context = torch.matmul(self.dropout(probs), v)
        return context.transpose(1, 2), probs


class BertSelfOutput(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor, ops=None):
        return _dense_residual_layernorm(self, hidden_states, input_tensor, ops)


def _gemm(x: torch.Tensor, linear: nn.Linear, ops) -> tuple[torch.Tensor, torch.Tensor | None]:
    """x @ W^T and the bias still to add. The Triton op table folds the bias into the kernel that follows
    the GEMM; the torch one adds it inside the GEMM (addmm), one pass fewer over the activations."""
    if ops.name == "triton":
        return F.linear(x, linear.weight), linear.bias
    return F.linear(x, linear.weight, linear.bias), None


def _dense_residual_layernorm(module, hidden_states, input_tensor, ops):
    """LayerNorm(dropout(dense(x)) + residual): plain modules, or the op table's fused add + LayerNorm."""
    if ops is None or (module.training and module.dropout.p > 0):
        return module.LayerNorm(module.dropout(module.dense(hidden_states)) + input_tensor)
    ln = module.LayerNorm
    y, bias = _gemm(hidden_states, module.dense, ops)
    return ops.add_layernorm(y, input_tensor, bias, ln.weight, ln.bias, ln.eps)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig, is_cross_attention: bool = False):
        super().__init__()
        self.self = BertSelfAttention(config, is_cross_attention=is_cross_attention)
        self.output = BertSelfOutput(config)

    def forward(
        self,
        hidden_states,
        meta,
        backend,
        ops,
        encoder_hidden_states=None,
        past_key_value=None,
        output_attentions=False,
    ):
        context, probs, present = self.self(
            hidden_states, meta, backend, ops, encoder_hidden_states, past_key_value, output_attentions
        )
        return self.output(context, hidden_states, ops), probs, present


class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.hidden_act = config.hidden_act
        self.intermediate_act_fn = get_activation(config.hidden_act)

    def forward(self, hidden_states, ops=None):
        if ops is None or self.hidden_act not in ACTIVATION_NAMES:
            return self.intermediate_act_fn(self.dense(hidden_states))
        return ops.bias_act(*_gemm(hidden_states, self.dense, ops), self.hidden_act)


class BertOutput(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor, ops=None):
        return _dense_residual_layernorm(self, hidden_states, input_tensor, ops)


class BertLayer(nn.Module):
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

    def forward(
        self,
        hidden_states,
        meta,
        backend,
        ops,
        encoder_hidden_states=None,
        past_key_value=None,
        output_attentions=False,
    ):
        self_past = past_key_value[:2] if past_key_value is not None else None
        attention_output, probs, present = self.attention(
            hidden_states, meta, backend, ops, past_key_value=self_past, output_attentions=output_attentions
        )
        cross_probs = None
        if self.is_decoder and encoder_hidden_states is not None:
            if not hasattr(self, "crossattention"):
                raise ValueError(
                    "encoder_hidden_states were given, but the model has no cross-attention layers: "
                    "set add_cross_attention=True in the config"
                )
            cross_past = (
                past_key_value[2:] if past_key_value is not None and len(past_key_value) == 4 else None
            )
            attention_output, cross_probs, cross_present = self.crossattention(
                attention_output, meta, backend, ops, encoder_hidden_states, cross_past, output_attentions
            )
            if present is not None:
                present = present + cross_present
        ops_ff = ops if backend != "eager" else None
        layer_output = self.output(self.intermediate(attention_output, ops_ff), attention_output, ops_ff)
        return layer_output, probs, cross_probs, present


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.layer = nn.ModuleList([BertLayer(config) for _ in range(config.num_hidden_layers)])


class BertEmbeddings(nn.Module):
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

    def forward(self, input_ids, token_type_ids, position_ids, inputs_embeds=None, ops=None):
        """All ids have the same shape, (T,) packed or (B, L) padded; returns (..., H)."""
        absolute = self.position_embedding_type == "absolute"
        if (
            ops is not None
            and inputs_embeds is None
            and absolute
            and not (self.training and self.dropout.p > 0)
        ):
            shape = input_ids.shape
            ln = self.LayerNorm
            out = ops.embed_layernorm(
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
            return out.view(*shape, -1)
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        embeddings = inputs_embeds + self.token_type_embeddings(token_type_ids)
        if absolute:
            embeddings = embeddings + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))


class BertPooler(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states):
        return self.activation(self.dense(hidden_states[:, 0]))


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.hidden_act = config.hidden_act
        self.transform_act_fn = get_activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states, ops=None):
        if ops is None or self.hidden_act not in ACTIVATION_NAMES:
            return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))
        ln = self.LayerNorm
        return ops.bias_act_layernorm(
            *_gemm(hidden_states, self.dense, ops), ln.weight, ln.bias, ln.eps, self.hidden_act
        )


class BertLMPredictionHead(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=True)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.decoder.bias = self.bias

    def forward(self, hidden_states, ops=None):
        return self.decoder(self.transform(hidden_states, ops))


class BertOnlyMLMHead(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)

    def forward(self, sequence_output, ops=None):
        return self.predictions(sequence_output, ops)


class BertOnlyNSPHead(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.seq_relationship = nn.Linear(config.hidden_size, 2)

    def forward(self, pooled_output):
        return self.seq_relationship(pooled_output)


class BertPreTrainingHeads(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)
        self.seq_relationship = nn.Linear(config.hidden_size, 2)

    def forward(self, sequence_output, pooled_output, ops=None):
        return self.predictions(sequence_output, ops), self.seq_relationship(pooled_output)


# --------------------------------------------------------------------------------------------- base class
class BertPreTrainedModel(PreTrainedMixin, nn.Module):
    """Weight initialisation, backend choice, loading/saving (``PreTrainedMixin``)."""

    config_class = BertConfig
    base_model_prefix = "bert"
    _tied_weights_keys: dict[str, str] = {}

    def __init__(self, config: BertConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(f"config must be a fastbert.BertConfig, got {type(config).__name__}")
        self.config = config
        self._fallback_warned: set[str] = set()

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
        elif isinstance(module, BertLMPredictionHead):
            nn.init.zeros_(module.bias)

    def post_init(self) -> None:
        """Initialise every weight and tie the decoder to the word embeddings."""
        self.apply(self._init_weights)
        self.tie_weights()

    def tie_weights(self) -> None:
        head = self.get_output_embeddings()
        if head is not None and getattr(self.config, "tie_word_embeddings", True):
            head.weight = self.get_input_embeddings().weight
        for module in self.modules():
            if isinstance(module, BertLMPredictionHead):
                module.decoder.bias = module.bias

    def get_input_embeddings(self) -> nn.Embedding:
        base = getattr(self, self.base_model_prefix, self)
        return base.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        base = getattr(self, self.base_model_prefix, self)
        base.embeddings.word_embeddings = value

    def get_output_embeddings(self) -> nn.Linear | None:
        cls = getattr(self, "cls", None)
        predictions = getattr(cls, "predictions", None)
        return predictions.decoder if predictions is not None else None

    # -- backend
    @property
    def attn_implementation(self) -> str:
        return self.config._attn_implementation or default_backend(self.device)

    def set_attn_implementation(self, name: str) -> None:
        self.config._attn_implementation = check_backend(name)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def num_parameters(self, only_trainable: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not only_trainable)

    def cuda_graphs(self, max_batch: int = 8, max_seqlen: int = 128, enabled: bool = True, runner=None):
        """Opt in to CUDA graphs for small batches on the triton backend (see ``fastbert.cuda_graphs``).

        Each (batch, length) bucket up to ``max_batch`` × ``max_seqlen`` is captured on first use and
        replayed after; other shapes and calls run the normal forward. ``enabled=False`` turns it off.
        Returns the model.
        """
        from .cuda_graphs import GraphRunner

        base = self._base() if self.base_model_prefix and hasattr(self, self.base_model_prefix) else self
        if not enabled:
            base._graph_runner = None
        else:
            if base.device.type != "cuda":
                raise ValueError("CUDA graphs need the model on a CUDA device")
            base._graph_runner = runner or GraphRunner(base, max_batch, max_seqlen)
        return self

    def prepare_fused_weights(self) -> None:
        """Build each layer's concatenated QKV weight now (from_pretrained does, for sdpa and triton) rather
        than on the first forward. It is rebuilt by itself when the weights move or change."""
        for module in self.modules():
            if isinstance(module, BertSelfAttention) and not module.is_cross_attention:
                module.fused_qkv()

    def _warn_fallback(self, reason: str) -> None:
        if reason not in self._fallback_warned:
            self._fallback_warned.add(reason)
            warnings.warn(f"fastbert: {reason}", stacklevel=4)

    def _base(self) -> BertModel:
        return getattr(self, self.base_model_prefix)

    def _return(self, output, return_dict: bool | None):
        if return_dict is None:
            return_dict = self.config.return_dict
        return output if return_dict else output.to_tuple()


def default_backend(device: torch.device) -> str:
    """``triton`` on CUDA when its kernels are available, else ``sdpa``."""
    if device.type == "cuda":
        from .ops import triton_available

        if triton_available():
            return "triton"
    return "sdpa"


def check_backend(name: str | None) -> str | None:
    if name is None:
        return None
    if name in ("flash_attention_2", "flash_attention_3", "flex_attention"):
        raise ValueError(
            f"attn_implementation={name!r} is a transformers backend; fastbert has {BACKENDS} "
            "('triton' is its flash-style kernel path)"
        )
    if name not in BACKENDS:
        raise ValueError(f"attn_implementation must be one of {BACKENDS}, got {name!r}")
    return name


def _as_legacy_cache(past_key_values):
    if past_key_values is None:
        return None
    if hasattr(past_key_values, "to_legacy_cache"):  # a transformers Cache object
        past_key_values = past_key_values.to_legacy_cache()
    if len(past_key_values) == 0:
        return None
    return tuple(tuple(layer) for layer in past_key_values)


# --------------------------------------------------------------------------------------------- BertModel
class BertModel(BertPreTrainedModel):
    """The bare BERT encoder (transformers' ``BertModel``), with an optional pooler."""

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self._graph_runner = None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    # -- validation: on the host, before anything runs
    def _validate(
        self,
        input_ids,
        attention_mask,
        token_type_ids,
        position_ids,
        inputs_embeds,
        past_length,
        encoder_hidden_states,
        encoder_attention_mask,
    ):
        cfg = self.config
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids or inputs_embeds")
        if input_ids is not None:
            if input_ids.dim() != 2:
                raise ValueError(
                    f"input_ids must be (batch, sequence_length), got shape {tuple(input_ids.shape)}"
                )
            if input_ids.dtype.is_floating_point or input_ids.dtype == torch.bool:
                raise ValueError(f"input_ids must be integer token ids, got {input_ids.dtype}")
            shape = tuple(input_ids.shape)
        else:
            if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != cfg.hidden_size:
                raise ValueError(
                    f"inputs_embeds must be (batch, sequence_length, {cfg.hidden_size}), got {tuple(inputs_embeds.shape)}"
                )
            shape = tuple(inputs_embeds.shape[:2])
        if attention_mask is not None and tuple(attention_mask.shape) != (shape[0], shape[1] + past_length):
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)}, expected {(shape[0], shape[1] + past_length)} "
                "(batch, past + sequence length)"
            )
        for name, t in (("token_type_ids", token_type_ids), ("position_ids", position_ids)):
            if (
                t is not None
                and tuple(t.shape) != shape
                and not (t.dim() == 2 and t.shape[0] == 1 and t.shape[1] == shape[1])
            ):
                raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {shape} like input_ids")
        if encoder_hidden_states is not None and encoder_attention_mask is not None:
            if tuple(encoder_attention_mask.shape) != tuple(encoder_hidden_states.shape[:2]):
                raise ValueError(
                    f"encoder_attention_mask has shape {tuple(encoder_attention_mask.shape)}, expected "
                    f"{tuple(encoder_hidden_states.shape[:2])}"
                )
        if (
            cfg.position_embedding_type == "absolute"
            and position_ids is None
            and shape[1] + past_length > cfg.max_position_embeddings
        ):
            raise ValueError(
                f"sequence length {shape[1] + past_length} is longer than max_position_embeddings "
                f"({cfg.max_position_embeddings}): truncate the input"
            )
        # value ranges: one host read for all of them
        checks = []
        if input_ids is not None and input_ids.numel():
            checks += [("input_ids", input_ids, cfg.vocab_size)]
        if token_type_ids is not None and token_type_ids.numel():
            checks += [("token_type_ids", token_type_ids, cfg.type_vocab_size)]
        if position_ids is not None and position_ids.numel() and cfg.position_embedding_type == "absolute":
            checks += [("position_ids", position_ids, cfg.max_position_embeddings)]
        if checks:
            stats = torch.stack(
                [torch.stack([t.min(), t.max()]).to(torch.long).cpu() for _, t, _ in checks]
            ).tolist()
            for (name, _, limit), (lo, hi) in zip(checks, stats):
                if lo < 0 or hi >= limit:
                    bad = lo if lo < 0 else hi
                    what = {
                        "input_ids": "vocab_size",
                        "token_type_ids": "type_vocab_size",
                        "position_ids": "max_position_embeddings",
                    }[name]
                    raise ValueError(f"{name} holds {bad}, outside [0, {limit}) ({what} = {limit})")
        return shape

    def _ops(self, backend: str):
        if backend == "eager":
            return None
        from .ops import get_ops

        return get_ops("triton" if backend == "triton" else "torch")

    def _resolve_backend(self, output_attentions: bool, past: Any) -> str:
        backend = self.attn_implementation
        if backend != "eager" and output_attentions:
            self._warn_fallback(
                f"output_attentions=True needs the attention probabilities, which the {backend} backend "
                "never materialises: this call runs attention eagerly"
            )
        if backend == "triton":
            reason = None
            if self.config.position_embedding_type != "absolute":
                reason = (
                    f"position_embedding_type={self.config.position_embedding_type!r} has no Triton kernel"
                )
            elif self.training and (
                self.config.hidden_dropout_prob > 0 or self.config.attention_probs_dropout_prob > 0
            ):
                reason = "training mode (dropout) has no Triton kernel"
            elif torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters()):
                reason = (
                    "gradients are required and the Triton kernels are forward-only (use torch.no_grad())"
                )
            elif past is not None:
                reason = "incremental decoding with a KV cache"
            elif self.device.type != "cuda":
                from .ops import triton_available

                if not triton_available():
                    reason = "the Triton kernels need CUDA (or TRITON_INTERPRET=1 on CPU)"
            if reason is not None:
                self._warn_fallback(f"{reason}: falling back to the sdpa backend")
                backend = "sdpa"
        return backend

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
        out, _ = self._forward(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            encoder_hidden_states,
            encoder_attention_mask,
            past_key_values if past_key_values is not None else cache,
            use_cache,
            output_attentions,
            output_hidden_states,
            keep_packed=False,
            **kwargs,
        )
        return self._return(out, return_dict)

    def _forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        past_key_values=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        keep_packed=False,
        allow_pack=True,
        **kwargs,
    ):
        """The forward pass. With ``keep_packed``, the sequence output stays packed (heads that work per
        token run on real tokens only, and re-pad their own result); the returned Packing says how."""
        if kwargs:
            unknown = sorted(k for k in kwargs if k not in ("return_dict",))
            if unknown:
                raise TypeError(f"forward() got unexpected keyword arguments {unknown}")
        cfg = self.config
        output_attentions = cfg.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            cfg.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        use_cache = (cfg.use_cache if use_cache is None else use_cache) if cfg.is_decoder else False
        past = _as_legacy_cache(past_key_values)
        past_length = past[0][0].shape[2] if past is not None else 0

        batch, seqlen = self._validate(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            past_length,
            encoder_hidden_states,
            encoder_attention_mask,
        )
        backend = self._resolve_backend(output_attentions, past)
        ops = self._ops(backend)
        device = input_ids.device if input_ids is not None else inputs_embeds.device

        runner = self._graph_runner
        if (
            runner is not None
            and backend == "triton"
            and allow_pack  # a loss over padded positions needs their real values: not the graph path
            and position_ids is None
            and runner.covers(
                input_ids,
                attention_mask,
                inputs_embeds=inputs_embeds,
                encoder_hidden_states=encoder_hidden_states,
                past=past,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
                use_cache=use_cache,
            )
        ):
            hidden, pooled = runner.run(input_ids, attention_mask, token_type_ids)
            out = O.BaseModelOutputWithPoolingAndCrossAttentions(
                last_hidden_state=hidden, pooler_output=pooled
            )
            return out, (None, None, ops)

        emb = self.embeddings
        if position_ids is None:
            position_ids = emb.position_ids[:, past_length : past_length + seqlen].expand(batch, seqlen)
        elif position_ids.shape[0] != batch:
            position_ids = position_ids.expand(batch, seqlen)
        if token_type_ids is None:
            token_type_ids = emb.token_type_ids[:, :seqlen].expand(batch, seqlen)
        elif token_type_ids.shape[0] != batch:
            token_type_ids = token_type_ids.expand(batch, seqlen)

        # -- padding: packed once for sdpa/triton when the batch has some, never for eager or with a cache
        packing = None
        key_mask = None
        causal = cfg.is_decoder
        can_pack = (
            backend != "eager"
            and not output_attentions
            and past is None
            and not use_cache
            and cfg.position_embedding_type == "absolute"
            and allow_pack
        )
        if attention_mask is not None and has_padding(attention_mask):
            if can_pack:
                packing = packing_from_mask(attention_mask)
            else:
                key_mask = attention_mask.bool()
        enc_packing = enc_key_mask = None
        if encoder_hidden_states is not None:
            if encoder_attention_mask is not None and has_padding(encoder_attention_mask):
                if packing is not None:
                    enc_packing = packing_from_mask(encoder_attention_mask)
                else:
                    enc_key_mask = encoder_attention_mask.bool()
            elif packing is not None:
                enc_packing = packing_from_mask(
                    torch.ones(encoder_hidden_states.shape[:2], dtype=torch.bool, device=device)
                )
        meta = AttentionMeta(
            packing=packing,
            key_mask=key_mask,
            causal=causal,
            past_length=past_length,
            use_cache=use_cache,
            enc_packing=enc_packing,
            enc_key_mask=enc_key_mask,
        )

        if packing is not None:
            ids = pack(input_ids, packing) if input_ids is not None else None
            embeds = pack(inputs_embeds, packing) if inputs_embeds is not None else None
            hidden = emb(
                ids, pack(token_type_ids, packing), pack(position_ids, packing), embeds, ops
            )  # (T, H)
            enc_states = (
                pack(encoder_hidden_states, enc_packing) if encoder_hidden_states is not None else None
            )
        else:
            hidden = emb(input_ids, token_type_ids, position_ids, inputs_embeds, ops)  # (B, L, H)
            enc_states = encoder_hidden_states

        def repad(x):
            return unpack(x, packing) if packing is not None else x

        all_hidden = (repad(hidden),) if output_hidden_states else None
        all_attn = () if output_attentions else None
        all_cross = () if output_attentions and encoder_hidden_states is not None else None
        presents = () if use_cache else None
        for i, layer in enumerate(self.encoder.layer):
            hidden, probs, cross_probs, present = layer(
                hidden,
                meta,
                backend,
                ops,
                enc_states,
                past[i] if past is not None else None,
                output_attentions,
            )
            if output_hidden_states:
                all_hidden += (repad(hidden),)
            if output_attentions:
                all_attn += (probs,)
                if all_cross is not None:
                    all_cross += (cross_probs,)
            if use_cache:
                presents += (present,)

        if keep_packed and packing is not None:
            sequence_packed, sequence_output = hidden, None
        else:
            sequence_packed, sequence_output = None, repad(hidden)
        pooled = None
        if self.pooler is not None:
            if packing is not None:
                # position 0 of sequence b is packed row cu_seqlens[b] when it is a real token, else zero
                rows = packing.cu_seqlens[:-1].long().clamp(max=max(packing.total - 1, 0))
                first = hidden[rows] * attention_mask[:, :1].to(hidden.dtype)  # (B, H)
                pooled = self.pooler.activation(self.pooler.dense(first))
            else:
                pooled = self.pooler(sequence_output)

        out = O.BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=sequence_output,
            pooler_output=pooled,
            hidden_states=all_hidden,
            past_key_values=presents,
            attentions=all_attn,
            cross_attentions=all_cross,
        )
        return out, (sequence_packed, packing, ops if backend != "eager" else None)

    def _padded_body(self, input_ids, attention_mask, token_type_ids):
        """The triton forward on a padded batch with a key-padding mask: no host reads, so a CUDA graph
        can capture it. Returns (last_hidden_state, pooler_output)."""
        ops = self._ops("triton")
        batch, seqlen = input_ids.shape
        position_ids = self.embeddings.position_ids[:, :seqlen].expand(batch, seqlen)
        hidden = self.embeddings(input_ids, token_type_ids, position_ids, None, ops)
        meta = AttentionMeta(packing=None, key_mask=attention_mask.bool(), causal=False)
        for layer in self.encoder.layer:
            hidden = layer(hidden, meta, "triton", ops)[0]
        pooled = None
        if self.pooler is not None:  # a padded first position pools zeros, as in the packed path
            first = hidden[:, 0] * attention_mask[:, :1].to(hidden.dtype)
            pooled = self.pooler.activation(self.pooler.dense(first))
        return hidden, pooled


# --------------------------------------------------------------------------------------------- heads
def _token_head(head, sequence_output, packed):
    """Apply a per-token head on packed tokens when the encoder packed them, then re-pad once."""
    sequence_packed, packing, ops = packed
    if sequence_packed is not None:
        return unpack(head(sequence_packed, ops), packing)
    return head(sequence_output, ops)


def _labels_ignore_padding(labels: torch.Tensor | None, attention_mask: torch.Tensor | None) -> bool:
    """Per-token labels that ignore (-100) every padded position: the loss then needs no padded logits,
    and the forward may run on packed tokens. Otherwise it runs padded, so the loss equals transformers'."""
    if labels is None or attention_mask is None:
        return True
    if labels.shape != attention_mask.shape:
        return False
    return bool((labels[attention_mask == 0] == -100).all())


def _input_shape(input_ids, inputs_embeds, dims: int = 2) -> tuple | None:
    ref = input_ids if input_ids is not None else inputs_embeds
    return tuple(ref.shape[:dims]) if ref is not None else None


def _check_labels(labels: torch.Tensor | None, shape: tuple | None, name: str = "labels") -> None:
    """Labels of the wrong shape: a ValueError before the forward runs."""
    if labels is not None and shape is not None and tuple(labels.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(labels.shape)}, expected {tuple(shape)}")


def _bert_kwargs(kwargs: dict) -> dict:
    kwargs.pop("return_dict", None)
    return kwargs


class BertForPreTraining(BertPreTrainedModel):
    _tied_weights_keys = {
        "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(config)
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
        batch_shape = _input_shape(input_ids, inputs_embeds)
        _check_labels(labels, batch_shape)
        _check_labels(next_sentence_label, batch_shape and batch_shape[:1], "next_sentence_label")
        out, packed = self.bert._forward(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            keep_packed=True,
            allow_pack=_labels_ignore_padding(labels, attention_mask),
            **_bert_kwargs(kwargs),
        )
        prediction_scores = _token_head(self.cls.predictions, out.last_hidden_state, packed)
        seq_relationship_score = self.cls.seq_relationship(out.pooler_output)
        loss = None
        if labels is not None and next_sentence_label is not None:
            loss = F.cross_entropy(
                prediction_scores.view(-1, self.config.vocab_size), labels.view(-1)
            ) + F.cross_entropy(seq_relationship_score.view(-1, 2), next_sentence_label.view(-1))
        return self._return(
            O.BertForPreTrainingOutput(
                loss=loss,
                prediction_logits=prediction_scores,
                seq_relationship_logits=seq_relationship_score,
                hidden_states=out.hidden_states,
                attentions=out.attentions,
            ),
            return_dict,
        )


class BertLMHeadModel(BertPreTrainedModel):
    """BERT as a causal language model (``is_decoder=True``), with cross-attention when configured."""

    _tied_weights_keys = BertForPreTraining._tied_weights_keys

    def __init__(self, config: BertConfig):
        super().__init__(config)
        if not config.is_decoder:
            warnings.warn(
                "BertLMHeadModel is meant to be used with is_decoder=True in the config", stacklevel=2
            )
        self.bert = BertModel(config, add_pooling_layer=False)
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
        **kwargs,
    ):
        if labels is not None:
            use_cache = False
        _check_labels(labels, _input_shape(input_ids, inputs_embeds))
        out, packed = self.bert._forward(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            encoder_hidden_states,
            encoder_attention_mask,
            past_key_values if past_key_values is not None else cache,
            use_cache,
            output_attentions,
            output_hidden_states,
            keep_packed=True,
            allow_pack=_labels_ignore_padding(labels, attention_mask),
            **_bert_kwargs(kwargs),
        )
        logits = _token_head(self.cls.predictions, out.last_hidden_state, packed)
        loss = None
        if labels is not None:  # shifted: token t predicts token t + 1
            shifted = F.pad(labels, (0, 1), value=-100)[..., 1:]
            loss = F.cross_entropy(
                logits.float().view(-1, self.config.vocab_size), shifted.reshape(-1), ignore_index=-100
            )
        return self._return(
            O.CausalLMOutputWithCrossAttentions(
                loss=loss,
                logits=logits,
                past_key_values=out.past_key_values,
                hidden_states=out.hidden_states,
                attentions=out.attentions,
                cross_attentions=out.cross_attentions,
            ),
            return_dict,
        )

    def prepare_inputs_for_generation(self, input_ids, past_key_values=None, attention_mask=None, **kwargs):
        if past_key_values is not None:
            past_length = _as_legacy_cache(past_key_values)[0][0].shape[2]
            input_ids = input_ids[:, past_length:]
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "past_key_values": past_key_values,
            "use_cache": kwargs.get("use_cache"),
        }


class BertForMaskedLM(BertPreTrainedModel):
    _tied_weights_keys = BertForPreTraining._tied_weights_keys

    def __init__(self, config: BertConfig):
        super().__init__(config)
        if config.is_decoder:
            warnings.warn(
                "BertForMaskedLM wants bi-directional attention: set is_decoder=False", stacklevel=2
            )
        self.bert = BertModel(config, add_pooling_layer=False)
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
        _check_labels(labels, _input_shape(input_ids, inputs_embeds))
        out, packed = self.bert._forward(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            encoder_hidden_states,
            encoder_attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            keep_packed=True,
            allow_pack=_labels_ignore_padding(labels, attention_mask),
            **_bert_kwargs(kwargs),
        )
        logits = _token_head(self.cls.predictions, out.last_hidden_state, packed)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, self.config.vocab_size), labels.view(-1))
        return self._return(
            O.MaskedLMOutput(
                loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
            ),
            return_dict,
        )


class BertForNextSentencePrediction(BertPreTrainedModel):
    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(config)
        self.cls = BertOnlyNSPHead(config)
        self.post_init()

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
        _check_labels(labels, _input_shape(input_ids, inputs_embeds, 1))
        out, _ = self.bert._forward(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            **_bert_kwargs(kwargs),
        )
        logits = self.cls(out.pooler_output)
        loss = F.cross_entropy(logits.view(-1, 2), labels.view(-1)) if labels is not None else None
        return self._return(
            O.NextSentencePredictorOutput(
                loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
            ),
            return_dict,
        )


def _classifier_dropout(config: BertConfig) -> nn.Dropout:
    p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
    return nn.Dropout(p)


class BertForSequenceClassification(BertPreTrainedModel):
    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

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
        out, _ = self.bert._forward(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            **_bert_kwargs(kwargs),
        )
        logits = self.classifier(self.dropout(out.pooler_output))
        loss = None
        if labels is not None:
            batch = logits.shape[0]
            if labels.shape[0] != batch:
                raise ValueError(f"labels has batch size {labels.shape[0]}, the input has {batch}")
            if self.config.problem_type is None:
                if self.num_labels == 1:
                    self.config.problem_type = "regression"
                elif labels.dtype in (torch.long, torch.int):
                    self.config.problem_type = "single_label_classification"
                else:
                    self.config.problem_type = "multi_label_classification"
            if self.config.problem_type == "regression":
                loss = (
                    F.mse_loss(logits.squeeze(), labels.squeeze())
                    if self.num_labels == 1
                    else F.mse_loss(logits, labels)
                )
            elif self.config.problem_type == "single_label_classification":
                loss = F.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))
            else:
                if tuple(labels.shape) != tuple(logits.shape):
                    raise ValueError(
                        f"multi-label labels must have shape {tuple(logits.shape)}, got {tuple(labels.shape)}"
                    )
                loss = F.binary_cross_entropy_with_logits(logits, labels)
        return self._return(
            O.SequenceClassifierOutput(
                loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
            ),
            return_dict,
        )


class BertForMultipleChoice(BertPreTrainedModel):
    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(config)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

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
        ref = input_ids if input_ids is not None else inputs_embeds
        if ref is None or ref.dim() < 3:
            raise ValueError(
                "BertForMultipleChoice takes input of shape (batch, num_choices, sequence_length)"
            )
        num_choices = ref.shape[1]
        _check_labels(labels, ref.shape[:1])

        def flat(t):
            return t.reshape(-1, *t.shape[2:]) if t is not None else None

        out, _ = self.bert._forward(
            flat(input_ids),
            flat(attention_mask),
            flat(token_type_ids),
            flat(position_ids),
            flat(inputs_embeds),
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            **_bert_kwargs(kwargs),
        )
        logits = self.classifier(self.dropout(out.pooler_output)).view(-1, num_choices)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return self._return(
            O.MultipleChoiceModelOutput(
                loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
            ),
            return_dict,
        )


class BertForTokenClassification(BertPreTrainedModel):
    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def _head(self, x, ops=None):
        return self.classifier(self.dropout(x))

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
        _check_labels(labels, _input_shape(input_ids, inputs_embeds))
        out, packed = self.bert._forward(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            keep_packed=True,
            allow_pack=_labels_ignore_padding(labels, attention_mask),
            **_bert_kwargs(kwargs),
        )
        logits = _token_head(self._head, out.last_hidden_state, packed)
        loss = (
            F.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1)) if labels is not None else None
        )
        return self._return(
            O.TokenClassifierOutput(
                loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
            ),
            return_dict,
        )


class BertForQuestionAnswering(BertPreTrainedModel):
    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
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
        out, packed = self.bert._forward(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            keep_packed=True,
            allow_pack=start_positions is None and end_positions is None,
            **_bert_kwargs(kwargs),
        )
        logits = _token_head(lambda x, ops=None: self.qa_outputs(x), out.last_hidden_state, packed)
        start_logits, end_logits = logits.split(1, dim=-1)
        start_logits = start_logits.squeeze(-1).contiguous()
        end_logits = end_logits.squeeze(-1).contiguous()
        loss = None
        if start_positions is not None and end_positions is not None:
            if start_positions.dim() > 1:
                start_positions = start_positions.squeeze(-1)
            if end_positions.dim() > 1:
                end_positions = end_positions.squeeze(-1)
            ignored_index = start_logits.size(1)  # positions outside the input are ignored, as transformers
            start_positions = start_positions.clamp(0, ignored_index)
            end_positions = end_positions.clamp(0, ignored_index)
            loss = (
                F.cross_entropy(start_logits, start_positions, ignore_index=ignored_index)
                + F.cross_entropy(end_logits, end_positions, ignore_index=ignored_index)
            ) / 2
        return self._return(
            O.QuestionAnsweringModelOutput(
                loss=loss,
                start_logits=start_logits,
                end_logits=end_logits,
                hidden_states=out.hidden_states,
                attentions=out.attentions,
            ),
            return_dict,
        )


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
