"""TRL's ``SFTTrainer`` with packing on the ``colmask`` backend (tiny random Llama, CPU, no downloads).

TRL's BFD packing (``packing=True, packing_strategy="bfd"``) switches the trainer to padding-free batches: its
``DataCollatorForLanguageModeling(padding_free=True)`` concatenates the packed rows of a batch into one row of
``input_ids``/``labels`` with ``position_ids`` restarting at 0 per document and ``cu_seq_lens_q/k``, and no
``attention_mask``. The backend reads the documents from ``cu_seq_lens_k`` (and would from the ``position_ids``).
"""

from __future__ import annotations

import math

import pytest
import torch

trl = pytest.importorskip("trl")
pytest.importorskip("datasets")
pytest.importorskip("tokenizers")

from datasets import Dataset  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from tokenizers.models import WordLevel  # noqa: E402
from tokenizers.pre_tokenizers import WhitespaceSplit  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402

from flashmask.integrations.transformers import register  # noqa: E402

NAME = register()
VOCAB = 128
PAD, EOS, UNK = 0, 1, 2
MAX_LENGTH = 32  # length of a packed row
DOC_LENS = [5, 9, 3, 12, 7, 6, 10, 4, 8, 11, 2, 13]


def _tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over ``t3 .. t127`` built in code (SFTTrainer needs a processing_class)."""
    vocab = {"<pad>": PAD, "<eos>": EOS, "<unk>": UNK, **{f"t{i}": i for i in range(3, VOCAB)}}
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def _model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=VOCAB,
        max_position_embeddings=128,
        pad_token_id=PAD,
        eos_token_id=EOS,
        bos_token_id=EOS,
    )
    model = LlamaForCausalLM(cfg).float()
    model.set_attn_implementation(NAME)
    return model


def _dataset() -> Dataset:
    g = torch.Generator().manual_seed(1)
    docs = [torch.randint(3, VOCAB, (n,), generator=g).tolist() for n in DOC_LENS]
    return Dataset.from_dict({"input_ids": docs})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``(trainer, train_output, batch)``: 3 steps of packed SFT, then the first batch of TRL's dataloader."""
    args = SFTConfig(
        output_dir=str(tmp_path_factory.mktemp("sft")),
        packing=True,
        packing_strategy="bfd",  # BFD packing implies padding_free=True in SFTTrainer
        max_length=MAX_LENGTH,
        per_device_train_batch_size=2,
        max_steps=3,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        # SFTConfig defaults to bf16=True (CPU autocast); this test is about exact float32 equality.
        bf16=False,
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = SFTTrainer(model=_model(), args=args, train_dataset=_dataset(), processing_class=_tokenizer())
    assert trainer.padding_free
    output = trainer.train()
    batch = next(iter(trainer.get_train_dataloader()))
    return trainer, output, {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _documents(position_ids: torch.Tensor) -> list[tuple[int, int]]:
    """``[start, end)`` of every document of a padding-free row: documents start where ``position_ids == 0``."""
    starts = (position_ids == 0).nonzero().flatten().tolist()
    return list(zip(starts, [*starts[1:], position_ids.numel()], strict=True))


def test_sft_packing_trains_with_colmask(trained):
    trainer, output, _ = trained
    model = trainer.model
    assert model.config._attn_implementation == NAME
    assert output.global_step == 3
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 3
    assert all(math.isfinite(x) for x in losses), losses
    assert math.isfinite(output.training_loss)


def test_packed_documents_are_isolated(trained):
    trainer, _, batch = trained
    model = trainer.model.eval()
    # Padding-free: the packed rows of the batch are concatenated into one row, no attention_mask.
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
    ids, pos = batch["input_ids"][0], batch["position_ids"][0]
    docs = _documents(pos)
    # The batch holds 2 TRL-packed rows of up to MAX_LENGTH tokens each; each row must hold several documents,
    # otherwise the check below would not test packing at all.
    assert len(docs) >= 4 and ids.numel() > MAX_LENGTH, docs
    for s, e in docs:
        assert torch.equal(pos[s:e], torch.arange(e - s)), "TRL's position_ids must count 0.. inside each document"

    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        model.set_attn_implementation(NAME)
        packed = model(**inputs).logits[0]
        # Sensitivity check: the same tokens as one plain causal sequence (no document structure) differ.
        plain = model(batch["input_ids"]).logits[0]
        model.set_attn_implementation("sdpa")
        alone = [model(ids[None, s:e]).logits[0] for s, e in docs]
        model.set_attn_implementation(NAME)
    for (s, e), ref in zip(docs, alone, strict=True):
        torch.testing.assert_close(packed[s:e], ref, atol=1e-4, rtol=0)
    s, e = docs[1]
    assert (plain[s:e] - alone[1]).abs().max() > 1e-2


def test_packed_loss_equals_unpacked_loss(trained):
    """The causal-LM loss of TRL's packed batch (colmask) equals that of the same documents padded (sdpa).

    Label handling at document boundaries: transformers shifts labels inside the model (logits at ``t`` are scored
    against ``labels[t + 1]``). In a packed row the label after the last token of document ``d`` is the first token
    of document ``d + 1``, a prediction across the boundary; TRL's padding-free collator sets ``labels`` to -100
    wherever ``position_ids == 0`` (the first token of every document), which drops exactly that term. Alone, a
    document's first token is never a target either (nothing precedes it). So both losses average the same
    ``sum(len(doc) - 1)`` terms: tokens 1 .. n-1 of every document, each predicted from the same prefix.
    """
    trainer, _, batch = trained
    model = trainer.model.eval()
    ids, pos, labels = batch["input_ids"][0], batch["position_ids"][0], batch["labels"][0]
    docs = _documents(pos)
    for s, _ in docs:
        assert labels[s] == -100
    n_terms = int((labels[1:] != -100).sum())
    assert n_terms == sum(e - s - 1 for s, e in docs)

    lens = [e - s for s, e in docs]
    width = max(lens)
    padded = torch.full((len(docs), width), PAD, dtype=torch.long)
    padded_labels = torch.full((len(docs), width), -100, dtype=torch.long)
    attention_mask = torch.zeros((len(docs), width), dtype=torch.long)
    for i, (s, e) in enumerate(docs):
        padded[i, : e - s] = ids[s:e]
        padded_labels[i, : e - s] = ids[s:e]  # labels = input_ids; the model shifts, so token 0 is never a target
        attention_mask[i, : e - s] = 1

    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        model.set_attn_implementation(NAME)
        packed_loss = model(**inputs, labels=batch["labels"]).loss
        model.set_attn_implementation("sdpa")
        unpacked_loss = model(padded, attention_mask=attention_mask, labels=padded_labels).loss
        model.set_attn_implementation(NAME)
    assert torch.isfinite(packed_loss)
    torch.testing.assert_close(packed_loss, unpacked_loss, atol=1e-5, rtol=0)
