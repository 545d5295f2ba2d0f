"""Everything in fastbert's kernels that depends on the Triton version or the launch context, in one place.

Supported: triton >= 3.6. Kernels import the math helpers below instead of reaching into
``triton.language.extra.*`` themselves, so an API move is fixed here once.

- ``erf(x)``: fp32 erf, ``tl.erf`` where the language has it, else libdevice's.
- ``tanh(x)``: fp32 tanh from ``exp`` (libdevice ``tanh`` has no interpreter implementation in
  triton 3.9); exact +-1 beyond |x| = 20, absolute error ~1e-7 near 0.
- ``div_rn(x, y)``, ``sqrt_rn(x)``: IEEE round-to-nearest division and square root (a plain ``/``
  on fp32 compiles to ``div.full.f32`` and ``tl.sqrt`` to ``sqrt.approx.f32``, each off by up to
  two ulps): the fp32 paths use these.
- ``INTERPRET``: True when kernels run under ``TRITON_INTERPRET=1`` (CPU tensors).
- ``interpreter_refusal()``: why this triton's interpreter cannot run the kernels here, or None. Triton
  3.6's interpreter turns a loop bound computed in the kernel into a Python int with ``int(array)`` on a
  one-element array, which numpy >= 2.4 refuses; triton 3.7 fixed it. Checked at every launch under the
  interpreter, so the error names the versions instead of the interpreter's ``TypeError``. With older
  numpy the same conversion works and warns (a ``DeprecationWarning`` from numpy, raised inside the
  interpreter): ``launch`` silences that one warning there. On a GPU nothing is interpreted and triton
  3.6 is fine.
- ``cast_out(x, dtype)``: the one rounding of an fp32 result to the output dtype. Round-to-nearest-
  even everywhere; under the interpreter (triton 3.9 truncates fp32 -> bf16 there, even with
  ``fp_downcast_rounding="rtne"``) bf16 is rounded by hand first, on a GPU it is a plain ``.to``.
- ``autotune(configs, key, prune)``: ``triton.autotune`` with an early pruning function.
- ``forced_config()``: the config that ``FASTBERT_KERNEL_CONFIG`` forces on autotuned kernels
  (``first``: the first config left after pruning; ``BLOCK_M,BLOCK_N,num_warps,num_stages``: that
  one), for test tiers that must not autotune. None when unset.
- ``device_guard(device)``: makes ``device`` the current CUDA device for a launch (Triton launches
  on the current device); a no-op context for CPU tensors and when it already is current.
- ``launch(kernel, grid, device=, wrap=, **kwargs)``: the one place every kernel is launched, every
  argument by keyword: ``kernel[grid](**kwargs)`` under ``device_guard``; ``wrap=True`` (inside a
  custom op) goes through ``torch.library.wrap_triton`` so that torch.compile can trace the launch.
  Not under the interpreter: nothing is traced there (torch.compile over the ops needs CUDA; torch
  2.13's ``wrap_triton`` hands the interpreted kernel back as it is, torch 2.10 and 2.11 refuse it).
"""

from __future__ import annotations

import contextlib
import os
import warnings

import torch
import triton
import triton.language as tl


def _major_minor(version: str) -> tuple[int, int]:
    return tuple(int(p) for p in version.split(".")[:2])  # type: ignore[return-value]


TRITON_VERSION: tuple[int, int] = _major_minor(triton.__version__)
INTERPRET: bool = os.environ.get("TRITON_INTERPRET", "0") == "1"
CONFIG_ENV = "FASTBERT_KERNEL_CONFIG"

try:
    from triton.language.extra import libdevice as _libdevice
except ImportError:  # pragma: no cover - older layout of the libdevice module
    from triton.language.extra.cuda import libdevice as _libdevice

if hasattr(tl, "erf"):

    @triton.jit
    def erf(x):
        return tl.erf(x)

else:  # pragma: no cover - languages without tl.erf

    @triton.jit
    def erf(x):
        return _libdevice.erf(x)


if hasattr(tl, "div_rn") and hasattr(tl, "sqrt_rn"):

    @triton.jit
    def div_rn(x, y):
        return tl.div_rn(x, y)

    @triton.jit
    def sqrt_rn(x):
        return tl.sqrt_rn(x)

else:  # pragma: no cover - languages without the precise helpers

    @triton.jit
    def div_rn(x, y):
        return _libdevice.div_rn(x, y)

    @triton.jit
    def sqrt_rn(x):
        return _libdevice.sqrt_rn(x)


@triton.jit
def tanh(x):
    x = tl.minimum(tl.maximum(x, -20.0), 20.0)  # tanh(+-20) is +-1 in fp32; keeps exp finite
    return 1.0 - 2.0 / (tl.exp(2.0 * x) + 1.0)


# Two definitions rather than one reading a constexpr global: Triton compares every global a kernel reads with
# its value at compile time on each launch (a Python ``__ne__`` of ``tl.constexpr``, microseconds a launch).
if INTERPRET:

    @triton.jit
    def cast_out(x, dtype: tl.constexpr):
        if dtype == tl.bfloat16:
            bits = x.to(tl.uint32, bitcast=True)
            bits = bits + 0x7FFF + ((bits >> 16) & 1)  # round half to even on the kept 16 bits
            # exact in bf16 now. A NaN becomes the quiet NaN 0x7FC00000: the rounding add carries NaNs with
            # low mantissa bits into -0.0 or inf, and so does the interpreter's own conversion to bf16
            x = tl.where(x != x, float("nan"), ((bits >> 16) << 16).to(tl.float32, bitcast=True))
        return x.to(dtype)

else:

    @triton.jit
    def cast_out(x, dtype: tl.constexpr):
        return x.to(dtype)


def forced_config() -> str | tuple[int, int, int, int] | None:
    """``FASTBERT_KERNEL_CONFIG`` parsed: None, ``"first"``, or (BLOCK_M, BLOCK_N, num_warps, num_stages)."""
    raw = os.environ.get(CONFIG_ENV, "").strip()
    if not raw:
        return None
    if raw == "first":
        return "first"
    try:
        values = tuple(int(p) for p in raw.split(","))
    except ValueError:
        values = ()
    pow2 = all(v > 0 and v & (v - 1) == 0 for v in values[:3])
    if len(values) != 4 or min(values) < 1 or not pow2 or min(values[:2]) < 16:
        raise ValueError(
            f"{CONFIG_ENV} must be 'first' or 'BLOCK_M,BLOCK_N,num_warps,num_stages' (BLOCK_M and BLOCK_N "
            f"powers of two >= 16 (tl.dot's least tile), num_warps a power of two, num_stages >= 1), got {raw!r}"
        )
    return values  # type: ignore[return-value]


def autotune(configs: list[triton.Config], key: list[str], prune):
    """``triton.autotune`` over ``configs``, pruned on each new key by ``prune(configs, named_args, **kwargs)``."""
    return triton.autotune(configs=configs, key=key, prune_configs_by={"early_config_prune": prune})


def cdiv(a: int, b: int) -> int:
    """``ceil(a / b)`` of host integers. ``triton.cdiv`` does the same through a ConstexprFunction (triton 3.6
    and later), about 4 us a call on the host: launches are host-bound on a fast GPU."""
    return -(-a // b)


def next_power_of_2(n: int) -> int:
    """The smallest power of two >= ``n`` (1 for n <= 1), as ``triton.next_power_of_2`` without its ~4 us
    wrapper on the host."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


_NO_SWITCH = contextlib.nullcontext()  # stateless: one serves every launch


def device_guard(device: torch.device):
    """A context making ``device`` current for a Triton launch; a no-op one when nothing needs switching (the
    CPU, an unindexed or the current device, a machine with one GPU: its ``current_device`` costs a launch
    microseconds it does not need)."""
    if (
        device.type != "cuda"
        or device.index is None
        or torch.cuda.device_count() <= 1
        or device.index == torch.cuda.current_device()
    ):
        return _NO_SWITCH
    return torch.cuda.device(device.index)


def interpreter_refusal(
    triton_version: tuple[int, int] = TRITON_VERSION, numpy_version: tuple[int, int] | None = None
) -> str | None:
    """Why the interpreter of this triton cannot run fastbert's kernels beside this numpy, or None."""
    if triton_version >= (3, 7):
        return None
    if numpy_version is None:
        import numpy

        numpy_version = _major_minor(numpy.__version__)
    if numpy_version < (2, 4):
        return None
    return (
        f"TRITON_INTERPRET=1 with triton {'.'.join(map(str, triton_version))} and numpy "
        f"{'.'.join(map(str, numpy_version))}: "
        "triton < 3.7's interpreter converts the kernels' loop bounds with int() on a one-element array, "
        "which numpy >= 2.4 refuses. Install triton >= 3.7 or numpy < 2.4 to run the kernels on the CPU "
        "(on a GPU, triton 3.6 is fine)"
    )


_INTERPRETER_REFUSAL = interpreter_refusal() if INTERPRET else None
#: triton < 3.7's interpreter beside numpy < 2.4: its int() of the loop bounds works, and numpy warns
_QUIET_LOOP_BOUNDS = INTERPRET and TRITON_VERSION < (3, 7)


def launch(kernel, grid, *, device: torch.device, wrap: bool, **kwargs) -> None:
    """``kernel[grid](**kwargs)`` on ``device`` (kernel arguments, constexprs and launch options all by
    keyword); through ``wrap_triton`` when ``wrap`` (inside a custom op) and not interpreted."""
    if _INTERPRETER_REFUSAL is not None:
        raise RuntimeError(_INTERPRETER_REFUSAL)
    if not INTERPRET and device.type != "cuda":
        raise ValueError(
            f"fastbert's Triton kernels take CUDA tensors, these are on {device} (CPU tensors run only under "
            "TRITON_INTERPRET=1, set before triton is imported)"
        )
    if wrap and not INTERPRET:
        from torch.library import wrap_triton

        kernel = wrap_triton(kernel)
    with device_guard(device):
        if not _QUIET_LOOP_BOUNDS:
            kernel[grid](**kwargs)
            return
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="Conversion of an array with ndim > 0", category=DeprecationWarning
            )
            kernel[grid](**kwargs)
