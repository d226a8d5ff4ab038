"""StyleGAN-V speed rows (run by benchmarks/models.py, or alone): its two claims, side by side in one run.

* Modulated convolution without compiled extensions: the two exact formulations (`fused`: per-sample weights in one
  grouped convolution; `unfused`: scale activations before and after one shared convolution) against the
  straightforward one (a Python loop of per-sample convolutions), forward + backward, at a synthesis layer's shape.
* Sparse training (3 frames per clip, the paper) against dense training (all 16 frames of the clip through G and
  D) at the same networks and batch: one full training step (D update + G update), and its peak memory.
Medians of interleaved repeats, 1 thread.
"""

from __future__ import annotations

import multiprocessing
import resource
import time

import torch

from zoo.models.base import VideoSpec
from zoo.models.layers.stylegan import conv2d_resample, modulated_conv2d, setup_filter
from zoo.models.stylegan_v import StyleGANV, StyleGANVConfig

SHAPES_NETS = dict(z_dim=32, w_dim=32, channel_base=512, channel_max=32, motion_z_dim=32, motion_v_dim=32,
                   motion_kernel=5, motion_z_distance=8, time_enc_dim=16, min_period=8, max_period=256,
                   max_num_frames=128, time_gap_embed_dim=16, d_mapping_layers=2, max_distance=16, augment=False)


def per_sample_loop(x, weight, styles, up, f):
    """The straightforward formulation: modulate and demodulate each sample's weights, convolve it alone."""
    out = []
    for i in range(len(x)):
        w = weight * styles[i].reshape(1, -1, 1, 1)
        w = w * (w.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8).rsqrt()
        out.append(conv2d_resample(x[i : i + 1], w, f, up=up, padding=1))
    return torch.cat(out)


def median_ms(fns: dict, repeats: int) -> dict[str, float]:
    times = {name: [] for name in fns}
    for _ in range(repeats + 1):  # interleaved; the first round warms up
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * sorted(t[1:])[len(t[1:]) // 2] for name, t in times.items()}


def modconv_rows(repeats: int = 7) -> list[tuple]:
    rows = []
    f = setup_filter()
    for batch, channels, res, up in ((24, 32, 16, 1), (24, 32, 16, 2), (16, 256, 32, 1)):
        torch.manual_seed(0)
        x = torch.randn(batch, channels, res, res, requires_grad=True)
        weight = torch.randn(channels, channels, 3, 3, requires_grad=True)
        styles = torch.randn(batch, channels, requires_grad=True)

        def run(fn, x=x, weight=weight, styles=styles, up=up):
            return lambda: fn(x, weight, styles, up).square().mean().backward()

        ms = median_ms({
            "per-sample loop (baseline)": run(lambda x, w, s, up: per_sample_loop(x, w, s, up, f)),
            "fused (grouped conv)": run(lambda x, w, s, up: modulated_conv2d(x, w, s, up=up, padding=1,
                                                                             resample_filter=f, fused=True)),
            "unfused (scale activations, default)": run(lambda x, w, s, up: modulated_conv2d(
                x, w, s, up=up, padding=1, resample_filter=f)),
        }, repeats)
        config = f"modulated conv fwd+bwd b{batch} {channels}->{channels} {res}^2 up{up} cpu 1 thread"
        rows += [(f"stylegan_v modconv {name}", config, round(v, 2), "ms") for name, v in ms.items()]
    return rows


def training_step_ms(frames: int, batch: int, repeats: int) -> tuple[float, float]:
    """Median step time and the peak RSS of this (fresh) process."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = StyleGANV(StyleGANVConfig(**SHAPES_NETS), VideoSpec(3, frames, 32, 0))
    opt_g, opt_d = model.configure_optimizers()
    real = {"video": torch.rand(batch, 3, frames, 32, 32) * 2 - 1, "label": torch.zeros(batch, dtype=torch.long),
            "times": torch.arange(frames, dtype=torch.float32).expand(batch, -1) * (16 / max(frames - 1, 1))}
    model.batch_size = batch

    def step():
        losses = ((opt_d, lambda: model.discriminator_loss(real, 0)), (opt_g, lambda: model.generator_loss(real)))
        for opt, loss_fn in losses:
            opt.zero_grad(set_to_none=True)
            loss_fn()[0].backward()
            opt.step()

    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return 1000 * sorted(times[1:])[len(times[1:]) // 2], peak


def sparse_vs_dense_rows(repeats: int = 5) -> list[tuple]:
    """Each side in a fresh spawned process, so that its peak RSS is its own."""
    config = "shapes.yaml networks, batch 8, 32x32, D + G update, cpu 1 thread"
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        sparse_ms, sparse_peak = pool.apply(training_step_ms, (3, 8, repeats))
        dense_ms, dense_peak = pool.apply(training_step_ms, (16, 8, repeats))
    return [
        ("stylegan_v train step sparse 3 frames (paper)", config, round(sparse_ms, 1), "ms"),
        ("stylegan_v train step dense 16 frames", config, round(dense_ms, 1), "ms"),
        ("stylegan_v peak RSS sparse 3 frames", config, round(sparse_peak), "MiB"),
        ("stylegan_v peak RSS dense 16 frames", config, round(dense_peak), "MiB"),
    ]


def rows() -> list[tuple]:
    torch.set_num_threads(1)
    return modconv_rows() + sparse_vs_dense_rows()


if __name__ == "__main__":
    print("what,config,value,unit")
    for row in rows():
        print(",".join(str(v) for v in row))
