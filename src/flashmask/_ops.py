"""The attention's autograd: ``torch.library`` custom ops (``flashmask::fwd``, ``flashmask::bwd``) for
``torch.compile``, and an ``autograd.Function`` for eager calls.

``torch.compile`` sees each op as one opaque node with a fake (shape-only) implementation, so a model
compiled with ``fullgraph=True`` has no graph break here, and a new mask of the same shape is just new data:
no recompilation. Eager calls skip the ops' dispatch (about 10 us of host time per call on a fast host, several
times that on a slow one, while the GPU waits for the first kernel) and hand the forward's block bounds to the
backward (with the backward's tile lists, where ``kernels.configs.PLAN_BACKWARD_IN_FORWARD`` has the forward build
them). Both routes run the same ``_forward`` / ``_backward_impl``. Masks reach them as plain tensors
(``ColumnMask`` is lowered before).

The work is dispatched to a backend: ``"triton"`` (``flashmask.kernels``) or ``"torch"`` (``_torch_path``).
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


def _forward(q, k, v, indices, causal: bool, softmax_scale: float, backend: str, keep_bounds: bool = False,
             plan_backward: bool = False):  # fmt: skip
    """``(out, lse, bounds)``: ``bounds`` is the kernels' ``KeyBlockBounds`` when asked for (else ``None``), with
    the backward's tile lists too when ``plan_backward`` (and they qualify)."""
    if backend == "torch":
        iv = _intervals(indices, causal, q.shape[1], k.shape[1], q.device)
        # The path upcasts and accumulates in float32 itself; autocast must not push its matmuls back down.
        with torch.autocast(q.device.type, enabled=False):
            out, lse = _torch_path.forward(q, k, v, iv, softmax_scale)
        return out, lse, None
    from .kernels import attention_forward

    if not keep_bounds:
        out, lse = attention_forward(q, k, v, indices, causal, softmax_scale)
        return out, lse, None
    return attention_forward(q, k, v, indices, causal, softmax_scale, keep_bounds=True, plan_backward=plan_backward)


def _backward_impl(dout, dlse, q, k, v, out, lse, indices, causal, softmax_scale, backend, deterministic,
                   bounds=None):  # fmt: skip
    if backend == "torch":
        iv = _intervals(indices, causal, q.shape[1], k.shape[1], q.device)
        with torch.autocast(q.device.type, enabled=False):
            return _torch_path.backward(dout, q, k, v, out, lse, iv, softmax_scale, grad_lse=dlse)
    from .kernels import attention_backward

    return attention_backward(dout, q, k, v, out, lse, indices, causal, softmax_scale, dlse, deterministic,
                              bounds=bounds)  # fmt: skip


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
    out, lse, _ = _forward(q, k, v, indices, causal, softmax_scale, backend)
    return out, lse


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
    return _backward_impl(dout, dlse, q, k, v, out, lse, indices, causal, softmax_scale, backend, deterministic)


@attention_bwd.register_fake
def _(dout, dlse, q, k, v, out, lse, indices, causal, softmax_scale, backend, deterministic):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _save(ctx, inputs, out, lse) -> None:
    """What both routes' backward needs: the inputs, the outputs and the call's flags."""
    q, k, v, indices, causal, softmax_scale, backend, deterministic = inputs
    # An unused output's gradient stays None rather than a zero tensor the backward would allocate and read.
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(q, k, v, out, lse, indices)
    ctx.causal, ctx.softmax_scale, ctx.backend, ctx.deterministic = causal, softmax_scale, backend, deterministic


def _gradients(ctx, dout, dlse, backward, **extra) -> tuple:
    """``(dq, dk, dv, None x 5)`` from ``backward`` (the op or ``_backward_impl``) on what ``_save`` kept."""
    q, k, v, out, lse, indices = ctx.saved_tensors
    dout = torch.zeros_like(out) if dout is None else dout.contiguous()
    dq, dk, dv = backward(dout, dlse, q, k, v, out, lse, indices, ctx.causal, ctx.softmax_scale, ctx.backend,
                          ctx.deterministic, **extra)  # fmt: skip
    return dq, dk, dv, None, None, None, None, None


def _setup_context(ctx, inputs, output) -> None:
    _save(ctx, inputs, *output)


def _backward(ctx, dout, dlse):
    return _gradients(ctx, dout, dlse, attention_bwd)


attention_fwd.register_autograd(_backward, setup_context=_setup_context)


class _EagerAttention(torch.autograd.Function):
    """The ops' forward and backward without their dispatch; the forward's block bounds go to the backward."""

    @staticmethod
    def forward(ctx, q, k, v, indices, causal, softmax_scale, backend, deterministic):
        keep_bounds = backend == "triton" and any(ctx.needs_input_grad[:3])
        # The deterministic backward runs other tiles than the default one, whose lists the forward can build.
        out, lse, ctx.bounds = _forward(q, k, v, indices, causal, softmax_scale, backend, keep_bounds,
                                        plan_backward=not deterministic)  # fmt: skip
        _save(ctx, (q, k, v, indices, causal, softmax_scale, backend, deterministic), out, lse)
        return out, lse

    @staticmethod
    def backward(ctx, dout, dlse):
        return _gradients(ctx, dout, dlse, _backward_impl, bounds=ctx.bounds)


def attention(q, k, v, indices, causal: bool, softmax_scale: float, backend: str, deterministic: bool):
    """``(out, lse)`` with autograd: the custom op under ``torch.compile``, the ``autograd.Function`` eagerly."""
    if torch.compiler.is_compiling():
        return attention_fwd(q, k, v, indices, causal, softmax_scale, backend, deterministic)
    return _EagerAttention.apply(q, k, v, indices, causal, softmax_scale, backend, deterministic)
