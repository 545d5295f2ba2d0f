"""What this CPU computes natively: its feature flags and whether it has bf16 dot products (avx512_bf16 or
AMX). The op tables pick their CPU GEMMs by it (:mod:`fastbert.core.ops`), ``dtype="auto"`` its dtype
(:mod:`fastbert.quant.dtypes`)."""

from __future__ import annotations

import functools

import torch

__all__ = ["cpu_flags", "cpu_has_native_bf16"]


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 dot products itself (avx512_bf16 or AMX)."""
    cpu = torch.cpu
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(cpu, probe, None)
        if fn is not None:
            try:
                if fn():
                    return True
            except RuntimeError:  # pragma: no cover
                pass
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})
