"""Render one PNG per mask type into docs/masks/ (N = 64), for docs/masks.md.

Run from the repository root: ``PYTHONPATH=src python3 docs/make_mask_pictures.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from flashmask import ColumnMask, masks  # noqa: E402

N = 64


def examples() -> dict[str, tuple[str, ColumnMask]]:
    """``file stem -> (title, mask)``; the calls are the ones shown in docs/masks.md."""
    g = torch.Generator().manual_seed(0)
    cols = torch.arange(N)
    band_start = (cols - torch.randint(0, 12, (N,), generator=g)).clamp_min(0)
    band_end = (cols + 1 + torch.randint(0, 12, (N,), generator=g)).clamp_max(N)
    sink_window = torch.where(cols < 4, N, (cols + 17).clamp_max(N))
    return {
        "full": ("full(64)", masks.full(N)),
        "causal": ("causal(64)", masks.causal(N)),
        "sliding_window": ("sliding_window(64, 16)", masks.sliding_window(N, 16)),
        "causal_document": ("causal_document([20, 14, 30])", masks.causal_document([20, 14, 30])),
        "document": ("document([20, 14, 30])", masks.document([20, 14, 30])),
        "share_question": (
            "share_question([(12, [10, 8, 6]), (10, [10, 8])])",
            masks.share_question([(12, [10, 8, 6]), (10, [10, 8])]),
        ),
        "global_sliding_window": (
            "global_sliding_window(64, 6, 8, 8)",
            masks.global_sliding_window(N, 6, 8, 8),
        ),
        "causal_blockwise": ("causal_blockwise([14, 12, 16, 22])", masks.causal_blockwise([14, 12, 16, 22])),
        "prefix_lm_document": (
            "prefix_lm_document([20, 14, 30], [8, 6, 12])",
            masks.prefix_lm_document([20, 14, 30], [8, 6, 12]),
        ),
        "prefix_lm_causal": ("prefix_lm_causal(64, 24)", masks.prefix_lm_causal(N, 24)),
        "qk_sparse": ("qk_sparse(64, [(8, 10), (30, 16)])", masks.qk_sparse(N, [(8, 10), (30, 16)])),
        "hash_sparse": ("hash_sparse(start, end)", masks.hash_sparse(band_start, band_end)),
        "eviction": ("eviction(sinks + window)", masks.eviction(sink_window)),
        "random_eviction": (
            "random_eviction(64, 24, generator)",
            masks.random_eviction(N, 24, torch.Generator().manual_seed(0)),
        ),
    }


def main() -> None:
    out = HERE / "masks"
    out.mkdir(exist_ok=True)
    for stem, (title, mask) in examples().items():
        path = out / f"{stem}.png"
        mask.save_png(str(path), title=title)
        print(f"{path.relative_to(HERE.parent)}: {path.stat().st_size} bytes, sparsity {mask.sparsity():.2f}")


if __name__ == "__main__":
    main()
