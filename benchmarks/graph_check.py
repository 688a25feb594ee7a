"""Our forward and backward captured in a CUDA graph and replayed on new inputs and a new mask of the same shape.

Nothing in either pass waits on the host, and the block bounds and tile lists are built on the GPU from the mask
tensor, so a captured step replays correctly when new q, k, v, dO and a new mask (other documents, another
window) are copied into its input buffers. This checks that against eager calls on the same inputs, for:

- the public call with autograd (``flashmask_attention`` + ``torch.autograd.grad``) at the paper's 8K shape, where
  the default backward runs in pieces on side streams (``configs.BWD_PIECES``);
- the kernels' entry points at D=128 (Gluon) with the backward in 3 pieces, and at D=64 (Gluon since session 24;
  and with ``deterministic=True``, the Triton kernels).

Out, LSE, dK and dV must be bit-identical to the eager call's, dQ (fp32 atomics) within 1e-2; three replays each.

    python benchmarks/graph_check.py
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from flashmask import flashmask_attention, masks
from flashmask.kernels import attention_backward, attention_forward
from flashmask.kernels import configs as kconfigs


def _masks(batch: int, seqlen: int, trial: int, device: str = "cuda") -> torch.Tensor:
    """A causal ``[B, 1, S, 1]`` mask that differs from trial to trial: documents, then a sliding window."""
    gen = torch.Generator().manual_seed(trial)
    if trial % 2:
        return masks.sliding_window(seqlen, 256 * (1 + trial), batch, device=device).startend_row_indices
    rows = []
    for _ in range(batch):
        cuts = sorted(torch.randint(1, seqlen, (3 + trial,), generator=gen).unique().tolist())
        rows.append([b - a for a, b in zip([0, *cuts], [*cuts, seqlen], strict=True)])
    return masks.causal_document(rows, device=device).startend_row_indices


def _public_step(q, k, v, do, idx):
    out = flashmask_attention(q, k, v, idx, causal=True)
    return (out, *torch.autograd.grad(out, (q, k, v), do))


def _kernel_step(q, k, v, do, idx, pieces: int, deterministic: bool = False):
    scale = q.shape[-1] ** -0.5
    out, lse, bounds = attention_forward(q, k, v, idx, True, scale, keep_bounds=True)
    cfgs = kconfigs.pick(q.shape[-1], q.device)._replace(backward_pieces=pieces)
    grads = attention_backward(do, q, k, v, out, lse, idx, True, scale, deterministic=deterministic, configs=cfgs,
                               bounds=bounds)  # fmt: skip
    return (out, lse, *grads)


def _check(label: str, shape: tuple, step, grad_inputs: bool) -> bool:
    batch, seqlen = shape[0], shape[1]
    q, k, v, do = (torch.randn(shape, device="cuda", dtype=torch.bfloat16) for _ in range(4))
    if grad_inputs:
        q, k, v = (x.requires_grad_() for x in (q, k, v))
    idx = _masks(batch, seqlen, 0)
    # Warm-up (compilation, the allocator) on a side stream, as torch.cuda.graphs asks.
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            step(q, k, v, do, idx)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = step(q, k, v, do, idx)
    ok = True
    for trial in range(1, 4):
        with torch.no_grad():
            for x in (q, k, v, do):
                x.copy_(torch.randn_like(x))
            idx.copy_(_masks(batch, seqlen, trial))
        graph.replay()
        replayed = [t.detach().clone() for t in captured]
        eager = [t.detach() for t in step(q, k, v, do, idx)]
        names = ["out", "lse", "dq", "dk", "dv"] if len(eager) == 5 else ["out", "dq", "dk", "dv"]
        report = []
        for name, a, b in zip(names, replayed, eager, strict=True):
            if name == "dq":
                err = float((a.float() - b.float()).abs().max())
                good = err <= 1e-2
                report.append(f"dq {err:.3g}")
            else:
                good = torch.equal(a, b)
                report.append(f"{name} {'same' if good else 'DIFFERS'}")
            ok &= good
        print(f"{label} replay {trial}: {', '.join(report)}", flush=True)
    print(f"{label}: {'PASS' if ok else 'FAIL'}", flush=True)
    return ok


def main() -> None:
    results = [
        _check("public 8K (B=16, H=32, D=128)", (16, 8192, 32, 128), _public_step, grad_inputs=True),
        _check("kernels D=128, 3 pieces", (2, 4096, 8, 128), lambda *a: _kernel_step(*a, pieces=3), False),
        _check("kernels D=64 (Gluon)", (2, 4096, 8, 64), lambda *a: _kernel_step(*a, pieces=1), False),
        _check(
            "kernels D=64, deterministic (Triton)",
            (2, 4096, 8, 64),
            lambda *a: _kernel_step(*a, pieces=1, deterministic=True),
            False,
        ),
    ]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
