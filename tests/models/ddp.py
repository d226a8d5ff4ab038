"""Two-process CPU DDP (gloo) runs of a model's tiny config through the real CLI, recorded by tests/ddp_probe.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from tests.conftest import REPO


def run_ddp_fit(model: str, out: Path, steps: int, *extra: str) -> tuple[list[dict], list[list[dict]], Path]:
    """`zoo fit --model MODEL` on experiments/MODEL/tiny.yaml, 2 gloo ranks, `steps` steps, extra CLI arguments.

    Returns:
        (each rank's final state dict, each rank's local (unsynced) logged losses per step, the run directory).
    """
    run_dir = out / "run"
    args = ["fit", "--model", model, "--data", "shapes", "--config", str(REPO / "experiments" / model / "tiny.yaml"),
            "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--max-steps", str(steps),
            "--run-dir", str(run_dir), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, str(REPO / "tests" / "ddp_probe.py"), str(out), "--", *args],
                          capture_output=True, text=True, timeout=600, env=env, cwd=out)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    weights = [torch.load(out / f"weights_rank{r}.pt", weights_only=True) for r in (0, 1)]
    local = [[json.loads(line) for line in open(out / f"local_rank{r}.jsonl")] for r in (0, 1)]
    return weights, local, run_dir


def assert_identical_ranks(weights: list[dict]) -> None:
    rank0, rank1 = weights
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"{name} differs between ranks"
