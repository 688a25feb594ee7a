"""The paper's benchmark masks (SPEC section 2), scaled from 8K, with random documents per batch row.

Every generator is seeded so that peers and repeated runs see the same masks. Each returns a
``ColumnMask`` and a FlexAttention-style ``mask_mod`` written from the mask's natural definition (document
ids, windows, prefixes), the way a FlexAttention user would write it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .. import masks
from .._column_mask import ColumnMask

MASK_TYPES = (
    "full",
    "causal",
    "sliding_window",
    "causal_document",
    "document",
    "share_question",
    "global_sliding_window",
    "causal_blockwise",
    "prefix_lm_document",
    "prefix_lm_causal",
    "qk_sparse",
    "random_eviction",
)

# Documents per sample in the paper's kernel benchmark.
_DOC_COUNTS = {8192: (3, 7), 32768: (10, 14), 131072: (11, 15)}


@dataclass
class Workload:
    name: str
    mask: ColumnMask
    mask_mod: Callable  # (b, h, q_idx, kv_idx) -> bool tensor, for FlexAttention
    uses_doc_ids: bool = False


def _doc_count_range(seqlen: int) -> tuple[int, int]:
    if seqlen in _DOC_COUNTS:
        return _DOC_COUNTS[seqlen]
    nearest = min(_DOC_COUNTS, key=lambda s: abs(s - seqlen))
    return _DOC_COUNTS[nearest]


def random_doc_lens(seqlen: int, generator: torch.Generator, count: int | None = None) -> list[int]:
    """Split ``seqlen`` into a random number of documents (the paper's per-length ranges) at random cuts."""
    lo, hi = _doc_count_range(seqlen)
    n = count if count is not None else int(torch.randint(lo, hi + 1, (1,), generator=generator))
    n = max(1, min(n, seqlen))
    cuts = torch.randperm(seqlen - 1, generator=generator)[: n - 1] + 1
    bounds = [0, *sorted(cuts.tolist()), seqlen]
    return [b - a for a, b in itertools.pairwise(bounds)]


def _doc_ids(rows: list[list[int]], device) -> torch.Tensor:
    return torch.stack([torch.repeat_interleave(torch.arange(len(r)), torch.tensor(r)) for r in rows]).to(device)


def _starts(rows: list[list[int]], device) -> torch.Tensor:
    """Start of the document holding each token, ``[B, N]``."""
    out = []
    for r in rows:
        lens = torch.tensor(r)
        begin = torch.cumsum(lens, 0) - lens
        out.append(torch.repeat_interleave(begin, lens))
    return torch.stack(out).to(device)


def make(name: str, seqlen: int, batch: int, device, seed: int = 0, doc_count: int | None = None) -> Workload:
    """The workload ``name`` at ``seqlen`` tokens per row, ``batch`` rows."""
    g = torch.Generator().manual_seed(seed)
    scale = seqlen / 8192
    n = seqlen
    if name == "full":
        return Workload(name, masks.full(n, batch, device=device), lambda b, h, q, kv: q >= 0)
    if name == "causal":
        return Workload(name, masks.causal(n, batch, device=device), lambda b, h, q, kv: q >= kv)
    if name == "sliding_window":
        w = int(1024 * scale)
        return Workload(
            name, masks.sliding_window(n, w, batch, device=device), lambda b, h, q, kv: (q >= kv) & (q - kv <= w)
        )
    if name == "global_sliding_window":
        g_tok, wl, wr = 16, int(512 * scale), int(512 * scale)
        mask = masks.global_sliding_window(n, g_tok, wl, wr, batch, device=device)
        return Workload(name, mask, lambda b, h, q, kv: (q < g_tok) | (kv < g_tok) | ((q - kv <= wl) & (kv - q <= wr)))
    if name == "prefix_lm_causal":
        p = int(1024 * scale)
        mask = masks.prefix_lm_causal(n, p, batch, device=device)
        return Workload(name, mask, lambda b, h, q, kv: (kv < p) | (q >= kv))
    if name == "qk_sparse":
        spans = [(int(1024 * scale), int(538 * scale)), (int(2358 * scale), int(1700 * scale))]
        mask = masks.qk_sparse(n, spans, batch, device=device)
        (o1, l1), (o2, l2) = spans

        def qk_mod(b, h, q, kv):
            in1 = (kv >= o1) & (kv < o1 + l1) & (q >= kv) & (q < o1 + l1)
            in2 = (kv >= o2) & (kv < o2 + l2) & (q >= kv) & (q < o2 + l2)
            return (q >= kv) & ~in1 & ~in2

        return Workload(name, mask, qk_mod)
    if name == "random_eviction":
        mask = masks.random_eviction(n, int(4096 * scale), generator=g, batch=batch, device=device)
        evict = mask.startend_row_indices[:, 0, :, 0].contiguous()
        return Workload(name, mask, lambda b, h, q, kv: (q >= kv) & (q < evict[b, kv]))

    rows = [random_doc_lens(n, g, doc_count) for _ in range(batch)]
    doc = _doc_ids(rows, device)
    if name == "causal_document":
        return Workload(
            name, masks.causal_document(rows, device=device),
            lambda b, h, q, kv: (doc[b, q] == doc[b, kv]) & (q >= kv), True,
        )  # fmt: skip
    if name == "document":
        return Workload(name, masks.document(rows, device=device), lambda b, h, q, kv: doc[b, q] == doc[b, kv], True)
    if name == "causal_blockwise":
        test_start = n - rows[0][-1]
        starts = [n - r[-1] for r in rows]
        t = torch.tensor(starts, device=device)
        del test_start
        return Workload(
            name, masks.causal_blockwise(rows, device=device),
            lambda b, h, q, kv: (q >= kv) & ((doc[b, q] == doc[b, kv]) | (q >= t[b])), True,
        )  # fmt: skip
    if name == "prefix_lm_document":
        prefixes = [[max(1, int(d * float(torch.rand(1, generator=g) * 0.5 + 0.25))) for d in r] for r in rows]
        start = _starts(rows, device)
        plen = torch.stack(
            [torch.repeat_interleave(torch.tensor(p), torch.tensor(r)) for p, r in zip(prefixes, rows, strict=False)]
        ).to(device)
        return Workload(
            name, masks.prefix_lm_document(rows, prefixes, device=device),
            lambda b, h, q, kv: (doc[b, q] == doc[b, kv]) & ((kv < start[b, kv] + plen[b, kv]) | (q >= kv)), True,
        )  # fmt: skip
    if name == "share_question":
        samples_rows, seg_rows = [], []
        for r in rows:
            samples, segs = [], []
            for d in r:
                k = int(torch.randint(2, 7, (1,), generator=g))
                k = max(0, min(k, d - 1))
                q_len = max(1, d - k * max(1, (d // 2) // max(k, 1))) if k else d
                ans_total = d - q_len
                if k:
                    base = ans_total // k
                    answers = [base] * (k - 1) + [ans_total - base * (k - 1)]
                    answers = [a for a in answers if a > 0]
                else:
                    answers = []
                samples.append((q_len, answers))
                segs += [q_len, *answers]
            samples_rows.append(samples)
            seg_rows.append(segs)
        sample_id = doc
        seg = _doc_ids(seg_rows, device)
        # The question segment of a sample is its first segment.
        seg_start_of_sample = []
        for samples in samples_rows:
            ids, first = [], 0
            for q_len, answers in samples:
                ids += [first] * (q_len + sum(answers))
                first += 1 + len(answers)
            seg_start_of_sample.append(ids)
        q_seg = torch.tensor(seg_start_of_sample, device=device)
        return Workload(
            name, masks.share_question(samples_rows, device=device),
            lambda b, h, q, kv: (sample_id[b, q] == sample_id[b, kv]) & (q >= kv)
            & ((seg[b, kv] == q_seg[b, kv]) | (seg[b, q] == seg[b, kv])), True,
        )  # fmt: skip
    raise ValueError(f"unknown mask type {name!r}; expected one of {', '.join(MASK_TYPES)}")
