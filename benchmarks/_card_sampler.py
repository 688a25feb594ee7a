"""The card's SM clock and power draw sampled in the background by ``nvidia-smi`` (read-only queries).

The H100 of the benchmarks runs our kernels at its power cap (~690 W), where the clock, and so the time of a call,
follows the energy the call spends (``benchmarks/NOTES.md``, session 26). ``CardSampler`` lets a script read the
clock and power over any stretch of wall time it ran, e.g. a block of back-to-back calls.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import threading
import time


class CardSampler:
    """``nvidia-smi`` every ``period_ms``: (wall time, SM clock MHz, power W); ``between`` summarises a stretch."""

    def __init__(self, period_ms: int = 20) -> None:
        card = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0] or "0"
        self.proc = subprocess.Popen(
            ["nvidia-smi", "-i", card, "--query-gpu=clocks.sm,power.draw", "--format=csv,noheader,nounits",
             "-lms", str(period_ms)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.samples: list[tuple[float, float, float]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                clock, power = (float(x) for x in line.strip().split(","))
            except ValueError:
                continue
            self.samples.append((time.time(), clock, power))

    def between(self, t0: float, t1: float) -> tuple[float, float, int]:
        """Median SM clock (MHz) and power (W) of the samples taken in ``[t0, t1]``, and how many there were."""
        inside = [(c, p) for t, c, p in self.samples if t0 <= t <= t1]
        if not inside:
            return float("nan"), float("nan"), 0
        return statistics.median(c for c, _ in inside), statistics.median(p for _, p in inside), len(inside)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()
