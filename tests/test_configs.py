"""The kernel configuration table: what the README promises about the defaults, checked per GPU generation.

Runs without a GPU: the device capability is stubbed, and nothing is compiled.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from flashmask.kernels import configs

HEAD_DIMS = (16, 32, 64, 128, 256)


@pytest.fixture(params=[(9, 0), (8, 0)], ids=["hopper", "ampere"])
def gpu(request, monkeypatch):
    monkeypatch.setattr(configs, "interpreting", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: request.param)
    return torch.device("cuda"), request.param


@pytest.mark.parametrize("column_mask", [False, True])
def test_default_backward_is_deterministic(gpu, column_mask):
    """README: the default configurations compute dQ in its own pass (no atomics), so gradients repeat."""
    device, _ = gpu
    for d in HEAD_DIMS:
        cfgs = configs.pick(d, device, column_mask=column_mask)
        assert not cfgs.atomic_dq and not cfgs.tma_reduce_dq, (d, cfgs)


def test_tiles_are_whole_blocks_and_tensor_descriptors_only_on_hopper(gpu):
    device, (major, _) = gpu
    for d in HEAD_DIMS:
        for column_mask in (False, True):
            cfgs = configs.pick(d, device, column_mask=column_mask)
            for cfg in (cfgs.forward, cfgs.dkdv, cfgs.dq):
                for size in (cfg.block_m, cfg.block_n):
                    assert size >= 16 and size & (size - 1) == 0, (d, cfg)
                assert cfg.num_warps in (4, 8) and cfg.num_stages >= 1
                assert not cfg.tma or major >= 9, (d, cfg)


def test_column_mask_changes_only_the_forward_pipeline_depth(gpu):
    """At D=128 on Hopper the forward drops to 2 stages with a column mask (it spills at 3); nothing else moves."""
    device, (major, _) = gpu
    for d in HEAD_DIMS:
        plain, masked = configs.pick(d, device), configs.pick(d, device, column_mask=True)
        assert plain.dkdv == masked.dkdv and plain.dq == masked.dq
        assert plain.forward._replace(num_stages=masked.forward.num_stages) == masked.forward
        if major >= 9 and d == 128:
            assert (plain.forward.num_stages, masked.forward.num_stages) == (3, 2)
