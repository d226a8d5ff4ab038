"""Video diffusion speed on CPU (or GPU), ours against `video-diffusion-pytorch` (lucidrains) at a matched config.

Both U-Nets get the same base channels, channel multipliers, blocks per level, frames, resolution and batch (and
the same attention head width and conditioning-MLP width); each training step is one forward + backward + Adam step
on a random batch (ours also updates its EMA, theirs does not). Training steps are timed in one process with the
implementations alternating step by step, so that load from other processes (the machine may be shared) hits all
alike; medians are reported. Sampling rate and memory come from one fresh process per implementation and round.
`video-diffusion-pytorch` is not a dependency of the zoo: `pip install video-diffusion-pytorch` to get the
comparison rows (it imports torchvision only for its image-folder Trainer; where torchvision cannot be imported, a
stub stands in for it, which the U-Net and diffusion classes never touch).

    python benchmarks/models_video_diffusion.py [--rounds 3] [--steps 5] [--device cpu] [--threads 1]

Prints CSV rows `what,config,value,unit`; `rows()` returns them for `benchmarks/models.py`.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing as mp
import resource
import statistics
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


@dataclass(frozen=True)
class Matched:
    """The shared small config."""

    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 4)
    blocks_per_level: int = 2
    frames: int = 8
    resolution: int = 32
    batch: int = 2
    head_dim: int = 32
    emb_dim: int = 128  # lucidrains: time embedding = 4 x base channels, 2 linear layers
    sampling_steps: int = 16

    def name(self) -> str:
        return (f"b{self.batch} {self.frames}x{self.resolution}^2 ch{self.base_channels} "
                f"mults{'-'.join(map(str, self.channel_mults))} blocks{self.blocks_per_level}")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ours(m: Matched, device: str, attention: tuple[int, ...]):
    from zoo.models.base import VideoSpec
    from zoo.models.video_diffusion import VideoDiffusion, VideoDiffusionConfig

    config = VideoDiffusionConfig(
        base_channels=m.base_channels, channel_mults=m.channel_mults, blocks_per_level=m.blocks_per_level,
        attention_resolutions=attention, head_dim=m.head_dim, emb_dim=m.emb_dim, emb_layers=2,
        sampling_steps=m.sampling_steps, sampler="ancestral",
    )
    model = VideoDiffusion(config, VideoSpec(3, m.frames, m.resolution, 0)).to(device)
    optimizer = model.configure_optimizers()

    def step(videos):
        loss = model.diffusion_loss(videos, None, m.frames)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        model.ema.update(model.unet)

    def sample():
        return model.sample(m.batch)

    return model.unet, step, sample


class _Stub(types.ModuleType):
    """Stands in for torchvision: any attribute is a do-nothing callable."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args, **kwargs: None


def _stub_torchvision() -> None:
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - missing or built for another torch: only its Trainer would need it
        for name in [k for k in sys.modules if k.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        stub = _Stub("torchvision")
        stub.transforms, stub.utils = _Stub("torchvision.transforms"), _Stub("torchvision.utils")
        sys.modules.update({"torchvision": stub, "torchvision.transforms": stub.transforms,
                            "torchvision.utils": stub.utils})


def _theirs(m: Matched, device: str):
    _stub_torchvision()
    import video_diffusion_pytorch.video_diffusion_pytorch as lucidrains
    from video_diffusion_pytorch.video_diffusion_pytorch import GaussianDiffusion, Unet3D

    lucidrains.tqdm = lambda iterable, **kwargs: iterable  # its sampler draws a progress bar on stderr

    unet = Unet3D(dim=m.base_channels, dim_mults=m.channel_mults, attn_heads=4, attn_dim_head=m.head_dim)
    assert m.blocks_per_level == 2, "lucidrains' Unet3D has exactly 2 residual blocks per level"
    diffusion = GaussianDiffusion(unet, image_size=m.resolution, num_frames=m.frames, timesteps=m.sampling_steps,
                                  loss_type="l2").to(device)
    optimizer = torch.optim.Adam(unet.parameters(), lr=3e-4, betas=(0.9, 0.99))

    def step(videos):
        loss = diffusion((videos + 1) / 2)  # it takes [0, 1] and normalizes itself
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def sample():
        return diffusion.sample(batch_size=m.batch)

    return unet, step, sample


def _measure(which: str, m: Matched, device: str, steps: int, attention: tuple[int, ...], threads: int, out) -> None:
    """Runs in a child process: step time (median of `steps` after 2 warm-up steps), samples/s, params, memory."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net, step, sample = _ours(m, device, attention) if which == "ours" else _theirs(m, device)
    videos = torch.rand(m.batch, 3, m.frames, m.resolution, m.resolution, device=device) * 2 - 1
    base_rss = _rss_mb()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        step(videos)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else _rss_mb() - base_rss
    sample()  # warm-up
    start = time.perf_counter()
    with torch.no_grad():
        sample()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    out.put({
        "step_ms": 1000 * statistics.median(times),
        "samples_per_s": m.batch / (time.perf_counter() - start),
        "params": sum(p.numel() for p in net.parameters()),
        "peak_mb": peak,
    })


def _interleaved(variants: dict, m: Matched, device: str, steps: int, threads: int, out) -> None:
    """Runs in a child process: every variant built side by side, their training steps alternating, so that load
    from other processes hits all alike. Puts {variant: [step seconds]}."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    steppers = {k: (_theirs(m, device) if k == "lucidrains" else _ours(m, device, a))[1] for k, a in variants.items()}
    videos = torch.rand(m.batch, 3, m.frames, m.resolution, m.resolution, device=device) * 2 - 1
    times: dict[str, list[float]] = {k: [] for k in variants}
    for i in range(steps + 2):
        for key, step in steppers.items():
            start = time.perf_counter()
            step(videos)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if i >= 2:
                times[key].append(time.perf_counter() - start)
    out.put(times)


def _run(which, m, device, steps, attention, threads):
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_measure, args=(which, m, device, steps, attention, threads, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def rows(rounds: int = 3, steps: int = 5, device: str = "cpu", threads: int = 1) -> list[tuple]:
    m = Matched()
    have_theirs = importlib.util.find_spec("video_diffusion_pytorch") is not None
    if not have_theirs:
        print("video-diffusion-pytorch is not installed: skipping the lucidrains comparison rows "
              "(pip install video-diffusion-pytorch)", file=sys.stderr)
    variants = {"ours": (16, 8), "ours-attn-all": (32, 16, 8)}  # paper-like (no attention at the top level) and all
    if have_theirs:
        variants["lucidrains"] = ()
    results: dict[str, list[dict]] = {k: [] for k in variants}
    for _ in range(rounds):  # memory, sampling rate, parameters: one process per variant and round
        for key, attention in variants.items():
            results[key].append(_run("theirs" if key == "lucidrains" else "ours", m, device, 1, attention, threads))
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_interleaved, args=(variants, m, device, rounds * steps, threads, queue))
    process.start()
    step_times = queue.get()
    process.join()
    out = []
    labels = {
        "ours": "video_diffusion (attention at 16, 8 + middle)",
        "ours-attn-all": "video_diffusion (attention at 32, 16, 8 + middle)",
        "lucidrains": "video-diffusion-pytorch 0.7 Unet3D (linear attn all levels, temporal all levels)",
    }
    for key, runs in results.items():
        config = f"{labels[key]} {m.name()} {device}" + (f" {threads} thread(s)" if device == "cpu" else "")

        def median(field: str, runs: list[dict] = runs) -> float:
            return statistics.median(r[field] for r in runs)

        out += [
            ("train step", config, round(1000 * statistics.median(step_times[key]), 1), "ms"),
            ("sampling", config + f" {m.sampling_steps} steps", round(median("samples_per_s"), 3), "videos/s"),
            ("parameters", config, runs[0]["params"], "count"),
            ("peak memory (training, above model build)", config, round(median("peak_mb"), 1), "MiB"),
        ]
    if have_theirs:
        ratios = [a / b for a, b in zip(step_times["ours"], step_times["lucidrains"])]  # step by step, same load
        out.append(("train step ratio ours/lucidrains (median of per-step ratios)", m.name(),
                    round(statistics.median(ratios), 3), "x"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating measurement rounds (median reported)")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per round, after 2 warm-up")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per measurement (1: steadiest when shared)")
    args = parser.parse_args()
    print("what,config,value,unit")
    for row in rows(args.rounds, args.steps, args.device, args.threads):
        print(",".join(str(v) for v in row))


if __name__ == "__main__":
    main()
