"""The plan of a job: every input scanned once, streaming (``readers.scan``), then cut into shards of
``shard_rows`` input rows, never across files, so the shard of a row depends on the inputs alone (not on
timing or devices)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

#: a shard's file name: its index zero-padded to :func:`shard_digits` digits
SHARD_NAME = "part-{:0{digits}d}.parquet"
#: the digits of shard names up to 99,999 shards (and of every plan written before the width was recorded)
SHARD_DIGITS = 5


def shard_digits(count: int) -> int:
    """The zero padding of the names of a plan of ``count`` shards: 5 digits up to 99,999 shards (the names
    of older outputs, which then still resume), wider beyond, so that the names sort as the shards do."""
    return max(SHARD_DIGITS, len(str(max(count - 1, 0))))


def shard_name(index: int, digits: int = SHARD_DIGITS) -> str:
    """The file name of shard ``index`` (``part-00042.parquet``)."""
    return SHARD_NAME.format(index, digits=digits)


def shard_number(name: str) -> int | None:
    """The index of a shard file name (``part-00042.parquet``: 42), None for another name."""
    stem = SHARD_NAME.split("{")[0]
    digits = name[len(stem) : -len(".parquet")]
    if name.startswith(stem) and name.endswith(".parquet") and digits.isdigit() and digits.isascii():
        return int(digits)
    return None


@dataclasses.dataclass(frozen=True)
class InputFile:
    """One input file: what was read (size, mtime) and where its shards start."""

    path: str
    format: str
    size: int
    mtime_ns: int
    rows: int
    # byte offset of every shard start (line formats); row offsets of the other formats are rows
    offsets: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class Shard:
    """Rows ``[start, stop)`` of input file ``file``; global row numbers start at ``base``."""

    index: int
    file: int
    start: int
    stop: int
    base: int
    offset: int = 0
    digits: int = SHARD_DIGITS  # the zero padding of the plan's names

    @property
    def name(self) -> str:
        """The shard's file name (``part-00042.parquet``)."""
        return shard_name(self.index, self.digits)

    @property
    def rows(self) -> int:
        return self.stop - self.start


def shard_count(files: Sequence[InputFile], shard_rows: int) -> int:
    """How many shards :func:`plan_shards` cuts ``files`` into."""
    return sum(-(-f.rows // shard_rows) for f in files)


def plan_shards(files: Sequence[InputFile], shard_rows: int, digits: int | None = None) -> list[Shard]:
    """Cut the inputs into shards of ``shard_rows`` rows, never across files (deterministic); their names
    have ``digits`` digits (default: :func:`shard_digits` of the plan's shard count)."""
    if digits is None:
        digits = shard_digits(shard_count(files, shard_rows))
    shards = []
    base = 0
    for i, f in enumerate(files):
        for k, start in enumerate(range(0, f.rows, shard_rows)):
            offset = f.offsets[k] if f.offsets else 0
            shards.append(Shard(len(shards), i, start, min(start + shard_rows, f.rows), base, offset, digits))
        base += f.rows
    return shards


def input_records(files: Sequence[InputFile]) -> list[dict[str, Any]]:
    """The inputs as the manifest records them (JSON)."""
    return [dataclasses.asdict(f) | {"offsets": list(f.offsets)} for f in files]


def file_from_record(d: dict[str, Any]) -> InputFile:
    """An :class:`InputFile` from its manifest record."""
    d = dict(d)
    d["offsets"] = tuple(d.get("offsets") or ())
    return InputFile(**d)
