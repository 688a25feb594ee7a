"""Compile the kernels for sm_90 on a machine without a GPU and report registers, spills and shared memory.

A development tool, not part of the package: it lets a config or kernel change be checked for spills and
shared-memory fit before spending device time. Triton is pointed at a stand-in driver that reports an sm_90
target; the kernels are compiled through their JIT ``warmup`` with CPU tensors of the benchmark's shapes
(so the divisibility specialisations match a real launch), and ``cuobjdump`` reads the cubin.

    python benchmarks/sm90_compile.py dkdv --block 64 64 --warps 4 --stages 2 [--atomic-dq] [--sass out.sass]
    python benchmarks/sm90_compile.py fwd-ws --block 128 128 --stages 3 [--causal --sweep --persistent]  # Gluon fwd
    python benchmarks/sm90_compile.py bwd-ws --stages 2 [--causal --vectors N]                 # Gluon backward
    python benchmarks/sm90_compile.py plan --block 64 128 [--transposed --bounds-given --vectors N]  # tiles.plan

Prints one line per kernel: registers, spill stores/loads, shared memory, and ptxas' wgmma warnings
(``tests/test_configs.py`` runs the ``fwd-ws`` line in CI: the Gluon kernel has no interpreter).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.backends.nvidia.driver import CudaDriver

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from triton.tools.tensor_descriptor import TensorDescriptor

from flashmask.kernels import backward, backward_hopper, forward, forward_hopper, tiles
from flashmask.kernels.tiles import mask_form

_BIN = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"


class _Sm90Driver(CudaDriver):
    """Reports an H100 without touching CUDA."""

    def __init__(self):  # no CudaUtils: it would need libcuda
        self.launcher_cls = None

    def get_current_target(self):
        return GPUTarget("cuda", 90, 32)

    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0

    def get_active_torch_device(self):
        return torch.device("cpu")


def _cuobjdump(cubin: bytes, flag: str) -> str:
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(cubin)
    out = subprocess.run([str(_BIN / "cuobjdump"), flag, f.name], capture_output=True, text=True).stdout
    os.unlink(f.name)
    return out


def _resource_usage(cubin: bytes) -> str:
    out = _cuobjdump(cubin, "--dump-resource-usage")
    m = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+)", out)
    return f"regs {m.group(1)} stack {m.group(2)}" if m else out


def _ptxas_warnings(ptx: str) -> str:
    with tempfile.NamedTemporaryFile(suffix=".ptx", delete=False, mode="w") as f:
        f.write(ptx)
    out = subprocess.run(
        [str(_BIN / "ptxas"), "-arch=sm_90a", "-v", f.name, "-o", os.devnull], capture_output=True, text=True
    )
    os.unlink(f.name)
    text = out.stderr
    spills = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", text)
    serial = sorted(set(re.findall(r"C75\d\d", text)))
    return f"spill {spills[-1] if spills else '?'} wgmma-serialized {','.join(serial) or 'no'}"


_SASS_LINE = re.compile(r"\s*/\*([0-9a-f]{4,})\*/\s+(.*?);")
_BACK_BRANCH = re.compile(r"BRA\s+(?:`\(\.L_x_\d+\)\s+)?0x([0-9a-f]+)")


def _tile_loop_local_loads(sass: str) -> list[int]:
    """The local loads (``LDL``) of each innermost loop of the SASS that issues wgmma (``HGMMA``): the tile loops,
    where a reload of a spilled value costs once per tile rather than once per program."""
    code = [(int(m.group(1), 16), m.group(2)) for m in map(_SASS_LINE.match, sass.splitlines()) if m]
    loops = []
    for address, text in code:
        branch = _BACK_BRANCH.search(text)
        if branch and int(branch.group(1), 16) < address:
            loops.append((int(branch.group(1), 16), address))
    innermost = [(a, b) for a, b in loops if not any(a <= c and d <= b and (c, d) != (a, b) for c, d in loops)]
    found = []
    for start, end in innermost:
        body = [text for address, text in code if start <= address <= end]
        if any("HGMMA" in text for text in body):
            found.append(sum("LDL" in text for text in body))
    return found


def _compile(kernel, args: list, constexprs: dict, warps: int, stages: int, sass: str | None, maxnreg=None) -> None:
    compiled = kernel.warmup(*args, grid=(1,), **constexprs, num_warps=warps, num_stages=stages, maxnreg=maxnreg)
    smem = compiled.metadata.shared // 1024
    usage = f"{_resource_usage(compiled.asm['cubin'])} smem {smem} KB, {_ptxas_warnings(compiled.asm['ptx'])}"
    dump = _cuobjdump(compiled.asm["cubin"], "-sass")
    loops = _tile_loop_local_loads(dump)
    if loops:
        usage += f", tile-loop local loads {max(loops)} ({len(loops)} loops)"
    usage += f", 16-byte global stores {dump.count('STG.E.128')}"
    print(f"{kernel.fn.__name__} {constexprs} warps {warps} stages {stages}: {usage}", flush=True)
    if sass:
        Path(sass).write_text(dump)
        Path(sass).with_suffix(".ttgir").write_text(compiled.asm["ttgir"])
        Path(sass).with_suffix(".ptx").write_text(compiled.asm["ptx"])


def _mask_constexprs(vectors: int, causal: bool) -> dict:
    indices = None if vectors == 0 else torch.zeros(1, 1, 8, vectors, dtype=torch.int32)
    f = mask_form(indices, causal)
    return dict(CAUSAL=f.causal, HAS_MASK=f.has_mask, LTE_COL=f.lte_col, UTS_COL=f.uts_col, UTE_COL=f.ute_col)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kernel", choices=["fwd", "fwd-ws", "bwd-ws", "dkdv", "dq", "plan", "prepare", "convert"])
    parser.add_argument("--block", type=int, nargs=2, default=[64, 64], metavar=("M", "N"))
    parser.add_argument("--warps", type=int, default=4)
    parser.add_argument("--stages", type=int, default=2)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--vectors", type=int, default=0, help="mask vectors (0: no column mask)")
    parser.add_argument("--causal", action="store_true")
    parser.add_argument("--atomic-dq", action="store_true")
    parser.add_argument("--tma-reduce", action="store_true")
    parser.add_argument("--no-tma", action="store_true")
    parser.add_argument("--gate", type=int, default=0, help="forward: gated grid (1 or 2, see fwd_kernel)")
    parser.add_argument("--sweep", action="store_true", help="forward: a middle sweep (state carried in and out)")
    parser.add_argument("--persistent", action="store_true", help="Gluon forward: the persistent grid")
    parser.add_argument("--transposed", action="store_true", help="plan: the backward's lists (per key block)")
    parser.add_argument("--bounds-given", action="store_true", help="plan: the forward's bounds handed in")
    parser.add_argument("--no-dkv-tma", action="store_true",
                        help="Gluon backward: dK / dV by scattered stores (unaligned buffers)")  # fmt: skip
    parser.add_argument("--sass", help="write SASS (and .ttgir, .ptx next to it) to this path")
    a = parser.parse_args()
    triton.runtime.driver.set_active(_Sm90Driver())

    B, S, H, D = 2, 8192, 32, a.head_dim
    bm, bn = a.block
    dt = torch.bfloat16
    q = torch.empty(B, S, H, D, dtype=dt)
    k, v, o, do = (torch.empty_like(q) for _ in range(4))
    lse = torch.empty(B, H, S, dtype=torch.float32)
    mask = torch.empty(B, 1, S, max(a.vectors, 1), dtype=torch.int32)
    ints = [torch.empty(1 << 16, dtype=torch.int32) for _ in range(5)]
    tma = not a.no_tma
    mc = _mask_constexprs(a.vectors, a.causal)
    strides = [*q.stride()[:3]]
    common_tail = dict(BLOCK_M=bm, BLOCK_N=bn, HEAD_DIM=D, HEAD_DIM_PAD=D, USE_TMA=tma)

    def desc(t, rows):
        return TensorDescriptor(t, list(t.shape), list(t.stride()), [1, rows, 1, D]) if tma else t

    scalars = [S, S]
    if a.kernel in ("fwd-ws", "bwd-ws"):
        from triton.experimental.gluon import language as gl
        from triton.experimental.gluon.nvidia.hopper import TensorDescriptor as GluonDescriptor

        def gluon_desc(t, rows, cols=D):
            box = [1, rows, 1, cols]
            element = gl.float32 if t.dtype == torch.float32 else gl.bfloat16
            return GluonDescriptor(
                t, list(t.shape), list(t.stride()), box, gl.NVMMASharedLayout.get_default_for(box, element)
            )

    if a.kernel == "fwd-ws":
        bm = forward_hopper.WS_BLOCK_M
        counter = torch.zeros(1, dtype=torch.int32)
        args = [gluon_desc(q, bm // 2), gluon_desc(k, bn), gluon_desc(v, bn), o, lse, mask, *ints, counter, lse, lse,
                lse, 0, 0, *o.stride()[:3], 0, 0, mask.stride(2), 1, *scalars, H, 1, H, S // bm, S // bn,
                B * H * (S // bm), 0.1]  # fmt: skip
        sweep = dict(SWEEP=True, CARRY_IN=True, CARRY_OUT=True) if a.sweep else {}
        flags = dict(
            **mc,
            NUM_STAGES=a.stages,
            PERSISTENT=a.persistent,
            **sweep,
        )
        _compile(forward_hopper.fwd_ws_kernel, args, flags, 4, a.stages, a.sass, forward_hopper.WS_MAX_REGISTERS)
    elif a.kernel == "bwd-ws":
        bm, bn = backward_hopper.WS_BWD_BLOCK_M, backward_hopper.WS_BWD_BLOCK_N
        dq_acc = torch.empty(B, S, H, D, dtype=torch.float32)
        flat = lse.reshape(-1)
        row_layout = gl.NVMMASharedLayout(swizzle_byte_width=0, element_bitwidth=32, rank=1)
        descs = [
            gluon_desc(q, bm),
            gluon_desc(k, bn // 2),
            gluon_desc(v, bn // 2),
            gluon_desc(do, bm),
            gluon_desc(dq_acc, bm, D // 2),
            *[GluonDescriptor(flat, [flat.numel()], [1], [bm], row_layout)] * 2,
            *(
                [gluon_desc(k, bn // 2), gluon_desc(v, bn // 2)]
                if not a.no_dkv_tma
                else [GluonDescriptor(flat, [flat.numel()], [1], [bm], row_layout)] * 2
            ),
        ]
        args = [*descs, o, o, mask, *ints, *strides * 2, 0, 0, mask.stride(2), 1, *scalars, S, H, H, 1, H,
                S // bm, S // bn, 0.1, 0.1, 0]  # fmt: skip
        flags = dict(**mc, NUM_STAGES=a.stages, DKV_TMA=not a.no_dkv_tma)
        _compile(backward_hopper.bwd_ws_kernel, args, flags, 4, a.stages, a.sass, backward_hopper.WS_BWD_MAX_REGISTERS)
    elif a.kernel == "plan":
        num_m, num_n = S // bm, S // bn
        args = [mask, *ints, *ints[:2], *mask.stride()[:3], 1, *scalars, num_m, num_n]
        _compile(tiles._row_plan_kernel, args, tiles.row_plan_constexprs(
            tiles.MaskForm(a.causal, a.vectors > 0, mc["LTE_COL"], mc["UTS_COL"], mc["UTE_COL"]), a.bounds_given,
            a.transposed, bm, bn, num_m, num_n), tiles.ROW_PLAN_WARPS, 1, a.sass)  # fmt: skip
    elif a.kernel in ("prepare", "convert"):  # the backward's passes in pieces: --block M _ --warps W
        items = B * H * S // bm
        if a.kernel == "prepare":
            args = [o, do, lse, lse, lse, lse, torch.empty(B, S, H, D), *strides * 2, S, S, H, 0, items]
            _compile(backward.bwd_prepare_kernel, args, dict(HAS_DLSE=True, BLOCK_M=bm, HEAD_DIM=D, HEAD_DIM_PAD=D),
                     a.warps, 1, a.sass)  # fmt: skip
        else:
            args = [torch.empty(B, S, H, D), q, *strides, S, H, 0, items]
            _compile(backward.dq_convert_kernel, args, dict(BLOCK_M=bm, HEAD_DIM=D, HEAD_DIM_PAD=D), a.warps, 1,
                     a.sass)  # fmt: skip
    elif a.kernel == "fwd":
        args = [q, desc(k, bn), desc(v, bn), o, lse, mask, *ints, ints[0], lse, lse, lse, 0, 0, *strides * 4, 0, 0,
                mask.stride(2), 1, *scalars, H, 1, H, S // bm, S // bn, 0.1]  # fmt: skip
        sweep = dict(SWEEP=True, CARRY_IN=True, CARRY_OUT=True) if a.sweep else {}
        _compile(forward.fwd_kernel, args, {**mc, **common_tail, "GATE": a.gate, **sweep}, a.warps, a.stages, a.sass)
    elif a.kernel == "dq":
        args = [q, desc(k, bn), desc(v, bn), do, o, lse, lse, mask, *ints, *strides * 5, 0, 0, mask.stride(2), 1,
                *scalars, H, 1, H, S // bm, S // bn, 0.1, 0.1]  # fmt: skip
        _compile(backward.bwd_dq_kernel, args, {**mc, **common_tail}, a.warps, a.stages, a.sass)
    else:
        dq_acc = torch.empty(B, S, H, D, dtype=torch.float32)
        dq_arg = TensorDescriptor(dq_acc, list(dq_acc.shape), list(dq_acc.stride()), [1, bm, 1, D])
        dq_arg = dq_arg if a.tma_reduce else dq_acc
        args = [desc(q, bm), k, v, desc(do, bm), dq_arg, o, o, lse, lse, mask, *ints,
                *strides * 4, *dq_acc.stride()[:3], *strides * 2, 0, 0, mask.stride(2), 1,
                *scalars, H, H, 1, H, S // bm, S // bn, 0.1, 0.1, 0]  # fmt: skip
        flags = dict(ATOMIC_DQ=a.atomic_dq or a.tma_reduce, DQ_TMA=a.tma_reduce)
        _compile(backward.bwd_dkdv_kernel, args, {**flags, **mc, **common_tail}, a.warps, a.stages, a.sass)


if __name__ == "__main__":
    main()
