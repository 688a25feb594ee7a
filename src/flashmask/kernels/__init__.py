"""Triton kernels for FlashMask attention (and a Gluon forward for Hopper), behind a thin Python interface.

``attention_forward`` and ``attention_backward`` take already-validated tensors (``q [B, Sq, Hq, D]``,
``k``/``v`` ``[B, Sk, Hkv, D]`` with a contiguous last dim, ``indices`` int32 ``[1|B, Hm, Sk, C]`` or
``None``) and launch: block bounds and tile lists (``tiles.plan``: one launch at short lengths) -> main kernel.
The forward's main kernel is the warp-specialized Gluon one (``forward_hopper``) where the config asks for it
and the call allows it (Hopper, D=128 or D=64, every mask form, Triton 3.6), else the Triton one. The backward's
is the warp-specialized Gluon one (``backward_hopper``: dK, dV and dQ in one kernel) under the same conditions for
every mask form unless ``deterministic=True``, else the Triton dK/dV kernel and dQ pass (at D=64 the configs ask for
the Gluon kernels only where ``configs.GLUON_FORWARD_D64`` / ``GLUON_BACKWARD_D64``). Nothing here syncs with the
host. This package imports nothing from the rest of flashmask.
"""

from __future__ import annotations

import functools
import math

import torch
from triton.runtime.errors import OutOfResources

from . import configs as _configs
from ._host import CachedKernel, cdiv, next_power_of_2
from ._pieces import piece_ranges, run_in_pieces, runner_for
from .backward import bwd_dkdv_kernel, bwd_dq_kernel, bwd_prepare_kernel, bwd_preprocess_kernel, dq_convert_kernel
from .configs import Configs, KernelConfig
from .forward import fwd_kernel
from .tiles import KeyBlockBounds, MaskForm, TileLists, list_words, mask_form, plan

try:
    from triton.tools.tensor_descriptor import TensorDescriptor
except ImportError:  # older Triton: plain pointer loads only
    TensorDescriptor = None
fwd_ws_kernel = bwd_ws_kernel = None
_FWD_WS = _BWD_WS = None
if _configs.gluon_release():
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor as GluonDescriptor

    from .backward_hopper import WS_BWD_BLOCK_M, WS_BWD_BLOCK_N, WS_BWD_HEAD_DIMS, WS_BWD_MAX_REGISTERS, bwd_ws_kernel
    from .forward_hopper import WS_BLOCK_M, WS_BLOCK_N, WS_HEAD_DIMS, WS_MAX_REGISTERS, fwd_ws_kernel

    _FWD_WS, _BWD_WS = CachedKernel(fwd_ws_kernel), CachedKernel(bwd_ws_kernel)

__all__ = ["Configs", "KernelConfig", "KeyBlockBounds", "attention_backward", "attention_forward"]

_BWD_PREPROCESS = CachedKernel(bwd_preprocess_kernel)
_BWD_PREPARE = CachedKernel(bwd_prepare_kernel)
_DQ_CONVERT = CachedKernel(dq_convert_kernel)
_MAX_GRID_Y = 65535
_LOG2E = math.log2(math.e)


def _empty(like: torch.Tensor) -> torch.Tensor:
    """A contiguous tensor shaped like ``like``: the ops' outputs are contiguous whatever the inputs' strides."""
    return torch.empty(like.shape, dtype=like.dtype, device=like.device)


def _last_dim_contiguous(x: torch.Tensor) -> torch.Tensor:
    return x if x.stride(-1) == 1 else x.contiguous()


# The kernels address key column j of the mask in 32 bits, as j * stride(2) (fewer live registers than 64-bit
# offsets in the partially masked tiles); a mask too strided for that is copied.
_MAX_MASK_COLUMN_OFFSET = 2**31


class _MaskArgs:
    """The mask pointer, its strides and how mask heads / batch rows map onto the tile lists."""

    def __init__(self, indices: torch.Tensor | None, causal: bool, num_q_heads: int, fallback: torch.Tensor):
        self.form: MaskForm = mask_form(indices, causal)
        if indices is None:
            self.tensor, self.strides, self.heads, self.list_stride_b = fallback, (0, 0, 0), 1, 0
        else:
            shared_batch = indices.shape[0] == 1
            if (indices.shape[2] + 1024) * indices.stride(2) >= _MAX_MASK_COLUMN_OFFSET:
                indices = indices.contiguous()
            self.tensor = indices
            self.strides = (0 if shared_batch else indices.stride(0), indices.stride(1), indices.stride(2))
            self.heads = indices.shape[1]
            self.list_stride_b = 0 if shared_batch else self.heads
        self.q_per_mask = num_q_heads // self.heads
        self.indices = indices

    def constexprs(self) -> dict:
        f = self.form
        return dict(CAUSAL=f.causal, HAS_MASK=f.has_mask, LTE_COL=f.lte_col, UTS_COL=f.uts_col, UTE_COL=f.ute_col)


_STAGES_THAT_FIT: dict[tuple, int] = {}


def _launch(kernel, grid: tuple[int, int], args: tuple, constexprs: dict, cfg: KernelConfig) -> None:
    """Launch with ``cfg``; if the pipeline does not fit in shared memory, retry with fewer stages.

    Some mask forms load more per tile (four interval vectors) than the tuned config assumed; Triton raises
    ``OutOfResources`` at launch, before anything runs, so the retry is safe. The fit is remembered.
    """
    key = (kernel.fn.__name__, tuple(sorted(constexprs.items())), cfg)
    stages = _STAGES_THAT_FIT.get(key, cfg.num_stages)
    while True:
        try:
            kernel[grid](*args, **constexprs, num_warps=cfg.num_warps, num_stages=stages)
            return
        except OutOfResources:
            if stages <= 1:
                raise
            stages -= 1
            _STAGES_THAT_FIT[key] = stages


def _grid(heads: int, blocks: int) -> tuple[int, int]:
    """(blocks, batch x heads): blocks of one head run side by side and share K/V in L2.

    CUDA caps the second grid dimension at 65535.
    """
    if heads > _MAX_GRID_Y:
        raise ValueError(f"batch * heads must be at most {_MAX_GRID_Y} per launch, got {heads}")
    return blocks, heads


def _head_dim_pad(head_dim: int) -> int:
    return max(16, next_power_of_2(head_dim))


def _pick(
    d_pad: int, device: torch.device, indices: torch.Tensor | None, causal: bool, seqlen_q: int, seqlen_k: int
) -> Configs:
    """The default configs for this call's head dim, mask form and lengths."""
    vectors = 0 if indices is None else indices.shape[-1]
    return _configs.pick(d_pad, device, vectors, causal, seqlen_q=seqlen_q, seqlen_k=seqlen_k)


def _tma_ok(*tensors: torch.Tensor) -> bool:
    """Whether Hopper's bulk tensor copies can read these ``[B, S, H, D]`` tensors (alignment rules)."""
    if _configs.interpreting() or TensorDescriptor is None:
        return False
    t0 = tensors[0]
    if not t0.is_cuda or _configs.major_version(t0.device) < 9:
        return False
    return all(
        t.data_ptr() % 16 == 0 and all((st * t.element_size()) % 16 == 0 for st in t.stride()[:-1]) for t in tensors
    )


def _descriptors(use_tma: bool, block_rows: int, d_pad: int, *tensors: torch.Tensor) -> list:
    """4-D tensor descriptors ``[B, S, H, D]`` with ``[1, block_rows, 1, d_pad]`` boxes, or the tensors."""
    if not use_tma:
        return list(tensors)
    return [TensorDescriptor(t, list(t.shape), list(t.stride()), [1, block_rows, 1, d_pad]) for t in tensors]


def _on_device_of(name: str, position: int):
    """Runs the decorated entry point with the CUDA device of its argument ``name`` (at ``position``) current.

    Triton launches on the current device, and so do the backward's side streams; a model split across GPUs
    (``device_map="auto"``) calls layers whose tensors sit on another one, where those launches would read another
    GPU's memory. The check costs one ``current_device`` call when the device is already current (the usual case).
    """

    def wrap(fn):
        @functools.wraps(fn)
        def call(*args, **kwargs):
            device = (args[position] if len(args) > position else kwargs[name]).device
            if device.type != "cuda" or device.index == torch.cuda.current_device():
                return fn(*args, **kwargs)
            with torch.cuda.device(device):
                return fn(*args, **kwargs)

        return call

    return wrap


@_on_device_of("q", 0)
def attention_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    indices: torch.Tensor | None,
    causal: bool,
    softmax_scale: float,
    config: KernelConfig | None = None,
    out: torch.Tensor | None = None,
    lse: torch.Tensor | None = None,
    use_tma: bool | None = None,
    partial_config: KernelConfig | None = None,
    partial_share: float = _configs.PARTIAL_SHARE,
    sweep_keys: int | None = None,
    keep_bounds: bool = False,
    plan_backward: bool = False,
    backward_configs: Configs | None = None,
) -> tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, KeyBlockBounds | None]:
    """Returns ``out [B, Sq, Hq, D]`` (dtype of ``q``) and ``lse`` float32 ``[B, Hq, Sq]``.

    With ``keep_bounds`` a third item, the block bounds the call computed (``None`` if it computed none), for
    ``attention_backward(bounds=...)``: at D=128 on Hopper both passes use the same 128-key blocks.
    ``plan_backward`` (with ``keep_bounds``, while ``configs.PLAN_BACKWARD_IN_FORWARD`` is on; off by default): they
    also carry the tile lists of the non-deterministic backward's dK/dV kernel under ``backward_configs`` (default:
    the defaults), built once the main kernel is queued, where that kernel's key blocks are the forward's and the
    lists take at most ``configs.BACKWARD_LISTS_MAX_SHARE`` of ``q``'s memory or ``BACKWARD_LISTS_ALWAYS_BYTES``
    (they are kept until the backward).

    ``out`` and ``lse`` may be given as preallocated buffers (contiguous); tests pass poisoned ones.
    ``config`` replaces the default tiles; ``partial_config`` (default: the config's ``forward_partial`` when
    ``config`` is not given; below ``DUAL_FORWARD_MIN_KEYS`` keys that one alone) is launched beside it and runs
    instead when more than ``partial_share`` of the live tiles are partial, decided on the GPU.
    ``sweep_keys`` (default: the configs' ``forward_sweep_keys``; 0 or ``None`` with ``config`` given: one
    sweep) visits the keys in sweeps of about that many, one launch each (single-grid forwards only); the state
    carried between them is a transient fp32 buffer of ``B * Hq * Sq * (D_pad + 2) * 4`` bytes (2.1 GB for 128K
    tokens, 32 heads, D=128: twice the output).
    """
    out, lse, bounds = _forward(q, k, v, indices, causal, softmax_scale, config, out, lse, use_tma, partial_config,
                                partial_share, sweep_keys)  # fmt: skip
    if not keep_bounds:
        return out, lse
    if plan_backward and bounds is not None and _configs.PLAN_BACKWARD_IN_FORWARD:
        bounds = _plan_backward(q, k, v, indices, causal, bounds, backward_configs, use_tma)
    return out, lse, bounds


def _plan_backward(q, k, v, indices, causal: bool, bounds: KeyBlockBounds, cfgs: Configs | None,
                   use_tma: bool | None) -> KeyBlockBounds:  # fmt: skip
    """``bounds`` with the tile lists of the backward's dK/dV kernel, if they qualify (``attention_forward``).

    The GPU waits on the host before the backward's first kernel, and on a slow host right after a sync the lists'
    allocation, views and launch cost ~0.1-0.3 ms there; here they run while the GPU computes the forward.
    """
    seqlen_q, seqlen_k = q.shape[1], k.shape[1]
    cfgs = cfgs or _pick(_head_dim_pad(q.shape[3]), q.device, indices, causal, seqlen_q, seqlen_k)
    cfg = cfgs.dkdv
    # (``dout`` is not known yet; the backward checks it, and on another path these lists go unused.)
    if not (cfg.warp_specialized and _backward_ws_ok(q, k, v, q, use_tma)):
        cfg = _configs.triton_dkdv(cfg, cfgs.dkdv_fallback)
    rows = bounds.tensor.shape[0]
    words = list_words(rows, cdiv(seqlen_k, cfg.block_n), cdiv(seqlen_q, cfg.block_m))
    q_bytes = q.numel() * q.element_size()
    allowed = max(_configs.BACKWARD_LISTS_MAX_SHARE * q_bytes, _configs.BACKWARD_LISTS_ALWAYS_BYTES)
    if cfg.block_n != bounds.block_n or 4 * words > allowed:
        return bounds
    mask = _MaskArgs(indices, causal, q.shape[2], q)
    _, lists = _lists(mask, seqlen_q, seqlen_k, cfg.block_m, cfg.block_n, q.device, transposed=True, reuse=bounds)
    return bounds._replace(lists=lists, lists_block_m=cfg.block_m)


def _forward(q, k, v, indices, causal, softmax_scale, config, out, lse, use_tma, partial_config, partial_share,
             sweep_keys) -> tuple[torch.Tensor, torch.Tensor, KeyBlockBounds | None]:  # fmt: skip
    q, k, v = (_last_dim_contiguous(x) for x in (q, k, v))
    batch, seqlen_q, num_q_heads, head_dim = q.shape
    seqlen_k = k.shape[1]
    out = _empty(q) if out is None else out
    if lse is None:
        lse = torch.empty(batch, num_q_heads, seqlen_q, dtype=torch.float32, device=q.device)
    if batch * num_q_heads * seqlen_q == 0:
        return out, lse, None
    if seqlen_k == 0:
        return out.zero_(), lse.fill_(float("-inf")), None
    d_pad = _head_dim_pad(head_dim)
    if config is None:
        defaults = _pick(d_pad, q.device, indices, causal, seqlen_q, seqlen_k)
        config, partial_config = _forward_configs(defaults, seqlen_k, partial_config)
        sweep_keys = defaults.forward_sweep_keys if sweep_keys is None else sweep_keys
    mask = _MaskArgs(indices, causal, num_q_heads, lse)
    bounds, lists = _lists(mask, seqlen_q, seqlen_k, config.block_m, config.block_n, q.device, transposed=False)
    if partial_config is None:
        num_n = cdiv(seqlen_k, config.block_n)
        per_sweep = max(1, sweep_keys // config.block_n) if sweep_keys else num_n
        if per_sweep >= num_n:
            _launch_forward(q, k, v, out, lse, softmax_scale, mask, lists, config, use_tma, gate=None, gate_mode=0)
            return out, lse, bounds
        # Sweeps: each launch keeps its programs' K/V inside one key range (L2-sized), and hands the online-
        # softmax state to the next in fp32; the tiles are visited in the same order within each sweep.
        rows = batch * num_q_heads * seqlen_q
        state_acc = torch.empty(rows * d_pad, dtype=torch.float32, device=q.device)
        state_m, state_l = torch.empty(2, rows, dtype=torch.float32, device=q.device)
        for lo in range(0, num_n, per_sweep):
            hi = min(lo + per_sweep, num_n)
            sweep = (state_acc, state_m, state_l, lo, hi, lo > 0, hi < num_n)
            _launch_forward(
                q, k, v, out, lse, softmax_scale, mask, lists, config, use_tma, gate=None, gate_mode=0, sweep=sweep
            )
        return out, lse, bounds
    _, partial_lists = _lists(mask, seqlen_q, seqlen_k, partial_config.block_m, partial_config.block_n, q.device,
                              transposed=False, reuse=bounds)  # fmt: skip
    # Summed on the GPU, read by the kernels: no host sync.
    num_part, num_full = lists.part_count.sum(), lists.full_count.sum()
    gate = (num_part > partial_share * (num_part + num_full)).to(torch.int32)
    _launch_forward(q, k, v, out, lse, softmax_scale, mask, lists, config, use_tma, gate=gate, gate_mode=2)
    _launch_forward(
        q, k, v, out, lse, softmax_scale, mask, partial_lists, partial_config, use_tma, gate=gate, gate_mode=1
    )
    return out, lse, bounds


def _forward_configs(
    cfgs: Configs, seqlen_k: int, partial_config: KernelConfig | None
) -> tuple[KernelConfig, KernelConfig | None]:
    """The default forward config and the variant launched beside it (``None``: one grid, ungated)."""
    partial_config = partial_config or cfgs.forward_partial
    if partial_config is not None and seqlen_k < _configs.DUAL_FORWARD_MIN_KEYS:
        return partial_config, None
    return cfgs.forward, partial_config


def _lists(mask: _MaskArgs, seqlen_q: int, seqlen_k: int, block_m: int, block_n: int, device, transposed: bool,
           reuse: KeyBlockBounds | None = None) -> tuple[KeyBlockBounds, TileLists]:  # fmt: skip
    """Block bounds and the tile lists for ``block_m x block_n`` tiles (per key block when ``transposed``); the
    bounds, and the lists if it has them, are ``reuse``'s (built earlier for this mask) if its tiles are these."""
    if reuse is not None and reuse.block_n == block_n:
        if transposed and reuse.lists is not None and reuse.lists_block_m == block_m:
            return reuse, reuse.lists
        given = reuse.tensor
    else:
        given = None
    bounds, lists = plan(mask.indices, mask.form, seqlen_q, seqlen_k, block_m, block_n, transposed, device, given)
    return KeyBlockBounds(block_n, bounds), lists


def _launch_forward(
    q, k, v, out, lse, softmax_scale: float, mask: _MaskArgs, lists, cfg: KernelConfig, use_tma, gate, gate_mode: int,
    sweep: tuple | None = None,
):  # fmt: skip
    """One forward grid; ``gate_mode`` 1 / 2 makes it run only if ``gate`` (int32 [1]) is nonzero / zero.

    ``sweep``: ``(state_acc, state_m, state_l, first_block, end_block, carry_in, carry_out)`` for one launch of a
    forward that visits the keys in several.
    """
    state_acc, state_m, state_l, sweep_lo, sweep_hi, carry_in, carry_out = sweep or (lse, lse, lse, 0, 0, False, False)
    if cfg.warp_specialized:
        if gate is None and _warp_specialized_ok(q, k, v, mask, cfg, use_tma):
            _launch_forward_ws(q, k, v, out, lse, softmax_scale, mask, lists, cfg, state_acc, state_m, state_l,
                               sweep_lo, sweep_hi, carry_in, carry_out, sweep is not None)  # fmt: skip
            return
        cfg = _configs.triton_forward(cfg, mask.form.has_mask, _head_dim_pad(q.shape[3]))
    seqlen_q, num_q_heads, head_dim = q.shape[1], q.shape[2], q.shape[3]
    seqlen_k, num_kv_heads = k.shape[1], k.shape[2]
    d_pad = _head_dim_pad(head_dim)
    num_m, num_n = cdiv(seqlen_q, cfg.block_m), cdiv(seqlen_k, cfg.block_n)
    tma = (cfg.tma and _tma_ok(k, v)) if use_tma is None else use_tma
    k_arg, v_arg = _descriptors(tma, cfg.block_n, d_pad, k, v)
    _launch(
        fwd_kernel,
        _grid(q.shape[0] * num_q_heads, num_m),
        (
            q, k_arg, v_arg, out, lse, mask.tensor, *lists.per_block(), lse if gate is None else gate,
            state_acc, state_m, state_l, sweep_lo, sweep_hi,
            q.stride(0), q.stride(1), q.stride(2),
            k.stride(0), k.stride(1), k.stride(2),
            v.stride(0), v.stride(1), v.stride(2),
            out.stride(0), out.stride(1), out.stride(2),
            *mask.strides, mask.list_stride_b,
            seqlen_q, seqlen_k, num_q_heads, num_q_heads // num_kv_heads, mask.q_per_mask, num_m, num_n,
            softmax_scale * _LOG2E,
        ),
        dict(
            **mask.constexprs(),
            BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, HEAD_DIM=head_dim, HEAD_DIM_PAD=d_pad, USE_TMA=tma,
            GATE=gate_mode, SWEEP=sweep is not None, CARRY_IN=carry_in, CARRY_OUT=carry_out,
        ),
        cfg,
    )  # fmt: skip


def _warp_specialized_ok(q, k, v, mask: _MaskArgs, cfg: KernelConfig, use_tma: bool | None) -> bool:
    """Whether the Gluon forward can take this call: Hopper, D=128 or 64, 16-bit, TMA-aligned (every mask form)."""
    return (
        fwd_ws_kernel is not None
        and use_tma is not False
        and (cfg.block_m, cfg.block_n) == (WS_BLOCK_M, WS_BLOCK_N)
        and q.shape[3] in WS_HEAD_DIMS
        and q.dtype in (torch.float16, torch.bfloat16)
        and _tma_ok(q, k, v)
    )


def _launch_forward_ws(q, k, v, out, lse, softmax_scale: float, mask: _MaskArgs, lists, cfg: KernelConfig,
                       state_acc, state_m, state_l, sweep_lo, sweep_hi, carry_in, carry_out, sweep: bool):  # fmt: skip
    seqlen_q, num_q_heads = q.shape[1], q.shape[2]
    seqlen_k, num_kv_heads = k.shape[1], k.shape[2]
    num_m, num_n = cdiv(seqlen_q, cfg.block_m), cdiv(seqlen_k, cfg.block_n)
    element = gl.bfloat16 if q.dtype == torch.bfloat16 else gl.float16
    num_items = num_m * q.shape[0] * num_q_heads
    # One program per SM taking items from the lists' counter (zeroed with them): -1% to -7% forward at 8K and 32K
    # against one program per item (s11f). A forward in several key sweeps keeps one program per item, since the
    # counter serves one launch.
    persistent = not sweep
    grid = (min(num_items, _configs.sm_count(q.device)), 1) if persistent else _grid(q.shape[0] * num_q_heads, num_m)
    ints = (sweep_lo, sweep_hi, *out.stride()[:3], *mask.strides, mask.list_stride_b, seqlen_q, seqlen_k,
            num_q_heads, num_q_heads // num_kv_heads, mask.q_per_mask, num_m, num_n, num_items)  # fmt: skip
    pointers = (out, lse, mask.tensor, state_acc, state_m, state_l)
    # The lists sit at offsets of one new allocation that its rows and the ints fix.
    signature = (q.dtype, k.dtype, v.dtype, ints, lists.full_count.numel(),
                 tuple((t.dtype, t.data_ptr() % 16) for t in pointers))  # fmt: skip
    _FWD_WS(
        grid, signature,
        _gluon_descriptor(q, cfg.block_m // 2, element), _gluon_descriptor(k, cfg.block_n, element),
        _gluon_descriptor(v, cfg.block_n, element),
        out, lse, mask.tensor, *lists.per_block(), lists.counter, state_acc, state_m, state_l, *ints,
        softmax_scale * _LOG2E,
        **mask.constexprs(), NUM_STAGES=cfg.num_stages, SWEEP=sweep, CARRY_IN=carry_in, CARRY_OUT=carry_out,
        PERSISTENT=persistent, num_warps=cfg.num_warps, maxnreg=WS_MAX_REGISTERS,
    )  # fmt: skip


def _gluon_descriptor(t: torch.Tensor, rows: int, element, cols: int | None = None):
    """A Gluon tensor descriptor over ``[B, S, H, D]`` with ``[1, rows, 1, cols]`` boxes (``cols``: all of D)."""
    box = (1, rows, 1, cols or t.shape[3])
    return _descriptor(t, list(t.shape), list(t.stride()), list(box), _shared_layout(box, element))


def _descriptor(base: torch.Tensor, shape: list, strides: list, box: list, layout):
    """``GluonDescriptor(base, shape, strides, box, layout)`` without its ``__post_init__`` checks.

    The GPU waits on the forward's Python path, and the three descriptors built checked were ~40% of it (mostly the
    checks; ~10% of the path is gone without them, ``benchmarks/NOTES.md`` sessions 16-17). What the checks assert
    holds by construction here: the callers pass ``_tma_ok`` tensors (16-byte aligned base and strides, last dim
    contiguous) or fresh contiguous buffers, non-empty shapes, and this module's boxes and layouts.
    ``tests/test_host_launch.py`` checks that the result equals the checked constructor's.
    """
    desc = object.__new__(GluonDescriptor)
    desc.__dict__.update(base=base, shape=shape, strides=strides, block_shape=box, layout=layout, padding="zero")
    return desc


@functools.cache
def _shared_layout(box: tuple[int, ...], element):
    """The shared-memory layout of a bulk copy's box: the same few every call, and slow to build in Python."""
    if len(box) == 1:  # rows of LSE / delta: no swizzle
        return gl.NVMMASharedLayout(swizzle_byte_width=0, element_bitwidth=element.primitive_bitwidth, rank=1)
    return gl.NVMMASharedLayout.get_default_for(list(box), element)


@_on_device_of("q", 1)
def attention_backward(
    dout: torch.Tensor | None,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    indices: torch.Tensor | None,
    causal: bool,
    softmax_scale: float,
    dlse: torch.Tensor | None = None,
    deterministic: bool = False,
    configs: Configs | None = None,
    grads: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    use_tma: bool | None = None,
    bounds: KeyBlockBounds | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns ``(dq, dk, dv)`` shaped and typed like ``q``, ``k``, ``v``.

    ``dout`` (``None`` means zero) is the gradient of ``out``; ``dlse`` (optional) that of ``lse``.
    ``deterministic`` forces the Triton kernels with dQ in its own pass without atomics (bit-identical from run
    to run); otherwise the config decides: a warp-specialized ``Configs.dkdv`` runs the Gluon backward where it
    can (dQ by bulk reduce-adds), else ``Configs.atomic_dq`` / ``Configs.tma_reduce_dq`` (the defaults use the
    pass).
    ``use_tma`` forces Hopper's tensor-descriptor paths on or off (``None``: the config's choice).
    ``grads`` may hold preallocated ``(dq, dk, dv)`` buffers (tests pass poisoned ones).
    ``bounds``: the forward's (``attention_forward(keep_bounds=True)``), reused where the key blocks match.
    """
    q, k, v, out = (_last_dim_contiguous(x) for x in (q, k, v, out))
    dout = torch.zeros_like(out) if dout is None else _last_dim_contiguous(dout)
    batch, seqlen_q, num_q_heads, head_dim = q.shape
    seqlen_k, num_kv_heads = k.shape[1], k.shape[2]
    if batch * num_q_heads * seqlen_q == 0 or seqlen_k == 0:
        grads = grads if grads is not None else (_empty(q), _empty(k), _empty(v))
        return tuple(g.zero_() for g in grads)
    d_pad = _head_dim_pad(head_dim)
    cfgs = configs or _pick(d_pad, q.device, indices, causal, seqlen_q, seqlen_k)
    cfg = cfgs.dkdv
    warp_specialized = cfg.warp_specialized and not deterministic and _backward_ws_ok(q, k, v, dout, use_tma)
    if not warp_specialized:
        cfg = _configs.triton_dkdv(cfg, cfgs.dkdv_fallback)
    atomic_dq = not warp_specialized and cfgs.atomic_dq and not deterministic
    if warp_specialized or atomic_dq:
        pieces = _backward_pieces(cfgs, q, batch * num_kv_heads, cdiv(seqlen_k, cfg.block_n))
        if pieces > 1:
            return _backward_in_pieces(dout, q, k, v, out, lse, dlse, softmax_scale, indices, causal, cfg, cfgs,
                                       grads, use_tma, bounds, warp_specialized, pieces)  # fmt: skip
    # Queued first, with the preprocess: ~1.4 ms of GPU work at 128K tokens x 32 heads, under which the host
    # allocates the gradients and builds the tile lists and descriptors instead of the GPU waiting for them.
    dq_acc = torch.zeros(q.shape, dtype=torch.float32, device=q.device) if warp_specialized else None
    # The Gluon backward reads LSE and delta by whole query tiles: their rows are padded to a multiple of its tile.
    row_stride = cdiv(seqlen_q, WS_BWD_BLOCK_M) * WS_BWD_BLOCK_M if warp_specialized else seqlen_q
    delta, lse2 = torch.empty(2, batch, num_q_heads, row_stride, dtype=torch.float32, device=q.device)
    pre_block = 64
    dlse_arg = lse if dlse is None else dlse.contiguous()
    ints = (*out.stride()[:3], *dout.stride()[:3], seqlen_q, row_stride, num_q_heads)
    # ``lse2`` sits after ``delta`` in one new allocation, at an offset that ``batch`` and the ints fix.
    signature = (out.dtype, dout.dtype, lse.dtype, dlse_arg.dtype, batch, ints,
                 tuple(t.data_ptr() % 16 for t in (out, dout, lse, dlse_arg)))  # fmt: skip
    _BWD_PREPROCESS(
        _grid(batch * num_q_heads, cdiv(row_stride, pre_block)), signature,
        out, dout, lse, dlse_arg, delta, lse2, *ints,
        HAS_DLSE=dlse is not None, BLOCK_M=pre_block, HEAD_DIM=head_dim, HEAD_DIM_PAD=d_pad,
    )  # fmt: skip
    dq_buf, dk, dv = grads if grads is not None else (None, _empty(k), _empty(v))
    mask = _MaskArgs(indices, causal, num_q_heads, lse)
    q_per_kv = num_q_heads // num_kv_heads
    if warp_specialized:
        _backward_ws_launcher(q, k, v, dout, dq_acc, dk, dv, lse2, delta, softmax_scale, mask, cfg, bounds)(
            0, batch * num_kv_heads
        )
        return (dq_acc.to(q.dtype) if dq_buf is None else dq_buf.copy_(dq_acc)), dk, dv

    # dQ either by fp32 atomics inside the dK/dV kernel, or by its own pass (no atomics, bit-identical).
    dq_acc = torch.zeros(q.shape, dtype=torch.float32, device=q.device) if atomic_dq else delta
    _dkdv_launcher(q, k, v, dout, dq_acc, dk, dv, lse2, delta, softmax_scale, mask, cfg, cfgs, use_tma, atomic_dq,
                   bounds)(0, batch * num_kv_heads)  # fmt: skip
    if atomic_dq:
        if dq_buf is None:
            return dq_acc.to(q.dtype), dk, dv
        return dq_buf.copy_(dq_acc), dk, dv

    cfg = cfgs.dq
    tma = (cfg.tma and _tma_ok(k, v)) if use_tma is None else use_tma
    dq = _empty(q) if dq_buf is None else dq_buf
    _, lists = _lists(mask, seqlen_q, seqlen_k, cfg.block_m, cfg.block_n, q.device, transposed=False, reuse=bounds)
    num_m, num_n = cdiv(seqlen_q, cfg.block_m), cdiv(seqlen_k, cfg.block_n)
    k_arg, v_arg = _descriptors(tma, cfg.block_n, d_pad, k, v)
    _launch(
        bwd_dq_kernel,
        _grid(batch * num_q_heads, num_m),
        (
            q, k_arg, v_arg, dout, dq, lse2, delta, mask.tensor, *lists.per_block(),
            q.stride(0), q.stride(1), q.stride(2),
            k.stride(0), k.stride(1), k.stride(2),
            v.stride(0), v.stride(1), v.stride(2),
            dout.stride(0), dout.stride(1), dout.stride(2),
            dq.stride(0), dq.stride(1), dq.stride(2),
            *mask.strides, mask.list_stride_b,
            seqlen_q, seqlen_k, num_q_heads, q_per_kv, mask.q_per_mask, num_m, num_n,
            softmax_scale * _LOG2E, softmax_scale,
        ),
        dict(
            **mask.constexprs(),
            BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, HEAD_DIM=head_dim, HEAD_DIM_PAD=d_pad, USE_TMA=tma,
        ),
        cfg,
    )  # fmt: skip
    return dq, dk, dv


def _dkdv_launcher(q, k, v, dout, dq_acc, dk, dv, lse2, delta, softmax_scale: float, mask: _MaskArgs,
                   cfg: KernelConfig, cfgs: Configs, use_tma: bool | None, atomic_dq: bool,
                   bounds: KeyBlockBounds | None):  # fmt: skip
    """The Triton dK/dV kernel's tile lists and arguments, and a function ``(first, end)`` that launches it over
    (batch x key/value head) rows ``[first, end)``: dK and dV, and with ``atomic_dq`` dQ added into ``dq_acc``."""
    _, seqlen_q, num_q_heads, head_dim = q.shape
    seqlen_k, num_kv_heads = k.shape[1], k.shape[2]
    d_pad = _head_dim_pad(head_dim)
    _, lists = _lists(mask, seqlen_q, seqlen_k, cfg.block_m, cfg.block_n, q.device, transposed=True, reuse=bounds)
    num_m, num_n = cdiv(seqlen_q, cfg.block_m), cdiv(seqlen_k, cfg.block_n)
    dq_strides = (dq_acc.stride(0), dq_acc.stride(1), dq_acc.stride(2)) if atomic_dq else (0, 0, 0)
    tma = (cfg.tma and _tma_ok(q, dout)) if use_tma is None else use_tma
    q_arg, do_arg = _descriptors(tma, cfg.block_m, d_pad, q, dout)
    # With ``tma_reduce_dq`` each tile's dQ goes out as one bulk reduce-add (Hopper) instead of per-element
    # atomics; ``use_tma`` forces it on or off (the interpreter has no bulk reduce: off there).
    want_reduce = cfgs.tma_reduce_dq if use_tma is None else use_tma
    dq_tma = atomic_dq and want_reduce and _tma_ok(dq_acc)
    (dq_arg,) = _descriptors(dq_tma, cfg.block_m, d_pad, dq_acc)
    args = (
        q_arg, k, v, do_arg, dq_arg, dk, dv, lse2, delta, mask.tensor, *lists.per_block(),
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        dout.stride(0), dout.stride(1), dout.stride(2),
        *dq_strides,
        dk.stride(0), dk.stride(1), dk.stride(2),
        dv.stride(0), dv.stride(1), dv.stride(2),
        *mask.strides, mask.list_stride_b,
        seqlen_q, seqlen_k, num_q_heads, num_kv_heads, num_q_heads // num_kv_heads, mask.q_per_mask, num_m, num_n,
        softmax_scale * _LOG2E, softmax_scale,
    )  # fmt: skip
    constexprs = dict(
        ATOMIC_DQ=atomic_dq, DQ_TMA=dq_tma, **mask.constexprs(),
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, HEAD_DIM=head_dim, HEAD_DIM_PAD=d_pad, USE_TMA=tma,
    )  # fmt: skip

    def launch(first: int, end: int) -> None:
        _launch(bwd_dkdv_kernel, _grid(end - first, num_n), (*args, first), constexprs, cfg)

    return launch


_BWD_PIECE_MIN_WAVES = 4  # a piece's main kernel runs at least this many waves of programs (else fewer pieces)


def _backward_pieces(cfgs: Configs, q: torch.Tensor, rows: int, programs_per_row: int) -> int:
    """Pieces of (batch x key/value head) rows to run the dQ-accumulating backward in (``_pieces``): the configs'
    ``backward_pieces``, else ``configs.BWD_PIECES`` on CUDA, at most as many as keep each piece's main kernel
    ``_BWD_PIECE_MIN_WAVES`` waves long; 1 runs it whole."""
    if cfgs.backward_pieces:
        return min(cfgs.backward_pieces, rows)
    if not q.is_cuda or _configs.BWD_PIECES <= 1:
        return 1
    waves = rows * programs_per_row // (_BWD_PIECE_MIN_WAVES * _configs.sm_count(q.device))
    return max(1, min(_configs.BWD_PIECES, rows, waves))


def _backward_in_pieces(dout, q, k, v, out, lse, dlse, softmax_scale: float, indices, causal: bool,
                        cfg: KernelConfig, cfgs: Configs, grads, use_tma, bounds, warp_specialized: bool,
                        pieces: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """``attention_backward`` for the dQ-accumulating kernels in ``pieces`` launches, each piece's memory passes
    beside the other pieces' main kernels (``_pieces.run_in_pieces``)."""
    batch, seqlen_q, num_q_heads, head_dim = q.shape
    num_kv_heads = k.shape[2]
    q_per_kv = num_q_heads // num_kv_heads
    d_pad = _head_dim_pad(head_dim)
    # Zeroed piece by piece by the prepare passes (they are the only writers before the main kernels).
    dq_acc = torch.empty(q.shape, dtype=torch.float32, device=q.device)
    row_stride = cdiv(seqlen_q, WS_BWD_BLOCK_M) * WS_BWD_BLOCK_M if warp_specialized else seqlen_q
    delta, lse2 = torch.empty(2, batch, num_q_heads, row_stride, dtype=torch.float32, device=q.device)
    dlse_arg = lse if dlse is None else dlse.contiguous()
    prepare_ints = (*out.stride()[:3], *dout.stride()[:3], seqlen_q, row_stride, num_q_heads)
    prepare_align = tuple(t.data_ptr() % 16 for t in (out, dout, lse, dlse_arg))
    dq = dk = dv = None  # allocated by ``setup``

    def setup():
        """The gradients' buffers, the main kernel's tile lists (on the current stream) and launcher: called once
        the first prepare pass is queued, so that all of this host work runs while the GPU prepares (until the
        first launch the GPU waits on every step of the host)."""
        nonlocal dq, dk, dv
        dq_buf, dk, dv = grads if grads is not None else (None, _empty(k), _empty(v))
        dq = _empty(q) if dq_buf is None else dq_buf
        mask = _MaskArgs(indices, causal, num_q_heads, lse)
        if warp_specialized:
            return _backward_ws_launcher(q, k, v, dout, dq_acc, dk, dv, lse2, delta, softmax_scale, mask, cfg, bounds)
        return _dkdv_launcher(q, k, v, dout, dq_acc, dk, dv, lse2, delta, softmax_scale, mask, cfg, cfgs, use_tma,
                              True, bounds)  # fmt: skip

    def passes(side: bool) -> tuple[int | None, int, int]:
        """(programs, rows per block, warps) of a pass: one program per block on the whole grid, or a few."""
        if side:
            return _configs.BWD_SIDE_PROGRAMS, _configs.BWD_SIDE_BLOCK_M, _configs.BWD_SIDE_WARPS
        return None, 64, 4

    def prepare(first: int, end: int, side: bool) -> None:
        programs, block_m, warps = passes(side)
        items = (end - first) * q_per_kv * cdiv(row_stride, block_m)
        ints = (*prepare_ints, first * q_per_kv, items)
        # ``lse2`` sits after ``delta`` and ``dq_acc`` is fresh: their offsets are fixed by ``batch`` and the ints.
        _BWD_PREPARE(
            (min(programs or items, items),), (out.dtype, dout.dtype, lse.dtype, dlse_arg.dtype, batch, ints,
                                               prepare_align, block_m, warps),
            out, dout, lse, dlse_arg, delta, lse2, dq_acc, *ints,
            HAS_DLSE=dlse is not None, BLOCK_M=block_m, HEAD_DIM=head_dim, HEAD_DIM_PAD=d_pad, num_warps=warps,
        )  # fmt: skip

    def convert(first: int, end: int, side: bool) -> None:
        programs, block_m, warps = passes(side)
        items = (end - first) * q_per_kv * cdiv(seqlen_q, block_m)
        ints = (*dq.stride()[:3], seqlen_q, num_q_heads, first * q_per_kv, items)
        _DQ_CONVERT(
            (min(programs or items, items),), (dq.dtype, dq.data_ptr() % 16, batch, ints, block_m, warps),
            dq_acc, dq, *ints, BLOCK_M=block_m, HEAD_DIM=head_dim, HEAD_DIM_PAD=d_pad, num_warps=warps,
        )  # fmt: skip

    ranges = piece_ranges(batch * num_kv_heads, pieces, _configs.BWD_LAST_PIECE_SHARE, _configs.BWD_FIRST_PIECE_SHARE)
    run_in_pieces(runner_for(q.device), ranges, prepare, setup, convert,
                  alternate=_configs.BWD_PIECES_ALTERNATE, lead=_configs.BWD_PIECES_LEAD)  # fmt: skip
    return dq, dk, dv


def _backward_ws_ok(q, k, v, dout, use_tma: bool | None) -> bool:
    """Whether the Gluon backward can take this call: Hopper, D=128 or 64, 16-bit, TMA-aligned (every mask form), and
    LSE rows (padded to whole query tiles) addressable by the 32-bit coordinates of its 1-D bulk copies."""
    if bwd_ws_kernel is None:  # another Triton release: no Gluon kernels (nor their constants)
        return False
    padded_rows = q.shape[0] * q.shape[2] * cdiv(q.shape[1], WS_BWD_BLOCK_M) * WS_BWD_BLOCK_M
    return (
        use_tma is not False
        and padded_rows < 2**31
        and q.shape[3] in WS_BWD_HEAD_DIMS
        and q.dtype in (torch.float16, torch.bfloat16)
        and _tma_ok(q, k, v, dout)
    )


def _backward_ws_launcher(q, k, v, dout, dq_acc, dk, dv, lse2, delta, softmax_scale: float, mask: _MaskArgs,
                          cfg: KernelConfig, bounds: KeyBlockBounds | None):  # fmt: skip
    """The Gluon backward's tile lists and arguments, and a function ``(first, end)`` that launches it over (batch x
    key/value head) rows ``[first, end)``: dK and dV into ``dk`` / ``dv``, dQ added into ``dq_acc`` (fp32,
    zeroed: the kernel's reduce-add target)."""
    batch, seqlen_q, num_q_heads, head_dim = q.shape
    seqlen_k, num_kv_heads = k.shape[1], k.shape[2]
    block_m, block_n = WS_BWD_BLOCK_M, WS_BWD_BLOCK_N
    _, lists = _lists(mask, seqlen_q, seqlen_k, block_m, block_n, q.device, transposed=True, reuse=bounds)
    num_m, num_n = cdiv(seqlen_q, block_m), cdiv(seqlen_k, block_n)
    element = gl.bfloat16 if q.dtype == torch.bfloat16 else gl.float16
    row_layout = _shared_layout((block_m,), gl.float32)
    # 1-D over the rows (a descriptor reads only its base's address and dtype: no flattened view needed).
    rows = [batch * num_q_heads * lse2.shape[2]]
    lse_desc, delta_desc = (_descriptor(t, rows, [1], [block_m], row_layout) for t in (lse2, delta))
    ints = (*dk.stride()[:3], *dv.stride()[:3], *mask.strides, mask.list_stride_b, seqlen_q, seqlen_k,
            lse2.shape[2], num_q_heads, num_kv_heads, num_q_heads // num_kv_heads, mask.q_per_mask, num_m,
            num_n)  # fmt: skip
    # The lists sit at offsets of one new allocation that its rows and the ints fix.
    signature = (q.dtype, k.dtype, v.dtype, dout.dtype, ints, lists.full_count.numel(),
                 tuple((t.dtype, t.data_ptr() % 16) for t in (dk, dv, mask.tensor)))  # fmt: skip
    # dK and dV leave by bulk copies where the configs choose them and the buffers allow (ours are contiguous;
    # caller-given ones may not be).
    dkv_tma = _configs.gluon_dkv_copies(head_dim, mask.form.has_mask) and _tma_ok(dk, dv)
    dk_desc, dv_desc = ((_gluon_descriptor(t, block_n // 2, element) for t in (dk, dv)) if dkv_tma
                        else (lse_desc, delta_desc))  # fmt: skip
    args = (
        _gluon_descriptor(q, block_m, element), _gluon_descriptor(k, block_n // 2, element),
        _gluon_descriptor(v, block_n // 2, element), _gluon_descriptor(dout, block_m, element),
        _gluon_descriptor(dq_acc, block_m, gl.float32, head_dim // 2), lse_desc, delta_desc, dk_desc, dv_desc,
        dk, dv, mask.tensor, *lists.per_block(), *ints, softmax_scale * _LOG2E, softmax_scale,
    )  # fmt: skip
    options = dict(**mask.constexprs(), NUM_STAGES=cfg.num_stages, DKV_TMA=dkv_tma, num_warps=cfg.num_warps,
                   maxnreg=WS_BWD_MAX_REGISTERS)  # fmt: skip

    def launch(first: int, end: int) -> None:
        _BWD_WS(_grid(end - first, num_n), (*signature, first), *args, first, **options)

    return launch
