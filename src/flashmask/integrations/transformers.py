"""Hugging Face transformers backend: ``attn_implementation="colmask"``.

.. code-block:: python

    from flashmask.integrations.transformers import register

    register()  # once, before loading the model or switching its attention; returns "colmask"
    model = AutoModelForCausalLM.from_pretrained(name, attn_implementation="colmask")
    # or, on a loaded model: model.set_attn_implementation("colmask")

The name is not ``"flashmask"``: transformers treats every ``attn_implementation`` containing ``"flash"`` as a
FlashAttention variant (``is_flash_attention_requested``) and tries to import flash-attn kernels for it.

The backend never lets transformers build a dense ``[B, 1, Sq, Sk]`` mask: the registered mask function hands
the 2-D padding mask (or ``None``) through, and the attention function builds the O(N) column-wise mask itself.
The mask of a call comes from, first match winning:

1. ``startend_row_indices=`` given to ``model(...)`` (an int32 ``[B|1, Hm, Sk, C]`` tensor read with the layer's
   ``is_causal``, or a :class:`flashmask.ColumnMask`, which carries its own ``causal``), or a 4-D *integer*
   tensor given as ``attention_mask`` (transformers passes 4-D masks through untouched). A 2-D padding mask and
   a causal ``C = 1`` sliding window are folded into it.
2. ``cu_seq_lens_q`` / ``cu_seq_lens_k`` (``DataCollatorWithFlattening(return_flash_attn_kwargs=True)``):
   documents ``[cu[d], cu[d+1])`` of the flattened ``B * S`` tokens, found with ``torch.searchsorted``.
3. ``position_ids`` that restart at 0 (TRL padding-free packing, ``DataCollatorWithFlattening``): a document
   starts wherever ``position_ids == 0``, as in transformers' FlashAttention path (masking_utils' sdpa/eager
   path splits wherever the positions do not step by 1; the two agree on packed batches). Only when
   ``Sq == Sk`` (no cache), 2-D position ids.
4. the 2-D padding mask (0/False = padding): padded keys are hidden from every query row; a query row that
   then sees no key outputs 0.
5. plain causal (``module.is_causal`` or the ``is_causal`` keyword) or non-causal attention, with the layer's
   sliding window (``sliding_window`` keyword, else ``module.sliding_window``): a window of ``w`` keeps the
   token itself and the ``w - 1`` before it, as transformers' ``kv_idx > q_idx - w``.

Items 2-5 compose: documents, window and padding become one causal ``[LTS]`` (or non-causal ``[LTS, UTE]``)
column mask. Everything is computed on the device in a few vectorised ops, with no device-to-host sync and no
state kept between calls; it is rebuilt in every layer (O(B * S) integer work, negligible next to attention).

Context parallelism: ``model(..., context_parallel=plan, context_parallel_group=group)`` with this rank's
shard of ``input_ids`` / ``position_ids`` (``plan.shard``) runs every layer through
:func:`flashmask.distributed.context_parallel_attention`; the plan's mask is then the mask (no other mask source
may be given).

With a KV cache the keys must end at the last query (a ``DynamicCache``, or no cache); static caches and
transformers' extra mask overlays (``or_mask_function``/``and_mask_function``, e.g. image-token masks) are
refused with a ``ValueError``. Unsupported options (dropout > 0, ``softcap``, attention sinks ``s_aux``,
``position_bias``, ``head_mask``, paged caches) raise ``ValueError`` naming the option.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from .._column_mask import ColumnMask
from ..attention import flashmask_attention

__all__ = ["NAME", "flashmask_attention_forward", "flashmask_mask_function", "register"]

NAME = "colmask"

_UNSET: Any = object()

# Keywords that change the attention math in ways the kernels do not implement: raise when they are set.
_UNSUPPORTED = {
    "softcap": "logit soft-capping (softcap)",
    "s_aux": "attention sinks (s_aux)",
    "position_bias": "an additive position bias (position_bias)",
    "head_mask": "a head mask (head_mask)",
    "cache": "a paged cache (cache)",
}


def register(name: str = NAME) -> str:
    """Register the attention function (and its mask function) with transformers under ``name``.

    Idempotent: registering again replaces the entries with the same functions. Returns ``name``. The name must
    not contain ``"flash"`` (transformers would take it for FlashAttention) nor ``"/"`` (a Hub kernel).
    """
    if not isinstance(name, str) or not name or "flash" in name or "/" in name or ":" in name:
        raise ValueError(
            f"cannot register the flashmask backend as {name!r}: transformers reads names containing 'flash' as "
            "FlashAttention and names with '/' or ':' as Hub kernels; pick another name (default 'colmask')"
        )
    from transformers import AttentionInterface

    AttentionInterface.register(name, flashmask_attention_forward)
    try:
        from transformers.masking_utils import AttentionMaskInterface
    except ImportError:  # versions before masking_utils: the model builds masks itself
        return name
    AttentionMaskInterface.register(name, flashmask_mask_function)
    return name


# ------------------------------------------------------------------------------------------------ mask function
def flashmask_mask_function(*args: Any, attention_mask: torch.Tensor | None = None, **kwargs: Any):
    """transformers mask function: hand the 2-D padding mask (or ``None``) through, never build a dense mask.

    Takes every argument by keyword (the mask-function signature changed across transformers versions).
    """
    if kwargs.get("use_vmap"):
        # Set by create_*_mask exactly when the model overlays its own or_mask_function / and_mask_function.
        raise ValueError(
            "the flashmask attention backend cannot apply this model's extra mask overlays "
            "(or_mask_function / and_mask_function, e.g. image-token masks); pass the whole mask explicitly "
            "as startend_row_indices= or use another attention implementation"
        )
    q_offset, q_length = kwargs.get("q_offset"), kwargs.get("q_length")
    kv_offset, kv_length = kwargs.get("kv_offset", 0), kwargs.get("kv_length")
    if isinstance(q_offset, torch.Tensor) or (
        all(isinstance(x, int) for x in (q_offset, q_length, kv_offset, kv_length))
        and q_offset + q_length != kv_offset + kv_length
    ):
        raise ValueError(
            "the flashmask attention backend needs the keys to end at the last query (no cache or a "
            "DynamicCache); static caches are not supported"
        )
    if isinstance(attention_mask, torch.Tensor) and attention_mask.dim() == 2 and isinstance(kv_length, int):
        # Sliding-window caches keep only the last kv_length keys.
        attention_mask = attention_mask[:, -kv_length:]
    return attention_mask


# ------------------------------------------------------------------------------------------- attention function
def flashmask_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    sliding_window: int | None = _UNSET,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers attention function: ``query [B, Hq, Sq, D]``, ``key``/``value`` ``[B, Hkv, Sk, D]``.

    Returns ``(out [B, Sq, Hq, D], None)``. GQA is native (K/V are not repeated); the layouts are swapped with
    views. See the module docstring for where the mask comes from.
    """
    if dropout and dropout > 0:
        raise ValueError(
            f"the flashmask attention backend does not support attention dropout (got dropout={dropout}); "
            "set the model config's attention_dropout to 0.0"
        )
    for option, what in _UNSUPPORTED.items():
        if kwargs.get(option) is not None:
            raise ValueError(f"the flashmask attention backend does not support {what}")
    if kwargs.get("output_attentions"):
        warnings.warn(
            "the flashmask attention backend does not return attention weights (output_attentions=True)",
            stacklevel=2,
        )
    is_causal = kwargs.get("is_causal")
    if is_causal is None:
        is_causal = getattr(module, "is_causal", True)
    if sliding_window is _UNSET:
        sliding_window = getattr(module, "sliding_window", None)

    q, k, v = query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)  # [B, S, H, D] views
    cp_plan = kwargs.get("context_parallel")
    if cp_plan is not None:
        return _context_parallel(cp_plan, q, k, v, attention_mask, sliding_window, scaling, kwargs), None
    mask, causal = build_mask(
        batch=q.shape[0],
        seqlen_q=q.shape[1],
        seqlen_k=k.shape[1],
        device=q.device,
        is_causal=bool(is_causal),
        attention_mask=attention_mask,
        sliding_window=sliding_window,
        startend_row_indices=kwargs.get("startend_row_indices"),
        cu_seq_lens=kwargs["cu_seq_lens_k"] if kwargs.get("cu_seq_lens_k") is not None else kwargs.get("cu_seq_lens_q"),
        position_ids=kwargs.get("position_ids"),
    )
    out = flashmask_attention(
        q, k, v, mask, causal=causal, softmax_scale=scaling, deterministic=kwargs.get("deterministic")
    )
    return out, None


def _context_parallel(cp_plan, q, k, v, attention_mask, sliding_window, scaling, kwargs) -> torch.Tensor:
    """``context_parallel=plan``: q, k, v are this rank's shards and the plan's mask is the whole mask."""
    from ..distributed import CPPlan, context_parallel_attention

    if not isinstance(cp_plan, CPPlan):
        raise TypeError(f"context_parallel must be a flashmask.distributed.CPPlan, got {type(cp_plan).__name__}")
    for option in ("startend_row_indices", "cu_seq_lens_q", "cu_seq_lens_k"):
        if kwargs.get(option) is not None:
            raise ValueError(f"with context_parallel=plan the plan's mask is the mask; do not also pass {option}=")
    if attention_mask is not None:
        raise ValueError(
            "with context_parallel=plan the plan's mask is the mask; pass attention_mask=None "
            "(fold padding into the mask given to flashmask.distributed.plan)"
        )
    if sliding_window is not None:
        raise ValueError(
            "this layer has a sliding window; with context_parallel=plan build the window into the plan's mask "
            "(flashmask.masks) and give the model a config without sliding_window"
        )
    return context_parallel_attention(q, k, v, cp_plan, kwargs.get("context_parallel_group"), softmax_scale=scaling)


# ------------------------------------------------------------------------------------------------ mask building
def build_mask(
    *,
    batch: int,
    seqlen_q: int,
    seqlen_k: int,
    device: torch.device,
    is_causal: bool,
    attention_mask: torch.Tensor | None = None,
    sliding_window: int | None = None,
    startend_row_indices: torch.Tensor | ColumnMask | None = None,
    cu_seq_lens: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor | ColumnMask | None, bool]:
    """The column mask for one attention call: ``(startend_row_indices | ColumnMask | None, causal)``.

    Reads shapes only on the host; all values stay on ``device``.
    """
    if isinstance(attention_mask, torch.Tensor) and attention_mask.dim() == 4:
        if attention_mask.dtype.is_floating_point or attention_mask.dtype == torch.bool:
            raise ValueError(
                "the flashmask attention backend does not take dense 4-D attention masks "
                f"(got {attention_mask.dtype} {tuple(attention_mask.shape)}); convert one with "
                "flashmask.ColumnMask.from_dense(mask) and pass it as startend_row_indices="
            )
        if startend_row_indices is not None:
            raise ValueError("pass the column mask either as startend_row_indices= or as attention_mask, not both")
        startend_row_indices, attention_mask = attention_mask, None
    if sliding_window is not None and (not isinstance(sliding_window, int) or sliding_window < 1):
        raise ValueError(f"sliding_window must be a positive int or None, got {sliding_window!r}")
    keep = _padding(attention_mask, batch, seqlen_k, device)
    cols = torch.arange(seqlen_k, device=device)
    window_lts = None
    if sliding_window is not None:
        # Key j leaves the window of the query at absolute position j + w; queries are the last Sq keys.
        window_lts = (cols + sliding_window - (seqlen_k - seqlen_q)).clamp(0, seqlen_q)

    if startend_row_indices is not None:
        return _explicit(startend_row_indices, is_causal, keep, window_lts, seqlen_q, device)

    starts = ends = None
    if cu_seq_lens is not None:
        if seqlen_q != seqlen_k:
            raise ValueError(
                f"cu_seq_lens_q/k need as many queries as keys (no cache); got Sq={seqlen_q}, Sk={seqlen_k}"
            )
        starts, ends = _documents_from_cu_seq_lens(cu_seq_lens, batch, seqlen_k, device)
    elif (
        isinstance(position_ids, torch.Tensor)
        and position_ids.dim() == 2
        and seqlen_q == seqlen_k
        and position_ids.shape[-1] == seqlen_k
        and position_ids.shape[0] in (1, batch)
    ):
        starts, ends = _documents_from_position_ids(position_ids.to(device), seqlen_k)
    if ends is None and window_lts is None and keep is None:
        return None, is_causal

    lts = ends if ends is not None else torch.full((1, seqlen_k), seqlen_q, device=device, dtype=torch.int64)
    if is_causal:
        if window_lts is not None:
            lts = torch.minimum(lts, window_lts)
        if keep is not None:
            lts = torch.where(keep, lts, 0)
        bounds = lts.unsqueeze(-1)
    else:
        if window_lts is not None:
            raise ValueError("the flashmask attention backend does not support sliding windows in non-causal layers")
        if keep is not None:
            lts = torch.where(keep, lts, 0)
        ute = starts if starts is not None else torch.zeros_like(lts)
        lts, ute = torch.broadcast_tensors(lts, ute)
        bounds = torch.stack([lts, ute], dim=-1)
    return bounds.to(torch.int32).unsqueeze(1), is_causal  # [B | 1, 1, Sk, C]


def _padding(attention_mask: torch.Tensor | None, batch: int, seqlen_k: int, device) -> torch.Tensor | None:
    """The 2-D padding mask as bool ``[B | 1, Sk]`` (True = real token), or ``None``."""
    if attention_mask is None:
        return None
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.dim() != 2:
        raise ValueError(
            "the flashmask attention backend expects attention_mask to be None or a 2-D [B, S] padding mask, got "
            f"{type(attention_mask).__name__} {tuple(getattr(attention_mask, 'shape', ()))}"
        )
    if attention_mask.shape[-1] < seqlen_k or attention_mask.shape[0] not in (1, batch):
        raise ValueError(
            f"attention_mask {tuple(attention_mask.shape)} does not cover batch {batch} and {seqlen_k} keys"
        )
    keep = attention_mask[:, -seqlen_k:].to(device)
    return keep if keep.dtype == torch.bool else keep != 0


def _documents_from_cu_seq_lens(cu: torch.Tensor, batch: int, seqlen: int, device) -> tuple[torch.Tensor, ...]:
    """Per-token document ``[start, end)`` in row coordinates, ``[B, S]`` int64, from cumulative lengths.

    ``cu`` indexes the ``B * S`` flattened tokens. Tokens past ``cu[-1]`` form one trailing document; a document
    running over a row boundary is cut there.
    """
    cu = cu.to(device=device, dtype=torch.int64).reshape(-1)
    total = batch * seqlen
    tokens = torch.arange(total, device=device)
    doc = torch.searchsorted(cu[1:].contiguous(), tokens, right=True)  # index of the document holding each token
    start = torch.minimum(cu[doc], tokens)
    end = torch.cat([cu[1:], cu.new_full((1,), total)])[doc]
    row_base = tokens - tokens % seqlen
    start = (start - row_base).clamp(0, seqlen).view(batch, seqlen)
    end = (end - row_base).clamp(0, seqlen).view(batch, seqlen)
    return start, end


def _documents_from_position_ids(position_ids: torch.Tensor, seqlen: int) -> tuple[torch.Tensor, ...]:
    """Per-token document ``[start, end)``, ``[B | 1, S]`` int64: a document starts where ``position_ids == 0``."""
    is_start = position_ids == 0
    idx = torch.arange(seqlen, device=position_ids.device).expand_as(position_ids)
    start = torch.where(is_start, idx, 0).cummax(dim=-1).values
    # The end of the document holding token t is the first start after t: a reverse cumulative minimum.
    next_start = torch.where(is_start, idx, seqlen)[:, 1:]
    next_start = torch.cat([next_start, next_start.new_full((next_start.shape[0], 1), seqlen)], dim=-1)
    end = next_start.flip(-1).cummin(dim=-1).values.flip(-1)
    return start, end


def _explicit(
    mask: torch.Tensor | ColumnMask,
    is_causal: bool,
    keep: torch.Tensor | None,
    window_lts: torch.Tensor | None,
    seqlen_q: int,
    device,
) -> tuple[torch.Tensor | ColumnMask, bool]:
    """An explicit column mask, with padding (every form) and a causal ``C = 1`` window folded in."""
    if isinstance(mask, ColumnMask):
        indices, causal = mask.startend_row_indices, mask.causal
    elif isinstance(mask, torch.Tensor):
        indices, causal = mask, is_causal
    else:
        raise TypeError(
            "startend_row_indices must be an int32 tensor [B, Hm, Sk, C] or a flashmask.ColumnMask, "
            f"got {type(mask).__name__}"
        )
    if keep is None and window_lts is None:
        return mask, causal
    if indices.dim() != 4:
        raise ValueError(f"startend_row_indices must have 4 dimensions [B, Hm, Sk, C], got {tuple(indices.shape)}")
    num_bounds = indices.shape[-1]
    bounds = list(indices.to(device=device, dtype=torch.int64).unbind(-1))
    if window_lts is not None:
        if not (causal and num_bounds == 1):
            raise ValueError(
                "this layer has a sliding window, which can only be folded into a causal startend_row_indices "
                f"with one bound per column (got causal={causal}, C={num_bounds}); build the window into the mask"
            )
        bounds[0] = torch.minimum(bounds[0], window_lts)
    if keep is not None:
        pad = ~keep[:, None, :]  # [B | 1, 1, Sk]
        # Padded keys: the first hidden interval becomes [0, Sq) (non-causal [LTS, UTE] already ends at Sq).
        bounds[0] = torch.where(pad, 0, bounds[0])
        if num_bounds == 4 or (causal and num_bounds == 2):
            bounds[1] = torch.where(pad, seqlen_q, bounds[1])
    return torch.stack(torch.broadcast_tensors(*bounds), dim=-1).to(torch.int32), causal
