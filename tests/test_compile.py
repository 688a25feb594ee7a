"""torch.compile: the custom ops pass opcheck; fullgraph compiles; new masks and new lengths do not recompile."""

from __future__ import annotations

import pytest
import torch

from flashmask import ColumnMask, flashmask_attention, masks
from flashmask._ops import attention_bwd, attention_fwd

CompileCounterWithBackend = pytest.importorskip("torch._dynamo.testing").CompileCounterWithBackend


def _qkv(s=48, b=1, hq=4, hkv=2, d=16, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    shapes = ((b, s, hq, d), (b, s, hkv, d), (b, s, hkv, d))
    return [torch.randn(sh, generator=gen, dtype=dtype, requires_grad=True) for sh in shapes]


@pytest.mark.parametrize("causal,c", [(True, 1), (False, 4), (True, 0)])
def test_opcheck(causal, c):
    q, k, v = _qkv()
    idx = torch.randint(0, 49, (1, 1, 48, c), dtype=torch.int32) if c else None
    torch.library.opcheck(attention_fwd, (q, k, v, idx, causal, 0.25, "torch", False))
    out, lse = attention_fwd(q, k, v, idx, causal, 0.25, "torch", False)
    dout = torch.randn_like(out)
    args = (dout, torch.zeros_like(lse), q.detach(), k.detach(), v.detach(), out.detach(), lse.detach(), idx)
    torch.library.opcheck(attention_bwd, (*args, causal, 0.25, "torch", False))


def _step(q, k, v, mask):
    return flashmask_attention(q, k, v, mask, backend="torch").square().mean()


def test_fullgraph_and_no_recompile_for_new_masks():
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")
    step = torch.compile(_step, backend=counter, fullgraph=True)
    q, k, v = _qkv()
    for doc_lens in ([48], [10, 38], [20, 20, 8]):
        mask = masks.causal_document(doc_lens)
        loss = step(q, k, v, mask)
        torch.testing.assert_close(loss, _step(q, k, v, mask))
        grads = torch.autograd.grad(loss, (q, k, v))
        ref = torch.autograd.grad(_step(q, k, v, mask), (q, k, v))
        for g, r in zip(grads, ref, strict=True):
            torch.testing.assert_close(g, r)
    assert counter.frame_count == 1, f"recompiled for new masks of the same shape: {counter.frame_count} frames"


def test_dynamic_lengths_do_not_recompile_per_length():
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")
    step = torch.compile(_step, backend=counter, fullgraph=True, dynamic=True)
    for s in (40, 56, 72):
        q, k, v = _qkv(s=s, seed=s)
        mask = ColumnMask(torch.randint(0, s + 1, (1, 1, s, 2), dtype=torch.int32), causal=False)
        torch.testing.assert_close(step(q, k, v, mask), _step(q, k, v, mask))
    assert counter.frame_count == 1, f"recompiled per length: {counter.frame_count} frames"
