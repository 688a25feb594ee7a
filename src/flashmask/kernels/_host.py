"""The host side of a launch: grid arithmetic in plain integers, and compiled kernels reused by call signature.

Before every forward's main kernel the GPU waits for the host, and on the H100 host of the benchmarks Triton's
launch path costs 75-225 us per launch (s15a in ``benchmarks/NOTES.md``): binding and specialising each argument,
the cache key, then the compiled kernel's own launcher, which alone is a third to a half of it. ``CachedKernel``
keeps the compiled kernel of each call signature its caller names and calls that launcher directly.

The contract: equal ``signature`` tuples must mean arguments that Triton specialises alike, i.e. the same integer
values (Triton specialises an int on being 1, on divisibility by 16 and on its width), the same pointer dtypes
and 16-byte alignment of every pointer, the same tensor-descriptor types. Keyword arguments (compile-time
constants and launch options) and the current device are added to the key here. With ``FLASHMASK_CHECK_LAUNCH=1``
every reuse is checked against Triton's own binding (``benchmarks/gpu_check.py`` runs so); the first call of a
signature on a device, and every call while a launch hook is set (profilers) or under the interpreter, goes
through Triton's JIT as usual.
"""

from __future__ import annotations

import os

from triton import knobs
from triton.runtime import driver
from triton.runtime.jit import compute_cache_key

from . import configs as _configs

try:  # Triton 3.6's encoding of a Gluon tensor descriptor (``_EncodedLaunch``)
    from triton.backends.nvidia.driver import make_tensordesc_arg
except ImportError:
    make_tensordesc_arg = None


def cdiv(a: int, b: int) -> int:
    """``ceil(a / b)`` for positive ``b``: ``triton.cdiv`` is a constexpr function, ~100x slower on the host."""
    return -(-a // b)


def next_power_of_2(n: int) -> int:
    """The smallest power of two ``>= n`` for ``n >= 1`` (0 for 0, as ``triton.next_power_of_2``)."""
    return 0 if n <= 0 else 1 << (n - 1).bit_length()


def _check_enabled() -> bool:
    return os.environ.get("FLASHMASK_CHECK_LAUNCH", "0") == "1"


def _hooked(*hooks) -> bool:
    """Whether a launch hook is set: Triton 3.6 keeps them as chains (``HookChain``), empty unless a profiler or
    the user adds one; a plain function or any other object counts as set."""
    return any(h is not None and bool(getattr(h, "calls", True)) for h in hooks)


class CachedKernel:
    """A ``triton.jit`` / ``gluon.jit`` kernel launched as ``cached(grid, signature, *args, **kwargs)``.

    ``args`` are the kernel's leading parameters in order; ``kwargs`` its remaining (compile-time) parameters and
    the launch options (``num_warps``, ``num_stages``, ``maxnreg``). ``signature`` (hashable, or ``None`` to skip
    the cache) must determine how Triton specialises ``args`` (module docstring).
    """

    def __init__(self, kernel) -> None:
        self.kernel = kernel
        self._compiled: dict = {}
        self._check = _check_enabled()

    def __call__(self, grid: tuple[int, ...], signature, *args, **kwargs) -> None:
        # (Under the interpreter the kernel is an ``InterpretedFunction``, with no compiled kernels to keep.)
        jit = hasattr(self.kernel, "device_caches")
        if signature is None or not jit or _hooked(knobs.runtime.launch_enter_hook, knobs.runtime.launch_exit_hook):
            self.kernel[grid](*args, **kwargs)
            return
        # A compiled kernel is loaded into one device's context (Triton keeps one cache per device): a process that
        # drives several GPUs must not launch device 0's function on device 1.
        device = driver.active.get_current_device()
        key = (device, signature, tuple(kwargs.items()), knobs.runtime.debug, knobs.compilation.instrumentation_mode)
        hit = self._compiled.get(key)
        if hit is None:
            compiled = self.kernel[grid](*args, **kwargs)
            tail = self._trailing_constants(len(args), kwargs)
            if compiled is not None and tail is not None:
                self._compiled[key] = (compiled, tail, _EncodedLaunch.of(compiled, len(args)))
            return
        compiled, tail, encoded = hit
        if self._check:
            self._verify(compiled, device, args, kwargs)
        stream = driver.active.get_current_stream(device)
        grid_x, grid_y, grid_z = (*grid, 1, 1)[:3]
        if encoded is not None and _configs.ENCODED_LAUNCH:
            encoded(grid_x, grid_y, grid_z, stream, compiled, args, tail)
            return
        compiled.run(grid_x, grid_y, grid_z, stream, compiled.function, compiled.packed_metadata, None, None, None,
                     *args, *tail)  # fmt: skip

    def _trailing_constants(self, num_args: int, kwargs: dict) -> tuple | None:
        """The values of the parameters after the positional ones, in order, if they are all compile-time
        constants given in ``kwargs`` (the compiled launcher takes every parameter and skips the constants);
        ``None`` otherwise, and the call is not cached."""
        params = self.kernel.params
        if any(p.is_constexpr for p in params[:num_args]):
            return None
        tail = []
        for p in params[num_args:]:
            if not p.is_constexpr or p.name not in kwargs:
                return None
            tail.append(kwargs[p.name])
        return tuple(tail)

    def _verify(self, compiled, device: int, args: tuple, kwargs: dict) -> None:
        """Raise if Triton's own binding of these arguments would pick another compiled kernel."""
        kernel_cache, key_cache, _, _, binder = self.kernel.device_caches[device]
        options = dict(kwargs, debug=kwargs.get("debug", self.kernel.debug) or knobs.runtime.debug,
                       instrumentation_mode=knobs.compilation.instrumentation_mode)  # fmt: skip
        _, specialization, opts = binder(*args, **options)
        if kernel_cache.get(compute_cache_key(key_cache, specialization, opts)) is not compiled:
            raise RuntimeError(
                f"flashmask: the launch cache of {self.kernel.fn.__name__} reused a kernel compiled for other "
                f"arguments (specialisation now: {specialization})"
            )


class _EncodedLaunch:
    """A compiled kernel's launch with its Hopper tensor descriptors encoded once per (address, shape, strides).

    Triton's launcher encodes every Gluon tensor descriptor into a ``CUtensorMap`` on each launch, in Python
    (``make_tensordesc_arg``: seven for the backward's main kernel, launched once per piece, three for the forward).
    The map is a pure function of the base address, shape and strides and of the compiled kernel's per-descriptor
    metadata (element type, box, swizzle), so a map encoded earlier for equal values is the same map: a tensor freed
    and another allocated at its address with its shape and strides gets the map it would get encoded afresh.
    ``of`` finds the raw launcher and the metadata in Triton 3.6's wrapper; on any other shape of it, or a kernel
    that needs scratch memory, it returns ``None`` and launches go through ``compiled.run`` as usual.
    """

    _MAX_MAPS = 256  # per compiled kernel: the maps of a few calls' tensors; dropped all at once past this

    def __init__(self, launch, metas: dict[int, dict], cooperative: bool, pdl: bool) -> None:
        self.launch, self.metas, self.cooperative, self.pdl = launch, metas, cooperative, pdl
        self.positions = sorted(metas, reverse=True)  # replaced from the last, so earlier positions stay put
        self.maps: dict[tuple, list] = {}

    @classmethod
    def of(cls, compiled, num_args: int) -> _EncodedLaunch | None:
        if make_tensordesc_arg is None:
            return None
        run = compiled.run
        wrapper = getattr(run, "launch", None)
        names = getattr(getattr(wrapper, "__code__", None), "co_freevars", ())
        if not {"launcher", "tensordesc_indices", "tensordesc_meta"} <= set(names) or wrapper.__closure__ is None:
            return None
        if getattr(run, "global_scratch_size", 1) or getattr(run, "profile_scratch_size", 1):
            return None
        cells = dict(zip(names, (cell.cell_contents for cell in wrapper.__closure__), strict=True))
        positions, metas = sorted(cells["tensordesc_indices"]), cells["tensordesc_meta"]
        if not positions or len(metas) != len(positions) or any(m is None for m in metas) or positions[-1] >= num_args:
            return None
        return cls(cells["launcher"], dict(zip(positions, metas, strict=True)), run.launch_cooperative_grid,
                   run.launch_pdl)  # fmt: skip

    def _encoded(self, position: int, desc) -> list:
        key = (position, desc.base.data_ptr(), desc.padding, *desc.shape, *desc.strides)
        encoded = self.maps.get(key)
        if encoded is None:
            if len(self.maps) >= self._MAX_MAPS:
                self.maps.clear()
            encoded = self.maps[key] = make_tensordesc_arg(desc, self.metas[position])
        return encoded

    def __call__(self, grid_x: int, grid_y: int, grid_z: int, stream: int, compiled, args: tuple, tail: tuple) -> None:
        final = list(args)
        for position in self.positions:
            final[position : position + 1] = self._encoded(position, final[position])
        self.launch(grid_x, grid_y, grid_z, stream, compiled.function, self.cooperative, self.pdl, None, None,
                    compiled.packed_metadata, None, None, None, *final, *tail)  # fmt: skip
