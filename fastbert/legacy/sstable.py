"""The LevelDB-style table (SSTable) that holds a TensorFlow checkpoint's ``.index``.

A file is data blocks, a meta-index block, an index block and a 48-byte footer (two block handles and a
magic number). Each block is followed by a one-byte compression type (0 none, 1 snappy) and the masked
CRC-32C of block + type, verified for every block as TensorFlow does. CRC-32C comes from
``google-crc32c``, snappy from ``cramjam`` (the ``[legacy]`` extra).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from .common import Corrupt, read_file, require
from .protobuf import varint

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
_MASK_DELTA = 0xA282EAD8


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``, by ``google-crc32c``."""
    return require("google_crc32c", "a TensorFlow checkpoint (CRC-32C checksums)").value(bytes(data))


def masked_crc32c(data: bytes) -> int:
    """The CRC-32C of ``data`` masked as LevelDB and TensorFlow store it (rotated right by 15 bits, plus
    a constant), so that a CRC of bytes holding CRCs is not itself trivial."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def snappy_decompress(data: bytes) -> bytes:
    """Raw (unframed) snappy, as LevelDB compresses blocks, by ``cramjam``."""
    cramjam = require("cramjam", "a snappy-compressed TensorFlow checkpoint index")
    try:
        return bytes(cramjam.snappy.decompress_raw(data))
    except cramjam.DecompressionError as e:
        raise Corrupt(f"bad snappy block ({e})") from None


def _read_block(data: bytes, offset: int, size: int) -> bytes:
    end = offset + size
    if offset < 0 or end + 5 > len(data):
        raise Corrupt(f"block at {offset}+{size} runs past the end of the file ({len(data)} bytes)")
    (stored,) = struct.unpack_from("<I", data, end + 1)
    if stored != masked_crc32c(data[offset : end + 1]):
        raise Corrupt(f"checksum mismatch in the block at offset {offset}")
    contents, compression = data[offset:end], data[end]
    if compression == 0:
        return contents
    if compression == 1:
        return snappy_decompress(contents)
    raise Corrupt(f"unknown block compression {compression}")


def _block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of a block: prefix-compressed keys, then the restart array and its length."""
    if len(block) < 4:
        raise Corrupt("block too short")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise Corrupt("bad restart count")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = varint(block, pos, limit)
        non_shared, pos = varint(block, pos, limit)
        value_len, pos = varint(block, pos, limit)
        if shared > len(key) or pos + non_shared + value_len > limit:
            raise Corrupt("bad block entry")
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        yield key, block[pos : pos + value_len]
        pos += value_len


def read_sstable(path: str) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of the table at ``path``, in key order; ``OSError`` naming ``path`` when it is
    missing, truncated or corrupt."""
    data = read_file(path, "TF1 checkpoint index")
    try:
        if len(data) < FOOTER_SIZE:
            raise Corrupt(f"only {len(data)} bytes, shorter than the 48-byte table footer")
        footer = data[-FOOTER_SIZE:]
        (magic,) = struct.unpack_from("<Q", footer, FOOTER_SIZE - 8)
        if magic != TABLE_MAGIC:
            raise Corrupt(
                "no table magic number at the end (truncated, or not a TensorFlow checkpoint index)"
            )
        _meta_offset, pos = varint(footer, 0)
        _meta_size, pos = varint(footer, pos)
        index_offset, pos = varint(footer, pos)
        index_size, pos = varint(footer, pos)
        entries = []
        for _, handle in _block_entries(_read_block(data, index_offset, index_size)):
            offset, p = varint(handle, 0)
            size, _ = varint(handle, p)
            entries.extend(_block_entries(_read_block(data, offset, size)))
        return entries
    except Corrupt as e:
        raise OSError(f"{path}: corrupt TensorFlow checkpoint index: {e}") from None
