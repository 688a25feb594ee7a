"""Time kernel configurations on the GPU against cuDNN (full/causal) on the same inputs.

    python benchmarks/tune.py --seqlen 8192 --batch 8 --head-dim 128 --masks full,causal,causal_document

Prints one row per (mask, pass, config): median ms (CUDA events, after warm-up) and TFLOPs/s (exact
convention: forward 4 * B * Hq * D * visible pairs, backward 2.5x that).
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys

import torch
import triton
from triton.testing import do_bench

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from flashmask.bench import workloads
from flashmask.bench.plan import DENSE_ONLY_MASKS
from flashmask.kernels import Configs, KernelConfig, attention_backward, attention_forward
from flashmask.kernels import configs as kconfigs

T = True
# Alternatives to the defaults; without --fwd/--dkdv/--dq the default config of the call (for the forward: of
# the mask's form) is timed first, then these.
FWD = {
    64: [KernelConfig(128, 64, 4, 3, T), KernelConfig(64, 64, 4, 2, T)],
    128: [KernelConfig(128, 128, 8, 3, T), KernelConfig(128, 128, 8, 2, T), KernelConfig(64, 64, 4, 2, T)],
    256: [KernelConfig(64, 32, 4, 2, T)],
}
DKDV = {
    64: [KernelConfig(64, 128, 8, 2), KernelConfig(32, 128, 4, 5)],
    128: [KernelConfig(64, 128, 8, 2), KernelConfig(32, 64, 4, 2)],
    256: [KernelConfig(64, 64, 8, 1), KernelConfig(32, 64, 8, 2)],
}
# The three ways to get dQ: its own pass (deterministic), fp32 per-element atomics in the dK/dV kernel, and the
# same atomics as one bulk (TMA) reduce-add per tile (Hopper).
DQ_MODES = (("bwd dq pass", False, False), ("bwd atomic", True, False), ("bwd tma-reduce", True, True))
DQ = {
    64: [KernelConfig(128, 128, 8, 2, T), KernelConfig(128, 64, 8, 2, T), KernelConfig(128, 32, 4, 5, T)],
    128: [
        KernelConfig(128, 128, 8, 2, T),
        KernelConfig(128, 64, 8, 2, T),
        KernelConfig(128, 32, 4, 5, T),
        KernelConfig(64, 128, 8, 3, T),
    ],
    256: [KernelConfig(64, 32, 4, 2, T), KernelConfig(64, 64, 8, 1, T), KernelConfig(128, 32, 8, 2, T)],
}


def _configs_to_time(default: KernelConfig, text: str | None, alternatives: list[KernelConfig]) -> list[KernelConfig]:
    """The configs to time for one kernel.

    ``text`` from the command line: ``'128,128,8,3,1;64,64,4,2'`` (block_m, block_n, warps, stages[, tma]) times
    those; ``'default'`` the default alone; ``'skip'`` none; ``None`` the default followed by the alternatives that
    differ from it.
    """
    if text == "skip":
        return []
    if text == "default":
        return [default]
    if text:
        return [KernelConfig(*(int(x) for x in c.split(","))) for c in text.split(";")]
    return [default, *(c for c in alternatives if c != default)]


def bench(fn, rep=400):
    return do_bench(fn, warmup=50, rep=rep, return_mode="median")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seqlen", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--heads", type=int, default=None)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--masks", default="full,causal,causal_document")
    ap.add_argument("--rep", type=int, default=400)
    ap.add_argument("--peers", action="store_true", help="also time SDPA cuDNN / flash on full and causal")
    ap.add_argument("--no-fwd", action="store_true", help="skip the forward configs (time the backward only)")
    ap.add_argument("--no-bwd", action="store_true", help="skip the backward (time the forward configs only)")
    ap.add_argument("--no-dq-configs", action="store_true", help="skip the sweep of dQ-pass tile configs")
    ap.add_argument("--dkdv", default=None, help="dK/dV configs instead of the list: '64,128,8,2;32,64,4,3'")
    ap.add_argument(
        "--fwd",
        default=None,
        help="forward configs instead of the list: '128,128,8,3,1;128,64,8,3,1' ('default': the default alone)",
    )
    ap.add_argument("--dq", default=None, help="dQ-pass configs instead of the list: '128,128,8,2,1;64,64,4,2,1'")
    ap.add_argument("--sweep-keys", default="0", help="forward rows: key sweeps to time, e.g. '0,16384,32768'")
    ap.add_argument("--plain", action="store_true", help="full and causal without a column mask (mask-free kernels)")
    ap.add_argument("--base-dq", default=None, help="dQ-pass config of the dK/dV rows instead of the default")
    ap.add_argument("--dq-modes", default=None, help="subset of: pass, atomic, tma-reduce (default all three)")
    ap.add_argument(
        "--head-major",
        action="store_true",
        help="q, k, v, dO stored [B, H, S, D] and passed as [B, S, H, D] views (each head's rows contiguous)",
    )
    args = ap.parse_args()
    dev = torch.device("cuda")
    d = args.head_dim
    h = args.heads or 4096 // d
    s, b = args.seqlen, args.batch
    torch.manual_seed(0)
    if args.head_major:
        q, k, v, do = (torch.randn(b, h, s, d, device=dev, dtype=torch.bfloat16).transpose(1, 2) for _ in range(4))
    else:
        q, k, v, do = (torch.randn(b, s, h, d, device=dev, dtype=torch.bfloat16) for _ in range(4))
    scale = 1 / math.sqrt(d)
    dpad = max(16, triton.next_power_of_2(d))
    dq_modes = DQ_MODES
    if args.dq_modes:
        dq_modes = [m for m in DQ_MODES if m[0].removeprefix("bwd ").replace("dq ", "") in args.dq_modes.split(",")]
    rows = []
    print(f"device {torch.cuda.get_device_name()} torch {torch.__version__} triton {triton.__version__}")
    layout = "[B, H, S, D] storage" if args.head_major else "[B, S, H, D] storage"
    print(f"S={s} B={b} H={h} D={d} bf16, {layout}")
    for name in args.masks.split(","):
        w = workloads.make(name, s, b, dev)
        idx, causal = w.mask.startend_row_indices, w.mask.causal
        if args.plain and name in DENSE_ONLY_MASKS:
            idx = None  # the call without a column mask (SPEC: full / causal "or no mask")
        flops = 4 * h * d * w.mask.visible_pairs().sum().item()
        vectors = 0 if idx is None else idx.shape[-1]
        # The defaults of this call: the mask's form and the lengths pick them.
        default = kconfigs.pick(dpad, dev, mask_vectors=vectors, causal=causal, seqlen_q=s, seqlen_k=s)
        if args.base_dq:
            default = default._replace(dq=KernelConfig(*(int(x) for x in args.base_dq.split(","))))
        print(f"{name}: {'no column mask' if idx is None else f'{vectors} vectors'}, default configs {default}")
        dkdv_cfgs = _configs_to_time(default.dkdv, args.dkdv, DKDV[dpad])
        dq_cfgs = _configs_to_time(default.dq, args.dq, DQ[dpad])
        fwd_cfgs = _configs_to_time(default.forward, args.fwd, FWD[dpad])
        for cfg, sweep in [] if args.no_fwd else itertools.product(fwd_cfgs, map(int, args.sweep_keys.split(","))):
            try:
                ms = bench(
                    lambda: attention_forward(q, k, v, idx, causal, scale, config=cfg, sweep_keys=sweep), args.rep
                )
            except Exception as exc:
                print("fwd", cfg, "failed:", str(exc)[-300:])
                continue
            rows.append((name, f"fwd sweeps {sweep}" if sweep else "fwd", str(tuple(cfg)), ms, flops / ms / 1e9))
            print(rows[-1], flush=True)
        if args.no_bwd:
            continue
        out, lse = attention_forward(q, k, v, idx, causal, scale)
        # The dQ modes must agree before they are timed (fp32 sums in another order: small differences only).
        ref = None
        for label, atomic, reduce in DQ_MODES:
            cf = default._replace(atomic_dq=atomic, tma_reduce_dq=reduce)
            g = attention_backward(do, q, k, v, out, lse, idx, causal, scale, deterministic=not atomic, configs=cf)
            g = [t.float() for t in g]
            ref = g if ref is None else ref
            diffs = [((a - r).abs().max() / r.abs().max().clamp_min(1e-6)).item() for a, r in zip(g, ref, strict=True)]
            print(f"{name} {label}: rel. diff to the dq pass (dq, dk, dv): " + ", ".join(f"{x:.1e}" for x in diffs))
        for cfg in dkdv_cfgs:
            # The Gluon backward (dQ by bulk reduce-adds in the same kernel) has one mode: not deterministic.
            modes = [("bwd warp-specialized", True, False)] if cfg.warp_specialized else dq_modes
            for label, atomic, reduce in modes:
                cf = Configs(default.forward, cfg, default.dq, atomic_dq=atomic, tma_reduce_dq=reduce)
                try:
                    ms = bench(
                        lambda cf=cf, atomic=atomic: attention_backward(
                            do, q, k, v, out, lse, idx, causal, scale, deterministic=not atomic, configs=cf
                        ),
                        args.rep,
                    )  # fmt: skip
                except Exception as exc:
                    print("bwd", label, cfg, "failed:", str(exc)[-300:])
                    continue
                rows.append((name, label, str(tuple(cfg)), ms, 2.5 * flops / ms / 1e9))
                print(rows[-1], flush=True)
        for cfg in [] if args.no_dq_configs else dq_cfgs:
            cf = Configs(default.forward, default.dkdv, cfg)
            try:
                ms = bench(
                    lambda: attention_backward(
                        do, q, k, v, out, lse, idx, causal, scale, deterministic=True, configs=cf
                    ),
                    args.rep,
                )
            except Exception as exc:
                print("bwd det", cfg, "failed:", str(exc)[-300:])
                continue
            rows.append((name, "bwd separate dq", "dq " + str(tuple(cfg)), ms, 2.5 * flops / ms / 1e9))
            print(rows[-1], flush=True)
        if name in ("full", "causal") and args.peers:
            from torch.nn.attention import SDPBackend, sdpa_kernel

            qt, kt, vt = (x.transpose(1, 2).contiguous().requires_grad_() for x in (q, k, v))
            dot = do.transpose(1, 2).contiguous()
            for backend in (SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION):
                with sdpa_kernel(backend):
                    f = lambda: torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, is_causal=causal)  # noqa: E731
                    ms_f = bench(f, args.rep)
                    o = f()
                    ms_b = bench(lambda: torch.autograd.grad(o, (qt, kt, vt), dot, retain_graph=True), args.rep)
                rows.append((name, f"fwd {backend.name}", "", ms_f, flops / ms_f / 1e9))
                rows.append((name, f"bwd {backend.name}", "", ms_b, 2.5 * flops / ms_b / 1e9))
                print(rows[-2], rows[-1], flush=True)
    print(f"\n{'mask':18s} {'pass':22s} {'config':22s} {'ms':>9s} {'TFLOPs/s':>9s}")
    for r in rows:
        print(f"{r[0]:18s} {r[1]:18s} {r[2]:30s} {r[3]:9.3f} {r[4]:9.1f}")


if __name__ == "__main__":
    main()
