"""DPO loss with shared-prompt packing (FlashMask ``colmask`` backend) against the usual duplicated-prompt way.

Runs on the CPU in a few seconds with a tiny random Llama (no downloads)::

    PYTHONPATH=src python3 examples/dpo_shared_prompt.py

(a) Shared prompt: every sample is laid out once as ``[prompt | chosen | rejected]``
    (:func:`flashmask.packing.pack_shared_prompt`); the share-question mask lets each answer see its prompt and
    itself only, and the answers' position ids continue from the prompt. Answer log-probs come from
    :func:`flashmask.packing.completion_logps_sum`.
(b) Duplicated prompt: ``prompt + chosen`` and ``prompt + rejected`` as separate right-padded sequences, plain
    causal attention (sdpa), answer log-probs summed from the logits.

Both give the same policy and reference log-probs, hence the same DPO loss; (a) encodes each prompt once.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from flashmask import packing
from flashmask.integrations.transformers import register

VOCAB = 128
PAD = 0
BETA = 0.1


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    """A 2-layer random Llama in float32 (GQA: 4 query heads, 2 key/value heads)."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=VOCAB,
        max_position_embeddings=256,
        pad_token_id=PAD,
    )
    return LlamaForCausalLM(cfg).float().eval()


def make_samples(seed: int = 1) -> list[tuple[list[int], list[int], list[int]]]:
    """``(prompt, chosen, rejected)`` token lists of different lengths (long prompts, as in chat data)."""
    g = torch.Generator().manual_seed(seed)

    def toks(n: int) -> list[int]:
        return torch.randint(1, VOCAB, (n,), generator=g).tolist()

    lengths = [(24, 6, 9), (40, 12, 5), (17, 8, 8), (31, 3, 14)]
    return [(toks(p), toks(c), toks(r)) for p, c, r in lengths]


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float = BETA) -> torch.Tensor:
    """Sigmoid DPO loss, averaged over the samples."""
    logits = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)
    return -F.logsigmoid(beta * logits).mean()


def shared_prompt_logps(model, samples, seqlen: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, int]]:
    """(a): chosen and rejected log-probs ``[N]`` each from one shared-prompt packed batch."""
    batch = packing.pack_shared_prompt([(p, [c, r]) for p, c, r in samples], seqlen, pad_token_id=PAD)
    model.set_attn_implementation("colmask")
    logits = model(batch.input_ids, position_ids=batch.position_ids, startend_row_indices=batch.mask).logits
    logps = packing.completion_logps_sum(logits, batch)  # [2N]: chosen at even, rejected at odd indices
    real = sum(len(p) + len(c) + len(r) for p, c, r in samples)
    return logps[0::2], logps[1::2], {"real": real, "with_padding": batch.input_ids.numel()}


def duplicated_prompt_logps(model, samples) -> tuple[torch.Tensor, torch.Tensor, dict[str, int]]:
    """(b): chosen and rejected log-probs ``[N]`` each from ``prompt + answer`` sequences, padded, sdpa."""
    seqs = [(p, a) for p, c, r in samples for a in (c, r)]  # chosen, rejected, chosen, rejected, ...
    width = max(len(p) + len(a) for p, a in seqs)
    ids = torch.full((len(seqs), width), PAD, dtype=torch.long)
    attention_mask = torch.zeros_like(ids)
    for i, (p, a) in enumerate(seqs):
        ids[i, : len(p) + len(a)] = torch.tensor(p + a)
        attention_mask[i, : len(p) + len(a)] = 1
    model.set_attn_implementation("sdpa")
    logits = model(ids, attention_mask=attention_mask).logits.float()
    logps = []
    for i, (p, a) in enumerate(seqs):
        # Answer token t (at position len(p) + t) is predicted by the logits one position earlier.
        pred = logits[i, len(p) - 1 : len(p) + len(a) - 1].log_softmax(-1)
        logps.append(pred.gather(-1, torch.tensor(a)[:, None]).sum())
    logps = torch.stack(logps)
    real = sum(2 * len(p) + len(c) + len(r) for p, c, r in samples)
    return logps[0::2], logps[1::2], {"real": real, "with_padding": ids.numel()}


def main() -> dict[str, float]:
    register()  # attention backend "colmask"
    policy = tiny_llama()
    # The frozen reference: a copy of the policy. Perturb the policy so that the log-ratios are not all zero
    # (as after some training; with policy == reference every DPO loss is log 2).
    reference = copy.deepcopy(policy).requires_grad_(False)
    with torch.no_grad():
        g = torch.Generator().manual_seed(2)
        for param in policy.parameters():
            param.add_(0.02 * torch.randn(param.shape, generator=g))

    samples = make_samples()
    seqlen = 64  # rows of 64 tokens; every sample (prompt + chosen + rejected) fits in one row

    pc_a, pr_a, tokens_a = shared_prompt_logps(policy, samples, seqlen)
    with torch.no_grad():
        rc_a, rr_a, _ = shared_prompt_logps(reference, samples, seqlen)
    loss_a = dpo_loss(pc_a, pr_a, rc_a, rr_a)
    loss_a.backward()  # the shared-prompt path is differentiable like the usual one

    with torch.no_grad():
        pc_b, pr_b, tokens_b = duplicated_prompt_logps(policy, samples)
        rc_b, rr_b, _ = duplicated_prompt_logps(reference, samples)
        loss_b = dpo_loss(pc_b, pr_b, rc_b, rr_b)

    print(
        f"(a) shared prompt (colmask):     DPO loss {loss_a.item():.8f}   tokens per model: "
        f"{tokens_a['real']} ({tokens_a['with_padding']} with padding)"
    )
    print(
        f"(b) duplicated prompt (sdpa):    DPO loss {loss_b.item():.8f}   tokens per model: "
        f"{tokens_b['real']} ({tokens_b['with_padding']} with padding)"
    )
    print(
        f"max |chosen/rejected log-prob difference|: "
        f"{max((x - y).abs().max().item() for x, y in ((pc_a, pc_b), (pr_a, pr_b), (rc_a, rc_b), (rr_a, rr_b))):.2e}"
    )
    torch.testing.assert_close(pc_a.detach(), pc_b, atol=1e-4, rtol=0)
    torch.testing.assert_close(pr_a.detach(), pr_b, atol=1e-4, rtol=0)
    assert abs(loss_a.item() - loss_b.item()) <= 1e-5, (loss_a.item(), loss_b.item())
    return {
        "loss_shared": loss_a.item(),
        "loss_duplicated": loss_b.item(),
        "tokens_shared": tokens_a["real"],
        "tokens_shared_padded": tokens_a["with_padding"],
        "tokens_duplicated": tokens_b["real"],
        "tokens_duplicated_padded": tokens_b["with_padding"],
    }


if __name__ == "__main__":
    main()
