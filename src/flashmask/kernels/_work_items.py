"""Work items of a persistent Gluon kernel (the forward): how a grid of one program per SM shares them out.

The producer warp claims the next item from a counter in global memory (int32, zero at launch: the tile lists'
``counter``), so the programs take items in grid order whatever each costs, as the hardware would launch them,
and the K/V that neighbouring items share stays in L2. It hands each item to both consumer warpgroups
through a two-slot ring in shared memory (``item_ids`` with ``item_ready`` / ``item_empty`` barriers, counts 1
and 2). Past the last item every partition sees ``num_items`` and stops. Without ``PERSISTENT`` each program
has one item, its own place in a grid ``(blocks, batch x heads)``, and no ring is used.

``sched`` is ``(item_ids, item_ready, item_empty, counter, num_items)``. A slot holds the item only: handing each
item's list counts over with it as well did not pay in the forward (benchmarks/NOTES.md, session 33).
"""

from __future__ import annotations

from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import mbarrier


@gluon.jit
def _own_item(n, num_items):
    """Without a persistent grid: the program's own item first (grid ``(query blocks, batch x heads)``), then
    none."""
    item = num_items
    if n == 0:
        item = gl.program_id(0) + gl.program_id(1) * gl.num_programs(0)
    return item


@gluon.jit
def _claim_and_publish(sched, n, PERSISTENT: gl.constexpr):
    """The producer's ``n``-th work item. On the persistent grid it is claimed from the launch's counter (so the
    programs take items in grid order, whatever each costs) and handed to both consumers through a two-slot ring
    in shared memory; past the last item every partition sees ``num_items`` and stops."""
    counter, num_items = sched[3], sched[4]
    if PERSISTENT:
        item = gl.minimum(gl.atomic_add(counter, 1, sem="relaxed"), num_items)
        _publish(sched, n, item)
    else:
        item = _own_item(n, num_items)
    return item


@gluon.jit
def _publish(sched, n, item):
    """Hands ``item`` (int32) to both consumers in ring slot ``n % 2``, once both have read what the slot held
    before."""
    item_ids, item_ready, item_empty, _counter, _num_items = sched
    slot = n % 2
    mbarrier.wait(item_empty.index(slot), ((n // 2) & 1) ^ 1)
    one_warp: gl.constexpr = gl.BlockedLayout([1], [32], [1], [0])
    item_ids.index(slot).store(gl.full([1], item, gl.int32, one_warp))
    mbarrier.arrive(item_ready.index(slot))


@gluon.jit
def _receive(sched, n, PERSISTENT: gl.constexpr):
    """A consumer's ``n``-th work item (see ``_claim_and_publish``), the same in every thread of a warpgroup."""
    item_ids, item_ready, item_empty, _counter, num_items = sched
    if PERSISTENT:
        slot = n % 2
        mbarrier.wait(item_ready.index(slot), (n // 2) & 1)
        one_warpgroup: gl.constexpr = gl.BlockedLayout([1], [32], [4], [0])
        item = gl.max(item_ids.index(slot).load(one_warpgroup), 0)
        mbarrier.arrive(item_empty.index(slot))  # read: the producer may write the slot again
    else:
        item = _own_item(n, num_items)
    return item


@gluon.jit
def _item_ring():
    """``(item_ids, item_ready, item_empty)``: the ring's shared memory (an int32 per slot) and barriers,
    initialised."""
    item_ids = gl.allocate_shared_memory(gl.int32, [2, 1], gl.SwizzledSharedLayout(1, 1, 1, [0]))
    item_ready = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    item_empty = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    for slot in gl.static_range(2):
        mbarrier.init(item_ready.index(slot), count=1)
        mbarrier.init(item_empty.index(slot), count=2)  # released by both consumer warpgroups
    return item_ids, item_ready, item_empty
