"""Pictures of a column-wise mask: a terminal sketch and a PNG (matplotlib, imported lazily).

Both downsample by square blocks of ``s x s`` (query rows x key columns) and count the visible pairs of each
block straight from the intervals, in O(Sk + blocks): the dense ``Sq x Sk`` mask is never built, so a
1M-token mask renders in about a second.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ._column_mask import ColumnMask

__all__ = ["mask_to_png", "mask_to_text"]

VISIBLE, HIDDEN, MIXED = "#", ".", "+"


def _check_head(mask: ColumnMask, batch: int, head: int) -> None:
    for name, value, size in (("batch", batch, mask.batch), ("head", head, mask.num_heads)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if not 0 <= value < size:
            raise ValueError(f"{name} must be in [0, {size}), got {value}")


def _block_visible(mask: ColumnMask, batch: int, head: int, scale: int) -> torch.Tensor:
    """Visible (query, key) pairs per ``scale x scale`` block of one head: int64 ``[ceil(Sq/s), ceil(Sk/s)]``.

    The hidden rows of column ``j`` are the union of (at most) three intervals: the causal triangle, ``[LTS,
    LTE)`` and ``[UTS, UTE)``. By inclusion-exclusion that is a signed sum of 7 intervals. For one interval
    ``[a, b)`` the hidden rows below boundary ``r`` are ``clip(r, a, b) - a``, which is ``r * c + d`` with
    events ``(c, d) += (1, -a)`` at ``a`` and ``(-1, +b)`` at ``b``. Summing the events of every column of a
    column block up to each row-block boundary (a histogram plus a cumulative sum) gives the hidden pairs of
    every block in O(Sk + blocks), never touching the dense mask.
    """
    sq, sk = mask.seqlen_q, mask.seqlen_k
    iv = mask.intervals()
    lts, lte, uts, ute = (v[batch, head].cpu() for v in (iv.lts, iv.lte, iv.uts, iv.ute))
    cols = torch.arange(sk, dtype=torch.int64)
    tri_end = (cols - (sk - sq)).clamp(0, sq)
    tri_start = torch.zeros_like(tri_end) if mask.causal else tri_end
    base = [(tri_start, tri_end), (lts, lte), (uts, ute)]
    terms: list[tuple[int, torch.Tensor, torch.Tensor]] = [(1, s, e) for s, e in base]
    for a, b in ((0, 1), (0, 2), (1, 2)):
        s = torch.maximum(base[a][0], base[b][0])
        e = torch.minimum(base[a][1], base[b][1])
        terms.append((-1, s, e))
    s = torch.maximum(torch.maximum(base[0][0], base[1][0]), base[2][0])
    e = torch.minimum(torch.minimum(base[0][1], base[1][1]), base[2][1])
    terms.append((1, s, e))

    n_row_blocks, n_col_blocks = -(-sq // scale), -(-sk // scale)
    width = n_row_blocks + 1  # event buckets: floor(position / scale), position in [0, Sq]
    col_block = cols // scale
    slope = torch.zeros(n_col_blocks * width, dtype=torch.int64)
    offset = torch.zeros(n_col_blocks * width, dtype=torch.int64)
    for sign, start, end in terms:
        live = start < end
        cb, a, b = col_block[live], start[live], end[live]
        ones = torch.full_like(a, sign)
        slope.index_add_(0, cb * width + a // scale, ones)
        offset.index_add_(0, cb * width + a // scale, -sign * a)
        slope.index_add_(0, cb * width + b // scale, -ones)
        offset.index_add_(0, cb * width + b // scale, sign * b)
    # Events strictly below boundary r_k = min(k * scale, Sq) are those in buckets < k.
    slope = torch.nn.functional.pad(slope.view(n_col_blocks, width).cumsum(-1), (1, 0))[:, :width]
    offset = torch.nn.functional.pad(offset.view(n_col_blocks, width).cumsum(-1), (1, 0))[:, :width]
    bounds = (torch.arange(width, dtype=torch.int64) * scale).clamp_max(sq)
    hidden_below = slope * bounds + offset  # [Cb, Rb + 1]
    hidden = (hidden_below[:, 1:] - hidden_below[:, :-1]).T  # [Rb, Cb]
    area = _block_sizes(sq, scale).view(-1, 1) * _block_sizes(sk, scale).view(1, -1)
    return area - hidden


def _block_sizes(n: int, scale: int) -> torch.Tensor:
    nb = -(-n // scale)
    start = torch.arange(nb, dtype=torch.int64) * scale
    return (start + scale).clamp_max(n) - start


def _scale_for(mask: ColumnMask, max_size: int) -> int:
    return max(1, math.ceil(mask.seqlen_q / max_size), math.ceil(mask.seqlen_k / max_size))


def mask_to_text(mask: ColumnMask, batch: int = 0, head: int = 0, max_size: int = 64) -> str:
    """A terminal picture of one mask head: a header line, then one line per (block of) query rows.

    ``#`` every pair of the cell visible, ``.`` every pair hidden, ``+`` some of each. The mask is shrunk by
    square blocks of ``s x s`` pairs so that the picture has at most ``max_size x max_size`` cells; the header
    states the shape and ``s``. The result has ``1 + ceil(Sq / s)`` lines.
    """
    _check_head(mask, batch, head)
    if not isinstance(max_size, int) or isinstance(max_size, bool):
        raise TypeError(f"max_size must be an int, got {type(max_size).__name__}")
    if max_size < 1:
        raise ValueError(f"max_size must be a positive int, got {max_size!r}")
    scale = _scale_for(mask, max_size)
    sq, sk = mask.seqlen_q, mask.seqlen_k
    header = (
        f"mask batch={batch} head={head}: Sq={sq} x Sk={sk}, causal={mask.causal}, "
        f"1 cell = {scale}x{scale} pairs ({VISIBLE} visible, {HIDDEN} hidden, {MIXED} mixed)"
    )
    if sq == 0 or sk == 0:
        return header
    visible = _block_visible(mask, batch, head, scale)
    area = _block_sizes(sq, scale).view(-1, 1) * _block_sizes(sk, scale).view(1, -1)
    chars = [
        [HIDDEN if v == 0 else VISIBLE if v == a else MIXED for v, a in zip(vr, ar, strict=True)]
        for vr, ar in zip(visible.tolist(), area.tolist(), strict=True)
    ]
    return "\n".join([header, *("".join(row) for row in chars)])


def mask_to_png(
    mask: ColumnMask,
    path: str,
    batch: int = 0,
    head: int = 0,
    title: str | None = None,
    max_pixels: int = 512,
    dpi: int = 72,
) -> None:
    """Write a PNG of one mask head: dark = visible, light = hidden, grey = partly visible when downsampled.

    The mask is shrunk by square blocks to at most ``max_pixels`` cells per side. Uses matplotlib's Agg
    canvas directly (no pyplot, no change to the global backend).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "ColumnMask.save_png needs matplotlib: pip install matplotlib (or pip install 'flashmask[plot]')"
        ) from exc
    _check_head(mask, batch, head)
    sq, sk = mask.seqlen_q, mask.seqlen_k
    scale = _scale_for(mask, max_pixels)
    if sq and sk:
        visible = _block_visible(mask, batch, head, scale).double()
        area = (_block_sizes(sq, scale).view(-1, 1) * _block_sizes(sk, scale).view(1, -1)).double()
        image = (visible / area).numpy()
    else:
        image = torch.zeros(1, 1, dtype=torch.float64).numpy()
    aspect = min(max(max(sq, 1) / max(sk, 1), 0.25), 4.0)
    fig = Figure(figsize=(4.0, 4.0 * aspect), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(
        image,
        cmap="Greys",
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest",
        extent=(-0.5, image.shape[1] * scale - 0.5, image.shape[0] * scale - 0.5, -0.5),
        aspect="equal",
    )
    ax.set_xlim(-0.5, max(sk, 1) - 0.5)
    ax.set_ylim(max(sq, 1) - 0.5, -0.5)
    ax.set_xlabel("key j")
    ax.set_ylabel("query i")
    ax.set_title(title if title is not None else f"Sq={sq}, Sk={sk}, causal={mask.causal}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
