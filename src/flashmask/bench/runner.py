"""Runs the benchmark parts on the GPU and records everything in one JSON-ready dict.

Parts (SPEC section 4):

* ``kernel``: the paper's kernel table. For each head dim, length and mask: our forward, backward and total
  time with TFLOPs/s under both conventions, and the peers on the same inputs (FlexAttention, SDPA with a
  dense mask, SDPA cuDNN / flash for full and causal), each checked against our output.
* ``mask-cost``: bytes and preparation time of one causal-document mask at 8K ... 1M tokens: ours, a
  FlexAttention ``BlockMask``, a dense bool mask.
* ``sparsity``: our and FlexAttention's time against block sparsity (documents per row varied).

The results are saved after every case, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from . import workloads
from .peers import (
    FlexPeer,
    Inputs,
    Timer,
    add_rates,
    flex_missing_reason,
    free_memory,
    is_oom,
    sdpa_backend_measure,
    sdpa_dense_measure,
    short_error,
    timed_pass,
)
from .plan import (
    DENSE_ONLY_MASKS,
    BenchOptions,
    block_bounds_bytes,
    dense_mask_bytes,
    dense_skip_reason,
    kernel_cases,
    tile_list_bytes,
)

SCHEMA = 1
METHOD = {
    "timing": (
        "CUDA events (peers.Timer): one warm-up call, one estimate call, then max(3, min(100, rep_ms / "
        "estimate)) calls timed one by one; median; L2 not flushed between calls"
    ),
    "backward": "torch.autograd.grad of one fixed forward output (retain_graph=True); total = fwd + bwd",
    "flops_exact": "forward 4 * D * (visible query-key pairs over batch rows and heads); backward 2.5x",
    "flops_paper": "forward 4 * B * Hq * S * S * D * (1 - rho), rho = share of fully masked 128x128 tiles",
    "peer_check": "peer forward output against ours: fails where |peer - ours| > tol + tol * |ours|",
    "peer_layout": "peers run on [B, H, S, D] contiguous copies of the same q, k, v, dO",
    "flex": "torch.compile(flex_attention, dynamic=False); BlockMask from torch.compile(create_block_mask)"
    "(mask_mod, B, None, S, S); dynamo reset per mask type",
    "sdpa_dense": "F.scaled_dot_product_attention(attn_mask=[B, 1, S, S] bool) on EFFICIENT_ATTENTION",
    "cudnn_flash": "F.scaled_dot_product_attention(is_causal=...) under sdpa_kernel(CUDNN_ATTENTION / "
    "FLASH_ATTENTION), full and causal only",
    "ours": "flashmask_attention(q, k, v, mask) with the workload's ColumnMask; full and causal without a column "
    "mask (causal=...), the call a user of plain attention makes (SPEC section 2: 'or no mask')",
}

Log = Callable[[str], None]


# ------------------------------------------------------------------------------------------- metadata
def _git(*args: str) -> str | None:
    try:
        res = subprocess.run(
            ["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def git_commit() -> str:
    """The checkout's commit, else ``$FLASHMASK_GIT_COMMIT``, else ``"unknown"``."""
    return _git("rev-parse", "HEAD") or os.environ.get("FLASHMASK_GIT_COMMIT", "unknown")


def git_dirty() -> bool | None:
    """Whether tracked files differ from the commit (``None`` outside a git checkout)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


def _changed_settings() -> dict:
    try:
        from ..kernels.configs import changed_settings
    except ImportError:  # no Triton: no kernels, nothing to change
        return {}
    return changed_settings()


def collect_meta(device: torch.device, argv: list[str] | None) -> dict:
    from .. import __version__

    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        name, memory = props.name, props.total_memory
        capability = ".".join(map(str, torch.cuda.get_device_capability(device)))
    else:
        name, memory, capability = platform.processor() or platform.machine() or "cpu", None, None
    argv = sys.argv[1:] if argv is None else list(argv)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["flashmask", *argv]),
        "device": name,
        "device_type": device.type,
        "device_memory_bytes": memory,
        "compute_capability": capability,
        "torch": torch.__version__,
        "triton": triton_version,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(),
        "flashmask": __version__,
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "changed_settings": _changed_settings(),
        "method": METHOD,
    }


def new_results(opts: BenchOptions, device: torch.device, argv: list[str] | None) -> dict:
    return {
        "schema": SCHEMA,
        "runs": [{**collect_meta(device, argv), "options": opts.to_dict()}],
        "kernel": [],
        "mask_cost": [],
        "sparsity": [],
        "e2e": [],
        "notes": [],
    }


def _clean(x):
    """JSON-safe: non-finite floats become ``None``."""
    if isinstance(x, float):
        return x if x == x and x not in (float("inf"), float("-inf")) else None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def save_json(data: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_clean(data), indent=1) + "\n")
    tmp.replace(path)


# ------------------------------------------------------------------------------------------- shared
def mask_stats(mask, heads: int, head_dim: int) -> dict:
    """Sparsity, paper's rho and the forward FLOPs of both conventions for ``heads`` query heads."""
    b, hm, sq, sk = mask.shape
    pairs = int(mask.visible_pairs().sum().item()) * (heads // hm)
    rho = float(mask.block_sparsity(128, 128))
    return dict(
        sparsity=float(mask.sparsity()),
        block_sparsity=rho,
        visible_pairs=pairs,
        flops_fwd_exact=4.0 * head_dim * pairs,
        flops_fwd_paper=4.0 * b * heads * sq * sk * head_dim * (1.0 - rho),
    )


def measure_ours(mask, inputs: Inputs, timer: Timer, plain: bool = False) -> tuple[dict, torch.Tensor]:
    """Our forward and backward through the public ``flashmask_attention`` (Triton kernels on CUDA).

    ``plain``: call without the column mask, with its ``causal`` flag only (for masks that hide nothing else).
    """
    from ..attention import flashmask_attention

    q, k, v, do = inputs.q, inputs.k, inputs.v, inputs.do

    def forward():
        if plain:
            return flashmask_attention(q, k, v, causal=mask.causal)
        return flashmask_attention(q, k, v, mask)

    return timed_pass(forward, (q, k, v), do, timer, None)


def _gpu_alone(record: dict) -> str:
    if "fwd_gpu_ms" not in record:
        return ""
    driver = {k: v for k, v in record.get("bwd_allocator", {}).items() if v}
    return (f" (GPU alone {record['fwd_gpu_ms']:.2f} / {record['bwd_gpu_ms']:.2f}, backward behind another "
            f"{record['bwd_busy_ms']:.2f}; allocator calls while timed: {driver or 'none'})")  # fmt: skip


def _attach_ratios(peer: dict, ours: dict) -> None:
    for key in ("fwd", "bwd", "total"):
        p, o = peer.get(f"{key}_ms"), ours.get(f"{key}_ms")
        peer[f"speedup_{key}"] = p / o if p and o else None


def _peak_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 1024**3


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _status(record: dict) -> dict:
    record.setdefault("status", "mismatch" if record.get("mismatch") else "ok")
    return record


def _note(data: dict, text: str) -> None:
    if text not in data["notes"]:
        data["notes"].append(text)


def _failure(exc: BaseException) -> dict:
    return {"status": "oom" if is_oom(exc) else "error", "reason": short_error(exc)}


# ------------------------------------------------------------------------------------------- kernel
def run_kernel_part(opts: BenchOptions, device, timer: Timer, data: dict, save, log: Log, dtype) -> None:
    flex_missing = flex_missing_reason() if "flex" in opts.peers else None
    if flex_missing:
        log(f"FlexAttention skipped: {flex_missing}")
        _note(data, f"FlexAttention skipped: {flex_missing}")
    cases = kernel_cases(opts, flex_missing)
    groups: dict[tuple[int, int], list] = {}
    for c in cases:
        groups.setdefault((c.head_dim, c.seqlen), []).append(c)
    done = 0
    for (d, s), group in groups.items():
        b, h = group[0].batch, group[0].heads
        inputs = Inputs(b, s, h, d, dtype, device, seed=opts.seed)
        for case in group:
            done += 1
            log(f"[kernel {done}/{len(cases)}] D={d} S={s} B={b} H={h} {case.mask}")
            try:
                row = kernel_case(case, inputs, opts, device, timer, log)
            except Exception as exc:  # anything outside the per-implementation guards: record, go on
                row = dict(mask=case.mask, seqlen=s, batch=b, heads=h, head_dim=d, ours=_failure(exc), peers={})
                log(f"    case failed: {row['ours']['reason']}")
            data["kernel"].append(row)
            save()
            free_memory(device)
        del inputs
        free_memory(device)


def kernel_case(case, inputs: Inputs, opts: BenchOptions, device, timer: Timer, log: Log) -> dict:
    _reset_peak(device)
    w = workloads.make(case.mask, case.seqlen, case.batch, device, seed=opts.seed)
    row = dict(
        mask=case.mask,
        seqlen=case.seqlen,
        batch=case.batch,
        heads=case.heads,
        head_dim=case.head_dim,
        dtype=str(inputs.dtype).replace("torch.", ""),
        **mask_stats(w.mask, case.heads, case.head_dim),
        peers={},
    )
    plain = case.mask in DENSE_ONLY_MASKS
    try:
        ours, reference = measure_ours(w.mask, inputs, timer, plain=plain)
    except Exception as exc:
        row["ours"] = _failure(exc)
        log(f"    ours failed: {row['ours']['reason']}")
        return row
    row["ours"] = add_rates(_status(ours), row["flops_fwd_exact"], row["flops_fwd_paper"])
    row["ours"]["mask_arg"] = "none" if plain else "column mask"
    card = ours.get("gpu_after")
    log(
        f"    ours: fwd {ours['fwd_ms']:.2f} ms, bwd {ours['bwd_ms']:.2f} ms{_gpu_alone(ours)}, "
        f"{ours['total_tflops_exact']:.0f} TFLOPs/s exact"
        + (f" (card after: {card['temperature_c']:.0f} C, {card['sm_clock_mhz']:.0f} MHz)" if card else "")
    )
    free_memory(device)
    for peer, skip in case.peers.items():
        if skip is not None:
            row["peers"][peer] = {"status": "skipped", "reason": skip}
            continue
        try:
            if peer == "flex":
                record = FlexPeer(device).measure(w, inputs, reference, timer, opts)
            elif peer == "sdpa_dense":
                record = sdpa_dense_measure(w.mask, inputs, reference, timer, opts)
            else:
                record = sdpa_backend_measure(peer, case.mask == "causal", inputs, reference, timer, opts)
            record = add_rates(_status(record), row["flops_fwd_exact"], row["flops_fwd_paper"])
            _attach_ratios(record, ours)
            if record["status"] == "mismatch":
                log(
                    f"    {peer}: MISMATCH against ours: max abs err {record.get('max_abs_err')} "
                    f"({record.get('mismatched_elements')} elements beyond tol {opts.tol})"
                )
            else:
                log(
                    f"    {peer}: fwd {record['fwd_ms']:.2f} ms, bwd {record['bwd_ms']:.2f} ms{_gpu_alone(record)}, "
                    f"ours {record['speedup_total']:.2f}x faster, max abs err {record['max_abs_err']:.2e}"
                )
        except Exception as exc:
            record = _failure(exc)
            log(f"    {peer}: {record['status']}: {record['reason']}")
        row["peers"][peer] = record
        free_memory(device)
    del reference
    row["peak_mem_gib"] = _peak_gib(device)
    return row


# ------------------------------------------------------------------------------------------- mask cost
def run_mask_cost_part(opts: BenchOptions, device, timer: Timer, data: dict, save, log: Log) -> None:
    from .. import masks

    flex_missing = flex_missing_reason() if "flex" in opts.peers else "not requested (--peers)"
    for s in opts.mask_cost_seqlens:
        log(f"[mask-cost] S={s}")
        free_memory(device)
        w = workloads.make("causal_document", s, 1, device, seed=opts.seed)
        rows = [workloads.random_doc_lens(s, torch.Generator().manual_seed(opts.seed))]
        mask = w.mask
        rows_hm = mask.batch * mask.num_heads
        ours = dict(
            indices_bytes=mask.nbytes(),
            block_bounds_bytes=block_bounds_bytes(rows_hm, s, 128),
            fwd_tile_list_bytes=tile_list_bytes(rows_hm, s, s, 128, 128),
        )
        ours["held_bytes"] = ours["indices_bytes"] + ours["block_bounds_bytes"]
        build_times = []
        for _ in range(5):
            seconds, _ = timer.wall(lambda rows=rows: masks.causal_document(rows, device=device))
            build_times.append(seconds * 1e3)
        ours["build_ms"] = sorted(build_times)[len(build_times) // 2]
        if device.type == "cuda":
            try:
                ours.update(_ours_prep(mask, s, device, timer))
            except Exception as exc:
                ours.update(prep_ms=None, prep_note=short_error(exc))
        else:
            ours["prep_ms"] = None
            ours["prep_note"] = "block bounds and tile lists are Triton kernels: CUDA only"
        row = dict(
            mask="causal_document",
            seqlen=s,
            batch=1,
            doc_count=len(rows[0]),
            flashmask=ours,
            dense={"bytes": dense_mask_bytes(1, s)},
        )
        if dense_skip_reason(1, s, opts.dense_limit_gib) is None:
            try:
                seconds, dense = timer.wall(mask.to_dense)
                row["dense"].update(allocated=True, build_ms=seconds * 1e3)
                del dense
            except Exception as exc:
                row["dense"].update(allocated=False, **_failure(exc))
        else:
            row["dense"].update(allocated=False, reason="computed, not allocated (above --dense-limit-gb)")
        free_memory(device)
        if flex_missing:
            row["flex"] = {"status": "skipped", "reason": flex_missing}
        else:
            try:
                block_mask, info = FlexPeer(device).block_mask(w.mask_mod, 1, s, timer, opts.block_mask_builds)
                del block_mask
                row["flex"] = {"status": "ok", **info}
            except Exception as exc:
                row["flex"] = _failure(exc)
        f = row["flex"]
        log(
            f"    ours {ours['held_bytes']} B held (+{ours['fwd_tile_list_bytes']} B tile lists per call), "
            f"build {ours['build_ms']:.2f} ms, prep {ours.get('prep_ms')} ms; flex "
            + (
                f"{f['block_mask_bytes']} B, {f['block_mask_ms']:.2f} ms"
                if f["status"] == "ok"
                else f["status"] + ": " + f.get("reason", "")
            )
        )
        data["mask_cost"].append(row)
        save()
        free_memory(device)


def _ours_prep(mask, s: int, device, timer: Timer) -> dict:
    """Time of the per-call preparation our forward runs (block bounds, tile lists and their order), and the
    transient bytes of the backward's tile lists with the kernels' own tile sizes for D=128."""
    from ..kernels import configs as kconfigs
    from ..kernels.tiles import mask_form, plan

    idx, causal = mask.startend_row_indices, mask.causal
    form = mask_form(idx, causal)

    def prep():
        return plan(idx, form, s, s, 128, 128, False, device)

    cfgs = kconfigs.pick(128, device)
    rows = mask.batch * mask.num_heads
    bwd = tile_list_bytes(rows, s, s, cfgs.dkdv.block_m, cfgs.dkdv.block_n)
    if not cfgs.atomic_dq:
        bwd += tile_list_bytes(rows, s, s, cfgs.dq.block_m, cfgs.dq.block_n)
    return dict(
        prep_ms=timer(prep),
        bwd_tile_list_bytes=bwd,
        bwd_tiles=f"dkdv {cfgs.dkdv.block_m}x{cfgs.dkdv.block_n}"
        + ("" if cfgs.atomic_dq else f", dq {cfgs.dq.block_m}x{cfgs.dq.block_n}"),
    )


# ------------------------------------------------------------------------------------------- sparsity
def run_sparsity_part(opts: BenchOptions, device, timer: Timer, data: dict, save, log: Log, dtype) -> None:
    s, b, d = opts.sweep_seqlen, opts.sweep_batch_size, opts.sweep_head_dim
    h = opts.heads_for(d)
    use_flex = "flex" in opts.peers
    flex_missing = flex_missing_reason() if use_flex else None
    inputs = Inputs(b, s, h, d, dtype, device, seed=opts.seed)
    total = len(opts.sweep_masks) * len(opts.sweep_doc_counts)
    done = 0
    for name in opts.sweep_masks:
        flex = None
        if use_flex and not flex_missing:
            try:
                flex = FlexPeer(device)
            except Exception as exc:
                flex_missing = short_error(exc)
        for n in opts.sweep_doc_counts:
            done += 1
            log(f"[sparsity {done}/{total}] {name} S={s} B={b} docs={n}")
            _reset_peak(device)
            row = dict(mask=name, seqlen=s, batch=b, heads=h, head_dim=d, doc_count=n)
            try:
                w = workloads.make(name, s, b, device, seed=opts.seed, doc_count=n)
                row.update(mask_stats(w.mask, h, d))
                ours, reference = measure_ours(w.mask, inputs, timer)
            except Exception as exc:
                row["ours"] = _failure(exc)
                log(f"    ours failed: {row['ours']['reason']}")
                data["sparsity"].append(row)
                save()
                free_memory(device)
                continue
            row["ours"] = add_rates(_status(ours), row["flops_fwd_exact"], row["flops_fwd_paper"])
            if use_flex:
                if flex is None:
                    row["flex"] = {"status": "skipped", "reason": flex_missing}
                else:
                    try:
                        rec = flex.measure(w, inputs, reference, timer, opts)
                        rec = add_rates(_status(rec), row["flops_fwd_exact"], row["flops_fwd_paper"])
                        _attach_ratios(rec, ours)
                        row["flex"] = rec
                    except Exception as exc:
                        row["flex"] = _failure(exc)
            del reference
            f = row.get("flex", {})
            if "total_ms" in f:
                flex_txt = f", flex {f['total_ms']:.2f} ms" + (" (MISMATCH)" if f["status"] == "mismatch" else "")
            else:
                flex_txt = f", flex {f['status']}: {f.get('reason', '')}" if f else ""
            log(f"    block sparsity {row['block_sparsity']:.3f}: ours {ours['total_ms']:.2f} ms{flex_txt}")
            row["peak_mem_gib"] = _peak_gib(device)
            data["sparsity"].append(row)
            save()
            free_memory(device)
    del inputs
    free_memory(device)


# ------------------------------------------------------------------------------------------- entry
def run(
    options: BenchOptions | None = None,
    out_dir: str | os.PathLike | None = None,
    *,
    argv: list[str] | None = None,
    device: str | torch.device = "cuda",
    log: Log = print,
    e2e=None,
) -> dict:
    """Run the benchmark parts in ``options`` and return the results (also saved under ``out_dir``:
    ``results.json`` after every case, ``results.md`` and the PNG plots at the end).

    ``device="cpu"`` runs the same bookkeeping on the PyTorch path with wall-clock timings; it exists to
    test this module and measures nothing of interest. ``e2e`` (an ``e2e.E2EOptions``) adds the end-to-end
    training part (``data["e2e"]``).
    """
    opts = options or BenchOptions()
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("flashmask bench needs a CUDA GPU; none is available")
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    data = new_results(opts, device, argv)
    if e2e is not None:
        data["runs"][-1]["e2e_options"] = e2e.to_dict()
    out = Path(out_dir) if out_dir is not None else None

    def save() -> None:
        if out is not None:
            save_json(data, out / "results.json")

    timer = Timer(device, opts.warmup_ms, opts.rep_ms)
    save()
    if "kernel" in opts.parts:
        run_kernel_part(opts, device, timer, data, save, log, dtype)
    if "mask-cost" in opts.parts:
        run_mask_cost_part(opts, device, timer, data, save, log)
    if "sparsity" in opts.parts:
        run_sparsity_part(opts, device, timer, data, save, log, dtype)
    if e2e is not None:
        from .e2e import run_e2e

        run_e2e(e2e, data, save, log=log, device=device)
    save()
    if out is not None:
        from .report import render

        render(data, out, log=log)
    return data


__all__ = ["DENSE_ONLY_MASKS", "BenchOptions", "run"]
