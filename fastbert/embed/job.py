"""The job: every option that decides the output bytes (compared on resume), checked before anything runs."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from typing import Any

TASKS = ("sentence-embedding", "feature-extraction", "text-classification")
ON_ERROR = ("fail", "skip", "empty")
OUTPUT_DTYPES = ("float32", "float16")
FEATURE_POOLING = ("mean", "cls", "max")

#: input rows per output shard (shards never cross input files)
DEFAULT_SHARD_ROWS = 10_000
#: rows length-sorted together inside a shard
DEFAULT_WINDOW = 2_000
#: padded tokens (rows × longest row) per forward
DEFAULT_MAX_BATCH_TOKENS = 16_384  # on a GPU (TEI's default)
#: on the CPU, GEMMs over more activations than this fall out of cache (benchmarks/results/code-notes.md)
DEFAULT_MAX_BATCH_TOKENS_CPU = 4_096


@dataclasses.dataclass(frozen=True)
class Job:
    """Everything that decides the output bytes (and is compared on resume), plus how to run it."""

    task: str
    model: str
    revision: str | None
    model_fingerprint: str | None
    dtype: str | None
    output_dtype: str
    pooling: tuple[str, ...] | None
    normalize: bool | None
    max_length: int | None
    function_to_apply: str | None
    column: str
    id_column: str | None
    on_error: str
    shard_rows: int
    window: int
    max_batch_tokens: int
    attn_implementation: str | None = None
    quantization: str | None = None  # "int8" / "fp8": the model quantized at load (fastbert.quant)

    def identity(self) -> dict[str, Any]:
        """The fields a resumed run must share with the run that started the output."""
        d = dataclasses.asdict(self)
        d["pooling"] = list(self.pooling) if self.pooling else None
        return d


def job_from_dict(d: dict[str, Any]) -> Job:
    """A :class:`Job` from :meth:`Job.identity` (what the manifest and the Ray tasks carry)."""
    d = dict(d)
    d["pooling"] = tuple(d["pooling"]) if d.get("pooling") else None
    return Job(**d)


def make_job(**options: Any) -> Job:
    """The job of ``options`` (:class:`Job`'s fields but ``model_fingerprint``), each checked (a ValueError
    naming the option); the task's alias resolved, the model path made absolute (default: the embedded
    MiniLM), ``pooling`` split when a string, the model folder fingerprinted."""
    from fastbert.pipelines import check_task

    o = dict(options)
    task = o["task"] = check_task(o["task"])
    if task not in TASKS:
        raise ValueError(f"embed runs {', '.join(TASKS)}, not {task}")
    if o["on_error"] not in ON_ERROR:
        raise ValueError(f"on_error must be one of {', '.join(ON_ERROR)}, got {o['on_error']!r}")
    if o["output_dtype"] not in OUTPUT_DTYPES:
        raise ValueError(f"output_dtype must be float32 or float16, got {o['output_dtype']!r}")
    for name in ("max_batch_tokens", "window", "shard_rows"):
        if not isinstance(o[name], int) or isinstance(o[name], bool) or o[name] < 1:  # (True was 1)
            raise ValueError(f"{name} must be a positive integer, got {o[name]!r}")
    max_length = o["max_length"]
    if max_length is not None and (not isinstance(max_length, int) or isinstance(max_length, bool)):
        raise ValueError(f"max_length must be an integer of at least 2, got {max_length!r}")  # ('<' on a str)
    if max_length is not None and max_length < 2:
        raise ValueError(f"max_length must be at least 2, got {max_length}")
    pooling = o["pooling"]
    if isinstance(pooling, str):
        pooling = [p.strip() for p in pooling.split(",") if p.strip()]
    o["pooling"] = tuple(pooling) if pooling else None
    if task == "feature-extraction":
        for m in o["pooling"] or ():
            if m not in FEATURE_POOLING:
                raise ValueError(f"feature-extraction pools by {', '.join(FEATURE_POOLING)}, not {m!r}")
    elif task == "text-classification" and (o["pooling"] or o["normalize"]):
        raise ValueError("pooling and normalize are options of the embedding tasks, not text-classification")
    if o["function_to_apply"] is not None and task != "text-classification":
        raise ValueError("function_to_apply is a text-classification option")
    model = o["model"]
    if model is None:
        if task == "text-classification":
            raise ValueError("text-classification needs a model: pass model= a BertForSequenceClassification")
        from fastbert.hub import embedded_model_path

        model = embedded_model_path()
    o["model"] = os.path.realpath(model) if os.path.isdir(model) else str(model)
    o["model_fingerprint"] = model_fingerprint(o["model"], revision=o["revision"])
    o["dtype"] = normalize_dtype(o["dtype"])
    from fastbert.quant import check_quantization

    o["quantization"] = check_quantization(o.get("quantization"))
    return Job(**o)


def normalize_dtype(dtype: Any) -> str:
    """The model dtype as a job records it: ``float32``, ``float16``, ``bfloat16``... (None, the default,
    is float32, as the model loads without one; ``fp16``, ``half``, ``torch.float16`` are float16), or
    ``auto``; an unknown name is a ValueError naming it."""
    if dtype is None:
        return "float32"
    from fastbert.loading import parse_dtype

    parsed = parse_dtype(dtype)
    return "auto" if parsed == "auto" else str(parsed).removeprefix("torch.")


#: weight files whose content the fingerprint samples: blocks of this many bytes, at most this many a file
#: (the first, the last and evenly spaced between; a smaller file whole)
FINGERPRINT_BLOCK = 1 << 16
FINGERPRINT_BLOCKS = 16
_WEIGHTS = (".safetensors", ".bin", ".pt", ".h5", ".msgpack")
#: a TF1 checkpoint's files (``bert_model.ckpt.index``, ``bert_model.ckpt.data-00000-of-00001``): the weights
#: of a Google folder, which fastbert loads
_TF1_FILE = re.compile(r".+\.(?:index|data-\d+-of-\d+)")
#: the prefix of each version's fingerprint (:func:`model_fingerprint`)
FINGERPRINT_PREFIXES = {1: "sha256:", 2: "sha256-v2:", 3: "sha256-v3:"}


def model_fingerprint(model: str, version: int = 3, revision: str | None = None) -> str | None:
    """sha256 of a local model folder: its .json and .txt files, and its weight files' names, sizes and
    mtimes and (``version`` 2) sampled content, so that weights replaced by others of the same size with the
    mtime kept (``cp -p``, ``rsync -a``) are another model, at the cost of reading ``FINGERPRINT_BLOCKS``
    blocks a file; version 3 counts a TF1 checkpoint's files among the weights (version 2 left them out: a
    Google folder's weights replaced were the same model). Versions 1 (``sha256:``, no content) and 2
    (``sha256-v2:``) are how older manifests recorded it. A hub id: the commit its ``revision`` names now
    (:func:`hub_commit`)."""
    if not os.path.isdir(model):
        return hub_commit(model, revision)
    h = hashlib.sha256()
    for root, _dirs, names in sorted(os.walk(model)):
        for name in sorted(names):
            p = os.path.join(root, name)
            rel = os.path.relpath(p, model)
            if name.endswith((".json", ".txt")):
                with open(p, "rb") as f:
                    h.update(rel.encode() + b"\0" + f.read())
            elif name.endswith(_WEIGHTS) or (version >= 3 and _TF1_FILE.fullmatch(name)):
                st = os.stat(p)
                h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}".encode())
                if version >= 2:
                    h.update(_sampled_content(p, st.st_size))
    return FINGERPRINT_PREFIXES[version] + h.hexdigest()


def hub_commit(model: str, revision: str | None) -> str | None:
    """``hub:<commit>``: the commit that ``revision`` (None: the default branch) of the hub repository
    ``model`` names now, as the hub answers, or the local cache where the hub is not reached; None where
    neither knows it (loading the model then says why). The run loads that commit, and a resume whose
    revision has moved since is refused: one output, one model."""
    from fastbert.config import GOOGLE_CONFIG_NAME
    from fastbert.hub import HubOptions, resolve_file

    path = None
    # config.json at the top; an older sentence-transformers repository has none there (it keeps it in
    # modules.json's 0_Transformer), but a modules.json; a Google checkpoint's, only bert_config.json (which
    # fastbert loads, with its TF1 checkpoint): any file at the top gives the snapshot
    for name in ("config.json", "modules.json", GOOGLE_CONFIG_NAME):
        try:
            path = resolve_file(model, name, HubOptions(revision=revision), required=False)
        except OSError:
            return None
        if path:
            break
    snapshot = os.path.dirname(path) if path else ""
    if os.path.basename(os.path.dirname(snapshot)) != "snapshots":  # pragma: no cover - not a hub cache
        return None
    return "hub:" + os.path.basename(snapshot)


def pinned_commit(fingerprint: Any) -> str | None:
    """The hub commit a model fingerprint records (:func:`hub_commit`'s ``hub:<commit>``); None for another."""
    if isinstance(fingerprint, str) and fingerprint.startswith("hub:"):
        return fingerprint.removeprefix("hub:")
    return None


def _sampled_content(path: str, size: int) -> bytes:
    """sha256 of ``FINGERPRINT_BLOCKS`` blocks of a file spread over it (the file whole when smaller)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if size <= FINGERPRINT_BLOCK * FINGERPRINT_BLOCKS:
            h.update(f.read())
        else:
            last = size - FINGERPRINT_BLOCK
            for k in range(FINGERPRINT_BLOCKS):
                f.seek(last * k // (FINGERPRINT_BLOCKS - 1))
                h.update(f.read(FINGERPRINT_BLOCK))
    return h.digest()
