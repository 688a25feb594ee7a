"""Tile sizes, warps and pipeline depth per GPU generation and head dim.

Chosen by measurement on the H100 (``benchmarks/tune.py``, results in ``benchmarks/NOTES.md``); other
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


class Configs(NamedTuple):
    forward: KernelConfig
    dkdv: KernelConfig  # backward, one program per key block
    dq: KernelConfig  # deterministic dQ, one program per query block


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def pick(head_dim_pad: int, device: torch.device) -> Configs:
    """Configs for a padded head dim (a power of two, >= 16) on ``device``."""
    if interpreting() or device.type != "cuda":
        return Configs(KernelConfig(32, 16, 4, 1), KernelConfig(16, 32, 4, 1), KernelConfig(32, 16, 4, 1))
    major, _ = torch.cuda.get_device_capability(device)
    if major >= 9:  # Hopper
        if head_dim_pad <= 64:
            return Configs(KernelConfig(128, 64, 4, 3), KernelConfig(64, 128, 8, 2), KernelConfig(128, 64, 8, 2))
        if head_dim_pad <= 128:
            return Configs(KernelConfig(128, 64, 8, 3), KernelConfig(64, 128, 8, 2), KernelConfig(128, 64, 8, 2))
        return Configs(KernelConfig(64, 64, 4, 2), KernelConfig(32, 64, 4, 2), KernelConfig(64, 32, 4, 2))
    # Ampere and older: less shared memory.
    if head_dim_pad <= 64:
        return Configs(KernelConfig(128, 64, 4, 2), KernelConfig(64, 64, 4, 2), KernelConfig(64, 64, 4, 2))
    if head_dim_pad <= 128:
        return Configs(KernelConfig(64, 64, 4, 2), KernelConfig(32, 64, 4, 2), KernelConfig(64, 32, 4, 2))
    return Configs(KernelConfig(64, 32, 4, 1), KernelConfig(32, 32, 4, 1), KernelConfig(32, 32, 4, 1))
