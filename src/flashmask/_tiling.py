"""Tile classification in plain PyTorch (SPEC section 3), used by the PyTorch path and by mask statistics.

The Triton kernels have their own GPU implementation (``flashmask.kernels.tiles``); the tests check that the
two agree.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ._column_mask import Intervals

# Tile states.
DEAD, PARTIAL, FULL = 0, 1, 2


class BlockBounds(NamedTuple):
    """Per key block of ``block_n`` columns, the bounds of each interval vector: ``[B, Hm, Tc]`` each.

    The ``*_max`` of starts and ``*_min`` of ends (the fully-masked test) run over every column. The
    ``*_min`` of starts and ``*_max`` of ends (the partially-masked test) run over the columns whose interval
    is non-empty: an empty interval hides nothing, and counting it would stretch the block's hull over rows
    that no column hides (QK-sparse blocks that mix span columns, ``[j, o + L)``, with plain ones, ``[N, N)``,
    would mark every tile below the span partial). A block without a non-empty interval gets the empty hull
    ``[Sq, 0)``.
    """

    lts_min: torch.Tensor
    lts_max: torch.Tensor
    lte_min: torch.Tensor
    lte_max: torch.Tensor
    uts_min: torch.Tensor
    uts_max: torch.Tensor
    ute_min: torch.Tensor
    ute_max: torch.Tensor


def block_bounds(iv: Intervals, block_n: int) -> BlockBounds:
    """Reduce each interval vector over blocks of ``block_n`` key columns (the ragged tail block included)."""
    seqlen_k = iv.lts.shape[-1]
    num_blocks = -(-seqlen_k // block_n)
    # Repeat the last column into the tail of a ragged block: min and max stay those of the real columns.
    cols = torch.arange(num_blocks * block_n, device=iv.lts.device).clamp(max=max(seqlen_k - 1, 0))

    def blocks(vec: torch.Tensor) -> torch.Tensor:
        return vec[..., cols].reshape(*vec.shape[:-1], num_blocks, block_n)

    out = []
    for start, end in ((iv.lts, iv.lte), (iv.uts, iv.ute)):
        start_b, end_b = blocks(start), blocks(end)
        empty = start_b >= end_b
        out += [
            start_b.masked_fill(empty, iv.seqlen_q).amin(-1),
            start_b.amax(-1),
            end_b.amin(-1),
            end_b.masked_fill(empty, 0).amax(-1),
        ]
    return BlockBounds(*out)


def classify_tiles(iv: Intervals, seqlen_k: int, block_m: int, block_n: int) -> torch.Tensor:
    """State of every ``block_m x block_n`` tile: int8 ``[B, Hm, Tr, Tc]`` of DEAD, PARTIAL or FULL.

    DEAD tiles are hidden entirely (skipped); PARTIAL tiles need the element mask; FULL tiles need none. A
    ragged last key block is PARTIAL so that kernels mask the columns past ``Sk`` there and nowhere else.
    """
    seqlen_q = iv.seqlen_q
    batch, heads = iv.lts.shape[:2]
    num_m, num_n = -(-seqlen_q // block_m), -(-seqlen_k // block_n)
    device = iv.lts.device
    if num_m == 0 or num_n == 0:
        return torch.empty(batch, heads, num_m, num_n, dtype=torch.int8, device=device)
    bb = block_bounds(iv, block_n)
    r0 = (torch.arange(num_m, device=device) * block_m).view(-1, 1)
    r1 = (r0 + block_m).clamp(max=seqlen_q)
    c0 = (torch.arange(num_n, device=device) * block_n).view(1, -1)
    c1 = (c0 + block_n).clamp(max=seqlen_k)

    def per_tile(x: torch.Tensor) -> torch.Tensor:  # [B, Hm, Tc] -> [B, Hm, 1, Tc]
        return x.unsqueeze(2)

    lt_full = (r0 >= per_tile(bb.lts_max)) & (r1 <= per_tile(bb.lte_min))
    ut_full = (r0 >= per_tile(bb.uts_max)) & (r1 <= per_tile(bb.ute_min))
    lt_part = (r0 < per_tile(bb.lte_max)) & (r1 > per_tile(bb.lts_min))
    ut_part = (r0 < per_tile(bb.ute_max)) & (r1 > per_tile(bb.uts_min))
    dead = lt_full | ut_full
    partial = lt_part | ut_part | (c1 - c0 < block_n)
    if iv.causal:
        offset = seqlen_k - seqlen_q
        dead = dead | (c0 > r1 - 1 + offset)
        partial = partial | (c1 - 1 > r0 + offset)
    state = torch.full(dead.shape, FULL, dtype=torch.int8, device=device)
    state.masked_fill_(partial, PARTIAL)
    state.masked_fill_(dead, DEAD)
    return state
