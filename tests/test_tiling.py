"""Tile classification (SPEC section 3) against the dense mask: sound everywhere, tight where it should be."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flashmask import ColumnMask, masks
from flashmask._tiling import DEAD, FULL, classify_tiles

FORMS = [(True, 1), (True, 2), (False, 2), (False, 4)]


def _dense_tiles(mask: ColumnMask, block_m: int, block_n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per tile: every pair visible, every pair hidden (``[B, Hm, Tr, Tc]`` bool each)."""
    visible = mask.to_dense()
    sq, sk = visible.shape[-2:]
    tr, tc = -(-sq // block_m), -(-sk // block_n)
    # Pad with visible pairs for the all-visible test and hidden ones for the all-hidden test.
    pad = (0, tc * block_n - sk, 0, tr * block_m - sq)
    tiles = (*visible.shape[:2], tr, block_m, tc, block_n)
    all_visible = torch.nn.functional.pad(visible, pad, value=True).view(tiles).all(-1).all(-2)
    all_hidden = ~torch.nn.functional.pad(visible, pad, value=False).view(tiles).any(-1).any(-2)
    return all_visible, all_hidden


@st.composite
def masks_with_empty_intervals(draw: st.DrawFn) -> tuple[ColumnMask, int, int]:
    """Interval ends drawn from a few values around 0 and Sq, so that empty intervals (start >= end) sit in
    the same blocks as non-empty ones."""
    causal, c = draw(st.sampled_from(FORMS))
    b, h = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    sq, sk = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    size = b * h * sk * c
    values = draw(st.lists(st.sampled_from([-1, 0, 1, sq // 3, sq // 2, sq - 1, sq, sq + 2]), min_size=size,
                           max_size=size))  # fmt: skip
    block_m, block_n = draw(st.sampled_from([1, 2, 4, 8])), draw(st.sampled_from([1, 2, 4, 8]))
    return ColumnMask(torch.tensor(values).view(b, h, sk, c), causal=causal, seqlen_q=sq), block_m, block_n


@given(masks_with_empty_intervals())
@settings(max_examples=300, deadline=None, database=None)
def test_classification_is_sound(case: tuple[ColumnMask, int, int]) -> None:
    """A FULL tile has no hidden pair and a DEAD tile no visible one: skipping or not masking is exact."""
    mask, block_m, block_n = case
    states = classify_tiles(mask.intervals(), mask.seqlen_k, block_m, block_n)
    all_visible, all_hidden = _dense_tiles(mask, block_m, block_n)
    assert not (states == FULL)[~all_visible].any()
    assert not (states == DEAD)[~all_hidden].any()


def test_empty_intervals_do_not_make_tiles_partial() -> None:
    """QK-sparse: blocks that mix span columns ([j, o + L)) with plain ones ([N, N)) stay FULL below the span.

    Counting the plain columns' empty intervals in the block bounds stretched the hull to [j, N): every tile
    under the span was element-masked (8K, 64x64 tiles: 420 partial tiles instead of 189)."""
    n, block = 64, 8
    mask = masks.qk_sparse(n, [(12, 10), (36, 7)])
    states = classify_tiles(mask.intervals(), n, block, block)
    all_visible, _ = _dense_tiles(mask, block, block)
    rows = torch.arange(n // block).view(-1, 1)
    below_diagonal = rows > torch.arange(n // block).view(1, -1)  # diagonal tiles are element-masked
    assert torch.equal(states[0, 0] == FULL, (all_visible[0, 0] & below_diagonal))
