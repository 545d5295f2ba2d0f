"""Kernel configs: the autotuner's pruning by dtype and head dim, the length buckets of its key, and the
``FASTBERT_KERNEL_CONFIG`` override that test tiers use to run one config without autotuning."""

from __future__ import annotations

import pytest
import torch
from kernel_checks import check_against_reference, run_both

from fastbert.kernels import _compat, attention


def test_forced_config_parsing(monkeypatch):
    monkeypatch.delenv(_compat.CONFIG_ENV, raising=False)
    assert _compat.forced_config() is None
    monkeypatch.setenv(_compat.CONFIG_ENV, "first")
    assert _compat.forced_config() == "first"
    monkeypatch.setenv(_compat.CONFIG_ENV, "64, 32,4,2")
    assert _compat.forced_config() == (64, 32, 4, 2)
    # tiles: powers of two, at least tl.dot's 16; warps a power of two (each reached triton as an obscure
    # tl.arange / tl.dot error)
    for bad in ("fast", "64,32,4", "64,32,0,2", "a,b,c,d", "48,32,4,2", "64,8,4,2", "64,32,3,2"):
        monkeypatch.setenv(_compat.CONFIG_ENV, bad)
        with pytest.raises(ValueError, match="FASTBERT_KERNEL_CONFIG must be 'first' or"):
            _compat.forced_config()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("block_d", [16, 32, 64, 128])
def test_prune_keeps_only_the_candidates_of_dtype_and_head_dim(dtype, block_d):
    q = torch.empty(1, dtype=dtype)
    kept = attention._prune(attention._CONFIGS, {"Q": q}, BLOCK_D=block_d)
    got = [(c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps, c.num_stages) for c in kept]
    # launches pass every argument by keyword: the Autotuner then hands them all in kwargs
    by_keyword = attention._prune(attention._CONFIGS, {}, Q=q, BLOCK_D=block_d)
    assert by_keyword == kept
    if dtype == torch.float32:  # fp32 never autotunes; the pruning still names one config
        assert len(got) == 1
    else:
        assert got == attention.candidates(dtype, block_d)
    assert len(attention.candidates(dtype, block_d)) <= 4, "each candidate is one cold compile"


def test_length_buckets():
    assert [attention.length_bucket(n) for n in (1, 128, 129, 512, 513, 4096)] == [
        128,
        128,
        512,
        512,
        4096,
        4096,
    ]


@pytest.mark.parametrize("forced", ["first", "32,16,4,1"])
def test_forced_config_is_the_one_launched(forced, monkeypatch, device):
    monkeypatch.setenv(_compat.CONFIG_ENV, forced)
    launched = []
    real = _compat.launch
    monkeypatch.setattr(_compat, "launch", lambda k, g, **kw: launched.append(kw) or real(k, g, **kw))
    q, k, v = (torch.randn(2, 40, 2, 64, dtype=torch.float16, device=device) for _ in range(3))
    check_against_reference(*run_both("attention_padded", q, k, v, None, 0.125, False), torch.float16)
    meta = launched[-1]
    want = attention.candidates(torch.float16, 64)[0] if forced == "first" else (32, 16, 4, 1)
    assert (meta["BLOCK_M"], meta["BLOCK_N"], meta["num_warps"], meta["num_stages"]) == want


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("variant", ["rotary", "rel_bias"])
def test_head_dim_128_variants_take_smaller_tiles(dtype, variant, monkeypatch):
    """At head dim 128, RoPE's extra tiles overflow Hopper's shared memory at 128 x 64 (fp16/bf16) and the
    relative bias spills there; fp32 RoPE spills at 32 x 16 (hopper_compile.py, sm_90). The pruning and
    FASTBERT_KERNEL_CONFIG=first take the variant's own tiles."""
    flags = dict(ROTARY=variant == "rotary", HAS_REL_BIAS=variant == "rel_bias")
    q = torch.empty(1, dtype=dtype)
    kept = attention._prune(attention._CONFIGS, {}, Q=q, BLOCK_D=128, **flags)
    tiles = [(c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps, c.num_stages) for c in kept]
    want = attention.candidates(dtype, 128, variant == "rotary", variant == "rel_bias")
    if dtype == torch.float32:
        assert want == [(16, 16, 8, 2)] if variant == "rotary" else want == [(32, 16, 8, 2)]
    else:
        assert tiles == want and (128, 64, 8, 3) not in want
        assert all(m * n <= 128 * 32 for m, n, _, _ in want)
    monkeypatch.setenv(_compat.CONFIG_ENV, "first")
    assert attention._forced(dtype, 128, variant == "rotary", variant == "rel_bias") == want[0]
    assert (
        attention._forced(dtype, 64, variant == "rotary", variant == "rel_bias") != want[0]
        or dtype == torch.float32
    )


def test_prune_drops_the_tile_that_spills_with_the_relative_bias():
    q = torch.empty(1, dtype=torch.float16)
    plain = attention._prune(attention._CONFIGS, {}, Q=q, BLOCK_D=64, HAS_REL_BIAS=False)
    biased = attention._prune(attention._CONFIGS, {}, Q=q, BLOCK_D=64, HAS_REL_BIAS=True)
    assert any(c.kwargs["BLOCK_M"] * c.kwargs["BLOCK_N"] > 128 * 64 for c in plain)
    assert biased and all(c.kwargs["BLOCK_M"] * c.kwargs["BLOCK_N"] <= 128 * 64 for c in biased)


def test_host_integer_helpers_are_tritons():
    """The launchers' cdiv / next_power_of_2 (plain Python: triton's are ConstexprFunctions, ~4 us a host call)
    give what triton's give."""
    import triton

    from fastbert.kernels import _compat

    for n in range(1, 5000):
        assert _compat.next_power_of_2(n) == triton.next_power_of_2(n), n
        for b in (1, 7, 16, 64, 128):
            assert _compat.cdiv(n, b) == triton.cdiv(n, b), (n, b)
    assert _compat.cdiv(0, 16) == 0
