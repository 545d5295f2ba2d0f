"""CUDA graphs for small batches, as a wrapper around a model's encoder: capture once per bucketed shape,
replay after.

At batch 1 × 128 a BERT-base forward is a few dozen kernel launches of a few microseconds each: the
launch overhead, not the math, sets the latency. A CUDA graph replays the whole forward as one launch.

``install(model, ...)`` (what ``model.cuda_graphs(...)`` calls) puts a :class:`GraphRunner` in front of
the base model's ``encode`` (an instance attribute: the model's code knows nothing of graphs). The runner
serves the calls it covers and hands every other call to the model's own ``encode``.

Shapes are bucketed — batch to the next power of two (up to ``max_batch``), sequence length to the next
of 16, 32, 64, 128, 256, 384, 512 (up to ``max_seqlen``) — so a new shape inside the buckets reuses a
captured graph, and the number of graphs stays small. The input is copied into the bucket's static
buffers with its attention mask; the fill (extra rows, extra columns) is masked out, and the kernels give
fully masked rows zeros. By default a graph runs the bucket padded, with a key-padding mask (and the per-row
key lengths, on the device, where the attention kernel takes them). **Packed graphs** (``packed=True``): a
batch with padding is packed on the device before the replay, into the static buffers of a graph captured
for its bucket and its real tokens rounded up by an eighth of the bucket (``packed_rows``): the mask's lengths,
their offsets (``cu_seqlens``) and the real tokens' positions, then filler rows that belong to no sequence;
the graph runs the packed forward on those rows (a static :class:`~fastbert.core.padding.Packing`, no host read
inside), and the real rows are re-padded after it. The ids are validated once per call, with one host read
(with the mask's lengths: a batch whose mask has no real token at all runs the model's own forward).

A graph reads the weights by address. Each call compares the parameters' and buffers' addresses with those
the graphs were captured on (about 20 us for BERT-base): in-place edits (``copy_``, ``load_state_dict``) are
seen by the next replay, and anything that puts a weight elsewhere (``half()``, another device,
``load_state_dict(assign=True)``, ``module.weight = Parameter(...)``, ``p.data = ...``, a replaced module) makes
the next call capture again; a no-op ``.to()`` keeps the graphs, and a model moved off their GPU frees them at
once. The runner lists the model's tensors again after a move (``weights_version``) or any registration of a
parameter, buffer or submodule anywhere (torch's global registration hooks). :meth:`GraphRunner.invalidate`
drops the graphs by hand. A quantized model's graphs also read its reduced copies (:mod:`fastbert.quant`) by
address: any in-place edit of its parameters, :func:`fastbert.quant.refresh`, ``dequantize()`` or quantizing
after a capture makes the next call capture again (its warm-up packs a stale copy again). A call under ``torch.autocast`` runs the normal forward (there the triton backend
falls back to sdpa: its kernels take one dtype, and autocast keeps the residual stream in fp32 while the GEMMs
run in half precision, as transformers does). A model with a forward hook
(its own modules' or a global one), a patched ``forward`` or a module type other than torch's and fastbert's
(PEFT's LoRA layers, a parametrization: they decide in Python at each call what a replay would freeze) runs
the normal forward. The runner holds its model weakly: deleting the model frees it and its graphs.

**On by default** for the triton backend on CUDA (``auto_install``, from the engine's ``encode``): the first
covered call installs a runner with ``AUTO_LIMITS`` — batches up to 64, lengths up to 512, at most 16,384
positions a bucket, and a bucket of more than 4,096 positions only when the real tokens fill at least a
quarter of it (``AUTO_MIN_FILL``; else the batch runs packed). Why on by default: the eager triton path is
bound by the host's kernel launches on a fast GPU, and a replayed graph is not; a padded bucket replays
faster than the packed forward while the padding stays moderate, and the quarter bounds the padding's
arithmetic at 4x the real tokens on a GPU slow enough for the arithmetic to matter (the measurements:
benchmarks/results/code-notes.md, "CUDA graphs on by default").
``model.cuda_graphs(enabled=False)`` or ``FASTBERT_CUDA_GRAPHS=0`` (read at import) turn it off;
``model.cuda_graphs(...)`` sets limits of its own. A capture that fails (an op that reads the device on the
host, say) warns once, and batches of that bucket run the normal forward (with packed graphs: a failed
packed graph leaves the bucket's padded graph in use, and the other way round). Calls are serialised (a lock, and
each call's work waits for the previous call's on its stream), so threads and streams may share a model;
captures take a process-wide lock and capture thread-locally, so other threads' CUDA work meanwhile neither
fails nor breaks them.
"""

from __future__ import annotations

import dataclasses
import itertools
import operator
import os
import threading
import warnings
import weakref

import torch
from torch.nn.modules import module as _torch_module

from .padding import Packing

SEQLEN_BUCKETS = (16, 32, 64, 128, 256, 384, 512)
ENV = "FASTBERT_CUDA_GRAPHS"
#: the runner ``auto_install`` puts in front of a CUDA triton model on its first covered call
AUTO_LIMITS = dict(max_batch=64, max_seqlen=512, max_tokens=16384)
#: above this many tokens a bucket, the auto runner replays only batches whose real tokens fill at least
#: AUTO_MIN_FILL of the bucket (below it every forward is bound by the host's launches, padded or not)
AUTO_FILL_FROM_TOKENS = 4096
AUTO_MIN_FILL = 0.25


def _auto_from_env() -> bool:
    raw = os.environ.get(ENV, "").strip().lower()
    if raw in ("", "1", "auto", "on", "true", "yes", "packed"):
        return True
    if raw in ("0", "off", "false", "no"):
        return False
    raise ValueError(f"{ENV} must be 1/auto/on, packed or 0/off, got {raw!r}")


#: CUDA graphs by default (``FASTBERT_CUDA_GRAPHS``, read when this module is first imported)
AUTO: bool = _auto_from_env()
#: ``FASTBERT_CUDA_GRAPHS=packed``: the default runner replays batches with padding packed (``packed=True``)
AUTO_PACKED: bool = os.environ.get(ENV, "").strip().lower() == "packed"
#: a packed graph's rows: the real tokens rounded up by 1/PACKED_STEPS of the bucket (at least PACKED_MIN_STEP)
PACKED_STEPS = 8
PACKED_MIN_STEP = 64

#: bumped whenever any module registers a parameter, buffer or submodule (torch's global registration
#: hooks): a runner then lists its model's tensors again before trusting its graphs' addresses
_REGISTRATIONS = [0]
_INSTALL_LOCK = threading.Lock()
#: one capture at a time in the process (a capture of another model on another thread included)
_CAPTURE_LOCK = threading.Lock()
#: module types whose forward is the one captured: torch's own layers and fastbert's (a PEFT layer, a
#: parametrization, anything else decides in Python at each call what a replay would freeze)
_PLAIN_MODULES = ("torch.nn.modules.", "fastbert.")


def _foreign(module) -> bool:
    return not type(module).__module__.startswith(_PLAIN_MODULES)


def _global_hooks() -> bool:
    return bool(_torch_module._global_forward_hooks or _torch_module._global_forward_pre_hooks)


def _registered(*_args):
    _REGISTRATIONS[0] += 1


for _hook in (
    _torch_module.register_module_parameter_registration_hook,
    _torch_module.register_module_buffer_registration_hook,
    _torch_module.register_module_module_registration_hook,
):
    _hook(_registered)


def _buckets(limit: int, candidates) -> tuple[int, ...]:
    out = [c for c in candidates if c < limit]
    return tuple(out) + (limit,)


def _flag(value, default) -> bool:
    """A forward flag as the model resolves it: the argument, else the config's default."""
    return bool(default if value is None else value)


def _base(model):
    prefix = getattr(model, "base_model_prefix", "")
    return getattr(model, prefix, model) if prefix else model


def install(model, enabled: bool = True, runner=None, **limits):
    """Serve ``model``'s small triton calls from CUDA graphs (``enabled=False``: stop, and no runner is
    installed by default either): ``runner``, or a :class:`GraphRunner` with ``limits`` (its keyword
    arguments). Returns the runner."""
    base = _base(model)
    if not enabled:
        base.__dict__.pop("encode", None)
        base._graphs_auto = False
        return None
    if base.device.type != "cuda":
        raise ValueError("CUDA graphs need the model on a CUDA device")
    runner = runner or GraphRunner(base, **limits)
    base.__dict__["encode"] = runner
    return runner


def auto_install(model) -> GraphRunner | None:
    """The default runner of a base model on its first CUDA call (the engine's ``encode`` asks), or None where
    graphs are off or cannot serve it: ``FASTBERT_CUDA_GRAPHS=0``, another backend than triton, a model in
    training, a call inside torch.compile or inside a capture."""
    if (
        not AUTO
        or model.training
        or model.attn_implementation != "triton"
        or torch.compiler.is_compiling()
        or torch.jit.is_tracing()
        or torch.cuda.is_current_stream_capturing()
        or model.device.type != "cuda"
    ):
        return None
    with _INSTALL_LOCK:  # two threads' first calls: one runner
        found = model.__dict__.get("encode")
        if isinstance(found, GraphRunner):
            return found
        limit, _ = model._length_limit()
        runner = GraphRunner(
            model,
            AUTO_LIMITS["max_batch"],
            min(AUTO_LIMITS["max_seqlen"], limit),
            max_tokens=AUTO_LIMITS["max_tokens"],
            min_fill=AUTO_MIN_FILL,
            fill_from_tokens=AUTO_FILL_FROM_TOKENS,
            auto=True,
            packed=AUTO_PACKED,
        )
        model.__dict__["encode"] = runner
        return runner


def runner_of(model) -> GraphRunner | None:
    """The runner installed on ``model`` (None when CUDA graphs are off)."""
    found = _base(model).__dict__.get("encode")
    return found if isinstance(found, GraphRunner) else None


def _interrupted(err: BaseException) -> bool:
    """Whether ``err`` was raised while an interrupt was propagating: a ``BaseException`` that is no
    ``Exception`` (KeyboardInterrupt, a time limit's signal) in its ``__cause__`` / ``__context__`` chain (a
    capture's ``__exit__`` failing on the capture the interrupt broke)."""
    seen: set[int] = set()
    cur: BaseException | None = err
    while cur is not None and id(cur) not in seen:
        if not isinstance(cur, Exception):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


class GraphRunner:
    """Captured graphs of one base model, keyed by (batch bucket, length bucket, packed rows, dtype).

    The runner holds its model weakly (the model holds the runner): deleting the model frees it and its
    graphs at once."""

    def __init__(
        self,
        model,
        max_batch: int = 8,
        max_seqlen: int = 128,
        warmup: int = 2,
        max_tokens: int | None = None,
        min_fill: float = 0.0,
        fill_from_tokens: int = 0,
        auto: bool = False,
        packed: bool = False,
    ):
        if max_batch < 1 or max_seqlen < 1:
            raise ValueError("max_batch and max_seqlen must be positive")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}")
        if not 0.0 <= min_fill <= 1.0:
            raise ValueError(f"min_fill must lie in [0, 1], got {min_fill}")
        limit, why = model._length_limit()  # the family's longest input (RoBERTa: after the padding index)
        if max_seqlen > limit:
            raise ValueError(f"max_seqlen={max_seqlen} exceeds {why}")
        self._model = weakref.ref(model)
        self.max_batch = max_batch
        self.max_seqlen = max_seqlen
        self.batch_buckets = _buckets(max_batch, [2**i for i in range(12)])
        self.seqlen_buckets = _buckets(max_seqlen, SEQLEN_BUCKETS)
        #: largest bucket (batch x length) replayed; None: any inside max_batch x max_seqlen
        self.max_tokens = max_tokens
        #: a bucket of more than ``fill_from_tokens`` tokens is replayed only when the real tokens fill at
        #: least ``min_fill`` of it (0: always, without reading the lengths)
        self.min_fill = min_fill
        self.fill_from_tokens = fill_from_tokens
        self.auto = auto  # installed by default: a failed capture warns and runs that bucket eagerly
        #: batches with padding replay packed: a graph per (bucket, rows) runs the layers on the real tokens
        #: and a few filler rows only (``min_fill`` then does not apply)
        self.packed = packed
        #: ((batch, length) bucket, packed) whose capture or replay failed, with why: such calls run the
        #: normal forward (a failed packed graph leaves the bucket's padded graph in use, and the other way)
        self.failures: dict[tuple[tuple[int, int], bool], str] = {}
        self.warmup = warmup
        self.lock = threading.Lock()
        self.done: torch.cuda.Event | None = None  # the previous call's last work, on its stream
        self._tensors: list[torch.Tensor] | None = None
        self._params = 0  # how many of _tensors are parameters (the buffers follow)
        self._addresses: list[int] | None = None
        self._hook_dicts: list[dict] = []
        self._module_dicts: list[dict] = []
        self._has_foreign = False
        self._registrations = -1
        self.graphs: dict[tuple, tuple] = {}
        self.pool = None
        self.stream = None
        self.captures = 0
        self.replays = 0
        self.stamp = getattr(model, "weights_version", 0)
        #: what fills a bucket past the real tokens: the padding id, so a family whose positions count the
        #: non-pad ids (RoBERTa) gives the filler the padding position, never one past the table
        self.pad_id = int(model.config.pad_token_id or 0)

    @property
    def model(self):
        return self._model()

    def encode(self, inputs, **kwargs):
        """The model's own encoder call (its class's ``encode``, past this runner)."""
        model = self.model
        return type(model).encode(model, inputs, **kwargs)

    def invalidate(self) -> None:
        """Drop every captured graph (the next calls capture again), once the last replay has finished."""
        if self.done is not None:
            self.done.synchronize()  # a replay on another stream may still read the static buffers
        self.graphs.clear()
        if self._moved():
            self.pool = self.stream = self.done = None  # moved off this GPU: its stream, pool and event too

    def _moved(self) -> bool:
        """Whether the model (or nothing, once deleted) is no longer on the GPU of the capture stream."""
        model = self.model
        return self.stream is not None and (model is None or self.stream.device != model.device)

    def release_if_moved(self) -> None:
        """Free the graphs, their buffers and pool when the model left their GPU (``model.cpu()``, another
        device): nothing would replay them. The model's ``_apply`` calls it."""
        if self._moved():
            self.invalidate()

    def bucket(self, batch: int, seqlen: int) -> tuple[int, int] | None:
        b = next((x for x in self.batch_buckets if x >= batch), None)
        s = next((x for x in self.seqlen_buckets if x >= seqlen), None)
        if b is None or s is None or (self.max_tokens is not None and b * s > self.max_tokens):
            return None
        return b, s

    def packed_rows(self, bucket: tuple[int, int], real_tokens: int) -> int | None:
        """Rows of the packed graph that serves ``real_tokens`` in ``bucket``: rounded up by an eighth of the
        bucket (at least 64 rows), so that a bucket has at most 8 packed graphs; None where that is no fewer
        rows than the bucket has positions (the padded graph then does the same work without packing)."""
        size = bucket[0] * bucket[1]
        step = max(size // PACKED_STEPS, PACKED_MIN_STEP)
        rows = -(-real_tokens // step) * step
        return rows if rows < size else None

    def worth_padding(self, bucket: tuple[int, int], real_tokens: int | None) -> bool:
        """Whether a batch of ``real_tokens`` is replayed padded to ``bucket`` (else it runs packed)."""
        size = bucket[0] * bucket[1]
        return real_tokens is None or size <= self.fill_from_tokens or real_tokens >= self.min_fill * size

    def _sync_modules(self) -> None:
        """List the model's modules and tensors again after a registration or a move (new objects)."""
        stamp = getattr(self.model, "weights_version", 0)
        if self._tensors is None or self._registrations != _REGISTRATIONS[0] or stamp != self.stamp:
            model = self.model
            self._registrations = _REGISTRATIONS[0]
            self.stamp = stamp
            modules = list(model.modules())
            self._has_foreign = any(_foreign(m) for m in modules)
            # the dicts themselves (registering a hook adds to them in place): checked at each call in C loops
            self._hook_dicts = [d for m in modules for d in (m._forward_hooks, m._forward_pre_hooks)]
            self._module_dicts = [m.__dict__ for m in modules]
            params = list(model.parameters())
            self._tensors = [*params, *model.buffers()]
            self._params = len(params)

    def replayable(self) -> bool:
        """Whether a replay would run what the forward runs: no forward hooks (the model's, the global
        ones), no patched ``forward``, no module type that decides in Python at each call (PEFT's layers)."""
        self._sync_modules()
        return not (
            self._has_foreign
            or _global_hooks()
            or any(self._hook_dicts)
            or any(map(operator.contains, self._module_dicts, itertools.repeat("forward")))
        )

    def check_weights(self) -> None:
        """Drop the graphs when a parameter or buffer is no longer where they were captured (a move, a
        rebound or ``.data =``-replaced weight; a no-op ``.to()`` keeps them)."""
        self._sync_modules()
        addresses = list(map(torch.Tensor.data_ptr, self._tensors))
        addresses += self._reduced_copies()
        if addresses != self._addresses:
            self.invalidate()
            self._addresses = addresses

    def _reduced_copies(self) -> list:
        """What the graphs read of the reduced copies of :mod:`fastbert.quant` (held by the modules, not
        parameters): each copy, its key (None once ``refresh`` asked for a new one) and its packed tensors'
        addresses; and while any copy exists, the parameters' version counters: a replay runs no Python, so
        an in-place edit (``load_state_dict``, ``copy_``) that makes a copy stale, a new copy, a dequantized
        or a newly quantized model drop the graphs (the next capture's warm-up packs the copy again)."""
        state = []
        for d in self._module_dicts:
            for name in ("qlinear", "qkv_linear"):
                hook = d.get(name)
                if hook is not None:
                    held = hook.__dict__
                    packed = (held.get(n) for n in getattr(hook, "_PACKED", ()))
                    ptrs = tuple(t.data_ptr() for t in packed if isinstance(t, torch.Tensor))
                    state.append((id(hook), held.get("_key"), ptrs))
        if state:
            state += [t._version for t in self._tensors[: self._params]]
        return state

    def covers(self, inputs, allow_pack: bool) -> bool:
        m = self.model
        ids = inputs.input_ids
        return (
            allow_pack  # a loss over padded positions needs their real values: not the graph path
            and ids is not None
            and ids.is_cuda
            and ids.device == m.device  # another GPU's inputs: the forward's own device rules
            and ids.dim() == 2
            and inputs.position_ids is None
            and not inputs.sequence_kwargs  # checked against the call's sequences by encode
            and inputs.inputs_embeds is None
            and inputs.encoder_hidden_states is None
            and inputs.past_key_values is None
            and not _flag(inputs.output_attentions, m.config.output_attentions)
            and not _flag(inputs.output_hidden_states, m.config.output_hidden_states)
            and not inputs.use_cache
            and not m.training
            and not torch.is_grad_enabled()
            and not torch.is_autocast_enabled("cuda")  # the forward then runs sdpa (core.ops.resolve)
            and m.attn_implementation == "triton"
            and m.config.position_embedding_type == "absolute"
            and not m.config.is_decoder
            and not torch.jit.is_tracing()  # (torch.compile: __call__ asks first)
            and not torch.cuda.is_current_stream_capturing()
            and self.bucket(*ids.shape) is not None
            and self.replayable()
        )

    def __call__(self, inputs, keep_packed: bool = False, allow_pack: bool = True, host_reads: bool = True):
        """``encode``'s signature: a replay when the call is covered, else the model's own encode."""
        if torch.compiler.is_compiling() or not host_reads or not self.covers(inputs, allow_pack):
            return self.encode(inputs, keep_packed=keep_packed, allow_pack=allow_pack, host_reads=host_reads)
        ids = inputs.input_ids
        bucket = self.bucket(*ids.shape)
        size = bucket[0] * bucket[1]
        fill = self.packed or (self.min_fill > 0 and size > self.fill_from_tokens)
        # one host read, before any replay, with the mask's lengths: the fill rule and the packing decide by
        # them, and a batch without any real token runs the forward's own rule (eager, as transformers
        # computes it), which a padded replay would answer with zeros
        checked = self.model.validate(inputs, read_lengths=inputs.attention_mask is not None)
        if checked.seqlens_host is not None:
            real = sum(checked.seqlens_host)
        else:  # no mask: every position is a token
            real = ids.shape[0] * ids.shape[1] if fill else None
        # padding between real tokens in a family whose positions are offsets inside a sequence (MPNet's
        # relative bias, ModernBERT's RoPE): the padded graph, whose offsets are the padded row's (transformers')
        rows = self.packed_rows(bucket, real) if self.packed and not checked.holes else None
        if (
            (bucket, rows is not None) in self.failures
            or real == 0  # every row padded: the forward's own rule (nothing to pack or replay)
            or (not self.packed and not self.worth_padding(bucket, real))
        ):
            return self.encode(inputs, keep_packed=keep_packed, allow_pack=allow_pack, host_reads=host_reads)
        # capture and replay on the model's GPU, not the current one
        with self.lock, torch.cuda.device(self.model.device):
            try:
                return self.run(inputs, rows=rows, real=real)
            except Exception as err:  # noqa: BLE001 - an installed-by-default runner must not break a call
                # an interrupt (Ctrl-C, a caller's time limit) that a capture turned into another error is the
                # caller's, not a failed capture: no fallback, no bucket marked failed
                if not self.auto or _interrupted(err):
                    raise
                first = not self.failures
                packed = rows is not None
                why = self.failures[bucket, packed] = f"{type(err).__name__}: {err}"
                # none of that kind is replayed again in this bucket: free them all (their pool memory)
                for key in [k for k in self.graphs if k[:2] == bucket and (k[2] is not None) == packed]:
                    del self.graphs[key]
                if first:
                    warnings.warn(
                        f"fastbert: a CUDA-graph capture failed ({why}); batches of that "
                        f"size ({bucket[0]} x {bucket[1]}{', packed' if rows is not None else ''}) run the "
                        "normal forward",
                        stacklevel=4,
                    )
        return self.encode(inputs, keep_packed=keep_packed, allow_pack=allow_pack, host_reads=host_reads)

    def _key(self, bucket: tuple[int, int], rows: int | None = None) -> tuple:
        return (bucket[0], bucket[1], rows, self.model.dtype)

    def _capture(self, key, inputs):
        """The bucket's static buffers, filled with ``inputs`` (the warm-up forwards run on real tokens), and
        its graph. ``key[2]``: the rows of a packed graph (None: padded)."""
        b, s, rows = key[0], key[1], key[2]
        dev = self.model.device
        with torch.inference_mode(False):  # static buffers must accept writes under no_grad later
            ids = torch.full((b, s), self.pad_id, dtype=torch.long, device=dev)
            mask = torch.zeros(b, s, dtype=torch.long, device=dev)
            tt = torch.zeros(b, s, dtype=torch.long, device=dev)
            packing = None
            if rows is not None:  # packed by the mask on the device at each call (``_fill``)
                packing = Packing(
                    indices=torch.zeros(rows, dtype=torch.long, device=dev),
                    cu_seqlens=torch.zeros(b + 1, dtype=torch.int32, device=dev),
                    seqlens=torch.zeros(b, dtype=torch.int32, device=dev),
                    max_seqlen=s,
                    batch=b,
                    seqlen=s,
                    seqlens_host=None,
                    static_rows=rows,
                )
        entry = _Entry(ids, mask, tt, packing)
        self._fill(entry, inputs)
        static = type(inputs)(input_ids=ids, attention_mask=mask, token_type_ids=tt, static_packing=packing)

        def body():
            # packed: the graph's output stays packed, (rows, H); ``run`` re-pads the real tokens
            return self.encode(static, keep_packed=packing is not None, host_reads=False)

        entry.graph, entry.out = self._record(body)
        self.captures += 1
        self.graphs[key] = entry
        return entry

    def _record(self, body):
        """Warm ``body`` up on a side stream (Triton compiles and autotunes there), then capture it: (graph,
        the captured call's result, which each replay overwrites)."""
        dev = self.model.device
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        if self.stream is None:  # one side stream for every capture that shares the pool, on the model's GPU
            self.stream = torch.cuda.Stream(dev)
        stream = self.stream
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(self.warmup):
                body()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        # thread_local: CUDA work of other threads meanwhile (their host reads, their eager calls) neither
        # fails nor breaks this capture; one capture at a time in the process
        with (
            _CAPTURE_LOCK,
            torch.cuda.graph(graph, pool=self.pool, stream=stream, capture_error_mode="thread_local"),
        ):
            out = body()
        return graph, out

    def _fill(self, entry: _Entry, inputs) -> None:
        """Copy a call into the bucket's static buffers (the filler past it: padding); packed, pack them."""
        input_ids, attention_mask, token_type_ids = (
            inputs.input_ids,
            inputs.attention_mask,
            inputs.token_type_ids,
        )
        batch, seqlen = input_ids.shape
        ids, mask, tt = entry.ids, entry.mask, entry.tt
        # fewer launches on the host's path: a batch filling its bucket overwrites every position
        if not (batch == ids.shape[0] and seqlen == ids.shape[1]):
            ids.fill_(self.pad_id)
            mask.zero_()
        ids[:batch, :seqlen].copy_(input_ids)
        if attention_mask is None:
            mask[:batch, :seqlen].fill_(1)
        else:
            mask[:batch, :seqlen].copy_(attention_mask.ne(0))  # a token wherever the mask is not 0
        if token_type_ids is None:
            tt.zero_()
        else:  # (the filler keeps earlier calls' types: valid ones, and they touch no real token)
            tt[:batch, :seqlen].copy_(token_type_ids)
        p = entry.packing
        if p is not None:  # real tokens first, in order; the filler rows read position 0, join no sequence
            p.seqlens.copy_(torch.count_nonzero(mask, dim=1))
            torch.cumsum(p.seqlens, 0, dtype=torch.int32, out=p.cu_seqlens[1:])
            p.indices.copy_(torch.nonzero_static(mask.view(-1), size=p.static_rows, fill_value=0).view(-1))

    def run(self, inputs, rows: int | None = None, real: int | None = None):
        """Replay the bucket's graph on ``inputs`` (captured on first use); returns the encoder's result.
        ``rows``: the packed graph of that many rows, for a batch of ``real`` tokens (None: padded)."""
        input_ids, attention_mask = inputs.input_ids, inputs.attention_mask
        batch, seqlen = input_ids.shape
        key = self._key(self.bucket(batch, seqlen), rows)
        self.check_weights()
        stream = torch.cuda.current_stream()
        if self.done is not None:  # the previous call (maybe on another stream) has read the buffers
            stream.wait_event(self.done)
        entry = self.graphs.get(key)
        if entry is None:
            entry = self._capture(key, inputs)
        else:
            self._fill(entry, inputs)
        entry.graph.replay()
        self.replays += 1
        enc = entry.out
        if entry.packing is not None:  # the real tokens are the first ``real`` rows, in the call's order
            tokens = enc.sequence[:real]
            if attention_mask is None:
                sequence = tokens.reshape(batch, seqlen, -1).clone()
            else:  # padded positions zero, as the packed path
                where = torch.nonzero_static(attention_mask.reshape(-1), size=real).view(-1)
                sequence = tokens.new_zeros(batch * seqlen, tokens.shape[-1]).index_copy_(0, where, tokens)
                sequence = sequence.view(batch, seqlen, -1)
        else:
            hidden = enc.sequence[:batch, :seqlen]
            if attention_mask is None:  # no padded position among the real rows
                sequence = hidden.clone()
            else:  # padded positions zero, as the packed path
                sequence = hidden * entry.mask[:batch, :seqlen, None].to(hidden.dtype)
        out = dataclasses.replace(
            enc,
            sequence=sequence,
            packing=None,
            pooled=enc.pooled[:batch].clone() if enc.pooled is not None else None,
            _padded=None,
        )
        if self.done is None:
            self.done = torch.cuda.Event()
        self.done.record(stream)
        return out


@dataclasses.dataclass(eq=False)
class _Entry:
    """One captured graph: its static inputs (padded to the bucket; packed: their packing too) and output."""

    ids: torch.Tensor
    mask: torch.Tensor
    tt: torch.Tensor
    packing: Packing | None = None
    graph: torch.cuda.CUDAGraph | None = None
    out: object = None
