"""The triton backend against the sdpa reference, for all nine classes.

Rule (``fastbert.core.tolerances``): on valid tokens, triton's error is at most a small multiple of sdpa's own
error in the same dtype, plus a floor, both measured against the ``eager`` reference in float64 (fp32 on a GPU). On CPU this runs under TRITON_INTERPRET=1 on tiny
configs; on CUDA it runs the real kernels, on realistic shapes too.
"""

import os
import warnings

import pytest
import torch
from model_helpers import CLASSES, CudaIds, perturb_norms_and_biases

import fastbert
from fastbert.core.ops import triton_available
from fastbert.core.tolerances import assert_close

CUDA = torch.cuda.is_available()
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"

pytestmark = pytest.mark.skipif(not triton_available(), reason="needs triton on CUDA or TRITON_INTERPRET=1")

DEVICE = "cuda" if CUDA else "cpu"


def tiny(name, **kw):
    cfg = dict(
        vocab_size=97,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=80,
        type_vocab_size=2,
        is_decoder=name == "BertLMHeadModel",
    )
    cfg.update(kw)
    torch.manual_seed(0)
    model = getattr(fastbert, name)(fastbert.BertConfig(**cfg)).eval()
    return perturb_norms_and_biases(model).to(DEVICE)


def inputs_for(name, b=3, seq=13, vocab=97):
    g = torch.Generator().manual_seed(1)
    shape = (b, 2, seq) if name == "BertForMultipleChoice" else (b, seq)
    ids = torch.randint(1, vocab, shape, generator=g)
    mask = torch.ones(shape, dtype=torch.long)
    mask[1, ..., 7:] = 0
    mask[2, ..., 1:] = 0
    tt = torch.randint(0, 2, shape, generator=g)
    return {k: v.to(DEVICE) for k, v in dict(input_ids=ids, attention_mask=mask, token_type_ids=tt).items()}


def run(model, backend, dtype, inputs):
    model = model.to(dtype)
    model.set_attn_implementation(backend)
    inputs = {k: v.to(dtype) if v.is_floating_point() else v for k, v in inputs.items()}
    with torch.no_grad():
        out = model(**inputs, use_cache=False) if model.config.is_decoder else model(**inputs)
    return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}


def valid(t, mask):
    m = mask.reshape(-1, mask.shape[-1]) if t.shape[:2] != mask.shape[:2] else mask
    if tuple(t.shape[: m.dim()]) == tuple(m.shape):
        return t[m.bool()]
    return t


def compare(name, dtype, inputs, model=None):
    """triton in ``dtype`` against the eager reference (float64 on the CPU, fp32 on a GPU), judged by the
    one rule with sdpa in ``dtype`` as PyTorch's own error."""
    model = model or tiny(name)
    ref = run(model, "eager", torch.float32 if CUDA else torch.float64, inputs)
    sdpa = run(model, "sdpa", dtype, inputs)
    tri = run(model, "triton", dtype, inputs)
    mask = inputs["attention_mask"]
    assert set(tri) == set(ref)
    for key in ref:
        assert_close(
            valid(tri[key], mask), valid(sdpa[key], mask), valid(ref[key], mask), dtype, what=f"{name} {key}"
        )


@pytest.mark.parametrize("name", CLASSES)
def test_triton_parity_fp32_padded(name):
    compare(name, torch.float32, inputs_for(name))


@pytest.mark.parametrize("name", ["BertModel", "BertForMaskedLM", "BertForTokenClassification"])
def test_triton_parity_fp16(name):
    compare(name, torch.float16, inputs_for(name))


def test_triton_parity_bf16():
    if INTERPRET:
        pytest.skip("triton's interpreter computes bf16 tl.dot wrongly (attention); tested on GPU")
    compare("BertForMaskedLM", torch.bfloat16, inputs_for("BertForMaskedLM"))


def test_triton_unpadded_batch_and_length_one():
    model = tiny("BertModel")
    for b, seq in ((2, 9), (1, 1)):
        inputs = inputs_for("BertModel", b=3, seq=seq)
        inputs = {k: v[:b] for k, v in inputs.items()}
        inputs["attention_mask"] = torch.ones_like(inputs["attention_mask"])
        compare("BertModel", torch.float32, inputs, model)


def test_triton_left_padding_matches_sdpa_positions():
    model = tiny("BertModel")
    ids = torch.randint(1, 97, (2, 10), device=DEVICE)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1, 1], [1] * 10], device=DEVICE)
    compare("BertModel", torch.float32, dict(input_ids=ids, attention_mask=mask), model)
    a = run(model, "triton", torch.float32, dict(input_ids=ids, attention_mask=mask))["last_hidden_state"]
    assert a[0, :3].abs().max() == 0


@pytest.mark.parametrize("row", [[0, 0, 0, 1, 1, 1, 1, 1, 1, 1], [1, 1, 0, 1, 1, 0, 0, 1, 1, 0]])
def test_triton_padded_path_with_left_padding_and_holes(row):
    """The padded triton path (the CUDA-graph path; losses over padded positions) bounds each row's keys by
    its last real token, not by its count of real tokens: left padding and holes keep every real key."""
    from fastbert.modeling import BertInputs

    model = tiny("BertModel")
    ids = torch.randint(1, 97, (2, 10), device=DEVICE)
    mask = torch.tensor([row, [1] * 10], device=DEVICE)
    out = {}
    for impl, dtype in (("triton", torch.float32), ("sdpa", torch.float32), ("eager", torch.float64)):
        model.to(dtype).set_attn_implementation(impl)
        with torch.no_grad():
            enc = model.encode(BertInputs(input_ids=ids, attention_mask=mask), allow_pack=False)
        out[impl] = enc.sequence
    assert_close(out["triton"], out["sdpa"], out["eager"], torch.float32, mask=mask.bool(), what=str(row))


def test_graph_path_honours_the_configs_output_flags(monkeypatch):
    """A replay returns only the sequence and pooled outputs: a config asking for hidden states or
    attentions by default must run the normal forward (the flags resolve as the model resolves them)."""
    from fastbert.core.cuda_graphs import GraphRunner
    from fastbert.modeling import BertInputs

    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)  # a CPU build has no CUDA
    model = tiny("BertModel")
    model.set_attn_implementation("triton")
    runner = GraphRunner(model, max_batch=2, max_seqlen=16)
    inputs = BertInputs(input_ids=CudaIds((1, 8)))
    with torch.no_grad():
        assert runner.covers(inputs, allow_pack=True)
        for flag in ("output_hidden_states", "output_attentions"):
            setattr(model.config, flag, True)
            assert not runner.covers(inputs, allow_pack=True), flag
            assert runner.covers(BertInputs(input_ids=CudaIds((1, 8)), **{flag: False}), allow_pack=True)
            setattr(model.config, flag, False)


def test_triton_cross_attention():
    model = tiny("BertLMHeadModel", add_cross_attention=True)
    inputs = inputs_for("BertLMHeadModel")
    inputs["encoder_hidden_states"] = torch.randn(3, 5, 64, device=DEVICE)
    inputs["encoder_attention_mask"] = torch.tensor(
        [[1] * 5, [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], device=DEVICE
    )
    compare("BertLMHeadModel", torch.float32, inputs, model)


@pytest.mark.parametrize(
    "case, match",
    [
        ("relative", "position_embedding_type"),
        ("grad", "gradients are required"),
        ("attentions", "output_attentions"),
    ],
)
def test_fallbacks_are_loud(case, match):
    model = tiny("BertModel", position_embedding_type="relative_key" if case == "relative" else "absolute")
    model.set_attn_implementation("triton")
    inputs = inputs_for("BertModel")
    with pytest.warns(UserWarning, match=match):
        if case == "grad":
            model(**inputs)
        else:
            with torch.no_grad():
                model(**inputs, output_attentions=case == "attentions")
    # one warning per reason, not one per call
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.no_grad() if case != "grad" else torch.enable_grad():
            model(**inputs, output_attentions=case == "attentions")


def test_head_dim_over_the_kernel_falls_back_to_sdpa():
    """A checkpoint with a head dim the attention kernel does not take (over 128) runs on sdpa, warned,
    with sdpa's numbers, instead of failing inside the kernel's launcher mid-forward."""
    from fastbert.core import ops
    from fastbert.kernels.attention import MAX_HEAD_DIM

    assert ops.TRITON_MAX_HEAD_DIM == MAX_HEAD_DIM  # resolve's copy of the kernel's limit
    model = tiny("BertModel", hidden_size=320, num_attention_heads=2)  # head dim 160
    model.set_attn_implementation("triton")
    inputs = inputs_for("BertModel")
    with torch.no_grad(), pytest.warns(UserWarning, match="head dim 160"):
        ours = model(**inputs).last_hidden_state
    model.set_attn_implementation("sdpa")
    with torch.no_grad():
        assert torch.equal(ours, model(**inputs).last_hidden_state)


def test_resolve_names_the_kernel_limits(monkeypatch):
    from fastbert.core import ops
    from fastbert.kernels.layernorm import MAX_HIDDEN

    assert ops.TRITON_MAX_HIDDEN == MAX_HIDDEN
    table, reason = ops.resolve("triton", hidden_size=MAX_HIDDEN * 2, head_dim=64)
    assert table is ops.SDPA_OPS and f"hidden size {MAX_HIDDEN * 2}" in reason
    assert ops.resolve("triton", head_dim=ops.TRITON_MAX_HEAD_DIM) == (ops.get_ops("triton"), None)


@pytest.mark.parametrize("which", ["inputs_embeds", "encoder_hidden_states"])
def test_frozen_model_gives_input_gradients(which):
    """Attribution / prompt tuning: frozen weights, an input that requires a gradient. The forward-only
    kernels would return outputs without grad_fn; the model falls back (loudly) and the gradient is sdpa's."""
    name = "BertLMHeadModel" if which == "encoder_hidden_states" else "BertModel"
    kw = {"add_cross_attention": True} if which == "encoder_hidden_states" else {}
    model = tiny(name, **kw).requires_grad_(False)
    inputs = inputs_for(name)
    if which == "inputs_embeds":
        x = model.get_input_embeddings()(inputs.pop("input_ids")).detach().requires_grad_(True)
    else:
        x = torch.randn(3, 5, 64, device=DEVICE, requires_grad=True)
    inputs[which] = x
    grads = {}
    for impl in ("triton", "sdpa"):
        model.set_attn_implementation(impl)
        x.grad = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = model(**inputs)
        first = out.logits if name == "BertLMHeadModel" else out.last_hidden_state
        first.sum().backward()
        grads[impl] = x.grad.clone()
    assert grads["triton"].abs().sum() > 0
    torch.testing.assert_close(grads["triton"], grads["sdpa"], rtol=0, atol=0)


def test_triton_validates_like_other_backends(monkeypatch):
    """Bad inputs raise the ValueError that eager and sdpa raise, before any op of the triton table runs; the
    same model then runs valid inputs through that table (not a fallback) to the reference's result. A broken
    triton table (one that cannot be built, an op that raises or computes wrongly) fails here."""
    import dataclasses

    from fastbert.core import ops

    table = ops.get_ops("triton")
    ran: list[str] = []

    def recorded(name, op):
        def call(*args, **kwargs):
            ran.append(name)
            return op(*args, **kwargs)

        return call

    ops_of_table = [f.name for f in dataclasses.fields(table) if callable(getattr(table, f.name))]
    spy = dataclasses.replace(table, **{name: recorded(name, getattr(table, name)) for name in ops_of_table})
    monkeypatch.setitem(ops.TABLES, "triton", spy)

    model = tiny("BertModel")
    ids = torch.tensor([[1, 5, 7]])
    bad = [
        dict(input_ids=torch.tensor([[1, 97]])),  # vocab_size is 97
        dict(input_ids=torch.tensor([[1, -3]])),
        dict(input_ids=ids, token_type_ids=torch.tensor([[0, 1, 2]])),  # type_vocab_size is 2
        dict(input_ids=ids, position_ids=torch.tensor([[0, 1, 80]])),  # max_position_embeddings is 80
    ]
    errors = {}
    for backend in ("eager", "sdpa", "triton"):
        model.set_attn_implementation(backend)
        for i, inputs in enumerate(bad):
            with pytest.raises(ValueError) as info, torch.no_grad():
                model(**{k: v.to(DEVICE) for k, v in inputs.items()})
            errors[backend, i] = str(info.value)
    assert "input_ids holds 97" in errors["triton", 0]
    for i in range(len(bad)):
        assert errors["triton", i] == errors["sdpa", i] == errors["eager", i]
    assert ran == []  # validated on the host before the table was touched

    compare("BertModel", torch.float32, inputs_for("BertModel"), model)
    assert {"embed", "attention", "linear", "add_norm", "bias_act"} <= set(ran)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("graphs", [True, False], ids=["graphs", "eager"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("seq", [1, 128, 512])
def test_triton_parity_bert_base_cuda(dtype, seq, graphs):
    config = fastbert.BertConfig()
    torch.manual_seed(0)
    model = fastbert.BertForMaskedLM(config).eval().cuda()
    if not graphs:  # on by default: 8 x 512 is inside the default buckets
        model.cuda_graphs(enabled=False)
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, seq + 1, (8,), generator=g)
    lengths[0] = seq
    mask = (torch.arange(seq)[None] < lengths[:, None]).long().cuda()
    ids = torch.randint(1, config.vocab_size, (8, seq), generator=g).cuda()
    compare("BertForMaskedLM", dtype, dict(input_ids=ids, attention_mask=mask), model)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_cuda_graphs_match_and_do_not_recapture():
    import copy

    from fastbert.core.cuda_graphs import runner_of
    from fastbert.core.tolerances import assert_close

    model = fastbert.BertModel(fastbert.BertConfig(num_hidden_layers=2)).eval().cuda()
    reference = copy.deepcopy(model)  # fp32 eager: the reference of the rule
    reference.set_attn_implementation("eager")
    torch_fp16 = copy.deepcopy(model).half()  # PyTorch's own fp16 error
    torch_fp16.set_attn_implementation("sdpa")
    model.half().set_attn_implementation("triton")
    model.cuda_graphs(max_batch=8, max_seqlen=128)
    runner = runner_of(model)
    for b, seq in ((1, 128), (3, 50), (1, 100), (8, 128), (2, 60)):
        ids = torch.randint(1, 1000, (b, seq), device="cuda")
        mask = torch.ones(b, seq, dtype=torch.long, device="cuda")
        mask[0, seq // 2 :] = 0
        with torch.no_grad():
            graphed = model(input_ids=ids, attention_mask=mask).last_hidden_state
            again = model(input_ids=ids, attention_mask=mask).last_hidden_state
            ref = reference(input_ids=ids, attention_mask=mask).last_hidden_state
            plain16 = torch_fp16(input_ids=ids, attention_mask=mask).last_hidden_state
        assert torch.equal(graphed, again)  # two replays of one graph: the same bits
        m = mask.bool()
        assert_close(graphed, plain16, ref, torch.float16, mask=m, what=f"graphed {b}x{seq}")
        assert (graphed[~m] == 0).all()
    # buckets: (1,128), (4,64), (1,128) again, (8,128), (2,64) -> 4 captures, not 5
    assert runner.captures == 4
    with torch.no_grad():  # outside the buckets: runs normally
        model(input_ids=torch.randint(1, 1000, (16, 20), device="cuda"))
    assert runner.captures == 4
    # a graph reads weights by address: an in-place edit is seen without a capture; a move re-captures
    model.cuda_graphs(max_batch=2, max_seqlen=32)
    runner = runner_of(model)
    ids = torch.randint(1, 1000, (1, 20), device="cuda")
    with torch.inference_mode():
        model(input_ids=ids)
    with torch.no_grad():
        before = model(input_ids=ids).last_hidden_state
        bias = model.encoder.layer[0].output.dense.bias  # a per-feature edit: LayerNorm, next, would
        bias.add_(torch.randn_like(bias))  # remove a constant one (seen on an H200: 0.002 in fp16)
        after = model(input_ids=ids).last_hidden_state
        assert runner.captures == 1 and (after - before).abs().max() > 1e-2
        model.float().half()  # the parameters moved
        moved = model(input_ids=ids).last_hidden_state
        assert runner.captures == 2
        torch.testing.assert_close(moved, after, rtol=0, atol=0)
        runner.invalidate()
        model(input_ids=ids)
        assert runner.captures == 3
        model.float()
        with torch.autocast("cuda", dtype=torch.float16), pytest.warns(UserWarning, match="autocast"):
            first = model(input_ids=ids).last_hidden_state.clone()  # not covered: the forward runs sdpa
        with torch.autocast("cuda", dtype=torch.float16):
            second = model(input_ids=ids).last_hidden_state
        assert torch.equal(first, second) and first.dtype == torch.float32  # the fp32 residual stream
        assert runner.captures == 3


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("model_type", ["bert", "roberta", "mpnet", "modernbert"])
def test_packed_cuda_graphs_match_the_rule(model_type):
    """``cuda_graphs(packed=True)`` on CUDA: varlen batches (right and left padding, a fully padded row, no
    mask) replay packed graphs within the fp16 rule on their real tokens, zeros at padding; a second replay
    gives the same bits, and replays capture nothing again."""
    import copy

    from fastbert import registry
    from fastbert.core.cuda_graphs import runner_of
    from fastbert.core.tolerances import assert_close
    from tests.model_helpers import tiny_family_config

    torch.manual_seed(0)
    cfg = tiny_family_config(model_type, width=128, max_position_embeddings=140)
    model = registry.model_class(model_type, "base")(cfg).eval().cuda()
    reference = copy.deepcopy(model)
    reference.set_attn_implementation("eager")
    torch_fp16 = copy.deepcopy(model).half()
    torch_fp16.set_attn_implementation("sdpa")
    model.half().set_attn_implementation("triton")
    model.cuda_graphs(max_batch=8, max_seqlen=128, packed=True)
    runner = runner_of(model)
    g = torch.Generator().manual_seed(0)
    for b, seq, left, masked in (
        (8, 128, False, True),
        (5, 100, True, True),
        (8, 128, False, True),
        (3, 40, False, False),
    ):
        ids = torch.randint(3, cfg.vocab_size, (b, seq), generator=g).cuda()
        lengths = torch.randint(1, seq + 1, (b,), generator=g)
        lengths[-1] = 0 if b > 3 else seq  # a fully padded last row
        pos = torch.arange(seq)[None]
        mask = ((pos >= seq - lengths[:, None]) if left else (pos < lengths[:, None])).long().cuda()
        kwargs = dict(input_ids=ids, attention_mask=mask) if masked else dict(input_ids=ids)
        with torch.no_grad():
            graphed = model(**kwargs).last_hidden_state
            again = model(**kwargs).last_hidden_state
            ref = reference(**kwargs).last_hidden_state
            plain16 = torch_fp16(**kwargs).last_hidden_state
        assert torch.equal(graphed, again)
        m = mask.bool() if masked else torch.ones_like(ids, dtype=torch.bool)
        assert_close(graphed, plain16, ref, torch.float16, mask=m, what=f"{model_type} packed {b}x{seq}")
        assert (graphed[~m] == 0).all()
    assert all(key[2] is not None for key in runner.graphs)  # every batch had padding: packed graphs only
    assert runner.replays == 8 and runner.captures == len(runner.graphs)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_cuda_graphs_on_by_default():
    """A CUDA triton model replays graphs from its first no_grad call, within the fp16 rule; a call with
    grad, outside the buckets or mostly padding runs the normal forward; a rebound weight re-captures."""
    import copy

    from fastbert.core.cuda_graphs import AUTO_LIMITS, runner_of
    from fastbert.core.tolerances import assert_close

    model = fastbert.BertModel(fastbert.BertConfig(num_hidden_layers=2)).eval().cuda()
    reference = copy.deepcopy(model)
    reference.set_attn_implementation("eager")
    torch_fp16 = copy.deepcopy(model).half()
    torch_fp16.set_attn_implementation("sdpa")
    model.half().set_attn_implementation("triton")
    assert runner_of(model) is None
    ids = torch.randint(1, 1000, (5, 77), device="cuda")
    mask = torch.ones_like(ids)
    mask[1, 40:] = 0
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask).last_hidden_state
        ref = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        plain = torch_fp16(input_ids=ids, attention_mask=mask).last_hidden_state
    runner = runner_of(model)
    assert runner is not None and runner.auto and runner.captures == 1
    assert runner.max_tokens == AUTO_LIMITS["max_tokens"]
    assert_close(out, plain, ref, torch.float16, mask=mask.bool(), what="default graphs")
    replays = runner.replays
    assert model(
        input_ids=ids, attention_mask=mask
    ).last_hidden_state.requires_grad  # grad: the normal forward
    assert runner.replays == replays
    with torch.no_grad():
        model(input_ids=torch.randint(1, 1000, (64, 300), device="cuda"))  # over 16,384 positions
        skewed = torch.zeros(32, 256, dtype=torch.long, device="cuda")
        skewed[:, :16] = 1
        model(input_ids=torch.randint(1, 1000, (32, 256), device="cuda"), attention_mask=skewed)
        assert runner.captures == 1
        dense = model.encoder.layer[0].output.dense
        dense.weight = torch.nn.Parameter(dense.weight.detach() * 2)  # rebound: the old one is freed
        torch_fp16.encoder.layer[0].output.dense.weight.mul_(2)
        reference.encoder.layer[0].output.dense.weight.mul_(2)
        out = model(input_ids=ids, attention_mask=mask).last_hidden_state
        ref = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        plain = torch_fp16(input_ids=ids, attention_mask=mask).last_hidden_state
    assert runner.captures == 2
    assert_close(out, plain, ref, torch.float16, mask=mask.bool(), what="after a rebound weight")
    model.cuda_graphs(enabled=False)
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
    assert runner_of(model) is None


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_cuda_graphs_shared_by_threads_on_their_own_streams():
    """Two threads, each on its own CUDA stream, calling one model with shapes of their own (so one captures
    while the other replays): every result equals a copy's, run on one thread."""
    import copy
    import threading

    from fastbert.core.cuda_graphs import runner_of

    model = fastbert.BertModel(fastbert.BertConfig(num_hidden_layers=2)).eval().cuda().half()
    model.set_attn_implementation("triton")
    alone = copy.deepcopy(model)  # a copy leaves the runner behind: graphs of its own
    shapes = {0: [(4, 60), (2, 30), (8, 100)], 1: [(3, 20), (16, 50), (1, 128)]}
    g = torch.Generator(device="cuda").manual_seed(0)
    batches = {
        k: [torch.randint(1, 1000, s, device="cuda", generator=g) for s in v] for k, v in shapes.items()
    }
    got: dict[tuple[int, int, int], torch.Tensor] = {}
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            stream = torch.cuda.Stream()
            with torch.cuda.stream(stream), torch.no_grad():
                for r in range(4):
                    for i, ids in enumerate(batches[k]):
                        got[(k, i, r)] = model(input_ids=ids).last_hidden_state
            stream.synchronize()
        except BaseException as err:  # noqa: BLE001 - reported on the main thread
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in shapes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with torch.no_grad():
        expected = {
            (k, i): alone(input_ids=ids).last_hidden_state
            for k in batches
            for i, ids in enumerate(batches[k])
        }
    for (k, i, r), out in got.items():
        assert torch.equal(out, expected[(k, i)]), (k, i, r)
    assert runner_of(model).captures == 6


@pytest.mark.skipif(not CUDA, reason="torch.compile over the Triton custom ops needs CUDA")
def test_torch_compile_over_triton_backend():
    """The compiled triton model in fp16 by the one rule: against the eager fp32 reference, with sdpa's fp16
    error as PyTorch's own."""
    model = fastbert.BertModel(fastbert.BertConfig(num_hidden_layers=2)).eval().cuda()
    ids = torch.randint(1, 1000, (4, 64), device="cuda")
    inputs = dict(input_ids=ids)
    ref = run(model, "eager", torch.float32, inputs)["last_hidden_state"]
    theirs = run(model, "sdpa", torch.float16, inputs)["last_hidden_state"]
    model.set_attn_implementation("triton")
    with torch.no_grad():
        out = torch.compile(model)(input_ids=ids).last_hidden_state
    assert_close(out, theirs, ref, torch.float16, what="compiled triton")
    with torch.no_grad():  # with gradients the model would fall back to sdpa
        explanation = torch._dynamo.explain(model)(input_ids=ids)
    graphs = "\n".join(str(g.graph) for g in explanation.graphs)
    for op in ("embed_layernorm", "attention_padded", "add_layernorm", "bias_act"):
        assert f"fastbert.{op}" in graphs, op  # the kernels are in the traced graphs...
    for brk in explanation.break_reasons:  # ...and no graph break happens inside them
        frames = [f.filename for f in brk.user_stack]
        assert not any("fastbert/kernels" in f or f.endswith("fastbert/core/ops.py") for f in frames), brk
