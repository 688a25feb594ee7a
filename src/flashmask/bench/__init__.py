"""Benchmark suite: the paper's kernel table with its peers, mask cost, sparsity sweep (``flashmask bench``).

``flashmask.bench.run(BenchOptions(...), out_dir)`` runs it from Python; ``report.render`` re-renders a
recorded ``results.json``. The GPU code is imported on first use, so ``workloads`` stays light.
"""

from __future__ import annotations

__all__ = ["BenchOptions", "render", "run"]


def __getattr__(name: str):
    if name == "run":
        from .runner import run

        return run
    if name == "BenchOptions":
        from .plan import BenchOptions

        return BenchOptions
    if name == "render":
        from .report import render

        return render
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
