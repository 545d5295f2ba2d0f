"""MPNet on the shared engine, with transformers' module and parameter names
(``mpnet.encoder.layer.0.attention.attn.q``, ``attention.attn.o``, ``attention.LayerNorm``,
``encoder.relative_attention_bias``).

The recipe: RoBERTa's positions (``padding_idx + 1 + cumsum(non-pad)``, padding index 1 as transformers),
no token types, and the relative position bias: one (32 buckets, heads) table shared by every layer, read
once per forward into a (heads, 2 * 128 + 1) table by the offset ``j - i`` inside each sequence
(``attention_ref.relative_bias_table``; exact, offsets past 128 share the last bucket) and added to the scaled
scores. On ``sdpa`` and ``triton`` the batch is always packed (also without padding) so the bias runs
inside the varlen attention (the Triton kernel, or the per-sequence torch path): no (B, heads, L, L)
tensor. ``eager`` (and a padded call: training with attention dropout, a loss over padded positions) adds
transformers' (1, heads, L, L) bias to the padded scores. transformers' MPNet has only ``eager``.
Heads are RoBERTa's (``lm_head``, the classification head on ``<s>``) under MPNet's names.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from ... import outputs
from ...core.attention_ref import relative_position_bucket
from ...core.ops import AttentionSpec, OpTable
from ..distilbert.modeling import Embeddings
from ..engine import BertInputs, BertModel, BertPreTrainedModel
from ..heads import NoTokenTypesHead, NoTokenTypesQAHead
from ..layers import (
    BertIntermediate,
    BertOutput,
    BertPooler,
    BertSelfAttention,
    LayerContext,
    _Module,
    _refuse_after_load,
    dense_add_norm,
    embedding,
)
from ..roberta import modeling as roberta
from .config import MPNetConfig

_PADDING_IDX = 1  # transformers' MPNetEmbeddings fixes it (not config.pad_token_id)
_LAYER_TYPE = "full_attention"  # MPNet's one layer type: global attention with the relative bias
_BUCKETS, _MAX_DISTANCE = 32, 128  # transformers' compute_position_bias / relative_position_bucket defaults


def bias_table(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(heads, 2 * 128 + 1): ``relative_attention_bias.weight`` (buckets, heads) at each offset ``j - i``
    (``attention_ref.relative_bias_table``'s layout) — differentiable, so training reaches the weight."""
    offsets = torch.arange(-_MAX_DISTANCE, _MAX_DISTANCE + 1, device=weight.device)
    buckets = relative_position_bucket(offsets, _BUCKETS, _MAX_DISTANCE)
    return weight[buckets].t().to(dtype).contiguous()


class MPNetEmbeddings(Embeddings):
    """word + position embeddings (both with ``padding_idx`` 1), LayerNorm, dropout; no token types."""

    def __init__(self, config: MPNetConfig):
        super().__init__(config, _PADDING_IDX, _PADDING_IDX, eps=config.layer_norm_eps)
        self.padding_idx = _PADDING_IDX


class MPNetSelfAttention(BertSelfAttention):
    """BERT's self-attention (one fused Q/K/V GEMM over one storage) under MPNet's names ``q``, ``k``, ``v``,
    plus the output projection ``o``; the relative bias from the forward's :class:`AttentionSpec`."""

    query = property(lambda self: self.q)
    key = property(lambda self: self.k)
    value = property(lambda self: self.v)

    def __init__(self, config: MPNetConfig):
        _Module.__init__(self)
        h = config.hidden_size
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = h // config.num_attention_heads
        self.all_head_size = h
        self.scaling = self.attention_head_size**-0.5
        self.is_cross_attention = False
        self.q = nn.Linear(h, h)
        self.k = nn.Linear(h, h)
        self.v = nn.Linear(h, h)
        self.o = nn.Linear(h, h)
        self.fuse_qkv_storage()
        self.register_load_state_dict_post_hook(_refuse_after_load)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.position_embedding_type = "absolute"
        self.relative = False

    def forward(self, hidden_states, ctx: LayerContext, encoder_hidden_states=None, past_key_value=None):
        """hidden_states (T, H) packed or (B, L, H) padded -> context (before ``o``), probs (eager), None."""
        h, d = self.num_attention_heads, self.attention_head_size
        lead = hidden_states.shape[:-1]
        fused = self.fused_qkv()
        if fused is not None:
            # a load-time transform of the fused projection (the int8 copy of fastbert.quant) runs it
            hook = self.__dict__.get("qkv_linear")
            linear = ctx.ops.linear if hook is None else hook
            q, k, v = linear(hidden_states, *fused).view(*lead, 3, h, d).unbind(-3)
        else:  # wrapped or replaced modules: each runs itself
            q, k, v = (m(hidden_states).view(*lead, h, d) for m in (self.q, self.k, self.v))
        spec, bias = ctx.spec_for(_LAYER_TYPE), None
        if spec.q_packing is None:  # padded: transformers' (1, heads, L, L) bias from the same table
            n = q.shape[1]
            offsets = torch.arange(n, device=q.device)
            r = (spec.rel_bias.shape[1] - 1) // 2
            bias = spec.rel_bias[:, (offsets[None, :] - offsets[:, None]).clamp(-r, r) + r][None].to(q.dtype)
        dropout_p = self.dropout.p if self.training else 0.0
        context, probs = ctx.ops.attention(q, k, v, spec, self.scaling, dropout_p, bias)
        return context.reshape(*lead, h * d), probs, None


class MPNetAttention(_Module):
    def __init__(self, config: MPNetConfig):
        super().__init__()
        self.attn = MPNetSelfAttention(config)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, ctx: LayerContext):
        context, probs, _ = self.attn(hidden_states, ctx)
        o, ln = self.attn.o, self.LayerNorm
        if ctx.dropout:
            return ln(self.dropout(o(context)) + hidden_states), probs
        return dense_add_norm(ctx.ops, o, ln, context, hidden_states), probs


class MPNetLayer(_Module):
    gradient_checkpointing = False  # set by gradient_checkpointing_enable (``model_api``)

    def __init__(self, config: MPNetConfig):
        super().__init__()
        self.attention = MPNetAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, hidden_states, ctx: LayerContext, encoder_hidden_states=None, past_key_value=None):
        attention_output, probs = self.attention(hidden_states, ctx)
        layer_output = self.output(self.intermediate(attention_output, ctx), attention_output, ctx)
        return layer_output, probs, None, None


class MPNetEncoder(_Module):
    def __init__(self, config: MPNetConfig):
        super().__init__()
        self.n_heads = config.num_attention_heads
        self.layer = nn.ModuleList([MPNetLayer(config) for _ in range(config.num_hidden_layers)])
        self.relative_attention_bias = embedding(config.relative_attention_num_buckets, self.n_heads)


class MPNetPreTrainedModel(BertPreTrainedModel):
    config_class = MPNetConfig
    base_model_prefix = "mpnet"

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, MPNetEmbeddings):
            with torch.no_grad():
                n = module.position_ids.shape[-1]
                module.position_ids.copy_(torch.arange(n, device=module.position_ids.device).expand(1, -1))
                module.token_type_ids.zero_()

    def _lm_head(self) -> nn.Module | None:
        return self._modules.get("lm_head")


class MPNetModel(MPNetPreTrainedModel, BertModel):
    """The bare MPNet encoder (transformers' ``MPNetModel``), with an optional pooler."""

    always_pack = True  # packed also without padding: the relative bias runs in the varlen attention
    splits_restarting_positions = False  # transformers 5 builds this family's mask without position_ids
    honours_is_decoder = False  # an encoder only: transformers' attends both ways, is_decoder or not
    linear_layout = (
        "encoder.layer",
        "attention.attn",
        ("attention.attn.o", "intermediate.dense", "output.dense"),
    )

    def __init__(self, config: MPNetConfig, add_pooling_layer: bool = True):
        BertPreTrainedModel.__init__(self, config)  # not BertModel's modules
        self.embeddings = MPNetEmbeddings(config)
        self.encoder = MPNetEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.post_init()

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
        kwargs.pop("token_type_ids", None)  # a BERT tokenizer's: MPNet has no table, transformers drops them
        enc = self.encode(BertInputs.of(locals()))
        out = outputs.BaseModelOutputWithPooling(
            last_hidden_state=enc.last_hidden_state,
            pooler_output=enc.pooled,
            hidden_states=enc.hidden_states,
            attentions=enc.attentions,
        )
        return self._return(out, return_dict)

    @classmethod
    def length_limit(cls, config) -> tuple[int, str]:
        n = config.max_position_embeddings - _PADDING_IDX - 1
        return n, (
            f"the model's limit of {n} tokens (max_position_embeddings {config.max_position_embeddings} - "
            f"padding_idx {_PADDING_IDX} - 1)"
        )

    def _positions_needed(self, inputs: BertInputs, past_length: int) -> int:
        # as RoBERTa's: padding takes position padding_idx, so a batch padded past the limit runs when its
        # real rows fit (transformers' MPNet runs it)
        if inputs.input_ids is None:
            return super()._positions_needed(inputs, past_length)
        return roberta.positions_needed(inputs.input_ids, _PADDING_IDX, past_length)

    def _default_position_ids(
        self, inputs: BertInputs, batch: int, seqlen: int, past_length: int
    ) -> torch.Tensor:
        if inputs.input_ids is not None:
            return roberta.position_ids_from_input_ids(inputs.input_ids, _PADDING_IDX, past_length)
        device = inputs.inputs_embeds.device
        return torch.arange(_PADDING_IDX + 1, seqlen + _PADDING_IDX + 1, device=device).expand(batch, seqlen)

    def _layer_specs(self, attn: AttentionSpec, ops: OpTable, positions: int) -> dict[str, AttentionSpec]:
        """Every layer's spec carries this forward's relative bias table (shared by the layers): packed,
        the varlen attention adds it per sequence; padded (training with attention dropout), the layers
        build transformers' (1, heads, L, L) bias from it."""
        weight = self.encoder.relative_attention_bias.weight
        return {_LAYER_TYPE: replace(attn, rel_bias=bias_table(weight, ops.rel_bias_dtype or weight.dtype))}


MPNetPreTrainedModel.base_model_class = MPNetModel

_TIED = {
    "lm_head.decoder.weight": "mpnet.embeddings.word_embeddings.weight",
    "lm_head.decoder.bias": "lm_head.bias",
}


class MPNetLMHead(roberta.RobertaLMHead):
    """transformers' ``MPNetLMHead``: dense + GELU + ``layer_norm`` + ``decoder`` (tied), as RoBERTa's."""


class MPNetForMaskedLM(NoTokenTypesHead, MPNetPreTrainedModel, roberta.RobertaForMaskedLM):
    _tied_weights_keys = _TIED

    def __init__(self, config: MPNetConfig):
        BertPreTrainedModel.__init__(self, config)
        self._new_base(config, add_pooling_layer=False)
        self.lm_head = MPNetLMHead(config)
        self.post_init()


class MPNetForSequenceClassification(
    NoTokenTypesHead, MPNetPreTrainedModel, roberta.RobertaForSequenceClassification
):
    pass


class MPNetForMultipleChoice(NoTokenTypesHead, MPNetPreTrainedModel, roberta.RobertaForMultipleChoice):
    pass


class MPNetForTokenClassification(
    NoTokenTypesHead, MPNetPreTrainedModel, roberta.RobertaForTokenClassification
):
    pass


class MPNetForQuestionAnswering(
    NoTokenTypesQAHead, MPNetPreTrainedModel, roberta.RobertaForQuestionAnswering
):
    pass
