"""Chunk-to-rank assignment balanced by live FlashMask tiles."""

from __future__ import annotations

import math

import torch
import torch.distributed as dist

from .._column_mask import ColumnMask
from .._tiling import DEAD, classify_tiles

__all__ = ["CPPlan", "plan"]

_TILE = 128


class CPPlan:
    """Which chunks of the sequence each rank holds (built by :func:`plan`).

    Attributes:
        mask: the global :class:`~flashmask.ColumnMask` (``Sq == Sk``).
        world_size, chunk_size: as given to :func:`plan`.
        chunks_of_rank: ``list[list[int]]``, the sorted chunk indices of every rank.
        key_chunks_of_rank: ``list[list[int]]``, the sorted key chunks some query row of the rank can see: the
            only K/V chunks the rank receives.
        chunk_work: int64 tensor ``[num_chunks]``, live tiles per chunk (on the mask's device).
        work_of_rank: ``list[int]``, summed chunk work per rank.
        balance: ``max(work_of_rank) / mean(work_of_rank)`` (1.0 is perfect; 1.0 when there is no work).
    """

    def __init__(self, mask: ColumnMask, world_size: int, chunk_size: int, chunk_work: torch.Tensor,
                 chunks_of_rank: list[list[int]], key_chunks_of_rank: list[list[int]]) -> None:  # fmt: skip
        self.mask = mask
        self.key_chunks_of_rank = key_chunks_of_rank
        self.world_size = world_size
        self.chunk_size = chunk_size
        self.chunk_work = chunk_work
        self.chunks_of_rank = chunks_of_rank
        work = chunk_work.tolist()
        self.work_of_rank = [sum(work[c] for c in chunks) for chunks in chunks_of_rank]
        mean = sum(self.work_of_rank) / world_size
        self.balance = max(self.work_of_rank) / mean if mean > 0 else 1.0
        self._index_cache: dict[tuple[int, torch.device], torch.Tensor] = {}
        self._inverse_cache: dict[torch.device, torch.Tensor] = {}
        self._exchange_cache: dict = {}  # per (rank, device): what context_parallel_attention precomputes

    @property
    def seqlen(self) -> int:
        return self.mask.seqlen_k

    @property
    def num_chunks(self) -> int:
        return self.seqlen // self.chunk_size

    @property
    def local_seqlen(self) -> int:
        """Tokens per rank (the same on every rank)."""
        return self.seqlen // self.world_size

    def _check_rank(self, rank: int) -> None:
        if not 0 <= rank < self.world_size:
            raise ValueError(f"rank {rank} out of range for world_size {self.world_size}")

    def token_index(self, rank: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Global token indices held by ``rank``, in local order (int64 ``[local_seqlen]``)."""
        self._check_rank(rank)
        device = torch.device(device) if device is not None else self.mask.device
        key = (rank, device)
        if key not in self._index_cache:
            chunks = torch.tensor(self.chunks_of_rank[rank], dtype=torch.int64, device=device)
            offs = torch.arange(self.chunk_size, dtype=torch.int64, device=device)
            self._index_cache[key] = (chunks.unsqueeze(1) * self.chunk_size + offs).reshape(-1)
        return self._index_cache[key]

    def key_index(self, rank: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Global token indices of the key chunks ``rank`` gathers, ascending (int64)."""
        self._check_rank(rank)
        device = torch.device(device) if device is not None else self.mask.device
        chunks = torch.tensor(self.key_chunks_of_rank[rank], dtype=torch.int64, device=device)
        offs = torch.arange(self.chunk_size, dtype=torch.int64, device=device)
        return (chunks.unsqueeze(1) * self.chunk_size + offs).reshape(-1)

    def inverse_index(self, device: torch.device | str | None = None) -> torch.Tensor:
        """For every global token, its position in the rank-ordered concatenation of all shards."""
        device = torch.device(device) if device is not None else self.mask.device
        if device not in self._inverse_cache:
            order = torch.cat([self.token_index(r, device) for r in range(self.world_size)])
            inv = torch.empty_like(order)
            inv[order] = torch.arange(order.numel(), dtype=order.dtype, device=device)
            self._inverse_cache[device] = inv
        return self._inverse_cache[device]

    def shard(self, x: torch.Tensor, dim: int, rank: int) -> torch.Tensor:
        """The tokens of ``rank`` from a full per-token tensor ``x`` (its chunks, in order, along ``dim``)."""
        if x.shape[dim] != self.seqlen:
            raise ValueError(f"x has {x.shape[dim]} tokens along dim {dim}, the plan covers {self.seqlen}")
        return x.index_select(dim, self.token_index(rank, x.device))

    def unshard(self, x_local: torch.Tensor, dim: int, group: dist.ProcessGroup | None = None) -> torch.Tensor:
        """All-gather every rank's shard of a per-token tensor and restore global token order.

        Differentiable (the backward reduce-scatters the gradient to the shards). Collective: every rank of
        ``group`` must call it.
        """
        return gather_global(x_local, dim, self, group)

    def local_mask(self, rank: int, device: torch.device | str | None = None) -> ColumnMask:
        """The plan's mask restricted to the query rows of ``rank`` (in shard order) and to the key columns it
        gathers (:meth:`key_index`, ascending): non-causal, ``[B, Hm, len(key_index), C]``."""
        from ._attention import restrict_rows

        device = torch.device(device) if device is not None else self.mask.device
        mask = self.mask if self.mask.device == device else self.mask.to(device)
        rows = restrict_rows(mask, self.token_index(rank, device))
        return ColumnMask(rows.startend_row_indices.index_select(2, self.key_index(rank, device)), False, rows.seqlen_q)

    def __repr__(self) -> str:
        return (
            f"CPPlan(world_size={self.world_size}, chunk_size={self.chunk_size}, num_chunks={self.num_chunks}, "
            f"work_of_rank={self.work_of_rank}, balance={self.balance:.3f})"
        )


def chunk_visibility(mask: ColumnMask, chunk_size: int) -> torch.Tensor:
    """Bool ``[num_chunks, num_chunks]``: some query row of chunk ``a`` sees some key of chunk ``b``."""
    tile = math.gcd(chunk_size, _TILE)
    live = classify_tiles(mask.intervals(), mask.seqlen_k, tile, tile) != DEAD  # [B, Hm, Tr, Tc]
    per = chunk_size // tile
    n = mask.seqlen_k // chunk_size
    return live.any(dim=(0, 1)).view(n, per, n, per).any(dim=3).any(dim=1)


def gather_global(x_local: torch.Tensor, dim: int, cp_plan: CPPlan, group: dist.ProcessGroup | None) -> torch.Tensor:
    """Autograd all-gather of per-rank shards along ``dim`` followed by the inverse permutation."""
    from torch.distributed.nn.functional import all_gather

    size = dist.get_world_size(group)
    if size != cp_plan.world_size:
        raise ValueError(f"the process group has {size} ranks but the plan was made for {cp_plan.world_size}")
    if x_local.shape[dim] != cp_plan.local_seqlen:
        raise ValueError(
            f"local tensor has {x_local.shape[dim]} tokens along dim {dim}, each rank holds {cp_plan.local_seqlen}"
        )
    parts = all_gather(x_local.contiguous(), group=group)
    return torch.cat(parts, dim=dim).index_select(dim, cp_plan.inverse_index(x_local.device))


def chunk_work(mask: ColumnMask, chunk_size: int) -> torch.Tensor:
    """Live (not fully masked) tiles in the query rows of each chunk, summed over batch rows and mask heads.

    Tiles are ``gcd(chunk_size, 128) x 128`` so that tile rows never straddle two chunks (128 x 128 whenever
    ``chunk_size`` is a multiple of 128). Returns int64 ``[num_chunks]`` on the mask's device.
    """
    block_m = math.gcd(chunk_size, _TILE)
    states = classify_tiles(mask.intervals(), mask.seqlen_k, block_m, _TILE)
    live_per_row = (states != DEAD).sum(dim=(0, 1, 3), dtype=torch.int64)  # [Tr]
    return live_per_row.view(-1, chunk_size // block_m).sum(dim=1)


def _greedy(work: list[int], groups: list[list[int]], world_size: int) -> list[list[int]]:
    """Groups of chunks (all of one size) to ranks: heaviest group first (ties: lower index), each to the
    currently lightest rank (ties: lower rank) that still has room for it."""
    per_rank = len(groups) // world_size
    group_work = [sum(work[c] for c in g) for g in groups]
    order = sorted(range(len(groups)), key=lambda i: (-group_work[i], i))
    load = [0] * world_size
    taken = [0] * world_size
    chunks_of_rank: list[list[int]] = [[] for _ in range(world_size)]
    for i in order:
        rank = min((r for r in range(world_size) if taken[r] < per_rank), key=lambda r: (load[r], r))
        chunks_of_rank[rank].extend(groups[i])
        load[rank] += group_work[i]
        taken[rank] += 1
    return [sorted(c) for c in chunks_of_rank]


def _snake(groups: list[list[int]], world_size: int) -> list[list[int]]:
    """Groups to ranks in the order 0, 1, ..., W-1, W-1, ..., 0, 0, 1, ...: evens out work that grows or
    shrinks along the sequence (causal, windows) while keeping each rank's runs long."""
    chunks_of_rank: list[list[int]] = [[] for _ in range(world_size)]
    for i, group in enumerate(groups):
        lap, pos = divmod(i, world_size)
        chunks_of_rank[pos if lap % 2 == 0 else world_size - 1 - pos].extend(group)
    return [sorted(c) for c in chunks_of_rank]


def _balance(work: list[int], chunks_of_rank: list[list[int]]) -> float:
    loads = [sum(work[c] for c in chunks) for chunks in chunks_of_rank]
    mean = sum(loads) / len(loads)
    return max(loads) / mean if mean > 0 else 1.0


def _traffic(visible: torch.Tensor, chunks_of_rank: list[list[int]]) -> int:
    """K/V chunks that must travel: per rank, the chunks its rows see that another rank holds."""
    total = 0
    for chunks in chunks_of_rank:
        needed = visible[chunks].any(dim=0)
        needed[chunks] = False
        total += int(needed.sum())
    return total


def plan(mask: ColumnMask, world_size: int, chunk_size: int = 1024, balance_tolerance: float = 1.05) -> CPPlan:
    """Assign chunks of ``chunk_size`` tokens to ``world_size`` ranks, balancing live FlashMask tiles and
    keeping K/V traffic low.

    The work of a chunk is the number of live (non-DEAD) tiles in its query rows (:func:`chunk_work`),
    computed with torch ops on the mask's device. Every rank gets ``num_chunks / world_size`` chunks, hence
    the same number of tokens. Candidate layouts cut the sequence into ``g * world_size`` runs of adjacent
    chunks for ``g = 1, 2, 4, ...`` up to one chunk per run, and give the runs greedily, heaviest first, to the
    currently lightest rank with room, or in snake order ``0, 1, ..., W-1, W-1, ..., 0, ...`` (``g = 1`` is
    the contiguous split, snake with ``g = 2`` the "zigzag" layout for causal masks); more candidates are the
    contiguous split shifted by an offset (the last rank's run wrapping around). Among the layouts whose
    busiest rank is within ``balance_tolerance`` of the mean, those that move about the fewest K/V chunks
    (within 25% + 2 chunks of the fewest) are kept and the best balanced of them wins (contiguous runs keep
    most of a document's keys at home, so less has to travel and more of the attention can start before the
    exchange ends); if no layout is within the tolerance, the best balanced one.

    The choice runs on the host: it reads the small per-chunk work vector and the chunk visibility matrix
    once (one device sync). This is planning, done once per mask, not part of the attention hot path.

    Raises:
        ValueError: ``Sq != Sk``; a non-positive ``world_size`` or ``chunk_size``; a sequence length that is not
            cut by ``chunk_size`` into a number of chunks divisible by ``world_size``; ``balance_tolerance < 1``.
    """
    if not isinstance(mask, ColumnMask):
        raise TypeError(f"mask must be a flashmask.ColumnMask, got {type(mask).__name__}")
    if mask.seqlen_q != mask.seqlen_k:
        raise ValueError(
            f"context parallelism needs a square mask (Sq == Sk), got Sq={mask.seqlen_q}, Sk={mask.seqlen_k}"
        )
    for name, val in (("world_size", world_size), ("chunk_size", chunk_size)):
        if not isinstance(val, int) or isinstance(val, bool) or val <= 0:
            raise ValueError(f"{name} must be a positive int, got {val!r}")
    if not balance_tolerance >= 1.0:
        raise ValueError(f"balance_tolerance must be >= 1.0, got {balance_tolerance!r}")
    seqlen = mask.seqlen_k
    if seqlen == 0 or seqlen % chunk_size != 0 or (seqlen // chunk_size) % world_size != 0:
        raise ValueError(
            f"chunk_size={chunk_size} and world_size={world_size} do not fit the sequence of {seqlen} tokens: "
            f"chunk_size must divide it into a number of chunks divisible by world_size"
        )
    num_chunks = seqlen // chunk_size
    per_rank = num_chunks // world_size
    work_t = chunk_work(mask, chunk_size)
    work = work_t.tolist()  # host read of a [num_chunks] vector: planning, not the hot path
    visible = chunk_visibility(mask, chunk_size).cpu()
    candidates = []
    runs_per_rank = 1
    while True:
        if per_rank % runs_per_rank == 0:
            run = per_rank // runs_per_rank
            groups = [list(range(i, i + run)) for i in range(0, num_chunks, run)]
            for layout in (_snake(groups, world_size), _greedy(work, groups, world_size)):
                candidates.append((layout, _balance(work, layout), _traffic(visible, layout)))
        if runs_per_rank >= per_rank:
            break
        runs_per_rank = min(2 * runs_per_rank, per_rank)
    # Contiguous runs started at an offset (the last rank's run wraps around): as little traffic as the plain
    # contiguous split, and the offset moves work between ranks. At most 64 offsets are tried.
    for offset in range(1, per_rank, max(1, per_rank // 64)):
        layout = [sorted((offset + r * per_rank + i) % num_chunks for i in range(per_rank)) for r in range(world_size)]
        candidates.append((layout, _balance(work, layout), _traffic(visible, layout)))
    balanced = [c for c in candidates if c[1] <= balance_tolerance]
    if balanced:
        # Near-fewest chunks moved (within 25% + 2 of the fewest: the exchange is mostly overlapped, so a
        # little more traffic is cheaper than idle ranks), then the best balance (ties: earlier candidate).
        fewest = min(c[2] for c in balanced)
        best = min((c for c in balanced if c[2] <= 1.25 * fewest + 2), key=lambda c: c[1])
    else:
        best = min(candidates, key=lambda c: c[1])
    chunks_of_rank = best[0]
    key_chunks_of_rank = [torch.nonzero(visible[c].any(dim=0)).flatten().tolist() for c in chunks_of_rank]
    return CPPlan(mask, world_size, chunk_size, work_t, chunks_of_rank, key_chunks_of_rank)
