"""The device a command line asked for, checked before any model loads: ``--device`` of ``run``, ``check``
and ``bench``. A device torch does not know, or one this machine does not have (``cuda`` on a machine
without CUDA, ``cuda:3`` with two GPUs, ``mps`` off a Mac), is a ``ValueError`` naming the flag and the
reason, which the command line prints as one line (exit 2)."""

from __future__ import annotations

from typing import Any

import torch


def parse_device(spec: Any, flag: str = "--device") -> torch.device:
    """``spec`` as a torch.device, by transformers' convention: an int (or a string of digits) is a CUDA
    ordinal and ``-1`` the CPU, ``"gpu"`` is ``"cuda"``, anything else is given to ``torch.device``."""
    if isinstance(spec, torch.device):
        return spec
    text = str(spec).strip()
    if text.lstrip("-").isdigit():
        n = int(text)
        return torch.device("cpu") if n < 0 else torch.device("cuda", n)
    if text.lower() == "gpu":
        text = "cuda"
    try:
        return torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(
            f"{flag} {text!r} is not a device: expected cpu, cuda, cuda:N, a CUDA ordinal such as 0, mps or xpu"
        ) from None


def device_list(spec: Any, flag: str = "--devices") -> list[str]:
    """Several devices: a comma-separated string (``"0,1"``, ``"cuda:0,cpu"``) or a list; CUDA ordinals
    become ``cuda:N``. An empty list is a ValueError naming ``flag``."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out = []
    for item in items:
        text = str(item).strip()
        if text:
            out.append(f"cuda:{int(text)}" if text.isdigit() else text)
    if not out:
        raise ValueError(f"{flag} must list at least one device: 0,1 or cuda:0,cuda:1 or cpu")
    return out


def available_device(spec: Any, flag: str = "--device") -> torch.device:
    """:func:`parse_device`, and refused unless this machine has that device for torch."""
    device = parse_device(spec, flag)
    why = unavailable(device)
    if why:
        raise ValueError(f"{flag} {str(spec).strip()!r}: {why}")
    return device


def unavailable(device: torch.device) -> str | None:
    """Why torch cannot compute on ``device`` here; None when it can."""
    kind = device.type
    if kind == "cpu":
        return None
    if kind == "meta":
        return "the meta device holds no data: use cpu or a GPU"
    if kind == "cuda":
        if not torch.cuda.is_available():
            if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
                return f"this torch ({torch.__version__}) is built without CUDA: there is no CUDA device here"
            return "torch finds no CUDA GPU on this machine"
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            return (
                f"this machine has {count} CUDA GPU(s) (cuda:0 to cuda:{count - 1}), not cuda:{device.index}"
            )
        return None
    backend = getattr(torch, kind, None)  # torch.xpu, torch.mps, torch.mtia... have is_available()
    is_available = getattr(backend, "is_available", None)
    if kind == "mps":
        is_available = torch.backends.mps.is_available
    if callable(is_available):
        try:
            if not is_available():
                return f"torch finds no {kind} device on this machine"
        except Exception as e:  # noqa: BLE001
            return f"torch cannot use {kind} here ({_short(e)})"
    try:  # torch's own test for what the checks above do not cover (and a device index out of range)
        torch.empty(1, device=device)
    except Exception as e:  # noqa: BLE001 - any failure here means the device is not usable
        return f"torch cannot use {device} here ({_short(e)})"
    return None


def _short(error: BaseException) -> str:
    """torch's message, first sentence only (a missing backend's message lists every dispatch key)."""
    text = " ".join(str(error).split()) or type(error).__name__
    first = text.split(". ")[0]
    return first if len(first) <= 160 else first[:157] + "..."
