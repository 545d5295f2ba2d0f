"""What gradient checkpointing saves on fastbert's packed (padding-free) training path, measured on the CPU.

A MiniLM-shaped sequence classifier (6 layers, hidden 384, 12 heads, random weights; a small model, so
that the weights' gradients do not hide the activations) trains one step on a right-padded batch (the
forward runs on the packed real tokens), without and with
``gradient_checkpointing_enable()``. Two figures per run: the bytes of the tensors autograd keeps for the
backward (``saved_tensors_hooks``; with checkpointing this also counts what each layer's recompute saves
during the backward), and the peak of the CPU memory torch's profiler records during forward + backward
(``profile_memory=True``, its memory timeline), above what was allocated when the step began.

    python benchmarks/checkpointing_memory.py [--layers 6] [--hidden 384] [--batch 8] [--length 128]
"""

from __future__ import annotations

import argparse
import platform
import warnings

import torch

import fastbert


def saved_bytes(model, batch) -> int:
    sizes = []

    def pack(t):
        sizes.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(**batch).loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(sizes)


def peak_bytes(model, batch) -> int:
    """Peak of the CPU memory torch's profiler sees during forward + backward (its memory timeline: every
    allocation and free, by category), above what was allocated when the step began."""
    import json
    import tempfile

    from torch.profiler import ProfilerActivity, profile

    with profile(
        activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True
    ) as prof:
        model(**batch).loss.backward()
    model.zero_grad(set_to_none=True)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # export_memory_timeline is deprecated for CUDA users; CPU has no successor
        path = f"{tmp}/timeline.json"
        prof.export_memory_timeline(path, device="cpu")
        with open(path) as f:
            _, sizes = json.load(f)
    totals = [sum(s) for s in sizes]
    return max(totals) - totals[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--hidden", type=int, default=384)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--length", type=int, default=128)
    args = p.parse_args()
    torch.manual_seed(0)
    config = fastbert.BertConfig(
        num_hidden_layers=args.layers,
        hidden_size=args.hidden,
        num_attention_heads=args.hidden // 32,
        intermediate_size=4 * args.hidden,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = fastbert.BertForSequenceClassification(config).train()
    ids = torch.randint(1000, 20000, (args.batch, args.length))
    lengths = torch.linspace(args.length // 4, args.length, args.batch).long()
    mask = (torch.arange(args.length)[None, :] < lengths[:, None]).long()
    batch = {"input_ids": ids * mask, "attention_mask": mask, "labels": torch.arange(args.batch) % 2}
    real = int(mask.sum())
    rows = []
    for checkpointing in (False, True):
        if checkpointing:
            model.gradient_checkpointing_enable()
        saved_bytes(model, batch)  # warm-up
        rows.append((checkpointing, saved_bytes(model, batch), peak_bytes(model, batch)))
    cpu = platform.processor() or platform.machine()
    print(
        f"# {args.layers} layers, hidden {args.hidden}, batch {args.batch} x {args.length} ({real} real tokens, packed), "
        f"fp32, torch {torch.__version__}, {cpu}"
    )
    print("checkpointing  saved for backward  profiler peak")
    for checkpointing, saved, peak in rows:
        print(f"{'on' if checkpointing else 'off':13}  {saved / 2**20:15.1f} MiB  {peak / 2**20:10.1f} MiB")
    (_, s0, p0), (_, s1, p1) = rows
    print(f"saved: {s1 / s0:.3f} of the plain run; peak: {p1 / p0:.3f} of the plain run")


if __name__ == "__main__":
    main()
