"""CUDA graphs for small batches: capture once per bucketed shape, replay after.

At batch 1 × 128 a BERT-base forward is a few dozen kernel launches of a few microseconds each: the
launch overhead, not the math, sets the latency. A CUDA graph replays the whole forward as one launch.

Shapes are bucketed — batch to the next power of two (up to ``max_batch``), sequence length to the next
of 16, 32, 64, 128, 256, 384, 512 (up to ``max_seqlen``) — so a new shape inside the buckets reuses a
captured graph, and the number of graphs stays small. The input is copied into the bucket's static
buffers with its attention mask; the fill (extra rows, extra columns) is masked out, and the kernels give
fully masked rows zeros. Inside a graph the batch is not packed (packing reads lengths on the host, which a
graph cannot): the padded kernels with a key-padding mask run instead. A shape outside the buckets, or a
call the graph does not cover (hidden states, attentions, a cache, inputs_embeds, cross-attention, grad),
runs the normal forward.
"""

from __future__ import annotations

import torch

SEQLEN_BUCKETS = (16, 32, 64, 128, 256, 384, 512)


def _buckets(limit: int, candidates) -> tuple[int, ...]:
    out = [c for c in candidates if c < limit]
    return tuple(out) + (limit,)


class GraphRunner:
    """Captured graphs of one BertModel, keyed by (batch bucket, length bucket, dtype)."""

    def __init__(self, model, max_batch: int, max_seqlen: int, warmup: int = 2):
        if max_batch < 1 or max_seqlen < 1:
            raise ValueError("max_batch and max_seqlen must be positive")
        if max_seqlen > model.config.max_position_embeddings:
            raise ValueError(
                f"max_seqlen={max_seqlen} exceeds max_position_embeddings={model.config.max_position_embeddings}"
            )
        self.model = model
        self.max_batch = max_batch
        self.max_seqlen = max_seqlen
        self.batch_buckets = _buckets(max_batch, [2**i for i in range(12)])
        self.seqlen_buckets = _buckets(max_seqlen, SEQLEN_BUCKETS)
        self.warmup = warmup
        self.graphs: dict[tuple, tuple] = {}
        self.pool = None
        self.captures = 0
        self.stamp: tuple | None = None

    def bucket(self, batch: int, seqlen: int) -> tuple[int, int] | None:
        b = next((x for x in self.batch_buckets if x >= batch), None)
        s = next((x for x in self.seqlen_buckets if x >= seqlen), None)
        return None if b is None or s is None else (b, s)

    def covers(self, input_ids, attention_mask, **kw) -> bool:
        m = self.model
        return (
            input_ids is not None
            and input_ids.is_cuda
            and not m.training
            and not torch.is_grad_enabled()
            and m.attn_implementation == "triton"
            and m.config.position_embedding_type == "absolute"
            and not m.config.is_decoder
            and not torch.cuda.is_current_stream_capturing()
            and all(v is None or v is False for v in kw.values())
            and self.bucket(*input_ids.shape) is not None
        )

    def weights_stamp(self) -> tuple:
        """Where the weights live and how often they changed: a graph reads them by address."""
        from .modeling import _version

        return tuple((p.data_ptr(), _version(p)) for p in self.model.parameters())

    def _capture(self, key):
        b, s = key[0], key[1]
        dev = self.model.device
        with torch.inference_mode(False):  # static buffers must accept writes under no_grad later
            ids = torch.zeros(b, s, dtype=torch.long, device=dev)
            mask = torch.zeros(b, s, dtype=torch.long, device=dev)
            tt = torch.zeros(b, s, dtype=torch.long, device=dev)
        mask[:, 0] = 1
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(self.warmup):  # compiles/autotunes the kernels outside the capture
                self.model._padded_body(ids, mask, tt)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            out = self.model._padded_body(ids, mask, tt)
        self.captures += 1
        entry = (graph, ids, mask, tt, out)
        self.graphs[key] = entry
        return entry

    def run(self, input_ids, attention_mask, token_type_ids):
        batch, seqlen = input_ids.shape
        b, s = self.bucket(batch, seqlen)
        autocast = torch.is_autocast_enabled("cuda")
        key = (b, s, self.model.dtype, autocast, torch.get_autocast_dtype("cuda") if autocast else None)
        stamp = self.weights_stamp()
        if stamp != self.stamp:  # weights moved, converted or edited: the graphs point at stale memory
            self.graphs.clear()
            self.stamp = stamp
        graph, ids, mask, tt, (hidden, pooled) = self.graphs.get(key) or self._capture(key)
        ids.zero_()
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
        keep = mask[:batch, :seqlen, None].to(hidden.dtype)
        hidden_out = hidden[:batch, :seqlen] * keep  # padded positions zero, as the packed path
        pooled_out = pooled[:batch].clone() if pooled is not None else None
        return hidden_out, pooled_out
