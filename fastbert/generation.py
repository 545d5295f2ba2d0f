"""``generate`` for ``BertLMHeadModel``: greedy search and multinomial sampling, as transformers 5 does them.

The loop is transformers' ``GenerationMixin._sample`` for a decoder-only model, written for fastbert (no
import of transformers): the prompt runs once (the prefill), then one token per step on the KV cache
(``past_key_values``; or the whole sequence again with ``use_cache=False``). Position ids come from the
attention mask (``cumsum - 1``, 0 on padding), so a left-padded batch generates as transformers does.
Each step takes the last position's logits in fp32 and applies transformers' processors in transformers'
order — temperature, top-k, top-p — then picks ``argmax`` (greedy) or draws with
``torch.multinomial(softmax(scores), 1)`` (sampling): with the same weights and the same
``torch.manual_seed``, the same tokens. A finished row (it produced ``eos_token_id``) is filled with
``pad_token_id``; generation stops at ``max_length`` (``max_new_tokens`` counts after the prompt) or when
every row has finished.

Defaults are transformers 5's (``max_length=20``, ``top_k=50``, ``temperature=1.0``, ``top_p=1.0``, greedy),
overridden by ``model.generation_config`` and then by the call's arguments. With no length set anywhere,
20 new tokens (``max_length`` = prompt + 20, capped at ``max_position_embeddings``), as transformers 4 and 5.
"""

from __future__ import annotations

import json
import logging
import operator
import os
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .core.kv_cache import cache_length
from .output_files import open_output
from .outputs import ModelOutput, _WithCache

logger = logging.getLogger(__name__)

#: transformers 5's defaults for what neither the call nor the model's generation config sets
_DEFAULTS: dict[str, Any] = {
    "max_length": 20,
    "max_new_tokens": None,
    "do_sample": False,
    "temperature": 1.0,
    "top_k": 50,
    "top_p": 1.0,
    "num_return_sequences": 1,
    "use_cache": True,
    "eos_token_id": None,
    "pad_token_id": None,
    "bos_token_id": None,
    "output_scores": False,
    "output_logits": False,
    "return_dict_in_generate": False,
}


#: ``generate``'s default for a setting the call does not pass: the configs decide. A setting passed, None
#: included, overrides them, as transformers' ``generation_config.update(**kwargs)`` does (``pad_token_id=None``
#: is no pad, then the first eos id; ``top_k=None`` is no top-k filter)
_UNSET: Any = type("_Unset", (), {"__repr__": lambda self: "<unset>"})()

#: a setting passed as None that transformers cannot run (``max_length``, ``num_return_sequences``) or hands
#: to the model's forward (``use_cache``): the configs decide, as when it is not passed
_NONE_IS_UNSET = {"max_length", "num_return_sequences", "use_cache"}

#: transformers' defaults of the generation settings fastbert's ``generate`` does not implement: a
#: ``generation_config.json`` (or a transformers ``GenerationConfig``) that sets one to another value is read
#: with a warning naming it and kept (``save_pretrained`` writes it back); ``generate`` refuses it, set there or
#: passed to it, where it would change the output (:func:`_changes_output`)
_UNSUPPORTED_DEFAULTS: dict[str, Any] = {
    "num_beams": 1,
    "num_beam_groups": 1,
    "early_stopping": False,
    "length_penalty": 1.0,
    "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0,
    "min_length": 0,
    "min_new_tokens": None,
    "diversity_penalty": 0.0,
    "typical_p": 1.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "min_p": None,
    "top_h": None,
    "bad_words_ids": None,
    "force_words_ids": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "sequence_bias": None,
    "exponential_decay_length_penalty": None,
    "renormalize_logits": False,
    "remove_invalid_values": False,
    "guidance_scale": None,
    "watermarking_config": None,
    "max_time": None,
    "stop_strings": None,
    "constraints": None,
    "output_attentions": False,
    "output_hidden_states": False,
    "num_assistant_tokens": 20,
    "num_assistant_tokens_schedule": "constant",
    "assistant_confidence_threshold": 0.4,
    "penalty_alpha": None,
    "low_memory": None,
    "dola_layers": None,
    "prompt_lookup_num_tokens": None,
    "cache_implementation": None,
    "decoder_start_token_id": None,
}

#: transformers 5.25's settings that default to None, are not listed above, and are read only in assisted
#: generation or change how it computes, not the tokens (caches, compilation)
_NONE_DEFAULTS_WITHOUT_EFFECT = (
    "assistant_ensemble_weight",
    "assistant_lookbehind",
    "target_lookbehind",
    "max_matching_ngram_size",
    "is_assistant",
    "speculation_type",
    "cache_config",
    "max_cache_len",
    "compile_config",
    "disable_compile",
    "prefill_chunk_size",
    "continuous_batching_config",
)
# ... and those that change the output
for _name in ("assistant_early_exit", "use_mtp", "token_healing", *_NONE_DEFAULTS_WITHOUT_EFFECT):
    _UNSUPPORTED_DEFAULTS.setdefault(_name, None)

#: settings transformers 5.25 reads only in a mode fastbert refuses anyway (beam search, assisted generation,
#: encoder-decoders), or that change how it computes and not the tokens (caches, compilation): accepted at any
#: value, as transformers' greedy search and sampling ignore them
_NO_EFFECT = {
    "early_stopping",
    "length_penalty",
    "diversity_penalty",
    "low_memory",
    "num_assistant_tokens",
    "num_assistant_tokens_schedule",
    "assistant_confidence_threshold",
    "decoder_start_token_id",
    "cache_implementation",
    *_NONE_DEFAULTS_WITHOUT_EFFECT,
}

#: processors transformers applies only when sampling (``do_sample=True``): greedy search ignores them
_SAMPLING_ONLY = {"min_p", "top_h", "typical_p", "epsilon_cutoff", "eta_cutoff"}

#: ``generate``'s own arguments in transformers 5.25 (not generation config settings) that fastbert does not
#: implement: None (or an empty processor / criteria list, ``synced_gpus=False``) asks nothing of them
_UNSUPPORTED_ARGUMENTS = (
    "logits_processor",
    "stopping_criteria",
    "prefix_allowed_tokens_fn",
    "synced_gpus",
    "assistant_model",
    "streamer",
    "negative_prompt_ids",
    "custom_generate",
)
#: read only with an argument above that fastbert refuses (``assistant_model``, ``negative_prompt_ids``,
#: ``stop_strings``): accepted at any value
_NO_EFFECT_ARGUMENTS = {"negative_prompt_attention_mask", "assistant_tokenizer", "tokenizer"}

#: what a generation config file carries besides settings
_METADATA = {"transformers_version", "_from_model_config", "_commit_hash", "_original_object_hash"}


def _changes_output(name: str, value: Any, settings: dict[str, Any], eos: list[int] | None) -> bool:
    """Whether ``name=value``, a setting fastbert's ``generate`` does not implement, changes what transformers
    5.25 generates given the settings it does implement: not when it is at its default (:func:`_at_default`),
    read only in a mode fastbert refuses anyway (:data:`_NO_EFFECT`) or only when sampling while greedy."""
    if _at_default(name, value) or name in _NO_EFFECT:
        return False
    if name in _SAMPLING_ONLY:
        return bool(settings["do_sample"])
    if name in ("output_attentions", "output_hidden_states"):  # fields of the returned dict only
        return bool(value) and bool(settings["return_dict_in_generate"])
    if name in ("min_length", "min_new_tokens"):  # transformers: only with an eos id to hold back
        return eos is not None and isinstance(value, (int, float)) and value > 0
    if name == "guidance_scale":
        return value != 1
    if name == "penalty_alpha" and isinstance(value, (int, float)):  # contrastive search: greedy, top_k > 1
        top_k = settings["top_k"]
        return not settings["do_sample"] and isinstance(top_k, int) and top_k > 1 and value > 0
    if name in ("num_beams", "num_beam_groups"):
        return isinstance(value, bool) or value != 1
    return True


def _argument_asks(name: str, value: Any) -> bool:
    """Whether ``generate(name=value)``, one of transformers' own ``generate`` arguments fastbert does not
    implement (:data:`_UNSUPPORTED_ARGUMENTS`), asks for anything."""
    if value is None or name in _NO_EFFECT_ARGUMENTS:
        return False
    if name in ("logits_processor", "stopping_criteria"):
        return len(value) > 0
    if name == "synced_gpus":
        return bool(value)
    return True


def _at_default(name: str, value: Any) -> bool:
    """Whether ``name=value`` passed to ``generate`` asks nothing of a setting fastbert does not implement:
    None (transformers' "unset", what a wrapper forwarding every option passes) or transformers' default
    (``num_beams=1``, ``repetition_penalty=1.0``), a bool only for a bool default."""
    if name not in _UNSUPPORTED_DEFAULTS:
        return False
    default = _UNSUPPORTED_DEFAULTS[name]
    return value is None or (value == default and isinstance(value, bool) == isinstance(default, bool))


class GenerationConfig:
    """The generation parameters a model carries (``model.generation_config``); unset fields are None.

    Read from the model's config (``pad_token_id``, ``bos_token_id``, ``eos_token_id``) as transformers'
    ``GenerationConfig.from_model_config``, then from the checkpoint's ``generation_config.json`` when it has
    one (``from_pretrained``); ``save_pretrained`` writes ``generation_config.json``.
    """

    def __init__(self, **kwargs: Any) -> None:
        """The settings ``generate`` implements; one of transformers' settings it does not implement is kept
        as transformers' ``GenerationConfig(...)`` would take it (named in a warning where it matters), and
        ``generate`` refuses it where it would change the output, as when it is passed to ``generate``."""
        unknown = set(kwargs) - set(_DEFAULTS) - set(_UNSUPPORTED_DEFAULTS)
        if unknown:
            raise TypeError(
                f"GenerationConfig got unknown fields {sorted(unknown)}; known: {sorted(_DEFAULTS)} and "
                "transformers' settings fastbert's generate does not implement"
            )
        for name in _DEFAULTS:
            setattr(self, name, kwargs.get(name))
        for name in sorted(set(kwargs) & set(_UNSUPPORTED_DEFAULTS)):
            if not _at_default(name, kwargs[name]):  # transformers' default: nothing to keep
                setattr(self, name, kwargs[name])

    def __setattr__(self, name: str, value: Any) -> None:
        """A transformers setting fastbert's ``generate`` does not implement, set on the object
        (``model.generation_config.num_beams = 4``, as transformers' docs do), is named in a warning: it was
        kept as a plain attribute, and generate refuses it where it would change the output."""
        if name in _UNSUPPORTED_DEFAULTS and name not in _NO_EFFECT and value != _UNSUPPORTED_DEFAULTS[name]:
            warnings.warn(
                f"generation_config.{name}={value!r}: fastbert's generate does greedy search and sampling "
                "(temperature, top-k, top-p) only; it refuses (a ValueError) this setting where it would "
                "change its output",
                UserWarning,
                stacklevel=2,
            )
        super().__setattr__(name, value)

    @classmethod
    def from_model_config(cls, config: Any) -> GenerationConfig:
        config = cls(
            **{k: getattr(config, k, None) for k in ("pad_token_id", "bos_token_id", "eos_token_id")}
        )
        config._from_model_config = True
        return config

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "the generation config") -> GenerationConfig:
        """The settings of a ``generation_config.json`` (or of a transformers ``GenerationConfig``'s
        ``to_diff_dict()``): the ones fastbert's ``generate`` implements; a setting it does not implement, set
        to anything but transformers' default, is named in one warning and not applied, but kept (a plain
        attribute, written back by ``save_pretrained``, so transformers still applies it to the saved model)."""
        ignored = {
            k: v
            for k, v in data.items()
            if k not in _DEFAULTS and k not in _METADATA and v != _UNSUPPORTED_DEFAULTS.get(k)
        }
        named = sorted(f"{k}={v!r}" for k, v in ignored.items() if k not in _NO_EFFECT)
        if named:
            warnings.warn(
                f"{source} sets {', '.join(named)}: fastbert's generate does greedy search and sampling "
                "(temperature, top-k, top-p) only; it refuses (a ValueError) those of these that would change "
                "its output unless the call overrides them",
                UserWarning,
                stacklevel=3,
            )
        config = cls(**{k: v for k, v in data.items() if k in _DEFAULTS})
        config.__dict__.update(ignored)  # warned above: not again by __setattr__
        return config

    @classmethod
    def coerce(cls, value: Any) -> GenerationConfig:
        """A fastbert ``GenerationConfig`` from one of fastbert, a transformers ``GenerationConfig`` (its
        settings that differ from transformers' defaults) or a dict."""
        if isinstance(value, GenerationConfig):
            return value
        if isinstance(value, dict):
            return cls.from_dict(value)
        to_diff_dict = getattr(value, "to_diff_dict", None)
        if callable(to_diff_dict):
            config = cls.from_dict(to_diff_dict(), source=f"the {type(value).__name__}")
            if getattr(value, "_from_model_config", False):  # derived from config.json, nobody set it
                config._from_model_config = True
            return config
        raise TypeError(
            "generation_config must be a GenerationConfig (fastbert's or transformers') or a dict, "
            f"got {type(value).__name__}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The settings set: those ``generate`` implements, and those it does not (kept, not applied)."""
        kept = {k: v for k, v in self.__dict__.items() if k not in _DEFAULTS and not k.startswith("_")}
        return {**{k: getattr(self, k) for k in _DEFAULTS if getattr(self, k) is not None}, **kept}

    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        os.makedirs(save_directory, exist_ok=True)
        data = self.to_dict()
        if self.__dict__.get("_from_model_config"):  # as transformers marks a config nobody set
            data["_from_model_config"] = True
        with open_output(os.path.join(save_directory, "generation_config.json"), "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")

    def __repr__(self) -> str:
        return f"GenerationConfig {json.dumps(self.to_dict(), indent=2, sort_keys=True)}"


@dataclass
class GenerateDecoderOnlyOutput(_WithCache, ModelOutput):
    """``generate(..., return_dict_in_generate=True)``: the sequences, and per step the processed scores
    (``output_scores``) and raw logits (``output_logits``), each (batch, vocab), and the final cache.
    ``attentions`` / ``hidden_states`` are transformers' fields, always None here (``generate`` refuses
    ``output_attentions`` / ``output_hidden_states``)."""

    sequences: torch.Tensor | None = None
    scores: tuple | None = None
    logits: tuple | None = None
    attentions: tuple | None = None
    hidden_states: tuple | None = None
    past_key_values: tuple | None = None


def _integer(value: Any) -> Any:
    """A NumPy integer or a one-element integer tensor as the int it holds (transformers takes them: they
    are what lengths and ids computed with NumPy or torch are); anything else, bools included, as it is."""
    if torch.is_tensor(value) and value.numel() == 1 and not value.dtype.is_floating_point:
        value = value.item()
    if isinstance(value, bool) or isinstance(value, int) or type(value).__name__.startswith("bool"):
        return value
    try:
        return operator.index(value)
    except TypeError:
        return value


def _as_list(ids: Any) -> list[int] | None:
    if ids is None:
        return None
    given = ids
    if torch.is_tensor(ids):
        ids = ids.tolist()
    ids = [_integer(i) for i in ids] if isinstance(ids, (list, tuple)) else [_integer(ids)]
    if not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise ValueError(f"eos_token_id must be a token id or a list of token ids, got {given!r}")
    return ids


def _token_id(name: str, value: Any) -> int | None:
    """A single token id setting (``pad_token_id``): None, an int, a NumPy integer or a one-element integer
    tensor."""
    value = _integer(value)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{name} must be a token id (an int), got {value!r}")
    return value


def _whole(name: str, value: Any, minimum: int) -> int:
    value = _integer(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number of at least {minimum}, got {value!r}")
    return value


def process_logits(
    scores: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0
) -> torch.Tensor:
    """transformers' sampling processors in transformers' order: temperature, top-k, top-p (scores (B, V), fp32).

    Filtered tokens get ``-inf``; the token whose cumulative probability first passes ``top_p`` is kept, and
    so is the most likely token always.
    """
    if temperature != 1.0:
        scores = scores / temperature
    if top_k:
        k = min(top_k, scores.size(-1))
        scores = scores.masked_fill(scores < torch.topk(scores, k)[0][..., -1, None], -float("inf"))
    if top_p < 1.0:
        sorted_logits, sorted_indices = torch.sort(scores, descending=False)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove = cumulative <= (1 - top_p)
        remove[..., -1:] = 0
        scores = scores.masked_fill(remove.scatter(1, sorted_indices, remove), -float("inf"))
    return scores


class GenerationMixin:
    """``generate`` / ``can_generate`` / ``generation_config`` for a causal LM head (``BertLMHeadModel``)."""

    @classmethod
    def can_generate(cls) -> bool:
        return True

    @property
    def generation_config(self) -> GenerationConfig:
        config = self.__dict__.get("_generation_config")
        if config is None:
            config = GenerationConfig.from_model_config(self.config)
            self.__dict__["_generation_config"] = config
        return config

    @generation_config.setter
    def generation_config(self, value: Any) -> None:
        """A fastbert or transformers ``GenerationConfig``, or a dict of its settings."""
        self.__dict__["_generation_config"] = GenerationConfig.coerce(value)

    def _read_generation_config(self, path: str, hub: Any) -> None:
        """``from_pretrained``: the checkpoint's ``generation_config.json``, when it has one, as transformers
        reads it (its settings over those of config.json)."""
        from .config import read_config_json
        from .hub import resolve_file

        try:
            file = resolve_file(path, "generation_config.json", hub, required=False)
        except OSError:  # not fetched: the model's config settings, as transformers when the file fails
            return
        if file is None:
            return
        data = read_config_json(file)  # an OSError naming the file when it is not a JSON object
        self.__dict__["_generation_config"] = GenerationConfig.from_dict(data, source=file)

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        """The model's files, and ``generation_config.json`` as transformers writes for a generative model
        (before ``push_to_hub`` uploads the folder)."""
        push = kwargs.pop("push_to_hub", False)
        super().save_pretrained(save_directory, *args, **kwargs)
        main = kwargs.get("is_main_process", args[0] if args else True)
        if main:  # the other processes of a distributed run write nothing
            self.generation_config.save_pretrained(save_directory)
            if push:
                from .loading import push_saved

                push_saved(save_directory, kwargs)

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.Tensor,
        past_key_values: Any = None,
        attention_mask=None,
        position_ids=None,
        next_sequence_length: int | None = None,
        cache: Any = None,
        is_first_iteration: bool | None = None,
        **kwargs,
    ) -> dict[str, Any]:
        """The forward arguments of one step: only the tokens the cache (legacy tuples or a transformers
        ``Cache``) has not seen yet; without ``position_ids``, positions from ``attention_mask`` (``cumsum - 1``,
        1 on padding, as transformers 4).

        transformers 5's arguments are taken too: ``cache`` (its name of ``past_key_values``) and
        ``next_sequence_length`` (keep the last that many tokens; transformers' generate passes 1 on a cache);
        ``is_first_iteration`` is read by transformers' multimodal models only."""
        if past_key_values is None:
            past_key_values = cache
        if position_ids is None and attention_mask is not None:
            position_ids = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
        past_length = cache_length(past_key_values)
        start = -next_sequence_length if next_sequence_length is not None else past_length
        if start:
            input_ids = input_ids[:, start:]
            if position_ids is not None:
                position_ids = position_ids[:, start:]
            token_type_ids = kwargs.get("token_type_ids")
            if token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids[:, start:]
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
            "past_key_values": past_key_values,
            **kwargs,
        }

    def _generation_settings(self, overrides: dict[str, Any], generation_config: GenerationConfig | None):
        """The call's argument, else the ``generation_config=`` passed in, else ``model.generation_config``,
        else transformers' default: transformers 5's ``_prepare_generation_config`` fills the fields a passed
        config leaves unset from the model's (its eos / pad ids, its ``max_new_tokens``). An argument passed as
        None overrides the configs too (``generation_config.update(**kwargs)``), as the setting's "none": no
        eos / pad id, no ``max_new_tokens``, no top-k filter, greedy, temperature and top-p 1."""
        bases = (
            [self.generation_config]
            if generation_config is None
            else [generation_config, self.generation_config]
        )
        settings = {}
        for name, default in _DEFAULTS.items():
            value = overrides.get(name)
            if value is None and name in overrides and name not in _NONE_IS_UNSET:
                settings[name] = None if name == "top_k" else default
                continue
            for base in bases:
                if value is None:
                    value = getattr(base, name, None)
            settings[name] = default if value is None else value
        return settings

    def _max_total_length(
        self,
        settings: dict[str, Any],
        prompt_length: int,
        call_max_length: int | None,
        generation_config: GenerationConfig | None,
    ) -> int:
        """The total length generation stops at: transformers 5's ``_prepare_generated_length`` and
        ``_validate_generated_length`` (generation/utils.py).

        ``max_new_tokens`` wins (transformers warns, through its logger, when ``max_length`` was set too); when
        no one set ``max_length`` (not the call, not ``generation_config=``, not ``model.generation_config``),
        "by default let's always generate 20 new tokens": ``prompt_length + 20``, capped at the model's
        ``max_position_embeddings``, with transformers' UserWarning recommending ``max_new_tokens``. A prompt
        as long as ``max_length`` is an error. transformers 4.57 differs in two corners: a ``max_length`` of
        exactly 20 set in a generation config also counts as the default there (5: as set), and its warning does
        not fire for the default (it compares the already-extended length with 20).
        """
        max_length_set = (
            call_max_length is not None
            or (generation_config is not None and generation_config.max_length is not None)
            or self.generation_config.max_length is not None
        )
        if settings["max_new_tokens"] is not None:
            new_tokens = _whole("max_new_tokens", settings["max_new_tokens"], 1)
            if max_length_set:
                logger.warning(
                    f"Both `max_new_tokens` (={new_tokens}) and `max_length`(={settings['max_length']}) seem to "
                    "have been set. `max_new_tokens` will take precedence. Please refer to the documentation for "
                    "more information. (https://huggingface.co/docs/transformers/main/en/main_classes/"
                    "text_generation)"
                )
            return prompt_length + new_tokens
        max_total = _whole("max_length", settings["max_length"], 1)
        if not max_length_set:  # transformers: "by default let's always generate 20 new tokens"
            max_total += prompt_length
            max_positions = getattr(self.config, "max_position_embeddings", None)
            if max_positions is not None:
                max_total = min(max_total, max_positions)
            warnings.warn(
                f"Using the model-agnostic default `max_length` (={max_total}) to control the generation length. "
                "We recommend setting `max_new_tokens` to control the maximum length of the generation.",
                UserWarning,
                stacklevel=3,
            )
        if prompt_length >= max_total:
            raise ValueError(
                f"Input length of input_ids is {prompt_length}, but `max_length` is set to {max_total}. This can "
                "lead to unexpected behavior. You should consider increasing `max_length` or, better yet, setting "
                "`max_new_tokens`."
            )
        return max_total

    def _refuse_unsupported(
        self,
        passed: dict[str, Any],
        arguments: dict[str, Any],
        generation_config: GenerationConfig | None,
        settings: dict[str, Any],
        eos: list[int] | None,
    ) -> None:
        """A ValueError naming every setting fastbert's ``generate`` does not implement that would change the
        output, wherever it was given: the call's keyword arguments win over ``generation_config=``, which wins
        over ``model.generation_config`` (transformers' precedence). Before, a keyword argument was a TypeError
        while the same setting in a generation config was a warning, and the output silently transformers'
        greedy / sampled one instead of, say, beam search."""

        def shown(value: Any) -> str:  # a model or a processor list: its type, not its whole repr
            text = repr(value)
            return text if len(text) <= 60 and "\n" not in text else f"<{type(value).__name__}>"

        asked = [f"{k}={shown(v)} (argument)" for k, v in arguments.items() if _argument_asks(k, v)]
        configs = [
            (generation_config, "generation_config="),
            (self.generation_config, "model.generation_config"),
        ]
        for name in _UNSUPPORTED_DEFAULTS:
            if name in passed:
                value, where = passed[name], "argument"
            else:
                value, where = None, None
                for config, source in configs:
                    if config is not None and config.__dict__.get(name) is not None:
                        value, where = config.__dict__[name], source
                        break
            if _changes_output(name, value, settings, eos):
                asked.append(f"{name}={shown(value)} ({where})")
        if asked:
            raise ValueError(
                f"generate got {', '.join(asked)}: fastbert's generate does greedy search and sampling "
                "(temperature, top-k, top-p) only, without beam search, assisted generation, streaming or "
                "other logits processors, so these would not be applied and the output would differ from "
                "transformers'. Leave them unset (or pass them as None / their default to override a "
                "generation config)"
            )

    def _check_positions_fit(
        self, position_ids: torch.Tensor, max_total: int, settings: dict[str, Any], max_length_passed: bool
    ) -> None:
        """Refuse, before the first forward, a length whose last tokens would need positions past the model's
        ``max_position_embeddings``: transformers 5.25 logs "friendly reminder ... exceeded the model's
        predefined maximum length" and fails partway (an index error in the position table), after the
        tokens before it were computed; fastbert failed the same way (a ValueError on ``position_ids``). The last
        new token is never fed back: ``limit - last prompt position`` new tokens fit, as in transformers."""
        limit = getattr(self.config, "max_position_embeddings", None)
        prompt_length = position_ids.shape[1]
        new_tokens = max_total - prompt_length
        if limit is None or new_tokens <= 0:
            return
        last_prompt_position = int(position_ids[:, -1].max())
        if getattr(self.config, "position_embedding_type", None) in ("relative_key", "relative_key_query"):
            # distances count the row's columns, left padding included (transformers 4; no position ids)
            last_prompt_position = prompt_length - 1
        last_fed = last_prompt_position + new_tokens - 1  # the last new token is returned, never fed back
        if last_fed < limit:
            return
        fits = max(limit - last_prompt_position, 0)
        asked = (
            f"max_new_tokens={new_tokens}"
            if settings["max_new_tokens"] is not None
            else f"max_length={max_total} ({new_tokens} new tokens)"
        )
        raise ValueError(
            f"generate was asked for {asked} after a prompt of {prompt_length} tokens, but the model has "
            f"max_position_embeddings={limit}: the new tokens fed back to it would need positions up to "
            f"{last_fed}. At most {fits} new tokens fit after this prompt; lower "
            f"max_new_tokens{'' if settings['max_new_tokens'] is not None else ' / max_length'} or shorten the prompt"
        )

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        max_new_tokens: int | None = _UNSET,
        max_length: int | None = _UNSET,
        do_sample: bool | None = _UNSET,
        temperature: float | None = _UNSET,
        top_k: int | None = _UNSET,
        top_p: float | None = _UNSET,
        eos_token_id: int | list[int] | None = _UNSET,
        pad_token_id: int | None = _UNSET,
        num_return_sequences: int | None = _UNSET,
        use_cache: bool | None = _UNSET,
        return_dict_in_generate: bool | None = _UNSET,
        output_scores: bool | None = _UNSET,
        output_logits: bool | None = _UNSET,
        token_type_ids: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor | GenerateDecoderOnlyOutput:
        """Continue each row of ``input_ids`` (B, L); returns a LongTensor (B · num_return_sequences, L + new),
        or a :class:`GenerateDecoderOnlyOutput` with ``return_dict_in_generate=True``.

        ``max_new_tokens`` (else ``max_length``, the total length; with neither set anywhere, 20 new tokens
        and transformers' warning to set ``max_new_tokens``), ``do_sample`` with
        ``temperature`` / ``top_k`` (default 50) / ``top_p``, ``eos_token_id`` (an id or a list),
        ``pad_token_id`` (filler after a row's end; defaults to the config's, else the first eos id),
        ``attention_mask`` (left padding supported), ``num_return_sequences`` (sampling), ``use_cache``.
        """
        if "inputs" in kwargs:  # transformers' name of the first argument
            if input_ids is not None:
                raise TypeError("generate() got both inputs and input_ids: give one")
            input_ids = kwargs.pop("inputs")
        # transformers' settings and arguments generate does not implement: refused below when they would change
        # the output, whether passed here or set in a generation config
        unsupported = {k: kwargs.pop(k) for k in list(kwargs) if k in _UNSUPPORTED_DEFAULTS}
        arguments = {
            k: kwargs.pop(k) for k in list(kwargs) if k in _UNSUPPORTED_ARGUMENTS or k in _NO_EFFECT_ARGUMENTS
        }
        cached = [k for k in ("past_key_values", "cache") if kwargs.pop(k, None) is not None]
        if cached:  # transformers continues from a prefilled cache (prompt reuse); None asks nothing
            raise TypeError(
                f"generate() got {cached[0]}: fastbert's generate does not continue from a cache passed in; pass "
                "the whole prompt as input_ids (the cache is built from it, and the tokens are the same)"
            )
        if kwargs:
            raise TypeError(
                f"generate() got unexpected keyword arguments {sorted(kwargs)}: fastbert's generate does "
                "greedy search and sampling (temperature, top-k, top-p), without beam search, logits "
                "processors, inputs_embeds or per-step attentions / hidden states"
            )
        if generation_config is not None:
            generation_config = GenerationConfig.coerce(generation_config)
        passed = dict(
            max_new_tokens=max_new_tokens,
            max_length=max_length,
            do_sample=do_sample,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            num_return_sequences=num_return_sequences,
            use_cache=use_cache,
            return_dict_in_generate=return_dict_in_generate,
            output_scores=output_scores,
            output_logits=output_logits,
        )
        s = self._generation_settings({k: v for k, v in passed.items() if v is not _UNSET}, generation_config)
        if max_length is _UNSET:
            max_length = None
        if input_ids is None:
            raise ValueError(
                "generate needs input_ids (batch, prompt_length): BERT has no start token to begin from"
            )
        if (
            not torch.is_tensor(input_ids)
            or input_ids.dim() != 2
            or input_ids.dtype not in (torch.long, torch.int)
        ):
            raise ValueError("input_ids must be a (batch, prompt_length) tensor of integer token ids")
        if input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
            raise ValueError(f"input_ids has shape {tuple(input_ids.shape)}: give at least one token per row")
        if attention_mask is not None and tuple(attention_mask.shape) != tuple(input_ids.shape):
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)}, expected {tuple(input_ids.shape)} like input_ids"
            )
        do_sample = bool(s["do_sample"])
        temperature, top_k, top_p = s["temperature"], s["top_k"], s["top_p"]
        if do_sample:
            if (
                not isinstance(temperature, (int, float))
                or isinstance(temperature, bool)
                or not temperature > 0
            ):
                raise ValueError(f"temperature must be a number above 0, got {temperature!r}")
            if top_k is not None and top_k != 0:
                top_k = _whole("top_k", top_k, 1)
            if not isinstance(top_p, (int, float)) or isinstance(top_p, bool) or not 0 <= top_p <= 1:
                raise ValueError(f"top_p must be a number in [0, 1], got {top_p!r}")
        n_return = _whole("num_return_sequences", s["num_return_sequences"], 1)
        if n_return > 1 and not do_sample:
            raise ValueError(
                f"greedy generation (do_sample=False) gives one sequence per row: num_return_sequences={n_return} "
                "needs do_sample=True"
            )
        eos = _as_list(s["eos_token_id"])
        pad = _token_id("pad_token_id", s["pad_token_id"])
        batched_without_mask = attention_mask is None and input_ids.shape[0] > 1
        if pad is None and eos is not None:
            if (
                batched_without_mask
            ):  # transformers 5.25's _prepare_special_tokens warnings, through its logger
                logger.warning(
                    "The attention mask and the pad token id were not set, with a batched input. As a consequence, "
                    "you may observe unexpected behavior. Please pass your input's `attention_mask` to obtain "
                    "reliable results."
                )
            pad = eos[0]
        if eos is not None and pad in eos and batched_without_mask:
            logger.warning(
                "The attention mask is not set with a batched input, and cannot be inferred from input because pad "
                "token is same as eos token. As a consequence, you may observe unexpected behavior. Please pass "
                "your input's `attention_mask` to obtain reliable results."
            )
        if eos is not None and any(e < 0 for e in eos):
            logger.warning(
                f"`eos_token_id` should consist of positive integers, but is {torch.tensor(eos)}. Your generation "
                "will not stop until the maximum length is reached. Depending on other flags, it may even crash."
            )
        self._refuse_unsupported(unsupported, arguments, generation_config, s, eos)
        from .models.layers import table_shape

        rows = table_shape(self.get_input_embeddings())[0]  # PEFT's trainable tokens wrap the Embedding
        if eos is not None and not 0 <= pad < rows and any(0 <= e < rows for e in eos):
            raise ValueError(
                f"pad_token_id={pad} is outside the vocabulary [0, {rows}): generate writes it after a row's "
                "eos_token_id and feeds it back to the model"
            )
        prompt_length = input_ids.shape[1]
        max_total = self._max_total_length(s, prompt_length, max_length, generation_config)

        device = self.device
        input_ids = input_ids.to(device=device, dtype=torch.long)
        if attention_mask is None:  # transformers: inferred from pad tokens when they cannot be eos
            attention_mask = torch.ones_like(input_ids)
            if pad is not None and (eos is None or pad not in eos) and bool((input_ids == pad).any()):
                attention_mask = input_ids.ne(pad).long()
        attention_mask = attention_mask.to(device)
        right_padded = bool((attention_mask[:, -1] == 0).any())
        if right_padded:
            # transformers' warning (it looks for pad_token_id at the end of a row); the token a right-padded
            # row continues from is a padded position, whose logits the first step computes as transformers
            logger.warning(
                "A decoder-only architecture is being used, but right-padding was detected! For correct "
                "generation results, please set `padding_side='left'` when initializing the tokenizer."
            )
        if n_return > 1:
            input_ids = input_ids.repeat_interleave(n_return, dim=0)
            attention_mask = attention_mask.repeat_interleave(n_return, dim=0)
            if token_type_ids is not None:
                token_type_ids = token_type_ids.repeat_interleave(n_return, dim=0)
            # one row of encoder states for all rows (the forward broadcasts it) stays one row
            if encoder_hidden_states is not None and encoder_hidden_states.shape[0] != 1:
                encoder_hidden_states = encoder_hidden_states.repeat_interleave(n_return, dim=0)
                if encoder_attention_mask is not None:
                    encoder_attention_mask = encoder_attention_mask.repeat_interleave(n_return, dim=0)
        position_ids = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
        self._check_positions_fit(position_ids, max_total, s, max_length is not None)
        extra = {}
        if encoder_hidden_states is not None:
            extra["encoder_hidden_states"] = encoder_hidden_states
            extra["encoder_attention_mask"] = encoder_attention_mask

        batch = input_ids.shape[0]
        unfinished = torch.ones(batch, dtype=torch.long, device=device)
        eos_tensor = torch.tensor(eos, device=device) if eos is not None else None
        scores: tuple = ()
        raw_logits: tuple = ()
        cache = None
        with_cache = bool(s["use_cache"])
        while True:
            step = self.prepare_inputs_for_generation(
                input_ids,
                past_key_values=cache,
                attention_mask=attention_mask,
                position_ids=position_ids,
                **({"token_type_ids": token_type_ids} if token_type_ids is not None else {}),
            )
            # the first step of a right-padded prompt reads a padded position's logits: without the cache the
            # forward packs and leaves that position's hidden state zero (transformers computes it), so that
            # step runs padded as with the cache, and the tokens do not depend on use_cache
            keeps = with_cache or right_padded
            right_padded = False
            out = self(**step, **extra, use_cache=keeps, logits_to_keep=1, return_dict=True)
            cache = out.past_key_values if with_cache else None
            logits = out.logits[:, -1].to(dtype=torch.float32, copy=True)
            next_scores = process_logits(logits, temperature, top_k, top_p) if do_sample else logits
            if s["return_dict_in_generate"]:
                if s["output_scores"]:
                    scores += (next_scores,)
                if s["output_logits"]:
                    raw_logits += (logits,)
            if do_sample:
                next_tokens = torch.multinomial(F.softmax(next_scores, dim=-1), num_samples=1).squeeze(1)
            else:
                next_tokens = torch.argmax(next_scores, dim=-1)
            if eos_tensor is not None:
                next_tokens = next_tokens * unfinished + pad * (1 - unfinished)
            input_ids = torch.cat([input_ids, next_tokens[:, None]], dim=-1)
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones((batch, 1))], dim=-1)
            position_ids = torch.cat([position_ids, position_ids[:, -1:] + 1], dim=-1)
            if token_type_ids is not None:
                token_type_ids = torch.cat([token_type_ids, token_type_ids[:, -1:]], dim=-1)
            if eos_tensor is not None:
                unfinished = unfinished & ~torch.isin(next_tokens, eos_tensor)
            if input_ids.shape[1] >= max_total or int(unfinished.max()) == 0:
                break
        if not s["return_dict_in_generate"]:
            return input_ids
        return GenerateDecoderOnlyOutput(
            sequences=input_ids,
            scores=scores if s["output_scores"] else None,
            logits=raw_logits if s["output_logits"] else None,
            past_key_values=cache,
        )
