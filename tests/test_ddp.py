"""Two-process CPU DDP (gloo) through the real CLI: ranks stay in sync and the logged loss is the global one; the
VQ-VAE's codebook statistics are global (its all-reduces), not per-rank."""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO


def run_ddp(out, model: str, steps: int, *extra: str):
    """`zoo fit` of `model`'s tiny config on 2 gloo ranks through `ddp_probe.py`; returns its run directory."""
    run_dir = out / "run"
    args = ["fit", "--model", model, "--data", "shapes", "--config", str(REPO / f"experiments/{model}/tiny.yaml"),
            "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--max-steps", str(steps),
            "--run-dir", str(run_dir), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, str(REPO / "tests" / "ddp_probe.py"), str(out), "--", *args],
                          capture_output=True, text=True, timeout=600, env=env, cwd=out)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return run_dir


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    return out, run_ddp(out, "mocogan", 3)


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


def test_vqvae_codebook_statistics_are_global_and_ranks_identical(tmp_path):
    """VideoGPT's VQ-VAE on 2 ranks: all weights and codebook buffers are identical across ranks, and the EMA code
    counts add up to both ranks' codes. The counts start at 1 per code (initialisation) and every step mixes in
    N codes: sum = d^s K + (1 - d^s) N, with N = 2 ranks x batch x latent positions when the counts are all-reduced
    (a per-rank count, even averaged over ranks afterwards, would give N of one rank)."""
    steps, batch = 2, 4
    run_ddp(tmp_path, "videogpt_vqvae", steps, "--batch-size", str(batch), "--set", "train.sample_every=0")
    rank0 = torch.load(tmp_path / "weights_rank0.pt")
    rank1 = torch.load(tmp_path / "weights_rank1.pt")
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"{name} differs between ranks"
    local = [[json.loads(line) for line in open(tmp_path / f"local_rank{r}.jsonl")] for r in (0, 1)]
    assert local[0][0]["recon_loss"] != local[1][0]["recon_loss"], "ranks must train on different clips"
    codebook_size, latent_positions, decay = 64, 4 * 8 * 8, 0.99  # tiny.yaml: K = 64, 8x32x32 -> 4x8x8, default d
    codes = 2 * batch * latent_positions
    expected = decay**steps * codebook_size + (1 - decay**steps) * codes
    assert float(rank0["codebook.cluster_size"].sum()) == pytest.approx(expected, rel=1e-5)
