"""A small dense reference for tests: materialises the ``Sq x Sk`` mask and scores, in any float dtype.

It shares nothing with the fast paths but the mask's meaning (``ColumnMask.to_dense``), and is differentiable
through autograd. Use it at small sizes only.
"""

from __future__ import annotations

import math

import torch

from ._column_mask import ColumnMask, no_mask_indices
from ._validation import check_qkv, resolve_mask

__all__ = ["reference_attention"]


def reference_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    startend_row_indices: torch.Tensor | ColumnMask | None = None,
    *,
    causal: bool = False,
    window_size: int | tuple[int, int] | None = None,
    softmax_scale: float | None = None,
    compute_dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense attention with the same arguments as :func:`flashmask.flashmask_attention`.

    Returns ``(out [B, Sq, Hq, D], lse [B, Hq, Sq])`` in ``compute_dtype`` (inputs are upcast first).
    Rows that see no key get output 0 and ``lse = -inf``.
    """
    check_qkv(query, key, value)
    indices, causal = resolve_mask(startend_row_indices, causal, window_size, query, key)
    _batch, seqlen_q, num_q_heads, head_dim = query.shape
    seqlen_k, num_kv_heads = key.shape[1], key.shape[2]
    scale = 1.0 / math.sqrt(head_dim) if softmax_scale is None else softmax_scale
    if indices is None:
        indices = no_mask_indices(causal, seqlen_q, seqlen_k, query.device)
    visible = ColumnMask(indices, causal, seqlen_q).to_dense()  # [B|1, Hm, Sq, Sk]
    visible = visible.repeat_interleave(num_q_heads // visible.shape[1], dim=1)
    groups = num_q_heads // num_kv_heads
    q = query.to(compute_dtype).transpose(1, 2)
    k = key.to(compute_dtype).transpose(1, 2).repeat_interleave(groups, dim=1)
    v = value.to(compute_dtype).transpose(1, 2).repeat_interleave(groups, dim=1)
    scores = (q @ k.transpose(-1, -2)) * scale
    scores = scores.masked_fill(~visible, float("-inf"))
    row_max = scores.amax(-1, keepdim=True).detach()
    row_max = torch.where(torch.isinf(row_max), torch.zeros_like(row_max), row_max)
    probs = torch.exp(scores - row_max)
    row_sum = probs.sum(-1, keepdim=True)
    seen = row_sum > 0
    safe_sum = torch.where(seen, row_sum, torch.ones_like(row_sum))
    out = torch.where(seen, (probs @ v) / safe_sum, torch.zeros((), dtype=compute_dtype, device=q.device))
    lse = torch.where(seen, row_max + torch.log(safe_sum), torch.full_like(row_sum, float("-inf")))
    return out.transpose(1, 2), lse.squeeze(-1)
