"""Mask-aware context parallelism on ``torch.distributed``.

The sequence is cut into chunks of ``chunk_size`` tokens; :func:`plan` spreads the chunks over the ranks so
that every rank holds the same number of tokens and about the same number of live (not fully masked) tiles
of the column-wise mask. :func:`context_parallel_attention` then runs FlashMask attention on each rank's
query shard against the K/V chunks its rows can see: the plan knows, per rank, which key chunks are live for
its query chunks, and one asynchronous all-to-all moves each K/V chunk only to the ranks that need it while
each rank attends to the keys it already holds; the two partial results merge by their log-sum-exps (the
backward returns and sums the gradients the same way, overlapped with the local backward).

Only ``torch.distributed`` collectives are used, so the same code runs on gloo (CPU) and NCCL (GPU).
"""

from ._attention import context_parallel_attention, restrict_mask, restrict_rows
from ._plan import CPPlan, plan

__all__ = ["CPPlan", "context_parallel_attention", "plan", "restrict_mask", "restrict_rows"]
