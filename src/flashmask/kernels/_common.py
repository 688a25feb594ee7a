"""Pieces shared by the forward and backward kernels: the element mask of a partially masked tile.

The tile's element test is split in two. ``_column_limits`` turns the 1-4 interval values of each key column
into row limits once per column; ``_fill_hidden_rows`` then costs two or three integer instructions and one
select per element: a row
``r`` is hidden when ``r < below`` (causal triangle, the non-causal form's upper interval ``[0, UTE)``, every
row of a column past ``Sk``) or when ``r - start < span`` as unsigned numbers (a two-sided interval, with
``start >= 0`` and ``span = max(end - start, 0)``, so one compare covers both ends). On the H100 the
straightforward per-element form (two compares and two selects per interval, and 64-bit address math per
column) made a partial forward tile issue 2.3x the instructions of an unmasked one (benchmarks/NOTES.md,
session 6).
"""

from __future__ import annotations

import os

import triton
import triton.language as tl

_ALL_ROWS = tl.constexpr(2**30)  # above any row index
# The interpreter (CI without a GPU) runs no inline assembly.
_INTERPRET = tl.constexpr(os.environ.get("TRITON_INTERPRET", "0") == "1")


@triton.jit
def _in_span(rows, start, span):
    """``start <= rows < start + span`` in one unsigned compare (``start >= 0``, ``0 <= span < 2**31``)."""
    return (rows - start).to(tl.uint32) < span.to(tl.uint32)


@triton.jit
def _column_limits(
    mask_cols,
    cols,
    seqlen_q,
    seqlen_k,
    CAUSAL: tl.constexpr,
    LTE_COL: tl.constexpr,
    UTS_COL: tl.constexpr,
    UTE_COL: tl.constexpr,
):
    """Row limits of key columns ``cols`` (int32, any shape) for the forms with a column mask: ``(below,
    lower_start, lower_span, upper_start, upper_span)``, int32 tensors of that shape; see ``_fill_hidden_rows``.

    ``mask_cols`` points at each column's first interval value (LTS) in ``startend_row_indices``. Values
    outside ``[0, Sq]`` hide the same rows as their clipped ones; the clamps keep the spans from overflowing.
    """
    in_range = cols < seqlen_k
    if CAUSAL:  # noqa: SIM108 (compile-time branch, kept as a statement like the others)
        below = cols - (seqlen_k - seqlen_q)
    else:
        below = cols * 0  # (not zeros_like: the Gluon backward calls this helper too, and Gluon needs layouts)
    lower_start = below  # unused unless the form has the interval
    lower_span = below
    upper_start = below
    upper_span = below
    lts = tl.load(mask_cols, mask=in_range, other=0)
    if LTE_COL >= 0:
        lte = tl.load(mask_cols + LTE_COL, mask=in_range, other=_ALL_ROWS)
        lower_start = tl.maximum(lts, 0)
        lower_span = tl.maximum(lte - lower_start, 0)
    else:
        lower_start = lts  # one-sided: [LTS, Sq)
    if UTE_COL >= 0:
        ute = tl.load(mask_cols + UTE_COL, mask=in_range, other=0)
        if UTS_COL >= 0:
            uts = tl.load(mask_cols + UTS_COL, mask=in_range, other=0)
            upper_start = tl.maximum(uts, 0)
            upper_span = tl.maximum(ute - upper_start, 0)
        else:
            below = ute  # non-causal two-vector form: [0, UTE)
    below = tl.where(in_range, below, _ALL_ROWS)
    return below, lower_start, lower_span, upper_start, upper_span


@triton.jit
def _fill_below_or_from(x, fill, rows, below, start):
    """``fill`` where ``rows < below`` or ``rows >= start``, else ``x``."""
    if _INTERPRET:
        return tl.where((rows < below) | (rows >= start), fill, x)
    return tl.inline_asm_elementwise(
        "{ .reg .pred p; setp.lt.s32 p, $3, $4; setp.ge.or.s32 p, $3, $5, p; selp.f32 $0, $2, $1, p; }",
        "=f,f,f,r,r,r", [x, fill, rows, below, start], dtype=tl.float32, is_pure=True, pack=1,
    )  # fmt: skip


@triton.jit
def _fill_below_or_in_span(x, fill, rows, below, start, span):
    """``fill`` where ``rows < below`` or ``start <= rows < start + span``, else ``x``."""
    if _INTERPRET:
        return tl.where((rows < below) | _in_span(rows, start, span), fill, x)
    return tl.inline_asm_elementwise(
        "{ .reg .pred p; .reg .b32 t; sub.s32 t, $3, $5; setp.lt.u32 p, t, $6; setp.lt.or.s32 p, $3, $4, p; "
        "selp.f32 $0, $2, $1, p; }",
        "=f,f,f,r,r,r,r", [x, fill, rows, below, start, span], dtype=tl.float32, is_pure=True, pack=1,
    )  # fmt: skip


@triton.jit
def _fill_in_spans(x, fill, rows, start0, span0, start1, span1):
    """``fill`` where ``rows`` lies in either span, else ``x``."""
    if _INTERPRET:
        return tl.where(_in_span(rows, start0, span0) | _in_span(rows, start1, span1), fill, x)
    return tl.inline_asm_elementwise(
        "{ .reg .pred p; .reg .b32 t; sub.s32 t, $2, $3; setp.lt.u32 p, t, $4; sub.s32 t, $2, $5; "
        "setp.lt.or.u32 p, t, $6, p; selp.f32 $0, $7, $1, p; }",
        "=f,f,r,r,r,r,r,f", [x, rows, start0, span0, start1, span1, fill], dtype=tl.float32, is_pure=True,
        pack=1,
    )  # fmt: skip


@triton.jit
def _fill_hidden_rows(
    x,
    fill,
    rows,
    below,
    lower_start,
    lower_span,
    upper_start,
    upper_span,
    LTE_COL: tl.constexpr,
    UTS_COL: tl.constexpr,
):
    """``x`` (float32) with ``fill`` where query ``rows`` may not see the columns of the limits.

    Two conditions are combined in one predicate by inline PTX: written as boolean tiles, the compiler
    packed them into bitmasks and unpacked them again (about three extra instructions per element on the
    H100); the interpreter, which has no inline assembly, takes the plain expressions.
    """
    if UTS_COL >= 0:
        # Four vectors (non-causal): nothing below, and columns past Sk sit in the lower interval.
        return _fill_in_spans(x, fill, rows, lower_start, lower_span, upper_start, upper_span)
    if LTE_COL >= 0:
        return _fill_below_or_in_span(x, fill, rows, below, lower_start, lower_span)
    return _fill_below_or_from(x, fill, rows, below, lower_start)


@triton.jit
def fill_hidden(
    x,
    fill,
    rows,
    cols,
    mask_cols,
    seqlen_q,
    seqlen_k,
    CAUSAL: tl.constexpr,
    HAS_MASK: tl.constexpr,
    LTE_COL: tl.constexpr,
    UTS_COL: tl.constexpr,
    UTE_COL: tl.constexpr,
):
    """Element mask of a partially masked tile: ``x`` with ``fill`` where query ``rows`` may not see key ``cols``.

    ``rows`` and ``cols`` are broadcastable int32 tensors (``[M, 1]`` and ``[1, N]``, or transposed) and ``x``
    has their broadcast shape; ``mask_cols`` has the shape of ``cols``. The interval vectors are read for
    ``cols`` only: 1 to 4 ints per key column, never a dense mask. Columns past ``Sk`` (a ragged last block)
    are hidden too.
    """
    if not HAS_MASK:
        # Only the causal diagonal and a ragged last block: the plain form. (Written through the limits, the
        # unmasked loop of the same kernel came out scheduled differently and 3.5% slower on the full mask;
        # benchmarks/NOTES.md, session 6.)
        hidden = (cols >= seqlen_k) & (rows >= 0)
        if CAUSAL:
            hidden = hidden | (cols > rows + (seqlen_k - seqlen_q))
        return tl.where(hidden, fill, x)
    below, lower_start, lower_span, upper_start, upper_span = _column_limits(
        mask_cols, cols, seqlen_q, seqlen_k, CAUSAL, LTE_COL, UTS_COL, UTE_COL
    )
    return _fill_hidden_rows(x, fill, rows, below, lower_start, lower_span, upper_start, upper_span, LTE_COL, UTS_COL)
