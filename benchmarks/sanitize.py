"""One forward and backward per (causal, C) form, for compute-sanitizer (memcheck, racecheck).

    PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck python benchmarks/sanitize.py [--cases 0:12]

``--cases`` runs a slice of the 28 cases, so that a long sanitizer run can be split over several calls
(``--head-dim D`` only those of one head dim);
``--backward-pieces N`` runs the dQ-accumulating backwards in N pieces (their side streams and passes).

compute-sanitizer's racecheck does not see the bulk copies (TMA) and wgmma reads of the Gluon kernels (D=128
and D=64 on Hopper), which go through the async proxy. For those, Triton's own concurrency sanitizer checks the kernels'
barrier protocol (every shared-memory access against the mbarriers and waits that should order it):

    TRITON_INSTRUMENTATION_MODE=consan CUDA_LAUNCH_BLOCKING=1 python benchmarks/sanitize.py --consan --cases 2:3

``--consan`` gives it the global scratch memory it needs; a race stops the run with a device-side assertion.
``--consan --consan-control race`` (and ``clean``) runs only a small kernel with (and without) a deliberate race,
to show that this build of ConSan reports one.

Odd lengths, GQA, Sq != Sk and ragged head dims, so that every masked edge of every kernel is exercised;
the backward runs in all three dQ modes (its own pass, per-element atomics, bulk TMA reduce-add). Cases 24-25
take the configs of a 128K-token call (without a column mask at D=64 they differ: 3-stage dQ pass, 32x256 dK/dV
tiles) on a short one; cases 26-27 run the forward in key sweeps (four launches carrying the softmax state),
which the default takes at D=128 without a column mask past 64K keys.
With the caching allocator off, every tensor is its own allocation and an out-of-bounds access is caught.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import torch
import triton

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from _kernel_calls import set_configs

from flashmask.kernels import attention_backward, attention_forward
from flashmask.kernels import configs as kconfigs


def _ws_probe(variant: int) -> None:
    """Minimal ``gl.warp_specialize`` kernels: what racecheck reports for them comes from the compiler's hand-off
    between partitions (captures passed through shared memory), not from a kernel's own buffers. Variant 0: one
    1-warp worker. 1: the Gluon forward's partitions (a 4-warp and a 1-warp worker, 240 / 24 registers, 168 at
    launch), each reducing a tile (partition-local barriers). 2: as 1, plus 200 KB of shared memory (one CTA per
    SM) and a 264-CTA grid. 3: as 2, plus mbarriers initialised before the hand-off, as the forward does."""
    from triton.experimental import gluon
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon.language.nvidia.hopper import mbarrier

    @gluon.jit
    def reduce_rows(ptr, value, WARPS: gl.constexpr):
        layout: gl.constexpr = gl.BlockedLayout([1, 4], [4, 8], [WARPS, 1], [1, 0])
        x = gl.full([64, 64], 1, gl.int32, layout) * value
        gl.store(ptr + gl.program_id(0), gl.sum(gl.sum(x, 1), 0))

    @gluon.jit
    def default_partition(ptr, value, VARIANT: gl.constexpr):
        if VARIANT == 0:
            gl.store(ptr + gl.program_id(0), value)
        else:
            reduce_rows(ptr, value, 4)

    @gluon.jit
    def worker_partition(ptr, value, VARIANT: gl.constexpr):
        if VARIANT == 0:
            gl.store(ptr + gl.num_programs(0) + gl.program_id(0), value + 1)
        else:
            reduce_rows(ptr + gl.num_programs(0), value + 1, 4)

    @gluon.jit
    def small_worker_partition(ptr, value, VARIANT: gl.constexpr):
        gl.store(ptr + 2 * gl.num_programs(0) + gl.program_id(0), value + 2)

    @gluon.jit
    def probe_kernel(ptr, value, VARIANT: gl.constexpr):
        if VARIANT >= 2:
            buf = gl.allocate_shared_memory(gl.float32, [200 * 256], gl.SwizzledSharedLayout(1, 1, 1, [0]))
            buf._keep_alive()
        if VARIANT == 3:
            bars = gl.allocate_shared_memory(gl.int64, [4, 1], mbarrier.MBarrierLayout())
            for i in gl.static_range(4):
                mbarrier.init(bars.index(i), count=2)
        if VARIANT == 0:
            gl.warp_specialize(
                [(default_partition, (ptr, value, VARIANT)), (worker_partition, (ptr, value, VARIANT))], [1], [24]
            )
        else:
            gl.warp_specialize(
                [
                    (default_partition, (ptr, value, VARIANT)),
                    (worker_partition, (ptr, value, VARIANT)),
                    (small_worker_partition, (ptr, value, VARIANT)),
                ],
                [4, 1],
                [240, 24],
            )

    grid = 264 if variant >= 2 else 4
    out = torch.zeros(3 * grid, dtype=torch.int32, device="cuda")
    maxnreg = None if variant == 0 else 168
    probe_kernel[(grid,)](out, 41, VARIANT=variant, num_warps=4, maxnreg=maxnreg)
    torch.cuda.synchronize()
    print(f"ws probe {variant}: ran, first CTA wrote {out[::grid].tolist()}", flush=True)


def _consan_control(wait: bool) -> None:
    """ConSan's positive control: one bulk copy (TMA) into shared memory, read by the threads after waiting on its
    mbarrier (``wait``) or before (a race: the read may see the copy half done). Run under ConSan, the racy one
    must stop with a device-side assertion and the other must run clean; otherwise "no report" on the attention
    kernels means nothing."""
    from triton.experimental import gluon
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon.language.nvidia.hopper import mbarrier, tma
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor as GluonDescriptor

    @gluon.jit
    def control_kernel(desc, out_ptr, WAIT: gl.constexpr):
        rows: gl.constexpr = desc.block_type.shape[0]
        cols: gl.constexpr = desc.block_type.shape[1]
        tile = gl.allocate_shared_memory(gl.float32, [rows, cols], desc.layout)
        bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
        mbarrier.init(bar, count=1)
        mbarrier.expect(bar, desc.block_type.nbytes)
        tma.async_copy_global_to_shared(desc, [0, 0], bar, tile)
        if WAIT:
            mbarrier.wait(bar, 0)
        layout: gl.constexpr = gl.BlockedLayout([1, 1], [1, 32], [4, 1], [1, 0])
        x = tile.load(layout)
        if not WAIT:
            mbarrier.wait(bar, 0)  # the copy must land before the program ends
        mbarrier.invalidate(bar)
        offs_r = gl.arange(0, rows, layout=gl.SliceLayout(1, layout))
        offs_c = gl.arange(0, cols, layout=gl.SliceLayout(0, layout))
        gl.store(out_ptr + gl.expand_dims(offs_r, 1) * cols + gl.expand_dims(offs_c, 0), x)

    src = torch.arange(32 * 32, dtype=torch.float32, device="cuda").view(32, 32)
    out = torch.empty_like(src)
    layout = gl.NVMMASharedLayout.get_default_for([32, 32], gl.float32)
    desc = GluonDescriptor(src, [32, 32], [32, 1], [32, 32], layout)
    control_kernel[(1,)](desc, out, WAIT=wait, num_warps=4)
    torch.cuda.synchronize()
    print(f"consan control ({'waits on' if wait else 'reads before'} the copy's barrier): ran, "
          f"{'matches' if torch.equal(out, src) else 'differs from'} the source", flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=None, help="a slice of the cases, START:STOP (a time limit cut a run short)")
    ap.add_argument("--ws-probe", type=int, default=None, help="run only a minimal warp-specialized kernel (0-3)")
    ap.add_argument("--backward-pieces", type=int, default=0,
                    help="the atomic-dQ backwards in this many pieces (kernels._pieces; 0: as configured)")  # fmt: skip
    ap.add_argument("--head-dim", type=int, default=None, help="only the cases of this head dim")
    ap.add_argument("--consan", action="store_true", help="scratch memory for TRITON_INSTRUMENTATION_MODE=consan")
    ap.add_argument("--consan-control", choices=["race", "clean"], default=None,
                    help="run only ConSan's positive control: a shared-memory read before (race) or after (clean) "
                    "the bulk copy's barrier")  # fmt: skip
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="set a kernels.configs setting (a Python literal) for every case")  # fmt: skip
    args = ap.parse_args()
    set_configs(args.set)
    if args.consan:
        if os.environ.get("TRITON_INSTRUMENTATION_MODE") != "consan":
            sys.exit("--consan: set TRITON_INSTRUMENTATION_MODE=consan in the environment (read at compile time)")
        triton.set_allocator(lambda size, align, stream: torch.empty(size, dtype=torch.int8, device="cuda"))
    if args.consan_control is not None:
        _consan_control(wait=args.consan_control == "clean")
        return
    if args.ws_probe is not None:
        _ws_probe(args.ws_probe)
        return
    dev = torch.device("cuda")
    forms = [(True, 1), (True, 2), (False, 2), (False, 4), (True, 0), (False, 0)]
    shapes = [(333, 333, 64), (200, 457, 96), (457, 200, 128), (300, 257, 256)]
    cases = [(causal, c, sq, sk, d, 0, 0) for causal, c in forms for sq, sk, d in shapes]
    cases += [(causal, 0, 457, 333, 64, 131072, 0) for causal in (True, False)]
    cases += [(True, 0, 457, 1000, 128, 0, 256), (False, 2, 457, 1000, 128, 0, 256)]
    start, stop = (int(x) if x else None for x in args.cases.split(":")) if args.cases else (None, None)
    for case, (causal, c, sq, sk, d, as_len, sweep_keys) in list(enumerate(cases))[start:stop]:
        if args.head_dim is not None and d != args.head_dim:
            continue
        torch.manual_seed(case)
        b, hq, hkv = 2, 4, 2
        q = torch.randn(b, sq, hq, d, device=dev, dtype=torch.bfloat16)
        k = torch.randn(b, sk, hkv, d, device=dev, dtype=torch.bfloat16)
        v = torch.randn(b, sk, hkv, d, device=dev, dtype=torch.bfloat16)
        do = torch.randn_like(q)
        idx = torch.randint(0, sq + 1, (b, 1, sk, c), device=dev, dtype=torch.int32) if c else None
        out, lse = attention_forward(q, k, v, idx, causal, 1 / math.sqrt(d), sweep_keys=sweep_keys or None)
        if args.consan:  # its compiles take minutes: show how far a run got
            torch.cuda.synchronize()
            print(f"case {case}: forward ran", flush=True)
        lengths = dict(seqlen_q=as_len or sq, seqlen_k=as_len or sk)
        default = kconfigs.pick(max(16, triton.next_power_of_2(d)), dev, mask_vectors=c, causal=causal, **lengths)
        for atomic, reduce in ((False, False), (True, False), (True, True)):
            cfgs = default._replace(atomic_dq=atomic, tma_reduce_dq=reduce, backward_pieces=args.backward_pieces)
            attention_backward(do, q, k, v, out, lse, idx, causal, 1 / math.sqrt(d), configs=cfgs)
        torch.cuda.synchronize()
        as_text = f" (configs as at {as_len})" if as_len else ""
        as_text += f" (forward in sweeps of {sweep_keys} keys)" if sweep_keys else ""
        print(f"case {case}: causal={causal} C={c} Sq={sq} Sk={sk} D={d}{as_text}: ran", flush=True)


if __name__ == "__main__":
    main()
