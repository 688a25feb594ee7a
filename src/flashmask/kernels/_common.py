"""Pieces shared by the forward and backward kernels."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def hidden_pairs(
    rows,
    cols,
    mask_base,
    stride_ms,
    seqlen_q,
    seqlen_k,
    CAUSAL: tl.constexpr,
    HAS_MASK: tl.constexpr,
    LTE_COL: tl.constexpr,
    UTS_COL: tl.constexpr,
    UTE_COL: tl.constexpr,
):
    """Element mask of a partially masked tile: True where query ``rows`` may not see key ``cols``.

    ``rows`` and ``cols`` are broadcastable int32 tensors (``[M, 1]`` and ``[1, N]``, or transposed). The
    interval vectors are read for ``cols`` only: 1 to 4 ints per key column, never a dense mask. Columns
    past ``Sk`` (a ragged last block) are hidden too.
    """
    in_range = cols < seqlen_k
    hidden = (cols >= seqlen_k) & (rows >= 0)  # broadcast to the tile's shape
    if CAUSAL:
        hidden = hidden | (cols > rows + (seqlen_k - seqlen_q))
    if HAS_MASK:
        col_ptr = mask_base + cols.to(tl.int64) * stride_ms
        lts = tl.load(col_ptr, mask=in_range, other=0)
        if LTE_COL >= 0:
            lte = tl.load(col_ptr + LTE_COL, mask=in_range, other=0)
            hidden = hidden | ((rows >= lts) & (rows < lte))
        else:
            hidden = hidden | (rows >= lts)
        if UTE_COL >= 0:
            ute = tl.load(col_ptr + UTE_COL, mask=in_range, other=0)
            if UTS_COL >= 0:
                uts = tl.load(col_ptr + UTS_COL, mask=in_range, other=0)
                hidden = hidden | ((rows >= uts) & (rows < ute))
            else:
                hidden = hidden | (rows < ute)
    return hidden
