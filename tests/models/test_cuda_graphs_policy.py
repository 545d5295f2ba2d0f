"""The CUDA-graph runner's decisions, on the CPU: what is on by default and when, which buckets a batch gets,
when the graphs are dropped (weights moved, rebound, replaced through ``.data``), that a failed capture of the
default runner falls back with one warning, and that copies leave a runner behind. The captures and replays
themselves are tested on CUDA (``test_triton_backend.py``: ``test_cuda_graphs_*``)."""

from __future__ import annotations

import contextlib
import copy
import pickle
import warnings

import pytest
import torch
from torch import nn

import fastbert
from fastbert import registry
from fastbert.core import cuda_graphs
from fastbert.core.cuda_graphs import AUTO_FILL_FROM_TOKENS, AUTO_LIMITS, AUTO_MIN_FILL, GraphRunner
from fastbert.core.tolerances import assert_close
from fastbert.modeling import BertInputs
from tests.model_helpers import TINY, CudaIds, require_interpreter, tiny_family_config


def tiny_model() -> fastbert.BertModel:
    torch.manual_seed(0)  # positions for the largest default bucket (512)
    return fastbert.BertModel(fastbert.BertConfig(**dict(TINY, max_position_embeddings=600))).eval()


@pytest.mark.parametrize(
    ("raw", "on"),
    [("", True), ("1", True), ("auto", True), ("ON", True), ("packed", True), ("0", False), ("off", False)],
)
def test_the_environment_switch(monkeypatch, raw, on):
    monkeypatch.setenv(cuda_graphs.ENV, raw)
    assert cuda_graphs._auto_from_env() is on


def test_a_bad_environment_value_names_the_variable(monkeypatch):
    monkeypatch.setenv(cuda_graphs.ENV, "sometimes")
    with pytest.raises(
        ValueError, match="FASTBERT_CUDA_GRAPHS must be 1/auto/on, packed or 0/off, got 'sometimes'"
    ):
        cuda_graphs._auto_from_env()


def test_auto_buckets_stop_at_the_token_limit():
    runner = GraphRunner(
        tiny_model(), **AUTO_LIMITS, min_fill=AUTO_MIN_FILL, fill_from_tokens=AUTO_FILL_FROM_TOKENS
    )
    assert runner.bucket(1, 7) == (1, 16)
    assert runner.bucket(3, 100) == (4, 128)
    assert runner.bucket(32, 512) == (32, 512)  # 16,384 positions: the largest bucket
    assert runner.bucket(33, 300) is None  # 64 x 384 is over the limit: the packed forward
    assert runner.bucket(64, 256) == (64, 256)
    assert runner.bucket(65, 16) is None and runner.bucket(1, 513) is None
    # small buckets are replayed however little they hold; large ones only when a quarter full
    assert runner.worth_padding((8, 128), 10)
    assert runner.worth_padding((32, 256), 2048) and not runner.worth_padding((32, 256), 2047)
    assert runner.worth_padding((32, 256), None)  # lengths not read: no padding to judge


def test_an_explicit_runner_keeps_its_old_limits():
    runner = GraphRunner(tiny_model(), 8, 128)
    assert runner.bucket(8, 128) == (8, 128) and runner.bucket(9, 16) is None
    assert runner.worth_padding((8, 128), 1)  # min_fill 0: every covered batch is replayed
    with pytest.raises(ValueError, match="min_fill must lie in"):
        GraphRunner(tiny_model(), 8, 128, min_fill=1.5)
    with pytest.raises(ValueError, match="max_tokens must be positive"):
        GraphRunner(tiny_model(), 8, 128, max_tokens=0)


def _graphs_dropped(runner: GraphRunner) -> bool:
    runner.graphs["sentinel"] = None
    runner.check_weights()
    return "sentinel" not in runner.graphs


def test_graphs_are_dropped_when_a_weight_is_no_longer_where_it_was():
    model = tiny_model()
    runner = GraphRunner(model, 8, 128)
    runner.check_weights()  # the addresses the graphs are captured on
    assert not _graphs_dropped(runner)  # nothing changed
    dense = model.encoder.layer[0].output.dense
    with torch.no_grad():
        dense.weight.add_(1.0)  # in place: the graph reads the new values at the same address
    assert not _graphs_dropped(runner)
    dense.weight = nn.Parameter(dense.weight.detach().clone())  # rebound
    assert _graphs_dropped(runner)
    assert not _graphs_dropped(runner)
    dense.bias.data = dense.bias.detach().clone()  # the same Parameter, new storage
    assert _graphs_dropped(runner)
    model.encoder.layer[1].intermediate.dense = nn.Linear(
        TINY["hidden_size"], TINY["intermediate_size"]
    )  # a replaced module (PEFT does this)
    assert _graphs_dropped(runner)
    model.float()  # a no-op move: the same storage
    assert not _graphs_dropped(runner)
    model.double()  # new storage for every weight
    assert _graphs_dropped(runner)


@pytest.mark.cpu_only  # calibrates on the CPU: the GPU check's time goes to its CUDA paths
def test_graphs_are_dropped_when_a_reduced_copy_is_stale_or_gone():
    """A quantized model's graphs read the reduced copies (fastbert.quant) by address, and a replay runs no
    Python to pack a copy again: an in-place edit of a weight, ``refresh``, ``dequantize`` (which frees the
    copies) and a model quantized after its capture drop the graphs; calls that change nothing keep them."""
    from fastbert.quant import _quantize, refresh
    from fastbert.quant.gpu import cpu_implements

    if not cpu_implements("int8"):
        pytest.skip(f"this torch {torch.__version__} has no CPU torch._int_mm")
    torch.manual_seed(0)
    config = fastbert.BertConfig(
        vocab_size=99, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48
    )
    model = fastbert.BertModel(config).eval()
    runner = GraphRunner(model, 8, 128)
    runner.check_weights()
    batches = [
        dict(input_ids=torch.randint(1, 99, (4, 12)), attention_mask=torch.ones(4, 12, dtype=torch.long))
    ]
    _quantize(model, "int8", "int_mm", calibration=batches, min_cosine=0.0, mean_cosine=0.0)
    assert _graphs_dropped(runner)  # captured unquantized: the replays would not run the copies
    assert not _graphs_dropped(runner)
    with torch.no_grad():
        model(input_ids=batches[0]["input_ids"])  # the copies are current: nothing packed again
    assert not _graphs_dropped(runner)
    dense = model.encoder.layer[0].output.dense
    with torch.no_grad():
        dense.weight.add_(1.0)  # in place: the copy of the old values is stale
    assert _graphs_dropped(runner)
    with torch.no_grad():
        model(input_ids=batches[0]["input_ids"])  # packed again: new copies at new addresses
    assert _graphs_dropped(runner)
    assert not _graphs_dropped(runner)
    with torch.no_grad():
        model.encoder.layer[1].attention.self.query.weight.mul_(1.0)  # the fused query/key/value copy's
    assert _graphs_dropped(runner)
    refresh(model)  # a .data edit on CUDA: the copies are made again at the next call
    assert _graphs_dropped(runner)
    model.dequantize()  # the copies are freed
    assert _graphs_dropped(runner)
    with torch.no_grad():
        dense.weight.add_(1.0)  # unquantized again: the graph reads the new values at the same address
    assert not _graphs_dropped(runner)


class Foreign(nn.Linear):  # a module type outside torch and fastbert (PEFT's LoRA layers are such)
    pass


def test_hooks_patched_forwards_and_foreign_modules_run_the_normal_forward(monkeypatch):
    """A replay runs no Python: whatever decides in Python at each call keeps the model off the graphs."""
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)  # a CPU build has no CUDA
    model = tiny_model()
    model.set_attn_implementation("triton")
    runner = GraphRunner(model, 8, 128)
    inputs = BertInputs(input_ids=CudaIds())
    with torch.no_grad():
        assert runner.covers(inputs, allow_pack=True)
        # ids on another device than the model's: the forward's own device rules, not a replay
        assert not runner.covers(BertInputs(input_ids=CudaIds(device="meta")), allow_pack=True)
        layer = model.encoder.layer[1]
        handle = layer.output.register_forward_hook(lambda *a: None)
        assert not runner.covers(inputs, allow_pack=True)
        handle.remove()
        handle = nn.modules.module.register_module_forward_pre_hook(lambda *a: None)  # global
        assert not runner.covers(inputs, allow_pack=True)
        handle.remove()
        assert runner.covers(inputs, allow_pack=True)
        layer.intermediate.forward = lambda *a: None
        assert not runner.covers(inputs, allow_pack=True)
        del layer.intermediate.forward
        assert runner.covers(inputs, allow_pack=True)
        dense = layer.intermediate.dense
        layer.intermediate.dense = Foreign(dense.in_features, dense.out_features)
        assert not runner.covers(inputs, allow_pack=True)
        layer.intermediate.dense = dense
        assert runner.covers(inputs, allow_pack=True)


def test_the_runner_does_not_keep_its_model_alive():
    import weakref

    model = tiny_model()
    model.__dict__["encode"] = GraphRunner(model, 8, 128)
    runner, ref = model.__dict__["encode"], weakref.ref(model)
    del model  # no gc.collect(): no reference cycle through the runner
    assert ref() is None and runner.model is None


def test_a_model_moved_off_its_gpu_frees_the_graphs():
    """``model.to(...)`` to another device drops what was captured at once (here: to the meta device)."""
    model = tiny_model()
    runner = GraphRunner(model, 8, 128)
    model.__dict__["encode"] = runner

    class Stream:  # a capture stream on the model's current device
        device = model.device

    runner.stream, runner.graphs["sentinel"] = Stream(), None
    model.float()  # the same device: kept
    assert "sentinel" in runner.graphs
    model.to("meta")
    assert runner.graphs == {} and runner.stream is None and runner.pool is None


def test_the_default_runner_is_installed_only_on_cuda_triton_calls(monkeypatch):
    model = tiny_model()
    with torch.no_grad():
        model(input_ids=torch.randint(1, TINY["vocab_size"], (2, 8)))
    assert "encode" not in model.__dict__  # a CPU call installs nothing
    assert cuda_graphs.auto_install(model) is None  # a CPU model
    monkeypatch.setattr(GraphRunner, "__init__", lambda self, *a, **k: None)
    monkeypatch.setattr(type(model), "device", property(lambda self: torch.device("cuda", 0)))
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)  # a CPU build has no CUDA
    model.set_attn_implementation("sdpa")
    assert cuda_graphs.auto_install(model) is None  # another backend
    model.set_attn_implementation("triton")
    model.train()
    assert cuda_graphs.auto_install(model) is None  # training
    model.eval()
    monkeypatch.setattr(cuda_graphs, "AUTO", False)
    assert cuda_graphs.auto_install(model) is None  # FASTBERT_CUDA_GRAPHS=0
    monkeypatch.setattr(cuda_graphs, "AUTO", True)
    runner = cuda_graphs.auto_install(model)
    assert isinstance(runner, GraphRunner) and model.__dict__["encode"] is runner
    assert cuda_graphs.auto_install(model) is runner  # a second first call (another thread's): the same one


def test_turning_graphs_off_also_stops_the_default():
    model = fastbert.BertForSequenceClassification(tiny_model().config).eval()
    assert model.bert._graphs_auto
    assert model.cuda_graphs(enabled=False) is model
    assert model.bert._graphs_auto is False and "encode" not in model.bert.__dict__


def test_copies_and_pickles_leave_the_runner_behind():
    model = tiny_model()
    runner = GraphRunner(model, 8, 128)
    model.__dict__["encode"] = runner
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert "encode" not in other.__dict__
        with torch.no_grad():
            other(input_ids=torch.randint(1, TINY["vocab_size"], (1, 5)))
    assert model.__dict__["encode"] is runner


@pytest.mark.parametrize("auto", [True, False])
def test_a_failed_capture_of_the_default_runner_falls_back_once(monkeypatch, auto):
    model = tiny_model()
    runner = GraphRunner(model, 8, 128, auto=auto)
    model.__dict__["encode"] = runner
    calls = []

    def broken(inputs, **kwargs):
        calls.append(1)
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(runner, "covers", lambda inputs, allow_pack: True)
    monkeypatch.setattr(runner, "run", broken)
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    ids = torch.randint(1, TINY["vocab_size"], (2, 8))
    with torch.no_grad():
        expected = type(model).encode(model, BertInputs(input_ids=ids)).sequence
        if not auto:  # an opted-in runner raises: the user asked for graphs
            with pytest.raises(RuntimeError, match="stream is capturing"):
                model(input_ids=ids)
            return
        with pytest.warns(
            UserWarning, match=r"a CUDA-graph capture failed .*batches of that size \(2 x 16\)"
        ):
            first = model(input_ids=ids).last_hidden_state
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            second = model(input_ids=ids).last_hidden_state
        third = model(
            input_ids=torch.randint(1, TINY["vocab_size"], (3, 20))
        ).last_hidden_state  # another bucket
    assert len(calls) == 2  # the failed bucket is not tried again; another one is
    assert set(runner.failures) == {((2, 16), False), ((4, 32), False)}
    assert "stream is capturing" in runner.failures[(2, 16), False]
    assert third.shape == (3, 20, TINY["hidden_size"])
    torch.testing.assert_close(first, expected, rtol=0, atol=0)
    torch.testing.assert_close(second, expected, rtol=0, atol=0)


class _Interrupt(BaseException):
    """A caller's interrupt (KeyboardInterrupt, the bench's time limit: ``fastbert.benchmark.BudgetSpent``)."""


@pytest.mark.parametrize("wrapped", [False, True])
def test_an_interrupt_in_a_capture_reaches_the_caller(monkeypatch, wrapped):
    """An interrupt during a capture of the default runner (the bench's time limit fires while Triton
    compiles in the warm-up) is the caller's: it is raised, not taken for a failed capture that falls back to
    the normal forward, also when the capture's exit turned it into another error."""
    model = tiny_model()
    runner = GraphRunner(model, 8, 128, auto=True)
    model.__dict__["encode"] = runner
    replay_on_cpu(monkeypatch, runner)
    monkeypatch.setattr(runner, "covers", lambda inputs, allow_pack: True)

    def interrupted(body):
        try:
            raise _Interrupt
        except _Interrupt as e:
            if wrapped:  # torch.cuda.graph's __exit__ failing on the capture the interrupt broke
                raise RuntimeError(
                    "CUDA error: operation failed due to a previous error during capture"
                ) from e
            raise

    monkeypatch.setattr(runner, "_record", interrupted)
    ids = torch.randint(1, TINY["vocab_size"], (2, 8))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeError if wrapped else _Interrupt):
            model(input_ids=ids)
    assert runner.failures == {} and runner.graphs == {}
    monkeypatch.setattr(runner, "_record", stand_in_record)  # the next call captures the bucket
    with torch.no_grad():
        model(input_ids=ids)
    assert runner.captures == 1


def test_the_fill_rule_runs_a_skewed_batch_packed(monkeypatch):
    """A large bucket mostly of padding is not replayed: the model's own (packed) forward runs instead."""
    model = tiny_model()
    runner = GraphRunner(
        model, **AUTO_LIMITS, min_fill=AUTO_MIN_FILL, fill_from_tokens=AUTO_FILL_FROM_TOKENS, auto=True
    )
    model.__dict__["encode"] = runner
    replayed = []
    monkeypatch.setattr(runner, "covers", lambda inputs, allow_pack: True)
    monkeypatch.setattr(runner, "run", lambda inputs, **kw: replayed.append(inputs.input_ids.shape) or 1 / 0)
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    ids = torch.randint(1, TINY["vocab_size"], (32, 256))
    mask = torch.zeros(32, 256, dtype=torch.long)
    mask[:, :60] = 1  # 1,920 real tokens of a 8,192-position bucket
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert replayed == [] and out.shape == (32, 256, TINY["hidden_size"])


@pytest.mark.parametrize("model_type", registry.supported_model_types())
def test_the_default_runner_serves_the_outermost_encode(monkeypatch, model_type):
    """The runner replays a family's whole ``encode``: what it returns is the call's result, untouched (a
    family whose encode wraps the engine's, ModernBERT's final norm, must not apply its part again)."""
    model = registry.model_class(model_type, "base")(tiny_family_config(model_type)).eval()
    replayed = object()

    def install(m):
        assert m is model
        stub = lambda inputs, keep_packed=False, allow_pack=True, host_reads=True: replayed  # noqa: E731
        m.__dict__["encode"] = stub
        return stub

    monkeypatch.setattr(cuda_graphs, "auto_install", install)
    assert model.encode(BertInputs(input_ids=CudaIds())) is replayed


class _Stream:
    def wait_event(self, event):
        pass


class _Event:
    def record(self, stream=None):
        pass

    def synchronize(self):
        pass


def stand_in_record(body):
    """``GraphRunner._record`` without CUDA: the captured call's result, and a "graph" whose replay computes
    the call again on the static buffers and writes into that result (what a replay does)."""
    out = body()

    class Graph:
        def replay(self):
            new = body()
            out.sequence.copy_(new.sequence)
            if out.pooled is not None:
                out.pooled.copy_(new.pooled)

    return Graph(), out


def replay_on_cpu(monkeypatch, runner):
    """Captures and replays of ``runner`` through :func:`stand_in_record`, on CPU tensors."""
    monkeypatch.setattr(torch.cuda, "current_stream", lambda *a: _Stream())
    monkeypatch.setattr(torch.cuda, "Event", _Event)
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(runner, "_record", stand_in_record)


def test_replays_refill_the_static_buffers_from_any_previous_call(monkeypatch):
    """``run``'s buffer handling on the CPU, with a stand-in for the graph: a batch that fills its bucket and one
    that does not, with and without a mask and token types, one after another in one bucket, each equals the
    model's own forward on the real tokens (zeros at padded positions). A replay computes the batch padded to
    its bucket, the forward at the batch's own size: other matmul shapes, other roundings, so each is judged
    by the parity rule against the model in float64, the forward's fp32 output as PyTorch's own error."""
    model = tiny_model()
    exact = copy.deepcopy(model).double()
    runner = GraphRunner(model, 4, 32)
    replay_on_cpu(monkeypatch, runner)
    g = torch.Generator().manual_seed(0)
    vocab = TINY["vocab_size"]
    calls = []
    for b, s in ((4, 32), (3, 20), (4, 32), (3, 17), (4, 32)):  # one bucket (4, 32), dirtied in turn
        ids = torch.randint(1, vocab, (b, s), generator=g)
        mask = torch.ones(b, s, dtype=torch.long)
        mask[0, s // 2 :] = 0
        types = torch.randint(0, 2, (b, s), generator=g)
        calls += [dict(input_ids=ids), dict(input_ids=ids, attention_mask=mask, token_type_ids=types)]
    with torch.no_grad():
        for kwargs in calls:
            inputs = BertInputs(**kwargs)
            got = runner.run(inputs)
            want = type(model).encode(model, BertInputs(**kwargs))
            ref = type(exact).encode(exact, BertInputs(**kwargs))
            m = kwargs.get("attention_mask", torch.ones_like(kwargs["input_ids"])).bool()
            assert got.sequence.shape == want.sequence.shape
            assert_close(
                got.sequence, want.sequence, ref.sequence, torch.float32, m, what="replayed sequence"
            )
            assert (got.sequence[~m] == 0).all()
            assert_close(got.pooled, want.pooled, ref.pooled, torch.float32, what="replayed pooled")
    assert runner.captures == 1 and runner.replays == len(calls)


def test_packed_rows_round_up_by_an_eighth_of_the_bucket():
    runner = GraphRunner(tiny_model(), **AUTO_LIMITS, packed=True)
    assert runner.packed_rows((32, 512), 8500) == 10240  # steps of 2,048 in a 16,384-position bucket
    assert runner.packed_rows((32, 512), 2048) == 2048 and runner.packed_rows((32, 512), 14336) == 14336
    assert runner.packed_rows((4, 32), 1) == 64  # at least 64 rows a step
    # rows that round up to the whole bucket: None, the padded graph does that work without packing
    assert runner.packed_rows((32, 512), 14336 + 1) is None and runner.packed_rows((1, 16), 3) is None
    assert runner.packed_rows((1, 128), 100) is None and runner.packed_rows((4, 32), 64) == 64


def _packed_calls(vocab: int, with_types: bool, offsets_in_sequence: bool):
    """Batches for the (4, 32) and (4, 64) buckets: right and left padding, a hole, fully padded rows (the
    last one too), no mask, a batch that fills the bucket; with the rows their packed graph has (None:
    padded). A hole in a family whose positions are offsets inside a sequence (``always_pack``), and a batch
    whose rows would round up to the whole bucket, replay padded."""
    g = torch.Generator().manual_seed(1)

    def batch(lengths, width, left=False, mask=True):
        ids = torch.randint(3, vocab, (len(lengths), width), generator=g)
        m = torch.zeros(len(lengths), width, dtype=torch.long)
        for r, n in enumerate(lengths):
            if left:
                m[r, width - n :] = 1
            else:
                m[r, :n] = 1
        kw = dict(input_ids=ids)
        if mask:
            kw["attention_mask"] = m
        if with_types:
            kw["token_type_ids"] = torch.randint(0, 2, ids.shape, generator=g)
        return kw

    holes = batch([20, 9, 0], 20)
    holes["attention_mask"][0, 5:8] = 0  # padding between tokens
    halves = batch([30, 7, 2], 30)
    halves["attention_mask"] = halves["attention_mask"] * 0.5  # a float mask: any non-zero is a token
    return [
        (batch([32, 5, 17, 1], 32), 64),  # 55 real tokens: 9 filler rows
        (batch([12, 20, 0], 20, left=True), 64),  # left padding, a trailing fully padded row
        (holes, None if offsets_in_sequence else 64),
        (batch([20, 20, 20], 20, mask=False), 64),  # no mask, smaller than the bucket
        (halves, 64),
        (batch([32, 32, 31, 30], 32), None),  # 125 real tokens: 128 rows are the bucket, replayed padded
        (batch([64, 40, 30, 20], 64), 192),  # 154 real tokens in the (4, 64) bucket: a packed graph of 192
        (batch([32, 5, 17, 1], 32), 64),  # the first graph again, dirtied in between
        (batch([32] * 4, 32, mask=False), None),  # fills the bucket: the padded graph
    ]


#: the families whose packed forward differs: positions (BERT's, RoBERTa's after the padding id), DistilBERT's
#: embeddings without token types, MPNet's relative bias, ModernBERT's RoPE, window and final norm
PACKED_FAMILIES = ("bert", "roberta", "distilbert", "mpnet", "modernbert")


@pytest.mark.parametrize("model_type", PACKED_FAMILIES)
def test_packed_replays_equal_the_forward(monkeypatch, model_type):
    """``cuda_graphs(packed=True)`` on the CPU (the triton kernels under the interpreter, a stand-in for the
    graph): each call's result equals the model's own forward on its real tokens (zeros at padding, the
    pooled vector of a fully padded row included); batches with padding reuse the packed graph of their rows
    (real tokens first, filler rows that join no sequence), a batch that fills its bucket replays padded.
    A replay runs the kernels on the bucket's rows, the forward on the batch's own: other roundings, so each
    is judged by the parity rule against the model's sdpa path in float64, its sdpa fp32 output as PyTorch's
    own error (the kernels take no float64)."""
    require_interpreter()
    torch.manual_seed(0)
    cfg = tiny_family_config(model_type)
    model = registry.model_class(model_type, "base")(cfg).eval()
    plain = copy.deepcopy(model)
    plain.set_attn_implementation("sdpa")
    exact = copy.deepcopy(plain).double()
    model.set_attn_implementation("triton")
    runner = GraphRunner(model, 4, 64, packed=True)
    replay_on_cpu(monkeypatch, runner)
    monkeypatch.setattr(runner, "covers", lambda inputs, allow_pack: True)  # CPU ids
    served = []
    run = runner.run
    monkeypatch.setattr(runner, "run", lambda inputs, **kw: served.append(kw["rows"]) or run(inputs, **kw))
    with_types = getattr(cfg, "type_vocab_size", 0) > 1
    calls = _packed_calls(cfg.vocab_size, with_types, model.always_pack)
    with torch.no_grad():
        wants = [model(**kwargs) for kwargs, _ in calls]
        theirs = [plain(**kwargs) for kwargs, _ in calls]
        refs = [exact(**kwargs) for kwargs, _ in calls]
        model.__dict__["encode"] = runner
        gots = [model(**kwargs) for kwargs, _ in calls]
    assert served == [rows for _, rows in calls]
    assert runner.captures == 3 and sorted(k[2] or 0 for k in runner.graphs) == [0, 64, 192]
    for i, ((kwargs, _), want, torch_out, ref, got) in enumerate(
        zip(calls, wants, theirs, refs, gots, strict=True)
    ):
        m = kwargs.get("attention_mask", torch.ones_like(kwargs["input_ids"])).bool()
        a, b = got.last_hidden_state, want.last_hidden_state
        assert a.shape == b.shape
        for side, out in (("replay", a), ("forward", b)):
            assert_close(
                out, torch_out.last_hidden_state, ref.last_hidden_state, torch.float32, m, f"call {i} {side}"
            )
        assert (a[~m] == 0).all()
        if getattr(want, "pooler_output", None) is not None:
            # a graph pools zeros at a padded first position (the packed backends' rule), as the packed
            # forward does, where sdpa (and MPNet's forward of a mask with a hole, run padded) pools what it
            # computed there: those rows are zeros, the others judged by the rule
            first = m[:, 0]
            assert torch.isfinite(got.pooler_output).all() and (got.pooler_output[~first] == 0).all()
            if not model.always_pack:
                assert (want.pooler_output[~first] == 0).all()
            for side, out in (("replay", got), ("forward", want)):
                assert_close(
                    out.pooler_output[first],
                    torch_out.pooler_output[first],
                    ref.pooler_output[first],
                    torch.float32,
                    what=f"call {i} {side} pooled",
                )


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "padded"])
def test_graphs_leave_fully_padded_batches_to_the_forward(packed, monkeypatch):
    """No real token at all: nothing to pack, the model's own forward answers (as transformers computes it);
    the default (padded) graphs' replay of such a batch gave zeros, where the forward (and transformers)
    computes every position over the padding."""
    model = tiny_model()
    runner = GraphRunner(model, 4, 32, packed=packed)
    monkeypatch.setattr(runner, "covers", lambda inputs, allow_pack: True)
    monkeypatch.setattr(runner, "run", lambda inputs, **kw: 1 / 0)
    ids = torch.randint(1, TINY["vocab_size"], (2, 8))
    mask = torch.zeros_like(ids)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the forward's own note on a batch without tokens
        want = model(input_ids=ids, attention_mask=mask)
        model.__dict__["encode"] = runner
        got = model(input_ids=ids, attention_mask=mask)
    torch.testing.assert_close(got.last_hidden_state, want.last_hidden_state, rtol=0, atol=0)
    torch.testing.assert_close(got.pooler_output, want.pooler_output, rtol=0, atol=0)


def test_a_failed_packed_graph_leaves_the_padded_graph_of_its_bucket(monkeypatch):
    """A packed capture that fails (auto runner) is remembered as (bucket, packed): that bucket's padded graph
    stays in use, its packed graphs captured before are freed (none is replayed again), and batches that would
    pack run the normal forward from then on."""
    require_interpreter()
    model = tiny_model()
    model.set_attn_implementation("triton")
    runner = GraphRunner(model, 4, 64, packed=True, auto=True)
    replay_on_cpu(monkeypatch, runner)
    monkeypatch.setattr(runner, "covers", lambda inputs, allow_pack: True)  # CPU ids

    capture = runner._capture

    def failing_at_128_rows(key, inputs):
        if key[2] == 128:  # key[2]: a packed graph's rows
            raise RuntimeError("operation not permitted when stream is capturing")
        return capture(key, inputs)

    monkeypatch.setattr(runner, "_capture", failing_at_128_rows)
    g = torch.Generator().manual_seed(3)
    full = dict(input_ids=torch.randint(3, TINY["vocab_size"], (4, 64), generator=g))

    def padded(n):
        ids = torch.randint(3, TINY["vocab_size"], (4, 64), generator=g)
        mask = torch.zeros_like(ids)
        mask[:, :n] = 1
        return dict(input_ids=ids, attention_mask=mask)

    small, large = padded(9), padded(30)  # 36 real tokens: 64 rows; 120: 128 rows
    model.__dict__["encode"] = runner
    with torch.no_grad():
        model(**full)  # the padded graph of the (4, 64) bucket
        model(**small)  # a packed graph of 64 rows
        assert sorted(k[2] or 0 for k in runner.graphs) == [0, 64]
        with pytest.warns(UserWarning, match=r"capture failed .*\(4 x 64, packed\)"):
            got = model(**large).last_hidden_state
        again = model(**small).last_hidden_state  # not replayed any more: the normal forward
        model(**full)
        del model.__dict__["encode"]
        want, want_small = model(**large).last_hidden_state, model(**small).last_hidden_state
    assert set(runner.failures) == {((4, 64), True)}
    assert [k[2] for k in runner.graphs] == [None] and runner.captures == 2 and runner.replays == 3
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(again, want_small, rtol=0, atol=0)
