"""Is a kernel slower on a hot card? GPU time of our forward and backward cool, after a heat soak, and cool again.

    python benchmarks/heat_probe.py --seqlen 32768 --batch 4 --masks qk_sparse,prefix_lm_causal --soak-s 60

Our qk_sparse backward at 32K read ~155 ms first in a call and ~173 ms as the ninth mask of a long table, while
FlexAttention's did not move (``benchmarks/NOTES.md``, session 13): either the card's heat under its power cap or
the process's state late in a run (allocator, caches). Here one process times each mask's passes on the GPU alone
(queued behind a sleep kernel, so the host's time is hidden), then keeps the card busy with bf16 matmuls for
``--soak-s`` seconds, times them again at once, lets the card idle for ``--rest-s`` seconds and times them a third
time; the card's temperature, SM clock and power (``nvidia-smi``, read-only) are logged with every row. Same
process, same tensors: if the hot row is slower and the rested one is not, heat is the cause. With
``--after-masks`` the soak is our passes on other masks instead (the process's state late in a long table), then
the rows once more after ``torch.cuda.empty_cache()``; with ``--after-flex`` then FlexAttention as the benchmark
measures it (compiled) on the same tensors, and the rows again; with ``--hold-gb`` the rows with more and more
memory held by other tensors. With ``--timers`` each row also times the backward as the benchmark does (its
``Timer``: an event on each side of one call on an idle GPU, the host's time included) and right behind another
call (the GPU never idle, clocks steady under the power cap); with ``--public`` those rows are also taken
through the public call the benchmark times (``flashmask_attention``, then ``torch.autograd.grad``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from _kernel_calls import kernel_calls, paper_inputs

from flashmask import flashmask_attention
from flashmask.bench import workloads
from flashmask.bench.peers import FlexPeer, Timer, back_to_back_ms, gpu_only_ms, gpu_state


def _soak(seconds: float, device) -> None:
    """bf16 8192^3 matmuls back to back: the card at its power cap for ``seconds``."""
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(20):
            a @ b
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seqlen", type=int, default=32768)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--masks", default="qk_sparse,prefix_lm_causal")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--soak-s", type=float, default=60.0)
    ap.add_argument("--rest-s", type=float, default=60.0)
    ap.add_argument(
        "--after-masks",
        default="",
        help="instead of the matmul soak and rest: our passes on these masks (3 calls each), then the rows again, "
        "then the same after torch.cuda.empty_cache(): does the process's state late in a long run slow them?",
    )
    ap.add_argument(
        "--after-flex",
        default="",
        help="instead of the matmul soak and rest (after --after-masks if given): FlexAttention (compiled, the "
        "benchmark's peer) measured on these masks on the same inputs, then the rows again",
    )
    ap.add_argument(
        "--hold-gb",
        default="",
        help="instead of the matmul soak and rest: keep this many GiB of other tensors alive (comma-separated, "
        "cumulative, in 1 GiB pieces allocated before the rows are timed again): does where the call's own "
        "buffers land matter?",
    )
    ap.add_argument("--timers", action="store_true", help="also the backward by the benchmark's timer and back to back")
    ap.add_argument("--public", action="store_true", help="with --timers: also through flashmask_attention + autograd")
    args = ap.parse_args()
    dev = torch.device("cuda")
    inputs = paper_inputs(args.batch, args.seqlen, args.head_dim, dev)
    print(f"device {torch.cuda.get_device_name()} torch {torch.__version__}; B={inputs.batch} S={inputs.seqlen} "
          f"H={inputs.heads} D={inputs.head_dim} bf16, {args.reps} calls per row, soak {args.soak_s:.0f} s, "
          f"rest {args.rest_s:.0f} s")  # fmt: skip
    calls = {mask: kernel_calls(mask, inputs) for mask in args.masks.split(",")}
    public = {}
    if args.public:
        q, k, v, do = (x.detach().requires_grad_(x is not inputs.do) for x in (inputs.q, inputs.k, inputs.v, inputs.do))
        for mask in calls:
            out = flashmask_attention(q, k, v, workloads.make(mask, inputs.seqlen, inputs.batch, dev).mask)
            public[mask] = lambda out=out: torch.autograd.grad(out, (q, k, v), do, retain_graph=True)
    for fn in (fn for pair in calls.values() for fn in pair):  # compile and warm
        fn()
    torch.cuda.synchronize()
    rows = []

    def measure(phase: str) -> None:
        for mask, (fwd, bwd) in calls.items():
            before = gpu_state(dev)
            fwd_ms, bwd_ms = gpu_only_ms(fwd, args.reps), gpu_only_ms(bwd, args.reps)
            timed = (Timer(dev)(bwd), back_to_back_ms(bwd)) if args.timers else (None, None)
            after = gpu_state(dev)
            rows.append((phase, mask, fwd_ms, bwd_ms, *timed, before, after))
            extra = f", bwd by the timer {timed[0]:.2f} ms, back to back {timed[1]:.2f} ms" if args.timers else ""
            print(f"{phase} {mask}: fwd {fwd_ms:.2f} ms, bwd {bwd_ms:.2f} ms{extra}; card before {before}, "
                  f"after {after}", flush=True)  # fmt: skip
            if args.public:
                public_bwd = public[mask]
                timed = (Timer(dev)(public_bwd), back_to_back_ms(public_bwd))
                rows.append((phase, f"{mask} (public call)", None, gpu_only_ms(public_bwd, args.reps), *timed,
                             None, gpu_state(dev)))  # fmt: skip
                print(f"{phase} {mask} public call: bwd by the timer {timed[0]:.2f} ms, back to back "
                      f"{timed[1]:.2f} ms", flush=True)  # fmt: skip

    measure("cool")
    if args.after_masks:
        for mask in args.after_masks.split(","):
            forward, backward = kernel_calls(mask, inputs)
            for _ in range(3):
                forward()
                backward()
            del forward, backward
        torch.cuda.synchronize()
        measure("after other masks")
        torch.cuda.empty_cache()
        measure("after empty_cache")
    if args.after_flex:
        timer = Timer(dev)
        opts = argparse.Namespace(block_mask_builds=1, tol=2e-2)
        for mask in args.after_flex.split(","):
            w = workloads.make(mask, inputs.seqlen, inputs.batch, dev)
            reference = kernel_calls(mask, inputs)[0]()[0]
            record = FlexPeer(dev).measure(w, inputs, reference, timer, opts)
            print(f"flex {mask}: fwd {record['fwd_ms']:.2f} ms, bwd {record['bwd_ms']:.2f} ms", flush=True)
            del reference
        torch.cuda.synchronize()
        measure("after Flex")
    held = []
    for gib in (int(x) for x in args.hold_gb.split(",") if x):
        while len(held) < gib:
            held.append(torch.empty(1 << 30, dtype=torch.uint8, device=dev))
        measure(f"{gib} GiB held")
    if not (args.after_masks or args.after_flex or args.hold_gb):
        _soak(args.soak_s, dev)
        measure("hot")
        time.sleep(args.rest_s)
        measure("rested")

    def card(state) -> str:
        if not state:
            return "—"
        return f"{state['temperature_c']:.0f} C {state['sm_clock_mhz']:.0f} MHz {state['power_w']:.0f} W"

    def ms(x) -> str:
        return "—" if x is None else f"{x:.2f}"

    print("\n| phase | mask | fwd ms | bwd ms | bwd, timer ms | bwd, back to back ms | card before | card after |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for phase, mask, fwd_ms, bwd_ms, timer_ms, busy_ms, before, after in rows:
        print(
            f"| {phase} | {mask} | {ms(fwd_ms)} | {bwd_ms:.2f} | {ms(timer_ms)} | {ms(busy_ms)} | {card(before)} "
            f"| {card(after)} |"
        )


if __name__ == "__main__":
    main()
