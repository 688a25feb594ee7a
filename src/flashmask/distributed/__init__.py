"""Mask-aware context parallelism on ``torch.distributed``.

The sequence is cut into chunks of ``chunk_size`` tokens; :func:`plan` spreads the chunks over the ranks so
that every rank holds the same number of tokens and about the same number of live (not fully masked) tiles
of the column-wise mask. :func:`context_parallel_attention` then runs FlashMask attention on each rank's
query shard against all keys, gathered with autograd (the backward reduce-scatters dK and dV).

Only ``torch.distributed`` collectives are used, so the same code runs on gloo (CPU) and NCCL (GPU).

Not done: communication skipping. Every rank gathers the full K and V, even when the mask hides whole
K/V chunks from all of its query rows; only the attention kernels skip those (fully masked) tiles. Nor is
the all-gather overlapped with compute (no ring / double buffering).
"""

from ._attention import context_parallel_attention, restrict_mask
from ._plan import CPPlan, LocalSegment, plan

__all__ = ["CPPlan", "LocalSegment", "context_parallel_attention", "plan", "restrict_mask"]
