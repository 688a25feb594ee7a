"""The ``flashmask`` command line: demo on CPU, bench plan / refusal / option errors, report rendering."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from flashmask.bench import report
from flashmask.bench.plan import BenchOptions
from flashmask.bench.workloads import MASK_TYPES
from flashmask.cli import main

SAMPLE = Path(__file__).parent / "data" / "bench_sample.json"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _pngs_ok(paths) -> None:
    for p in paths:
        p = Path(p)
        assert p.is_file(), p
        assert p.stat().st_size > 1000, p
        assert p.read_bytes()[:8] == PNG_MAGIC, p


# ------------------------------------------------------------------------------------------- demo
def test_demo_cpu_tiny(capsys):
    assert main(["demo", "--seqlen", "256", "--device", "cpu", "--reps", "1"]) == 0
    out = capsys.readouterr().out
    for name in MASK_TYPES:
        assert f"\n{name} " in out
    assert "err out" in out and "dense" in out
    assert f"all {len(MASK_TYPES)} masks within tolerance" in out


def test_demo_mask_subset_and_failure_exit_code(capsys):
    # A tolerance nobody meets: the demo must say so and exit 1.
    assert main(["demo", "--seqlen", "128", "--device", "cpu", "--masks", "causal", "--tol", "0"]) == 1
    out = capsys.readouterr().out
    assert "causal" in out and "FAILED" in out and "document" not in out


def test_demo_unknown_mask(capsys):
    assert main(["demo", "--masks", "causal,no_such_mask"]) == 2
    assert "no_such_mask" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- bench options
def test_bench_unknown_mask_names_it(capsys):
    assert main(["bench", "--dry-run", "--masks", "causal,bogus_mask"]) == 2
    err = capsys.readouterr().err
    assert "bogus_mask" in err and "unknown mask type" in err


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--part", "kernels"], "kernels"),
        (["--peers", "flex,xformers"], "xformers"),
        (["--seqlens", "8K,zero"], "zero"),
        (["--seqlens", "0"], "positive"),
        (["--head-dims", "100"], "100"),
        (["--seqlens", "256K"], "262144"),
    ],
)
def test_bench_option_errors(capsys, args, needle):
    assert main(["bench", "--dry-run", *args]) == 2
    assert needle in capsys.readouterr().err


def test_no_subcommand_is_usage_error(capsys):
    assert main([]) == 2
    assert main(["--help"]) == 0


# ------------------------------------------------------------------------------------------- dry run
def test_bench_dry_run_full_plan(capsys):
    assert main(["bench", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "[kernel] 72 cases" in out
    for name in MASK_TYPES:
        assert name in out
    for s in ("8192", "32768", "131072"):
        assert s in out
    assert "est. GPU mem" in out
    # The dense-mask peer is skipped at 32K and 128K, with the reason.
    assert "dense mask [4, 1, 32768, 32768] bool needs 4.0 GiB" in out
    assert "[mask-cost]" in out and "1048576" in out and "(computed)" in out
    assert "[sparsity] 27 cases" in out
    assert "Nothing was run" in out


def test_bench_dry_run_quick_and_subsets(capsys):
    assert main(["bench", "--dry-run", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "[kernel] 2 cases" in out and "(quick)" in out
    assert "[mask-cost]" not in out and "[sparsity]" not in out  # quick: the kernel table only
    kernel_part = out.splitlines()
    kernel_rows = [line.split() for line in kernel_part if line.startswith("   ") and line.split()[0].isdigit()]
    assert {row[1] for row in kernel_rows} == {"8192"}  # quick kernel table: 8K only, D=128
    assert {row[0] for row in kernel_rows} == {"128"}

    args = ["--part", "kernel", "--seqlens", "32K", "--head-dims", "64", "--masks", "causal,document"]
    assert main(["bench", "--dry-run", *args, "--peers", "cudnn"]) == 0
    out = capsys.readouterr().out
    assert "[kernel] 2 cases" in out and "[mask-cost]" not in out and "[sparsity]" not in out
    lines = [line for line in out.splitlines() if "32768" in line and "64" in line]
    assert any("causal " in line and "cudnn" in line for line in lines)
    assert any("document" in line and "cudnn" not in line for line in lines)


def test_bench_without_cuda_exits_2(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["bench", "--quick", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert "CUDA" in err and "--dry-run" in err


# ------------------------------------------------------------------------------------------- rendering
def test_render_sample(tmp_path, capsys):
    assert main(["bench", "--render", str(SAMPLE), "--out", str(tmp_path)]) == 0
    md = (tmp_path / "results.md").read_text()
    assert capsys.readouterr().out.strip().endswith(md.strip().splitlines()[-1])
    assert "### D=128, S=8K (B=16, H=32, bfloat16)" in md
    assert "### D=128, S=32K (B=4, H=32, bfloat16)" in md
    tables = md.split("### D=128, S=32K")
    table_8k = tables[0].split("### D=128, S=8K")[1]
    rows_8k = [line for line in table_8k.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split("|")[1].strip() for r in rows_8k[1:]] == [
        "full",
        "causal",
        "causal_document",
        "share_question",
    ]
    full_8k = rows_8k[1]
    assert "| 38.10 | 101.70 | 139.80 | 440 | 440 | 158.5 | 1.13x | 2.51 |" in full_8k
    assert "113.6 | 0.81x" in full_8k  # cuDNN
    assert "OOM" in rows_8k[2]  # SDPA dense on causal
    assert rows_8k[4].count("—") >= 3  # share_question: no peers at all
    # 32K: flex skipped on full, mismatch flagged on causal_document, error on share_question; no FA2 column.
    assert "FA2 ms" not in tables[1].split("\n\n")[1]
    assert "| full | 0.000 | 0.000 | 152.30 | 401.90 | 554.20 |" in md and "skipped" in tables[1]
    assert "46.6 (!)" in md and "FlexAttention disagrees with flashmask on causal_document D=128 S=32K" in md
    # Mask cost and sparsity sections.
    assert "## Mask cost" in md and "| 128K | 13 |" in md and "16.0 GiB (computed)" in md
    assert "### causal_document (S=32K, B=4, H=32, D=128)" in md and "### document (S=32K" in md
    names = {
        "speedup_flex",
        "speedup_cudnn",
        "speedup_flash",
        "speedup_sdpa_dense",
        "tflops",
        "mask_memory",
        "sparsity",
    }
    _pngs_ok(tmp_path / f"{n}.png" for n in names)


def test_render_partial_json(tmp_path):
    data = json.loads(SAMPLE.read_text())
    only_cost = {"schema": 1, "runs": data["runs"], "mask_cost": data["mask_cost"]}
    for row in only_cost["mask_cost"]:
        row.pop("flex")
    md_path, plots = report.render(only_cost, tmp_path, log=lambda _: None)
    md = md_path.read_text()
    assert "## Mask cost" in md and "## Kernel table" not in md and "## Time against sparsity" not in md
    assert [p.name for p in plots] == ["mask_memory.png"]
    _pngs_ok(plots)
    # Nothing at all but metadata still renders.
    md_path, plots = report.render({"runs": []}, tmp_path / "empty", log=lambda _: None)
    assert md_path.read_text().startswith("# flashmask benchmark") and plots == []


def test_render_merges_parts(tmp_path, capsys):
    data = json.loads(SAMPLE.read_text())
    a = {"schema": 1, "runs": data["runs"], "kernel": data["kernel"][:3]}
    b = {"schema": 1, "runs": data["runs"], "kernel": data["kernel"][2:], "sparsity": data["sparsity"]}
    b["kernel"][0] = dict(b["kernel"][0], sparsity=0.5)  # same case as a's last row: b's replaces it
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    out = tmp_path / "merged"
    assert main(["bench", "--render", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--out", str(out)]) == 0
    merged = json.loads((out / "results.json").read_text())
    assert len(merged["kernel"]) == len(data["kernel"]) and len(merged["runs"]) == 2
    assert merged["kernel"][2]["sparsity"] == 0.5
    assert "## Time against sparsity" in (out / "results.md").read_text()


def test_render_names_changed_settings(tmp_path):
    """A run made with settings changed (``benchmarks/bench_with.py``) says so beside its metadata."""
    data = json.loads(SAMPLE.read_text())
    data["runs"] = [dict(data["runs"][0], changed_settings={"BWD_PIECES_LEAD": 1, "PLAN_BACKWARD_IN_FORWARD": True})]
    md = report.render(data, tmp_path, log=lambda _: None)[0].read_text()
    run_line = next(line for line in md.splitlines() if line.startswith("- ") and "commit" in line)
    assert run_line.endswith("; setting `BWD_PIECES_LEAD=1`; setting `PLAN_BACKWARD_IN_FORWARD=True`")


def test_render_missing_file(capsys, tmp_path):
    assert main(["bench", "--render", str(tmp_path / "nope.json")]) == 2
    assert "nope.json" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- runner
def test_runner_bookkeeping_on_cpu(tmp_path):
    """The runner's bookkeeping end to end on the PyTorch path (wall-clock timings, no peers)."""
    from flashmask.bench import run

    opts = BenchOptions(
        masks=("causal", "document"),
        seqlens=(128,),
        head_dims=(32,),
        hidden=64,
        total_tokens=256,
        peers=(),
        mask_cost_seqlens=(512,),
        sweep_masks=("causal_document",),
        sweep_seqlen=128,
        sweep_batch=1,
        sweep_head_dim=32,
        sweep_doc_counts=(1, 3),
    )
    data = run(opts, tmp_path, argv=["bench", "--test"], device="cpu", log=lambda _: None)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["runs"][0]["command"] == "flashmask bench --test"
    assert saved["runs"][0]["options"]["masks"] == ["causal", "document"]
    rows = {r["mask"]: r for r in data["kernel"]}
    assert set(rows) == {"causal", "document"}
    causal = rows["causal"]
    assert (causal["batch"], causal["heads"], causal["head_dim"]) == (2, 2, 32)
    # Exact FLOPs: 4 * D * visible pairs over batch and heads; causal 128: 128 * 129 / 2 pairs per head.
    assert causal["visible_pairs"] == 2 * 2 * 128 * 129 // 2
    assert causal["flops_fwd_exact"] == 4 * 32 * causal["visible_pairs"]
    ours = causal["ours"]
    assert ours["status"] == "ok" and ours["total_ms"] == pytest.approx(ours["fwd_ms"] + ours["bwd_ms"])
    assert ours["total_tflops_exact"] > 0 and causal["peers"] == {}
    cost = data["mask_cost"][0]
    assert cost["flashmask"]["indices_bytes"] == 512 * 4 and cost["dense"]["bytes"] == 512 * 512
    assert [r["doc_count"] for r in data["sparsity"]] == [1, 3]
    assert (tmp_path / "results.md").is_file() and (tmp_path / "sparsity.png").is_file()


def test_render_speedup_summary(tmp_path):
    """The summary line per configuration: ranges over the agreeing peer records, the masks a peer beats us on."""
    data = json.loads(SAMPLE.read_text())
    rows = [r for r in data["kernel"] if (r["head_dim"], r["seqlen"]) == (128, 8192)]
    flex = [r["peers"]["flex"]["speedup_total"] for r in rows if r["peers"].get("flex", {}).get("status") == "ok"]
    expected = f"{min(flex):.2f}x-{max(flex):.2f}x"

    def summary(md: str) -> list[list[str]]:
        table = md.split("lowest to highest over the masks of each configuration:")[1].split("###")[0]
        return [[c.strip() for c in line.split("|")[1:-1]] for line in table.splitlines() if line.startswith("| 1")]

    row_8k = summary(report.render_markdown(data))[0]
    assert row_8k[:5] == ["128", "8K", str(len(rows)), expected, "—"]

    # A peer faster than us is named; a peer whose output disagreed with ours is left out of the ranges.
    causal = next(r for r in rows if r["mask"] == "causal")
    causal["peers"]["flex"]["speedup_total"] = 0.5
    full = next(r for r in rows if r["mask"] == "full")
    full["peers"]["flex"]["status"] = "mismatch"
    full["peers"]["flex"]["speedup_total"] = 9.0
    row_8k = summary(report.render_markdown(data))[0]
    assert row_8k[4] == "causal"
    assert row_8k[3].startswith("0.50x-") and "9.00x" not in row_8k[3]


def test_gpu_state_reads_nvidia_smi(tmp_path, monkeypatch):
    """The card's state comes from one nvidia-smi query; no card, or output it cannot parse, gives None."""
    from flashmask.bench.peers import gpu_state, nvidia_smi_state

    assert gpu_state(torch.device("cpu")) is None
    fake = tmp_path / "nvidia-smi"
    fake.write_text('#!/bin/sh\necho "$@" > "$(dirname "$0")/args"\necho "71, 1755, 655.31"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert nvidia_smi_state("GPU-abc") == {"temperature_c": 71.0, "sm_clock_mhz": 1755.0, "power_w": 655.31}
    assert (tmp_path / "args").read_text().split()[:2] == ["-i", "GPU-abc"]
    fake.write_text('#!/bin/sh\necho "No devices were found"\n')
    assert nvidia_smi_state("0") is None
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert nvidia_smi_state("0") is None


def test_timer_counts_driver_calls_of_its_timed_runs_only(monkeypatch):
    """The record's ``bwd_allocator`` is what the caching allocator asked of the driver during the timed runs: the
    first calls (warm-up, estimate) may allocate, and must not be counted."""
    from flashmask.bench import peers

    device_allocs = {"num_device_alloc": 0}
    calls = []

    def fn():
        calls.append(len(calls))
        if len(calls) <= 2 or len(calls) == 4:  # the warm-up, the estimate, and the second timed run
            device_allocs["num_device_alloc"] += 1

    class FakeCudaTimer(peers.Timer):
        def _time_once(self, f):
            f()
            return 50.0  # ms: no extra warm-up, three timed runs

    monkeypatch.setattr(peers, "_allocator_counts", lambda device: dict(device_allocs))
    timer = FakeCudaTimer(torch.device("cuda"))
    assert timer(fn) == 50.0
    assert len(calls) == 5
    assert timer.last_driver_calls == {"num_device_alloc": 1}
