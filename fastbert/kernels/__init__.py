"""fastbert's Triton kernels, one module per op family, each registered as ``torch.ops.fastbert.*``.

Importing this package imports triton and registers the custom ops; ``fastbert.core.ops`` imports it
only when the "triton" backend is asked for. The functions below validate on the host, then launch
the kernel directly (on the tensors' device) or, while torch.compile traces, call the custom op;
signatures match ``fastbert.core.ops``. Each op is written once, as its launcher: ``_op.kernel_op`` makes
the custom op and the public function from that one signature. ``FASTBERT_KERNEL_CONFIG`` (``first`` or ``BLOCK_M,BLOCK_N,warps,
stages``) makes the autotuned attention run one config, for test tiers (see ``_compat``).
"""

from .activation import ACTIVATIONS, bias_act, glu
from .attention import attention_padded, attention_varlen
from .embedding import embed_layernorm
from .layernorm import add_layernorm, add_norm_residual, add_rmsnorm, bias_act_layernorm

__all__ = [
    "ACTIVATIONS",
    "add_layernorm",
    "add_norm_residual",
    "add_rmsnorm",
    "attention_padded",
    "attention_varlen",
    "bias_act",
    "bias_act_layernorm",
    "embed_layernorm",
    "glu",
]
