"""Tile sizes, warps, pipeline depth and load path per GPU generation and head dim.

Chosen by measurement on the H100 (``benchmarks/tune.py``; numbers in ``benchmarks/NOTES.md``); other
generations get conservative sizes that fit their shared memory. Under ``TRITON_INTERPRET=1`` small tiles
keep the interpreter fast and make small test shapes span several blocks.
"""

from __future__ import annotations

import functools
import os
from typing import NamedTuple

import torch
import triton


class KernelConfig(NamedTuple):
    block_m: int
    block_n: int
    num_warps: int
    num_stages: int
    tma: bool = False  # Hopper bulk tensor copies (tensor descriptors) for the inner loop's loads
    # The warp-specialized Gluon kernels (Hopper, D=128 and D=64, Triton 3.6), with ``num_warps`` per consumer warpgroup
    # and ``num_stages`` stages. Forward (``forward_hopper``; every mask form):
    # where it cannot run the launcher falls back to the Triton kernel on the same tiles (``triton_forward``).
    # Backward (``backward_hopper``, as ``dkdv``: dK, dV and dQ in one kernel): with ``deterministic=True`` or
    # where it cannot run, the Triton dK/dV kernel and dQ pass run instead (``triton_dkdv``).
    warp_specialized: bool = False


class Configs(NamedTuple):
    forward: KernelConfig
    dkdv: KernelConfig  # backward, one program per key block
    dq: KernelConfig  # dQ pass, one program per query block
    # dQ by fp32 atomics in the dK/dV kernel instead of its own pass; on Hopper ``tma_reduce_dq`` makes them one
    # bulk reduce-add per tile (copy engine, in L2) instead of per-element atomics.
    atomic_dq: bool = False
    tma_reduce_dq: bool = False
    # Forward for calls where more than PARTIAL_SHARE of the live tiles (counted on ``forward``'s tiling) are
    # partially masked. Both are launched; each program reads the GPU's decision and one grid exits at once,
    # so the choice follows the mask's data without a host sync.
    forward_partial: KernelConfig | None = None
    # Visit the keys in sweeps of about this many (one launch each, the online-softmax state carried in fp32
    # between them), so that the K/V the programs in flight read stays in L2; 0: one sweep. Single-grid
    # forwards only; on by default where measured to pay (``FORWARD_SWEEP_MAX_KEYS``).
    forward_sweep_keys: int = 0
    # The dQ-accumulating backward (Gluon; Triton with ``atomic_dq``) in this many launches over pieces of the
    # (batch x key/value head) rows, its memory passes beside them (``kernels._pieces``); 0: ``BWD_PIECES``.
    backward_pieces: int = 0
    # The Triton dK/dV tiles where a warp-specialized ``dkdv`` cannot run or ``deterministic=True`` (``None``: D=128's,
    # ``triton_dkdv``).
    dkdv_fallback: KernelConfig | None = None


# Measured at D=128 on the H100 (benchmarks/NOTES.md, session 5): 64x64 tiles beat 128x128 on masks whose share
# of partial tiles (128x128 tiling) is 0.10-0.42 (global_sliding_window 8K/32K, causal_blockwise 8K/32K,
# qk_sparse 8K: 4-27%) and lose at 0.007-0.030 (qk_sparse 32K/128K: 13% / 6%, global_sliding_window 128K: 3%).
PARTIAL_SHARE = 0.05
# The grid that is not chosen still launches its programs (each returns after one load): about 0.4 ms for the
# 128K tokens of the benchmark at 8K (forward +4-5% on global_sliding_window and causal_blockwise, session 5),
# noise beside the forward at 32K and longer, where the choice pays (qk_sparse 32K: -8.5%). Shorter key
# lengths run ``forward_partial`` alone.
DUAL_FORWARD_MIN_KEYS = 16384
# D=64 backward without a column mask on the H100 (benchmarks/NOTES.md, session 7). A third stage in the dQ pass
# (128x128, 8 warps) is 5.6-6.7% faster on causal at 8K-128K and on full from 32K keys, but 6.6% slower on full
# at 8K; on the sparse masks it is mixed (-4% to +6%), and a column-mask form cannot tell full from document,
# so column masks keep 2 stages. dK/dV tiles of 256 keys by 32 queries on 8 warps stream Q and dO once per 256
# keys instead of 64: on full -2.1% at 64K queries and -5.0% at 128K, +7% at 32K and +8% at 8K.
DEEP_DQ_MIN_KEYS = 32768
WIDE_DKDV_MIN_QUERIES = 65536
# D=128 forward without a column mask on the H100 (benchmarks/NOTES.md, session 8): past this many keys one head's
# K/V (32 MB at this many) no longer stays in L2 while the programs in flight drift apart (s7k: 37% L2 hits at 128K), so
# the keys are visited in equal sweeps of at most this many. Full / causal at 128K: -7.6% / -7.9% in two sweeps
# of 65536; at 96K two of 49152: -4.5% / -2%. Two sweeps of 32768 at 64K: level / +5%, four at 128K lose to
# two. At 128K six of the seven single-grid column-mask forms (2-stage kernel) lose 4-15% (random_eviction gains
# 2.5%), and D=64 (one head's K/V 32 MB there) loses 1-6%.
FORWARD_SWEEP_MAX_KEYS = 65536
# The dQ-accumulating backward in pieces on CUDA (``kernels._pieces``): how many, whether their main kernels
# alternate between two streams, and the side passes' grid (programs, query rows per block, warps). Measured on an
# H100 at 8K (benchmarks/NOTES.md, session 21): 8 pieces take 0.5-1.0 ms off the backward's GPU time of the sparse
# masks (sliding_window 13.9 -> 13.2-13.4 ms), 4 and 16 pieces less; on full it is level. A side program of 32 warps
# at 256 rows (46-51 registers a thread at D=128, sm_90) is one per SM, so the programs stream from as many SMs,
# with 128 KB of loads in flight each. Small problems stay whole (``_backward_pieces``: 4 waves a piece at least).
BWD_PIECES = 8
BWD_PIECES_ALTERNATE = True
# Pieces whose prepare pass runs first on the whole grid: GPU work in front of the host's setup of the main kernel
# (tile lists, descriptors), which the whole backward hid under ~1 ms of passes. With one lead piece the timed
# backward (host included) gave back ~0.4-0.5 ms of the pieces' ~0.7 ms at 8K on an H100; two read a little better
# on all three masks tried (-0.03 to -0.6 ms, within the runs' noise; NOTES session 21). s22a sweeps 1 / 2 / 4 / 8.
BWD_PIECES_LEAD = 2
# The last and first pieces' sizes against the others' (``_pieces.piece_ranges``). Smaller end pieces would expose less
# of the passes that run alone on the whole GPU (the last piece's dQ conversion, the first's prepare), but each side
# pass must finish beside one main kernel: on an H100 at 8K (s23a, by the timer through the public call) a last share
# of 0.5 / 0.25 read +0.8% / +2-3.4% on sliding_window and causal_document, a first share of 0.5 / 0.25 with one lead
# piece +5.6% / +7.5-8.8%, as the next main kernel waited on its side prepare. With 32 side programs both shares read
# level (-0.2% to -0.7%), but 32 side programs cost the defaults +1.0-1.6% (s23c). So 1.0: even pieces.
BWD_LAST_PIECE_SHARE = 1.0
BWD_FIRST_PIECE_SHARE = 1.0
# With ``PLAN_BACKWARD_IN_FORWARD`` the forward builds the backward's tile lists once its main kernel is queued
# (``attention_forward(plan_backward=True)``, as eager autograd calls ask), while they take at most this share of q's
# memory or this many bytes: they stay allocated until the backward. Off: on an H100 at 8K with two lead pieces the
# backward's setup is already hidden under their prepare (s22d's timeline), and the timed backward read +0.4% /
# +1.1% with it (sliding_window / causal_document, within the timer's noise), the forward +0.2% (its 15 us plan
# kernel). With one lead piece it read level too (s23a: -0.5% / +0.1%), and one lead piece stays behind two on
# sliding_window (+1.8% to +2.3%; causal_document -1.0%, s23a/s23c).
PLAN_BACKWARD_IN_FORWARD = False
BACKWARD_LISTS_MAX_SHARE = 1 / 32
BACKWARD_LISTS_ALWAYS_BYTES = 1 << 20
# Launches of compiled Gluon kernels reuse the tensor maps encoded for equal descriptors (``_host._EncodedLaunch``):
# less host work per launch; by the timer at 8K on an H100 the forward read -0.7% / -0.1%, the backward (setup hidden
# under the lead prepare) +0.2% / +0.1%, within the noise (s22d).
ENCODED_LAUNCH = True
BWD_SIDE_PROGRAMS = 8
BWD_SIDE_BLOCK_M = 256
BWD_SIDE_WARPS = 32


# The Gluon forward (``forward_hopper``): 128x128 tiles, two 4-warp consumer warpgroups, three K/V stages.
WARP_SPECIALIZED_FORWARD = KernelConfig(128, 128, 4, 3, True, warp_specialized=True)
# The Gluon backward (``backward_hopper``): 128 keys per program (two 4-warp consumer warpgroups of 64), query
# tiles of 64 rows, two Q/dO stages (three spill and take 226 KB of shared memory).
WARP_SPECIALIZED_BACKWARD = KernelConfig(64, 128, 4, 2, True, warp_specialized=True)
# The Gluon kernels at D=64 on Hopper (Triton 3.6), forward and backward, each with its switch. They compile there
# without spills (112 / 113 KB of shared memory). Against D=64's Triton kernels on the H100 at 8K (GPU time, session
# 24, s24b): forward -8% to -15%, backward -13% to -23% on full, sliding_window, causal_document,
# global_sliding_window and qk_sparse; gpu_check's D=64 cases 15/15 with both on.
GLUON_FORWARD_D64 = True
GLUON_BACKWARD_D64 = True
# Their K/V (forward) and Q/dO (backward) stages at D=64: up to 6 / 4 fit without spills (208 / 146 KB); 4 and 5
# forward stages read level with 3 (-0.5% to +0.3%), 3 backward stages -1.6% to +1.9% against 2 (s24c).
GLUON_FORWARD_D64_STAGES = 3
GLUON_BACKWARD_D64_STAGES = 2
# The Gluon backward's dK / dV leave through shared memory it no longer needs, by bulk copies, instead of 64 scattered
# stores per thread (benchmarks/NOTES.md, session 25; GPU time in turn against the stores, H100, 8K): D=128
# sliding_window -5.6%, causal_document -5.9%, full -4.3%; D=64 sliding_window -6.5%, causal_document -2.3%,
# global_sliding_window -5.4%, but full +2.25% (two runs), so at D=64 the forms without a column mask keep the
# stores (its causal form was not timed with the copies). Spills at D=128: 12-40 B on the column-mask forms (0-36 B
# with the stores); none at D=64. Buffers the copy engine cannot write (caller-given, unaligned) take the stores.
GLUON_BACKWARD_DKV_COPIES = True
GLUON_BACKWARD_DKV_COPIES_D64_NO_MASK = False
# The Triton dK/dV tiles at D=128 on Hopper (runs 11-14 in benchmarks/NOTES.md), the Gluon backward's fallback.
_TRITON_DKDV_D128 = KernelConfig(64, 64, 4, 2, True)


# Gluon is experimental and its API moves between releases: the warp-specialized kernels are used only on the Triton
# release they were written and checked against (elsewhere the Triton kernels run on the same tiles).
GLUON_TRITON_RELEASE = "3.6."


def gluon_release() -> bool:
    """Whether this Triton is the release the Gluon kernels run on."""
    return triton.__version__.startswith(GLUON_TRITON_RELEASE)


@functools.cache
def _properties(index: int):
    return torch.cuda.get_device_properties(index)


def _device_properties(device: torch.device):
    """A CUDA ``device``'s properties, looked up once per device: the query costs as much host time as launching a
    kernel, on every call otherwise."""
    return _properties(torch.cuda.current_device() if device.index is None else device.index)


def major_version(device: torch.device) -> int:
    """The compute capability's major version of a CUDA ``device``."""
    return _device_properties(device).major


def sm_count(device: torch.device) -> int:
    """Streaming multiprocessors of a CUDA ``device`` (a persistent grid's size)."""
    return _device_properties(device).multi_processor_count


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


K = KernelConfig


def pick(
    head_dim_pad: int,
    device: torch.device,
    mask_vectors: int = 0,
    causal: bool = False,
    seqlen_q: int = 0,
    seqlen_k: int = 0,
) -> Configs:
    """Configs for a padded head dim (a power of two, >= 16) on ``device``.

    ``mask_vectors``: how many interval vectors of ``startend_row_indices`` a partially masked tile loads (its
    last dim: 1, 2 or 4; 0 without a column mask). ``causal``: the causal triangle is applied on top.
    ``seqlen_q`` / ``seqlen_k``: the call's lengths (0: unknown, short-sequence tiles), which the D=64 backward
    without a column mask uses on Hopper.
    """
    if interpreting() or device.type != "cuda":
        return Configs(K(32, 16, 4, 1), K(16, 32, 4, 1), K(32, 16, 4, 1))
    major = major_version(device)
    if major >= 9:  # Hopper
        # Measured on H100 (benchmarks/NOTES.md, runs 3, 9-11 and 13-15; 8K, B=8). Backward: dK/dV and dQ-pass
        # programs of 4 warps on 64x64 tiles, two programs per SM, beat one 8-warp program on 64x128: D=128 55.0
        # ms against 60.2 (full), D=64 68.8 against 72.1 (with atomics). D=256: 32x32 dK/dV tiles and the dQ
        # pass, 104.9 ms against 134.4 (atomics on 64x64). The dQ pass beats atomics (per element or bulk
        # reduce-add) at every head dim. Forward, D=64: 128x128 tiles on 4 warps (two programs per SM), 3-19%
        # faster than 128x64 on all 12 benchmark masks. dK/dV reads Q and dO by TMA at D<=128: 3-6% faster on
        # full, causal and global_sliding_window at both head dims, level on causal_document (session 5; on the
        # 8-warp 64x128 tiles of run 2 TMA had lost).
        if head_dim_pad <= 64:
            dkdv, dq = K(64, 64, 4, 2, True), K(128, 128, 8, 2, True)
            if head_dim_pad == 64 and not mask_vectors:  # measured at D=64 only
                if causal or seqlen_k >= DEEP_DQ_MIN_KEYS:
                    dq = K(128, 128, 8, 3, True)
                if not causal and seqlen_q >= WIDE_DKDV_MIN_QUERIES:
                    dkdv = K(32, 256, 8, 3, True)
            forward = K(128, 128, 4, 2, True)
            if head_dim_pad == 64 and gluon_release():
                # The Gluon kernels at D=64 (session 24: 8-23% faster), each behind its switch; the Triton tiles
                # above stay their fallbacks (the forward's lists are for 128x128 tiles either way).
                if GLUON_FORWARD_D64:
                    forward = WARP_SPECIALIZED_FORWARD._replace(num_stages=GLUON_FORWARD_D64_STAGES)
                if GLUON_BACKWARD_D64:
                    gluon_dkdv = WARP_SPECIALIZED_BACKWARD._replace(num_stages=GLUON_BACKWARD_D64_STAGES)
                    return Configs(forward, gluon_dkdv, dq, dkdv_fallback=dkdv)
            return Configs(forward, dkdv, dq)
        if head_dim_pad <= 128:
            # The Gluon backward (session 10): 17-23% faster than the Triton dK/dV kernel and dQ pass at 8K on
            # full, causal and causal_document. The launcher takes the Triton tiles where it cannot run (D=96,
            # which pads to 128) and for ``deterministic=True``.
            dkdv = WARP_SPECIALIZED_BACKWARD if head_dim_pad == 128 else _TRITON_DKDV_D128
            forward, forward_partial = _forward_d128_hopper(mask_vectors, gluon_release())
            dq, sweep_keys = K(64, 64, 4, 2, True), 0
            if head_dim_pad == 128 and not mask_vectors:  # measured there only
                # dQ pass of 128x64 tiles, 8 warps, 3 stages (no spills) against 64x64/4/2, alternated twice
                # (session 8): backward -2.4% to -4.8% on full at 8K-128K and causal at 32K/128K, mixed on causal
                # at 8K; on the sparse column masks at 8K it loses 3-13%. Every spill-free dK/dV variant
                # (32x128/8/3, 64x64/8, 32x64/4/3-4) was 5-60% slower than the spilling 64x64/4/2.
                dq = K(128, 64, 8, 3, True)
                sweep_keys = _equal_sweeps(seqlen_k, FORWARD_SWEEP_MAX_KEYS, forward.block_n)
            return Configs(forward, dkdv, dq, forward_partial=forward_partial, forward_sweep_keys=sweep_keys)
        return Configs(K(128, 64, 8, 2, True), K(32, 32, 4, 2), K(128, 32, 8, 2, True))
    # Ampere and older: less shared memory, no tensor descriptors.
    if head_dim_pad <= 64:
        return Configs(K(128, 64, 4, 2), K(64, 64, 4, 2), K(64, 64, 4, 2))
    if head_dim_pad <= 128:
        return Configs(K(64, 64, 4, 2), K(32, 64, 4, 2), K(64, 32, 4, 2))
    return Configs(K(64, 32, 4, 1), K(32, 32, 4, 1), K(32, 32, 4, 1))


def _equal_sweeps(seqlen_k: int, max_keys: int, block_n: int) -> int:
    """Keys per sweep when ``seqlen_k`` is cut into the fewest equal sweeps of at most ``max_keys`` (whole blocks
    of ``block_n``); 0 when one sweep covers it."""
    if seqlen_k <= max_keys:
        return 0
    sweeps = -(-seqlen_k // max_keys)
    blocks = -(-seqlen_k // block_n)
    return -(-blocks // sweeps) * block_n


def _forward_d128_hopper(mask_vectors: int, gluon: bool) -> tuple[KernelConfig, KernelConfig | None]:
    """Forward tiles at D=128 on Hopper, by how much element-mask work a partial tile carries.

    128x128 tiles on 8 warps (526 TFLOPs/s on full, 128x64: 424) sit at the register limit once a partial tile
    loads interval vectors: 3 stages spill there, so column masks get 2 (1-6% faster, run 11). With four
    vectors, or two under the causal triangle, even 2 stages spill (or reach 255 registers), and 64x64 tiles on
    4 warps (two programs per SM, no spills) are faster where partial tiles are common (runs 13-14); where they
    are rare the 128x128 kernel wins (its full tiles are cheaper). So those forms get both, chosen on the GPU by
    the share of partial tiles (``PARTIAL_SHARE``); the other forms keep 128x128, where 64x64 lost up to 16%.
    Since session 9 every form but the four-vector one, and the call without a column mask, runs the
    warp-specialized Gluon forward instead: -8% to -25% forward on the nine masks of those forms at 8K, 32K and
    128K (s9e-s9i; causal_blockwise and qk_sparse -18% to -24% against the better of their two Triton
    variants), -14% to -18% without a mask (s9a; three K/V stages: two were level at 8K, +7% on full at 32K).
    With four vectors its per-column limits spilled (s9j: +39% at 8K); since session 11 it packs them (one byte
    per limit and warpgroup, no spills) and takes that form too: global_sliding_window's forward -7% at 8K and
    -22% at 32K against the better Triton grid (s11a). Without Gluon (another Triton release) that form keeps
    its two Triton grids; the others fall back to the Triton kernel on the Gluon kernel's tiles
    (``triton_forward``).
    """
    if mask_vectors == 4 and not gluon:
        return K(128, 128, 8, 2, True), K(64, 64, 4, 2, True)
    return WARP_SPECIALIZED_FORWARD, None


def triton_forward(cfg: KernelConfig, has_mask: bool, head_dim_pad: int = 128) -> KernelConfig:
    """The Triton forward on the tiles of a warp-specialized ``cfg``, for calls the Gluon kernel cannot take.

    The tile lists are built for ``cfg``'s tiles, so they stay. At D=128 the warps are those of both consumers;
    with a column mask at most 2 stages, as that kernel gets by default (3 spill there, run 11). At a padded D of
    64 or less, D=64's own Triton forward: 4 warps (two programs per SM), 2 stages (run 13).
    """
    if head_dim_pad <= 64:
        return cfg._replace(num_stages=2, warp_specialized=False)
    stages = min(cfg.num_stages, 2) if has_mask else cfg.num_stages
    return cfg._replace(num_warps=2 * cfg.num_warps, num_stages=stages, warp_specialized=False)


def triton_dkdv(cfg: KernelConfig, fallback: KernelConfig | None = None) -> KernelConfig:
    """The Triton dK/dV tiles for calls the Gluon backward ``cfg`` cannot take (or ``deterministic=True``):
    ``fallback`` (a ``Configs.dkdv_fallback``) if given, else D=128's; they run with the dQ pass of ``Configs.dq``."""
    if not cfg.warp_specialized:
        return cfg
    return fallback or _TRITON_DKDV_D128


def gluon_dkv_copies(head_dim: int, has_mask: bool) -> bool:
    """Whether the Gluon backward writes dK / dV by bulk copies (``GLUON_BACKWARD_DKV_COPIES``) for this head dim and
    mask form (the caller also checks that the copy engine can write the buffers)."""
    if head_dim == 64 and not has_mask:
        return GLUON_BACKWARD_DKV_COPIES and GLUON_BACKWARD_DKV_COPIES_D64_NO_MASK
    return GLUON_BACKWARD_DKV_COPIES


def _settings() -> dict[str, bool | int | float]:
    return {name: value for name, value in globals().items() if name.isupper() and type(value) in (bool, int, float)}


_DEFAULT_SETTINGS = _settings()


def changed_settings() -> dict[str, bool | int | float]:
    """This module's settings (its upper-case numbers and switches) that differ from their defaults: benchmarks
    record them beside their figures."""
    return {name: value for name, value in _settings().items() if _DEFAULT_SETTINGS.get(name) != value}
