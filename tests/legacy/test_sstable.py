"""The SSTable of a TF1 checkpoint index: CRC-32C (google-crc32c), snappy blocks (cramjam), damage."""

from __future__ import annotations

import struct
import sys

import pytest
from legacy_helpers import EXTRA_HINT, GOOGLE, INDEX, assert_same_weights, corrupt
from legacy_writers import google_names, write_tf1_bundle

from fastbert import legacy
from fastbert.legacy import sstable


def test_crc32c():
    # RFC 3720 (iSCSI) test vectors of CRC-32C
    assert sstable.crc32c(b"123456789") == 0xE3069283
    assert sstable.crc32c(bytes(32)) == 0x8A9136AA
    assert sstable.crc32c(b"\xff" * 32) == 0x62A8AB43
    assert sstable.crc32c(bytes(range(32))) == 0x46DD794E
    assert sstable.crc32c(bytearray(b"123456789")) == 0xE3069283


def test_masked_crc32c():
    crc = sstable.crc32c(b"foo")
    rotated = ((crc >> 15) | (crc << 17)) & 0xFFFFFFFF
    assert sstable.masked_crc32c(b"foo") == (rotated + 0xA282EAD8) & 0xFFFFFFFF
    assert sstable.masked_crc32c(b"foo") != crc


def test_tf1_snappy_blocks(tmp_path, reference):
    assert sstable.snappy_decompress(bytes([9, 0x08]) + b"abc" + bytes([0x09, 3])) == b"abcabcabc"
    files = write_tf1_bundle(tmp_path / "model.ckpt", google_names(reference), snappy=True)
    assert_same_weights(legacy.load_legacy_checkpoint("tf1", files), reference)


def _first_block(index: bytes) -> tuple[int, int]:
    """(offset, size) of the first data block: its handle is the first entry of the index block."""
    footer = index[-sstable.FOOTER_SIZE :]
    _, pos = legacy.protobuf.varint(footer, 0)
    _, pos = legacy.protobuf.varint(footer, pos)
    index_offset, pos = legacy.protobuf.varint(footer, pos)
    # first entry of the index block: shared=0, key length, value length, key, then the handle
    pos = index_offset + 1
    key_len, pos = legacy.protobuf.varint(index, pos)
    _, pos = legacy.protobuf.varint(index, pos)
    offset, pos = legacy.protobuf.varint(index, pos + key_len)
    size, _ = legacy.protobuf.varint(index, pos)
    return offset, size


def test_corrupt_snappy_block(tmp_path, reference):
    """A snappy block whose bytes do not decompress, with a checksum that fits them: OSError naming the file."""
    files = write_tf1_bundle(tmp_path / "model.ckpt", google_names(reference), snappy=True)
    data = bytearray(open(files[0], "rb").read())
    offset, size = _first_block(bytes(data))
    assert data[offset + size] == 1  # snappy
    data[offset] = 0xFF  # the uncompressed length, a varint: now far too long
    data[offset + size + 1 : offset + size + 5] = struct.pack(
        "<I", sstable.masked_crc32c(bytes(data[offset : offset + size + 1]))
    )
    open(files[0], "wb").write(bytes(data))
    with pytest.raises(OSError, match="model.ckpt.index: corrupt TensorFlow checkpoint index: bad snappy"):
        legacy.load_legacy_checkpoint("tf1", files)


def test_missing_cramjam(tmp_path, reference, monkeypatch):
    """Only a snappy-compressed index needs cramjam."""
    files = write_tf1_bundle(tmp_path / "model.ckpt", google_names(reference), snappy=True)
    monkeypatch.setitem(sys.modules, "cramjam", None)
    with pytest.raises(ImportError, match=f"cramjam .*{EXTRA_HINT}"):
        legacy.load_legacy_checkpoint("tf1", files)
    assert len(legacy.load_legacy_checkpoint(*legacy.find_legacy_checkpoint(str(GOOGLE)))) == 46


@pytest.mark.parametrize("cut", [0, 10, 47, 1000, 1858])
def test_truncated_tf1_index(google_copy, cut):
    corrupt(GOOGLE / INDEX, google_copy / INDEX, truncate=cut)
    with pytest.raises(OSError, match=INDEX):
        legacy.load_legacy_checkpoint("tf1", [str(google_copy / INDEX)])


def test_corrupt_tf1_index(google_copy):
    corrupt(GOOGLE / INDEX, google_copy / INDEX, flip=300)
    with pytest.raises(OSError, match=f"{INDEX}: corrupt TensorFlow checkpoint index: checksum"):
        legacy.load_legacy_checkpoint("tf1", [str(google_copy / INDEX)])


def test_every_corrupted_index_byte_is_detected(google_copy):
    """Any changed byte of the index's data and index blocks, their compression types or their checksums
    fails a block checksum: never a silently different index. (The meta-index block, empty in a tensor
    bundle, is read neither by TensorFlow nor here.)"""
    data = (GOOGLE / INDEX).read_bytes()
    meta_offset, pos = legacy.protobuf.varint(data, len(data) - sstable.FOOTER_SIZE)
    meta_size, _ = legacy.protobuf.varint(data, pos)
    meta = range(meta_offset, meta_offset + meta_size + 5)  # block + type + checksum
    positions = [p for p in range(len(data) - sstable.FOOTER_SIZE) if p not in meta]
    assert len(positions) > 1700
    for position in positions:
        corrupt(GOOGLE / INDEX, google_copy / INDEX, flip=position)
        with pytest.raises(OSError, match=f"{INDEX}: corrupt TensorFlow checkpoint index: checksum mismatch"):
            sstable.read_sstable(str(google_copy / INDEX))
