"""Markdown tables and PNG plots from a recorded ``results.json`` (no GPU needed).

Every part, peer and field may be missing: a table or plot without data is left out, a missing cell is "—".
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from .plan import PEER_LABELS, PEERS, fmt_bytes
from .workloads import MASK_TYPES

DASH = "—"
# Column order of the peers in the kernel tables.
TABLE_PEERS = ("flex", "cudnn", "flash", "sdpa_dense")
SHORT = {"flex": "Flex", "cudnn": "cuDNN", "flash": "FA2", "sdpa_dense": "SDPA dense"}

Log = Callable[[str], None]


# ------------------------------------------------------------------------------------------- loading
def _key(part: str, row: dict) -> tuple:
    if part == "kernel":
        return (row.get("mask"), row.get("seqlen"), row.get("head_dim"), row.get("batch"), row.get("heads"))
    if part == "mask_cost":
        return (row.get("mask"), row.get("seqlen"), row.get("batch"))
    if part == "e2e":
        return (row.get("part"), row.get("seqlen"), row.get("backend"))
    return (row.get("mask"), row.get("seqlen"), row.get("batch"), row.get("head_dim"), row.get("doc_count"))


def merge(datas: Iterable[dict]) -> dict:
    """One result set from several (e.g. one per ``--part``): later rows replace earlier rows of the
    same case; runs and notes are concatenated."""
    merged: dict = {"schema": 1, "runs": [], "kernel": [], "mask_cost": [], "sparsity": [], "e2e": [], "notes": []}
    index: dict[tuple, int] = {}
    for data in datas:
        merged["runs"] += data.get("runs") or ([data["meta"]] if "meta" in data else [])
        for note in data.get("notes") or []:
            if note not in merged["notes"]:
                merged["notes"].append(note)
        for part in ("kernel", "mask_cost", "sparsity", "e2e"):
            for row in data.get(part) or []:
                k = (part, *_key(part, row))
                if k in index:
                    merged[part][index[k]] = row
                else:
                    index[k] = len(merged[part])
                    merged[part].append(row)
    return merged


def load(paths: Iterable[str | os.PathLike]) -> dict:
    datas = []
    for p in paths:
        with open(p) as f:
            datas.append(json.load(f))
    return datas[0] if len(datas) == 1 else merge(datas)


# ------------------------------------------------------------------------------------------- formatting
def _num(x, fmt: str = ".1f") -> str:
    return DASH if x is None else format(x, fmt)


def _len(s: int | None) -> str:
    if s is None:
        return DASH
    if s % (1024 * 1024) == 0:
        return f"{s // (1024 * 1024)}M"
    if s % 1024 == 0:
        return f"{s // 1024}K"
    return str(s)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _peer_cells(rec: dict | None, flex: bool) -> list[str]:
    """``[ms, speedup]`` (plus the block-mask build time for FlexAttention) for one peer record."""
    if rec is None:
        cells = [DASH, DASH]
    else:
        status = rec.get("status", "ok")
        if status in ("ok", "mismatch") and rec.get("total_ms") is not None:
            flag = " (!)" if status == "mismatch" else ""
            speed = rec.get("speedup_total")
            cells = [f"{rec['total_ms']:.1f}{flag}", (f"{speed:.2f}x" if speed else DASH) + flag]
        else:
            cells = [{"skipped": "skipped", "oom": "OOM"}.get(status, "error"), DASH]
    if flex:
        cells.append(_num((rec or {}).get("block_mask_ms"), ".2f"))
    return cells


def _ok(rec: dict | None) -> bool:
    return bool(rec) and rec.get("status", "ok") in ("ok", "mismatch") and rec.get("total_ms") is not None


def _matches(rec: dict | None) -> bool:
    """Timed and its output agreed with ours: the records the plots use."""
    return _ok(rec) and rec.get("status", "ok") == "ok"


def _mask_order(name: str) -> tuple[int, str]:
    return (MASK_TYPES.index(name) if name in MASK_TYPES else len(MASK_TYPES), name)


def _configs(rows: list[dict]) -> list[tuple[int, int]]:
    """(head_dim, seqlen) pairs, larger head dim first, then by length."""
    return sorted({(r.get("head_dim"), r.get("seqlen")) for r in rows}, key=lambda c: (-(c[0] or 0), c[1] or 0))


# ------------------------------------------------------------------------------------------- markdown
def _header(data: dict) -> list[str]:
    lines = ["# flashmask benchmark", ""]
    runs = data.get("runs") or []
    for i, run in enumerate(runs):
        prefix = f"Run {i + 1}: " if len(runs) > 1 else ""
        lines.append(
            f"- {prefix}{run.get('device', '?')}; torch {run.get('torch', '?')}, "
            f"triton {run.get('triton', '?')}, CUDA {run.get('cuda', '?')}; "
            f"commit `{str(run.get('git_commit', 'unknown'))[:12]}`"
            f"{' (with local changes)' if run.get('git_dirty') else ''}; "
            f"{run.get('date', '?')}; `{run.get('command', '?')}`"
            + "".join(f"; setting `{k}={v}`" for k, v in sorted((run.get("changed_settings") or {}).items()))
        )
    # Every run's method entries (a kernel-only run lacks the e2e ones); a later run's wording wins.
    method: dict = {}
    for run in runs:
        method.update(run.get("method") or {})
    if method:
        lines += ["", "Method:", ""]
        lines += [f"- {k}: {v}" for k, v in method.items()]
    lines.append("")
    return lines


def _kernel_section(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    lines = ["## Kernel table", ""]
    lines.append(
        "Times in ms (fwd + bwd = total); TFLOPs/s of the total under the exact and the paper's convention; "
        "peers' columns give their total ms and our speedup (their total / ours); (!) marks a peer whose "
        "output disagreed with ours."
    )
    lines.append("")
    lines += _speedup_summary(rows)
    for d, s in _configs(rows):
        group = sorted(
            (r for r in rows if (r.get("head_dim"), r.get("seqlen")) == (d, s)),
            key=lambda r: _mask_order(r.get("mask", "")),
        )
        first = group[0]
        lines.append(
            f"### D={d}, S={_len(s)} (B={first.get('batch', '?')}, H={first.get('heads', '?')}, "
            f"{first.get('dtype', 'bfloat16')})"
        )
        lines.append("")
        peers = [p for p in TABLE_PEERS if any(p in (r.get("peers") or {}) for r in group)]
        header = ["mask", "sparsity", "ρ", "fwd ms", "bwd ms", "total ms", "TFLOPs/s exact", "TFLOPs/s paper"]
        for p in peers:
            header += [f"{SHORT[p]} ms", f"vs {SHORT[p]}"]
            if p == "flex":
                header.append("BlockMask ms")
        body = []
        for r in group:
            ours = r.get("ours") or {}
            if _ok(ours):
                ours_cells = [
                    _num(ours.get("fwd_ms"), ".2f"),
                    _num(ours.get("bwd_ms"), ".2f"),
                    _num(ours.get("total_ms"), ".2f"),
                    _num(ours.get("total_tflops_exact"), ".0f"),
                    _num(ours.get("total_tflops_paper"), ".0f"),
                ]
            else:
                ours_cells = [ours.get("status", "missing"), DASH, DASH, DASH, DASH]
            cells = [r.get("mask", "?"), _num(r.get("sparsity"), ".3f"), _num(r.get("block_sparsity"), ".3f")]
            cells += ours_cells
            for p in peers:
                cells += _peer_cells((r.get("peers") or {}).get(p), p == "flex")
            body.append(cells)
        lines += _table(header, body)
        lines.append("")
    return lines


def _peer_speedups(group: list[dict], peer: str, key: str) -> list[tuple[str, float]]:
    """``(mask, speedup)`` of ``peer`` over the rows of ``group`` whose output agreed with ours."""
    recs = [(r.get("mask", "?"), (r.get("peers") or {}).get(peer)) for r in group]
    return [(m, rec[key]) for m, rec in recs if _matches(rec) and rec.get(key)]


def _speedup_summary(rows: list[dict]) -> list[str]:
    """One line per (head dim, length): our speedup range over each peer, and the masks where Flex is faster.

    Only peer records whose output agreed with ours count (``_matches``)."""

    def span(pairs: list[tuple[str, float]]) -> str:
        values = [x for _, x in pairs]
        return f"{min(values):.2f}x-{max(values):.2f}x" if values else DASH

    header = ["D", "S", "masks", "vs Flex fwd+bwd", "Flex faster on", "vs cuDNN fwd", "vs cuDNN fwd+bwd", "vs FA2"]
    body = []
    for d, s in _configs(rows):
        group = [r for r in rows if (r.get("head_dim"), r.get("seqlen")) == (d, s) and _ok(r.get("ours"))]
        if not group:
            continue
        flex = _peer_speedups(group, "flex", "speedup_total")
        behind = sorted((m for m, x in flex if x < 1.0), key=_mask_order)
        body.append([
            str(d), _len(s), str(len(group)), span(flex), ", ".join(behind) or DASH,
            span(_peer_speedups(group, "cudnn", "speedup_fwd")),
            span(_peer_speedups(group, "cudnn", "speedup_total")),
            span(_peer_speedups(group, "flash", "speedup_total")),
        ])  # fmt: skip
    if not body:
        return []
    lines = ["Our speedup (peer time / ours), lowest to highest over the masks of each configuration:", ""]
    return [*lines, *_table(header, body), ""]


def _mask_cost_section(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    lines = ["## Mask cost", ""]
    mask = rows[0].get("mask", "causal_document")
    lines.append(
        f"One `{mask}` mask, B=1. flashmask holds `startend_row_indices` plus the block bounds (8 int32 "
        "per 128 columns); each kernel call also allocates tile lists, freed when it returns. FlexAttention "
        "holds its `BlockMask` (all tensors); a dense mask is S*S bool (computed, not allocated, where too "
        "big)."
    )
    lines.append("")
    header = [
        "tokens",
        "docs",
        "flashmask held",
        "tile lists / fwd call",
        "tile lists / bwd call",
        "build ms",
        "prep ms",
        "BlockMask",
        "create_block_mask ms",
        "first build s",
        "dense bool",
    ]
    body = []
    for r in sorted(rows, key=lambda r: r.get("seqlen") or 0):
        ours = r.get("flashmask") or {}
        flex = r.get("flex") or {}
        flex_ok = flex.get("status", "ok") == "ok" and "block_mask_bytes" in flex
        dense = r.get("dense") or {}
        dense_txt = fmt_bytes(dense.get("bytes"))
        if dense and not dense.get("allocated", False):
            dense_txt += " (computed)"
        body.append(
            [
                _len(r.get("seqlen")),
                _num(r.get("doc_count"), "d"),
                fmt_bytes(ours.get("held_bytes")),
                fmt_bytes(ours.get("fwd_tile_list_bytes")),
                fmt_bytes(ours.get("bwd_tile_list_bytes")),
                _num(ours.get("build_ms"), ".2f"),
                _num(ours.get("prep_ms"), ".3f"),
                fmt_bytes(flex.get("block_mask_bytes")) if flex_ok else flex.get("status", DASH),
                _num(flex.get("block_mask_ms"), ".2f") if flex_ok else DASH,
                _num(flex.get("block_mask_first_s"), ".2f") if flex_ok else DASH,
                dense_txt,
            ]
        )
    lines += _table(header, body)
    lines.append("")
    return lines


def _sparsity_section(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    lines = ["## Time against sparsity", ""]
    names = sorted({r.get("mask", "?") for r in rows}, key=_mask_order)
    for name in names:
        group = sorted((r for r in rows if r.get("mask") == name), key=lambda r: r.get("block_sparsity") or 0)
        first = group[0]
        lines.append(
            f"### {name} (S={_len(first.get('seqlen'))}, B={first.get('batch', '?')}, "
            f"H={first.get('heads', '?')}, D={first.get('head_dim', '?')})"
        )
        lines.append("")
        has_flex = any("flex" in r for r in group)
        header = ["docs", "sparsity", "ρ", "fwd ms", "bwd ms", "total ms", "TFLOPs/s exact"]
        if has_flex:
            header += ["Flex ms", "vs Flex"]
        body = []
        for r in group:
            ours = r.get("ours") or {}
            cells = [
                _num(r.get("doc_count"), "d"),
                _num(r.get("sparsity"), ".3f"),
                _num(r.get("block_sparsity"), ".3f"),
                _num(ours.get("fwd_ms"), ".2f"),
                _num(ours.get("bwd_ms"), ".2f"),
                _num(ours.get("total_ms"), ".2f"),
                _num(ours.get("total_tflops_exact"), ".0f"),
            ]
            if has_flex:
                cells += _peer_cells(r.get("flex"), False)
            body.append(cells)
        lines += _table(header, body)
        lines.append("")
    return lines


E2E_PARTS_ORDER = ("sft", "dpo", "lora")
E2E_BACKEND_ORDER = ("colmask", "flex_attention", "sdpa", "shared_prompt", "duplicated_prompt")


def _e2e_order(r: dict) -> tuple:
    part, backend = r.get("part"), r.get("backend")
    return (
        E2E_PARTS_ORDER.index(part) if part in E2E_PARTS_ORDER else len(E2E_PARTS_ORDER),
        r.get("seqlen") or 0,
        E2E_BACKEND_ORDER.index(backend) if backend in E2E_BACKEND_ORDER else len(E2E_BACKEND_ORDER),
        str(backend),
    )


def _e2e_ok(r: dict) -> bool:
    return r.get("status", "ok") == "ok" and r.get("rate") is not None


def e2e_rows(rows: list[dict]) -> list[list[str]]:
    """Table cells of the end-to-end part: one row per (part, length, backend)."""
    rows = sorted(rows, key=_e2e_order)
    body = []
    for r in rows:
        group = [o for o in rows if (o.get("part"), o.get("seqlen")) == (r.get("part"), r.get("seqlen"))]
        if _e2e_ok(r):
            rate = f"{r['rate']:,.0f}" if r["rate"] >= 100 else f"{r['rate']:.2f}"
            speed = []
            for o in group:
                if o is not r and _e2e_ok(o):
                    speed.append(f"{r['rate'] / o['rate']:.2f}x vs {o.get('backend')}")
            check = r.get("check") or {}
            flag = " (!)" if check and not check.get("ok", True) else ""
            values = r.get("check_values") or []
            first = ", ".join(f"{v:.4f}" for v in values) + flag if values else DASH
            cells = [
                f"{rate} {r.get('unit', '')}".strip(),
                _num(r.get("step_ms"), ".0f"),
                _num(r.get("peak_mem_gib"), ".1f"),
                "; ".join(speed) or DASH,
                f"{r.get('check_name', 'loss')}: {first}",
            ]
        else:
            status = r.get("status", "missing")
            cells = [{"skipped": "skipped", "oom": "OOM"}.get(status, status), DASH, DASH, DASH, DASH]
        body.append([str(r.get("part", "?")), _len(r.get("seqlen")), str(r.get("backend", "?")), *cells])
    return body


def _e2e_section(rows: list[dict], runs: list[dict]) -> list[str]:
    if not rows:
        return []
    opts = next((run.get("e2e_options") for run in reversed(runs) if run.get("e2e_options")), None) or {}
    lines = ["## End-to-end training", ""]
    desc = "Llama-style model"
    if opts:
        desc += (
            f", {opts.get('layers')} layers, hidden {opts.get('hidden')}, {opts.get('heads')}/{opts.get('kv_heads')} "
            f"heads, vocab {opts.get('vocab')}; {opts.get('steps')} steps ({opts.get('warmup')} warm-up)"
        )
    lines.append(
        f"{desc}; bf16, gradient checkpointing, AdamW, one packed row per step. Rate: real tokens (sft, "
        "lora) or DPO pairs (dpo) of the timed steps over their summed time, whole optimizer steps (DPO: both "
        "layouts pack the same pool of pairs); step ms: the median timed step. Speedup: this row's "
        "rate over the other row's, same part and length. First steps: the loss (or the DPO policy's per-token "
        "log-probability) of the warm-up steps, same data and init for every backend; (!) marks a relative "
        "difference above the tolerance. dpo: shared_prompt and duplicated_prompt both run colmask."
    )
    lines.append("")
    header = ["part", "S", "backend", "rate", "step ms", "peak GiB", "speedup", "first steps"]
    lines += _table(header, e2e_rows(rows))
    lines.append("")
    return lines


def _problems(data: dict) -> list[str]:
    items: list[str] = list(data.get("notes") or [])
    seen_skips: set[str] = set()
    for r in data.get("kernel") or []:
        where = f"{r.get('mask')} D={r.get('head_dim')} S={_len(r.get('seqlen'))}"
        ours = r.get("ours") or {}
        if ours.get("status") in ("error", "oom"):
            items.append(f"ours failed on {where}: {ours.get('reason', '')}")
        for p, rec in (r.get("peers") or {}).items():
            status = rec.get("status", "ok")
            if status == "mismatch":
                items.append(
                    f"{PEER_LABELS.get(p, p)} disagrees with flashmask on {where}: max abs err "
                    f"{_num(rec.get('max_abs_err'), '.3g')}, {rec.get('mismatched_elements')} elements "
                    f"beyond tol {rec.get('tol')}"
                )
            elif status in ("error", "oom"):
                items.append(f"{PEER_LABELS.get(p, p)} {status} on {where}: {rec.get('reason', '')}")
            elif status == "skipped":
                text = f"{PEER_LABELS.get(p, p)} skipped: {rec.get('reason', '')}"
                if text not in seen_skips:
                    seen_skips.add(text)
                    items.append(text)
    for r in data.get("sparsity") or []:
        rec = r.get("flex") or {}
        if rec.get("status") in ("mismatch", "error", "oom"):
            items.append(
                f"FlexAttention {rec['status']} on {r.get('mask')} docs={r.get('doc_count')}: "
                + (rec.get("reason") or f"max abs err {rec.get('max_abs_err')}")
            )
    for r in data.get("e2e") or []:
        if r.get("status") in ("error", "oom"):
            items.append(f"e2e {r.get('part')} S={_len(r.get('seqlen'))} {r.get('backend')}: {r.get('reason', '')}")
        elif r.get("status") == "skipped":
            items.append(f"e2e {r.get('part')} S={_len(r.get('seqlen'))} {r.get('backend')} skipped: {r.get('reason')}")
    for r in data.get("mask_cost") or []:
        rec = r.get("flex") or {}
        if rec.get("status") in ("error", "oom"):
            items.append(f"create_block_mask {rec['status']} at S={_len(r.get('seqlen'))}: {rec.get('reason', '')}")
    if not items:
        return []
    return ["## Notes and problems", "", *[f"- {x}" for x in items], ""]


def render_markdown(data: dict) -> str:
    lines = _header(data)
    lines += _kernel_section(data.get("kernel") or [])
    lines += _mask_cost_section(data.get("mask_cost") or [])
    lines += _sparsity_section(data.get("sparsity") or [])
    lines += _e2e_section(data.get("e2e") or [], data.get("runs") or [])
    lines += _problems(data)
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------------------------------- plots
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _config_label(d, s) -> str:
    return f"S={_len(s)}, D={d}"


def _grouped_bars(ax, masks: list[str], series: list[tuple[str, dict[str, float]]]) -> None:
    n = max(1, len(series))
    width = 0.8 / n
    for i, (label, values) in enumerate(series):
        xs = [j + (i - (n - 1) / 2) * width for j, m in enumerate(masks) if values.get(m) is not None]
        ys = [values[m] for m in masks if values.get(m) is not None]
        ax.bar(xs, ys, width=width, label=label)
    ax.set_xticks(range(len(masks)))
    ax.set_xticklabels(masks, rotation=35, ha="right", fontsize=8)


def _room_for_legend(ax) -> None:
    low, high = ax.get_ylim()
    ax.set_ylim(low, high * 1.3)
    ax.legend(fontsize=7, loc="upper right", ncol=2)


def _plot_speedups(plt, rows: list[dict], out: Path) -> list[Path]:
    written = []
    for peer in PEERS:
        series, masks = [], set()
        for d, s in _configs(rows):
            values = {}
            for r in rows:
                rec = (r.get("peers") or {}).get(peer)
                if (r.get("head_dim"), r.get("seqlen")) == (d, s) and _matches(rec) and rec.get("speedup_total"):
                    values[r["mask"]] = rec["speedup_total"]
            if values:
                series.append((_config_label(d, s), values))
                masks |= set(values)
        if not series:
            continue
        order = sorted(masks, key=_mask_order)
        fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * len(order) + 2), 4))
        _grouped_bars(ax, order, series)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_ylabel("fwd+bwd speedup (peer ms / ours)")
        ax.set_title(f"flashmask over {PEER_LABELS[peer]} (peers that disagreed with ours left out)", fontsize=9)
        _room_for_legend(ax)
        fig.tight_layout()
        path = out / f"speedup_{peer}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _plot_tflops(plt, rows: list[dict], out: Path) -> list[Path]:
    configs = [
        c for c in _configs(rows) if any(_ok(r.get("ours")) for r in rows if (r.get("head_dim"), r.get("seqlen")) == c)
    ]
    if not configs:
        return []
    fig, axes = plt.subplots(len(configs), 1, figsize=(10, 3.2 * len(configs)), squeeze=False)
    for ax, (d, s) in zip(axes[:, 0], configs, strict=True):
        group = [r for r in rows if (r.get("head_dim"), r.get("seqlen")) == (d, s)]
        order = sorted({r["mask"] for r in group}, key=_mask_order)
        ours = {r["mask"]: r["ours"] for r in group if _ok(r.get("ours"))}
        series = [
            ("flashmask, exact", {m: v.get("total_tflops_exact") for m, v in ours.items()}),
            ("flashmask, paper convention", {m: v.get("total_tflops_paper") for m, v in ours.items()}),
        ]
        flex = {}
        for r in group:
            rec = (r.get("peers") or {}).get("flex")
            if _matches(rec):
                flex[r["mask"]] = rec.get("total_tflops_exact")
        if flex:
            series.append(("FlexAttention, exact", flex))
        _grouped_bars(ax, order, series)
        ax.set_ylabel("TFLOPs/s (fwd+bwd)")
        ax.set_title(_config_label(d, s), fontsize=9)
        _room_for_legend(ax)
    fig.tight_layout()
    path = out / "tflops.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def _plot_mask_memory(plt, rows: list[dict], out: Path) -> list[Path]:
    rows = sorted((r for r in rows if r.get("seqlen")), key=lambda r: r["seqlen"])
    if not rows:
        return []

    def flex_ok(r: dict) -> bool:
        return (r.get("flex") or {}).get("status", "ok") == "ok"

    def points(get, keep=lambda r: True) -> list[tuple[int, float]]:
        return [(r["seqlen"], get(r)) for r in rows if keep(r) and get(r)]

    ours = lambda r: r.get("flashmask") or {}  # noqa: E731
    memory = {
        "flashmask (indices + block bounds)": points(lambda r: ours(r).get("held_bytes")),
        "flashmask tile lists, per fwd call": points(lambda r: ours(r).get("fwd_tile_list_bytes")),
        "FlexAttention BlockMask": points(lambda r: (r.get("flex") or {}).get("block_mask_bytes"), flex_ok),
        "dense bool mask": points(lambda r: (r.get("dense") or {}).get("bytes")),
    }
    timing = {
        "flashmask build (from doc lengths)": points(lambda r: ours(r).get("build_ms")),
        "flashmask per-call prep (bounds + tile lists)": points(lambda r: ours(r).get("prep_ms")),
        "FlexAttention create_block_mask": points(lambda r: (r.get("flex") or {}).get("block_mask_ms"), flex_ok),
        "dense bool mask (to_dense)": points(lambda r: (r.get("dense") or {}).get("build_ms")),
    }
    panels = [(memory, "bytes", "mask memory")]
    if any(timing.values()):
        panels.append((timing, "ms", "mask preparation time"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    drawn = 0
    for ax, (series, unit, title) in zip(axes[0], panels, strict=True):
        for label, pts in series.items():
            if pts:
                style = "--" if "tile lists" in label or "prep" in label else "-"
                ax.plot(*zip(*pts, strict=True), style, marker="o", label=label)
                drawn += 1
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("tokens")
        ax.set_ylabel(unit)
        ax.set_title(f"{title} (causal document, B=1)", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    if not drawn:
        plt.close(fig)
        return []
    fig.tight_layout()
    path = out / "mask_memory.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def _plot_sparsity(plt, rows: list[dict], out: Path) -> list[Path]:
    rows = [r for r in rows if _ok(r.get("ours")) and r.get("block_sparsity") is not None]
    if not rows:
        return []
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate(sorted({r["mask"] for r in rows}, key=_mask_order)):
        group = sorted((r for r in rows if r["mask"] == name), key=lambda r: r["block_sparsity"])
        c = colors[i % len(colors)]
        ax.plot(
            [r["block_sparsity"] for r in group], [r["ours"]["total_ms"] for r in group], "-o", color=c,
            label=f"flashmask, {name}",
        )  # fmt: skip
        flex = [(r["block_sparsity"], r["flex"]["total_ms"]) for r in group if _matches(r.get("flex"))]
        if flex:
            ax.plot(*zip(*flex, strict=True), "--x", color=c, label=f"FlexAttention, {name}")
    first = rows[0]
    ax.set_xlabel("block sparsity ρ (share of fully masked 128x128 tiles)")
    ax.set_ylabel("fwd+bwd ms")
    ax.set_yscale("log")
    ax.set_title(
        f"time against sparsity (S={_len(first.get('seqlen'))}, B={first.get('batch')}, D={first.get('head_dim')})"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "sparsity.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def _plot_e2e(plt, rows: list[dict], out: Path) -> list[Path]:
    rows = [r for r in rows if _e2e_ok(r)]
    parts = [p for p in E2E_PARTS_ORDER if any(r.get("part") == p for r in rows)]
    if not parts:
        return []
    fig, axes = plt.subplots(1, len(parts), figsize=(4.8 * len(parts), 4.2), squeeze=False)
    for ax, part in zip(axes[0], parts, strict=True):
        group = sorted((r for r in rows if r.get("part") == part), key=_e2e_order)
        lengths = sorted({r["seqlen"] for r in group})
        labels = [_len(s) for s in lengths]
        backends = list(dict.fromkeys(r["backend"] for r in group))
        series = [(b, {_len(r["seqlen"]): r["rate"] for r in group if r["backend"] == b}) for b in backends]
        _grouped_bars(ax, labels, series)
        ax.set_xticklabels(labels, rotation=0, ha="center", fontsize=8)
        ax.set_xlabel("tokens per row")
        ax.set_ylabel(group[0].get("unit") or "rate")
        ax.set_title(f"{part}: throughput per backend", fontsize=9)
        _room_for_legend(ax)
    fig.tight_layout()
    path = out / "e2e_throughput.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def render_plots(data: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Write the PNG plots that the data allows; returns their paths. Needs matplotlib."""
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kernel = [r for r in data.get("kernel") or [] if r.get("mask")]
    written = _plot_speedups(plt, kernel, out)
    written += _plot_tflops(plt, kernel, out)
    written += _plot_mask_memory(plt, data.get("mask_cost") or [], out)
    written += _plot_sparsity(plt, data.get("sparsity") or [], out)
    written += _plot_e2e(plt, data.get("e2e") or [], out)
    return written


def render(data: dict, out_dir: str | os.PathLike, log: Log = print) -> tuple[Path, list[Path]]:
    """Write ``results.md`` and the plots into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "results.md"
    md.write_text(render_markdown(data))
    try:
        plots = render_plots(data, out)
    except ImportError as exc:
        log(f"plots skipped: matplotlib is not installed ({exc}); pip install matplotlib")
        plots = []
    log(f"wrote {md}" + (f" and {len(plots)} plots: {', '.join(p.name for p in plots)}" if plots else ""))
    return md, plots
