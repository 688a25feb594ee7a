"""The warp-specialized Gluon forward (Hopper, D=128 and D=64) as far as a machine without a GPU can see it.

Gluon has no interpreter, so its numbers are checked on the H100 (``benchmarks/gpu_check.py`` runs it on every
D=128 case, with and without a column mask). Here: it compiles for
sm_90 within the register file and shared memory, and a config that asks for it where it cannot run falls back to
the Triton forward on the same tiles.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from flashmask.kernels import KernelConfig, attention_forward, configs
from flashmask.reference import reference_attention

ROOT = Path(__file__).resolve().parents[1]
H100_SHARED_MEMORY_KB = 227


@pytest.mark.skipif(not configs.gluon_release(), reason="the Gluon forward is used on Triton 3.6 only")
@pytest.mark.parametrize(
    "variant",
    [
        ["--persistent"],
        ["--causal", "--sweep"],
        ["--persistent", "--causal", "--vectors", "1"],
        ["--persistent", "--vectors", "2"],
        ["--persistent", "--causal", "--vectors", "2"],
        ["--persistent", "--vectors", "4"],
        ["--persistent", "--causal", "--vectors", "1", "--head-dim", "64"],
        ["--persistent", "--vectors", "4", "--head-dim", "64"],
    ],
    ids=[
        "full",
        "causal-sweep",
        "causal-lts",
        "lts-ute",
        "causal-lts-lte",
        "four-vectors",
        "d64-causal-lts",
        "d64-four-vectors",
    ],
)
def test_gluon_forward_compiles_for_sm90_without_spills(variant):
    """The default (3 K/V stages, the persistent grid; one program per item in key sweeps) compiles for sm_90 with
    no spills and fits an H100's shared memory, without a column mask and with each form (their row limits
    packed: unpacked, the four-vector form spilled 540 B, and with the persistent grid the others 20-92 B), but
    the one-vector form at D=128, whose two limits per column are kept unpacked (faster): at most 64 B of scalars
    there. At D=64 (half the accumulator) nothing spills. The output leaves by 16-byte stores (``D / 16`` per
    thread in each consumer warpgroup's code), its layout changed by shuffles: no shared-memory scratch, which the
    K/V stages leave no room for; a key sweep that carries its state out stores none.

    Run in a subprocess without ``TRITON_INTERPRET``: under the interpreter Gluon's helpers cannot be compiled.
    """
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "sm90_compile.py"), "fwd-ws", "--block", "128", "128"]
    done = subprocess.run([*cmd, "--stages", "3", *variant], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    line = done.stdout.strip().splitlines()[-1]
    spill_stores, spill_loads = map(int, re.search(r"spill \('(\d+)', '(\d+)'\)", line).groups())
    unpacked_one_vector = variant[-2:] == ["--vectors", "1"]  # (the D=64 variants end with the head dim)
    assert spill_stores <= (64 if unpacked_one_vector else 0), line
    assert spill_loads <= (64 if unpacked_one_vector else 0), line
    assert "wgmma-serialized no" in line, line
    smem_kb = int(re.search(r"smem (\d+) KB", line).group(1))
    assert 0 < smem_kb <= H100_SHARED_MEMORY_KB, line
    head_dim = int(variant[variant.index("--head-dim") + 1]) if "--head-dim" in variant else 128
    wide_stores = int(re.search(r"16-byte global stores (\d+)", line).group(1))
    assert wide_stores == (0 if "--sweep" in variant else 2 * head_dim // 16), line


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1", reason="CPU tensors need TRITON_INTERPRET=1")
@pytest.mark.parametrize(("causal", "vectors"), [(False, 0), (True, 0), (True, 1), (False, 2), (True, 2), (False, 4)])
def test_warp_specialized_config_falls_back_to_the_triton_forward(causal, vectors):
    """Where the Gluon kernel cannot run (here: no GPU, so no TMA), the launcher runs the Triton forward on the
    config's tiles with both consumers' warps; the result is the reference's, with and without a column mask of
    the forms the Gluon kernel takes."""
    torch.manual_seed(vectors)
    b, sq, sk, hq, hkv, d = 1, 70, 90, 2, 1, 32
    q = torch.randn(b, sq, hq, d, dtype=torch.float16)
    k = torch.randn(b, sk, hkv, d, dtype=torch.float16)
    v = torch.randn(b, sk, hkv, d, dtype=torch.float16)
    indices = torch.randint(0, sq + 1, (b, 1, sk, vectors), dtype=torch.int32) if vectors else None
    if vectors == 2:  # causal (LTS, LTE) ascending; non-causal (LTS, UTE): [0, UTE) below [LTS, Sq)
        indices = torch.sort(indices, dim=-1, descending=not causal).values
    out = torch.full_like(q, float("nan"))
    lse = torch.full((b, hq, sq), float("nan"))
    cfg = KernelConfig(32, 16, 2, 3, False, warp_specialized=True)
    attention_forward(q, k, v, indices, causal, d**-0.5, config=cfg, out=out, lse=lse)
    ref_out, ref_lse = reference_attention(q, k, v, indices, causal=causal, softmax_scale=d**-0.5)
    seen = torch.isfinite(ref_lse)
    torch.testing.assert_close(out.double(), ref_out, atol=2e-3, rtol=0)
    assert torch.equal(torch.isfinite(lse), seen)
    torch.testing.assert_close(lse.double()[seen], ref_lse[seen], atol=1e-3, rtol=0)
