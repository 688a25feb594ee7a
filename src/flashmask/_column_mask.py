"""The column-wise mask: FlashMask's O(N) description of an attention mask.

For every key column ``j`` the mask stores at most two half-open row intervals of query rows that may *not*
attend to key ``j``. The layout of the last dimension of ``startend_row_indices`` and the ``causal`` flag
together fix the meaning (SPEC section 1):

====== === ======================= ==============================================
causal  C  names                   key ``j`` is hidden from query rows
====== === ======================= ==============================================
True    1  LTS                     the causal upper triangle and ``[LTS_j, Sq)``
True    2  LTS, LTE                the causal upper triangle and ``[LTS_j, LTE_j)``
False   2  LTS, UTE                ``[LTS_j, Sq)`` and ``[0, UTE_j)``
False   4  LTS, LTE, UTS, UTE      ``[LTS_j, LTE_j)`` and ``[UTS_j, UTE_j)``
====== === ======================= ==============================================

With ``Sq != Sk`` the causal triangle is aligned bottom-right: query ``i`` sees key ``j`` only if
``j <= i + (Sk - Sq)``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["ColumnMask", "Intervals", "NotRepresentableError", "check_form", "intervals_of", "no_mask_indices"]

# (causal, C) -> names of the stored vectors, in the order of the last dimension.
FORMS: dict[tuple[bool, int], tuple[str, ...]] = {
    (True, 1): ("LTS",),
    (True, 2): ("LTS", "LTE"),
    (False, 2): ("LTS", "UTE"),
    (False, 4): ("LTS", "LTE", "UTS", "UTE"),
}


class NotRepresentableError(ValueError):
    """A dense mask that no column-wise mask can express (more than two masked runs in a column)."""


def check_form(causal: bool, num_bounds: int, name: str = "startend_row_indices") -> None:
    """Raise ``ValueError`` unless ``(causal, num_bounds)`` is one of the four forms of SPEC section 1."""
    if (bool(causal), num_bounds) not in FORMS:
        allowed = "1 or 2" if causal else "2 or 4"
        raise ValueError(
            f"{name} has {num_bounds} bounds per column (last dimension), but with causal={bool(causal)} "
            f"it must have {allowed}: causal uses [LTS] or [LTS, LTE]; non-causal uses [LTS, UTE] or "
            f"[LTS, LTE, UTS, UTE]"
        )


class Intervals(NamedTuple):
    """The four row-interval vectors of a column mask, each ``[B, Hm, Sk]`` int64, absent ones filled.

    Key ``j`` is hidden from rows ``[lts_j, lte_j)`` and ``[uts_j, ute_j)``, and from the causal triangle
    when ``causal``.
    """

    lts: torch.Tensor
    lte: torch.Tensor
    uts: torch.Tensor
    ute: torch.Tensor
    causal: bool
    seqlen_q: int


def intervals_of(startend_row_indices: torch.Tensor, causal: bool, seqlen_q: int) -> Intervals:
    """Unpack ``startend_row_indices`` ``[B, Hm, Sk, C]`` into the four vectors of :class:`Intervals`.

    Values are clipped to ``[0, seqlen_q]``, which does not change which rows are hidden.
    """
    idx = startend_row_indices.to(torch.int64).clamp(0, seqlen_q)
    zeros = torch.zeros_like(idx[..., 0])
    full = torch.full_like(idx[..., 0], seqlen_q)
    num_bounds = idx.shape[-1]
    if causal:
        lte = idx[..., 1] if num_bounds == 2 else full
        return Intervals(idx[..., 0], lte, zeros, zeros, True, seqlen_q)
    if num_bounds == 2:
        return Intervals(idx[..., 0], full, zeros, idx[..., 1], False, seqlen_q)
    return Intervals(idx[..., 0], idx[..., 1], idx[..., 2], idx[..., 3], False, seqlen_q)


def no_mask_indices(causal: bool, seqlen_q: int, seqlen_k: int, device) -> torch.Tensor:
    """``startend_row_indices`` ``[1, 1, Sk, C]`` that hide nothing beyond the causal triangle (if causal)."""
    bounds = torch.full((1, 1, seqlen_k, 1 if causal else 2), seqlen_q, dtype=torch.int32, device=device)
    if not causal:
        bounds[..., 1] = 0  # UTE = 0: no upper interval
    return bounds


def _interval_len(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    return (end - start).clamp_min(0)


class ColumnMask:
    """A column-wise sparse attention mask (FlashMask's ``startend_row_indices`` plus its meaning).

    Args:
        startend_row_indices: integer tensor ``[B, Hm, Sk, C]`` (converted to int32). ``Hm`` is 1 (shared by
            every head), the number of key/value heads, or the number of query heads.
        causal: whether the causal triangle is hidden as well; fixes how ``C`` is read (module docstring).
        seqlen_q: number of query rows ``Sq``; defaults to ``Sk``.

    The mask costs ``B * Hm * Sk * C * 4`` bytes, against ``B * Hm * Sq * Sk`` for a dense boolean mask.
    """

    def __init__(self, startend_row_indices: torch.Tensor, causal: bool = False, seqlen_q: int | None = None) -> None:
        if not isinstance(startend_row_indices, torch.Tensor):
            raise TypeError(
                "startend_row_indices must be an integer torch.Tensor of shape [B, Hm, Sk, C], "
                f"got {type(startend_row_indices).__name__}"
            )
        if startend_row_indices.dtype.is_floating_point or startend_row_indices.dtype in (
            torch.bool,
            torch.complex64,
            torch.complex128,
        ):
            raise TypeError(
                f"startend_row_indices must hold integers (int32 preferred), got {startend_row_indices.dtype}"
            )
        if startend_row_indices.dim() != 4:
            raise ValueError(
                "startend_row_indices must have 4 dimensions [B, Hm, Sk, C], "
                f"got shape {tuple(startend_row_indices.shape)}"
            )
        if not isinstance(causal, bool):
            raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
        check_form(causal, startend_row_indices.shape[-1])
        seqlen_k = startend_row_indices.shape[2]
        if seqlen_q is None:
            seqlen_q = seqlen_k
        if not isinstance(seqlen_q, int) or isinstance(seqlen_q, bool) or seqlen_q < 0:
            raise ValueError(f"seqlen_q must be a non-negative int, got {seqlen_q!r}")
        self.startend_row_indices = startend_row_indices.to(torch.int32).contiguous()
        self.causal = causal
        self.seqlen_q = seqlen_q

    # ----------------------------------------------------------------------------------------- shape
    @property
    def batch(self) -> int:
        return self.startend_row_indices.shape[0]

    @property
    def num_heads(self) -> int:
        """``Hm``, the number of mask heads."""
        return self.startend_row_indices.shape[1]

    @property
    def seqlen_k(self) -> int:
        return self.startend_row_indices.shape[2]

    @property
    def num_bounds(self) -> int:
        """``C``, the number of stored vectors per column (1, 2 or 4)."""
        return self.startend_row_indices.shape[3]

    @property
    def device(self) -> torch.device:
        return self.startend_row_indices.device

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(B, Hm, Sq, Sk)``: the shape of the dense mask this describes."""
        return (self.batch, self.num_heads, self.seqlen_q, self.seqlen_k)

    def to(self, device: torch.device | str) -> ColumnMask:
        return ColumnMask(self.startend_row_indices.to(device), self.causal, self.seqlen_q)

    def nbytes(self) -> int:
        """Bytes held by ``startend_row_indices``."""
        return self.startend_row_indices.numel() * self.startend_row_indices.element_size()

    def intervals(self) -> Intervals:
        """The four interval vectors ``[B, Hm, Sk]`` (absent ones filled with their neutral values)."""
        return intervals_of(self.startend_row_indices, self.causal, self.seqlen_q)

    # ----------------------------------------------------------------------------------------- dense
    def to_dense(self) -> torch.Tensor:
        """Bool tensor ``[B, Hm, Sq, Sk]``, True where query ``i`` may attend key ``j`` (SDPA convention)."""
        iv = self.intervals()
        rows = torch.arange(self.seqlen_q, device=self.device).view(1, 1, -1, 1)

        def hidden(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
            return (rows >= start.unsqueeze(2)) & (rows < end.unsqueeze(2))

        masked = hidden(iv.lts, iv.lte) | hidden(iv.uts, iv.ute)
        if self.causal:
            cols = torch.arange(self.seqlen_k, device=self.device).view(1, 1, 1, -1)
            masked = masked | (cols > rows + (self.seqlen_k - self.seqlen_q))
        return ~masked

    def visible_pairs(self) -> torch.Tensor:
        """Number of visible (query, key) pairs per mask head: int64 ``[B, Hm]``, computed in O(Sk)."""
        iv = self.intervals()
        sq = self.seqlen_q
        # Rows hidden by the causal triangle in column j: [0, j - (Sk - Sq)).
        cols = torch.arange(self.seqlen_k, device=self.device)
        tri_end = (cols - (self.seqlen_k - self.seqlen_q)).clamp(0, sq).expand_as(iv.lts)
        tri_start = torch.zeros_like(tri_end) if self.causal else tri_end
        spans = [(tri_start, tri_end), (iv.lts, iv.lte), (iv.uts, iv.ute)]
        # |A u B u C| by inclusion-exclusion; an intersection of intervals is an interval.
        hidden = sum(_interval_len(s, e) for s, e in spans)
        for a in range(3):
            for b in range(a + 1, 3):
                s = torch.maximum(spans[a][0], spans[b][0])
                e = torch.minimum(spans[a][1], spans[b][1])
                hidden = hidden - _interval_len(s, e)
        s = torch.maximum(torch.maximum(spans[0][0], spans[1][0]), spans[2][0])
        e = torch.minimum(torch.minimum(spans[0][1], spans[1][1]), spans[2][1])
        hidden = hidden + _interval_len(s, e)
        return (sq - hidden).sum(dim=-1)

    def sparsity(self) -> float:
        """Share of (query, key) pairs that are masked, over all batch rows and mask heads."""
        total = self.batch * self.num_heads * self.seqlen_q * self.seqlen_k
        if total == 0:
            return 0.0
        return 1.0 - self.visible_pairs().sum().item() / total

    def block_sparsity(self, block_m: int = 128, block_n: int = 128) -> float:
        """Share of ``block_m x block_n`` tiles that are fully masked (the paper's ``rho``)."""
        from ._tiling import classify_tiles

        states = classify_tiles(self.intervals(), self.seqlen_k, block_m, block_n)
        return (states == 0).float().mean().item() if states.numel() else 0.0

    # ----------------------------------------------------------------------------------------- from dense
    @classmethod
    def from_dense(cls, mask: torch.Tensor, causal: bool | None = None) -> ColumnMask:
        """Compress a dense bool mask (True = may attend) into the most compact column-wise form.

        Args:
            mask: bool ``[B, Hm, Sq, Sk]`` or ``[Sq, Sk]``.
            causal: force a causal (True) or non-causal (False) form; ``None`` picks causal when the causal
                triangle is hidden everywhere.

        Raises:
            NotRepresentableError: a column needs more hidden runs than the forms allow; the message names
                the first such column.
        """
        from ._dense import column_mask_from_dense

        lts_etc, chosen_causal = column_mask_from_dense(mask, causal)
        return cls(lts_etc, causal=chosen_causal, seqlen_q=mask.shape[-2])

    # ----------------------------------------------------------------------------------------- rendering
    def to_text(self, batch: int = 0, head: int = 0, max_size: int = 64) -> str:
        """A compact terminal picture of one mask head: ``#`` visible, ``.`` hidden (downsampled if large)."""
        from ._render import mask_to_text

        return mask_to_text(self, batch, head, max_size)

    def save_png(self, path: str, batch: int = 0, head: int = 0, title: str | None = None) -> None:
        """Write a PNG picture of one mask head (needs matplotlib)."""
        from ._render import mask_to_png

        mask_to_png(self, path, batch, head, title)

    def __repr__(self) -> str:
        names = ", ".join(FORMS[(self.causal, self.num_bounds)])
        return (
            f"ColumnMask(B={self.batch}, Hm={self.num_heads}, Sq={self.seqlen_q}, Sk={self.seqlen_k}, "
            f"causal={self.causal}, bounds=[{names}], device={self.device})"
        )

    def __str__(self) -> str:
        return self.__repr__() + "\n" + self.to_text()
