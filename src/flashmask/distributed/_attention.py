"""Context-parallel FlashMask attention: local queries against local keys while remote keys are in flight.

Each rank computes attention for its query rows in two parts that the softmax merges exactly by their
log-sum-exps: the key chunks it holds itself (started at once) and the key chunks other ranks send it (one
all-to-all, issued before the local part and waited for after it, so the transfer overlaps the local
attention). The backward mirrors this: the remote part's dK/dV go back to their owners while the local
part's backward runs. Both parts' backward use the merged output and log-sum-exp, which is what makes the
split exact: ``P = exp(S - lse)`` and ``rowsum(dO * O)`` are those of the whole row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .._column_mask import ColumnMask
from .._ops import attention_bwd, attention_fwd
from .._partial import partial_backward, partial_forward
from .._validation import check_qkv, resolve_deterministic
from ..attention import _autocast, _pick_backend
from ._plan import CPPlan

__all__ = ["context_parallel_attention", "restrict_mask", "restrict_rows"]

# Benchmarks switch this off to measure what the overlap buys (the exchange is then waited for at once).
_OVERLAP = True


def restrict_rows(mask: ColumnMask, rows: torch.Tensor) -> ColumnMask:
    """The mask seen by the global query rows ``rows`` (sorted ascending; local row ``i`` = global ``rows[i]``).

    The result is non-causal with ``seqlen_q = len(rows)`` and every key column. Because ``rows`` is sorted,
    a hidden interval ``[s, e)`` of global rows is again an interval of local rows,
    ``[#(rows < s), #(rows < e))``; the causal triangle (key ``j`` hidden from global rows ``< j``) becomes
    ``[0, #(rows < j))``:

    ========================  ==========================================
    global form               restricted (non-causal) form
    ========================  ==========================================
    causal  [LTS]             [LTS', tri]          (C=2)
    causal  [LTS, LTE]        [LTS', LTE', 0, tri] (C=4)
    non-causal [LTS, UTE]     [LTS', UTE']         (C=2)
    non-causal C=4            all four mapped      (C=4)
    ========================  ==========================================

    Needs ``Sq == Sk`` (the causal triangle of a square mask has no offset).
    """
    if mask.seqlen_q != mask.seqlen_k:
        raise ValueError(f"restricting rows needs Sq == Sk, got Sq={mask.seqlen_q}, Sk={mask.seqlen_k}")
    idx = mask.startend_row_indices
    rows = rows.to(device=idx.device, dtype=torch.int64)
    if rows.dim() != 1:
        raise ValueError(f"rows must be a 1-D tensor of row indices, got shape {tuple(rows.shape)}")
    if rows.numel() > 1 and not bool((rows[1:] > rows[:-1]).all()):
        raise ValueError("rows must be strictly increasing")
    mapped = torch.searchsorted(rows, idx.to(torch.int64))
    if mask.causal:
        cols = torch.arange(mask.seqlen_k, dtype=torch.int64, device=idx.device)
        tri = torch.searchsorted(rows, cols).expand_as(idx[..., 0]).unsqueeze(-1)
        if mask.num_bounds == 1:
            mapped = torch.cat([mapped, tri], dim=-1)
        else:
            mapped = torch.cat([mapped, torch.zeros_like(tri), tri], dim=-1)
    return ColumnMask(mapped.to(torch.int32), causal=False, seqlen_q=rows.numel())


def restrict_mask(mask: ColumnMask, r0: int, r1: int) -> ColumnMask:
    """The mask seen by global query rows ``[r0, r1)`` (local row ``i`` = global row ``r0 + i``), all keys;
    :func:`restrict_rows` for one contiguous range."""
    if mask.seqlen_q != mask.seqlen_k:
        raise ValueError(f"restrict_mask needs Sq == Sk, got Sq={mask.seqlen_q}, Sk={mask.seqlen_k}")
    if not 0 <= r0 <= r1 <= mask.seqlen_q:
        raise ValueError(f"row range [{r0}, {r1}) is outside [0, {mask.seqlen_q}]")
    return restrict_rows(mask, torch.arange(r0, r1, device=mask.device))


@dataclass
class _Exchange:
    """What one rank sends, receives and attends to; built once per (plan, rank, device)."""

    local_keys: torch.Tensor | None  # positions in the shard of the key chunks used locally; None: all of them
    local_mask: torch.Tensor | None  # int32 [B, Hm, n_local_keys, C] over the local rows; None: no local key
    local_causal: bool  # local_mask is in a causal form (the keys are exactly the rows, in the same order)
    remote_mask: torch.Tensor | None  # int32 over the received keys in arrival order; None: nothing received
    send_index: torch.Tensor  # positions in the shard sent, grouped by destination rank
    send_splits: list[int]  # tokens sent to each rank
    recv_splits: list[int]  # tokens received from each rank
    exchange: bool  # some rank receives something: every rank takes part in the all-to-all


def _exchange(cp_plan: CPPlan, rank: int, device: torch.device) -> _Exchange:
    key = (rank, device)
    if key in cp_plan._exchange_cache:
        return cp_plan._exchange_cache[key]
    cs, size = cp_plan.chunk_size, cp_plan.world_size
    mine = cp_plan.chunks_of_rank[rank]
    needed = set(cp_plan.key_chunks_of_rank[rank])
    offs = torch.arange(cs, dtype=torch.int64, device=device)

    def tokens(chunks: list[int]) -> torch.Tensor:
        return (torch.tensor(chunks, dtype=torch.int64, device=device).reshape(-1, 1) * cs + offs).reshape(-1)

    position = {c: p for p, c in enumerate(mine)}
    local_chunks = [c for c in mine if c in needed]
    sees = [set(chunks) for chunks in cp_plan.key_chunks_of_rank]  # the key chunks each rank's rows see
    send = [[] if r == rank else [c for c in mine if c in sees[r]] for r in range(size)]
    recv = [[] if s == rank else [c for c in cp_plan.chunks_of_rank[s] if c in needed] for s in range(size)]
    arrival = [c for part in recv for c in part]

    mask = cp_plan.mask if cp_plan.mask.device == device else cp_plan.mask.to(device)
    rows = cp_plan.token_index(rank, device)
    restricted = restrict_rows(mask, rows).startend_row_indices
    all_local = len(local_chunks) == len(mine)
    if mask.causal and all_local:
        # Keys = rows, same global order: "global row < global key" is "local row < local key", so the local
        # part keeps the causal form (its diagonal tiles are masked by index, no bounds are loaded for them).
        local_mask = torch.searchsorted(rows, mask.startend_row_indices.to(torch.int64)).index_select(2, rows)
        local_mask, local_causal = local_mask.to(torch.int32).contiguous(), True
    else:
        local_mask = restricted.index_select(2, tokens(local_chunks)).contiguous() if local_chunks else None
        local_causal = False
    send_pos = [position[c] for part in send for c in part]
    ex = _Exchange(
        local_keys=None if all_local else tokens([position[c] for c in local_chunks]),
        local_mask=local_mask,
        local_causal=local_causal,
        remote_mask=restricted.index_select(2, tokens(arrival)).contiguous() if arrival else None,
        send_index=tokens(send_pos) if send_pos else torch.empty(0, dtype=torch.int64, device=device),
        send_splits=[len(p) * cs for p in send],
        recv_splits=[len(p) * cs for p in recv],
        exchange=any(sees[r] - set(cp_plan.chunks_of_rank[r]) for r in range(size)),
    )
    cp_plan._exchange_cache[key] = ex
    return ex


def _start_all_to_all(pair: tuple[torch.Tensor, torch.Tensor], index: torch.Tensor | None, out_splits: list[int],
                      in_splits: list[int], group) -> tuple[torch.Tensor, dist.Work]:  # fmt: skip
    """Send the tokens ``index`` (dim 1; ``None``: all of them, in order) of a ``[B, S, H, D]`` pair (K and V,
    or their gradients) in one asynchronous all-to-all; returns the receive buffer ``[tokens, 2, B, H, D]`` and
    the pending work."""
    first, second = pair
    if index is not None:
        first, second = first.index_select(1, index), second.index_select(1, index)
    payload = torch.stack([first, second]).permute(2, 0, 1, 3, 4)
    payload = payload.contiguous()
    received = payload.new_empty((sum(out_splits), *payload.shape[1:]))
    work = dist.all_to_all_single(received, payload, out_splits, in_splits, group=group, async_op=True)
    return received, work


def _unpack(received: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[tokens, 2, B, H, D]`` -> two ``[B, tokens, H, D]`` views (strided; the kernels take strides)."""
    return received[:, 0].movedim(0, 1), received[:, 1].movedim(0, 1)


def _merge(parts: list[tuple[torch.Tensor, torch.Tensor]], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Combine partial attentions over disjoint key sets by their log-sum-exps (out ``[B, S, H, D]``,
    lse ``[B, H, S]``), rounding to ``dtype`` once. Rows that see no key in any part keep output 0 and lse
    ``-inf``."""
    lse = torch.logsumexp(torch.stack([lse for _, lse in parts]), dim=0)
    finite = torch.where(torch.isinf(lse), torch.zeros_like(lse), lse)
    out = None
    for o, part_lse in parts:
        weight = torch.exp(part_lse - finite).transpose(1, 2).unsqueeze(-1)  # [B, S, H, 1]; 0 where lse = -inf
        out = o * weight if out is None else out.addcmul_(o, weight)
    return out.to(dtype), lse


class _ContextParallelAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, ex: _Exchange, group, scale: float, backend: str, deterministic: bool):
        received = None
        if ex.exchange:
            received, work = _start_all_to_all((k, v), ex.send_index, ex.recv_splits, ex.send_splits, group)
            if not _OVERLAP:
                work.wait()
        k_loc = k if ex.local_keys is None else k.index_select(1, ex.local_keys)
        v_loc = v if ex.local_keys is None else v.index_select(1, ex.local_keys)
        two_parts = ex.local_mask is not None and ex.remote_mask is not None
        # One part: the plain op (rounded once). Two: float32 parts, merged, then rounded once.
        fwd = partial_forward if two_parts else _rounded_forward
        parts = []
        if ex.local_mask is not None:  # runs while the remote keys travel
            parts.append(fwd(q, k_loc, v_loc, ex.local_mask, ex.local_causal, scale, backend))
        if ex.exchange:
            work.wait()
        if ex.remote_mask is not None:
            k_rem, v_rem = _unpack(received)
            parts.append(fwd(q, k_rem, v_rem, ex.remote_mask, False, scale, backend))
        if parts:
            out, lse = _merge(parts, q.dtype) if two_parts else parts[0]
        else:  # no row of this rank sees any key
            out = torch.zeros_like(q)
            lse = torch.full((q.shape[0], q.shape[2], q.shape[1]), float("-inf"), device=q.device)
        ctx.save_for_backward(q, k_loc, v_loc, received, out, lse)
        ctx.ex, ctx.group, ctx.scale, ctx.backend, ctx.deterministic = ex, group, scale, backend, deterministic
        ctx.k_shape, ctx.v_dtype = k.shape, v.dtype
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k_loc, v_loc, received, out, lse = ctx.saved_tensors
        ex = ctx.ex
        dout = dout.contiguous()
        args = (ctx.scale, ctx.backend, ctx.deterministic)
        # Gradients summed over parts or ranks are kept in float32 and rounded once at the end.
        bwd = partial_backward if ex.exchange else _rounded_backward
        dq = returned = None
        if ex.remote_mask is not None:
            k_rem, v_rem = _unpack(received)
            dq, dk_rem, dv_rem = bwd(dout, q, k_rem, v_rem, out, lse, ex.remote_mask, False, *args)
        if ex.exchange:  # the remote keys' gradients go home while the local backward runs
            if ex.remote_mask is None:
                # Every rank must send the same dtype as partial_backward's gradients.
                wide = torch.promote_types(ctx.v_dtype, torch.float32)
                dk_rem = dv_rem = torch.empty((q.shape[0], 0, *ctx.k_shape[2:]), dtype=wide, device=q.device)
            returned, work = _start_all_to_all((dk_rem, dv_rem), None, ex.send_splits, ex.recv_splits, ctx.group)
            if not _OVERLAP:
                work.wait()
        dk = dv = None
        if ex.local_mask is not None:
            dq_loc, dk, dv = bwd(dout, q, k_loc, v_loc, out, lse, ex.local_mask, ex.local_causal, *args)
            dq = dq_loc if dq is None else dq.add_(dq_loc)
            if ex.local_keys is not None:
                dk = torch.zeros(ctx.k_shape, dtype=dk.dtype, device=q.device).index_add_(1, ex.local_keys, dk)
                dv = torch.zeros(ctx.k_shape, dtype=dv.dtype, device=q.device).index_add_(1, ex.local_keys, dv)
        if dk is None:
            acc = torch.promote_types(ctx.v_dtype, torch.float32)
            dk = torch.zeros(ctx.k_shape, dtype=acc, device=q.device)
            dv = torch.zeros(ctx.k_shape, dtype=acc, device=q.device)
        if ex.exchange:
            work.wait()
            dk_home, dv_home = _unpack(returned)
            dk.index_add_(1, ex.send_index, dk_home.to(dk.dtype))
            dv.index_add_(1, ex.send_index, dv_home.to(dv.dtype))
        dq = torch.zeros_like(q) if dq is None else dq.to(q.dtype)
        return dq, dk.to(ctx.v_dtype), dv.to(ctx.v_dtype), None, None, None, None, None


def _rounded_forward(q, k, v, indices, causal, scale, backend):
    return attention_fwd(q, k, v, indices, causal, scale, backend, False)


def _rounded_backward(dout, q, k, v, out, lse, indices, causal, scale, backend, deterministic):
    return attention_bwd(dout, None, q, k, v, out, lse, indices, causal, scale, backend, deterministic)


def context_parallel_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    plan: CPPlan,
    group: dist.ProcessGroup | None = None,
    *,
    backend: str | None = None,
    softmax_scale: float | None = None,
    deterministic: bool | None = None,
) -> torch.Tensor:
    """FlashMask attention over a sequence sharded by ``plan`` across the ranks of ``group``.

    Args:
        q, k, v: this rank's shards ``[B, S_local, H, D]`` (``plan.shard(x, 1, rank)``); GQA as in
            :func:`flashmask.flashmask_attention`.
        plan: from :func:`flashmask.distributed.plan`; its mask is the attention mask.
        group: the process group (default: the world); its size must equal ``plan.world_size`` and the
            rank within it selects the shard.
        backend, softmax_scale, deterministic: as in :func:`flashmask.flashmask_attention`.

    Returns:
        This rank's output shard ``[B, S_local, Hq, D]`` (same token order as ``q``); ``plan.unshard``
        restores the full sequence.

    Each K/V chunk travels only to the ranks with a query row that can see it, in one asynchronous
    all-to-all that overlaps the attention to the keys the rank already holds; the two partial results are
    merged by their log-sum-exps. The backward sends the remote keys' gradients home the same way, overlapped
    with the local backward. Collective: every rank of ``group`` must call it, and run its backward.
    """
    q, k, v = _autocast(q, k, v)
    check_qkv(q, k, v)
    size = dist.get_world_size(group)
    if size != plan.world_size:
        raise ValueError(f"the process group has {size} ranks but the plan was made for {plan.world_size}")
    rank = dist.get_rank(group)
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.shape[1] != plan.local_seqlen:
            raise ValueError(f"{name} has {t.shape[1]} tokens, each rank of the plan holds {plan.local_seqlen}")
    if plan.mask.batch not in (1, q.shape[0]):
        raise ValueError(f"the plan's mask has batch {plan.mask.batch} but q has batch {q.shape[0]}")
    if plan.mask.num_heads not in (1, k.shape[2], q.shape[2]):
        raise ValueError(
            f"the plan's mask has {plan.mask.num_heads} heads; expected 1, the number of key/value heads "
            f"({k.shape[2]}) or the number of query heads ({q.shape[2]})"
        )
    backend = _pick_backend(backend, q)
    if softmax_scale is None:
        softmax_scale = 1.0 / math.sqrt(q.shape[-1])
    elif not softmax_scale > 0:
        raise ValueError(f"softmax_scale must be positive, got {softmax_scale}")
    ex = _exchange(plan, rank, q.device)
    return _ContextParallelAttention.apply(q, k, v, ex, group, float(softmax_scale), backend,
                                           resolve_deterministic(deterministic))  # fmt: skip
