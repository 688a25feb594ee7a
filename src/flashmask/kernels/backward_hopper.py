"""Warp-specialized FlashMask backward for Hopper (Gluon): dK, dV and dQ in one pass, D=128 and D=64.

The Triton backward computes dK/dV in one kernel and dQ in a second pass that recomputes ``Q K^T`` and
``dO V^T`` (7 matmuls per tile), because in Triton a dQ accumulated inside the dK/dV kernel did not fit beside
dK and dV without spills, and per-element atomics cost more than the pass. Here (FlashAttention-3's backward)
one program owns 128 key columns, split between two consumer warpgroups of 64 keys each with their own
instruction stream (``gl.warp_specialize``) and 240 registers; a one-warp producer streams the visited query
blocks' Q and dO (64 rows each) by TMA through a ring of stages. Per tile a warpgroup computes ``S^T = K Q^T``,
``dP^T = V dO^T``, ``P^T``, ``dS^T``, ``dV += P^T dO`` and ``dK += dS^T Q``, and writes ``dS^T`` to shared
memory; once both halves are there each warpgroup computes the tile's ``dQ = dS K`` for half of the head dim
and hands it to the copy engine as one bulk reduce-add into an fp32 buffer (5 matmuls per tile). The order in
which those adds land varies, so dQ is not bit-identical from run to run: ``deterministic=True`` takes the
Triton kernels.

Same contract as ``bwd_dkdv_kernel``: the transposed tile lists of ``tiles.tile_lists`` (per key block, the
unmasked query blocks, then the partial ones, which get the element mask of every mask form), heaviest key
blocks first, the query heads of a GQA group summed in registers, ``Lse2`` / ``Delta`` from
``bwd_preprocess_kernel``. The per-key limits of the column mask are loaded once per (program, mask head):
keys run along the rows of the transposed tile, so a thread holds the limits of two keys only.

Gluon has no interpreter: this kernel runs on Hopper GPUs only and is checked there (``benchmarks/gpu_check.py``).
"""

from __future__ import annotations

from triton._C.libtriton import ir
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language import _core as gl_core
from triton.experimental.gluon.language.nvidia.hopper import (
    fence_async_shared,
    mbarrier,
    tma,
    warpgroup_mma,
    warpgroup_mma_wait,
)

from ._common import _column_limits, _fill_hidden_rows

ALL_ROWS: gl.constexpr = gl.constexpr(2**30)  # above any row index
# Keys of one consumer warpgroup (one m64 wgmma); a program has two.
WG_KEYS: gl.constexpr = gl.constexpr(64)
WS_BWD_BLOCK_M = 64  # query rows per tile
WS_BWD_BLOCK_N = 128  # keys per program
WS_BWD_HEAD_DIMS = (64, 128)  # head dims the launcher gives this kernel
# As the Gluon forward: 168 registers at launch for the 12 warps the partitions round up to; the producer warp
# gives back down to 24 and the two consumers take 240 each.
WS_BWD_MAX_REGISTERS = 168


@gl_core.builtin
def _reduce_add(tensor_desc, coord, src, _semantic=None):
    """Bulk reduce-add of the shared-memory tile ``src`` into global memory at ``coord`` of ``tensor_desc``.

    Triton 3.6's Gluon has the op (``create_async_tma_reduce``) but no wrapper for it; like a TMA store it is
    issued by one thread, completes asynchronously and is waited for with ``tma.store_wait``.
    """
    coord = _semantic._convert_to_ir_values(coord, require_i64=False)
    _semantic.builder.create_async_tma_reduce(ir.DESCRIPTOR_REDUCE_KIND.ADD, tensor_desc.handle, coord, src.handle)


@gluon.jit
def _head_lists(lists, coords, g):
    """The unmasked / partial query-block lists of this program's key block for the ``g``-th head of its group."""
    FullCount, FullIndex, PartCount, PartIndex, list_stride_b, num_m_blocks, num_n_blocks, q_per_kv, q_per_mask = lists
    b, kv_h, pid_n, _start_n = coords
    h = kv_h * q_per_kv + g
    mask_h = h // q_per_mask
    list_row = (b * list_stride_b + mask_h).to(gl.int64) * num_n_blocks + pid_n
    num_full = gl.load(FullCount + list_row)
    num_part = gl.load(PartCount + list_row)
    return h, mask_h, FullIndex + list_row * num_m_blocks, PartIndex + list_row * num_m_blocks, num_full, num_part


@gluon.jit
def _query_block(full_list, part_list, num_full, i):
    """Query block of the ``i``-th visited tile: the unmasked list first, then the partial one."""
    if i < num_full:  # noqa: SIM108 (a runtime branch: one load, not two)
        block = gl.load(full_list + i)
    else:
        block = gl.load(part_list + (i - num_full))
    return block


@gluon.jit
def _producer(descs, bufs, bars, lists, coords, masks, dims, WG: gl.constexpr, CAUSAL: gl.constexpr,
              HAS_MASK: gl.constexpr, LTE_COL: gl.constexpr, UTS_COL: gl.constexpr, UTE_COL: gl.constexpr,
              DKV_TMA: gl.constexpr):  # fmt: skip
    """One warp: K and V of the program's keys once, then Q and dO of every visited tile into the stage ring.

    It takes the consumers' arguments because Gluon's worker partitions share one signature.
    """
    q_desc, k_desc, v_desc, do_desc, _dq_desc, lse_desc, delta_desc = descs[:7]
    k_bufs, v_bufs, q_bufs, do_bufs, _ds_bufs, _dq_bufs, lse_bufs, delta_bufs = bufs
    kv_bar, qdo_ready, qdo_empty, _ds_ready, _ds_free = bars
    b, kv_h, _pid_n, start_n = coords
    q_per_kv = lists[7]
    seqlen_q_pad, num_q_heads = dims[5], dims[2]
    num_stages: gl.constexpr = q_bufs.type.shape[0]
    block_m: gl.constexpr = q_bufs.type.shape[2]
    stage_bytes: gl.constexpr = (q_desc.block_type.nbytes + do_desc.block_type.nbytes + lse_desc.block_type.nbytes
                                 + delta_desc.block_type.nbytes)  # fmt: skip
    mbarrier.expect(kv_bar, 2 * k_desc.block_type.nbytes + 2 * v_desc.block_type.nbytes)
    for u in gl.static_range(2):
        tma.async_copy_global_to_shared(k_desc, [b, start_n + u * WG_KEYS, kv_h, 0], kv_bar, k_bufs.index(u))
        tma.async_copy_global_to_shared(v_desc, [b, start_n + u * WG_KEYS, kv_h, 0], kv_bar, v_bufs.index(u))
    t = 0
    for g in range(q_per_kv):
        h, _mask_h, full_list, part_list, num_full, num_part = _head_lists(lists, coords, g)
        row_base = (b * num_q_heads + h) * seqlen_q_pad
        for i in range(num_full + num_part):
            start_m = _query_block(full_list, part_list, num_full, i) * block_m
            stage = t % num_stages
            ready = qdo_ready.index(stage)
            # Barriers start with the phase before the first complete: the first round of waits passes at once.
            mbarrier.wait(qdo_empty.index(stage), ((t // num_stages) & 1) ^ 1)
            mbarrier.expect(ready, stage_bytes)
            tma.async_copy_global_to_shared(q_desc, [b, start_m, h, 0], ready, q_bufs.index(stage))
            tma.async_copy_global_to_shared(do_desc, [b, start_m, h, 0], ready, do_bufs.index(stage))
            tma.async_copy_global_to_shared(lse_desc, [row_base + start_m], ready, lse_bufs.index(stage))
            tma.async_copy_global_to_shared(delta_desc, [row_base + start_m], ready, delta_bufs.index(stage))
            t += 1


@gluon.jit
def _key_limits(keys, mask_base, stride_ms, seqlen_q, seqlen_k, CAUSAL: gl.constexpr, HAS_MASK: gl.constexpr,
                LTE_COL: gl.constexpr, UTS_COL: gl.constexpr, UTE_COL: gl.constexpr):  # fmt: skip
    """Row limits of key columns ``keys``: ``(below, lower_start, lower_span, upper_start, upper_span)``; query ``q``
    is hidden from a key when ``q < below`` or ``q`` lies in a span. With a column mask they are the Triton
    kernels' (``_common._column_limits``, which Gluon compiles as it is)."""
    if HAS_MASK:
        # 32-bit column offsets: the launcher keeps Sk * stride below 2**31.
        limits = _column_limits(mask_base + keys * stride_ms, keys, seqlen_q, seqlen_k, CAUSAL, LTE_COL, UTS_COL,
                                UTE_COL)  # fmt: skip
    else:
        below = keys - (seqlen_k - seqlen_q) if CAUSAL else keys * 0
        below = gl.where(keys < seqlen_k, below, ALL_ROWS)
        limits = (below, below, below, below, below)
    return limits


@gluon.jit
def _hide(p_t, q_rows, limits, HAS_MASK: gl.constexpr, LTE_COL: gl.constexpr, UTS_COL: gl.constexpr):
    """``p_t`` (keys x queries) with 0 where a query may not see a key: the Triton kernels' element test
    (``_common._fill_hidden_rows``: both conditions in one predicate, one select per element)."""
    below, lower_start, lower_span, upper_start, upper_span = limits
    q_2d = gl.expand_dims(q_rows, 0)
    if HAS_MASK:
        p_t = _fill_hidden_rows(p_t, 0.0, q_2d, gl.expand_dims(below, 1), gl.expand_dims(lower_start, 1),
                                gl.expand_dims(lower_span, 1), gl.expand_dims(upper_start, 1),
                                gl.expand_dims(upper_span, 1), LTE_COL, UTS_COL)  # fmt: skip
    else:
        p_t = gl.where(q_2d < gl.expand_dims(below, 1), 0.0, p_t)
    return p_t


@gluon.jit
def _consumer(descs, bufs, bars, lists, coords, masks, dims, WG: gl.constexpr, CAUSAL: gl.constexpr,
              HAS_MASK: gl.constexpr, LTE_COL: gl.constexpr, UTS_COL: gl.constexpr, UTE_COL: gl.constexpr,
              DKV_TMA: gl.constexpr):  # fmt: skip
    """One warpgroup: dK and dV of its 64 keys over every visited query tile, and its half of each tile's dQ."""
    dq_desc = descs[4]
    k_bufs, v_bufs, q_bufs, do_bufs, ds_bufs, dq_bufs, lse_bufs, delta_bufs = bufs
    kv_bar, qdo_ready, qdo_empty, ds_ready, ds_free = bars
    b, kv_h, _pid_n, start_n = coords
    q_per_kv = lists[7]
    Mask, stride_mb, stride_mh, stride_ms, DK, DV, stride_dkb, stride_dks, stride_dkh, stride_dvb, stride_dvs, \
        stride_dvh = masks  # fmt: skip
    seqlen_q, seqlen_k, _num_q_heads, qk_scale, sm_scale, _seqlen_q_pad = dims
    num_stages: gl.constexpr = q_bufs.type.shape[0]
    block_m: gl.constexpr = q_bufs.type.shape[2]
    head_dim: gl.constexpr = q_bufs.type.shape[4]
    dq_cols: gl.constexpr = dq_bufs.type.shape[4]
    dtype: gl.constexpr = q_bufs.type.element_ty
    # Transposed score tiles [keys, queries] and the dQ half [queries, head_dim / 2]: m64 n64 wgmma.
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                       instr_shape=[16, block_m, 16])  # fmt: skip
    dq_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                        instr_shape=[16, dq_cols, 16])  # fmt: skip
    kv_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                        instr_shape=[16, head_dim, 16])  # fmt: skip
    a_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=kv_layout, k_width=2)
    key_layout: gl.constexpr = gl.SliceLayout(1, s_layout)
    query_layout: gl.constexpr = gl.SliceLayout(0, s_layout)

    keys = start_n + WG * WG_KEYS + gl.arange(0, WG_KEYS, layout=key_layout)
    offs_q = gl.arange(0, block_m, layout=query_layout)
    dk = gl.zeros([WG_KEYS, head_dim], gl.float32, kv_layout)
    dv = gl.zeros([WG_KEYS, head_dim], gl.float32, kv_layout)
    s_zero = gl.zeros([WG_KEYS, block_m], gl.float32, s_layout)
    dq_zero = gl.zeros([block_m, dq_cols], gl.float32, dq_layout)
    k_own = k_bufs.index(WG).reshape([WG_KEYS, head_dim])
    v_own = v_bufs.index(WG).reshape([WG_KEYS, head_dim])
    dq_smem = dq_bufs.index(WG).reshape([block_m, dq_cols])
    b64 = b.to(gl.int64)
    mbarrier.wait(kv_bar, 0)
    t = 0
    for g in range(q_per_kv):
        h, mask_h, full_list, part_list, num_full, num_part = _head_lists(lists, coords, g)
        limits = _key_limits(keys, Mask + b64 * stride_mb + mask_h * stride_mh, stride_ms, seqlen_q, seqlen_k,
                             CAUSAL, HAS_MASK, LTE_COL, UTS_COL, UTE_COL)  # fmt: skip
        for i in range(num_full + num_part):
            start_m = _query_block(full_list, part_list, num_full, i) * block_m
            stage = t % num_stages
            mbarrier.wait(qdo_ready.index(stage), (t // num_stages) & 1)
            q_smem = q_bufs.index(stage).reshape([block_m, head_dim])
            do_smem = do_bufs.index(stage).reshape([block_m, head_dim])
            s_token = warpgroup_mma(k_own, q_smem.permute((1, 0)), s_zero, use_acc=False, is_async=True)
            dp_token = warpgroup_mma(v_own, do_smem.permute((1, 0)), s_zero, use_acc=False, is_async=True)
            # wgmma groups retire in order: the scores first, dP^T still running under the exponentials.
            s_t = warpgroup_mma_wait(1, deps=(s_token,))
            # Rows past Sq carry LSE +inf (the preprocess pads them), so their probabilities are 0.
            lse2 = lse_bufs.index(stage).load(query_layout)
            p_t = gl.exp2(s_t * qk_scale - gl.expand_dims(lse2, 0))
            if i >= num_full:
                p_t = _hide(p_t, start_m + offs_q, limits, HAS_MASK, LTE_COL, UTS_COL)
            p16 = p_t.to(dtype)
            dp_t = warpgroup_mma_wait(0, deps=(dp_token,))
            delta = delta_bufs.index(stage).load(query_layout)
            ds16 = (p_t * (dp_t - gl.expand_dims(delta, 0))).to(dtype)
            p_op = gl.convert_layout(p16, a_layout)
            ds_op = gl.convert_layout(ds16, a_layout)
            dv_token = warpgroup_mma(p_op, do_smem, dv, is_async=True)
            dk_token = warpgroup_mma(ds_op, q_smem, dk, is_async=True)
            # dS^T to shared memory, where the other warpgroup's half joins it for dQ = dS K.
            ds_slot = t % 2
            ds_phase = (t // 2) & 1
            mbarrier.wait(ds_free.index(ds_slot), ds_phase ^ 1)
            ds_bufs.index(2 * ds_slot + WG).store(ds16)
            fence_async_shared()
            mbarrier.arrive(ds_ready.index(ds_slot))
            dv, dk = warpgroup_mma_wait(0, deps=(dv_token, dk_token))
            mbarrier.arrive(qdo_empty.index(stage))
            mbarrier.wait(ds_ready.index(ds_slot), ds_phase)
            dq_token = warpgroup_mma(ds_bufs.index(2 * ds_slot).permute((1, 0)),
                                     k_bufs.index(0).reshape([WG_KEYS, head_dim]).slice(WG * dq_cols, dq_cols, dim=1),
                                     dq_zero, use_acc=False, is_async=True)  # fmt: skip
            dq_token = warpgroup_mma(ds_bufs.index(2 * ds_slot + 1).permute((1, 0)),
                                     k_bufs.index(1).reshape([WG_KEYS, head_dim]).slice(WG * dq_cols, dq_cols, dim=1),
                                     dq_token, is_async=True)  # fmt: skip
            dq = warpgroup_mma_wait(0, deps=(dq_token,))
            mbarrier.arrive(ds_free.index(ds_slot))
            # The previous tile's reduce-add has read the staging buffer long ago; wait for it before rewriting.
            tma.store_wait(0)
            dq_smem.store(dq * sm_scale)
            fence_async_shared()
            _reduce_add(dq_desc, [b, start_m, h, WG * dq_cols], dq_bufs.index(WG))
            t += 1
    tma.store_wait(0)

    # dK and dV of this warpgroup's keys, summed over the group's query heads.
    if DKV_TMA:
        # Staged in this warpgroup's own buffers, free now: its V (read by its own dP^T only) and its dQ staging
        # buffer (the last reduce-add has read it); the copy engine drops the rows past Sk.
        dk_desc, dv_desc = descs[7], descs[8]
        dv_stage = v_bufs.index(WG)
        dk_stage = dq_bufs.index(WG)._reinterpret(dtype, dk_desc.block_type.shape, dk_desc.layout)
        dv_stage.reshape([WG_KEYS, head_dim]).store(dv.to(dtype))
        dk_stage.reshape([WG_KEYS, head_dim]).store((dk * sm_scale).to(dtype))
        fence_async_shared()
        tma.async_copy_shared_to_global(dk_desc, [b, start_n + WG * WG_KEYS, kv_h, 0], dk_stage)
        tma.async_copy_shared_to_global(dv_desc, [b, start_n + WG * WG_KEYS, kv_h, 0], dv_stage)
        tma.store_wait(0)
    else:
        o_keys = start_n + WG * WG_KEYS + gl.arange(0, WG_KEYS, layout=gl.SliceLayout(1, kv_layout))
        offs_d = gl.arange(0, head_dim, layout=gl.SliceLayout(0, kv_layout))
        key_ok = gl.expand_dims(o_keys < seqlen_k, 1)
        key_offs = gl.expand_dims(o_keys.to(gl.int64), 1)
        dk_ptrs = DK + b64 * stride_dkb + kv_h * stride_dkh + key_offs * stride_dks + gl.expand_dims(offs_d, 0)
        dv_ptrs = DV + b64 * stride_dvb + kv_h * stride_dvh + key_offs * stride_dvs + gl.expand_dims(offs_d, 0)
        gl.store(dk_ptrs, (dk * sm_scale).to(dtype), mask=key_ok)
        gl.store(dv_ptrs, dv.to(dtype), mask=key_ok)


@gluon.jit
def bwd_ws_kernel(
    q_desc,
    k_desc,
    v_desc,
    do_desc,
    dq_desc,
    lse_desc,
    delta_desc,
    dk_desc,
    dv_desc,
    DK,
    DV,
    Mask,
    FullCount,
    FullIndex,
    PartCount,
    PartIndex,
    Order,
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
    seqlen_q_pad,
    num_q_heads,
    num_kv_heads,
    q_per_kv,
    q_per_mask,
    num_m_blocks,
    num_n_blocks,
    qk_scale,
    sm_scale,
    bh_offset,
    CAUSAL: gl.constexpr,
    HAS_MASK: gl.constexpr,
    LTE_COL: gl.constexpr,
    UTS_COL: gl.constexpr,
    UTE_COL: gl.constexpr,
    NUM_STAGES: gl.constexpr,
    DKV_TMA: gl.constexpr,
):
    """Grid ``(key blocks of 128, batch x key/value heads)``; 4 warps here plus a 4-warp and a 1-warp worker.
    A grid of fewer (batch x key/value head) rows takes rows ``bh_offset ..`` (the backward in pieces).

    Gluon tensor descriptors over ``[B, S, H, D]`` (D = 128 or 64): ``q_desc`` / ``do_desc`` with boxes
    ``[1, 64, 1, D]`` (one query tile), ``k_desc`` / ``v_desc`` ``[1, 64, 1, D]`` (one warpgroup's keys); ``dq_desc``
    over the fp32 dQ accumulator ``[B, Sq, Hq, D]`` (zeroed; it receives ``softmax_scale * dS K``) with boxes
    ``[1, 64, 1, D / 2]``. ``DK`` / ``DV`` are written in the inputs' dtype: with ``DKV_TMA`` by bulk copies through
    ``dk_desc`` / ``dv_desc`` (boxes ``[1, 64, 1, D]``, as ``k_desc``), otherwise by scattered stores through the
    pointers (the descriptors are then placeholders). The list arguments are ``tile_lists(..., transposed=True)``'s
    for 64 x 128 tiles.
    """
    pid_bh = gl.program_id(1) + bh_offset
    b = pid_bh // num_kv_heads
    kv_h = pid_bh % num_kv_heads
    # Heaviest key blocks first, ordered by the live tiles of the group's first mask head.
    first_mask_h = (kv_h * q_per_kv) // q_per_mask
    pid_n = gl.load(Order + (b * list_stride_b + first_mask_h).to(gl.int64) * num_n_blocks + gl.program_id(0))
    start_n = pid_n * (2 * WG_KEYS)

    dtype: gl.constexpr = q_desc.dtype
    block_m: gl.constexpr = q_desc.block_type.shape[1]
    # (Gluon's frontend takes no starred expressions: lists are concatenated.)
    k_bufs = gl.allocate_shared_memory(dtype, [2] + k_desc.block_type.shape, k_desc.layout)  # noqa: RUF005
    v_bufs = gl.allocate_shared_memory(dtype, [2] + v_desc.block_type.shape, v_desc.layout)  # noqa: RUF005
    q_bufs = gl.allocate_shared_memory(dtype, [NUM_STAGES] + q_desc.block_type.shape, q_desc.layout)  # noqa: RUF005
    do_bufs = gl.allocate_shared_memory(dtype, [NUM_STAGES] + do_desc.block_type.shape, do_desc.layout)  # noqa: RUF005
    # dS^T of both warpgroups, two tiles deep: [slot * 2 + warpgroup, keys, queries].
    ds_layout: gl.constexpr = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=2)
    ds_bufs = gl.allocate_shared_memory(dtype, [4, WG_KEYS, block_m], ds_layout)
    dq_bufs = gl.allocate_shared_memory(gl.float32, [2] + dq_desc.block_type.shape, dq_desc.layout)  # noqa: RUF005
    lse_bufs = gl.allocate_shared_memory(gl.float32, [NUM_STAGES] + lse_desc.block_type.shape, lse_desc.layout)  # noqa: RUF005
    delta_bufs = gl.allocate_shared_memory(gl.float32, [NUM_STAGES] + delta_desc.block_type.shape,  # noqa: RUF005
                                           delta_desc.layout)  # fmt: skip
    kv_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    qdo_ready = gl.allocate_shared_memory(gl.int64, [NUM_STAGES, 1], mbarrier.MBarrierLayout())
    qdo_empty = gl.allocate_shared_memory(gl.int64, [NUM_STAGES, 1], mbarrier.MBarrierLayout())
    ds_ready = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    ds_free = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    mbarrier.init(kv_bar, count=1)
    for i in gl.static_range(NUM_STAGES):
        mbarrier.init(qdo_ready.index(i), count=1)
        # Released once by each of the two consuming warpgroups.
        mbarrier.init(qdo_empty.index(i), count=2)
    for i in gl.static_range(2):
        mbarrier.init(ds_ready.index(i), count=2)
        mbarrier.init(ds_free.index(i), count=2)

    descs = (q_desc, k_desc, v_desc, do_desc, dq_desc, lse_desc, delta_desc, dk_desc, dv_desc)
    bufs = (k_bufs, v_bufs, q_bufs, do_bufs, ds_bufs, dq_bufs, lse_bufs, delta_bufs)
    bars = (kv_bar, qdo_ready, qdo_empty, ds_ready, ds_free)
    lists = (FullCount, FullIndex, PartCount, PartIndex, list_stride_b, num_m_blocks, num_n_blocks, q_per_kv,
             q_per_mask)  # fmt: skip
    coords = (b, kv_h, pid_n, start_n)
    masks = (Mask, stride_mb, stride_mh, stride_ms, DK, DV, stride_dkb, stride_dks, stride_dkh, stride_dvb,
             stride_dvs, stride_dvh)  # fmt: skip
    dims = (seqlen_q, seqlen_k, num_q_heads, qk_scale, sm_scale, seqlen_q_pad)
    # fmt: off
    gl.warp_specialize(
        [
            (_consumer, (descs, bufs, bars, lists, coords, masks, dims, 0, CAUSAL, HAS_MASK, LTE_COL, UTS_COL,
                         UTE_COL, DKV_TMA)),
            (_consumer, (descs, bufs, bars, lists, coords, masks, dims, 1, CAUSAL, HAS_MASK, LTE_COL, UTS_COL,
                         UTE_COL, DKV_TMA)),
            (_producer, (descs, bufs, bars, lists, coords, masks, dims, 0, CAUSAL, HAS_MASK, LTE_COL, UTS_COL,
                         UTE_COL, DKV_TMA)),
        ],
        [4, 1],
        [240, 24],
    )
    # fmt: on
