"""Prepacked oneDNN weights for the CPU linears (:mod:`fastbert.core.prepack`): the sdpa table's oneDNN
linears run on a copy of each weight in oneDNN's layout, made at its first call without autograd, giving the
same numbers bit for bit; the copy follows its weight (edits in place, through ``.data``, another tensor)
and goes with it. On CPUs where oneDNN does not run the fp32 linears (AVX2-only: MKL does) the tests put
oneDNN's linear in, so they check the same code everywhere."""

from __future__ import annotations

import copy
import gc
import pickle
import threading
import time

import pytest
import torch

import fastbert
from fastbert.core import ops, prepack

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")

# 4 x 144 tokens (28 padding): every encoder linear has >= 2**21 multiply-adds (oneDNN's threshold, ops._ONEDNN_MIN_MACS)
TINY = dict(
    vocab_size=99,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=256,
    max_position_embeddings=160,
)


@pytest.fixture
def onednn(monkeypatch):
    """oneDNN's fp32 linear in the sdpa table, prepacking on; calls counted by whether the weight was a
    packed copy."""
    real = torch.ops.mkldnn._linear_pointwise.default
    seen = {"packed": 0, "plain": 0}

    def linear(x, w, b, attr, scalars, algorithm):
        seen["packed" if w.is_mkldnn else "plain"] += 1
        return real(x, w, b, attr, scalars, algorithm)

    monkeypatch.setattr(ops, "_ONEDNN_LINEAR", linear)
    monkeypatch.setattr(prepack, "_ENABLED", True)
    return seen


def _model(seed=0):
    torch.manual_seed(seed)
    return fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()


def _inputs(b=4, length=144):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, TINY["vocab_size"], (b, length), generator=g)
    mask = torch.ones(b, length, dtype=torch.long)
    mask[1, 100:] = 0
    return dict(input_ids=ids, attention_mask=mask)


def _forward(model, inputs, packed: bool):
    was = prepack._ENABLED
    prepack._ENABLED = packed  # switched without release(): the copies stay for the next packed call
    try:
        with torch.inference_mode():
            return model(**inputs).last_hidden_state
    finally:
        prepack._ENABLED = was


def _copies(model) -> int:
    """Prepacked copies held for this model's parameters (a fused query/key/value weight's under its query)."""
    return sum(c is not None for p in model.parameters() for c in (prepack._COPIES.get(p) or ()))


def _held(model) -> set[int]:
    """The ids of the copies held for this model's parameters."""
    return {id(c) for p in model.parameters() for c in (prepack._COPIES.get(p) or ()) if c is not None}


def test_forward_runs_on_packed_copies_with_the_same_numbers(onednn):
    model, inputs = _model(), _inputs()
    plain = _forward(model, inputs, packed=False)
    assert onednn["plain"] == 8 and onednn["packed"] == 0  # 4 linears x 2 layers, fused query/key/value
    ours = _forward(model, inputs, packed=True)
    assert onednn["packed"] == 8
    assert _copies(model) == 8
    assert torch.equal(ours, plain)
    _forward(model, inputs, packed=True)  # the copies are reused, not made again
    assert _copies(model) == 8 and onednn["packed"] == 16
    count, nbytes = prepack.stats()  # this model's copies, and any another test's model still holds
    encoder = sum(
        p.numel() * 4 for n, p in model.named_parameters() if n.startswith("encoder.") and p.dim() == 2
    )
    assert count >= 8 and nbytes >= encoder


def test_one_row_calls_use_the_plain_weight(onednn):
    """A one-row product on the packed layout rounds otherwise than on the plain weight: it stays plain."""
    torch.manual_seed(0)
    w, b = torch.randn(2048, 1024), torch.randn(2048)
    with torch.no_grad():
        ops._sdpa_linear(torch.randn(1, 1024), w, b)
        assert onednn == {"packed": 0, "plain": 1}
        x = torch.randn(2, 1024)
        assert torch.equal(
            ops._sdpa_linear(x, w, b), torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
        )
        assert onednn["packed"] == 1


def _edit_in_place(model):
    with torch.no_grad():
        model.encoder.layer[0].intermediate.dense.weight.mul_(1.5)


def _edit_through_data(model):
    w = model.encoder.layer[1].output.dense.weight
    w.data.copy_(torch.randn_like(w))  # leaves the version counter as it was


def _edit_query_in_place(model):
    with torch.no_grad():
        model.encoder.layer[0].attention.self.query.weight.add_(0.25)


def _edit_value_through_data(model):
    w = model.encoder.layer[1].attention.self.value.weight
    w.data.mul_(-1.0)


def _assign_another_tensor(model):
    lin = model.encoder.layer[0].attention.output.dense
    lin.weight.data = torch.randn_like(lin.weight)


def _new_parameter(model):
    lin = model.encoder.layer[1].intermediate.dense
    lin.weight = torch.nn.Parameter(torch.randn_like(lin.weight))


def _load_state_dict(model):
    model.load_state_dict(_model(seed=3).state_dict())


@pytest.mark.parametrize(
    "edit",
    [
        _edit_in_place,
        _edit_through_data,
        _edit_query_in_place,
        _edit_value_through_data,
        _assign_another_tensor,
        _new_parameter,
        _load_state_dict,
    ],
)
def test_copies_follow_their_weights(onednn, edit):
    model, inputs = _model(), _inputs()
    before = _forward(model, inputs, packed=True)
    edit(model)
    plain = _forward(model, inputs, packed=False)
    assert not torch.equal(plain, before)  # the edit changed the answer
    assert torch.equal(_forward(model, inputs, packed=True), plain)


def test_no_copy_with_autograd_and_none_once_released(onednn):
    model, inputs = _model(), _inputs()
    out = model(**inputs).last_hidden_state  # gradients recorded: F.linear, no oneDNN, no copy
    assert out.requires_grad and _copies(model) == 0 and onednn == {"packed": 0, "plain": 0}
    _forward(model, inputs, packed=True)
    assert _copies(model) == 8
    prepack.release()
    assert _copies(model) == 0 and prepack.stats() == (0, 0)


def test_set_enabled_false_drops_the_copies_and_makes_none(onednn):
    model, inputs = _model(), _inputs()
    _forward(model, inputs, packed=True)
    assert _copies(model) == 8
    prepack.set_enabled(False)
    assert not prepack.enabled() and _copies(model) == 0
    with torch.no_grad():
        model(**inputs)
    assert _copies(model) == 0 and onednn["packed"] == 8
    prepack.set_enabled(True)
    with torch.no_grad():
        model(**inputs)
    assert _copies(model) == 8
    with pytest.raises(TypeError, match="set_enabled takes True or False"):
        prepack.set_enabled("no")


def test_copies_go_with_their_model(onednn):
    model, inputs = _model(), _inputs()
    _forward(model, inputs, packed=True)
    params = [p for p in model.parameters() if prepack._COPIES.get(p) is not None]
    assert len(params) == 8
    held = len(prepack._COPIES)
    refs = [torch.utils.weak.WeakIdRef(p) for p in params]
    del model, params
    gc.collect()
    assert all(r() is None for r in refs)
    assert len(prepack._COPIES) <= held - 8  # their entries went with them


@pytest.mark.parametrize("move", ["half", "double", "to_bf16"])
def test_a_moved_or_cast_model_drops_its_copies_at_once(onednn, move):
    """A cast (as a move to another device) gives the parameters new memory: the copies of the old weights,
    which hold that old memory through their sampled view, go at the cast, not when the model is deleted."""
    model, inputs = _model(), _inputs()
    _forward(model, inputs, packed=True)
    gone = torch.utils.weak.WeakIdRef(
        prepack._COPIES.get(model.encoder.layer[0].intermediate.dense.weight)[0]
    )
    {"half": model.half, "double": model.double, "to_bf16": lambda: model.to(torch.bfloat16)}[move]()
    assert _copies(model) == 0
    gc.collect()
    assert gone() is None


@pytest.mark.parametrize("move", ["float", "to_cpu", "to_fp32"])
def test_a_move_that_changes_nothing_keeps_the_copies(onednn, move, monkeypatch):
    """``model.to("cpu")`` on the CPU or ``.float()`` of an fp32 model leaves every parameter the same tensor:
    the copies stay (a server that moves its model at each request does not pack it again each time), and
    the next forward runs on them with the same numbers."""
    model, inputs = _model(), _inputs()
    ref = _forward(model, inputs, packed=False)
    _forward(model, inputs, packed=True)
    held = _held(model)
    assert len(held) == 8
    moves = {
        "float": model.float,
        "to_cpu": lambda: model.to("cpu"),
        "to_fp32": lambda: model.to(torch.float32),
    }
    moves[move]()
    made = []
    real = prepack._Packed.__init__
    monkeypatch.setattr(prepack._Packed, "__init__", lambda self, w: (made.append(w), real(self, w))[1])
    assert torch.equal(_forward(model, inputs, packed=True), ref)
    assert made == []  # nothing packed again
    assert _held(model) == held
    # a part cast after that still drops its own (and only its own) copies
    model.encoder.layer[1].half()
    assert all(prepack._COPIES.get(p) is None for p in model.encoder.layer[1].parameters())
    assert _copies(model) == 4


@pytest.mark.parametrize("part", ["encoder", "layer", "attention"])
def test_a_part_cast_by_itself_drops_its_copies_at_once(onednn, part):
    """A part of the model cast by itself (``model.encoder.half()``: bf16 or fp16 layers under fp32
    embeddings) drops the copies of its old weights at once, as the whole model's cast does."""
    model, inputs = _model(), _inputs()
    _forward(model, inputs, packed=True)
    gone = torch.utils.weak.WeakIdRef(
        prepack._COPIES.get(model.encoder.layer[0].attention.self.query.weight)[1]
    )
    target = {
        "encoder": model.encoder,
        "layer": model.encoder.layer[0],
        "attention": model.encoder.layer[0].attention,
    }[part]
    target.half()
    assert all(prepack._COPIES.get(p) is None for p in target.parameters())
    gc.collect()
    assert gone() is None


def test_copies_leave_pickles_and_deep_copies_alone(onednn):
    model, inputs = _model(), _inputs()
    ref = _forward(model, inputs, packed=True)
    twin = copy.deepcopy(model)
    again = pickle.loads(pickle.dumps(model))
    assert _copies(twin) == 0 and _copies(again) == 0
    assert torch.equal(_forward(twin, inputs, packed=True), ref)
    assert torch.equal(_forward(again, inputs, packed=True), ref)
    assert _copies(twin) == 8


def test_threads_calling_at_once_share_one_copy(onednn, monkeypatch):
    """Threads that reach a weight with no copy at once make one: the others wait for it (each weight is
    reordered once; a slow reorder holds the others at the lock)."""
    model, inputs = _model(), _inputs()
    ref = _forward(model, inputs, packed=False)
    outs, errors, reorders = [], [], []
    real = prepack._reorder

    def slow_reorder(weight):
        reorders.append(weight.shape)
        time.sleep(0.05)  # the other threads arrive meanwhile
        return real(weight)

    monkeypatch.setattr(prepack, "_reorder", slow_reorder)
    start = threading.Barrier(4)

    def call():
        try:
            start.wait(timeout=60)
            outs.append(_forward(model, inputs, packed=True))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(outs) == 4
    assert all(torch.equal(o, ref) for o in outs)
    assert _copies(model) == 8 and len(reorders) == 8


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", True),
        ("1", True),
        ("on", True),
        ("true", True),
        (" Yes ", True),
        ("0", False),
        ("OFF", False),
        ("false", False),
        ("no", False),
    ],
)
def test_env_switch(monkeypatch, value, expected):
    monkeypatch.setenv(prepack.ENV, value)
    assert prepack._enabled_from_env() is expected


def test_env_switch_names_a_bad_value(monkeypatch):
    monkeypatch.setenv(prepack.ENV, "sometimes")
    with pytest.raises(ValueError, match="FASTBERT_CPU_PREPACK must be 1/on or 0/off, got 'sometimes'"):
        prepack._enabled_from_env()


@pytest.mark.skipif(
    not ops.cpu.cpu_has_native_bf16(),
    reason="bf16 linears go through oneDNN only where the CPU computes bf16",
)
def test_bf16_forward_on_packed_copies_matches(onednn):
    model, inputs = _model().to(torch.bfloat16), _inputs()
    plain = _forward(model, inputs, packed=False)
    assert torch.equal(_forward(model, inputs, packed=True), plain)
    assert _copies(model) == 8


def test_jit_trace_without_autograd_records_the_plain_linear(onednn):
    """``torch.jit.trace`` under ``torch.no_grad()`` (how a model is traced for inference) of a model that
    holds copies: the trace records ``F.linear`` on the parameters, neither oneDNN's op (TorchScript cannot
    take its argument list) nor a prepacked copy as a constant, so it saves and follows later edits."""
    import io

    model, inputs = _model(), _inputs()
    args = (inputs["input_ids"], inputs["attention_mask"])
    _forward(model, inputs, packed=True)
    assert _copies(model) == 8
    with torch.no_grad():
        traced = torch.jit.trace(model, args, strict=False)
    graph = str(traced.inlined_graph)
    assert "mkldnn" not in graph and graph.count("aten::linear") >= 8
    torch.jit.save(traced, io.BytesIO())
    _edit_in_place(model)
    with torch.no_grad():
        got, want = traced(*args)["last_hidden_state"], model(*args).last_hidden_state
    torch.testing.assert_close(got, want)


def test_an_edit_through_the_transformers_model_reaches_the_copies(onednn):
    """``fastbert.from_transformers`` (and ``accelerate``) share storage with transformers' parameters; an
    in-place edit through transformers' parameter that misses the 64 sampled elements (one row) is seen
    through the shared version counter: the packed copy is made again."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf = transformers.BertModel(transformers.BertConfig(**TINY)).eval()
    model, inputs = fastbert.from_transformers(hf), _inputs()
    _forward(model, inputs, packed=True)
    assert _copies(model) == 8
    with torch.no_grad():
        hf.encoder.layer[0].intermediate.dense.weight[7].mul_(3.0)  # one row: no sampled element
        hf.encoder.layer[1].output.dense.weight[:, 3].add_(1.0)  # one column
    plain = _forward(model, inputs, packed=False)
    assert torch.equal(_forward(model, inputs, packed=True), plain)
    real = inputs["attention_mask"].bool()  # fastbert's padded positions are zeros
    with torch.inference_mode():
        torch.testing.assert_close(plain[real], hf(**inputs).last_hidden_state[real], rtol=1e-4, atol=1e-4)


def test_refresh_remakes_a_copy_the_sample_cannot_see(onednn):
    """An edit through ``.data`` of one element outside the 64 checked is not seen (as for the int8
    copies); ``fastbert.quant.refresh(model)``, the remedy the README gives, drops the model's copies."""
    from fastbert.core.weight_watch import weight_sample
    from fastbert.quant import refresh

    model, inputs = _model(), _inputs()
    _forward(model, inputs, packed=True)
    w = model.encoder.layer[0].intermediate.dense.weight
    index = torch.arange(w.numel(), dtype=torch.float32).view_as(w)
    sampled = set(weight_sample(index).view(torch.float32).long().tolist())
    flat = next(i for i in range(w.numel()) if i not in sampled)
    w.data.view(-1)[flat] += 50.0
    plain = _forward(model, inputs, packed=False)
    assert not torch.equal(_forward(model, inputs, packed=True), plain)  # stale: not in the sample
    assert refresh(model) is model and _copies(model) == 0
    assert torch.equal(_forward(model, inputs, packed=True), plain)


def test_set_enabled_false_from_another_thread_leaves_no_copy_behind(onednn, monkeypatch):
    """``set_enabled(False)`` that runs in another thread between a call's check and its pack (a server
    turning prepacking off while a request runs): the call makes no copy that would outlive the switch."""
    torch.manual_seed(0)
    w, b, x = torch.randn(512, 256), torch.randn(512), torch.randn(64, 256)
    real_lock = prepack._LOCK

    class SwitchedOffMeanwhile:
        first = True

        def __enter__(self):
            if SwitchedOffMeanwhile.first:
                SwitchedOffMeanwhile.first = False
                other = threading.Thread(target=prepack.set_enabled, args=(False,))
                other.start()
                other.join(timeout=60)
            return real_lock.__enter__()

        def __exit__(self, *exc):
            return real_lock.__exit__(*exc)

    monkeypatch.setattr(prepack, "_LOCK", SwitchedOffMeanwhile())
    with torch.no_grad():
        out = ops._sdpa_linear(x, w, b)
    assert not prepack.enabled() and prepack.stats() == (0, 0)
    assert torch.equal(out, torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], ""))
