"""The kernels are torch custom ops that torch.compile can trace (fake/meta impls, schemas), and the
public kernel functions reach the launchers directly outside torch.compile (the custom-op dispatch
costs tens of microseconds a call), each launch on the tensors' device.

Fake-tensor checks need real Triton launches to be skippable: under TRITON_INTERPRET=1,
``wrap_triton`` hands back the interpreted kernel, which then runs on fake tensors, so these
checks are GPU-only; the registration, the dispatch choice and the device guard are checked everywhere.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from kernel_checks import DEVICE, INTERPRET, requires_cuda
from torch.utils._python_dispatch import TorchDispatchMode

OPS = [
    "attention_varlen",
    "attention_padded",
    "add_layernorm",
    "bias_act",
    "bias_act_layernorm",
    "embed_layernorm",
    "glu",
    "add_rmsnorm",
    "add_norm_residual",
]


def test_registered():
    import fastbert.kernels  # noqa: F401

    for name in OPS:
        assert hasattr(torch.ops.fastbert, name), name


def test_import_fastbert_does_not_import_triton():
    import subprocess
    import sys

    code = "import sys, fastbert, fastbert.core.ops; assert 'triton' not in sys.modules, 'triton imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_kernels_does_not_import_inductor():
    """Registering the ops does not import torch._inductor (~3 s on a 2-core machine): triton_op's source scan
    for launched kernels, which imports it, has no source to read in the generated op implementations."""
    import subprocess
    import sys

    code = (
        "import sys, fastbert.kernels, torch._library.triton as t; "
        "assert 'torch._inductor' not in sys.modules, 'torch._inductor imported'; "
        "assert all(t.get_triton_kernels_for_op('fastbert::' + n) == [] for n in sys.argv[1:])"
    )
    subprocess.run([sys.executable, "-c", code, *OPS], check=True)


def _samples(dev):
    mk = lambda *s, dtype=torch.float16: torch.randn(*s, dtype=dtype, device=dev)
    cu = torch.tensor([0, 5, 12], dtype=torch.int32, device=dev)
    qkv = mk(12, 3, 2, 64)
    q, k, v = qkv.unbind(1)
    x, b, w, lb = mk(5, 768), mk(768), mk(768), mk(768)
    ids = torch.randint(0, 50, (7,), device=dev)
    return {
        "attention_varlen": (q, k, v, cu, cu, 7, 7, 0.125, False),
        "attention_padded": (
            q[None],
            k[None],
            v[None],
            torch.ones(1, 12, dtype=torch.uint8, device=dev),
            0.125,
            True,
        ),
        "add_layernorm": (x, mk(5, 768), b, w, lb, 1e-12),
        "bias_act": (x, b, "gelu"),
        "bias_act_layernorm": (x, b, w, lb, 1e-12, "gelu_new"),
        "embed_layernorm": (ids, None, None, mk(50, 768), mk(9, 768), mk(2, 768), w, lb, 1e-12),
        "glu": (mk(5, 2 * 768), None, "gelu"),
        "add_rmsnorm": (x, mk(5, 768), b, w, 1e-6),
        "add_norm_residual": (x, mk(5, 768), b, w, None, 1e-6, False),
    }


@requires_cuda
@pytest.mark.parametrize("name", OPS)
def test_opcheck(name):
    import fastbert.kernels  # noqa: F401

    args = _samples("cuda")[name]
    torch.library.opcheck(getattr(torch.ops.fastbert, name).default, args)


def _public_calls(dev, requires_grad: bool = False):
    """name -> zero-argument call of the public kernel function with valid sample inputs (their float
    tensors leaves that require grad when asked)."""
    from fastbert import kernels

    mk = lambda *s: torch.randn(*s, dtype=torch.float32, device=dev).requires_grad_(requires_grad)
    cu = torch.tensor([0, 5, 12], dtype=torch.int32, device=dev)
    q, k, v = mk(12, 3, 2, 32).unbind(1)
    x, r, b, w, lb = mk(5, 48), mk(5, 48), mk(48), mk(48), mk(48)
    ids = torch.randint(0, 50, (7,), device=dev)
    mask = torch.ones(1, 12, dtype=torch.bool, device=dev)
    lens = torch.tensor([9], dtype=torch.int32, device=dev)
    tables = (mk(50, 48), mk(9, 48), mk(2, 48), w, lb)
    xg = mk(5, 96)
    return {
        "attention_varlen": lambda: kernels.attention_varlen(q, k, v, cu, cu, 7, 7, 0.125, validate=False),
        "attention_padded": lambda: kernels.attention_padded(
            q[None], k[None], v[None], mask, 0.125, True, lens
        ),
        "add_layernorm": lambda: kernels.add_layernorm(x, r, b, w, lb, 1e-12),
        "bias_act": lambda: kernels.bias_act(x, b, "gelu"),
        "bias_act_layernorm": lambda: kernels.bias_act_layernorm(x, b, w, lb, 1e-12, "gelu_new"),
        "embed_layernorm": lambda: kernels.embed_layernorm(ids, None, None, *tables, 1e-12, validate=False),
        "glu": lambda: kernels.glu(xg, None, "gelu"),
        "add_rmsnorm": lambda: kernels.add_rmsnorm(x, r, b, w, 1e-6),
        "add_norm_residual": lambda: kernels.add_norm_residual(x, r, b, w, None, 1e-6),
    }


class _RecordOps(TorchDispatchMode):
    """Names of the ops that reach the dispatcher's Python key (custom ops included)."""

    def __init__(self):
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name", OPS)
def test_direct_launch_outside_compile(name):
    """Outside torch.compile the public function launches the kernel without the custom op; the op,
    called through ``torch.ops.fastbert``, still works and gives the same output."""
    calls = _public_calls(DEVICE)
    with _RecordOps() as rec:
        out = calls[name]()
    assert not [n for n in rec.names if n.startswith("fastbert.")], rec.names
    with _RecordOps() as rec, _compiling():
        out_op = calls[name]()
    assert f"fastbert.{name}.default" in rec.names, rec.names
    torch.testing.assert_close(out_op, out, rtol=0, atol=0)


@pytest.mark.parametrize("name", OPS)
def test_inputs_that_need_grad_are_refused(name):
    """The kernels have no autograd formula: an input that requires grad is refused by name (the output
    would carry no grad_fn and the gradient would be lost quietly); under no_grad the same call runs."""
    calls = _public_calls(DEVICE, requires_grad=True)
    with pytest.raises(RuntimeError, match=rf"fastbert.kernels.{name} is forward-only .*require"):
        calls[name]()
    with torch.no_grad():
        out = calls[name]()
    assert all(t.grad_fn is None for t in (out if isinstance(out, tuple) else (out,)))


@contextlib.contextmanager
def _compiling():
    """``torch.compiler.is_compiling()`` answers True, as while dynamo traces."""
    original = torch.compiler.is_compiling
    torch.compiler.is_compiling = lambda: True
    try:
        yield
    finally:
        torch.compiler.is_compiling = original


def test_device_guard_switches_only_when_needed(monkeypatch):
    from fastbert.kernels import _compat

    entered = []

    class FakeDevice:
        def __init__(self, index):
            self.index = index

        def __enter__(self):
            entered.append(self.index)

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "device", FakeDevice)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with _compat.device_guard(torch.device("cuda", 1)):
        pass
    assert entered == [1], "a tensor on cuda:1 while cuda:0 is current: the launch must switch to cuda:1"
    for dev in (torch.device("cuda", 0), torch.device("cuda"), torch.device("cpu")):
        with _compat.device_guard(dev):
            pass
    assert entered == [1], "no switch for the current device, an unindexed cuda device or the CPU"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1 / 0)  # not even asked
    with _compat.device_guard(torch.device("cuda", 1)):
        pass
    assert entered == [1], "one GPU: nothing to switch to"


@pytest.mark.parametrize("name", OPS)
def test_every_launch_guarded_with_the_tensors_device(name, monkeypatch):
    from fastbert.kernels import _compat

    seen = []
    real = _compat.device_guard
    monkeypatch.setattr(_compat, "device_guard", lambda dev: seen.append(dev) or real(dev))
    _public_calls(DEVICE)[name]()
    assert seen == [torch.empty(0, device=DEVICE).device], seen  # cuda:0 on a GPU, not bare cuda


def test_interpreter_refusal_names_the_versions():
    """triton < 3.7's interpreter turns loop bounds into ints with int() on one-element arrays, which numpy
    >= 2.4 refuses: refused with both versions named; triton >= 3.7 or numpy < 2.4 run."""
    from fastbert.kernels import _compat

    why = _compat.interpreter_refusal((3, 6), (2, 4))
    assert why is not None and "triton 3.6 and numpy 2.4" in why and "triton >= 3.7" in why, why
    assert _compat.interpreter_refusal((3, 6), (2, 3)) is None
    assert _compat.interpreter_refusal((3, 7), (2, 5)) is None
    assert _compat.interpreter_refusal((4, 0), (3, 0)) is None


def test_launch_refused_before_the_kernel_runs(monkeypatch):
    from fastbert.kernels import _compat

    class Kernel:
        def __getitem__(self, grid):
            raise AssertionError("the kernel was launched")

    monkeypatch.setattr(_compat, "_INTERPRETER_REFUSAL", "triton 3.6's interpreter beside numpy 2.4")
    with pytest.raises(RuntimeError, match="numpy 2.4"):
        _compat.launch(Kernel(), (1,), device=torch.device("cpu"), wrap=False)


@pytest.mark.skipif(not INTERPRET, reason="checks the interpreter's launch path (CPU tensors)")
def test_op_path_under_the_interpreter_launches_the_kernel_unwrapped(monkeypatch):
    """Inside the custom op under the interpreter the kernel is launched as it is: nothing traces there, and
    torch 2.10 and 2.11's wrap_triton refuse interpreted kernels."""
    import torch.library

    monkeypatch.setattr(torch.library, "wrap_triton", _refuse_wrap)
    with _compiling():
        _public_calls(DEVICE)["add_layernorm"]()


def _refuse_wrap(kernel):
    raise RuntimeError("wrap_triton only works on functions annotated with triton.jit or triton.autotune")


@pytest.mark.skipif(INTERPRET, reason="the interpreter runs the kernels on CPU tensors")
@pytest.mark.parametrize("name", OPS)
def test_cpu_tensors_refused_outside_the_interpreter(name):
    """On a GPU machine (no interpreter) CPU tensors get a ValueError naming the device before any launch,
    not Triton's 'Pointer argument cannot be accessed'."""
    with pytest.raises(ValueError, match="take CUDA tensors, these are on cpu"):
        _public_calls("cpu")[name]()


def test_scalar_checks_trace_without_breaks_or_specialising():
    """The kernels' scalar checks run while torch.compile traces a call: with dynamic shapes they trace into
    one graph for every value of their float and int options (math.isfinite on a traced float broke it)."""
    from torch._dynamo.testing import CompileCounter

    from fastbert.kernels._op import check_count, check_float

    counter = CompileCounter()

    @torch.compile(backend=counter, dynamic=True, fullgraph=True)
    def scaled(x, eps, n):
        return x * check_count("n", n) + check_float("eps", eps, minimum=0.0)

    for eps, n in ((1e-5, 3), (1e-5, 5), (1e-12, 7), (0.5, 11)):
        torch.testing.assert_close(scaled(torch.ones(4), eps, n), torch.full((4,), n + eps))
    assert counter.frame_count == 1


@pytest.mark.parametrize("name", OPS)
def test_sparse_and_nested_tensors_are_refused_by_name(name, monkeypatch):
    """Every tensor argument of every public kernel function: a sparse or nested tensor failed deep inside
    with torch's words naming nothing ("Could not run 'aten::min' with arguments from the 'SparseCPU'
    backend", "Cannot access storage of SparseTensorImpl" at the launch, "NestedTensorImpl doesn't support
    sizes. Please file an issue"); it is refused by name before anything runs."""
    import inspect

    from fastbert import kernels
    from fastbert.kernels import _compat

    monkeypatch.setattr(_compat, "launch", lambda *a, **k: pytest.fail("a kernel ran"))
    fn = getattr(kernels, name)
    params = list(inspect.signature(fn).parameters)
    args = _samples("cpu")[name]
    for i, t in enumerate(args):
        if not isinstance(t, torch.Tensor):
            continue
        for odd, kind in (
            (t.to_sparse(), "torch.sparse_coo"),
            (torch.nested.nested_tensor(list(t)), "nested"),
        ):
            with pytest.raises(ValueError, match=f"fastbert.kernels.{name}: {params[i]} is a {kind} tensor"):
                fn(*args[:i], odd, *args[i + 1 :])
