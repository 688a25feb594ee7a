"""Context parallelism on the GPUs of one host: exactness, attention throughput, and training past one GPU.

    python benchmarks/cp_bench.py --out results_dir            # all three parts, 2 GPUs
    python benchmarks/cp_bench.py --parts exact,speed --out d  # a subset

Parts (each rank is one process and one GPU; NCCL):

* ``exact``: every mask type at 16K tokens (bf16, 8 query / 2 KV heads, D=128): the context-parallel output and
  gradients against the single-GPU kernel on the whole sequence, both against an fp32 reference (the PyTorch
  path on the same bf16 inputs). Passes when the context-parallel error is at most 2x the single-GPU error
  plus 1e-3, for the output and all three gradients.
* ``speed``: causal-document masks (the paper's documents: 11-15 per 128K tokens, random cuts) at 128K and
  256K tokens, 32 heads, D=128, bf16: attention forward+backward time per step under context parallelism,
  with the exchange overlapped and not, against the same tokens split at the middle and each half run on one
  GPU alone (documents cut at the middle; no exchange: the best a split could do). Ratio = single-GPU time /
  context-parallel time = per-GPU throughput of context parallelism over that of one GPU at the same per-GPU
  token count. The halves hold less attention work than the whole (the cross-half part of the document cut
  at the middle), so ``ratio_work`` compares visible query-key pairs per second per GPU as well. CUDA-event
  medians after warm-up; a step's time is the slowest rank's.
* ``train``: a ~1B-parameter Llama (transformers, ``examples/context_parallel_llama.py``; gradient
  checkpointing, bf16, AdamW) on one packed row: the row length is doubled on one GPU until it runs out of
  memory, then the first length that did not fit is trained on all GPUs with context parallelism.

Writes ``cp.json`` (and prints a table) under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from flashmask import distributed as fmd  # noqa: E402
from flashmask import flashmask_attention, masks  # noqa: E402
from flashmask.bench import workloads  # noqa: E402
from flashmask.distributed import _attention as cp_attention  # noqa: E402
from flashmask.distributed._plan import _traffic, chunk_visibility  # noqa: E402

# NVLink multicast must stay off on these hosts (see the device notes); keep it off for every child too.
for var, val in (("NCCL_NVLS_ENABLE", "0"), ("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1"), ("NVSHMEM_DISABLE_NVLS", "1")):
    os.environ[var] = val


def _port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _init(rank: int, world: int, port: int) -> torch.device:
    device = torch.device("cuda", rank)
    torch.cuda.set_device(device)
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            device_id=device)  # fmt: skip
    return device


def _randn(shape, seed: int, device) -> torch.Tensor:
    g = torch.Generator(device=device).manual_seed(seed)
    return torch.randn(shape, generator=g, device=device, dtype=torch.bfloat16)


# ------------------------------------------------------------------------------------------------------- exact
def _exact(rank: int, world: int, port: int, out: dict) -> None:
    device = _init(rank, world, port)
    s, hq, hkv, d = 16384, 8, 2, 128
    rows = []
    try:
        for i, name in enumerate(workloads.MASK_TYPES):
            mask = workloads.make(name, s, 1, device, seed=i).mask
            q, k, v, dout = (_randn((1, s, h, d), 100 * i + j, device) for j, h in enumerate((hq, hkv, hkv, hq)))
            leaves = [t.clone().requires_grad_() for t in (q, k, v)]
            single = flashmask_attention(*leaves, mask)
            single.backward(dout)
            got_single = [single.detach(), *(t.grad for t in leaves)]
            ref_leaves = [t.float().clone().requires_grad_() for t in (q, k, v)]
            ref = flashmask_attention(*ref_leaves, mask, backend="torch")
            ref.backward(dout.float())
            want = [ref.detach(), *(t.grad for t in ref_leaves)]

            p = fmd.plan(mask, world, chunk_size=1024)
            local = [p.shard(t, 1, rank).clone().requires_grad_() for t in (q, k, v)]
            cp_out = fmd.context_parallel_attention(*local, p)
            cp_out.backward(p.shard(dout, 1, rank))
            with torch.no_grad():
                got_cp = [p.unshard(cp_out.detach(), 1), *(p.unshard(t.grad, 1) for t in local)]
            row = {"mask": name, "balance": p.balance, "passed": True}
            for what, a, b, w in zip(("out", "dq", "dk", "dv"), got_cp, got_single, want, strict=True):
                err_cp = (a.float() - w).abs().max().item()
                err_single = (b.float() - w).abs().max().item()
                diff = (a.float() - b.float()).abs().max().item()
                ok = err_cp <= 2 * err_single + 1e-3
                row[what] = {"err_cp": err_cp, "err_single": err_single, "cp_vs_single": diff, "ok": ok}
                row["passed"] &= ok
            rows.append(row)
            if rank == 0:
                print(f"[exact] {name:24s} {'PASS' if row['passed'] else 'FAIL'} "
                      + " ".join(f"{w}: cp {row[w]['err_cp']:.2e} single {row[w]['err_single']:.2e}"
                                 for w in ("out", "dq", "dk", "dv")), flush=True)  # fmt: skip
        if rank == 0:
            out["exact"] = {"seqlen": s, "heads_q": hq, "heads_kv": hkv, "head_dim": d, "rows": rows}
    finally:
        dist.destroy_process_group()


# ------------------------------------------------------------------------------------------------------- speed
def _time(fn, reps: int, warmup: int, device, collective: bool = True) -> float:
    """Median ms of ``fn`` over ``reps`` runs after ``warmup``. ``collective``: every rank calls it, runs
    start together and each run counts as the slowest rank's."""
    times = []
    for i in range(warmup + reps):
        if collective:
            dist.barrier()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(device)
        t = torch.tensor([start.elapsed_time(end)], device=device)
        if collective:
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        if i >= warmup:
            times.append(t.item())
    return statistics.median(times)


def _profile(step, rank: int, title: str) -> None:
    """Kernel times of two steps (``torch.profiler``), printed by rank 0; every rank runs the steps."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(2):
            step()
        torch.cuda.synchronize()
    if rank == 0:
        print(f"[profile] {title} (2 steps)\n" + prof.key_averages().table(sort_by="cuda_time_total", row_limit=20))


def _speed(rank: int, world: int, port: int, out: dict, seqlens: list[int], profile: bool = False) -> None:
    device = _init(rank, world, port)
    h, d = 32, 128
    rows = []
    try:
        for s in seqlens:
            g = torch.Generator().manual_seed(s)
            docs = workloads.random_doc_lens(s, g)
            mask = masks.causal_document(docs, device=device)
            q, k, v, dout = (_randn((1, s, h, d), j, device) for j in range(4))
            p = fmd.plan(mask, world, chunk_size=2048)
            local = [p.shard(t, 1, rank).clone().requires_grad_() for t in (q, k, v)]
            dout_local = p.shard(dout, 1, rank)
            del q, k, v, dout

            def cp_step():
                o = fmd.context_parallel_attention(*local, p)
                torch.autograd.grad(o, local, dout_local)

            cp_ms = _time(cp_step, 10, 3, device)
            if profile:
                _profile(cp_step, rank, f"context parallel, S={s}")
            cp_attention._OVERLAP = False
            cp_serial_ms = _time(cp_step, 10, 3, device)
            cp_attention._OVERLAP = True

            # The same tokens cut at the middle (per rank: its own 1/world of the sequence), no exchange.
            per = s // world
            cuts, acc = [], 0
            for n in docs:
                while n > 0:
                    take = min(n, per - acc % per)
                    cuts.append(take)
                    acc += take
                    n -= take
            bounds, acc, part = [], 0, []
            for n in cuts:
                part.append(n)
                acc += n
                if acc % per == 0:
                    bounds.append(part)
                    part = []
            half_mask = masks.causal_document(bounds[rank], device=device)
            half = [_randn((1, per, h, d), 10 + j, device).requires_grad_() for j in range(3)]
            dout_half = _randn((1, per, h, d), 13, device)

            def single_step():
                o = flashmask_attention(*half, half_mask)
                torch.autograd.grad(o, half, dout_half)

            single_each = torch.tensor([_time(single_step, 10, 3, device, collective=False)], device=device)
            if profile:
                _profile(single_step, rank, f"one GPU on S/{world}, S={s}")
            gathered = [torch.zeros_like(single_each) for _ in range(world)]
            dist.all_gather(gathered, single_each)
            single_ms = statistics.mean(t.item() for t in gathered)
            traffic = _traffic(chunk_visibility(mask, p.chunk_size).cpu(), p.chunks_of_rank)
            # The halves lose the cross-half part of the document cut at the middle: compare work rates too.
            pairs_full = int(mask.visible_pairs().sum())
            pairs_halves = [int(masks.causal_document(b).visible_pairs().sum()) for b in bounds]
            per_rank_ms = [t.item() for t in gathered]
            ratio_work = (pairs_full / world / cp_ms) / (sum(pairs_halves) / sum(per_rank_ms))
            row = {
                "seqlen": s, "heads": h, "head_dim": d, "documents": len(docs), "chunk_size": p.chunk_size,
                "balance": p.balance, "chunks_moved": traffic, "num_chunks": p.num_chunks,
                "cp_ms": cp_ms, "cp_no_overlap_ms": cp_serial_ms, "single_gpu_half_ms": single_ms,
                "single_gpu_half_ms_per_rank": per_rank_ms,
                "ratio": single_ms / cp_ms, "ratio_no_overlap": single_ms / cp_serial_ms,
                "visible_pairs_full": pairs_full, "visible_pairs_halves": pairs_halves, "ratio_work": ratio_work,
                "peak_gib_rank0": torch.cuda.max_memory_allocated(device) / 2**30,
            }  # fmt: skip
            rows.append(row)
            if rank == 0:
                print(f"[speed] S={s} docs={len(docs)} balance {p.balance:.3f} moved {traffic}/{p.num_chunks} "
                      f"chunks: cp {cp_ms:.2f} ms (no overlap {cp_serial_ms:.2f}), one GPU on 1/{world} "
                      f"{single_ms:.2f} ms -> per-GPU throughput ratio {single_ms / cp_ms:.3f}",
                      flush=True)  # fmt: skip
            cp_step = single_step = None  # free this length's tensors before the next
            torch.cuda.empty_cache()
        if rank == 0:
            out["speed"] = rows
    finally:
        dist.destroy_process_group()


def _spawn(fn, world: int, *args) -> dict:
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(fn, args=(world, _port(), out, *args), nprocs=world, join=True)
        return dict(out)


# ------------------------------------------------------------------------------------------------------- train
MODEL = ["--hidden", "2048", "--layers", "16", "--heads", "16", "--kv-heads", "4", "--vocab", "32000"]


def _train_run(world: int, seqlen: int, steps: int, timeout: int) -> dict:
    cmd = [sys.executable, str(ROOT / "examples" / "context_parallel_llama.py"), "--device", "cuda",
           "--world-size", str(world), "--seqlen", str(seqlen), "--steps", str(steps), "--chunk-size", "2048",
           *MODEL]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTORCH_CUDA_ALLOC_CONF="expandable_segments:True")
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"world_size": world, "seqlen": seqlen, "status": "timeout", "wall_s": time.perf_counter() - start}
    text = proc.stdout + proc.stderr
    status = "ok" if proc.returncode == 0 else ("oom" if "OutOfMemoryError" in text or "out of memory" in text
                                                else "error")  # fmt: skip
    row = {"world_size": world, "seqlen": seqlen, "status": status, "wall_s": time.perf_counter() - start}
    line = [x for x in proc.stdout.splitlines() if x.startswith("world_size=")]
    if line:
        row["summary"] = line[-1]
    if status == "error":
        row["tail"] = text[-2000:]
    print(f"[train] world_size={world} S={seqlen}: {status} {row.get('summary', '')}", flush=True)
    return row


def _train(world: int, start: int, limit: int) -> dict:
    runs, s = [], start
    while s <= limit:
        row = _train_run(1, s, 2, 150)
        runs.append(row)
        if row["status"] != "ok":
            break
        s *= 2
    result = {"model": " ".join(MODEL), "single_gpu": runs}
    if runs and runs[-1]["status"] == "oom":
        result["context_parallel"] = _train_run(world, runs[-1]["seqlen"], 3, 200)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="exact,speed,train")
    ap.add_argument("--world-size", type=int, default=None, help="GPUs (default: all)")
    ap.add_argument("--seqlens", default="131072,262144", help="speed part: total tokens")
    ap.add_argument("--profile", action="store_true", help="speed part: print kernel times of two steps each")
    ap.add_argument("--train-start", type=int, default=262144)
    ap.add_argument("--train-limit", type=int, default=1048576)
    ap.add_argument("--out", default="cp_results")
    args = ap.parse_args()
    world = args.world_size or torch.cuda.device_count()
    if world < 2:
        raise SystemExit(f"cp_bench needs at least 2 GPUs, found {torch.cuda.device_count()}")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    import triton

    result = {
        "device": torch.cuda.get_device_name(0), "gpus": world, "torch": torch.__version__,
        "triton": triton.__version__, "cuda": torch.version.cuda, "nccl": ".".join(map(str, torch.cuda.nccl.version())),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip

    def save():
        (out_dir / "cp.json").write_text(json.dumps(result, indent=1) + "\n")

    parts = args.parts.split(",")
    jobs = {
        "exact": lambda: _spawn(_exact, world),
        "speed": lambda: _spawn(_speed, world, [int(x) for x in args.seqlens.split(",")], args.profile),
        "train": lambda: {"train": _train(world, args.train_start, args.train_limit)},
    }
    for part in ("exact", "speed", "train"):
        if part not in parts:
            continue
        start = time.perf_counter()
        try:
            result.update(jobs[part]())
        except Exception as exc:  # record and go on with the next part
            result.setdefault("errors", {})[part] = f"{type(exc).__name__}: {exc}"[-3000:]
            print(f"[{part}] failed: {type(exc).__name__}: {exc}", flush=True)
        result.setdefault("part_seconds", {})[part] = time.perf_counter() - start
        save()

    print(f"\n{result['device']} x{world}, torch {result['torch']}, triton {result['triton']}, NCCL {result['nccl']}")
    if "exact" in result:
        rows = result["exact"]["rows"]
        print(f"exact: {sum(r['passed'] for r in rows)}/{len(rows)} mask types pass")
    for r in result.get("speed", []):
        print(f"speed S={r['seqlen']:>7}: cp {r['cp_ms']:8.2f} ms (no overlap {r['cp_no_overlap_ms']:8.2f}), "
              f"1 GPU on S/{world} {r['single_gpu_half_ms']:8.2f} ms, ratio {r['ratio']:.3f} "
              f"(no overlap {r['ratio_no_overlap']:.3f}), per attention work {r['ratio_work']:.3f}, "
              f"balance {r['balance']:.3f}")  # fmt: skip
    if "train" in result:
        for r in result["train"]["single_gpu"]:
            print(f"train 1 GPU S={r['seqlen']}: {r['status']} {r.get('summary', '')}")
        cp = result["train"].get("context_parallel")
        if cp:
            print(f"train {world} GPUs S={cp['seqlen']}: {cp['status']} {cp.get('summary', '')}")


if __name__ == "__main__":
    main()
