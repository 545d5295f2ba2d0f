"""The kernels are torch custom ops that torch.compile can trace (fake/meta impls, schemas).

Fake-tensor checks need real Triton launches to be skippable: under TRITON_INTERPRET=1,
``wrap_triton`` hands back the interpreted kernel, which then runs on fake tensors, so these
checks are GPU-only; the registration itself is checked everywhere.
"""

from __future__ import annotations

import pytest
import torch
from kernel_checks import requires_cuda

OPS = [
    "attention_varlen",
    "attention_padded",
    "add_layernorm",
    "bias_act",
    "bias_act_layernorm",
    "embed_layernorm",
]


def test_registered():
    import fastbert.kernels  # noqa: F401

    for name in OPS:
        assert hasattr(torch.ops.fastbert, name), name


def test_import_fastbert_does_not_import_triton():
    import subprocess
    import sys

    code = "import sys, fastbert, fastbert.ops; assert 'triton' not in sys.modules, 'triton imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


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
    }


@requires_cuda
@pytest.mark.parametrize("name", OPS)
def test_opcheck(name):
    import fastbert.kernels  # noqa: F401

    args = _samples("cuda")[name]
    torch.library.opcheck(getattr(torch.ops.fastbert, name).default, args)
