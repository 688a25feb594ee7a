"""``flashmask_attention``: the public entry point (validation, mask lowering, backend choice).

The work happens in ``_ops`` (autograd and ``torch.compile`` support live there).
"""

from __future__ import annotations

import importlib.util
import math
import os
from typing import Literal

import torch

from ._column_mask import ColumnMask
from ._ops import attention
from ._validation import check_qkv, resolve_deterministic, resolve_mask

Backend = Literal["torch", "triton"]

# Looked up once: an import inside the traced function would break torch.compile's graph.
_HAS_TRITON = importlib.util.find_spec("triton") is not None

__all__ = ["flashmask_attention"]


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _pick_backend(backend: str | None, query: torch.Tensor) -> str:
    if backend is None:
        # The kernels are built and checked for fp16/bf16; fp32/fp64 go to the exact PyTorch path.
        use_kernels = query.is_cuda and _HAS_TRITON and query.dtype in (torch.float16, torch.bfloat16)
        return "triton" if use_kernels else "torch"
    if backend not in ("torch", "triton"):
        raise ValueError(f"backend must be None, 'torch' or 'triton', got {backend!r}")
    if backend == "triton":
        if not _HAS_TRITON:
            raise RuntimeError("backend='triton' needs the triton package: pip install triton")
        if not query.is_cuda and not _interpreting():
            raise ValueError(
                f"backend='triton' needs CUDA tensors (query is on {query.device}); "
                "on CPU use backend='torch' or set TRITON_INTERPRET=1 to run the kernels in Triton's interpreter"
            )
    return backend


def _autocast(*tensors):
    """Under ``torch.autocast``, run in its lower precision, as SDPA does.

    Inside autocast regions the projections come out in the autocast dtype but RoPE often returns float32
    queries and keys, so the three inputs would otherwise disagree.
    """
    first = tensors[0]
    if not isinstance(first, torch.Tensor) or first.device.type not in ("cuda", "cpu"):
        return tensors
    if not torch.is_autocast_enabled(first.device.type):
        return tensors
    dtype = torch.get_autocast_dtype(first.device.type)
    return tuple(
        t.to(dtype) if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != torch.float64 else t
        for t in tensors
    )


def flashmask_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    startend_row_indices: torch.Tensor | ColumnMask | None = None,
    *,
    causal: bool = False,
    window_size: int | tuple[int, int] | None = None,
    softmax_scale: float | None = None,
    return_lse: bool = False,
    deterministic: bool | None = None,
    backend: Backend | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Attention under a column-wise sparse mask (FlashMask).

    Args:
        query: ``[B, Sq, Hq, D]``, float16 / bfloat16 (GPU kernels), float32 or float64 (PyTorch path).
        key, value: ``[B, Sk, Hkv, D]`` with ``Hq % Hkv == 0`` (GQA/MQA; K/V are never repeated in memory).
        startend_row_indices: int32 ``[B or 1, Hm, Sk, C]`` with ``Hm`` in ``{1, Hkv, Hq}`` read as in
            SPEC section 1 (``C`` and ``causal`` together give the meaning), or a :class:`ColumnMask`
            (which carries its own ``causal``), or ``None`` for plain full / causal attention (prefer it to
            ``masks.full`` / ``masks.causal``: the kernels without a column mask load no intervals).
        causal: hide the causal triangle, aligned bottom-right when ``Sq != Sk``.
        window_size: ``w`` or ``(left, right)``: query ``i`` sees keys ``[i - left, i + right]`` (with
            ``causal``, ``[i - left, i]``). Sugar for a mask; cannot be combined with one.
        softmax_scale: defaults to ``1 / sqrt(D)``.
        return_lse: also return the log-sum-exp of each row (natural log).
        deterministic: bit-identical gradients from run to run (GPU kernels; the PyTorch path always is). The
            default GPU backward at D=128 and D=64 on Hopper adds dQ by bulk fp32 reduce-adds in varying order;
            with this flag it runs the Triton kernels instead (about 1.15x-1.3x the backward time). ``None`` (the
            default) follows ``torch.use_deterministic_algorithms``.
        backend: ``None`` picks the Triton kernels for fp16/bf16 CUDA tensors and the PyTorch path otherwise;
            ``"torch"`` or ``"triton"`` forces one (``"triton"`` on CPU tensors needs ``TRITON_INTERPRET=1``).

    Returns:
        ``out`` ``[B, Sq, Hq, D]`` in the input dtype; with ``return_lse`` also ``lse`` float32 ``[B, Hq, Sq]``.
        A row that sees no key gets output 0, ``lse = -inf`` and zero gradients.
    """
    query, key, value = _autocast(query, key, value)
    check_qkv(query, key, value)
    indices, causal = resolve_mask(startend_row_indices, causal, window_size, query, key)
    backend = _pick_backend(backend, query)
    if softmax_scale is None:
        softmax_scale = 1.0 / math.sqrt(query.shape[-1])
    elif not isinstance(softmax_scale, (int, float)) or isinstance(softmax_scale, bool):
        raise TypeError(f"softmax_scale must be a float, got {type(softmax_scale).__name__}")
    elif not softmax_scale > 0:
        # The kernels fold the scale into the running max, which assumes it is positive.
        raise ValueError(f"softmax_scale must be positive, got {softmax_scale}")
    out, lse = attention(query, key, value, indices, causal, float(softmax_scale), backend,
                         resolve_deterministic(deterministic))  # fmt: skip
    return (out, lse) if return_lse else out
