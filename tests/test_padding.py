"""fastbert.core.padding: packing once, unpacking once, the cached masks, the counted host read."""

import pytest
import torch

from fastbert.core import padding
from fastbert.core.padding import Packing, full_packing, has_padding, pack, packing_from_mask, unpack


def mask_of(lengths, seqlen, left=False):
    m = torch.zeros(len(lengths), seqlen, dtype=torch.long)
    for i, n in enumerate(lengths):
        if left:
            m[i, seqlen - n :] = 1 if n else 0
        else:
            m[i, :n] = 1
    return m


def test_packing_of_a_padded_batch():
    mask = mask_of([3, 0, 5, 1], 5)
    p = packing_from_mask(mask)
    assert p.seqlens_host == (3, 0, 5, 1) and p.max_seqlen == 5 and p.total == 9
    assert p.cu_seqlens.tolist() == [0, 3, 3, 8, 9] and p.cu_seqlens.dtype == torch.int32
    assert p.indices.tolist() == [0, 1, 2, 10, 11, 12, 13, 14, 15]
    assert torch.equal(p.mask, mask.bool())
    assert p.rows.tolist() == [0, 0, 0, 2, 2, 2, 2, 2, 3]


def test_pack_unpack_round_trip_zeroes_padding():
    mask = mask_of([2, 4, 0], 4, left=True)
    p = packing_from_mask(mask)
    x = torch.randn(3, 4, 5)
    packed = pack(x, p)
    assert packed.shape == (6, 5)
    back = unpack(packed, p)
    torch.testing.assert_close(back[mask.bool()], x[mask.bool()], rtol=0, atol=0)
    assert (back[~mask.bool()] == 0).all()


def test_lengths_given_by_the_caller_need_no_read():
    mask = mask_of([1, 3], 3)
    with padding.count_host_reads() as reads:
        p = packing_from_mask(mask, padding.lengths(mask), (1, 3))
        assert reads.count == 0 and p.total == 4
        with padding.count_host_reads() as inner:
            packing_from_mask(mask)
    assert reads.count == 1 and inner.count == 1
    assert not padding._COUNTERS  # closed blocks count no more


def test_full_packing_and_has_padding():
    p = full_packing(2, 3, "cpu")
    assert p.cu_seqlens.tolist() == [0, 3, 6] and p.indices.tolist() == list(range(6))
    assert p.seqlens_host == (3, 3)
    assert not has_padding(torch.ones(2, 3)) and has_padding(mask_of([1, 3], 3))
    assert not has_padding(None)


def test_additive_mask_and_rows_with_keys_are_cached():
    keys = packing_from_mask(mask_of([2, 0], 3))
    queries = packing_from_mask(mask_of([1, 2], 3))
    m = keys.additive_mask(torch.float16)
    assert m.shape == (2, 1, 1, 3) and m is keys.additive_mask(torch.float16)
    assert m[0, 0, 0].tolist() == [0.0, 0.0, torch.finfo(torch.float16).min]
    assert queries.rows_with_keys(keys).tolist() == [True, False, False]


def test_extents_is_one_past_the_last_real_token():
    mask = torch.tensor([[1, 1, 1, 0], [0, 0, 1, 1], [1, 0, 1, 0], [0, 0, 0, 0]])
    assert padding.extents(mask).tolist() == [3, 4, 3, 0]
    assert padding.extents(mask).dtype == torch.int32
    assert padding.extents(torch.ones(2, 0)).tolist() == [0, 0]


def test_a_static_packing_refuses_what_needs_its_lengths():
    """A CUDA graph's static packing (lengths on the device only, filler rows past the real tokens pointing
    at position 0): its mask, rows, key rows, additive mask and unpack would silently count the filler as
    tokens of sequence 0, so each one raises instead."""
    p = Packing(
        indices=torch.zeros(8, dtype=torch.long),
        cu_seqlens=torch.tensor([0, 3, 5], dtype=torch.int32),
        seqlens=torch.tensor([3, 2], dtype=torch.int32),
        max_seqlen=4,
        batch=2,
        seqlen=4,
        seqlens_host=None,
        static_rows=8,
    )
    assert p.total == 8
    for what, call in [
        ("Packing.mask", lambda: p.mask),
        ("Packing.rows", lambda: p.rows),
        ("Packing.rows_with_keys", lambda: p.rows_with_keys(p)),
        ("Packing.additive_mask", lambda: p.additive_mask(torch.float32)),
        ("unpack", lambda: unpack(torch.zeros(8, 3), p)),
    ]:
        with pytest.raises(RuntimeError, match=f"{what} of a CUDA graph's static packing"):
            call()
