"""Attention over one part of the keys, with float32 results, for callers that merge parts.

Context parallelism splits each row's keys into parts (keys held locally, keys received) and merges the
parts' outputs by their log-sum-exps, and their key gradients by summing over ranks. Rounding every part to
bf16 before merging would add one rounding per part; these helpers return float32 (float64 for float64
inputs) so the merged result is rounded once, as the single-call result is. Plain functions over the same
backends as the ``flashmask::fwd`` / ``flashmask::bwd`` ops; no autograd (the caller owns it).
"""

from __future__ import annotations

import torch

from ._ops import attention_bwd, attention_fwd


def _wide(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def partial_forward(q, k, v, indices, causal: bool, softmax_scale: float, backend: str):
    """``out [B, Sq, Hq, D]`` (float32, or float64) and ``lse [B, Hq, Sq]`` of attention to these keys only."""
    if backend == "triton":
        from .kernels import attention_forward

        out = torch.empty(q.shape, dtype=_wide(q.dtype), device=q.device)
        return attention_forward(q, k, v, indices, causal, softmax_scale, out=out)
    # The PyTorch path accumulates in float32 and returns the input dtype; exact for float32/float64 inputs.
    out, lse = attention_fwd(q, k, v, indices, causal, softmax_scale, backend, False)
    return out.to(_wide(out.dtype)), lse


def partial_backward(dout, q, k, v, out, lse, indices, causal: bool, softmax_scale: float, backend: str,
                     deterministic: bool):  # fmt: skip
    """``(dq, dk, dv)`` (float32, or float64) of this part, given the *merged* ``out`` and ``lse``.

    With the merged row statistics, ``P = exp(S - lse)`` and ``rowsum(dO * O)`` are those of the whole row,
    so the parts' gradients add up to the gradient of the merged attention.
    """
    if backend == "triton":
        from .kernels import attention_backward

        grads = tuple(torch.empty(t.shape, dtype=_wide(t.dtype), device=t.device) for t in (q, k, v))
        return attention_backward(
            dout, q, k, v, out, lse, indices, causal, softmax_scale, None, deterministic, grads=grads
        )
    grads = attention_bwd(dout, None, q, k, v, out, lse, indices, causal, softmax_scale, backend, deterministic)
    return tuple(g.to(_wide(g.dtype)) for g in grads)
