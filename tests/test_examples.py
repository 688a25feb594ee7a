"""The runnable examples under ``examples/`` (CPU, tiny random models; they need transformers, not TRL)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

pytest.importorskip("transformers")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"flashmask_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dpo_shared_prompt_example(capsys):
    result = _load("dpo_shared_prompt").main()  # asserts the two DPO losses agree within 1e-5 itself
    assert math.isfinite(result["loss_shared"])
    assert abs(result["loss_shared"] - result["loss_duplicated"]) <= 1e-5
    assert abs(result["loss_shared"] - math.log(2)) > 1e-4  # policy != reference, so the check is not trivial
    assert result["tokens_shared"] < result["tokens_duplicated"]  # each prompt is encoded once
    assert "shared prompt" in capsys.readouterr().out


def test_context_parallel_llama_example_matches_one_process(capsys, monkeypatch):
    """Two gloo ranks training a tiny Llama on one sharded packed row follow the single-process run (same
    data, same init): the K/V exchange, the LSE merge and DDP's averaging lose nothing."""
    monkeypatch.syspath_prepend(str(EXAMPLES))  # the spawned ranks import the example by its module name
    example = importlib.import_module("context_parallel_llama")
    common = ["--seqlen", "1024", "--chunk-size", "128", "--steps", "3", "--layers", "2"]
    single = example.main(["--world-size", "1", *common])
    sharded = example.main(["--world-size", "2", *common])
    assert all(math.isfinite(x) for x in single["losses"])
    assert single["losses"][0] > single["losses"][-1]  # it trains
    for a, b in zip(single["losses"], sharded["losses"], strict=True):
        assert abs(a - b) <= 1e-5 * abs(a), (single["losses"], sharded["losses"])
    assert "world_size=2" in capsys.readouterr().out
