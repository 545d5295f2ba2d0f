"""What every legacy reader shares: the state dict it returns, optional imports, raw bytes to tensors."""

from __future__ import annotations

import importlib
import math
import operator
from types import ModuleType

import torch

#: the checkout's extra (the distribution, fastbert-triton, is not on PyPI: never a command naming it)
EXTRA_HINT = (
    "the [legacy] extra: pip install '.[legacy]' in a checkout of fastbert; fastbert-triton is not on PyPI"
)


class LegacyStateDict(dict):
    """A state dict (name -> tensor) that also knows where each tensor came from.

    ``sources[name]`` is ``"<file>: <name in the checkpoint>"``, for error messages that name the file
    and the tensor (e.g. a shape that does not fit the config); ``kind`` is the checkpoint format.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sources: dict[str, str] = {}
        self.kind: str | None = None


class Corrupt(Exception):
    """Bytes that do not decode; the reader that catches it re-raises ``OSError`` naming the file."""


def require(module: str, what: str) -> ModuleType:
    """Import ``module`` of the ``[legacy]`` extra, or raise ``ImportError`` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.replace("_", "-")  # google_crc32c is imported from google-crc32c
        raise ImportError(
            f"reading {what} needs the {package} package, which is not installed: pip install {package} ({EXTRA_HINT})"
        ) from None


def read_file(path: str, what: str) -> bytes:
    """The bytes of ``path``; a missing file is an ``OSError`` that says what it is (``what``)."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise OSError(f"{path}: file not found ({what})") from None


def tensor_from_bytes(
    raw: bytes | bytearray, dtype: torch.dtype, shape, source: str, byteswap: bool = False
) -> torch.Tensor:
    """A tensor of ``dtype`` and ``shape`` over the bytes ``raw`` (``ValueError`` naming ``source`` when
    their number does not fit the shape); ``byteswap`` for big-endian data."""
    try:
        shape = tuple(operator.index(s) for s in shape)  # a damaged file's shape may hold a string
    except TypeError:
        raise ValueError(f"{source}: invalid shape {list(shape)}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"{source}: invalid shape {list(shape)}")
    itemsize = torch.empty((), dtype=dtype).element_size()
    numel = math.prod(shape)
    if len(raw) != numel * itemsize:
        raise ValueError(
            f"{source}: holds {len(raw)} bytes, but shape {list(shape)} of {str(dtype).removeprefix('torch.')} "
            f"needs {numel * itemsize}"
        )
    if numel == 0:
        return torch.empty(shape, dtype=dtype)
    buf = raw if isinstance(raw, bytearray) else bytearray(raw)
    t = torch.frombuffer(buf, dtype=torch.uint8)
    if byteswap and itemsize > 1:
        t = t.view(-1, itemsize).flip(-1).contiguous().view(-1)
    return t.view(dtype).reshape(shape)
