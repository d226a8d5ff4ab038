"""Video diffusion speed on CPU (or GPU), ours against `video-diffusion-pytorch` (lucidrains), at two configs.

Configs (`CONFIGS`): "small" (batch 2, 8x32x32, 32 channels, multipliers 1-2-4) and "realistic" (batch 2, 16x64x64,
64 channels, multipliers 1-2-4-8, our attention at 32 and 16 pixels plus the middle block). At each, three U-Nets:
ours at the same hyper-parameters as theirs (base channels, multipliers, 2 blocks per level, frames, resolution,
batch, attention head width, conditioning MLP of 4 x base channels in 2 layers), ours narrowed to their parameter
count, and theirs. Fairness: neither side uses dropout (ours is built with dropout 0; theirs has none) and neither
updates an EMA inside the timed step; both use Adam (ours: its `configure_optimizers`, fused; theirs: plain Adam,
lr 3e-4, betas 0.9/0.99); both sample with the same number of ancestral steps; threads are set in every child.
Their U-Net has more attention than ours: linear spatial attention and full temporal attention at every level,
full spatial attention in the middle; ours has full spatial + temporal attention at the listed resolutions and the
middle (the paper's placement), and one more residual block per level on the way up (DDPM's U-Net).

Training steps are timed in one child process with the U-Nets alternating step by step, so that load from other
processes (the machine may be shared) hits all alike; rows give medians and the median of per-step ratios.
Sampling rate, peak memory and FLOPs per training step (torch's FlopCounterMode: matrix products, convolutions
and attention) come from one fresh child per U-Net. Every child is time-bound (`--timeout`): a
side that fails, dies or hangs gives a row with the reason instead of stalling the run.

`video-diffusion-pytorch` is not a dependency of the zoo, and `pip install video-diffusion-pytorch` would replace
torch and torchvision here (its torchvision pin pulls a CUDA wheel that breaks torchmetrics). Install it without
its dependencies, beside the environment or into it:

    pip install --no-deps --target /tmp/vdp video-diffusion-pytorch einops-exts rotary-embedding-torch
    python benchmarks/models_video_diffusion.py --peer-path /tmp/vdp [--configs small realistic] [--threads 1 2]

(its other imports, einops, tqdm and Pillow, are zoo dependencies already; torchvision is only used by its image
Trainer, so where it cannot be imported a stub stands in for it, installed after the zoo is imported).

Prints CSV rows `what,config,value,unit`; `rows()` returns them for `benchmarks/models.py`.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing as mp
import os
import queue as queue_module
import resource
import statistics
import sys
import time
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


@dataclass(frozen=True)
class Config:
    """One comparison config (both sides)."""

    base_channels: int
    channel_mults: tuple[int, ...]
    frames: int
    resolution: int
    batch: int
    head_dim: int  # ours: channels per head; theirs: attn_dim_head (with 4 heads)
    attention: tuple[int, ...]  # our attention resolutions (pixels), besides the middle block
    matched_channels: int  # our base channels at (about) their parameter count
    sampling_steps: int
    blocks_per_level: int = 2

    def name(self) -> str:
        return (f"b{self.batch} {self.frames}x{self.resolution}^2 ch{self.base_channels} "
                f"mults{'-'.join(map(str, self.channel_mults))} blocks{self.blocks_per_level}")


CONFIGS = {
    "small": Config(32, (1, 2, 4), 8, 32, 2, 32, (16, 8), 24, 16),
    "realistic": Config(64, (1, 2, 4, 8), 16, 64, 2, 64, (32, 16), 48, 4),
}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ours(m: Config, device: str, channels: int):
    from zoo.models.base import VideoSpec
    from zoo.models.video_diffusion import VideoDiffusion, VideoDiffusionConfig

    config = VideoDiffusionConfig(
        base_channels=channels, channel_mults=m.channel_mults, blocks_per_level=m.blocks_per_level,
        attention_resolutions=m.attention, head_dim=m.head_dim, emb_dim=4 * channels, emb_layers=2, dropout=0.0,
        sampling_steps=m.sampling_steps, sampler="ancestral",
    )
    model = VideoDiffusion(config, VideoSpec(3, m.frames, m.resolution, 0)).to(device)
    optimizer = model.configure_optimizers()

    def step(videos):
        loss = model.diffusion_loss(videos, None, m.frames)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

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
    import zoo.models.video_diffusion  # noqa: F401 - first, so Lightning / torchmetrics never see the stub

    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - missing or built for another torch: only its Trainer would need it
        for name in [k for k in sys.modules if k.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        stub = _Stub("torchvision")
        stub.transforms, stub.utils = _Stub("torchvision.transforms"), _Stub("torchvision.utils")
        sys.modules.update({"torchvision": stub, "torchvision.transforms": stub.transforms,
                            "torchvision.utils": stub.utils})


def _theirs(m: Config, device: str):
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


def _build(key: str, m: Config, device: str):
    if key == "lucidrains":
        return _theirs(m, device)
    return _ours(m, device, m.matched_channels if key == "ours-matched" else m.base_channels)


def _child(job, peer_path: str | None, threads: int, out, *args) -> None:
    """Child entry: runs `job(*args)` and puts its result, or {"error": ...}."""
    try:
        if peer_path:
            sys.path.insert(0, peer_path)
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        out.put(job(*args))
    except BaseException as e:  # noqa: BLE001 - reported as a row by the parent
        out.put({"error": f"{type(e).__name__}: {e}".splitlines()[0][:200], "trace": traceback.format_exc()})


def _flop_counter():
    """torch's `FlopCounterMode`, taught the CPU fused-attention kernel (it registers only the GPU ones)."""
    from torch.utils import flop_counter

    aten = torch.ops.aten
    if aten._scaled_dot_product_flash_attention_for_cpu not in flop_counter.flop_registry:
        # the exported formulas are already wrapped to take shapes: registered raw, so they are not wrapped twice
        flop_counter.register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu, get_raw=True)(
            flop_counter.sdpa_flop)
        flop_counter.register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu_backward, get_raw=True)(
            flop_counter.sdpa_backward_flop)
    return flop_counter.FlopCounterMode(display=False)


def _measure(key: str, m: Config, device: str) -> dict:
    """Sampling rate, parameters, peak memory (after 1 warm-up + 1 measured training step) and FLOPs per training
    step (matrix products, convolutions and attention, forward and backward) of one U-Net."""
    net, step, sample = _build(key, m, device)
    videos = torch.rand(m.batch, 3, m.frames, m.resolution, m.resolution, device=device) * 2 - 1
    base_rss = _rss_mb()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    for _ in range(2):
        step(videos)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else _rss_mb() - base_rss
    start = time.perf_counter()
    with torch.no_grad():
        sample()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    samples_per_s = m.batch / (time.perf_counter() - start)
    with _flop_counter() as counter:
        step(videos)
    return {"samples_per_s": samples_per_s, "params": sum(p.numel() for p in net.parameters()), "peak_mb": peak,
            "gflop": counter.get_total_flops() / 1e9}


def _interleaved(keys: list[str], m: Config, device: str, steps: int) -> dict:
    """Every U-Net built side by side, their training steps alternating; {key: [step seconds]}."""
    steppers = {k: _build(k, m, device)[1] for k in keys}
    videos = torch.rand(m.batch, 3, m.frames, m.resolution, m.resolution, device=device) * 2 - 1
    times: dict[str, list[float]] = {k: [] for k in keys}
    for i in range(steps + 1):  # one warm-up round
        for key, step in steppers.items():
            start = time.perf_counter()
            step(videos)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if i:
                times[key].append(time.perf_counter() - start)
    return times


def _run(job, args: tuple, peer_path: str | None, threads: int, timeout: float) -> dict:
    """`job(*args)` in a fresh spawned child, at most `timeout` seconds; {"error": reason} when it fails."""
    context = mp.get_context("spawn")
    out = context.Queue()
    process = context.Process(target=_child, args=(job, peer_path, threads, out, *args), daemon=True)
    process.start()
    deadline = time.monotonic() + timeout
    result = None
    while result is None:
        try:
            result = out.get(timeout=min(5.0, max(0.1, deadline - time.monotonic())))
        except queue_module.Empty:
            if not process.is_alive():
                result = {"error": f"child died with exit code {process.exitcode}"}
            elif time.monotonic() > deadline:
                result = {"error": f"timed out after {timeout:.0f} s"}
    if process.is_alive():
        process.join(timeout=10)
    if process.is_alive():
        process.kill()
        process.join()
    if "error" in result and "trace" in result:
        print(result["trace"], file=sys.stderr)
    return result


LABELS = {
    "ours": "video_diffusion (same hyper-parameters)",
    "ours-matched": "video_diffusion (narrowed to their parameter count)",
    "lucidrains": "video-diffusion-pytorch 0.7 Unet3D",
}


def config_rows(m: Config, device: str, threads: int, steps: int, peer_path: str | None, timeout: float,
                have_theirs: bool, measure: bool = True) -> list[tuple]:
    keys = ["ours", "ours-matched"] + (["lucidrains"] if have_theirs else [])
    where = f"{m.name()} {device}" + (f" {threads} thread(s)" if device == "cpu" else "")
    out: list[tuple] = []
    timed = _run(_interleaved, (keys, m, device, steps), peer_path, threads, timeout)
    if "error" in timed:  # one side failed: time the sides apart, so the others still give rows
        for key in keys:
            alone = _run(_interleaved, ([key], m, device, steps), peer_path, threads, timeout)
            timed[key] = alone.get(key, alone.get("error"))
    for key in keys:
        config = f"{LABELS[key]} {where}" + (f" ch{m.matched_channels}" if key == "ours-matched" else "")
        if isinstance(timed.get(key), str):
            out.append(("train step FAILED", config, timed[key], "reason"))
            continue
        out.append(("train step", config, round(1000 * statistics.median(timed[key]), 1), "ms"))
        stats = _run(_measure, (key, m, device), peer_path, threads, timeout) if measure else {}
        if not stats:
            pass
        elif "error" in stats:
            out.append(("sampling/memory FAILED", config, stats["error"], "reason"))
        else:
            out += [
                ("sampling", config + f" {m.sampling_steps} steps", round(stats["samples_per_s"], 4), "videos/s"),
                ("parameters", config, stats["params"], "count"),
                ("FLOPs per training step (forward + backward)", config, round(stats["gflop"], 1), "GFLOP"),
                ("peak memory (2 training steps, above model build)", config, round(stats["peak_mb"], 1), "MiB"),
            ]
        if key != "lucidrains" and have_theirs and isinstance(timed.get("lucidrains"), list):
            ratios = [a / b for a, b in zip(timed[key], timed["lucidrains"])]  # step by step, same load
            out += [(f"train step ratio {key}/lucidrains ({stat} of {len(ratios)} per-step ratios)", where,
                     round(fn(ratios), 3), "x") for stat, fn in (("median", statistics.median), ("min", min),
                                                                  ("max", max))]
    return out


def rows(steps: int = 3, device: str = "cpu", threads: tuple[int, ...] = (1,), configs: tuple[str, ...] = ("small",),
         peer_path: str | None = None, timeout: float = 1800.0, measure: bool = True) -> list[tuple]:
    peer_path = peer_path or os.environ.get("VIDEO_DIFFUSION_PYTORCH_PATH")
    if peer_path:
        sys.path.insert(0, peer_path)
    have_theirs = importlib.util.find_spec("video_diffusion_pytorch") is not None
    if not have_theirs:
        print("video-diffusion-pytorch is not importable: skipping its rows (see this script's docstring to install "
              "it without replacing torch)", file=sys.stderr)
    out = []
    for name in configs:
        for n in threads:
            out += config_rows(CONFIGS[name], device, n, steps, peer_path, timeout, have_theirs, measure)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed training-step rounds, after 1 warm-up round")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="CPU threads per child")
    parser.add_argument("--configs", nargs="+", default=["small"], choices=list(CONFIGS))
    parser.add_argument("--peer-path", default=None,
                        help="directory holding video_diffusion_pytorch (env VIDEO_DIFFUSION_PYTORCH_PATH)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed to each child process")
    parser.add_argument("--steps-only", action="store_true", help="only the interleaved training steps (no sampling "
                        "rate, parameters or memory: one fresh child per U-Net less)")
    args = parser.parse_args()
    print("what,config,value,unit", flush=True)
    for row in rows(args.steps, args.device, tuple(args.threads), tuple(args.configs), args.peer_path, args.timeout,
                    not args.steps_only):
        print(",".join(str(v) for v in row), flush=True)


if __name__ == "__main__":
    main()
