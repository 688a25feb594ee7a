"""Context-parallel training of a transformers Llama model on one long packed sequence.

One row of ``--seqlen`` tokens (documents packed with a causal-document mask) is sharded over the ranks by a
:func:`flashmask.distributed.plan`; every rank runs the whole model on its tokens, and each attention layer
goes through :func:`flashmask.distributed.context_parallel_attention` (``context_parallel=plan`` reaches the
``colmask`` attention backend as a model keyword). Per-token layers (embeddings, MLPs, norms, the LM head)
need nothing: RoPE reads the shard's own ``position_ids``. Gradients are averaged by plain DDP; the
attention's K/V exchange uses a process group of its own so that it never interleaves with DDP's
all-reduces.

    python examples/context_parallel_llama.py --world-size 2                   # CPU, gloo, tiny model
    python examples/context_parallel_llama.py --world-size 2 --device cuda \\
        --seqlen 65536 --layers 4 --hidden 1024 --heads 16 --kv-heads 4        # NCCL, bf16, GPUs 0 and 1

``--world-size 1`` runs the same data without context parallelism (the mask as ``startend_row_indices``):
the losses of the two runs agree (exactly up to rounding in float32 on CPU).
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import socket
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from flashmask import distributed as fmd
from flashmask import packing
from flashmask.integrations.transformers import register


def packed_row(seqlen: int, vocab: int, seed: int, median: int = 600) -> packing.PackedBatch:
    """One row of ``seqlen`` tokens: random documents with lognormal lengths (median ``median``) packed back
    to back; the last document is cut to fit."""
    g = torch.Generator().manual_seed(seed)
    docs, total = [], 0
    while total < seqlen:
        n = int(math.exp(math.log(median) + torch.randn(1, generator=g).item()))
        n = max(16, min(n, seqlen - total))
        docs.append(torch.randint(1, vocab, (n,), generator=g).tolist())
        total += n
    return packing.pack_sft(docs, seqlen)


def next_token_labels(labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Shift the Hugging Face labels once, globally: position ``t`` is scored against token ``t + 1``.

    The model cannot shift them itself under context parallelism (a rank's tokens are not contiguous)."""
    shifted = torch.full_like(labels, ignore_index)
    shifted[:, :-1] = labels[:, 1:]
    return shifted


def _config(args):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=int(args.hidden * 8 / 3) // 64 * 64 or 64,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=max(args.seqlen, 2048),
        attention_dropout=0.0,
        use_cache=False,
        tie_word_embeddings=False,
    )


def train(rank: int, args, port: int, results) -> None:
    """One rank: ``args.steps`` optimizer steps; rank 0 puts ``{"losses", "seconds", "peak_gib"}`` in
    ``results``."""
    from torch.nn.parallel import DistributedDataParallel as DDP
    from transformers import LlamaForCausalLM

    world = args.world_size
    cuda = args.device == "cuda"
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    if cuda:
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // world))
    if world > 1:
        dist.init_process_group(
            "nccl" if cuda else "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
        )
    try:
        register()
        torch.manual_seed(args.seed)
        with torch.device(device):
            model = LlamaForCausalLM(_config(args)).to(dtype)
        model.set_attn_implementation("colmask")
        if args.checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)

        batch = packed_row(args.seqlen, args.vocab, args.seed)
        labels = next_token_labels(batch.labels)
        valid = int((labels != -100).sum())
        mask = batch.mask.to(device)
        if world > 1:
            cp_group = dist.new_group(list(range(world)))  # the K/V exchange's own communicator
            plan = fmd.plan(mask, world, chunk_size=args.chunk_size)
            inputs = {
                "input_ids": plan.shard(batch.input_ids, 1, rank).to(device),
                "position_ids": plan.shard(batch.position_ids, 1, rank).to(device),
                "context_parallel": plan,
                "context_parallel_group": cp_group,
            }
            labels = plan.shard(labels, 1, rank).to(device)
            net = DDP(model, device_ids=[rank] if cuda else None)
        else:
            inputs = {
                "input_ids": batch.input_ids.to(device),
                "position_ids": batch.position_ids.to(device),
                "startend_row_indices": mask,
            }
            labels = labels.to(device)
            net = model

        losses, seconds = [], []
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        for _ in range(args.steps):
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            logits = net(**inputs).logits
            loss_sum = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), reduction="sum")
            del logits
            # DDP averages gradients over ranks; the loss of the whole row is the sum over ranks.
            (loss_sum * (world / valid)).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            total = loss_sum.detach()
            if world > 1:
                dist.all_reduce(total)
            losses.append(total.item() / valid)
            if cuda:
                torch.cuda.synchronize(device)
            seconds.append(time.perf_counter() - start)
        if rank == 0:
            peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
            results.put({"losses": losses, "seconds": seconds, "peak_gib": peak})
        del net  # DDP's reducer must go before its process group
    finally:
        if world > 1:
            dist.barrier()
            gc.collect()  # what still holds the process group goes first (else an abort at exit, now and then)
            dist.destroy_process_group()


def run(args) -> dict:
    """Spawn ``args.world_size`` ranks (one process when 1) and return rank 0's results."""
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    if args.world_size == 1:
        train(0, args, 0, results)
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        mp.spawn(train, args=(args, port, results), nprocs=args.world_size, join=True)
    return results.get()


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world-size", type=int, default=2)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--seqlen", type=int, default=2048)
    ap.add_argument("--chunk-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-checkpointing", dest="checkpointing", action="store_false")
    return ap


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    result = run(args)
    peak = f", peak {result['peak_gib']:.1f} GiB on rank 0" if result["peak_gib"] is not None else ""
    steps = ", ".join(f"{loss:.5f}" for loss in result["losses"])
    last = result["seconds"][-1]
    print(f"world_size={args.world_size} seqlen={args.seqlen}: losses {steps}; last step {last:.2f} s{peak}")
    return result


if __name__ == "__main__":
    main()
