"""GPU correctness matrix for the Triton kernels (issue: Triton kernels, "Correctness").

For each case: fresh random inputs in fp16/bf16; a dense fp32 reference computed from the same low-precision
inputs; PyTorch's own SDPA with the dense mask in the same low precision; our kernels writing into
NaN-poisoned buffers, with dQ three ways: fp32 atomics as bulk (TMA) reduce-adds (at D=128 on Hopper: the Gluon
backward, whose dQ goes out that way), per-element atomics (all tensor-descriptor paths off), and the
deterministic dQ pass; the first of these twice, the second call reusing the compiled launches and giving the
same out, LSE, dK and dV bit for bit. A case passes when every output is finite and written, and for out, dq,
dk, dv our max error is at most 2x SDPA's plus a small floor; LSE within 1e-3 relative; rows that see nothing
give exactly 0 / -inf / zero gradients; deterministic dQ is bit-identical over two runs.

    python benchmarks/gpu_check.py [--quick] [--workers 8] [--out results.json]

Prints a pass/fail table last.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time
import traceback
import zlib

import torch
import triton

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from _kernel_calls import set_configs

from flashmask import ColumnMask
from flashmask.bench import workloads
from flashmask.kernels import attention_backward, attention_forward
from flashmask.kernels import configs as kconfigs
from flashmask.reference import reference_attention

FORMS = [(True, 1), (True, 2), (False, 2), (False, 4)]
# Log-scale spread of the keys' norms in the cases that test the forward's rescaling (scores up to e^4 ~ 55x larger).
KEY_SPREAD = 4.0


def build_cases(quick: bool) -> list[dict]:
    dims = [32, 64, 96, 128, 192, 256]
    gqa = [(8, 8), (8, 2), (8, 1)]
    lengths = [1000, 4099, 2048]
    cases = []
    counter = itertools.count()
    for dtype in ("bfloat16", "float16"):
        for name in workloads.MASK_TYPES:
            i = next(counter)
            hq, hkv = gqa[i % 3]
            cases.append(
                dict(kind="workload", mask=name, S=lengths[i % 3], B=1 + i % 2, Hq=hq, Hkv=hkv,
                     Hm=[1, hkv, hq][i % 3], D=dims[i % 6], dtype=dtype)
            )  # fmt: skip
        for j, (causal, c) in enumerate(FORMS):
            for sq, sk in ((1000, 1537), (1537, 1000)):
                i = next(counter)
                hq, hkv = gqa[i % 3]
                cases.append(
                    dict(kind="random", causal=causal, C=c, Sq=sq, Sk=sk, B=1 + i % 2, Hq=hq, Hkv=hkv,
                         Hm=[1, hkv, hq][j % 3], D=dims[i % 6], dtype=dtype)
                )  # fmt: skip
    # No column mask (plain full / causal, bottom-right when Sq != Sk): the mask-free kernels. ``as_len`` makes
    # the configs those of a call that long (at D=64 on Hopper: the 3-stage dQ pass and 32x256 dK/dV tiles that
    # only long calls get), run here on a short one.
    for causal, d, as_len in itertools.product((False, True), (64, 96, 128), (None, 131072)):
        if d != 64 and as_len:
            continue
        for sq, sk in ((4099, 4099), (1537, 4099)):
            i = next(counter)
            cases.append(
                dict(kind="plain", causal=causal, Sq=sq, Sk=sk, B=1 + i % 2, Hq=8, Hkv=2, Hm=1, D=d,
                     dtype=("bfloat16", "float16")[i % 2], as_len=as_len)
            )  # fmt: skip
    # Long keys at D=128 without a column mask: the default forward then visits them in sweeps (three of 46720
    # keys here, ``configs.FORWARD_SWEEP_MAX_KEYS``), chosen by the call's own length.
    for causal in (False, True):
        cases.append(
            dict(kind="plain", causal=causal, Sq=384, Sk=140_000, B=1, Hq=4, Hkv=2, Hm=1, D=128, dtype="bfloat16",
                 as_len=None)
        )  # fmt: skip
    # The forward in key sweeps of a set length (``sweep_keys``: several launches carrying the softmax state).
    for causal, c in ((False, 0), (True, 0), (True, 2), (False, 4)):
        i = next(counter)
        kind = "plain" if c == 0 else "random"
        cases.append(
            dict(kind=kind, causal=causal, C=c, Sq=4099, Sk=4099 if c == 0 else 3001, B=1 + i % 2, Hq=8, Hkv=2,
                 Hm=1, D=128, dtype="bfloat16", as_len=None, sweep_keys=1024)
        )  # fmt: skip
    # The Gluon forward's column-mask forms at D=128 (causal C=1, non-causal C=2 and C=4) with GQA, one mask per
    # query head and Sq != Sk both ways: the workload cases above reach them only without GQA.
    for causal, c in ((True, 1), (False, 2), (False, 4)):
        for sq, sk in ((1000, 1537), (1537, 1000)):
            i = next(counter)
            cases.append(
                dict(kind="random", causal=causal, C=c, Sq=sq, Sk=sk, B=2, Hq=8, Hkv=2, Hm=8, D=128,
                     dtype=("bfloat16", "float16")[i % 2])
            )  # fmt: skip
    # The same kernels at D=64 (Gluon on Hopper since session 24): every column-mask form with Sq != Sk both ways at
    # GQA ratios 1 and 8, which the cases above give D=64 only with a ratio of 4.
    for j, (causal, c) in enumerate(FORMS):
        for sq, sk in ((1000, 1537), (1537, 1000)):
            i = next(counter)
            hq, hkv = ((8, 8), (8, 1))[i % 2]
            cases.append(
                dict(kind="random", causal=causal, C=c, Sq=sq, Sk=sk, B=1 + j % 2, Hq=hq, Hkv=hkv,
                     Hm=(hkv, hq)[j % 2], D=64, dtype=("bfloat16", "float16")[j % 2])
            )  # fmt: skip
    # Keys scaled by exp(U(0, KEY_SPREAD)) each: the scores' row maxima jump from tile to tile by up to e^4 at random
    # tiles and barely move at others, so the online softmax's rescaling is exercised on the same rows (written for
    # session 28's lazy rescale, since dropped); one case visits the keys in sweeps (state carried over).
    for d, (causal, c), sweep in ((128, (True, 1), None), (128, (False, 4), None), (64, (True, 2), None),
                                  (128, (False, 0), 1024)):  # fmt: skip
        i = next(counter)
        cases.append(
            dict(kind="plain" if c == 0 else "random", causal=causal, C=c, Sq=1537, Sk=4099, B=1 + i % 2, Hq=8,
                 Hkv=2, Hm=2, D=d, dtype=("bfloat16", "float16")[i % 2], as_len=None, sweep_keys=sweep,
                 key_spread=KEY_SPREAD)
        )  # fmt: skip
    if quick:
        cases = [c for c in cases if c["D"] in (64, 128)][:10]
    return cases


def _describe(case: dict) -> str:
    if case["kind"] == "workload":
        shape = f"S={case['S']}"
        what = case["mask"]
    elif case["kind"] == "plain":
        shape = f"Sq={case['Sq']},Sk={case['Sk']}"
        what = f"no mask causal={case['causal']}" + (f" as {case['as_len']}" if case["as_len"] else "")
    else:
        shape = f"Sq={case['Sq']},Sk={case['Sk']}"
        what = f"random causal={case['causal']} C={case['C']}"
    if case.get("sweep_keys"):
        what += f" sweeps of {case['sweep_keys']}"
    if case.get("key_spread"):
        what += f" keys x e^U(0,{case['key_spread']:g})"
    return (
        f"{what:32s} {shape:16s} B={case['B']} Hq={case['Hq']} Hkv={case['Hkv']} Hm={case['Hm']} "
        f"D={case['D']:3d} {case['dtype']}"
    )


def _make_mask(case: dict, device) -> ColumnMask:
    hm = case["Hm"]
    if case["kind"] == "workload":
        m = workloads.make(case["mask"], case["S"], case["B"], device, seed=_seed(case) % 1000)
        idx = m.mask.startend_row_indices.expand(-1, hm, -1, -1).clone()
        return ColumnMask(idx, m.mask.causal, m.mask.seqlen_q)
    sq, sk = case["Sq"], case["Sk"]
    if case["kind"] == "plain":
        # The reference's mask for "no column mask": intervals that hide nothing (LTS = Sq, and UTE = 0).
        hidden_none = [torch.full((case["B"], 1, sk), sq, device=device, dtype=torch.int32)]
        if not case["causal"]:
            hidden_none.append(torch.zeros_like(hidden_none[0]))
        return ColumnMask(torch.stack(hidden_none, -1), case["causal"], sq)
    idx = torch.randint(-5, sq + 6, (case["B"], hm, sk, case["C"]), device=device, dtype=torch.int32)
    if case["C"] == 4 or (case["causal"] and case["C"] == 2):
        # Keep intervals mostly short so that most rows see something.
        idx[..., 1] = idx[..., 0] + torch.randint(0, max(2, sq // 8), idx[..., 0].shape, device=device)
    if case["C"] == 4:
        idx[..., 3] = idx[..., 2] + torch.randint(0, max(2, sq // 8), idx[..., 2].shape, device=device)
    return ColumnMask(idx, case["causal"], sq)


def _seed(case: dict) -> int:
    return zlib.crc32(_describe(case).encode())


def _max_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    return (x.float() - ref.float()).abs().max().item() if x.numel() else 0.0


def run_case(case: dict, backward_pieces: int = 0) -> dict:
    device = torch.device("cuda")
    dtype = getattr(torch, case["dtype"])
    torch.manual_seed(_seed(case))
    mask = _make_mask(case, device)
    sq, sk = mask.seqlen_q, mask.seqlen_k
    b, hq, hkv, d = case["B"], case["Hq"], case["Hkv"], case["D"]
    q = torch.randn(b, sq, hq, d, device=device, dtype=dtype)
    k = torch.randn(b, sk, hkv, d, device=device, dtype=dtype)
    if case.get("key_spread"):
        k = k * torch.exp(case["key_spread"] * torch.rand(b, sk, hkv, 1, device=device)).to(dtype)
    v = torch.randn(b, sk, hkv, d, device=device, dtype=dtype)
    do = torch.randn(b, sq, hq, d, device=device, dtype=dtype)
    scale = 1.0 / math.sqrt(d)

    # fp32 dense reference from the same low-precision inputs.
    qr, kr, vr = (t.detach().float().requires_grad_() for t in (q, k, v))
    out_ref, lse_ref = reference_attention(qr, kr, vr, mask, compute_dtype=torch.float32)
    dq_ref, dk_ref, dv_ref = torch.autograd.grad(out_ref, (qr, kr, vr), do.float())

    # SDPA with the dense mask, same low precision. Rows that see nothing get one dummy key and no gradient
    # (SDPA would return NaN there); they are compared only for our kernels.
    visible = mask.to_dense().repeat_interleave(hq // mask.num_heads, dim=1)
    empty_rows = ~visible.any(-1)  # [B, Hq, Sq]
    vis_sdpa = visible.clone()
    vis_sdpa[..., 0] |= empty_rows
    qs, ks, vs = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out_s = torch.nn.functional.scaled_dot_product_attention(
        qs.transpose(1, 2), ks.transpose(1, 2), vs.transpose(1, 2), attn_mask=vis_sdpa, enable_gqa=hq != hkv
    ).transpose(1, 2)
    do_s = do * (~empty_rows).transpose(1, 2).unsqueeze(-1)
    dq_s, dk_s, dv_s = torch.autograd.grad(out_s, (qs, ks, vs), do_s)
    out_s = out_s * (~empty_rows).transpose(1, 2).unsqueeze(-1)
    sdpa_err = dict(
        out=_max_err(out_s, out_ref), dq=_max_err(dq_s, dq_ref), dk=_max_err(dk_s, dk_ref), dv=_max_err(dv_s, dv_ref)
    )

    result = dict(case=_describe(case), ok=True, notes=[])
    indices, causal = mask.startend_row_indices, mask.causal
    if case["kind"] == "plain":
        indices = None
    d_pad = max(16, triton.next_power_of_2(d))
    vectors = 0 if indices is None else indices.shape[-1]
    as_q, as_k = (case["as_len"],) * 2 if case.get("as_len") else (sq, sk)
    defaults = kconfigs.pick(d_pad, q.device, vectors, causal, seqlen_q=as_q, seqlen_k=as_k)
    # ``backward_pieces``: the dQ-accumulating backward in that many pieces (``kernels._pieces``; 0: as configured).
    atomic_cfgs = defaults._replace(atomic_dq=True, tma_reduce_dq=True, backward_pieces=backward_pieces)
    # dQ three ways: fp32 atomics in the dK/dV kernel as bulk (TMA) reduce-adds where the GPU has them, as
    # per-element atomics with every tensor-descriptor path off, and the deterministic dQ pass.
    # "atomic_again" repeats "atomic": the second call of a signature launches the kept compiled kernels directly
    # (``kernels._host.CachedKernel``; run with FLASHMASK_CHECK_LAUNCH=1 each reuse is checked against Triton's
    # binding), and must give the same out, LSE, dK and dV bit for bit.
    first = None
    for mode, use_tma in (("atomic", None), ("atomic_again", None), ("atomic_pointers", False), ("det", None)):
        deterministic = mode == "det"
        nan = float("nan")
        out = torch.full_like(q, nan)
        lse = torch.full((b, hq, sq), nan, device=device)
        out, lse, bounds = attention_forward(
            q, k, v, indices, causal, scale, out=out, lse=lse, use_tma=use_tma, sweep_keys=case.get("sweep_keys"),
            keep_bounds=True, plan_backward=not deterministic, backward_configs=atomic_cfgs,
        )  # fmt: skip
        grads = (torch.full_like(q, nan), torch.full_like(k, nan), torch.full_like(v, nan))
        # The non-deterministic modes take the forward's block bounds and tile lists where their tiles match (as
        # eager autograd calls do); the deterministic one builds its own.
        dq, dk, dv = attention_backward(
            do, q, k, v, out, lse, indices, causal, scale, deterministic=deterministic, grads=grads,
            configs=defaults if deterministic else atomic_cfgs, use_tma=use_tma,
            bounds=None if deterministic else bounds,
        )  # fmt: skip
        errs = dict(
            out=_max_err(out, out_ref), dq=_max_err(dq, dq_ref), dk=_max_err(dk, dk_ref), dv=_max_err(dv, dv_ref)
        )
        for name, t in (("out", out), ("dq", dq), ("dk", dk), ("dv", dv)):
            if not torch.isfinite(t).all():
                result["ok"] = False
                result["notes"].append(f"{name} has non-finite values (unwritten or NaN)")
        for name, e in errs.items():
            ref = dict(out=out_ref, dq=dq_ref, dk=dk_ref, dv=dv_ref)[name]
            floor = 1e-3 * max(1.0, ref.abs().max().item()) if ref.numel() else 0
            if not e <= 2 * sdpa_err[name] + floor:
                result["ok"] = False
                result["notes"].append(f"{name} err {e:.2e} > 2 x sdpa {sdpa_err[name]:.2e} + {floor:.1e}")
        fin = torch.isfinite(lse_ref)
        if not torch.equal(fin, torch.isfinite(lse)) or not torch.equal(torch.isneginf(lse), ~fin):
            result["ok"] = False
            result["notes"].append("lse: -inf rows differ from the reference")
        elif fin.any():
            lse_err = ((lse[fin] - lse_ref[fin]).abs() / lse_ref[fin].abs().clamp_min(1)).max().item()
            errs["lse"] = lse_err
            if lse_err > 1e-3:
                result["ok"] = False
                result["notes"].append(f"lse rel err {lse_err:.2e}")
        if empty_rows.any():
            rows = empty_rows.transpose(1, 2)  # [B, Sq, Hq]
            if out[rows].abs().max() != 0 or dq[rows].abs().max() != 0:
                result["ok"] = False
                result["notes"].append("rows that see nothing: output or dq not exactly 0")
        if mode == "atomic":
            first = (out, lse, dk, dv)
        elif mode == "atomic_again" and not all(map(torch.equal, first, (out, lse, dk, dv))):
            result["ok"] = False
            result["notes"].append("second call: out, lse, dk or dv differ from the first")
        if deterministic:
            dq2, dk2, dv2 = attention_backward(
                do, q, k, v, out, lse, indices, causal, scale, deterministic=True, configs=defaults
            )
            if not (torch.equal(dq, dq2) and torch.equal(dk, dk2) and torch.equal(dv, dv2)):
                result["ok"] = False
                result["notes"].append("deterministic backward not bit-identical")
        result[mode] = errs
    result["sdpa"] = sdpa_err
    result["empty_rows"] = int(empty_rows.sum())
    return result


def _worker(args):
    cases, backward_pieces, settings = args
    set_configs(settings)  # (a spawned worker starts from the module's defaults)
    out = []
    for case in cases:
        t = time.time()
        try:
            r = run_case(case, backward_pieces)
        except Exception as exc:  # report, keep going
            r = dict(case=_describe(case), ok=False, notes=[f"{type(exc).__name__}: {exc}"],
                     trace=traceback.format_exc())  # fmt: skip
        r["seconds"] = round(time.time() - t, 1)
        print(("PASS " if r["ok"] else "FAIL ") + r["case"] + f" ({r['seconds']}s) " + "; ".join(r["notes"]),
              flush=True)  # fmt: skip
        out.append(r)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", default=None)
    parser.add_argument("--only", default=None, help="run only cases whose description contains this text")
    parser.add_argument("--backward-pieces", type=int, default=0,
                        help="the dQ-atomic modes' backward in this many pieces (kernels._pieces)")  # fmt: skip
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="set a setting of flashmask.kernels.configs in every worker (repeatable)")  # fmt: skip
    args = parser.parse_args()
    set_configs(args.set)  # checks the names before any case runs
    cases = build_cases(args.quick)
    if args.only:
        cases = [c for c in cases if args.only in _describe(c)]
    t0 = time.time()
    if args.workers > 1:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        chunks = [(cases[i :: args.workers], args.backward_pieces, args.set) for i in range(args.workers)]
        with ctx.Pool(args.workers) as pool:
            results = [r for part in pool.map(_worker, chunks) for r in part]
    else:
        results = _worker((cases, args.backward_pieces, args.set))
    passed = sum(r["ok"] for r in results)
    meta = dict(
        device=torch.cuda.get_device_name(), torch=torch.__version__,
        triton=__import__("triton").__version__, seconds=round(time.time() - t0, 1), settings=args.set,
    )  # fmt: skip
    if args.out:
        with open(args.out, "w") as f:
            json.dump(dict(meta=meta, results=results), f, indent=1)
    print(f"\n{meta}")
    modes = ("atomic", "atomic_again", "atomic_pointers", "det")
    header = f"{'case':95s} {'result':6s} {'out':>8s} {'dq':>8s} {'dk':>8s} {'dv':>8s}"
    print(header + "  (worst of the dQ modes: err / sdpa err)")
    for r in results:
        if all(m in r for m in modes):
            ratios = " ".join(
                f"{max(r[m][n] for m in modes) / max(r['sdpa'][n], 1e-12):8.2f}" for n in ("out", "dq", "dk", "dv")
            )
        else:
            ratios = "   error"
        print(f"{r['case']:95s} {'PASS' if r['ok'] else 'FAIL':6s} {ratios}")
    print(f"{passed} passed, {len(results) - passed} failed")


if __name__ == "__main__":
    main()
