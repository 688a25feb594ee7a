"""The ``flashmask`` command line: ``flashmask demo`` and ``flashmask bench``.

``demo`` checks every benchmark mask against the dense reference at a small size and prints a table (GPU
kernels when CUDA is there, else the PyTorch path). ``bench`` runs the paper's kernel table with its peers,
the mask-cost comparison and the sparsity sweep on a GPU (``--dry-run`` prints the plan anywhere,
``--render`` re-renders recorded results).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

EXIT_USAGE = 2


# ------------------------------------------------------------------------------------------- arg types
def _size(text: str) -> int:
    """``8192``, ``8K``, ``8k`` or ``1M`` (powers of 1024) as a positive int."""
    t = text.strip()
    mult = 1
    if t[-1:].lower() == "k":
        mult, t = 1024, t[:-1]
    elif t[-1:].lower() == "m":
        mult, t = 1024 * 1024, t[:-1]
    try:
        value = int(t) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 8192, 8K or 1M)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def _items(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _size_list(text: str) -> tuple[int, ...]:
    values = tuple(_size(x) for x in _items(text))
    if not values:
        raise argparse.ArgumentTypeError("expected a comma-separated list, e.g. 8K,32K")
    return values


def _choices(kind: str, known: tuple[str, ...], allow_none: bool = False):
    def parse(text: str) -> tuple[str, ...]:
        items = _items(text)
        if items == ["all"]:
            return known
        if allow_none and items in ([], ["none"]):
            return ()
        for item in items:
            if item not in known:
                raise argparse.ArgumentTypeError(f"unknown {kind} {item!r}; known: {', '.join(known)}, all")
        if not items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind}s")
        return tuple(dict.fromkeys(items))

    return parse


def _mask_list(text: str) -> tuple[str, ...]:
    from .bench.workloads import MASK_TYPES

    return _choices("mask type", MASK_TYPES)(text)


# ------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from .bench.e2e import E2E_BACKENDS, E2E_PARTS
    from .bench.plan import PARTS, PEERS

    parser = argparse.ArgumentParser(prog="flashmask", description="FlashMask attention: demo and benchmarks.")
    sub = parser.add_subparsers(dest="command", metavar="{demo,bench}")

    demo = sub.add_parser(
        "demo",
        help="check every benchmark mask against the dense reference and print a table",
        description="Forward and backward of flashmask_attention for every benchmark mask at a small size, "
        "compared with the dense reference (float64 on CPU, float32 on GPU). B=1, Hq=4, Hkv=2 (GQA), D=64. "
        "Exit code 1 if any error exceeds the tolerance.",
    )
    demo.add_argument("--seqlen", type=_size, default=None, help="tokens (default 512 on CPU, 2048 on GPU)")
    demo.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    demo.add_argument(
        "--backend",
        choices=("auto", "torch", "triton"),
        default="auto",
        help="auto: kernels on CUDA, else torch",
    )
    demo.add_argument("--masks", type=_mask_list, default=None, help="comma-separated mask types (default all)")
    demo.add_argument("--reps", type=int, default=3, help="timed repetitions after one warm-up (median)")
    demo.add_argument(
        "--tol",
        type=float,
        default=None,
        help="max error relative to max|ref| (default 1e-4 CPU, 2e-2 GPU bf16)",
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser(
        "bench",
        help="kernel table against FlexAttention / SDPA, mask cost, sparsity sweep (GPU)",
        description="The paper's benchmarks on a CUDA GPU (SPEC section 4). Results go to OUT/results.json "
        "(saved after every case), OUT/results.md and PNG plots. Split a full run with --part, --seqlens "
        "and --head-dims; merge the parts with --render a/results.json b/results.json --out merged.",
    )
    bench.add_argument("--masks", type=_mask_list, default=None, help="kernel-table mask types (default all)")
    bench.add_argument("--seqlens", type=_size_list, default=None, help="kernel-table lengths (default 8K,32K,128K)")
    bench.add_argument("--head-dims", type=_size_list, default=None, help="head dims (default 128,64)")
    bench.add_argument(
        "--peers", type=_choices("peer", PEERS, allow_none=True), default=None,
        help=f"peers to measure, comma-separated from {', '.join(PEERS)} (or none; default all)",
    )  # fmt: skip
    bench.add_argument(
        "--part", type=_choices("part", PARTS), default=None, help=f"{', '.join(PARTS)} or all (default all)"
    )
    bench.add_argument(
        "--quick",
        action="store_true",
        help="kernel table at 8K, D=128, full and causal_document, short timings (under 2 min on an H100)",
    )
    bench.add_argument("--out", default=None, help="output folder (default ./bench_results)")
    bench.add_argument("--dry-run", action="store_true", help="print the plan and estimated memory; run nothing")
    bench.add_argument(
        "--render", nargs="+", metavar="JSON", default=None,
        help="re-render results.md and plots from recorded results.json files (several are merged)",
    )  # fmt: skip
    bench.add_argument("--total-tokens", type=_size, default=None, help="tokens per case, B = this // S (128K)")
    bench.add_argument("--warmup-ms", type=int, default=None, help="timer warm-up budget in ms")
    bench.add_argument("--rep-ms", type=int, default=None, help="timer repetition budget in ms")
    bench.add_argument(
        "--dense-limit-gb",
        type=float,
        default=None,
        help="skip SDPA with a dense mask from this many GiB (4)",
    )
    bench.add_argument("--tol", type=float, default=None, help="peer output check tolerance (2e-2)")
    bench.add_argument("--mask-cost-seqlens", type=_size_list, default=None, help="default 8K,32K,128K,512K,1M")
    bench.add_argument("--sweep-masks", type=_mask_list, default=None, help="sparsity-sweep masks")
    bench.add_argument("--doc-counts", type=_size_list, default=None, help="sparsity-sweep documents per row")
    bench.add_argument("--sweep-seqlen", type=_size, default=None, help="sparsity-sweep length (32K)")
    bench.add_argument("--sweep-batch", type=int, default=None, help="sparsity-sweep batch (tokens // S)")
    bench.add_argument("--seed", type=int, default=None)
    e2e = bench.add_argument_group(
        "end-to-end training (--e2e)",
        "A ~0.9B Llama-style model (16 layers, hidden 2048, 32/8 heads, bf16, gradient checkpointing, AdamW) "
        "trained on packed rows, one row per step: sft (colmask, flex_attention, sdpa with a dense mask), dpo "
        "(shared vs duplicated prompt, 8K/16K only), lora (PEFT r=16, 16K only, colmask vs flex_attention). "
        "With --e2e only this part runs unless --part is given too. Each of these is expected to fit in 10 "
        "minutes on an H100: --e2e-seqlens 8K; --e2e-seqlens 16K; --e2e-seqlens 32K --e2e-parts sft. Merge "
        "the outputs with --render a/results.json b/results.json --out merged.",
    )
    e2e.add_argument("--e2e", action="store_true", help="run the end-to-end training benchmark")
    e2e.add_argument("--e2e-seqlens", type=_size_list, default=None, help="row lengths (default 8K,16K,32K)")
    e2e.add_argument(
        "--e2e-backends", type=_choices("backend", E2E_BACKENDS), default=None,
        help=f"attention backends, comma-separated from {', '.join(E2E_BACKENDS)} (default all)",
    )  # fmt: skip
    e2e.add_argument(
        "--e2e-parts", type=_choices("e2e part", E2E_PARTS), default=None,
        help=f"comma-separated from {', '.join(E2E_PARTS)} (default all)",
    )  # fmt: skip
    e2e.add_argument("--e2e-steps", type=int, default=None, help="optimizer steps per case, warm-up included (6)")
    e2e.add_argument("--e2e-warmup", type=int, default=None, help="warm-up steps, not timed (2)")
    e2e.add_argument("--e2e-layers", type=int, default=None, help="decoder layers (16; fewer for quick runs)")
    bench.set_defaults(func=cmd_bench)
    return parser


def _error(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


# ------------------------------------------------------------------------------------------- demo
def _rel_err(x, ref) -> float:
    import torch

    x = x.to(ref.dtype)
    scale = ref.abs().max().item() if ref.numel() else 0.0
    err = (x - ref).abs().max().item() if ref.numel() else 0.0
    if not torch.isfinite(x).all():
        return float("inf")
    return err / scale if scale > 0 else err


def cmd_demo(args: argparse.Namespace, argv: list[str]) -> int:
    import torch

    from . import flashmask_attention
    from .bench import workloads
    from .bench.plan import fmt_bytes
    from .reference import reference_attention

    if args.device == "cuda" and not torch.cuda.is_available():
        return _error("flashmask demo", "--device cuda, but no CUDA GPU is available")
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    seqlen = args.seqlen or (2048 if on_gpu else 512)
    dtype = torch.bfloat16 if on_gpu else torch.float32
    ref_dtype = torch.float32 if on_gpu else torch.float64
    tol = args.tol if args.tol is not None else (2e-2 if on_gpu else 1e-4)
    backend = None if args.backend == "auto" else args.backend
    names = args.masks or workloads.MASK_TYPES
    batch, hq, hkv, d = 1, 4, 2, 64
    reps = max(1, args.reps)

    def sync() -> None:
        if on_gpu:
            torch.cuda.synchronize(device)

    used = backend or ("triton" if on_gpu else "torch")
    print(
        f"flashmask demo: {device.type}, backend {used}, {str(dtype).replace('torch.', '')}; "
        f"B={batch}, S={seqlen}, Hq={hq}, Hkv={hkv}, D={d}; "
        f"reference {str(ref_dtype).replace('torch.', '')}; tolerance {tol:g} x max|ref|"
    )
    header = (
        f"{'mask':22s} {'sparsity':>8} {'err out':>9} {'err dq':>9} {'err dk':>9} {'err dv':>9} "
        f"{'mask':>9} {'dense':>9} {'ms':>8}  ok"
    )
    print(header)
    print("-" * len(header))
    failed = []
    t_start = time.perf_counter()
    for i, name in enumerate(names):
        try:
            w = workloads.make(name, seqlen, batch, device, seed=args.seed)
            g = torch.Generator(device=device).manual_seed(args.seed * 1000 + i)
            q = torch.randn(batch, seqlen, hq, d, generator=g, device=device, dtype=dtype)
            k, v = (torch.randn(batch, seqlen, hkv, d, generator=g, device=device, dtype=dtype) for _ in range(2))
            do = torch.randn(batch, seqlen, hq, d, generator=g, device=device, dtype=dtype)
            leaves = tuple(x.requires_grad_() for x in (q, k, v))

            def step(leaves=leaves, w=w, do=do):
                out = flashmask_attention(*leaves, w.mask, backend=backend)
                return out, torch.autograd.grad(out, leaves, do)

            step()  # warm-up: compiles the kernels on the first mask of each form
            times = []
            for _ in range(reps):
                sync()
                t0 = time.perf_counter()
                out, grads = step()
                sync()
                times.append((time.perf_counter() - t0) * 1e3)
            ref_leaves = tuple(x.detach().to(ref_dtype).requires_grad_() for x in (q, k, v))
            ref_out, _ = reference_attention(*ref_leaves, w.mask, compute_dtype=ref_dtype)
            ref_grads = torch.autograd.grad(ref_out, ref_leaves, do.to(ref_dtype))
            errs = [_rel_err(a, b) for a, b in zip((out, *grads), (ref_out, *ref_grads), strict=True)]
            mask = w.mask
            dense = mask.batch * mask.num_heads * mask.seqlen_q * mask.seqlen_k
            ok = all(e <= tol for e in errs)
            times.sort()
            print(
                f"{name:22s} {mask.sparsity():8.3f} "
                + " ".join(f"{e:9.1e}" for e in errs)
                + f" {fmt_bytes(mask.nbytes()):>9} {fmt_bytes(dense):>9} {times[len(times) // 2]:8.2f}  "
                + ("yes" if ok else "NO")
            )
            if not ok:
                failed.append(name)
        except Exception as exc:  # report and go on with the next mask
            print(f"{name:22s} failed: {type(exc).__name__}: {exc}")
            failed.append(name)
    elapsed = time.perf_counter() - t_start
    print("-" * len(header))
    print(
        "errors: max |x - ref| / max |ref| for out, dq, dk, dv; mask: startend_row_indices bytes; dense: a "
        "[B, Hm, S, S] bool mask; ms: median fwd+bwd wall clock"
    )
    if failed:
        print(f"FAILED ({len(failed)} of {len(names)} masks beyond tolerance {tol:g}): {', '.join(failed)}")
        return 1
    print(f"all {len(names)} masks within tolerance {tol:g} ({elapsed:.1f} s)")
    return 0


# ------------------------------------------------------------------------------------------- bench
_OPTION_FIELDS = {
    "masks": "masks",
    "seqlens": "seqlens",
    "head_dims": "head_dims",
    "peers": "peers",
    "part": "parts",
    "total_tokens": "total_tokens",
    "warmup_ms": "warmup_ms",
    "rep_ms": "rep_ms",
    "dense_limit_gb": "dense_limit_gib",
    "tol": "tol",
    "mask_cost_seqlens": "mask_cost_seqlens",
    "sweep_masks": "sweep_masks",
    "doc_counts": "sweep_doc_counts",
    "sweep_seqlen": "sweep_seqlen",
    "sweep_batch": "sweep_batch",
    "seed": "seed",
}


def bench_options(args: argparse.Namespace):
    """``BenchOptions`` from the parsed arguments: the defaults (or ``--quick``'s), overridden by what was
    given."""
    from .bench.plan import BenchOptions

    given = {field: getattr(args, arg) for arg, field in _OPTION_FIELDS.items() if getattr(args, arg) is not None}
    return BenchOptions.quick_mode(**given) if args.quick else BenchOptions(**given)


def _check_options(opts) -> str | None:
    for s in opts.seqlens:
        if s > opts.total_tokens:
            return f"--seqlens {s} is longer than --total-tokens {opts.total_tokens} (B = tokens // S)"
    for d in (*opts.head_dims, opts.sweep_head_dim):
        if opts.hidden % d:
            return f"--head-dims {d} does not divide the hidden size {opts.hidden} (heads = {opts.hidden} // D)"
        if d > 256:
            return f"--head-dims {d}: the kernels support head dims up to 256"
    if opts.sweep_batch is not None and opts.sweep_batch < 1:
        return "--sweep-batch must be at least 1"
    return None


_E2E_FIELDS = {
    "e2e_seqlens": "seqlens",
    "e2e_backends": "backends",
    "e2e_parts": "parts",
    "e2e_steps": "steps",
    "e2e_warmup": "warmup",
    "e2e_layers": "layers",
    "seed": "seed",
    "dense_limit_gb": "dense_limit_gib",
}


def e2e_options(args: argparse.Namespace):
    """``E2EOptions`` from the parsed arguments, or ``None`` without ``--e2e``."""
    from .bench.e2e import E2EOptions

    if not args.e2e:
        return None
    given = {field: getattr(args, arg) for arg, field in _E2E_FIELDS.items() if getattr(args, arg) is not None}
    return E2EOptions(**given)


def cmd_bench(args: argparse.Namespace, argv: list[str]) -> int:
    prog = "flashmask bench"
    if args.render:
        from .bench import report
        from .bench.runner import save_json

        missing = [p for p in args.render if not Path(p).is_file()]
        if missing:
            return _error(prog, f"--render: no such file: {', '.join(missing)}")
        try:
            data = report.load(args.render)
        except (OSError, ValueError) as exc:
            return _error(prog, f"--render: cannot read {', '.join(args.render)}: {exc}")
        out = Path(args.out) if args.out else Path(args.render[0]).parent
        if len(args.render) > 1:
            save_json(data, out / "results.json")
        report.render(data, out)
        print(report.render_markdown(data))
        return 0

    e2e_given = [a for a in _E2E_FIELDS if a.startswith("e2e_") and getattr(args, a) is not None]
    if e2e_given and not args.e2e:
        return _error(prog, f"--{e2e_given[0].replace('_', '-')} needs --e2e")
    opts = bench_options(args)
    if args.e2e and args.part is None:
        opts.parts = ()  # --e2e alone runs only the end-to-end part
    problem = _check_options(opts)
    if problem:
        return _error(prog, problem)
    e2e = e2e_options(args)
    if e2e is not None:
        from .bench.e2e import check_options as check_e2e

        problem = check_e2e(e2e)
        if problem:
            return _error(prog, problem)
    if args.dry_run:
        from .bench.peers import flex_missing_reason
        from .bench.plan import describe_plan

        flex_missing = flex_missing_reason() if "flex" in opts.peers else None
        if opts.parts:
            print(describe_plan(opts, flex_missing))
        if e2e is not None:
            from .bench.e2e import describe_e2e

            flex_missing = flex_missing_reason() if "flex_attention" in e2e.backends else None
            print(describe_e2e(e2e, flex_missing))
            print("Nothing was run (--dry-run).")
        return 0

    import torch

    if not torch.cuda.is_available():
        return _error(
            prog,
            "no CUDA GPU available: the benchmark times the Triton kernels (and --e2e trains on the GPU) and "
            "needs one. Use --dry-run to "
            "see the plan, or --render results.json to re-render recorded results.",
        )
    from .bench import report
    from .bench.runner import run

    out = Path(args.out or "bench_results")
    if (out / "results.json").exists():
        print(f"note: overwriting {out / 'results.json'}")
    data = run(opts, out, argv=argv, e2e=e2e)
    print()
    print(report.render_markdown(data))
    return 0


# ------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse's usage errors (2) and --help (0)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return args.func(args, argv)


if __name__ == "__main__":
    sys.exit(main())
