"""The Triton kernels under ``TRITON_INTERPRET=1`` on CPU tensors (CI has no GPU), against the dense reference.

Small fp32/fp16 shapes (the interpreter's bf16 dot is wrong in Triton 3.6), every mask type, every (causal, C)
form, GQA, every Hm, Sq != Sk, odd lengths, empty rows, both load paths (pointers and tensor descriptors) and
both dQ modes. Outputs are written into NaN-poisoned buffers so that unwritten elements show. The full
GPU matrix (bf16, all head dims, long sequences) is ``benchmarks/gpu_check.py``.
"""

from __future__ import annotations

import math
import os

import pytest
import torch

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1", reason="kernel tests run under TRITON_INTERPRET=1 (see README)"
)

triton = pytest.importorskip("triton")

from flashmask import ColumnMask, flashmask_attention  # noqa: E402
from flashmask.bench import workloads  # noqa: E402
from flashmask.reference import reference_attention  # noqa: E402

FORMS = [(True, 1), (True, 2), (False, 2), (False, 4)]


def _kernels():
    from flashmask import kernels

    return kernels


def _random_indices(gen, b, hm, sq, sk, causal, c):
    idx = torch.randint(-3, sq + 4, (b, hm, sk, c), generator=gen, dtype=torch.int32)
    if c == 4 or (causal and c == 2):
        idx[..., 1] = idx[..., 0] + torch.randint(0, max(2, sq // 3), idx[..., 0].shape, generator=gen)
    if c == 4:
        idx[..., 3] = idx[..., 2] + torch.randint(0, max(2, sq // 3), idx[..., 2].shape, generator=gen)
    return idx


def _check(q, k, v, indices, causal, *, deterministic, use_tma, atol, sweep_keys=None):
    """Run forward + backward into poisoned buffers and compare with the fp64 reference."""
    kern = _kernels()
    scale = 1 / math.sqrt(q.shape[-1])
    b, sq, hq, _ = q.shape
    gen = torch.Generator().manual_seed(1)
    do = torch.randn(q.shape, generator=gen).to(q.dtype)
    dlse = torch.randn(b, hq, sq, generator=gen)
    nan = float("nan")
    out = torch.full_like(q, nan)
    lse = torch.full((b, hq, sq), nan)
    out, lse, bounds = kern.attention_forward(
        q, k, v, indices, causal, scale, out=out, lse=lse, use_tma=use_tma, sweep_keys=sweep_keys, keep_bounds=True
    )
    dlse = torch.where(torch.isinf(lse), torch.zeros_like(dlse), dlse)
    grads = (torch.full_like(q, nan), torch.full_like(k, nan), torch.full_like(v, nan))
    configs = kern.configs.pick(16, q.device)._replace(atomic_dq=not deterministic)
    # The forward's bounds, as eager autograd passes them (here the dQ pass's key blocks match the forward's).
    dq, dk, dv = kern.attention_backward(
        do, q, k, v, out, lse, indices, causal, scale, dlse=dlse, deterministic=deterministic,
        configs=configs, grads=grads, use_tma=use_tma, bounds=bounds,
    )  # fmt: skip

    qr, kr, vr = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref_out, ref_lse = reference_attention(qr, kr, vr, indices, causal=causal)
    finite = torch.isfinite(ref_lse)
    loss = (ref_out * do.double()).sum() + (torch.where(finite, ref_lse, 0) * dlse.double()).sum()
    ref_dq, ref_dk, ref_dv = torch.autograd.grad(loss, (qr, kr, vr))

    for name, got, ref in (("out", out, ref_out), ("dq", dq, ref_dq), ("dk", dk, ref_dk), ("dv", dv, ref_dv)):
        assert torch.isfinite(got).all(), f"{name}: unwritten or non-finite elements"
        err = (got.double() - ref).abs().max().item()
        assert err <= atol * max(1.0, ref.abs().max().item()), f"{name}: max error {err:.2e}"
    assert torch.equal(torch.isneginf(lse), ~finite), "rows that see nothing must have lse = -inf"
    assert not torch.isnan(lse).any()
    if finite.any():
        assert (lse[finite].double() - ref_lse[finite]).abs().max().item() <= 1e-4
    if (~finite).any():
        rows = (~finite).transpose(1, 2)
        assert out[rows].abs().max() == 0 and dq[rows].abs().max() == 0


@pytest.mark.parametrize("causal,c", FORMS)
@pytest.mark.parametrize("sq,sk", [(70, 70), (45, 83), (83, 45)])
def test_forms_gqa_and_mask_heads(causal, c, sq, sk):
    gen = torch.Generator().manual_seed(sq * 131 + sk + c + 7 * causal)
    b, hq, hkv, d = 2, 4, 2, 24  # D=24 is padded to 32 inside the kernels
    for hm in (1, hkv, hq):
        q = torch.randn(b, sq, hq, d, generator=gen)
        k = torch.randn(b, sk, hkv, d, generator=gen)
        v = torch.randn(b, sk, hkv, d, generator=gen)
        idx = _random_indices(gen, b, hm, sq, sk, causal, c)
        _check(q, k, v, idx, causal, deterministic=hm != 2, use_tma=hm == hq, atol=2e-5)


@pytest.mark.parametrize("name", workloads.MASK_TYPES)
def test_every_mask_type_fp16(name):
    gen = torch.Generator().manual_seed(len(name))
    b, s, hq, hkv, d = 2, 96, 4, 1, 16
    mask = workloads.make(name, s, b, "cpu", seed=3).mask
    q, k, v = (torch.randn(b, s, h, d, generator=gen).half() for h in (hq, hkv, hkv))
    _check(q, k, v, mask.startend_row_indices, mask.causal, deterministic=True, use_tma=False, atol=2e-2)


@pytest.mark.parametrize("causal", [True, False])
def test_no_mask_and_shared_batch_mask(causal):
    gen = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(3, 50, 2, 16, generator=gen) for _ in range(3))
    _check(q, k, v, None, causal, deterministic=False, use_tma=False, atol=2e-5)
    idx = _random_indices(gen, 1, 1, 50, 50, causal, 2)  # batch 1: shared by all rows
    _check(q, k, v, idx, causal, deterministic=True, use_tma=True, atol=2e-5)


@pytest.mark.parametrize("causal,c", [*FORMS, (True, 0), (False, 0)])
def test_forward_in_key_sweeps(causal, c):
    """``sweep_keys``: the forward visits the keys in several launches (2 key blocks each here), carrying the
    online-softmax state in fp32; with GQA, Sq != Sk and rows that see nothing (some only in later sweeps)."""
    gen = torch.Generator().manual_seed(11 + c + 5 * causal)
    b, sq, sk, hq, hkv, d = 2, 45, 83, 4, 2, 16
    q = torch.randn(b, sq, hq, d, generator=gen)
    k = torch.randn(b, sk, hkv, d, generator=gen)
    v = torch.randn(b, sk, hkv, d, generator=gen)
    idx = _random_indices(gen, b, 2, sq, sk, causal, c) if c else None
    _check(q, k, v, idx, causal, deterministic=True, use_tma=c == 2, atol=2e-5, sweep_keys=32)


def test_default_forward_takes_its_key_sweeps_from_the_configs(monkeypatch):
    """Without ``sweep_keys`` the forward sweeps as the default configs say (``forward_sweep_keys``, set on Hopper
    for long D=128 calls without a column mask): here 3 launches of 2 key blocks, with the same result as one."""
    kern = _kernels()
    pick = kern.configs.pick
    monkeypatch.setattr(kern.configs, "pick", lambda *a, **kw: pick(*a, **kw)._replace(forward_sweep_keys=32))
    launches = []
    launch = kern._launch_forward
    monkeypatch.setattr(kern, "_launch_forward", lambda *a, **kw: launches.append(kw.get("sweep")) or launch(*a, **kw))
    gen = torch.Generator().manual_seed(12)
    q = torch.randn(1, 45, 2, 16, generator=gen)
    k, v = (torch.randn(1, 83, 1, 16, generator=gen) for _ in range(2))  # 6 key blocks of 16 under the interpreter
    out, lse = kern.attention_forward(q, k, v, None, True, 0.25)
    assert [(lo, hi) for _, _, _, lo, hi, _, _ in launches] == [(0, 2), (2, 4), (4, 6)]
    launches.clear()
    one_out, one_lse = kern.attention_forward(q, k, v, None, True, 0.25, config=kern.configs.pick(16, q.device).forward)
    assert launches == [None]
    torch.testing.assert_close(out, one_out, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(lse, one_lse, rtol=1e-6, atol=1e-6)


def test_row_hidden_in_its_first_tile_with_very_negative_scores():
    """A row that sees nothing in its first live tile, then only scores far below 0 (scaled, under -87): the
    running max must not be left at the 0 that stood in for -inf, or exp2 flushes every later score to zero and
    the row comes out empty (output 0, lse -inf) instead of attending. Every tile of rows 32-63 is partial
    (one column per key block hides rows from 33), and the first key block hides rows from 40."""
    gen = torch.Generator().manual_seed(4)
    s, d = 64, 16
    q = torch.randn(1, s, 1, d, generator=gen)
    k = 1.0 + 0.01 * torch.randn(1, s, 1, d, generator=gen)
    v = torch.randn(1, s, 1, d, generator=gen)
    q[0, 40, 0] = -30.0  # q.k / sqrt(d) is about -120 against every key
    lts = torch.full((1, 1, s), s, dtype=torch.int32)
    lts[0, 0, :16] = 40
    lts[0, 0, 16::16] = 33
    idx = torch.stack([lts, torch.zeros_like(lts)], -1)  # non-causal [LTS, UTE]
    _check(q, k, v, idx, False, deterministic=True, use_tma=False, atol=2e-5)


def test_deterministic_backward_is_bit_identical():
    gen = torch.Generator().manual_seed(9)
    q, k, v = (torch.randn(1, 64, 2, 16, generator=gen) for _ in range(3))
    mask = workloads.make("causal_document", 64, 1, "cpu", seed=1).mask
    kern = _kernels()
    out, lse = kern.attention_forward(q, k, v, mask.startend_row_indices, True, 0.25)
    do = torch.randn(q.shape, generator=gen)
    a = kern.attention_backward(do, q, k, v, out, lse, mask.startend_row_indices, True, 0.25, deterministic=True)
    b = kern.attention_backward(do, q, k, v, out, lse, mask.startend_row_indices, True, 0.25, deterministic=True)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=False))


def test_backward_reuses_only_bounds_of_its_own_key_blocks():
    """The forward's bounds give the gradients the backward's own give; bounds of other key blocks are ignored."""
    gen = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(1, 70, 2, 16, generator=gen) for _ in range(3))
    idx = _random_indices(gen, 1, 1, 70, 70, False, 4)
    kern = _kernels()
    out, lse, bounds = kern.attention_forward(q, k, v, idx, False, 0.25, keep_bounds=True)
    assert bounds.block_n == kern.configs.pick(16, q.device).dq.block_n
    do = torch.randn(q.shape, generator=gen)
    own = kern.attention_backward(do, q, k, v, out, lse, idx, False, 0.25, deterministic=True)
    reused = kern.attention_backward(do, q, k, v, out, lse, idx, False, 0.25, deterministic=True, bounds=bounds)
    # Bounds that hide every tile, for blocks of another size: used, they would zero the gradients.
    hide_all = torch.zeros_like(bounds.tensor)
    hide_all[:, 2] = 2**30  # every block: LTS at most 0 and LTE past every row, so every tile is dead
    wrong = kern.KeyBlockBounds(bounds.block_n + 1, hide_all)
    assert kern.attention_backward(do, q, k, v, out, lse, idx, False, 0.25, deterministic=True,
                                   bounds=wrong._replace(block_n=bounds.block_n))[0].abs().max() == 0  # fmt: skip
    other = kern.attention_backward(do, q, k, v, out, lse, idx, False, 0.25, deterministic=True, bounds=wrong)
    assert own[0].abs().max() > 0
    for a, b, c in zip(own, reused, other, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_backward_takes_the_tile_lists_its_forward_built(monkeypatch):
    """``plan_backward``: the forward builds the dK/dV kernel's lists where its tiles share the forward's key blocks;
    the backward takes them (lists that hide every tile zero dK and dV) only for its own tile shape, and gives the
    gradients it gives from its own lists; past the memory cap the forward builds none."""
    gen = torch.Generator().manual_seed(6)
    q, k, v = (torch.randn(1, 70, 2, 16, generator=gen) for _ in range(3))
    idx = _random_indices(gen, 1, 2, 70, 70, True, 2)
    kern = _kernels()
    monkeypatch.setattr(kern.configs, "PLAN_BACKWARD_IN_FORWARD", True)
    defaults = kern.configs.pick(16, q.device)
    # dK/dV tiles on the forward's key blocks (the interpreter's defaults use other ones).
    cfgs = defaults._replace(dkdv=kern.KernelConfig(16, defaults.forward.block_n, 4, 1))
    out, lse, bounds = kern.attention_forward(q, k, v, idx, True, 0.25, keep_bounds=True, plan_backward=True,
                                              backward_configs=cfgs)  # fmt: skip
    assert bounds.lists is not None and bounds.lists_block_m == 16
    do = torch.randn(q.shape, generator=gen)
    own = kern.attention_backward(do, q, k, v, out, lse, idx, True, 0.25, configs=cfgs)
    reused = kern.attention_backward(do, q, k, v, out, lse, idx, True, 0.25, configs=cfgs, bounds=bounds)
    assert own[1].abs().max() > 0
    for a, b in zip(own, reused, strict=True):
        assert torch.equal(a, b)
    dead = bounds.lists._replace(full_count=torch.zeros_like(bounds.lists.full_count),
                                 part_count=torch.zeros_like(bounds.lists.part_count))  # fmt: skip
    _, dk, dv = kern.attention_backward(do, q, k, v, out, lse, idx, True, 0.25, configs=cfgs,
                                        bounds=bounds._replace(lists=dead))  # fmt: skip
    assert dk.abs().max() == 0 and dv.abs().max() == 0
    other_shape = bounds._replace(lists=dead, lists_block_m=32)
    for a, b in zip(own, kern.attention_backward(do, q, k, v, out, lse, idx, True, 0.25, configs=cfgs,
                                                 bounds=other_shape), strict=True):  # fmt: skip
        assert torch.equal(a, b)
    monkeypatch.setattr(kern.configs, "BACKWARD_LISTS_MAX_SHARE", 1e-6)
    monkeypatch.setattr(kern.configs, "BACKWARD_LISTS_ALWAYS_BYTES", 0)
    _, _, capped = kern.attention_forward(q, k, v, idx, True, 0.25, keep_bounds=True, plan_backward=True,
                                          backward_configs=cfgs)  # fmt: skip
    assert capped.lists is None
    # Without ``plan_backward``, under the defaults here (dK/dV on other key blocks), or switched off, none either.
    assert kern.attention_forward(q, k, v, idx, True, 0.25, keep_bounds=True)[2].lists is None
    assert kern.attention_forward(q, k, v, idx, True, 0.25, keep_bounds=True, plan_backward=True)[2].lists is None
    monkeypatch.setattr(kern.configs, "BACKWARD_LISTS_ALWAYS_BYTES", 1 << 20)
    monkeypatch.setattr(kern.configs, "PLAN_BACKWARD_IN_FORWARD", False)
    _, _, off = kern.attention_forward(q, k, v, idx, True, 0.25, keep_bounds=True, plan_backward=True,
                                       backward_configs=cfgs)  # fmt: skip
    assert off.lists is None


@pytest.mark.parametrize("deterministic", [False, True])
def test_eager_autograd_hands_the_forward_plan_to_the_backward(monkeypatch, deterministic):
    """The eager path asks the forward for the backward's tile lists unless ``deterministic`` (whose backward runs
    other tiles), and gives the backward what the forward returned."""
    kern = _kernels()
    forward, backward = kern.attention_forward, kern.attention_backward
    seen = {}

    def spy_forward(*args, **kwargs):
        seen["plan_backward"] = kwargs.get("plan_backward")
        result = forward(*args, **kwargs)
        seen["bounds"] = result[2]
        return result

    def spy_backward(*args, **kwargs):
        seen["given"] = kwargs.get("bounds")
        return backward(*args, **kwargs)

    monkeypatch.setattr(kern, "attention_forward", spy_forward)
    monkeypatch.setattr(kern, "attention_backward", spy_backward)
    gen = torch.Generator().manual_seed(8)
    q, k, v = (torch.randn(1, 40, 2, 16, generator=gen, requires_grad=True) for _ in range(3))
    flashmask_attention(q, k, v, causal=True, backend="triton", deterministic=deterministic).sum().backward()
    assert seen["plan_backward"] is (not deterministic)
    assert seen["given"] is seen["bounds"] and seen["bounds"] is not None


def test_public_entry_point_runs_the_kernels():
    """``backend="triton"`` on CPU tensors goes through the kernels (interpreter) with autograd."""
    gen = torch.Generator().manual_seed(2)
    mask = ColumnMask(_random_indices(gen, 1, 1, 40, 40, False, 4), causal=False)
    q, k, v = (torch.randn(1, 40, 2, 16, generator=gen, requires_grad=True) for _ in range(3))
    out = flashmask_attention(q, k, v, mask, backend="triton")
    ref = flashmask_attention(q, k, v, mask, backend="torch")
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=0)
    g1 = torch.autograd.grad(out.sum(), (q, k, v))
    g2 = torch.autograd.grad(ref.sum(), (q, k, v))
    for a, b in zip(g1, g2, strict=False):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=0)


def test_tile_lists_match_the_torch_classification():
    from flashmask._column_mask import intervals_of
    from flashmask._tiling import DEAD, FULL, classify_tiles
    from flashmask.kernels.tiles import block_bounds, mask_form, tile_lists

    gen = torch.Generator().manual_seed(4)
    for causal, c in FORMS:
        for sq, sk in ((100, 100), (37, 90), (90, 37)):
            idx = _random_indices(gen, 2, 3, sq, sk, causal, c)
            bm, bn = 16, 32
            bounds = block_bounds(idx, mask_form(idx, causal), sq, sk, bn, idx.device)
            states = classify_tiles(intervals_of(idx, causal, sq), sk, bm, bn).flatten(0, 1)
            for transposed in (False, True):
                lists = tile_lists(bounds, causal, sq, sk, bm, bn, transposed).shaped(bounds.shape[0])
                st = states.transpose(1, 2) if transposed else states
                for row in range(st.shape[0]):
                    for outer in range(st.shape[1]):
                        nf = int(lists.full_count[row, outer])
                        npart = int(lists.part_count[row, outer])
                        full = lists.full_index[row, outer, :nf].tolist()
                        part = lists.part_index[row, outer, :npart].tolist()
                        assert full == torch.nonzero(st[row, outer] == FULL).flatten().tolist()
                        expect_part = (st[row, outer] != FULL) & (st[row, outer] != DEAD)
                        assert part == torch.nonzero(expect_part).flatten().tolist()
                    # Heaviest outer blocks first, ties by index: a permutation.
                    live = (lists.full_count[row] + lists.part_count[row]).tolist()
                    expect_order = sorted(range(st.shape[1]), key=lambda o: (-live[o], o))
                    assert lists.order[row].tolist() == expect_order


def _assert_same_lists(a, b, rows: int) -> None:
    """Two ``TileLists`` with the same counts, order, counter and the same entries below each count."""
    a, b = a.shaped(rows), b.shaped(rows)
    assert torch.equal(a.full_count, b.full_count) and torch.equal(a.part_count, b.part_count)
    assert torch.equal(a.order, b.order) and a.counter.tolist() == b.counter.tolist() == [0]
    for mine, theirs, count in ((a.full_index, b.full_index, a.full_count), (a.part_index, b.part_index, a.part_count)):
        written = torch.arange(mine.shape[-1]) < count[..., None]
        assert torch.equal(mine[written], theirs[written])


@pytest.mark.parametrize(
    ("sq", "sk", "bm", "bn", "forms", "rows"),
    [
        (100, 100, 16, 32, [*FORMS, (True, 0), (False, 0)], (2, 3)),
        (37, 90, 16, 32, FORMS, (2, 1)),
        (90, 37, 32, 16, FORMS, (1, 2)),
        (1100, 1100, 4, 32, [(False, 4)], (1, 1)),
        (1000, 4200, 16, 256, [(True, 2)], (1, 1)),
    ],
)
def test_one_launch_plan_matches_the_three_launches(sq, sk, bm, bn, forms, rows):
    """``tiles.plan``'s one program per row (bounds, lists, order) gives what the three grids give, with the
    bounds computed or handed in, with no mask, and over several chunks of each of its loops (the last two shapes:
    275 x 35 tiles, then 17 key blocks of 256 columns in two chunks)."""
    from flashmask.kernels.tiles import block_bounds, mask_form, plan, tile_lists

    gen = torch.Generator().manual_seed(6)
    for causal, c in forms:
        idx = _random_indices(gen, *rows, sq, sk, causal, c) if c else None
        form = mask_form(idx, causal)
        bounds = block_bounds(idx, form, sq, sk, bn, torch.device("cpu"))
        for transposed in (False, True):
            three = tile_lists(bounds, causal, sq, sk, bm, bn, transposed)
            own_bounds, one = plan(idx, form, sq, sk, bm, bn, transposed, torch.device("cpu"))
            _assert_same_lists(one, three, bounds.shape[0])
            if idx is not None:  # without a mask the three-launch path writes other (equivalent) constants
                assert torch.equal(own_bounds, bounds)
            given_bounds, given = plan(idx, form, sq, sk, bm, bn, transposed, torch.device("cpu"), bounds=own_bounds)
            assert given_bounds is own_bounds
            _assert_same_lists(given, three, bounds.shape[0])


def test_plan_takes_the_grids_above_its_row_limit(monkeypatch):
    """Rows of more tiles than ``ROW_PLAN_MAX_TILES`` take the three grids (one program per row would be slow)."""
    from flashmask.kernels import tiles

    gen = torch.Generator().manual_seed(8)
    idx = _random_indices(gen, 1, 2, 64, 64, True, 2)
    form = tiles.mask_form(idx, True)
    one_bounds, one = tiles.plan(idx, form, 64, 64, 16, 16, False, torch.device("cpu"))
    monkeypatch.setattr(tiles, "ROW_PLAN_MAX_TILES", 15)
    launched = []
    monkeypatch.setattr(tiles, "_row_plan_kernel", launched)  # subscripting a list fails if it is launched
    grid_bounds, grids = tiles.plan(idx, form, 64, 64, 16, 16, False, torch.device("cpu"))
    assert torch.equal(one_bounds, grid_bounds)
    _assert_same_lists(one, grids, 2)


def test_tile_lists_without_inner_blocks_are_empty():
    """No query rows: every key block's lists are empty, the order is still a permutation and the counter zero."""
    from flashmask.kernels.tiles import block_bounds, mask_form, tile_lists

    idx = torch.zeros(1, 2, 40, 1, dtype=torch.int32)
    bounds = block_bounds(idx, mask_form(idx, True), 0, 40, 16, idx.device)
    lists = tile_lists(bounds, True, 0, 40, 16, 16, transposed=True).shaped(2)
    assert lists.full_count.shape == (2, 3) and not lists.full_count.any() and not lists.part_count.any()
    assert lists.order.tolist() == [[0, 1, 2], [0, 1, 2]]
    assert lists.counter.tolist() == [0]


def test_order_is_the_heaviest_first_permutation_across_chunks():
    """The order kernel ranks each outer block against every other, in chunks of 128: rows of several chunks,
    many ties, and a row past the last full chunk."""
    from flashmask.kernels.tiles import _order_kernel

    gen = torch.Generator().manual_seed(5)
    rows, num_outer = 3, 300
    full = torch.randint(0, 6, (rows, num_outer), generator=gen, dtype=torch.int32)
    part = torch.randint(0, 3, (rows, num_outer), generator=gen, dtype=torch.int32)
    order = torch.full((rows, num_outer), -7, dtype=torch.int32)
    counter = torch.full((1,), -7, dtype=torch.int32)
    _order_kernel[(3, rows)](full, part, order, counter, num_outer, CHUNK=128)
    assert counter.item() == 0
    live = (full + part).tolist()
    for row in range(rows):
        expect = sorted(range(num_outer), key=lambda o: (-live[row][o], o))
        assert order[row].tolist() == expect


@pytest.mark.parametrize("use_tma", [False, True])
def test_strided_inputs(use_tma):
    """[B, H, S, D] tensors seen as [B, S, H, D] views (how transformers hands them over) need no copy."""
    gen = torch.Generator().manual_seed(11)
    b, s, hq, hkv, d = 2, 45, 4, 2, 16
    q = torch.randn(b, hq, s, d, generator=gen).transpose(1, 2)
    k = torch.randn(b, hkv, s, d, generator=gen).transpose(1, 2)
    v = torch.randn(b, hkv, s, d, generator=gen).transpose(1, 2)
    assert not q.is_contiguous()
    idx = _random_indices(gen, b, 1, s, s, True, 2)
    _check(q, k, v, idx, True, deterministic=True, use_tma=use_tma, atol=2e-5)


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_forward_variant_chosen_on_the_device(share):
    """Two forward grids launched together; the share of partial tiles (summed on the device) picks the one that
    runs: share 0 -> the partial-tile variant, share 1 -> the default one. Either must give the reference."""
    kern = _kernels()
    gen = torch.Generator().manual_seed(13)
    b, sq, sk, hq, hkv, d = 2, 70, 83, 4, 2, 16
    q = torch.randn(b, sq, hq, d, generator=gen)
    k, v = (torch.randn(b, sk, hkv, d, generator=gen) for _ in range(2))
    idx = _random_indices(gen, b, hq, sq, sk, False, 4)
    out, lse = torch.full_like(q, float("nan")), torch.full((b, hq, sq), float("nan"))
    kern.attention_forward(
        q, k, v, idx, False, 0.25, config=kern.KernelConfig(32, 32, 4, 1),
        partial_config=kern.KernelConfig(16, 16, 4, 1), partial_share=share, out=out, lse=lse,
    )  # fmt: skip
    ref_out, ref_lse = reference_attention(q.double(), k.double(), v.double(), idx, causal=False, softmax_scale=0.25)
    torch.testing.assert_close(out.double(), ref_out, atol=2e-5, rtol=0)
    finite = torch.isfinite(ref_lse)
    torch.testing.assert_close(lse.double()[finite], ref_lse[finite], atol=1e-4, rtol=0)


@pytest.mark.parametrize("decision", [0, 1])
@pytest.mark.parametrize("gate_mode", [1, 2])
def test_gated_forward_grid_runs_only_when_named(decision, gate_mode):
    """A gated grid (mode 1: runs on a nonzero decision, mode 2: on zero) must leave the output untouched
    otherwise, so that exactly one of the two variants writes."""
    kern = _kernels()
    gen = torch.Generator().manual_seed(17)
    q, k, v = (torch.randn(1, 40, 2, 16, generator=gen) for _ in range(3))
    idx = _random_indices(gen, 1, 1, 40, 40, True, 2)
    cfg = kern.KernelConfig(16, 16, 4, 1)
    out, lse = torch.full_like(q, float("nan")), torch.full((1, 2, 40), float("nan"))
    mask = kern._MaskArgs(idx, True, 2, lse)
    _, lists = kern._lists(mask, 40, 40, cfg.block_m, cfg.block_n, q.device, transposed=False)
    gate = torch.tensor([decision], dtype=torch.int32)
    kern._launch_forward(q, k, v, out, lse, 0.25, mask, lists, cfg, False, gate=gate, gate_mode=gate_mode)
    runs = (decision != 0) == (gate_mode == 1)
    if runs:
        ref_out, _ = reference_attention(q.double(), k.double(), v.double(), idx, causal=True, softmax_scale=0.25)
        torch.testing.assert_close(out.double(), ref_out, atol=2e-5, rtol=0)
    else:
        assert torch.isnan(out).all() and torch.isnan(lse).all()


@pytest.mark.parametrize(("sq", "sk"), [(0, 30), (30, 0)])
def test_empty_lengths(sq, sk):
    """No queries or no keys: nothing launches; rows without keys give 0 output and -inf LSE, and every gradient is
    zero, written into the given buffers when there are some."""
    kern = _kernels()
    gen = torch.Generator().manual_seed(21)
    q = torch.randn(1, sq, 2, 16, generator=gen)
    k, v = (torch.randn(1, sk, 2, 16, generator=gen) for _ in range(2))
    idx = _random_indices(gen, 1, 1, sq, sk, True, 1)
    out = torch.full_like(q, float("nan"))
    lse = torch.full((1, 2, sq), float("nan"))
    out, lse = kern.attention_forward(q, k, v, idx, True, 0.25, out=out, lse=lse)
    assert not out.any() and (lse == float("-inf")).all()
    grads = tuple(torch.full_like(x, float("nan")) for x in (q, k, v))
    got = kern.attention_backward(torch.randn(q.shape, generator=gen), q, k, v, out, lse, idx, True, 0.25,
                                  grads=grads)  # fmt: skip
    assert all(g is buf and not g.any() for g, buf in zip(got, grads, strict=True))
    assert all(not g.any() for g in kern.attention_backward(None, q, k, v, out, lse, idx, True, 0.25))
