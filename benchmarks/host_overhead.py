"""How much of a timed call is the host's: our forward and backward timed as the benchmark times them.

    python benchmarks/host_overhead.py --seqlen 8192 --batch 16 --masks sliding_window,global_sliding_window

The benchmark (``flashmask.bench.peers.Timer``) records a CUDA event, makes one call, records another and
waits: the GPU starts idle, so until the call's first large kernel is queued it waits on Python (validation,
the custom op's dispatch, the block bounds and tile lists, descriptors, the launches). Per pass this prints:

- ``timer``: the benchmark's median (CUDA events around one call on an idle GPU);
- ``busy``: the same call queued behind a 20 ms sleep kernel, so the host's time is hidden: the GPU's alone, but
  on a rested card (session 26: at the power cap our kernels run ~10% slower in a run of calls than behind the
  sleep, so ``timer - busy`` is mostly clock, not host; ``clock_probe.py`` separates the two);
- ``host``: wall time of the call's Python (the GPU kept busy, so no launch waits on it);
- ``polling``: the timer's measurement with the host polling the end event (``query``) rather than blocking;
- the kernels of one call (``torch.profiler``): GPU time of each, and the GPU's idle time between the first
  kernel's start and the last one's end.

With ``--flex`` the same for FlexAttention (compiled, a ``BlockMask`` of the same mask) on the first mask; with
``--cprofile N`` instead the Python profile (``cProfile``, by own time) of N forward and N backward calls on the
first mask; with ``--ops`` the host's time of each step of our call path (forward and backward) on the first mask;
with ``--timeline`` one timed call of each pass under ``torch.profiler`` with host activity: when each CUDA
runtime call and kernel starts and ends, relative to the start event; with ``--launch`` the host time of each
launch of one call and of its parts (Triton's binder, the compiled kernel's launcher); with ``--compare DIR`` the
same table for this tree and an earlier copy of the package (``flashmask_base`` in ``DIR``), in turn.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import os
import pstats
import statistics
import sys
import time

import torch
import triton

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from _kernel_calls import set_configs

from flashmask import flashmask_attention
from flashmask.bench import workloads
from flashmask.bench.peers import SLEEP_CYCLES, Timer, gpu_only_ms


def _host_ms(fn, reps: int = 20) -> float:
    times = []
    for _ in range(reps):
        torch.cuda.synchronize()
        torch.cuda._sleep(SLEEP_CYCLES)
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    torch.cuda.synchronize()
    return statistics.median(times)


def _kernels(fn) -> tuple[list[tuple[str, float]], float]:
    """The kernels of one call on an idle GPU: ``(name, ms)`` in launch order, and the GPU's idle ms among them."""
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    events = sorted(
        (e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA and e.time_range.elapsed_us() > 0),
        key=lambda e: e.time_range.start,
    )
    kernels = [(e.name[:60], e.time_range.elapsed_us() / 1e3) for e in events]
    busy = sum(ms for _, ms in kernels)
    span = (events[-1].time_range.end - events[0].time_range.start) / 1e3 if events else 0.0
    return kernels, span - busy


def _timeline(label: str, fwd, bwd) -> list[tuple]:
    """One timed call of each pass as the benchmark's timer makes it (idle GPU, an event on each side), under
    ``torch.profiler`` with host activity: when each CUDA runtime call and each kernel starts and ends (us after
    the start event's record), so a gap shows which host step the GPU waited for, and a sync shows as one."""
    for name, fn in (("fwd", fwd), ("bwd", bwd)):
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
        ) as prof:
            start.record()
            fn()
            end.record()
            end.synchronize()
        print(f"== timeline {label} {name}: timer {start.elapsed_time(end):.3f} ms")
        events = [e for e in prof.events() if e.time_range.elapsed_us() >= 0]
        record = [e for e in events if e.name == "cudaEventRecord"]
        t0 = min(e.time_range.start for e in record) if record else min(e.time_range.start for e in events)
        shown = [
            e for e in events
            if e.device_type == torch.autograd.DeviceType.CUDA
            or e.name.startswith(("cuda", "cu", "aten::empty", "aten::zeros", "aten::to", "aten::copy_", "autograd::"))
        ]  # fmt: skip
        for e in sorted(shown, key=lambda e: e.time_range.start):
            side = "GPU" if e.device_type == torch.autograd.DeviceType.CUDA else "cpu"
            print(f"  {side} {e.time_range.start - t0:9.1f} {e.time_range.end - t0:9.1f}  {e.name[:70]}")
    return []


def _spin_ms(fn, reps: int = 20) -> float:
    """The timer's measurement with the host polling the end event instead of blocking on it: if the timer minus
    busy exceeds the host's time mostly because the CPU sleeps while it waits and wakes slower, this is lower."""
    times = []
    for _ in range(reps):
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        while not end.query():
            pass
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def _report(label: str, fwd, bwd, timer: Timer) -> list[tuple]:
    rows = []
    for name, fn in (("fwd", fwd), ("bwd", bwd)):
        t, busy, host, spin = timer(fn), gpu_only_ms(fn), _host_ms(fn), _spin_ms(fn)
        kernels, idle = _kernels(fn)
        print(f"{label} {name}: timer {t:.3f} ms, busy {busy:.3f} ms, host {host:.3f} ms, timer with the host "
              f"polling {spin:.3f} ms, idle between kernels {idle:.3f} ms")  # fmt: skip
        for kname, ms in kernels:
            print(f"    {ms:8.3f} ms  {kname}")
        rows.append((label, name, t, busy, t - busy, host, spin - busy, idle))
    return rows


def _ops(q, k, v, do, mask, fwd, bwd, out) -> None:
    """Host microseconds per step (median of 100 calls, the GPU kept busy so that no launch waits)."""
    from flashmask import kernels as K
    from flashmask._ops import attention as eager
    from flashmask._ops import attention_fwd as custom_op
    from flashmask._validation import check_qkv, resolve_mask
    from flashmask.kernels import tiles

    idx, causal = mask.startend_row_indices, mask.causal
    q0, k0, v0, o0 = (x.detach() for x in (q, k, v, out))
    scale = q.shape[-1] ** -0.5
    sq, sk = q.shape[1], k.shape[1]
    _, lse = K.attention_forward(q0, k0, v0, idx, causal, scale)
    cfgs = K._pick(128, q.device, idx, causal, q.shape[1], k.shape[1])
    margs = K._MaskArgs(idx, causal, q.shape[2], lse)
    form = margs.form
    bounds = tiles.block_bounds(idx, form, q.shape[1], k.shape[1], 128, q.device)
    fcfg = cfgs.forward
    _, lists = K._lists(margs, sq, sk, fcfg.block_m, fcfg.block_n, q.device, transposed=False)
    counts = lists.full_count + lists.part_count
    storage = torch.empty(tiles.list_words(1, 64, 64), dtype=torch.int32, device=q.device)

    element = K.gl.bfloat16
    small = torch.empty(16, device=q.device)
    steps = [
        ("torch.empty (16 floats)", lambda: torch.empty(16, device=q.device)),
        ("torch.zeros (16 floats)", lambda: torch.zeros(16, device=q.device)),
        ("tensor.zero_ (16 floats)", lambda: small.zero_()),
        ("argsort + .to(int32) of the counts", lambda: torch.argsort(counts, dim=-1, descending=True).to(torch.int32)),
        ("block_bounds", lambda: tiles.block_bounds(idx, form, q.shape[1], k.shape[1], 128, q.device)),
        ("tile_lists (forward)", lambda: tiles.tile_lists(bounds, causal, q.shape[1], k.shape[1], 128, 128, False)),
        ("tiles.plan (forward: bounds, lists, order in one launch)", lambda: tiles.plan(
            idx, form, sq, sk, fcfg.block_m, fcfg.block_n, False, q.device)),
        ("_lists (forward)", lambda: K._lists(margs, sq, sk, fcfg.block_m, fcfg.block_n, q.device, False)),
        ("one Gluon descriptor", lambda: K._gluon_descriptor(q0, 64, element)),
        ("_MaskArgs", lambda: K._MaskArgs(idx, causal, q.shape[2], lse)),
        ("check_qkv + resolve_mask", lambda: (check_qkv(q, k, v), resolve_mask(mask, False, None, q, k))),
        ("_tma_ok(q, k, v)", lambda: K._tma_ok(q0, k0, v0)),
        ("the tile lists' six views of one storage (one split)", lambda: tiles._list_views(storage, 1, 64, 64)),
        ("flashmask::fwd custom op (grad enabled)", lambda: custom_op(q, k, v, idx, causal, scale, "triton", False)),
        ("_ops.attention (autograd.Function)", lambda: eager(q, k, v, idx, causal, scale, "triton", False)),
        ("_pick", lambda: K._pick(128, q.device, idx, causal, q.shape[1], k.shape[1])),
        ("_warp_specialized_ok", lambda: K._warp_specialized_ok(q0, k0, v0, margs, cfgs.forward, None)),
        ("_launch_forward_ws (3 descriptors + launch)", lambda: K._launch_forward_ws(
            q0, k0, v0, o0, lse, scale, margs, lists, cfgs.forward, lse, lse, lse, 0, 0, False, False, False)),
        ("attention_forward", lambda: K.attention_forward(q0, k0, v0, idx, causal, scale)),
        ("flashmask_attention (grad enabled)", fwd),
        ("attention_backward", lambda: K.attention_backward(do, q0, k0, v0, o0, lse, idx, causal, scale)),
        ("torch.autograd.grad (whole backward)", bwd),
    ]  # fmt: skip
    print("| step | host us |\n| --- | --- |")
    for label, fn in steps:
        print(f"| {label} | {_host_ms(fn, reps=100) * 1e3:.1f} |", flush=True)


def _layers(q, k, v, mask, extra: dict, reps: int = 40) -> None:
    """The timer's measurement (idle GPU, an event each side, a blocking wait) of the forward cut at each layer:
    the public call with and without autograd, the kernels' entry point, the same with the tile plan built outside
    the timed call, and the main kernel's launch alone (outputs and lists ready); the variants take turns call by
    call. ``timer - busy`` is what the host adds in front of the GPU work; the differences between rows say which
    layer costs it (``extra``: more labelled calls, e.g. FlexAttention's forward)."""
    from flashmask import kernels as K

    idx, causal = mask.startend_row_indices, mask.causal
    q0, k0, v0 = (x.detach() for x in (q, k, v))
    scale = q.shape[-1] ** -0.5
    sq, sk = q.shape[1], k.shape[1]
    out0, lse0 = K.attention_forward(q0, k0, v0, idx, causal, scale)
    cfg = K._pick(K._head_dim_pad(q.shape[3]), q.device, idx, causal, sq, sk).forward
    margs = K._MaskArgs(idx, causal, q.shape[2], lse0)
    ready = K._lists(margs, sq, sk, cfg.block_m, cfg.block_n, q.device, transposed=False)
    real_lists = K._lists

    def planned_lists(*args, **kwargs):
        ready[1].counter.zero_()  # the persistent kernel's item counter, which the plan kernel zeroes
        return ready

    def kernels_plan_outside():
        K._lists = planned_lists
        try:
            return K.attention_forward(q0, k0, v0, idx, causal, scale)
        finally:
            K._lists = real_lists

    def public_no_grad():
        with torch.no_grad():
            return flashmask_attention(q, k, v, mask)

    def main_launch_only():
        ready[1].counter.zero_()
        main_launch_zeroed()

    def main_launch_zeroed():
        K._launch_forward_ws(q0, k0, v0, out0, lse0, scale, margs, ready[1], cfg, lse0, lse0, lse0, 0, 0, False,
                             False, False)  # fmt: skip

    small = torch.empty(16, device=q.device)

    def python_only():
        # No GPU work: how fast the host runs plain Python right after a sync, against the same hot.
        total = 0
        for i in range(2000):
            total += i
        return total

    variants = {
        "public call (grad enabled)": lambda: flashmask_attention(q, k, v, mask),
        "public call, no_grad": public_no_grad,
        "kernels.attention_forward": lambda: K.attention_forward(q0, k0, v0, idx, causal, scale),
        "attention_forward, plan built outside": kernels_plan_outside,
        "main launch only (+ counter zero_)": main_launch_only,
        "main launch only (counter zeroed before the timer)": main_launch_zeroed,
        "one zero_ of 16 floats": lambda: small.zero_(),
        "plain Python (2000 additions, no GPU work)": python_only,
        **extra,
    }
    # Run before a variant's timed call, outside the timer (the persistent forward's item counter must start at 0).
    setups = {"main launch only (counter zeroed before the timer)": ready[1].counter.zero_}
    for fn in variants.values():
        fn()
    times = {label: [] for label in variants}
    host = {label: [] for label in variants}
    for _ in range(reps):
        for label, fn in variants.items():
            if label in setups:
                setups[label]()
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            t0 = time.perf_counter()
            fn()
            host[label].append((time.perf_counter() - t0) * 1e3)
            end.record()
            end.synchronize()
            times[label].append(start.elapsed_time(end))
    # The same Python hot: each variant's second of two calls made back to back, the GPU still busy with the
    # first (no sync between them, so the host's caches and clocks are as a training loop leaves them).
    hot = {label: [] for label in variants}
    for _ in range(reps // 2):
        for label, fn in variants.items():
            if label in setups:
                continue
            torch.cuda.synchronize()
            torch.cuda._sleep(SLEEP_CYCLES)
            fn()
            t0 = time.perf_counter()
            fn()
            hot[label].append((time.perf_counter() - t0) * 1e3)
    torch.cuda.synchronize()
    # ``host``: the call's Python as timed here, right after a sync (what the GPU can wait on); ``timer - busy -
    # host`` is what is left for the launches to reach the GPU and its idle time between kernels.
    print("| forward cut at | timer ms | busy ms | timer - busy ms | host ms (after a sync) | host ms (hot) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, fn in variants.items():
        # (Behind the sleep the setup's own GPU work is a few microseconds.)
        queued = (lambda fn=fn, setup=setups[label]: (setup(), fn())) if label in setups else fn
        t, busy, h = statistics.median(times[label]), gpu_only_ms(queued, 10), statistics.median(host[label])
        h_hot = f"{statistics.median(hot[label]):.3f}" if hot[label] else "-"
        print(f"| {label} | {t:.3f} | {busy:.3f} | {t - busy:.3f} | {h:.3f} | {h_hot} |", flush=True)


def _launch_parts(fwd, bwd) -> None:
    """Host microseconds of each Triton / Gluon launch of one forward and one backward, replayed with the same
    arguments: the whole JIT launch, its binder alone (argument specialisation), and the compiled kernel's own
    launcher called directly (what a launch costs without the JIT's Python); and the forward's Gluon descriptors."""
    from triton import knobs
    from triton.runtime.jit import JITFunction, compute_cache_key

    captured = []
    real_run = JITFunction.run

    def capture(self, *args, grid, warmup, **kwargs):
        captured.append((self, args, grid, dict(kwargs)))
        return real_run(self, *args, grid=grid, warmup=warmup, **kwargs)

    JITFunction.run = capture
    try:
        fwd()
        n_fwd = len(captured)
        bwd()
    finally:
        JITFunction.run = real_run
    torch.cuda.synchronize()
    print("| launch | whole JIT launch us | binder us | binder + cache key us | compiled launcher alone us |")
    print("| --- | --- | --- | --- | --- |")
    for i, (jit, args, grid, kwargs) in enumerate(captured):
        device = torch.cuda.current_device()
        stream = torch.cuda.current_stream().cuda_stream
        kernel_cache, key_cache, _, _, binder = jit.device_caches[device]
        # As JITFunction.run completes the options before binding.
        opts = dict(kwargs, debug=kwargs.get("debug", jit.debug) or knobs.runtime.debug,
                    instrumentation_mode=knobs.compilation.instrumentation_mode)  # fmt: skip
        bound, spec, options = binder(*args, **opts)
        kernel = kernel_cache[compute_cache_key(key_cache, spec, options)]
        g = tuple(grid) + (1,) * (3 - len(grid))
        values = list(bound.values())

        def whole(jit=jit, args=args, grid=grid, kwargs=kwargs):
            jit.run(*args, grid=grid, warmup=False, **kwargs)

        def bind(binder=binder, args=args, opts=opts):
            binder(*args, **opts)

        def bind_key(binder=binder, args=args, opts=opts, key_cache=key_cache):
            _, s, o = binder(*args, **opts)
            compute_cache_key(key_cache, s, o)

        def direct(kernel=kernel, g=g, values=values, stream=stream):
            kernel.run(g[0], g[1], g[2], stream, kernel.function, kernel.packed_metadata, None, None, None, *values)

        times = [_host_ms(f, reps=100) * 1e3 for f in (whole, bind, bind_key, direct)]
        label = ("fwd " if i < n_fwd else "bwd ") + jit.fn.__name__
        print(f"| {label} | " + " | ".join(f"{t:.1f}" for t in times) + " |", flush=True)
    torch.cuda.synchronize()


def _compare(base_dir: str, name: str, mask, q, k, v, do, report) -> list[tuple]:
    """This tree's call path and an earlier copy's (``flashmask_base`` in ``base_dir``) on the same inputs, in turn."""
    sys.path.insert(0, base_dir)
    import flashmask_base

    idx, causal = mask.startend_row_indices, mask.causal
    rows = []
    for round_ in (1, 2):
        for label, attention in (("new", flashmask_attention), ("base", flashmask_base.flashmask_attention)):

            def fwd(attention=attention):
                return attention(q, k, v, idx, causal=causal)

            out = fwd()

            def bwd(out=out):
                return torch.autograd.grad(out, (q, k, v), do, retain_graph=True)

            rows += report(f"{label} {name} (round {round_})", fwd, bwd)
    return rows


def _cprofile(fwd, bwd, calls: int) -> None:
    for name, fn in (("fwd", fwd), ("bwd", bwd)):
        fn()
        torch.cuda.synchronize()
        profiler = cProfile.Profile()
        for _ in range(calls):
            torch.cuda._sleep(SLEEP_CYCLES // 4)  # keeps the GPU ahead, so no launch waits on it
            profiler.enable()
            fn()
            profiler.disable()
            torch.cuda.synchronize()
        print(f"== {name}: {calls} calls")
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(40)


def _flex_calls(w, args, q, k, v, do):
    """FlexAttention's forward and backward (compiled, a ``BlockMask`` of the workload's mask) on copies of the
    inputs in its ``[B, H, S, D]`` layout."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    block_mask = torch.compile(create_block_mask)(w.mask_mod, args.batch, None, args.seqlen, args.seqlen)
    flex = torch.compile(flex_attention, dynamic=False)
    qt, kt, vt = (x.detach().transpose(1, 2).contiguous().requires_grad_() for x in (q, k, v))
    dot = do.transpose(1, 2).contiguous()

    def flex_fwd():
        return flex(qt, kt, vt, block_mask=block_mask)

    flex_out = flex_fwd()

    def flex_bwd():
        return torch.autograd.grad(flex_out, (qt, kt, vt), dot, retain_graph=True)

    return flex_fwd, flex_bwd


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seqlen", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--masks", default="sliding_window,global_sliding_window")
    ap.add_argument("--flex", action="store_true", help="also FlexAttention on the first mask")
    ap.add_argument("--cprofile", type=int, default=0, help="profile this many calls of each pass (host side)")
    ap.add_argument("--ops", action="store_true", help="host time of each step of our call path")
    ap.add_argument("--launch", action="store_true", help="host time of each launch of one call, and of its parts")
    ap.add_argument("--timeline", action="store_true", help="host calls and kernels of one timed call of each pass")
    ap.add_argument("--layers", action="store_true", help="the forward's timer excess cut at each layer of the path")
    ap.add_argument("--compare", metavar="DIR", help="also a copy of the package as `flashmask_base` in DIR, the two "
                    "taking turns (two rounds each), both given the mask as its tensor")  # fmt: skip
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="set a setting of flashmask.kernels.configs first (repeatable)")  # fmt: skip
    args = ap.parse_args()
    set_configs(args.set)
    dev = torch.device("cuda")
    print(
        f"device {torch.cuda.get_device_name()} torch {torch.__version__} triton {triton.__version__}; "
        f"{' '.join(args.set) or 'no setting changed'}"
    )
    shape = (args.batch, args.seqlen, args.heads, args.head_dim)
    torch.manual_seed(0)
    q, k, v = (torch.randn(shape, device=dev, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    do = torch.randn(shape, device=dev, dtype=torch.bfloat16)
    timer = Timer(dev)
    rows = []
    for i, name in enumerate(args.masks.split(",")):
        w = workloads.make(name, args.seqlen, args.batch, dev)

        def fwd(mask=w.mask):
            return flashmask_attention(q, k, v, mask)

        out = fwd()

        def bwd(out=out):
            return torch.autograd.grad(out, (q, k, v), do, retain_graph=True)

        if args.layers:
            extra = {}
            if args.flex:
                flex_fwd, _ = _flex_calls(w, args, q, k, v, do)
                extra["FlexAttention forward"] = flex_fwd
            _layers(q, k, v, w.mask, extra)
            return
        if args.ops:
            _ops(q, k, v, do, w.mask, fwd, bwd, out)
            return
        if args.launch:
            _launch_parts(fwd, bwd)
            return
        if args.cprofile:
            _cprofile(fwd, bwd, args.cprofile)
            return
        report = _timeline if args.timeline else functools.partial(_report, timer=timer)
        if args.compare:
            rows += _compare(args.compare, name, w.mask, q, k, v, do, report)
            continue
        rows += report(f"ours {name}", fwd, bwd)
        if args.flex and i == 0:
            rows += report(f"flex {name}", *_flex_calls(w, args, q, k, v, do))
    print("\n| call | pass | timer ms | busy ms | timer - busy | host ms | polling - busy | GPU idle between kernels |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, name, t, busy, gap, host, spin_gap, idle in rows:
        print(f"| {label} | {name} | {t:.3f} | {busy:.3f} | {gap:.3f} | {host:.3f} | {spin_gap:.3f} | {idle:.3f} |")


if __name__ == "__main__":
    main()
