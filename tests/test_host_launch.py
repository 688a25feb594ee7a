"""``kernels._host``: plain-integer grid helpers and ``CachedKernel``'s bookkeeping, on a stand-in kernel (CI has
no GPU, and under the interpreter the cache steps aside; on the GPU ``gpu_check.py`` runs with every reuse checked
against Triton's own binding)."""

from __future__ import annotations

import types

import pytest
import triton
from hypothesis import given
from hypothesis import strategies as st
from triton import knobs

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
