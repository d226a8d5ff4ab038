"""Two-process CPU DDP (gloo) through the real CLI: ranks stay in sync and the logged loss is the global one; the
VQ-VAE's codebook statistics are global (its all-reduces), not per-rank."""

import csv

import pytest

from tests.models.ddp import assert_identical_ranks, run_ddp_fit


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    return run_ddp_fit("mocogan", tmp_path_factory.mktemp("ddp"), 3)


def test_every_rank_holds_identical_weights(ddp_run):
    weights, _, _ = ddp_run
    assert_identical_ranks(weights)


def test_ranks_see_different_data_and_noise(ddp_run):
    _, local, _ = ddp_run
    assert len(local[0]) == len(local[1]) == 3
    assert local[0][0]["d_video"] != local[1][0]["d_video"]


def test_logged_loss_is_the_mean_over_ranks(ddp_run):
    _, local, run_dir = ddp_run
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
    weights, local, _ = run_ddp_fit("videogpt_vqvae", tmp_path, steps, "--batch-size", str(batch),
                                    "--set", "train.sample_every=0")
    assert_identical_ranks(weights)
    rank0 = weights[0]
    assert local[0][0]["recon_loss"] != local[1][0]["recon_loss"], "ranks must train on different clips"
    codebook_size, latent_positions, decay = 64, 4 * 8 * 8, 0.99  # tiny.yaml: K = 64, 8x32x32 -> 4x8x8, default d
    codes = 2 * batch * latent_positions
    expected = decay**steps * codebook_size + (1 - decay**steps) * codes
    assert float(rank0["codebook.cluster_size"].sum()) == pytest.approx(expected, rel=1e-5)
