"""What gradient checkpointing saves on fastbert's packed (padding-free) training path, measured on the CPU.

A BERT-base-shaped MLM (12 layers, hidden 768, random weights) trains one step on a padded batch whose
labels ignore padding (so the forward runs on the packed real tokens), without and with
``gradient_checkpointing_enable()``. Two figures per run: the bytes of the tensors autograd keeps for the
backward (``saved_tensors_hooks``), and the peak of the CPU allocations torch's profiler records
(``profile_memory=True``: running sum of every allocation and free during forward + backward).

    python benchmarks/checkpointing_memory.py [--layers 12] [--batch 16] [--length 128]
"""

from __future__ import annotations

import argparse
import platform

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
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model(**batch).loss.backward()
    model.zero_grad(set_to_none=True)
    events = sorted((e for e in prof.events() if e.name == "[memory]"), key=lambda e: e.time_range.start)
    level = peak = 0
    for e in events:
        level += e.cpu_memory_usage
        peak = max(peak, level)
    return peak


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--length", type=int, default=128)
    args = p.parse_args()
    torch.manual_seed(0)
    config = fastbert.BertConfig(
        num_hidden_layers=args.layers, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    model = fastbert.BertForMaskedLM(config).train()
    ids = torch.randint(1000, 20000, (args.batch, args.length))
    lengths = torch.linspace(args.length // 4, args.length, args.batch).long()
    mask = (torch.arange(args.length)[None, :] < lengths[:, None]).long()
    batch = {"input_ids": ids * mask, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}
    real = int(mask.sum())
    rows = []
    for checkpointing in (False, True):
        if checkpointing:
            model.gradient_checkpointing_enable()
        saved_bytes(model, batch)  # warm-up
        rows.append((checkpointing, saved_bytes(model, batch), peak_bytes(model, batch)))
    cpu = platform.processor() or platform.machine()
    print(
        f"# {args.layers} layers, hidden 768, batch {args.batch} x {args.length} ({real} real tokens, packed), "
        f"fp32, torch {torch.__version__}, {cpu}"
    )
    print("checkpointing  saved for backward  profiler peak")
    for checkpointing, saved, peak in rows:
        print(f"{'on' if checkpointing else 'off':13}  {saved / 2**20:15.1f} MiB  {peak / 2**20:10.1f} MiB")
    (_, s0, p0), (_, s1, p1) = rows
    print(f"saved: {s1 / s0:.3f} of the plain run; peak: {p1 / p0:.3f} of the plain run")


if __name__ == "__main__":
    main()
