"""flashmask: FlashMask attention for PyTorch.

Attention under a column-wise sparse mask: for every key column at most two row intervals that may not
attend to it (``startend_row_indices``, int32 ``[B, Hm, Sk, C]``). The O(N) mask covers causal, sliding
window, document packing, shared-prompt, prefix-LM, global+window, blockwise, QK-sparse and KV-eviction
masks; the Triton kernels skip fully masked tiles and do no mask work on unmasked ones.
"""

from . import masks
from ._column_mask import ColumnMask, NotRepresentableError
from .attention import flashmask_attention

__version__ = "0.1.0"

__all__ = ["ColumnMask", "NotRepresentableError", "__version__", "flashmask_attention", "masks"]
