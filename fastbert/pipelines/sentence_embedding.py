"""``sentence-embedding``: one pooled vector per input, as a sentence-transformers folder pools it."""

from __future__ import annotations

from typing import Any

import torch

from .feature_extraction import FeatureExtractionPipeline

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


def pooling_modes_from_config(cfg: dict[str, Any] | None) -> tuple[str, ...]:
    """Pooling modes of a sentence-transformers ``1_Pooling/config.json`` (old boolean keys or new)."""
    if not cfg:
        return ("mean",)
    mode = cfg.get("pooling_mode")
    if mode is not None:
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    else:
        modes = tuple(m for k, m in _LEGACY_POOLING_KEYS.items() if cfg.get(k, False)) or ("mean",)
    return modes


def check_pooling(pooling: Any) -> tuple[str, ...]:
    """Pooling modes from a name, a list of names or None (mean); a ValueError for others."""
    modes = (pooling,) if isinstance(pooling, str) else tuple(pooling or ("mean",))
    for m in modes:
        if m not in POOLING_MODES:
            raise ValueError(f"unknown pooling mode {m!r}: use one of {', '.join(POOLING_MODES)}")
    return modes


def pool(
    hidden: torch.Tensor,
    mask: torch.Tensor,
    lengths: list[int],
    modes: tuple[str, ...],
    skip: list[int] | None = None,
) -> torch.Tensor:
    """Sentence vectors (B, hidden × len(modes)) of fp32 hidden states (B, L, hidden) and the mask (B, L);
    or of packed hidden states (T, hidden), each sequence's ``lengths`` real tokens one after the other
    (``fastbert.core.padding.packed_outputs``), without building the padded batch.

    ``skip``: per sequence, its first tokens left out of the pooling (a Pooling with ``include_prompt``
    false leaves out the prompt's tokens, the first special token included, as sentence-transformers:
    the mean, max and weighted mean read the tokens after them, ``cls`` the first token after them)."""
    if skip is not None and not any(skip):
        skip = None
    if hidden.dim() == 2:
        return _pool_packed(hidden, lengths, modes, skip)
    first = None
    # each row's last attended position, as sentence-transformers' lasttoken reads it: a row's length counts
    # the padding a tokenizer kwarg asked for (padding="max_length"), whose last position is a [PAD]
    last = mask.shape[1] - 1 - mask.flip(1).to(torch.int).argmax(dim=1)
    if skip is not None:
        positions = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)
        skip_t = torch.tensor(skip, device=mask.device)
        mask = mask * (positions >= skip_t.unsqueeze(1))
        lengths_t = torch.tensor(lengths, device=mask.device)
        first = torch.where(lengths_t > skip_t, skip_t, 0)
    mask = mask.to(hidden.dtype).unsqueeze(-1)  # (B, L, 1)
    vectors = []
    for mode in modes:
        if mode == "cls":
            if first is None:
                vectors.append(hidden[:, 0])
            else:
                vectors.append(hidden[torch.arange(len(lengths), device=hidden.device), first])
        elif mode == "max":
            vectors.append(hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values)
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            total = (hidden * mask).sum(dim=1)
            count = mask.sum(dim=1).clamp(min=1e-9)
            vectors.append(total / (count if mode == "mean" else count.sqrt()))
        elif mode == "weightedmean":
            positions = torch.arange(1, hidden.shape[1] + 1, device=hidden.device, dtype=hidden.dtype)
            w = positions.view(1, -1, 1) * mask
            vectors.append((hidden * w).sum(dim=1) / w.sum(dim=1).clamp(min=1e-9))
        elif mode == "lasttoken":
            vectors.append(hidden[torch.arange(len(lengths), device=hidden.device), last.to(hidden.device)])
    return torch.cat(vectors, dim=-1)


def _pool_packed(
    tokens: torch.Tensor, lengths: list[int], modes: tuple[str, ...], skip: list[int] | None = None
) -> torch.Tensor:
    """:func:`pool` of packed fp32 hidden states (T, hidden), ``lengths`` (each at least 1) per sequence."""
    device, width = tokens.device, tokens.shape[-1]
    counts = torch.tensor(lengths, device=device)
    rows = torch.repeat_interleave(torch.arange(len(lengths), device=device), counts)  # (T,) its sequence
    starts = torch.cumsum(counts, 0) - counts
    lasts = starts + counts - 1
    firsts = starts
    positions = torch.arange(tokens.shape[0], device=device) - starts[rows]  # (T,) in its sequence
    all_tokens = tokens
    if skip is not None:  # only the tokens after each sequence's first ``skip``
        skip_t = torch.tensor(skip, device=device)
        firsts = starts + torch.where(counts > skip_t, skip_t, 0)
        keep = positions >= skip_t[rows]
        tokens, rows, positions = tokens[keep], rows[keep], positions[keep]
        counts = (counts - skip_t).clamp(min=0)
    count = counts.to(tokens.dtype).clamp(min=1e-9).unsqueeze(-1)
    vectors = []
    for mode in modes:
        if mode == "cls":
            vectors.append(all_tokens[firsts])
        elif mode == "max":
            init = tokens.new_full((len(lengths), width), float("-inf"))
            vectors.append(init.scatter_reduce(0, rows[:, None].expand(-1, width), tokens, "amax"))
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            total = tokens.new_zeros(len(lengths), width).index_add_(0, rows, tokens)
            vectors.append(total / (count if mode == "mean" else count.sqrt()))
        elif mode == "weightedmean":
            w = (positions + 1).to(tokens.dtype)
            total = tokens.new_zeros(len(lengths), width).index_add_(0, rows, tokens * w[:, None])
            weight = tokens.new_zeros(len(lengths)).index_add_(0, rows, w).clamp(min=1e-9)
            vectors.append(total / weight[:, None])
        elif mode == "lasttoken":
            vectors.append(all_tokens[lasts])
    return torch.cat(vectors, dim=-1)


def module_kind(module: dict[str, Any]) -> str:
    """A modules.json entry's class name (``sentence_transformers.models.Dense`` -> ``Dense``)."""
    return str(module.get("type", "")).rsplit(".", 1)[-1]


def transformer_folder(modules: list[dict[str, Any]] | None) -> str:
    """The folder of a sentence-transformers ``modules.json``'s first module, the transformer fastbert runs,
    relative to the model folder: ``""`` where the model is at the top (the layout sentence-transformers
    writes now), ``"0_Transformer"`` in older folders, which keep its config.json, weights, tokenizer and
    ``sentence_bert_config.json`` there (``SentenceTransformer`` loads each module from its ``path``)."""
    first = (modules or [{}])[0]
    return str(first.get("path", "") or "").strip("/") if isinstance(first, dict) else ""


def pooling_folder(modules: list[dict[str, Any]] | None) -> str:
    """The folder of a sentence-transformers ``modules.json``'s Pooling module, relative to the model folder
    (``""`` for the top), or ``1_Pooling`` where it names none (where TEI looks without a modules.json)."""
    return next(
        (m.get("path", "") for m in modules or () if str(m.get("type", "")).endswith("Pooling")), "1_Pooling"
    )


#: the names of a sentence-transformers ``Transformer``'s own config (``max_seq_length``, ``do_lower_case``),
#: in the order ``Transformer.load_config`` tries them: older folders wrote one named for their architecture
SENTENCE_CONFIG_NAMES = (
    "sentence_bert_config.json",
    "sentence_roberta_config.json",
    "sentence_distilbert_config.json",
    "sentence_camembert_config.json",
    "sentence_albert_config.json",
    "sentence_xlm-roberta_config.json",
    "sentence_xlnet_config.json",
)


def sentence_config(folder: str, find) -> dict[str, Any]:
    """The transformer's ``sentence_bert_config.json`` (or an older folder's ``sentence_roberta_config.json``,
    ...: the first of :data:`SENTENCE_CONFIG_NAMES` that holds anything, as sentence-transformers reads it) in
    ``folder`` (the transformer's, ``""`` for the top), by ``find(relative_path)`` (a local file or None; a hub
    id's fetches it); ``{}`` where there is none."""
    from .base import read_json_file

    prefix = f"{folder}/" if folder else ""
    for name in SENTENCE_CONFIG_NAMES:
        config = read_json_file(find(f"{prefix}{name}"))
        if config:
            return dict(config)
    return {}


def dense_weights_file(folder: str, find) -> str | None:
    """The weights file of the ``Dense`` module in ``folder`` that :func:`load_dense` reads (model.safetensors,
    else pytorch_model.bin), by ``find(relative_path)`` (a local file or None; a hub id's fetches it)."""
    prefix = f"{folder}/" if folder else ""
    return find(f"{prefix}model.safetensors") or find(f"{prefix}pytorch_model.bin")


def modules_after_pooling(modules: list[dict[str, Any]] | None, find) -> tuple[list[str], bool]:
    """(the folders of the ``Dense`` modules after the pooling, in order; whether ``Normalize`` ends the
    stack) of a sentence-transformers ``modules.json``; ``find(relative_path)`` gives a module's local
    ``config.json`` or None (a hub id's fetches it). A module fastbert cannot apply is refused by name
    (its vectors would silently differ from ``SentenceTransformer.encode``): anything but the first module
    (the transformer) before the ``Pooling`` (``WeightedLayerPooling``, a token-level ``Dense``, ``LayerNorm``,
    a ``SparseEncoder``'s ``SpladePooling``...), anything but ``Dense`` and ``Normalize`` after it. A
    ``Normalize`` normalises what its config's ``module_input_name`` names into its ``module_output_name``
    (:func:`normalize_names`): one that leaves the sentence embedding alone (token embeddings into token
    embeddings, the sentence embedding into another output) changes nothing of ``encode``'s vectors and is
    passed over, as there; one that writes another input over the sentence embedding is refused."""
    dense: list[str] = []
    normalize = False
    after = False
    for i, module in enumerate(modules or ()):
        kind = module_kind(module)
        if kind == "Pooling" and not after:
            after = True
            continue
        if not after:
            if i == 0:  # the input module: the transformer fastbert runs
                continue
            where = (
                "before the Pooling"
                if any(module_kind(m) == "Pooling" for m in modules)
                else "and no Pooling"
            )
            raise ValueError(
                f"modules.json has a {module.get('type')!r} module {where}, which fastbert does not "
                "apply (it runs the transformer, then Pooling, Dense and Normalize): encode with "
                "sentence-transformers, or remove it"
            )
        if kind == "Normalize":
            folder = str(module.get("path", "") or "").strip("/")
            source, target = normalize_names(folder, find)
            if target != SENTENCE_EMBEDDING:  # the sentence embedding as it was
                continue
            if source != SENTENCE_EMBEDDING:
                raise ValueError(
                    f"the Normalize module in {folder!r} writes its normalised {source!r} as the "
                    f"sentence embedding (module_input_name {source!r}, module_output_name {target!r}): "
                    "fastbert normalises the sentence embedding only: encode with sentence-transformers"
                )
        if normalize:
            raise ValueError(f"modules.json has {kind} after Normalize: fastbert applies Normalize last only")
        if kind == "Dense":
            dense.append(str(module.get("path", "")))
        elif kind == "Normalize":
            normalize = True
        else:
            raise ValueError(
                f"modules.json has a {module.get('type')!r} module after the pooling, which fastbert does not "
                "apply (it applies Dense and Normalize): encode with sentence-transformers, or remove it"
            )
    return dense, normalize


#: the feature that ``SentenceTransformer.encode`` returns, and that ``Normalize`` normalises by default
SENTENCE_EMBEDDING = "sentence_embedding"


def normalize_names(folder: str, find) -> tuple[str, str]:
    """(``module_input_name``, ``module_output_name``) of the ``Normalize`` module in ``folder`` (``""``: the
    top), from its ``config.json`` as sentence-transformers reads it (``find(relative_path)``: a local file
    or None); ``sentence_embedding`` into itself where there is none (the folders it wrote before the two
    existed), the output the input where it names none."""
    from .base import read_json_file

    config = read_json_file(find(f"{folder}/config.json" if folder else "config.json"))
    config = config if isinstance(config, dict) else {}
    source = config.get("module_input_name")
    source = SENTENCE_EMBEDDING if source is None else str(source)
    target = config.get("module_output_name")
    return source, source if target is None else str(target)


def check_dense_width(
    modes: tuple[str, ...], hidden: Any, dense_in: int | None, given: str, setting: str
) -> None:
    """A pooling ``modes`` whose vectors (``hidden`` values a mode) the folder's first ``Dense`` module (of
    ``dense_in`` inputs; None: no Dense) cannot take (``pooling=["mean", "max"]`` on a folder trained on mean
    pooling, ``--pooling mean`` on one trained on mean and max) is refused, naming both widths (the first
    forward raised torch's "mat1 and mat2 shapes cannot be multiplied"). ``given``: how the pooling was
    given, ``setting``: what to leave unset for the folder's own."""
    if dense_in is None or not isinstance(hidden, int) or hidden * len(modes) == dense_in:
        return
    raise ValueError(
        f"{given} gives vectors of {hidden * len(modes)} values ({len(modes)} x the hidden size "
        f"{hidden}), and the folder's Dense module after the pooling takes {dense_in}: pass a "
        f"pooling of that width (the folder's own: leave {setting} unset)"
    )


def _activation(name: str | None) -> torch.nn.Module:
    """A Dense module's ``activation_function`` (a ``torch.nn`` class path; Tanh when absent, as
    sentence-transformers)."""
    import importlib

    if name is None:
        return torch.nn.Tanh()
    module_name, _, class_name = str(name).rpartition(".")
    cls = (
        getattr(importlib.import_module(module_name), class_name, None)
        if module_name.startswith("torch.")
        else None
    )
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ValueError(f"Dense activation_function {name!r} is not a torch.nn module class")
    return cls()


def load_dense(folders: list[str], find) -> torch.nn.Sequential | None:
    """sentence-transformers' ``Dense`` modules (``activation(linear(x))``) from their folders, in order;
    ``find(relative_path)`` gives a local file or None. None when there are none."""
    from fastbert.loading import load_state_dict_file

    from .base import read_json_file

    layers = []
    for folder in folders:
        prefix = f"{folder}/" if folder else ""
        config = read_json_file(find(f"{prefix}config.json"))
        if not config:
            raise OSError(f"the Dense module in {folder!r} has no config.json")
        if (
            config.get("use_residual")
            or config.get("module_input_name", "sentence_embedding") != "sentence_embedding"
            # sentence-transformers writes another output beside the sentence embedding, left as it was
            or (config.get("module_output_name") or "sentence_embedding") != "sentence_embedding"
        ):
            raise ValueError(
                f"the Dense module in {folder!r} uses a residual or another input or output (use_residual, "
                "module_input_name, module_output_name): fastbert applies plain Dense layers only"
            )
        weights = dense_weights_file(folder, find)
        if weights is None:
            raise OSError(f"the Dense module in {folder!r} has no model.safetensors or pytorch_model.bin")
        state = load_state_dict_file(weights)
        linear = torch.nn.Linear(
            int(config["in_features"]), int(config["out_features"]), bias=bool(config.get("bias", True))
        )
        linear.load_state_dict(
            {k.removeprefix("linear."): v for k, v in state.items() if k.startswith("linear.")}
        )
        layers += [linear, _activation(config.get("activation_function"))]
    return torch.nn.Sequential(*layers).eval() if layers else None


class SentenceEmbeddingPipeline(FeatureExtractionPipeline):
    """``sentence-embedding``: one vector per input, pooled as the sentence-transformers folder says
    (``1_Pooling/config.json``: mean / CLS / max..., then the ``Dense`` modules and ``Normalize`` that
    ``modules.json`` lists after it).

    ``pooling=`` and ``normalize=`` given at construction or to a call override the folder's config:
    ``normalize=False`` leaves out the folder's ``Normalize`` module (``SentenceTransformer.encode``'s
    ``normalize_embeddings=False`` does not: the module is part of the model, and ``encode`` applies it).
    ``do_lower_case``: lower-case each text before tokenising it, as sentence-transformers' ``Transformer``
    does for a folder whose ``sentence_bert_config.json`` says so (read from there by ``fastbert.pipeline``).

    As ``SentenceTransformer.encode`` (``config_sentence_transformers.json``, read by ``fastbert.pipeline``):
    ``prompts`` (name -> text) and ``default_prompt_name``, the prompt put before each text (the first of a
    pair) unless a call gives ``prompt_name=`` (one of ``prompts``) or ``prompt=`` (a text; ``""`` for
    none); ``truncate_dim``: the vectors' first ``truncate_dim`` values, cut after ``Normalize`` (not
    normalized again), overridden by a call's ``truncate_dim=``; a call's ``normalize=True`` is ``encode``'s
    ``normalize_embeddings=True``: the cut vectors are normalized again. ``include_prompt`` (the Pooling's): false
    leaves the prompt's tokens out of the pooling, as sentence-transformers' ``Pooling``."""

    task = "sentence-embedding"

    def __init__(
        self,
        *args: Any,
        pooling: Any = None,
        normalize: bool | None = None,
        dense: torch.nn.Module | None = None,
        do_lower_case: bool = False,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
        truncate_dim: int | None = None,
        include_prompt: bool = True,
        **kwargs: Any,
    ) -> None:
        from .base import whole_number

        self.pooling = check_pooling(pooling)
        self.normalize = bool(normalize)
        self.dense = dense  # the folder's Dense modules after the pooling (fp32)
        self.do_lower_case = bool(do_lower_case)
        self.prompts = {str(k): "" if v is None else str(v) for k, v in (prompts or {}).items()}
        if default_prompt_name is not None and default_prompt_name not in self.prompts:
            raise ValueError(
                f"default_prompt_name {default_prompt_name!r} is not one of the prompts "
                f"({self._known_prompts()})"
            )
        self.default_prompt_name = default_prompt_name
        self.truncate_dim = whole_number("truncate_dim", truncate_dim)
        self.include_prompt = bool(include_prompt)
        super().__init__(*args, **kwargs)
        self._check_dense_width(self.pooling, pooling)

    def _check_dense_width(self, modes: tuple[str, ...], given: Any) -> None:
        first = next((m for m in self.dense or () if isinstance(m, torch.nn.Linear)), None)
        hidden = getattr(self.model.config, "hidden_size", None)
        check_dense_width(modes, hidden, first and first.in_features, f"pooling={given!r}", "pooling")

    def _save_task_files(self, save_directory: Any) -> None:
        """The sentence-transformers files that say how this pipeline pools (``modules.json``, the Pooling's,
        Dense's and Normalize's folders, ``sentence_bert_config.json``, ``config_sentence_transformers.json``),
        so that ``pipeline("sentence-embedding", model=save_directory)`` gives the same vectors (the model and
        the tokenizer alone gave mean-pooled, unnormalized ones) and sentence-transformers loads the folder."""
        import json
        import os

        from ..output_files import open_output, output_name

        def write(relative: str, obj: Any) -> None:  # each file whole or not at all, as save_pretrained's
            path = os.path.join(save_directory, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open_output(path, "w") as f:
                json.dump(obj, f, indent=2)

        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        ]
        hidden = int(self.model.config.hidden_size)
        if self.pooling == tuple(m for m in _LEGACY_POOLING_KEYS.values() if m in self.pooling):
            # the keys every sentence-transformers version reads (their order is the order of the vector)
            pooling: dict[str, Any] = {"word_embedding_dimension": hidden}
            for key, mode in _LEGACY_POOLING_KEYS.items():
                if mode in self.pooling or mode in ("cls", "max", "mean", "mean_sqrt_len_tokens"):
                    pooling[key] = mode in self.pooling
        else:  # another order, or a mode twice: sentence-transformers >= 6's list
            pooling = {"embedding_dimension": hidden, "pooling_mode": list(self.pooling)}
        if not self.include_prompt:
            pooling["include_prompt"] = False
        write("1_Pooling/config.json", pooling)
        layers = list(self.dense or ())
        for linear, activation in zip(layers[::2], layers[1::2]):
            folder = f"{len(modules)}_Dense"
            write(
                f"{folder}/config.json",
                {
                    "in_features": linear.in_features,
                    "out_features": linear.out_features,
                    "bias": linear.bias is not None,
                    "activation_function": f"{type(activation).__module__}.{type(activation).__name__}",
                },
            )
            from safetensors.torch import save_file

            state = {
                f"linear.{k}": v.detach().float().contiguous().cpu() for k, v in linear.state_dict().items()
            }
            with output_name(os.path.join(save_directory, folder, "model.safetensors")) as name:
                save_file(state, name)
            modules.append(
                {
                    "idx": len(modules),
                    "name": str(len(modules)),
                    "path": folder,
                    "type": "sentence_transformers.models.Dense",
                }
            )
        if self.normalize:
            folder = f"{len(modules)}_Normalize"
            os.makedirs(os.path.join(save_directory, folder), exist_ok=True)
            modules.append(
                {
                    "idx": len(modules),
                    "name": str(len(modules)),
                    "path": folder,
                    "type": "sentence_transformers.models.Normalize",
                }
            )
        write(
            "sentence_bert_config.json",
            {"max_seq_length": self.max_length, "do_lower_case": self.do_lower_case},
        )
        model_config: dict[str, Any] = {
            "prompts": self.prompts,
            "default_prompt_name": self.default_prompt_name,
        }
        if self.truncate_dim is not None:
            model_config["truncate_dim"] = self.truncate_dim
        write("config_sentence_transformers.json", model_config)
        write("modules.json", modules)

    def _known_prompts(self) -> str:
        return ", ".join(repr(k) for k in self.prompts) or "none: the model has no prompts"

    def _split_params(self, **kwargs: Any) -> dict[str, Any]:
        # a call's prompt or prompt_name replaces both of the construction's (they exclude each other)
        if self._init_checked and any(kwargs.get(k) is not None for k in ("prompt", "prompt_name")):
            kwargs = {"prompt": None, "prompt_name": None, **kwargs}
        return super()._split_params(**kwargs)

    @property
    def default_prompt(self) -> str:
        """The prompt put before each text of a call that names none (``default_prompt_name``'s), or ""."""
        return self._prompt(None, None)

    def _prompt(self, prompt: Any, prompt_name: Any) -> str:
        """The prompt of a call (sentence-transformers' rule): ``prompt``, else ``prompt_name``'s, else the
        default prompt's, else none."""
        if prompt is not None and prompt_name is not None:
            raise ValueError("pass prompt= or prompt_name=, not both")
        if prompt is not None:
            if not isinstance(prompt, str):
                raise ValueError(f"prompt must be a str, got {type(prompt).__name__}")
            return prompt
        name = self.default_prompt_name if prompt_name is None else prompt_name
        if name is None:
            return ""
        if name not in self.prompts:
            raise ValueError(f"prompt_name {name!r} is not one of the prompts ({self._known_prompts()})")
        return self.prompts[name]

    def _prompt_length(self, prompt: str) -> int:
        """The prompt's tokens (the first special token included, a last special token not), which a
        Pooling with ``include_prompt`` false leaves out, measured as sentence-transformers does: the
        prompt tokenized alone."""
        if self.do_lower_case:
            prompt = prompt.lower()
        ids = list(self.tokenizer(prompt, verbose=False)["input_ids"])
        special = set(getattr(self.tokenizer, "all_special_ids", None) or ())
        return len(ids) - 1 if ids and ids[-1] in special else len(ids)

    def _text_input(self, item: Any, prompt: str = "") -> tuple[Any, Any]:
        text, pair = super()._text_input(item)
        if prompt and isinstance(text, str):
            text = prompt + text
        if self.do_lower_case:
            text = text.lower() if isinstance(text, str) else text
            pair = pair.lower() if isinstance(pair, str) else pair
        return text, pair

    def preprocess(
        self, item: Any, truncation: Any = None, tokenize_kwargs: dict | None = None, prompt: str = ""
    ):
        text, pair = self._text_input(item, prompt)
        kwargs = dict(tokenize_kwargs or {})
        truncation = kwargs.pop("truncation", truncation)
        skip = self._prompt_length(prompt) if prompt and not self.include_prompt else 0
        return [self._feature(self._encode(text, pair, truncation=truncation, **kwargs), skip=skip)]

    def _sanitize(
        self,
        truncation: Any = None,
        tokenize_kwargs: dict | None = None,
        return_tensors: bool | None = None,
        pooling: Any = None,
        normalize: bool | None = None,
        prompt: str | None = None,
        prompt_name: str | None = None,
        truncate_dim: int | None = None,
    ):
        from .base import whole_number

        params = super()._sanitize(truncation, tokenize_kwargs, return_tensors)
        params["preprocess"]["prompt"] = self._prompt(prompt, prompt_name)
        forward: dict[str, Any] = {}
        if pooling is not None:
            forward["pooling"] = check_pooling(pooling)
            self._check_dense_width(forward["pooling"], pooling)
        if normalize is not None:
            forward["normalize"] = bool(normalize)
        if truncate_dim is not None:
            forward["truncate_dim"] = whole_number("truncate_dim", truncate_dim)
        return {**params, "forward": forward}

    def extract(
        self, output, attention_mask, lengths, features, pooling=None, normalize=None, truncate_dim=None, **_
    ):
        hidden = self._hidden(output).float()  # (B, L, hidden)
        skip = [f.get("skip", 0) for f in features]
        pooled = pool(hidden, attention_mask, lengths, pooling or self.pooling, skip)
        if self.dense is not None:
            pooled = self.dense.to(pooled.device)(pooled)
        if self.normalize if normalize is None else normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        dim = self.truncate_dim if truncate_dim is None else truncate_dim
        if dim is not None:  # after Normalize, as SentenceTransformer.encode: not normalized again
            pooled = pooled[:, :dim].contiguous()
            if normalize:  # a call's normalize=True: encode's normalize_embeddings, after the cut
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return list(pooled.cpu().unbind(0))

    def postprocess(self, item, features, return_tensors: bool = False):
        v = features[0]["output"]
        return v if return_tensors else v.tolist()

    def _many(self, items, params):
        out = super()._many(items, params)
        if params["postprocess"].get("return_tensors") and out:
            return torch.stack(out)
        return out
