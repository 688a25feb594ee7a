"""The public entry point on the PyTorch path, in float64, against the dense reference; and its input checks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flashmask import ColumnMask, flashmask_attention, masks
from flashmask.bench import workloads
from flashmask.reference import reference_attention

FORMS = [(True, 1), (True, 2), (False, 2), (False, 4)]


def _qkv(gen, b, sq, sk, hq, hkv, d, dtype=torch.float64):
    q = torch.randn(b, sq, hq, d, generator=gen, dtype=dtype, requires_grad=True)
    k = torch.randn(b, sk, hkv, d, generator=gen, dtype=dtype, requires_grad=True)
    v = torch.randn(b, sk, hkv, d, generator=gen, dtype=dtype, requires_grad=True)
    return q, k, v


def _compare(q, k, v, mask=None, atol=1e-10, **kwargs):
    """Forward, LSE and the q/k/v gradients (through out and lse) of the PyTorch path vs the reference."""
    out, lse = flashmask_attention(q, k, v, mask, return_lse=True, backend="torch", **kwargs)
    ref_out, ref_lse = reference_attention(q, k, v, mask, **kwargs)
    gen = torch.Generator().manual_seed(0)
    do = torch.randn(out.shape, generator=gen, dtype=out.dtype)
    dlse = torch.randn(lse.shape, generator=gen, dtype=lse.dtype)
    finite = torch.isfinite(ref_lse)
    assert torch.equal(torch.isneginf(lse), ~finite)
    torch.testing.assert_close(out, ref_out.to(out.dtype), atol=atol, rtol=0)
    torch.testing.assert_close(lse[finite], ref_lse[finite].to(lse.dtype), atol=atol, rtol=0)
    loss = (out * do).sum() + (torch.where(finite, lse, 0) * dlse).sum()
    ref_loss = (ref_out * do).sum() + (torch.where(finite, ref_lse, 0) * dlse).sum()
    grads = torch.autograd.grad(loss, (q, k, v))
    ref_grads = torch.autograd.grad(ref_loss, (q, k, v))
    for g, r in zip(grads, ref_grads, strict=False):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g, r.to(g.dtype), atol=atol, rtol=0)
    return out, lse, grads


@pytest.mark.parametrize("name", workloads.MASK_TYPES)
def test_every_mask_type(name):
    gen = torch.Generator().manual_seed(len(name))
    s = 301  # not a multiple of any block size
    mask = workloads.make(name, s, 2, "cpu", seed=1).mask
    _compare(*_qkv(gen, 2, s, s, 4, 2, 16), mask)


@pytest.mark.parametrize("causal,c", FORMS)
@pytest.mark.parametrize("sq,sk", [(130, 130), (77, 200), (200, 77)])
def test_forms_every_hm_and_sq_ne_sk(causal, c, sq, sk):
    gen = torch.Generator().manual_seed(sq + sk + c)
    for hm in (1, 2, 4):
        q, k, v = _qkv(gen, 2, sq, sk, 4, 2, 8)
        idx = torch.randint(-3, sq + 4, (2, hm, sk, c), generator=gen, dtype=torch.int32)
        _compare(q, k, v, idx, causal=causal)


@settings(max_examples=25, deadline=None)
@given(
    sq=st.integers(1, 150),
    sk=st.integers(1, 150),
    form=st.sampled_from(FORMS),
    group=st.sampled_from([1, 2, 4]),
    seed=st.integers(0, 2**16),
)
def test_random_masks_property(sq, sk, form, group, seed):
    gen = torch.Generator().manual_seed(seed)
    causal, c = form
    q, k, v = _qkv(gen, 1, sq, sk, 4, 4 // group, 8)
    idx = torch.randint(-2, sq + 3, (1, 1, sk, c), generator=gen, dtype=torch.int32)
    _compare(q, k, v, ColumnMask(idx, causal=causal, seqlen_q=sq))


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("window", [0, 5, (3, 9), (40, 0)])
def test_window_sugar(causal, window):
    gen = torch.Generator().manual_seed(3)
    _compare(*_qkv(gen, 1, 97, 97, 2, 1, 8), causal=causal, window_size=window)


def test_window_matches_the_sliding_window_mask():
    gen = torch.Generator().manual_seed(4)
    q, k, v = _qkv(gen, 1, 64, 64, 2, 2, 8)
    a = flashmask_attention(q, k, v, causal=True, window_size=7, backend="torch")
    b = flashmask_attention(q, k, v, masks.sliding_window(64, 7), backend="torch")
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_rows_that_see_nothing():
    gen = torch.Generator().manual_seed(5)
    q, k, v = _qkv(gen, 1, 40, 40, 2, 2, 8)
    idx = torch.full((1, 1, 40, 1), 40, dtype=torch.int32)
    idx[..., :10, 0] = 5  # keys 0..9 hidden from rows >= 5: rows 5..9 see nothing
    out, lse, grads = _compare(q, k, v, idx, causal=True)
    empty = slice(5, 10)
    assert (out[:, empty] == 0).all()
    assert torch.isneginf(lse[:, :, empty]).all()
    assert (grads[0][:, empty] == 0).all()


def test_float32_and_no_mask():
    gen = torch.Generator().manual_seed(6)
    q, k, v = _qkv(gen, 2, 70, 90, 2, 1, 16, dtype=torch.float32)
    _compare(q, k, v, None, atol=1e-5, causal=True)
    _compare(q, k, v, None, atol=1e-5)


def test_32k_tokens_on_cpu_fits_in_memory():
    """The PyTorch path never builds Sq x Sk: 32K tokens at B=1, H=1, D=64, forward and backward."""
    s = 32768
    gen = torch.Generator().manual_seed(7)
    q = torch.randn(1, s, 1, 64, generator=gen, requires_grad=True)
    mask = masks.causal_document([s // 4] * 4)
    out = flashmask_attention(q, q, q, mask, backend="torch")
    (grad,) = torch.autograd.grad(out.sum(), q)
    assert out.shape == q.shape and torch.isfinite(out).all() and torch.isfinite(grad).all()


# ------------------------------------------------------------------------------------------ bad input
def _inputs(b=1, sq=8, sk=8, hq=2, hkv=2, d=4, dtype=torch.float32):
    return (torch.randn(b, sq, hq, d, dtype=dtype), torch.randn(b, sk, hkv, d, dtype=dtype),
            torch.randn(b, sk, hkv, d, dtype=dtype))  # fmt: skip


@pytest.mark.parametrize(
    "make_args,err,match",
    [
        (lambda q, k, v: (q, k, v, torch.zeros(1, 1, 8, 1)), TypeError, "startend_row_indices must hold integers"),
        (lambda q, k, v: (q, k, v, torch.zeros(1, 1, 8, 2, dtype=torch.bool)), TypeError, "integers"),
        (lambda q, k, v: (q, k, v, torch.zeros(1, 8, 2, dtype=torch.int32)), ValueError, "4 dimensions"),
        (lambda q, k, v: (q, k, v, torch.zeros(1, 1, 7, 2, dtype=torch.int32)), ValueError, "key columns"),
        (lambda q, k, v: (q, k, v, torch.zeros(1, 1, 8, 3, dtype=torch.int32)), ValueError, "bounds per column"),
        (lambda q, k, v: (q, k, v, torch.zeros(1, 1, 8, 1, dtype=torch.int32)), ValueError, "causal=False"),
        (lambda q, k, v: (q, k, v, torch.zeros(1, 3, 8, 2, dtype=torch.int32)), ValueError, "mask heads"),
        (lambda q, k, v: (q, k, v, torch.zeros(3, 1, 8, 2, dtype=torch.int32)), ValueError, "batch"),
        (lambda q, k, v: (q, k, v, [[1, 2]]), TypeError, "startend_row_indices must be"),
        (lambda q, k, v: (q, k.half(), v, None), TypeError, "one dtype"),
        (lambda q, k, v: (q, k[..., :3], v[..., :3], None), ValueError, "head dim"),
        (lambda q, k, v: (q, k[:, :6], v, None), ValueError, "same shape"),
        (lambda q, k, v: (q[..., :1, :], k.expand(1, 8, 2, 4), v, None), ValueError, "multiple"),
        (lambda q, k, v: (q.int(), k, v, None), TypeError, "query must be float"),
        (lambda q, k, v: (q[0], k, v, None), ValueError, "query must have 4 dimensions"),
        (lambda q, k, v: (q, torch.randn(2, 8, 2, 4), torch.randn(2, 8, 2, 4), None), ValueError, "batch"),
    ],
)
def test_bad_input(make_args, err, match):
    with pytest.raises(err, match=match):
        flashmask_attention(*make_args(*_inputs()), backend="torch")


def test_four_bounds_with_causal_is_refused():
    q, k, v = _inputs()
    with pytest.raises(ValueError, match="causal=True it must have 1 or 2"):
        flashmask_attention(q, k, v, torch.zeros(1, 1, 8, 4, dtype=torch.int32), causal=True, backend="torch")


def test_bad_heads_ratio():
    q = torch.randn(1, 8, 3, 4)
    k = torch.randn(1, 8, 2, 4)
    with pytest.raises(ValueError, match="multiple of the number of key/value heads"):
        flashmask_attention(q, k, k, backend="torch")


def test_bad_options():
    q, k, v = _inputs()
    idx = torch.zeros(1, 1, 8, 2, dtype=torch.int32)
    with pytest.raises(ValueError, match="window_size cannot be combined"):
        flashmask_attention(q, k, v, idx, window_size=3)
    with pytest.raises(ValueError, match="non-negative"):
        flashmask_attention(q, k, v, window_size=-1)
    with pytest.raises(ValueError, match="non-negative"):
        flashmask_attention(q, k, v, window_size=(2, -3))
    with pytest.raises(TypeError, match="window_size"):
        flashmask_attention(q, k, v, window_size=1.5)
    with pytest.raises(ValueError, match="causal=True conflicts"):
        flashmask_attention(q, k, v, masks.full(8), causal=True)
    with pytest.raises(ValueError, match="backend must be"):
        flashmask_attention(q, k, v, backend="cuda")
    with pytest.raises(ValueError, match="softmax_scale"):
        flashmask_attention(q, k, v, softmax_scale=-1.0)
    with pytest.raises(ValueError, match="built for 16 query rows"):
        flashmask_attention(q, k, v, ColumnMask(idx, seqlen_q=16))


def test_device_mismatch_is_reported():
    q, k, v = _inputs()
    with pytest.raises(ValueError, match="one device"):
        flashmask_attention(q, k.to("meta"), v)


def test_out_of_range_values_clip():
    """Values outside [0, Sq] are not errors: they behave as clipped (SPEC section 1)."""
    gen = torch.Generator().manual_seed(8)
    q, k, v = _qkv(gen, 1, 20, 20, 1, 1, 4)
    idx = torch.randint(-50, 70, (1, 1, 20, 4), generator=gen, dtype=torch.int32)
    a = flashmask_attention(q, k, v, idx, backend="torch")
    b = flashmask_attention(q, k, v, idx.clamp(0, 20), backend="torch")
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_autocast_runs_in_the_autocast_dtype():
    """Under autocast, mixed float32 / bfloat16 inputs (RoPE returns float32 q, k) run in bfloat16, like SDPA."""
    gen = torch.Generator().manual_seed(9)
    q, k = (torch.randn(1, 32, 2, 16, generator=gen) for _ in range(2))
    v = torch.randn(1, 32, 2, 16, generator=gen).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = flashmask_attention(q, k, v, causal=True)
    assert out.dtype == torch.bfloat16
    ref = flashmask_attention(q.bfloat16(), k.bfloat16(), v, causal=True)
    torch.testing.assert_close(out, ref, atol=0, rtol=0)


@pytest.mark.parametrize(
    "flag, global_on, expected", [(None, False, False), (None, True, True), (False, True, False), (True, False, True)]
)
def test_deterministic_default_follows_torch(monkeypatch, flag, global_on, expected):
    """``deterministic=None`` (the default) takes ``torch.use_deterministic_algorithms``' setting, as PyTorch's own
    ops do; an explicit flag wins. (Checked at the op's boundary: on CPU every path is deterministic anyway.)"""
    import flashmask.attention as api

    seen = []

    def op(q, k, v, indices, causal, scale, backend, deterministic):
        seen.append(deterministic)
        return q, q.new_zeros(q.shape[0], q.shape[2], q.shape[1])

    monkeypatch.setattr(api, "attention", op)
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(global_on)
    try:
        q = torch.randn(1, 8, 2, 16)
        flashmask_attention(q, q, q, causal=True, deterministic=flag)
    finally:
        torch.use_deterministic_algorithms(before)
    assert seen == [expected]


_QKV_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int32]


def _maybe(strategy, chance_of_default: int = 3):
    """``None`` (keep the default) ``chance_of_default`` times as often as a draw from ``strategy``."""
    return st.one_of(*[st.none()] * chance_of_default, strategy)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.integers(0, 3), min_size=4, max_size=4),
    _maybe(st.integers(3, 5)),
    st.lists(_maybe(st.integers(0, 3), 6), min_size=4, max_size=4),
    _maybe(st.integers(3, 5), 6),
    st.sampled_from(_QKV_DTYPES[:4]),
    _maybe(st.sampled_from(_QKV_DTYPES)),
    _maybe(st.sampled_from(["other shape", "other dtype", "list", "none"])),
)
def test_the_quick_input_check_agrees_with_the_detailed_one(q_shape, q_rank, k_dims, k_rank, q_dtype, k_dtype,
                                                            v_kind):  # fmt: skip
    """``check_qkv`` takes a one-expression check for well-formed inputs: it must accept exactly the inputs that
    the detailed checks (which name the problem) accept. Each ``None`` keeps the well-formed default."""
    from flashmask._validation import _diagnose_qkv, _well_formed

    k_shape = [q_shape[i] if d is None else d for i, d in enumerate(k_dims)]
    q = torch.zeros([*q_shape, 2][: q_rank or 4], dtype=q_dtype)
    k = torch.zeros([*k_shape, 2][: k_rank or 4], dtype=k_dtype or q_dtype)
    value = {None: k.clone(), "other shape": torch.zeros([*k.shape, 1], dtype=k.dtype),
             "other dtype": k.to(torch.float64 if k.dtype != torch.float64 else torch.float32), "list": [0],
             "none": None}[v_kind]  # fmt: skip
    try:
        _diagnose_qkv(q, k, value)
        accepted = True
    except (TypeError, ValueError):
        accepted = False
    assert _well_formed(q, k, value) == accepted
