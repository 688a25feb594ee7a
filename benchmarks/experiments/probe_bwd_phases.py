"""Where a Gluon backward program's time goes: per-program timestamps (experiment s30a, was s18d; GPU only).

Needs ``probe_bwd_phases.patch`` applied (it adds compile-time-gated ``%globaltimer`` stamps to
``backward_hopper.bwd_ws_kernel``, written through a ``Probe`` argument, and ``kernels.PROBE_BWD``):

    git apply benchmarks/experiments/probe_bwd_phases.patch
    python benchmarks/experiments/probe_bwd_phases.py --masks sliding_window,causal_document,full

Each program (launch order) writes: 0 its first instruction, 1 its SM, 2 warpgroup 0 past the K/V wait,
3 warpgroup 0 past its first tile's Q/dO wait, 4 warpgroup 0 past its tile loop, 5 warpgroup 0 done (dK/dV
stored), 6 its tile count, 7 warpgroup 1 done. Per SM the programs are sorted by start, and the gap before each
is its start minus the previous program's last stamp (5 or 7): the program switch. The backward runs in pieces
(``configs.BWD_PIECES``): rows are numbered over every piece's grid, and a switch gap also holds the gaps between
the pieces' main kernels and the time an SM lent to the side passes (``BWD_SIDE_PROGRAMS`` of them). Printed per
mask: the backward's GPU time with and without the stamps (their own cost; behind a sleep and back to back), and
each phase summed over all programs as a share of the SMs' time over the kernels' span, with its median per
program.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, "..", "..", "src"))

from _kernel_calls import kernel_calls, paper_inputs, set_configs  # noqa: E402

import flashmask.kernels as kernels  # noqa: E402
from flashmask.bench.peers import back_to_back_ms, gpu_only_ms  # noqa: E402
from flashmask.kernels.backward_hopper import WS_BWD_BLOCK_N  # noqa: E402


def _phases(probe: torch.Tensor) -> dict:
    rows = probe.cpu().tolist()
    per_sm: dict[int, list] = {}
    for r in rows:
        per_sm.setdefault(r[1], []).append(r)
    start = min(r[0] for r in rows)
    end = max(max(r[5], r[7]) for r in rows)
    phases = {"kv wait": [], "first tile wait": [], "tile loop": [], "epilogue": [], "switch gap": []}
    for progs in per_sm.values():
        progs.sort(key=lambda r: r[0])
        for i, r in enumerate(progs):
            phases["kv wait"].append(r[2] - r[0])
            phases["first tile wait"].append(r[3] - r[2] if r[6] else 0)
            phases["tile loop"].append(r[4] - r[3] if r[6] else r[4] - r[2])
            phases["epilogue"].append(max(r[5], r[7]) - r[4])
            if i:
                phases["switch gap"].append(r[0] - max(progs[i - 1][5], progs[i - 1][7]))
    sm_time = (end - start) * len(per_sm)
    tiles = [r[6] for r in rows]
    return {
        "span_ms": (end - start) / 1e6,
        "sms": len(per_sm),
        "programs": len(rows),
        "median_tiles": statistics.median(tiles),
        "phases": {k: (sum(v) / sm_time, statistics.median(v) / 1e3 if v else 0.0) for k, v in phases.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seqlen", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--masks", default="sliding_window,causal_document,full")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="set a kernels.configs setting (a Python literal), e.g. BWD_PIECES=1")  # fmt: skip
    args = ap.parse_args()
    set_configs(args.set)
    dev = torch.device("cuda")
    print(f"device {torch.cuda.get_device_name()} torch {torch.__version__}; settings {args.set or 'as configured'}")
    inputs = paper_inputs(args.batch, args.seqlen, 128, dev)
    table = []
    for mask in args.masks.split(","):
        _, backward = kernel_calls(mask, inputs)
        kernels.PROBE_BWD = None
        backward()
        plain_ms, plain_b2b = gpu_only_ms(backward, reps=10), back_to_back_ms(backward, reps=10)
        programs = args.batch * inputs.k.shape[2] * -(-args.seqlen // WS_BWD_BLOCK_N)
        kernels.PROBE_BWD = torch.full((programs, 8), -1, dtype=torch.int64, device=dev)
        backward()
        probe_ms, probe_b2b = gpu_only_ms(backward, reps=10), back_to_back_ms(backward, reps=10)
        kernels.PROBE_BWD.fill_(-1)
        backward()
        torch.cuda.synchronize()
        if bool((kernels.PROBE_BWD[:, [0, 1, 2, 4, 5, 6, 7]] < 0).any()):
            raise RuntimeError(f"{mask}: some program wrote no stamp (is probe_bwd_phases.patch applied?)")
        found = _phases(kernels.PROBE_BWD)
        kernels.PROBE_BWD = None
        print(
            f"{mask}: backward {plain_ms:.3f} ms ({plain_b2b:.3f} back to back), with stamps {probe_ms:.3f} ms"
            f" ({probe_b2b:.3f}); kernels' span {found['span_ms']:.3f}"
            f" ms on {found['sms']} SMs, {found['programs']} programs, median {found['median_tiles']} tiles"
        )
        for name, (share, median_us) in found["phases"].items():
            print(f"    {name:16s} {100 * share:6.2f}% of SM time, median {median_us:.2f} us per program")
            table.append((mask, name, share, median_us))
    print("\n| mask | phase | share of SM time | median us per program |\n| --- | --- | --- | --- |")
    for mask, name, share, median_us in table:
        print(f"| {mask} | {name} | {100 * share:.2f}% | {median_us:.2f} |")


if __name__ == "__main__":
    main()
