"""Argument checks and mask resolution for :func:`flashmask.flashmask_attention`.

Everything here reads shapes, dtypes and devices only: no tensor values, so no device-to-host sync.
"""

from __future__ import annotations

import torch

from ._column_mask import ColumnMask, check_form

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def resolve_deterministic(deterministic: bool | None) -> bool:
    """``None`` follows ``torch.use_deterministic_algorithms`` (as PyTorch's own ops do); else the flag."""
    return torch.are_deterministic_algorithms_enabled() if deterministic is None else bool(deterministic)


def _well_formed(query, key, value) -> bool:
    """Every condition of ``check_qkv`` in one expression: the common case costs the host less (the GPU waits on
    this path before the first kernel of every call), and ``check_qkv`` names what is wrong otherwise."""
    if not (isinstance(query, torch.Tensor) and isinstance(key, torch.Tensor) and isinstance(value, torch.Tensor)):
        return False
    q_shape, k_shape, dtype = query.shape, key.shape, query.dtype
    return (
        len(q_shape) == 4
        and len(k_shape) == 4
        and k_shape == value.shape
        and dtype in _FLOAT_DTYPES
        and key.dtype == dtype
        and value.dtype == dtype
        and q_shape[0] == k_shape[0]
        and q_shape[3] == k_shape[3]
        and k_shape[2] != 0
        and q_shape[2] % k_shape[2] == 0
        and key.device == query.device
        and value.device == query.device
    )


def check_qkv(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> None:
    """Check ``query [B, Sq, Hq, D]`` and ``key``/``value`` ``[B, Sk, Hkv, D]``."""
    if not _well_formed(query, key, value):
        _diagnose_qkv(query, key, value)


def _diagnose_qkv(query, key, value) -> None:
    """Raise the error that names the first thing wrong with the inputs (none raised: they are well formed)."""
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape [B, S, H, D], got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{name} must have 4 dimensions [B, S, H, D], got shape {tuple(t.shape)}")
        if t.dtype not in _FLOAT_DTYPES:
            raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {t.dtype}")
    if key.dtype != query.dtype or value.dtype != query.dtype:
        raise TypeError(f"query, key and value must share one dtype, got {query.dtype}, {key.dtype}, {value.dtype}")
    if key.device != query.device or value.device != query.device:
        raise ValueError(
            f"query, key and value must be on one device, got {query.device}, {key.device}, {value.device}"
        )
    if key.shape != value.shape:
        raise ValueError(
            f"key and value must have the same shape [B, Sk, Hkv, D], got {tuple(key.shape)} and {tuple(value.shape)}"
        )
    if key.shape[0] != query.shape[0]:
        raise ValueError(f"query has batch {query.shape[0]} but key has batch {key.shape[0]}")
    if key.shape[3] != query.shape[3]:
        raise ValueError(f"query has head dim {query.shape[3]} but key has head dim {key.shape[3]}")
    num_q_heads, num_kv_heads = query.shape[2], key.shape[2]
    if num_kv_heads == 0 or num_q_heads % num_kv_heads != 0:
        raise ValueError(
            f"the number of query heads ({num_q_heads}) must be a multiple of the number of key/value "
            f"heads ({num_kv_heads})"
        )


def _window_mask(
    window_size: int | tuple[int, int], causal: bool, seqlen_q: int, seqlen_k: int, device: torch.device
) -> torch.Tensor:
    """``startend_row_indices`` for a local window (SPEC section 1): ``[1, 1, Sk, 1 | 2]`` int32."""
    if isinstance(window_size, bool):
        raise TypeError("window_size must be an int or a (left, right) pair of ints, got a bool")
    if isinstance(window_size, int):
        left = right = window_size
    elif (
        isinstance(window_size, (tuple, list))
        and len(window_size) == 2
        and all(isinstance(w, int) and not isinstance(w, bool) for w in window_size)
    ):
        left, right = window_size
    else:
        raise TypeError(f"window_size must be an int or a (left, right) pair of ints, got {window_size!r}")
    if left < 0 or right < 0:
        raise ValueError(f"window_size must be non-negative, got {window_size!r}")
    cols = torch.arange(seqlen_k, device=device, dtype=torch.int64)
    lts = (cols + left + 1).clamp(0, seqlen_q)
    bounds = lts.unsqueeze(-1) if causal else torch.stack([lts, (cols - right).clamp(0, seqlen_q)], dim=-1)
    return bounds.to(torch.int32).view(1, 1, seqlen_k, -1)


def resolve_mask(
    startend_row_indices: torch.Tensor | ColumnMask | None,
    causal: bool,
    window_size: int | tuple[int, int] | None,
    query: torch.Tensor,
    key: torch.Tensor,
) -> tuple[torch.Tensor | None, bool]:
    """Turn the user's mask arguments into ``(startend_row_indices int32 [B|1, Hm, Sk, C] or None, causal)``.

    ``None`` means no column mask (plain full or causal attention).
    """
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    batch, seqlen_q, num_q_heads = query.shape[:3]
    seqlen_k, num_kv_heads = key.shape[1], key.shape[2]
    if window_size is not None:
        if startend_row_indices is not None:
            raise ValueError(
                "window_size cannot be combined with startend_row_indices: it is itself a mask; "
                "build a ColumnMask (flashmask.masks.sliding_window) or pass only one of them"
            )
        return _window_mask(window_size, causal, seqlen_q, seqlen_k, query.device), causal
    if startend_row_indices is None:
        return None, causal
    if isinstance(startend_row_indices, ColumnMask):
        mask = startend_row_indices
        if causal and not mask.causal:
            raise ValueError(
                "causal=True conflicts with the non-causal ColumnMask passed as startend_row_indices: "
                "a ColumnMask carries its own causal flag; drop causal=True or build a causal mask"
            )
        if mask.seqlen_q != seqlen_q:
            raise ValueError(f"the ColumnMask was built for {mask.seqlen_q} query rows but query has {seqlen_q}")
        causal = mask.causal
        indices = mask.startend_row_indices
    else:
        indices = startend_row_indices
        if not isinstance(indices, torch.Tensor):
            raise TypeError(
                "startend_row_indices must be an int32 tensor [B, Hm, Sk, C], a flashmask.ColumnMask or None, "
                f"got {type(indices).__name__}"
            )
        if indices.dtype.is_floating_point or indices.dtype.is_complex or indices.dtype == torch.bool:
            raise TypeError(f"startend_row_indices must hold integers (int32), got {indices.dtype}")
        if indices.dim() != 4:
            raise ValueError(
                f"startend_row_indices must have 4 dimensions [B, Hm, Sk, C], got shape {tuple(indices.shape)}"
            )
        check_form(causal, indices.shape[-1])
    if indices.shape[0] not in (1, batch):
        raise ValueError(
            f"startend_row_indices has batch {indices.shape[0]} but query has batch {batch} "
            "(a mask with batch 1 is shared by all rows)"
        )
    if indices.shape[1] not in (1, num_kv_heads, num_q_heads):
        raise ValueError(
            f"startend_row_indices has {indices.shape[1]} mask heads; expected 1, the number of key/value "
            f"heads ({num_kv_heads}) or the number of query heads ({num_q_heads})"
        )
    if indices.shape[2] != seqlen_k:
        raise ValueError(f"startend_row_indices has {indices.shape[2]} key columns (dim 2) but key has {seqlen_k}")
    if indices.device != query.device:
        indices = indices.to(query.device, non_blocking=True)
    if indices.dtype != torch.int32:
        indices = indices.to(torch.int32)
    return indices, causal
