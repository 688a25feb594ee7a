"""Where the persistent Gluon forward's time goes: per-item timestamps (GPU only).

Needs ``probe_fwd_phases.patch`` applied (it adds compile-time-gated ``%globaltimer`` stamps to
``forward_hopper.fwd_ws_kernel``, written through a ``Probe`` argument, and ``kernels.PROBE_FWD``):

    git apply benchmarks/experiments/probe_fwd_phases.patch
    python benchmarks/experiments/probe_fwd_phases.py --masks sliding_window,causal_document,full [--set NAME=VALUE]

Each work item (query block x batch x head) gets a row: 0 warpgroup 0 has the item, 1 its first tile's scores are
in, 2 past its tile loop (before the last P V), 3 warpgroup 0 done (output and LSE stores issued), 4 the SM, 5 its
tiles, 6 its unmasked tiles, 7 warpgroup 1 done. Per SM the items are sorted by their first stamp; "between
items" is an item's first stamp minus the previous item's last (the ring's wait and the producer). Printed per
mask: the forward's GPU time with and without the stamps (behind a sleep and back to back), each phase summed over
the items as a share of the SMs' time over the kernel's span with its median per item, and a least-squares fit of
the tile loop's time on its unmasked and partial tiles (us per tile of each, and the intercept).
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
from flashmask.kernels.forward_hopper import WS_BLOCK_M  # noqa: E402


def _phases(probe: torch.Tensor) -> dict:
    rows = [r for r in probe.cpu().tolist() if r[5] > 0]
    per_sm: dict[int, list] = {}
    for r in rows:
        per_sm.setdefault(r[4], []).append(r)
    start = min(r[0] for r in rows)
    end = max(max(r[3], r[7]) for r in rows)
    phases = {"item start": [], "tile loop": [], "tail": [], "between items": []}
    for items in per_sm.values():
        items.sort(key=lambda r: r[0])
        for i, r in enumerate(items):
            phases["item start"].append(r[1] - r[0])
            phases["tile loop"].append(r[2] - r[1])
            phases["tail"].append(max(r[3], r[7]) - r[2])
            if i:
                phases["between items"].append(r[0] - max(items[i - 1][3], items[i - 1][7]))
    sm_time = (end - start) * len(per_sm)
    # The loop runs tiles 1.. of the item: the first tile is unmasked if the item has any unmasked tile.
    full = [r[6] - (1 if r[6] > 0 else 0) for r in rows]
    part = [r[5] - r[6] - (1 if r[6] == 0 else 0) for r in rows]
    design = torch.tensor([[f, p, 1.0] for f, p in zip(full, part, strict=True)], dtype=torch.float64)
    loop_ns = torch.tensor([r[2] - r[1] for r in rows], dtype=torch.float64)[:, None]
    fit = torch.linalg.lstsq(design, loop_ns).solution[:, 0].tolist()
    return {
        "span_ms": (end - start) / 1e6,
        "sms": len(per_sm),
        "items": len(rows),
        "median_tiles": statistics.median(r[5] for r in rows),
        "phases": {k: (sum(v) / sm_time, statistics.median(v) / 1e3 if v else 0.0) for k, v in phases.items()},
        "fit_us": [x / 1e3 for x in fit],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seqlen", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--masks", default="sliding_window,causal_document,full")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="set a kernels.configs setting (a Python literal; repeatable)")  # fmt: skip
    args = ap.parse_args()
    set_configs(args.set)
    dev = torch.device("cuda")
    print(f"device {torch.cuda.get_device_name()} torch {torch.__version__}; settings {args.set or 'as configured'}")
    inputs = paper_inputs(args.batch, args.seqlen, 128, dev)
    table = []
    for mask in args.masks.split(","):
        forward, _ = kernel_calls(mask, inputs)
        kernels.PROBE_FWD = None
        forward()
        plain_ms, plain_b2b = gpu_only_ms(forward, reps=10), back_to_back_ms(forward, reps=10)
        items = args.batch * inputs.q.shape[2] * -(-args.seqlen // WS_BLOCK_M)
        kernels.PROBE_FWD = torch.full((items, 8), -1, dtype=torch.int64, device=dev)
        forward()
        probe_ms, probe_b2b = gpu_only_ms(forward, reps=10), back_to_back_ms(forward, reps=10)
        kernels.PROBE_FWD.fill_(-1)
        forward()
        torch.cuda.synchronize()
        stamped = kernels.PROBE_FWD
        if bool((stamped[:, [0, 3, 4, 5, 6, 7]] < 0).any()):
            raise RuntimeError(f"{mask}: an item has no stamp (is probe_fwd_phases.patch applied?)")
        found = _phases(stamped)
        kernels.PROBE_FWD = None
        full_us, part_us, fixed_us = found["fit_us"]
        print(
            f"{mask}: forward {plain_ms:.3f} ms ({plain_b2b:.3f} back to back), with stamps {probe_ms:.3f} ms"
            f" ({probe_b2b:.3f}); kernel's span {found['span_ms']:.3f} ms on {found['sms']} SMs, {found['items']}"
            f" items, median {found['median_tiles']} tiles; tile loop fit: {full_us:.3f} us per unmasked tile,"
            f" {part_us:.3f} per partial, {fixed_us:.3f} fixed"
        )
        for name, (share, median_us) in found["phases"].items():
            print(f"    {name:14s} {100 * share:6.2f}% of SM time, median {median_us:.2f} us per item")
            table.append((mask, name, share, median_us))
        table.append((mask, "loop fit: partial - unmasked tile", part_us - full_us, None))
    print("\n| mask | phase | share of SM time | median us per item |\n| --- | --- | --- | --- |")
    for mask, name, share, median_us in table:
        if median_us is None:
            print(f"| {mask} | {name} | {share:.3f} us | |")
        else:
            print(f"| {mask} | {name} | {100 * share:.2f}% | {median_us:.2f} |")


if __name__ == "__main__":
    main()
