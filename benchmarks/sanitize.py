"""One forward and backward per (causal, C) form, for compute-sanitizer (memcheck, racecheck).

    PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck python benchmarks/sanitize.py

Odd lengths, GQA, Sq != Sk and ragged head dims, so that every masked edge of every kernel is exercised.
With the caching allocator off, every tensor is its own allocation and an out-of-bounds access is caught.
"""

from __future__ import annotations

import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from flashmask.kernels import attention_backward, attention_forward


def main() -> None:
    dev = torch.device("cuda")
    torch.manual_seed(0)
    for causal, c in [(True, 1), (True, 2), (False, 2), (False, 4), (True, 0), (False, 0)]:
        for sq, sk, d in [(333, 333, 64), (200, 457, 96), (457, 200, 128)]:
            b, hq, hkv = 2, 4, 2
            q = torch.randn(b, sq, hq, d, device=dev, dtype=torch.bfloat16)
            k = torch.randn(b, sk, hkv, d, device=dev, dtype=torch.bfloat16)
            v = torch.randn(b, sk, hkv, d, device=dev, dtype=torch.bfloat16)
            do = torch.randn_like(q)
            idx = torch.randint(0, sq + 1, (b, 1, sk, c), device=dev, dtype=torch.int32) if c else None
            out, lse = attention_forward(q, k, v, idx, causal, 1 / math.sqrt(d))
            for det in (False, True):
                attention_backward(do, q, k, v, out, lse, idx, causal, 1 / math.sqrt(d), deterministic=det)
            torch.cuda.synchronize()
            print(f"causal={causal} C={c} Sq={sq} Sk={sk} D={d}: ran", flush=True)


if __name__ == "__main__":
    main()
