"""FlashMask forward kernel: FlashAttention-2 over the live key blocks of each query block.

One program per (query block, batch x query head). It walks two lists built by ``tiles.tile_lists``: first
the unmasked key blocks (no mask work at all), then the partially masked ones (element mask from the column
vectors). Fully masked key blocks are in neither list, so they are never loaded. Online softmax in fp32,
exp2 with the scale folded in; rows that see no key end with ``l = 0`` and get output 0 and ``lse = -inf``.

With ``SWEEP`` a launch visits only the key blocks ``[sweep_lo, sweep_hi)`` of its lists (found by binary
search; the lists are ascending) and carries the online-softmax state (``acc``, ``m``, ``l`` in fp32) in from
the previous sweep and out to the next, so that a long call can keep the K/V its programs read inside L2.

Each loop reads its list one entry ahead: Triton issues the next tile's copies at the end of the loop body,
and an index loaded there put a global-load latency in front of them (7% of the D=128 forward on the H100,
where one 8-warp program fills an SM; benchmarks/NOTES.md, session 5).
"""

from __future__ import annotations

import triton
import triton.language as tl

from ._common import fill_hidden

LOG2E = tl.constexpr(1.4426950408889634)
LN2 = tl.constexpr(0.6931471805599453)


@triton.jit
def _load_kv_block(k_base, v_base, stride_ks, stride_vs, start_n, offs_n, offs_d, seqlen_k,
                   MASKED: tl.constexpr, HEAD_DIM: tl.constexpr, HEAD_DIM_PAD: tl.constexpr):  # fmt: skip
    """K block transposed ``[D, BLOCK_N]`` and V block ``[BLOCK_N, D]`` through plain pointers."""
    k_ptrs = k_base + start_n.to(tl.int64) * stride_ks + offs_n[None, :] * stride_ks + offs_d[:, None]
    v_ptrs = v_base + start_n.to(tl.int64) * stride_vs + offs_n[:, None] * stride_vs + offs_d[None, :]
    if MASKED:
        col_ok = (start_n + offs_n) < seqlen_k
        k_mask = col_ok[None, :]
        v_mask = col_ok[:, None]
        if HEAD_DIM != HEAD_DIM_PAD:
            k_mask = k_mask & (offs_d[:, None] < HEAD_DIM)
            v_mask = v_mask & (offs_d[None, :] < HEAD_DIM)
        k = tl.load(k_ptrs, mask=k_mask, other=0.0)
        v = tl.load(v_ptrs, mask=v_mask, other=0.0)
    elif HEAD_DIM != HEAD_DIM_PAD:
        k = tl.load(k_ptrs, mask=offs_d[:, None] < HEAD_DIM, other=0.0)
        v = tl.load(v_ptrs, mask=offs_d[None, :] < HEAD_DIM, other=0.0)
    else:
        # Unmasked blocks are whole blocks inside [0, Sk): no bounds checks.
        k = tl.load(k_ptrs)
        v = tl.load(v_ptrs)
    return k, v


@triton.jit
def _first_at_least(entries, count, value):
    """Index of the first of ``entries[:count]`` (ascending int32) that is ``>= value``; ``count`` if none."""
    lo = count * 0  # a tensor like ``count``: the loop carries it
    hi = count
    while lo < hi:
        mid = (lo + hi) // 2
        below = tl.load(entries + mid) < value
        lo = tl.where(below, mid + 1, lo)
        hi = tl.where(below, hi, mid)
    return lo


@triton.jit
def _fwd_tile(
    acc,
    l_i,
    m_i,
    q,
    K,
    V,
    k_base,
    v_base,
    stride_ks,
    stride_vs,
    b,
    kv_h,
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
    start_n = n_block * BLOCK_N
    if USE_TMA:
        # Bulk tensor copies (K, V are 4-D descriptors); rows past Sk and dims past D arrive as zeros.
        k = tl.trans(K.load([b, start_n, kv_h, 0]).reshape(BLOCK_N, HEAD_DIM_PAD))
        v = V.load([b, start_n, kv_h, 0]).reshape(BLOCK_N, HEAD_DIM_PAD)
    else:
        k, v = _load_kv_block(k_base, v_base, stride_ks, stride_vs, start_n, offs_n, offs_d, seqlen_k,
                              MASKED, HEAD_DIM, HEAD_DIM_PAD)  # fmt: skip
    # The softmax scale (with log2 e) is folded into one FMA per score: exp2(qk * scale - m).
    qk = tl.dot(q, k)
    if MASKED:
        cols = (start_n + offs_n)[None, :]
        # 32-bit column offsets (the launcher keeps Sk * stride < 2**31): nothing held across iterations.
        mask_cols = mask_base + cols * stride_ms
        qk = fill_hidden(
            qk, float("-inf"), rows[:, None], cols, mask_cols, seqlen_q, seqlen_k,
            CAUSAL, HAS_MASK, LTE_COL, UTS_COL, UTE_COL,
        )  # fmt: skip
        m_new = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
        # A row that has seen nothing yet keeps m = -inf; exponentiate against 0 instead so that exp2 gives 0,
        # not NaN. The 0 is not carried on: as a running max it would flush a later tile's scores below
        # 2**-126 to zero and report a row that sees keys as empty.
        m_exp = tl.where(m_new == float("-inf"), 0.0, m_new)
    else:
        m_new = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
        m_exp = m_new
    p = tl.math.exp2(qk * qk_scale - m_exp[:, None])
    alpha = tl.math.exp2(m_i - m_exp)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None]
    acc = tl.dot(p.to(v.dtype), v, acc)
    return acc, l_i, m_new


@triton.jit
def fwd_kernel(
    Q,
    K,
    V,
    Out,
    Lse,
    Mask,
    FullCount,
    FullIndex,
    PartCount,
    PartIndex,
    Order,
    Gate,
    StateAcc,
    StateM,
    StateL,
    sweep_lo,
    sweep_hi,
    stride_qb,
    stride_qs,
    stride_qh,
    stride_kb,
    stride_ks,
    stride_kh,
    stride_vb,
    stride_vs,
    stride_vh,
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
    qk_scale,
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
    GATE: tl.constexpr = 0,
    SWEEP: tl.constexpr = False,
    CARRY_IN: tl.constexpr = False,
    CARRY_OUT: tl.constexpr = False,
):
    # GATE 1 / 2: this grid is one of two forward variants launched together; it runs only if the GPU's
    # decision in ``Gate`` (int32, nonzero: the partial-tile variant) names it.
    if GATE != 0:  # noqa: SIM102 (compile-time branch: ungated grids load nothing)
        if (tl.load(Gate) != 0) != (GATE == 1):
            return
    pid_bh = tl.program_id(1)
    b = pid_bh // num_q_heads
    h = pid_bh % num_q_heads
    kv_h = h // q_per_kv
    mask_h = h // q_per_mask
    list_base = (b * list_stride_b + mask_h).to(tl.int64) * num_m_blocks
    # Heaviest query blocks first (Order sorts them by live tiles): the grid's tail gets the light ones.
    # Axis 0 stays the block axis so that programs launched together share K/V in L2.
    pid_m = tl.load(Order + list_base + tl.program_id(0))
    start_m = pid_m * BLOCK_M
    offs_m = tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM_PAD)
    rows = start_m + offs_m
    row_ok = rows < seqlen_q

    b64 = b.to(tl.int64)
    q_ptrs = Q + b64 * stride_qb + h * stride_qh + start_m.to(tl.int64) * stride_qs
    q_ptrs = q_ptrs + offs_m[:, None] * stride_qs + offs_d[None, :]
    q_mask = row_ok[:, None]
    if HEAD_DIM != HEAD_DIM_PAD:
        q_mask = q_mask & (offs_d[None, :] < HEAD_DIM)
    q = tl.load(q_ptrs, mask=q_mask, other=0.0)
    if USE_TMA:
        k_base = Q  # unused: K and V are tensor descriptors
        v_base = Q
    else:
        k_base = K + b64 * stride_kb + kv_h * stride_kh
        v_base = V + b64 * stride_vb + kv_h * stride_vh
    mask_base = Mask + b64 * stride_mb + mask_h * stride_mh

    list_row = list_base + pid_m
    full_list = FullIndex + list_row * num_n_blocks
    part_list = PartIndex + list_row * num_n_blocks
    num_full = tl.load(FullCount + list_row)
    num_part = tl.load(PartCount + list_row)

    full_lo = 0
    part_lo = 0
    if SWEEP:
        # One sweep of a call whose keys are visited in several launches: key blocks [sweep_lo, sweep_hi) only.
        full_lo = _first_at_least(full_list, num_full, sweep_lo)
        num_full = _first_at_least(full_list, num_full, sweep_hi)
        part_lo = _first_at_least(part_list, num_part, sweep_lo)
        num_part = _first_at_least(part_list, num_part, sweep_hi)
    state_rows = pid_bh.to(tl.int64) * seqlen_q + rows
    if CARRY_IN:
        # The online-softmax state the previous sweep left (fp32): same arithmetic as one long sweep.
        m_i = tl.load(StateM + state_rows, mask=row_ok, other=float("-inf"))
        l_i = tl.load(StateL + state_rows, mask=row_ok, other=0.0)
        acc = tl.load(StateAcc + state_rows[:, None] * HEAD_DIM_PAD + offs_d[None, :], mask=row_ok[:, None],
                      other=0.0)  # fmt: skip
    else:
        m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
        l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
        acc = tl.zeros([BLOCK_M, HEAD_DIM_PAD], dtype=tl.float32)
    next_block = tl.load(full_list + full_lo, mask=full_lo < num_full, other=0)
    for i in range(full_lo, num_full):
        n_block = next_block
        next_block = tl.load(full_list + i + 1, mask=i + 1 < num_full, other=0)
        acc, l_i, m_i = _fwd_tile(
            acc, l_i, m_i, q, K, V, k_base, v_base, stride_ks, stride_vs, b, kv_h, n_block, rows, offs_n, offs_d,
            mask_base, stride_ms, seqlen_q, seqlen_k, qk_scale,
            False, CAUSAL, HAS_MASK, LTE_COL, UTS_COL, UTE_COL, BLOCK_N, HEAD_DIM, HEAD_DIM_PAD, USE_TMA,
        )  # fmt: skip
    next_block = tl.load(part_list + part_lo, mask=part_lo < num_part, other=0)
    for i in range(part_lo, num_part):
        n_block = next_block
        next_block = tl.load(part_list + i + 1, mask=i + 1 < num_part, other=0)
        acc, l_i, m_i = _fwd_tile(
            acc, l_i, m_i, q, K, V, k_base, v_base, stride_ks, stride_vs, b, kv_h, n_block, rows, offs_n, offs_d,
            mask_base, stride_ms, seqlen_q, seqlen_k, qk_scale,
            True, CAUSAL, HAS_MASK, LTE_COL, UTS_COL, UTE_COL, BLOCK_N, HEAD_DIM, HEAD_DIM_PAD, USE_TMA,
        )  # fmt: skip

    if CARRY_OUT:
        tl.store(StateM + state_rows, m_i, mask=row_ok)
        tl.store(StateL + state_rows, l_i, mask=row_ok)
        tl.store(StateAcc + state_rows[:, None] * HEAD_DIM_PAD + offs_d[None, :], acc, mask=row_ok[:, None])
        return
    seen = l_i > 0.0
    l_safe = tl.where(seen, l_i, 1.0)
    out = acc / l_safe[:, None]
    lse = tl.where(seen, (m_i + tl.math.log2(l_safe)) * LN2, float("-inf"))
    o_ptrs = Out + b64 * stride_ob + h * stride_oh + start_m.to(tl.int64) * stride_os
    o_ptrs = o_ptrs + offs_m[:, None] * stride_os + offs_d[None, :]
    tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=q_mask)
    tl.store(Lse + pid_bh.to(tl.int64) * seqlen_q + rows, lse, mask=row_ok)
