"""A/B of one module-level kernel setting, or of this tree's kernels against an earlier copy: GPU time of our
forward or backward under each variant, same inputs.

    python benchmarks/ab_setting.py PARTIAL_SHARE 0.05,1.0 --pass fwd --seqlen 32768 --batch 4 \
        --masks qk_sparse,causal_blockwise
    python benchmarks/ab_setting.py --base DIR --masks sliding_window,causal_document   # DIR/flashmask_base
    python benchmarks/ab_setting.py BWD_SIDE_PROGRAMS 8,16 --set BWD_PIECES=8   # another setting fixed

``SETTING`` names a constant of ``flashmask.kernels.configs`` (read at each launch); each value is parsed as a
Python literal, and set while a variant's inputs are made too (its forward's outputs feed its backward). With
``--public`` the calls are the public ``flashmask_attention`` and its autograd backward, as the benchmark times
them, instead of the kernels' entry points. With ``--base`` the variants are the kernels of a copy of the package
named ``flashmask_base`` in ``DIR`` (first) and this tree's (second). Per mask, the variants take turns call by
call (so a card warming under its power cap slows each alike), and each call is timed on the GPU alone: queued
behind a sleep kernel, so the host's time is hidden (with ``--timer``: as the benchmark times it, host time
included). With ``--loop S`` each variant instead runs back to back (the GPU never idle) in blocks of about ``S``
seconds, the variants taking turns by block, while ``nvidia-smi`` samples the card: at the power cap the GPU alone
behind a sleep reads power-hungry kernels up to ~10% fast (a rested card starts at its top clock; NOTES, session
26), and back to back the time follows the energy per call, printed too (median power of the block's second half
x its median call). Printed per mask: the median ms of each variant and its ratio to the first, and the largest
difference of each output (forward: out, LSE; backward: dQ, dK, dV) from the first variant's, so a variant that
computes something else shows. Ends with a short table.
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from _card_sampler import CardSampler
from _kernel_calls import kernel_calls, paper_inputs, public_calls, set_configs

from flashmask.bench.peers import gpu_only_ms
from flashmask.kernels import configs as kconfigs


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    finite = torch.isfinite(a) & torch.isfinite(b)
    same_inf = (a == b) | finite
    if not bool(same_inf.all()):
        return math.inf
    return float((a[finite].float() - b[finite].float()).abs().max()) if bool(finite.any()) else 0.0


def _timer_ms(call) -> float:
    """One call timed as ``flashmask.bench.peers.Timer`` times it: events around it on an idle GPU, so the host's
    time until the GPU has work counts."""
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    call()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def _loop_block(call, seconds: float, sampler: CardSampler) -> tuple[list[float], float, float]:
    """About ``seconds`` of back-to-back calls (the first untimed, so every timed one starts behind another): each
    call's ms, and the card's median clock (MHz) and power (W) over the block's second half."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    call()
    torch.cuda.synchronize()
    estimate_ms = max((time.perf_counter() - t0) * 1e3, 0.05)
    t_start = time.time()
    call()
    events = []
    for _ in range(max(3, int(seconds * 1e3 / estimate_ms))):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        events.append((start, end))
    torch.cuda.synchronize()
    t_end = time.time()
    clock, power, _ = sampler.between((t_start + t_end) / 2, t_end)
    return [s.elapsed_time(e) for s, e in events], clock, power


def _variants(args) -> tuple[str, list, list]:
    """``(label, names, calls)``: per variant its name and a ``kernel_calls``-like function of (mask, inputs)
    that sets it up and returns its calls."""
    if args.base:
        sys.path.insert(0, args.base)
        import flashmask_base.kernels as base_kernels

        return ("tree", ["base", "this tree"],
                [lambda mask, inputs: kernel_calls(mask, inputs, kernels=base_kernels), kernel_calls])  # fmt: skip
    if not hasattr(kconfigs, args.setting or ""):
        raise SystemExit(f"flashmask.kernels.configs has no setting {args.setting}")
    values = [ast.literal_eval(x) for x in args.values.split(",")]

    make = public_calls if args.public else kernel_calls

    def with_value(value):
        def calls(mask, inputs):
            setattr(kconfigs, args.setting, value)
            forward, backward = make(mask, inputs)

            def set_then(fn):
                def call():
                    setattr(kconfigs, args.setting, value)
                    return fn()

                return call

            return set_then(forward), set_then(backward)

        return calls

    return args.setting, [f"{v!r}" for v in values], [with_value(v) for v in values]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("setting", nargs="?")
    ap.add_argument("values", nargs="?", help="comma-separated Python literals")
    ap.add_argument("--base", metavar="DIR", help="instead of a setting: DIR/flashmask_base's kernels, then ours")
    ap.add_argument("--pass", dest="which", choices=["fwd", "bwd"], default="bwd")
    ap.add_argument("--seqlen", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--masks", default="sliding_window")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument(
        "--timer",
        action="store_true",
        help="time each call as the benchmark's timer does (host time included), not the GPU alone",
    )
    ap.add_argument("--loop", type=float, metavar="S",
                    help="time back to back in blocks of S seconds per variant, with the card's clock, power and "
                    "energy per call (--reps blocks per variant)")  # fmt: skip
    ap.add_argument("--public", action="store_true",
                    help="call flashmask_attention with autograd (settings only), not the kernels")  # fmt: skip
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="fix another setting of flashmask.kernels.configs for every variant (repeatable)")  # fmt: skip
    args = ap.parse_args()
    set_configs(args.set)
    if args.public and args.base:
        raise SystemExit("--public compares settings of this tree (a second package would register its ops again)")
    label, names, variants = _variants(args)
    inputs = paper_inputs(args.batch, args.seqlen, args.head_dim, torch.device("cuda"))
    print(f"device {torch.cuda.get_device_name()} torch {torch.__version__}; {label} in {names}; "
          f"{' '.join(args.set) or 'no other setting changed'}; "
          f"{'back to back' if args.loop else 'timer (host included)' if args.timer else 'GPU alone'}; "
          f"{'public call with autograd' if args.public else 'kernel entry points'}; "
          f"{args.which}, B={inputs.batch} S={inputs.seqlen} H={inputs.heads} D={inputs.head_dim}, bf16, "
          f"{args.reps} calls per variant")  # fmt: skip
    sampler = CardSampler() if args.loop else None
    rows = []
    for mask in args.masks.split(","):
        calls = [v(mask, inputs)[0 if args.which == "fwd" else 1] for v in variants]
        times: list[list[float]] = [[] for _ in calls]
        card: list[list[tuple[float, float, float]]] = [[] for _ in calls]  # per block: (clock, power, joules)
        # Warm-up (compilation) and each variant's outputs.
        results = [[x.clone() for x in call()] for call in calls]
        for _ in range(args.reps):
            for i, call in enumerate(calls):
                if args.loop:
                    block, clock, power = _loop_block(call, args.loop, sampler)
                    times[i] += block
                    card[i].append((clock, power, power * statistics.median(block) / 1e3))
                else:
                    times[i].append(_timer_ms(call) if args.timer else gpu_only_ms(call, reps=1))
        if not args.base:
            calls[0]()  # leaves the first value set
        medians = [statistics.median(t) for t in times]
        if args.loop:
            for name, blocks in zip(names, card, strict=True):
                clock, power, joules = (statistics.median(b[j] for b in blocks) for j in range(3))
                print(f"{mask} {label}={name}: back to back at {clock:.0f} MHz, {power:.0f} W, {joules:.3f} J per "
                      f"call", flush=True)  # fmt: skip
        diffs = [[_max_diff(a, b) for a, b in zip(results[0], r, strict=True)] for r in results]
        outputs = "out, lse" if args.which == "fwd" else "dq, dk, dv"
        for name, ms, diff in zip(names, medians, diffs, strict=True):
            print(f"{mask} {label}={name}: {ms:.3f} ms ({ms / medians[0]:.4f}x), "
                  f"max |{outputs} - first variant's| {', '.join(f'{x:.3g}' for x in diff)}", flush=True)  # fmt: skip
        rows.append((mask, medians, [max(x) for x in diffs]))
    print(f"\n| mask | {' | '.join(f'{label}={n} ms' for n in names)} | ratio to first | max diff |")
    print("| --- " * (len(names) + 3) + "|")
    for mask, medians, diffs in rows:
        ratios = " / ".join(f"{m / medians[0]:.4f}" for m in medians[1:])
        print(f"| {mask} | {' | '.join(f'{m:.3f}' for m in medians)} | {ratios} | {max(diffs):.3g} |")
    if sampler is not None:
        sampler.stop()


if __name__ == "__main__":
    main()
