"""DistilBERT on the shared engine, with transformers' module tree and parameter names
(``distilbert.transformer.layer.0.attention.q_lin``, ``sa_layer_norm``, ``ffn.lin1``, ``output_layer_norm``).

The recipe: word + position embeddings (no token types) and LayerNorm; a post-norm block whose attention
projects with ``q_lin``/``k_lin``/``v_lin`` (one GEMM over one contiguous storage, as BERT's
``query``/``key``/``value``) and ``out_lin``; the packed driver of :class:`~fastbert.models.engine.BertModel`
unchanged. Heads: ``vocab_transform`` + activation + ``vocab_layer_norm`` + ``vocab_projector`` (tied) for
the masked LM, ``pre_classifier`` + ReLU for sequence classification and multiple choice, ``qa_outputs``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ... import outputs
from ...core.ops import OpTable
from ..bert import modeling as bert
from ..engine import BertInputs, BertModel, BertPreTrainedModel, Encoded
from ..heads import head_dropout
from ..layers import (
    BertSelfAttention,
    LayerContext,
    _Module,
    _plain_module,
    _refuse_after_load,
    dense_act,
    dense_add_norm,
    embedding,
    fused_embed,
    position_ids_buffer,
)
from .config import DistilBertConfig

_EPS = 1e-12  # transformers' DistilBERT fixes its LayerNorm eps


def sinusoidal_table(n_pos: int, dim: int) -> torch.Tensor:
    """(n_pos, dim) fp32: sin on even columns, cos on odd ones, of pos / 10000^(2 (j // 2) / dim) (float64 math,
    as transformers' ``create_sinusoidal_embeddings``)."""
    pos = torch.arange(n_pos, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)[None, :]
    angle = pos / torch.pow(
        torch.tensor(10000.0, dtype=torch.float64), 2 * torch.div(j, 2, rounding_mode="floor") / dim
    )
    out = torch.empty(n_pos, dim, dtype=torch.float64)
    out[:, 0::2] = torch.sin(angle[:, 0::2])
    out[:, 1::2] = torch.cos(angle[:, 1::2])
    return out.float()


class Embeddings(_Module):
    """word + position embeddings, LayerNorm, dropout, no token types (transformers' DistilBERT
    ``Embeddings``; MPNet's with ``padding_idx`` on both tables)."""

    def __init__(self, config, word_padding_idx=None, position_padding_idx=None, eps: float = _EPS):
        super().__init__()
        h = config.hidden_size
        word_padding_idx = config.pad_token_id if word_padding_idx is None else word_padding_idx
        self.word_embeddings = embedding(config.vocab_size, h, padding_idx=word_padding_idx)
        self.position_embeddings = embedding(
            config.max_position_embeddings, h, padding_idx=position_padding_idx
        )
        self.LayerNorm = nn.LayerNorm(h, eps=eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        n = config.max_position_embeddings
        self.register_buffer("position_ids", position_ids_buffer(n), persistent=False)
        # the driver's default token types (zeros): read by nothing here, DistilBERT has no type table
        self.register_buffer("token_type_ids", torch.zeros(1, n, dtype=torch.long), persistent=False)

    def forward(self, input_ids, token_type_ids, position_ids, inputs_embeds, ctx: LayerContext):
        """ids (T,) packed or (B, L) padded -> (..., dim); token types are ignored (there is no table)."""
        if inputs_embeds is None and not ctx.dropout and _plain_module(self.word_embeddings):
            return fused_embed(
                ctx.ops,
                self.LayerNorm,
                (input_ids, self.word_embeddings),
                (position_ids, self.position_embeddings),
            )
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        return self.dropout(self.LayerNorm(inputs_embeds + self.position_embeddings(position_ids)))


class DistilBertSelfAttention(BertSelfAttention):
    """BERT's self-attention (one fused Q/K/V GEMM over one storage) under DistilBERT's names ``q_lin``,
    ``k_lin``, ``v_lin``, plus its output projection ``out_lin``."""

    query = property(lambda self: self.q_lin)
    key = property(lambda self: self.k_lin)
    value = property(lambda self: self.v_lin)

    def __init__(self, config: DistilBertConfig):
        _Module.__init__(self)
        self.num_attention_heads = config.n_heads
        self.attention_head_size = config.dim // config.n_heads
        self.all_head_size = config.dim
        self.scaling = self.attention_head_size**-0.5
        self.is_cross_attention = False
        self.q_lin = nn.Linear(config.dim, config.dim)
        self.k_lin = nn.Linear(config.dim, config.dim)
        self.v_lin = nn.Linear(config.dim, config.dim)
        self.out_lin = nn.Linear(config.dim, config.dim)
        self.fuse_qkv_storage()
        self.register_load_state_dict_post_hook(_refuse_after_load)
        self.dropout = nn.Dropout(config.attention_dropout)
        self.position_embedding_type = "absolute"
        self.relative = False


class FFN(_Module):
    def __init__(self, config: DistilBertConfig):
        super().__init__()
        self.dropout = nn.Dropout(config.dropout)
        self.lin1 = nn.Linear(config.dim, config.hidden_dim)
        self.lin2 = nn.Linear(config.hidden_dim, config.dim)
        self.hidden_act = config.activation


def _linear_add_layernorm(linear: nn.Linear, norm: nn.LayerNorm, dropout: nn.Dropout, x, residual, ctx):
    """norm(dropout(linear(x)) + residual): the table's GEMM + fused add + LayerNorm (plain modules in training)."""
    if ctx.dropout:
        return norm(dropout(linear(x)) + residual)
    return dense_add_norm(ctx.ops, linear, norm, x, residual)


class TransformerBlock(_Module):
    gradient_checkpointing = False  # set by gradient_checkpointing_enable (``model_api``)

    def __init__(self, config: DistilBertConfig):
        super().__init__()
        self.attention = DistilBertSelfAttention(config)
        self.sa_layer_norm = nn.LayerNorm(config.dim, eps=_EPS)
        self.ffn = FFN(config)
        self.output_layer_norm = nn.LayerNorm(config.dim, eps=_EPS)

    def forward(self, hidden_states, ctx: LayerContext, encoder_hidden_states=None, past_key_value=None):
        """(T, dim) packed or (B, L, dim) -> the same shape, the attention probabilities (eager)."""
        context, probs, _ = self.attention(hidden_states, ctx)
        attention = self.attention
        no_dropout = nn.Identity()
        sa = _linear_add_layernorm(
            attention.out_lin, self.sa_layer_norm, no_dropout, context, hidden_states, ctx
        )
        ffn = self.ffn
        x = dense_act(ctx.ops, ffn.lin1, sa, ffn.hidden_act)
        out = _linear_add_layernorm(ffn.lin2, self.output_layer_norm, ffn.dropout, x, sa, ctx)
        return out, probs, None, None


class Transformer(_Module):
    def __init__(self, config: DistilBertConfig):
        super().__init__()
        self.n_layers = config.n_layers
        self.layer = nn.ModuleList([TransformerBlock(config) for _ in range(config.n_layers)])


class DistilBertPreTrainedModel(BertPreTrainedModel):
    config_class = DistilBertConfig
    base_model_prefix = "distilbert"

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, Embeddings):
            with torch.no_grad():
                n = module.position_ids.shape[-1]
                module.position_ids.copy_(torch.arange(n, device=module.position_ids.device).expand(1, -1))
                module.token_type_ids.zero_()
                if self.config.sinusoidal_pos_embds:
                    weight = module.position_embeddings.weight
                    weight.copy_(sinusoidal_table(*weight.shape))
        elif self.config.sinusoidal_pos_embds and isinstance(module, nn.Embedding):
            # the position table alone: loading initialises the module that owns a parameter the checkpoint did
            # not give (or that ignore_mismatched_sizes re-initialises), not its Embeddings; transformers
            # gives it the sinusoidal table there too, not a normal draw
            if any(isinstance(m, Embeddings) and m.position_embeddings is module for m in self.modules()):
                with torch.no_grad():
                    module.weight.copy_(sinusoidal_table(*module.weight.shape))

    def get_position_embeddings(self) -> nn.Embedding:
        """The position table (transformers' DistilBERT models, bare and with a head)."""
        return self.base_model.embeddings.position_embeddings

    def resize_position_embeddings(self, new_num_position_embeddings: int) -> None:
        """Give the position table ``new_num_position_embeddings`` rows and set
        ``config.max_position_embeddings`` (transformers' DistilBERT): the sinusoidal table again where
        ``config.sinusoidal_pos_embds``, else the first rows kept and new rows drawn as at initialisation
        (transformers draws them N(0, 1), torch's default, not ``initializer_range``). The
        ``position_ids`` buffer follows, so the longer inputs run (transformers' kept its old length)."""
        n = int(new_num_position_embeddings)
        if n < 1:
            raise ValueError(
                f"new_num_position_embeddings must be at least 1, got {new_num_position_embeddings}"
            )
        emb = self.base_model.embeddings
        old = emb.position_embeddings
        if n == old.num_embeddings:
            return
        table = nn.Embedding(n, old.embedding_dim, padding_idx=old.padding_idx).to(old.weight)
        self._init_weights(table)
        with torch.no_grad():
            if self.config.sinusoidal_pos_embds:
                table.weight.copy_(sinusoidal_table(n, old.embedding_dim))
            else:
                keep = min(n, old.num_embeddings)
                table.weight[:keep] = old.weight[:keep]
        table.weight.requires_grad_(old.weight.requires_grad)
        emb.position_embeddings = table
        device = emb.position_ids.device
        emb.register_buffer("position_ids", torch.arange(n, device=device).expand(1, -1), persistent=False)
        emb.register_buffer(
            "token_type_ids", torch.zeros(1, n, dtype=torch.long, device=device), persistent=False
        )
        self.config.max_position_embeddings = n

    def get_output_embeddings(self) -> nn.Linear | None:
        return self._modules.get("vocab_projector")

    def _lm_logits(self, hidden_states: torch.Tensor, ops: OpTable) -> torch.Tensor:
        x = dense_act(ops, self.vocab_transform, hidden_states, self.config.activation, self.vocab_layer_norm)
        return self.vocab_projector(x)


class DistilBertModel(DistilBertPreTrainedModel, BertModel):
    """The bare DistilBERT encoder (transformers' ``DistilBertModel``): no pooler, no token types."""

    splits_restarting_positions = False  # transformers 5 builds this family's mask without position_ids
    honours_is_decoder = False  # an encoder only: transformers' attends both ways, is_decoder or not
    linear_layout = ("transformer.layer", "attention", ("attention.out_lin", "ffn.lin1", "ffn.lin2"))

    def __init__(self, config: DistilBertConfig, add_pooling_layer: bool = False):
        BertPreTrainedModel.__init__(self, config)  # not BertModel's modules
        self.embeddings = Embeddings(config)
        if config.sinusoidal_pos_embds:
            # a fixed table, not learned: kept out of training (transformers 4's DistilBERT; transformers 5.25
            # leaves it trainable), while still a parameter that save_pretrained writes and loading reads
            self.embeddings.position_embeddings.weight.requires_grad_(False)
        self.transformer = Transformer(config)
        self.pooler = None  # DistilBERT has none (``add_pooling_layer`` is accepted for the shared heads)
        self.post_init()

    def _layers(self) -> nn.ModuleList:
        return self.transformer.layer

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        inputs_embeds=None,
        position_ids=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        kwargs.pop(
            "token_type_ids", None
        )  # a BERT tokenizer's: DistilBERT has no table, transformers drops them
        enc = self.encode(BertInputs.of(locals()))
        out = outputs.BaseModelOutput(
            last_hidden_state=enc.last_hidden_state,
            hidden_states=enc.hidden_states,
            attentions=enc.attentions,
        )
        return self._return(out, return_dict)


DistilBertPreTrainedModel.base_model_class = DistilBertModel


class _DistilHead:
    """DistilBERT's forward arguments (transformers' order; no token types) on the shared head protocol."""

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        inputs_embeds=None,
        labels=None,
        position_ids=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        kwargs.pop(
            "token_type_ids", None
        )  # a BERT tokenizer's: DistilBERT has no table, transformers drops them
        return self._run(BertInputs.of(locals()), return_dict, labels=labels)


class DistilBertForMaskedLM(_DistilHead, DistilBertPreTrainedModel, bert.BertForMaskedLM):
    _tied_weights_keys = {"vocab_projector.weight": "distilbert.embeddings.word_embeddings.weight"}

    def __init__(self, config: DistilBertConfig):
        BertPreTrainedModel.__init__(self, config)
        self._new_base(config)
        self.vocab_transform = nn.Linear(config.dim, config.dim)
        self.vocab_layer_norm = nn.LayerNorm(config.dim, eps=_EPS)
        self.vocab_projector = nn.Linear(config.dim, config.vocab_size)
        self.post_init()


class _PreClassifier:
    """``pre_classifier`` + ReLU + dropout + ``classifier`` on the first token."""

    def _classify(self, first: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(F.relu(self.pre_classifier(first))))


class DistilBertForSequenceClassification(
    _DistilHead, _PreClassifier, DistilBertPreTrainedModel, bert.BertForSequenceClassification
):
    def __init__(self, config: DistilBertConfig):
        BertPreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self._new_base(config)
        self.pre_classifier = nn.Linear(config.dim, config.dim)
        self.classifier = nn.Linear(config.dim, config.num_labels)
        self.dropout = head_dropout(config, "seq_classif_dropout")
        self.post_init()

    def head(self, enc: Encoded, **targets):
        # position 0 (zeros where it is padding on the packed paths, as BERT's pooler), packed or padded
        return self._classify(enc.first_token())


class DistilBertForMultipleChoice(
    _DistilHead, _PreClassifier, DistilBertPreTrainedModel, bert.BertForMultipleChoice
):
    def __init__(self, config: DistilBertConfig):
        BertPreTrainedModel.__init__(self, config)
        self._new_base(config)
        self.pre_classifier = nn.Linear(config.dim, config.dim)
        self.classifier = nn.Linear(config.dim, 1)
        self.dropout = head_dropout(config, "seq_classif_dropout")
        self.post_init()

    def head(self, enc: Encoded, labels=None, num_choices=None):
        return self._classify(enc.first_token()).view(-1, num_choices)


class DistilBertForTokenClassification(
    _DistilHead, DistilBertPreTrainedModel, bert.BertForTokenClassification
):
    def __init__(self, config: DistilBertConfig):
        BertPreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self._new_base(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.dim, config.num_labels)
        self.post_init()


class DistilBertForQuestionAnswering(DistilBertPreTrainedModel, bert.BertForQuestionAnswering):
    def __init__(self, config: DistilBertConfig):
        BertPreTrainedModel.__init__(self, config)
        if config.num_labels != 2:
            raise ValueError(f"config.num_labels should be 2, but it is {config.num_labels}")
        self.num_labels = config.num_labels
        self._new_base(config)
        self.qa_outputs = nn.Linear(config.dim, config.num_labels)
        self.dropout = head_dropout(config, "qa_dropout")
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        inputs_embeds=None,
        start_positions=None,
        end_positions=None,
        position_ids=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        kwargs.pop(
            "token_type_ids", None
        )  # a BERT tokenizer's: DistilBERT has no table, transformers drops them
        return self._run(
            BertInputs.of(locals()), return_dict, start_positions=start_positions, end_positions=end_positions
        )

    def head(self, enc: Encoded, **targets):
        logits = enc.per_token(lambda x, ops: self.qa_outputs(self.dropout(x)))
        start_logits, end_logits = logits.split(1, dim=-1)
        return start_logits.squeeze(-1).contiguous(), end_logits.squeeze(-1).contiguous()


__all__ = [
    "DistilBertForMaskedLM",
    "DistilBertForMultipleChoice",
    "DistilBertForQuestionAnswering",
    "DistilBertForSequenceClassification",
    "DistilBertForTokenClassification",
    "DistilBertModel",
    "DistilBertPreTrainedModel",
]
