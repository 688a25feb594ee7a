"""Builders for the FlashMask mask family (paper Figure 1, SPEC section 2).

Every builder returns a :class:`~flashmask.ColumnMask` whose ``startend_row_indices`` is int32
``[B, 1, N, C]`` (one mask head shared by all attention heads; ``N = Sq = Sk``), in the ``(causal, C)`` form
SPEC section 2 gives for that mask. Everything is built with vectorised torch ops: the only Python loops run
over batch rows, documents, samples or spans, never over tokens, so a 1M-token mask takes milliseconds.

Argument conventions:

* ``doc_lens``: a list of positive ints (batch 1) or a list of such lists, one per batch row; every row must
  add up to the same sequence length ``N``.
* ``device``: where ``startend_row_indices`` is built (``None``: torch's default device, or for the
  builders that take tensors, the device of those tensors).
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Sequence
from typing import Any

import torch

from ._column_mask import ColumnMask

__all__ = [
    "causal",
    "causal_blockwise",
    "causal_document",
    "document",
    "eviction",
    "full",
    "global_sliding_window",
    "hash_sparse",
    "prefix_lm_causal",
    "prefix_lm_document",
    "qk_sparse",
    "random_eviction",
    "share_question",
    "sliding_window",
]

DeviceLike = torch.device | str | None


# ============================================================================================ validation
def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _check_int(name: str, value: Any, minimum: int | None = None, what: str = "") -> int:
    """``value`` as a Python int, or ``TypeError``/``ValueError`` naming ``name``."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an int{what}, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {kind}{what}, got {value}")
    return value


def _is_seq(x: Any) -> bool:
    return isinstance(x, Sequence) and not isinstance(x, (str, bytes))


def _as_list(value: Any) -> Any:
    """Tensors and numpy arrays as (nested) Python lists; anything else unchanged."""
    return value.tolist() if isinstance(value, torch.Tensor) or type(value).__name__ == "ndarray" else value


def _length_rows(name: str, value: Any, minimum: int = 1) -> list[list[int]]:
    """Normalise a list of lengths or a list of such lists (one per batch row) to a list of lists."""
    value = _as_list(value)
    if not _is_seq(value) or len(value) == 0:
        raise TypeError(
            f"{name} must be a non-empty list of ints (batch 1) or a list of such lists (one per batch row), "
            f"got {value!r}"
        )
    if all(_is_int(x) for x in value):
        rows = [list(value)]
    elif all(_is_seq(r) for r in value):
        rows = [list(_as_list(r)) for r in value]
    else:
        raise TypeError(
            f"{name} must be a list of ints (batch 1) or a list of lists of ints (one per batch row), "
            f"not a mixture; got {value!r}"
        )
    for b, row in enumerate(rows):
        if len(row) == 0:
            raise ValueError(f"{name}[{b}] is empty: every batch row needs at least one length")
        for k, x in enumerate(row):
            where = f"{name}[{b}][{k}]" if len(rows) > 1 else f"{name}[{k}]"
            if not _is_int(x):
                raise TypeError(f"{name} must hold ints, but {where} is {x!r} ({type(x).__name__})")
            if x < minimum:
                kind = "positive" if minimum == 1 else f">= {minimum}"
                raise ValueError(f"{name} lengths must be {kind}, but {where} is {x}")
        rows[b] = [int(x) for x in row]
    return rows


def _equal_totals(name: str, totals: list[int]) -> int:
    if any(t != totals[0] for t in totals):
        raise ValueError(f"{name} must add up to the same sequence length in every batch row, got totals {totals}")
    return totals[0]


def _doc_rows(doc_lens: Any, name: str = "doc_lens") -> tuple[list[list[int]], int]:
    rows = _length_rows(name, doc_lens)
    return rows, _equal_totals(name, [sum(r) for r in rows])


def _check_index_tensor(name: str, t: Any) -> torch.Tensor:
    """An integer tensor ``[Sk]`` or ``[B, Sk]``, returned as int64 ``[B, Sk]``."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be an integer torch.Tensor of shape [Sk] or [B, Sk], got {type(t).__name__}")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor (int32 or int64), got {t.dtype}")
    if t.dim() not in (1, 2):
        raise ValueError(f"{name} must have shape [Sk] or [B, Sk], got shape {tuple(t.shape)}")
    if t.shape[-1] == 0:
        raise ValueError(f"{name} must have at least one key column, got shape {tuple(t.shape)}")
    t = t.to(torch.int64)
    return t.unsqueeze(0) if t.dim() == 1 else t


def _check_range(name: str, t: torch.Tensor, high: int, meaning: str) -> None:
    lo, hi = int(t.min()), int(t.max())
    if lo < 0 or hi > high:
        raise ValueError(f"{name} must lie in [0, {high}] ({meaning}), got values in [{lo}, {hi}]")


# ============================================================================================ assembly
def _pack(vectors: Sequence[torch.Tensor], causal: bool, batch: int = 1) -> ColumnMask:
    """Stack per-column vectors (each ``[N]`` or ``[B, N]``) into a ColumnMask ``[B, 1, N, C]`` int32."""
    stacked = torch.stack([v.to(torch.int64) for v in vectors], dim=-1)  # [N, C] or [B, N, C]
    if stacked.dim() == 2:
        stacked = stacked.unsqueeze(0).expand(batch, -1, -1)
    return ColumnMask(stacked.unsqueeze(1).to(torch.int32).contiguous(), causal=causal)


def _per_token(values: list[int], lens: list[int], device: DeviceLike, total: int) -> torch.Tensor:
    """Repeat ``values[k]`` ``lens[k]`` times: int64 ``[total]``."""
    vals = torch.tensor(values, dtype=torch.int64, device=device)
    reps = torch.tensor(lens, dtype=torch.int64, device=device)
    return torch.repeat_interleave(vals, reps, output_size=total)


def _doc_spans(lens: list[int], device: DeviceLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Per token, the start and end of its document: two int64 ``[N]``."""
    ends, acc = [], 0
    for n in lens:
        acc += n
        ends.append(acc)
    starts = [e - n for e, n in zip(ends, lens, strict=True)]
    return _per_token(starts, lens, device, acc), _per_token(ends, lens, device, acc)


# ============================================================================================ builders
def full(seqlen: int, batch: int = 1, *, device: DeviceLike = None) -> ColumnMask:
    """Every query sees every key (bidirectional encoders, or a baseline with no masking).

    For attention itself, passing no mask runs faster kernels; this form is for composing and comparing masks.

    Returns:
        non-causal ``[LTS, UTE]`` form, ``[batch, 1, seqlen, 2]``: ``LTS = N``, ``UTE = 0``.
    """
    n = _check_int("seqlen", seqlen, 1)
    batch = _check_int("batch", batch, 1)
    return _pack(
        [
            torch.full((n,), n, dtype=torch.int64, device=device),
            torch.zeros(n, dtype=torch.int64, device=device),
        ],
        causal=False,
        batch=batch,
    )


def causal(seqlen: int, batch: int = 1, *, device: DeviceLike = None) -> ColumnMask:
    """Plain causal attention (decoder-only language models).

    For attention itself, ``causal=True`` with no mask runs faster kernels; this form is for composing and
    comparing masks.

    Returns:
        causal ``[LTS]`` form, ``[batch, 1, seqlen, 1]``: ``LTS = N`` (only the triangle is hidden).
    """
    n = _check_int("seqlen", seqlen, 1)
    batch = _check_int("batch", batch, 1)
    return _pack([torch.full((n,), n, dtype=torch.int64, device=device)], causal=True, batch=batch)


def sliding_window(seqlen: int, window: int, batch: int = 1, *, device: DeviceLike = None) -> ColumnMask:
    """Causal local attention: query ``i`` sees keys ``[i - window, i]`` (long-context windowed models).

    Args:
        window: number of previous keys each query sees besides itself (0: only the diagonal).

    Returns:
        causal ``[LTS]`` form, ``[batch, 1, seqlen, 1]``: ``LTS_j = min(j + window + 1, N)``.
    """
    n = _check_int("seqlen", seqlen, 1)
    window = _check_int("window", window, 0, " (number of previous keys seen)")
    batch = _check_int("batch", batch, 1)
    cols = torch.arange(n, dtype=torch.int64, device=device)
    return _pack([(cols + (min(window, n) + 1)).clamp_max(n)], causal=True, batch=batch)


def causal_document(doc_lens: Sequence[int] | Sequence[Sequence[int]], *, device: DeviceLike = None) -> ColumnMask:
    """Causal attention inside each packed document, none across documents (SFT / pre-training packing).

    Args:
        doc_lens: document lengths, a list (batch 1) or a list of lists (one per batch row, equal sums).

    Returns:
        causal ``[LTS]`` form, ``[B, 1, N, 1]``: ``LTS_j`` = end of the document holding ``j``.
    """
    rows, _ = _doc_rows(doc_lens)
    lts = [_doc_spans(r, device)[1] for r in rows]
    return _pack([torch.stack(lts)], causal=True)


def document(doc_lens: Sequence[int] | Sequence[Sequence[int]], *, device: DeviceLike = None) -> ColumnMask:
    """Bidirectional attention inside each packed document (packed encoder / embedding-model training).

    Args:
        doc_lens: document lengths, a list (batch 1) or a list of lists (one per batch row, equal sums).

    Returns:
        non-causal ``[LTS, UTE]`` form, ``[B, 1, N, 2]``: ``LTS_j`` / ``UTE_j`` = end / start of ``j``'s
        document.
    """
    rows, _ = _doc_rows(doc_lens)
    spans = [_doc_spans(r, device) for r in rows]
    lts = torch.stack([e for _, e in spans])
    ute = torch.stack([s for s, _ in spans])
    return _pack([lts, ute], causal=False)


def _sample_rows(samples: Any) -> list[list[tuple[int, list[int]]]]:
    """Normalise ``samples`` to one list of ``(question_len, [answer_len, ...])`` per batch row."""
    expected = (
        "samples must be a list of (question_len, [answer_len, ...]) pairs (batch 1) or a list of such lists "
        "(one per batch row)"
    )

    def is_pair(x: Any) -> bool:
        return _is_seq(x) and len(x) == 2 and _is_int(x[0]) and _is_seq(_as_list(x[1]))

    if not _is_seq(samples) or len(samples) == 0:
        raise TypeError(f"{expected}, got {samples!r}")
    if all(is_pair(s) for s in samples):
        raw_rows = [list(samples)]
    elif all(_is_seq(r) and len(r) > 0 and all(is_pair(s) for s in r) for r in samples):
        raw_rows = [list(r) for r in samples]
    else:
        raise TypeError(f"{expected}, got {samples!r}")
    rows = []
    for b, raw in enumerate(raw_rows):
        row = []
        for k, (q, answers) in enumerate(raw):
            where = f"samples[{b}][{k}]" if len(raw_rows) > 1 else f"samples[{k}]"
            if q < 1:
                raise ValueError(f"samples question lengths must be positive, but {where} has question_len {q}")
            answers = list(_as_list(answers))
            for a in answers:
                if not _is_int(a):
                    raise TypeError(f"samples answer lengths must be ints, but {where} has answer {a!r}")
                if a < 1:
                    raise ValueError(f"samples answer lengths must be positive, but {where} has answer_len {a}")
            row.append((int(q), [int(a) for a in answers]))
        rows.append(row)
    return rows


def share_question(
    samples: Sequence[tuple[int, Sequence[int]]] | Sequence[Sequence[tuple[int, Sequence[int]]]],
    *,
    device: DeviceLike = None,
) -> ColumnMask:
    """One shared prompt followed by several answers that do not see each other (DPO, RM, GRPO packing).

    Within a sample, query ``i`` sees key ``j <= i`` when ``j`` is in the question or in the same answer as
    ``i``; nothing is seen across samples.

    Args:
        samples: ``[(question_len, [answer_len, ...]), ...]`` (batch 1) or one such list per batch row (equal
            totals). Lengths are positive; a sample may have no answers (it is then a causal document).

    Returns:
        causal ``[LTS]`` form, ``[B, 1, N, 1]``: question columns ``LTS`` = end of the sample, answer
        columns ``LTS`` = end of that answer.
    """
    rows = _sample_rows(samples)
    totals = [sum(q + sum(a) for q, a in row) for row in rows]
    total = _equal_totals("samples", totals)
    out = []
    for row in rows:
        seg_lens: list[int] = []
        seg_lts: list[int] = []
        pos = 0
        for q, answers in row:
            sample_end = pos + q + sum(answers)
            seg_lens.append(q)
            seg_lts.append(sample_end)
            pos += q
            for a in answers:
                pos += a
                seg_lens.append(a)
                seg_lts.append(pos)
        out.append(_per_token(seg_lts, seg_lens, device, total))
    return _pack([torch.stack(out)], causal=True)


def global_sliding_window(
    seqlen: int,
    num_global: int,
    window_left: int,
    window_right: int,
    batch: int = 1,
    *,
    device: DeviceLike = None,
) -> ColumnMask:
    """A bidirectional local window plus ``num_global`` leading tokens that see and are seen by all
    (Longformer / BigBird-style long-context encoders).

    Query ``i`` sees key ``j`` iff ``i < g`` or ``j < g`` or ``i - window_left <= j <= i + window_right``.

    Returns:
        non-causal ``[LTS, LTE, UTS, UTE]`` form, ``[batch, 1, seqlen, 4]`` (SPEC section 2).
    """
    n = _check_int("seqlen", seqlen, 1)
    g = _check_int("num_global", num_global, 0, " (number of leading global tokens)")
    if g > n:
        raise ValueError(f"num_global must be <= seqlen ({n}), got {g}")
    wl = min(_check_int("window_left", window_left, 0, " (keys seen to the left)"), n)
    wr = min(_check_int("window_right", window_right, 0, " (keys seen to the right)"), n)
    batch = _check_int("batch", batch, 1)
    cols = torch.arange(n, dtype=torch.int64, device=device)
    lts = torch.where(cols < g, n, (cols + wl + 1).clamp_max(n))
    lte = torch.full_like(cols, n)
    upper = cols >= g + wr + 1
    uts = torch.where(upper, g, 0)
    ute = torch.where(upper, cols - wr, 0)
    return _pack([lts, lte, uts, ute], causal=False, batch=batch)


def causal_blockwise(doc_lens: Sequence[int] | Sequence[Sequence[int]], *, device: DeviceLike = None) -> ColumnMask:
    """In-context-learning blocks: demonstrations attend causally within themselves; the last document (the
    test block, starting at ``t``) attends causally to everything before it.

    Query ``i`` sees key ``j <= i`` iff both are in the same document or ``i >= t``.

    Args:
        doc_lens: block lengths, the last one being the test block; a list or one list per batch row.

    Returns:
        causal ``[LTS, LTE]`` form, ``[B, 1, N, 2]``: demo columns ``LTS_j = e_k``, ``LTE_j = t``;
        test-block columns ``LTS = LTE = N``.
    """
    rows, total = _doc_rows(doc_lens)
    lts_rows, lte_rows = [], []
    cols = torch.arange(total, dtype=torch.int64, device=device)
    for r in rows:
        t = total - r[-1]
        _, ends = _doc_spans(r, device)
        test = cols >= t
        lts_rows.append(torch.where(test, total, ends))
        lte_rows.append(torch.where(test, total, t))
    return _pack([torch.stack(lts_rows), torch.stack(lte_rows)], causal=True)


def prefix_lm_document(
    doc_lens: Sequence[int] | Sequence[Sequence[int]],
    prefix_lens: Sequence[int] | Sequence[Sequence[int]],
    *,
    device: DeviceLike = None,
) -> ColumnMask:
    """Packed prefix-LM documents: each document's prefix is bidirectional, the rest causal; nothing is seen
    across documents (packed T5/GLM-style prefix-LM training).

    Query ``i`` sees key ``j`` iff they share a document and (``j`` is in its prefix or ``j <= i``).

    Args:
        doc_lens: document lengths (list, or one list per batch row).
        prefix_lens: prefix length of each document, same shape as ``doc_lens``, ``0 <= p_k <= doc_lens[k]``.

    Returns:
        non-causal ``[LTS, UTE]`` form, ``[B, 1, N, 2]``: ``LTS_j = e_k``; ``UTE_j = s_k`` on prefix columns,
        ``UTE_j = j`` elsewhere.
    """
    rows, total = _doc_rows(doc_lens)
    prows = _length_rows("prefix_lens", prefix_lens, minimum=0)
    if len(prows) != len(rows) or any(len(p) != len(d) for p, d in zip(prows, rows, strict=False)):
        raise ValueError(
            "prefix_lens must have the same shape as doc_lens (one prefix per document), got "
            f"{[len(p) for p in prows]} prefixes for {[len(d) for d in rows]} documents per batch row"
        )
    cols = torch.arange(total, dtype=torch.int64, device=device)
    lts_rows, ute_rows = [], []
    for b, (d, p) in enumerate(zip(rows, prows, strict=True)):
        for k, (dk, pk) in enumerate(zip(d, p, strict=True)):
            if pk > dk:
                where = f"[{b}][{k}]" if len(rows) > 1 else f"[{k}]"
                raise ValueError(f"prefix_lens{where} = {pk} is longer than its document (doc_lens{where} = {dk})")
        starts, ends = _doc_spans(d, device)
        prefix_end = starts + _per_token(p, d, device, total)
        lts_rows.append(ends)
        ute_rows.append(torch.where(cols < prefix_end, starts, cols))
    return _pack([torch.stack(lts_rows), torch.stack(ute_rows)], causal=False)


def prefix_lm_causal(seqlen: int, prefix_len: int, batch: int = 1, *, device: DeviceLike = None) -> ColumnMask:
    """A bidirectional prefix of ``prefix_len`` tokens followed by causal generation (prefix LM, UniLM).

    Query ``i`` sees key ``j`` iff ``j < prefix_len`` or ``j <= i``.

    Returns:
        non-causal ``[LTS, UTE]`` form, ``[batch, 1, seqlen, 2]``: ``LTS = N``; ``UTE_j = 0`` for ``j < p``,
        ``UTE_j = j`` otherwise.
    """
    n = _check_int("seqlen", seqlen, 1)
    p = _check_int("prefix_len", prefix_len, 0)
    if p > n:
        raise ValueError(f"prefix_len must be <= seqlen ({n}), got {p}")
    batch = _check_int("batch", batch, 1)
    cols = torch.arange(n, dtype=torch.int64, device=device)
    return _pack([torch.full_like(cols, n), torch.where(cols < p, 0, cols)], causal=False, batch=batch)


def qk_sparse(
    seqlen: int, spans: Sequence[tuple[int, int]], batch: int = 1, *, device: DeviceLike = None
) -> ColumnMask:
    """Causal attention with dropped spans: tokens of a span ``(o, L)`` are not attended by queries inside
    the span (at or after them), e.g. token merging / dropping for efficient training.

    Query ``i`` sees key ``j`` iff ``j <= i`` and not (``o <= j < o + L`` and ``j <= i < o + L``).

    Args:
        spans: ``[(start, length), ...]`` inside ``[0, seqlen)``, positive lengths, non-overlapping.

    Returns:
        causal ``[LTS, LTE]`` form, ``[batch, 1, seqlen, 2]``: in a span ``LTS_j = j``, ``LTE_j = o + L``;
        elsewhere ``LTS = LTE = N``.
    """
    n = _check_int("seqlen", seqlen, 1)
    batch = _check_int("batch", batch, 1)
    spans = _as_list(spans)
    if not _is_seq(spans):
        raise TypeError(f"spans must be a list of (start, length) pairs, got {spans!r}")
    checked = []
    for k, s in enumerate(spans):
        if not (_is_seq(s) and len(s) == 2 and _is_int(s[0]) and _is_int(s[1])):
            raise TypeError(f"spans must be a list of (start, length) pairs of ints, but spans[{k}] is {s!r}")
        o, length = int(s[0]), int(s[1])
        if length < 1:
            raise ValueError(f"spans[{k}] = {tuple(s)} has non-positive length {length}")
        if o < 0 or o + length > n:
            raise ValueError(f"spans[{k}] = {tuple(s)} lies outside the sequence [0, {n})")
        checked.append((o, length))
    ordered = sorted(checked)
    for (o1, l1), (o2, l2) in itertools.pairwise(ordered):
        if o2 < o1 + l1:
            raise ValueError(f"spans must not overlap, but {(o1, l1)} and {(o2, l2)} do")
    cols = torch.arange(n, dtype=torch.int64, device=device)
    lts = torch.full_like(cols, n)
    lte = torch.full_like(cols, n)
    for o, length in ordered:
        lts[o : o + length] = cols[o : o + length]
        lte[o : o + length] = o + length
    return _pack([lts, lte], causal=True, batch=batch)


def hash_sparse(visible_start: torch.Tensor, visible_end: torch.Tensor, *, device: DeviceLike = None) -> ColumnMask:
    """Each key is seen by one contiguous run of query rows (hash/cluster attention such as Reformer,
    after sorting tokens by bucket).

    Query ``i`` sees key ``j`` iff ``visible_start[j] <= i < visible_end[j]``.

    Args:
        visible_start: integer ``[Sk]`` or ``[B, Sk]``, first row that sees each key, in ``[0, Sk]``.
        visible_end: same shape, one past the last row that sees each key, in ``[0, Sk]``.

    Returns:
        non-causal ``[LTS, UTE]`` form, ``[B, 1, Sk, 2]``: ``UTE = visible_start``, ``LTS = visible_end``.
    """
    start = _check_index_tensor("visible_start", visible_start)
    end = _check_index_tensor("visible_end", visible_end)
    if visible_start.shape != visible_end.shape:
        raise ValueError(
            f"visible_start and visible_end must have the same shape, got {tuple(visible_start.shape)} and "
            f"{tuple(visible_end.shape)}"
        )
    n = start.shape[-1]
    _check_range("visible_start", start, n, "a query row")
    _check_range("visible_end", end, n, "one past a query row")
    if device is not None:
        start, end = start.to(device), end.to(device)
    return _pack([end, start], causal=False)


def eviction(evict_rows: torch.Tensor, *, device: DeviceLike = None) -> ColumnMask:
    """Causal attention where key ``j`` disappears from row ``evict_rows[j]`` on (KV-cache eviction
    simulation, e.g. H2O / NACL-style training).

    Query ``i`` sees key ``j`` iff ``j <= i < evict_rows[j]``.

    Args:
        evict_rows: integer ``[Sk]`` or ``[B, Sk]`` in ``[0, Sk]``; ``Sk`` means never evicted.

    Returns:
        causal ``[LTS]`` form, ``[B, 1, Sk, 1]``: ``LTS = evict_rows``.
    """
    rows = _check_index_tensor("evict_rows", evict_rows)
    _check_range("evict_rows", rows, rows.shape[-1], "the row from which a key is evicted; Sk = never")
    if device is not None:
        rows = rows.to(device)
    return _pack([rows], causal=True)


def random_eviction(
    seqlen: int,
    start_row: int,
    generator: torch.Generator | None = None,
    batch: int = 1,
    *,
    device: DeviceLike = None,
) -> ColumnMask:
    """Random KV-cache eviction (as in NACL): each key is evicted at a random row, never before
    ``start_row`` and never before it was seen once.

    Key ``j`` is evicted from row ``r_j`` drawn uniformly from the integers ``[max(j + 1, start_row), N]``
    (both ends included); ``r_j = N`` means never evicted. Batch rows are drawn independently.

    Args:
        start_row: first row at which evictions may happen, ``0 <= start_row <= seqlen``.
        generator: optional ``torch.Generator`` for reproducible draws (the draw happens on its device).

    Returns:
        causal ``[LTS]`` form, ``[batch, 1, seqlen, 1]``: ``LTS_j = r_j``.
    """
    n = _check_int("seqlen", seqlen, 1)
    start_row = _check_int("start_row", start_row, 0)
    if start_row > n:
        raise ValueError(f"start_row must be <= seqlen ({n}), got {start_row}")
    batch = _check_int("batch", batch, 1)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    draw_device = generator.device if generator is not None else device
    u = torch.rand((batch, n), generator=generator, dtype=torch.float64, device=draw_device)
    u = u.to(device) if device is not None else u
    cols = torch.arange(n, dtype=torch.int64, device=u.device)
    low = (cols + 1).clamp(min=start_row, max=n)
    count = n - low + 1
    rows = (low + (u * count).floor().to(torch.int64)).clamp_max(n)
    return _pack([rows], causal=True)
