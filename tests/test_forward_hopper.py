"""The warp-specialized Gluon forward (Hopper, D=128, no column mask) as far as a machine without a GPU can see it.

Gluon has no interpreter, so its numbers are checked on the H100 (``benchmarks/gpu_check.py``, which runs it on
every D=128 case without a column mask). Here: it compiles for sm_90 within the register file and shared memory,
and a config that asks for it where it cannot run falls back to the Triton forward on the same tiles.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from flashmask.kernels import KernelConfig, attention_forward
from flashmask.reference import reference_attention

ROOT = Path(__file__).resolve().parents[1]
H100_SHARED_MEMORY_KB = 227


@pytest.mark.parametrize("variant", [[], ["--causal", "--sweep"]], ids=["full", "causal-sweep"])
def test_gluon_forward_compiles_for_sm90_without_spills(variant):
    """The default (3 K/V stages) compiles for sm_90 with no spills and fits an H100's shared memory.

    Run in a subprocess without ``TRITON_INTERPRET``: under the interpreter Gluon's helpers cannot be compiled.
    """
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "sm90_compile.py"), "fwd-ws", "--block", "128", "128"]
    done = subprocess.run([*cmd, "--stages", "3", *variant], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    line = done.stdout.strip().splitlines()[-1]
    assert "spill ('0', '0')" in line, line
    assert "wgmma-serialized no" in line, line
    smem_kb = int(re.search(r"smem (\d+) KB", line).group(1))
    assert 0 < smem_kb <= H100_SHARED_MEMORY_KB, line


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1", reason="CPU tensors need TRITON_INTERPRET=1")
@pytest.mark.parametrize("causal", [False, True])
def test_warp_specialized_config_falls_back_to_the_triton_forward(causal):
    """Where the Gluon kernel cannot run (here: no GPU, so no TMA), the launcher runs the Triton forward on the
    config's tiles with both consumers' warps; the result is the reference's."""
    torch.manual_seed(0)
    b, sq, sk, hq, hkv, d = 1, 70, 90, 2, 1, 32
    q = torch.randn(b, sq, hq, d, dtype=torch.float16)
    k = torch.randn(b, sk, hkv, d, dtype=torch.float16)
    v = torch.randn(b, sk, hkv, d, dtype=torch.float16)
    out = torch.full_like(q, float("nan"))
    lse = torch.full((b, hq, sq), float("nan"))
    cfg = KernelConfig(32, 16, 2, 1, False, warp_specialized=True)
    attention_forward(q, k, v, None, causal, d**-0.5, config=cfg, out=out, lse=lse)
    ref_out, ref_lse = reference_attention(q, k, v, causal=causal, softmax_scale=d**-0.5)
    torch.testing.assert_close(out.double(), ref_out, atol=2e-3, rtol=0)
    torch.testing.assert_close(lse.double(), ref_lse, atol=1e-3, rtol=0)
