"""The devices of a job: ``--device`` / ``--devices`` parsed, checked against this machine before anything
is written, and the default token budget they imply."""

from __future__ import annotations

from typing import Any

from .job import DEFAULT_MAX_BATCH_TOKENS, DEFAULT_MAX_BATCH_TOKENS_CPU


def device_list(device: Any, devices: Any) -> list[Any]:
    """``[device]``, or one entry a ``devices`` item (``"0,1"``, ``["cuda:0", "cpu"]``; ordinals are CUDA)."""
    if devices is None:
        return [device]
    from fastbert.devices import device_list as parse_list

    return parse_list(devices, "devices")


def check_devices(devices: list[Any]) -> None:
    """A ValueError naming the first device this machine does not have (``banana``, ``cuda`` without CUDA,
    ``cuda:3`` on a machine with two GPUs), before a model loads or a file is written."""
    from fastbert.devices import available_device

    for d in devices:
        if d is not None:
            available_device(d, "device")


def names_a_gpu(d: Any) -> bool:
    """Whether a given device (not None) is a GPU: ``cuda``, ``cuda:N`` or a pipeline device number N >= 0
    (-1 is the CPU)."""
    text = str(d)
    if text.lstrip("-").isdigit():
        return int(text) >= 0
    return text.startswith("cuda")


def default_max_batch_tokens(devices: list[Any], engine: str = "local") -> int:
    """The token budget of a forward when none is given: GPU-sized when every device is a GPU. No device is
    the CPU for the local engine (as the pipeline places it), and a GPU where there is one for Ray's actors."""

    def on_gpu(d: Any) -> bool:
        if d is None:
            if engine != "ray":
                return False
            import torch

            return torch.cuda.is_available()
        return names_a_gpu(d)

    return DEFAULT_MAX_BATCH_TOKENS if all(on_gpu(d) for d in devices) else DEFAULT_MAX_BATCH_TOKENS_CPU
