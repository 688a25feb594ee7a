"""End-to-end training benchmark (``flashmask bench --e2e``): a Llama-style model trained on packed rows.

Three parts, each one row of ``S`` tokens per optimizer step (batch 1), gradient checkpointing on, AdamW:

* ``sft``: causal-document packing (:func:`flashmask.packing.pack_sft`) of documents whose lengths follow a
  lognormal distribution (median ~600 tokens, long tail, clipped to ``[16, S]``). Attention backends:
  ``colmask`` (ours, the packing's :class:`~flashmask.ColumnMask` given as ``startend_row_indices=``),
  ``flex_attention`` (transformers' own FlexAttention backend: the packed ``position_ids`` are passed without
  an attention mask, so transformers detects the documents and runs ``create_block_mask`` in every forward,
  as in padding-free training; that build is inside the step time) and ``sdpa`` (a dense ``[1, 1, S, S]``
  bool mask built in every step from the packing, passed as the 4-D ``attention_mask``).
* ``dpo``: pairs with prompt:answer length 2:1; shared-prompt packing (:func:`flashmask.packing.pack_shared_prompt`,
  ``[prompt | chosen | rejected]``) against the duplicated-prompt baseline (``prompt+chosen`` and
  ``prompt+rejected`` as two documents of a causal-document packing), both on ``colmask``. The DPO loss uses
  :func:`flashmask.packing.completion_logps_sum` for the policy and a reference; the reference is the same
  model under ``torch.no_grad()`` (same cost as a frozen copy, one model less in memory; its DPO loss is
  therefore log 2 at every step, so the agreement check compares the policy's per-token log-probability).
* ``lora``: PEFT LoRA (r=16 on q/k/v/o) SFT at 16K, ``colmask`` against ``flex_attention``.

The step function (:func:`train_step`) is device- and dtype-agnostic; the CPU tests run it in float32.
Everything above the step (plans, samplers) runs without a GPU.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .plan import GiB, dense_mask_bytes, dense_skip_reason, fmt_bytes

E2E_PARTS = ("sft", "dpo", "lora")
E2E_BACKENDS = ("colmask", "flex_attention", "sdpa")
DPO_LAYOUTS = ("shared_prompt", "duplicated_prompt")
DPO_MAX_SEQLEN = 16384  # DPO runs at the requested lengths up to this (8K, 16K)
LORA_SEQLEN = 16384  # LoRA runs only at this length
LORA_BACKENDS = ("colmask", "flex_attention")

Log = Callable[[str], None]

METHOD = {
    "e2e_model": "Llama-style LlamaForCausalLM from a config (random init, seeded, no download), bf16 weights and "
    "AdamW states (pure bf16 training, no fp32 master copy), gradient checkpointing (use_reentrant=False)",
    "e2e_timing": "wall clock between torch.cuda.synchronize() calls around one whole step (host-to-device copy "
    "of the packed row, mask preparation, forward, backward, optimizer step); rate = real tokens (or pairs) in "
    "the steps after the warm-up / their summed seconds; DPO: both layouts pack the same pool of pairs",
    "e2e_peak": "torch.cuda.max_memory_allocated over the steps (weights, gradients and optimizer states included)",
    "e2e_flex": "transformers' flex_attention backend; packed position_ids and no attention_mask, so transformers "
    "builds the BlockMask (create_block_mask, compiled) from the documents in every forward",
    "e2e_sdpa": "transformers' sdpa backend with a dense [1, 1, S, S] bool attention_mask built in every step",
    "e2e_loss_check": "same init weights and same data per step for every backend; relative difference of the "
    "first (warm-up) steps' loss (SFT, LoRA) or mean per-token policy log-probability (DPO) against the first "
    "backend / layout, flagged above the tolerance",
    "e2e_dpo_reference": "the reference log-probabilities come from the policy itself under torch.no_grad() "
    "(timing stand-in for a frozen reference model)",
}


# ------------------------------------------------------------------------------------------- options
@dataclass
class E2EOptions:
    """What ``flashmask bench --e2e`` measures (recorded in the JSON)."""

    seqlens: tuple[int, ...] = (8192, 16384, 32768)
    backends: tuple[str, ...] = E2E_BACKENDS
    parts: tuple[str, ...] = E2E_PARTS
    steps: int = 6
    warmup: int = 2
    layers: int = 16
    hidden: int = 2048
    heads: int = 32
    kv_heads: int = 8
    intermediate: int = 5632
    vocab: int = 32000
    doc_median: float = 600.0
    doc_sigma: float = 1.0  # lognormal shape: mean ~1.65 x median, 99th percentile ~10x median
    doc_min: int = 16
    lr: float = 1e-5
    dpo_beta: float = 0.1
    lora_r: int = 16
    dense_limit_gib: float = 4.0
    loss_rtol: float = 2e-2
    seed: int = 0

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def model_config(self) -> dict:
        return dict(
            hidden_size=self.hidden,
            intermediate_size=self.intermediate,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            num_key_value_heads=self.kv_heads,
            vocab_size=self.vocab,
            max_position_embeddings=max(self.seqlens),
            rope_theta=500000.0,
            attention_dropout=0.0,
            tie_word_embeddings=False,
        )

    def num_params(self) -> int:
        h, kv = self.hidden, self.hidden // self.heads * self.kv_heads
        layer = 2 * h * h + 2 * h * kv + 3 * h * self.intermediate + 2 * h
        return self.layers * layer + 2 * self.vocab * h + h


def check_options(opts: E2EOptions) -> str | None:
    """A usage error message, or ``None``."""
    if opts.steps < 1 or opts.warmup < 0 or opts.steps <= opts.warmup:
        return f"--e2e-steps ({opts.steps}) must be larger than the warm-up steps ({opts.warmup})"
    if opts.layers < 1:
        return "--e2e-layers must be at least 1"
    for s in opts.seqlens:
        if s < 2 * opts.doc_min or s % 128:
            return f"--e2e-seqlens {s}: lengths must be multiples of 128 and at least {2 * opts.doc_min}"
    if opts.hidden % opts.heads or opts.heads % opts.kv_heads:
        return "heads must divide the hidden size and KV heads the heads"
    return None


# ------------------------------------------------------------------------------------------- data
def sample_doc_lengths(
    n: int,
    max_len: int,
    *,
    median: float = 600.0,
    sigma: float = 1.0,
    min_len: int = 16,
    generator: torch.Generator | None = None,
) -> list[int]:
    """``n`` document lengths from a lognormal distribution with the given median (``exp(mu)``) and shape
    ``sigma``, rounded and clipped to ``[min_len, max_len]``."""
    if n <= 0:
        return []
    z = torch.randn(n, generator=generator, dtype=torch.float64)
    lens = torch.exp(math.log(median) + sigma * z).round().clamp(min_len, max_len)
    return [int(x) for x in lens.tolist()]


def _tokens(n: int, vocab: int, g: torch.Generator) -> list[int]:
    return torch.randint(1, vocab, (n,), generator=g).tolist()


def sft_rows(opts: E2EOptions, seqlen: int, num_rows: int) -> list:
    """``num_rows`` single-row :class:`~flashmask.packing.PackedBatch` es: a pool of documents is packed
    best-fit into rows of ``seqlen`` (as a packing data loader does) and the fullest rows are kept."""
    from ..packing import best_fit_decreasing, pack_sft

    g = torch.Generator().manual_seed(opts.seed * 7919 + seqlen)
    expected = opts.doc_median * math.exp(opts.doc_sigma**2 / 2)
    n = max(8, int(1.5 * num_rows * seqlen / expected) + 8)
    lens = sample_doc_lengths(
        n, seqlen, median=opts.doc_median, sigma=opts.doc_sigma, min_len=opts.doc_min, generator=g
    )
    bins = best_fit_decreasing(lens, seqlen)
    # Rows a packing loader would emit: well filled ones (the last bins of best-fit are leftovers), in a seeded
    # random order so that rows of big and of small documents are both represented.
    full = [b for b in bins if sum(lens[i] for i in b) >= 0.9 * seqlen]
    pick = full if len(full) >= num_rows else sorted(bins, key=lambda b: -sum(lens[i] for i in b))
    order = torch.randperm(len(pick), generator=g).tolist()
    out = []
    for members in [pick[i] for i in order[:num_rows]]:
        docs = [_tokens(lens[i], opts.vocab, g) for i in members]
        out.append(pack_sft(docs, seqlen))
    while len(out) < num_rows:  # tiny pools only: repeat
        out.append(out[len(out) % max(1, len(out))])
    return out


@dataclass
class DpoStep:
    """One DPO step's row in one layout, with the pairs it holds."""

    layout: str
    pairs: int
    batch: Any  # SharedPromptBatch, or PackedBatch for the duplicated layout
    index: dict  # completion index tensors for completion_logps_sum (chosen, rejected alternating)


def sample_pairs(opts: E2EOptions, seqlen: int, n: int, g: torch.Generator) -> list[tuple[list[int], list, list]]:
    """``n`` (prompt, chosen, rejected) token lists; prompt+answer length from the document distribution,
    split 2:1; both answers of a pair have the same length; the duplicated layout must fit a row."""
    lens = sample_doc_lengths(
        n, seqlen // 2, median=opts.doc_median, sigma=opts.doc_sigma, min_len=opts.doc_min, generator=g
    )
    out = []
    for total in lens:
        p = max(1, round(2 * total / 3))
        a = max(1, total - p)
        out.append((_tokens(p, opts.vocab, g), _tokens(a, opts.vocab, g), _tokens(a, opts.vocab, g)))
    return out


def _duplicated_index(packed, pairs: list) -> dict:
    """Completion index tensors (as :func:`pack_shared_prompt` makes them) for the duplicated layout: document
    ``2i`` is prompt+chosen, ``2i+1`` prompt+rejected; the answer token at ``t`` is scored by logits at ``t-1``."""
    comps = []
    for i, (prompt, chosen, rejected) in enumerate(pairs):
        for d, ans in ((2 * i, chosen), (2 * i + 1, rejected)):
            start = packed.offset_of[d] + len(prompt)
            comps.append((packed.row_of[d], start, ans))
    width = max(len(c[2]) for c in comps)
    index = torch.zeros(len(comps), width, dtype=torch.int64)
    targets = torch.zeros(len(comps), width, dtype=torch.int64)
    cmask = torch.zeros(len(comps), width, dtype=torch.bool)
    for c, (_, start, ans) in enumerate(comps):
        n = len(ans)
        index[c, :n] = torch.arange(start - 1, start + n - 1)
        targets[c, :n] = torch.tensor(ans)
        cmask[c, :n] = True
    return dict(
        completion_row=torch.tensor([c[0] for c in comps], dtype=torch.int64),
        completion_index=index,
        completion_targets=targets,
        completion_mask=cmask,
        completion_lens=torch.tensor([len(c[2]) for c in comps], dtype=torch.int64),
    )


def _shared_index(batch) -> dict:
    keys = ("completion_row", "completion_index", "completion_targets", "completion_mask", "completion_lens")
    return {k: getattr(batch, k) for k in keys}


def _dpo_row(layout: str, pairs: list, seqlen: int) -> DpoStep:
    from ..packing import pack_sft, pack_shared_prompt

    if layout == "shared_prompt":
        batch = pack_shared_prompt([(p, [c, r]) for p, c, r in pairs], seqlen)
        return DpoStep(layout, len(pairs), batch, _shared_index(batch))
    docs = [doc for p, c, r in pairs for doc in (p + c, p + r)]
    batch = pack_sft(docs, seqlen)
    return DpoStep(layout, len(pairs), batch, _duplicated_index(batch, pairs))


def dpo_rows(opts: E2EOptions, seqlen: int) -> dict[str, list[DpoStep]]:
    """Per layout, the warm-up steps and then the timed steps, one packed row each.

    Both layouts pack the *same* pairs: the warm-up rows hold the same pairs in both, and the timed rows hold
    one pool of pairs, sized so that the duplicated layout needs about ``opts.steps - opts.warmup`` rows, packed
    best-fit by each layout (the shared-prompt layout needs fewer rows for it). Pairs/s is then the pool over
    the time of all its rows: the gain of the layout, not of a luckier choice of rows."""
    from ..packing import best_fit_decreasing

    g = torch.Generator().manual_seed(opts.seed * 104729 + seqlen)

    def dup_len(pair) -> int:
        prompt, chosen, _ = pair
        return 2 * (len(prompt) + len(chosen))

    def fill(tokens: float) -> list:
        pool: list = []
        total = 0
        while total < tokens:
            pool += sample_pairs(opts, seqlen, 1, g)
            total += dup_len(pool[-1])
        return pool

    def rows(pool: list, layout: str) -> list[list]:
        if layout == "shared_prompt":
            lens = [len(p) + len(c) + len(r) for p, c, r in pool]
        else:
            lens = [dup_len(x) for x in pool]
        bins = sorted(best_fit_decreasing(lens, seqlen), key=lambda b: -sum(lens[i] for i in b))
        return [[pool[i] for i in b] for b in bins]

    warm = rows(fill(opts.warmup * seqlen * 0.9), "duplicated_prompt")[: opts.warmup] if opts.warmup else []
    pool = fill((opts.steps - opts.warmup) * seqlen * 0.95)
    return {layout: [_dpo_row(layout, pairs, seqlen) for pairs in warm + rows(pool, layout)] for layout in DPO_LAYOUTS}


# ------------------------------------------------------------------------------------------- plan
@dataclass
class E2ECase:
    part: str
    seqlen: int
    backend: str  # attention backend, or the DPO layout (both on colmask)
    skip: str | None = None
    est_bytes: int = 0
    extra: dict = field(default_factory=dict)


def estimate_bytes(opts: E2EOptions, seqlen: int, backend: str, lora: bool = False) -> int:
    """Rough peak: bf16 weights, gradients and AdamW states (8 B per trained parameter), checkpointed layer
    inputs, one layer's recomputed activations, float32 logits for the loss and the dense mask for sdpa."""
    p = opts.num_params()
    trained = (opts.layers * 4 * opts.lora_r * 2 * opts.hidden) if lora else p
    state = 2 * p + 6 * trained
    act = opts.layers * seqlen * opts.hidden * 2 + seqlen * (12 * opts.hidden + 8 * opts.intermediate) * 2
    logits = seqlen * opts.vocab * (2 + 4 + 4)
    extra = 3 * dense_mask_bytes(1, seqlen) if backend == "sdpa" else 0
    return state + act + logits + extra


def e2e_cases(opts: E2EOptions, flex_missing: str | None = None) -> list[E2ECase]:
    cases = []
    if "sft" in opts.parts:
        for s in opts.seqlens:
            for b in opts.backends:
                skip = None
                if b == "flex_attention":
                    skip = flex_missing
                elif b == "sdpa":
                    skip = dense_skip_reason(1, s, opts.dense_limit_gib)
                cases.append(E2ECase("sft", s, b, skip, estimate_bytes(opts, s, b)))
    if "dpo" in opts.parts:
        for s in opts.seqlens:
            if s <= DPO_MAX_SEQLEN:
                for layout in DPO_LAYOUTS:
                    cases.append(E2ECase("dpo", s, layout, None, estimate_bytes(opts, s, "colmask")))
    if "lora" in opts.parts and LORA_SEQLEN in opts.seqlens:
        for b in opts.backends:
            if b in LORA_BACKENDS:
                skip = flex_missing if b == "flex_attention" else None
                cases.append(E2ECase("lora", LORA_SEQLEN, b, skip, estimate_bytes(opts, LORA_SEQLEN, b, lora=True)))
    return cases


def describe_e2e(opts: E2EOptions, flex_missing: str | None = None) -> str:
    p = opts.num_params()
    lines = [
        f"[e2e] Llama-style model, {p / 1e9:.2f}B parameters: {opts.layers} layers, hidden {opts.hidden}, "
        f"{opts.heads} heads / {opts.kv_heads} KV heads, intermediate {opts.intermediate}, vocab {opts.vocab}; "
        f"bf16, gradient checkpointing, AdamW lr {opts.lr:g}; batch 1 (one packed row per step); "
        f"{opts.steps} steps, {opts.warmup} warm-up",
        f"  documents: lognormal, median {opts.doc_median:g} tokens, sigma {opts.doc_sigma:g}, clipped to "
        f"[{opts.doc_min}, S]; DPO prompt:answer 2:1, reference = policy under no_grad",
    ]
    cases = e2e_cases(opts, flex_missing)
    lines.append(f"  {'part':5s} {'S':>6}  {'backend / layout':18s} {'est. GPU mem':>12}  status")
    for c in cases:
        lines.append(
            f"  {c.part:5s} {c.seqlen:>6}  {c.backend:18s} {fmt_bytes(c.est_bytes):>12}  "
            + ("runs" if c.skip is None else f"skip: {c.skip}")
        )
    if "dpo" in opts.parts and not any(s <= DPO_MAX_SEQLEN for s in opts.seqlens):
        lines.append(f"  dpo: no requested length up to {DPO_MAX_SEQLEN} (DPO runs at 8K and 16K)")
    if "lora" in opts.parts and LORA_SEQLEN not in opts.seqlens:
        lines.append(f"  lora: runs only at {LORA_SEQLEN} (not among --e2e-seqlens)")
    lines.append(f"  {len(cases)} e2e cases")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- model
def build_model(opts: E2EOptions, device, dtype):
    """A freshly initialised (seeded) model on ``device``; gradient checkpointing on; train mode."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(opts.seed)
    config = LlamaConfig(**opts.model_config())
    with torch.device(device):
        model = LlamaForCausalLM(config)
    return model.to(dtype)


def prepare_model(model, backend: str, *, checkpointing: bool = True, lora_r: int | None = None):
    """Switch the attention backend, enable checkpointing and (optionally) wrap with PEFT LoRA."""
    if backend == "colmask":
        from ..integrations.transformers import register

        register()
    model.set_attn_implementation(backend)
    model.config.use_cache = False
    if checkpointing:
        with warnings.catch_warnings():  # renamed activation_checkpointing_enable in newer transformers
            warnings.simplefilter("ignore", FutureWarning)
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if lora_r:
        from peft import LoraConfig, get_peft_model

        cfg = LoraConfig(
            r=lora_r,
            lora_alpha=2 * lora_r,
            lora_dropout=0.0,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, cfg)
    model.train()
    return model


def make_optimizer(model, lr: float, device) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if torch.device(device).type == "cuda":
        try:
            return torch.optim.AdamW(params, lr=lr, fused=True)
        except (RuntimeError, TypeError, ValueError):
            pass
    return torch.optim.AdamW(params, lr=lr)


# ------------------------------------------------------------------------------------------- steps
def model_inputs(batch, backend: str, device) -> dict:
    """Model keyword arguments for a packed row on ``backend`` (tensors moved to ``device``)."""
    kw: dict[str, Any] = {
        "input_ids": batch.input_ids.to(device, non_blocking=True),
        "position_ids": batch.position_ids.to(device, non_blocking=True),
    }
    if backend == "colmask":
        kw["startend_row_indices"] = batch.mask.to(device)
    elif backend == "sdpa":
        kw["attention_mask"] = batch.mask.to(device).to_dense()  # [R, 1, S, S] bool, True = attend
    elif backend == "flex_attention":
        # No attention_mask: transformers finds the documents in position_ids and builds the BlockMask.
        if getattr(batch, "layout", None) is not None:
            raise ValueError("flex_attention in this benchmark takes causal-document packing only")
    else:
        raise ValueError(f"unknown backend {backend!r}")
    return kw


def train_step(model, optimizer, batch, backend: str, device=None) -> float:
    """One SFT optimizer step on a packed row (:class:`~flashmask.packing.PackedBatch`): mean next-token
    loss over the labelled tokens, backward, optimizer step. Returns the loss."""
    device = device if device is not None else next(model.parameters()).device
    kw = model_inputs(batch, backend, device)
    kw["labels"] = batch.labels.to(device, non_blocking=True)
    out = model(**kw)
    out.loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(out.loss.detach())


def dpo_step(model, optimizer, step: DpoStep, beta: float, device=None) -> tuple[float, float]:
    """One DPO optimizer step on ``colmask``: reference log-probabilities from the same model under
    ``no_grad``, then the policy forward, loss, backward, step. Returns (loss, mean per-token policy logp)."""
    from ..packing import completion_logps_sum

    device = device if device is not None else next(model.parameters()).device
    kw = model_inputs(step.batch, "colmask", device)
    index = {k: v.to(device, non_blocking=True) for k, v in step.index.items()}
    with torch.no_grad():
        ref = completion_logps_sum(model(**kw).logits, index)
    policy = completion_logps_sum(model(**kw).logits, index)
    margin = (policy[0::2] - ref[0::2]) - (policy[1::2] - ref[1::2])
    loss = -torch.nn.functional.logsigmoid(beta * margin).mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    per_token = float((policy.detach() / index["completion_lens"].clamp_min(1)).mean())
    return float(loss.detach()), per_token


# ------------------------------------------------------------------------------------------- runner
def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device) -> tuple[float, Any]:
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


def _record(case: E2ECase, opts: E2EOptions, times: list[float], units: list[float], unit: str) -> dict:
    timed = list(zip(times, units, strict=True))[opts.warmup :]
    seconds = sum(t for t, _ in timed)
    return dict(
        part=case.part,
        seqlen=case.seqlen,
        backend=case.backend,
        status="ok",
        unit=unit,
        rate=sum(u for _, u in timed) / seconds if timed and seconds > 0 else None,
        step_ms=statistics.median(t * 1e3 for t, _ in timed) if timed else None,
        step_times_ms=[t * 1e3 for t in times],
        units_per_step=units,
        warmup=opts.warmup,
    )


def run_case(case: E2ECase, opts: E2EOptions, state: dict, rows, device, dtype, log: Log = print) -> dict:
    """Train ``opts.steps`` steps of one case from the initial weights ``state`` on ``rows`` (the SFT rows, or
    for DPO the per-layout steps of :func:`dpo_rows`)."""
    from .peers import free_memory, reset_dynamo

    if case.backend == "flex_attention":
        reset_dynamo()
    model = build_model(opts, device, dtype)
    model.load_state_dict(state)
    backend = case.backend if case.part != "dpo" else "colmask"
    model = prepare_model(model, backend, lora_r=opts.lora_r if case.part == "lora" else None)
    opt = make_optimizer(model, opts.lr, device)
    if torch.device(device).type == "cuda":
        free_memory(torch.device(device))
        torch.cuda.reset_peak_memory_stats(device)
    times, units, losses, checks = [], [], [], []
    if case.part == "dpo":
        for st in rows[case.backend]:
            seconds, (loss, logp) = _timed(
                lambda st=st, m=model, o=opt: dpo_step(m, o, st, opts.dpo_beta, device), device
            )
            times.append(seconds)
            units.append(st.pairs)
            losses.append(loss)
            checks.append(logp)
        rec = _record(case, opts, times, units, "pairs/s")
        rec["check_name"] = "policy logp per token"
    else:
        for row in rows:
            seconds, loss = _timed(lambda row=row, m=model, o=opt: train_step(m, o, row, backend, device), device)
            times.append(seconds)
            units.append(int(sum(row.seq_lens)))
            losses.append(loss)
            checks.append(loss)
        rec = _record(case, opts, times, units, "tokens/s")
        rec["check_name"] = "loss"
    rec["losses"] = losses
    rec["check_values"] = checks[: max(1, opts.warmup)]
    if torch.device(device).type == "cuda":
        rec["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / GiB
    rec["trainable_params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log(
        f"    {case.part} S={case.seqlen} {case.backend}: {rec['rate']:.1f} {rec['unit']}, "
        f"step {rec['step_ms']:.0f} ms, peak {rec.get('peak_mem_gib') or 0:.1f} GiB, losses "
        + ", ".join(f"{x:.4f}" for x in losses)
    )
    del model, opt
    free_memory(torch.device(device))
    return rec


def compare_losses(rows: list[dict], rtol: float) -> None:
    """Attach ``check`` to every row: relative difference of its check values against the first ok row of the
    same (part, seqlen)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get("status") == "ok" and r.get("check_values"):
            groups.setdefault((r["part"], r["seqlen"]), []).append(r)
    for group in groups.values():
        ref = group[0]
        for r in group[1:]:
            diffs = [
                abs(a - b) / max(abs(b), 1e-12) for a, b in zip(r["check_values"], ref["check_values"], strict=False)
            ]
            worst = max(diffs) if diffs else None
            r["check"] = dict(vs=ref["backend"], max_rel_diff=worst, rtol=rtol, ok=worst is not None and worst <= rtol)


def run_e2e(opts: E2EOptions, data: dict, save: Callable[[], None], log: Log = print, device="cuda") -> None:
    """Run every e2e case into ``data["e2e"]`` (saved after each case)."""
    from .peers import flex_missing_reason, is_oom, short_error

    device = torch.device(device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    flex_missing = flex_missing_reason() if "flex_attention" in opts.backends else None
    cases = e2e_cases(opts, flex_missing)
    data.setdefault("e2e", [])
    data.setdefault("notes", [])
    for k, v in METHOD.items():
        for run in data.get("runs") or []:
            run.setdefault("method", {})[k] = v
    log(describe_e2e(opts, flex_missing))
    base = build_model(opts, device, dtype)
    state: dict = {k: v.detach().to("cpu", copy=True) for k, v in base.state_dict().items()}
    del base
    rows_by_key: dict[tuple, Any] = {}
    for i, case in enumerate(cases):
        log(f"[e2e {i + 1}/{len(cases)}] {case.part} S={case.seqlen} {case.backend}")
        if case.skip is not None:
            data["e2e"].append(dict(part=case.part, seqlen=case.seqlen, backend=case.backend, status="skipped",
                                    reason=case.skip))  # fmt: skip
            save()
            continue
        key = (case.part if case.part == "dpo" else "sft", case.seqlen)
        if key not in rows_by_key:
            is_dpo = case.part == "dpo"
            rows_by_key[key] = dpo_rows(opts, case.seqlen) if is_dpo else sft_rows(opts, case.seqlen, opts.steps)
        try:
            rec = run_case(case, opts, state, rows_by_key[key], device, dtype, log)
        except Exception as exc:  # record and go on
            rec = dict(part=case.part, seqlen=case.seqlen, backend=case.backend,
                       status="oom" if is_oom(exc) else "error", reason=short_error(exc))  # fmt: skip
            log(f"    {rec['status']}: {rec['reason']}")
            if device.type == "cuda":
                torch.cuda.empty_cache()
        data["e2e"].append(rec)
        compare_losses(data["e2e"], opts.loss_rtol)
        save()
    for r in data["e2e"]:
        chk = r.get("check")
        if chk and not chk["ok"]:
            text = (
                f"e2e {r['part']} S={r['seqlen']}: {r['backend']} {r.get('check_name', 'loss')} differs from "
                f"{chk['vs']} by {chk['max_rel_diff']:.3g} (relative) in the first steps, above {chk['rtol']:g}"
            )
            if text not in data["notes"]:
                data["notes"].append(text)
    save()
