"""Context-parallel FlashMask attention: local query chunks against all-gathered keys and values."""

from __future__ import annotations

import math

import torch
import torch.distributed as dist

from .._column_mask import ColumnMask
from ..attention import flashmask_attention
from ._plan import CPPlan, gather_needed

__all__ = ["context_parallel_attention", "restrict_mask"]


def restrict_mask(mask: ColumnMask, r0: int, r1: int) -> ColumnMask:
    """The mask seen by global query rows ``[r0, r1)`` (local row ``i`` = global row ``r0 + i``), all keys.

    The result is always non-causal with ``seqlen_q = r1 - r0``, so no bottom-right alignment question
    arises. Every hidden interval ``[s, e)`` becomes ``[clip(s - r0, 0, L), clip(e - r0, 0, L))``; the causal
    triangle (key ``j`` hidden from global rows ``< j``) becomes ``[0, clip(j - r0, 0, L))``:

    ========================  ==========================================
    global form               restricted (non-causal) form
    ========================  ==========================================
    causal  [LTS]             [LTS', clip(j - r0)]          (C=2)
    causal  [LTS, LTE]        [LTS', LTE', 0, clip(j - r0)] (C=4)
    non-causal [LTS, UTE]     [LTS', UTE']                  (C=2)
    non-causal C=4            all four shifted              (C=4)
    ========================  ==========================================

    Needs ``Sq == Sk`` (the causal triangle of a square mask has no offset).
    """
    if mask.seqlen_q != mask.seqlen_k:
        raise ValueError(f"restrict_mask needs Sq == Sk, got Sq={mask.seqlen_q}, Sk={mask.seqlen_k}")
    if not 0 <= r0 <= r1 <= mask.seqlen_q:
        raise ValueError(f"row range [{r0}, {r1}) is outside [0, {mask.seqlen_q}]")
    length = r1 - r0
    idx = mask.startend_row_indices.to(torch.int64)
    shifted = (idx - r0).clamp(0, length)
    if mask.causal:
        cols = torch.arange(mask.seqlen_k, dtype=torch.int64, device=idx.device)
        tri = (cols - r0).clamp(0, length).expand_as(idx[..., 0]).unsqueeze(-1)
        if mask.num_bounds == 1:
            out = torch.cat([shifted, tri], dim=-1)
        else:
            out = torch.cat([shifted, torch.zeros_like(tri), tri], dim=-1)
    else:
        out = shifted
    return ColumnMask(out.to(torch.int32), causal=False, seqlen_q=length)


def context_parallel_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    plan: CPPlan,
    group: dist.ProcessGroup | None = None,
    *,
    backend: str | None = None,
    softmax_scale: float | None = None,
) -> torch.Tensor:
    """FlashMask attention over a sequence sharded by ``plan`` across the ranks of ``group``.

    Args:
        q, k, v: this rank's shards ``[B, S_local, H, D]`` (``plan.shard(x, 1, rank)``); GQA as in
            :func:`flashmask.flashmask_attention`.
        plan: from :func:`flashmask.distributed.plan`; its mask is the attention mask.
        group: the process group (default: the world); its size must equal ``plan.world_size`` and the
            rank within it selects the shard.
        backend, softmax_scale: passed to :func:`flashmask.flashmask_attention`.

    Returns:
        This rank's output shard ``[B, S_local, Hq, D]`` (same token order as ``q``); ``plan.unshard``
        restores the full sequence.

    Each K/V chunk travels only to the ranks with a query row that can see it (one autograd all-to-all,
    ``torch.distributed.nn.functional.all_to_all_single``; its backward sends and sums the gradients back),
    so every rank must run forward and backward. Each run of contiguous local query chunks attends to the
    gathered keys with the mask restricted to its rows and to those keys. Not done: overlapping the exchange
    with compute.
    """
    rank = dist.get_rank(group)
    if q.shape[1] != plan.local_seqlen:
        raise ValueError(f"q has {q.shape[1]} tokens, each rank of the plan holds {plan.local_seqlen}")
    if softmax_scale is None:
        softmax_scale = 1.0 / math.sqrt(q.shape[-1])
    k_all = gather_needed(k, 1, plan, group)
    v_all = gather_needed(v, 1, plan, group)
    outs = []
    for seg in plan.local_mask(rank, q.device):
        length = seg.r1 - seg.r0
        q_seg = q.narrow(1, seg.local_start, length)
        outs.append(flashmask_attention(q_seg, k_all, v_all, seg.mask, softmax_scale=softmax_scale, backend=backend))
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)
