"""Where the backward's time goes: per-kernel CUDA times of ours and FlexAttention's on the same inputs.

    python benchmarks/profile_bwd.py --head-dim 128 --seqlen 8192 --batch 8 --mask full

Runs our forward and backward (dQ pass, and dQ by bulk reduce-adds) and FlexAttention's (compiled, a
``BlockMask`` of the same mask) under ``torch.profiler`` and prints, per kernel, the mean CUDA time per call.
With ``--ncu`` it instead makes a few plain calls of each, for ``ncu --kernel-name ...`` to pick up.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import torch
import triton

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from flashmask.bench import workloads
from flashmask.bench.plan import DENSE_ONLY_MASKS
from flashmask.kernels import attention_backward, attention_forward
from flashmask.kernels import configs as kconfigs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seqlen", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--mask", default="full")
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--ncu", action="store_true", help="plain calls only (run under ncu)")
    ap.add_argument("--no-flex", action="store_true", help="ours only (skips FlexAttention's compilation)")
    ap.add_argument("--plain", action="store_true", help="full / causal without a column mask (mask-free kernels)")
    args = ap.parse_args()
    dev = torch.device("cuda")
    d, s, b = args.head_dim, args.seqlen, args.batch
    h = 4096 // d
    torch.manual_seed(0)
    q, k, v, do = (torch.randn(b, s, h, d, device=dev, dtype=torch.bfloat16) for _ in range(4))
    scale = 1 / math.sqrt(d)
    w = workloads.make(args.mask, s, b, dev)
    idx, causal = w.mask.startend_row_indices, w.mask.causal
    if args.plain and args.mask in DENSE_ONLY_MASKS:
        idx = None
    default = kconfigs.pick(max(16, triton.next_power_of_2(d)), dev)

    out, lse = attention_forward(q, k, v, idx, causal, scale)

    def ours_pass():
        attention_backward(do, q, k, v, out, lse, idx, causal, scale, deterministic=True)

    def ours_reduce():
        cf = default._replace(atomic_dq=True, tma_reduce_dq=True)
        attention_backward(do, q, k, v, out, lse, idx, causal, scale, configs=cf)

    runs = [("ours, dQ pass", ours_pass), ("ours, dQ reduce-add", ours_reduce)]
    if not args.no_flex:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        block_mask = torch.compile(create_block_mask)(w.mask_mod, b, None, s, s, device=dev)
        flex = torch.compile(flex_attention, dynamic=False)
        qt, kt, vt = (x.transpose(1, 2).contiguous().requires_grad_() for x in (q, k, v))
        dot = do.transpose(1, 2).contiguous()
        flex_out = flex(qt, kt, vt, block_mask=block_mask)

        def flex_bwd():
            torch.autograd.grad(flex_out, (qt, kt, vt), dot, retain_graph=True)

        runs.append(("flex", flex_bwd))
    for _, fn in runs:  # compile and warm up
        fn()
        fn()
    torch.cuda.synchronize()
    if args.ncu:
        for _, fn in runs:
            fn()
        torch.cuda.synchronize()
        return

    from torch.profiler import ProfilerActivity, profile

    print(f"device {torch.cuda.get_device_name()} torch {torch.__version__} triton {triton.__version__}")
    print(f"S={s} B={b} H={h} D={d} bf16, mask {args.mask}; backward only; mean CUDA ms per call")
    for label, fn in runs:
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(args.calls):
                fn()
            torch.cuda.synchronize()
        rows = []
        for evt in prof.key_averages():
            total_us = evt.device_time_total if hasattr(evt, "device_time_total") else evt.cuda_time_total
            if total_us > 0:
                rows.append((total_us / args.calls / 1e3, evt.key[:90]))
        rows.sort(reverse=True)
        print(f"\n{label}: {sum(r[0] for r in rows):.2f} ms in all")
        for ms, name in rows[:8]:
            print(f"  {ms:9.3f}  {name}")


if __name__ == "__main__":
    main()
