"""The dQ-accumulating backward in pieces (``kernels._pieces``): the ranges, the dependencies of the schedule, the
prepare and convert passes, and whole backwards whose launches run in random orders that honour only the stated
dependencies (a missing one shows as wrong gradients). CUDA streams themselves run on the GPU only
(``benchmarks/gpu_check.py``)."""

from __future__ import annotations

import itertools
import math
import os
import random
from collections import defaultdict

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from flashmask.kernels import _pieces
from flashmask.kernels._pieces import ALT, CONVERT, CURRENT, PREPARE, piece_ranges, run_in_pieces

interpreted = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1", reason="kernel tests run under TRITON_INTERPRET=1 (see README)"
)


@given(st.integers(1, 300), st.integers(1, 40))
def test_piece_ranges_cover_the_rows_in_even_contiguous_pieces(rows: int, pieces: int) -> None:
    ranges = piece_ranges(rows, pieces)
    assert len(ranges) == min(rows, pieces)
    assert ranges[0][0] == 0 and ranges[-1][1] == rows
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    sizes = [end - first for first, end in ranges]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


@given(st.integers(1, 600), st.integers(1, 40), st.sampled_from([0.25, 0.5, 0.75, 1.0]),
       st.sampled_from([0.25, 0.5, 0.75, 1.0]))  # fmt: skip
def test_smaller_end_pieces(rows: int, pieces: int, last_share: float, first_share: float) -> None:
    """The last and first pieces about ``last_share`` / ``first_share`` of the others (never empty), the others as
    even as can be."""
    ranges = piece_ranges(rows, pieces, last_share, first_share)
    assert len(ranges) == min(rows, pieces)
    assert ranges[0][0] == 0 and ranges[-1][1] == rows
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    sizes = [end - first for first, end in ranges]
    assert min(sizes) >= 1
    if len(sizes) > 1 and rows >= 4 * len(sizes):  # room for every piece to take its share
        units = len(sizes) - 2 + first_share + last_share
        regular = sizes[1:-1]
        if regular:
            assert max(regular) - min(regular) <= 1
            assert all(abs(size - rows / units) <= 1 for size in regular)
        assert abs(sizes[-1] - last_share * rows / units) <= 1
        assert abs(sizes[0] - first_share * rows / units) <= 1


class _Event:
    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.done = False


class ShuffledStreams:
    """A runner that queues each stream's operations and then runs them in a random interleaving that keeps each
    stream's order and every wait on an event: any order a GPU could take."""

    def __init__(self, seed: int) -> None:
        self.queues: dict[str, list] = defaultdict(list)
        self.rng = random.Random(seed)
        self.trace: list[tuple[str, str]] = []

    def launch(self, stream: str, fn) -> None:
        self.queues[stream].append(("launch", fn))

    def record(self, stream: str) -> _Event:
        event = _Event(stream)
        self.queues[stream].append(("record", event))
        return event

    def wait(self, stream: str, event: _Event) -> None:
        self.queues[stream].append(("wait", event))

    def drain(self) -> None:
        heads = dict.fromkeys(self.queues, 0)
        while True:
            ready = [
                s
                for s, queue in self.queues.items()
                if heads[s] < len(queue) and (queue[heads[s]][0] != "wait" or queue[heads[s]][1].done)
            ]
            if not ready:
                assert all(heads[s] == len(q) for s, q in self.queues.items()), "the schedule deadlocks"
                return
            stream = self.rng.choice(ready)
            kind, item = self.queues[stream][heads[stream]]
            heads[stream] += 1
            if kind == "launch":
                item()
            elif kind == "record":
                item.done = True


def _schedule(pieces: int, alternate: bool, seed: int = 0, lead: int = 1) -> tuple[ShuffledStreams, list[str]]:
    """``run_in_pieces`` over ``pieces`` pieces with launches that only log their name; returns the runner (not yet
    drained) and the log, which fills as it drains."""
    log: list[str] = []
    runner = ShuffledStreams(seed)
    runner.launch(CURRENT, lambda: log.append("inputs"))  # what the caller queued before

    def setup():
        runner.launch(CURRENT, lambda: log.append("lists"))
        return lambda first, end: log.append(f"main{first}")

    run_in_pieces(
        runner, piece_ranges(pieces, pieces),
        lambda first, end, side: log.append(f"prepare{first}{'s' if side else ''}"),
        setup,
        lambda first, end, side: log.append(f"convert{first}{'s' if side else ''}"),
        alternate=alternate, lead=lead,
    )  # fmt: skip
    runner.launch(CURRENT, lambda: log.append("after"))
    return runner, log


def _always_before(pieces: int, alternate: bool, lead: int, seeds: int = 60) -> set[tuple[str, str]]:
    """The pairs (a, b) of launches where a ran before b in every one of ``seeds`` random orders."""
    always = None
    for seed in range(seeds):
        runner, log = _schedule(pieces, alternate, seed, lead)
        runner.drain()
        position = {name: i for i, name in enumerate(log)}
        pairs = {(a, b) for a in log for b in log if position[a] < position[b]}
        always = pairs if always is None else always & pairs
    return always


@pytest.mark.parametrize("alternate", [True, False])
@pytest.mark.parametrize("pieces", [4, 5])  # the last main kernel on the second stream, or on the current one
@pytest.mark.parametrize("lead", [1, 2])
def test_schedule_keeps_each_pieces_order_and_lets_the_passes_run_beside_other_pieces(pieces, alternate, lead):
    runner, log = _schedule(pieces, alternate, lead=lead)
    runner.drain()

    def prepared(i: int) -> str:  # the lead pieces' rows in one whole-grid pass, the others' on the side
        return "prepare0" if i < lead else f"prepare{i}s"

    def converted(i: int) -> str:  # the last piece's dQ on the whole grid, the others' on the side
        return f"convert{i}" + ("s" if i < pieces - 1 else "")

    assert sorted(log) == sorted(
        ["inputs", "lists", "after", "prepare0"]
        + [prepared(i) for i in range(lead, pieces)]
        + [f"main{i}" for i in range(pieces)]
        + [converted(i) for i in range(pieces)]
    )
    before = _always_before(pieces, alternate, lead)
    # Nothing runs before what the caller queued (the inputs, and earlier users of the call's fresh buffers).
    assert all(("inputs", name) in before for name in log if name != "inputs")
    for i in range(pieces):
        # Each piece: its rows prepared, then its main kernel (after the lists), then its dQ converted; all of it
        # done before anything the caller queues next.
        assert {(prepared(i), f"main{i}"), ("lists", f"main{i}"), (f"main{i}", converted(i))} <= before
        assert all((name, "after") in before for name in (prepared(i), f"main{i}", converted(i)))
    # What makes the pieces pay: the side passes are not held behind other pieces' main kernels, and with
    # ``alternate`` a piece's main kernel does not wait for the previous one's.
    for i in range(1, pieces):
        if i >= lead:
            assert (f"main{i - 1}", prepared(i)) not in before
        assert (f"main{i}", converted(i - 1)) not in before
        assert ((f"main{i - 1}", f"main{i}") in before) != alternate
    assert (f"main{pieces - 1}", converted(pieces - 2)) not in before


def test_single_piece_runs_in_order_on_the_current_stream() -> None:
    runner, log = _schedule(1, True)
    assert set(runner.queues) <= {CURRENT, PREPARE}  # (PREPARE only waits, with nothing to do)
    assert not any(kind == "launch" for kind, _ in runner.queues[PREPARE])
    runner.drain()
    assert log == ["inputs", "prepare0", "lists", "main0", "convert0", "after"]


def test_streams_are_the_four_named() -> None:
    runner, _ = _schedule(4, True)
    assert set(runner.queues) == {CURRENT, ALT, PREPARE, CONVERT}


@interpreted
@pytest.mark.parametrize("side", [False, True])
def test_prepare_and_convert_passes_touch_exactly_their_rows(side: bool) -> None:
    """The prepare pass (``bwd_preprocess_kernel``'s delta and LSE rows, and zeros in the fp32 dQ buffer) and the
    convert pass over rows ``[first, end)`` of (batch x query head), with one program per block or a few that
    each take many (the side grid); rows outside stay poisoned."""
    import triton

    from flashmask.kernels.backward import bwd_prepare_kernel, bwd_preprocess_kernel, dq_convert_kernel

    torch.manual_seed(3)
    b, sq, h, d, row_stride = 2, 70, 3, 24, 128
    out, dout = torch.randn(b, sq, h, d), torch.randn(b, sq, h, d)
    lse, dlse = torch.randn(b, h, sq), torch.randn(b, h, sq)
    lse[1, 2, 7] = float("-inf")
    expected = torch.full((2, b, h, row_stride), float("nan"))
    bwd_preprocess_kernel[(triton.cdiv(row_stride, 64), b * h)](
        out, dout, lse, dlse, expected[0], expected[1], *out.stride()[:3], *dout.stride()[:3], sq, row_stride, h,
        HAS_DLSE=True, BLOCK_M=64, HEAD_DIM=d, HEAD_DIM_PAD=32,
    )  # fmt: skip
    first, end = 1, 5  # of b * h = 6 rows
    block_m, programs = (32, 3) if side else (64, None)
    got = torch.full_like(expected, float("nan"))
    dq_acc = torch.full((b, sq, h, d), float("nan"))
    items = (end - first) * triton.cdiv(row_stride, block_m)
    bwd_prepare_kernel[(programs or items,)](
        out, dout, lse, dlse, got[0], got[1], dq_acc, *out.stride()[:3], *dout.stride()[:3], sq, row_stride, h,
        first, items, HAS_DLSE=True, BLOCK_M=block_m, HEAD_DIM=d, HEAD_DIM_PAD=32,
    )  # fmt: skip
    rows = torch.zeros(b * h, dtype=torch.bool)
    rows[first:end] = True
    rows = rows.view(b, h)
    assert torch.equal(got[:, rows], expected[:, rows])
    assert torch.isnan(got[:, ~rows]).all()
    acc_rows = dq_acc.transpose(1, 2)  # [b, h, sq, d]
    assert (acc_rows[rows] == 0).all() and torch.isnan(acc_rows[~rows]).all()

    dq_acc = torch.randn(b, sq, h, d)
    dq = torch.full((b, h, sq, d), float("nan"), dtype=torch.float16).transpose(1, 2)  # strided output
    items = (end - first) * triton.cdiv(sq, block_m)
    dq_convert_kernel[(programs or items,)](
        dq_acc, dq, *dq.stride()[:3], sq, h, first, items, BLOCK_M=block_m, HEAD_DIM=d, HEAD_DIM_PAD=32
    )
    dq_rows, acc_rows = dq.transpose(1, 2), dq_acc.transpose(1, 2)
    assert torch.equal(dq_rows[rows], acc_rows[rows].half())
    assert torch.isnan(dq_rows[~rows]).all()


@interpreted
@pytest.mark.parametrize("seed", range(3))
def test_backward_in_pieces_in_any_order_matches_the_whole_backward(monkeypatch, seed: int) -> None:
    """The Triton backward with dQ by atomics, in 2-4 pieces whose launches run in a random order allowed by the
    schedule: the same gradients, bit for bit, as in one piece (each row's dQ adds come from one main launch in
    the same order), into poisoned buffers, and close to the fp64 reference."""
    from flashmask import kernels
    from flashmask.reference import reference_attention

    runners = []

    def shuffled(device):
        runners.append(ShuffledStreams(seed))
        return runners[-1]

    def run_then_drain(runner, *args, **kwargs):
        run_in_pieces(runner, *args, **kwargs)
        runner.drain()

    monkeypatch.setattr(kernels, "runner_for", shuffled)
    monkeypatch.setattr(kernels, "run_in_pieces", run_then_drain)
    monkeypatch.setattr(kernels._configs, "BWD_SIDE_PROGRAMS", 2)  # the side grid: few programs, many blocks each
    monkeypatch.setattr(kernels._configs, "BWD_SIDE_BLOCK_M", 32)
    monkeypatch.setattr(kernels._configs, "BWD_PIECES_LEAD", 1 + seed % 2)  # seed 1: 2 of 3 pieces prepared first
    monkeypatch.setattr(kernels._configs, "BWD_LAST_PIECE_SHARE", (1.0, 0.5, 0.25)[seed])  # seed 2: 1, 2, 2, 1 rows
    monkeypatch.setattr(kernels._configs, "BWD_FIRST_PIECE_SHARE", (1.0, 0.25, 0.5)[seed])
    gen = torch.Generator().manual_seed(seed)
    causal, vectors = [(True, 2), (False, 4), (True, 1)][seed]
    b, sq, sk, hq, hkv, d = 2, 45 + 20 * seed, 83, 6, 3, 16
    q = torch.randn(b, sq, hq, d, generator=gen)
    k, v = (torch.randn(b, sk, hkv, d, generator=gen) for _ in range(2))
    idx = torch.randint(-2, sq + 3, (b, hkv, sk, vectors), generator=gen, dtype=torch.int32)
    if vectors > 1:
        idx[..., 1] = idx[..., 0] + torch.randint(0, sq // 2, idx[..., 0].shape, generator=gen)
    if vectors == 4:
        idx[..., 3] = idx[..., 2] + torch.randint(0, sq // 2, idx[..., 2].shape, generator=gen)
    scale = 1 / math.sqrt(d)
    out, lse, bounds = kernels.attention_forward(q, k, v, idx, causal, scale, keep_bounds=True)
    do = torch.randn(q.shape, generator=gen)
    results = {}
    for pieces in (0, 2 + seed):
        cfgs = kernels.configs.pick(16, q.device)._replace(atomic_dq=True, backward_pieces=pieces)
        grads = tuple(torch.full_like(t, float("nan")) for t in (q, k, v))
        results[pieces] = kernels.attention_backward(do, q, k, v, out, lse, idx, causal, scale, configs=cfgs,
                                                     grads=grads, bounds=bounds)  # fmt: skip
    assert len(runners) == 1 and set(runners[0].queues) == {CURRENT, ALT, PREPARE, CONVERT}
    for whole, pieced in zip(results[0], results[2 + seed], strict=True):
        assert torch.equal(whole, pieced)
    qr, kr, vr = (t.double().requires_grad_() for t in (q, k, v))
    ref_out, _ = reference_attention(qr, kr, vr, idx, causal=causal)
    refs = torch.autograd.grad((ref_out * do.double()).sum(), (qr, kr, vr))
    for got, ref in zip(results[2 + seed], refs, strict=True):
        torch.testing.assert_close(got.double(), ref, atol=1e-4 * max(1.0, ref.abs().max().item()), rtol=0)


def test_pieces_only_where_asked_and_worth_it(monkeypatch) -> None:
    """``configs.BWD_PIECES`` applies on CUDA only, to calls whose pieces each keep the main kernel a few waves
    long; an explicit ``Configs.backward_pieces`` applies anywhere (at most one piece per row)."""
    from flashmask import kernels

    cfgs = kernels.configs.pick(16, torch.device("cpu"))
    q = torch.empty(1, 8, 1, 16)
    assert kernels._backward_pieces(cfgs, q, 64, 100) == 1
    assert kernels._backward_pieces(cfgs._replace(backward_pieces=8), q, 5, 100) == 5

    class CudaLike:
        is_cuda = True
        device = torch.device("cuda", 0)

    monkeypatch.setattr(kernels._configs, "BWD_PIECES", 8)
    monkeypatch.setattr(kernels._configs, "sm_count", lambda device: 132)
    assert kernels._backward_pieces(cfgs, CudaLike, 512, 64) == 8  # 8K x 16 x 32 heads: 248 waves
    assert kernels._backward_pieces(cfgs, CudaLike, 16, 64) == 1  # 7.8 waves: no piece would reach 4
    assert kernels._backward_pieces(cfgs, CudaLike, 32, 64) == 3
    assert kernels._backward_pieces(cfgs, CudaLike, 4, 2048) == 4  # 128K x 1 x 4 heads: one piece per row
    monkeypatch.setattr(kernels._configs, "BWD_PIECES", 1)
    assert kernels._backward_pieces(cfgs, CudaLike, 512, 64) == 1
    assert _pieces.runner_for(torch.device("cpu")).__class__ is _pieces.InOrder
