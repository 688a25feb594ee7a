"""The dQ-accumulating backward in pieces of heads, with its memory passes beside the main kernel.

A backward that adds dQ into an fp32 buffer (the Gluon backward; the Triton one with ``atomic_dq``) brackets its
main kernel with three passes over memory: zero the buffer and compute ``delta`` / ``lse2`` before, convert the
buffer to the output dtype after. Each runs at the memory's bandwidth on the whole GPU, about 1.7 ms at 128K
tokens x 32 heads x 128 on an H200 against ~12 ms of compute (``benchmarks/NOTES.md``, session 17), and the
main kernel, bound by its matmuls, leaves the memory mostly idle while it runs.

So the (batch x key/value head) rows are cut into pieces, each with its own main-kernel launch. The first
piece's passes before and the last piece's after run on the whole GPU, as before; the others run on side
streams of higher priority with a few programs each, which take SMs as the main kernel's programs free them and
stream memory while the rest of the GPU computes. One SM alone reads several times its share of the bandwidth
it gets when every SM streams, so those passes cost the main kernel a fraction of their time on the whole GPU.
The mains alternate between the current stream and a second one, so that one piece's programs start while the
previous piece's last wave drains (each piece would otherwise end with a partly idle GPU).

``run_in_pieces`` states the order and the dependencies once; a runner carries them out: ``CudaStreams`` on
CUDA streams and events, ``InOrder`` in program order (CPU, the interpreter), and the tests one that runs the
launches in a random order that honours only the stated dependencies.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch

CURRENT, ALT, PREPARE, CONVERT = "current", "alt", "prepare", "convert"
# A pass on the whole grid (nothing to overlap it with), or on the side grid beside a main kernel.
WHOLE, SIDE = False, True


def piece_ranges(rows: int, pieces: int, last_share: float = 1.0, first_share: float = 1.0) -> list[tuple[int, int]]:
    """``pieces`` (at most ``rows``) contiguous ``(first, end)`` ranges of ``rows`` rows, of at least one row each: as
    even as can be, but the last one ``last_share`` and the first one ``first_share`` (each in ``(0, 1]``) of the
    others' size, about. (The first piece's prepare pass and the last piece's dQ conversion run alone on the GPU, so
    smaller end pieces expose less of them, but a short piece's neighbour then has too little main kernel beside its
    side pass: slower on the H100, and the configs keep even pieces, ``configs.BWD_LAST_PIECE_SHARE``.)"""
    pieces = max(1, min(pieces, rows))
    if pieces == 1:
        return [(0, rows)]
    # Piece i ends at ``rows * ends[i] / units`` (all shares 1: ``rows * i // pieces``, the even split).
    ends = [first_share + i for i in range(pieces - 1)]
    units = ends[-1] + last_share
    bounds = [0]
    for i, end in enumerate(ends, start=1):
        bounds.append(min(max(int(rows * end / units), bounds[-1] + 1), rows - (pieces - i)))
    bounds.append(rows)
    return list(itertools.pairwise(bounds))


def run_in_pieces(
    runner,
    ranges: list[tuple[int, int]],
    prepare: Callable[[int, int, bool], None],
    setup: Callable[[], Callable[[int, int], None]],
    convert: Callable[[int, int, bool], None],
    alternate: bool = True,
    lead: int = 1,
) -> None:
    """Launch the passes and main kernel of every range (each launch goes onto the current stream).

    ``prepare(first, end, side)`` and ``convert(first, end, side)``: the passes over the query rows of
    (batch x key/value head) rows ``[first, end)``, on the whole grid (``side`` False) or the side grid.
    ``setup()`` enqueues on the current stream what every main kernel needs besides its piece's prepared rows (the
    tile lists) and returns ``main(first, end)``, which launches the main kernel over them. It is called once
    the first piece's prepare pass is queued, so that the GPU has that pass to run while the host sets up.
    Everything enqueued here is complete, for the current stream, when this returns. ``alternate``: the main
    kernels alternate between the current stream and a second one (else all on the current stream, in turn).
    ``lead``: the first prepare pass covers this many pieces on the whole grid (more GPU work in front of the
    host's setup; the others' prepares run on the side).
    """
    lead = max(1, min(lead, len(ranges)))
    first, end = ranges[0][0], ranges[lead - 1][1]
    # (Each launch binds its piece now: a runner may call it later.)
    runner.launch(CURRENT, lambda first=first, end=end: prepare(first, end, WHOLE))
    first, end = ranges[0]
    main = setup()
    # The inputs, every earlier use of the buffers allocated for the call, what the main kernels need and the lead
    # pieces' rows. (The side prepares wait on it too: they run beside the main kernels anyway, and the host has
    # nothing to record before the first launch.)
    ready = runner.record(CURRENT)
    runner.launch(CURRENT, lambda first=first, end=end: main(first, end))
    done = [(CURRENT, runner.record(CURRENT))]
    runner.wait(PREPARE, ready)
    if alternate and len(ranges) > 1:
        runner.wait(ALT, ready)
    for i, (first, end) in enumerate(ranges[1:], start=1):
        stream = ALT if alternate and i % 2 else CURRENT
        if i >= lead:  # (the lead pieces' rows are ``ready``, which both main streams have waited on)
            runner.launch(PREPARE, lambda first=first, end=end: prepare(first, end, SIDE))
            runner.wait(stream, runner.record(PREPARE))
        runner.launch(stream, lambda first=first, end=end: main(first, end))
        done.append((stream, runner.record(stream)))
        # The previous piece's dQ, converted beside this one's main kernel.
        runner.wait(CONVERT, done[i - 1][1])
        before_first, before_end = ranges[i - 1]
        runner.launch(CONVERT, lambda first=before_first, end=before_end: convert(first, end, SIDE))
    last_stream, last_done = done[-1]
    if last_stream != CURRENT:
        runner.wait(CURRENT, last_done)
    first, end = ranges[-1]
    runner.launch(CURRENT, lambda first=first, end=end: convert(first, end, WHOLE))
    if len(ranges) > 1:
        # (Every main kernel on the second stream is joined already: the last one above, the others through the
        # convert pass that waits on it.)
        runner.wait(CURRENT, runner.record(CONVERT))


class InOrder:
    """Runs every launch at once, in program order (which honours every dependency): CPU tensors, the
    interpreter."""

    def launch(self, stream: str, fn: Callable[[], None]) -> None:
        fn()

    def record(self, stream: str) -> None:
        return None

    def wait(self, stream: str, event) -> None:
        pass


# Per device: the second main stream and the two side streams (of higher priority: their few programs take SMs
# ahead of the main kernel's waiting programs).
_HIGHEST_PRIORITY = -100  # clamped by torch to the device's highest
_SIDE_STREAMS: dict[int, tuple[torch.cuda.Stream, torch.cuda.Stream, torch.cuda.Stream]] = {}


class CudaStreams:
    """The current CUDA stream of ``device`` and this module's three others, with events between them.

    Buffers the launches use were allocated for the current stream; every other stream's work comes after an
    event recorded on it (``run_in_pieces``' ``ready``, waited on directly or through another stream)
    and the current stream waits on all of them before ``run_in_pieces`` returns, so the caching allocator's
    stream-ordered reuse stays safe without ``record_stream``.
    """

    def __init__(self, device: torch.device) -> None:
        index = torch.cuda.current_device() if device.index is None else device.index
        self.current = torch.cuda.current_stream(index)
        side = _SIDE_STREAMS.get(index)
        if side is None:
            side = (torch.cuda.Stream(index), torch.cuda.Stream(index, priority=_HIGHEST_PRIORITY),
                    torch.cuda.Stream(index, priority=_HIGHEST_PRIORITY))  # fmt: skip
            _SIDE_STREAMS[index] = side
        self.streams = {CURRENT: self.current, ALT: side[0], PREPARE: side[1], CONVERT: side[2]}

    def launch(self, stream: str, fn: Callable[[], None]) -> None:
        target = self.streams[stream]
        if target is self.current:
            fn()
            return
        torch.cuda.set_stream(target)
        try:
            fn()
        finally:
            torch.cuda.set_stream(self.current)

    def record(self, stream: str) -> torch.cuda.Event:
        event = torch.cuda.Event()
        event.record(self.streams[stream])
        return event

    def wait(self, stream: str, event: torch.cuda.Event) -> None:
        self.streams[stream].wait_event(event)


def runner_for(device: torch.device):
    """``CudaStreams`` for a CUDA device, else ``InOrder``."""
    return CudaStreams(device) if device.type == "cuda" else InOrder()
