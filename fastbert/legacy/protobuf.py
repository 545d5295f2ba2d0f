"""The protobuf wire format, decoded by field number: enough to read a tensor bundle's
``BundleHeaderProto`` / ``BundleEntryProto`` (and the SSTable's varints) without the protobuf package
or TensorFlow's ``.proto`` files."""

from __future__ import annotations

import struct

from .common import Corrupt


def varint(buf, pos: int, limit: int | None = None) -> tuple[int, int]:
    """The base-128 varint at ``buf[pos:]`` (ending before ``limit``) and the position after it."""
    limit = len(buf) if limit is None else limit
    result = shift = 0
    while True:
        if pos >= limit:
            raise Corrupt("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise Corrupt("varint too long")


def fields(buf) -> dict[int, list]:
    """A message as {field number: [values]} (varints and fixed-width fields as int, the rest as bytes)."""
    out: dict[int, list] = {}
    pos, n = 0, len(buf)
    while pos < n:
        key, pos = varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = varint(buf, pos)
        elif wire == 1:
            if pos + 8 > n:
                raise Corrupt("truncated fixed64")
            value = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire == 2:
            length, pos = varint(buf, pos)
            if pos + length > n:
                raise Corrupt("truncated length-delimited field")
            value = bytes(buf[pos : pos + length])
            pos += length
        elif wire == 5:
            if pos + 4 > n:
                raise Corrupt("truncated fixed32")
            value = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise Corrupt(f"unsupported protobuf wire type {wire}")
        if number == 0:
            raise Corrupt("protobuf field number 0")
        out.setdefault(number, []).append(value)
    return out


def int64(v: int) -> int:
    """A varint read as unsigned 64 bits, as the signed ``int64`` it encodes."""
    return v - (1 << 64) if v >= 1 << 63 else v


def last(f: dict[int, list], number: int, kind: type, default=None):
    """The value of the singular field ``number`` of a message decoded by :func:`fields` (the last one, as
    protobuf reads it; ``default`` when absent); ``Corrupt`` when its wire type does not give a ``kind``
    (``int`` for numbers, ``bytes`` for messages and strings)."""
    values = f.get(number)
    if not values:
        return default
    return repeated(f, number, kind)[-1]


def repeated(f: dict[int, list], number: int, kind: type) -> list:
    """The values of the repeated field ``number``; ``Corrupt`` when one of them is not a ``kind``."""
    values = f.get(number, [])
    for v in values:
        if not isinstance(v, kind):
            raise Corrupt(f"field {number} has the wire type of {type(v).__name__}, expected {kind.__name__}")
    return values
