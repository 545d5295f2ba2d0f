"""The parity rule itself: it passes what PyTorch's own error allows and fails what it does not."""

import pytest
import torch

from fastbert.core import tolerances as tol


def test_bound_is_factor_times_torch_error_plus_floor():
    # the rule's numbers, written out: a looser FACTOR must fail here, not pass everything downstream
    assert tol.FACTOR == 4.0
    assert tol.bound(1e-3, torch.float16) == pytest.approx(4e-3 + 2.0**-10)
    assert tol.bound(1e-3, torch.bfloat16) == pytest.approx(4e-3 + 2.0**-7)
    assert tol.bound(0.0, torch.float32, ref_magnitude=8.0) == pytest.approx(8 * 2.0**-20)


def test_judge_passes_within_and_fails_beyond_the_rule():
    ref = torch.randn(4, 5, dtype=torch.float64)
    torch_out = ref + 1e-2
    ok = tol.judge(ref + 0.9 * tol.FACTOR * 1e-2, torch_out, ref, torch.float16)
    bad = tol.judge(ref + 1.1 * tol.FACTOR * 1e-2 + 2e-3 * ref.abs().max(), torch_out, ref, torch.float16)
    assert ok.ok and not bad.ok
    assert "ours - ref" in bad.message("x")
    # in numbers: torch's fp16 error 1e-2 allows 4e-2 (+ the floor), not 5e-2
    assert tol.judge(ref + 3.9e-2, torch_out, ref, torch.float16).ok
    assert not tol.judge(ref + 5e-2, torch_out, ref, torch.float16).ok


def test_mask_excludes_padded_positions():
    ref = torch.zeros(2, 3, 4)
    out = ref.clone()
    out[1, 2] = 100.0  # a padded position: does not count
    mask = torch.ones(2, 3, dtype=torch.bool)
    mask[1, 2] = False
    assert tol.judge(out, None, ref, torch.float32, mask=mask).ok
    assert not tol.judge(out, None, ref, torch.float32).ok


def test_nan_fails_and_cosine():
    ref = torch.ones(2, 3)
    out = ref.clone()
    out[0, 0] = float("nan")
    assert not tol.judge(out, ref, ref, torch.float32).ok
    with pytest.raises(AssertionError, match="NaN"):
        tol.assert_close(out, ref, ref, torch.float32)
    assert tol.min_cosine(ref * 3, ref) == pytest.approx(1.0)
    assert tol.min_cosine(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="no row to compare"):  # an all-padding selection passed as 1.0
        tol.min_cosine(torch.empty(0, 4), torch.empty(0, 4))


def test_an_overflowed_torch_output_or_reference_fails_instead_of_passing_everything():
    """PyTorch's own output in the dtype (or the reference) holding inf made the bound infinite: any
    finite output passed, however wrong. The comparison now fails, and says why."""
    ref = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    wrong = torch.tensor([50.0, -7.0, 3.0])
    for torch_out, reference in [
        (torch.tensor([float("inf"), 2.0, 3.0]), ref),
        (torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, float("inf"), 3.0], dtype=torch.float64)),
        (torch.tensor([float("nan"), 2.0, 3.0]), ref),
    ]:
        v = tol.judge(wrong, torch_out, reference, torch.float16)
        assert not v.ok and "no bound to judge by" in v.message()
    assert tol.judge(ref.float(), ref.half(), ref, torch.float16).ok  # finite: judged as before


def test_torch_error_and_magnitude_are_measured_on_the_valid_positions_only():
    """PyTorch's own error and the reference's magnitude, which set the bound, count on ``mask``'s positions
    only: a padded position where torch's output (or the reference) is large must not widen the bound."""
    ref = torch.zeros(2, 3, 4, dtype=torch.float64)
    mask = torch.ones(2, 3, dtype=torch.bool)
    mask[1, 2] = False
    out = ref.float() + 1e-3  # 1e-3 off everywhere: above the fp32 floor
    torch_out = ref.float().clone()
    torch_out[1, 2] = 1.0  # torch's output wrong on a padded position only
    v = tol.judge(out, torch_out, ref, torch.float32, mask=mask)
    assert v.torch_error == 0.0 and not v.ok, v
    big = torch.ones_like(ref)
    big[1, 2] = 1e6  # the reference huge on a padded position only: the floor stays 2**-20 * 1
    v = tol.judge(big.float() + 1e-3, None, big, torch.float32, mask=mask)
    assert v.bound == tol.FLOOR[torch.float32] and not v.ok, v


def test_the_floor_scales_with_an_output_below_one():
    """The floor is ulps at the reference's magnitude, below 1 too: a floor of one ulp at magnitude 1 passed
    bf16 unit-normalized embeddings 0.008 off (16 times torch's own error, cosine 0.989 where torch's is
    0.99999), and fp16 ones 16 times off."""
    g = torch.Generator().manual_seed(0)
    ref = torch.nn.functional.normalize(torch.randn(8, 384, generator=g, dtype=torch.float64), dim=-1)
    noise = torch.sign(torch.randn(8, 384, generator=g, dtype=torch.float64))
    for dtype, off in ((torch.bfloat16, 0.0075), (torch.float16, 0.0009)):
        torch_out = ref.to(dtype)
        wrong = (ref + off * noise).to(dtype)
        v = tol.judge(wrong, torch_out, ref, dtype)
        assert v.error > 10 * v.torch_error and not v.ok, (dtype, v)
        assert tol.judge(torch_out, torch_out, ref, dtype).ok  # torch's own rounding passes
    # the floor alone, at the reference's magnitude: 1 ulp of fp16 at 0.01 passes, 4 ulps do not
    small = torch.full((4,), 0.01, dtype=torch.float64)
    ulp = 2.0**-17  # fp16's spacing in [2**-7, 2**-6)
    assert tol.judge(small + ulp, None, small, torch.float16).ok
    assert not tol.judge(small + 4 * ulp, None, small, torch.float16).ok
    assert tol.bound(0.0, torch.float16, 0.01) == pytest.approx(0.01 * 2.0**-10)


def test_a_mask_that_selects_nothing_is_refused():
    """An all-padding mask compared nothing: error 0 and the verdict ok, for any output however wrong. It is
    refused; an empty output (encode([])) is still judged, and equal."""
    ref = torch.zeros(2, 3, 4, dtype=torch.float64)
    wrong = torch.full((2, 3, 4), 1e6)
    none = torch.zeros(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="selects no position"):
        tol.judge(wrong, ref.float(), ref, torch.float32, mask=none)
    with pytest.raises(ValueError, match="selects no position"):
        tol.assert_close(wrong, None, ref, torch.float32, mask=none)
    empty = torch.zeros(0, 4)
    assert tol.judge(empty, empty, empty.double(), torch.float32).ok
    assert tol.judge(empty, None, empty.double(), torch.float32, mask=torch.zeros(0, dtype=torch.bool)).ok
    one = none.clone()
    one[1, 2] = True  # one valid token: judged
    assert not tol.judge(wrong, ref.float(), ref, torch.float32, mask=one).ok


def test_shapes_must_agree():
    """torch's output of shape (n, 1) against a reference of shape (n,) broadcast to an (n, n) difference:
    PyTorch's "error" was the spread of the values, and an output 0.5 off everywhere passed."""
    ref = torch.linspace(-3, 3, 50, dtype=torch.float64)
    with pytest.raises(
        ValueError, match=r"torch's own output of shape \(50, 1\) .* reference of shape \(50,\)"
    ):
        tol.judge(ref.float() + 0.5, ref.float()[:, None], ref, torch.float32)
    with pytest.raises(
        ValueError, match=r"output of shape \(1, 50\) judged against a reference of shape \(50,\)"
    ):
        tol.judge(ref.float()[None], None, ref, torch.float32)
    assert tol.judge(ref.float(), ref.float(), ref, torch.float32).ok  # equal shapes: judged as before


def test_quantized_rivals_cosine_gate_is_pinned():
    """int8 rivals are judged by cosine to the float64 reference; a lower gate must fail here."""
    assert tol.MIN_COSINE_QUANTIZED == 0.999
    assert tol.FLOOR[torch.float64] == 1e-12
