"""The warp-specialized Gluon backward (Hopper, D=128 and D=64) as far as a machine without a GPU can see it.

Gluon has no interpreter, so its numbers are checked on the H100 (``benchmarks/gpu_check.py``: every D=128 case
runs it in its non-deterministic mode; ``benchmarks/sanitize.py`` under memcheck). Here: it compiles for sm_90
within the register file and shared memory for every mask form; the launcher routes ``deterministic=True``, and
calls the kernel cannot take, to the Triton kernels; and the preprocess pads LSE and delta the way it reads them.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import triton

from flashmask.kernels import Configs, KernelConfig, configs
from flashmask.reference import reference_attention

ROOT = Path(__file__).resolve().parents[1]
H100_SHARED_MEMORY_KB = 227
interpreted = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1", reason="CPU tensors need TRITON_INTERPRET=1"
)


@pytest.mark.skipif(not configs.gluon_release(), reason="the Gluon backward is used on Triton 3.6 only")
@pytest.mark.parametrize(
    ("variant", "max_spill_bytes", "max_tile_loop_loads"),
    [
        ([], 0, 0),
        (["--causal"], 0, 0),
        (["--causal", "--vectors", "1"], 24, 0),
        (["--vectors", "2"], 24, 0),
        (["--causal", "--vectors", "2"], 28, 0),
        (["--vectors", "4"], 40, 3),
        (["--no-dkv-tma"], 0, 0),
        (["--causal", "--vectors", "1", "--no-dkv-tma"], 0, 0),
        (["--head-dim", "64", "--no-dkv-tma"], 0, 0),
        (["--causal", "--vectors", "2", "--head-dim", "64"], 0, 0),
        (["--vectors", "4", "--head-dim", "64"], 0, 0),
    ],
    ids=[
        "full",
        "causal",
        "causal-lts",
        "lts-ute",
        "causal-lts-lte",
        "four-vectors",
        "full-dkv-stores",
        "causal-lts-dkv-stores",
        "d64-full",
        "d64-causal-lts-lte",
        "d64-four-vectors",
    ],
)
def test_gluon_backward_compiles_for_sm90(variant, max_spill_bytes, max_tile_loop_loads):
    """The default (2 Q/dO stages) compiles for sm_90 without serialized wgmma and fits an H100's shared memory,
    for every mask form, as the launcher runs it: dK / dV by bulk copies, except D=64 without a column mask
    (``configs.gluon_dkv_copies``), and by scattered stores for buffers the copy engine cannot write
    (``--no-dkv-tma``). Without a column mask nothing spills; at D=128 the forms that load per-key limits spill a
    few scalars (12-40 bytes with the copies, 0-36 with the stores; reloaded at most once per tile or per program:
    benchmarks/NOTES.md, sessions 10, 19 and 25), bounded here; at D=64 (half the dK / dV accumulators) nothing
    spills. What a spill costs depends on where it is reloaded: the tile loops' local loads (in the innermost loops
    that issue wgmma: once per tile) are bounded too (a persistent grid reloaded 4-6 values per tile, session 30).

    Run in a subprocess without ``TRITON_INTERPRET``: under the interpreter Gluon's helpers cannot be compiled.
    """
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "sm90_compile.py"), "bwd-ws", "--stages", "2", *variant]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    line = done.stdout.strip().splitlines()[-1]
    stores, loads = (int(x) for x in re.search(r"spill \('(\d+)', '(\d+)'\)", line).groups())
    assert stores <= max_spill_bytes and loads <= max_spill_bytes + 16, line
    loop_loads = int(re.search(r"tile-loop local loads (\d+) \(\d+ loops\)", line).group(1))
    assert loop_loads <= max_tile_loop_loads, line
    assert "wgmma-serialized no" in line, line
    smem_kb = int(re.search(r"smem (\d+) KB", line).group(1))
    assert 0 < smem_kb <= H100_SHARED_MEMORY_KB, line


def _inputs(causal: bool, vectors: int):
    torch.manual_seed(vectors + 2 * causal)
    b, sq, sk, hq, hkv, d = 1, 70, 90, 2, 1, 32
    q = torch.randn(b, sq, hq, d, dtype=torch.float16)
    k = torch.randn(b, sk, hkv, d, dtype=torch.float16)
    v = torch.randn(b, sk, hkv, d, dtype=torch.float16)
    do = torch.randn(b, sq, hq, d, dtype=torch.float16)
    indices = torch.randint(0, sq + 1, (b, 1, sk, vectors), dtype=torch.int32) if vectors else None
    if vectors == 2:  # causal (LTS, LTE) ascending; non-causal (LTS, UTE): [0, UTE) below [LTS, Sq)
        indices = torch.sort(indices, dim=-1, descending=not causal).values
    return q, k, v, do, indices


def _reference_grads(q, k, v, do, indices, causal):
    qr, kr, vr = (t.detach().double().requires_grad_() for t in (q, k, v))
    out, _ = reference_attention(qr, kr, vr, indices, causal=causal, softmax_scale=q.shape[-1] ** -0.5)
    return torch.autograd.grad((out * do.double()).sum(), (qr, kr, vr))


@interpreted
@pytest.mark.parametrize("deterministic", [True, False])
@pytest.mark.parametrize(("causal", "vectors"), [(False, 0), (True, 1), (False, 4)])
def test_backward_routing(monkeypatch, deterministic, causal, vectors):
    """With a warp-specialized ``dkdv`` config: ``deterministic=True`` never reaches the Gluon kernel (its dQ
    reduce-adds land in any order) and gives the reference's gradients through the Triton kernels; otherwise the
    launcher takes the Gluon kernel wherever ``_backward_ws_ok`` allows it."""
    from flashmask import kernels

    monkeypatch.setattr(kernels, "_backward_ws_ok", lambda *args: True)

    class GluonLaunched(Exception):
        pass

    def launcher(*args, **kwargs):
        raise GluonLaunched

    monkeypatch.setattr(kernels, "_backward_ws_launcher", launcher)
    q, k, v, do, indices = _inputs(causal, vectors)
    small = KernelConfig(32, 16, 4, 1)
    cfgs = Configs(small, configs.WARP_SPECIALIZED_BACKWARD, small)
    out, lse = kernels.attention_forward(q, k, v, indices, causal, q.shape[-1] ** -0.5, config=small)
    call = (do, q, k, v, out, lse, indices, causal, q.shape[-1] ** -0.5)
    if not deterministic:
        with pytest.raises(GluonLaunched):
            kernels.attention_backward(*call, deterministic=False, configs=cfgs)
        return
    grads = kernels.attention_backward(*call, deterministic=True, configs=cfgs)
    for got, ref in zip(grads, _reference_grads(q, k, v, do, indices, causal), strict=True):
        torch.testing.assert_close(got.double(), ref, atol=5e-3 * max(1.0, ref.abs().max().item()), rtol=0)


@interpreted
def test_warp_specialized_config_falls_back_where_the_kernel_cannot_run():
    """Where the Gluon backward cannot run (here: D=32, and no GPU), a call with its config still gives the
    reference's gradients, through the Triton dK/dV kernel and dQ pass."""
    from flashmask import kernels

    q, k, v, do, indices = _inputs(True, 2)
    small = KernelConfig(32, 16, 4, 1)
    cfgs = Configs(small, configs.WARP_SPECIALIZED_BACKWARD, small)
    scale = q.shape[-1] ** -0.5
    out, lse = kernels.attention_forward(q, k, v, indices, True, scale, config=small)
    grads = kernels.attention_backward(do, q, k, v, out, lse, indices, True, scale, configs=cfgs)
    for got, ref in zip(grads, _reference_grads(q, k, v, do, indices, True), strict=True):
        torch.testing.assert_close(got.double(), ref, atol=5e-3 * max(1.0, ref.abs().max().item()), rtol=0)


@interpreted
def test_preprocess_pads_rows_for_whole_query_tiles():
    """The Gluon backward reads LSE and delta by 64-row tiles: with ``row_stride`` past ``Sq`` the preprocess fills
    the padding rows with ``+inf`` (so their probabilities are 0) and 0, and the real rows as without padding."""
    from flashmask.kernels.backward import bwd_preprocess_kernel

    torch.manual_seed(0)
    b, sq, h, d, row_stride = 2, 70, 3, 32, 128
    out, dout = torch.randn(b, sq, h, d), torch.randn(b, sq, h, d)
    lse = torch.randn(b, h, sq)
    lse[0, 1, 5] = float("-inf")  # a row that saw nothing
    delta = torch.full((b, h, row_stride), float("nan"))
    lse2 = torch.full_like(delta, float("nan"))
    bwd_preprocess_kernel[(triton.cdiv(row_stride, 64), b * h)](
        out, dout, lse, lse, delta, lse2, *out.stride()[:3], *dout.stride()[:3], sq, row_stride, h,
        HAS_DLSE=False, BLOCK_M=64, HEAD_DIM=d, HEAD_DIM_PAD=d,
    )  # fmt: skip
    expected_delta = (out * dout).sum(-1).transpose(1, 2)
    torch.testing.assert_close(delta[..., :sq], expected_delta, atol=1e-4, rtol=1e-5)
    expected_lse2 = torch.where(torch.isneginf(lse), math.inf, lse * math.log2(math.e))
    torch.testing.assert_close(lse2[..., :sq], expected_lse2, atol=1e-5, rtol=1e-6)
    assert torch.isposinf(lse2[..., sq:]).all() and (delta[..., sq:] == 0).all()
