"""Two-process CPU DDP (gloo) through the real CLI: ranks stay in sync and the logged loss is the global one."""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    run_dir = out / "run"
    args = ["fit", "--model", "mocogan", "--data", "shapes", "--config", str(REPO / "experiments/mocogan/tiny.yaml"),
            "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--max-steps", "3",
            "--run-dir", str(run_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, str(REPO / "tests" / "ddp_probe.py"), str(out), "--", *args],
                          capture_output=True, text=True, timeout=600, env=env, cwd=out)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return out, run_dir


def test_every_rank_holds_identical_weights(ddp_run):
    out, _ = ddp_run
    rank0 = torch.load(out / "weights_rank0.pt")
    rank1 = torch.load(out / "weights_rank1.pt")
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"{name} differs between ranks"


def test_ranks_see_different_data_and_noise(ddp_run):
    out, _ = ddp_run
    local = [[json.loads(line) for line in open(out / f"local_rank{r}.jsonl")] for r in (0, 1)]
    assert len(local[0]) == len(local[1]) == 3
    assert local[0][0]["d_video"] != local[1][0]["d_video"]


def test_logged_loss_is_the_mean_over_ranks(ddp_run):
    out, run_dir = ddp_run
    local = [[json.loads(line) for line in open(out / f"local_rank{r}.jsonl")] for r in (0, 1)]
    with open(run_dir / "metrics.csv") as f:
        logged = list(csv.DictReader(f))
    assert len(logged) == 3
    for step in range(3):
        for key in ("d_video", "g_video", "d_image"):
            expected = (local[0][step][key] + local[1][step][key]) / 2
            assert float(logged[step][f"train/{key}"]) == pytest.approx(expected, rel=1e-5), (step, key)
