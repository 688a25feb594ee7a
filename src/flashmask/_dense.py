"""Compress a dense boolean mask into the most compact column-wise form (used by ``ColumnMask.from_dense``).

For each key column the hidden rows are split into maximal runs (found with shifted comparisons along the
row axis). A column fits

* causal ``[LTS]`` when, below the causal triangle, its hidden rows are one run reaching the last row;
* causal ``[LTS, LTE]`` when they are one run;
* non-causal ``[LTS, UTE]`` when its visible rows are one run;
* non-causal ``[LTS, LTE, UTS, UTE]`` when its hidden rows are at most two runs.

The whole mask takes the first form in that order (within the chosen causal flag) that fits every column.
Work and memory are O(B * Hm * Sq * Sk).
"""

from __future__ import annotations

import torch

from ._column_mask import NotRepresentableError

__all__ = ["column_mask_from_dense"]


class _Runs:
    """Maximal runs of True along dim -2 of a bool ``[B, H, Sq, Sk]`` tensor, per column ``[B, H, Sk]``."""

    def __init__(self, x: torch.Tensor) -> None:
        sq = x.shape[-2]
        rows = torch.arange(sq, device=x.device, dtype=torch.int64).view(-1, 1)
        before = torch.zeros_like(x)
        before[..., 1:, :] = x[..., :-1, :]
        after = torch.zeros_like(x)
        after[..., :-1, :] = x[..., 1:, :]
        starts = x & ~before  # row i opens a run
        ends = x & ~after  # row i closes a run (the run ends at i + 1, exclusive)
        big = torch.tensor(sq, dtype=torch.int64, device=x.device)
        neg = torch.tensor(-1, dtype=torch.int64, device=x.device)
        self.count = starts.sum(dim=-2)
        # First and last run; with at most two runs they are all the runs there are.
        self.first_start = torch.where(starts, rows, big).amin(dim=-2) if sq else self.count
        self.first_end = torch.where(ends, rows, big).amin(dim=-2) + 1 if sq else self.count
        self.last_start = torch.where(starts, rows, neg).amax(dim=-2) if sq else self.count
        self.last_end = torch.where(ends, rows, neg).amax(dim=-2) + 1 if sq else self.count


def _first(bad: torch.Tensor) -> tuple[int, int, int]:
    b, h, j = bad.nonzero()[0].tolist()
    return b, h, j


def _too_many(runs: _Runs, limit: int, what: str, allowed: str) -> None:
    bad = runs.count > limit
    if bool(bad.any()):
        b, h, j = _first(bad)
        n = int(runs.count[b, h, j])
        raise NotRepresentableError(
            f"mask is not representable as a column-wise mask: column (batch={b}, head={h}, key j={j}) has "
            f"{n} {what}, but {allowed}"
        )


def _causal_form(hidden: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """``[B, H, Sk, 1 | 2]`` for a mask whose causal triangle is hidden, or NotRepresentableError."""
    sq = hidden.shape[-2]
    runs = _Runs(hidden & ~tri)  # hidden rows the triangle does not already cover
    _too_many(
        runs,
        1,
        "hidden runs below the causal triangle",
        "a causal column mask allows at most one (rows [LTS, LTE))",
    )
    empty = runs.count == 0
    lts = torch.where(empty, sq, runs.first_start)
    lte = torch.where(empty, sq, runs.first_end)
    if bool((lte == sq).all()):
        return lts.unsqueeze(-1)
    return torch.stack([lts, lte], dim=-1)


def _noncausal_form(hidden: torch.Tensor) -> torch.Tensor:
    """``[B, H, Sk, 2 | 4]`` for a mask with at most two hidden runs per column, or NotRepresentableError."""
    sq = hidden.shape[-2]
    visible = _Runs(~hidden)
    if bool((visible.count <= 1).all()):
        # Visible rows are one run [UTE, LTS); a fully hidden column is LTS = UTE = 0.
        none = visible.count == 0
        ute = torch.where(none, 0, visible.first_start)
        lts = torch.where(none, 0, visible.first_end)
        return torch.stack([lts, ute], dim=-1)
    runs = _Runs(hidden)
    _too_many(runs, 2, "hidden runs", "a column-wise mask allows at most two ([UTS, UTE) and [LTS, LTE))")
    zero = torch.zeros_like(runs.count)
    two = runs.count == 2
    # The lower (last) run goes to [LTS, LTE), the upper one, if any, to [UTS, UTE).
    lts = torch.where(runs.count == 0, sq, runs.last_start)
    lte = torch.where(runs.count == 0, sq, runs.last_end)
    uts = torch.where(two, runs.first_start, zero)
    ute = torch.where(two, runs.first_end, zero)
    return torch.stack([lts, lte, uts, ute], dim=-1)


def column_mask_from_dense(mask: torch.Tensor, causal: bool | None = None) -> tuple[torch.Tensor, bool]:
    """Compress a dense mask into ``(startend_row_indices int32 [B, Hm, Sk, C], causal)``.

    Args:
        mask: bool ``[B, Hm, Sq, Sk]`` or ``[Sq, Sk]`` (then ``B = Hm = 1``); True = may attend.
        causal: ``True``/``False`` forces the causal or non-causal forms; ``None`` picks causal when every
            pair above the bottom-right-aligned diagonal (``j > i + Sk - Sq``) is hidden, else non-causal
            (and falls back to non-causal if a column does not fit the causal forms).

    Raises:
        TypeError: ``mask`` is not a bool tensor, or ``causal`` is not a bool or None.
        ValueError: ``mask`` does not have 2 or 4 dimensions.
        NotRepresentableError: the mask does not fit; the message names the first offending
            ``(batch, head, column)``.
    """
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a bool torch.Tensor [B, Hm, Sq, Sk] or [Sq, Sk], got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True = may attend), got {mask.dtype}")
    if mask.dim() == 2:
        mask = mask.view(1, 1, *mask.shape)
    elif mask.dim() != 4:
        raise ValueError(f"mask must have shape [B, Hm, Sq, Sk] or [Sq, Sk], got shape {tuple(mask.shape)}")
    if causal is not None and not isinstance(causal, bool):
        raise TypeError(f"causal must be True, False or None, got {causal!r}")

    sq, sk = mask.shape[-2], mask.shape[-1]
    hidden = ~mask
    rows = torch.arange(sq, device=mask.device).view(-1, 1)
    cols = torch.arange(sk, device=mask.device).view(1, -1)
    tri = cols > rows + (sk - sq)  # [Sq, Sk]: the causal upper triangle, aligned bottom-right
    leak = mask & tri
    triangle_hidden = not bool(leak.any())

    if causal is True:
        if not triangle_hidden:
            b, h, j = _first(leak.any(dim=-2))
            i = int(leak[b, h, :, j].nonzero()[0])
            raise NotRepresentableError(
                f"causal=True but the mask is not causal: column (batch={b}, head={h}, key j={j}) is visible "
                f"from query row {i}, inside the causal triangle (j > i + Sk - Sq = i + {sk - sq})"
            )
        out, chosen = _causal_form(hidden, tri), True
    elif causal is False:
        out, chosen = _noncausal_form(hidden), False
    elif triangle_hidden:
        try:
            out, chosen = _causal_form(hidden, tri), True
        except NotRepresentableError:
            # The triangle may merge with a hidden run into one run that the 4-bound form can hold.
            out, chosen = _noncausal_form(hidden), False
    else:
        out, chosen = _noncausal_form(hidden), False
    return out.to(torch.int32).contiguous(), chosen
