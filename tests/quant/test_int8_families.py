"""int8 (fastbert.quant) on the families with their own layer names: DistilBERT (q_lin/k_lin/v_lin as one
GEMM, out_lin, ffn.lin1/lin2), MPNet (attn.q/k/v as one GEMM, attn.o, intermediate/output.dense; packed
with its relative bias) and ModernBERT (Wqkv, Wo, the GLU's Wi, mlp.Wo; RoPE, local and global layers). Tiny random models against their own fp32 outputs, through the same per-slot
calibration as BERT's."""

import pytest
import torch

import fastbert
from fastbert.core.tolerances import MIN_COSINE_QUANTIZED, min_cosine
from fastbert.quant import QuantizedLinear, quantize
from fastbert.quant.int8 import Int8Linear, int8_available

pytestmark = pytest.mark.skipif(not int8_available(), reason="torch without oneDNN int8 ops")

FAMILIES = {
    "distilbert": (
        lambda: fastbert.DistilBertModel(
            fastbert.DistilBertConfig(
                vocab_size=99, dim=36, n_layers=2, n_heads=3, hidden_dim=37, max_position_embeddings=40
            )
        ),
        "transformer.layer",
        ("attention.qkv", "attention.out_lin", "ffn.lin1", "ffn.lin2"),
    ),
    "mpnet": (
        lambda: fastbert.MPNetModel(
            fastbert.MPNetConfig(
                vocab_size=99,
                hidden_size=36,
                num_hidden_layers=2,
                num_attention_heads=3,
                intermediate_size=37,
                max_position_embeddings=200,
            )
        ),
        "encoder.layer",
        ("attention.attn.qkv", "attention.attn.o", "intermediate.dense", "output.dense"),
    ),
}


def _batch(n, length, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 99, (n, length), generator=g)
    mask = torch.ones(n, length, dtype=torch.long)
    mask[1:, length // 2 :] = 0  # padded rows: the packed path
    return dict(input_ids=ids * mask + (1 - mask), attention_mask=mask)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_linears_run_int8_and_stay_close_to_fp32(family, tmp_path):
    make, layers, names = FAMILIES[family]
    torch.manual_seed(0)
    model = make().eval()
    plain = {k: v.clone() for k, v in model.state_dict().items()}
    inputs = _batch(3, 16, seed=1)
    with torch.no_grad():
        ref = model(**inputs).last_hidden_state
    quantize(model, "int8", calibration=[_batch(4, 16, seed=2)], min_cosine=0.0, mean_cosine=0.0)
    report = model.quantization
    assert [d.name for d in report.layers] == [f"{layers}.{i}.{n}" for i in range(2) for n in names]
    assert all(d.precision == "int8" for d in report.layers), report
    # every slot carries its int8 copy, and each one is called in a forward (QKV as one GEMM)
    calls = []
    hooks = []
    for layer in model.transformer.layer if family == "distilbert" else model.encoder.layer:
        att = layer.attention if family == "distilbert" else layer.attention.attn
        assert isinstance(att.__dict__["qkv_linear"], Int8Linear)
        hooks.append((att, att.__dict__["qkv_linear"]))
    for att, hook in hooks:
        att.__dict__["qkv_linear"] = lambda x, w, b, hook=hook: calls.append(tuple(w.shape)) or hook(x, w, b)
    linears = [m for m in model.modules() if isinstance(m, QuantizedLinear)]
    assert len(linears) == 2 * 3 and all(isinstance(m.weight.fastbert_linear, Int8Linear) for m in linears)
    with torch.no_grad():
        out = model(**inputs).last_hidden_state
    assert calls == [(3 * 36, 36)] * 2
    for att, hook in hooks:
        att.__dict__["qkv_linear"] = hook
    _close_and_saved_fp32(model, plain, inputs, out, ref, tmp_path, lambda m: m(**inputs).last_hidden_state)


def _close_and_saved_fp32(model, plain, inputs, out, ref, tmp_path, reload_output, *, saved_ref=None):
    """int8 numbers within the rule's cosine (``MIN_COSINE_QUANTIZED``) of fp32 on the real tokens, the
    parameters untouched, and a saved checkpoint that reloads unquantized to the fp32 outputs (``saved_ref``,
    default ``ref``)."""
    real = inputs["attention_mask"].bool()
    assert min_cosine(out[real], ref[real]) >= MIN_COSINE_QUANTIZED
    assert not torch.equal(out, ref)  # int8 numbers, not the fp32 ones
    assert all(torch.equal(model.state_dict()[k], v) for k, v in plain.items())  # parameters untouched
    model.save_pretrained(tmp_path)
    again = type(model).from_pretrained(tmp_path)
    assert getattr(again, "quantization", None) is None  # a normal fp32 checkpoint
    with torch.no_grad():
        torch.testing.assert_close(reload_output(again), ref if saved_ref is None else saved_ref)


def test_a_distilbert_head_model_quantizes_its_encoder_only():
    config = fastbert.DistilBertConfig(
        vocab_size=99, dim=36, n_layers=2, n_heads=3, hidden_dim=37, max_position_embeddings=40, num_labels=3
    )
    model = fastbert.DistilBertForSequenceClassification(config).eval()
    quantize(model, "int8", calibration=[_batch(4, 16, seed=3)], min_cosine=0.0, mean_cosine=0.0)
    assert len(model.quantization.layers) == 8
    assert not isinstance(model.pre_classifier, QuantizedLinear)  # heads keep the model's dtype
    with torch.no_grad():
        assert model(**_batch(2, 10, seed=4)).logits.shape == (2, 3)


def _tiny_modernbert(**kw):
    from fastbert import registry

    config = registry.config_class("modernbert")(
        vocab_size=120, hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=48,
        max_position_embeddings=80, pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1,
        sep_token_id=2, local_attention=8, global_attn_every_n_layers=2, **kw,
    )  # fmt: skip
    return config


def test_modernbert_linears_run_int8_and_stay_close_to_fp32(tmp_path):
    """ModernBERT: Wqkv (one GEMM, no bias), Wo, the GLU's Wi (input and gate in one GEMM) and mlp.Wo of every
    layer, on packed tokens with local and global layers; the heads stay fp32; the checkpoint stays fp32."""
    torch.manual_seed(0)
    model = fastbert.ModernBertForMaskedLM(_tiny_modernbert()).eval()
    plain = {k: v.clone() for k, v in model.state_dict().items()}
    inputs = _batch(3, 19, seed=1)  # longer than the window: the local layers matter
    with torch.no_grad():
        ref = model(**inputs).logits
        hidden_ref = model.model(**inputs).last_hidden_state
    quantize(model, "int8", calibration=[_batch(4, 19, seed=2)], min_cosine=0.0, mean_cosine=0.0)
    report = model.quantization
    names = ("attn.Wqkv", "attn.Wo", "mlp.Wi", "mlp.Wo")
    assert [d.name for d in report.layers] == [f"layers.{i}.{n}" for i in range(3) for n in names]
    assert all(d.precision == "int8" for d in report.layers), report
    linears = [m for m in model.modules() if isinstance(m, QuantizedLinear)]
    assert len(linears) == 3 * 4 and all(isinstance(m.weight.fastbert_linear, Int8Linear) for m in linears)
    assert not isinstance(model.head.dense, QuantizedLinear) and not isinstance(
        model.decoder, QuantizedLinear
    )
    calls = []
    real_call = Int8Linear.__call__

    def spy(self, x, w, b=None, **kw):
        calls.append(tuple(w.shape))
        return real_call(self, x, w, b, **kw)

    Int8Linear.__call__ = spy
    try:
        with torch.no_grad():
            out = model(**inputs).logits
            hidden = model.model(**inputs).last_hidden_state
    finally:
        Int8Linear.__call__ = real_call
    assert calls[:4] == [(96, 32), (32, 32), (96, 32), (32, 48)] and len(calls) == 2 * 12  # Wi: 2 x 48
    assert out.shape == ref.shape
    _close_and_saved_fp32(
        model, plain, inputs, hidden, hidden_ref, tmp_path, lambda m: m(**inputs).logits, saved_ref=ref
    )


class _Forwarding(torch.nn.Module):
    """A wrapper that forwards attribute reads to the module it wraps (as PEFT's ModulesToSaveWrapper does)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner, name)

    def forward(self, *args, **kwargs):
        return self.inner(*args, **kwargs)


@pytest.mark.parametrize("replace", ["identity", "forwarding wrapper"])
def test_a_model_whose_layers_were_replaced_is_refused_by_name(replace):
    """A layer laid out otherwise than its family's (here BERT's self-attention replaced by hand, or wrapped in
    a module that forwards its attributes, ``fused_qkv`` too): a clear error before calibrating, and the model
    is left as it was."""
    config = fastbert.BertConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37
    )
    model = fastbert.BertModel(config).eval()
    att = model.encoder.layer[1].attention
    att.self = torch.nn.Identity() if replace == "identity" else _Forwarding(att.self)
    with pytest.raises(ValueError, match=r"BertModel \(bert\) is not laid out that way"):
        quantize(model, "int8", calibration=[_batch(2, 8, seed=5)], min_cosine=0.0, mean_cosine=0.0)
    assert getattr(model, "quantization", None) is None


@pytest.mark.parametrize("method", ["fp8", "int8"])
def test_modernbert_cuda_linears_through_their_cpu_call_path(method):
    """The CUDA GEMMs' copies (``torch._scaled_mm`` / ``torch._int_mm``, which this torch also runs on CPU
    tensors) on every ModernBERT linear, called by the sdpa and the triton (interpreter) tables alike."""
    from fastbert.quant import _quantize
    from fastbert.quant.gpu import Fp8Linear, IntMMLinear, cpu_implements

    if not cpu_implements(method):
        pytest.skip(f"this torch {torch.__version__} has no CPU implementation of the {method} GEMM")
    torch.manual_seed(0)
    model = fastbert.ModernBertModel(_tiny_modernbert()).eval()
    inputs = _batch(3, 19, seed=1)
    with torch.no_grad():
        ref = model(**inputs).last_hidden_state
    kernel = {"fp8": "scaled_mm", "int8": "int_mm"}[method]
    _quantize(model, method, kernel, calibration=[_batch(4, 19, seed=2)], min_cosine=0.0, mean_cosine=0.0)
    assert all(d.precision == method for d in model.quantization.layers), model.quantization
    cls = {"fp8": Fp8Linear, "int8": IntMMLinear}[method]
    linears = [m for m in model.modules() if isinstance(m, QuantizedLinear)]
    assert len(linears) == 12 and all(isinstance(m.weight.fastbert_linear, cls) for m in linears)
    real = inputs["attention_mask"].bool()
    with torch.no_grad():
        y = model(**inputs).last_hidden_state
        model.set_attn_implementation("triton")
        y_triton = model(**inputs).last_hidden_state
    assert not torch.equal(y[real], ref[real])
    assert min_cosine(y[real], ref[real]) >= MIN_COSINE_QUANTIZED
    assert (y_triton - y)[real].norm() < 0.1 * (y - ref)[real].norm()  # the same quantized GEMMs
