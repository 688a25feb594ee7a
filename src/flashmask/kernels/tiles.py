"""Block bounds and per-block tile lists, built on the device (SPEC section 3).

1. ``block_bounds``: min and max of LTS, LTE, UTS, UTE over every block of ``block_n`` key columns: eight
   int32 vectors of length ``ceil(Sk / block_n)`` per (batch, mask head). O(N) work, no host sync. The min
   of starts and max of ends skip empty intervals (``flashmask._tiling.BlockBounds`` says why).
2. ``tile_lists``: from the bounds, for every query block (forward) or key block (backward) the compacted,
   ascending lists of the blocks on the other side that are unmasked ("full") and partially masked
   ("partial"); fully masked tiles appear in neither. The kernels' main loops walk these lists, so they
   carry no per-tile test and never touch a masked tile. Each list comes with the order of its outer blocks,
   heaviest first.
3. ``plan``: both, in one launch of one program per (batch, mask head) row where rows are short (the kernels'
   path), else the grids of 1 and 2. Before every main kernel the GPU waits for these launches, and on a slow
   host each launch costs more than its GPU work.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
import triton
import triton.language as tl

from ._host import CachedKernel, cdiv, next_power_of_2

_INT_BIG = tl.constexpr(2**30)


class MaskForm(NamedTuple):
    """Compile-time description of the stored vectors (see the table in ``flashmask._column_mask``)."""

    causal: bool
    has_mask: bool  # False: no startend_row_indices, only causal / boundary masking
    lte_col: int  # column of LTE in the last dim, or -1 (then LTE = Sq)
    uts_col: int  # column of UTS, or -1 (then UTS = 0)
    ute_col: int  # column of UTE, or -1 (then UTE = 0)


def mask_form(indices: torch.Tensor | None, causal: bool) -> MaskForm:
    if indices is None:
        return MaskForm(causal, False, -1, -1, -1)
    num_bounds = indices.shape[-1]
    if causal:
        return MaskForm(True, True, 1 if num_bounds == 2 else -1, -1, -1)
    if num_bounds == 2:
        return MaskForm(False, True, -1, -1, 1)
    return MaskForm(False, True, 1, 2, 3)


@triton.jit
def _load_bound(base, stride_s, cols, col_mask, COL: tl.constexpr, default, seqlen_q):
    """One interval vector at key columns ``cols``, clipped to [0, Sq]; ``default`` if it is not stored."""
    if COL >= 0:
        x = tl.load(base + cols.to(tl.int64) * stride_s + COL, mask=col_mask, other=0)
        return tl.minimum(tl.maximum(x, 0), seqlen_q)
    else:
        return tl.zeros_like(cols) + default


@triton.jit
def _store_bounds(out, num_blocks, lts, lte, uts, ute, valid, ok, AXIS: tl.constexpr):
    """The eight bounds of the key blocks whose columns run along ``AXIS`` of the interval vectors."""
    # The partial test's bounds (min start, max end) skip empty intervals, which hide nothing; the fully-masked
    # test's (max start, min end) keep them, so that a column hiding nothing keeps its block live.
    lower = valid & (lts < lte)
    upper = valid & (uts < ute)
    tl.store(out + 0 * num_blocks, tl.min(tl.where(lower, lts, _INT_BIG), AXIS), mask=ok)
    tl.store(out + 1 * num_blocks, tl.max(tl.where(valid, lts, -_INT_BIG), AXIS), mask=ok)
    tl.store(out + 2 * num_blocks, tl.min(tl.where(valid, lte, _INT_BIG), AXIS), mask=ok)
    tl.store(out + 3 * num_blocks, tl.max(tl.where(lower, lte, -_INT_BIG), AXIS), mask=ok)
    tl.store(out + 4 * num_blocks, tl.min(tl.where(upper, uts, _INT_BIG), AXIS), mask=ok)
    tl.store(out + 5 * num_blocks, tl.max(tl.where(valid, uts, -_INT_BIG), AXIS), mask=ok)
    tl.store(out + 6 * num_blocks, tl.min(tl.where(valid, ute, _INT_BIG), AXIS), mask=ok)
    tl.store(out + 7 * num_blocks, tl.max(tl.where(upper, ute, -_INT_BIG), AXIS), mask=ok)


@triton.jit
def _block_bounds_kernel(
    Indices,
    Bounds,
    stride_ib,
    stride_ih,
    stride_is,
    num_heads,
    seqlen_q,
    seqlen_k,
    num_blocks,
    LTE_COL: tl.constexpr,
    UTS_COL: tl.constexpr,
    UTE_COL: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // num_heads
    h = pid_bh % num_heads
    base = Indices + b.to(tl.int64) * stride_ib + h.to(tl.int64) * stride_ih
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    valid = cols < seqlen_k
    out = Bounds + pid_bh.to(tl.int64) * 8 * num_blocks + pid_n
    lts = _load_bound(base, stride_is, cols, valid, 0, 0, seqlen_q)
    lte = _load_bound(base, stride_is, cols, valid, LTE_COL, seqlen_q, seqlen_q)
    uts = _load_bound(base, stride_is, cols, valid, UTS_COL, 0, seqlen_q)
    ute = _load_bound(base, stride_is, cols, valid, UTE_COL, 0, seqlen_q)
    _store_bounds(out, num_blocks, lts, lte, uts, ute, valid, None, 0)


@triton.jit
def _classify(bounds, num_n_blocks, n, n_mask, r0, r1, c0, c1, offset, valid, CAUSAL: tl.constexpr,
              BLOCK_N: tl.constexpr):  # fmt: skip
    """``(is_full, is_part)`` of the tiles rows ``[r0, r1)`` x key columns ``[c0, c1)`` of key blocks ``n``."""
    lts_min = tl.load(bounds + 0 * num_n_blocks + n, mask=n_mask, other=0)
    lts_max = tl.load(bounds + 1 * num_n_blocks + n, mask=n_mask, other=0)
    lte_min = tl.load(bounds + 2 * num_n_blocks + n, mask=n_mask, other=0)
    lte_max = tl.load(bounds + 3 * num_n_blocks + n, mask=n_mask, other=0)
    uts_min = tl.load(bounds + 4 * num_n_blocks + n, mask=n_mask, other=0)
    uts_max = tl.load(bounds + 5 * num_n_blocks + n, mask=n_mask, other=0)
    ute_min = tl.load(bounds + 6 * num_n_blocks + n, mask=n_mask, other=0)
    ute_max = tl.load(bounds + 7 * num_n_blocks + n, mask=n_mask, other=0)
    # SPEC section 3: fully masked by one interval / partially masked by any / else unmasked.
    dead = ((r0 >= lts_max) & (r1 <= lte_min)) | ((r0 >= uts_max) & (r1 <= ute_min))
    part = ((r0 < lte_max) & (r1 > lts_min)) | ((r0 < ute_max) & (r1 > uts_min)) | (c1 - c0 < BLOCK_N)
    if CAUSAL:
        dead = dead | (c0 > r1 - 1 + offset)
        part = part | (c1 - 1 > r0 + offset)
    return valid & ~dead & ~part, valid & ~dead & part


@triton.jit
def _tile_lists_kernel(
    Bounds,
    FullCount,
    FullIndex,
    PartCount,
    PartIndex,
    seqlen_q,
    seqlen_k,
    num_m_blocks,
    num_n_blocks,
    CAUSAL: tl.constexpr,
    TRANSPOSED: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    CHUNK: tl.constexpr,
):
    """One program per outer block (query block, or key block when TRANSPOSED) and (batch, mask head)."""
    pid_outer = tl.program_id(0)
    pid_bh = tl.program_id(1)
    bounds = Bounds + pid_bh.to(tl.int64) * 8 * num_n_blocks
    if TRANSPOSED:
        num_outer, num_inner = num_n_blocks, num_m_blocks
    else:
        num_outer, num_inner = num_m_blocks, num_n_blocks
    row = pid_bh.to(tl.int64) * num_outer + pid_outer
    full_out = FullIndex + row * num_inner
    part_out = PartIndex + row * num_inner
    offset = seqlen_k - seqlen_q
    num_full = 0
    num_part = 0
    for start in range(0, num_inner, CHUNK):
        inner = start + tl.arange(0, CHUNK)
        valid = inner < num_inner
        if TRANSPOSED:
            m = inner
            n = pid_outer + tl.zeros_like(inner)
        else:
            m = pid_outer + tl.zeros_like(inner)
            n = inner
        r0 = m * BLOCK_M
        r1 = tl.minimum(r0 + BLOCK_M, seqlen_q)
        c0 = n * BLOCK_N
        c1 = tl.minimum(c0 + BLOCK_N, seqlen_k)
        is_full, is_part = _classify(bounds, num_n_blocks, n, valid & (n < num_n_blocks), r0, r1, c0, c1, offset,
                                     valid, CAUSAL, BLOCK_N)  # fmt: skip
        full_pos = num_full + tl.cumsum(is_full.to(tl.int32), 0) - 1
        part_pos = num_part + tl.cumsum(is_part.to(tl.int32), 0) - 1
        tl.store(full_out + full_pos, inner, mask=is_full)
        tl.store(part_out + part_pos, inner, mask=is_part)
        num_full += tl.sum(is_full.to(tl.int32), 0)
        num_part += tl.sum(is_part.to(tl.int32), 0)
    tl.store(FullCount + row, num_full)
    tl.store(PartCount + row, num_part)


_ORDER_CHUNK = 128


@triton.jit
def _order_kernel(FullCount, PartCount, Order, Counter, num_outer, CHUNK: tl.constexpr):
    """``Order``: each (batch, mask head) row's outer blocks by decreasing number of live tiles, ties by index.

    One program per ``CHUNK`` outer blocks and row: each block's position is the number of blocks that go before
    it (a rank by counting, O(num_outer) per block), so the order is a permutation with no sort pass. The first
    program also zeroes ``Counter`` (one int32), the work-item counter of a persistent main kernel.
    """
    if (tl.program_id(0) == 0) & (tl.program_id(1) == 0):
        tl.store(Counter, 0)
    row = tl.program_id(1).to(tl.int64) * num_outer
    _order_chunk(FullCount + row, PartCount + row, Order + row, tl.program_id(0) * CHUNK, num_outer, CHUNK)


@triton.jit
def _order_chunk(full_count, part_count, order, first, num_outer, CHUNK: tl.constexpr):
    """Places outer blocks ``first .. first + CHUNK`` of one row in ``order``, each at its rank by counting."""
    i = first + tl.arange(0, CHUNK)
    i_ok = i < num_outer
    live_i = tl.load(full_count + i, mask=i_ok, other=0) + tl.load(part_count + i, mask=i_ok, other=0)
    rank = tl.zeros([CHUNK], dtype=tl.int32)
    for start in range(0, num_outer, CHUNK):
        j = start + tl.arange(0, CHUNK)
        j_ok = j < num_outer
        # -1 for blocks past the end: below every real count, so they never go before one.
        live_j = tl.load(full_count + j, mask=j_ok, other=-1) + tl.load(part_count + j, mask=j_ok, other=0)
        heavier = live_j[None, :] > live_i[:, None]
        tie_before = (live_j[None, :] == live_i[:, None]) & (j[None, :] < i[:, None])
        rank += tl.sum((heavier | tie_before).to(tl.int32), 1)
    tl.store(order + rank, i, mask=i_ok)


@triton.jit
def _row_plan_kernel(
    Indices,
    Bounds,
    FullCount,
    FullIndex,
    PartCount,
    PartIndex,
    Order,
    Counter,
    stride_ib,
    stride_ih,
    stride_is,
    num_heads,
    seqlen_q,
    seqlen_k,
    num_m_blocks,
    num_n_blocks,
    HAS_MASK: tl.constexpr,
    BOUNDS_GIVEN: tl.constexpr,
    LTE_COL: tl.constexpr,
    UTS_COL: tl.constexpr,
    UTE_COL: tl.constexpr,
    CAUSAL: tl.constexpr,
    TRANSPOSED: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    KEY_CHUNK: tl.constexpr,
    OUTER_CHUNK: tl.constexpr,
    INNER_CHUNK: tl.constexpr,
    ORDER_CHUNK: tl.constexpr,
):
    """``_block_bounds_kernel``, ``_tile_lists_kernel`` and ``_order_kernel`` for one whole (batch, mask head) row.

    One program per row, so each step reads what the step before wrote in the same program (a CTA barrier
    between them) and no program waits on another. The three steps work on 2-D chunks (many blocks at once).
    """
    row_id = tl.program_id(0)
    bounds = Bounds + row_id.to(tl.int64) * 8 * num_n_blocks
    if not BOUNDS_GIVEN:
        b = row_id // num_heads
        h = row_id % num_heads
        base = Indices + b.to(tl.int64) * stride_ib + h.to(tl.int64) * stride_ih
        for n0 in range(0, num_n_blocks, KEY_CHUNK):
            blocks = n0 + tl.arange(0, KEY_CHUNK)
            cols = blocks[:, None] * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]
            valid = cols < seqlen_k
            if HAS_MASK:
                lts = _load_bound(base, stride_is, cols, valid, 0, 0, seqlen_q)
            else:  # no column mask: empty intervals everywhere (LTS = LTE = Sq, UTS = UTE = 0)
                lts = tl.zeros_like(cols) + seqlen_q
            lte = _load_bound(base, stride_is, cols, valid, LTE_COL, seqlen_q, seqlen_q)
            uts = _load_bound(base, stride_is, cols, valid, UTS_COL, 0, seqlen_q)
            ute = _load_bound(base, stride_is, cols, valid, UTE_COL, 0, seqlen_q)
            _store_bounds(bounds + blocks, num_n_blocks, lts, lte, uts, ute, valid, blocks < num_n_blocks, 1)
        tl.debug_barrier()

    if TRANSPOSED:
        num_outer, num_inner = num_n_blocks, num_m_blocks
    else:
        num_outer, num_inner = num_m_blocks, num_n_blocks
    counts = row_id.to(tl.int64) * num_outer
    offset = seqlen_k - seqlen_q
    for o0 in range(0, num_outer, OUTER_CHUNK):
        outer = o0 + tl.arange(0, OUTER_CHUNK)
        outer_ok = outer < num_outer
        list_rows = (counts + outer) * num_inner
        num_full = tl.zeros([OUTER_CHUNK], dtype=tl.int32)
        num_part = tl.zeros([OUTER_CHUNK], dtype=tl.int32)
        for i0 in range(0, num_inner, INNER_CHUNK):
            inner = i0 + tl.arange(0, INNER_CHUNK)
            valid = outer_ok[:, None] & (inner < num_inner)[None, :]
            if TRANSPOSED:
                m = inner[None, :] + tl.zeros([OUTER_CHUNK, 1], dtype=tl.int32)
                n = outer[:, None] + tl.zeros([1, INNER_CHUNK], dtype=tl.int32)
            else:
                m = outer[:, None] + tl.zeros([1, INNER_CHUNK], dtype=tl.int32)
                n = inner[None, :] + tl.zeros([OUTER_CHUNK, 1], dtype=tl.int32)
            r0 = m * BLOCK_M
            r1 = tl.minimum(r0 + BLOCK_M, seqlen_q)
            c0 = n * BLOCK_N
            c1 = tl.minimum(c0 + BLOCK_N, seqlen_k)
            is_full, is_part = _classify(bounds, num_n_blocks, n, valid & (n < num_n_blocks), r0, r1, c0, c1, offset,
                                         valid, CAUSAL, BLOCK_N)  # fmt: skip
            full_pos = num_full[:, None] + tl.cumsum(is_full.to(tl.int32), 1) - 1
            part_pos = num_part[:, None] + tl.cumsum(is_part.to(tl.int32), 1) - 1
            inner_2d = inner[None, :] + tl.zeros([OUTER_CHUNK, 1], dtype=tl.int32)
            tl.store(FullIndex + list_rows[:, None] + full_pos, inner_2d, mask=is_full)
            tl.store(PartIndex + list_rows[:, None] + part_pos, inner_2d, mask=is_part)
            num_full += tl.sum(is_full.to(tl.int32), 1)
            num_part += tl.sum(is_part.to(tl.int32), 1)
        tl.store(FullCount + counts + outer, num_full, mask=outer_ok)
        tl.store(PartCount + counts + outer, num_part, mask=outer_ok)
    tl.debug_barrier()

    if row_id == 0:
        tl.store(Counter, 0)
    for first in range(0, num_outer, ORDER_CHUNK):
        _order_chunk(FullCount + counts, PartCount + counts, Order + counts, first, num_outer, ORDER_CHUNK)


class KeyBlockBounds(NamedTuple):
    """What a backward may reuse from its forward: ``block_bounds``' output for blocks of ``block_n`` keys and, if
    the forward built them, the tile lists per key block (``plan(..., transposed=True)``) of ``lists_block_m`` x
    ``block_n`` tiles."""

    block_n: int
    tensor: torch.Tensor
    lists: TileLists | None = None
    lists_block_m: int = 0


class TileLists(NamedTuple):
    """Compacted block lists: counts ``[Bm * Hm, num_outer]`` and indices ``[Bm * Hm, num_outer, num_inner]``,
    stored flat (row-major, 1-D tensors: the kernels take pointers, and each view costs the host a dispatch).

    Only the first ``count`` entries of each index row are written. ``order`` ``[Bm * Hm, num_outer]`` lists
    the outer blocks by decreasing number of live tiles: kernels launch the heaviest first, so the last
    wave of programs is short (longest-processing-time-first scheduling). ``counter`` (int32 ``[1]``, zero) is
    for a persistent kernel to hand out its work items.
    """

    full_count: torch.Tensor
    full_index: torch.Tensor
    part_count: torch.Tensor
    part_index: torch.Tensor
    order: torch.Tensor
    counter: torch.Tensor

    def per_block(self) -> tuple[torch.Tensor, ...]:
        """The five tensors every main kernel takes: counts and indices of both lists, and the order."""
        return self.full_count, self.full_index, self.part_count, self.part_index, self.order

    def shaped(self, rows: int) -> TileLists:
        """The same lists as ``[rows, num_outer]`` counts and order and ``[rows, num_outer, num_inner]`` indices."""
        num_outer = self.full_count.numel() // rows
        return TileLists(self.full_count.view(rows, num_outer), self.full_index.view(rows, num_outer, -1),
                         self.part_count.view(rows, num_outer), self.part_index.view(rows, num_outer, -1),
                         self.order.view(rows, num_outer), self.counter)  # fmt: skip


def block_bounds(
    indices: torch.Tensor | None,
    form: MaskForm,
    seqlen_q: int,
    seqlen_k: int,
    block_n: int,
    device: torch.device,
) -> torch.Tensor:
    """Bounds ``[Bm * Hm, 8, ceil(Sk / block_n)]`` int32: LTS min, max, LTE min, max, UTS ..., UTE ...

    ``indices`` is ``[Bm, Hm, Sk, C]`` int32 (any strides); ``None`` means no column mask.
    """
    num_blocks = cdiv(seqlen_k, block_n)
    if indices is None:
        # Nothing hidden but the causal triangle: LTS = LTE = Sq, UTS = UTE = 0 in every block. Filled on
        # the device: a tensor built from a Python list would be a blocking host-to-device copy.
        bounds = torch.full((1, 8, num_blocks), seqlen_q, dtype=torch.int32, device=device)
        bounds[:, 4:] = 0
        return bounds
    batch, heads = indices.shape[:2]
    bounds = torch.empty(batch * heads, 8, num_blocks, dtype=torch.int32, device=indices.device)
    if num_blocks and batch * heads:
        _block_bounds_kernel[(num_blocks, batch * heads)](
            indices,
            bounds,
            indices.stride(0),
            indices.stride(1),
            indices.stride(2),
            heads,
            seqlen_q,
            seqlen_k,
            num_blocks,
            LTE_COL=form.lte_col,
            UTS_COL=form.uts_col,
            UTE_COL=form.ute_col,
            BLOCK_N=block_n,
        )
    return bounds


def tile_lists(
    bounds: torch.Tensor,
    causal: bool,
    seqlen_q: int,
    seqlen_k: int,
    block_m: int,
    block_n: int,
    transposed: bool,
) -> TileLists:
    """Per outer block, the lists of live inner blocks (see the module docstring).

    Two launches and one allocation: this runs before every main kernel, and each launch or allocation costs the
    host about as much as the other (tens of microseconds), while the GPU waits for the main kernel.
    """
    rows = bounds.shape[0]
    num_m, num_n = cdiv(seqlen_q, block_m), cdiv(seqlen_k, block_n)
    num_outer, num_inner = (num_n, num_m) if transposed else (num_m, num_n)
    counts = rows * num_outer
    storage = torch.empty(list_words(rows, num_outer, num_inner), dtype=torch.int32, device=bounds.device)
    lists, _ = _list_views(storage, rows, num_outer, num_inner)
    full_count, full_index, part_count, part_index, order, counter = lists
    if rows and num_outer and num_inner:
        chunk = min(1024, max(16, next_power_of_2(num_inner)))
        _tile_lists_kernel[(num_outer, rows)](
            bounds,
            full_count,
            full_index,
            part_count,
            part_index,
            seqlen_q,
            seqlen_k,
            num_m,
            num_n,
            CAUSAL=causal,
            TRANSPOSED=transposed,
            BLOCK_M=block_m,
            BLOCK_N=block_n,
            CHUNK=chunk,
        )
        order_chunk = min(_ORDER_CHUNK, max(16, next_power_of_2(num_outer)))
        _order_kernel[(cdiv(num_outer, order_chunk), rows)](
            full_count, part_count, order, counter, num_outer, CHUNK=order_chunk
        )
    elif counts:  # no inner blocks: nothing is live
        storage.zero_()
        order.view(rows, num_outer).copy_(torch.arange(num_outer, dtype=torch.int32, device=bounds.device))
    return lists


def list_words(rows: int, num_outer: int, num_inner: int) -> int:
    """int32 words of one ``TileLists``: three count-sized arrays, two index arrays and the counter."""
    return rows * num_outer * (3 + 2 * num_inner) + 1


def _list_views(storage: torch.Tensor, rows: int, num_outer: int, num_inner: int) -> tuple[TileLists, torch.Tensor]:
    """The ``TileLists`` in the first ``list_words`` words of one flat int32 allocation, and the words after
    them (empty if there are none), in one split."""
    counts = rows * num_outer
    sizes = [counts] * 3 + [counts * num_inner] * 2 + [1]
    full_count, part_count, order, full_index, part_index, counter, rest = storage.split_with_sizes(
        [*sizes, storage.numel() - sum(sizes)]
    )
    return TileLists(full_count, full_index, part_count, part_index, order, counter), rest


# The one-launch path (``_row_plan_kernel``) runs one program per row; above this many tiles per row that program
# would take longer than the launches it saves, and the lists are built by a grid of programs instead.
ROW_PLAN_MAX_TILES = 1 << 16
# Elements of one 2-D chunk in ``_row_plan_kernel`` (8 per thread with its 8 warps: more spilled offline at sm_90).
_ROW_PLAN_CHUNK = 2048
ROW_PLAN_WARPS = 8
_ROW_PLAN = CachedKernel(_row_plan_kernel)


@functools.lru_cache(maxsize=256)
def row_plan_constexprs(form: MaskForm, bounds_given: bool, transposed: bool, block_m: int, block_n: int, num_m: int,
                        num_n: int) -> dict:  # fmt: skip
    """``_row_plan_kernel``'s compile-time arguments: the mask form, tile sizes and 2-D chunks for these rows."""
    num_outer, num_inner = (num_n, num_m) if transposed else (num_m, num_n)
    inner_chunk = min(256, max(16, next_power_of_2(num_inner)))
    return dict(
        HAS_MASK=form.has_mask, BOUNDS_GIVEN=bounds_given, LTE_COL=form.lte_col, UTS_COL=form.uts_col,
        UTE_COL=form.ute_col, CAUSAL=form.causal, TRANSPOSED=transposed, BLOCK_M=block_m, BLOCK_N=block_n,
        KEY_CHUNK=min(next_power_of_2(num_n), max(1, _ROW_PLAN_CHUNK // block_n)),
        OUTER_CHUNK=min(max(16, next_power_of_2(num_outer)), max(16, _ROW_PLAN_CHUNK // inner_chunk)),
        INNER_CHUNK=inner_chunk, ORDER_CHUNK=min(_ORDER_CHUNK, max(16, next_power_of_2(num_outer))),
    )  # fmt: skip


def plan(
    indices: torch.Tensor | None,
    form: MaskForm,
    seqlen_q: int,
    seqlen_k: int,
    block_m: int,
    block_n: int,
    transposed: bool,
    device: torch.device,
    bounds: torch.Tensor | None = None,
) -> tuple[torch.Tensor, TileLists]:
    """``block_bounds`` (unless ``bounds`` is given) and ``tile_lists``, in one launch where rows are short.

    Returns the bounds ``[Bm * Hm, 8, ceil(Sk / block_n)]`` and the lists; ``bounds`` must be of ``block_n``-key
    blocks. Before every main kernel the GPU waits for these launches, and on a slow host each costs more than
    the GPU work, so rows of at most ``ROW_PLAN_MAX_TILES`` tiles take one program per row for all three steps.
    """
    num_m, num_n = cdiv(seqlen_q, block_m), cdiv(seqlen_k, block_n)
    num_outer, num_inner = (num_n, num_m) if transposed else (num_m, num_n)
    rows = bounds.shape[0] if bounds is not None else (1 if indices is None else indices.shape[0] * indices.shape[1])
    if not (rows and num_outer and num_inner) or num_outer * num_inner > ROW_PLAN_MAX_TILES:
        if bounds is None:
            bounds = block_bounds(indices, form, seqlen_q, seqlen_k, block_n, device)
        return bounds, tile_lists(bounds, form.causal, seqlen_q, seqlen_k, block_m, block_n, transposed)
    given = bounds is not None
    words = list_words(rows, num_outer, num_inner)
    storage = torch.empty(words + (0 if given else rows * 8 * num_n), dtype=torch.int32, device=device)
    lists, rest = _list_views(storage, rows, num_outer, num_inner)
    if not given:
        bounds = rest.view(rows, 8, num_n)
    source = indices if indices is not None else bounds
    strides = (indices.stride(0), indices.stride(1), indices.stride(2)) if indices is not None else (0, 0, 0)
    ints = (*strides, 1 if indices is None else indices.shape[1], seqlen_q, seqlen_k, num_m, num_n)
    # The lists and fresh bounds sit at offsets of one new allocation that ``rows`` and the ints fix; the mask's
    # and given bounds' alignment are the caller's.
    signature = (rows, ints, source.dtype, source.data_ptr() % 16, bounds.data_ptr() % 16 if given else None)
    _ROW_PLAN(
        (rows,), signature, source, bounds, *lists.per_block(), lists.counter, *ints,
        **row_plan_constexprs(form, given, transposed, block_m, block_n, num_m, num_n), num_warps=ROW_PLAN_WARPS,
    )  # fmt: skip
    return bounds, lists
