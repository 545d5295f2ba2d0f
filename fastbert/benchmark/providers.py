"""Providers: the ways a row can be run (fastbert's backends, transformers, torch.compile, ONNX Runtime,
OpenVINO, sentence-transformers). Each says whether it can run here (and the ``pip install`` that
would make it run), builds a callable once per model x task x dtype, and that callable runs a batch.

Two kinds: ``tensor`` providers take the tokenizer's tensors (``input_ids``, ``token_type_ids``,
``attention_mask``) and return the task's output tensor; ``sentences`` providers (sentence-transformers)
take a list of strings and return one embedding per string.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import torch

from fastbert.benchmark.workloads import Shape, fastbert_model, hf_variant, inputs_for, task_output

RunFn = Callable[[Any], torch.Tensor]


@dataclass
class BuildContext:
    """What a provider needs to build its callable. ``source``: transformers' fp32 model of the row
    (``tensor`` providers); ``st_folder``/``batch_size``: the sentence-transformers model and batch size
    (``sentences`` providers); ``cache``: shared by the providers of one model x task (an ONNX export)."""

    task: str
    dtype: torch.dtype
    device: str
    source: Any = None
    max_batch: int = 1
    max_seqlen: int = 128
    compile_dynamic: bool | None = None
    st_folder: str | None = None
    batch_size: int = 32
    cache: dict[str, Any] = field(default_factory=dict)


@dataclass
class Provider:
    """A way to run a row. ``unavailable(device, dtype)`` says why it cannot run here (None: it can);
    ``build(ctx)`` returns the callable. ``quantized`` rivals are judged by cosine similarity.
    ``converts``: the provider runs fastbert's model of the row's family (converted from transformers'),
    so it is skipped, with the reason, for a ``model_type`` fastbert's registry does not have."""

    name: str
    description: str
    build: Callable[[BuildContext], RunFn]
    unavailable: Callable[[str, torch.dtype], str | None] = lambda device, dtype: None
    quantized: bool = False
    kind: str = "tensor"
    converts: bool = False


def package_version(name: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _cuda(device: str) -> bool:
    return str(device).startswith("cuda")


# --------------------------------------------------------------------------------------------------
# availability
# --------------------------------------------------------------------------------------------------


def _needs(*modules_and_pip: tuple[str, str]) -> str | None:
    for module, pip in modules_and_pip:
        if not _has_module(module):
            return f"{module} is not installed (pip install {pip})"
    return None


def _transformers_missing(device: str, dtype: torch.dtype) -> str | None:
    return _needs(("transformers", "transformers"))


def _fastbert_sdpa_missing(device: str, dtype: torch.dtype) -> str | None:
    return _transformers_missing(device, dtype)  # fastbert converts transformers' model of the row


def _interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _triton_missing(device: str, dtype: torch.dtype) -> str | None:
    if not _cuda(device) and not _interpreted():  # the interpreter runs the kernels on CPU tensors (dry runs)
        return "needs a CUDA GPU (or TRITON_INTERPRET=1 for a dry run)"
    return _needs(("triton", "triton"), ("transformers", "transformers"))


def _graphs_missing(device: str, dtype: torch.dtype) -> str | None:
    return "needs a CUDA GPU" if not _cuda(device) else _triton_missing(device, dtype)


def _compile_missing(device: str, dtype: torch.dtype) -> str | None:
    missing = _transformers_missing(device, dtype)
    if missing:
        return missing
    if not _cuda(device) and not (shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")):
        return "torch.compile on CPU needs a C++ compiler (apt-get install g++)"
    if _cuda(device) and not _has_module("triton"):
        return "torch.compile on CUDA needs triton (pip install triton)"
    return None


def _fp32_cpu_only(device: str, dtype: torch.dtype) -> str | None:
    if dtype != torch.float32:
        return "benchmarked in fp32 only"
    if _cuda(device):
        return "benchmarked on the CPU only"
    return None


def _onnx_missing(device: str, dtype: torch.dtype) -> str | None:
    missing = _needs(("onnxruntime", "onnxruntime onnx"), ("onnx", "onnx"), ("transformers", "transformers"))
    if missing:
        return missing
    if dtype != torch.float32:
        return "benchmarked in fp32 only"
    if _cuda(device):
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            return "onnxruntime has no CUDAExecutionProvider here (pip install onnxruntime-gpu)"
    return None


def _ort_rival_missing(device: str, dtype: torch.dtype) -> str | None:
    return _onnx_missing(device, dtype) or _fp32_cpu_only(device, dtype)


def _openvino_missing(device: str, dtype: torch.dtype) -> str | None:
    return _needs(
        ("openvino", "openvino onnx"), ("onnx", "onnx"), ("transformers", "transformers")
    ) or _fp32_cpu_only(device, dtype)


def _openvino_int8_missing(device: str, dtype: torch.dtype) -> str | None:
    return _openvino_missing(device, dtype) or _needs(("nncf", "nncf"))


def _st_missing(device: str, dtype: torch.dtype) -> str | None:
    return _needs(("sentence_transformers", "sentence-transformers"))


def _st_fastbert_missing(device: str, dtype: torch.dtype) -> str | None:
    missing = _st_missing(device, dtype)
    if missing:
        return missing
    import fastbert

    try:
        fastbert.accelerate  # noqa: B018 (lazy: imports the module)
    except (AttributeError, ImportError):
        return "fastbert.accelerate not available"
    return None


def _optimum_broken(module: str) -> str | None:
    """Why optimum's exporter ``module`` cannot run with the installed transformers (optimum's ONNX and
    OpenVINO backends pin transformers below 4.58: with transformers 5 their exporters fail to import), or
    None when it imports."""
    try:
        importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - whatever the exporter's import raises is the reason
        import transformers

        return (
            f"{module} does not import with transformers {transformers.__version__} ({type(e).__name__}: {e})"
        )
    return None


def _st_onnx_missing(device: str, dtype: torch.dtype) -> str | None:
    return (
        _st_missing(device, dtype)
        or _needs(("optimum.onnxruntime", "'sentence-transformers[onnx]'"))
        or (None if dtype == torch.float32 else "benchmarked in fp32 only")
        or _optimum_broken("optimum.exporters.onnx.convert")
    )


def _st_openvino_missing(device: str, dtype: torch.dtype) -> str | None:
    return (
        _st_missing(device, dtype)
        or _needs(("optimum.intel", "'sentence-transformers[openvino]'"))
        or _fp32_cpu_only(device, dtype)
        or _optimum_broken("optimum.exporters.openvino")
    )


# --------------------------------------------------------------------------------------------------
# builders
# --------------------------------------------------------------------------------------------------


def _wrap(model, task: str) -> RunFn:
    def run(inputs):
        return task_output(task, model(**inputs), inputs["attention_mask"])

    run.model = model  # what :func:`fallback_reasons` reads
    return run


def fallback_reasons(fn: RunFn) -> list[str]:
    """The fallbacks the fastbert model behind a provider's callable warned of (``fastbert-triton`` on a head
    dim over the kernel's runs the sdpa path, with a warning): a row timed under the provider's name would
    time another backend. Empty for a callable with no fastbert model behind it."""
    from fastbert.model_api import fallbacks_of

    model = getattr(fn, "model", None)
    return fallbacks_of(model) if isinstance(model, torch.nn.Module) else []


def _build_hf(impl: str, dtype: torch.dtype | None = None) -> Callable[[BuildContext], RunFn]:
    """transformers with an attention implementation, in the row's dtype or, for the reduced-precision
    rows that sit beside the fp32 ones, in ``dtype``."""

    def build(ctx: BuildContext) -> RunFn:
        return _wrap(hf_variant(ctx.source, impl, dtype or ctx.dtype), ctx.task)

    return build


def _allow_recompiles() -> None:
    """A graph per shape (``dynamic=False``): keep them all instead of falling back to eager."""
    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, name, max(getattr(config, name), 64))


def _build_hf_compile(mode: str | None) -> Callable[[BuildContext], RunFn]:
    def build(ctx: BuildContext) -> RunFn:
        model = hf_variant(ctx.source, "sdpa", ctx.dtype)
        if ctx.compile_dynamic is False:
            _allow_recompiles()
        kwargs = {"mode": mode} if mode else {}
        return _wrap(torch.compile(model, dynamic=ctx.compile_dynamic, **kwargs), ctx.task)

    return build


def _build_fastbert(
    impl: str, graphs: bool | str | None = None, compiled: bool = False
) -> Callable[[BuildContext], RunFn]:
    """``graphs``: None, the default (CUDA graphs by their default rules on CUDA); True, every shape of the
    row replayed (``cuda_graphs()`` sized to the rows); ``"packed"``, the default limits with batches that
    have padding replayed packed (``cuda_graphs(packed=True)``); False, the eager forward."""

    def build(ctx: BuildContext) -> RunFn:
        backend = ("triton" if _cuda(ctx.device) else "sdpa") if impl == "default" else impl
        model = fastbert_model(ctx.source, backend, ctx.dtype)
        if graphs == "packed":
            from ..core.cuda_graphs import AUTO_LIMITS

            limit = model.config.max_position_embeddings
            limits = dict(AUTO_LIMITS, max_seqlen=min(AUTO_LIMITS["max_seqlen"], limit))
            model = model.cuda_graphs(**limits, packed=True) or model
        elif graphs:
            max_seqlen = min(ctx.max_seqlen, model.config.max_position_embeddings)
            model = model.cuda_graphs(max_batch=ctx.max_batch, max_seqlen=max_seqlen) or model
        elif graphs is False or compiled:
            model = model.cuda_graphs(enabled=False) or model
        if compiled:
            if ctx.compile_dynamic is False:
                _allow_recompiles()
            model = torch.compile(model, dynamic=ctx.compile_dynamic)
        return _wrap(model, ctx.task)

    return build


def _tokenizer_path(model) -> str | None:
    path = getattr(model.config, "_name_or_path", None) or getattr(model.config, "name_or_path", None)
    return str(path) if path and os.path.isdir(str(path)) else None


def _build_fastbert_precision(precision: str) -> Callable[[BuildContext], RunFn]:
    """fastbert 'sdpa' in bf16 or int8 (fastbert.quantize, calibrated on its built-in sentences) whatever
    the row's dtype: these rows sit beside the fp32 ones."""

    def build(ctx: BuildContext) -> RunFn:
        import fastbert

        if precision == "bf16":
            return _wrap(fastbert_model(ctx.source, "sdpa", torch.bfloat16), ctx.task)
        model = fastbert_model(ctx.source, "sdpa", torch.float32)
        path = _tokenizer_path(ctx.source)
        tokenizer = fastbert.AutoTokenizer.from_pretrained(path) if path else None
        calibration = None
        if tokenizer is None:  # random weights: calibrate on random ids
            g = torch.Generator().manual_seed(0)
            ids = torch.randint(5, model.config.vocab_size, (8, 64), generator=g)
            calibration = [{"input_ids": ids, "attention_mask": torch.ones_like(ids)}]
        fastbert.quantize(model, "int8", tokenizer=tokenizer, calibration=calibration)
        _check_reduced(model, "int8")
        return _wrap(model, ctx.task)

    return build


def _check_reduced(model, method: str) -> None:
    """A RuntimeError when ``fastbert.quantize`` left no linear of ``model`` in ``method`` (calibration kept
    them all in fp32, with a warning): the row would time fp32 under the int8 provider's name."""
    reports = {id(r): r for m in model.modules() if (r := m.__dict__.get("quantization")) is not None}
    if not any(getattr(r, "reduced", 0) for r in reports.values()):
        said = "; ".join(map(repr, reports.values())) or "not quantized"
        raise RuntimeError(
            f"no linear runs {method} ({said}): the model runs fp32, and a row under this provider's name "
            "would time fp32"
        )


def _precision_missing(precision: str) -> Callable[[str, torch.dtype], str | None]:
    def missing(device: str, dtype: torch.dtype) -> str | None:
        if _cuda(device):
            return "a CPU row (fastbert's CUDA int8/FP8 rows are in benchmarks/gpu_check.sh)"
        if precision == "int8":
            from fastbert.quant.int8 import int8_available

            return None if int8_available() else "torch without oneDNN int8 ops"
        return None

    return missing


def _onnx_names(config) -> list[str]:
    """The inputs of the ONNX export: ``input_ids``, ``token_type_ids`` where the family has token types,
    ``attention_mask``."""
    return list(inputs_for(config, Shape(batch=1, seqlen=2), "cpu"))


def export_onnx(ctx: BuildContext) -> str:
    """transformers' fp32 eager model of the row (with the task's output) as ONNX, once per context."""
    if "onnx" in ctx.cache:
        return ctx.cache["onnx"]
    model = hf_variant(ctx.source, "eager", torch.float32).cpu()
    task = ctx.task

    class _Export(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            inputs = dict(zip(names, tensors))
            return task_output(task, self.model(**inputs), inputs["attention_mask"])

    names = _onnx_names(ctx.source.config)
    example = inputs_for(ctx.source.config, Shape(batch=2, seqlen=16), "cpu")
    example["attention_mask"][0, 9:] = 0  # padded while traced: no all-ones shortcut in the graph
    tmp = ctx.cache.setdefault("tmpdir", tempfile.mkdtemp(prefix="fastbert-bench-"))
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
    ctx.cache["onnx"] = path
    return path


def _ort_session(path: str, device: str):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    providers = ["CUDAExecutionProvider"] if _cuda(device) else ["CPUExecutionProvider"]
    session = ort.InferenceSession(path, options, providers=providers)
    names = [i.name for i in session.get_inputs()]

    def run(inputs):
        feed = {n: inputs[n].cpu().numpy() for n in names}
        return torch.from_numpy(session.run(None, feed)[0]).to(device)

    return run


def _build_ort(ctx: BuildContext) -> RunFn:
    return _ort_session(export_onnx(ctx), ctx.device)


def _ort_optimized_path(ctx: BuildContext) -> str:
    if "onnx-optimized" in ctx.cache:
        return ctx.cache["onnx-optimized"]
    from onnxruntime.transformers.optimizer import optimize_model

    config = ctx.source.config
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimized = optimize_model(
            export_onnx(ctx),
            model_type="bert",
            num_heads=config.num_attention_heads,
            hidden_size=config.hidden_size,
        )
    path = os.path.join(ctx.cache["tmpdir"], "model-optimized.onnx")
    optimized.save_model_to_file(path)
    ctx.cache["onnx-optimized"] = path
    return path


def _build_ort_optimized(ctx: BuildContext) -> RunFn:
    return _ort_session(_ort_optimized_path(ctx), ctx.device)


def _build_ort_int8(ctx: BuildContext) -> RunFn:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = os.path.join(
        ctx.cache.setdefault("tmpdir", tempfile.mkdtemp(prefix="fastbert-bench-")), "int8.onnx"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(export_onnx(ctx), path, weight_type=QuantType.QInt8)
    return _ort_session(path, ctx.device)


def _build_openvino(int8: bool, precision: str = "f32") -> Callable[[BuildContext], RunFn]:
    """OpenVINO on the fp32 ONNX export: ``precision`` its inference precision hint ("f32", or "bf16" for
    the row beside fastbert-bf16), ``int8`` with int8 weights."""

    def build(ctx: BuildContext) -> RunFn:
        import openvino as ov

        core = ov.Core()
        model = core.read_model(export_onnx(ctx))
        if int8:  # data-free: int8 weights, fp32 activations (no calibration set)
            import logging

            import nncf

            nncf.set_log_level(logging.ERROR)  # no statistics table or progress bar in the bench log
            model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
        config = {
            "INFERENCE_NUM_THREADS": torch.get_num_threads(),
            "INFERENCE_PRECISION_HINT": precision,  # f32: else bf16 on CPUs that have it
            "PERFORMANCE_HINT": "LATENCY",
        }
        compiled = core.compile_model(model, "CPU", config)
        output = compiled.output(0)
        names = _onnx_names(ctx.source.config)

        def run(inputs):
            feed = {n: inputs[n].cpu().numpy() for n in names}
            return torch.from_numpy(compiled(feed)[output].copy())

        return run

    return build


def _st_model(ctx: BuildContext, model_path: str | None = None, **kwargs):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_path or ctx.st_folder, device=ctx.device, **kwargs)
    if not kwargs.get("backend"):
        model = model.to(ctx.dtype)
    return model.eval()


def _encode(model, batch_size: int) -> RunFn:
    def run(sentences):
        with torch.inference_mode():
            out = model.encode(
                sentences, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False
            )
        return torch.as_tensor(out)

    return run


def _st_onnx_int8(ctx: BuildContext):
    """sentence-transformers' own int8 recipe (its efficiency docs): the ONNX export of a copy of the folder,
    ``export_dynamic_quantized_onnx_model`` with the config for this CPU's instructions, loaded back."""
    import shutil

    from sentence_transformers.backend import export_dynamic_quantized_onnx_model

    from fastbert.quant.dtypes import cpu_flags

    folder = os.path.join(
        ctx.cache.setdefault("tmpdir", tempfile.mkdtemp(prefix="fastbert-bench-")), "st-onnx"
    )
    shutil.copytree(ctx.st_folder, folder, dirs_exist_ok=True)
    flags = cpu_flags()
    config = "avx512_vnni" if "avx512_vnni" in flags else "avx512" if "avx512f" in flags else "avx2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_dynamic_quantized_onnx_model(_st_model(ctx, backend="onnx", model_path=folder), config, folder)
    return _st_model(
        ctx, backend="onnx", model_path=folder, model_kwargs={"file_name": f"onnx/model_qint8_{config}.onnx"}
    )


def _build_st(backend: str) -> Callable[[BuildContext], RunFn]:
    def build(ctx: BuildContext) -> RunFn:
        if backend == "fastbert":
            import fastbert

            model = fastbert.accelerate(_st_model(ctx))
        elif backend == "fastbert-int8":
            import fastbert

            model = fastbert.accelerate(_st_model(ctx), quantization="int8")
            _check_reduced(model, "int8")
        elif backend == "fastbert-bf16":
            import fastbert

            model = fastbert.accelerate(_st_model(ctx), dtype=torch.bfloat16)
        elif backend == "torch":
            model = _st_model(ctx)
        elif backend == "torch-bf16":  # sentence-transformers' own bf16: the rival of fastbert's
            model = _st_model(ctx).to(torch.bfloat16)
        elif backend == "onnx-int8":
            model = _st_onnx_int8(ctx)
        else:
            kwargs = {"backend": backend}
            if backend == "openvino":
                kwargs["model_kwargs"] = {"ov_config": {"INFERENCE_PRECISION_HINT": "f32"}}
            model = _st_model(ctx, **kwargs)
        return _encode(model, ctx.batch_size)

    return build


PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in [
        Provider(
            "fastbert-triton",
            "fastbert, attn_implementation='triton' (fused Triton kernels; on CUDA, CUDA graphs by their "
            "default rules, else packed tokens)",
            _build_fastbert("triton"),
            _triton_missing,
            converts=True,
        ),
        Provider(
            "fastbert-triton-eager",
            "fastbert 'triton' without CUDA graphs (model.cuda_graphs(enabled=False): packed tokens, a launch "
            "per kernel)",
            _build_fastbert("triton", graphs=False),
            _triton_missing,
            converts=True,
        ),
        Provider(
            "fastbert-triton-graphs",
            "fastbert 'triton' with every shape of the row replayed through CUDA graphs "
            "(model.cuda_graphs(max_batch, max_seqlen) sized to the rows)",
            _build_fastbert("triton", graphs=True),
            _graphs_missing,
            converts=True,
        ),
        Provider(
            "fastbert-triton-packed",
            "fastbert 'triton' with the default CUDA-graph limits, batches with padding replayed packed "
            "(model.cuda_graphs(packed=True): the layers run on the real tokens, not the padded bucket)",
            _build_fastbert("triton", graphs="packed"),
            _graphs_missing,
            converts=True,
        ),
        Provider(
            "fastbert-sdpa",
            "fastbert, attn_implementation='sdpa' (plain torch ops on packed tokens, padding removed once; on "
            "CUDA in fp16/bf16 the attention is torch's varlen flash attention, torch.nn.attention.varlen)",
            _build_fastbert("sdpa"),
            _fastbert_sdpa_missing,
            converts=True,
        ),
        Provider(
            "fastbert-compile",
            "torch.compile(fastbert) ('triton' on CUDA, 'sdpa' on the CPU)",
            _build_fastbert("default", compiled=True),
            _compile_missing,
            converts=True,
        ),
        Provider(
            "hf-eager", "transformers, attn_implementation='eager'", _build_hf("eager"), _transformers_missing
        ),
        Provider(
            "hf-sdpa",
            "transformers, attn_implementation='sdpa' (the baseline of every ratio)",
            _build_hf("sdpa"),
            _transformers_missing,
        ),
        Provider(
            "hf-compile", "torch.compile(transformers' sdpa model)", _build_hf_compile(None), _compile_missing
        ),
        Provider(
            "hf-compile-max-autotune",
            "torch.compile(transformers' sdpa model, mode='max-autotune-no-cudagraphs')",
            _build_hf_compile("max-autotune-no-cudagraphs"),
            _compile_missing,
        ),
        Provider(
            "onnxruntime",
            "ONNX Runtime session of transformers' model exported to ONNX (fp32, no graph optimizer)",
            _build_ort,
            _onnx_missing,
        ),
        Provider(
            "ort-optimized",
            "ONNX Runtime fp32 after its BERT optimizer (onnxruntime.transformers.optimizer, fused ops)",
            _build_ort_optimized,
            _ort_rival_missing,
        ),
        Provider(
            "ort-int8",
            "ONNX Runtime dynamic int8 (onnxruntime.quantization.quantize_dynamic of the fp32 export)",
            _build_ort_int8,
            _ort_rival_missing,
            quantized=True,
        ),
        Provider(
            "openvino",
            "OpenVINO fp32 (the ONNX export read by openvino, INFERENCE_PRECISION_HINT=f32)",
            _build_openvino(int8=False),
            _openvino_missing,
        ),
        Provider(
            "openvino-int8",
            "OpenVINO with int8 weights (nncf.compress_weights, data-free: no calibration set)",
            _build_openvino(int8=True),
            _openvino_int8_missing,
            quantized=True,
        ),
        Provider(
            "st-torch",
            "sentence-transformers encode(), its torch backend (the baseline of the sentence rows)",
            _build_st("torch"),
            _st_missing,
            kind="sentences",
        ),
        Provider(
            "st-fastbert",
            "fastbert.accelerate(SentenceTransformer(...)).encode()",
            _build_st("fastbert"),
            _st_fastbert_missing,
            kind="sentences",
        ),
        Provider(
            "st-onnx",
            "sentence-transformers encode() with backend='onnx'",
            _build_st("onnx"),
            _st_onnx_missing,
            kind="sentences",
        ),
        Provider(
            "st-openvino",
            "sentence-transformers encode() with backend='openvino'",
            _build_st("openvino"),
            _st_openvino_missing,
            kind="sentences",
        ),
        # reduced precision (issue 28): beside the fp32 rows, judged by cosine
        Provider(
            "hf-bf16",
            "transformers, attn_implementation='sdpa', in bfloat16 (the bf16 rival of fastbert-bf16)",
            _build_hf("sdpa", torch.bfloat16),
            _precision_missing("bf16"),
            quantized=True,
        ),
        Provider(
            "openvino-bf16",
            "OpenVINO with INFERENCE_PRECISION_HINT bf16 (its default on CPUs with avx512_bf16 / AMX; the row "
            "beside fastbert-bf16)",
            _build_openvino(int8=False, precision="bf16"),
            _openvino_missing,
            quantized=True,
        ),
        Provider(
            "st-onnx-int8",
            "sentence-transformers encode() with backend='onnx' on export_dynamic_quantized_onnx_model's int8 "
            "file (avx512_vnni / avx512 / avx2 config by this CPU)",
            _build_st("onnx-int8"),
            _st_onnx_missing,
            kind="sentences",
            quantized=True,
        ),
        Provider(
            "st-torch-bf16",
            "sentence-transformers encode() with the torch backend in bfloat16 (model.to(torch.bfloat16))",
            _build_st("torch-bf16"),
            _st_missing,
            kind="sentences",
            quantized=True,
        ),
        Provider(
            "fastbert-bf16",
            "fastbert 'sdpa' in bfloat16 (oneDNN bf16 linears; native with avx512_bf16/AMX, emulated else)",
            _build_fastbert_precision("bf16"),
            _precision_missing("bf16"),
            quantized=True,
            converts=True,
        ),
        Provider(
            "fastbert-int8",
            "fastbert 'sdpa' with fastbert.quantize(model, 'int8') (per-channel weights, per-token activations)",
            _build_fastbert_precision("int8"),
            _precision_missing("int8"),
            quantized=True,
            converts=True,
        ),
        Provider(
            "st-fastbert-int8",
            "fastbert.accelerate(SentenceTransformer(...), quantization='int8').encode()",
            _build_st("fastbert-int8"),
            _st_fastbert_missing,
            kind="sentences",
            quantized=True,
        ),
        Provider(
            "st-fastbert-bf16",
            "fastbert.accelerate(SentenceTransformer(...), dtype=torch.bfloat16).encode()",
            _build_st("fastbert-bf16"),
            _st_fastbert_missing,
            kind="sentences",
            quantized=True,
        ),
    ]
}
