"""A/B of one module-level kernel setting: GPU time of our forward or backward under each value, same inputs.

    python benchmarks/ab_setting.py PARTIAL_SHARE 0.05,1.0 --pass fwd --seqlen 32768 --batch 4 \
        --masks qk_sparse,causal_blockwise

``SETTING`` names a constant of ``flashmask.kernels.configs`` (read at each launch); each value is parsed as a
Python literal. Per mask, the values take turns call by call (so a card warming under its power cap slows each
alike), and each call is timed on the GPU alone: queued behind a sleep kernel, so the host's time is hidden.
Printed per mask: the median ms of each value and its ratio to the first, and the largest difference of each
output (forward: out, LSE; backward: dQ, dK, dV) from the first value's, so a variant that computes something
else shows. Ends with a short table.
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from _kernel_calls import kernel_calls, paper_inputs

from flashmask.bench.peers import gpu_only_ms
from flashmask.kernels import configs as kconfigs


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    finite = torch.isfinite(a) & torch.isfinite(b)
    same_inf = (a == b) | finite
    if not bool(same_inf.all()):
        return math.inf
    return float((a[finite].float() - b[finite].float()).abs().max()) if bool(finite.any()) else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("setting")
    ap.add_argument("values", help="comma-separated Python literals")
    ap.add_argument("--pass", dest="which", choices=["fwd", "bwd"], default="bwd")
    ap.add_argument("--seqlen", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--masks", default="sliding_window")
    ap.add_argument("--reps", type=int, default=15)
    args = ap.parse_args()
    if not hasattr(kconfigs, args.setting):
        raise SystemExit(f"flashmask.kernels.configs has no setting {args.setting}")
    values = [ast.literal_eval(x) for x in args.values.split(",")]
    inputs = paper_inputs(args.batch, args.seqlen, args.head_dim, torch.device("cuda"))
    print(f"device {torch.cuda.get_device_name()} torch {torch.__version__}; {args.setting} in {values}; "
          f"{args.which}, B={inputs.batch} S={inputs.seqlen} H={inputs.heads} D={inputs.head_dim}, bf16, "
          f"{args.reps} calls per value")  # fmt: skip
    rows = []
    for mask in args.masks.split(","):
        forward, backward = kernel_calls(mask, inputs)
        call = forward if args.which == "fwd" else backward

        times: list[list[float]] = [[] for _ in values]
        results = []
        for value in values:  # warm-up (compilation) and each value's outputs
            setattr(kconfigs, args.setting, value)
            results.append([x.clone() for x in call()])
        for _ in range(args.reps):
            for i, value in enumerate(values):
                setattr(kconfigs, args.setting, value)
                times[i].append(gpu_only_ms(call, reps=1))
        setattr(kconfigs, args.setting, values[0])
        medians = [statistics.median(t) for t in times]
        diffs = [[_max_diff(a, b) for a, b in zip(results[0], r, strict=True)] for r in results]
        names = "out, lse" if args.which == "fwd" else "dq, dk, dv"
        for value, ms, diff in zip(values, medians, diffs, strict=True):
            print(f"{mask} {args.setting}={value!r}: {ms:.3f} ms ({ms / medians[0]:.4f}x), "
                  f"max |{names} - first value's| {', '.join(f'{x:.3g}' for x in diff)}", flush=True)  # fmt: skip
        rows.append((mask, medians, [max(x) for x in diffs]))
    print(f"\n| mask | {' | '.join(f'{args.setting}={v!r} ms' for v in values)} | ratio to first | max diff |")
    print("| --- " * (len(values) + 3) + "|")
    for mask, medians, diffs in rows:
        ratios = " / ".join(f"{m / medians[0]:.4f}" for m in medians[1:])
        print(f"| {mask} | {' | '.join(f'{m:.3f}' for m in medians)} | {ratios} | {max(diffs):.3g} |")


if __name__ == "__main__":
    main()
