"""transformers' adapter API (``PeftAdapterMixin``) for the fastbert model classes, on top of ``peft``.

``load_adapter``, ``add_adapter``, ``set_adapter``, ``disable_adapters``, ``enable_adapters``,
``active_adapters``, ``active_adapter`` (transformers 4's, deprecated), ``get_adapter_state_dict`` and
``delete_adapter`` follow transformers' methods of the same name: same arguments, same errors, the adapters
injected into the model itself (``peft.inject_adapter_in_model``: no ``PeftModel`` wrapper), the model's
``peft_config`` dict and ``_hf_peft_config_loaded`` flag. ``peft`` is optional: fastbert imports and runs
without it, and these methods then raise an ``ImportError`` saying ``pip install peft``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import re
import warnings
from typing import Any

import torch

logger = logging.getLogger(__name__)

#: the files an adapter is saved in (PEFT's and transformers' names)
ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
ADAPTER_BIN_NAME = "adapter_model.bin"
#: the prefix a PeftModel's state dict has (``save_peft_format``)
PEFT_PREFIX = "base_model.model."


def require_peft(what: str) -> Any:
    """The ``peft`` module, or an ImportError naming ``what`` needs it and how to install it."""
    try:
        import peft
    except ImportError as e:
        raise ImportError(f"{what} needs the peft package, which is not installed: pip install peft") from e
    return peft


def find_adapter(path: str, hub: Any = None) -> tuple[str | None, str]:
    """(the adapter to load, the folder or hub id of the base model) for ``from_pretrained(path)``, as
    transformers: a folder holding ``adapter_config.json`` and no ``config.json`` loads the base model that
    the adapter's config names (``base_model_name_or_path``), then the adapter; one holding both loads its
    own model and the adapter (when peft is installed, as transformers); else (None, ``path``). A hub id is
    asked for ``adapter_config.json`` only when it has no ``config.json``."""
    from .hub import HubOptions, folder_looked_in, looks_local, resolve_file

    hub = hub or HubOptions()
    if os.path.isdir(path):
        folder = folder_looked_in(path, hub)
        config_file = os.path.join(folder, ADAPTER_CONFIG_NAME)
        if not os.path.isfile(config_file):
            return None, path
        if os.path.isfile(os.path.join(folder, "config.json")):
            try:
                import peft  # noqa: F401
            except ImportError:
                return None, path  # transformers loads the model alone without peft
            return path, path
    elif looks_local(path):
        return None, path
    else:
        if resolve_file(path, "config.json", hub, required=False) is not None:
            return None, path
        config_file = resolve_file(path, ADAPTER_CONFIG_NAME, hub, required=False)
        if config_file is None:
            return None, path
    require_peft(f"from_pretrained({path!r}), an adapter (adapter_config.json),")
    with open(config_file, encoding="utf-8") as f:
        base = json.load(f).get("base_model_name_or_path")
    if not base:
        raise ValueError(
            f"{config_file} names no base model (base_model_name_or_path is {base!r}): load the base model with "
            f"from_pretrained and then the adapter with model.load_adapter({path!r})"
        )
    return path, str(base)


def _no_adapter() -> ValueError:
    return ValueError("No adapter loaded. Please load an adapter first.")


def _none_active(what: str, hint: str) -> ValueError:
    """No adapter is active (PEFT leaves none after the active one was deleted and the others are on other
    layers): ``active_adapters()[0]`` raised IndexError."""
    return ValueError(f"{what}: no adapter is active (the active one was deleted): {hint}")


def _check_injectable(config: Any) -> None:
    """A clear ValueError for a PEFT method that is not injected into modules (prompt learning: prefix tuning,
    prompt tuning, P-tuning; adaption prompt), before anything changes."""
    if getattr(config, "is_prompt_learning", False) or getattr(config, "is_adaption_prompt", False):
        raise ValueError(
            f"{type(config).__name__} ({config.peft_type}) is a prompt-learning method: it adds virtual tokens "
            "to the inputs, not layers to the model, so it cannot be added to or loaded into the model itself "
            "(transformers' add_adapter / load_adapter refuse it too): wrap the model with "
            "peft.get_peft_model(model, config) or peft.PeftModel.from_pretrained(model, path) instead"
        )


class AdapterAPI:
    """transformers' ``PeftAdapterMixin`` methods (see the module docstring); mixed into the base class."""

    #: True once an adapter was added or loaded (transformers' private flag, read by its Trainer and by PEFT)
    _hf_peft_config_loaded = False

    def __getattr__(self, name: str) -> Any:
        """``transformer_backbone_name`` (read by PEFT's prefix tuning alone) is refused with the reason: PEFT
        passes the prefix as ``past_key_values``, to the model itself when its ``forward`` names that argument
        (``BertModel``, ``BertLMHeadModel``: it works, as on transformers' model), else to the transformers
        ``PreTrainedModel`` it finds inside the model, whose attribute name it keeps under this name. fastbert's
        models are none: PEFT then asked the model for it, and the AttributeError named only the attribute.
        (Submodules are instance attributes, ``_Module``: this runs for missing attributes only.)"""
        if name == "transformer_backbone_name":
            raise AttributeError(
                f"PEFT prefix tuning cannot run on fastbert's {type(self).__name__}: PEFT passes the prefix as "
                "past_key_values, which this class's forward does not take, so it looks for a transformers "
                "PreTrainedModel inside the model to pass them to, and fastbert's models are not transformers' "
                "(transformers 5's BERT heads fail as well: 'Model does not support past key values'). Prefix-tune "
                "the encoder (fastbert.BertModel / AutoModel, task_type='FEATURE_EXTRACTION') or BertLMHeadModel "
                "(task_type='CAUSAL_LM'), or use LoRA, prompt tuning or P-tuning on this class"
            )
        return super().__getattr__(name)

    # ------------------------------------------------------------------------------------------- loading
    def load_adapter(
        self,
        peft_model_id: str | os.PathLike | None = None,
        adapter_name: str | None = None,
        revision: str | None = None,
        token: str | bool | None = None,
        device_map: Any = None,
        max_memory: Any = None,
        offload_folder: Any = None,
        offload_index: Any = None,
        peft_config: Any = None,
        adapter_state_dict: dict[str, torch.Tensor] | None = None,
        low_cpu_mem_usage: bool = False,
        is_trainable: bool = False,
        hotswap: bool | str = "auto",
        local_files_only: bool = False,
        adapter_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Load an adapter (a folder or hub id holding ``adapter_config.json`` and ``adapter_model.safetensors``
        or ``.bin``, or ``peft_config`` with ``adapter_state_dict``) into the model, as transformers.

        ``adapter_name`` defaults to ``"default"`` (a name already loaded is refused unless ``hotswap=True``,
        which replaces that LoRA adapter's weights in place; ``"auto"``, the default, hotswaps it after
        :meth:`enable_peft_hotswap`). ``is_trainable=False`` freezes the adapter and
        puts the model in eval mode. ``revision``, ``token``, ``local_files_only``, ``cache_dir`` and
        ``subfolder`` (or ``adapter_kwargs``) say where to find the files. transformers 4's ``device_map``,
        ``max_memory``, ``offload_folder`` and ``offload_index`` re-dispatch an offloaded model: fastbert's
        models are not offloaded, they change nothing (the adapter goes on the model's device)."""
        del device_map, max_memory, offload_folder, offload_index  # no offloaded models: nothing to dispatch
        peft = require_peft(f"{type(self).__name__}.load_adapter")
        from peft import PeftConfig
        from peft.functional import inject_adapter_in_model, set_peft_model_state_dict
        from peft.utils import load_peft_weights

        hub = {k: kwargs.pop(k) for k in ("cache_dir", "subfolder", "force_download") if k in kwargs}
        if kwargs:
            raise TypeError(f"load_adapter() got unexpected keyword arguments {sorted(kwargs)}")
        hub.update(adapter_kwargs or {})
        if revision is not None:
            hub.setdefault("revision", revision)
        if token is not None:
            hub.setdefault("token", token)
        if local_files_only:
            hub.setdefault("local_files_only", True)
        loaded = self._hf_peft_config_loaded
        if hotswap not in (True, False, "auto"):
            raise ValueError(f"hotswap must be True, False or 'auto', got {hotswap!r}")
        adapter_name = adapter_name if adapter_name is not None else "default"
        if hotswap == "auto":
            # as transformers: after enable_peft_hotswap, a name already loaded is hotswapped
            hotswap = bool(
                self.__dict__.get("_hotswap_enabled") and loaded and adapter_name in self.peft_config
            )
        if hotswap and (not loaded or adapter_name not in self.peft_config):
            raise ValueError(
                "To hotswap an adapter, there must already be an existing adapter with the same adapter name."
            )
        if hotswap and any(c.peft_type != peft.PeftType.LORA for c in self.peft_config.values()):
            raise ValueError("Hotswapping is currently only supported for LoRA, please set `hotswap=False`.")
        if loaded and not hotswap and adapter_name in self.peft_config:
            raise ValueError(f"Adapter with name {adapter_name} already exists. Please use a different name.")
        if peft_model_id is None and adapter_state_dict is None:
            raise ValueError(
                "You should either pass a `peft_model_id` or a `peft_config` and `adapter_state_dict` to load an "
                "adapter."
            )

        # everything is read (and checked) before the model changes: a missing or bad file leaves it as it was
        if peft_config is None:
            if peft_model_id is None:
                raise ValueError("adapter_state_dict needs its peft_config (the adapter's PeftConfig)")
            folder = os.path.join(str(peft_model_id), hub.get("subfolder") or "")
            if os.path.isdir(str(peft_model_id)) and not os.path.isfile(
                os.path.join(folder, ADAPTER_CONFIG_NAME)
            ):
                raise ValueError(
                    f"adapter model file not found in {peft_model_id}: {folder} has no {ADAPTER_CONFIG_NAME}. "
                    "Make sure you are passing the correct path to the adapter model."
                )
            peft_config = PeftConfig.from_pretrained(str(peft_model_id), **hub)
        elif isinstance(peft_config, dict):
            peft_config = PeftConfig.from_peft_type(**peft_config)
        elif isinstance(peft_config, PeftConfig):
            peft_config = copy.deepcopy(
                peft_config
            )  # PEFT fills it in (target modules): the caller's is kept
        else:
            raise TypeError(f"peft_config should be a PeftConfig or a dict, got {type(peft_config).__name__}")
        _check_injectable(peft_config)
        if hasattr(peft_config, "inference_mode"):
            peft_config.inference_mode = not is_trainable
        if adapter_state_dict is None:
            adapter_state_dict = load_peft_weights(str(peft_model_id), device=str(self.device), **hub)
        # a PeftModel's state dict (what PeftModel.save_pretrained writes) has the PeftModel's prefix
        state = {
            (k[len(PEFT_PREFIX) :] if k.startswith(PEFT_PREFIX) else k): v
            for k, v in adapter_state_dict.items()
        }

        if hotswap:
            _hotswap(self, state, adapter_name, peft_config)
            # the model holds the new adapter: its config (lora_alpha, r) is what save_pretrained writes
            self.peft_config[adapter_name] = peft_config
            if getattr(peft_config, "inference_mode", False):
                # is_trainable=False: frozen and in eval mode, as transformers' hotswap leaves it
                for module in self._tuner_layers():
                    module.requires_grad_(False)
                self.eval()
            return
        inject_adapter_in_model(peft_config, self, adapter_name, low_cpu_mem_usage=low_cpu_mem_usage)
        self._hf_peft_config_loaded = True
        try:
            result = set_peft_model_state_dict(self, state, adapter_name, low_cpu_mem_usage=low_cpu_mem_usage)
        except Exception:
            # weights of other shapes (an adapter of another model size): the injected adapter goes again, so
            # that the model has no half-loaded adapter under this name (a retry said "already exists")
            self.delete_adapter(adapter_name)
            raise
        origin = peft_model_id if peft_model_id is not None else "state_dict"
        unexpected = getattr(result, "unexpected_keys", None) or []
        missing = [k for k in getattr(result, "missing_keys", None) or [] if adapter_name in k.split(".")]
        if unexpected:
            logger.warning(
                "Loading adapter weights from %s led to unexpected keys not found in the model: %s",
                origin,
                ", ".join(unexpected),
            )
        if missing:
            logger.warning(
                "Loading adapter weights from %s led to missing keys in the model: %s",
                origin,
                ", ".join(missing),
            )
        if len(self.peft_config) > 1:
            # PEFT makes the new adapter active in the layers it injects into, but turns the modules saved whole
            # (modules_to_save: a classifier head) off, each adapter's: the model ran the new adapter's layers
            # with the model's own head. Every module as the layers are
            from peft.functional import set_adapter

            set_adapter(
                self, self.active_adapters(), inference_mode=getattr(peft_config, "inference_mode", False)
            )
        if getattr(peft_config, "inference_mode", False):
            self.eval()

    def enable_peft_hotswap(self, target_rank: int = 128, check_compiled: str = "error") -> None:
        """transformers 5's switch for ``load_adapter(..., hotswap="auto")``: from now on, loading an adapter
        under a name already loaded replaces that LoRA adapter's weights in place (``hotswap=False`` still
        refuses the name). Call it before the first adapter is loaded: else ``check_compiled="error"``
        raises, ``"warn"`` logs a warning, ``"ignore"`` says nothing. ``target_rank`` is recorded, as
        transformers 5 records it; another rank hotswaps without it (PEFT's swap resizes the LoRA weights)."""
        if check_compiled not in ("error", "warn", "ignore"):
            raise ValueError(
                f"check_compiles should be one of 'error', 'warn', or 'ignore', got '{check_compiled}' instead."
            )
        if self.__dict__.get("_hf_peft_config_loaded"):
            if check_compiled == "error":
                raise RuntimeError("Call `enable_peft_hotswap` before loading the first adapter.")
            if check_compiled == "warn":
                logger.warning(
                    "It is recommended to call `enable_peft_hotswap` before loading the first adapter to avoid "
                    "recompilation."
                )
        self._hotswap_enabled = True
        self._prepare_peft_hotswap_kwargs = {"target_rank": target_rank, "check_compiled": check_compiled}

    def add_adapter(self, adapter_config: Any, adapter_name: str | None = None) -> None:
        """Add a fresh adapter (a ``peft.PeftConfig`` of an injectable method: LoRA, IA³ ...) under
        ``adapter_name`` (default ``"default"``) and make it the active one, as transformers."""
        require_peft(f"{type(self).__name__}.add_adapter")
        from peft import PeftConfig
        from peft.functional import inject_adapter_in_model

        adapter_name = adapter_name or "default"
        if not isinstance(adapter_config, PeftConfig):
            raise TypeError(
                f"adapter_config should be an instance of PeftConfig. Got {type(adapter_config)} instead."
            )
        if self._hf_peft_config_loaded and adapter_name in self.peft_config:
            raise ValueError(f"Adapter with name {adapter_name} already exists. Please use a different name.")
        _check_injectable(adapter_config)
        # the folder the model was loaded from, as PEFT and transformers record it
        adapter_config.base_model_name_or_path = self.__dict__.get("name_or_path", None)
        inject_adapter_in_model(adapter_config, self, adapter_name)
        self._hf_peft_config_loaded = True
        self.set_adapter(adapter_name)

    # ------------------------------------------------------------------------------------------ choosing
    def _tuner_layers(self, with_modules_to_save: bool = False) -> list:
        from peft.tuners.tuners_utils import BaseTunerLayer
        from peft.utils import ModulesToSaveWrapper

        kinds = (BaseTunerLayer, ModulesToSaveWrapper) if with_modules_to_save else (BaseTunerLayer,)
        return [m for m in self.modules() if isinstance(m, kinds)]

    def _check_loaded(self, what: str) -> None:
        require_peft(f"{type(self).__name__}.{what}")
        if not self._hf_peft_config_loaded:
            raise _no_adapter()

    def set_adapter(self, adapter_name: list[str] | str) -> None:
        """Make ``adapter_name`` (or a list of names) the active adapter(s); the others are not applied."""
        self._check_loaded("set_adapter")
        names = adapter_name if isinstance(adapter_name, list) else [adapter_name]
        missing = [n for n in names if n not in self.peft_config]
        if isinstance(adapter_name, list) and missing:
            raise ValueError(
                f"Following adapter(s) could not be found: {', '.join(map(str, missing))}. Make sure you are passing "
                f"the correct adapter name(s). current loaded adapters are: {list(self.peft_config)}"
            )
        if missing:
            raise ValueError(
                f"Adapter with name {adapter_name} not found. Please pass the correct adapter name among "
                f"{list(self.peft_config)}"
            )
        layers = self._tuner_layers(with_modules_to_save=True)
        if not layers:
            raise ValueError(
                "Did not succeeded in setting the adapter. Please make sure you are using a model that supports "
                "adapters."
            )
        from peft.functional import set_adapter

        # PEFT's: a module saved whole (modules_to_save: a classifier head) that one adapter has and another
        # has not runs its own weights for that other one (calling each module's set_adapter raised "Adapter
        # ... not found" there, and add_adapter failed with its layers injected)
        set_adapter(self, adapter_name)

    def disable_adapters(self) -> None:
        """Run the base model alone (the adapters stay loaded)."""
        self._check_loaded("disable_adapters")
        for module in self._tuner_layers(with_modules_to_save=True):
            module.enable_adapters(enabled=False)

    def enable_adapters(self) -> None:
        """Apply the active adapters again after :meth:`disable_adapters`."""
        self._check_loaded("enable_adapters")
        for module in self._tuner_layers(with_modules_to_save=True):
            module.enable_adapters(enabled=True)

    def active_adapters(self) -> list[str]:
        """The names of the active adapters."""
        self._check_loaded("active_adapters")
        for module in self._tuner_layers():
            active = module.active_adapter
            return [active] if isinstance(active, str) else list(active)
        raise _no_adapter()  # every adapter layer was removed by hand

    def active_adapter(self) -> str:
        """transformers 4's deprecated form of :meth:`active_adapters`: the first active adapter."""
        warnings.warn(
            "The `active_adapter` method is deprecated and will be removed in a future version.",
            FutureWarning,
            stacklevel=2,
        )
        return self.active_adapters()[0]

    def get_adapter_state_dict(
        self, adapter_name: str | None = None, state_dict: dict[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """The weights of one adapter (default: the first active one), by the names PEFT saves them under
        (without the adapter's name: ``...query.lora_A.weight``)."""
        self._check_loaded("get_adapter_state_dict")
        from peft.functional import get_peft_model_state_dict

        if adapter_name is None:
            active = self.active_adapters()
            if not active:
                raise _none_active(
                    "get_adapter_state_dict()", "pass adapter_name, or call model.set_adapter(name) first"
                )
            adapter_name = active[0]
        elif adapter_name not in self.peft_config:
            raise ValueError(f"Adapter with name {adapter_name} not found among {list(self.peft_config)}")
        return get_peft_model_state_dict(self, state_dict=state_dict, adapter_name=adapter_name)

    def delete_adapter(self, adapter_names: list[str] | str) -> None:
        """Remove adapter(s) from the model; once none is left the model has no adapter loaded."""
        self._check_loaded("delete_adapter")
        from peft.functional import delete_adapter

        if isinstance(adapter_names, str):
            adapter_names = [adapter_names]
        missing = [n for n in adapter_names if n not in self.peft_config]
        if missing:
            raise ValueError(
                f"The following adapter(s) are not present and cannot be deleted: {', '.join(map(str, missing))}"
            )
        deleting_active = bool(set(adapter_names) & set(self.active_adapters()))
        for name in adapter_names:
            prefix = f"{self.peft_config[name].peft_type.value.lower()}_"
            delete_adapter(self, adapter_name=name, prefix=prefix)
            self.peft_config.pop(name, None)
        if not self.peft_config:
            del self.peft_config
            self._hf_peft_config_loaded = False
            return
        # PEFT makes the remaining adapter active in its layers (trainable, as set_adapter does), and in a module
        # saved whole (modules_to_save: a head) only when the deleted adapter had one there: a head the deleted
        # adapter lacked stayed off, and the model ran the remaining adapter with the model's own head
        from peft.functional import set_adapter

        active = self.active_adapters()
        if deleting_active and active:  # else PEFT left none active (the remaining ones are on other layers)
            set_adapter(self, active)


def _hotswap(model: Any, state: dict[str, torch.Tensor], adapter_name: str, config: Any) -> None:
    """Replace the weights of the loaded LoRA adapter ``adapter_name`` by ``state`` (its saved names) in place,
    with its scaling: PEFT's ``hotswap_adapter_from_state_dict`` for the LoRA linears; a LoRA on an embedding
    (``lora_embedding_A`` / ``_B``, which PEFT's function names wrongly: KeyError, then AttributeError) is
    swapped here, same rank only; the modules the adapter saves whole (``modules_to_save``: a classifier head)
    and trainable tokens are loaded into the adapter's copy, as transformers' ``load_adapter(hotswap=True)``
    loads them. Everything is checked before the first weight changes."""
    from peft.utils.hotswap import check_hotswap_configs_compatible, hotswap_adapter_from_state_dict
    from peft.utils.other import AuxiliaryTrainingWrapper, get_pattern_key

    check_hotswap_configs_compatible(model.peft_config[adapter_name], config)
    params = model.state_dict(keep_vars=True)
    # modules saved whole (modules_to_save: a classifier head) and trainable tokens: their saved names and the
    # adapter's copy in the model, as transformers' load_adapter maps them
    aux = {}
    for name, module in model.named_modules():
        if isinstance(module, AuxiliaryTrainingWrapper):
            prefix = f"{name}." if name else ""
            for src, dst in module.adapter_state_dict_load_map(adapter_name).items():
                aux[prefix + src] = prefix + dst
    linears, embeddings, copies, unknown = {}, {}, {}, []
    for key, value in state.items():
        if key in aux:
            copies[aux[key]] = value
        elif re.search(r"\.lora_embedding_[AB]$", key):  # a ParameterDict entry: ...lora_embedding_A.<name>
            embeddings[f"{key}.{adapter_name}"] = value
        elif ".lora_" in key:
            # the model's names of LoRA weights hold the adapter's name: ...query.lora_A.<name>.weight
            linears[re.sub(r"(\.lora_\w+)\.(weight|bias)$", rf"\1.{adapter_name}.\2", key)] = value
        else:
            unknown.append(key)
    if unknown:  # PEFT's function raised KeyError on them
        raise ValueError(
            f"Hot swapping the adapter did not succeed: the new adapter has weights that the loaded adapter "
            f"{adapter_name!r} has no place for: {', '.join(sorted(unknown))} (hotswapping needs the same target "
            "modules and modules_to_save; load it under another adapter_name instead)"
        )
    for key, value in copies.items():
        if params[key].shape != value.shape:
            raise ValueError(
                f"Hot swapping the adapter did not succeed: {key} is {tuple(value.shape)} in the new adapter and "
                f"{tuple(params[key].shape)} in the loaded one"
            )
    kept = sorted(set(aux) - set(state))
    for key, value in embeddings.items():
        old = params.get(key)
        if old is None or old.shape != value.shape:
            have = None if old is None else tuple(old.shape)
            raise ValueError(
                f"Hot swapping the adapter did not succeed: {key} is {tuple(value.shape)} in the new adapter and "
                f"{have} in the loaded one (a LoRA on an embedding is hotswapped with the same target modules "
                "and rank only)"
            )
    hotswap_adapter_from_state_dict(model, linears, adapter_name=adapter_name, config=config)
    with torch.no_grad():  # PEFT zeroed them (missing from its state dict): the new values
        for key, value in {**embeddings, **copies}.items():
            params[key].copy_(value)
    if kept:
        logger.warning(
            "The new adapter has no weights for %s: the loaded adapter's are kept (hotswap)", ", ".join(kept)
        )
    for module_name in {k.rsplit(".", 2)[0] for k in embeddings}:
        rank = config.rank_pattern.get(get_pattern_key(config.rank_pattern.keys(), module_name), config.r)
        alpha = config.alpha_pattern.get(
            get_pattern_key(config.alpha_pattern.keys(), module_name), config.lora_alpha
        )
        scaling = alpha / math.sqrt(rank) if config.use_rslora else alpha / rank
        scalings = model.get_submodule(module_name).scaling
        if isinstance(scalings[adapter_name], torch.Tensor):
            scalings[adapter_name].fill_(scaling)
        else:
            scalings[adapter_name] = scaling


def save_adapter(
    model: Any,
    folder: str | os.PathLike,
    state_dict: dict[str, torch.Tensor] | None,
    safe_serialization: bool,
    save_peft_format: bool,
) -> None:
    """``save_pretrained`` of a model with adapters, as transformers: the active adapter's weights
    (``adapter_model.safetensors``, or ``adapter_model.bin``) and its ``adapter_config.json``, each file written
    whole or not at all (the weights first: a folder with the new config has the new weights)."""
    from .output_files import open_output, output_name, write_files_into

    active = model.active_adapters()
    if not active:
        raise _none_active("save_pretrained", "call model.set_adapter(name) to choose the adapter to save")
    if len(active) > 1:
        raise ValueError(
            "Multiple active adapters detected, saving multiple active adapters is not supported yet. You can save "
            "adapters separately one by one by iteratively calling `model.set_adapter(adapter_name)` then "
            "`model.save_pretrained(...)`"
        )
    state = model.get_adapter_state_dict(adapter_name=active[0], state_dict=state_dict)
    prefix = PEFT_PREFIX if save_peft_format else ""
    # each tensor its own storage (tied or fused views are not written as shared memory)
    state = {prefix + k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    if safe_serialization:
        from safetensors.torch import save_file

        with output_name(os.path.join(folder, ADAPTER_WEIGHTS_NAME)) as path:
            save_file(state, path, metadata={"format": "pt"})
    else:
        with open_output(os.path.join(folder, ADAPTER_BIN_NAME), "wb") as f:
            torch.save(state, f)
    config = model.peft_config[active[0]]

    def write_config(tmp: str) -> list[str]:
        config.save_pretrained(tmp)
        return [os.path.join(tmp, ADAPTER_CONFIG_NAME)]

    write_files_into(folder, write_config)
