"""FlashMask attention in plain PyTorch: the CPU path (and a fallback anywhere).

It follows SPEC section 3 one query block at a time: the tile states come from the column-wise mask's block
bounds, fully masked key blocks are never touched, the element mask is built only for partially masked
tiles, and the backward recomputes each block's probabilities from the saved log-sum-exp, as FlashAttention
does. Nothing of size ``Sq x Sk`` is ever allocated: peak extra memory is ``B * Hq * block_m * Sk``.

It decides on the host which key blocks to visit, so on CUDA tensors it synchronises once per query block;
the Triton kernels are the GPU path.
"""

from __future__ import annotations

import torch

from ._column_mask import Intervals
from ._tiling import FULL, classify_tiles

BLOCK_M = 128
BLOCK_N = 128


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _heads_view(x: torch.Tensor, num_kv_heads: int) -> torch.Tensor:
    """``[B, S, H, D]`` -> ``[B, Hkv, H // Hkv, S, D]`` (a view, no copy)."""
    b, s, h, d = x.shape
    return x.permute(0, 2, 1, 3).view(b, num_kv_heads, h // num_kv_heads, s, d)


def _mask_view(x: torch.Tensor, num_q_heads: int, num_kv_heads: int) -> torch.Tensor:
    """Mask-head tensor ``[B, Hm, ...]`` -> ``[B, Hkv or 1, G or 1, ...]``, broadcastable against scores."""
    b, hm = x.shape[:2]
    rest = x.shape[2:]
    if hm == num_q_heads and hm != 1:
        return x.view(b, num_kv_heads, num_q_heads // num_kv_heads, *rest)
    return x.view(b, hm, 1, *rest)


class _BlockPlan:
    """Per query block: the key columns to visit, split into unmasked and partially masked blocks."""

    def __init__(self, iv: Intervals, seqlen_k: int, block_m: int, block_n: int) -> None:
        states = classify_tiles(iv, seqlen_k, block_m, block_n)  # [B, Hm, Tr, Tc]
        # One host decision for all batch rows and heads: a block is visited if any of them sees it.
        flat = states.flatten(0, 1)
        self.live = (flat != 0).any(0).cpu() if flat.shape[0] else torch.zeros(0, 0, dtype=torch.bool)
        self.full = (flat == FULL).all(0).cpu() if flat.shape[0] else self.live
        self.block_m, self.block_n, self.seqlen_k = block_m, block_n, seqlen_k
        self.device = iv.lts.device

    def columns(self, q_block: int) -> tuple[torch.Tensor, int]:
        """Key column indices to visit for ``q_block`` (unmasked blocks first) and how many are unmasked."""
        full = torch.nonzero(self.full[q_block]).flatten()
        part = torch.nonzero(self.live[q_block] & ~self.full[q_block]).flatten()
        offsets = torch.arange(self.block_n)

        def cols(blocks: torch.Tensor) -> torch.Tensor:
            c = (blocks.view(-1, 1) * self.block_n + offsets).flatten()
            return c[c < self.seqlen_k]

        full_cols, part_cols = cols(full), cols(part)
        return torch.cat([full_cols, part_cols]).to(self.device), full_cols.numel()


def _block_scores(
    q_blk: torch.Tensor,
    k_heads: torch.Tensor,
    iv: Intervals,
    cols: torch.Tensor,
    num_unmasked: int,
    r0: int,
    num_q_heads: int,
) -> torch.Tensor:
    """Scaled scores ``[B, Hkv, G, rows, cols]`` of one query block, ``-inf`` where the mask hides a pair."""
    scores = q_blk @ k_heads[:, :, :, cols].transpose(-1, -2)
    part_cols = cols[num_unmasked:]
    if part_cols.numel():
        rows = torch.arange(r0, r0 + q_blk.shape[-2], device=q_blk.device).view(-1, 1)

        def hidden(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
            return (rows >= start[..., part_cols].unsqueeze(-2)) & (rows < end[..., part_cols].unsqueeze(-2))

        masked = hidden(iv.lts, iv.lte) | hidden(iv.uts, iv.ute)  # [B, Hm, rows, cols]
        if iv.causal:
            masked = masked | (part_cols > rows + (k_heads.shape[-2] - iv.seqlen_q))
        masked = _mask_view(masked, num_q_heads, k_heads.shape[1])
        scores[..., num_unmasked:] = scores[..., num_unmasked:].masked_fill(masked, float("-inf"))
    return scores


def forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    iv: Intervals,
    softmax_scale: float,
    block_m: int = BLOCK_M,
    block_n: int = BLOCK_N,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention forward.

    Args:
        q: ``[B, Sq, Hq, D]``; k, v: ``[B, Sk, Hkv, D]``; iv: the mask's intervals ``[B, Hm, Sk]``.

    Returns:
        ``out`` ``[B, Sq, Hq, D]`` in the dtype of ``q``, and ``lse`` float32 (float64 for float64 inputs)
        ``[B, Hq, Sq]``, ``-inf`` on rows that see no key (their output is 0).
    """
    batch, seqlen_q, num_q_heads, head_dim = q.shape
    seqlen_k, num_kv_heads = k.shape[1], k.shape[2]
    cdtype = _compute_dtype(q.dtype)
    qh = _heads_view(q, num_kv_heads)
    kh, vh = _heads_view(k, num_kv_heads).to(cdtype), _heads_view(v, num_kv_heads).to(cdtype)
    groups = num_q_heads // num_kv_heads
    out = torch.zeros(batch, num_kv_heads, groups, seqlen_q, head_dim, dtype=cdtype, device=q.device)
    lse = torch.full((batch, num_kv_heads, groups, seqlen_q), float("-inf"), dtype=cdtype, device=q.device)
    plan = _BlockPlan(iv, seqlen_k, block_m, block_n)
    for q_block in range(plan.live.shape[0]):
        cols, num_unmasked = plan.columns(q_block)
        if cols.numel() == 0:
            continue
        r0, r1 = q_block * block_m, min((q_block + 1) * block_m, seqlen_q)
        q_blk = qh[:, :, :, r0:r1].to(cdtype) * softmax_scale
        scores = _block_scores(q_blk, kh, iv, cols, num_unmasked, r0, num_q_heads)
        row_max = scores.amax(-1, keepdim=True)
        row_max = torch.where(torch.isinf(row_max), torch.zeros_like(row_max), row_max)
        probs = torch.exp(scores - row_max)
        row_sum = probs.sum(-1, keepdim=True)
        o_blk = probs @ vh[:, :, :, cols]
        out[:, :, :, r0:r1] = torch.where(row_sum > 0, o_blk / row_sum, torch.zeros_like(o_blk))
        lse[:, :, :, r0:r1] = (row_max + torch.log(row_sum)).squeeze(-1)
    out = out.view(batch, num_q_heads, seqlen_q, head_dim).transpose(1, 2).to(q.dtype).contiguous()
    lse_dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    return out, lse.view(batch, num_q_heads, seqlen_q).to(lse_dtype)


def backward(
    grad_out: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    iv: Intervals,
    softmax_scale: float,
    block_m: int = BLOCK_M,
    block_n: int = BLOCK_N,
    grad_lse: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients ``(dq, dk, dv)`` of :func:`forward`, recomputing each query block's probabilities.

    ``grad_lse`` ``[B, Hq, Sq]`` is the gradient reaching the returned log-sum-exp, if any.
    """
    batch, seqlen_q, num_q_heads, head_dim = q.shape
    seqlen_k, num_kv_heads = k.shape[1], k.shape[2]
    cdtype = _compute_dtype(q.dtype)
    qh = _heads_view(q, num_kv_heads)
    kh, vh = _heads_view(k, num_kv_heads).to(cdtype), _heads_view(v, num_kv_heads).to(cdtype)
    doh, oh = _heads_view(grad_out, num_kv_heads), _heads_view(out, num_kv_heads)
    groups = num_q_heads // num_kv_heads
    lse_h = lse.view(batch, num_kv_heads, groups, seqlen_q).to(cdtype)
    # Rows that saw nothing have lse = -inf; +inf there makes their probabilities exactly 0.
    lse_h = torch.where(torch.isneginf(lse_h), torch.full_like(lse_h, float("inf")), lse_h)
    # dS = P * (dP - delta); a gradient on lse adds P * dlse, i.e. lowers delta by dlse.
    delta = (doh.to(cdtype) * oh.to(cdtype)).sum(-1, keepdim=True)
    if grad_lse is not None:
        delta = delta - grad_lse.view(batch, num_kv_heads, groups, seqlen_q, 1).to(cdtype)
    dq = torch.zeros(batch, num_kv_heads, groups, seqlen_q, head_dim, dtype=cdtype, device=q.device)
    dk = torch.zeros(batch, num_kv_heads, seqlen_k, head_dim, dtype=cdtype, device=q.device)
    dv = torch.zeros_like(dk)
    plan = _BlockPlan(iv, seqlen_k, block_m, block_n)
    for q_block in range(plan.live.shape[0]):
        cols, num_unmasked = plan.columns(q_block)
        if cols.numel() == 0:
            continue
        r0, r1 = q_block * block_m, min((q_block + 1) * block_m, seqlen_q)
        q_blk = qh[:, :, :, r0:r1].to(cdtype)
        do_blk = doh[:, :, :, r0:r1].to(cdtype)
        scores = _block_scores(q_blk * softmax_scale, kh, iv, cols, num_unmasked, r0, num_q_heads)
        probs = torch.exp(scores - lse_h[:, :, :, r0:r1].unsqueeze(-1))
        dv.index_add_(2, cols, (probs.transpose(-1, -2) @ do_blk).sum(2))
        dprobs = do_blk @ vh[:, :, :, cols].transpose(-1, -2)
        dscores = probs * (dprobs - delta[:, :, :, r0:r1]) * softmax_scale
        dq[:, :, :, r0:r1] = dscores @ kh[:, :, :, cols]
        dk.index_add_(2, cols, (dscores.transpose(-1, -2) @ q_blk).sum(2))
    dq = dq.view(batch, num_q_heads, seqlen_q, head_dim).transpose(1, 2).to(q.dtype).contiguous()
    return dq, dk.transpose(1, 2).to(k.dtype).contiguous(), dv.transpose(1, 2).to(v.dtype).contiguous()
