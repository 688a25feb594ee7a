"""``flashmask bench --e2e``: plan, document-length sampler, rendering, option errors, and one tiny CPU step."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch

from flashmask.bench import e2e, report
from flashmask.cli import main

SAMPLE = Path(__file__).parent / "data" / "e2e_sample.json"


# ------------------------------------------------------------------------------------------- plan
def test_dry_run_lists_the_cases(capsys):
    assert main(["bench", "--e2e", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "[kernel]" not in out  # --e2e alone runs only the end-to-end part
    assert "15 e2e cases" in out
    for line in ("sft    32768  sdpa", "sft     8192  flex_attention", "dpo    16384  duplicated_prompt"):
        assert line in out
    assert "lora   16384  colmask" in out and "lora   16384  sdpa" not in out
    assert "dpo    32768" not in out


def test_dry_run_subsets(capsys):
    args = ["bench", "--e2e", "--dry-run", "--e2e-seqlens", "8K", "--e2e-backends", "colmask,sdpa"]
    assert main([*args, "--e2e-parts", "sft,lora", "--e2e-layers", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 e2e cases" in out and "2 layers" in out
    assert "lora: runs only at 16384" in out


def test_plan_skips_sdpa_above_dense_limit():
    opts = e2e.E2EOptions(seqlens=(32768,), dense_limit_gib=0.5, parts=("sft",))
    cases = {c.backend: c for c in e2e.e2e_cases(opts)}
    assert cases["sdpa"].skip and "dense mask" in cases["sdpa"].skip
    assert cases["colmask"].skip is None


# ------------------------------------------------------------------------------------------- data
def test_doc_length_sampler_median_and_clipping():
    g = torch.Generator().manual_seed(1)
    lens = e2e.sample_doc_lengths(20000, 8192, median=600, sigma=1.0, min_len=16, generator=g)
    assert abs(statistics.median(lens) - 600) <= 0.15 * 600
    assert min(lens) >= 16 and max(lens) <= 8192
    tight = e2e.sample_doc_lengths(5000, 700, median=600, sigma=1.0, min_len=500, generator=g)
    assert min(tight) == 500 and max(tight) == 700
    assert e2e.sample_doc_lengths(0, 100) == []


def test_rows_are_single_packed_rows():
    opts = e2e.E2EOptions(seqlens=(2048,), vocab=100, steps=3, warmup=1)
    rows = e2e.sft_rows(opts, 2048, 3)
    assert len(rows) == 3 and all(r.input_ids.shape == (1, 2048) for r in rows)
    dpo = e2e.dpo_rows(opts, 2048)
    shared, dup = dpo["shared_prompt"], dpo["duplicated_prompt"]
    assert shared[0].pairs == dup[0].pairs  # the warm-up step holds the same pairs in both layouts
    # The timed steps pack one pool of pairs in each layout; sharing the prompt needs fewer rows for it.
    assert sum(s.pairs for s in shared[1:]) == sum(s.pairs for s in dup[1:])
    assert len(dup) >= 3 and len(shared) <= len(dup)


# ------------------------------------------------------------------------------------------- render
def test_render_e2e_fixture(tmp_path, capsys):
    assert main(["bench", "--render", str(SAMPLE), "--out", str(tmp_path)]) == 0
    md = (tmp_path / "results.md").read_text()
    assert "## End-to-end training" in md
    assert "| sft | 8K | colmask | 20,000 tokens/s | 400 | 12.5 | 1.25x vs flex_attention; 2.00x vs sdpa |" in md
    assert "| dpo | 8K | shared_prompt | 12.00 pairs/s |" in md and "1.50x vs duplicated_prompt" in md
    assert "10.5000, 11.0000 (!)" in md  # flagged loss disagreement
    assert "| sft | 32K | sdpa | skipped |" in md and "| lora | 16K | colmask | OOM |" in md
    assert (tmp_path / "e2e_throughput.png").stat().st_size > 1000


def test_render_merges_e2e_parts(tmp_path):
    data = json.loads(SAMPLE.read_text())
    a, b = dict(data, e2e=data["e2e"][:3]), dict(data, e2e=data["e2e"][2:])
    merged = report.merge([a, b])
    assert len(merged["e2e"]) == len(data["e2e"])


# ------------------------------------------------------------------------------------------- options
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--e2e-seqlens", "8K"], "needs --e2e"),
        (["--e2e", "--e2e-backends", "colmask,bogus"], "unknown backend 'bogus'"),
        (["--e2e", "--e2e-parts", "rl"], "unknown e2e part 'rl'"),
        (["--e2e", "--e2e-steps", "2"], "larger than the warm-up"),
        (["--e2e", "--e2e-seqlens", "1000"], "multiples of 128"),
        (["--e2e", "--e2e-layers", "0"], "at least 1"),
        (["--e2e", "--e2e-seqlens", "8Q"], "not a size"),
    ],
)
def test_option_errors(capsys, args, needle):
    assert main(["bench", "--dry-run", *args]) == 2
    assert needle in capsys.readouterr().err


def test_without_cuda_exits_2(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["bench", "--e2e", "--e2e-seqlens", "8K", "--out", "unused"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- CPU smoke
def test_tiny_sft_step_colmask_matches_sdpa():
    pytest.importorskip("transformers")
    opts = e2e.E2EOptions(
        seqlens=(256,),
        layers=2,
        hidden=64,
        heads=4,
        kv_heads=2,
        intermediate=128,
        vocab=256,
        doc_median=40,
        doc_sigma=0.5,
    )
    (row,) = e2e.sft_rows(opts, 256, 1)
    assert len(row.doc_lens[0]) > 1  # really packed
    state = e2e.build_model(opts, "cpu", torch.float32).state_dict()
    losses = {}
    for backend in ("colmask", "sdpa"):
        model = e2e.build_model(opts, "cpu", torch.float32)
        model.load_state_dict(state)
        model = e2e.prepare_model(model, backend)
        opt = e2e.make_optimizer(model, 1e-3, "cpu")
        losses[backend] = e2e.train_step(model, opt, row, backend)
    assert abs(losses["colmask"] - losses["sdpa"]) <= 1e-4 * abs(losses["sdpa"])
