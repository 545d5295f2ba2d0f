"""The devices of a job: ``--device`` / ``--devices`` parsed, checked against this machine before anything
is written, and the default token budget they imply."""

from __future__ import annotations

from typing import Any

from .job import DEFAULT_MAX_BATCH_TOKENS, DEFAULT_MAX_BATCH_TOKENS_CPU


def device_list(device: Any, devices: Any) -> list[Any]:
    """``[device]``, or one entry a ``devices`` item (``"0,1"``, ``["cuda:0", "cpu"]``; ordinals are CUDA)."""
    if devices is None:
        return [device]
    if isinstance(devices, str):
        devices = [d.strip() for d in devices.split(",") if d.strip()]
    out = []
    for d in devices:
        if isinstance(d, int) or (isinstance(d, str) and d.isdigit()):
            out.append(f"cuda:{int(d)}")
        else:
            out.append(str(d))
    if not out:
        raise ValueError("devices must list at least one device (0,1 or cuda:0,cuda:1 or cpu,cpu)")
    return out


def check_devices(devices: list[Any]) -> None:
    """A ValueError naming the first device this machine does not have (``banana``, ``cuda`` without CUDA,
    ``cuda:3`` on a machine with two GPUs), before a model loads or a file is written."""
    import torch

    for d in devices:
        if d is None or isinstance(d, torch.device):
            dev = d
        else:
            text = str(d).strip()
            if text.lstrip("-").isdigit():  # a pipeline device number: -1 is the CPU
                dev = torch.device("cpu") if int(text) < 0 else torch.device("cuda", int(text))
            else:
                try:
                    dev = torch.device(text)
                except (RuntimeError, ValueError):
                    raise ValueError(
                        f"unknown device {text!r}: use cpu, cuda, cuda:N or a CUDA ordinal (0, 1...)"
                    ) from None
        if dev is None or dev.type == "cpu":
            continue
        backend = getattr(torch, dev.type, None)
        if dev.type == "mps":
            available, count = torch.backends.mps.is_available(), 1
        elif backend is not None and hasattr(backend, "is_available"):
            available = bool(backend.is_available())
            count = int(backend.device_count()) if available and hasattr(backend, "device_count") else 0
        else:
            available, count = False, 0
        if not available:
            raise ValueError(f"device {d} is not available: torch sees no {dev.type} device on this machine")
        if dev.index is not None and dev.index >= count:
            raise ValueError(
                f"device {d} is not available: this machine has {count} {dev.type} device(s) "
                f"({dev.type}:0 to {dev.type}:{count - 1})"
            )


def default_max_batch_tokens(devices: list[Any]) -> int:
    """The token budget of a forward when none is given: GPU-sized when every device is a GPU."""

    def on_gpu(d: Any) -> bool:
        if d is None:
            import torch

            return torch.cuda.is_available()
        text = str(d)
        if text.lstrip("-").isdigit():  # pipeline device numbers: -1 is the CPU
            return int(text) >= 0
        return text.startswith("cuda")

    return DEFAULT_MAX_BATCH_TOKENS if all(on_gpu(d) for d in devices) else DEFAULT_MAX_BATCH_TOKENS_CPU
