"""DVD-GAN's training recipe (Clark et al. 2019, built on BigGAN): frame BatchNorm statistics over the whole batch
under DDP (2 real gloo ranks), a fresh real batch per D update, and D_T's widths from BigGAN's D table."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from zoo.config import resolve_config
from zoo.models.base import VideoSpec
from zoo.models.dvdgan import DVDGAN, DVDGANConfig, TemporalDiscriminator, d_widths
from zoo.models.layers.biggan import FrameConditionalBatchNorm

SHAPE = (8, 3, 4, 5, 5)  # (B, C, T, H, W): the whole batch; each of 2 ranks takes 4 clips


def whole_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    frame_offsets = torch.arange(4.0, dtype=torch.float64)[:, None, None]  # every frame its own mean
    x = torch.randn(*SHAPE, generator=g, dtype=torch.float64) * 3 + frame_offsets
    weights = torch.randn(*SHAPE, generator=g, dtype=torch.float64)  # a loss that is not invariant to normalisation
    return x, weights


def bn_step(x: torch.Tensor, weights: torch.Tensor):
    """One training-mode pass: output, d(loss)/dx, running statistics."""
    torch.manual_seed(1)
    bn = FrameConditionalBatchNorm(SHAPE[1], SHAPE[2], 0).double().train()
    x = x.clone().requires_grad_(True)
    y = bn(x)
    (y * weights).sum().backward()
    return y.detach(), x.grad, bn.running_mean.clone(), bn.running_var.clone()


def rank_worker(rank: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        x, weights = whole_batch()
        part = slice(4 * rank, 4 * rank + 4)
        torch.save(bn_step(x[part], weights[part]), f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_frame_batchnorm_statistics_are_the_whole_batchs_across_two_gloo_ranks(tmp_path):
    """2 ranks x 4 clips normalise, back-propagate and update running statistics as 1 process with all 8 clips."""
    out = str(tmp_path / "rank")
    mp.start_processes(rank_worker, args=(str(tmp_path / "init"), out), nprocs=2, start_method="spawn")
    x, weights = whole_batch()
    y, grad, running_mean, running_var = bn_step(x, weights)
    ranks = [torch.load(f"{out}.{r}", weights_only=True) for r in (0, 1)]
    torch.testing.assert_close(torch.cat([r[0] for r in ranks]), y, rtol=0, atol=1e-10)
    torch.testing.assert_close(torch.cat([r[1] for r in ranks]), grad, rtol=0, atol=1e-10)
    for r in ranks:
        torch.testing.assert_close(r[2], running_mean, rtol=0, atol=1e-10)
        torch.testing.assert_close(r[3], running_var, rtol=0, atol=1e-10)
    local, *_ = bn_step(x[:4], weights[:4])
    assert (local - ranks[0][0]).abs().max() > 1e-2, "per-rank statistics would differ: the test must see the sync"


def test_temporal_discriminator_widths_follow_biggans_d_table():
    """BigGAN-PyTorch D_arch: 64 px -> out (1, 2, 4, 8, 16) x ch (4 down-blocks, then one at 4x4); 128 px -> (1, 2, 4,
    8, 16, 16) x ch. D_T sees the 2x2-pooled clip, so at 128 px it is BigGAN's 64-px D and ends at 16 x ch."""
    assert d_widths(64) == [1, 2, 4, 8, 16]
    assert d_widths(128) == [1, 2, 4, 8, 16, 16]
    d_t = TemporalDiscriminator(DVDGANConfig(d_ch=2), VideoSpec(3, 8, 128, 0), 0)
    assert d_t.head.linear.in_features == 2 * 16


def test_ucf101_recipe_draws_a_fresh_real_batch_per_d_step():
    config = resolve_config("dvdgan", "ucf101", DVDGANConfig)
    assert config.model.fresh_real_batches and config.model.n_dis == 2
    model = DVDGAN(DVDGANConfig(dim_z=4, dim_class=4, g_ch=4, d_ch=2, k_frames=2, temporal_3d_blocks=1),
                   VideoSpec(3, 4, 16, 0))
    assert model.real_batches_per_step == 2
