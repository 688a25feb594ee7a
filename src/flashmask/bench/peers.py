"""Timing helpers and the peers measured next to flashmask: FlexAttention and PyTorch SDPA.

Every peer runs on ``[B, H, S, D]`` contiguous copies of our inputs, is timed like ours (forward; backward as
``torch.autograd.grad`` of one fixed forward output with ``retain_graph=True``) and has its forward output
checked against ours before its numbers count.
"""

from __future__ import annotations

import contextlib
import gc
import math
import statistics
import subprocess
import time
from collections.abc import Callable

import torch

DEFAULT_TOL = 2e-2


# ------------------------------------------------------------------------------------------- timing
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timer:
    """Median time of ``fn`` in ms from CUDA events, after warm-up.

    One call warms up (compilation, allocator), one more estimates the time; then enough calls to fill
    ``rep_ms`` (at least 3, at most 100) are timed one by one and the median is returned. Unlike
    ``triton.testing.do_bench`` this needs no 5-call estimate, which matters when one call takes seconds
    (fwd+bwd at 128K). On CPU (tests of the bookkeeping only) a median of a few wall-clock runs.
    """

    def __init__(self, device: torch.device, warmup_ms: int = 25, rep_ms: int = 100) -> None:
        self.device, self.warmup_ms, self.rep_ms = device, warmup_ms, rep_ms
        # The caching allocator's calls to the driver during the last call's timed runs (CUDA): a cudaMalloc or
        # cudaFree inside a timed run stalls it, one in the warm-up does not count.
        self.last_driver_calls: dict = {}

    def __call__(self, fn: Callable[[], object]) -> float:
        if self.device.type == "cuda":
            fn()
            estimate = self._time_once(fn)
            for _ in range(min(10, int(self.warmup_ms / max(estimate, 1e-3)))):
                fn()
            reps = max(3, min(100, int(self.rep_ms / max(estimate, 1e-3))))
            before = _allocator_counts(self.device)
            median = statistics.median([self._time_once(fn) for _ in range(reps)])
            self.last_driver_calls = {k: v - before.get(k, 0) for k, v in _allocator_counts(self.device).items()}
            return median
        fn()
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    def _time_once(self, fn: Callable[[], object]) -> float:
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)

    def wall(self, fn: Callable[[], object]) -> tuple[float, object]:
        """One call, wall clock in seconds (synchronised), and its result."""
        sync(self.device)
        t0 = time.perf_counter()
        result = fn()
        sync(self.device)
        return time.perf_counter() - t0, result


# ~20 ms at an H100's clock: longer than the host's time of any one call measured here.
SLEEP_CYCLES = 40_000_000
# Calls per GPU-only median in the benchmark's records (each behind a 20 ms sleep).
GPU_ONLY_REPS = 5


def gpu_only_ms(fn: Callable[[], object], reps: int = 20) -> float:
    """Median ms of ``fn`` on the GPU alone (CUDA): each call queued behind a sleep kernel, so that the host's time
    of the call is hidden. The development tools' measure (``benchmarks/``); the benchmark's ``Timer`` counts the
    host's time, as a caller waiting for the result does.

    The sleep also rests the card: a kernel that runs it at its power cap starts here at the top clock and reads
    up to ~10% faster than in a run of calls (``benchmarks/clock_probe.py``, NOTES session 26). ``back_to_back_ms``
    is the GPU's time at the clocks a run of calls leaves it at."""
    return _queued_ms(fn, lambda: torch.cuda._sleep(SLEEP_CYCLES), reps)


def back_to_back_ms(fn: Callable[[], object], reps: int = 3) -> float:
    """Median ms of ``fn`` on the GPU when queued right behind another call of it (the GPU never idle)."""
    return _queued_ms(fn, fn, reps)


def _queued_ms(fn: Callable[[], object], before: Callable[[], object], reps: int) -> float:
    """Median GPU ms of ``fn`` queued, from a synchronised start, behind the GPU work of ``before``."""
    times = []
    for _ in range(reps):
        torch.cuda.synchronize()
        before()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


_ALLOCATOR_COUNTS = ("num_device_alloc", "num_device_free", "num_alloc_retries", "num_sync_all_streams")


def _allocator_counts(device: torch.device) -> dict:
    if device.type != "cuda":
        return {}
    stats = torch.cuda.memory_stats(device)
    return {k: stats.get(k, 0) for k in _ALLOCATOR_COUNTS}


def gpu_state(device: torch.device) -> dict | None:
    """The card's temperature (C), SM clock (MHz) and power draw (W) now, from ``nvidia-smi`` (read-only).

    Our kernels and the peers run one after another in a long call, and the card warms as it goes; under its power
    cap a warm card runs lower clocks (``benchmarks/NOTES.md``, session 13). Each timing records the state it
    ended in, so that rows measured on a hot card can be told apart. ``None`` off CUDA or if unreadable.
    """
    if device.type != "cuda":
        return None
    props = torch.cuda.get_device_properties(device)
    # nvidia-smi numbers the cards as the driver does, not as CUDA_VISIBLE_DEVICES does: name it by its UUID.
    uuid = getattr(props, "uuid", None)
    return nvidia_smi_state(f"GPU-{uuid}" if uuid is not None else str(device.index or 0))


def nvidia_smi_state(card: str) -> dict | None:
    """``gpu_state``'s query for the card ``card`` (an index or ``GPU-<uuid>``)."""
    query = ["--query-gpu=temperature.gpu,clocks.sm,power.draw", "--format=csv,noheader,nounits"]
    try:
        done = subprocess.run(["nvidia-smi", "-i", card, *query], capture_output=True, text=True, timeout=10)
        temperature, clock, power = (float(x) for x in done.stdout.strip().split(","))
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return {"temperature_c": temperature, "sm_clock_mhz": clock, "power_w": power}


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def short_error(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


# ------------------------------------------------------------------------------------------- inputs
class Inputs:
    """q, k, v, dO ``[B, S, H, D]`` (ours) and, made on first use, ``[B, H, S, D]`` contiguous copies."""

    def __init__(self, batch, seqlen, heads, head_dim, dtype, device, seed: int = 0) -> None:
        g = torch.Generator(device=device).manual_seed(seed)
        shape = (batch, seqlen, heads, head_dim)
        self.q, self.k, self.v, self.do = (
            torch.randn(shape, generator=g, device=device, dtype=dtype) for _ in range(4)
        )
        for t in (self.q, self.k, self.v):
            t.requires_grad_()
        self.batch, self.seqlen, self.heads, self.head_dim = batch, seqlen, heads, head_dim
        self.device, self.dtype = device, dtype
        self._bhsd: tuple[torch.Tensor, ...] | None = None

    def bhsd(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        if self._bhsd is None:
            qt, kt, vt, dot = (x.detach().transpose(1, 2).contiguous() for x in (self.q, self.k, self.v, self.do))
            self._bhsd = (qt.requires_grad_(), kt.requires_grad_(), vt.requires_grad_(), dot)
        return self._bhsd  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------- checks
def compare(ours_bshd: torch.Tensor, peer_bhsd: torch.Tensor, tol: float, chunk: int = 8192) -> dict:
    """Max abs difference of a peer's forward output (``[B, H, S, D]``) from ours (``[B, S, H, D]``).

    Elements fail when ``|peer - ours| > tol + tol * |ours|`` or the peer's value is not finite. Done in
    pieces of ``chunk`` rows of one batch row, so that the float32 temporaries stay small.
    """
    max_err, bad = 0.0, 0
    nonfinite = False
    batch, seqlen = ours_bshd.shape[:2]
    for b in range(batch):
        for s0 in range(0, seqlen, chunk):
            ref = ours_bshd[b, s0 : s0 + chunk].float()
            diff = (peer_bhsd[b, :, s0 : s0 + chunk].transpose(0, 1).float() - ref).abs()
            finite = torch.isfinite(diff)
            if not bool(finite.all()):
                nonfinite = True
            if bool(finite.any()):
                max_err = max(max_err, diff[finite].max().item())
            bad += int((~(diff <= tol + tol * ref.abs())).sum().item())
            del ref, diff, finite
    return {
        "max_abs_err": None if nonfinite else max_err,
        "max_abs_err_finite": max_err,
        "nonfinite": nonfinite,
        "mismatched_elements": bad,
        "mismatch": bad > 0,
        "tol": tol,
    }


def timed_pass(
    forward: Callable[[], torch.Tensor], inputs: tuple, grad_out: torch.Tensor, timer: Timer, check
) -> tuple[dict, torch.Tensor | None]:
    """Time ``forward`` and its backward; ``check(out)`` returns the accuracy fields for the record.

    Returns the record and the output (detached) of one forward call.
    """
    fwd_ms = timer(forward)
    out = forward()
    record = dict(check(out)) if check is not None else {}

    def backward():
        return torch.autograd.grad(out, inputs, grad_out, retain_graph=True)

    bwd_ms = timer(backward)
    driver_calls = timer.last_driver_calls
    record.update(fwd_ms=fwd_ms, bwd_ms=bwd_ms, total_ms=fwd_ms + bwd_ms)
    if timer.device.type == "cuda":
        # Beside the timer's figures (which count the host's time before the GPU starts, as a caller waiting on
        # the result sees it): the GPU's time alone after an idle GPU (each call behind a sleep kernel), the same
        # right behind another call (no idle: the card's steady clocks under its power cap), and how often the
        # caching allocator went to the driver in the backward's timed runs (a cudaMalloc / cudaFree inside a
        # timed call stalls it; a retry frees the cache, with a device-wide sync).
        record.update(fwd_gpu_ms=gpu_only_ms(forward, GPU_ONLY_REPS), bwd_gpu_ms=gpu_only_ms(backward, GPU_ONLY_REPS),
                      bwd_busy_ms=back_to_back_ms(backward), bwd_allocator=driver_calls)  # fmt: skip
    state = gpu_state(grad_out.device)
    if state is not None:
        record["gpu_after"] = state
    # The autograd graph goes when this frame (and the closure) does; the caller keeps only the values.
    return record, out.detach()


# ------------------------------------------------------------------------------------------- flex
def flex_missing_reason() -> str | None:
    """``None`` if FlexAttention can be imported, else why not."""
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention  # noqa: F401
    except Exception as exc:  # ImportError on old torch, anything else on broken installs
        return f"torch.nn.attention.flex_attention unavailable in torch {torch.__version__} ({short_error(exc)})"
    return None


def reset_dynamo() -> None:
    """Fresh dynamo caches, and limits high enough that FlexAttention never falls back to its unfused path.

    Past dynamo's recompile limit (8 by default) a compiled ``flex_attention`` silently runs eagerly and
    materialises the whole score matrix; every new ``mask_mod`` function is a recompile.
    """
    import torch._dynamo

    torch._dynamo.reset()
    cfg = torch._dynamo.config
    for name, value in (
        ("recompile_limit", 256),
        ("cache_size_limit", 256),
        ("accumulated_recompile_limit", 4096),
        ("accumulated_cache_size_limit", 4096),
    ):
        if hasattr(cfg, name):
            with contextlib.suppress(Exception):  # a renamed or read-only knob is not worth failing for
                setattr(cfg, name, max(int(getattr(cfg, name)), value))


def block_mask_nbytes(block_mask) -> int:
    """Bytes of every tensor a ``BlockMask`` holds."""
    return sum(t.numel() * t.element_size() for t in block_mask.as_tuple() if isinstance(t, torch.Tensor))


class FlexPeer:
    """``torch.compile``d ``flex_attention`` and ``create_block_mask`` after a dynamo reset.

    Make one per mask type (``mask_mod`` function): a new one resets dynamo so that compiled graphs do not
    pile up towards the recompile limit.
    """

    block_mask_builder = "torch.compile(create_block_mask)"

    def __init__(self, device: torch.device) -> None:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        reset_dynamo()
        self.device = device
        self._eager_build = create_block_mask
        self._build = torch.compile(create_block_mask)
        self._builder = self.block_mask_builder
        self._attention = torch.compile(flex_attention, dynamic=False)
        self._compiled_shapes: set[tuple] = set()

    def block_mask(self, mask_mod, batch: int, seqlen: int, timer: Timer, builds: int):
        """The ``BlockMask`` and its cost: first build (includes compiling), median of ``builds`` more.

        If the compiled builder fails, the eager one is used where its dense evaluation of ``mask_mod``
        (``B x S x S``) stays small; the builder used is recorded.
        """

        def build():
            return self._build(mask_mod, batch, None, seqlen, seqlen, device=self.device)

        try:
            first_s, block_mask = timer.wall(build)
        except Exception as exc:
            if self._build is self._eager_build or batch * seqlen * seqlen > 2**31:
                raise
            self._build = self._eager_build
            self._builder = f"create_block_mask, eager (the compiled build failed: {short_error(exc, 160)})"
            first_s, block_mask = timer.wall(build)
        times = []
        for _ in range(max(1, builds)):
            seconds, block_mask = timer.wall(build)
            times.append(seconds * 1e3)
        info = dict(
            block_mask_ms=statistics.median(times),
            block_mask_first_s=first_s,
            block_mask_bytes=block_mask_nbytes(block_mask),
            block_mask_builder=self._builder,
        )
        return block_mask, info

    def measure(self, workload, inputs: Inputs, reference: torch.Tensor, timer: Timer, opts) -> dict:
        qt, kt, vt, dot = inputs.bhsd()
        block_mask, info = self.block_mask(
            workload.mask_mod, inputs.batch, inputs.seqlen, timer, opts.block_mask_builds
        )

        def forward():
            return self._attention(qt, kt, vt, block_mask=block_mask)

        key = (tuple(qt.shape), qt.dtype)
        if key not in self._compiled_shapes:
            # First call compiles (forward graph; the backward compiles on its first call below).
            info["compile_fwd_s"], out = timer.wall(forward)
            info["compile_bwd_s"], _ = timer.wall(
                lambda: torch.autograd.grad(out, (qt, kt, vt), dot, retain_graph=True)
            )
            del out
            self._compiled_shapes.add(key)
        record, _ = timed_pass(forward, (qt, kt, vt), dot, timer, lambda o: compare(reference, o, opts.tol))
        record.update(info)
        return record


# ------------------------------------------------------------------------------------------- SDPA
def sdpa_dense_measure(mask, inputs: Inputs, reference: torch.Tensor, timer: Timer, opts) -> dict:
    """SDPA (memory-efficient backend) with the dense ``[B, 1, S, S]`` bool mask (True = attend)."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    qt, kt, vt, dot = inputs.bhsd()
    build_s, dense = timer.wall(mask.to_dense)
    if dense.shape[1] not in (1, inputs.heads):
        dense = dense.repeat_interleave(inputs.heads // dense.shape[1], dim=1)

    def forward():
        return F.scaled_dot_product_attention(qt, kt, vt, attn_mask=dense)

    with sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION):
        record, _ = timed_pass(forward, (qt, kt, vt), dot, timer, lambda o: compare(reference, o, opts.tol))
    record.update(
        backend="EFFICIENT_ATTENTION",
        dense_mask_bytes=dense.numel() * dense.element_size(),
        dense_build_ms=build_s * 1e3,
    )
    return record


def sdpa_backend_measure(which: str, causal: bool, inputs: Inputs, reference, timer: Timer, opts) -> dict:
    """SDPA without a mask (``is_causal`` for causal) on one forced backend: ``cudnn`` or ``flash``."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION}[which]
    qt, kt, vt, dot = inputs.bhsd()

    def forward():
        return F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal)

    with sdpa_kernel(backend):
        record, _ = timed_pass(forward, (qt, kt, vt), dot, timer, lambda o: compare(reference, o, opts.tol))
    record.update(backend=backend.name, is_causal=causal)
    return record


# ------------------------------------------------------------------------------------------- FLOPs
def tflops(flops: float, ms: float | None) -> float | None:
    if ms is None or not ms > 0 or not math.isfinite(ms):
        return None
    return flops / (ms * 1e-3) / 1e12


def add_rates(record: dict, flops_fwd_exact: float, flops_fwd_paper: float) -> dict:
    """TFLOPs/s under both conventions (SPEC section 4): backward counts 2.5x the forward."""
    f, b, t = record.get("fwd_ms"), record.get("bwd_ms"), record.get("total_ms")
    for suffix, flops in (("exact", flops_fwd_exact), ("paper", flops_fwd_paper)):
        record[f"fwd_tflops_{suffix}"] = tflops(flops, f)
        record[f"bwd_tflops_{suffix}"] = tflops(2.5 * flops, b)
        record[f"total_tflops_{suffix}"] = tflops(3.5 * flops, t)
    return record
