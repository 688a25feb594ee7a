"""The paper's inputs and our kernels' forward / backward on one benchmark mask, for the GPU probes here
(``ab_setting.py``, ``heat_probe.py``, ``tile_cost.py``): they call the kernels' entry points, or with
``public_calls`` the public API with autograd, as the benchmark does."""

from __future__ import annotations

import ast
import math
import os
import sys
from collections.abc import Callable

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from flashmask.bench import workloads
from flashmask.bench.peers import Inputs
from flashmask.kernels import attention_backward, attention_forward
from flashmask.kernels import configs as kconfigs

HIDDEN = 4096  # the paper's setup: 32 heads at D=128


def set_configs(items: list[str]) -> None:
    """Each ``NAME=VALUE`` (a Python literal) set on ``flashmask.kernels.configs``; exits naming a setting it lacks."""
    for item in items:
        name, _, value = item.partition("=")
        if not hasattr(kconfigs, name):
            raise SystemExit(f"flashmask.kernels.configs has no setting {name}")
        setattr(kconfigs, name, ast.literal_eval(value))


def paper_inputs(batch: int, seqlen: int, head_dim: int, device: torch.device) -> Inputs:
    """bf16 ``[B, S, HIDDEN / D, D]`` q, k, v, dO (the benchmark's, seed 0)."""
    return Inputs(batch, seqlen, HIDDEN // head_dim, head_dim, torch.bfloat16, device)


def kernel_calls(mask: str, inputs: Inputs, plain: bool = False, kernels=None) -> tuple[Callable, Callable]:
    """``(forward, backward)`` of our kernels on the benchmark's ``mask``; the backward differentiates one forward
    made here (with its block bounds handed over, as the public call does). ``plain``: no column mask, its
    ``causal`` flag only (for full and causal, as the benchmark calls them). ``kernels``: another copy of the
    ``flashmask.kernels`` package to call (default: this tree's)."""
    fwd, bwd = (attention_forward, attention_backward) if kernels is None else (
        kernels.attention_forward, kernels.attention_backward)  # fmt: skip
    q, k, v, do = (x.detach() for x in (inputs.q, inputs.k, inputs.v, inputs.do))
    w = workloads.make(mask, inputs.seqlen, inputs.batch, inputs.device)
    idx, causal = None if plain else w.mask.startend_row_indices, w.mask.causal
    scale = 1 / math.sqrt(inputs.head_dim)
    out, lse, bounds = fwd(q, k, v, idx, causal, scale, keep_bounds=True)

    def forward():
        return fwd(q, k, v, idx, causal, scale)

    def backward():
        return bwd(do, q, k, v, out, lse, idx, causal, scale, bounds=bounds)

    return forward, backward


def public_calls(mask: str, inputs: Inputs) -> tuple[Callable, Callable]:
    """``(forward, backward)`` as the benchmark times them (``flashmask.bench.runner.measure_ours``, ``timed_pass``):
    ``flashmask_attention`` with autograd (returning ``(out,)``), and ``torch.autograd.grad`` of one forward made
    here."""
    from flashmask import flashmask_attention

    q, k, v, do = (x.detach() for x in (inputs.q, inputs.k, inputs.v, inputs.do))
    q, k, v = (x.requires_grad_() for x in (q, k, v))
    w = workloads.make(mask, inputs.seqlen, inputs.batch, inputs.device)
    plain = mask in ("full", "causal")  # the benchmark calls these without a column mask

    def forward():
        return (flashmask_attention(q, k, v, causal=w.mask.causal) if plain else flashmask_attention(q, k, v, w.mask),)

    (out,) = forward()

    def backward():
        return torch.autograd.grad(out, (q, k, v), do, retain_graph=True)

    return forward, backward
