"""The protobuf wire format as the tensor bundle's index uses it."""

from __future__ import annotations

import struct

import pytest
from legacy_writers import encode_varint

from fastbert.legacy import protobuf
from fastbert.legacy.common import Corrupt


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 2**31, 2**63 - 1, 2**64 - 1])
def test_varint_round_trip(n):
    raw = encode_varint(n)
    assert protobuf.varint(b"x" + raw + b"y", 1) == (n, 1 + len(raw))
    assert protobuf.int64(n) == (n - 2**64 if n >= 2**63 else n)


def test_fields_of_every_wire_type():
    message = (
        encode_varint(1 << 3 | 0) + encode_varint(300)
        + encode_varint(2 << 3 | 1) + struct.pack("<Q", 2**40)
        + encode_varint(3 << 3 | 2) + encode_varint(3) + b"abc"
        + encode_varint(4 << 3 | 5) + struct.pack("<I", 7)
        + encode_varint(1 << 3 | 0) + encode_varint(5)
    )  # fmt: skip
    assert protobuf.fields(message) == {1: [300, 5], 2: [2**40], 3: [b"abc"], 4: [7]}


@pytest.mark.parametrize(
    "message, error",
    [
        (b"\x80", "truncated varint"),
        (b"\xff" * 11, "varint too long"),
        (encode_varint(1 << 3 | 1) + b"\0" * 7, "truncated fixed64"),
        (encode_varint(1 << 3 | 2) + encode_varint(5) + b"abc", "truncated length-delimited"),
        (encode_varint(1 << 3 | 5) + b"\0", "truncated fixed32"),
        (encode_varint(1 << 3 | 3), "wire type 3"),
        (encode_varint(0) + encode_varint(1), "field number 0"),
    ],
)
def test_damaged_messages(message, error):
    with pytest.raises(Corrupt, match=error):
        protobuf.fields(message)
