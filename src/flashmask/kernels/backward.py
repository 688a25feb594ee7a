"""FlashMask backward kernels.

- ``bwd_preprocess_kernel``: ``delta = rowsum(dO * O) - dLSE`` and the LSE in log2 units, ``+inf`` on rows that
  saw nothing so that their recomputed probabilities are exactly 0. Rows are ``row_stride`` apart per (batch,
  head); the padding rows past ``Sq`` get ``+inf`` and 0 too (the Gluon backward reads whole 64-row tiles).
- ``bwd_dkdv_kernel``: one program per (key block, batch x key/value head); dK and dV stay in registers while
  it walks, for every query head of the GQA group, the lists of unmasked and then partially masked query
  blocks of its key block (SPEC section 3: contiguous runs collapse into the lists, so the inner loop carries
  no per-tile test). With ``ATOMIC_DQ`` it also adds each tile's dQ into an fp32 buffer: per-element
  atomics, or with ``DQ_TMA`` one bulk reduce-add per tile (Hopper).
- ``bwd_dq_kernel``: dQ in its own pass (the default: deterministic, and on the H100 faster than either kind
  of atomics), one program per (query block, batch x query head) over the forward's lists (recomputes
  ``QK^T`` and ``dO V^T`` once more).

As in the forward, every tile loop reads its list one entry ahead so that no index load sits in front of the
next tile's copies.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ._common import fill_hidden
from .forward import LOG2E


@triton.jit
def _delta_and_lse2(Out, DOut, Lse, DLse, Delta, Lse2, pid_bh, b, h, rows, offs_d, stride_ob, stride_os, stride_oh,
                    stride_db, stride_ds, stride_dh, seqlen_q, row_stride, HAS_DLSE: tl.constexpr,
                    HEAD_DIM: tl.constexpr, EVICT: tl.constexpr):  # fmt: skip
    """``Delta`` and ``Lse2`` of query ``rows`` of row ``pid_bh`` (= ``b * Hq + h``); ``b`` int64. ``EVICT``: the
    L2 eviction policy of the ``Out`` / ``DOut`` loads."""
    row_ok = rows < seqlen_q
    mask = row_ok[:, None] & (offs_d[None, :] < HEAD_DIM)
    o = tl.load(Out + b * stride_ob + h * stride_oh + rows[:, None].to(tl.int64) * stride_os + offs_d[None, :],
                mask=mask, other=0.0, eviction_policy=EVICT)  # fmt: skip
    do = tl.load(DOut + b * stride_db + h * stride_dh + rows[:, None].to(tl.int64) * stride_ds + offs_d[None, :],
                 mask=mask, other=0.0, eviction_policy=EVICT)  # fmt: skip
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    in_offs = pid_bh.to(tl.int64) * seqlen_q + rows
    if HAS_DLSE:
        delta -= tl.load(DLse + in_offs, mask=row_ok, other=0.0)
    lse = tl.load(Lse + in_offs, mask=row_ok, other=float("-inf"))
    lse2 = tl.where(lse == float("-inf"), float("inf"), lse * LOG2E)
    out_offs = pid_bh.to(tl.int64) * row_stride + rows
    tl.store(Delta + out_offs, delta, mask=rows < row_stride)
    tl.store(Lse2 + out_offs, lse2, mask=rows < row_stride)


@triton.jit
def bwd_preprocess_kernel(
    Out,
    DOut,
    Lse,
    DLse,
    Delta,
    Lse2,
    stride_ob,
    stride_os,
    stride_oh,
    stride_db,
    stride_ds,
    stride_dh,
    seqlen_q,
    row_stride,
    num_q_heads,
    HAS_DLSE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    HEAD_DIM_PAD: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // num_q_heads).to(tl.int64)
    h = pid_bh % num_q_heads
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    _delta_and_lse2(Out, DOut, Lse, DLse, Delta, Lse2, pid_bh, b, h, rows, tl.arange(0, HEAD_DIM_PAD), stride_ob,
                    stride_os, stride_oh, stride_db, stride_ds, stride_dh, seqlen_q, row_stride, HAS_DLSE,
                    HEAD_DIM, "")  # fmt: skip


@triton.jit
def _item_rows(item, first_row, blocks_per_row, num_q_heads, BLOCK_M: tl.constexpr):
    """Work item ``item`` of a pass over (batch x query head) rows ``first_row ..`` in blocks of ``BLOCK_M`` query
    rows: ``(pid_bh, b, h, rows)``, ``b`` int64."""
    pid_bh = first_row + item // blocks_per_row
    b = (pid_bh // num_q_heads).to(tl.int64)
    h = pid_bh % num_q_heads
    return pid_bh, b, h, (item % blocks_per_row) * BLOCK_M + tl.arange(0, BLOCK_M)


@triton.jit
def bwd_prepare_kernel(
    Out,
    DOut,
    Lse,
    DLse,
    Delta,
    Lse2,
    DQAcc,
    stride_ob,
    stride_os,
    stride_oh,
    stride_db,
    stride_ds,
    stride_dh,
    seqlen_q,
    row_stride,
    num_q_heads,
    first_row,
    num_items,
    HAS_DLSE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    HEAD_DIM_PAD: tl.constexpr,
):
    """``bwd_preprocess_kernel`` and the zeroing of ``DQAcc`` (fp32, contiguous ``[B, Sq, Hq, HEAD_DIM]``) for the
    (batch x query head) rows ``first_row ..``: ``num_items`` blocks of ``BLOCK_M`` query rows, taken in turn by
    however many programs the grid has (one each, or a few that each stream many)."""
    blocks_per_row = tl.cdiv(row_stride, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM_PAD)
    for item in range(tl.program_id(0), num_items, tl.num_programs(0)):
        pid_bh, b, h, rows = _item_rows(item, first_row, blocks_per_row, num_q_heads, BLOCK_M)
        _delta_and_lse2(Out, DOut, Lse, DLse, Delta, Lse2, pid_bh, b, h, rows, offs_d, stride_ob, stride_os,
                        stride_oh, stride_db, stride_ds, stride_dh, seqlen_q, row_stride, HAS_DLSE, HEAD_DIM,
                        "evict_first")  # fmt: skip
        acc_offs = ((b * seqlen_q + rows[:, None]) * num_q_heads + h) * HEAD_DIM + offs_d[None, :]
        zero_ok = (rows < seqlen_q)[:, None] & (offs_d[None, :] < HEAD_DIM)
        tl.store(DQAcc + acc_offs, tl.zeros([BLOCK_M, HEAD_DIM_PAD], dtype=tl.float32), mask=zero_ok,
                 eviction_policy="evict_first")  # fmt: skip


@triton.jit
def dq_convert_kernel(
    DQAcc,
    DQ,
    stride_qb,
    stride_qs,
    stride_qh,
    seqlen_q,
    num_q_heads,
    first_row,
    num_items,
    BLOCK_M: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    HEAD_DIM_PAD: tl.constexpr,
):
    """``DQ`` (any strides, its own dtype) from ``DQAcc`` (fp32, contiguous ``[B, Sq, Hq, HEAD_DIM]``) for the
    (batch x query head) rows ``first_row ..``: ``num_items`` blocks of ``BLOCK_M`` query rows, taken in turn by
    however many programs the grid has."""
    blocks_per_row = tl.cdiv(seqlen_q, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM_PAD)
    for item in range(tl.program_id(0), num_items, tl.num_programs(0)):
        _, b, h, rows = _item_rows(item, first_row, blocks_per_row, num_q_heads, BLOCK_M)
        rows = rows[:, None]
        ok = (rows < seqlen_q) & (offs_d[None, :] < HEAD_DIM)
        acc = tl.load(DQAcc + ((b * seqlen_q + rows) * num_q_heads + h) * HEAD_DIM + offs_d[None, :], mask=ok,
                      eviction_policy="evict_first")  # fmt: skip
        dq_ptrs = DQ + b * stride_qb + h * stride_qh + rows.to(tl.int64) * stride_qs + offs_d[None, :]
        tl.store(dq_ptrs, acc.to(DQ.dtype.element_ty), mask=ok, eviction_policy="evict_first")


@triton.jit
def _dkdv_tile(
    dk,
    dv,
    k,
    v,
    Q,
    DOut,
    DQAcc,
    b,
    h,
    q_base,
    do_base,
    dq_base,
    lse2_base,
    delta_base,
    stride_qs,
    stride_dos,
    stride_dqs,
    m_block,
    cols,
    offs_m,
    offs_d,
    mask_cols,
    seqlen_q,
    seqlen_k,
    qk_scale,
    sm_scale,
    MASKED: tl.constexpr,
    ATOMIC_DQ: tl.constexpr,
    DQ_TMA: tl.constexpr,
    CAUSAL: tl.constexpr,
    HAS_MASK: tl.constexpr,
    LTE_COL: tl.constexpr,
    UTS_COL: tl.constexpr,
    UTE_COL: tl.constexpr,
    BLOCK_M: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    HEAD_DIM_PAD: tl.constexpr,
    USE_TMA: tl.constexpr,
):
    start_m = m_block * BLOCK_M
    rows = start_m + offs_m
    row_ok = rows < seqlen_q
    qd_mask = row_ok[:, None]
    if HEAD_DIM != HEAD_DIM_PAD:
        qd_mask = qd_mask & (offs_d[None, :] < HEAD_DIM)
    if USE_TMA:
        q = Q.load([b, start_m, h, 0]).reshape(BLOCK_M, HEAD_DIM_PAD)
        do = DOut.load([b, start_m, h, 0]).reshape(BLOCK_M, HEAD_DIM_PAD)
    else:
        q = tl.load(q_base + rows[:, None].to(tl.int64) * stride_qs + offs_d[None, :], mask=qd_mask, other=0.0)
        do = tl.load(do_base + rows[:, None].to(tl.int64) * stride_dos + offs_d[None, :], mask=qd_mask, other=0.0)
    lse2 = tl.load(lse2_base + rows, mask=row_ok, other=float("inf"))
    delta = tl.load(delta_base + rows, mask=row_ok, other=0.0)
    # Transposed tile [BLOCK_N, BLOCK_M]: keys along rows, queries along columns.
    qk_t = tl.dot(k, tl.trans(q))
    p_t = tl.math.exp2(qk_t * qk_scale - lse2[None, :])
    if MASKED:
        p_t = fill_hidden(
            p_t, 0.0, rows[None, :], cols[:, None], mask_cols, seqlen_q, seqlen_k,
            CAUSAL, HAS_MASK, LTE_COL, UTS_COL, UTE_COL,
        )  # fmt: skip
    dv = tl.dot(p_t.to(do.dtype), do, dv)
    dp_t = tl.dot(v, tl.trans(do))
    ds_t = p_t * (dp_t - delta[None, :])
    dk = tl.dot(ds_t.to(q.dtype), q, dk)
    if ATOMIC_DQ:
        dq = tl.dot(tl.trans(ds_t.to(k.dtype)), k) * sm_scale
        if DQ_TMA:
            # One bulk reduce-add of the whole tile, done by the copy engine in L2: no per-element atomics
            # issued by the SM. Rows past Sq fall outside the descriptor and are dropped.
            DQAcc.atomic_add([b, start_m, h, 0], dq.reshape(1, BLOCK_M, 1, HEAD_DIM_PAD))
        else:
            tl.atomic_add(dq_base + rows[:, None].to(tl.int64) * stride_dqs + offs_d[None, :], dq, mask=qd_mask,
                          sem="relaxed")  # fmt: skip
    return dk, dv


@triton.jit
def bwd_dkdv_kernel(
    Q,
    K,
    V,
    DOut,
    DQAcc,
    DK,
    DV,
    Lse2,
    Delta,
    Mask,
    FullCount,
    FullIndex,
    PartCount,
    PartIndex,
    Order,
    stride_qb,
    stride_qs,
    stride_qh,
    stride_kb,
    stride_ks,
    stride_kh,
    stride_vb,
    stride_vs,
    stride_vh,
    stride_dob,
    stride_dos,
    stride_doh,
    stride_dqb,
    stride_dqs,
    stride_dqh,
    stride_dkb,
    stride_dks,
    stride_dkh,
    stride_dvb,
    stride_dvs,
    stride_dvh,
    stride_mb,
    stride_mh,
    stride_ms,
    list_stride_b,
    seqlen_q,
    seqlen_k,
    num_q_heads,
    num_kv_heads,
    q_per_kv,
    q_per_mask,
    num_m_blocks,
    num_n_blocks,
    qk_scale,
    sm_scale,
    bh_offset,
    ATOMIC_DQ: tl.constexpr,
    DQ_TMA: tl.constexpr,
    CAUSAL: tl.constexpr,
    HAS_MASK: tl.constexpr,
    LTE_COL: tl.constexpr,
    UTS_COL: tl.constexpr,
    UTE_COL: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    HEAD_DIM_PAD: tl.constexpr,
    USE_TMA: tl.constexpr,
):
    pid_bh = tl.program_id(1) + bh_offset
    b = pid_bh // num_kv_heads
    kv_h = pid_bh % num_kv_heads
    b64 = b.to(tl.int64)
    # Heaviest key blocks first, ordered by the live tiles of the group's first mask head.
    first_mask_h = (kv_h * q_per_kv) // q_per_mask
    pid_n = tl.load(Order + (b * list_stride_b + first_mask_h).to(tl.int64) * num_n_blocks + tl.program_id(0))
    start_n = pid_n * BLOCK_N
    offs_m = tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM_PAD)
    cols = start_n + offs_n
    kv_mask = (cols < seqlen_k)[:, None]
    if HEAD_DIM != HEAD_DIM_PAD:
        kv_mask = kv_mask & (offs_d[None, :] < HEAD_DIM)
    k_ptrs = K + b64 * stride_kb + kv_h * stride_kh + cols[:, None].to(tl.int64) * stride_ks + offs_d[None, :]
    v_ptrs = V + b64 * stride_vb + kv_h * stride_vh + cols[:, None].to(tl.int64) * stride_vs + offs_d[None, :]
    k = tl.load(k_ptrs, mask=kv_mask, other=0.0)
    v = tl.load(v_ptrs, mask=kv_mask, other=0.0)
    dk = tl.zeros([BLOCK_N, HEAD_DIM_PAD], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM_PAD], dtype=tl.float32)
    for g in range(0, q_per_kv):
        h = kv_h * q_per_kv + g
        mask_h = h // q_per_mask
        if USE_TMA:
            q_base = Delta  # unused: Q and DOut are tensor descriptors
            do_base = Delta
        else:
            q_base = Q + b64 * stride_qb + h * stride_qh
            do_base = DOut + b64 * stride_dob + h * stride_doh
        # (With DQ_TMA, DQAcc is a tensor descriptor and dq_base goes unused.)
        dq_base = Delta if DQ_TMA else DQAcc + b64 * stride_dqb + h * stride_dqh
        row_base = (b64 * num_q_heads + h) * seqlen_q
        # This program's key columns are fixed: their mask addresses are computed once per mask head.
        mask_cols = (Mask + b64 * stride_mb + mask_h * stride_mh) + cols[:, None] * stride_ms
        list_row = (b * list_stride_b + mask_h).to(tl.int64) * num_n_blocks + pid_n
        num_full = tl.load(FullCount + list_row)
        num_part = tl.load(PartCount + list_row)
        full_list = FullIndex + list_row * num_m_blocks
        part_list = PartIndex + list_row * num_m_blocks
        next_block = tl.load(full_list, mask=num_full > 0, other=0)
        for i in range(0, num_full):
            m_block = next_block
            next_block = tl.load(full_list + i + 1, mask=i + 1 < num_full, other=0)
            dk, dv = _dkdv_tile(
                dk, dv, k, v, Q, DOut, DQAcc, b, h, q_base, do_base, dq_base, Lse2 + row_base, Delta + row_base,
                stride_qs, stride_dos, stride_dqs, m_block, cols, offs_m, offs_d, mask_cols,
                seqlen_q, seqlen_k, qk_scale, sm_scale,
                False, ATOMIC_DQ, DQ_TMA, CAUSAL, HAS_MASK, LTE_COL, UTS_COL, UTE_COL,
                BLOCK_M, HEAD_DIM, HEAD_DIM_PAD, USE_TMA,
            )  # fmt: skip
        next_block = tl.load(part_list, mask=num_part > 0, other=0)
        for i in range(0, num_part):
            m_block = next_block
            next_block = tl.load(part_list + i + 1, mask=i + 1 < num_part, other=0)
            dk, dv = _dkdv_tile(
                dk, dv, k, v, Q, DOut, DQAcc, b, h, q_base, do_base, dq_base, Lse2 + row_base, Delta + row_base,
                stride_qs, stride_dos, stride_dqs, m_block, cols, offs_m, offs_d, mask_cols,
                seqlen_q, seqlen_k, qk_scale, sm_scale,
                True, ATOMIC_DQ, DQ_TMA, CAUSAL, HAS_MASK, LTE_COL, UTS_COL, UTE_COL,
                BLOCK_M, HEAD_DIM, HEAD_DIM_PAD, USE_TMA,
            )  # fmt: skip
    dk = dk * sm_scale
    dk_ptrs = DK + b64 * stride_dkb + kv_h * stride_dkh + cols[:, None].to(tl.int64) * stride_dks + offs_d[None, :]
    dv_ptrs = DV + b64 * stride_dvb + kv_h * stride_dvh + cols[:, None].to(tl.int64) * stride_dvs + offs_d[None, :]
    tl.store(dk_ptrs, dk.to(DK.dtype.element_ty), mask=kv_mask)
    tl.store(dv_ptrs, dv.to(DV.dtype.element_ty), mask=kv_mask)


@triton.jit
def _dq_tile(
    dq,
    q,
    do,
    lse2,
    delta,
    K,
    V,
    b,
    kv_h,
    k_base,
    v_base,
    stride_ks,
    stride_vs,
    n_block,
    rows,
    offs_n,
    offs_d,
    mask_base,
    stride_ms,
    seqlen_q,
    seqlen_k,
    qk_scale,
    MASKED: tl.constexpr,
    CAUSAL: tl.constexpr,
    HAS_MASK: tl.constexpr,
    LTE_COL: tl.constexpr,
    UTS_COL: tl.constexpr,
    UTE_COL: tl.constexpr,
    BLOCK_N: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    HEAD_DIM_PAD: tl.constexpr,
    USE_TMA: tl.constexpr,
):
    cols = n_block * BLOCK_N + offs_n
    if USE_TMA:
        k = K.load([b, n_block * BLOCK_N, kv_h, 0]).reshape(BLOCK_N, HEAD_DIM_PAD)
        v = V.load([b, n_block * BLOCK_N, kv_h, 0]).reshape(BLOCK_N, HEAD_DIM_PAD)
    else:
        kv_mask = (cols < seqlen_k)[:, None]
        if HEAD_DIM != HEAD_DIM_PAD:
            kv_mask = kv_mask & (offs_d[None, :] < HEAD_DIM)
        k = tl.load(k_base + cols[:, None].to(tl.int64) * stride_ks + offs_d[None, :], mask=kv_mask, other=0.0)
        v = tl.load(v_base + cols[:, None].to(tl.int64) * stride_vs + offs_d[None, :], mask=kv_mask, other=0.0)
    qk = tl.dot(q, tl.trans(k))
    p = tl.math.exp2(qk * qk_scale - lse2[:, None])
    if MASKED:
        # As in the forward: 32-bit column offsets.
        mask_cols = mask_base + cols[None, :] * stride_ms
        p = fill_hidden(
            p, 0.0, rows[:, None], cols[None, :], mask_cols, seqlen_q, seqlen_k,
            CAUSAL, HAS_MASK, LTE_COL, UTS_COL, UTE_COL,
        )  # fmt: skip
    dp = tl.dot(do, tl.trans(v))
    ds = p * (dp - delta[:, None])
    return tl.dot(ds.to(k.dtype), k, dq)


@triton.jit
def bwd_dq_kernel(
    Q,
    K,
    V,
    DOut,
    DQ,
    Lse2,
    Delta,
    Mask,
    FullCount,
    FullIndex,
    PartCount,
    PartIndex,
    Order,
    stride_qb,
    stride_qs,
    stride_qh,
    stride_kb,
    stride_ks,
    stride_kh,
    stride_vb,
    stride_vs,
    stride_vh,
    stride_dob,
    stride_dos,
    stride_doh,
    stride_dqb,
    stride_dqs,
    stride_dqh,
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
    qk_scale,
    sm_scale,
    CAUSAL: tl.constexpr,
    HAS_MASK: tl.constexpr,
    LTE_COL: tl.constexpr,
    UTS_COL: tl.constexpr,
    UTE_COL: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    HEAD_DIM_PAD: tl.constexpr,
    USE_TMA: tl.constexpr,
):
    pid_bh = tl.program_id(1)
    b = pid_bh // num_q_heads
    h = pid_bh % num_q_heads
    kv_h = h // q_per_kv
    mask_h = h // q_per_mask
    b64 = b.to(tl.int64)
    list_base = (b * list_stride_b + mask_h).to(tl.int64) * num_m_blocks
    pid_m = tl.load(Order + list_base + tl.program_id(0))
    offs_m = tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM_PAD)
    rows = pid_m * BLOCK_M + offs_m
    row_ok = rows < seqlen_q
    qd_mask = row_ok[:, None]
    if HEAD_DIM != HEAD_DIM_PAD:
        qd_mask = qd_mask & (offs_d[None, :] < HEAD_DIM)
    row64 = rows[:, None].to(tl.int64)
    q = tl.load(Q + b64 * stride_qb + h * stride_qh + row64 * stride_qs + offs_d[None, :], mask=qd_mask, other=0.0)
    do = tl.load(DOut + b64 * stride_dob + h * stride_doh + row64 * stride_dos + offs_d[None, :],
                 mask=qd_mask, other=0.0)  # fmt: skip
    row_base = (b64 * num_q_heads + h) * seqlen_q
    lse2 = tl.load(Lse2 + row_base + rows, mask=row_ok, other=float("inf"))
    delta = tl.load(Delta + row_base + rows, mask=row_ok, other=0.0)
    if USE_TMA:
        k_base = Q  # unused: K and V are tensor descriptors
        v_base = Q
    else:
        k_base = K + b64 * stride_kb + kv_h * stride_kh
        v_base = V + b64 * stride_vb + kv_h * stride_vh
    mask_base = Mask + b64 * stride_mb + mask_h * stride_mh
    list_row = list_base + pid_m
    num_full = tl.load(FullCount + list_row)
    num_part = tl.load(PartCount + list_row)
    full_list = FullIndex + list_row * num_n_blocks
    part_list = PartIndex + list_row * num_n_blocks
    dq = tl.zeros([BLOCK_M, HEAD_DIM_PAD], dtype=tl.float32)
    next_block = tl.load(full_list, mask=num_full > 0, other=0)
    for i in range(0, num_full):
        n_block = next_block
        next_block = tl.load(full_list + i + 1, mask=i + 1 < num_full, other=0)
        dq = _dq_tile(
            dq, q, do, lse2, delta, K, V, b, kv_h, k_base, v_base, stride_ks, stride_vs, n_block, rows, offs_n, offs_d,
            mask_base, stride_ms, seqlen_q, seqlen_k, qk_scale,
            False, CAUSAL, HAS_MASK, LTE_COL, UTS_COL, UTE_COL, BLOCK_N, HEAD_DIM, HEAD_DIM_PAD, USE_TMA,
        )  # fmt: skip
    next_block = tl.load(part_list, mask=num_part > 0, other=0)
    for i in range(0, num_part):
        n_block = next_block
        next_block = tl.load(part_list + i + 1, mask=i + 1 < num_part, other=0)
        dq = _dq_tile(
            dq, q, do, lse2, delta, K, V, b, kv_h, k_base, v_base, stride_ks, stride_vs, n_block, rows, offs_n, offs_d,
            mask_base, stride_ms, seqlen_q, seqlen_k, qk_scale,
            True, CAUSAL, HAS_MASK, LTE_COL, UTS_COL, UTE_COL, BLOCK_N, HEAD_DIM, HEAD_DIM_PAD, USE_TMA,
        )  # fmt: skip
    dq = dq * sm_scale
    tl.store(DQ + b64 * stride_dqb + h * stride_dqh + row64 * stride_dqs + offs_d[None, :],
             dq.to(DQ.dtype.element_ty), mask=qd_mask)  # fmt: skip
