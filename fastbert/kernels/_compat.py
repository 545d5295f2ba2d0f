"""Everything in fastbert's kernels that depends on the Triton version, in one place.

Supported: triton >= 3.6. Kernels import the math helpers below instead of reaching into
``triton.language.extra.*`` themselves, so an API move is fixed here once.

- ``erf(x)``: fp32 erf, ``tl.erf`` where the language has it, else libdevice's.
- ``tanh(x)``: fp32 tanh from ``exp`` (libdevice ``tanh`` has no interpreter implementation in
  triton 3.9); exact +-1 beyond |x| = 20, absolute error ~1e-7 near 0.
- ``INTERPRET``: True when kernels run under ``TRITON_INTERPRET=1`` (CPU tensors).
- ``cast_out(x, dtype)``: the one rounding of an fp32 result to the output dtype. Round-to-nearest-
  even everywhere; under the interpreter (triton 3.9 truncates fp32 -> bf16 there, even with
  ``fp_downcast_rounding="rtne"``) bf16 is rounded by hand first, on a GPU it is a plain ``.to``.
- ``autotune(configs, key)``: ``triton.autotune`` on a GPU; the first config only under the
  interpreter (benchmarking configs there would only cost time).
"""

from __future__ import annotations

import os

import triton
import triton.language as tl

TRITON_VERSION: tuple[int, int] = tuple(int(p) for p in triton.__version__.split(".")[:2])  # type: ignore[assignment]
INTERPRET: bool = os.environ.get("TRITON_INTERPRET", "0") == "1"

if hasattr(tl, "erf"):

    @triton.jit
    def erf(x):
        return tl.erf(x)

else:  # pragma: no cover - older layouts of the libdevice module
    try:
        from triton.language.extra import libdevice as _libdevice
    except ImportError:
        from triton.language.extra.cuda import libdevice as _libdevice

    @triton.jit
    def erf(x):
        return _libdevice.erf(x)


@triton.jit
def tanh(x):
    x = tl.minimum(tl.maximum(x, -20.0), 20.0)  # tanh(+-20) is +-1 in fp32; keeps exp finite
    return 1.0 - 2.0 / (tl.exp(2.0 * x) + 1.0)


_FIX_BF16_ROUNDING = tl.constexpr(INTERPRET)


@triton.jit
def cast_out(x, dtype: tl.constexpr):
    if _FIX_BF16_ROUNDING and dtype == tl.bfloat16:
        bits = x.to(tl.uint32, bitcast=True)
        bits = bits + 0x7FFF + ((bits >> 16) & 1)  # round half to even on the kept 16 bits
        x = ((bits >> 16) << 16).to(tl.float32, bitcast=True)  # exact in bf16 now
    return x.to(dtype)


def autotune(configs: list[triton.Config], key: list[str]):
    """``triton.autotune`` over ``configs`` on a GPU, over ``configs[:1]`` under the interpreter."""
    return triton.autotune(configs=configs[:1] if INTERPRET else configs, key=key)
