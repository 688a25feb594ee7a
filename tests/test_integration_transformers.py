"""The transformers backend (``attn_implementation="colmask"``) against sdpa/eager on tiny random models (CPU)."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from transformers import AttentionInterface, LlamaConfig, LlamaForCausalLM  # noqa: E402

from flashmask import masks  # noqa: E402
from flashmask.integrations import transformers as fm_hf  # noqa: E402

NAME = fm_hf.register()
VOCAB = 128
ATOL = 1e-10  # float64 throughout
EAGER_ATOL = 1e-6  # eager runs its softmax in float32 even for float64 models


# The tiny decoder shape every test model shares (GQA: 4 query heads, 2 key/value heads).
TINY = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=VOCAB,
    max_position_embeddings=128,
)


def _llama(**overrides) -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**{**TINY, **overrides})).double().eval()


@pytest.fixture(scope="module")
def llama() -> LlamaForCausalLM:
    return _llama()


def _sliding_models() -> list:
    """Tiny sliding-window models available in this transformers: Mistral (all layers) and Qwen2 (mixed)."""
    out = []
    try:
        from transformers import MistralConfig, MistralForCausalLM

        out.append(pytest.param(lambda: MistralForCausalLM(MistralConfig(sliding_window=4, **TINY)), id="mistral"))
    except ImportError:
        pass
    try:
        from transformers import Qwen2Config, Qwen2ForCausalLM

        def qwen2():
            # Layer 0 full attention, layer 1 a window of 3.
            cfg = Qwen2Config(use_sliding_window=True, sliding_window=3, max_window_layers=1, **TINY)
            return Qwen2ForCausalLM(cfg)

        out.append(pytest.param(qwen2, id="qwen2"))
    except ImportError:
        pass
    return out


def _logits(model, impl: str, input_ids, **kwargs) -> torch.Tensor:
    model.set_attn_implementation(impl)
    with torch.no_grad():
        return model(input_ids, **kwargs).logits


def _ids(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, shape, generator=torch.Generator().manual_seed(seed))


def _padding_mask(lengths: list[int], seqlen: int, left: bool) -> torch.Tensor:
    mask = torch.zeros(len(lengths), seqlen, dtype=torch.long)
    for b, n in enumerate(lengths):
        if left:
            mask[b, seqlen - n :] = 1
        else:
            mask[b, :n] = 1
    return mask


class _Spy:
    """Wraps the registered attention function and records the ``attention_mask`` it receives."""

    def __init__(self):
        self.masks = []

    def __call__(self, module, query, key, value, attention_mask, **kwargs):
        self.masks.append(attention_mask)
        return fm_hf.flashmask_attention_forward(module, query, key, value, attention_mask, **kwargs)


@pytest.fixture
def spy():
    spy = _Spy()
    AttentionInterface.register(NAME, spy)
    try:
        yield spy
    finally:
        fm_hf.register()


# ------------------------------------------------------------------------------------------------- registration
def test_register_is_idempotent_and_refuses_flash_names():
    assert fm_hf.register() == NAME == "colmask"
    assert fm_hf.register() == NAME
    assert AttentionInterface._global_mapping[NAME] is fm_hf.flashmask_attention_forward
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    assert ALL_MASK_ATTENTION_FUNCTIONS[NAME] is fm_hf.flashmask_mask_function
    with pytest.raises(ValueError, match="flash"):
        fm_hf.register("flashmask")


# ------------------------------------------------------------------------------------------------ equivalences
@pytest.mark.parametrize("ref", ["sdpa", "eager"])
def test_plain_batch_matches(llama, ref):
    ids = _ids(2, 12)
    atol = EAGER_ATOL if ref == "eager" else ATOL
    torch.testing.assert_close(_logits(llama, NAME, ids), _logits(llama, ref, ids), atol=atol, rtol=0)


@pytest.mark.parametrize("left", [False, True], ids=["right_pad", "left_pad"])
def test_padding_matches_sdpa(llama, left, spy):
    ids = _ids(3, 10)
    am = _padding_mask([10, 6, 3], 10, left)
    ours = _logits(llama, NAME, ids, attention_mask=am)
    ref = _logits(llama, "sdpa", ids, attention_mask=am)
    keep = am.bool()
    torch.testing.assert_close(ours[keep], ref[keep], atol=ATOL, rtol=0)
    # Never a dense [B, 1, S, S] mask: the attention function saw the 2-D padding mask.
    assert spy.masks and all(m is not None and m.dim() == 2 for m in spy.masks)


def test_no_dense_mask_without_padding(llama, spy):
    _logits(llama, NAME, _ids(2, 8))
    docs = [_ids(1, n, seed=n) for n in (3, 5)]
    _logits(llama, NAME, torch.cat(docs, 1), position_ids=torch.cat([torch.arange(3), torch.arange(5)])[None])
    assert len(spy.masks) == 4 and all(m is None for m in spy.masks)


def _packed(lengths: list[int]):
    docs = [_ids(1, n, seed=10 + i) for i, n in enumerate(lengths)]
    position_ids = torch.cat([torch.arange(n) for n in lengths]).unsqueeze(0)
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    return docs, torch.cat(docs, dim=1), position_ids, cu


def _alone(model, impl, docs) -> torch.Tensor:
    return torch.cat([_logits(model, impl, d) for d in docs], dim=1)


def test_packed_position_ids_isolate_documents(llama):
    docs, packed, position_ids, _ = _packed([5, 1, 8, 3])
    ours = _logits(llama, NAME, packed, position_ids=position_ids)
    torch.testing.assert_close(ours, _alone(llama, NAME, docs), atol=ATOL, rtol=0)
    torch.testing.assert_close(ours, _alone(llama, "sdpa", docs), atol=ATOL, rtol=0)


def test_packed_cu_seq_lens_isolate_documents(llama):
    lengths = [4, 7, 2, 5]
    docs, packed, position_ids, cu = _packed(lengths)
    kw = dict(cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=max(lengths), max_length_k=max(lengths))
    ours = _logits(llama, NAME, packed, position_ids=position_ids, **kw)
    torch.testing.assert_close(ours, _alone(llama, NAME, docs), atol=ATOL, rtol=0)
    # cu_seq_lens win over position_ids: with plain arange positions the documents stay isolated (RoPE is
    # relative, so only rounding of the rotary tables differs).
    shifted = _logits(llama, NAME, packed, **kw)
    torch.testing.assert_close(shifted, ours, atol=1e-6, rtol=0)


def test_cu_seq_lens_with_batch_rows():
    from flashmask.integrations.transformers import build_mask

    # Two rows of 6 flattened: documents [0, 4), [4, 9) (cut at the row boundary 6), [9, 12).
    cu = torch.tensor([0, 4, 9, 12], dtype=torch.int32)
    mask, causal = build_mask(
        batch=2, seqlen_q=6, seqlen_k=6, device=torch.device("cpu"), is_causal=True, cu_seq_lens=cu
    )
    assert causal
    assert mask[:, 0, :, 0].tolist() == [[4, 4, 4, 4, 6, 6], [3, 3, 3, 6, 6, 6]]


def test_explicit_startend_row_indices(llama):
    docs, packed, _, _ = _packed([6, 4, 5])
    cm = masks.causal_document([6, 4, 5])
    alone = _alone(llama, NAME, docs)
    # A ColumnMask and the raw tensor; plain positions (no restart) so only the explicit mask isolates.
    for explicit in (cm, cm.startend_row_indices):
        ours = _logits(llama, NAME, packed, startend_row_indices=explicit)
        torch.testing.assert_close(ours, alone, atol=1e-6, rtol=0)
    # An explicit mask wins over position_ids: causal (no documents) ignores the restarts' isolation.
    full = masks.causal(15)
    pos = torch.cat([torch.arange(6), torch.arange(4), torch.arange(5)])[None]
    with_pos = _logits(llama, NAME, packed, position_ids=pos, startend_row_indices=full)
    ref = _logits(llama, "sdpa", packed, position_ids=pos, attention_mask=torch.tril(torch.ones(1, 1, 15, 15)).bool())
    torch.testing.assert_close(with_pos, ref, atol=ATOL, rtol=0)


def test_explicit_mask_with_padding(llama):
    ids = _ids(2, 9)
    am = _padding_mask([9, 5], 9, left=True)
    ours = _logits(llama, NAME, ids, attention_mask=am, startend_row_indices=masks.causal(9, batch=2))
    ref = _logits(llama, "sdpa", ids, attention_mask=am)
    keep = am.bool()
    torch.testing.assert_close(ours[keep], ref[keep], atol=ATOL, rtol=0)


@pytest.mark.parametrize("make", _sliding_models())
def test_sliding_window_matches_sdpa(make):
    torch.manual_seed(0)
    model = make().double().eval()
    ids = _ids(2, 11)
    torch.testing.assert_close(_logits(model, NAME, ids), _logits(model, "sdpa", ids), atol=ATOL, rtol=0)
    torch.testing.assert_close(_logits(model, NAME, ids), _logits(model, "eager", ids), atol=EAGER_ATOL, rtol=0)
    am = _padding_mask([11, 7], 11, left=True)
    keep = am.bool()
    ours = _logits(model, NAME, ids, attention_mask=am)
    torch.testing.assert_close(ours[keep], _logits(model, "sdpa", ids, attention_mask=am)[keep], atol=ATOL, rtol=0)
    # Greedy decoding past the window: the cache keeps only the last keys of sliding layers.
    kw = dict(attention_mask=am, max_new_tokens=6, do_sample=False, pad_token_id=0)
    model.set_attn_implementation(NAME)
    ours = model.generate(ids, **kw)
    model.set_attn_implementation("sdpa")
    assert torch.equal(ours, model.generate(ids, **kw))


def test_generation_with_cache_matches_sdpa(llama):
    ids = _ids(2, 6)
    am = _padding_mask([6, 4], 6, left=True)
    kw = dict(attention_mask=am, max_new_tokens=4, do_sample=False, pad_token_id=0)
    llama.set_attn_implementation(NAME)
    ours = llama.generate(ids, **kw)
    llama.set_attn_implementation("sdpa")
    assert torch.equal(ours, llama.generate(ids, **kw))


# --------------------------------------------------------------------------------------------------- gradients
def test_gradients_match_sdpa():
    model = _llama()
    ids = _ids(2, 10)
    am = _padding_mask([10, 7], 10, left=False)
    labels = ids.masked_fill(am == 0, -100)
    grads = {}
    for impl in (NAME, "sdpa"):
        model.zero_grad()
        model.set_attn_implementation(impl)
        model(ids, attention_mask=am, labels=labels).loss.backward()
        grads[impl] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert grads[NAME].keys() == grads["sdpa"].keys()
    assert any("q_proj" in n for n in grads[NAME])
    for n, g in grads[NAME].items():
        torch.testing.assert_close(g, grads["sdpa"][n], atol=1e-9, rtol=1e-7, msg=n)


# ---------------------------------------------------------------------------------------------------- refusals
def test_dropout_in_training_raises():
    model = _llama(attention_dropout=0.1)
    model.set_attn_implementation(NAME)
    model.train()
    with pytest.raises(ValueError, match="dropout"):
        model(_ids(1, 5))
    model.eval()
    model(_ids(1, 5))  # no dropout at inference


def test_unsupported_options_raise():
    q = torch.randn(1, 4, 5, 8, dtype=torch.float64)
    k = torch.randn(1, 2, 5, 8, dtype=torch.float64)
    module = torch.nn.Module()
    for option in ("softcap", "s_aux"):
        with pytest.raises(ValueError, match=option):
            fm_hf.flashmask_attention_forward(module, q, k, k, None, **{option: torch.tensor(1.0)})
    with pytest.raises(ValueError, match="from_dense"):
        fm_hf.flashmask_attention_forward(module, q, k, k, torch.ones(1, 1, 5, 5, dtype=torch.bool))


def test_context_parallel_keyword_refuses_other_masks():
    from flashmask.distributed import plan

    q = torch.randn(1, 4, 8, 8, dtype=torch.float64)
    k = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    module = torch.nn.Module()
    cp_plan = plan(masks.causal(8, 1), 1, chunk_size=4)
    with pytest.raises(TypeError, match="CPPlan"):
        fm_hf.flashmask_attention_forward(module, q, k, k, None, context_parallel="plan")
    with pytest.raises(ValueError, match="attention_mask=None"):
        fm_hf.flashmask_attention_forward(module, q, k, k, torch.ones(1, 8), context_parallel=cp_plan)
    with pytest.raises(ValueError, match="startend_row_indices"):
        fm_hf.flashmask_attention_forward(
            module, q, k, k, None, context_parallel=cp_plan, startend_row_indices=masks.causal(8, 1)
        )
    module.sliding_window = 4
    with pytest.raises(ValueError, match="sliding window"):
        fm_hf.flashmask_attention_forward(module, q, k, k, None, context_parallel=cp_plan)


def test_attention_function_layout_and_noncausal():
    # [B, H, S, D] in, [B, S, H, D] out; is_causal=False with padding and documents (bidirectional document mask).
    q = torch.randn(2, 4, 6, 8, dtype=torch.float64)
    k = torch.randn(2, 2, 6, 8, dtype=torch.float64)
    v = torch.randn(2, 2, 6, 8, dtype=torch.float64)
    module = torch.nn.Module()
    module.is_causal = False
    am = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    pos = torch.tensor([[0, 1, 2, 0, 1, 2], [0, 1, 2, 3, 4, 5]])
    out, weights = fm_hf.flashmask_attention_forward(module, q, k, v, am, scaling=0.3, position_ids=pos)
    assert weights is None and out.shape == (2, 6, 4, 8)
    doc = pos.eq(0).cumsum(-1)
    allowed = (doc[:, :, None] == doc[:, None, :]) & am.bool()[:, None, :]
    ref = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), attn_mask=allowed[:, None], scale=0.3
    )
    torch.testing.assert_close(out, ref.transpose(1, 2), atol=1e-12, rtol=0)
