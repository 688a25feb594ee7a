"""ColumnMask: dense round trips, representability errors, constructor checks, pictures."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flashmask import ColumnMask, NotRepresentableError, masks

FORMS = [(True, 1), (True, 2), (False, 2), (False, 4)]


def builder_masks() -> dict[str, ColumnMask]:
    g = torch.Generator().manual_seed(0)
    start = torch.randint(0, 33, (2, 32), generator=g)
    return {
        "full": masks.full(16, batch=2),
        "causal": masks.causal(16),
        "sliding_window": masks.sliding_window(20, 3),
        "causal_document": masks.causal_document([[4, 3, 3], [2, 8]]),
        "document": masks.document([5, 1, 6]),
        "share_question": masks.share_question([[(4, [3, 3]), (2, [1])], [(3, [2]), (3, [2, 3])]]),
        "global_sliding_window": masks.global_sliding_window(24, 3, 2, 4),
        "causal_blockwise": masks.causal_blockwise([[4, 3, 3], [6, 4]]),
        "prefix_lm_document": masks.prefix_lm_document([3, 2, 5], [2, 2, 2]),
        "prefix_lm_causal": masks.prefix_lm_causal(12, 5),
        "qk_sparse": masks.qk_sparse(20, [(2, 3), (6, 2), (12, 6)]),
        "hash_sparse": masks.hash_sparse(start, (start + torch.randint(0, 10, (2, 32), generator=g)).clamp_max(32)),
        "eviction": masks.eviction(torch.tensor([10, 4, 8, 6, 10, 7, 10, 9, 10, 10])),
        "random_eviction": masks.random_eviction(30, 8, torch.Generator().manual_seed(3), batch=2),
    }


BUILT = builder_masks()


@pytest.mark.parametrize("name", sorted(BUILT))
def test_from_dense_round_trips_every_builder(name: str) -> None:
    mask = BUILT[name]
    dense = mask.to_dense()
    back = ColumnMask.from_dense(dense)
    assert torch.equal(back.to_dense(), dense)
    assert back.startend_row_indices.dtype == torch.int32
    # Never less compact than the builder's own form when the causal flag agrees.
    if back.causal == mask.causal:
        assert back.num_bounds <= mask.num_bounds
    # Forcing the builder's own causal flag works too.
    forced = ColumnMask.from_dense(dense, causal=mask.causal)
    assert forced.causal == mask.causal
    assert torch.equal(forced.to_dense(), dense)


def test_from_dense_picks_compact_forms() -> None:
    doc = ColumnMask.from_dense(masks.causal_document([4, 3, 3]).to_dense())
    assert (doc.causal, doc.num_bounds) == (True, 1)
    assert doc.startend_row_indices.flatten().tolist() == [4, 4, 4, 4, 7, 7, 7, 10, 10, 10]
    bidir = ColumnMask.from_dense(masks.document([4, 3, 3]).to_dense())
    assert (bidir.causal, bidir.num_bounds) == (False, 2)
    assert bidir.startend_row_indices[0, 0].T.tolist() == [
        [4] * 4 + [7] * 3 + [10] * 3,
        [0] * 4 + [4] * 3 + [7] * 3,
    ]
    block = ColumnMask.from_dense(masks.causal_blockwise([4, 3, 3]).to_dense())
    assert (block.causal, block.num_bounds) == (True, 2)
    gsw = ColumnMask.from_dense(masks.global_sliding_window(10, 2, 1, 1).to_dense())
    assert (gsw.causal, gsw.num_bounds) == (False, 4)
    full = ColumnMask.from_dense(torch.ones(6, 6, dtype=torch.bool))
    assert (full.causal, full.num_bounds) == (False, 2)
    assert full.startend_row_indices[0, 0].T.tolist() == [[6] * 6, [0] * 6]
    assert full.shape == (1, 1, 6, 6)
    # Fully hidden columns round-trip in every form.
    none = torch.zeros(1, 1, 5, 7, dtype=torch.bool)
    for causal in (None, True, False):
        assert torch.equal(ColumnMask.from_dense(none, causal=causal).to_dense(), none)


@st.composite
def random_masks(draw: st.DrawFn) -> ColumnMask:
    causal, c = draw(st.sampled_from(FORMS))
    b, h = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    sq, sk = draw(st.integers(0, 20)), draw(st.integers(1, 20))
    size = b * h * sk * c
    values = draw(st.lists(st.integers(-2, sq + 2), min_size=size, max_size=size))
    return ColumnMask(torch.tensor(values).view(b, h, sk, c), causal=causal, seqlen_q=sq)


@given(random_masks())
@settings(max_examples=200, deadline=None, database=None)
def test_from_dense_round_trips_random_masks(mask: ColumnMask) -> None:
    dense = mask.to_dense()
    auto = ColumnMask.from_dense(dense)
    assert torch.equal(auto.to_dense(), dense)
    assert auto.shape == mask.shape
    same_flag = ColumnMask.from_dense(dense, causal=mask.causal)
    assert torch.equal(same_flag.to_dense(), dense)
    assert same_flag.num_bounds <= mask.num_bounds  # never less compact than the source form
    if mask.causal:  # a causal mask also has a non-causal form
        assert torch.equal(ColumnMask.from_dense(dense, causal=False).to_dense(), dense)


def test_from_dense_2d_and_sq_ne_sk() -> None:
    # Sq < Sk: bottom-right aligned triangle; query i sees keys j <= i + 3.
    i, j = torch.arange(4).view(-1, 1), torch.arange(7).view(1, -1)
    dense = j <= i + 3
    mask = ColumnMask.from_dense(dense)
    assert (mask.causal, mask.num_bounds, mask.seqlen_q, mask.seqlen_k) == (True, 1, 4, 7)
    assert torch.equal(mask.to_dense()[0, 0], dense)
    # Sq > Sk: the first rows see nothing.
    i, j = torch.arange(7).view(-1, 1), torch.arange(4).view(1, -1)
    dense = j <= i - 3
    mask = ColumnMask.from_dense(dense)
    assert (mask.causal, mask.num_bounds, mask.seqlen_q, mask.seqlen_k) == (True, 1, 7, 4)
    assert torch.equal(mask.to_dense()[0, 0], dense)


def test_from_dense_falls_back_to_non_causal_when_the_triangle_merges_with_a_run() -> None:
    # Causal mask; column 2 also hides rows [2, 4) and [6, 8): two runs below the triangle (no causal form),
    # but with the triangle [0, 2) the hidden rows are [0, 4) and [6, 8): the 4-bound form holds them.
    i, j = torch.arange(10).view(-1, 1), torch.arange(10).view(1, -1)
    dense = j <= i
    dense[2:4, 2] = False
    dense[6:8, 2] = False
    mask = ColumnMask.from_dense(dense)
    assert (mask.causal, mask.num_bounds) == (False, 4)
    assert torch.equal(mask.to_dense()[0, 0], dense)
    with pytest.raises(NotRepresentableError, match=r"key j=2\) has 2 hidden runs below the causal triangle"):
        ColumnMask.from_dense(dense, causal=True)


# ============================================================================================ errors
def test_strided_mask_is_not_representable() -> None:
    i, j = torch.arange(10).view(-1, 1), torch.arange(10).view(1, -1)
    dilated = (j <= i) & ((i - j) % 3 == 0)
    with pytest.raises(NotRepresentableError, match=r"batch=0, head=0, key j=0\) has 3 hidden runs"):
        ColumnMask.from_dense(dilated)


def test_three_hidden_runs_name_the_column() -> None:
    dense = torch.ones(2, 3, 8, 8, dtype=torch.bool)
    dense[1, 2, [1, 3, 5], 6] = False  # column 6 of (batch 1, head 2): rows 1, 3, 5 hidden
    dense[1, 2, [1, 3], 4] = False  # two runs: fine
    with pytest.raises(NotRepresentableError, match=r"batch=1, head=2, key j=6\) has 3 hidden runs"):
        ColumnMask.from_dense(dense)
    with pytest.raises(NotRepresentableError, match="key j=6"):
        ColumnMask.from_dense(dense, causal=False)
    assert issubclass(NotRepresentableError, ValueError)


def test_forced_causal_on_non_causal_mask() -> None:
    dense = masks.document([4, 3, 3]).to_dense()
    with pytest.raises(NotRepresentableError, match=r"causal=True.*batch=0, head=0, key j=1\)"):
        ColumnMask.from_dense(dense, causal=True)


def test_from_dense_input_errors() -> None:
    with pytest.raises(TypeError, match="bool"):
        ColumnMask.from_dense(torch.ones(4, 4))
    with pytest.raises(TypeError, match="bool"):
        ColumnMask.from_dense(torch.ones(4, 4, dtype=torch.int32))
    with pytest.raises(ValueError, match="shape"):
        ColumnMask.from_dense(torch.ones(2, 4, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="causal"):
        ColumnMask.from_dense(torch.ones(4, 4, dtype=torch.bool), causal=1)


def test_constructor_errors() -> None:
    good = torch.zeros(1, 1, 4, 2, dtype=torch.int32)
    with pytest.raises(TypeError, match="integers"):
        ColumnMask(torch.zeros(1, 1, 4, 1), causal=True)
    with pytest.raises(TypeError, match="integers"):
        ColumnMask(torch.zeros(1, 1, 4, 1, dtype=torch.bool), causal=True)
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        ColumnMask([[[[1]]]], causal=True)
    with pytest.raises(ValueError, match="4 dimensions"):
        ColumnMask(torch.zeros(4, 1, dtype=torch.int32), causal=True)
    with pytest.raises(ValueError, match="causal=True"):
        ColumnMask(torch.zeros(1, 1, 4, 4, dtype=torch.int32), causal=True)
    with pytest.raises(ValueError, match="causal=False"):
        ColumnMask(torch.zeros(1, 1, 4, 1, dtype=torch.int32), causal=False)
    with pytest.raises(ValueError, match="bounds"):
        ColumnMask(torch.zeros(1, 1, 4, 3, dtype=torch.int32), causal=False)
    with pytest.raises(ValueError, match="seqlen_q"):
        ColumnMask(good, causal=False, seqlen_q=-1)
    with pytest.raises(TypeError, match="causal"):
        ColumnMask(good, causal=1)
    mask = ColumnMask(good.to(torch.int64), causal=False, seqlen_q=6)
    assert mask.startend_row_indices.dtype == torch.int32
    assert mask.shape == (1, 1, 6, 4)


# ============================================================================================ pictures
def test_to_text_small_is_exact() -> None:
    text = masks.causal_document([4, 3, 3]).to_text()
    lines = text.splitlines()
    assert len(lines) == 11
    assert "Sq=10" in lines[0] and "Sk=10" in lines[0]
    assert lines[1:5] == ["#.........", "##........", "###.......", "####......"]
    assert lines[5] == "....#....."


@given(random_masks(), st.integers(1, 12))
@settings(max_examples=60, deadline=None, database=None)
def test_to_text_matches_dense_blocks(mask: ColumnMask, max_size: int) -> None:
    text = mask.to_text(batch=mask.batch - 1, head=mask.num_heads - 1, max_size=max_size)
    lines = text.splitlines()
    sq, sk = mask.seqlen_q, mask.seqlen_k
    scale = max(1, math.ceil(sq / max_size), math.ceil(sk / max_size))
    assert f"{scale}x{scale}" in lines[0]
    assert len(lines) == 1 + math.ceil(sq / scale)
    dense = mask.to_dense()[-1, -1]
    for r, line in enumerate(lines[1:]):
        assert len(line) == math.ceil(sk / scale) <= max_size
        for c, ch in enumerate(line):
            cell = dense[r * scale : (r + 1) * scale, c * scale : (c + 1) * scale]
            expected = "#" if bool(cell.all()) else "." if not bool(cell.any()) else "+"
            assert ch == expected


def test_to_text_downsamples_large_masks() -> None:
    mask = masks.causal_document([300, 400, 300])
    lines = mask.to_text(max_size=64).splitlines()
    assert len(lines) == 1 + math.ceil(1000 / 16)
    assert all(len(line) <= 64 for line in lines[1:])
    assert "16x16" in lines[0]
    assert str(mask).splitlines()[0] == repr(mask)
    with pytest.raises(ValueError, match="batch"):
        mask.to_text(batch=1)
    with pytest.raises(ValueError, match="max_size"):
        mask.to_text(max_size=0)


def test_save_png(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "mask.png"
    masks.share_question([(4, [3, 3])]).save_png(str(path), title="share question")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 100
    big = tmp_path / "big.png"
    masks.sliding_window(5000, 300).save_png(str(big))
    assert big.read_bytes().startswith(b"\x89PNG")
