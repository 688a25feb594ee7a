"""Mask-aware context parallelism on ``torch.distributed``.

The sequence is cut into chunks of ``chunk_size`` tokens; :func:`plan` spreads the chunks over the ranks so
that every rank holds the same number of tokens and about the same number of live (not fully masked) tiles
of the column-wise mask. :func:`context_parallel_attention` then runs FlashMask attention on each rank's
query shard against the K/V chunks its rows can see: the plan knows, per rank, which key chunks are live for
its query chunks, and one autograd all-to-all moves each K/V chunk only to the ranks that need it (the
backward returns and sums the gradients the same way).

Only ``torch.distributed`` collectives are used, so the same code runs on gloo (CPU) and NCCL (GPU).

Not done: overlapping the exchange with compute (no ring / double buffering); runs on GPUs.
"""

from ._attention import context_parallel_attention, restrict_mask
from ._plan import CPPlan, LocalSegment, plan

__all__ = ["CPPlan", "LocalSegment", "context_parallel_attention", "plan", "restrict_mask"]
