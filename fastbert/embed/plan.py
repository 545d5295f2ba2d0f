"""The plan of a job: every input scanned once, streaming (``readers.scan``), then cut into shards of
``shard_rows`` input rows, never across files, so the shard of a row depends on the inputs alone (not on
timing or devices)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

SHARD_NAME = "part-{:05d}.parquet"


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

    @property
    def name(self) -> str:
        return SHARD_NAME.format(self.index)

    @property
    def rows(self) -> int:
        return self.stop - self.start


def plan_shards(files: Sequence[InputFile], shard_rows: int) -> list[Shard]:
    """Cut the inputs into shards of ``shard_rows`` rows, never across files (deterministic)."""
    shards = []
    base = 0
    for i, f in enumerate(files):
        for k, start in enumerate(range(0, f.rows, shard_rows)):
            offset = f.offsets[k] if f.offsets else 0
            shards.append(Shard(len(shards), i, start, min(start + shard_rows, f.rows), base, offset))
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
