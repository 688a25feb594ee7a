"""The kernel configuration table: what the README promises about the defaults, checked per GPU generation.

Runs without a GPU: the device capability is stubbed, and nothing is compiled.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from flashmask.kernels import configs

HEAD_DIMS = (16, 32, 64, 128, 256)
# (interval vectors a partial tile loads, causal): no column mask, and every stored form.
FORMS = [(0, False), (0, True), (1, True), (2, True), (2, False), (4, False)]


@pytest.fixture(params=[(9, 0), (8, 0)], ids=["hopper", "ampere"])
def gpu(request, monkeypatch):
    monkeypatch.setattr(configs, "interpreting", lambda: False)
    monkeypatch.setattr(configs, "major_version", lambda device: request.param[0])
    return torch.device("cuda"), request.param


@pytest.mark.parametrize("form", FORMS)
def test_default_backward_is_deterministic_except_the_gluon_one(gpu, form):
    """README: the default configurations compute dQ in its own pass (no atomics), so gradients repeat, except at
    D=128 and D=64 on Hopper (D=64 with Triton 3.6, whose Gluon it needs): there the dK/dV config is the
    warp-specialized Gluon kernel, whose dQ reduce-adds land in any order; ``deterministic=True`` replaces it with
    the Triton dK/dV tiles and the dQ pass."""
    device, (major, _) = gpu
    vectors, causal = form
    for d in HEAD_DIMS:
        cfgs = configs.pick(d, device, mask_vectors=vectors, causal=causal)
        assert not cfgs.atomic_dq and not cfgs.tma_reduce_dq, (d, cfgs)
        gluon = major >= 9 and (d == 128 or (d == 64 and configs.gluon_release()))
        assert cfgs.dkdv.warp_specialized == gluon, (d, cfgs.dkdv)
        fallback = configs.triton_dkdv(cfgs.dkdv, cfgs.dkdv_fallback)
        assert cfgs.dkdv == (configs.WARP_SPECIALIZED_BACKWARD if gluon else fallback)
        assert not fallback.warp_specialized
        assert not cfgs.dq.warp_specialized


def test_tiles_are_whole_blocks_and_tensor_descriptors_only_on_hopper(gpu):
    device, (major, _) = gpu
    for d in HEAD_DIMS:
        for vectors, causal in FORMS:
            cfgs = configs.pick(d, device, mask_vectors=vectors, causal=causal)
            for cfg in (cfgs.forward, cfgs.dkdv, cfgs.dq):
                for size in (cfg.block_m, cfg.block_n):
                    assert size >= 16 and size & (size - 1) == 0, (d, cfg)
                assert cfg.num_warps in (4, 8) and cfg.num_stages >= 1
                assert not cfg.tma or major >= 9, (d, cfg)


def test_mask_form_changes_only_the_forward(gpu):
    """The backward tiles do not depend on the mask form, except on Hopper without a column mask: at D=64 (next
    test), and at D=128 the dQ pass (128x64 tiles on 8 warps, 3 stages). At D=128 on Hopper every form's forward
    is the warp-specialized kernel (4-warp consumer warpgroups, 3 K/V stages; since session 11 the four-vector
    form too, whose limits it packs), with no second grid chosen on the GPU."""
    device, (major, _) = gpu
    for d in HEAD_DIMS:
        plain = configs.pick(d, device)
        for vectors, causal in FORMS:
            cfgs = configs.pick(d, device, mask_vectors=vectors, causal=causal)
            if not (major >= 9 and d == 64 and vectors == 0):  # D=64: next test
                assert cfgs.dkdv == plain.dkdv, (d, vectors, causal)
                # D=128 on Hopper: the dQ pass without a column mask is its own (128x64 tiles, 3 stages).
                if not (major >= 9 and d == 128) or not vectors:
                    assert cfgs.dq == plain.dq, (d, vectors, causal)
                else:
                    assert tuple(cfgs.dq)[:4] == (64, 64, 4, 2) and tuple(plain.dq)[:4] == (128, 64, 8, 3)
            if major >= 9 and d == 128:
                assert cfgs.forward == configs.WARP_SPECIALIZED_FORWARD, (vectors, causal)
                assert tuple(cfgs.forward) == (128, 128, 4, 3, True, True), (vectors, causal)
            else:
                assert cfgs.forward == plain.forward, (d, vectors, causal)
            assert cfgs.forward_partial is None, (d, vectors, causal)


def test_four_vectors_keep_two_triton_grids_without_gluon(gpu, monkeypatch):
    """On a Triton release without the Gluon kernels the four-vector form keeps what it ran before them at D=128
    on Hopper: 128x128 tiles on 8 warps (2 stages) and 64x64 on 4 warps beside it, chosen on the GPU by the share
    of partial tiles; the other forms get the Gluon config, whose launcher runs the Triton kernel on its tiles."""
    device, (major, _) = gpu
    monkeypatch.setattr(configs, "gluon_release", lambda: False)
    for vectors, causal in FORMS:
        cfgs = configs.pick(128, device, mask_vectors=vectors, causal=causal)
        if major >= 9 and vectors == 4:
            assert tuple(cfgs.forward)[:4] == (128, 128, 8, 2) and tuple(cfgs.forward_partial)[:4] == (64, 64, 4, 2)
        else:
            assert cfgs.forward_partial is None, (vectors, causal)


def test_two_forward_grids_only_from_the_minimum_key_length():
    """Below ``DUAL_FORWARD_MIN_KEYS`` the partial-tile variant runs alone (the unchosen grid's launch would cost
    more than the choice gains there); from it on both are launched and the GPU picks."""
    from flashmask.kernels import _forward_configs

    big, small = configs.KernelConfig(128, 128, 8, 2, True), configs.KernelConfig(64, 64, 4, 2, True)
    cfgs = configs.Configs(big, small, small, forward_partial=small)
    n = configs.DUAL_FORWARD_MIN_KEYS
    assert _forward_configs(cfgs, n - 1, None) == (small, None)
    assert _forward_configs(cfgs, n, None) == (big, small)
    assert _forward_configs(cfgs._replace(forward_partial=None), 4 * n, None) == (big, None)


@pytest.mark.parametrize("form", FORMS)
def test_d64_backward_tiles_follow_form_and_length_on_hopper(gpu, form):
    """D=64 on Hopper without a column mask: the dQ pass gets a third stage under causal and from
    ``DEEP_DQ_MIN_KEYS`` keys; full gets 32x256 dK/dV tiles from ``WIDE_DKDV_MIN_QUERIES`` queries. The column-mask
    forms, other head dims and Ampere keep one backward at every length."""
    device, (major, _) = gpu
    vectors, causal = form

    def pick(*args, **kwargs):
        """The configs with the Triton dK/dV tiles in ``dkdv`` (the Gluon kernel's fallback where it is the default)."""
        cfgs = configs.pick(*args, **kwargs)
        return cfgs._replace(dkdv=configs.triton_dkdv(cfgs.dkdv, cfgs.dkdv_fallback), dkdv_fallback=None)

    short = pick(64, device, vectors, causal, seqlen_q=8192, seqlen_k=8192)
    assert pick(64, device, vectors, causal) == short
    mid = pick(64, device, vectors, causal, seqlen_q=32768, seqlen_k=configs.DEEP_DQ_MIN_KEYS)
    n = configs.WIDE_DKDV_MIN_QUERIES
    long = pick(64, device, vectors, causal, seqlen_q=n, seqlen_k=n)
    below = pick(64, device, vectors, causal, seqlen_q=n - 1, seqlen_k=n)
    if major < 9 or vectors:
        assert short == mid == long
        return
    assert tuple(short.dkdv)[:4] == tuple(mid.dkdv)[:4] == tuple(below.dkdv)[:4] == (64, 64, 4, 2)
    assert tuple(short.dq)[:4] == ((128, 128, 8, 3) if causal else (128, 128, 8, 2))
    assert tuple(mid.dq)[:4] == tuple(long.dq)[:4] == (128, 128, 8, 3)
    assert tuple(long.dkdv)[:4] == ((64, 64, 4, 2) if causal else (32, 256, 8, 3))
    for d in (16, 32, 128, 256):
        assert configs.pick(d, device, vectors, causal, seqlen_q=n, seqlen_k=n) == configs.pick(
            d, device, vectors, causal
        )


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(("forward_on", "backward_on"), [(True, False), (False, True), (True, True)])
def test_d64_gluon_kernels_behind_their_switches(gpu, monkeypatch, form, forward_on, backward_on):
    """``GLUON_FORWARD_D64`` / ``GLUON_BACKWARD_D64`` (both on by default) give D=64 on Hopper (Triton 3.6) the Gluon
    configs of D=128, each alone; everything else stays as with both off, and where the Gluon kernels cannot run (or
    ``deterministic=True``) D=64's own Triton tiles run: the forward's 4 warps and 2 stages on the same 128x128
    tiles, the dK/dV tiles of the call's length and form. Other head dims and Ampere do not change."""
    device, (major, _) = gpu
    vectors, causal = form
    monkeypatch.setattr(configs, "gluon_release", lambda: True)
    assert configs.WARP_SPECIALIZED_FORWARD.num_stages == configs.GLUON_FORWARD_D64_STAGES
    assert configs.WARP_SPECIALIZED_BACKWARD.num_stages == configs.GLUON_BACKWARD_D64_STAGES
    lengths = [(8192, 8192), (configs.WIDE_DKDV_MIN_QUERIES,) * 2]
    monkeypatch.setattr(configs, "GLUON_FORWARD_D64", False)
    monkeypatch.setattr(configs, "GLUON_BACKWARD_D64", False)
    before = {(d, n): configs.pick(d, device, vectors, causal, *n) for d in HEAD_DIMS for n in lengths}
    monkeypatch.setattr(configs, "GLUON_FORWARD_D64", forward_on)
    monkeypatch.setattr(configs, "GLUON_BACKWARD_D64", backward_on)
    for (d, n), old in before.items():
        cfgs = configs.pick(d, device, vectors, causal, *n)
        if major < 9 or d != 64:
            assert cfgs == old, (d, n)
            continue
        assert cfgs.dq == old.dq and cfgs.forward_partial is None and not cfgs.atomic_dq
        assert cfgs.forward == (configs.WARP_SPECIALIZED_FORWARD if forward_on else old.forward)
        assert configs.triton_forward(cfgs.forward, vectors > 0, 64) == old.forward
        if backward_on:
            assert cfgs.dkdv == configs.WARP_SPECIALIZED_BACKWARD and cfgs.dkdv_fallback == old.dkdv
            assert cfgs.dkdv.num_stages == configs.GLUON_BACKWARD_D64_STAGES
        else:
            assert cfgs.dkdv == old.dkdv and cfgs.dkdv_fallback is None
        assert configs.triton_dkdv(cfgs.dkdv, cfgs.dkdv_fallback) == old.dkdv


@pytest.mark.parametrize("has_mask", [False, True])
@pytest.mark.parametrize("head_dim", [64, 128])
def test_gluon_backward_dkv_copies_except_d64_without_a_column_mask(monkeypatch, head_dim, has_mask):
    """The Gluon backward writes dK / dV by bulk copies (``GLUON_BACKWARD_DKV_COPIES``, on) except at D=64 without a
    column mask, where the scattered stores measured faster (``GLUON_BACKWARD_DKV_COPIES_D64_NO_MASK``, off); the
    main switch off turns them off everywhere."""
    d64_plain = head_dim == 64 and not has_mask
    assert configs.gluon_dkv_copies(head_dim, has_mask) is not d64_plain
    monkeypatch.setattr(configs, "GLUON_BACKWARD_DKV_COPIES_D64_NO_MASK", True)
    assert configs.gluon_dkv_copies(head_dim, has_mask)
    monkeypatch.setattr(configs, "GLUON_BACKWARD_DKV_COPIES", False)
    assert not configs.gluon_dkv_copies(head_dim, has_mask)


@pytest.mark.parametrize("form", FORMS)
def test_forward_key_sweeps_only_for_long_d128_calls_without_a_column_mask(gpu, form):
    """On Hopper at D=128 without a column mask, a forward over more than ``FORWARD_SWEEP_MAX_KEYS`` keys visits
    them in the fewest equal sweeps of whole key blocks that stay within it; everything else runs one sweep."""
    device, (major, _) = gpu
    vectors, causal = form
    limit = configs.FORWARD_SWEEP_MAX_KEYS

    def sweep_keys(d, seqlen_k):
        return configs.pick(d, device, vectors, causal, seqlen_q=seqlen_k, seqlen_k=seqlen_k).forward_sweep_keys

    for d in HEAD_DIMS:
        assert sweep_keys(d, limit) == 0, d
        if d != 128 or major < 9 or vectors:
            assert sweep_keys(d, 4 * limit) == 0, (d, vectors)
    if major < 9 or vectors:
        return
    block_n = configs.pick(128, device, vectors, causal).forward.block_n
    assert sweep_keys(128, 2 * limit) == limit
    assert sweep_keys(128, 3 * limit // 2) == 3 * limit // 4
    for seqlen_k in (limit + 1, 100_000, 2 * limit + 1, 1_000_003):
        keys = sweep_keys(128, seqlen_k)
        sweeps = -(-seqlen_k // limit)
        assert keys % block_n == 0 and keys <= limit, (seqlen_k, keys)
        assert -(-seqlen_k // keys) == sweeps, (seqlen_k, keys)  # the fewest sweeps
        last = seqlen_k - (sweeps - 1) * keys
        assert last > keys - sweeps * block_n, (seqlen_k, keys)  # of equal length, to a block each


def test_changed_settings_name_what_differs_from_the_defaults(monkeypatch) -> None:
    """Benchmarks record the settings a run changed (``bench_with.py --set``); with none changed, nothing."""
    assert configs.changed_settings() == {}
    monkeypatch.setattr(configs, "BWD_PIECES_LEAD", configs.BWD_PIECES_LEAD + 1)
    monkeypatch.setattr(configs, "PLAN_BACKWARD_IN_FORWARD", not configs.PLAN_BACKWARD_IN_FORWARD)
    assert configs.changed_settings() == {
        "BWD_PIECES_LEAD": configs.BWD_PIECES_LEAD,
        "PLAN_BACKWARD_IN_FORWARD": configs.PLAN_BACKWARD_IN_FORWARD,
    }
