"""Warp-specialized, persistent FlashMask forward for Hopper (Gluon): D=128 and D=64, every mask form.

The Triton forward (``forward.py``) runs its two warpgroups in lock-step and waits on each wgmma as soon as it
is issued, so the exponentials and the tensor cores take turns. Here each warpgroup owns 64 query rows and its
own instruction stream (``gl.warp_specialize``), and issues the next tile's ``Q K^T`` and the previous tile's
``P V`` before the softmax that lies between them (FlashAttention-3's schedule): the softmax of tile ``j`` runs
while the tensor cores compute ``P_{j-1} V_{j-1}``. A one-warp producer streams Q, K and V by TMA through a
ring of shared-memory stages; K and V have their own ready / empty barriers, so a stage's K is refilled as soon
as both warpgroups have their scores. The grid is one program per SM, taking query blocks in grid order
(``_work_items``), so one block's Q and K/V loads overlap the previous block's last tiles and output stores.

Same contract as ``fwd_kernel``: the tile lists of ``tiles.tile_lists`` (unmasked key blocks, then partial ones,
which get the element mask: causal / key range, and the column mask of every form, its row limits packed where
that saves registers, see ``_packed_limits``), heaviest query blocks first,
the key sweeps (``SWEEP``, ``CARRY_IN``, ``CARRY_OUT``) and the outputs (``out`` in the input dtype, ``lse``
fp32; 0 and ``-inf`` for rows that see nothing).

Gluon has no interpreter: this kernel runs on Hopper GPUs only and is checked there (``benchmarks/gpu_check.py``).
"""

from __future__ import annotations

from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import mbarrier, tma, warpgroup_mma, warpgroup_mma_wait

# A scalar Triton helper: Gluon compiles it as it is (same SASS as a Gluon copy).
from ._common import _column_limits, _fill_below_or_from, _fill_in_spans
from ._work_items import _claim_and_publish, _item_ring, _receive
from .forward import _first_at_least

LN2: gl.constexpr = gl.constexpr(0.6931471805599453)
ALL_ROWS: gl.constexpr = gl.constexpr(2**30)  # above any row index
# Rows of one warpgroup's m64 wgmma; a program has two warpgroups.
WG_ROWS: gl.constexpr = gl.constexpr(64)
WS_BLOCK_M = 128
WS_BLOCK_N = 128  # the only key tile measured and checked
WS_HEAD_DIMS = (64, 128)  # head dims the launcher gives this kernel
# Registers per thread at launch, for the 12 warps (3 warpgroups) the partitions round up to: 168 x 384 threads
# fill the register file; the producer warp gives back down to 24 and the two consumers take 240 each.
WS_MAX_REGISTERS = 168


@gluon.jit
def _key_block(lists, t):
    """Key block of the ``t``-th visited tile: the unmasked list first, then the partial one."""
    full_list, part_list, full_lo, part_lo, num_full_here, _num_tiles = lists
    if t < num_full_here:
        block = gl.load(full_list + full_lo + t)
    else:
        block = gl.load(part_list + part_lo + (t - num_full_here))
    return block


@gluon.jit
def _list_row(item, params):
    """Row of work item ``item``'s query-block slot in the lists' ``[rows, num_m_blocks]`` arrays (int64)."""
    num_q_heads, q_per_mask, num_m_blocks = params[11], params[13], params[14]
    list_stride_b = params[10]
    pid_bh = item // num_m_blocks
    b = pid_bh // num_q_heads
    mask_h = (pid_bh % num_q_heads) // q_per_mask
    return (b * list_stride_b + mask_h).to(gl.int64) * num_m_blocks


@gluon.jit
def _item_lists(item, params, SWEEP: gl.constexpr):
    """What work item ``item``'s tiles are, from global memory: ``(pid_m, full_lo, part_lo, num_full_here,
    num_tiles)``, its query block (``Order``: heaviest first, as in ``fwd_kernel``, for the slot
    ``item % num_m_blocks`` of batch x query head ``item // num_m_blocks``), where its sweep's tiles start in
    each list, and how many it visits."""
    FullCount, FullIndex, PartCount, PartIndex, Order, sweep_lo, sweep_hi = params[1:8]
    num_m_blocks, num_n_blocks = params[14], params[15]
    list_base = _list_row(item, params)
    pid_m = gl.load(Order + list_base + item % num_m_blocks)
    list_row = list_base + pid_m
    num_full = gl.load(FullCount + list_row)
    num_part = gl.load(PartCount + list_row)
    full_lo = num_full * 0
    part_lo = num_part * 0
    if SWEEP:
        full_list = FullIndex + list_row * num_n_blocks
        part_list = PartIndex + list_row * num_n_blocks
        full_lo = _first_at_least(full_list, num_full, sweep_lo)
        num_full = _first_at_least(full_list, num_full, sweep_hi)
        part_lo = _first_at_least(part_list, num_part, sweep_lo)
        num_part = _first_at_least(part_list, num_part, sweep_hi)
    num_full_here = num_full - full_lo
    return pid_m, full_lo, part_lo, num_full_here, num_full_here + (num_part - part_lo)


@gluon.jit
def _work_item(item, item_lists, params):
    """Tile lists and coordinates of work item ``item`` from its ``_item_lists``: ``(lists, coords)`` as the
    partitions take them."""
    (Mask, _FullCount, FullIndex, _PartCount, PartIndex, _Order, _sweep_lo, _sweep_hi, stride_mb, stride_mh,
     _list_stride_b, num_q_heads, q_per_kv, q_per_mask, num_m_blocks, num_n_blocks) = params  # fmt: skip
    pid_m, full_lo, part_lo, num_full_here, num_tiles = item_lists
    pid_bh = item // num_m_blocks
    b = pid_bh // num_q_heads
    h = pid_bh % num_q_heads
    kv_h = h // q_per_kv
    mask_h = h // q_per_mask
    list_row = _list_row(item, params) + pid_m
    lists = (FullIndex + list_row * num_n_blocks, PartIndex + list_row * num_n_blocks, full_lo, part_lo,
             num_full_here, num_tiles)  # fmt: skip
    mask_base = Mask + b.to(gl.int64) * stride_mb + mask_h * stride_mh
    coords = (b, h, kv_h, pid_m * (2 * WG_ROWS), pid_bh, mask_base)
    return lists, coords


@gluon.jit
def _producer(descs, bufs, bars, sched, params, outs, dims, WG: gl.constexpr, CAUSAL: gl.constexpr,
              HAS_MASK: gl.constexpr, LTE_COL: gl.constexpr, UTS_COL: gl.constexpr, UTE_COL: gl.constexpr,
              CARRY_IN: gl.constexpr, CARRY_OUT: gl.constexpr, SWEEP: gl.constexpr,
              PERSISTENT: gl.constexpr):  # fmt: skip
    """One warp: per work item, the Q rows of both warpgroups, then K and V of every visited tile into the stage
    ring (one ring position per tile, carried across items).

    It takes the consumers' arguments because Gluon's worker partitions share one signature.
    """
    q_desc, k_desc, v_desc = descs
    q_bufs, k_bufs, v_bufs = bufs
    q_bars, q_empty, k_ready, v_ready, k_empty, v_empty = bars
    num_items = sched[4]
    num_stages: gl.constexpr = k_bufs.type.shape[0]
    block_n: gl.constexpr = k_bufs.type.shape[2]
    n = 0
    ring = 0
    item = _claim_and_publish(sched, n, PERSISTENT)
    while item < num_items:
        lists, coords = _work_item(item, _item_lists(item, params, SWEEP), params)
        b, h, kv_h, start_m, _pid_bh, _mask_base = coords
        for g in gl.static_range(2):
            # Barriers start with the phase before the first complete: the first round of waits passes at once.
            mbarrier.wait(q_empty.index(g), (n & 1) ^ 1)
            mbarrier.expect(q_bars.index(g), q_desc.block_type.nbytes)
            tma.async_copy_global_to_shared(q_desc, [b, start_m + g * WG_ROWS, h, 0], q_bars.index(g),
                                            q_bufs.index(g))  # fmt: skip
        num_tiles = lists[5]
        for t in range(num_tiles):
            stage = (ring + t) % num_stages
            phase = ((ring + t) // num_stages) & 1
            start_n = _key_block(lists, t) * block_n
            mbarrier.wait(k_empty.index(stage), phase ^ 1)
            mbarrier.expect(k_ready.index(stage), k_desc.block_type.nbytes)
            tma.async_copy_global_to_shared(k_desc, [b, start_n, kv_h, 0], k_ready.index(stage),
                                            k_bufs.index(stage))  # fmt: skip
            mbarrier.wait(v_empty.index(stage), phase ^ 1)
            mbarrier.expect(v_ready.index(stage), v_desc.block_type.nbytes)
            tma.async_copy_global_to_shared(v_desc, [b, start_n, kv_h, 0], v_ready.index(stage),
                                            v_bufs.index(stage))  # fmt: skip
        ring += num_tiles
        n += 1
        item = _claim_and_publish(sched, n, PERSISTENT)


@gluon.constexpr_function
def _store_layout(head_dim, step):
    """Layouts of one warpgroup's ``[64, head_dim]`` output tile on the way from the wgmma accumulator's (each thread
    2 consecutive columns of a row, its quad's 4 threads 8: a warp's store writes 16-byte runs of 8 rows) to one in
    which each thread holds 8 consecutive columns and its quad 32 (64-byte runs). ``step`` 1 swaps the accumulator's
    column bits 2 (a lane bit) and 8 (a register bit), ``step`` 2 also 4 and 16: one lane / register swap each, so
    that Triton moves the values by shuffles within each warp (two swaps in one conversion would go through shared
    memory, which the K/V stages fill). Rows stay on the warps and lanes of the accumulator."""
    rows_by_lane = [[1, 0], [2, 0], [4, 0]]
    high_cols = [[0, c] for c in (32, 64, 128) if c < head_dim]
    if step == 1:
        lane_bases = [[0, 8], [0, 4], *rows_by_lane]
        reg_bases = [[0, 1], [0, 2], [8, 0], [0, 16], *high_cols]
    else:
        lane_bases = [[0, 8], [0, 16], *rows_by_lane]
        reg_bases = [[0, 1], [0, 2], [0, 4], [8, 0], *high_cols]
    return gl.DistributedLinearLayout(reg_bases=reg_bases, lane_bases=lane_bases, warp_bases=[[16, 0], [32, 0]],
                                      block_bases=[], shape=[WG_ROWS, head_dim])  # fmt: skip


@gluon.jit
def _rows_from(x, first_row):
    """Row limit ``x`` relative to a warpgroup's first row, clipped to its 64 rows (no overflow for any int32)."""
    return gl.minimum(gl.maximum(gl.minimum(gl.maximum(x, 0), ALL_ROWS) - first_row, 0), WG_ROWS)


@gluon.jit
def _packed_limits(mask_base, stride_ms, start_n, first_row, offs_n, dims, CAUSAL: gl.constexpr,
                   LTE_COL: gl.constexpr, UTS_COL: gl.constexpr, UTE_COL: gl.constexpr):  # fmt: skip
    """The hidden rows of key columns ``start_n + offs_n`` within one warpgroup's 64 query rows, as two intervals
    per column: int32, shaped and laid out as ``offs_n`` (the score tile's column slice), one byte each for the
    first row and length of each, relative to ``first_row`` and clipped to the 64.

    Every form fits two intervals: the lower ``[LTS, LTE)`` (to the last row when LTE is not stored) and the
    upper ``[UTS, UTE)`` with four vectors, else ``[0, below)`` (``_common._column_limits``: the causal diagonal,
    the non-causal two-vector form's UTE, or every row of a column past ``Sk``).

    Why packed: in the score tile's layout a thread holds 32 of its 128 columns, and their row limits took 64-160
    registers (the four-vector form spilled 540 B; with the persistent grid's extra state the others spilled too).
    Here the limits are worked out with one column per thread, packed, and moved to that layout (through shared
    memory): 32 registers.
    """
    seqlen_q, seqlen_k, _qk_scale = dims
    block_n: gl.constexpr = offs_n.type.shape[0]
    column_layout: gl.constexpr = gl.BlockedLayout([1], [32], [4], [0])
    cols = start_n + gl.arange(0, block_n, layout=column_layout)
    # 32-bit column offsets: the launcher keeps Sk * stride below 2**31.
    below, lower_start, lower_span, upper_start, upper_span = _column_limits(
        mask_base + cols * stride_ms, cols, seqlen_q, seqlen_k, CAUSAL, LTE_COL, UTS_COL, UTE_COL
    )
    # Two-sided: start + span = max(LTE, start), no overflow; one-sided: to the last row.
    lower_end = lower_start + lower_span if LTE_COL >= 0 else below * 0 + ALL_ROWS
    if UTS_COL >= 0:
        upper_end = upper_start + upper_span
        # ``below`` is 0 here, or every row of a column past Sk: that goes into the lower interval.
        lower_start = gl.where(below > 0, 0, lower_start)
        lower_end = gl.where(below > 0, ALL_ROWS, lower_end)
    else:
        upper_start = below * 0
        upper_end = below
    lower_first = _rows_from(lower_start, first_row)
    upper_first = _rows_from(upper_start, first_row)
    lower_len = gl.maximum(_rows_from(lower_end, first_row) - lower_first, 0)
    upper_len = gl.maximum(_rows_from(upper_end, first_row) - upper_first, 0)
    packed = lower_first | (lower_len << 8) | (upper_first << 16) | (upper_len << 24)
    return gl.convert_layout(packed, offs_n.type.layout)


@gluon.jit
def _mask_limits(start_n, first_row, offs_n, dims, mask_base, stride_ms, CAUSAL: gl.constexpr, HAS_MASK: gl.constexpr,
                 LTE_COL: gl.constexpr, UTS_COL: gl.constexpr, UTE_COL: gl.constexpr):  # fmt: skip
    """What the element mask of the partial tile at key column ``start_n`` reads from memory, laid out as
    ``offs_n`` (the score tile's column slice): LTS with one vector, ``_packed_limits`` with two or four, and
    nothing (``start_n``) without a column mask: the loads of ``_masked_scores``, ``_apply_limits`` the compares."""
    seqlen_k = dims[1]
    if HAS_MASK and LTE_COL < 0 and UTE_COL < 0:
        cols = start_n + offs_n
        # 32-bit column offsets: the launcher keeps Sk * stride below 2**31.
        limits = gl.load(mask_base + cols * stride_ms, mask=cols < seqlen_k, other=0)
    elif HAS_MASK:
        limits = _packed_limits(mask_base, stride_ms, start_n, first_row, offs_n, dims, CAUSAL, LTE_COL, UTS_COL,
                                UTE_COL)  # fmt: skip
    else:
        limits = start_n
    return limits


@gluon.jit
def _apply_limits(s, limits, start_n, first_row, rows, offs_n, dims, CAUSAL: gl.constexpr, HAS_MASK: gl.constexpr,
                  LTE_COL: gl.constexpr, UTE_COL: gl.constexpr):  # fmt: skip
    """``-inf`` where a query row (``rows``, from ``first_row``) may not see a key column of this partial tile,
    from the tile's ``_mask_limits``.

    With a column mask of two or four vectors, the two intervals of ``_packed_limits`` per column (one unsigned
    compare each). With one (causal: hidden below the diagonal and from LTS on) the two limits per column are used
    as they are: that was 2-5% faster than packed at 8K and 32K (s11g against s11f), for 4 B of spilled scalars.
    Without a column mask, the causal triangle (aligned bottom-right) and the columns past ``Sk``.
    """
    seqlen_q, seqlen_k, _qk_scale = dims
    rows_2d = gl.expand_dims(rows, 1)
    if HAS_MASK and LTE_COL < 0 and UTE_COL < 0:
        cols = start_n + offs_n
        below = gl.where(cols < seqlen_k, cols - (seqlen_k - seqlen_q), ALL_ROWS)
        # Both conditions in one predicate (inline PTX), one select per element.
        s = _fill_below_or_from(s, float("-inf"), rows_2d, gl.expand_dims(below, 0), gl.expand_dims(limits, 0))
    elif HAS_MASK:
        packed = gl.expand_dims(limits, 0)
        s = _fill_in_spans(s, float("-inf"), rows_2d - first_row, packed & 255, (packed >> 8) & 255,
                           (packed >> 16) & 255, packed >> 24)  # fmt: skip
    else:
        cols_2d = gl.expand_dims(start_n + offs_n, 0)
        hidden = cols_2d >= seqlen_k
        if CAUSAL:
            hidden = hidden | (cols_2d > rows_2d + (seqlen_k - seqlen_q))
        s = gl.where(hidden, float("-inf"), s)
    return s


@gluon.jit
def _masked_scores(s, start_n, first_row, rows, offs_n, dims, mask_base, stride_ms, CAUSAL: gl.constexpr,
                   HAS_MASK: gl.constexpr, LTE_COL: gl.constexpr, UTS_COL: gl.constexpr,
                   UTE_COL: gl.constexpr):  # fmt: skip
    """``-inf`` where a query row may not see a key column of this partial tile (loads, then the element mask)."""
    limits = _mask_limits(start_n, first_row, offs_n, dims, mask_base, stride_ms, CAUSAL, HAS_MASK, LTE_COL, UTS_COL,
                          UTE_COL)  # fmt: skip
    return _apply_limits(s, limits, start_n, first_row, rows, offs_n, dims, CAUSAL, HAS_MASK, LTE_COL, UTE_COL)


@gluon.jit
def _softmax_step(s, m_i, l_i, qk_scale):
    """Online-softmax update for one tile of raw scores: ``(p, alpha, m_new, l_new)``, fp32."""
    m_new = gl.maximum(m_i, gl.max(s, 1) * qk_scale)
    # A row that has seen nothing yet keeps m = -inf; exponentiate against 0 so that exp2 gives 0, not NaN.
    m_exp = gl.where(m_new == float("-inf"), 0.0, m_new)
    p = gl.exp2(s * qk_scale - gl.expand_dims(m_exp, 1))
    alpha = gl.exp2(m_i - m_exp)
    return p, alpha, m_new, l_i * alpha + gl.sum(p, 1)


@gluon.jit
def _next_tile(t, ring, acc, p_op, m_i, l_i, q_smem, bufs, bars, lists, mask_args, rows, offs_n, dims, s_zero,
               CAUSAL: gl.constexpr, HAS_MASK: gl.constexpr, LTE_COL: gl.constexpr,
               UTS_COL: gl.constexpr, UTE_COL: gl.constexpr):  # fmt: skip
    """Visited tile ``t >= 1`` of one warpgroup's item: its scores, issued before the previous tile's ``P V``, then
    its softmax while that runs; the element mask if ``t`` is a partial tile (a runtime test after the scores).
    Returns the new ``(acc, p_op, m_i, l_i)``.

    Loading a partial tile's key block and limits before its scores are waited for (the unmasked and partial tiles
    in two loops) was 5% slower on 8K sliding_window (benchmarks/NOTES.md, session 33).
    """
    _q_bufs, k_bufs, v_bufs = bufs
    _q_bars, _q_empty, k_ready, v_ready, k_empty, v_empty = bars
    first_row, mask_base, stride_ms = mask_args
    qk_scale = dims[2]
    num_stages: gl.constexpr = k_bufs.type.shape[0]
    block_n: gl.constexpr = k_bufs.type.shape[2]
    head_dim: gl.constexpr = k_bufs.type.shape[4]
    dtype: gl.constexpr = k_bufs.type.element_ty
    o_row_layout: gl.constexpr = gl.SliceLayout(1, acc.type.layout)
    stage = (ring + t) % num_stages
    prev = (ring + t - 1) % num_stages
    mbarrier.wait(k_ready.index(stage), ((ring + t) // num_stages) & 1)
    k_t = k_bufs.index(stage).reshape([block_n, head_dim]).permute((1, 0))
    s_token = warpgroup_mma(q_smem, k_t, s_zero, use_acc=False, is_async=True)
    mbarrier.wait(v_ready.index(prev), ((ring + t - 1) // num_stages) & 1)
    v_prev = v_bufs.index(prev).reshape([block_n, head_dim])
    acc_token = warpgroup_mma(p_op, v_prev, acc, is_async=True)
    # wgmma groups retire in order: this waits for the scores and leaves P V running under the softmax.
    s = warpgroup_mma_wait(1, deps=(s_token,))
    mbarrier.arrive(k_empty.index(stage))
    if t >= lists[4]:
        start_n = _key_block(lists, t) * block_n
        s = _masked_scores(s, start_n, first_row, rows, offs_n, dims, mask_base, stride_ms, CAUSAL, HAS_MASK,
                           LTE_COL, UTS_COL, UTE_COL)  # fmt: skip
    p, alpha, m_i, l_i = _softmax_step(s, m_i, l_i, qk_scale)
    acc, p_op = warpgroup_mma_wait(0, deps=(acc_token, p_op))
    mbarrier.arrive(v_empty.index(prev))
    acc = acc * gl.expand_dims(gl.convert_layout(alpha, o_row_layout), 1)
    p_op = gl.convert_layout(p.to(dtype), p_op.type.layout)
    return acc, p_op, m_i, l_i


@gluon.jit
def _consumer(descs, bufs, bars, sched, params, outs, dims, WG: gl.constexpr, CAUSAL: gl.constexpr,
              HAS_MASK: gl.constexpr, LTE_COL: gl.constexpr, UTS_COL: gl.constexpr, UTE_COL: gl.constexpr,
              CARRY_IN: gl.constexpr, CARRY_OUT: gl.constexpr, SWEEP: gl.constexpr,
              PERSISTENT: gl.constexpr):  # fmt: skip
    """One warpgroup: per work item, its 64 query rows over every visited key tile, then their output and LSE."""
    q_bufs, k_bufs, v_bufs = bufs
    q_bars, q_empty, k_ready, v_ready, k_empty, v_empty = bars
    num_items = sched[4]
    out_ptr, lse_ptr, state_acc, state_m, state_l, stride_ob, stride_os, stride_oh, stride_ms = outs
    seqlen_q, _seqlen_k, qk_scale = dims
    num_stages: gl.constexpr = k_bufs.type.shape[0]
    block_n: gl.constexpr = k_bufs.type.shape[2]
    head_dim: gl.constexpr = k_bufs.type.shape[4]
    dtype: gl.constexpr = k_bufs.type.element_ty
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                       instr_shape=[16, block_n, 16])  # fmt: skip
    o_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                       instr_shape=[16, head_dim, 16])  # fmt: skip
    p_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=2)
    row_layout: gl.constexpr = gl.SliceLayout(1, s_layout)
    o_row_layout: gl.constexpr = gl.SliceLayout(1, o_layout)
    offs_n = gl.arange(0, block_n, layout=gl.SliceLayout(0, s_layout))
    offs_d = gl.arange(0, head_dim, layout=gl.SliceLayout(0, o_layout))
    s_zero = gl.zeros([WG_ROWS, block_n], gl.float32, s_layout)
    q_smem = q_bufs.index(WG).reshape([WG_ROWS, head_dim])

    n = 0
    ring = 0
    item = _receive(sched, n, PERSISTENT)
    while item < num_items:
        lists, coords = _work_item(item, _item_lists(item, params, SWEEP), params)
        num_full_here = lists[4]
        num_tiles = lists[5]
        b, h, _kv_h, start_m, pid_bh, mask_base = coords
        first_row = start_m + WG * WG_ROWS
        rows = first_row + gl.arange(0, WG_ROWS, layout=row_layout)
        o_rows = first_row + gl.arange(0, WG_ROWS, layout=o_row_layout)
        row_ok = rows < seqlen_q
        o_row_ok = gl.expand_dims(o_rows < seqlen_q, 1)
        state_rows = pid_bh.to(gl.int64) * seqlen_q + rows
        state_ptrs = state_acc + gl.expand_dims((pid_bh.to(gl.int64) * seqlen_q + o_rows) * head_dim, 1)
        state_ptrs = state_ptrs + gl.expand_dims(offs_d, 0)
        if CARRY_IN:
            # The online-softmax state the previous sweep left: same arithmetic as one long sweep.
            m_i = gl.load(state_m + state_rows, mask=row_ok, other=float("-inf"))
            l_i = gl.load(state_l + state_rows, mask=row_ok, other=0.0)
            acc = gl.load(state_ptrs, mask=o_row_ok, other=0.0)
        else:
            m_i = gl.full([WG_ROWS], float("-inf"), gl.float32, row_layout)
            l_i = gl.zeros([WG_ROWS], gl.float32, row_layout)
            acc = gl.zeros([WG_ROWS, head_dim], gl.float32, o_layout)

        mbarrier.wait(q_bars.index(WG), n & 1)
        if num_tiles > 0:
            stage = ring % num_stages
            mbarrier.wait(k_ready.index(stage), (ring // num_stages) & 1)
            s = warpgroup_mma(q_smem, k_bufs.index(stage).reshape([block_n, head_dim]).permute((1, 0)), s_zero,
                              use_acc=False)  # fmt: skip
            mbarrier.arrive(k_empty.index(stage))
            if num_full_here == 0:
                start_n = _key_block(lists, 0) * block_n
                s = _masked_scores(s, start_n, first_row, rows, offs_n, dims, mask_base, stride_ms, CAUSAL, HAS_MASK,
                                   LTE_COL, UTS_COL, UTE_COL)  # fmt: skip
            p, alpha, m_i, l_i = _softmax_step(s, m_i, l_i, qk_scale)
            acc = acc * gl.expand_dims(gl.convert_layout(alpha, o_row_layout), 1)
            p_op = gl.convert_layout(p.to(dtype), p_layout)
            mask_args = (first_row, mask_base, stride_ms)
            for t in range(1, num_tiles):
                acc, p_op, m_i, l_i = _next_tile(t, ring, acc, p_op, m_i, l_i, q_smem, bufs, bars, lists, mask_args,
                                                 rows, offs_n, dims, s_zero, CAUSAL, HAS_MASK, LTE_COL, UTS_COL,
                                                 UTE_COL)  # fmt: skip
            # Every score tile is done: the producer may load the next item's Q rows while the last P V runs.
            mbarrier.arrive(q_empty.index(WG))
            last = (ring + num_tiles - 1) % num_stages
            mbarrier.wait(v_ready.index(last), ((ring + num_tiles - 1) // num_stages) & 1)
            acc = warpgroup_mma(p_op, v_bufs.index(last).reshape([block_n, head_dim]), acc)
            mbarrier.arrive(v_empty.index(last))
        else:
            mbarrier.arrive(q_empty.index(WG))
        ring += num_tiles

        if CARRY_OUT:
            gl.store(state_m + state_rows, m_i, mask=row_ok)
            gl.store(state_l + state_rows, l_i, mask=row_ok)
            gl.store(state_ptrs, acc, mask=o_row_ok)
        else:
            seen = l_i > 0.0
            l_safe = gl.where(seen, l_i, 1.0)
            out = (acc / gl.expand_dims(gl.convert_layout(l_safe, o_row_layout), 1)).to(dtype)
            # Stored in 16-byte pieces (a warp's store: 64-byte runs of 8 rows), not the accumulator's 4-byte pieces
            # (16-byte runs): forward -5.8% / -4.6% / -1.4% on 8K sliding_window / causal_document / full (H100,
            # benchmarks/NOTES.md, session 33).
            store_layout: gl.constexpr = _store_layout(head_dim, 2)
            out = gl.convert_layout(gl.convert_layout(out, _store_layout(head_dim, 1)), store_layout)
            store_rows = first_row + gl.arange(0, WG_ROWS, layout=gl.SliceLayout(1, store_layout))
            store_cols = gl.arange(0, head_dim, layout=gl.SliceLayout(0, store_layout))
            o_ptrs = out_ptr + b.to(gl.int64) * stride_ob + h * stride_oh
            o_ptrs = o_ptrs + gl.expand_dims(store_rows.to(gl.int64) * stride_os, 1) + gl.expand_dims(store_cols, 0)
            gl.store(o_ptrs, out, mask=gl.expand_dims(store_rows < seqlen_q, 1))
            lse = gl.where(seen, (m_i + gl.log2(l_safe)) * LN2, float("-inf"))
            gl.store(lse_ptr + state_rows, lse, mask=row_ok)
        n += 1
        item = _receive(sched, n, PERSISTENT)


@gluon.jit
def fwd_ws_kernel(
    q_desc,
    k_desc,
    v_desc,
    Out,
    Lse,
    Mask,
    FullCount,
    FullIndex,
    PartCount,
    PartIndex,
    Order,
    Counter,
    StateAcc,
    StateM,
    StateL,
    sweep_lo,
    sweep_hi,
    stride_ob,
    stride_os,
    stride_oh,
    stride_mb,
    stride_mh,
    stride_ms,
    list_stride_b,
    seqlen_q,
    seqlen_k,
    num_q_heads,
    q_per_kv,
    q_per_mask,
    num_m_blocks,
    num_n_blocks,
    num_items,
    qk_scale,
    CAUSAL: gl.constexpr,
    HAS_MASK: gl.constexpr,
    LTE_COL: gl.constexpr,
    UTS_COL: gl.constexpr,
    UTE_COL: gl.constexpr,
    NUM_STAGES: gl.constexpr,
    SWEEP: gl.constexpr = False,
    CARRY_IN: gl.constexpr = False,
    CARRY_OUT: gl.constexpr = False,
    PERSISTENT: gl.constexpr = False,
):
    """4 warps here plus a 4-warp and a 1-warp worker; ``num_items`` = query blocks of 128 x batch x query heads.

    Grid ``(query blocks, batch x query heads)``, one item per program; or, with ``PERSISTENT``, ``(programs,)``
    (one per SM) that claim items in grid order from ``Counter`` (int32, zero at launch) until none is left, so
    that one item's loads start while the previous one's last tiles and output are still in flight.
    ``q_desc`` / ``k_desc`` / ``v_desc``: Gluon tensor descriptors over ``[B, S, H, D]`` (D = 128 or 64) with boxes
    ``[1, 64, 1, D]`` (Q) and ``[1, BLOCK_N, 1, D]`` (K, V). The list arguments are ``tile_lists``' for
    ``BLOCK_M = 128`` and the K/V box's ``BLOCK_N``.
    """
    dtype: gl.constexpr = k_desc.dtype
    # (Gluon's frontend takes no starred expressions: lists are concatenated.)
    q_bufs = gl.allocate_shared_memory(dtype, [2] + q_desc.block_type.shape, q_desc.layout)  # noqa: RUF005
    k_bufs = gl.allocate_shared_memory(dtype, [NUM_STAGES] + k_desc.block_type.shape, k_desc.layout)  # noqa: RUF005
    v_bufs = gl.allocate_shared_memory(dtype, [NUM_STAGES] + v_desc.block_type.shape, v_desc.layout)  # noqa: RUF005
    q_bars = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    q_empty = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    k_ready = gl.allocate_shared_memory(gl.int64, [NUM_STAGES, 1], mbarrier.MBarrierLayout())
    v_ready = gl.allocate_shared_memory(gl.int64, [NUM_STAGES, 1], mbarrier.MBarrierLayout())
    k_empty = gl.allocate_shared_memory(gl.int64, [NUM_STAGES, 1], mbarrier.MBarrierLayout())
    v_empty = gl.allocate_shared_memory(gl.int64, [NUM_STAGES, 1], mbarrier.MBarrierLayout())
    for g in gl.static_range(2):
        mbarrier.init(q_bars.index(g), count=1)
        mbarrier.init(q_empty.index(g), count=1)  # released by the warpgroup that reads Q rows g
    for i in gl.static_range(NUM_STAGES):
        mbarrier.init(k_ready.index(i), count=1)
        mbarrier.init(v_ready.index(i), count=1)
        # Released once by each of the two consuming warpgroups.
        mbarrier.init(k_empty.index(i), count=2)
        mbarrier.init(v_empty.index(i), count=2)

    descs = (q_desc, k_desc, v_desc)
    bufs = (q_bufs, k_bufs, v_bufs)
    bars = (q_bars, q_empty, k_ready, v_ready, k_empty, v_empty)
    item_ids, item_ready, item_empty = _item_ring()
    sched = (item_ids, item_ready, item_empty, Counter, num_items)
    params = (Mask, FullCount, FullIndex, PartCount, PartIndex, Order, sweep_lo, sweep_hi, stride_mb, stride_mh,
              list_stride_b, num_q_heads, q_per_kv, q_per_mask, num_m_blocks, num_n_blocks)  # fmt: skip
    outs = (Out, Lse, StateAcc, StateM, StateL, stride_ob, stride_os, stride_oh, stride_ms)
    dims = (seqlen_q, seqlen_k, qk_scale)
    # fmt: off
    gl.warp_specialize(
        [
            (_consumer, (descs, bufs, bars, sched, params, outs, dims, 0,
                         CAUSAL, HAS_MASK, LTE_COL, UTS_COL, UTE_COL, CARRY_IN, CARRY_OUT, SWEEP, PERSISTENT)),
            (_consumer, (descs, bufs, bars, sched, params, outs, dims, 1,
                         CAUSAL, HAS_MASK, LTE_COL, UTS_COL, UTE_COL, CARRY_IN, CARRY_OUT, SWEEP, PERSISTENT)),
            (_producer, (descs, bufs, bars, sched, params, outs, dims, 0,
                         CAUSAL, HAS_MASK, LTE_COL, UTS_COL, UTE_COL, CARRY_IN, CARRY_OUT, SWEEP, PERSISTENT)),
        ],
        [4, 1],
        [240, 24],
    )
    # fmt: on
