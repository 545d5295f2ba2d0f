"""Which reduced dtype the CPU computes natively, and ``dtype="auto"``.

bf16 is native where the CPU has ``avx512_bf16`` or AMX tiles (Intel Cooper Lake / Sapphire Rapids and
later, AMD Zen 4 and later): oneDNN's bf16 linears then run about twice as fast as fp32. Elsewhere (AVX2
CPUs such as AMD Zen 3) torch emulates bf16 by converting to fp32 and back: it works, slower than fp32.
"""

from __future__ import annotations

import logging

import torch

from ..core.cpu import cpu_flags, cpu_has_native_bf16
from .notes import warn_at_caller

logger = logging.getLogger("fastbert")

__all__ = ["auto_dtype", "cpu_flags", "cpu_has_native_bf16", "warn_if_emulated"]


_SAID: set[str] = set()


def _once(key: str, message: str, warn: bool) -> None:
    if key in _SAID:
        return
    _SAID.add(key)
    if warn:
        warn_at_caller(message)  # at the user's from_pretrained / accelerate line
    else:
        logger.info(message)


def auto_dtype(device: torch.device | str | None = None) -> torch.dtype:
    """``dtype="auto"``: on the CPU bf16 where it is native, else fp32 (said once); on CUDA bf16 where the
    GPU has it, else fp16."""
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        # native bf16 from compute capability 8.0 (Ampere): torch.cuda.is_bf16_supported() is also true on a
        # GPU that only emulates it (a T4, a V100), where bf16 is slow and the triton kernels cannot run it
        native = torch.version.hip is not None or torch.cuda.get_device_capability(device) >= (8, 0)
        return torch.bfloat16 if native else torch.float16
    if cpu_has_native_bf16():
        _once("auto", "dtype='auto': this CPU computes bf16 natively (avx512_bf16/AMX): bfloat16", warn=False)
        return torch.bfloat16
    _once("auto", "dtype='auto': this CPU has no native bf16 (no avx512_bf16, no AMX): float32", warn=False)
    return torch.float32


def warn_if_emulated(dtype, device: torch.device | str | None = None) -> None:
    """One warning when bf16 is asked on a CPU that only emulates it (it works, slower than fp32)."""
    device = torch.device(device or "cpu")
    if dtype == torch.bfloat16 and device.type == "cpu" and not cpu_has_native_bf16():
        _once(
            "bf16",
            "bfloat16 on a CPU without native bf16 (no avx512_bf16, no AMX): it works, slower than float32 "
            "and less exact; dtype='auto' picks float32 here",
            warn=True,
        )
