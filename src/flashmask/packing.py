"""Packing variable-length training examples into fixed-length rows with a FlashMask mask.

Two layouts, each with a collator that returns model inputs as a plain ``dict`` of tensors:

* **SFT / pre-training** (:func:`pack_sft`, :class:`FlashMaskCollator`): whole documents concatenated into
  rows of ``seqlen`` tokens by best-fit decreasing bin packing, padding at the end of each row, a
  :func:`flashmask.masks.causal_document` mask so that no token attends across documents, ``position_ids``
  restarting at 0 in every document, and labels that never train one document to predict the next.
* **Shared prompt** (:func:`pack_shared_prompt`, :class:`SharedPromptCollator`) for DPO, reward modelling and
  GRPO: one prompt followed by several completions, ``[prompt | completion 1 | ... | completion k]``, with a
  :func:`flashmask.masks.share_question` mask (every completion sees its prompt and itself, never another
  completion), so the prompt is encoded once instead of once per completion. The completions' position ids
  all continue from the end of the prompt, and :func:`gather_completion_logps` reads each completion's
  per-token log-probabilities from the packed logits. The result equals running ``prompt + completion``
  separately for each completion.

Everything here is plain Python and torch (no TRL or transformers import). Packing is deterministic: equal
inputs give equal outputs.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from . import masks
from ._column_mask import ColumnMask

__all__ = [
    "FlashMaskCollator",
    "PackedBatch",
    "SharedPromptBatch",
    "SharedPromptCollator",
    "best_fit_decreasing",
    "completion_logps_sum",
    "gather_completion_logps",
    "pack_sft",
    "pack_shared_prompt",
]

DeviceLike = torch.device | str | None
TokenIds = Sequence[int] | torch.Tensor


# ============================================================================================ helpers
def _check_positive_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value


def _check_token_id(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    return value


def _as_ids(value: Any, where: str, allow_empty: bool = False) -> torch.Tensor:
    """A 1-D int64 CPU tensor from a list of ints, a 1-D integer tensor or a 1-D integer numpy array."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{where} must be a list of token ids or a 1-D integer tensor, got a string")
    try:
        t = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{where} must be a list of token ids or a 1-D integer tensor, got {value!r}") from err
    if t.dim() != 1:
        raise ValueError(f"{where} must be 1-D, got shape {tuple(t.shape)}")
    if t.numel() == 0:
        if allow_empty:
            return torch.zeros(0, dtype=torch.int64)
        raise ValueError(f"{where} is empty; every sequence needs at least one token")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"{where} must hold integer token ids, got dtype {t.dtype}")
    return t.detach().to(device="cpu", dtype=torch.int64)


def best_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Bin-pack items of the given lengths into bins of ``capacity`` by best-fit decreasing.

    Items are taken longest first (ties: lower index first); each goes into the open bin with the least room
    that still fits it (ties: the bin opened first), or into a new bin. Deterministic.

    Args:
        lengths: item sizes, each in ``[1, capacity]``.
        capacity: bin size.

    Returns:
        one list of item indices per bin, each in increasing index order; bins in the order they were opened.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # sorted (room left, bin index)
    for i in order:
        n = lengths[i]
        if n > capacity:
            raise ValueError(f"item {i} has length {n} > capacity {capacity}")
        k = bisect.bisect_left(free, (n, -1))
        if k < len(free):
            room, b = free.pop(k)
        else:
            room, b = capacity, len(bins)
            bins.append([])
        bins[b].append(i)
        if room - n > 0:
            bisect.insort(free, (room - n, b))
    return [sorted(b) for b in bins]


def _positions(seg_lens: list[int], total: int) -> torch.Tensor:
    """``0, 1, ..., n - 1`` for every segment length ``n``: int64 ``[total]``."""
    lens = torch.tensor(seg_lens, dtype=torch.int64)
    starts = torch.cumsum(lens, 0) - lens
    return torch.arange(total, dtype=torch.int64) - torch.repeat_interleave(starts, lens, output_size=total)


class _PackedRows:
    """What every packed batch derives from its ``input_ids [R, S]`` and its ``mask``."""

    input_ids: torch.Tensor
    mask: ColumnMask

    @property
    def num_rows(self) -> int:
        return self.input_ids.shape[0]

    @property
    def seqlen(self) -> int:
        return self.input_ids.shape[1]

    @property
    def startend_row_indices(self) -> torch.Tensor:
        """The mask's int32 ``[R, 1, S, 1]`` tensor (causal ``[LTS]`` form)."""
        return self.mask.startend_row_indices


# ============================================================================================ SFT packing
@dataclass
class PackedBatch(_PackedRows):
    """Documents packed into ``R`` rows of ``S`` tokens for causal-LM training (output of :func:`pack_sft`).

    Attributes:
        input_ids: int64 ``[R, S]``: the documents of each row back to back, then ``pad_token_id``.
        labels: int64 ``[R, S]``: a copy of ``input_ids`` (or the given labels) in the Hugging Face convention
            (the model shifts them), with ``ignore_index`` on padding and on the first token of every document.
        position_ids: int64 ``[R, S]``: ``0, 1, ...`` restarting at every document; the trailing padding
            counts ``0, 1, ...`` as one more document.
        doc_lens: per row, the document lengths in row order; the padding, when present, is the last entry.
        mask: causal-document :class:`~flashmask.ColumnMask` ``[R, 1, S, 1]`` built from ``doc_lens``.
        row_of: for every input sequence, the row that holds it.
        offset_of: for every input sequence, the position of its first token in that row.
        seq_lens: for every input sequence, the number of tokens packed (its length, or ``S`` if truncated).
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    position_ids: torch.Tensor
    doc_lens: list[list[int]]
    mask: ColumnMask
    row_of: list[int]
    offset_of: list[int]
    seq_lens: list[int]

    @property
    def fill_ratio(self) -> float:
        """Share of the ``R * S`` slots that hold real tokens rather than padding."""
        return sum(self.seq_lens) / max(1, self.input_ids.numel())

    def to_dict(self) -> dict[str, Any]:
        """Model inputs: ``input_ids``, ``labels``, ``position_ids``, ``startend_row_indices``, ``flashmask_causal``."""
        return {
            "input_ids": self.input_ids,
            "labels": self.labels,
            "position_ids": self.position_ids,
            "startend_row_indices": self.startend_row_indices,
            "flashmask_causal": True,
        }


def pack_sft(
    sequences: Sequence[TokenIds],
    seqlen: int,
    *,
    labels: Sequence[TokenIds] | None = None,
    pad_token_id: int = 0,
    ignore_index: int = -100,
    truncate: bool = False,
    device: DeviceLike = None,
) -> PackedBatch:
    """Pack token sequences into rows of exactly ``seqlen`` tokens for causal-LM training (SFT, pre-training).

    Sequences are placed by best-fit decreasing (:func:`best_fit_decreasing`): no sequence is split, each row
    holds its documents in input order followed by padding. Attention stays inside each document through a
    causal-document FlashMask mask; ``position_ids`` restart at 0 in every document, so RoPE sees what it
    would see for the document alone.

    **Labels.** Hugging Face causal LMs shift internally: the logits at position ``t`` are scored against
    ``labels[t + 1]``. The first token of a document sits right after the last token of the previous one, so
    its label would train the previous document to predict the next; ``labels`` is therefore
    ``ignore_index`` on the first token of every document (and on padding). No loss term crosses a document
    boundary, and each document is trained exactly as if it were alone (whose first token has no
    prediction either). This is the convention of transformers' ``DataCollatorWithFlattening``.

    Args:
        sequences: ``M`` token-id sequences: lists of ints or 1-D integer tensors, each non-empty.
        seqlen: row length ``S``.
        labels: optional per-sequence labels, same lengths as ``sequences`` (e.g. ``ignore_index`` on prompt
            tokens for completion-only loss); defaults to a copy of the token ids. First tokens and padding
            are set to ``ignore_index`` either way.
        pad_token_id: token id written into padding.
        ignore_index: label value the loss ignores.
        truncate: keep only the first ``seqlen`` tokens of longer sequences instead of raising.
        device: where the tensors and the mask are built (default: CPU).

    Returns:
        :class:`PackedBatch` with ``R`` rows, ``ceil(total / S) <= R``.

    Raises:
        ValueError: a sequence is empty, or longer than ``seqlen`` without ``truncate`` (the message names
            its index), or labels do not match the sequences.
    """
    seqlen = _check_positive_int("seqlen", seqlen)
    pad_token_id = _check_token_id("pad_token_id", pad_token_id)
    ignore_index = _check_token_id("ignore_index", ignore_index)
    if isinstance(sequences, (str, bytes, torch.Tensor)) or not isinstance(sequences, Sequence):
        raise TypeError("sequences must be a list of token-id lists or 1-D tensors")
    if len(sequences) == 0:
        raise ValueError("sequences is empty; nothing to pack")
    ids = [_as_ids(s, f"sequences[{i}]") for i, s in enumerate(sequences)]
    if labels is not None:
        if isinstance(labels, (str, bytes, torch.Tensor)) or not isinstance(labels, Sequence):
            raise TypeError("labels must be a list with one label sequence per input sequence")
        if len(labels) != len(ids):
            raise ValueError(f"labels has {len(labels)} entries for {len(ids)} sequences")
        labs = [_as_ids(lab, f"labels[{i}]") for i, lab in enumerate(labels)]
        for i, (t, lab) in enumerate(zip(ids, labs, strict=True)):
            if lab.numel() != t.numel():
                raise ValueError(f"labels[{i}] has {lab.numel()} entries but sequences[{i}] has {t.numel()} tokens")
    else:
        labs = [t.clone() for t in ids]
    for i, t in enumerate(ids):
        if t.numel() > seqlen:
            if not truncate:
                raise ValueError(
                    f"sequences[{i}] has {t.numel()} tokens, more than seqlen={seqlen}; pass truncate=True to "
                    "keep its first seqlen tokens"
                )
            ids[i], labs[i] = t[:seqlen], labs[i][:seqlen]
    lens = [t.numel() for t in ids]
    bins = best_fit_decreasing(lens, seqlen)

    row_of = [0] * len(ids)
    offset_of = [0] * len(ids)
    doc_lens: list[list[int]] = []
    id_rows, label_rows, pos_rows = [], [], []
    for r, members in enumerate(bins):
        parts, lab_parts, row_lens, pos = [], [], [], 0
        for i in members:
            row_of[i], offset_of[i] = r, pos
            lab = labs[i].clone()
            lab[0] = ignore_index
            parts.append(ids[i])
            lab_parts.append(lab)
            row_lens.append(lens[i])
            pos += lens[i]
        if pos < seqlen:
            parts.append(torch.full((seqlen - pos,), pad_token_id, dtype=torch.int64))
            lab_parts.append(torch.full((seqlen - pos,), ignore_index, dtype=torch.int64))
            row_lens.append(seqlen - pos)
        id_rows.append(torch.cat(parts))
        label_rows.append(torch.cat(lab_parts))
        pos_rows.append(_positions(row_lens, seqlen))
        doc_lens.append(row_lens)
    return PackedBatch(
        input_ids=torch.stack(id_rows).to(device),
        labels=torch.stack(label_rows).to(device),
        position_ids=torch.stack(pos_rows).to(device),
        doc_lens=doc_lens,
        mask=masks.causal_document(doc_lens, device=device),
        row_of=row_of,
        offset_of=offset_of,
        seq_lens=lens,
    )


# ============================================================================================ shared prompt
@dataclass
class SharedPromptBatch(_PackedRows):
    """Samples ``(prompt, [completion, ...])`` packed into ``R`` rows of ``S`` tokens (:func:`pack_shared_prompt`).

    ``N`` is the number of completions over all samples, flattened in input order (sample 0's completions,
    then sample 1's, ...); ``L`` is the longest completion.

    Attributes:
        input_ids: int64 ``[R, S]``: per sample ``[prompt | completion 1 | ... | completion k]``, samples of a
            row in input order, then ``pad_token_id``.
        position_ids: int64 ``[R, S]``: ``0 .. P-1`` on a prompt of ``P`` tokens and ``P, P+1, ...`` on each
            of its completions (the positions they would have after the prompt alone); padding ``0, 1, ...``.
        layout: per row, the ``(prompt_len, [completion_len, ...])`` of its samples; the padding, when present,
            is a last entry ``(pad_len, [])``. This is the argument of :func:`flashmask.masks.share_question`.
        mask: share-question :class:`~flashmask.ColumnMask` ``[R, 1, S, 1]`` built from ``layout``.
        row_of: for every sample, its row.
        offset_of: for every sample, the position of its first prompt token in that row.
        completion_sample: int64 ``[N]``: the sample each completion belongs to.
        completion_row: int64 ``[N]``: the row holding each completion.
        completion_start: int64 ``[N]``: position of each completion's first token.
        completion_lens: int64 ``[N]``: number of tokens of each completion.
        completion_index: int64 ``[N, L]``: the positions whose logits predict each completion token. Token
            ``t`` is predicted by the logits at ``t - 1``, except the first token of every completion, which is
            predicted by the last prompt token (``offset + P - 1``), not by the preceding completion. Entries
            past a completion's length are 0.
        completion_targets: int64 ``[N, L]``: the completion tokens (0 past a completion's length).
        completion_mask: bool ``[N, L]``: True on real completion tokens.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    layout: list[list[tuple[int, list[int]]]]
    mask: ColumnMask
    row_of: list[int]
    offset_of: list[int]
    completion_sample: torch.Tensor
    completion_row: torch.Tensor
    completion_start: torch.Tensor
    completion_lens: torch.Tensor
    completion_index: torch.Tensor
    completion_targets: torch.Tensor
    completion_mask: torch.Tensor

    @property
    def num_completions(self) -> int:
        return self.completion_lens.shape[0]

    @property
    def completion_last(self) -> torch.Tensor:
        """int64 ``[N]``: position of each completion's last token (where a reward head reads its score)."""
        return self.completion_start + self.completion_lens - 1

    def to_dict(self) -> dict[str, Any]:
        """Model inputs plus the completion index tensors (the keys :func:`gather_completion_logps` reads)."""
        out: dict[str, Any] = {
            "input_ids": self.input_ids,
            "position_ids": self.position_ids,
            "startend_row_indices": self.startend_row_indices,
            "flashmask_causal": True,
        }
        for name in _COMPLETION_KEYS:
            out[name] = getattr(self, name)
        return out


_COMPLETION_KEYS = (
    "completion_sample",
    "completion_row",
    "completion_start",
    "completion_lens",
    "completion_index",
    "completion_targets",
    "completion_mask",
)


def _check_samples(samples: Any) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
    if isinstance(samples, (str, bytes, torch.Tensor)) or not isinstance(samples, Sequence):
        raise TypeError("samples must be a list of (prompt_ids, [completion_ids, ...]) pairs")
    if len(samples) == 0:
        raise ValueError("samples is empty; nothing to pack")
    out = []
    for s, sample in enumerate(samples):
        if not isinstance(sample, Sequence) or isinstance(sample, (str, bytes)) or len(sample) != 2:
            raise TypeError(f"samples[{s}] must be a pair (prompt_ids, [completion_ids, ...]), got {sample!r}")
        prompt, completions = sample
        if isinstance(completions, (str, bytes, torch.Tensor)) or not isinstance(completions, Sequence):
            raise TypeError(f"samples[{s}][1] must be a list of completions (token-id lists or 1-D tensors)")
        p = _as_ids(prompt, f"samples[{s}] prompt")
        cs = [_as_ids(c, f"samples[{s}] completion {k}") for k, c in enumerate(completions)]
        out.append((p, cs))
    return out


def pack_shared_prompt(
    samples: Sequence[tuple[TokenIds, Sequence[TokenIds]]],
    seqlen: int,
    *,
    pad_token_id: int = 0,
    device: DeviceLike = None,
) -> SharedPromptBatch:
    """Pack ``(prompt, [completion, ...])`` samples so that the prompt is encoded once for all completions.

    Layout of a sample: ``[prompt | completion 1 | ... | completion k]``; samples are placed into rows of
    ``seqlen`` by best-fit decreasing on their total length, in input order within a row, padding at the end.
    The :func:`flashmask.masks.share_question` mask lets each completion attend to its prompt and causally to
    itself, and nothing across completions or samples. Position ids of every completion continue from the end
    of the prompt, so with RoPE (or absolute positions) each completion is computed exactly as in the
    unshared ``prompt + completion`` sequence. Use :func:`gather_completion_logps` /
    :func:`completion_logps_sum` on the model's logits (DPO/GRPO), or ``completion_last`` for the position of
    each completion's final token (reward models).

    Args:
        samples: ``[(prompt_ids, [completion_ids, ...]), ...]``; ids are lists of ints or 1-D integer tensors;
            prompts and completions are non-empty (a sample may have no completions).
        seqlen: row length ``S``; every sample must fit (``len(prompt) + sum(len(completion)) <= S``).
        pad_token_id: token id written into padding.
        device: where the tensors and the mask are built (default: CPU).

    Returns:
        :class:`SharedPromptBatch`.

    Raises:
        ValueError: an empty prompt or completion, or a sample longer than ``seqlen`` (named by index).
    """
    seqlen = _check_positive_int("seqlen", seqlen)
    pad_token_id = _check_token_id("pad_token_id", pad_token_id)
    checked = _check_samples(samples)
    totals = [p.numel() + sum(c.numel() for c in cs) for p, cs in checked]
    for s, n in enumerate(totals):
        if n > seqlen:
            raise ValueError(
                f"samples[{s}] has {n} tokens (prompt plus all completions), more than seqlen={seqlen}; a shared-"
                "prompt sample cannot be split across rows"
            )
    bins = best_fit_decreasing(totals, seqlen)

    row_of = [0] * len(checked)
    offset_of = [0] * len(checked)
    # Per completion, in sample order: (row, start, length, last prompt position, tokens).
    comp_info: list[list[tuple[int, int, int, int, torch.Tensor]]] = [[] for _ in checked]
    layout: list[list[tuple[int, list[int]]]] = []
    id_rows, pos_rows = [], []
    for r, members in enumerate(bins):
        parts, positions, row_layout, pos = [], [], [], 0
        for s in members:
            prompt, completions = checked[s]
            p = prompt.numel()
            row_of[s], offset_of[s] = r, pos
            parts.append(prompt)
            positions.append(torch.arange(p, dtype=torch.int64))
            last_prompt = pos + p - 1
            pos += p
            for c in completions:
                n = c.numel()
                comp_info[s].append((r, pos, n, last_prompt, c))
                parts.append(c)
                positions.append(torch.arange(p, p + n, dtype=torch.int64))
                pos += n
            row_layout.append((p, [c.numel() for c in completions]))
        if pos < seqlen:
            parts.append(torch.full((seqlen - pos,), pad_token_id, dtype=torch.int64))
            positions.append(torch.arange(seqlen - pos, dtype=torch.int64))
            row_layout.append((seqlen - pos, []))
        id_rows.append(torch.cat(parts))
        pos_rows.append(torch.cat(positions))
        layout.append(row_layout)

    flat = [(s, *info) for s, infos in enumerate(comp_info) for info in infos]
    num = len(flat)
    max_len = max((f[3] for f in flat), default=0)
    index = torch.zeros(num, max_len, dtype=torch.int64)
    targets = torch.zeros(num, max_len, dtype=torch.int64)
    cmask = torch.zeros(num, max_len, dtype=torch.bool)
    for c, (_, _, start, n, last_prompt, tokens) in enumerate(flat):
        index[c, 0] = last_prompt
        index[c, 1:n] = torch.arange(start, start + n - 1, dtype=torch.int64)
        targets[c, :n] = tokens
        cmask[c, :n] = True

    def ints(values: list[int]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.int64, device=device)

    return SharedPromptBatch(
        input_ids=torch.stack(id_rows).to(device),
        position_ids=torch.stack(pos_rows).to(device),
        layout=layout,
        mask=masks.share_question(layout, device=device),
        row_of=row_of,
        offset_of=offset_of,
        completion_sample=ints([f[0] for f in flat]),
        completion_row=ints([f[1] for f in flat]),
        completion_start=ints([f[2] for f in flat]),
        completion_lens=ints([f[3] for f in flat]),
        completion_index=index.to(device),
        completion_targets=targets.to(device),
        completion_mask=cmask.to(device),
    )


_GATHER_KEYS = ("completion_row", "completion_index", "completion_targets", "completion_mask")


def _completion_tensors(batch: SharedPromptBatch | Mapping[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    """The index tensors :func:`gather_completion_logps` reads, moved to ``device``."""
    if isinstance(batch, SharedPromptBatch):
        return {k: getattr(batch, k).to(device) for k in _GATHER_KEYS}
    if isinstance(batch, Mapping):
        missing = [k for k in _GATHER_KEYS if k not in batch]
        if missing:
            raise KeyError(f"batch lacks the completion index tensors {missing} (see SharedPromptBatch)")
        return {k: batch[k].to(device) for k in _GATHER_KEYS}
    raise TypeError(
        f"batch must be a SharedPromptBatch or a dict from SharedPromptCollator, got {type(batch).__name__}"
    )


def gather_completion_logps(logits: torch.Tensor, batch: SharedPromptBatch | Mapping[str, Any]) -> torch.Tensor:
    """Per-token log-probabilities of every completion, read from the packed logits.

    Completion token at position ``t`` is scored with the logits at ``t - 1``; the first token of every
    completion is scored with the logits of the last prompt token (``batch.completion_index``), which is what
    the unshared ``prompt + completion`` sequence does. Only the completion positions are normalised
    (``log_softmax`` over the vocabulary on ``sum(completion_lens)`` positions, not on all ``R * S``).

    Args:
        logits: ``[R, S, V]`` model output for ``batch.input_ids``, any float dtype; differentiable.
        batch: a :class:`SharedPromptBatch` or a dict from :class:`SharedPromptCollator`.

    Returns:
        ``[N, L]`` log-probabilities, float32 (float64 if ``logits`` is float64), 0 past each completion's
        length (``batch.completion_lens`` / ``completion_mask``).
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() != 3:
        raise ValueError(f"logits must be a [R, S, V] tensor, got {getattr(logits, 'shape', type(logits))}")
    idx = _completion_tensors(batch, logits.device)
    valid = idx["completion_mask"]
    rows = idx["completion_row"].unsqueeze(1).expand_as(valid)[valid]
    pos = idx["completion_index"][valid]
    tok = idx["completion_targets"][valid]
    dtype = torch.promote_types(logits.dtype, torch.float32)
    picked = logits[rows, pos].to(dtype)  # [T, V], T = number of completion tokens
    logp = picked.log_softmax(-1).gather(-1, tok.unsqueeze(-1)).squeeze(-1)
    out = torch.zeros(valid.shape, dtype=dtype, device=logits.device)
    return out.masked_scatter(valid, logp)


def completion_logps_sum(
    logits: torch.Tensor, batch: SharedPromptBatch | Mapping[str, Any], *, average: bool = False
) -> torch.Tensor:
    """Log-probability of every completion given its prompt: ``[N]`` (the sum over its tokens, or the mean
    with ``average=True`` as in IPO / SimPO). Same arguments as :func:`gather_completion_logps`."""
    logps = gather_completion_logps(logits, batch)
    total = logps.sum(-1)
    if average:
        lens = (batch.completion_lens if isinstance(batch, SharedPromptBatch) else batch["completion_lens"]).to(
            total.device
        )
        total = total / lens.clamp_min(1).to(total.dtype)
    return total


# ============================================================================================ collators
def _row_length(total: int, seqlen: int | None, pad_to_multiple_of: int | None) -> int:
    if seqlen is not None:
        return seqlen
    if pad_to_multiple_of is not None:
        return math.ceil(total / pad_to_multiple_of) * pad_to_multiple_of
    return total


def _check_collator_args(seqlen: int | None, pad_to_multiple_of: int | None) -> None:
    if seqlen is not None:
        _check_positive_int("seqlen", seqlen)
    if pad_to_multiple_of is not None:
        _check_positive_int("pad_to_multiple_of", pad_to_multiple_of)


class FlashMaskCollator:
    """Collate tokenised SFT examples into a packed FlashMask batch (usable as a TRL / HF ``data_collator``).

    Each feature is a dict with ``input_ids`` and optionally ``labels`` (same length), and optionally a 0/1
    ``completion_mask`` or ``assistant_masks`` (TRL's completion-only / assistant-only loss: labels are
    ``ignore_index`` where it is 0). Other keys are ignored.

    Args:
        seqlen: row length; ``None`` packs the whole batch into a single row of the total length (rounded up
            to ``pad_to_multiple_of``), as padding-free collators do.
        pad_token_id, ignore_index, truncate: as in :func:`pack_sft`.
        pad_to_multiple_of: with ``seqlen=None``, round the single row's length up to a multiple of this.

    Returns (on call):
        ``{"input_ids", "labels", "position_ids"}`` int64 ``[R, S]``, ``"startend_row_indices"`` int32
        ``[R, 1, S, 1]`` (causal-document mask) and ``"flashmask_causal": True``.
    """

    def __init__(
        self,
        seqlen: int | None = None,
        *,
        pad_token_id: int = 0,
        ignore_index: int = -100,
        truncate: bool = False,
        pad_to_multiple_of: int | None = None,
    ) -> None:
        _check_collator_args(seqlen, pad_to_multiple_of)
        self.seqlen = seqlen
        self.pad_token_id = _check_token_id("pad_token_id", pad_token_id)
        self.ignore_index = _check_token_id("ignore_index", ignore_index)
        self.truncate = truncate
        self.pad_to_multiple_of = pad_to_multiple_of

    def pack(self, features: Sequence[Mapping[str, Any]]) -> PackedBatch:
        """The :class:`PackedBatch` behind :meth:`__call__`."""
        if len(features) == 0:
            raise ValueError("no features to collate")
        ids, labels = [], []
        for i, f in enumerate(features):
            if "input_ids" not in f:
                raise KeyError(f"features[{i}] has no 'input_ids' (keys: {sorted(f)})")
            t = _as_ids(f["input_ids"], f"features[{i}]['input_ids']")
            lab = _as_ids(f["labels"], f"features[{i}]['labels']") if f.get("labels") is not None else t.clone()
            if lab.numel() != t.numel():
                raise ValueError(f"features[{i}] has {lab.numel()} labels for {t.numel()} input_ids")
            for key in ("completion_mask", "assistant_masks"):
                if f.get(key) is not None:
                    keep = _as_ids(f[key], f"features[{i}]['{key}']")
                    if keep.numel() != t.numel():
                        raise ValueError(f"features[{i}]['{key}'] has {keep.numel()} entries for {t.numel()} tokens")
                    lab = lab.masked_fill(keep == 0, self.ignore_index)
            ids.append(t)
            labels.append(lab)
        seqlen = _row_length(sum(t.numel() for t in ids), self.seqlen, self.pad_to_multiple_of)
        return pack_sft(
            ids,
            seqlen,
            labels=labels,
            pad_token_id=self.pad_token_id,
            ignore_index=self.ignore_index,
            truncate=self.truncate,
        )

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return self.pack(features).to_dict()


class SharedPromptCollator:
    """Collate preference / multi-completion examples into a shared-prompt FlashMask batch.

    Each feature is a dict with ``prompt_input_ids`` and either ``completions_input_ids`` (a list of
    completions, e.g. a GRPO group) or TRL's DPO keys ``chosen_input_ids`` and ``rejected_input_ids`` (the
    sample then has two completions, chosen first, rejected second: ``completion_sample`` pairs them, chosen
    at even and rejected at odd completion indices).

    Args:
        seqlen: row length; ``None`` packs the whole batch into one row of the total length (rounded up to
            ``pad_to_multiple_of``).
        pad_token_id: token id written into padding.
        pad_to_multiple_of: with ``seqlen=None``, round the single row's length up to a multiple of this.

    Returns (on call):
        ``input_ids`` / ``position_ids`` int64 ``[R, S]``, ``startend_row_indices`` int32 ``[R, 1, S, 1]``,
        ``flashmask_causal`` True, and the completion index tensors of :class:`SharedPromptBatch`
        (``completion_sample``, ``completion_row``, ``completion_start``, ``completion_lens`` ``[N]``;
        ``completion_index``, ``completion_targets``, ``completion_mask`` ``[N, L]``), which is what
        :func:`gather_completion_logps` needs.
    """

    def __init__(
        self, seqlen: int | None = None, *, pad_token_id: int = 0, pad_to_multiple_of: int | None = None
    ) -> None:
        _check_collator_args(seqlen, pad_to_multiple_of)
        self.seqlen = seqlen
        self.pad_token_id = _check_token_id("pad_token_id", pad_token_id)
        self.pad_to_multiple_of = pad_to_multiple_of

    @staticmethod
    def sample_of(feature: Mapping[str, Any], i: int = 0) -> tuple[Any, list[Any]]:
        """The ``(prompt_ids, [completion_ids, ...])`` sample of one feature dict."""
        if "prompt_input_ids" not in feature:
            raise KeyError(f"features[{i}] has no 'prompt_input_ids' (keys: {sorted(feature)})")
        if feature.get("completions_input_ids") is not None:
            return feature["prompt_input_ids"], list(feature["completions_input_ids"])
        if "chosen_input_ids" in feature and "rejected_input_ids" in feature:
            return feature["prompt_input_ids"], [feature["chosen_input_ids"], feature["rejected_input_ids"]]
        raise KeyError(
            f"features[{i}] needs 'completions_input_ids' or both 'chosen_input_ids' and 'rejected_input_ids' "
            f"(keys: {sorted(feature)})"
        )

    def pack(self, features: Sequence[Mapping[str, Any]]) -> SharedPromptBatch:
        """The :class:`SharedPromptBatch` behind :meth:`__call__`."""
        if len(features) == 0:
            raise ValueError("no features to collate")
        samples = [self.sample_of(f, i) for i, f in enumerate(features)]
        checked = _check_samples(samples)
        total = sum(p.numel() + sum(c.numel() for c in cs) for p, cs in checked)
        seqlen = _row_length(total, self.seqlen, self.pad_to_multiple_of)
        return pack_shared_prompt(checked, seqlen, pad_token_id=self.pad_token_id)

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return self.pack(features).to_dict()
