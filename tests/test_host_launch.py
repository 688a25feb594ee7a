"""``kernels._host``: plain-integer grid helpers and ``CachedKernel``'s bookkeeping, on a stand-in kernel (CI has
no GPU, and under the interpreter the cache steps aside; on the GPU ``gpu_check.py`` runs with every reuse checked
against Triton's own binding); and the Gluon launch path's host side, bound through Triton's binder on CPU."""

from __future__ import annotations

import types

import pytest
import torch
import triton
from hypothesis import given
from hypothesis import strategies as st
from triton import knobs
from triton.backends.nvidia.compiler import CUDABackend
from triton.runtime.jit import JITFunction, compute_cache_key, create_function_from_signature

from flashmask.kernels import _host


@given(st.integers(0, 10**9), st.integers(1, 10**6))
def test_cdiv_matches_triton(a: int, b: int) -> None:
    assert _host.cdiv(a, b) == triton.cdiv(a, b)


@given(st.integers(0, 10**9))
def test_next_power_of_2_matches_triton(n: int) -> None:
    assert _host.next_power_of_2(n) == triton.next_power_of_2(n)


class _Param(types.SimpleNamespace):
    pass


class _Compiled:
    function, packed_metadata = "function", "metadata"

    def __init__(self, runs: list) -> None:
        self.runs = runs

    def run(self, *args) -> None:
        self.runs.append(args)


class _StandInKernel:
    """Parameters ``A, B, n`` then constants ``C, D``; records JIT launches and the compiled kernel's runs."""

    debug = False

    def __init__(self, constexpr_first: bool = False) -> None:
        names = ["A", "B", "n", "C", "D"]
        constexprs = {"C", "D"} | ({"A"} if constexpr_first else set())
        self.params = [_Param(name=n, is_constexpr=n in constexprs) for n in names]
        self.device_caches = {}
        self.jit_calls, self.runs = [], []
        self.compiled = _Compiled(self.runs)
        self.fn = types.SimpleNamespace(__name__="stand_in")

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.jit_calls.append((grid, args, kwargs))
            return self.compiled

        return launch


@pytest.fixture
def fake_driver(monkeypatch):
    active = types.SimpleNamespace(get_current_device=lambda: 0, get_current_stream=lambda device: 1234)
    monkeypatch.setattr(_host, "driver", types.SimpleNamespace(active=active))


def test_a_seen_signature_launches_the_compiled_kernel_directly(fake_driver) -> None:
    kernel = _StandInKernel()
    cached = _host.CachedKernel(kernel)
    cached((4, 2), ("sig", 1), "a0", "b0", 7, D=3, C=2, num_warps=4)
    assert len(kernel.jit_calls) == 1 and not kernel.runs
    cached((5,), ("sig", 1), "a1", "b1", 7, D=3, C=2, num_warps=4)
    assert len(kernel.jit_calls) == 1
    # Grid padded to three dims, the stream, no launch metadata or hooks, then every parameter in order.
    assert kernel.runs == [(5, 1, 1, 1234, "function", "metadata", None, None, None, "a1", "b1", 7, 2, 3)]


@pytest.mark.parametrize(
    "change",
    [
        lambda call: call(("other", 1), D=3, C=2, num_warps=4),  # another signature
        lambda call: call(("sig", 1), D=3, C=5, num_warps=4),  # another constant
        lambda call: call(("sig", 1), D=3, C=2, num_warps=8),  # another launch option
        lambda call: call(None, D=3, C=2, num_warps=4),  # no signature: never cached
    ],
)
def test_anything_else_goes_through_the_jit(fake_driver, change) -> None:
    kernel = _StandInKernel()
    cached = _host.CachedKernel(kernel)

    def call(signature, **kwargs):
        cached((1,), signature, "a", "b", 7, **kwargs)

    call(("sig", 1), D=3, C=2, num_warps=4)
    change(call)
    assert len(kernel.jit_calls) == 2 and not kernel.runs


def test_each_device_gets_its_own_compiled_kernel(monkeypatch) -> None:
    # Triton loads a compiled kernel into the context of the device it was first launched on; a process driving
    # two GPUs (a model split over them) must compile / load it again for the second, not reuse the first's.
    current = {"device": 0}
    active = types.SimpleNamespace(get_current_device=lambda: current["device"], get_current_stream=lambda d: 100 + d)
    monkeypatch.setattr(_host, "driver", types.SimpleNamespace(active=active))
    kernel = _StandInKernel()
    cached = _host.CachedKernel(kernel)
    cached((1,), ("sig",), "a", "b", 7, C=2, D=3)
    current["device"] = 1
    cached((1,), ("sig",), "a", "b", 7, C=2, D=3)
    assert len(kernel.jit_calls) == 2 and not kernel.runs
    cached((1,), ("sig",), "a", "b", 7, C=2, D=3)
    current["device"] = 0
    cached((1,), ("sig",), "a", "b", 7, C=2, D=3)
    assert len(kernel.jit_calls) == 2 and [run[3] for run in kernel.runs] == [101, 100]


def test_launch_hooks_and_leading_constants_bypass_the_cache(fake_driver, monkeypatch) -> None:
    kernel = _StandInKernel(constexpr_first=True)
    cached = _host.CachedKernel(kernel)
    for _ in range(2):
        cached((1,), ("sig",), "a", "b", 7, C=2, D=3)
    assert len(kernel.jit_calls) == 2 and not kernel.runs

    kernel = _StandInKernel()
    cached = _host.CachedKernel(kernel)
    monkeypatch.setattr(knobs.runtime, "launch_enter_hook", lambda metadata: None)
    for _ in range(2):
        cached((1,), ("sig",), "a", "b", 7, C=2, D=3)
    assert len(kernel.jit_calls) == 2 and not kernel.runs


def test_check_mode_raises_when_triton_would_pick_another_kernel(fake_driver, monkeypatch) -> None:
    kernel = _StandInKernel()
    specialisation = {"n": 7}
    other = object()

    def binder(*args, **options):
        return None, [("i32", specialisation["n"])], {}

    kernel_cache = {}
    kernel.device_caches[0] = (kernel_cache, {}, None, None, binder)
    monkeypatch.setenv("FLASHMASK_CHECK_LAUNCH", "1")
    cached = _host.CachedKernel(kernel)
    cached((1,), ("sig",), "a", "b", 7, C=2, D=3)
    key = _host.compute_cache_key({}, [("i32", 7)], {})
    kernel_cache[key] = kernel.compiled
    cached((1,), ("sig",), "a", "b", 7, C=2, D=3)  # the same kernel: fine
    assert len(kernel.runs) == 1
    kernel_cache[key] = other
    with pytest.raises(RuntimeError, match="reused a kernel compiled for other arguments"):
        cached((1,), ("sig",), "a", "b", 7, C=2, D=3)


# ------------------------------------------------------------------------------------------------------------------
# The Gluon launch path's host side (GPU-only code) on CPU tensors: every cached launch binds its arguments through
# Triton's own binder for CUDA, and every reuse is checked against it, as ``FLASHMASK_CHECK_LAUNCH=1`` does on the
# GPU. Catches a launcher whose arguments no longer match its kernel, and a signature that misses something Triton
# specialises on, without a GPU.


class _BindingKernel:
    """Stands in for a ``triton.jit`` / ``gluon.jit`` kernel: a launch binds its arguments with Triton's binder
    for the CUDA backend (nothing compiles) and returns one stand-in compiled kernel per specialisation, as
    Triton's per-device cache would."""

    debug = False

    def __init__(self, kernel) -> None:
        # Under the interpreter the Triton kernels are ``InterpretedFunction``s: rebuild their JIT parameters.
        jit = kernel if hasattr(kernel, "params") else JITFunction(kernel.fn)
        self.params, self.fn = jit.params, jit.fn
        binder = create_function_from_signature(jit.signature, jit.params, CUDABackend)
        self.kernel_cache: dict = {}
        self.device_caches = {0: (self.kernel_cache, {}, None, None, binder)}
        self.runs: list = []
        self.jit_launches = 0

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.jit_launches += 1
            kernel_cache, key_cache, _, _, binder = self.device_caches[0]
            options = dict(kwargs, debug=False, instrumentation_mode=knobs.compilation.instrumentation_mode)
            _, specialization, opts = binder(*args, **options)
            return kernel_cache.setdefault(compute_cache_key(key_cache, specialization, opts), _Compiled(self.runs))

        return launch


_CACHED_LAUNCHES = (
    ("kernels", "_FWD_WS"),
    ("kernels", "_BWD_WS"),
    ("kernels", "_BWD_PREPROCESS"),
    ("kernels", "_BWD_PREPARE"),
    ("kernels", "_DQ_CONVERT"),
    ("tiles", "_ROW_PLAN"),
)
# The launches of a backward in one piece (the others run only in pieces).
_WHOLE_CALL_LAUNCHES = ("_FWD_WS", "_BWD_WS", "_BWD_PREPROCESS", "_ROW_PLAN")


@pytest.fixture
def gluon_host(fake_driver, monkeypatch):
    """The hardware probes answer as an H100's; the cached launches bind through ``_BindingKernel``s."""
    from flashmask import kernels
    from flashmask.kernels import configs, tiles

    if not configs.gluon_release():
        pytest.skip("the Gluon kernels are used on Triton 3.6 only")
    monkeypatch.setenv("FLASHMASK_CHECK_LAUNCH", "1")
    monkeypatch.setattr(kernels, "_tma_ok", lambda *tensors: True)
    monkeypatch.setattr(configs, "sm_count", lambda device: 132)
    modules = {"kernels": kernels, "tiles": tiles}
    stand_ins = {}
    for module, name in _CACHED_LAUNCHES:
        stand_ins[name] = _BindingKernel(getattr(modules[module], name).kernel)
        monkeypatch.setattr(modules[module], name, _host.CachedKernel(stand_ins[name]))
    return stand_ins


def _column_mask(vectors: int, batch: int, heads: int, seqlen_q: int, seqlen_k: int, misaligned: bool):
    """A mask of ``vectors`` interval vectors (0: none); its values do not matter (nothing runs). ``misaligned``: a
    view 4 bytes into its storage."""
    if not vectors:
        return None
    storage = torch.randint(0, seqlen_q + 1, (batch * heads * seqlen_k * vectors + 1,), dtype=torch.int32)
    return storage[int(misaligned) :][: batch * heads * seqlen_k * vectors].view(batch, heads, seqlen_k, vectors)


def _fwd_bwd_host(form, batch, seqlen_q, seqlen_k, heads, kv_heads, mask_heads, dtype, misaligned, sweep_keys=None,
                  backward_pieces=0):  # fmt: skip
    from flashmask.kernels import Configs, attention_backward, attention_forward, configs

    causal = form[0]
    q = torch.randn(batch, seqlen_q, heads, 128, dtype=dtype)
    k, v = (torch.randn(batch, seqlen_k, kv_heads, 128, dtype=dtype) for _ in range(2))
    indices = _column_mask(form[1], batch, mask_heads, seqlen_q, seqlen_k, misaligned)
    out, lse, bounds = attention_forward(q, k, v, indices, causal, 0.1, config=configs.WARP_SPECIALIZED_FORWARD,
                                         sweep_keys=sweep_keys, keep_bounds=True)  # fmt: skip
    gluon = Configs(configs.WARP_SPECIALIZED_FORWARD, configs.WARP_SPECIALIZED_BACKWARD, configs.K(64, 64, 4, 2, True),
                    backward_pieces=backward_pieces)  # fmt: skip
    attention_backward(torch.randn_like(q), q, k, v, out, lse, indices, causal, 0.1, configs=gluon, bounds=bounds)


_FORMS = [(False, 0), (True, 0), (True, 1), (True, 2), (False, 2), (False, 4)]


@pytest.mark.parametrize("form", _FORMS, ids=["full", "causal", "lts", "lts-lte", "lts-ute", "four"])
def test_gluon_launches_bind_to_their_kernels_and_reuse_checks_out(gluon_host, form) -> None:
    shapes = [
        # batch, Sq, Sk, Hq, Hkv, Hm, dtype, misaligned mask
        (1, 256, 256, 2, 1, 1, torch.bfloat16, False),
        (1, 256, 256, 2, 1, 1, torch.float16, False),  # only the dtype differs
        (1, 256, 256, 2, 1, 1, torch.float16, True),  # only the mask's alignment differs
        (2, 200, 330, 4, 2, 2, torch.float16, True),
        (1, 129, 64, 4, 1, 4, torch.bfloat16, False),
    ]
    for shape in shapes:
        for _ in range(2):  # the second call reuses each launch, checked against the binder
            _fwd_bwd_host(form, *shape)
    for name in _WHOLE_CALL_LAUNCHES:
        stand_in = gluon_host[name]
        launches = 2 * len(shapes) * (2 if name == "_ROW_PLAN" else 1)  # the plan runs in both passes
        # Each call of a shape seen before reuses its launches (without a mask, the misaligned one is seen).
        assert stand_in.jit_launches + len(stand_in.runs) == launches, name
        assert len(stand_in.runs) >= launches // 2, name
    forward = gluon_host["_FWD_WS"]
    runs = len(forward.runs)
    for _ in range(2):  # a forward in key sweeps (one program per item, the state carried between launches)
        _fwd_bwd_host(form, *shapes[3], sweep_keys=128)
    assert len(forward.runs) == runs + 3  # three sweeps of 128 keys over 330, the second time reused
    for name in _WHOLE_CALL_LAUNCHES:
        # The compiled launcher takes every parameter, constants included, after grid, stream and metadata.
        assert {len(run) - 9 for run in gluon_host[name].runs} == {len(gluon_host[name].params)}, name


@pytest.mark.parametrize("form", _FORMS, ids=["full", "causal", "lts", "lts-lte", "lts-ute", "four"])
def test_gluon_backward_in_pieces_binds_and_reuses(gluon_host, form, monkeypatch) -> None:
    """The backward in 3 pieces of its 4 (batch x key/value head) rows, one lead piece: each piece's main kernel,
    prepare and convert passes (whole grid or side grid) get their own launch signature, bound once and then
    reused."""
    from flashmask.kernels import configs

    monkeypatch.setattr(configs, "BWD_PIECES_LEAD", 1)
    shape = (2, 200, 330, 4, 2, 2, torch.float16, True)
    for _ in range(2):
        _fwd_bwd_host(form, *shape, backward_pieces=3)
    for name in ("_BWD_WS", "_BWD_PREPARE", "_DQ_CONVERT"):
        stand_in = gluon_host[name]
        assert stand_in.jit_launches == 3 and len(stand_in.runs) == 3, name
        assert {len(run) - 9 for run in stand_in.runs} == {len(stand_in.params)}, name
    assert not gluon_host["_BWD_PREPROCESS"].runs and not gluon_host["_BWD_PREPROCESS"].jit_launches


@pytest.mark.parametrize("form", [(False, 0), (True, 1)], ids=["full", "lts"])
def test_gluon_backward_binds_with_either_dkv_write(gluon_host, form, monkeypatch) -> None:
    """dK / dV by scattered stores (the copies switched off, or buffers the copy engine cannot write) and by bulk
    copies are two specialisations of one kernel: each binds once, and a call of the other does not reuse it."""
    from flashmask.kernels import configs

    shape = (1, 256, 256, 2, 1, 1, torch.bfloat16, False)
    stand_in = gluon_host["_BWD_WS"]
    for copies in (True, False, True, False):
        monkeypatch.setattr(configs, "GLUON_BACKWARD_DKV_COPIES", copies)
        _fwd_bwd_host(form, *shape)
    assert stand_in.jit_launches == 2 and len(stand_in.runs) == 2
    assert len(stand_in.kernel_cache) == 2


def _descriptor_launcher(monkeypatch, encodings: list, scratch: int = 0):
    """A compiled kernel ``(A, desc D1, n, desc D2, C)`` whose launcher is Triton 3.6's own descriptor wrapper around
    a recording raw launcher, with a stand-in encoder (the real one needs a GPU); returns it and the raw calls."""
    nvidia = pytest.importorskip("triton.backends.nvidia.driver")
    if _host.make_tensordesc_arg is None:
        pytest.skip("this Triton has no make_tensordesc_arg")

    def encode(desc, meta):
        encodings.append((desc.base.data_ptr(), tuple(desc.shape), tuple(desc.strides), meta["swizzle"]))
        return [("map", desc.base.data_ptr(), tuple(desc.shape), tuple(desc.strides), meta["swizzle"]),
                *desc.shape, *desc.strides]  # fmt: skip

    monkeypatch.setattr(nvidia, "make_tensordesc_arg", encode)
    monkeypatch.setattr(_host, "make_tensordesc_arg", encode)
    raw_calls = []
    signature = {
        "A": "*bf16",
        "D1": "tensordesc<bf16[64, 128]>",
        "n": "i32",
        "D2": "tensordesc<fp32[32]>",
        "C": "constexpr",
    }
    metas = [{"swizzle": 128}, {"swizzle": 0}]
    run = types.SimpleNamespace(
        launch=nvidia.wrap_handle_tensordesc(lambda *args: raw_calls.append(args), signature, metas),
        global_scratch_size=scratch, profile_scratch_size=0, launch_cooperative_grid=False, launch_pdl=False,
    )  # fmt: skip

    def through_triton(grid, stream, args, tail):
        # ``CudaLauncher.__call__`` with no scratch memory: base arguments, then the metadata and hooks.
        run.launch(*grid, stream, "function", False, False, None, None, "metadata", None, None, None, *args, *tail)

    compiled = types.SimpleNamespace(run=run, function="function", packed_metadata="metadata")
    return compiled, through_triton, raw_calls


def _desc(t: torch.Tensor, shape: list, strides: list):
    return types.SimpleNamespace(base=t, shape=shape, strides=strides, padding="zero")


def test_encoded_launch_passes_what_triton_passes_and_encodes_each_map_once(monkeypatch) -> None:
    encodings = []
    compiled, through_triton, raw_calls = _descriptor_launcher(monkeypatch, encodings)
    encoded = _host._EncodedLaunch.of(compiled, 4)
    assert encoded is not None
    a, b, rows = torch.empty(2, 64, 128), torch.empty(3, 64, 128), torch.empty(32)
    calls = [
        ("p", _desc(a, [2, 64, 128], [8192, 128, 1]), 7, _desc(rows, [32], [1])),
        ("p", _desc(a, [2, 64, 128], [8192, 128, 1]), 8, _desc(rows, [32], [1])),  # the same maps again
        ("p", _desc(b, [3, 64, 128], [8192, 128, 1]), 7, _desc(rows, [32], [1])),  # another base and shape
        ("p", _desc(a, [2, 64, 128], [128, 256, 1]), 7, _desc(rows, [16], [1])),  # other strides, other rows
    ]
    for args in calls:
        through_triton((3, 2, 1), 99, args, (5,))
        encoded(3, 2, 1, 99, compiled, args, (5,))
        assert raw_calls[-1] == raw_calls[-2]
    assert len(raw_calls) == 8
    # Triton encoded both descriptors on each of its four launches; the cache, each distinct map once more (5).
    assert len(encodings) == 8 + 5


@pytest.mark.parametrize("enabled", [True, False])
def test_cached_kernel_launches_through_the_encoded_maps(monkeypatch, fake_driver, enabled) -> None:
    """A seen signature of a kernel with descriptors goes to the raw launcher with the arguments Triton's wrapper
    would pass it (``configs.ENCODED_LAUNCH`` off: through the wrapper, as before)."""
    from flashmask.kernels import configs

    monkeypatch.setattr(configs, "ENCODED_LAUNCH", enabled)
    encodings = []
    compiled, through_triton, raw_calls = _descriptor_launcher(monkeypatch, encodings)
    kernel = _StandInKernel()
    kernel.params = [_Param(name=n, is_constexpr=n == "C") for n in ("A", "D1", "n", "D2", "C")]

    class _Run(types.SimpleNamespace):  # ``CudaLauncher``: its call goes to the descriptor wrapper
        def __call__(self, grid_x, grid_y, grid_z, stream, function, *args):
            self.launch(grid_x, grid_y, grid_z, stream, function, False, False, None, None, *args)

    compiled.run = _Run(**vars(compiled.run))
    kernel.compiled = compiled
    cached = _host.CachedKernel(kernel)
    t = torch.empty(2, 64, 128)
    args = ("p", _desc(t, [2, 64, 128], [8192, 128, 1]), 7, _desc(t, [32], [1]))
    cached((3, 2), ("sig",), *args, C=5, num_warps=4)  # through the JIT
    for _ in range(2):
        cached((3, 2), ("sig",), *args, C=5, num_warps=4)
    through_triton((3, 2, 1), 1234, args, (5,))
    assert len(raw_calls) == 3 and raw_calls[0] == raw_calls[1] == raw_calls[2]
    # The wrapper encoded both maps on each of its launches; the encoded path, each map once.
    assert len(encodings) == (2 + 2 if enabled else 3 * 2)


@pytest.mark.parametrize("case", ["scratch", "no_descriptors", "constant_position"])
def test_encoded_launch_steps_aside(monkeypatch, case) -> None:
    compiled, _, _ = _descriptor_launcher(monkeypatch, [], scratch=1 if case == "scratch" else 0)
    if case == "no_descriptors":
        compiled.run.launch = lambda *args: None  # Triton's raw launcher itself, for a kernel without descriptors
    num_args = 2 if case == "constant_position" else 4
    assert _host._EncodedLaunch.of(compiled, num_args) is None


@pytest.mark.parametrize("cols", [None, 64])
def test_unchecked_descriptors_equal_the_checked_constructors(cols) -> None:
    from flashmask import kernels
    from flashmask.kernels import configs

    if not configs.gluon_release():
        pytest.skip("the Gluon kernels are used on Triton 3.6 only")
    from triton.experimental.gluon.language import bfloat16, float32
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    t = torch.empty(2, 200, 4, 128, dtype=torch.bfloat16)[:, :, 1:3]  # strided over heads, as a view can be
    fast = kernels._gluon_descriptor(t, 64, bfloat16, cols)
    box = [1, 64, 1, cols or 128]
    checked = TensorDescriptor(t, list(t.shape), list(t.stride()), box, kernels._shared_layout(tuple(box), bfloat16))
    assert fast == checked and fast.base is t
    rows = torch.empty(3, 4, 256, dtype=torch.float32)
    layout = kernels._shared_layout((64,), float32)
    assert kernels._descriptor(rows, [3 * 4 * 256], [1], [64], layout) == TensorDescriptor(
        rows, [3 * 4 * 256], [1], [64], layout
    )


class _Entered(Exception):
    """Raised by the stand-in device guard: the entry point got as far as making the device current."""


def _fake_cuda(index: int):
    return types.SimpleNamespace(device=torch.device("cuda", index))


@pytest.mark.parametrize("entry, position", [("attention_forward", 0), ("attention_backward", 1)])
@pytest.mark.parametrize("as_keyword", [False, True])
def test_entry_points_make_the_tensors_device_current(monkeypatch, entry, position, as_keyword) -> None:
    """Triton launches on the current device: each kernel entry point switches to ``q``'s device first when another
    one is current (a model split across GPUs), before any other work."""
    from flashmask import kernels

    entered = []

    def guard(device):
        entered.append(device)
        raise _Entered

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "device", guard)
    args = [None] * (position + 1)
    if as_keyword:
        args, kwargs = args[:position], {"q": _fake_cuda(1)}
    else:
        args[position], kwargs = _fake_cuda(1), {}
    with pytest.raises(_Entered):
        getattr(kernels, entry)(*args, **kwargs)
    assert entered == [torch.device("cuda", 1)]


def test_device_guard_steps_aside_when_not_needed(monkeypatch) -> None:
    """On the current device, and for CPU tensors (without asking CUDA at all), the call runs as is."""
    from flashmask.kernels import _on_device_of

    def no_guard(device):
        raise AssertionError("no device switch expected")

    calls = []
    monkeypatch.setattr(torch.cuda, "device", no_guard)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: calls.append("current") or 2)
    fn = _on_device_of("q", 0)(lambda q, scale=1: scale)
    assert fn(_fake_cuda(2), scale=3) == 3
    assert calls == ["current"]
    assert fn(torch.empty(1)) == 1
    assert calls == ["current"]
