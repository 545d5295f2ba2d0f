"""fastbert.kernels.glu (GeGLU), LayerNorm without bias and add_rmsnorm against ``fastbert.core.layers_ref``,
and those references against transformers' ModernBERT MLP / torch's norms."""

from __future__ import annotations

import pytest
import torch
from kernel_checks import DTYPES, check_against_reference, to64

from fastbert import kernels
from fastbert.core import layers_ref

SHAPES = [(1, 36), (7, 384), (65, 36), (3, 1000)]  # (rows, output columns)


def _both(kernel_fn, ref_fn, *args, **kwargs):
    """(kernel output, reference in dtype, reference on float64 inputs)."""
    return kernel_fn(*args, **kwargs), ref_fn(*args, **kwargs), ref_fn(*(to64(a) for a in args), **kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("activation", ["gelu", "gelu_new", "silu"])
def test_glu(dtype, shape, with_bias, activation, device):
    m, n = shape
    x = torch.randn(m, 2 * n, dtype=dtype, device=device)
    b = torch.randn(2 * n, dtype=dtype, device=device) if with_bias else None
    out = _both(kernels.glu, layers_ref.glu, x, b, activation)
    assert out[0].shape == (m, n)
    check_against_reference(*out, dtype)


def test_glu_strided_3d(device):
    x = torch.randn(2, 5, 2 * 2 * 48, device=device)[..., ::2]  # (2, 5, 96) with column stride 2
    check_against_reference(*_both(kernels.glu, layers_ref.glu, x, None, "gelu"), torch.float32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("rms", [False, True], ids=["layernorm_no_bias", "rmsnorm"])
@pytest.mark.parametrize("with_residual", [True, False])
def test_norm_without_bias(dtype, shape, rms, with_residual, device):
    mk = lambda *s: torch.randn(*s, dtype=dtype, device=device)
    x, r, b, w = mk(*shape), mk(*shape), mk(shape[1]), 1 + 0.1 * mk(shape[1])
    r = r if with_residual else None
    if rms:
        out = _both(
            kernels.add_rmsnorm,
            lambda *a: layers_ref.add_norm(*a[:4], None, a[4], rms=True),
            x,
            r,
            b,
            w,
            1e-6,
        )
    else:
        out = _both(kernels.add_layernorm, layers_ref.add_norm, x, r, b, w, None, 1e-5)
    check_against_reference(*out, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "rms, ln_bias",
    [(False, True), (False, False), (True, False)],
    ids=["layernorm", "layernorm_no_bias", "rmsnorm"],
)
def test_add_norm_residual(dtype, rms, ln_bias, device):
    """Pre-norm placement: the normalised output and the sum (the next residual), both within the rule."""
    mk = lambda *s: torch.randn(*s, dtype=dtype, device=device)
    args = (mk(13, 96), mk(13, 96), mk(96), 1 + 0.1 * mk(96), mk(96) if ln_bias else None, 1e-5, rms)
    (y, h), (ty, th), (ry, rh) = _both(kernels.add_norm_residual, layers_ref.add_norm_residual, *args)
    check_against_reference(h, th, rh, dtype)
    check_against_reference(y, ty, ry, dtype)


def test_bad_inputs(device):
    x = torch.randn(3, 36, device=device)
    with pytest.raises(ValueError, match="even last dimension"):
        kernels.glu(x[:, :35], None)
    with pytest.raises(ValueError, match="bias must have shape"):
        kernels.glu(x, torch.randn(18, device=device))
    with pytest.raises(ValueError, match="ln_weight is required"):
        kernels.add_rmsnorm(x, None, None, None, 1e-6)
    with pytest.raises(ValueError, match="RMSNorm has no bias"):
        kernels.add_norm_residual(
            x, None, None, torch.ones(36, device=device), torch.ones(36, device=device), 1e-6, True
        )


def test_references_match_transformers_and_torch():
    """glu is ModernBERT's MLP activation; add_norm is nn.LayerNorm(bias=False) and nn.RMSNorm (float64)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.ModernBertConfig(hidden_size=32, intermediate_size=48, hidden_activation="gelu")
    mlp = transformers.models.modernbert.modeling_modernbert.ModernBertMLP(cfg).eval().double()
    x = torch.randn(5, 32, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(mlp.Wo(layers_ref.glu(mlp.Wi(x), None, cfg.hidden_activation)), mlp(x))
        ln = torch.nn.LayerNorm(32, eps=1e-5, bias=False).double()
        ln.weight.normal_()
        torch.testing.assert_close(layers_ref.add_norm(x, None, None, ln.weight, None, 1e-5), ln(x))
        rms = torch.nn.RMSNorm(32, eps=1e-6).double()
        rms.weight.normal_()
        torch.testing.assert_close(
            layers_ref.add_norm(x, None, None, rms.weight, None, 1e-6, rms=True), rms(x)
        )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tables", ["word_only", "word_type", "all"])
@pytest.mark.parametrize("ln_bias", [False, True])
def test_embed_norm_optional_tables(dtype, tables, ln_bias, device):
    """embed_layernorm without a position table, a type table or a LayerNorm bias (ModernBERT: word +
    LayerNorm(bias=False)) against ``layers_ref.embed_norm``."""
    t, hidden = 37, 48
    mk = lambda *s: torch.randn(*s, dtype=dtype, device=device)
    ids = torch.randint(0, 50, (t,), device=device)
    tt = torch.randint(0, 2, (t,), device=device) if tables != "word_only" else None
    pe = mk(64, hidden) if tables == "all" else None
    te = mk(2, hidden) if tables != "word_only" else None
    args = (
        ids,
        None,
        tt,
        mk(50, hidden),
        pe,
        te,
        1 + 0.1 * mk(hidden),
        mk(hidden) if ln_bias else None,
        1e-5,
    )
    check_against_reference(*_both(kernels.embed_layernorm, layers_ref.embed_norm, *args), dtype)
    if tables == "all" and ln_bias:  # the full form is BERT's: the reference agrees with the op table's
        from kernel_checks import reference

        torch.testing.assert_close(layers_ref.embed_norm(*args), reference("embed_layernorm")(*args))


def test_embed_bad_optional_tables(device):
    ids = torch.randint(0, 50, (5,), device=device)
    w, ln = torch.randn(50, 16, device=device), torch.ones(16, device=device)
    with pytest.raises(ValueError, match="token_type_ids given without a type_weight"):
        kernels.embed_layernorm(ids, None, torch.zeros_like(ids), w, None, None, ln, None, 1e-5)
    with pytest.raises(ValueError, match="position_ids given without a position_weight"):
        kernels.embed_layernorm(ids, torch.zeros_like(ids), None, w, None, None, ln, None, 1e-5)


def test_flags_must_be_bools(device):
    """A flag that is not a bool is refused, not read by truthiness: "false" would select causal attention
    or RMSNorm."""
    x = torch.randn(3, 16, device=device)
    w = torch.ones(16, device=device)
    with pytest.raises(ValueError, match="rms must be a bool, got 'false'"):
        kernels.add_norm_residual(x, None, None, w, None, 1e-6, "false")
    q = torch.randn(3, 1, 16, device=device)
    cu = torch.tensor([0, 3], dtype=torch.int32, device=device)
    with pytest.raises(ValueError, match="causal must be a bool, got 'false'"):
        kernels.attention_varlen(q, q, q, cu, cu, 3, 3, 0.25, "false")
    with pytest.raises(ValueError, match="causal must be a bool, got None"):
        kernels.attention_padded(q[None], q[None], q[None], None, 0.25, None)
