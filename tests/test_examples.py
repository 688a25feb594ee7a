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
