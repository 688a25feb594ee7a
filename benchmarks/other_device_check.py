"""Our kernels on a GPU that is not the current device (a model split across GPUs, ``device_map="auto"``).

Triton launches on the current device; the kernels' entry points make ``q``'s device current first. With cuda:0
current, this runs the forward and backward on cuda:1 tensors (the Gluon kernels at D=128 with the backward whole
and in 3 pieces, the Triton kernels at D=64) and compares them with the same call on cuda:0: forward and dK / dV
bit-identical, dQ (fp32 atomics) within 1e-2, and the current device still cuda:0 afterwards. Needs two GPUs.

    python benchmarks/other_device_check.py
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from flashmask.bench import workloads
from flashmask.kernels import attention_backward, attention_forward
from flashmask.kernels import configs as kconfigs


def _run(device: torch.device, head_dim: int, pieces: int, seqlen: int = 2048) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(head_dim)
    shape = (2, seqlen, 8, head_dim)
    q, k, v, do = (torch.randn(shape, generator=gen).to(device, torch.bfloat16) for _ in range(4))
    mask = workloads.make("sliding_window", shape[1], shape[0], device).mask
    idx, causal, scale = mask.startend_row_indices, mask.causal, head_dim**-0.5
    out, lse, bounds = attention_forward(q, k, v, idx, causal, scale, keep_bounds=True)
    cfgs = kconfigs.pick(head_dim, device)._replace(backward_pieces=pieces)
    grads = attention_backward(do, q, k, v, out, lse, idx, causal, scale, configs=cfgs, bounds=bounds)
    return [t.cpu() for t in (out, lse, *grads)]


def main() -> None:
    if torch.cuda.device_count() < 2:
        raise SystemExit(f"needs two GPUs, found {torch.cuda.device_count()}")
    torch.cuda.set_device(0)
    failed = 0
    for head_dim, pieces in ((128, 1), (128, 3), (64, 1)):
        here, there = _run(torch.device("cuda", 0), head_dim, pieces), _run(torch.device("cuda", 1), head_dim, pieces)
        torch.cuda.synchronize(1)
        same = [torch.equal(a, b) for a, b in zip(here, there, strict=True)]
        dq_diff = float((here[2].float() - there[2].float()).abs().max())
        ok = all(same[:2] + same[3:]) and dq_diff <= 1e-2 and torch.cuda.current_device() == 0
        failed += not ok
        print(f"D={head_dim} pieces={pieces}: cuda:1 against cuda:0 bit-identical out, lse, dk, dv: "
              f"{same[:2] + same[3:]}; max |dq difference| {dq_diff:.3g}; current device after: "
              f"{torch.cuda.current_device()}; {'PASS' if ok else 'FAIL'}")  # fmt: skip
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
