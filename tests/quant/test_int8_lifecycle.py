"""An int8 model through the life of a PyTorch model: weight edits (in place, through ``.data``, a new
Parameter, ``to_empty``, PEFT's merge), deep copies and pickles, every op table, ``torch.compile``, the
fallback warnings, loading from a hub id, and the refusals and spellings of the entry points. Tiny random
models against their own fp32 twins."""

import copy
import io
import os
import pickle
import warnings

import pytest
import torch

import fastbert
import fastbert.loading
from fastbert.core.weight_watch import weight_sample
from fastbert.quant import QuantizedLinear, check_quantization, quantize, refresh
from fastbert.quant.int8 import Int8Linear, int8_available

pytestmark = pytest.mark.skipif(not int8_available(), reason="torch without oneDNN int8 ops")

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
DENSE = "encoder.layer.0.intermediate.dense.weight"
VALUE = "encoder.layer.0.attention.self.value.weight"  # in the fused QKV GEMM
HERE = os.path.abspath(__file__)


def _batches(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 99, (4, 12), generator=g)
    return [dict(input_ids=ids, attention_mask=torch.ones_like(ids))]


def _int8_model(seed=0):
    """(fp32 twin, int8 model) of one tiny random BERT, every linear int8."""
    torch.manual_seed(seed)
    fp32 = fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()
    q = copy.deepcopy(fp32)
    quantize(q, "int8", calibration=_batches(), min_cosine=0.0, mean_cosine=0.0)
    assert all(d.precision == "int8" for d in q.quantization.layers)
    return fp32, q


IDS = torch.randint(1, 99, (3, 10), generator=torch.Generator().manual_seed(7))


def _out(model, **kw):
    with torch.no_grad():
        return model(input_ids=IDS, **kw).last_hidden_state


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


class _CountInt8Calls:
    """Counts the int8 linears' calls (every linear of the model, QKV included)."""

    def __init__(self, monkeypatch):
        self.n = 0
        real = Int8Linear.__call__

        def spy(hook, x, w, b=None):
            self.n += 1
            return real(hook, x, w, b)

        monkeypatch.setattr(Int8Linear, "__call__", spy)


# ------------------------------------------------------------------------------------------------ edits
def _edit(model, name, new, how):
    p = dict(model.named_parameters())[name]
    if how == "no_grad copy_":
        with torch.no_grad():
            p.copy_(new)
    elif how == "p.data.copy_":  # EMA, PEFT's merge: no version bump
        p.data.copy_(new)
    elif how == "p.data = new":
        p.data = new.clone()
    elif how.startswith("load_state_dict"):
        sd = {k: v.clone() for k, v in model.state_dict().items()}
        sd[name] = new
        model.load_state_dict(sd, assign=how.endswith("(assign=True)"))
    elif how == "to(meta), to_empty, load_state_dict":
        sd = {k: v.clone() for k, v in model.state_dict().items()}
        sd[name] = new
        buffers = {k: v.clone() for k, v in model.named_buffers()}  # non-persistent ones too
        model.to("meta")
        model.to_empty(device="cpu")
        model.load_state_dict(sd)
        with torch.no_grad():
            for k, v in model.named_buffers():
                v.copy_(buffers[k])
    else:  # pragma: no cover
        raise AssertionError(how)


EDITS = [
    "no_grad copy_",
    "p.data.copy_",
    "p.data = new",
    "load_state_dict",
    "load_state_dict(assign=True)",
    "to(meta), to_empty, load_state_dict",
]


@pytest.mark.parametrize("how", EDITS)
@pytest.mark.parametrize("name", [DENSE, VALUE], ids=["dense", "qkv"])
def test_int8_copy_follows_every_weight_edit(name, how, monkeypatch):
    """After any of the ways PyTorch code changes a weight, the int8 model computes with the new weight
    (close to the fp32 twin given the same edit) and through its int8 copies, never the stale copy."""
    fp32, q = _int8_model()
    new = torch.randn_like(dict(q.named_parameters())[name]) * 0.3
    old_out = _out(fp32)
    for m in (fp32, q):
        _edit(m, name, new, how)
    ref = _out(fp32)
    calls = _CountInt8Calls(monkeypatch)
    got = _out(q)
    assert calls.n == 8  # all 8 linears ran their int8 copies (none lost with a replaced Parameter)
    # int8's own error is far below what the edit changed (a stale copy is as far as the edit)
    assert _rel(got, ref) < 0.2 * _rel(ref, old_out), (how, _rel(got, ref), _rel(ref, old_out))
    assert "quantization=int8 (" in repr(q) and "not on the current weight" not in repr(q)


@pytest.mark.parametrize("layout", ["fused", "concatenated"])
@pytest.mark.parametrize("part", ["key", "value"])
def test_an_in_place_edit_of_the_key_or_value_weight_reaches_the_fused_int8_copy(part, layout, monkeypatch):
    """The fused query/key/value copy watches the version counters of all three weights: an in-place edit
    of a few elements of the key's or the value's (under torch.no_grad(), as an optimizer step or a head
    masked by hand) makes it again, as one of the query's or a linear's does. The fused weight is a view
    that counts the query's edits only, and a concatenation (query/key/value not in one storage) a fresh
    tensor: the copy stayed stale unless the 64 sampled elements changed."""
    fp32, q = _int8_model()
    for m in (fp32, q):
        att = m.encoder.layer[0].attention.self
        if layout == "concatenated":  # the three weights in storages of their own: concatenated at each call
            att.query.weight.data = att.query.weight.detach().clone()
        _out(m)  # the copies are current
    packs = []
    real = Int8Linear.repack
    monkeypatch.setattr(Int8Linear, "repack", lambda hook, w: packs.append(1) or real(hook, w))
    _out(q)
    assert packs == []  # nothing changed: not made again
    for m in (fp32, q):
        with torch.no_grad():
            getattr(m.encoder.layer[0].attention.self, part).weight[1, 2] += 50.0
    ref = _out(fp32)
    assert _rel(_out(q), ref) < 0.02, _rel(_out(q), ref)
    assert len(packs) == 1
    _out(q)
    assert len(packs) == 1


def test_peft_merge_and_unload_reaches_the_int8_copy():
    """PEFT's merge_and_unload adds the adapter through ``weight.data``: the merged int8 model follows it."""
    peft = pytest.importorskip("peft")
    fp32, q = _int8_model()
    merged = []
    for m in (fp32, q):
        torch.manual_seed(1)
        config = peft.LoraConfig(r=4, lora_alpha=64, target_modules=["dense"], init_lora_weights=False)
        merged.append(peft.get_peft_model(m, config).merge_and_unload())
    ref, got = _out(merged[0]), _out(merged[1])
    assert _rel(ref, _out(fastbert.BertModel(fastbert.BertConfig(**TINY)).eval())) > 0.2
    assert isinstance(merged[1].encoder.layer[0].intermediate.dense, QuantizedLinear)
    assert _rel(got, ref) < 0.05


def test_refresh_remakes_a_copy_the_sample_cannot_see():
    """An edit through ``.data`` of one element outside the checked sample is not seen (documented);
    ``fastbert.quant.refresh(model)`` makes every copy again from the current weights."""
    fp32, q = _int8_model()
    for m in (fp32, q):
        _out(m)  # the copies are current
    w = q.encoder.layer[0].intermediate.dense.weight
    sampled = set(
        weight_sample(torch.arange(w.numel(), dtype=torch.float32).view_as(w))
        .view(torch.float32)
        .long()
        .tolist()
    )
    flat = next(i for i in range(w.numel()) if i not in sampled)
    for m in (fp32, q):
        m.encoder.layer[0].intermediate.dense.weight.data.view(-1)[flat] += 50.0
    ref = _out(fp32)
    assert _rel(_out(q), ref) > 0.05  # stale: not seen by the sample
    assert refresh(q) is q
    assert _rel(_out(q), ref) < 0.05


def test_a_data_edit_of_a_non_contiguous_weight_is_seen():
    """The sample is a view of the weight's memory whatever its layout: an edit through ``.data`` of a
    column-major weight (or a slice of a larger one) makes the copy again, as for a contiguous weight (the
    sample of such a weight was a copy: the int8 copy stayed stale, 6.7 off on the MiniLM)."""
    fp32, q = _int8_model()
    for m in (fp32, q):
        lin = m.encoder.layer[0].intermediate.dense
        lin.weight.data = lin.weight.detach().t().contiguous().t()  # same values, column-major
        _out(m)  # the copy is made from this weight
        lin.weight.data.mul_(-1.5)
    assert not q.encoder.layer[0].intermediate.dense.weight.is_contiguous()
    assert _rel(_out(q), _out(fp32)) < 0.05
    w = torch.arange(24.0).view(4, 6)[:, ::2]  # a slice: strides (6, 2)
    sample = weight_sample(w)
    w.mul_(2)
    assert torch.equal(
        sample.view(torch.float32), torch.tensor([0.0, 6.0, 12.0, 18.0]) * 2
    )  # rows 0..3, column 0


def test_the_sample_of_a_contiguous_weight_spreads_over_its_rows_and_columns():
    """A contiguous weight whose sample spacing is a multiple of its row length (64 x 63: every 63rd
    element) would sample one column of every row, and an edit through ``.data`` of any other column (a
    pruned input feature) would go unseen: the spacing is moved off the row length."""
    w = torch.arange(64 * 63, dtype=torch.float32).view(64, 63)
    positions = weight_sample(w).view(torch.float32).long()
    assert len(set((positions // 63).tolist())) > 32  # rows
    assert len(set((positions % 63).tolist())) > 32  # columns, not column 0 of each row


@pytest.mark.parametrize(
    "how", ["p.data = t", "module.weight = Parameter(t)", "load_state_dict(assign=True)"]
)
def test_another_weight_tensor_is_packed_again_whatever_the_sample_holds(how):
    """A weight that is another tensor is made again at the next call (README), not kept because the 64
    sampled elements hold the old values: a sparse replacement (pruned weights, edited rows) can leave
    them all as they were, and the copy stayed stale (12 % off the fp32 twin here)."""
    fp32, q = _int8_model()
    _out(q)  # the copies are current
    name = "encoder.layer.0.intermediate.dense"
    old = q.get_submodule(name).weight.detach()
    positions = weight_sample(torch.arange(old.numel(), dtype=torch.float32).view_as(old))
    positions = positions.view(torch.float32).long()
    new = 0.3 * torch.randn(old.shape, generator=torch.Generator().manual_seed(5))
    new.view(-1)[positions] = old.reshape(-1)[positions]  # equal at every sampled element only
    for m in (fp32, q):
        lin = m.get_submodule(name)
        if how == "p.data = t":
            lin.weight.data = new.clone()
        elif how == "module.weight = Parameter(t)":
            lin.weight = torch.nn.Parameter(new.clone())
        else:
            m.load_state_dict({**m.state_dict(), f"{name}.weight": new.clone()}, assign=True)
    assert torch.equal(weight_sample(q.get_submodule(name).weight.detach()), weight_sample(old))
    assert _rel(_out(q), _out(fp32)) < 0.01


def test_a_copy_made_again_inside_inference_mode_is_made_of_normal_tensors():
    """sentence-transformers encodes under torch.inference_mode(): a copy made again there is still usable
    outside it (and keeps one compiled variant of the fused passes)."""
    _, q = _int8_model()
    with torch.no_grad():
        q.encoder.layer[0].intermediate.dense.weight.mul_(1.5)
    with torch.inference_mode():
        _out(q)
    hook = q.encoder.layer[0].intermediate.dense.qlinear
    assert not any(t.is_inference() for t in (hook.w_sum, hook.w_scale, hook._sample))
    _out(q)


def test_dequantize_gives_the_plain_model_back():
    """``model.dequantize()`` (transformers' ``PreTrainedModel.dequantize``): plain ``nn.Linear`` modules on the
    same parameters, no copy left on a weight or a self-attention, ``model.quantization`` gone from the head
    model and its base model; the fp32 twin's outputs exactly, and the model quantizes again. A model that
    is not quantized is refused as transformers refuses it."""
    torch.manual_seed(0)
    fp32 = fastbert.BertForMaskedLM(fastbert.BertConfig(**TINY)).eval()
    model = copy.deepcopy(fp32)
    model.bert.encoder.layer[1].output.dense = model.bert.encoder.layer[0].output.dense  # one shared module
    fp32.bert.encoder.layer[1].output.dense = fp32.bert.encoder.layer[0].output.dense
    with pytest.raises(ValueError, match="first quantize your model"):
        model.dequantize()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    quantize(model, "int8", calibration=_batches(), min_cosine=0.0, mean_cosine=0.0)
    assert model.dequantize() is model
    assert getattr(model, "quantization", None) is None and getattr(model.bert, "quantization", None) is None
    assert not any(isinstance(m, QuantizedLinear) for m in model.modules())
    layers = model.bert.encoder.layer
    assert "quantization" not in repr(model) and "qkv_linear" not in vars(layers[0].attention.self)
    assert not any(hasattr(p, "fastbert_linear") for p in model.parameters())
    dense = layers[0].output.dense
    assert type(dense) is torch.nn.Linear and layers[1].output.dense is dense
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    with torch.no_grad():
        assert torch.equal(model(input_ids=IDS).logits, fp32(input_ids=IDS).logits)
    quantize(model, "int8", calibration=_batches(), min_cosine=0.0, mean_cosine=0.0)
    assert model.quantization.active
    assert model.dequantize(torch.float64).bert.encoder.layer[0].output.dense.weight.dtype == torch.float64


@pytest.mark.parametrize("training", [False, True])
def test_the_quantized_linears_keep_the_models_mode(training):
    """Quantizing leaves every module in the mode the model was in: the new QuantizedLinear modules were in
    training mode inside an eval model (``from_pretrained(..., quantization="int8")`` too)."""
    torch.manual_seed(0)
    model = fastbert.BertModel(fastbert.BertConfig(**TINY)).train(training)
    quantize(model, "int8", calibration=_batches(), min_cosine=0.0, mean_cosine=0.0)
    assert any(isinstance(m, QuantizedLinear) for m in model.modules())
    assert {m.training for m in model.modules()} == {training}


def test_repr_says_what_runs():
    """A linear whose weights are fp16 says int8 is inactive; a copy left off the current weight (a weight
    put in place behind the module's back) says so and refresh puts it back."""
    _, q = _int8_model()
    dense = q.encoder.layer[0].intermediate.dense
    attention = q.encoder.layer[0].attention.self  # the fused QKV's copy
    assert dense.running().startswith("int8 (")
    assert attention.extra_repr().startswith("qkv quantization=int8 (")
    q.half()
    assert dense.running().startswith("fp16 (int8 inactive: the weights are torch.float16")
    assert attention.extra_repr().startswith(
        "qkv quantization=fp16 (int8 inactive: the weights are torch.float16"
    )
    q.float()
    assert dense.running().startswith("int8 (")
    assert attention.extra_repr().startswith("qkv quantization=int8 (")
    dense._parameters["weight"] = torch.nn.Parameter(dense.weight.detach().clone())  # no register hook
    assert "int8 copy not on the current weight" in dense.running()
    refresh(q)
    assert dense.running().startswith("int8 (")
    assert q.quantization.active and q.quantization.method == "int8"


def test_repr_of_a_fused_qkv_says_what_runs_as_a_linears_does():
    """The fused query/key/value projection is one of the encoder's linears: its line in the self-attention's
    repr says what computes it in the words of a linear's (README: ``fp32 (kept: ...)``, ``fp16 (int8
    inactive: ...)``); one that calibration kept in fp32 said nothing at all."""
    torch.manual_seed(0)
    model = fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "int8 gives nothing on this model"
        quantize(model, "int8", calibration=_batches(), min_cosine=1.0, mean_cosine=1.0)
    attention, dense = model.encoder.layer[0].attention.self, model.encoder.layer[0].intermediate.dense
    assert dense.running().startswith("fp32 (kept: int8 error")
    assert attention.extra_repr().startswith("qkv quantization=fp32 (kept: int8 error"), (
        attention.extra_repr()
    )
    assert "qkv quantization=fp32 (kept: int8 error" in repr(copy.deepcopy(model))
    _, q = _int8_model()
    attention = q.encoder.layer[0].attention.self
    q.half()
    assert attention.extra_repr().startswith(
        "qkv quantization=fp16 (int8 inactive: the weights are torch.float16"
    ), attention.extra_repr()


# ---------------------------------------------------------------------------------- copies and pickles
@pytest.mark.parametrize("how", ["deepcopy", "pickle", "torch.save"])
def test_copies_and_pickles_of_an_int8_model(how, monkeypatch):
    """``copy.deepcopy``, pickle and ``torch.save(model)`` work (oneDNN's packed weight is left out and made
    again at the first call): same int8 numbers, int8 copies of the copy's own weights."""
    _, q = _int8_model()
    ref = _out(q)
    if how == "deepcopy":
        c = copy.deepcopy(q)
    elif how == "pickle":
        c = pickle.loads(pickle.dumps(q))
    else:
        buffer = io.BytesIO()
        torch.save(q, buffer)
        buffer.seek(0)
        c = torch.load(buffer, weights_only=False)
    calls = _CountInt8Calls(monkeypatch)
    assert torch.equal(_out(c), ref) and calls.n == 8
    dense, copied = q.encoder.layer[0].intermediate.dense, c.encoder.layer[0].intermediate.dense
    assert copied.qlinear is not dense.qlinear and copied.weight.fastbert_linear is copied.qlinear
    with torch.no_grad():
        copied.weight.mul_(2.0)  # the copy's weight, not the original's
    assert torch.equal(_out(q), ref) and not torch.equal(_out(c), ref)


# ---------------------------------------------------------------------------------------- op tables
@pytest.mark.parametrize("how", ["eager table", "output_attentions=True"])
def test_every_op_table_runs_the_int8_copies(how, monkeypatch):
    """The eager table (transformers' twin, also what ``output_attentions=True`` resolves to) runs the
    int8 copies of all 8 linears, as sdpa does: the same numbers up to the attention's rounding."""
    _, q = _int8_model()
    sdpa = _out(q)
    calls = _CountInt8Calls(monkeypatch)
    if how == "eager table":
        q.set_attn_implementation("eager")
        out = _out(q)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "output_attentions needs the probabilities": eager this call
            with torch.no_grad():
                out = q(input_ids=IDS, output_attentions=True).last_hidden_state
    assert calls.n == 8
    torch.testing.assert_close(out, sdpa, rtol=1e-4, atol=1e-4)


def test_torch_compile_warns_once_naming_it():
    """Under torch.compile the traced graph computes with the fp32 weights: one warning that says so, given
    while Dynamo traces (no graph break at the linears: as many as the fp32 twin's), and the fp32 numbers."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    fp32, q = _int8_model()
    breaks, outs = [], []
    for model in (fp32, q):
        torch._dynamo.reset()
        counters.clear()
        compiled = torch.compile(model, backend="eager")
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            outs.append(_out(compiled))
            _out(compiled)
        breaks.append(sum(counters["graph_break"].values()))
    torch._dynamo.reset()
    said = [w for w in record if "under torch.compile" in str(w.message)]
    assert len(said) == 1 and "int8 linears compute without int8" in str(said[0].message)
    assert breaks[1] == breaks[0], breaks
    # the fp32 twin's traced ops on its own weights, run by the eager backend: the same bits by construction
    assert torch.equal(outs[1], outs[0])


# -------------------------------------------------------------------------------------------- warnings
def test_fallback_warnings_once_per_reason_per_model_at_the_callers_line():
    _, q = _int8_model()
    _, other = _int8_model(seed=1)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")  # what pytest does: no deduplication by Python
        q.half()
        _out(q)
        _out(q)
        q.float()
        q(input_ids=IDS)  # autograd records: another reason
        q(input_ids=IDS)
        other(input_ids=IDS)  # another model: its own warning
    said = [w for w in record if "int8 linears compute without int8" in str(w.message)]
    assert ["float16" in str(w.message) for w in said] == [True, False, False], [str(w.message) for w in said]
    assert "gradients are recorded" in str(said[1].message)
    assert all(w.filename == HERE for w in said), [(w.filename, w.lineno) for w in said]


def test_a_trainable_bias_of_a_frozen_weight_gets_its_gradient():
    """Frozen weights and trainable biases (BitFit): the linear whose bias alone records gradients computes
    with the model's weights, said once, and the bias gets fp32's gradient; the int8 product took the bias
    detached, the output recorded nothing, and backward failed (or the bias kept no gradient)."""
    fp32, q = _int8_model()
    name = "encoder.layer.1.output.dense.bias"  # its input (GELU of frozen linears) records nothing
    grads = []
    for model in (fp32, q):
        for n, p in model.named_parameters():
            p.requires_grad_(n == name)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            out = model(input_ids=IDS).last_hidden_state
        assert out.requires_grad
        (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(0))).sum().backward()
        grads.append(model.get_parameter(name).grad)
    assert ["gradients are recorded" in str(w.message) for w in record] == [True]
    assert torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0) > 0.99


def test_calibration_that_keeps_every_linear_fp32_says_so():
    torch.manual_seed(0)
    model = fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()
    with pytest.warns(UserWarning, match="int8 gives nothing on this model, which runs in fp32") as record:
        quantize(model, "int8", calibration=_batches(), min_cosine=1.0, mean_cosine=1.0)
    assert sum("gives nothing" in str(w.message) for w in record) == 1
    assert record[0].filename == HERE
    assert all(d.precision == "fp32" for d in model.quantization.layers) and not model.quantization.active


# ------------------------------------------------------------------------------------- entry points
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "of", "a", "to", "and", "."]
VOCAB += list("abcdefghijklmnopqrstuvwxyz") + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]


def _hub_cache(root, repo="someone/tiny-int8", tokenizer=True):
    """A huggingface_hub cache folder holding ``repo`` (a tiny BERT, a vocab.txt tokenizer), as a download
    leaves it: models--someone--tiny-int8/{refs/main, snapshots/<commit>/...}."""
    folder = root / ("models--" + repo.replace("/", "--"))
    snapshot = folder / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0123abc")
    torch.manual_seed(0)
    config = fastbert.BertConfig(**{**TINY, "vocab_size": len(VOCAB)})
    fastbert.BertModel(config).save_pretrained(snapshot)
    if tokenizer:
        (snapshot / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return str(root)


def _count_weight_reads(monkeypatch):
    reads = []
    real = fastbert.loading.find_and_load_weights
    monkeypatch.setattr(
        fastbert.loading, "find_and_load_weights", lambda *a, **k: reads.append(1) or real(*a, **k)
    )
    return reads


def test_from_pretrained_a_hub_id_with_int8_calibrates_on_its_tokenizer(tmp_path, monkeypatch):
    """A hub id (served offline from a hub cache) with quantization="int8": the tokenizer is found on the
    hub as the weights are, with the same hub options (cache_dir here)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = _hub_cache(tmp_path)
    model = fastbert.BertModel.from_pretrained("someone/tiny-int8", cache_dir=cache, quantization="int8")
    assert model.quantization.active and model.quantization.method == "int8"
    assert all(d.precision == "int8" for d in model.quantization.layers)


def test_cross_attention_warning_points_at_the_callers_line(tmp_path):
    """A decoder with cross-attention: "the cross-attention linears ... stay fp32" is said at the user's line
    whichever entry point quantizes (from_pretrained's said it at a line of fastbert/loading.py)."""
    config = fastbert.BertConfig(
        **{**TINY, "vocab_size": len(VOCAB)}, is_decoder=True, add_cross_attention=True
    )
    torch.manual_seed(0)
    fastbert.BertModel(config).save_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    for how in ("from_pretrained", "quantize", "accelerate"):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            if how == "from_pretrained":
                model = fastbert.BertModel.from_pretrained(tmp_path, quantization="int8")
            elif how == "quantize":
                model = quantize(fastbert.BertModel.from_pretrained(tmp_path), "int8")
            else:
                model = fastbert.accelerate(fastbert.BertModel.from_pretrained(tmp_path), quantization="int8")
        said = [w for w in record if "cross-attention linears have no int8 path" in str(w.message)]
        assert len(said) == 1 and said[0].filename == HERE, (how, [(w.filename, w.lineno) for w in said])
        assert isinstance(model.encoder.layer[0].crossattention.self.query, torch.nn.Linear)


def test_from_pretrained_without_a_tokenizer_refuses_before_reading_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = _hub_cache(tmp_path, tokenizer=False)
    reads = _count_weight_reads(monkeypatch)
    with pytest.raises(ValueError, match="found no tokenizer at 'someone/tiny-int8'.*fastbert.quantize"):
        fastbert.BertModel.from_pretrained("someone/tiny-int8", cache_dir=cache, quantization="int8")
    assert reads == []


def test_a_head_model_whose_base_model_is_quantized_is_quantized_already(tmp_path):
    """``quantize(model.bert)`` then ``quantize(model)`` (or ``accelerate(model, quantization=)``): refused
    as a second quantize of the model is, and accelerate leaves it; the head model calibrated again and
    replaced its base model's copies (and decisions) silently."""
    fastbert.BertForMaskedLM(fastbert.BertConfig(**TINY)).save_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    model = fastbert.BertForMaskedLM.from_pretrained(tmp_path).eval()
    quantize(model.bert, "int8", calibration=_batches(), min_cosine=0.0, mean_cosine=0.0)
    report, dense = model.bert.quantization, model.bert.encoder.layer[0].intermediate.dense
    with pytest.raises(ValueError, match="quantized already"):
        quantize(model, "int8", calibration=_batches())
    assert fastbert.accelerate(model, quantization="int8") is model
    assert model.bert.quantization is report and model.bert.encoder.layer[0].intermediate.dense is dense
    assert getattr(model, "quantization", None) is None


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, "bf16", "half"])
def test_int8_with_another_cpu_dtype_is_refused_before_reading_weights(dtype, tmp_path, monkeypatch):
    fastbert.BertModel(fastbert.BertConfig(**TINY)).save_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    reads = _count_weight_reads(monkeypatch)
    with pytest.raises(
        ValueError, match="computes from fp32 weights on the CPU, and this model would be"
    ) as e:
        fastbert.BertModel.from_pretrained(tmp_path, torch_dtype=dtype, quantization="int8")
    assert reads == [] and "quantize first" not in str(e.value)


def test_dtype_and_quantization_spellings(tmp_path, monkeypatch):
    """accelerate(dtype=) takes what from_pretrained(torch_dtype=) takes, names in any case; quantization
    names in any case ("None" included); a non-float torch dtype is refused by name before loading."""
    fastbert.BertModel(fastbert.BertConfig(**TINY)).save_pretrained(tmp_path)
    spellings = {
        "bf16": torch.bfloat16, "BF16": torch.bfloat16, "bfloat16": torch.bfloat16, "torch.BFloat16": torch.bfloat16,
        "float32": torch.float32, "FP32": torch.float32, torch.float32: torch.float32, "Half": torch.float16,
    }  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bf16 emulated on this CPU
        for name, dtype in spellings.items():
            model = fastbert.BertModel(fastbert.BertConfig(**TINY))
            assert fastbert.accelerate(model, dtype=name).dtype == dtype, name
            assert fastbert.BertModel.from_pretrained(tmp_path, torch_dtype=name).dtype == dtype, name
        assert fastbert.accelerate(fastbert.BertModel(fastbert.BertConfig(**TINY)), dtype="AUTO").dtype in (
            torch.float32,
            torch.bfloat16,
        )
    with pytest.raises(ValueError, match="dtype must be one of .*got 'float8'"):
        fastbert.accelerate(fastbert.BertModel(fastbert.BertConfig(**TINY)), dtype="float8")
    reads = _count_weight_reads(monkeypatch)
    with pytest.raises(ValueError, match="torch.int8 is not a floating-point dtype"):
        fastbert.BertModel.from_pretrained(tmp_path, torch_dtype=torch.int8)
    assert reads == []
    assert check_quantization("INT8") == "int8" and check_quantization("Fp8") == "fp8"
    assert check_quantization("None") is None and check_quantization("NONE") is None
    with pytest.raises(ValueError, match="unknown quantization 'int4'"):
        check_quantization("int4")


def test_transformers_trainer_takes_an_int8_model(tmp_path):
    """An int8 model is not transformers' quantized model (weights stored quantized, untrainable): Trainer
    builds on it and predicts with the int8 linears (it refused the model while it carried ``is_quantized``)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = fastbert.BertForSequenceClassification(fastbert.BertConfig(**TINY, num_labels=3)).eval()
    quantize(model, "int8", calibration=_batches(), min_cosine=0.0, mean_cosine=0.0)
    assert model.quantization.active and not getattr(model, "is_quantized", False)
    rows = [{"input_ids": IDS[i].tolist(), "labels": i % 3} for i in range(len(IDS))]
    args = transformers.TrainingArguments(
        str(tmp_path), report_to=[], use_cpu=True, per_device_eval_batch_size=3
    )
    trainer = transformers.Trainer(model=model, args=args)
    predicted = trainer.predict(rows).predictions
    with torch.no_grad():
        direct = model(input_ids=IDS).logits
    assert torch.equal(torch.as_tensor(predicted), direct)


def test_int8_runs_int8_while_another_thread_compiles(monkeypatch):
    """torch holds its compile flag up process-wide for a whole compile session: a thread running the int8
    model eagerly meanwhile (a server's second worker while the first compiles the fused int8 passes) still
    computes int8, silently fp32 before (one of 8 concurrent requests differed), with a false torch.compile
    warning. The sdpa table's oneDNN / workspace choice likewise."""
    from fastbert.core import ops

    _, q = _int8_model()
    expected = _out(q)
    monkeypatch.setattr(torch.compiler, "_is_compiling_flag", True)  # another thread's compile session
    assert torch.compiler.is_compiling()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "under torch.compile" warning
        got = _out(q)
    assert torch.equal(got, expected)
    x = torch.randn(4, 8)
    assert ops._cpu_inference(x, torch.randn(8, 8), None)
