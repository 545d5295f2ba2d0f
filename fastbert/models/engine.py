"""The shared engine: the base class of every family's models and the packed driver.

:class:`BertPreTrainedModel` holds what every class shares (initialisation, backend choice, loading and
saving, weight tying through the family's LM head). :class:`BertModel` is the driver every family's base
model subclasses: validate on the host with one device->host read, resolve the op table once, plan the
packing once, embed (positions by the family's policy, :meth:`BertModel._default_position_ids`, computed on
the padded ids before packing), run the layers, re-pad once, pool. Each forward resolves
``attn_implementation`` once into an op table (``fastbert.core.ops``); when the batch has padding and the
table packs (``sdpa``, ``triton``), the real tokens are packed once after the mask is read, every layer
runs on them only, and the result is re-padded once (padded positions are zero).
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .. import outputs
from ..adapters import AdapterAPI
from ..config import BertConfig, check_attn_implementation
from ..core import workspace
from ..core.kv_cache import as_legacy_cache, cache_capacity, is_cache_object, update_cache
from ..core.ops import AttentionSpec, OpTable, default_attn_implementation, resolve
from ..core.padding import (
    _PACKED_OUTPUTS,
    Packing,
    extents,
    full_packing,
    host_read,
    lengths,
    pack,
    packing_from_mask,
    unpack,
)
from ..core.tracing import traced
from ..loading import PreTrainedMixin
from ..model_api import TransformersModelAPI
from .layers import BertEmbeddings, BertEncoder, BertPooler, LayerContext, _Module, table_shape

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
#: the encoder's tensor inputs, which must be on the model's device
_DEVICE_ARGUMENTS = (
    "input_ids",
    "inputs_embeds",
    "attention_mask",
    "token_type_ids",
    "position_ids",
    "encoder_hidden_states",
    "encoder_attention_mask",
)
#: integer id dtypes the embedding lookup does not take: converted to int64 (transformers fails on them)
_SMALL_INT_DTYPES = frozenset(
    getattr(torch, n) for n in ("uint8", "int8", "int16", "uint16", "uint32", "uint64") if hasattr(torch, n)
)


#: forward arguments that are switches: a tensor there is an argument given in another order's place
_SWITCHES = ("output_attentions", "output_hidden_states", "return_dict", "use_cache")

#: transformers 5's keyword arguments that describe a padding-free batch's sequences (``TransformersKwargs``:
#: what ``DataCollatorWithFlattening(return_flash_attn_kwargs=True / return_seq_idx=True)`` adds to a batch).
#: transformers' flash attention reads the first four, its eager and sdpa attention none: there the sequences
#: come from the position ids alone. fastbert's attention follows the position ids too, and checks that these
#: mark the same sequences (a ValueError where they do not, whose result would depend on transformers' backend)
_SEQUENCE_KWARGS = ("cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k", "seq_idx")


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
    #: a CUDA graph's packing of ``attention_mask`` (``fastbert.core.cuda_graphs``), kept on the device: the call
    #: packs by it without a host read (``encode(..., host_reads=False)``); never a ``forward`` argument
    static_packing: Packing | None = None
    #: transformers' ``cu_seq_lens_q`` ... ``seq_idx`` (``_SEQUENCE_KWARGS``) where given: checked against
    #: the sequences the call attends within; never a ``forward`` argument of that name
    sequence_kwargs: dict | None = None

    @classmethod
    def of(cls, args: dict) -> BertInputs:
        """The inputs among a ``forward``'s arguments (its ``locals()``); TypeError for unknown keywords."""
        extra = dict(args.get("kwargs") or {})
        extra.pop("return_dict", None)
        extra.pop("num_items_in_batch", None)  # the Trainer's loss kwarg: heads that use it take it first
        extra.pop("cache_position", None)  # generate()'s: the positions follow from the cache here
        _no_head_mask(extra.pop("head_mask", None))
        use_cache = extra.pop("use_cache", None)  # transformers' heads take it through **kwargs too
        sequence_kwargs = {k: v for k in _SEQUENCE_KWARGS if (v := extra.pop(k, None)) is not None}
        if extra:
            raise TypeError(f"forward() got unexpected keyword arguments {sorted(extra)}")
        for name in _TENSOR_ARGUMENTS:
            value = args.get(name)
            if value is not None and not isinstance(value, torch.Tensor):
                raise TypeError(
                    f"{name} must be a torch.Tensor, got {type(value).__name__}: make one with torch.tensor(...) "
                    "(or call the tokenizer with return_tensors='pt')"
                )
            if value is not None and value.is_nested:  # else torch's "NestedTensorImpl doesn't support sizes"
                raise TypeError(
                    f"{name} is a nested tensor; the model takes a dense (batch, sequence_length, ...) tensor: pad "
                    "it (torch.nested.to_padded_tensor) and give the attention_mask of its real tokens"
                )
            # sparse: else torch's "Could not run 'aten::aminmax' ... from the 'SparseCPU' backend"
            if value is not None and value.layout != torch.strided:
                raise TypeError(
                    f"{name} is a {value.layout} tensor; the model takes a dense (strided) tensor: convert it "
                    "with .to_dense()"
                )
        for name in _SWITCHES:
            if isinstance(args.get(name), torch.Tensor):
                raise TypeError(
                    f"{name} got a tensor; it takes True, False or None. The forward arguments follow "
                    "transformers 5's order, which has no head_mask: a call written for transformers 4's "
                    "positional order (head_mask fifth, then inputs_embeds, labels ...) must name the arguments "
                    "after position_ids"
                )
        values = {f.name: args[f.name] for f in dataclasses.fields(cls) if f.name in args}
        if values.get("use_cache") is None and use_cache is not None:
            values["use_cache"] = use_cache
        for name in ("input_ids", "token_type_ids", "position_ids"):  # uint8, int8, int16 ... ids: as int64
            t = values.get(name)
            if t is not None and t.dtype in _SMALL_INT_DTYPES:
                values[name] = t.long()
        given = values.get("past_key_values")
        if given is not None and args.get("cache") is not None and args["cache"] is not given:
            # transformers 5.25 reads cache and ignores past_key_values (a warning): one of them is stale
            raise ValueError(
                "forward got both past_key_values and cache (transformers 5's name of it), two different caches: "
                "give one"
            )
        if values.get("past_key_values") is None and args.get("cache") is not None:
            values["past_key_values"] = args["cache"]
        if sequence_kwargs:
            values["sequence_kwargs"] = sequence_kwargs
        return cls(**values)

    @property
    def reference(self) -> torch.Tensor | None:
        return self.input_ids if self.input_ids is not None else self.inputs_embeds

    def batch_shape(self, dims: int = 2) -> tuple | None:
        ref = self.reference
        return tuple(ref.shape[:dims]) if ref is not None else None


def _no_head_mask(head_mask: Any) -> None:
    """transformers 4's ``head_mask``: None (what its era's code passes) or a mask of ones is accepted; one that
    nullifies a head is refused by name (transformers 5 dropped the argument and ignores it silently)."""
    if head_mask is None:
        return
    if not isinstance(head_mask, torch.Tensor):
        raise TypeError(f"head_mask must be a torch.Tensor or None, got {type(head_mask).__name__}")
    if not bool((head_mask == 1).all()):
        raise ValueError(
            "head_mask has values other than 1: it would scale or nullify attention heads, which fastbert does "
            "not compute (transformers 5 dropped head_mask and ignores it); pass None, or remove the heads' weights"
        )


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
    #: :func:`packed_outputs` as the forward read it, where it read its inputs on the host (Dynamo cannot trace
    #: ``ContextVar.get``: under ``torch.compile`` a read after the layers split the graph); None: read it now
    packed_outputs: bool | None = field(default=None, repr=False)

    def _packed_outputs(self) -> bool:
        return _PACKED_OUTPUTS.get() if self.packed_outputs is None else self.packed_outputs

    @property
    def last_hidden_state(self) -> torch.Tensor:
        """(B, L, H), padded positions zero (re-padded once); packed (T, H) when :func:`packed_outputs` asks
        for it and the forward packed (the heads read the first token through :meth:`first_token`)."""
        if self.packing is not None and self._packed_outputs():
            return self.sequence
        return self.padded_sequence

    @property
    def padded_sequence(self) -> torch.Tensor:
        """(B, L, H), padded positions zero (re-padded once), whatever :func:`packed_outputs` asks: for the heads
        that pick positions of the padded layout (``logits_to_keep``)."""
        if self._padded is None:
            self._padded = unpack(self.sequence, self.packing) if self.packing is not None else self.sequence
        return self._padded

    def first_token(self) -> torch.Tensor:
        """(B, H) states at position 0 of each row, what ``last_hidden_state[:, 0]`` reads padded: when packed,
        each sequence's first packed token (found by the cumulative lengths, nothing re-padded), zeros where
        position 0 is padding (as the re-padded states and BERT's pooler on the packed path)."""
        packing = self.packing
        if packing is None:
            return self.sequence[:, 0]
        first = self.first_packed()
        if packing.total == 0:
            return first
        at_zero = packing.indices[self._first_rows()] % max(packing.seqlen, 1) == 0
        return first.masked_fill(~at_zero[:, None], 0.0)

    def _first_rows(self) -> torch.Tensor:
        """(B,) the packed row of each sequence's first real token (clamped into range for a sequence without
        any, whose row :meth:`first_packed` fills with zeros)."""
        return self.packing.cu_seqlens[:-1].long().clamp(max=self.packing.total - 1)

    def first_packed(self) -> torch.Tensor:
        """(B, H) of a packed forward: each sequence's first real token, found by the cumulative lengths, zeros
        for a sequence without any (a fill, not a product: a CUDA graph's packing has filler rows past the real
        tokens, which no attention writes, and such a sequence may point at one)."""
        packing, hidden = self.packing, self.sequence
        if packing.total == 0:
            return hidden.new_zeros(packing.batch, hidden.shape[-1])
        return hidden[self._first_rows()].masked_fill((packing.seqlens == 0)[:, None], 0.0)

    def per_token(self, head) -> torch.Tensor:
        """``head(x, ops)`` on every token: on the packed tokens when packed (then re-padded once, unless
        :func:`packed_outputs` asks for them packed)."""
        y = head(self.sequence, self.ops)
        return unpack(y, self.packing) if self.packing is not None and not self._packed_outputs() else y


# --------------------------------------------------------------------------------------------- base class
class BertPreTrainedModel(PreTrainedMixin, TransformersModelAPI, AdapterAPI, _Module):
    """Weight initialisation, backend choice, loading/saving (``PreTrainedMixin``), PEFT adapters
    (``AdapterAPI``)."""

    config_class = BertConfig
    base_model_prefix = "bert"
    _tied_weights_keys: dict[str, str] = {}

    def __init__(self, config: BertConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(f"config must be a fastbert.BertConfig, got {type(config).__name__}")
        config.validate()  # types and ranges of every field, when the model is built (as transformers)
        self.config = config
        #: the folder or hub id the model was loaded from: an instance attribute taken from the config, as
        #: transformers' ``PreTrainedModel`` sets it (PEFT reads ``model.__dict__["name_or_path"]`` for the
        #: ``base_model_name_or_path`` of the adapters it saves; sentence-transformers reads it too)
        self.name_or_path = config.name_or_path
        self._fallback_warned: set[str] = set()
        #: transformers 4's per-model record of the warnings given once (``estimate_tokens``); TRL's trainers
        #: set ``model.warnings_issued["estimate_tokens"] = True`` to silence it
        self.warnings_issued: dict[str, bool] = {}
        #: bumped whenever the parameters may have moved (``to()``, ``_apply``, loading with assign):
        #: whoever holds their addresses (a CUDA graph) compares it
        self.weights_version = 0
        self.register_load_state_dict_post_hook(_after_load)

    #: the default CUDA-graph runner may be installed on a CUDA call (``cuda_graphs(enabled=False)``: no)
    _graphs_auto = True

    @property
    def config(self) -> BertConfig:
        return self.__dict__["_config"]

    @config.setter
    def config(self, value: Any) -> None:
        """A fastbert config of the model's family; a transformers config of that family (transformers'
        ``EncoderDecoderModel`` assigns its own to the models it holds) is read into one, keeping this model's
        attention backend. The submodules that held the old config get the new one."""
        old = self.__dict__.get("_config")
        if not isinstance(value, BertConfig):
            value = self._config_from_foreign(value, old)
        self.__dict__["_config"] = value
        if old is not None and old is not value:
            for module in self.modules():
                if module is not self and getattr(module, "config", None) is old:
                    module.config = value

    def _config_from_foreign(self, value: Any, old: BertConfig | None) -> BertConfig:
        to_dict = getattr(value, "to_dict", None)
        data = to_dict() if callable(to_dict) else None
        own = self.config_class
        if not isinstance(data, dict) or data.get("model_type", own.model_type) != own.model_type:
            kind = data.get("model_type") if isinstance(data, dict) else None
            raise TypeError(
                f"{type(self).__name__}.config must be a {own.__name__} (or a transformers config of model_type "
                f"{own.model_type!r}), got {type(value).__name__}"
                + (f" of model_type {kind!r}" if kind else "")
            )
        config = own.from_dict({k: v for k, v in data.items() if not k.startswith("_")})
        config._attn_implementation = old._attn_implementation if old is not None else None
        config.name_or_path = getattr(value, "_name_or_path", "") or (old.name_or_path if old else "")
        config.validate()
        return config

    def __getstate__(self):  # copies and pickles leave a CUDA-graph runner behind (graphs, a lock, events)
        state = super().__getstate__().copy()
        state.pop("encode", None)
        return state

    def _bump_weights_version(self) -> None:
        for module in self.modules():
            if isinstance(module, BertPreTrainedModel):
                module.weights_version += 1

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self.weights_version = getattr(self, "weights_version", 0) + 1
        release = getattr(self.__dict__.get("encode"), "release_if_moved", None)
        if release is not None:  # a CUDA-graph runner: its graphs go when the model leaves their GPU
            release()
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
        """Initialise the modules not yet initialised (``_initialize_weights``: all of them in a new model) and
        tie the decoder to the word embeddings. A model built on the meta device (to be loaded) has no values
        to initialise: its init is skipped, and its modules stay unmarked until loading fills them (torch's
        ``normal_`` on a meta tensor imports ``torch._dynamo``, see ``layers.embedding``)."""
        if not any(p.is_meta for p in self.parameters()):
            self.apply(self._initialize_weights)
        self.tie_weights()
        if getattr(self.config, "gradient_checkpointing", False):  # transformers' legacy config flag
            self.gradient_checkpointing_enable()
            # consumed, as transformers removes it: not written back by save_pretrained
            if "gradient_checkpointing" in vars(self.config):
                delattr(self.config, "gradient_checkpointing")

    def tie_weights(self) -> None:
        tied = getattr(self.config, "tie_word_embeddings", True)
        head = self.get_output_embeddings()
        if head is not None and tied:
            head.weight = self.get_input_embeddings().weight
        for module in self.modules():
            if not getattr(module, "ties_decoder_bias", False):
                continue
            if tied:
                module.decoder.bias = module.bias
            elif module.decoder.bias is not module.bias:
                _fill_unloaded_decoder_bias(module)
        if head is not None and tied:
            self._adjust_decoder_bias()  # a larger (or smaller) table set by hand: the bias follows its rows

    @classmethod
    def _build(cls, config, model_args, dtype, device):
        """The model with uninitialised storage (``PreTrainedMixin._build``); an untied MLM head's two biases
        marked as not loaded (NaN), so that :meth:`tie_weights` knows a checkpoint that gave only one."""
        model = super()._build(config, model_args, dtype, device)
        if not getattr(config, "tie_word_embeddings", True):
            with torch.no_grad():
                for module in model.modules():
                    if getattr(module, "ties_decoder_bias", False) and module.decoder.bias is not module.bias:
                        module.decoder.bias.fill_(float("nan"))
                        module.bias.fill_(float("nan"))
        return model

    def get_input_embeddings(self) -> nn.Embedding:
        base = getattr(self, self.base_model_prefix, self)
        return base.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        base = getattr(self, self.base_model_prefix, self)
        base.embeddings.word_embeddings = value

    def get_output_embeddings(self) -> nn.Linear | None:
        head = self._lm_head()
        return head.decoder if head is not None else None

    def _lm_logits(self, hidden_states: torch.Tensor, ops: OpTable) -> torch.Tensor:
        """The language-modelling head's logits of (..., H) states."""
        return self._lm_head()(hidden_states, ops)

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

    def cuda_graphs(
        self,
        max_batch: int = 8,
        max_seqlen: int = 128,
        enabled: bool = True,
        runner=None,
        max_tokens: int | None = None,
        min_fill: float = 0.0,
        packed: bool = False,
    ):
        """CUDA graphs for small batches on the triton backend, with these limits (see ``fastbert.core.cuda_graphs``;
        on CUDA they are on by default, with ``cuda_graphs.AUTO_LIMITS``).

        Each (batch, length) bucket up to ``max_batch`` × ``max_seqlen`` (and at most ``max_tokens``
        positions) is captured on first use and replayed after; other shapes and calls run the normal
        forward. ``min_fill``: replay only batches whose real tokens fill that share of their bucket.
        ``packed=True``: a batch with padding replays a packed graph instead, whose layers run on its real
        tokens (rounded up by an eighth of the bucket; a batch whose rows would round up to the whole bucket
        replays the padded graph), not on the padded bucket (``min_fill`` is then moot).
        ``enabled=False`` turns graphs off, the default ones too. Returns the model.
        """
        from ..core.cuda_graphs import install

        limits = dict(max_batch=max_batch, max_seqlen=max_seqlen, max_tokens=max_tokens)
        install(self, enabled, runner, min_fill=min_fill, packed=packed, **limits)
        return self

    def _warn_fallback(self, reason: str) -> None:
        if reason not in self._fallback_warned:
            self._fallback_warned.add(reason)
            from ..quant.notes import caller_stacklevel  # the user's line, however deep the call came

            warnings.warn(f"fastbert: {reason}", stacklevel=caller_stacklevel())

    def _base(self) -> BertModel:
        return getattr(self, self.base_model_prefix)

    def _return(self, output, return_dict: bool | None):
        if return_dict is None:
            return_dict = self.config.use_return_dict
        return output if return_dict else output.to_tuple()


def _fill_unloaded_decoder_bias(head: nn.Module) -> None:
    """An untied MLM head whose ``decoder.bias`` no checkpoint gave (still the NaN of ``_build``) takes the
    head's ``bias``: transformers 4 ties the two whatever ``tie_word_embeddings`` says, and its checkpoints
    may hold only ``bias``. (A NaN ``bias`` is left alone: it is initialised with the missing weights, and
    this runs again after that.)"""
    bias, own = head.bias, head.decoder.bias
    if own.is_meta or bias.is_meta or own.shape != bias.shape:
        return
    with torch.no_grad():
        if bool(torch.isnan(own).all()) and not bool(torch.isnan(bias).any()):
            own.copy_(bias)


def _after_load(module: BertPreTrainedModel, incompatible_keys) -> None:
    module._bump_weights_version()  # load_state_dict(assign=True) may have moved the parameters


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
    #: some row of attention_mask has padding between real tokens (read for ``always_pack`` families only)
    holes: bool = False
    #: cached positions before this call's: attention_mask covers past + seqlen
    past_length: int = 0
    #: position_ids without attention_mask restart within a row: packed sequences, as transformers 5 reads
    #: them (read for ``splits_restarting_positions`` families only)
    restarts: bool = False

    @property
    def padded(self) -> bool:
        """Some row of attention_mask (past and new positions) has padding."""
        full = self.past_length + self.seqlen
        return self.seqlens_host is not None and any(n != full for n in self.seqlens_host)

    def enc_padded(self, enc_len: int) -> bool:
        return self.enc_seqlens_host is not None and any(n != enc_len for n in self.enc_seqlens_host)


def _has_holes(mask: torch.Tensor) -> torch.Tensor:
    """A 0-d bool tensor (on the mask's device): some row of a (B, L) mask has padding between two real
    tokens, i.e. more than one run of real tokens."""
    keep = mask.bool()
    starts = keep[:, :1].sum(dim=1) + (keep[:, 1:] & ~keep[:, :-1]).sum(dim=1)
    return (starts > 1).any()


def _segment_starts(position_ids: torch.Tensor) -> torch.Tensor:
    """(rows, L) bool: True where a packed sequence starts, as transformers 5's ``find_packed_sequence_indices``
    reads position ids: at the first position of a row and wherever a position is not the one before plus 1."""
    starts = torch.ones_like(position_ids, dtype=torch.bool)
    starts[:, 1:] = position_ids[:, 1:] - position_ids[:, :-1] != 1
    return starts


@dataclass(frozen=True)
class _Segments:
    """The packed sequences of a (B, L) batch whose position ids restart: each is a row of a padded batch of
    ``len(lengths)`` rows (``packing`` packs that batch back into the (B * L,) order of the tokens)."""

    batch: int
    seqlen: int
    packing: Packing
    starts: tuple[int, ...]  # flat position of each sequence's first token in B * L
    lengths: tuple[int, ...]

    @classmethod
    def of(cls, position_ids: torch.Tensor, batch: int, seqlen: int) -> _Segments:
        starts = _segment_starts(position_ids.expand(batch, seqlen)).flatten()
        first = tuple(host_read(torch.nonzero(starts).flatten()))
        lengths = tuple(b - a for a, b in zip(first, first[1:] + (batch * seqlen,)))
        device = position_ids.device
        n = torch.tensor(lengths, dtype=torch.int32, device=device)
        mask = torch.arange(max(lengths), device=device)[None, :] < n[:, None]
        return cls(batch, seqlen, packing_from_mask(mask, n, lengths), first, lengths)

    @property
    def rows(self) -> list[int]:
        """The (B, L) row of each sequence."""
        return [a // self.seqlen for a in self.starts]

    def split(self, x: torch.Tensor | None) -> torch.Tensor | None:
        """(B, L, ...) (or (1, L, ...), one row for all) -> (sequences, longest, ...), padding zero."""
        if x is None:
            return None
        x = x.expand(self.batch, *x.shape[1:]) if x.shape[0] != self.batch else x
        return unpack(x.reshape(self.batch * self.seqlen, *x.shape[2:]), self.packing)

    def join(self, x: torch.Tensor) -> torch.Tensor:
        """(sequences, longest, ...) -> (B, L, ...)."""
        return pack(x, self.packing).view(self.batch, self.seqlen, *x.shape[2:])

    def join_probs(self, p: torch.Tensor, keys_are_queries: bool = True) -> torch.Tensor:
        """Attention weights (sequences, heads, longest, keys) -> (B, heads, L, L): a sequence's block on the
        diagonal, zero elsewhere (what transformers 5's block-diagonal mask leaves there); cross-attention's
        (sequences, heads, longest, encoder length) -> (B, heads, L, encoder length)."""
        keys = self.seqlen if keys_are_queries else p.shape[-1]
        out = p.new_zeros(self.batch, p.shape[1], self.seqlen, keys)
        for s, (a, n) in enumerate(zip(self.starts, self.lengths)):
            row, col = divmod(a, self.seqlen)
            if keys_are_queries:
                out[row, :, col : col + n, col : col + n] = p[s, :, :n, :n]
            else:
                out[row, :, col : col + n] = p[s, :, :n]
        return out


# --------------------------------------------------------------------------------------------- BertModel
class BertModel(BertPreTrainedModel):
    """The bare BERT encoder (transformers' ``BertModel``), with an optional pooler."""

    embeddings_class: type[nn.Module] = BertEmbeddings
    #: the output of ``forward``, as transformers' class of the family returns it
    output_class: type = outputs.BaseModelOutputWithPoolingAndCrossAttentions
    #: pack every batch, padded or not: a family whose attention has a window, RoPE or a relative bias
    #: (the packed paths compute them per sequence; training with attention dropout stays padded)
    always_pack: bool = False
    #: the positions are rows of a table (BERT's absolute embeddings): inputs and position ids stay within
    #: it; False for RoPE (ModernBERT), which computes any position, as transformers does
    position_table: bool = True
    #: position_ids that restart within a row, given without attention_mask, mark packed sequences that attend
    #: only within themselves (transformers 5's reading of ``DataCollatorWithFlattening``'s rows, in the
    #: families whose masks it builds from position_ids; transformers 4 attended across the row)
    splits_restarting_positions: bool = True
    #: ``config.is_decoder`` makes the self-attention causal (and turns the cache on): BERT's families; False
    #: for an encoder-only family whose transformers model attends both ways whatever the config says
    #: (DistilBERT, MPNet)
    honours_is_decoder: bool = True
    #: where the op table's linears are, for load-time transforms (``fastbert.quant``): the layer list (a
    #: path from this model), the self-attention module whose fused query/key/value projection is one
    #: linear (a path from a layer; None where that projection is a plain linear of the list), and the
    #: linears the op table runs after it (paths from a layer)
    linear_layout: tuple[str, str | None, tuple[str, ...]] = (
        "encoder.layer",
        "attention.self",
        ("attention.output.dense", "intermediate.dense", "output.dense"),
    )

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
        fields = {
            "last_hidden_state": enc.last_hidden_state,
            "pooler_output": enc.pooled,
            "hidden_states": enc.hidden_states,
            "past_key_values": enc.past_key_values,
            "attentions": enc.attentions,
            "cross_attentions": enc.cross_attentions,
        }
        names = {f.name for f in dataclasses.fields(self.output_class)}
        out = self.output_class(**{k: v for k, v in fields.items() if k in names})
        return self._return(out, return_dict)

    # -- validation: on the host, before anything runs, with one device->host read
    def _check_past(self, past: tuple, inputs: BertInputs) -> None:
        """A ValueError naming ``past_key_values`` when it does not fit the model and the batch: too few layers
        (or a layer not (k, v) / (k, v, cross_k, cross_v)) failed deep in the layers with "tuple index out of
        range", another batch size with a ``torch.cat`` size error."""
        layers = len(self._layers())
        reference = inputs.input_ids if inputs.input_ids is not None else inputs.inputs_embeds
        batch = reference.shape[0] if reference is not None else None
        if len(past) != layers:
            raise ValueError(f"past_key_values holds {len(past)} layers, the model has {layers}")
        heads = self.config.num_attention_heads
        head_dim = self.config.hidden_size // heads
        dtype, device = self.dtype, self.device
        autocast = torch.is_autocast_enabled(device.type)
        for i, layer in enumerate(past):
            if len(layer) not in (2, 4) or not all(
                isinstance(t, torch.Tensor) and t.dim() == 4 for t in layer
            ):
                raise ValueError(
                    f"past_key_values[{i}] must be (key, value) or (key, value, cross_key, cross_value), each "
                    "(batch, heads, positions, head_dim)"
                )
            if batch is not None and layer[0].shape[0] != batch:
                raise ValueError(
                    f"past_key_values[{i}] has batch size {layer[0].shape[0]}, the input {batch}"
                )
            # the cross-attention keys of one row of encoder states for all rows (the forward broadcasts it) keep
            # that one row
            cross_batch = 1 if len(layer) == 4 and layer[2].shape[0] == 1 else layer[0].shape[0]
            for j, t in enumerate(layer):
                what = ("key", "value", "cross_key", "cross_value")[j]
                # another model's past (other heads or head size), or keys and values that disagree: a torch.cat
                # size error in the attention before
                positions = past[0][0].shape[2] if j < 2 else layer[2].shape[2]
                want = (layer[0].shape[0] if j < 2 else cross_batch, heads, positions, head_dim)
                if tuple(t.shape) != want:
                    raise ValueError(
                        f"past_key_values[{i}] {what} has shape {tuple(t.shape)}, expected {want} (batch, heads, "
                        f"positions, head_dim): num_attention_heads={heads} and head_dim={head_dim} of this "
                        "model, and as many positions in every layer's keys and values"
                    )
                if t.device != device:  # else torch.cat's or the attention's device error, naming nothing
                    raise ValueError(
                        f"past_key_values[{i}] {what} is on {t.device}, the model on {device}: move the cache to "
                        "the model's device"
                    )
                # a wider past than the model (float32 into bfloat16, float64 into float32; a cross-attention
                # past of any other dtype) failed in the attention with torch's "Expected query, key, and value
                # to have the same dtype", naming nothing (transformers fails alike); a narrower self-attention
                # past is widened by the concatenation and runs, as in transformers; autocast casts them there
                fits = t.is_floating_point() and (
                    autocast or (t.dtype == dtype if j >= 2 else torch.promote_types(t.dtype, dtype) == dtype)
                )
                if not fits:
                    raise ValueError(
                        f"past_key_values[{i}] {what} is {t.dtype}, the model {dtype}: the attention cannot take "
                        "them together; cast the cache to the model's dtype (or fill it with the model as it runs)"
                    )

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
            width = table_shape(self.embeddings.word_embeddings)[1]  # hidden_size (ELECTRA: embedding_size)
            if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != width:
                raise ValueError(
                    f"inputs_embeds must be (batch, sequence_length, {width}), got {tuple(inputs_embeds.shape)}"
                )
            # else "mixed dtype (CPU)" from the embeddings' LayerNorm, naming nothing
            wide = inputs_embeds.dtype.is_complex or inputs_embeds.dtype == torch.float64
            if wide and inputs_embeds.dtype != self.dtype:
                raise ValueError(
                    f"inputs_embeds is {inputs_embeds.dtype}, the model {self.dtype}: the embeddings' LayerNorm "
                    "cannot take it (transformers fails alike); cast it (inputs_embeds.to(model.dtype))"
                )
            shape = tuple(inputs_embeds.shape[:2])
            name = "inputs_embeds"
        if 0 in shape:
            raise ValueError(
                f"{name} has shape {tuple(inputs.reference.shape)}: the batch and the sequence length must be "
                "at least 1 (an empty batch has nothing to encode)"
            )
        device = self.device
        if device.type == "meta":  # else "Cannot copy out of meta tensor; no data!" from the host read below
            raise NotImplementedError(
                "the model is on the meta device, which holds no data: a fastbert forward reads its inputs' values "
                "(the ids' range, the mask's lengths) to run, so it cannot run on meta tensors as transformers' "
                "shape-only forward does; give the model its weights first (to_empty(device=...) and load them, "
                "or from_pretrained)"
            )
        for field_name in _DEVICE_ARGUMENTS:  # else torch's own error, naming no argument (or a kernel's)
            if field_name.startswith("encoder_") and not cfg.is_decoder:
                continue  # an encoder ignores them, as transformers
            t = getattr(inputs, field_name)
            if t is not None and t.device != device:
                raise ValueError(
                    f"{field_name} is on {t.device}, the model on {device}: move the inputs to the model's "
                    "device first (batch.to(model.device))"
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
        crossing = enc is not None and cfg.is_decoder and cfg.add_cross_attention  # an encoder ignores them
        if crossing and (
            enc.dim() != 3 or enc.shape[0] not in (shape[0], 1) or enc.shape[2] != cfg.hidden_size
        ):
            raise ValueError(
                f"encoder_hidden_states has shape {tuple(enc.shape)}, expected ({shape[0]}, encoder_length, "
                f"{cfg.hidden_size}): a row of encoder states per input row (or one row for all) of hidden_size"
            )
        if crossing and enc.shape[1] == 0:  # else attention over no key: zeros, where transformers fails
            raise ValueError(
                f"encoder_hidden_states has shape {tuple(enc.shape)}: no encoder position to attend to "
                "(encoder_length 0); give at least one"
            )
        if crossing:
            cross = getattr(self._layers()[0], "crossattention", None)
            if cross is None:  # else an AttributeError naming BertLayer's crossattention, in the first layer
                raise ValueError(
                    "encoder_hidden_states were given and the config says add_cross_attention=True, but the "
                    "model was built without cross-attention layers (transformers' EncoderDecoderModel sets it "
                    "on its decoder's config): build the decoder with add_cross_attention=True, e.g. "
                    "from_pretrained(..., is_decoder=True, add_cross_attention=True)"
                )
            # else "mat1 and mat2 must have the same dtype" from the cross-attention's key projection, naming
            # nothing (transformers fails alike); autocast casts float states to its dtype there
            weights = next(cross.parameters()).dtype
            if not enc.is_floating_point() or (
                enc.dtype != weights and not torch.is_autocast_enabled(device.type)
            ):
                raise ValueError(
                    f"encoder_hidden_states is {enc.dtype}, the cross-attention weights {weights}: cast it "
                    "(encoder_hidden_states.to(model.dtype))"
                )
        if enc is not None and enc_mask is not None and tuple(enc_mask.shape) != tuple(enc.shape[:2]):
            raise ValueError(
                f"encoder_attention_mask has shape {tuple(enc_mask.shape)}, expected {tuple(enc.shape[:2])}"
            )
        absolute = cfg.position_embedding_type == "absolute"
        limit, why = self._length_limit()
        if (
            absolute
            and self.position_table
            and inputs.position_ids is None
            and shape[1] + past_length > limit
        ):
            needed = self._positions_needed(inputs, past_length)  # a host read on this path only
            if needed > limit:
                raise ValueError(f"sequence length {needed} is longer than {why}: truncate the input")
        kind = cfg.position_embedding_type
        if (
            kind in ("relative_key", "relative_key_query")
            and shape[1] + past_length > cfg.max_position_embeddings
        ):
            # transformers 4: an IndexError in distance_embedding, whose 2 * max_position_embeddings - 1 rows
            # hold the distances of up to max_position_embeddings positions (position_ids do not change them)
            raise ValueError(
                f"sequence length {shape[1] + past_length} (past + input) is longer than max_position_embeddings "
                f"({cfg.max_position_embeddings}), the distances position_embedding_type={kind!r} has embeddings "
                "for: truncate the input"
            )
        # value ranges and mask lengths: one host read for all of them
        checks = [
            (n, t)
            for n, t in (
                ("input_ids", input_ids),
                ("token_type_ids", inputs.token_type_ids),
                # rows of a position table only: RoPE (ModernBERT) computes any position, negative ones too
                ("position_ids", inputs.position_ids if absolute and self.position_table else None),
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
        read_restarts = (
            read_lengths
            and mask is None
            and inputs.position_ids is not None
            and past_length == 0
            and self.splits_restarting_positions
        )
        if read_restarts:  # one flag, before the holes' flag
            parts.append(_segment_starts(inputs.position_ids)[:, 1:].any().view(1))
        read_holes = read_lengths and mask is not None and self.always_pack
        if read_holes:  # last: one flag
            parts.append(_has_holes(mask).view(1))
        values = host_read(torch.cat([p.to(torch.long) for p in parts])) if parts else []
        holes = bool(values.pop()) if read_holes else False
        restarts = bool(values.pop()) if read_restarts else False
        for i, (n, _) in enumerate(checks):
            lo, hi = values[2 * i], values[2 * i + 1]
            limit = getattr(cfg, _RANGE_FIELDS[n])
            what = f"{_RANGE_FIELDS[n]} = {limit}"
            if n == "input_ids":  # the table's rows: set_input_embeddings may give more than vocab_size says
                rows = table_shape(self.get_input_embeddings())[0]
                if rows != limit:
                    limit, what = rows, f"the word embeddings have {rows} rows"
            if lo < 0 or hi >= limit:
                raise ValueError(f"{n} holds {lo if lo < 0 else hi}, outside [0, {limit}) ({what})")
        rest = values[2 * len(checks) :]
        seqlens_host = enc_host = None
        if seqlens is not None:
            seqlens_host, rest = tuple(rest[: shape[0]]), rest[shape[0] :]
        if enc_seqlens is not None:
            enc_host = tuple(rest)
        return _Checked(
            shape[0], shape[1], seqlens, seqlens_host, enc_seqlens, enc_host, holes, past_length, restarts
        )

    def _layers(self) -> nn.ModuleList:
        """The encoder's layers, in order (BERT: ``encoder.layer``; DistilBERT: ``transformer.layer``)."""
        return self.encoder.layer

    def _length_limit(self) -> tuple[int, str]:
        """The longest input the position embeddings cover (without explicit position_ids), and why."""
        return self.length_limit(self.config)

    @property
    def _causal(self) -> bool:
        """Whether the self-attention is causal, with a cache: ``config.is_decoder`` where the family honours it."""
        return self.config.is_decoder and self.honours_is_decoder

    def _positions_needed(self, inputs: BertInputs, past_length: int) -> int:
        """How many positions of the table the default position ids take (compared with :meth:`_length_limit`):
        past + input length here; a family whose positions skip the padding counts its longest real row."""
        return inputs.reference.shape[1] + past_length

    @classmethod
    def length_limit(cls, config: BertConfig) -> tuple[int, str]:
        """:meth:`_length_limit` of a model of ``config`` (the family's rule, without building the model)."""
        n = config.max_position_embeddings
        return n, f"max_position_embeddings ({n})"

    def _default_position_ids(
        self, inputs: BertInputs, batch: int, seqlen: int, past_length: int
    ) -> torch.Tensor:
        """(B, L) position ids when none are given: BERT's 0..L-1 after the cached positions. Computed on
        the padded batch, before packing (a family's policy may read the padded ids). Computed, not read from
        the ``position_ids`` buffer: after ``to_empty()`` and ``load_state_dict`` (meta-device initialisation)
        that non-persistent buffer holds whatever the memory held."""
        device = self.embeddings.position_ids.device
        return torch.arange(past_length, past_length + seqlen, device=device).expand(batch, seqlen)

    def _resolve(
        self,
        output_attentions: bool,
        past: Any,
        no_real_tokens: bool = False,
        inputs: BertInputs | None = None,
        batch: int = 1,
    ) -> OpTable:
        """The op table of this forward: ``attn_implementation``, or the table a fallback rule says (warned
        once per reason). Gradients are needed when a parameter or a float input (``inputs_embeds``,
        ``encoder_hidden_states``: attribution, prompt tuning on a frozen model) requires them."""
        cfg = self.config

        def needs_grad() -> bool:
            if not torch.is_grad_enabled():
                return False
            floats = () if inputs is None else (inputs.inputs_embeds, inputs.encoder_hidden_states)
            # a forward hook on the input embeddings may make their output require grad on a frozen model
            # (enable_input_require_grads, which gradient checkpointing installs; PEFT's k-bit preparation;
            # attribution tools)
            embeddings = self.get_input_embeddings()
            hooked = bool(embeddings._forward_hooks) if isinstance(embeddings, nn.Module) else False
            return (
                hooked
                or any(t is not None and t.requires_grad for t in floats)
                or any(p.requires_grad for p in self.parameters())
            )

        table, reason = resolve(
            self.attn_implementation,
            output_attentions=output_attentions,
            position_embedding_type=cfg.position_embedding_type,
            dropout=self.training and (cfg.hidden_dropout_prob > 0 or cfg.attention_probs_dropout_prob > 0),
            needs_grad=needs_grad,
            cache=past is not None,
            device=lambda: self.device,
            no_real_tokens=no_real_tokens,
            head_dim=cfg.hidden_size // cfg.num_attention_heads,  # not a head_dim config.json may carry
            hidden_size=cfg.hidden_size,
            autocast=torch.is_autocast_enabled(self.device.type),
            batch=batch,
            dtype=self.dtype,
        )
        if reason is not None:
            self._warn_fallback(reason)
        return table

    # -- the forward, in parts
    def _default_graphs(
        self, inputs: BertInputs, keep_packed: bool, allow_pack: bool, host_reads: bool
    ) -> Encoded | None:
        """On the first call with CUDA ids: install the default CUDA-graph runner and let it serve this call
        (None where it is not installed, or one is already: it called ``encode``, past itself). A family whose
        ``encode`` wraps this one (ModernBERT) asks first, so that the runner replays the whole of its
        ``encode``."""
        if (
            not host_reads
            or torch.compiler.is_compiling()
            or not self._graphs_auto
            or "encode" in self.__dict__
        ):
            return None
        ids = inputs.input_ids
        if ids is None or not ids.is_cuda:
            return None
        from ..core.cuda_graphs import auto_install

        runner = auto_install(self)
        if runner is None:
            return None
        return runner(inputs, keep_packed=keep_packed, allow_pack=allow_pack)

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
        key mask), so the call can be captured in a CUDA graph.

        The first call on CUDA tensors installs the default CUDA-graph runner (``fastbert.core.cuda_graphs``),
        which serves this and later calls it covers and hands the others back here."""
        graphed = self._default_graphs(inputs, keep_packed, allow_pack, host_reads)
        if graphed is not None:
            return graphed
        cfg = self.config
        output_attentions = (
            cfg.output_attentions if inputs.output_attentions is None else inputs.output_attentions
        )
        output_hidden_states = (
            cfg.output_hidden_states if inputs.output_hidden_states is None else inputs.output_hidden_states
        )
        use_cache = (
            (cfg.use_cache if inputs.use_cache is None else inputs.use_cache) if self._causal else False
        )
        past = as_legacy_cache(inputs.past_key_values)
        if past is not None:
            self._check_past(past, inputs)
        past_length = past[0][0].shape[2] if past is not None else 0
        checkpointing = self.training and torch.is_grad_enabled() and self.is_gradient_checkpointing
        if checkpointing and use_cache:
            self._warn_fallback("use_cache=True is incompatible with gradient checkpointing: use_cache=False")
            use_cache = False
        # a transformers Cache passed in is updated in place whatever use_cache says, as transformers' layers
        # update it (use_cache=False, which a call with labels sets, only leaves it out of the output)
        fills_cache = is_cache_object(inputs.past_key_values) and not checkpointing
        if fills_cache and inputs.reference is not None:
            capacity = cache_capacity(inputs.past_key_values)
            new = inputs.reference.shape[1]
            if capacity is not None and past_length + new > capacity:
                # transformers' StaticLayer: an IndexError of index_copy_ after the forward
                raise ValueError(
                    f"past_key_values is a {type(inputs.past_key_values).__name__} of {capacity} positions, "
                    f"which holds {past_length}: the {new} new ones do not fit. Make it with a larger "
                    "max_cache_len, or use a DynamicCache"
                )
        keeps = use_cache or fills_cache
        if host_reads:
            checked = self.validate(inputs, past_length)
        else:
            ref = inputs.reference
            checked = _Checked(ref.shape[0], ref.shape[1], past_length=past_length)
        splits = checked.restarts and past is None and not keeps
        seg = _Segments.of(inputs.position_ids, checked.batch, checked.seqlen) if splits else None
        if inputs.sequence_kwargs:
            self._check_sequence_kwargs(inputs, checked, seg)
        if seg is not None:
            return self._encode_segments(inputs, seg, keep_packed, allow_pack)
        no_real_tokens = checked.seqlens_host is not None and not any(checked.seqlens_host)
        ops = self._resolve(output_attentions, past, no_real_tokens, inputs, checked.batch)
        attention_dropout = self.training and cfg.attention_probs_dropout_prob > 0
        can_pack = (
            (host_reads or inputs.static_packing is not None)
            and ops.packs
            and past is None
            and not keeps
            and cfg.position_embedding_type == "absolute"
            and allow_pack
            and not (self.always_pack and attention_dropout)  # the packed positional paths have no dropout
            # padding between real tokens: the packed positional paths would see the offsets of the packed
            # tokens; transformers' relative bias / RoPE / window see those of the padded row
            and not (self.always_pack and checked.holes)
        )
        # a forward that packs after its host read reads packed_outputs() next to it, no tensor op in between:
        # under torch.compile both are graph breaks, and a read after the layers split their graph in two
        packed_out = (
            _PACKED_OUTPUTS.get()
            if host_reads and can_pack and (checked.padded or self.always_pack)
            else None
        )
        ctx = self._context(inputs, checked, ops, can_pack, past_length, keeps)
        hidden, enc_states = self._embed(inputs, ctx, checked.batch, checked.seqlen, past_length)
        packing = ctx.attn.q_packing

        def repad(x):
            return unpack(x, packing) if packing is not None else x

        all_hidden = (repad(hidden),) if output_hidden_states else None
        all_attn = () if output_attentions else None
        all_cross = () if output_attentions and ctx.cross is not None else None
        presents = () if keeps else None
        # the CPU linears of the layers write into buffers reused from layer to layer (fastbert.core.workspace)
        buffers = (
            workspace.scope()
            if hidden.device.type == "cpu" and not traced(hidden)
            else contextlib.nullcontext()
        )
        with buffers:
            for i, layer in enumerate(self._layers()):
                layer_past = past[i] if past is not None else None
                if checkpointing and layer.gradient_checkpointing:  # recomputed in the backward pass
                    out = layer._gradient_checkpointing_func(
                        layer.forward, hidden, ctx, enc_states, layer_past
                    )
                else:
                    out = layer(hidden, ctx, enc_states, layer_past)
                hidden, probs, cross_probs, present = out
                if output_hidden_states:
                    all_hidden += (repad(hidden),)
                if output_attentions:
                    all_attn += (probs,)
                    if all_cross is not None:
                        all_cross += (cross_probs,)
                if keeps:
                    presents += (present,)

        if fills_cache:
            presents = update_cache(inputs.past_key_values, presents, past_length)
        if not use_cache:
            presents = None
        enc = Encoded(
            sequence=hidden,
            packing=packing,
            ops=ops,
            hidden_states=all_hidden,
            attentions=all_attn,
            cross_attentions=all_cross,
            past_key_values=presents,
            packed_outputs=packed_out,
        )
        enc.pooled = self._pool(enc, inputs.attention_mask, zero_padded_first=not host_reads)
        if not keep_packed and packing is not None and not enc._packed_outputs():
            enc.sequence, enc.packing = enc.padded_sequence, None
        return enc

    def _check_sequence_kwargs(self, inputs: BertInputs, checked: _Checked, seg: _Segments | None) -> None:
        """transformers' ``cu_seq_lens_q/k``, ``max_length_q/k`` and ``seq_idx`` (a padding-free collator's)
        must mark the sequences this call attends within: ``seg``, those the position ids mark (restarting, no
        attention_mask, no cache), else each row as one. More host reads, only where given."""
        batch, seqlen = checked.batch, checked.seqlen
        rows = torch.arange(batch * seqlen, device=inputs.reference.device) % seqlen == 0
        if seg is not None:
            starts = torch.zeros_like(rows)
            starts[list(seg.starts)] = True
            first = list(seg.starts)
            how = "the sequences the position_ids mark"
        elif self.splits_restarting_positions:
            starts, first = rows, list(range(0, batch * seqlen, seqlen))
            how = (
                "this call attends across each row (the position_ids mark sequences only where they restart, "
                "without attention_mask and without a cache)"
            )
        else:
            starts, first = rows, list(range(0, batch * seqlen, seqlen))
            how = (
                f"{type(self).__name__} attends across each row (transformers 5 builds its mask without the "
                "position ids)"
            )
        bounds = [*first, batch * seqlen]
        longest = max(b - a for a, b in zip(bounds, bounds[1:]))
        why = (
            f"{how}, whose boundaries are {bounds}; transformers' eager and sdpa attention do not read "
            "these arguments (only its flash attention reads cu_seq_lens): its result would depend on its "
            "backend"
        )
        given = inputs.sequence_kwargs
        for name in ("cu_seq_lens_q", "cu_seq_lens_k"):
            if name in given:
                value = given[name]
                got = host_read(value.flatten()) if isinstance(value, torch.Tensor) else list(value)
                if list(got) != bounds:
                    raise ValueError(f"{name} is {list(got)}, but {why}")
        for name in ("max_length_q", "max_length_k"):
            if name in given:
                value = given[name]
                got = int(host_read(value.reshape(())) if isinstance(value, torch.Tensor) else value)
                if got != longest:
                    raise ValueError(
                        f"{name} is {got}, but the longest sequence is {longest} tokens long: {why}"
                    )
        if "seq_idx" in given:
            idx = given["seq_idx"]
            if not isinstance(idx, torch.Tensor) or idx.numel() != batch * seqlen:
                raise ValueError(
                    f"seq_idx must be a tensor of {batch * seqlen} sequence indices, one a token"
                )
            idx = idx.reshape(-1).to(starts.device)
            marked = rows.clone()  # a sequence never spans two rows
            marked[1:] |= idx[1:] != idx[:-1]
            if host_read((marked != starts).any()):
                raise ValueError(f"seq_idx marks other sequences than {why}")

    def _encode_segments(
        self, inputs: BertInputs, seg: _Segments, keep_packed: bool, allow_pack: bool
    ) -> Encoded:
        """A batch whose position ids restart within a row, without attention_mask (a padding-free collator's
        packed rows): each packed sequence attends only to itself, as in transformers 5. The sequences are
        encoded as the rows of a padded batch with its mask, and every output is put back in the (B, L)
        layout: per-token states in place, the pooler's output of each row's first sequence (its position 0),
        attention weights as blocks on the diagonal."""
        picks = torch.tensor(seg.rows, device=seg.packing.indices.device)
        enc, enc_mask = inputs.encoder_hidden_states, inputs.encoder_attention_mask
        if enc is not None and enc.shape[0] == seg.batch:
            enc = enc.index_select(0, picks)
        if enc_mask is not None and enc_mask.shape[0] == seg.batch:
            enc_mask = enc_mask.index_select(0, picks)
        split = dataclasses.replace(
            inputs,
            input_ids=seg.split(inputs.input_ids),
            inputs_embeds=seg.split(inputs.inputs_embeds),
            token_type_ids=seg.split(inputs.token_type_ids),
            position_ids=seg.split(inputs.position_ids),
            attention_mask=seg.packing.mask.to(torch.long),
            encoder_hidden_states=enc,
            encoder_attention_mask=enc_mask,
            sequence_kwargs=None,  # checked against these sequences
        )
        out = self.encode(split, keep_packed=True, allow_pack=allow_pack)
        # packed, the sequence's tokens are already in the (B * L) order of the input
        flat = out.sequence if out.packing is not None else pack(out.sequence, seg.packing)
        first = [i for i, a in enumerate(seg.starts) if a % seg.seqlen == 0]  # each row's first sequence

        def each(fn, outputs):
            return tuple(fn(x) for x in outputs) if outputs else outputs

        joined = Encoded(
            sequence=flat,
            packing=full_packing(seg.batch, seg.seqlen, flat.device),
            ops=out.ops,
            pooled=out.pooled[first] if out.pooled is not None else None,
            hidden_states=each(seg.join, out.hidden_states),
            attentions=each(seg.join_probs, out.attentions),
            cross_attentions=each(lambda p: seg.join_probs(p, keys_are_queries=False), out.cross_attentions),
            packed_outputs=out.packed_outputs,  # read by the sequences' forward beside its host read
        )
        if not keep_packed and not joined._packed_outputs():
            joined.sequence, joined.packing = flat.view(seg.batch, seg.seqlen, -1), None
        return joined

    def _context(self, inputs: BertInputs, checked: _Checked, ops: OpTable, can_pack, past_length, use_cache):
        """The per-forward attention description: packed once when the batch has padding and may pack."""
        cfg = self.config
        mask, enc, enc_mask = (
            inputs.attention_mask,
            inputs.encoder_hidden_states,
            inputs.encoder_attention_mask,
        )
        causal = self._causal
        attn = AttentionSpec(causal=causal)
        if can_pack and inputs.static_packing is not None:  # a CUDA graph's, packed on the device
            packing = inputs.static_packing
            attn = AttentionSpec(causal=causal, q_packing=packing, k_packing=packing)
        elif can_pack and checked.padded:
            packing = packing_from_mask(mask, checked.seqlens, checked.seqlens_host)
            attn = AttentionSpec(causal=causal, q_packing=packing, k_packing=packing)
        elif can_pack and self.always_pack:
            packing = full_packing(checked.batch, checked.seqlen, inputs.reference.device)
            attn = AttentionSpec(causal=causal, q_packing=packing, k_packing=packing)
        elif mask is not None and (checked.padded or checked.seqlens_host is None):
            # the kernel's bound on a row's keys also gives its queries past the bound zeros: only for a call
            # without host reads (a CUDA graph's, which zeroes the padded positions after); a padded forward
            # that reads them (a loss over padded positions) needs transformers' values there
            bounded = ops.wants_key_lengths and checked.seqlens_host is None
            key_lengths = extents(mask) if bounded else None
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
        specs = self._layer_specs(attn, ops, past_length + checked.seqlen)
        return LayerContext(ops, attn, cross, past_length, use_cache, dropout, specs)

    def _layer_specs(self, attn: AttentionSpec, ops: OpTable, positions: int) -> dict[str, AttentionSpec]:
        """Self-attention's spec per layer type, from this forward's base spec ``attn`` (its packing and
        mask) and the number of ``positions`` a row may have: a family adds its window, RoPE tables or
        relative bias here, built once per forward. BERT's layers all read ``attn`` itself: {}."""
        return {}

    def _hooked_word_embeddings(self, ids, embeds):
        """(ids, embeds) before packing: a forward hook on the input embeddings sees their (B, L, H) output, as in
        transformers (the Trainer's NEFTune hook reads the padded length there, and an attribution hook the
        batch); on the packed (T,) ids it saw a (T, H) output (NEFTune: IndexError). The hooked module is then
        run on the padded ids here and its output packed."""
        module = self.get_input_embeddings()
        if ids is None or not isinstance(module, nn.Module) or not module._forward_hooks:
            return ids, embeds
        return None, module(ids)

    def _embed(self, inputs: BertInputs, ctx: LayerContext, batch: int, seqlen: int, past_length: int):
        """Embeddings of the real tokens ((T, H) packed or (B, L, H)) and the encoder's states to attend."""
        emb = self.embeddings
        position_ids, token_type_ids = inputs.position_ids, inputs.token_type_ids
        if position_ids is None:
            position_ids = self._default_position_ids(inputs, batch, seqlen, past_length)
        elif position_ids.shape[0] != batch:
            position_ids = position_ids.expand(batch, seqlen)
        if token_type_ids is None:
            # type 0 everywhere, as transformers' all-zero buffer; made here, not read from that non-persistent
            # buffer (garbage after to_empty() + load_state_dict), and for rows longer than the position table
            # too (explicit position_ids that stay within it: padding-free packed rows)
            token_type_ids = emb.token_type_ids.new_zeros(1, seqlen).expand(batch, seqlen)
        elif token_type_ids.shape[0] != batch:
            token_type_ids = token_type_ids.expand(batch, seqlen)
        ids, embeds, enc_states = inputs.input_ids, inputs.inputs_embeds, inputs.encoder_hidden_states
        packing = ctx.attn.q_packing
        if packing is not None:
            ids, embeds = self._hooked_word_embeddings(ids, embeds)
            ids = pack(ids, packing) if ids is not None else None
            embeds = pack(embeds, packing) if embeds is not None else None
            token_type_ids, position_ids = pack(token_type_ids, packing), pack(position_ids, packing)
            if ctx.cross is not None:
                enc_states = pack(enc_states, ctx.cross.k_packing)
        hidden = emb(ids, token_type_ids, position_ids, embeds, ctx)
        project = self._modules.get("embeddings_project")  # ELECTRA's embedding_size -> hidden_size
        if project is not None:
            hidden = project(hidden)
        return hidden, enc_states if ctx.cross is not None else None

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
        # position 0 of sequence b is its first packed token when it is a real one, else zero
        first = enc.first_packed()  # (B, H)
        if attention_mask is not None:  # packed without a mask: every row's position 0 is real (MPNet)
            first = first.masked_fill(attention_mask[:, :1] == 0, 0.0)  # a fill, as first_packed's
        return self.pooler.pool(first)


BertPreTrainedModel.base_model_class = BertModel
