"""What a partial tile costs in our backward: GPU time with every live tile, and with the partial tiles dropped.

    python benchmarks/tile_cost.py --seqlen 8192 --batch 16 --masks full,sliding_window,causal_document

A diagnostic (the gradients of the second run are wrong on purpose): the backward's tile lists are built as usual,
then their partial counts (and, for a third timing, all counts) are zeroed on the GPU before the main kernel, so it
visits the unmasked tiles only (or none: the memory passes and launches alone). With the tile counts of the lists
this gives the time per unmasked tile and, from the difference, per partial tile (element mask included), per
mask. Printed per mask: the counts, the three GPU times (``bench.peers.gpu_only_ms``: the host's time hidden) and
the two costs per tile in microseconds of one SM.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from _kernel_calls import kernel_calls, paper_inputs

import flashmask.kernels as K
from flashmask.bench.peers import gpu_only_ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seqlen", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--masks", default="full,sliding_window,causal_document")
    ap.add_argument("--reps", type=int, default=15)
    args = ap.parse_args()
    dev = torch.device("cuda")
    inputs = paper_inputs(args.batch, args.seqlen, 128, dev)
    sms = torch.cuda.get_device_properties(dev).multi_processor_count
    print(f"device {torch.cuda.get_device_name()} torch {torch.__version__}; B={inputs.batch} S={inputs.seqlen} "
          f"H={inputs.heads} D=128 bf16; {sms} SMs; the Gluon backward's 64 x 128 tiles")  # fmt: skip
    original_lists = K._lists
    seen: dict[str, tuple[int, int]] = {}
    drop = ""  # "", "partial" or "all": which of the backward's tile lists are emptied before its main kernel

    def lists_hook(mask, seqlen_q, seqlen_k, block_m, block_n, device, transposed, reuse=None):
        bounds, lists = original_lists(mask, seqlen_q, seqlen_k, block_m, block_n, device, transposed, reuse)
        if transposed:
            seen["counts"] = (lists.full_count, lists.part_count)
            if drop:
                lists.part_count.zero_()
            if drop == "all":
                lists.full_count.zero_()
        return bounds, lists

    K._lists = lists_hook
    rows = []
    num_key_blocks = -(-inputs.seqlen // 128)
    for mask in args.masks.split(","):
        # Full and causal without a column mask, as the benchmark calls them.
        _, backward = kernel_calls(mask, inputs, plain=mask in ("full", "causal"))
        drop = ""
        backward()
        full_count, part_count = seen["counts"]
        # One row of lists per (batch row, mask head), each visited by the same number of (batch, query head) pairs.
        visits = inputs.batch * inputs.heads // (full_count.numel() // num_key_blocks)
        full = int(full_count.sum()) * visits
        part = int(part_count.sum()) * visits
        # The three variants take turns call by call, so that the card's drift over the run spreads evenly.
        samples: dict[str, list[float]] = {mode: [] for mode in ("", "partial", "all")}
        for mode in samples:
            drop = mode
            backward()
        for _ in range(args.reps):
            for mode, times in samples.items():
                drop = mode
                times.append(gpu_only_ms(backward, reps=1))
        drop = ""
        all_ms, full_ms, base_ms = (statistics.median(samples[mode]) for mode in ("", "partial", "all"))
        us_full = (full_ms - base_ms) * 1e3 * sms / max(full, 1)
        us_part = (all_ms - full_ms) * 1e3 * sms / part if part else math.nan
        print(f"{mask}: {full} unmasked + {part} partial tiles ({part / max(full + part, 1):.1%} partial); backward "
              f"{all_ms:.3f} ms, unmasked tiles only {full_ms:.3f}, no tiles (memory passes, launches) {base_ms:.3f}; "
              f"per tile and SM: unmasked {us_full:.2f} us, partial {us_part:.2f} us", flush=True)  # fmt: skip
        rows.append((mask, full, part, all_ms, full_ms, base_ms, us_full, us_part))
    K._lists = original_lists
    print("\n| mask | unmasked tiles | partial tiles | backward ms | unmasked only ms | no tiles ms | "
          "us per unmasked tile | us per partial tile |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for mask, full, part, all_ms, full_ms, base_ms, us_full, us_part in rows:
        print(f"| {mask} | {full} | {part} | {all_ms:.3f} | {full_ms:.3f} | {base_ms:.3f} | {us_full:.2f} | "
              f"{us_part:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
