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


def _lse_only(q, k, v, mask):
    _, lse = flashmask_attention(q, k, v, mask, return_lse=True, backend="torch")
    return lse.exp().mean()


def test_gradient_through_lse_alone_on_both_routes():
    """Eager calls (the autograd.Function) and compiled ones (the custom ops) agree when only the LSE has a
    gradient: the output's gradient reaches the backward as None, not as a zero tensor."""
    torch._dynamo.reset()
    q, k, v = _qkv()
    mask = masks.causal_document([20, 28])
    eager = torch.autograd.grad(_lse_only(q, k, v, mask), (q, k, v))
    compiled = torch.autograd.grad(torch.compile(_lse_only, backend="aot_eager", fullgraph=True)(q, k, v, mask),
                                   (q, k, v))  # fmt: skip
    assert eager[0].abs().max() > 0
    for a, b in zip(eager, compiled, strict=True):
        torch.testing.assert_close(a, b)
