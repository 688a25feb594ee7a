"""The mask builders against dense masks written straight from their meaning (SPEC section 2).

The reference masks below never look at LTS/LTE/UTS/UTE: they compare query/key index grids with per-token
labels (document id, position in document, ...) computed with plain Python lists.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flashmask import ColumnMask, masks

SETTINGS = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


# ============================================================================================ helpers
def grid(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Query index ``i`` as a column ``[n, 1]`` and key index ``j`` as a row ``[1, n]``."""
    return torch.arange(n).view(-1, 1), torch.arange(n).view(1, -1)


def labels(lens: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per token: the id of its document and its position inside the document."""
    doc, pos = [], []
    for k, n in enumerate(lens):
        doc += [k] * n
        pos += list(range(n))
    return torch.tensor(doc), torch.tensor(pos)


def check(mask: ColumnMask, expected: torch.Tensor, causal: bool, num_bounds: int) -> None:
    """``mask`` has the SPEC form, int32 ``[B, 1, N, C]``, and the dense mask ``expected`` ``[B, N, N]``."""
    b, n = expected.shape[0], expected.shape[-1]
    assert isinstance(mask, ColumnMask)
    assert mask.startend_row_indices.dtype == torch.int32
    assert tuple(mask.startend_row_indices.shape) == (b, 1, n, num_bounds)
    assert mask.causal is causal
    assert torch.equal(mask.to_dense()[:, 0], expected)


def rows_of(doc_lens: list[list[int]]) -> list[int] | list[list[int]]:
    """Batch-1 inputs as a flat list (the other accepted form), bigger batches as a list of lists."""
    return doc_lens[0] if len(doc_lens) == 1 else doc_lens


@st.composite
def partition(draw: st.DrawFn, n: int, max_parts: int = 8) -> list[int]:
    """A random list of positive ints adding up to ``n``."""
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=max_parts - 1)) if n > 1 else set())
    edges = [0, *cuts, n]
    return [b - a for a, b in itertools.pairwise(edges)]


@st.composite
def batched_docs(draw: st.DrawFn, max_n: int = 96) -> list[list[int]]:
    """One partition per batch row, all of the same total (different documents per row)."""
    n = draw(st.integers(1, max_n))
    batch = draw(st.integers(1, 3))
    return [draw(partition(n)) for _ in range(batch)]


# ============================================================================================ toy values
# Figure 1(b) of the paper (N = 10), checked against the SPEC formulas before being asserted here.
def bounds(mask: ColumnMask) -> list[list[int]]:
    return mask.startend_row_indices[0, 0].T.tolist()


def test_toy_sliding_window() -> None:
    assert bounds(masks.sliding_window(10, 2)) == [[3, 4, 5, 6, 7, 8, 9, 10, 10, 10]]


def test_toy_causal_document() -> None:
    assert bounds(masks.causal_document([4, 3, 3])) == [[4, 4, 4, 4, 7, 7, 7, 10, 10, 10]]


def test_toy_document() -> None:
    assert bounds(masks.document([4, 3, 3])) == [
        [4, 4, 4, 4, 7, 7, 7, 10, 10, 10],
        [0, 0, 0, 0, 4, 4, 4, 7, 7, 7],
    ]


def test_toy_share_question() -> None:
    assert bounds(masks.share_question([(4, [3, 3])])) == [[10, 10, 10, 10, 7, 7, 7, 10, 10, 10]]


def test_toy_global_sliding_window() -> None:
    assert bounds(masks.global_sliding_window(10, 2, 1, 1)) == [
        [10, 10, 4, 5, 6, 7, 8, 9, 10, 10],
        [10] * 10,
        [0, 0, 0, 0, 2, 2, 2, 2, 2, 2],
        [0, 0, 0, 0, 3, 4, 5, 6, 7, 8],
    ]


def test_toy_causal_blockwise() -> None:
    # Figure 1(b) prints the middle demo's columns (4..6) as LTS = LTE = 10; the SPEC formula gives
    # LTS = e_k = 7, LTE = t = 7. Both are empty intervals: the dense masks agree.
    lts, lte = bounds(masks.causal_blockwise([4, 3, 3]))
    assert lts[:4] == [4] * 4 and lte[:4] == [7] * 4
    assert lts[4:7] == [7] * 3 and lte[4:7] == [7] * 3
    assert lts[7:] == [10] * 3 and lte[7:] == [10] * 3
    figure = ColumnMask(torch.tensor([[4] * 4 + [10] * 6, [7] * 4 + [10] * 6]).T.view(1, 1, 10, 2), causal=True)
    assert torch.equal(masks.causal_blockwise([4, 3, 3]).to_dense(), figure.to_dense())


def test_toy_prefix_lm_document() -> None:
    assert bounds(masks.prefix_lm_document([3, 2, 5], [2, 2, 2])) == [
        [3, 3, 3, 5, 5, 10, 10, 10, 10, 10],
        [0, 0, 2, 3, 3, 5, 5, 7, 8, 9],
    ]


def test_toy_prefix_lm_causal() -> None:
    assert bounds(masks.prefix_lm_causal(10, 5)) == [[10] * 10, [0, 0, 0, 0, 0, 5, 6, 7, 8, 9]]


def test_toy_qk_sparse() -> None:
    # Figure 1(b) prints column 5 as LTS = LTE = 5 (an empty interval); by the SPEC formula column 5 lies in
    # no span of (2, 3), (6, 2) and gets LTS = LTE = N. Same dense mask.
    mask = masks.qk_sparse(10, [(2, 3), (6, 2)])
    assert bounds(mask) == [[10, 10, 2, 3, 4, 10, 6, 7, 10, 10], [10, 10, 5, 5, 5, 10, 8, 8, 10, 10]]
    figure = torch.tensor([[10, 10, 2, 3, 4, 5, 6, 7, 10, 10], [10, 10, 5, 5, 5, 5, 8, 8, 10, 10]])
    assert torch.equal(mask.to_dense(), ColumnMask(figure.T.view(1, 1, 10, 2), causal=True).to_dense())


def test_toy_hash_sparse() -> None:
    lts = torch.tensor([2, 2, 4, 5, 5, 8, 8, 9, 10, 10])
    ute = torch.tensor([0, 0, 1, 3, 4, 4, 5, 7, 8, 9])
    assert bounds(masks.hash_sparse(ute, lts)) == [lts.tolist(), ute.tolist()]


def test_toy_eviction() -> None:
    lts = [10, 4, 8, 6, 10, 7, 10, 9, 10, 10]
    assert bounds(masks.eviction(torch.tensor(lts))) == [lts]


# ============================================================================================ dense meaning
@given(st.integers(1, 96), st.integers(1, 3))
@SETTINGS
def test_full_and_causal(n: int, batch: int) -> None:
    i, j = grid(n)
    check(masks.full(n, batch), torch.ones(batch, n, n, dtype=torch.bool), False, 2)
    check(masks.causal(n, batch), (j <= i).expand(batch, n, n), True, 1)


@given(st.integers(1, 96), st.integers(0, 100), st.integers(1, 2))
@SETTINGS
def test_sliding_window(n: int, window: int, batch: int) -> None:
    i, j = grid(n)
    expected = (j <= i) & (i - j <= window)
    check(masks.sliding_window(n, window, batch), expected.expand(batch, n, n), True, 1)


@given(batched_docs())
@SETTINGS
def test_causal_document(docs: list[list[int]]) -> None:
    n = sum(docs[0])
    i, j = grid(n)
    expected = []
    for lens in docs:
        doc, _ = labels(lens)
        expected.append((doc.view(-1, 1) == doc.view(1, -1)) & (j <= i))
    check(masks.causal_document(rows_of(docs)), torch.stack(expected), True, 1)


@given(batched_docs())
@SETTINGS
def test_document(docs: list[list[int]]) -> None:
    expected = []
    for lens in docs:
        doc, _ = labels(lens)
        expected.append(doc.view(-1, 1) == doc.view(1, -1))
    check(masks.document(rows_of(docs)), torch.stack(expected), False, 2)


@st.composite
def batched_samples(draw: st.DrawFn) -> list[list[tuple[int, list[int]]]]:
    """Share-question samples per batch row (equal totals): segments, each a question or an answer."""
    n = draw(st.integers(1, 96))
    rows = []
    for _ in range(draw(st.integers(1, 3))):
        segs = draw(partition(n, max_parts=12))
        is_question = [True] + [draw(st.booleans()) for _ in segs[1:]]
        row: list[tuple[int, list[int]]] = []
        for length, q in zip(segs, is_question, strict=True):
            if q:
                row.append((length, []))
            else:
                row[-1][1].append(length)
        rows.append(row)
    return rows


@given(batched_samples())
@SETTINGS
def test_share_question(rows: list[list[tuple[int, list[int]]]]) -> None:
    n = sum(q + sum(a) for q, a in rows[0])
    i, j = grid(n)
    expected = []
    for row in rows:
        sample, part = [], []  # part 0 = question, k = k-th answer
        for s, (q, answers) in enumerate(row):
            sample += [s] * q
            part += [0] * q
            for k, a in enumerate(answers, start=1):
                sample += [s] * a
                part += [k] * a
        sample_t, part_t = torch.tensor(sample), torch.tensor(part)
        same_sample = sample_t.view(-1, 1) == sample_t.view(1, -1)
        key_in_question = (part_t == 0).view(1, -1)
        same_part = part_t.view(-1, 1) == part_t.view(1, -1)
        expected.append((j <= i) & same_sample & (key_in_question | same_part))
    check(masks.share_question(rows[0] if len(rows) == 1 else rows), torch.stack(expected), True, 1)


@given(st.data())
@SETTINGS
def test_global_sliding_window(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 96))
    g = data.draw(st.integers(0, n))
    wl, wr = data.draw(st.integers(0, n + 2)), data.draw(st.integers(0, n + 2))
    batch = data.draw(st.integers(1, 2))
    i, j = grid(n)
    expected = (i < g) | (j < g) | ((i - wl <= j) & (j <= i + wr))
    check(masks.global_sliding_window(n, g, wl, wr, batch), expected.expand(batch, n, n), False, 4)


@given(batched_docs())
@SETTINGS
def test_causal_blockwise(docs: list[list[int]]) -> None:
    n = sum(docs[0])
    i, j = grid(n)
    expected = []
    for lens in docs:
        doc, _ = labels(lens)
        test_start = n - lens[-1]
        same = doc.view(-1, 1) == doc.view(1, -1)
        expected.append((j <= i) & (same | (i >= test_start)))
    check(masks.causal_blockwise(rows_of(docs)), torch.stack(expected), True, 2)


@given(st.data())
@SETTINGS
def test_prefix_lm_document(data: st.DataObject) -> None:
    docs = data.draw(batched_docs())
    prefixes = [[data.draw(st.integers(0, d)) for d in lens] for lens in docs]
    n = sum(docs[0])
    i, j = grid(n)
    expected = []
    for lens, pre in zip(docs, prefixes, strict=True):
        doc, pos = labels(lens)
        prefix_of_token = torch.tensor(pre)[doc]
        same = doc.view(-1, 1) == doc.view(1, -1)
        key_in_prefix = (pos < prefix_of_token).view(1, -1)
        expected.append(same & (key_in_prefix | (j <= i)))
    check(masks.prefix_lm_document(rows_of(docs), rows_of(prefixes)), torch.stack(expected), False, 2)


@given(st.data())
@SETTINGS
def test_prefix_lm_causal(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 96))
    p = data.draw(st.integers(0, n))
    batch = data.draw(st.integers(1, 2))
    i, j = grid(n)
    check(masks.prefix_lm_causal(n, p, batch), ((j < p) | (j <= i)).expand(batch, n, n), False, 2)


@given(st.data())
@SETTINGS
def test_qk_sparse(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 96))
    segs = data.draw(partition(n, max_parts=10))
    spans, start = [], 0
    for length in segs:
        if data.draw(st.booleans()):
            spans.append((start, length))
        start += length
    spans = data.draw(st.permutations(spans))  # any order is accepted
    batch = data.draw(st.integers(1, 2))
    i, j = grid(n)
    dropped = torch.zeros(n, n, dtype=torch.bool)
    for o, length in spans:
        dropped |= (o <= j) & (j < o + length) & (j <= i) & (i < o + length)
    check(masks.qk_sparse(n, spans, batch), ((j <= i) & ~dropped).expand(batch, n, n), True, 2)


@given(st.data())
@SETTINGS
def test_hash_sparse(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 64))
    batch = data.draw(st.integers(1, 3))
    start = torch.tensor(data.draw(st.lists(st.integers(0, n), min_size=batch * n, max_size=batch * n)))
    end = torch.tensor(data.draw(st.lists(st.integers(0, n), min_size=batch * n, max_size=batch * n)))
    start, end = start.view(batch, n), end.view(batch, n)
    i, _ = grid(n)
    expected = (start.view(batch, 1, n) <= i) & (i < end.view(batch, 1, n))
    check(masks.hash_sparse(start, end), expected, False, 2)
    if batch == 1:  # the 1-D form
        check(masks.hash_sparse(start[0].to(torch.int32), end[0]), expected, False, 2)


@given(st.data())
@SETTINGS
def test_eviction(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 96))
    batch = data.draw(st.integers(1, 3))
    rows = torch.tensor(data.draw(st.lists(st.integers(0, n), min_size=batch * n, max_size=batch * n)))
    rows = rows.view(batch, n)
    i, j = grid(n)
    expected = (j <= i) & (i < rows.view(batch, 1, n))
    check(masks.eviction(rows), expected, True, 1)


@given(st.integers(1, 96), st.data())
@SETTINGS
def test_random_eviction(n: int, data: st.DataObject) -> None:
    start_row = data.draw(st.integers(0, n))
    seed = data.draw(st.integers(0, 2**31 - 1))
    mask = masks.random_eviction(n, start_row, torch.Generator().manual_seed(seed), batch=3)
    again = masks.random_eviction(n, start_row, torch.Generator().manual_seed(seed), batch=3)
    assert torch.equal(mask.startend_row_indices, again.startend_row_indices)
    rows = mask.startend_row_indices[:, 0, :, 0].long()
    j = torch.arange(n)
    assert bool((rows >= (j + 1).clamp(min=start_row).clamp(max=n)).all())
    assert bool((rows <= n).all())
    i, jj = grid(n)
    check(mask, (jj <= i) & (i < rows.view(3, 1, n)), True, 1)


def test_random_eviction_covers_its_range_and_rows_differ() -> None:
    n, start_row = 8, 3
    rows = masks.random_eviction(n, start_row, torch.Generator().manual_seed(0), batch=4000)
    rows = rows.startend_row_indices[:, 0, :, 0].long()
    for j in range(n):
        low = max(j + 1, start_row)
        values = set(rows[:, j].tolist())
        assert values == set(range(low, n + 1)), (j, values)  # every row in [low, N], N = never, is drawn
    # Roughly uniform: column 0 draws from 6 values.
    counts = torch.bincount(rows[:, 0], minlength=n + 1)[start_row:]
    assert bool((counts > 4000 / 6 * 0.8).all())
    two = masks.random_eviction(64, 0, torch.Generator().manual_seed(1), batch=2).startend_row_indices
    assert not torch.equal(two[0], two[1])  # batch rows are drawn independently
    assert masks.random_eviction(16, 0).startend_row_indices.shape == (1, 1, 16, 1)  # global RNG


def test_batch_argument_and_device() -> None:
    for mask in (
        masks.full(5, batch=3, device="cpu"),
        masks.causal(5, batch=3, device=torch.device("cpu")),
        masks.sliding_window(5, 1, batch=3),
        masks.global_sliding_window(5, 1, 1, 1, batch=3),
        masks.prefix_lm_causal(5, 2, batch=3),
        masks.qk_sparse(5, [(1, 2)], batch=3),
    ):
        assert mask.batch == 3 and mask.device.type == "cpu"
        assert mask.startend_row_indices.is_contiguous()
        assert torch.equal(mask.startend_row_indices[0], mask.startend_row_indices[2])
    assert masks.causal_document([2, 3], device="cpu").shape == (1, 1, 5, 5)
    assert masks.eviction(torch.tensor([2, 2]), device="cpu").shape == (1, 1, 2, 2)


def test_all_lists_every_builder() -> None:
    assert sorted(masks.__all__) == sorted(
        [
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
            "hash_sparse",
            "eviction",
            "random_eviction",
        ]
    )


def test_large_masks_are_cheap() -> None:
    # 1M tokens: vectorised builders (no Python loop over tokens).
    n = 1 << 20
    docs = [n // 8] * 8
    assert masks.causal_document(docs).seqlen_k == n
    assert masks.prefix_lm_document(docs, [1000] * 8).seqlen_k == n
    assert masks.share_question([(n // 4, [n // 4] * 3)]).seqlen_k == n
    assert masks.global_sliding_window(n, 16, 512, 512).seqlen_k == n
    assert masks.random_eviction(n, n // 2).seqlen_k == n


# ============================================================================================ bad input
I64 = torch.int64
BAD_INPUTS = [
    (lambda: masks.full(0), ValueError, "seqlen"),
    (lambda: masks.full(4, batch=0), ValueError, "batch"),
    (lambda: masks.causal(-1), ValueError, "seqlen"),
    (lambda: masks.causal(4.0), TypeError, "seqlen"),
    (lambda: masks.causal(True), TypeError, "seqlen"),
    (lambda: masks.sliding_window(8, -1), ValueError, "window"),
    (lambda: masks.sliding_window(0, 1), ValueError, "seqlen"),
    (lambda: masks.causal_document([4, 0, 3]), ValueError, r"doc_lens.*positive.*doc_lens\[1\]"),
    (lambda: masks.causal_document([4, -1]), ValueError, "doc_lens"),
    (lambda: masks.causal_document([[4, 3], [2, 2]]), ValueError, "doc_lens.*same sequence length"),
    (lambda: masks.causal_document([]), TypeError, "doc_lens"),
    (lambda: masks.causal_document(7), TypeError, "doc_lens"),
    (lambda: masks.causal_document([4, 2.5]), TypeError, "doc_lens"),
    (lambda: masks.causal_document([[4], []]), ValueError, "doc_lens"),
    (lambda: masks.causal_document([[4], 4]), TypeError, "doc_lens"),
    (lambda: masks.document([[3, 3], [5]]), ValueError, "doc_lens.*same sequence length"),
    (lambda: masks.document([3, 0]), ValueError, "doc_lens"),
    (lambda: masks.share_question([(0, [3])]), ValueError, "samples.*question"),
    (lambda: masks.share_question([(2, [3, 0])]), ValueError, "samples.*answer"),
    (lambda: masks.share_question([(2, [3, -2])]), ValueError, "samples.*answer"),
    (lambda: masks.share_question([(2, [3.0])]), TypeError, "samples.*answer"),
    (lambda: masks.share_question([[(2, [3])], [(2, [2])]]), ValueError, "samples.*same sequence length"),
    (lambda: masks.share_question([(2, 3)]), TypeError, "samples"),
    (lambda: masks.share_question([]), TypeError, "samples"),
    (lambda: masks.global_sliding_window(10, -1, 1, 1), ValueError, "num_global"),
    (lambda: masks.global_sliding_window(10, 11, 1, 1), ValueError, "num_global"),
    (lambda: masks.global_sliding_window(10, 2, -1, 1), ValueError, "window_left"),
    (lambda: masks.global_sliding_window(10, 2, 1, -1), ValueError, "window_right"),
    (lambda: masks.global_sliding_window(0, 0, 1, 1), ValueError, "seqlen"),
    (lambda: masks.causal_blockwise([3, 0]), ValueError, "doc_lens"),
    (lambda: masks.causal_blockwise([[3, 1], [3]]), ValueError, "doc_lens.*same sequence length"),
    (lambda: masks.prefix_lm_document([3, 2], [4, 1]), ValueError, r"prefix_lens\[0\].*longer"),
    (lambda: masks.prefix_lm_document([3, 2], [-1, 1]), ValueError, "prefix_lens"),
    (lambda: masks.prefix_lm_document([3, 2], [1]), ValueError, "prefix_lens.*same shape"),
    (
        lambda: masks.prefix_lm_document([[3, 2], [5]], [[1, 1], [1, 1]]),
        ValueError,
        "prefix_lens.*same shape",
    ),
    (lambda: masks.prefix_lm_document([3, 0], [1, 0]), ValueError, "doc_lens"),
    (lambda: masks.prefix_lm_causal(10, 11), ValueError, "prefix_len"),
    (lambda: masks.prefix_lm_causal(10, -1), ValueError, "prefix_len"),
    (lambda: masks.prefix_lm_causal(0, 0), ValueError, "seqlen"),
    (lambda: masks.qk_sparse(10, [(8, 3)]), ValueError, "spans.*outside"),
    (lambda: masks.qk_sparse(10, [(-1, 3)]), ValueError, "spans.*outside"),
    (lambda: masks.qk_sparse(10, [(2, 3), (4, 2)]), ValueError, "spans.*overlap"),
    (lambda: masks.qk_sparse(10, [(2, 0)]), ValueError, "spans.*length"),
    (lambda: masks.qk_sparse(10, [(2, -1)]), ValueError, "spans.*length"),
    (lambda: masks.qk_sparse(10, [(2,)]), TypeError, "spans"),
    (lambda: masks.qk_sparse(10, 3), TypeError, "spans"),
    (lambda: masks.qk_sparse(0, []), ValueError, "seqlen"),
    (lambda: masks.hash_sparse(torch.zeros(4), torch.ones(4, dtype=I64)), TypeError, "visible_start"),
    (lambda: masks.hash_sparse(torch.zeros(4, dtype=I64), torch.ones(4)), TypeError, "visible_end"),
    (lambda: masks.hash_sparse([0, 0], torch.ones(2, dtype=I64)), TypeError, "visible_start"),
    (
        lambda: masks.hash_sparse(torch.zeros(4, dtype=I64), torch.ones(5, dtype=I64)),
        ValueError,
        "visible_start and visible_end.*same shape",
    ),
    (
        lambda: masks.hash_sparse(torch.zeros(1, 1, 4, dtype=I64), torch.ones(1, 1, 4, dtype=I64)),
        ValueError,
        "visible_start.*shape",
    ),
    (
        lambda: masks.hash_sparse(torch.zeros(4, dtype=I64), torch.full((4,), 5, dtype=I64)),
        ValueError,
        r"visible_end.*\[0, 4\]",
    ),
    (
        lambda: masks.hash_sparse(torch.full((4,), -1, dtype=I64), torch.ones(4, dtype=I64)),
        ValueError,
        "visible_start",
    ),
    (lambda: masks.eviction(torch.full((4,), 4.0)), TypeError, "evict_rows"),
    (lambda: masks.eviction(torch.ones(4, dtype=torch.bool)), TypeError, "evict_rows"),
    (lambda: masks.eviction(torch.ones(1, 1, 4, dtype=I64)), ValueError, "evict_rows.*shape"),
    (lambda: masks.eviction(torch.tensor(3)), ValueError, "evict_rows.*shape"),
    (lambda: masks.eviction(torch.zeros(1, 0, dtype=I64)), ValueError, "evict_rows"),
    (lambda: masks.eviction(torch.tensor([-1, 2])), ValueError, "evict_rows"),
    (lambda: masks.eviction(torch.tensor([3, 2])), ValueError, r"evict_rows.*\[0, 2\]"),
    (lambda: masks.eviction([1, 2]), TypeError, "evict_rows"),
    (lambda: masks.random_eviction(0, 0), ValueError, "seqlen"),
    (lambda: masks.random_eviction(10, -1), ValueError, "start_row"),
    (lambda: masks.random_eviction(10, 11), ValueError, "start_row"),
    (lambda: masks.random_eviction(10, 2, generator=5), TypeError, "generator"),
    (lambda: masks.random_eviction(10, 2, batch=0), ValueError, "batch"),
]


@pytest.mark.parametrize(("build", "error", "match"), BAD_INPUTS)
def test_bad_input(build, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        build()


# ============================================================================================ counts
FORMS = [(True, 1), (True, 2), (False, 2), (False, 4)]


@st.composite
def random_masks(draw: st.DrawFn) -> ColumnMask:
    """Random ``startend_row_indices`` of any form, ``Sq`` and ``Sk`` independent, values outside [0, Sq]."""
    causal, c = draw(st.sampled_from(FORMS))
    b, h = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    sq, sk = draw(st.integers(0, 24)), draw(st.integers(1, 24))
    size = b * h * sk * c
    values = draw(st.lists(st.integers(-3, sq + 3), min_size=size, max_size=size))
    return ColumnMask(torch.tensor(values).view(b, h, sk, c), causal=causal, seqlen_q=sq)


@given(random_masks())
@settings(max_examples=150, deadline=None, database=None)
def test_visible_pairs_and_sparsity_match_dense(mask: ColumnMask) -> None:
    dense = mask.to_dense()
    assert torch.equal(mask.visible_pairs(), dense.sum(dim=(-2, -1)))
    total = dense.numel()
    expected = 0.0 if total == 0 else 1.0 - dense.sum().item() / total
    assert math.isclose(mask.sparsity(), expected, abs_tol=1e-12)


@pytest.mark.parametrize(("causal", "c"), FORMS)
@pytest.mark.parametrize(("sq", "sk"), [(7, 13), (13, 7), (10, 10)])
def test_visible_pairs_every_form_and_shape(causal: bool, c: int, sq: int, sk: int) -> None:
    g = torch.Generator().manual_seed(sq * 100 + sk * 10 + c)
    idx = torch.randint(-4, sq + 5, (2, 3, sk, c), generator=g)
    mask = ColumnMask(idx, causal=causal, seqlen_q=sq)
    dense = mask.to_dense()
    assert torch.equal(mask.visible_pairs(), dense.sum(dim=(-2, -1)))
    assert math.isclose(mask.sparsity(), 1.0 - dense.float().mean().item(), abs_tol=1e-6)
    # Clipping: the same mask with values clipped to [0, Sq].
    clipped = ColumnMask(idx.clamp(0, sq), causal=causal, seqlen_q=sq)
    assert torch.equal(clipped.to_dense(), dense)
