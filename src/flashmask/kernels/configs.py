"""Tile sizes, warps, pipeline depth and load path per GPU generation and head dim.

Chosen by measurement on the H100 (``benchmarks/tune.py``; numbers in ``benchmarks/NOTES.md``); other
generations get conservative sizes that fit their shared memory. Under ``TRITON_INTERPRET=1`` small tiles
keep the interpreter fast and make small test shapes span several blocks.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import torch


class KernelConfig(NamedTuple):
    block_m: int
    block_n: int
    num_warps: int
    num_stages: int
    tma: bool = False  # Hopper bulk tensor copies (tensor descriptors) for the inner loop's loads


class Configs(NamedTuple):
    forward: KernelConfig
    dkdv: KernelConfig  # backward, one program per key block
    dq: KernelConfig  # dQ pass, one program per query block
    # dQ by fp32 atomics in the dK/dV kernel instead of its own pass; on Hopper ``tma_reduce_dq`` makes them one
    # bulk reduce-add per tile (copy engine, in L2) instead of per-element atomics.
    atomic_dq: bool = False
    tma_reduce_dq: bool = False


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


K = KernelConfig


def pick(head_dim_pad: int, device: torch.device, column_mask: bool = False) -> Configs:
    """Configs for a padded head dim (a power of two, >= 16) on ``device``.

    ``column_mask``: the call has ``startend_row_indices`` (partial tiles load interval vectors), not only the
    causal triangle or nothing.
    """
    if interpreting() or device.type != "cuda":
        return Configs(K(32, 16, 4, 1), K(16, 32, 4, 1), K(32, 16, 4, 1))
    major, _ = torch.cuda.get_device_capability(device)
    if major >= 9:  # Hopper
        # Measured on H100 (benchmarks/NOTES.md, runs 3, 9 and 10; 8K, B=8). Forward, D=128: 486 TFLOPs/s at
        # 128x128 with TMA (424 at 128x64). Backward: dK/dV and dQ-pass programs of 4 warps on 64x64 tiles, two
        # programs per SM, beat one 8-warp program on 64x128: D=128 55.0 ms against 60.2 (full), D=64 68.8
        # against 72.1 (with atomics). D=256: 32x32 dK/dV tiles and the dQ pass, 104.9 ms against 134.4 (atomics
        # on 64x64). The dQ pass beats atomics (per element or bulk reduce-add) at every head dim.
        if head_dim_pad <= 64:
            return Configs(K(128, 64, 4, 3, True), K(64, 64, 4, 2), K(128, 128, 8, 2, True))
        if head_dim_pad <= 128:
            # With a column mask the 3-stage forward is at the register limit (it spills) and, with four
            # vectors, past the shared-memory limit: 2 stages measured 1-6% faster there (run 11).
            fwd_stages = 2 if column_mask else 3
            return Configs(K(128, 128, 8, fwd_stages, True), K(64, 64, 4, 2), K(64, 64, 4, 2, True))
        return Configs(K(128, 64, 8, 2, True), K(32, 32, 4, 2), K(128, 32, 8, 2, True))
    # Ampere and older: less shared memory, no tensor descriptors.
    if head_dim_pad <= 64:
        return Configs(K(128, 64, 4, 2), K(64, 64, 4, 2), K(64, 64, 4, 2))
    if head_dim_pad <= 128:
        return Configs(K(64, 64, 4, 2), K(32, 64, 4, 2), K(64, 32, 4, 2))
    return Configs(K(64, 32, 4, 1), K(32, 32, 4, 1), K(32, 32, 4, 1))
