"""GPTQ rounding of the int8 weights (fastbert.quant.gptq): the codes lower the linear's error on
correlated inputs against nearest rounding, stay on the same grid, run through oneDNN's int8 GEMM (and
``torch._int_mm``) as their formula, are chosen by calibration and said in the repr, survive copies and
pickles, and are dropped when the weight changes (nearest rounding of the new weight from then on)."""

import copy
import pickle
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

import fastbert
from fastbert.core.tolerances import assert_close
from fastbert.core.weight_watch import weight_sample
from fastbert.quant import quantize, refresh
from fastbert.quant.gptq import compensated_codes, input_gram
from fastbert.quant.int8 import (
    Int8Linear,
    int8_available,
    int8_schemes,
    quantize_weight,
    reference_int8_linear,
    split_smoothing,
    weight_grid,
)

pytestmark = pytest.mark.skipif(not int8_available(), reason="torch without oneDNN int8 ops")

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)


def _correlated(n, k, seed=0):
    """n rows of k channels with a few strong shared directions (as LayerNorm outputs have), not i.i.d.;
    the same directions for every seed."""
    basis = torch.randn(8, k, generator=torch.Generator().manual_seed(k)) * torch.linspace(4, 0.5, 8)[:, None]
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 8, generator=g) @ basis + 0.1 * torch.randn(n, k, generator=g)


def _error(x, w, qw, scale):
    return (
        (x.double() @ (qw.double() * scale.double()[:, None] - w.double()).T).norm() / (x @ w.T).norm()
    ).item()


@pytest.mark.parametrize("qmax", [63, 127])
def test_gptq_codes_lower_the_output_error_on_the_same_grid(qmax):
    torch.manual_seed(0)
    w = torch.randn(48, 96) * 0.05
    calib, held_out = _correlated(512, 96, 0), _correlated(512, 96, 1)
    grid, scale = weight_grid(w, None, qmax)
    codes = compensated_codes(grid, scale, calib.T @ calib, qmax)
    nearest, same_scale = quantize_weight(w, None, qmax)
    assert torch.equal(same_scale, scale) and codes.dtype == torch.int8 and codes.abs().max() <= qmax
    assert not torch.equal(codes, nearest)
    # a few codes move (measured: 13%), each by a step or two
    assert (codes != nearest).float().mean() < 0.25 and (codes.int() - nearest.int()).abs().max() <= 3
    for x in (calib, held_out):  # on the inputs it saw and on others from the same distribution
        # measured: a tenth of nearest rounding's error, here where 8 directions carry the inputs
        assert _error(x, w, codes, scale) < 0.3 * _error(x, w, nearest, scale)


def test_gptq_channels_no_input_reached_round_to_nearest():
    """Channels whose calibration inputs were all zero (H_kk = 0: the outlier channels computed apart, dead
    units) get their nearest code and pass no error to the others; a non-finite Gram matrix gives None."""
    torch.manual_seed(0)
    w = torch.randn(16, 24)
    x = _correlated(256, 24)
    x[:, [3, 11]] = 0.0
    grid, scale = weight_grid(w, None, 127)
    codes = compensated_codes(grid, scale, x.T @ x, 127)
    nearest, _ = quantize_weight(w, None, 127)
    assert torch.equal(codes[:, [3, 11]], nearest[:, [3, 11]])
    assert not torch.equal(codes, nearest)
    gram = x.T @ x
    gram[0, 0] = float("nan")
    assert compensated_codes(grid, scale, gram, 127) is None


def test_gptq_codes_do_not_depend_on_the_thread_count():
    """The sweep's sums split among threads change their last bits with the thread count, and with an
    ill-conditioned Gram matrix (a few strong directions, channels 30x the others: real LayerNorm outputs)
    that flipped codes (measured: 258 of 590 k here between 1 and 2 threads; 3,189 of the MiniLM's 8 M):
    a 1-thread worker and a 2-thread process quantized the same model differently. The sweep runs in
    float64 for it; it does not pin the thread count (``torch.set_num_threads`` is process-wide: a thread that
    first used torch meanwhile kept 1 thread for good)."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(384, 1536, generator=g)
    x = torch.randn(2000, 48, generator=g) @ torch.randn(48, 1536, generator=g)
    x += 0.01 * torch.randn(2000, 1536, generator=g)
    x[:, :4] *= 30
    grid, scale = weight_grid(w, None, 127)
    before = torch.get_num_threads()
    try:
        codes = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with mock.patch.object(torch, "set_num_threads", side_effect=AssertionError("pinned")):
                codes.append(compensated_codes(grid, scale, x.T @ x, 127))
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    assert torch.equal(codes[0], codes[1]), int((codes[0] != codes[1]).sum())


def test_input_gram_applies_the_input_side_factors():
    x = _correlated(64, 12)
    side = torch.rand(12) + 0.5
    side[4] = 0.0
    exact = (x.double() * side.double()).T @ (x.double() * side.double())
    assert_close(
        input_gram(x.T @ x, side), (x * side).T @ (x * side), exact, torch.float32, what="input gram"
    )
    assert input_gram(x.T @ x, None) is not None


@pytest.mark.parametrize("smooth", [False, True])
@pytest.mark.parametrize("outliers", [False, True])
def test_int8_linear_runs_the_codes_as_their_formula(smooth, outliers):
    """oneDNN's int8 GEMM with GPTQ codes equals the float64 formula with those codes (and differs from
    nearest rounding's): the codes reach the kernel."""
    scheme = int8_schemes()[0]
    torch.manual_seed(0)
    w, b = torch.randn(96, 80) * 0.05, torch.randn(96)
    x = _correlated(21, 80)
    s = torch.rand(80) + 0.5 if smooth else None
    o = torch.tensor([5, 17]) if outliers else None
    w_side, x_side = split_smoothing(w, s, o)
    grid, scale = weight_grid(w, w_side, scheme.qmax)
    codes = compensated_codes(grid, scale, input_gram(x.T @ x, x_side), scheme.qmax)
    lin = Int8Linear(w, s, 0.5, scheme, 0.0, o, codes=codes)
    with torch.no_grad():
        y = lin(x, w, b)
    ref = reference_int8_linear(x, w, b, s, scheme, o, codes=codes)
    nearest = reference_int8_linear(x, w, b, s, scheme, o)
    # the formula in fp32: PyTorch's own error of the same codes
    in_fp32 = reference_int8_linear(x, w, b, s, scheme, o, torch.float32, codes=codes)
    assert_close(y, in_fp32, ref, torch.float32, what="int8 linear with GPTQ codes")
    assert (ref - nearest).abs().max() > 1e-3
    exact = F.linear(x.double(), w.double(), b.double())
    assert (ref - exact).norm() < (nearest - exact).norm()
    assert "GPTQ rounding" in repr(lin)


def test_int_mm_linear_runs_the_codes_as_their_formula():
    """The CUDA int8 linear (``torch._int_mm``; torch runs it on the CPU too) takes the codes as well."""
    from fastbert.quant.gpu import IntMMLinear, cpu_implements, reference_int8_mm_linear

    if not cpu_implements("int8"):
        pytest.skip(f"this torch {torch.__version__} runs torch._int_mm on CUDA only")
    torch.manual_seed(0)
    w, b = torch.randn(96, 80) * 0.05, torch.randn(96)
    x = _correlated(33, 80)
    grid, scale = weight_grid(w, None, 127)
    codes = compensated_codes(grid, scale, x.T @ x, 127)
    lin = IntMMLinear(w, None, 0.0, 0.0, None, codes=codes)
    with torch.no_grad():
        y = lin(x, w, b)
    ref = reference_int8_mm_linear(x, w, b, codes=codes)
    in_fp32 = reference_int8_mm_linear(x, w, b, compute_dtype=torch.float32, codes=codes)
    assert_close(y, in_fp32, ref, torch.float32, what="torch._int_mm linear with GPTQ codes")
    assert (ref - reference_int8_mm_linear(x, w, b)).abs().max() > 1e-3
    assert "GPTQ rounding" in repr(lin)


def _batches():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 99, (8, 16), generator=g)
    return [dict(input_ids=ids, attention_mask=torch.ones_like(ids))]


def _model():
    torch.manual_seed(0)
    fp32 = fastbert.BertModel(fastbert.BertConfig(**TINY)).eval()
    q = copy.deepcopy(fp32)
    quantize(q, "int8", calibration=_batches(), min_cosine=0.0, mean_cosine=0.0)
    return fp32, q


def _hooks(q):
    for layer in q.encoder.layer:
        yield layer.attention.self.__dict__["qkv_linear"]
        for lin in (layer.attention.output.dense, layer.intermediate.dense, layer.output.dense):
            yield lin.qlinear


IDS = torch.randint(1, 99, (3, 10), generator=torch.Generator().manual_seed(7))


def _out(model):
    with torch.no_grad():
        return model(input_ids=IDS).last_hidden_state


def test_calibration_rounds_by_gptq_and_says_so():
    """Calibration keeps GPTQ's codes where they lower a linear's error on its calibration rows (here:
    every linear of a tiny random BERT), and the repr and the recorded error say so."""
    fp32, q = _model()
    hooks = list(_hooks(q))
    assert all(h.rounding() == "GPTQ rounding" for h in hooks)
    # the packed copy is the codes' only copy (no second int8 weight held per linear), and not nearest rounding
    assert all(h.codes is None for h in hooks)
    for layer in q.encoder.layer:
        for lin in (layer.attention.output.dense, layer.intermediate.dense, layer.output.dense):
            h = lin.qlinear
            nearest, _ = quantize_weight(lin.weight, h.w_side, h.scheme.qmax)
            assert h._packed_codes().shape == nearest.shape and not torch.equal(h._packed_codes(), nearest)
    assert all("GPTQ rounding" in repr(h) for h in hooks)
    assert "GPTQ rounding" in q.encoder.layer[0].output.dense.extra_repr()
    # the same calibration with nearest rounding everywhere is further from fp32
    with mock.patch.object(fastbert.quant, "_gptq_codes", lambda *args: None):
        nearest = copy.deepcopy(fp32)
        quantize(nearest, "int8", calibration=_batches(), min_cosine=0.0, mean_cosine=0.0)
    ref = _out(fp32)
    assert all(h.rounding() == "nearest rounding" for h in _hooks(nearest))
    assert all("nearest rounding" in repr(h) for h in _hooks(nearest))
    assert (_out(q) - ref).norm() < (_out(nearest) - ref).norm()


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copies_keep_the_codes(how):
    _, q = _model()
    c = copy.deepcopy(q) if how == "deepcopy" else pickle.loads(pickle.dumps(q))
    assert torch.equal(_out(c), _out(q))
    assert all(h.rounding() == "GPTQ rounding" for h in _hooks(c))
    # the copy's packed codes are the original's
    assert all(torch.equal(a._packed_codes(), b._packed_codes()) for a, b in zip(_hooks(q), _hooks(c)))


def test_a_shallow_copy_of_a_called_copy_runs_with_its_codes():
    """``copy.copy`` of a called linear's copy takes the state as ``__getstate__`` gives it, codes read back
    from the packed copy included (in the wrapper that pickles them by value): it runs, with the codes."""
    _, q = _model()
    ref = _out(q)
    for h in _hooks(q):
        c = copy.copy(h)
        assert isinstance(c.codes, torch.Tensor) and c.rounding() == "GPTQ rounding"
        assert torch.equal(c.codes, h._packed_codes())
    assert torch.equal(_out(q), ref)


def _run_in_child(model, ids, results):  # a spawned process: module level, so the child can import it
    with torch.no_grad():
        results.put(model(input_ids=ids).last_hidden_state.numpy())  # by value: the child may exit first


def test_a_called_model_goes_to_a_spawned_process():
    """``torch.multiprocessing`` (sentence-transformers' ``start_multi_process_pool``) shares a CPU tensor's
    memory with the child through a file descriptor that lives as long as the tensor: the codes a pickle
    reads back from the packed copy must not be a tensor made for the pickle only (it died at the end of
    the pickling, its descriptor was closed and reused, and the start failed: 'bad value(s) in
    fds_to_keep'). The child computes the parent's numbers, with the codes."""
    _, q = _model()
    ref = _out(q)  # packed: the codes live in the packed copies only
    ctx = torch.multiprocessing.get_context("spawn")
    results = ctx.Queue()
    child = ctx.Process(target=_run_in_child, args=(q, IDS, results))
    child.start()
    try:
        out = results.get(timeout=600)
    finally:
        child.join(timeout=60)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0
    assert torch.equal(torch.from_numpy(out), ref)


def test_an_edited_weight_is_rounded_to_nearest():
    """Codes belong to the weight values calibration saw: after an edit the copy is made again by nearest
    rounding of the new weight (what the repr says), not from stale codes."""
    fp32, q = _model()
    dense = q.encoder.layer[0].intermediate.dense
    with torch.no_grad():
        dense.weight.mul_(1.5)
        fp32.encoder.layer[0].intermediate.dense.weight.mul_(1.5)
    x = torch.randn(5, 32)
    with torch.no_grad():
        y = dense(x)
    h = dense.qlinear
    assert h.rounding() == "nearest rounding" and "nearest rounding" in repr(h)
    ref = reference_int8_linear(x, dense.weight, dense.bias, h.smooth, h.scheme, h.outliers)
    in_fp32 = reference_int8_linear(
        x, dense.weight, dense.bias, h.smooth, h.scheme, h.outliers, torch.float32
    )
    assert_close(y, in_fp32, ref, torch.float32, what="an edited weight's int8 linear")
    # the other linears keep theirs
    assert q.encoder.layer[0].output.dense.qlinear.rounding() == "GPTQ rounding"


def test_a_repack_of_the_same_values_keeps_the_codes():
    """A write that leaves the values as they were (``load_state_dict`` of the same state, ``mul_(1)``) makes
    every copy again: from the codes its packed copy holds (oneDNN's (K, N) layout read back), the same
    outputs bit for bit, GPTQ rounding still."""
    _, q = _model()
    before = _out(q)
    q.load_state_dict({k: v.clone() for k, v in q.state_dict().items()})
    with torch.no_grad():
        q.encoder.layer[1].output.dense.weight.mul_(1.0)
    assert torch.equal(_out(q), before)
    assert all(h.rounding() == "GPTQ rounding" for h in _hooks(q))


def _unsampled(w, hook=None):
    """(row, col) of an element outside the 64-element sample of the weight check (weight_sample), in a
    column that is quantized (not one of the hook's outlier channels, computed apart from the weight)."""
    s = weight_sample(w.detach())
    sampled = {s.storage_offset() - w.storage_offset() + i * s.stride(0) for i in range(s.numel())}
    k = w.shape[1]
    skip = set() if hook is None or hook.outliers is None else set(hook.outliers.tolist())
    return next(divmod(o, k) for o in range(w.numel()) if o not in sampled and o % k not in skip)


def _edited_channel_error(dense, x, r, c):
    with torch.no_grad():
        dense.weight[r, c] += 1.0  # in place through the parameter: a repack at the next call
        y = dense(x).float()
        exact = F.linear(x.float(), dense.weight.float(), dense.bias.float())
    return ((y[:, r] - exact[:, r]).norm() / exact[:, r].norm()).item()


@pytest.mark.parametrize("copied", [False, True], ids=["model", "deep copy edited before its first call"])
def test_an_edit_the_sample_misses_never_packs_stale_codes(copied):
    """A repack after an in-place edit checks every value against the codes' weight (not the 64-element
    sample, which misses most rows of a real layer): the edited output channel computes the new weight
    (it ran the old one, relative error 1.75, in review)."""
    _, q = _model()
    if copied:
        q = copy.deepcopy(q)
    dense = q.encoder.layer[0].intermediate.dense
    r, c = _unsampled(dense.weight, dense.qlinear)
    assert _edited_channel_error(dense, torch.randn(5, 32), r, c) < 0.05
    assert dense.qlinear.rounding() == "nearest rounding"
    assert q.encoder.layer[0].output.dense.qlinear.rounding() == "GPTQ rounding"


def test_an_edit_of_the_query_weight_drops_the_fused_codes():
    _, q = _model()
    att = q.encoder.layer[0].attention.self
    hook = att.__dict__["qkv_linear"]
    w, _ = att.fused_qkv()
    r, c = _unsampled(w[:32], hook)
    with torch.no_grad():
        att.query.weight[r, c] += 1.0
        q(input_ids=torch.randint(1, 99, (2, 7)))
    assert hook.rounding() == "nearest rounding"


def test_an_int_mm_edit_the_sample_misses_never_packs_stale_codes():
    from fastbert.quant import _quantize
    from fastbert.quant.gpu import cpu_implements

    if not cpu_implements("int8"):
        pytest.skip(f"this torch {torch.__version__} runs torch._int_mm on CUDA only")
    torch.manual_seed(0)
    cfg = dict(TINY, hidden_size=64, intermediate_size=128)  # _int_mm takes multiples of 8
    m = fastbert.BertModel(fastbert.BertConfig(**cfg)).eval().to(torch.bfloat16)
    _quantize(m, "int8", "int_mm", calibration=_batches(), min_cosine=0.0, mean_cosine=0.0)
    dense = m.encoder.layer[0].intermediate.dense
    assert dense.qlinear.rounding() == "GPTQ rounding"
    r, c = _unsampled(dense.weight, dense.qlinear)
    assert _edited_channel_error(dense, torch.randn(5, 64, dtype=torch.bfloat16), r, c) < 0.05


def test_refresh_keeps_the_codes_of_unchanged_weights_only():
    """refresh makes every copy again: GPTQ's codes where the weight holds the calibrated values, nearest
    rounding where an edit through ``.data`` the sample cannot see changed it."""
    _, q = _model()
    before = _out(q)
    refresh(q)
    assert torch.equal(_out(q), before) and all(h.rounding() == "GPTQ rounding" for h in _hooks(q))
    dense = q.encoder.layer[1].intermediate.dense
    r, c = _unsampled(dense.weight, dense.qlinear)
    dense.weight.data[r, c] += 1.0  # no version bump, not in the sample: only refresh sees it
    refresh(q)
    x = torch.randn(5, 32)
    with torch.no_grad():
        y, exact = dense(x), F.linear(x, dense.weight, dense.bias)
    assert ((y[:, r] - exact[:, r]).norm() / exact[:, r].norm()) < 0.05
    assert dense.qlinear.rounding() == "nearest rounding"


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
        ),
    ],
)
def test_gptq_codes_take_outlier_channels_on_the_model_device(device):
    """The outlier channels come from the recorder's absmax, on the model's device; the codes are computed
    on the CPU (indexing CPU factors with CUDA indices raised)."""
    from fastbert.quant import _gptq_codes, _Recorder, _smooth

    torch.manual_seed(0)
    rec = _Recorder(gram=True)
    w = torch.randn(16, 32, device=device)
    rec(torch.randn(64, 32, device=device), w)
    outliers = torch.argsort(rec.absmax, descending=True)[:4].sort().values  # as _quantize makes them
    codes = _gptq_codes(rec, w, _smooth(rec.absmax, w, 0.5), outliers, 127)
    assert codes is not None and codes.shape == (16, 32) and (codes[:, outliers.cpu()] == 0).all()


def test_concurrent_first_calls_make_the_copy_once_with_its_codes():
    """Threads that call a copy (a deep copy, an unpickled or a refreshed model: nothing packed yet) at
    once: one of them packs it, with calibration's codes, and every call computes with that copy. (Each
    thread used to pack: all but the first found the codes taken and rounded to nearest, and a call could
    read one pack's weights with another's zero-point sums.)"""
    import threading

    scheme = int8_schemes()[0]
    torch.manual_seed(0)
    w, b = torch.randn(384, 256) * 0.05, torch.randn(384)
    x = _correlated(64, 256)
    grid, scale = weight_grid(w, None, scheme.qmax)
    codes = compensated_codes(grid, scale, input_gram(x.T @ x, None), scheme.qmax)
    lin = Int8Linear(w, None, 0.0, scheme, 0.0, codes=codes)
    with torch.no_grad():
        want = lin(x, w, b)
    for _ in range(8):
        fresh = copy.deepcopy(lin)
        outs, start = [None] * 4, threading.Barrier(4)

        def call(i, fresh=fresh, outs=outs, start=start):
            start.wait()
            with torch.no_grad():
                outs[i] = fresh(x, w, b)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert "GPTQ rounding" in repr(fresh)
        for out in outs:
            torch.testing.assert_close(out, want, rtol=0, atol=0)


def test_the_benchmarks_vnni_emulation_runs_the_gptq_codes():
    """``bench_precision.py quality``'s emulated VNNI row computes every int8 linear by its formula with
    calibration's codes: once packed they live in the packed copy only (it read ``codes``, None by then, and
    measured nearest rounding under the GPTQ label)."""
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
    from bench_precision import _vnni_emulated

    import fastbert.quant.int8 as int8

    _, q = _model()
    _out(q)  # packed
    expected = [h._packed_codes() for h in _hooks(q)]
    seen = []
    formula = int8.reference_int8_linear

    def spy(*args, codes=None, **kwargs):
        seen.append(codes)
        return formula(*args, codes=codes, **kwargs)

    with mock.patch.object(int8, "reference_int8_linear", spy), _vnni_emulated():
        _out(q)
    assert len(seen) == len(expected)
    assert all(c is not None and torch.equal(c, e) for c, e in zip(seen, expected))
