"""transformers' ``PreTrainedModel`` API that fine-tuning code calls, for the fastbert model classes.

A mixin of the base class (``BertPreTrainedModel``): ``base_model``, ``main_input_name``,
``can_generate``, ``init_weights``, ``resize_token_embeddings`` (new rows initialised as transformers 5
does), ``set_output_embeddings``, transformers 4's public helpers that transformers 5 dropped
(``get_extended_attention_mask``, ``invert_attention_mask``, ``create_extended_attention_mask_for_decoder``,
``get_head_mask``, ``estimate_tokens``, ``floating_point_ops``), ``get_memory_footprint``, ``dequantize``, gradient
(activation) checkpointing and ``enable_input_require_grads``. Each method follows the transformers 5.24 method of
the same name: same arguments, same defaults, same random draws in the same order (so a resize after
``torch.manual_seed`` gives transformers' numbers). Nothing here imports transformers.

The host class provides ``config``, ``_init_weights``, ``get_input_embeddings``,
``set_input_embeddings``, ``get_output_embeddings`` (a family may override ``set_output_embeddings``), ``tie_weights`` and
``post_init``, and its layers honour ``gradient_checkpointing`` / ``_gradient_checkpointing_func``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

logger = logging.getLogger(__name__)


class TransformersModelAPI:
    """The ``PreTrainedModel`` methods fine-tuning code expects (see the module docstring)."""

    #: the argument a forward is mostly called with (transformers reads it, e.g. to enable input grads)
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    #: transformers' BERT forwards take ``**kwargs``, which its ``Trainer`` reads as "accepts loss kwargs":
    #: it then passes ``num_items_in_batch`` and does not divide the loss by the accumulation steps itself.
    #: The same value, said explicitly (each head uses ``num_items_in_batch`` exactly where transformers does).
    accepts_loss_kwargs = True
    #: ``PreTrainedModel``'s class attribute (None: no keys left out of a save); transformers' ``Trainer`` reads
    #: it when a checkpoint it resumes from lacks keys (a transformers checkpoint of a tied head has no decoder)
    _keys_to_ignore_on_save = None
    #: the hub tags of the model (None until :meth:`add_model_tags`); transformers' ``Trainer`` writes them into
    #: the model card it creates
    model_tags: list[str] | None = None

    # ---------------------------------------------------------------------------------------- structure
    @property
    def base_model(self) -> nn.Module:
        """The main body of the model (``self.bert`` on a head, the model itself on ``BertModel``)."""
        return getattr(self, self.base_model_prefix, self)

    def add_model_tags(self, tags: list[str] | str) -> None:
        """Add one tag or a list of tags to :attr:`model_tags` (each once, in order), as transformers."""
        if isinstance(tags, str):
            tags = [tags]
        if self.model_tags is None:
            self.model_tags = []
        for tag in tags:
            if tag not in self.model_tags:
                self.model_tags.append(tag)

    def get_position_embeddings(self) -> nn.Embedding:
        """transformers' ``PreTrainedModel`` method: NotImplementedError, as transformers, for every family but
        DistilBERT (which overrides it)."""
        raise NotImplementedError(f"`get_position_embeddings` is not implemented for {type(self).__name__}")

    def resize_position_embeddings(self, new_num_position_embeddings: int) -> None:
        """transformers' ``PreTrainedModel`` method: NotImplementedError, as transformers, for every family but
        DistilBERT (which overrides it)."""
        raise NotImplementedError(
            f"`resize_position_embeddings` is not implemented for {type(self).__name__}"
        )

    def push_to_hub(
        self,
        repo_id: str,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | bool | None = None,
        max_shard_size: int | str | None = "5GB",
        create_pr: bool = False,
        safe_serialization: bool = True,
        revision: str | None = None,
        commit_description: str | None = None,
        variant: str | None = None,
    ) -> Any:
        """Upload the model to the hub repo ``repo_id`` as transformers' ``push_to_hub``: ``save_pretrained``
        into a temporary folder, the repo made if missing (private when asked), one commit of the folder's
        files ("Upload model" by default); returns huggingface_hub's commit info. No model card is written
        (transformers also uploads a README.md with the model's tags). Without network, huggingface_hub's
        connection error is raised."""
        import tempfile

        from .hub import push_folder

        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(
                folder,
                safe_serialization=safe_serialization,
                max_shard_size=max_shard_size,
                variant=variant,
            )
            return push_folder(
                folder,
                repo_id=repo_id,
                commit_message=commit_message,
                commit_description=commit_description,
                private=private,
                token=token,
                create_pr=create_pr,
                revision=revision,
            )

    @classmethod
    def can_generate(cls) -> bool:
        """Whether ``generate`` works on this class: True only for ``BertLMHeadModel``, as in transformers."""
        return False

    def init_weights(self) -> None:
        """Initialise the modules not yet initialised (a head swapped in after loading) and tie the decoder, as
        transformers 4.57 and 5 do: a loaded or already initialised module keeps its values
        (:meth:`_initialize_weights`); ``model.apply(model._init_weights)`` re-draws everything."""
        self.post_init()

    def _initialize_weights(self, module: nn.Module) -> None:
        """``_init_weights`` on ``module`` once: transformers' ``_is_hf_initialized`` flag marks a module whose
        values are set (initialised, loaded or taken from a transformers model: :meth:`_mark_initialised`)."""
        if getattr(module, "_is_hf_initialized", False):
            return
        self._init_weights(module)
        module._is_hf_initialized = True

    def _mark_initialised(self) -> None:
        """Every module's values are set (by loading or assignment): :meth:`init_weights` leaves them as they are."""
        for module in self.modules():
            module._is_hf_initialized = True

    def get_extended_attention_mask(
        self,
        attention_mask: torch.Tensor,
        input_shape: tuple[int, ...],
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """transformers 4's public helper: a (B, L) or (B, Lq, Lk) mask of 1/0 → an additive (B, 1, Lq|1, Lk)
        mask (0 where attended, the dtype's minimum where not), causal for a decoder. fastbert's own forward
        does not use it (the op tables take the mask as it is)."""
        if dtype is None:
            dtype = self.dtype
        if attention_mask.dim() == 3:
            extended = attention_mask[:, None, :, :]
        elif attention_mask.dim() == 2:
            if self.config.is_decoder:
                extended = _causal_extended_mask(input_shape, attention_mask, device or attention_mask.device)
            else:
                extended = attention_mask[:, None, None, :]
        else:
            raise ValueError(
                f"attention_mask must be (batch, key_length) or (batch, query_length, key_length), "
                f"got shape {tuple(attention_mask.shape)} for input_shape {tuple(input_shape)}"
            )
        extended = extended.to(dtype=dtype)
        return (1.0 - extended) * torch.finfo(dtype).min

    def invert_attention_mask(self, encoder_attention_mask: torch.Tensor) -> torch.Tensor:
        """transformers 4's helper: a (B, Lk) or (B, Lq, Lk) mask of 1/0 → an additive (B, 1, 1|Lq, Lk) mask in
        the model's dtype (0 where attended, the dtype's minimum where not)."""
        if encoder_attention_mask.dim() == 3:
            extended = encoder_attention_mask[:, None, :, :]
        elif encoder_attention_mask.dim() == 2:
            extended = encoder_attention_mask[:, None, None, :]
        else:
            raise ValueError(
                "encoder_attention_mask must be (batch, key_length) or (batch, query_length, key_length), "
                f"got shape {tuple(encoder_attention_mask.shape)}"
            )
        extended = extended.to(dtype=self.dtype)
        return (1.0 - extended) * torch.finfo(self.dtype).min

    @staticmethod
    def create_extended_attention_mask_for_decoder(
        input_shape: tuple[int, ...], attention_mask: torch.Tensor, device: torch.device | None = None
    ) -> torch.Tensor:
        """transformers 4's helper: a (B, Lk) mask of 1/0 → the (B, 1, Lq, Lk) causal mask of 1/0 (a longer
        mask, a cache, attended in full at its start), in the mask's dtype."""
        return _causal_extended_mask(input_shape, attention_mask, device or attention_mask.device)

    def get_head_mask(
        self, head_mask: torch.Tensor | None, num_hidden_layers: int, is_attention_chunked: bool = False
    ) -> torch.Tensor | list[None]:
        """transformers 4's helper: a (heads,) or (layers, heads) mask → (layers, batch|1, heads, L|1, L|1) in
        the model's dtype, or ``[None] * num_hidden_layers`` without one. (fastbert's forwards take no
        ``head_mask``: README, compatibility.)"""
        if head_mask is None:
            return [None] * num_hidden_layers
        head_mask = self._convert_head_mask_to_5d(head_mask, num_hidden_layers)
        if is_attention_chunked is True:
            head_mask = head_mask.unsqueeze(-1)
        return head_mask

    def _convert_head_mask_to_5d(self, head_mask: torch.Tensor, num_hidden_layers: int) -> torch.Tensor:
        if head_mask.dim() == 1:
            head_mask = head_mask[None, None, :, None, None].expand(num_hidden_layers, -1, -1, -1, -1)
        elif head_mask.dim() == 2:
            head_mask = head_mask[:, None, :, None, None]  # one mask per layer
        if head_mask.dim() != 5:
            raise ValueError(f"head_mask must have 1, 2 or 5 dimensions, got {head_mask.dim()}")
        return head_mask.to(dtype=self.dtype)

    def estimate_tokens(self, input_dict: dict[str, Any]) -> int:
        """transformers 4's helper: the number of tokens of a batch (the elements of its main input), 0 (and a
        warning, once) without one."""
        if self.main_input_name in input_dict:
            return input_dict[self.main_input_name].numel()
        warned = self.__dict__.setdefault("warnings_issued", {})
        if "estimate_tokens" not in warned:
            logger.warning(
                "Could not estimate the number of tokens of the input, floating-point operations will not be computed"
            )
            warned["estimate_tokens"] = True
        return 0

    def floating_point_ops(self, input_dict: dict[str, Any], exclude_embeddings: bool = True) -> int:
        """transformers 4's estimate of a training step's floating-point operations (forward and backward) on
        this batch, ``6 * tokens * parameters`` (without the embeddings by default); the Trainer logs it."""
        return (
            6 * self.estimate_tokens(input_dict) * self.num_parameters(exclude_embeddings=exclude_embeddings)
        )

    def get_memory_footprint(self, return_buffers: bool = True) -> int:
        """The bytes of the model's parameters (and buffers, by default), as transformers."""
        mem = sum(p.nelement() * p.element_size() for p in self.parameters())
        if return_buffers:
            mem += sum(b.nelement() * b.element_size() for b in self.buffers())
        return mem

    def dequantize(self, dtype: torch.dtype | None = None) -> nn.Module:
        """The model with its quantization removed (:func:`fastbert.quant.dequantize`: plain ``nn.Linear``
        modules on the same parameters, ``model.quantization`` gone), cast to ``dtype`` when given, as
        transformers; ValueError for a model that is not quantized."""
        # the report quantize left on the model (or on its base model) undoes it: model_api does not import
        # fastbert.quant, which imports model_api
        report = quantization_of(self)
        if report is None:  # transformers' words
            raise ValueError("You need to first quantize your model in order to dequantize it")
        report.remove(self)
        return self if dtype is None else self.to(dtype)

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        """Replace the output embeddings (the LM decoder) where they are: ``cls.predictions.decoder`` (BERT),
        ``lm_head.decoder`` (RoBERTa, MPNet ...), ``vocab_projector`` (DistilBERT), ``generator_lm_head``
        (ELECTRA). A head with its own output bias (BERT's, RoBERTa's, MPNet's) takes the new decoder's bias,
        as transformers' BERT and MPNet heads do (and transformers 4's RoBERTa head, on its next tying)."""
        old = self.get_output_embeddings()
        if old is None:
            raise AttributeError(
                f"{type(self).__name__} has no output embeddings (no language-modelling head)"
            )
        for name, module in self.named_modules(remove_duplicate=False):
            if module is old and name:
                parent_name, _, attr = name.rpartition(".")
                parent = self.get_submodule(parent_name) if parent_name else self
                setattr(parent, attr, new_embeddings)
                if getattr(parent, "ties_decoder_bias", False):
                    parent.bias = new_embeddings.bias
                return
        raise AttributeError(f"{type(self).__name__}: its output embeddings are not one of its modules")

    # ---------------------------------------------------------------------------------------- resizing
    def resize_token_embeddings(
        self,
        new_num_tokens: int | None = None,
        pad_to_multiple_of: int | None = None,
        mean_resizing: bool = True,
    ) -> nn.Embedding:
        """Resize the word embeddings (and an untied MLM decoder) to ``new_num_tokens`` rows, rounded up to a
        multiple of ``pad_to_multiple_of``; returns the input embedding module.

        Rows kept are copied; added rows are drawn, with ``mean_resizing`` (the default), from a normal
        distribution with the old rows' mean and 1e-9 × their covariance (their mean when that covariance is
        not positive definite), else initialised like a new model (``initializer_range``). The tied decoder
        follows the embeddings and its bias is padded with zeros (or cut); ``config.vocab_size`` is updated.
        """
        embeddings = self._resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
        if new_num_tokens is None and pad_to_multiple_of is None:
            return embeddings
        vocab_size = embeddings.weight.shape[0]
        self.config.vocab_size = vocab_size
        self.vocab_size = vocab_size
        self.tie_weights()
        self._adjust_decoder_bias()
        return embeddings

    def _resize_token_embeddings(self, new_num_tokens, pad_to_multiple_of=None, mean_resizing=True):
        old_embeddings = self.get_input_embeddings()
        new_embeddings = self._get_resized_embeddings(
            old_embeddings, new_num_tokens, pad_to_multiple_of, mean_resizing
        )
        new_embeddings.requires_grad_(old_embeddings.weight.requires_grad)
        self.set_input_embeddings(new_embeddings)
        if pad_to_multiple_of is not None:
            new_num_tokens = new_embeddings.weight.shape[0]
        old_head = self.get_output_embeddings()
        if old_head is not None:  # tied: it already shares the new weight, and is returned as it is
            new_head = self._get_resized_lm_head(old_head, new_num_tokens, mean_resizing=mean_resizing)
            new_head.requires_grad_(old_head.weight.requires_grad)
            # also the same module, as transformers: a head with its own bias then takes the decoder's
            self.set_output_embeddings(new_head)
        return self.get_input_embeddings()

    def _get_resized_embeddings(
        self,
        old_embeddings: nn.Embedding,
        new_num_tokens: int | None = None,
        pad_to_multiple_of: int | None = None,
        mean_resizing: bool = True,
    ) -> nn.Embedding:
        if pad_to_multiple_of is not None:
            if not isinstance(pad_to_multiple_of, int) or isinstance(pad_to_multiple_of, bool):
                raise ValueError(f"pad_to_multiple_of must be an integer, got {pad_to_multiple_of!r}")
            if new_num_tokens is None:
                new_num_tokens = old_embeddings.weight.shape[0]
            new_num_tokens = (
                (new_num_tokens + pad_to_multiple_of - 1) // pad_to_multiple_of
            ) * pad_to_multiple_of
        if new_num_tokens is None:
            return old_embeddings
        if not isinstance(new_num_tokens, int) or isinstance(new_num_tokens, bool) or new_num_tokens < 1:
            raise ValueError(f"new_num_tokens must be a whole number of at least 1, got {new_num_tokens!r}")
        old_num_tokens, dim = old_embeddings.weight.size()
        if old_num_tokens == new_num_tokens:
            old_embeddings.num_embeddings = new_num_tokens
            return old_embeddings
        if not isinstance(old_embeddings, nn.Embedding):
            raise TypeError(
                f"the input embeddings are a {type(old_embeddings).__name__}, not an nn.Embedding: cannot resize them"
            )
        # built like transformers (nn.Embedding's own init draws from the generator first)
        new_embeddings = nn.Embedding(
            new_num_tokens, dim, device=old_embeddings.weight.device, dtype=old_embeddings.weight.dtype
        )
        if new_num_tokens > old_num_tokens and not mean_resizing:
            self._init_resized_module(new_embeddings)
        elif new_num_tokens > old_num_tokens:
            _init_added_rows_with_mean(
                old_embeddings, new_embeddings, old_num_tokens, new_num_tokens - old_num_tokens
            )
        n = min(old_num_tokens, new_num_tokens)
        new_embeddings.weight.data[:n, :] = old_embeddings.weight.data[:n, :]
        # the old module keeps its identity (and its type); only its weight storage changes
        old_embeddings.weight.data = new_embeddings.weight.data
        old_embeddings.num_embeddings = new_num_tokens
        if old_embeddings.padding_idx is not None and new_num_tokens - 1 < old_embeddings.padding_idx:
            old_embeddings.padding_idx = None
        return old_embeddings

    def _get_resized_lm_head(
        self, old_head: nn.Linear, new_num_tokens: int | None = None, mean_resizing: bool = True
    ) -> nn.Linear:
        if new_num_tokens is None:
            return old_head
        old_num_tokens, dim = old_head.weight.size()
        if old_num_tokens == new_num_tokens:  # tied: the weight was resized with the embeddings
            old_head.out_features = new_num_tokens
            return old_head
        if not isinstance(old_head, nn.Linear):
            raise TypeError(f"the output embeddings are a {type(old_head).__name__}, not an nn.Linear")
        has_bias = old_head.bias is not None
        new_head = nn.Linear(
            dim, new_num_tokens, bias=has_bias, device=old_head.weight.device, dtype=old_head.weight.dtype
        )
        added = new_num_tokens - old_num_tokens
        if added > 0 and not mean_resizing:
            self._init_resized_module(new_head)
        elif added > 0:
            _init_added_rows_with_mean(old_head, new_head, old_num_tokens, added)
            if has_bias:
                bias_mean = torch.mean(old_head.bias.data, dim=0, dtype=torch.float32)
                bias_std = torch.std(old_head.bias.data, dim=0).to(torch.float32)
                new_head.bias.data[-added:].normal_(mean=bias_mean, std=1e-9 * bias_std)
        n = min(old_num_tokens, new_num_tokens)
        new_head.weight.data[:n, :] = old_head.weight.data[:n, :]
        if has_bias:
            new_head.bias.data[:n] = old_head.bias.data[:n]
        new_head._is_hf_initialized = True  # a later init_weights() keeps it, as transformers
        return new_head

    def _init_resized_module(self, module: nn.Module) -> None:
        """A new (lone) embedding or LM head of a resize, ``mean_resizing=False``: transformers 5 runs the
        model's ``_init_weights`` on it, whose lone ``nn.Embedding`` / ``nn.Linear`` gets the base class's init
        in every family (ModernBERT's truncated normals key on the modules around it): normal with
        ``initializer_range`` (0.02 when unset), zero bias, a zero padding row."""
        std = getattr(self.config, "initializer_range", None) or 0.02
        with torch.no_grad():
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()

    def _adjust_decoder_bias(self) -> None:
        """A tied decoder's bias padded with zeros (or cut) to its weight's rows, as transformers' tying does."""
        head = self.get_output_embeddings()
        if head is None or getattr(head, "bias", None) is None:
            return
        rows = head.weight.shape[0]
        if head.bias.shape[0] != rows:
            head.bias.data = nn.functional.pad(head.bias.data, (0, rows - head.bias.shape[0]), "constant", 0)
        head.out_features = rows

    # ---------------------------------------------------------------------------------------- checkpointing
    @property
    def is_gradient_checkpointing(self) -> bool:
        """Whether any layer recomputes its activations in the backward pass."""
        return any(getattr(m, "gradient_checkpointing", False) for m in self.modules())

    is_activation_checkpointing = is_gradient_checkpointing

    def gradient_checkpointing_enable(
        self, gradient_checkpointing_kwargs: dict | None = None, **kwargs: Any
    ) -> None:
        """Recompute each encoder layer's activations in the backward pass instead of keeping them.

        ``gradient_checkpointing_kwargs`` go to ``torch.utils.checkpoint.checkpoint`` (default
        ``{"use_reentrant": False}``, transformers 5's); ``every_n_layers`` / ``offload`` as
        :meth:`activation_checkpointing_enable`. Works on the padded and the packed (padding-free) paths.
        Like transformers, it also makes the input embeddings' output require grad
        (:meth:`enable_input_require_grads`), so a frozen embedding does not cut the gradient.
        """
        self.activation_checkpointing_enable(
            activation_checkpointing_kwargs=gradient_checkpointing_kwargs, **kwargs
        )

    def activation_checkpointing_enable(
        self,
        activation_checkpointing_kwargs: dict | None = None,
        every_n_layers: int = 1,
        offload: bool = False,
    ) -> None:
        """transformers 5's name of :meth:`gradient_checkpointing_enable`; ``every_n_layers`` checkpoints every
        n-th layer only; ``offload`` keeps the saved inputs in (pinned) host memory."""
        if not isinstance(every_n_layers, int) or every_n_layers < 1:
            raise ValueError(f"every_n_layers must be a whole number of at least 1, got {every_n_layers!r}")
        kwargs = (
            {"use_reentrant": False}
            if activation_checkpointing_kwargs is None
            else activation_checkpointing_kwargs
        )
        if offload:
            pin = torch.cuda.is_available()

            def checkpoint_func(function, *args, **kw):
                with torch.autograd.graph.save_on_cpu(pin_memory=pin):
                    return checkpoint(function, *args, **kw)
        else:
            checkpoint_func = checkpoint
        func = functools.partial(checkpoint_func, **kwargs)
        if kwargs.get("use_reentrant", True):
            func = functools.partial(_checkpoint_lifting_context_tensors, func)
        self._set_gradient_checkpointing(True, func, every_n_layers)
        if self.main_input_name == "input_ids":
            self.enable_input_require_grads()

    def gradient_checkpointing_disable(self) -> None:
        """Turn activation checkpointing off again."""
        self.activation_checkpointing_disable()

    def activation_checkpointing_disable(self) -> None:
        self._set_gradient_checkpointing(False)

    def _set_gradient_checkpointing(
        self, enable: bool = True, func=checkpoint, every_n_layers: int = 1
    ) -> None:
        index = 0
        found = False
        for module in self.modules():
            if hasattr(module, "gradient_checkpointing"):
                module._gradient_checkpointing_func = func
                module.gradient_checkpointing = enable and index % every_n_layers == 0
                index += 1
                found = True
        if not found:
            raise ValueError(f"{type(self).__name__} has no layer that supports gradient checkpointing")

    # ---------------------------------------------------------------------------------------- input grads
    def enable_input_require_grads(self) -> None:
        """Make the word embeddings' output require grad (a forward hook), so gradients reach adapters or
        checkpointed layers when the embeddings themselves are frozen."""
        self.disable_input_require_grads()

        def make_inputs_require_grads(module, args, output):
            output.requires_grad_(True)

        embeddings = self.get_input_embeddings()
        self._require_grads_hooks = [embeddings.register_forward_hook(make_inputs_require_grads)]
        self._require_grads_hook = self._require_grads_hooks[0]

    def disable_input_require_grads(self) -> None:
        """Remove the hook of :meth:`enable_input_require_grads`."""
        for hook in getattr(self, "_require_grads_hooks", None) or ():
            hook.remove()
        self._require_grads_hooks = []
        if "_require_grads_hook" in self.__dict__:
            del self._require_grads_hook


def quantization_of(model: nn.Module) -> Any:
    """The report :func:`fastbert.quantize` left on ``model`` or on a module of it (its base model quantized
    by itself: ``quantize(model.bert)``); None for a model that is not quantized."""
    reports = (m.__dict__.get("quantization") for m in model.modules())
    return next((r for r in reports if r is not None), None)


def fallbacks_of(model: nn.Module) -> list[str]:
    """The fallbacks a fastbert model (or a module of it: a head model's base warns) warned of, sorted: the
    reasons a backend it was asked for ran another backend's path (``fastbert check`` and ``fastbert bench``
    refuse a row under the asked backend's name then). Empty for a model that did not fall back."""
    reasons: set[str] = set()
    for m in model.modules():
        reasons.update(m.__dict__.get("_fallback_warned") or ())
    return sorted(reasons)


def _context_tensors(value: Any, found: dict[int, torch.Tensor], depth: int = 0) -> None:
    """The tensors that need grad inside a layer's context (dataclasses, mappings, tuples), by id."""
    if depth > 6 or isinstance(value, nn.Module):
        return
    if torch.is_tensor(value):
        if value.requires_grad:
            found.setdefault(id(value), value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _context_tensors(getattr(value, f.name), found, depth + 1)
    elif isinstance(value, Mapping):
        for v in value.values():
            _context_tensors(v, found, depth + 1)
    elif isinstance(value, (tuple, list)):
        for v in value:
            _context_tensors(v, found, depth + 1)


def _substitute(value: Any, new: dict[int, torch.Tensor], depth: int = 0) -> Any:
    """``value`` with each tensor whose id is in ``new`` replaced (dataclasses rebuilt, others kept)."""
    if depth > 6 or isinstance(value, nn.Module):
        return value
    if torch.is_tensor(value):
        return new.get(id(value), value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for f in dataclasses.fields(value):
            if not f.init:
                continue
            old = getattr(value, f.name)
            replaced = _substitute(old, new, depth + 1)
            if replaced is not old:
                changes[f.name] = replaced
        return dataclasses.replace(value, **changes) if changes else value
    if isinstance(value, Mapping):
        items = {k: _substitute(v, new, depth + 1) for k, v in value.items()}
        return type(value)(items) if any(items[k] is not value[k] for k in value) else value
    if isinstance(value, (tuple, list)):
        items = [_substitute(v, new, depth + 1) for v in value]
        if any(a is not b for a, b in zip(items, value)):
            return type(value)(items) if isinstance(value, list) else tuple(items)
    return value


def _checkpoint_lifting_context_tensors(checkpoint_func, function, *args, **kwargs):
    """Reentrant checkpointing sees only its explicit tensor arguments: a tensor that needs grad and reaches
    the layer inside its context (MPNet's relative bias table, computed once per forward from its weight)
    would be backpropagated through by every layer's inner backward ("backward through the graph a second
    time"). Such tensors are passed as explicit arguments and put back into the context inside."""
    found: dict[int, torch.Tensor] = {}
    for a in args:
        if not torch.is_tensor(a):
            _context_tensors(a, found)
    if not found:
        return checkpoint_func(function, *args, **kwargs)
    ids = list(found)
    n = len(args)

    def run(*all_args):
        new = dict(zip(ids, all_args[n:]))
        return function(*(a if torch.is_tensor(a) else _substitute(a, new) for a in all_args[:n]))

    return checkpoint_func(run, *args, *found.values(), **kwargs)


def _init_added_rows_with_mean(old: nn.Module, new: nn.Module, old_num_tokens: int, added: int) -> None:
    """transformers' mean resizing: added rows ~ N(mean of old rows, 1e-9 · their covariance), or the mean."""
    old_weight = old.weight.data.to(torch.float32)
    mean = torch.mean(old_weight, dim=0)
    centered = old_weight - mean
    covariance = centered.T @ centered / old_num_tokens
    epsilon = 1e-9
    if torch.distributions.constraints.positive_definite.check(epsilon * covariance).all():
        distribution = torch.distributions.multivariate_normal.MultivariateNormal(
            mean, covariance_matrix=epsilon * covariance
        )
        new.weight.data[-added:, :] = distribution.sample(sample_shape=(added,)).to(old.weight.dtype)
    else:
        new.weight.data[-added:, :] = mean[None, :].repeat(added, 1).to(old.weight.dtype)


def _causal_extended_mask(input_shape, attention_mask: torch.Tensor, device) -> torch.Tensor:
    """(B, Lk) mask → (B, 1, Lq, Lk) causal mask; a longer mask (a cache) is attended in full at its start."""
    batch_size, seq_length = input_shape[:2]
    seq_ids = torch.arange(seq_length, device=device)
    causal = seq_ids[None, None, :].repeat(batch_size, seq_length, 1) <= seq_ids[None, :, None]
    causal = causal.to(attention_mask.dtype)
    prefix = attention_mask.shape[1] - causal.shape[1]
    if prefix > 0:
        causal = torch.cat(
            [torch.ones((batch_size, seq_length, prefix), device=device, dtype=causal.dtype), causal], dim=-1
        )
    return causal[:, None, :, :] * attention_mask[:, None, None, :]
