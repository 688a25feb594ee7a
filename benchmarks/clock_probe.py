"""Is the timer's excess over the GPU-alone time the host's, or the card's clocks?

    python benchmarks/clock_probe.py --seqlen 8192 --batch 16 --mask sliding_window

``host_overhead.py --layers`` (session 26) found the Gluon forward's single launch, with 0.06 ms of host time after
the sync, 0.44 ms above its GPU-alone time ("busy": queued behind a 20 ms sleep kernel). This times each call in
three ways, each for about ``--seconds`` while ``nvidia-smi`` samples the SM clock and the power draw every 20 ms:

- ``timer``: as the benchmark's ``Timer`` (an event each side of one call on an idle GPU, then a blocking wait);
- ``back to back``: the calls queued one behind another, an event each side of each, no sync until the end (the
  GPU never waits on the host, and runs at the clocks the calls themselves leave it at);
- ``behind a 20 ms sleep``: as ``peers.gpu_only_ms`` (the GPU-alone measure of the development tools).

If ``back to back`` reads about ``timer`` minus the host's time, and the clocks under it are lower than behind the
sleep, the excess is the card's clocks under its power cap, not the host.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
import triton

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from _card_sampler import CardSampler
from host_overhead import _flex_calls

from flashmask import flashmask_attention
from flashmask.bench import workloads
from flashmask.bench.peers import SLEEP_CYCLES


def _one_by_one(fn, seconds: float, before=None) -> list[float]:
    """Calls of ``fn`` for about ``seconds``, each from a synchronised, idle GPU with an event on each side (the
    timer's way); with ``before`` (a sleep kernel) each queued behind it instead, so the host's time is hidden."""
    times = []
    t_end = time.time() + seconds
    while time.time() < t_end:
        torch.cuda.synchronize()
        if before is not None:
            before()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times


def _back_to_back(fn, seconds: float, call_ms: float) -> list[float]:
    calls = max(5, int(seconds * 1e3 / max(call_ms, 1e-3)))
    torch.cuda.synchronize()
    fn()  # the first timed call then starts behind one, as every other does
    events = []
    for _ in range(calls):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        events.append((start, end))
    torch.cuda.synchronize()
    return [s.elapsed_time(e) for s, e in events]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seqlen", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--mask", default="sliding_window")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--no-flex", action="store_true")
    args = ap.parse_args()
    dev = torch.device("cuda")
    print(f"device {torch.cuda.get_device_name()} torch {torch.__version__} triton {triton.__version__}")
    shape = (args.batch, args.seqlen, args.heads, args.head_dim)
    torch.manual_seed(0)
    q, k, v = (torch.randn(shape, device=dev, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    do = torch.randn(shape, device=dev, dtype=torch.bfloat16)
    w = workloads.make(args.mask, args.seqlen, args.batch, dev)

    def fwd():
        return flashmask_attention(q, k, v, w.mask)

    out = fwd()

    def bwd():
        return torch.autograd.grad(out, (q, k, v), do, retain_graph=True)

    calls = {"ours fwd": fwd, "ours bwd": bwd}
    if not args.no_flex:
        flex_fwd, flex_bwd = _flex_calls(w, args, q, k, v, do)
        calls.update({"flex fwd": flex_fwd, "flex bwd": flex_bwd})
    for fn in calls.values():
        for _ in range(3):
            fn()
    torch.cuda.synchronize()
    sampler = CardSampler()
    time.sleep(0.5)
    rows = []
    for label, fn in calls.items():
        for phase in ("timer", "back to back", "behind a 20 ms sleep", "timer"):
            t0 = time.time()
            if phase == "timer":
                times = _one_by_one(fn, args.seconds)
            elif phase == "back to back":
                times = _back_to_back(fn, args.seconds, statistics.median(rows[-1][2]) if rows else 5.0)
            else:
                times = _one_by_one(fn, args.seconds, before=lambda: torch.cuda._sleep(SLEEP_CYCLES))
            clock, power, samples = sampler.between(t0, time.time())
            rows.append((label, phase, times, clock, power, samples))
            time.sleep(0.3)
    sampler.stop()
    print(f"\n{args.mask}, S={args.seqlen}, B={args.batch}, H={args.heads}, D={args.head_dim}, bf16")
    print("| call | measured | median ms | calls | SM clock MHz (median) | power W (median) | samples |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, phase, times, clock, power, samples in rows:
        print(f"| {label} | {phase} | {statistics.median(times):.3f} | {len(times)} | {clock:.0f} | {power:.0f} | "
              f"{samples} |")  # fmt: skip


if __name__ == "__main__":
    main()
