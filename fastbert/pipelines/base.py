"""The pipeline machinery shared by every task: loading, device and dtype, length-sorted batching.

A task turns each input into one or more *features* (token ids of one model row, plus what its
post-processing needs), the engine runs the features of a window of inputs through the model in
batches of similar length (sorted longest first, padded on the right to the longest of the batch
only), keeps what each feature needs of the output, and hands the features of each input back to the
task in input order. Windows bound the memory: a generator is consumed a window at a time.
"""

from __future__ import annotations

import itertools
import numbers
import os
import sys
import types
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch

# Rows of one forward, unless batch_size says otherwise.
DEFAULT_BATCH_SIZE = 32
# Inputs read (and length-sorted together) per window, in batches.
WINDOW_BATCHES = 16


def resolve_dtype(dtype: Any) -> torch.dtype | str | None:
    """A torch dtype from a dtype, its name (``"float16"``, ``"fp16"``, ``"bf16"``...), ``"auto"`` or None."""
    from ..loading import parse_dtype

    return parse_dtype(dtype)


def resolve_device(device: Any, model: Any = None) -> torch.device:
    """transformers 4.57's convention: an int ``N >= 0`` is the N-th device of the accelerator there is
    (``cuda:N``, else ``mps:N``, else the CPU, as transformers' ``Pipeline``), ``-1`` the CPU; a string or
    torch.device as is; None keeps a loaded model where it is, and is the CPU otherwise."""
    if device is None:
        if model is not None and isinstance(model, torch.nn.Module):
            return model_device(model)
        return torch.device("cpu")
    if isinstance(device, bool) or not isinstance(device, (int, str, torch.device)):
        raise ValueError(f"device must be an int, a string or a torch.device, not {device!r}")
    if isinstance(device, int):
        if device < 0:
            return torch.device("cpu")
        if torch.cuda.is_available():
            return torch.device("cuda", device)
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps", device)
        return torch.device("cpu")
    from ..devices import parse_device

    return parse_device(device, "device")


def model_device(model: torch.nn.Module) -> torch.device:
    dev = getattr(model, "device", None)
    if isinstance(dev, torch.device):
        return dev
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    dt = getattr(model, "dtype", None)
    if isinstance(dt, torch.dtype):
        return dt
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _progress_wanted(progress: bool | None) -> bool:
    if progress is not None:
        return bool(progress)
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class _Progress:
    """A tqdm bar over inputs, opened only when the inputs are more than one batch."""

    def __init__(self, enabled: bool, total: int | None, batch_size: int, desc: str) -> None:
        self.enabled = enabled
        self.total = total
        self.batch_size = batch_size
        self.desc = desc
        self.bar = None
        self.pending = 0

    def update(self, n: int, seen: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            longer = (self.total if self.total is not None else seen) > self.batch_size
            if not longer:
                self.pending += n
                return
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=self.desc, unit="input", leave=False, file=sys.stderr)
            n += self.pending
            self.pending = 0
        self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Pipeline:
    """Base of the task pipelines: ``pipeline(inputs, **params)`` like transformers' pipelines.

    A list (or tuple) of inputs returns a list of results in input order; a generator or other
    iterator, or a ``torch.utils.data.Dataset`` (transformers' ``KeyDataset``), returns a generator that reads
    its inputs a window at a time; one input returns one result.
    """

    task: str = ""
    # Output attribute a feature reads from the model output.
    output_names: tuple[str, ...] = ("logits",)
    #: transformers 4's attribute: the models are PyTorch's
    framework: str = "pt"

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        device: torch.device | None = None,
        batch_size: int | None = None,
        progress: bool | None = None,
        task: str | None = None,
        max_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device if device is not None else model_device(model)
        self.batch_size = whole_number("batch_size", batch_size) or DEFAULT_BATCH_SIZE
        self.progress = progress
        if task:
            self.task = task
        self._max_length_given = max_length is not None
        self.max_length = whole_number("max_length", max_length) or self._default_max_length()
        positions = _max_input_tokens(model)
        if positions is not None and self.max_length > positions:
            raise ValueError(
                f"max_length={self.max_length} is more than the {positions} tokens the model's position "
                "embeddings take"
            )
        least = self._least_max_length()
        if self.max_length < least:
            raise ValueError(
                f"max_length={self.max_length} is too small: a {self.task or 'pipeline'} input needs at least "
                f"{least} tokens (the tokenizer adds {least - self._least_text_tokens()} special tokens)"
            )
        # transformers' Pipeline argument that no text task reads (its postprocessing for audio and images):
        # accepted at construction and ignored, as there (per call it is an unknown parameter, as there)
        kwargs.pop("binary_output", None)
        # parameters given at construction: defaults of every call
        self._init_params = dict(kwargs)
        self._check_params(self._init_params)
        self._init_checked = True

    # ----------------------------------------------------------------------------------------- config
    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def dtype(self) -> torch.dtype:
        return model_dtype(self.model)

    @property
    def torch_dtype(self) -> torch.dtype:
        """transformers 4.57's older name of :attr:`dtype`."""
        return self.dtype

    def save_pretrained(
        self, save_directory: str | os.PathLike, safe_serialization: bool = True, **kwargs: Any
    ):
        """Save the model and the tokenizer in ``save_directory`` (created if missing), as transformers'
        ``Pipeline.save_pretrained``: ``pipeline(task, model=save_directory)`` loads them back.
        ``push_to_hub=True`` uploads the folder once both are written."""
        if os.path.isfile(save_directory):
            raise ValueError(f"save_directory {os.fspath(save_directory)!r} is a file: pass a folder")
        os.makedirs(save_directory, exist_ok=True)
        push = kwargs.pop("push_to_hub", False)
        self.model.save_pretrained(save_directory, safe_serialization=safe_serialization, **kwargs)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(save_directory)
        self._save_task_files(save_directory)
        if push and kwargs.get("is_main_process", True):  # not before: the tokenizer's files were left out
            from ..loading import push_saved

            push_saved(save_directory, kwargs)

    def _save_task_files(self, save_directory: str | os.PathLike) -> None:
        """The files beside the model and the tokenizer that ``pipeline(task, model=save_directory)`` reads to
        build this pipeline again (none for most tasks)."""

    def transform(self, X: Any) -> Any:
        """scikit-learn's interface, as transformers: ``self(X)``."""
        return self(X)

    def predict(self, X: Any) -> Any:
        """scikit-learn's interface, as transformers: ``self(X)``."""
        return self(X)

    def _default_max_length(self) -> int:
        limits = []
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
            limits.append(tok_max)
        pos = _max_input_tokens(self.model)
        if pos is not None:
            limits.append(pos)
        return min(limits) if limits else 512

    #: tokens of text (not special tokens) the shortest input of the task has: one (a question and a
    #: context for question-answering, which overrides this)
    _least_text = (1, False)

    def _least_text_tokens(self) -> int:
        return self._least_text[0]

    def _least_max_length(self) -> int:
        """The smallest ``max_length`` an input of this task fits in: its special tokens plus its text."""
        count = getattr(self.tokenizer, "num_special_tokens_to_add", None)
        pair = self._least_text[1]
        try:
            special = int(count(pair=pair)) if callable(count) else (3 if pair else 2)
        except Exception:  # noqa: BLE001 - a tokenizer without the usual API: BERT's count
            special = 3 if pair else 2
        return special + self._least_text_tokens()

    def _check_params(self, params: dict[str, Any]) -> None:
        """Raise on parameters this task does not know (subclasses list theirs in ``_sanitize``)."""
        self._split_params()

    def _sanitize(self, **params: Any) -> dict[str, Any]:  # pragma: no cover - overridden
        if params:
            raise TypeError(f"{self.task} pipeline got unknown parameters {sorted(params)}")
        return {}

    # -------------------------------------------------------------------------------------- tokenizing
    def _encode(
        self,
        text: Any,
        text_pair: Any = None,
        *,
        truncation: bool | str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Tokenize one input. ``truncation`` asked for (True or a strategy): as the tokenizer does it, to
        the caller's ``max_length`` (at most the model's). Otherwise (None, False, ``"do_not_truncate"``) the
        tokenizer runs with the caller's kwargs; an input longer than the model's ``max_length`` is then
        truncated with a warning (None) or refused (False, ``"do_not_truncate"``)."""
        refused = truncation is False or truncation == "do_not_truncate"
        if truncation is not None and not refused:
            limit_to = min(kwargs.pop("max_length", None) or self.max_length, self.max_length)
            return self.tokenizer(
                text, text_pair, truncation=truncation, max_length=limit_to, verbose=False, **kwargs
            )
        if refused:
            kwargs["truncation"] = truncation
        enc = self.tokenizer(text, text_pair, verbose=False, **kwargs)
        n = len(enc["input_ids"])
        if n <= self.max_length:
            return enc
        what = "input" if text_pair is None else "input pair"
        limit = (
            f"max_length={self.max_length}"
            if self._max_length_given
            else f"the model's maximum of {self.max_length}"
        )
        if refused:
            raise ValueError(
                f"{what} is {n} tokens long, longer than {limit} "
                f"(truncation={truncation!r}): shorten it or allow truncation. Input starts: {_preview(text)}"
            )
        warn_at_caller(f"{what} of {n} tokens truncated to {limit}: {_preview(text)}")
        kwargs.pop("max_length", None)  # the caller's was longer than the model's (else it would fit)
        return self.tokenizer(
            text, text_pair, truncation="longest_first", max_length=self.max_length, verbose=False, **kwargs
        )

    @staticmethod
    def _feature(enc: Any, index: int | None = None, **meta: Any) -> dict[str, Any]:
        def row(key: str) -> Any:
            v = enc.get(key) if hasattr(enc, "get") else None
            if v is None:
                return None
            return v[index] if index is not None else v

        ids = row("input_ids")
        nested = getattr(ids, "ndim", 1) != 1 or (len(ids) and isinstance(ids[0], (list, tuple)))
        if index is None and nested:
            # a batch where one input goes: a list as a dict's "text", return_overflowing_tokens... (the model
            # refused its (1, n, length) input_ids, naming neither)
            raise ValueError(
                "one input was tokenized into several sequences: a dict's text and text_pair are one text each "
                "(pass a list of inputs for several), and tokenizer arguments that return several sequences "
                "(return_overflowing_tokens, return_tensors) are not taken"
            )
        feat = {"input_ids": list(ids), "token_type_ids": row("token_type_ids")}
        if feat["token_type_ids"] is not None:
            feat["token_type_ids"] = list(feat["token_type_ids"])
        mask = row("attention_mask")
        if mask is not None and not all(mask):
            # padding the tokenizer added (tokenizer kwargs such as padding="max_length"): those positions
            # stay masked in the forward, as transformers' pipelines pass the tokenizer's attention mask
            feat["attention_mask"] = list(mask)
        feat.update(meta)
        return feat

    # --------------------------------------------------------------------------------- task interface
    def preprocess(self, item: Any, **params: Any) -> list[dict[str, Any]]:  # pragma: no cover
        raise NotImplementedError

    def extract(
        self, output: Any, rows: torch.Tensor, lengths: list[int], features: list[dict], **params: Any
    ) -> list[Any]:
        """What each feature keeps of a batch's output (on the CPU)."""
        raise NotImplementedError  # pragma: no cover

    def postprocess(
        self, item: Any, features: list[dict[str, Any]], **params: Any
    ) -> Any:  # pragma: no cover
        raise NotImplementedError

    # -------------------------------------------------------------------------------------- the engine
    def _forward_batch(self, features: list[dict[str, Any]], params: dict[str, Any]) -> list[Any]:
        lengths = [len(f["input_ids"]) for f in features]
        keys = ["input_ids"]
        if all(f.get("token_type_ids") is not None for f in features):
            keys.append("token_type_ids")
        if any(f.get("attention_mask") is not None for f in features):
            keys.append("attention_mask")
            features = [
                f
                if f.get("attention_mask") is not None
                else {**f, "attention_mask": [1] * len(f["input_ids"])}
                for f in features
            ]
        # the tokenizer pads (its pad id, right side: ``extract`` reads the first ``length`` positions)
        side = (
            {} if getattr(self.tokenizer, "padding_side", "right") == "right" else {"padding_side": "right"}
        )
        batch = self.tokenizer.pad(
            [{k: f[k] for k in keys} for f in features],
            padding=True,
            return_attention_mask=True,
            return_tensors="pt",
            **side,  # (asked only where needed: older transformers tokenizers' pad has no padding_side)
        )
        inputs = {k: batch[k].to(self.device) for k in (*keys, "attention_mask")}
        with torch.inference_mode():
            output = self.model(**inputs)
            return self.extract(output, inputs["attention_mask"], lengths, features, **params)

    def _run(self, items: Iterable[Any], params: dict[str, Any], total: int | None) -> Iterator[Any]:
        pre, post = params["preprocess"], params["postprocess"]
        fwd = params.get("forward", {})
        batch_size = params.get("batch_size") or self.batch_size
        progress = _Progress(
            _progress_wanted(params.get("progress", self.progress)), total, batch_size, self.task
        )
        # inputs read and length-sorted together; ``window=1`` answers each input as it comes
        window = params.get("window") or max(batch_size * WINDOW_BATCHES, 64)
        it = iter(items)
        seen = 0
        try:
            while True:
                chunk = list(itertools.islice(it, window))
                if not chunk:
                    break
                seen += len(chunk)
                per_item = [self.preprocess(x, **pre) for x in chunk]
                flat = [(i, f) for i, feats in enumerate(per_item) for f in feats]
                left = [len(feats) for feats in per_item]
                done = sum(1 for c in left if c == 0)
                order = sorted(range(len(flat)), key=lambda k: len(flat[k][1]["input_ids"]), reverse=True)
                for start in range(0, len(order), batch_size):
                    idx = order[start : start + batch_size]
                    outs = self._forward_batch([flat[k][1] for k in idx], fwd)
                    finished = 0
                    for k, out in zip(idx, outs):
                        flat[k][1]["output"] = out
                        i = flat[k][0]
                        left[i] -= 1
                        finished += left[i] == 0
                    progress.update(finished + done, seen)
                    done = 0
                if done:
                    progress.update(done, seen)
                for item, feats in zip(chunk, per_item):
                    yield self.postprocess(item, feats, **post)
        finally:
            progress.close()

    #: parameters whose warnings were given at construction (set while a call sanitizes them again)
    _quiet: frozenset[str] = frozenset()

    def _warn_param(self, param: str, message: str) -> None:
        """A warning about ``param`` (deprecated, a target not in the vocabulary...): given once, at
        construction, when ``param`` was given there, as transformers sanitizes construction parameters once."""
        if param not in self._quiet:
            warn_at_caller(message)

    def _split_params(self, **kwargs: Any) -> dict[str, Any]:
        merged = {**self._init_params, **kwargs}
        constructed = self._init_checked
        self._quiet = (
            frozenset(k for k in self._init_params if k not in kwargs) if constructed else frozenset()
        )
        try:
            return self._split_merged(merged)
        finally:
            self._quiet = frozenset()

    _init_checked = False

    def _split_merged(self, merged: dict[str, Any]) -> dict[str, Any]:
        batch_size = whole_number("batch_size", merged.pop("batch_size", None))
        progress = merged.pop("progress", None)
        window = whole_number("window", merged.pop("window", None))
        # transformers' DataLoader workers: accepted and ignored (fastbert batches in the process)
        merged.pop("num_workers", None)
        import inspect

        sig = inspect.signature(self._sanitize)
        if not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            unknown = sorted(set(merged) - set(sig.parameters))
            if unknown:
                known = ", ".join(list(sig.parameters) + ["batch_size", "progress", "num_workers"])
                raise TypeError(
                    f"{self.task} pipeline got unknown parameter(s) {', '.join(unknown)}; it takes {known}"
                )
        params = self._sanitize(**merged)
        params.setdefault("preprocess", {})
        params.setdefault("postprocess", {})
        params["batch_size"] = batch_size
        if progress is not None:
            params["progress"] = progress
        if window is not None:
            params["window"] = window
        return params

    def _single(self, item: Any, params: dict[str, Any]) -> Any:
        return next(iter(self._run([item], params, 1)))

    def _many(self, items: list[Any], params: dict[str, Any]) -> list[Any]:
        return list(self._run(items, params, len(items)))

    def _stream(
        self, items: Iterable[Any], params: dict[str, Any], total: int | None = None
    ) -> Iterator[Any]:
        yield from self._run(items, params, total)

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        params = self._split_params(**kwargs)
        if isinstance(inputs, (list, tuple)):
            return self._many(list(inputs), params)
        if _is_map_dataset(inputs):
            # a torch Dataset read by index (transformers' KeyDataset pattern): streamed, as transformers
            # does, an iterator of results
            return self._stream((inputs[i] for i in range(len(inputs))), params, len(inputs))
        if _is_stream(inputs):
            return self._stream(inputs, params)
        return self._single(inputs, params)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r}, model={type(self.model).__name__}, device={self.device})"


class PipelineKeyError(KeyError, ValueError):
    """A dict input without a key the task needs: a ValueError (fastbert's bad-input contract) and a KeyError
    (what transformers raises there); its message prints without KeyError's quotes."""

    def __str__(self) -> str:
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


def warn_at_caller(message: str) -> None:
    """A ``UserWarning`` attributed to the caller's line, the first frame outside fastbert (a fixed
    ``stacklevel`` pointed into the pipeline's own frames, which differ between a call on one input, on a
    list and on a generator)."""
    from ..quant.notes import warn_at_caller as warn

    warn(message, UserWarning)


def whole_number(name: str, value: Any, minimum: int = 1) -> int | None:
    """``value`` as an int of at least ``minimum`` (None stays None); a ValueError naming ``name`` otherwise.
    numpy's numbers (``np.int64(3)``, an array's ``.max()``) are numbers here, as Python's."""
    if value is None:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and value == value
    ok = ok and abs(value) != float("inf")  # (nan and inf: no whole number)
    if not ok or value != int(value) or value < minimum:
        raise ValueError(f"{name} must be a whole number of at least {minimum}, got {value!r}")
    return int(value)


def keyword_dict(name: str, value: Any) -> dict[str, Any]:
    """``value``, the tokenizer's keyword arguments (``tokenizer_kwargs`` / ``tokenize_kwargs``), as a dict
    (None: empty); a TypeError naming ``name`` for anything but a mapping (as transformers' ``**`` refuses it)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{name} must be a dict of the tokenizer's keyword arguments, not {type(value).__name__}"
        )
    return dict(value)


def model_output(output: Any, name: str) -> torch.Tensor:
    """The field ``name`` (``"logits"``, ``"start_logits"``...) of a model output or a dict of them."""
    return output[name] if isinstance(output, dict) else getattr(output, name)


def label_name(config: Any, i: int) -> str:
    """The label of class ``i`` in ``config.id2label`` (int or str keys), ``LABEL_i`` where it has none."""
    i = int(i)
    id2label = getattr(config, "id2label", None) or {}
    if i in id2label:
        return id2label[i]
    return id2label.get(str(i), f"LABEL_{i}")


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by the maximum (no overflow)."""
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _is_map_dataset(x: Any) -> bool:
    """A ``torch.utils.data.Dataset`` read by index (``__len__`` and ``__getitem__``, not an IterableDataset)."""
    return (
        isinstance(x, torch.utils.data.Dataset)
        and not isinstance(x, torch.utils.data.IterableDataset)
        and hasattr(x, "__len__")
    )


def _is_stream(x: Any) -> bool:
    if isinstance(x, (str, bytes, dict, list, tuple)):
        return False
    if isinstance(x, types.GeneratorType):
        return True
    return isinstance(x, Iterator) or (isinstance(x, Iterable) and not isinstance(x, (torch.Tensor,)))


def _preview(text: Any, n: int = 60) -> str:
    s = text if isinstance(text, str) else str(text)
    s = s.replace("\n", " ")
    return repr(s[:n] + ("..." if len(s) > n else ""))


def _max_input_tokens(model: Any) -> int | None:
    """The model's longest input by its position table (``registry.max_input_tokens``)."""
    from fastbert import registry

    config = getattr(model, "config", None)
    return None if config is None else registry.max_input_tokens(config)


def read_json_file(path: str | None) -> Any:
    if path is None or not os.path.isfile(path):
        return None
    import json

    with open(path, encoding="utf-8") as f:
        return json.load(f)
