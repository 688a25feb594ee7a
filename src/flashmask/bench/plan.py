"""What ``flashmask bench`` runs: options, the list of cases and their estimated GPU memory.

Nothing here touches a GPU, so ``flashmask bench --dry-run`` works on any machine.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .workloads import MASK_TYPES

PEERS = ("flex", "sdpa_dense", "cudnn", "flash")
PARTS = ("kernel", "mask-cost", "sparsity")
# Plain full or causal attention: SDPA's dense backends (no mask argument) run only these, and our rows for
# them call flashmask without a column mask.
DENSE_ONLY_MASKS = ("full", "causal")
PEER_LABELS = {
    "flex": "FlexAttention",
    "sdpa_dense": "SDPA dense mask",
    "cudnn": "SDPA cuDNN",
    "flash": "SDPA flash (FA2)",
}
QUICK_MASKS = ("full", "causal_document")

GiB = 1024**3


@dataclass
class BenchOptions:
    """Everything that decides what the benchmark measures (recorded in the JSON)."""

    masks: tuple[str, ...] = MASK_TYPES
    seqlens: tuple[int, ...] = (8192, 32768, 131072)
    head_dims: tuple[int, ...] = (128, 64)
    peers: tuple[str, ...] = PEERS
    parts: tuple[str, ...] = PARTS
    quick: bool = False
    total_tokens: int = 131072  # B = total_tokens // S
    hidden: int = 4096  # heads = hidden // D
    warmup_ms: int = 50  # warm-up and repetition budgets of the CUDA-event timer (peers.Timer)
    rep_ms: int = 200
    dense_limit_gib: float = 4.0  # skip SDPA with a dense mask when the [B, 1, S, S] bool mask reaches this
    tol: float = 2e-2  # peers' forward output against ours: |peer - ours| <= tol + tol * |ours|
    mask_cost_seqlens: tuple[int, ...] = (8192, 32768, 131072, 524288, 1048576)
    sweep_masks: tuple[str, ...] = ("causal_document", "document", "share_question")
    sweep_seqlen: int = 32768
    sweep_batch: int | None = None  # default: total_tokens // sweep_seqlen
    sweep_head_dim: int = 128
    sweep_doc_counts: tuple[int, ...] = (1, 2, 4, 8, 16, 24, 32, 48, 64)
    block_mask_builds: int = 5  # create_block_mask builds timed (median) after the first (compiling) one
    seed: int = 0

    @classmethod
    def quick_mode(cls, **overrides) -> BenchOptions:
        """The kernel table only, at 8K, D=128, two masks (full and causal document), short timings, no dense SDPA.

        Sized for two minutes on a fresh H100, compilation included. The first quick mode (four masks, dense SDPA,
        mask cost, a 3-point sparsity sweep) took 238 s; three masks took 138 s, 54 s of it FlexAttention's
        first, compiling ``create_block_mask`` (the cold start of ``torch.compile``). ``--part`` adds the other
        parts.
        """
        base = dict(
            quick=True,
            parts=("kernel",),
            peers=("flex", "cudnn", "flash"),
            masks=QUICK_MASKS,
            seqlens=(8192,),
            head_dims=(128,),
            warmup_ms=10,
            rep_ms=30,
            mask_cost_seqlens=(8192, 32768, 131072),
            sweep_masks=("causal_document",),
            sweep_seqlen=8192,
            sweep_doc_counts=(1, 4, 16),
            block_mask_builds=3,
        )
        base.update(overrides)
        return cls(**base)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def batch_for(self, seqlen: int) -> int:
        return max(1, self.total_tokens // seqlen)

    def heads_for(self, head_dim: int) -> int:
        return max(1, self.hidden // head_dim)

    @property
    def sweep_batch_size(self) -> int:
        return self.sweep_batch or self.batch_for(self.sweep_seqlen)


# ------------------------------------------------------------------------------------------- estimates
def activation_bytes(batch: int, seqlen: int, heads: int, head_dim: int, elem: int = 2) -> int:
    """One ``[B, S, H, D]`` tensor."""
    return batch * seqlen * heads * head_dim * elem


def tile_list_bytes(rows: int, seqlen_q: int, seqlen_k: int, block_m: int, block_n: int) -> int:
    """Bytes of the compacted tile lists one kernel launch allocates (``kernels.tiles.tile_lists``).

    Two index arrays ``[rows, outer, inner]`` int32 (unmasked and partial blocks), two count vectors and
    the launch order ``[rows, outer]`` int32. ``rows`` is batch rows x mask heads.
    """
    tr, tc = -(-seqlen_q // block_m), -(-seqlen_k // block_n)
    return rows * (2 * tr * tc * 4 + 3 * tr * 4)


def block_bounds_bytes(rows: int, seqlen_k: int, block_n: int = 128) -> int:
    """Eight int32 per block of ``block_n`` key columns (min and max of LTS, LTE, UTS, UTE)."""
    return rows * 8 * 4 * (-(-seqlen_k // block_n))


def flex_block_mask_bytes(batch: int, seqlen: int, block: int = 128) -> int:
    """Rough size of a FlexAttention ``BlockMask`` (one head): four ``[B, 1, T, T]`` int32 index tensors."""
    t = -(-seqlen // block)
    return batch * (4 * t * t * 4 + 4 * t * 4)


def dense_mask_bytes(batch: int, seqlen: int) -> int:
    """A ``[B, 1, S, S]`` bool mask."""
    return batch * seqlen * seqlen


def kernel_case_bytes(batch: int, seqlen: int, heads: int, head_dim: int, peers: dict) -> int:
    """Estimated peak GPU memory of one kernel-table case.

    Our q, k, v, dO and their ``[B, H, S, D]`` copies for the peers stay for a whole (S, D) group; our
    output is kept as the peers' reference; one set of output plus three gradients is live at a time;
    the FlexAttention block mask or SDPA's dense mask (bool plus the bf16 bias SDPA makes of it) on top.
    """
    act = activation_bytes(batch, seqlen, heads, head_dim)
    extra = 0
    if peers.get("flex", "n/a") is None:
        extra = max(extra, flex_block_mask_bytes(batch, seqlen))
    if peers.get("sdpa_dense", "n/a") is None:
        extra = max(extra, 3 * dense_mask_bytes(batch, seqlen))
    inputs = (8 if peers else 4) * act
    return inputs + act + 4 * act + tile_list_bytes(batch, seqlen, seqlen, 64, 128) * 2 + extra


# ------------------------------------------------------------------------------------------- cases
@dataclass
class KernelCase:
    mask: str
    seqlen: int
    batch: int
    heads: int
    head_dim: int
    # peer -> None (runs) or the reason it is skipped; peers that do not apply are absent.
    peers: dict[str, str | None]
    est_bytes: int = 0


def dense_skip_reason(batch: int, seqlen: int, limit_gib: float) -> str | None:
    need = dense_mask_bytes(batch, seqlen)
    if need < limit_gib * GiB:
        return None
    return (
        f"dense mask [{batch}, 1, {seqlen}, {seqlen}] bool needs {need / GiB:.1f} GiB (SDPA adds a bf16 bias "
        f"copy of {2 * need / GiB:.1f} GiB), at or above the {limit_gib:g} GiB limit (--dense-limit-gb)"
    )


def kernel_cases(opts: BenchOptions, flex_missing: str | None = None) -> list[KernelCase]:
    """Every (head dim, length, mask) case, with the peers that run and why others are skipped."""
    cases = []
    for d in opts.head_dims:
        for s in opts.seqlens:
            b, h = opts.batch_for(s), opts.heads_for(d)
            for name in opts.masks:
                peers: dict[str, str | None] = {}
                for p in opts.peers:
                    if p == "flex":
                        peers[p] = flex_missing
                    elif p == "sdpa_dense":
                        peers[p] = dense_skip_reason(b, s, opts.dense_limit_gib)
                    elif name in DENSE_ONLY_MASKS:
                        peers[p] = None
                cases.append(KernelCase(name, s, b, h, d, peers, kernel_case_bytes(b, s, h, d, peers)))
    return cases


def mask_cost_cases(opts: BenchOptions) -> list[dict]:
    rows = []
    for s in opts.mask_cost_seqlens:
        rows.append(
            dict(
                seqlen=s,
                indices_bytes=s * 4,
                block_bounds_bytes=block_bounds_bytes(1, s),
                fwd_tile_list_bytes=tile_list_bytes(1, s, s, 128, 128),
                flex_bytes=flex_block_mask_bytes(1, s),
                dense_bytes=dense_mask_bytes(1, s),
                dense_allocated=dense_skip_reason(1, s, opts.dense_limit_gib) is None,
            )
        )
    return rows


def sweep_cases(opts: BenchOptions) -> list[tuple[str, int]]:
    return [(m, n) for m in opts.sweep_masks for n in opts.sweep_doc_counts]


# ------------------------------------------------------------------------------------------- dry run
def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "—"
    for unit, size in (("TiB", 1024**4), ("GiB", GiB), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def describe_plan(opts: BenchOptions, flex_missing: str | None = None) -> str:
    """A readable list of every case the run would execute, with estimated GPU memory."""
    lines = [
        f"flashmask bench plan ({'quick' if opts.quick else 'full'}); parts: {', '.join(opts.parts)}; "
        f"peers: {', '.join(opts.peers) or 'none'}; bf16; timings: CUDA-event median "
        f"(warm-up {opts.warmup_ms} ms, rep {opts.rep_ms} ms)",
    ]
    if flex_missing and "flex" in opts.peers:
        lines.append(f"note: FlexAttention is skipped: {flex_missing}")
    total = 0
    if "kernel" in opts.parts:
        cases = kernel_cases(opts, flex_missing)
        lines.append("")
        lines.append(f"[kernel] {len(cases)} cases, {opts.total_tokens} tokens per case (B = tokens // S)")
        lines.append(f"  {'D':>4} {'S':>7} {'B':>3} {'H':>3}  {'mask':22s} {'est. GPU mem':>12}  peers")
        for c in cases:
            peers = ", ".join(p if why is None else f"{p} (skip)" for p, why in c.peers.items()) or "-"
            lines.append(
                f"  {c.head_dim:>4} {c.seqlen:>7} {c.batch:>3} {c.heads:>3}  {c.mask:22s} "
                f"{fmt_bytes(c.est_bytes):>12}  {peers}"
            )
        reasons = sorted({why for c in cases for why in c.peers.values() if why})
        for why in reasons:
            lines.append(f"  skip: {why}")
        total += len(cases)
    if "mask-cost" in opts.parts:
        rows = mask_cost_cases(opts)
        lines.append("")
        lines.append(f"[mask-cost] causal_document, B=1, {len(rows)} lengths")
        lines.append(f"  {'S':>8} {'flashmask':>10} {'bounds':>10} {'tile lists':>11} {'BlockMask~':>11} {'dense':>10}")
        for r in rows:
            dense = fmt_bytes(r["dense_bytes"]) + ("" if r["dense_allocated"] else " (computed)")
            lines.append(
                f"  {r['seqlen']:>8} {fmt_bytes(r['indices_bytes']):>10} "
                f"{fmt_bytes(r['block_bounds_bytes']):>10} {fmt_bytes(r['fwd_tile_list_bytes']):>11} "
                f"{fmt_bytes(r['flex_bytes']):>11} {dense:>10}"
            )
        total += len(rows)
    if "sparsity" in opts.parts:
        sweep = sweep_cases(opts)
        b, h, d, s = (
            opts.sweep_batch_size,
            opts.heads_for(opts.sweep_head_dim),
            opts.sweep_head_dim,
            opts.sweep_seqlen,
        )
        peers = ["flex"] if "flex" in opts.peers and not flex_missing else []
        lines.append("")
        lines.append(
            f"[sparsity] {len(sweep)} cases at S={s}, B={b}, H={h}, D={d}; ours"
            + (" and FlexAttention" if peers else "")
            + f"; est. GPU mem {fmt_bytes(kernel_case_bytes(b, s, h, d, dict.fromkeys(peers)))} per case"
        )
        for m in opts.sweep_masks:
            lines.append(f"  {m:22s} documents: {', '.join(map(str, opts.sweep_doc_counts))}")
        total += len(sweep)
    lines.append("")
    lines.append(f"{total} cases in all. Nothing was run (--dry-run).")
    return "\n".join(lines)
