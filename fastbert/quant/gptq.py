"""Error-compensated rounding of int8 weights (GPTQ, Frantar et al. 2022), from calibration inputs.

Rounding every weight to its nearest code makes each output's error ``sum_k x_k * dw_k`` with independent
``dw_k``. GPTQ rounds the input channels one after another and moves each one's rounding error onto the
channels not rounded yet, weighted by how the calibration inputs correlate (the Gram matrix
``H = X^T X`` of the linear's inputs), which minimises ``||X (W_q - W)^T||`` channel by channel: the error
left lies where the inputs have little energy. The codes stay on the same grid (the per-output-channel
scale of :func:`fastbert.quant.int8.quantize_weight`, ``|q| <= qmax``), so the int8 GEMM and its formula
do not change; only which integer each weight gets.

Chosen by measurement on the real MiniLM (embeddings of sentences outside the calibration set, the cost
in calibration time and memory): ``benchmarks/results/code-notes.md``. Only the chosen candidate (SmoothQuant
strength, outlier channels, scheme) is rounded this way: choosing among candidates by their GPTQ error on
the calibration rows, which the Gram matrix was made from, picked worse ones.

As in the paper and its code: channels in order of decreasing ``H_kk`` ("act-order"), 1% of the mean diagonal added
for damping, the inverse's Cholesky factor, lazy updates in blocks of 128 channels. Channels no input
reached (``H_kk == 0``) are rounded to nearest, and pass no error on; the outlier channels computed apart
have zero weights here, so code 0.

The sweep computes in float64 (the paper's code: fp32). In fp32 its sums, split among threads, changed
their last bits with the thread count, and with real inputs (an ill-conditioned Gram matrix) that flipped
codes near a rounding boundary: 3,189 of the MiniLM's 8 M differed between 1 and 2 threads, so a 1-thread
worker (``fastbert serve --devices cpu,cpu``, Ray actors) and a 2-thread process made different int8
models. In float64 those last bits are 2^-29 of fp32's: none differ (measured, code-notes). Pinning the
sweep to one thread instead (``torch.set_num_threads(1)``) would change the thread count of every thread
that starts using torch meanwhile, for good.
"""

from __future__ import annotations

import torch

__all__ = ["compensated_codes", "input_gram"]

_DAMP = 0.01
_BLOCK = 128


def input_gram(gram: torch.Tensor, x_side: torch.Tensor | None) -> torch.Tensor:
    """The Gram matrix of the quantized inputs ``x * x_side`` (K, K) from that of the linear's inputs."""
    if x_side is None:
        return gram
    s = x_side.to(gram.dtype)
    return gram * s[:, None] * s[None, :]


def compensated_codes(
    w: torch.Tensor, scale: torch.Tensor, gram: torch.Tensor, qmax: int
) -> torch.Tensor | None:
    """int8 codes (N, K) for the (N, K) weight ``w`` (smoothing applied) on the grid ``scale`` (N,), with
    each input channel's rounding error carried onto the channels after it (see the module docstring).
    ``gram``: (K, K) ``X^T X`` of the inputs ``w`` multiplies. None where the damped ``gram`` has no Cholesky
    factor (non-finite calibration inputs): the caller rounds to nearest."""
    W = w.detach().to(torch.float64, copy=True)
    n, k = W.shape
    s = scale.detach().double()
    H = gram.detach().to(torch.float64, copy=True)
    if not torch.isfinite(H).all() or not torch.isfinite(W).all():
        return None
    diag = H.diagonal()
    dead = diag <= 0
    H[dead, dead] = 1.0
    perm = torch.argsort(H.diagonal(), descending=True)
    W, H = W[:, perm], H[perm][:, perm]
    H.diagonal().add_(_DAMP * H.diagonal().mean())
    try:
        U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    except torch.linalg.LinAlgError:
        return None
    Q = torch.empty_like(W)
    for b0 in range(0, k, _BLOCK):
        b1 = min(b0 + _BLOCK, k)
        Wb, Ub = W[:, b0:b1].clone(), U[b0:b1, b0:b1]
        err = torch.empty_like(Wb)
        for j in range(b1 - b0):
            w_j = Wb[:, j]
            q = torch.round(w_j / s).clamp_(-qmax, qmax)
            Q[:, b0 + j] = q
            e = torch.sub(w_j, q * s).div_(Ub[j, j])
            Wb[:, j + 1 :].addr_(e, Ub[j, j + 1 :], alpha=-1.0)
            err[:, j] = e
        W[:, b1:].addmm_(err, U[b0:b1, b1:], alpha=-1.0)
    codes = torch.empty((n, k), dtype=torch.int8)
    codes[:, perm] = Q.to(torch.int8)
    return codes
