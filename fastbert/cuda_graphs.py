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
fully masked rows zeros. Inside a graph the batch is not packed (packing reads lengths on the host, which a
graph cannot): the encoder runs padded with a key-padding mask (and the per-row key lengths, on the device,
where the attention kernel takes them). The ids are validated once per call, with one host read.

A graph reads the weights by address: in-place edits (``.data``, ``copy_``, ``load_state_dict``) are seen
by the next replay; a move (``to()``, ``half()``, ``load_state_dict(assign=True)``) bumps the model's
``weights_version`` and the graphs are captured again. Anything else that rebinds a parameter needs
:meth:`GraphRunner.invalidate`. Under ``torch.autocast`` the capture runs with autocast's weight-cast
cache off (the cache is freed when autocast exits, and a graph would read the freed memory).
"""

from __future__ import annotations

import dataclasses

import torch

SEQLEN_BUCKETS = (16, 32, 64, 128, 256, 384, 512)


def _buckets(limit: int, candidates) -> tuple[int, ...]:
    out = [c for c in candidates if c < limit]
    return tuple(out) + (limit,)


def _flag(value, default) -> bool:
    """A forward flag as the model resolves it: the argument, else the config's default."""
    return bool(default if value is None else value)


def _base(model):
    prefix = getattr(model, "base_model_prefix", "")
    return getattr(model, prefix, model) if prefix else model


def install(model, max_batch: int = 8, max_seqlen: int = 128, enabled: bool = True, runner=None):
    """Serve ``model``'s small triton calls from CUDA graphs (``enabled=False``: stop). Returns the runner."""
    base = _base(model)
    if not enabled:
        base.__dict__.pop("encode", None)
        return None
    if base.device.type != "cuda":
        raise ValueError("CUDA graphs need the model on a CUDA device")
    runner = runner or GraphRunner(base, max_batch, max_seqlen)
    base.__dict__["encode"] = runner
    return runner


def runner_of(model) -> GraphRunner | None:
    """The runner installed on ``model`` (None when CUDA graphs are off)."""
    found = _base(model).__dict__.get("encode")
    return found if isinstance(found, GraphRunner) else None


class GraphRunner:
    """Captured graphs of one base model, keyed by (batch bucket, length bucket, dtype, autocast)."""

    def __init__(self, model, max_batch: int, max_seqlen: int, warmup: int = 2):
        if max_batch < 1 or max_seqlen < 1:
            raise ValueError("max_batch and max_seqlen must be positive")
        limit, why = model._length_limit()  # the family's longest input (RoBERTa: after the padding index)
        if max_seqlen > limit:
            raise ValueError(f"max_seqlen={max_seqlen} exceeds {why}")
        self.model = model
        self.encode = type(model).encode.__get__(model)  # the model's own encoder call
        self.max_batch = max_batch
        self.max_seqlen = max_seqlen
        self.batch_buckets = _buckets(max_batch, [2**i for i in range(12)])
        self.seqlen_buckets = _buckets(max_seqlen, SEQLEN_BUCKETS)
        self.warmup = warmup
        self.graphs: dict[tuple, tuple] = {}
        self.pool = None
        self.stream = None
        self.captures = 0
        self.stamp = getattr(model, "weights_version", 0)
        #: what fills a bucket past the real tokens: the padding id, so a family whose positions count the
        #: non-pad ids (RoBERTa) gives the filler the padding position, never one past the table
        self.pad_id = int(model.config.pad_token_id or 0)

    def invalidate(self) -> None:
        """Drop every captured graph (the next calls capture again)."""
        self.graphs.clear()

    def bucket(self, batch: int, seqlen: int) -> tuple[int, int] | None:
        b = next((x for x in self.batch_buckets if x >= batch), None)
        s = next((x for x in self.seqlen_buckets if x >= seqlen), None)
        return None if b is None or s is None else (b, s)

    def covers(self, inputs, allow_pack: bool) -> bool:
        m = self.model
        ids = inputs.input_ids
        return (
            allow_pack  # a loss over padded positions needs their real values: not the graph path
            and ids is not None
            and ids.is_cuda
            and ids.dim() == 2
            and inputs.position_ids is None
            and inputs.inputs_embeds is None
            and inputs.encoder_hidden_states is None
            and inputs.past_key_values is None
            and not _flag(inputs.output_attentions, m.config.output_attentions)
            and not _flag(inputs.output_hidden_states, m.config.output_hidden_states)
            and not inputs.use_cache
            and not m.training
            and not torch.is_grad_enabled()
            and m.attn_implementation == "triton"
            and m.config.position_embedding_type == "absolute"
            and not m.config.is_decoder
            and not torch.cuda.is_current_stream_capturing()
            and self.bucket(*ids.shape) is not None
        )

    def __call__(self, inputs, keep_packed: bool = False, allow_pack: bool = True, host_reads: bool = True):
        """``encode``'s signature: a replay when the call is covered, else the model's own encode."""
        if not host_reads or not self.covers(inputs, allow_pack):
            return self.encode(inputs, keep_packed=keep_packed, allow_pack=allow_pack, host_reads=host_reads)
        self.model.validate(inputs, read_lengths=False)  # one host read, before any replay
        with torch.cuda.device(
            self.model.device
        ):  # capture and replay on the model's GPU, not the current one
            return self.run(inputs)

    def _capture(self, key, inputs_type):
        b, s = key[0], key[1]
        dev = self.model.device
        with torch.inference_mode(False):  # static buffers must accept writes under no_grad later
            ids = torch.full((b, s), self.pad_id, dtype=torch.long, device=dev)
            mask = torch.zeros(b, s, dtype=torch.long, device=dev)
            tt = torch.zeros(b, s, dtype=torch.long, device=dev)
        mask[:, 0] = 1
        static = inputs_type(input_ids=ids, attention_mask=mask, token_type_ids=tt)
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()

        def body():
            if key[3]:  # autocast: no weight-cast cache, whose memory is freed when autocast exits
                with torch.autocast("cuda", dtype=key[4], cache_enabled=False):
                    return self.encode(static, host_reads=False)
            return self.encode(static, host_reads=False)

        if self.stream is None:  # one side stream for every capture that shares the pool, on the model's GPU
            self.stream = torch.cuda.Stream(dev)
        stream = self.stream
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(self.warmup):  # compiles/autotunes the kernels outside the capture
                body()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool, stream=stream):
            out = body()
        self.captures += 1
        entry = (graph, ids, mask, tt, out)
        self.graphs[key] = entry
        return entry

    def run(self, inputs):
        """Replay the bucket's graph on ``inputs`` (captured on first use); returns the encoder's result."""
        input_ids, attention_mask, token_type_ids = (
            inputs.input_ids,
            inputs.attention_mask,
            inputs.token_type_ids,
        )
        batch, seqlen = input_ids.shape
        b, s = self.bucket(batch, seqlen)
        autocast = torch.is_autocast_enabled("cuda")
        key = (b, s, self.model.dtype, autocast, torch.get_autocast_dtype("cuda") if autocast else None)
        stamp = getattr(self.model, "weights_version", 0)
        if stamp != self.stamp:  # the weights moved: the graphs point at freed memory
            self.invalidate()
            self.stamp = stamp
        graph, ids, mask, tt, enc = self.graphs.get(key) or self._capture(key, type(inputs))
        ids.fill_(self.pad_id)
        mask.zero_()
        tt.zero_()
        ids[:batch, :seqlen].copy_(input_ids)
        if attention_mask is None:
            mask[:batch, :seqlen].fill_(1)
        else:
            mask[:batch, :seqlen].copy_(attention_mask)
        if token_type_ids is not None:
            tt[:batch, :seqlen].copy_(token_type_ids)
        graph.replay()
        hidden = enc.sequence
        keep = mask[:batch, :seqlen, None].to(hidden.dtype)
        return dataclasses.replace(
            enc,
            sequence=hidden[:batch, :seqlen] * keep,  # padded positions zero, as the packed path
            pooled=enc.pooled[:batch].clone() if enc.pooled is not None else None,
            _padded=None,
        )
