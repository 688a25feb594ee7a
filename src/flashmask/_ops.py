"""The attention as ``torch.library`` custom ops (``flashmask::fwd``, ``flashmask::bwd``), with autograd.

``torch.compile`` sees each op as one opaque node with a fake (shape-only) implementation, so a model
compiled with ``fullgraph=True`` has no graph break here, and a new mask of the same shape is just new data:
no recompilation. Masks reach the ops as plain tensors (``ColumnMask`` is lowered before).

The ops dispatch to a backend: ``"triton"`` (``flashmask.kernels``) or ``"torch"`` (``_torch_path``).
"""

from __future__ import annotations

import torch

from . import _torch_path
from ._column_mask import Intervals, intervals_of, no_mask_indices


def _intervals(indices: torch.Tensor | None, causal: bool, seqlen_q: int, seqlen_k: int, device) -> Intervals:
    if indices is None:
        indices = no_mask_indices(causal, seqlen_q, seqlen_k, device)
    return intervals_of(indices, causal, seqlen_q)


def _lse_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


@torch.library.custom_op("flashmask::fwd", mutates_args=())
def attention_fwd(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    indices: torch.Tensor | None,
    causal: bool,
    softmax_scale: float,
    backend: str,
    deterministic: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``out [B, Sq, Hq, D]`` and ``lse [B, Hq, Sq]`` (float32; float64 for float64 inputs), contiguous.

    ``deterministic`` does not change the forward; it is recorded for the backward.
    """
    if backend == "torch":
        iv = _intervals(indices, causal, q.shape[1], k.shape[1], q.device)
        # The path upcasts and accumulates in float32 itself; autocast must not push its matmuls back down.
        with torch.autocast(q.device.type, enabled=False):
            return _torch_path.forward(q, k, v, iv, softmax_scale)
    from .kernels import attention_forward

    return attention_forward(q, k, v, indices, causal, softmax_scale)


@attention_fwd.register_fake
def _(q, k, v, indices, causal, softmax_scale, backend, deterministic):
    batch, seqlen_q, heads, _ = q.shape
    return q.new_empty(q.shape), q.new_empty((batch, heads, seqlen_q), dtype=_lse_dtype(q.dtype))


@torch.library.custom_op("flashmask::bwd", mutates_args=())
def attention_bwd(
    dout: torch.Tensor,
    dlse: torch.Tensor | None,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    indices: torch.Tensor | None,
    causal: bool,
    softmax_scale: float,
    backend: str,
    deterministic: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(dq, dk, dv)`` from the gradients of ``out`` and (optionally) ``lse``."""
    if backend == "torch":
        iv = _intervals(indices, causal, q.shape[1], k.shape[1], q.device)
        with torch.autocast(q.device.type, enabled=False):
            return _torch_path.backward(dout, q, k, v, out, lse, iv, softmax_scale, grad_lse=dlse)
    from .kernels import attention_backward

    return attention_backward(dout, q, k, v, out, lse, indices, causal, softmax_scale, dlse, deterministic)


@attention_bwd.register_fake
def _(dout, dlse, q, k, v, out, lse, indices, causal, softmax_scale, backend, deterministic):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _setup_context(ctx, inputs, output) -> None:
    q, k, v, indices, causal, softmax_scale, backend, deterministic = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, indices)
    ctx.causal, ctx.softmax_scale, ctx.backend, ctx.deterministic = causal, softmax_scale, backend, deterministic


def _backward(ctx, dout, dlse):
    q, k, v, out, lse, indices = ctx.saved_tensors
    if dout is None:
        dout = torch.zeros_like(out)
    dq, dk, dv = attention_bwd(
        dout.contiguous(), dlse, q, k, v, out, lse, indices, ctx.causal, ctx.softmax_scale, ctx.backend,
        ctx.deterministic,
    )  # fmt: skip
    return dq, dk, dv, None, None, None, None, None


attention_fwd.register_autograd(_backward, setup_context=_setup_context)
