"""VideoGPT speed: VQ-VAE and prior training steps, and sampling throughput with and without the key/value cache.

    python benchmarks/models_videogpt.py [--threads 1] [--device cpu] [--lengths 64 256 1024]

Prints CSV rows `what,config,value,unit`. Training steps use the tiny configs (experiments/*/tiny.yaml) on random
clips; the prior's step includes encoding the clips with the frozen VQ-VAE, as in training. Sampling times the
tiny prior decoding `n` sequences of T'H'W' codes: the cache costs O(L) per code, recomputing the prefix O(L^2), so
the speed-up should grow roughly linearly with the length L.

Against the official VQ-VAE (`wilson1yan/VideoGPT`, `videogpt/vqvae.py`; not a dependency and never vendored): clone
it anywhere and point `--videogpt-dir` (or `VIDEOGPT_DIR`) at the clone. Both VQ-VAEs are then built at identical
hyper-parameters (hidden width, residual width = hidden / 2 as the official code has it, residual layers, 2 axial
heads, down-sampling, codebook size and width: the same parameter count) and their training steps (forward, loss,
backward, Adam) alternate on the same random batch in one process, at 1 and 2 threads; rows give the median of the
per-pair ratios ours / official. The official package's `__init__` imports its data and download code (h5py,
scikit-video, ...): only `vqvae.py`, `attention.py` and `utils.py` are loaded, with `skvideo` stubbed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange

from zoo.config import resolve_config
from zoo.models.base import VideoSpec
from zoo.models.videogpt.gpt import Transformer, VideoGPTConfig, decode_codes
from zoo.models.videogpt.vqvae import VideoGPTVQVAE, VQVAEConfig

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def tiny(model_key: str, config_cls):
    return resolve_config(model_key, "shapes", config_cls, [EXPERIMENTS / model_key / "tiny.yaml"]).model


def timed(fn, repeats: int, warmup: int = 1, device: str = "cpu") -> float:
    """Median seconds of `fn()` over `repeats` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device != "cpu":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device != "cpu":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def vqvae_step(spec: VideoSpec, batch: int, device: str) -> float:
    model = VideoGPTVQVAE(tiny("videogpt_vqvae", VQVAEConfig), spec).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    video = torch.rand(batch, spec.channels, spec.frames, spec.resolution, spec.resolution, device=device) * 2 - 1

    def step():
        reconstruction, quantized = model(video)
        loss = model.reconstruction_loss(video, reconstruction) + quantized.commitment_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return timed(step, repeats=10, device=device)


def prior_step(spec: VideoSpec, batch: int, device: str) -> float:
    vqvae = VideoGPTVQVAE(tiny("videogpt_vqvae", VQVAEConfig), spec).to(device).eval()
    config = tiny("videogpt", VideoGPTConfig)
    book = vqvae.codebook
    transformer = Transformer(config, vqvae.latent_shape, book.dim, book.size, 0).to(device).train()
    optimizer = torch.optim.Adam(transformer.parameters(), lr=1e-4)
    video = torch.rand(batch, spec.channels, spec.frames, spec.resolution, spec.resolution, device=device) * 2 - 1

    def step():
        codes = rearrange(vqvae.encode(video), "b t h w -> b (t h w)")
        logits = transformer(F.embedding(codes, book.embeddings))
        loss = F.cross_entropy(rearrange(logits, "b l k -> (b l) k"), codes.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return timed(step, repeats=10, device=device)


def latent_shape(length: int) -> tuple[int, int, int]:
    """A (T', H', W') grid of `length` codes with T' = 4 (or fewer) and a square frame."""
    t = 4 if length >= 64 else 1
    side = int(round((length // t) ** 0.5))
    if t * side * side != length:
        raise SystemExit(f"--lengths: {length} is not 4 x side^2 (or side^2 below 64)")
    return t, side, side


def sampling(length: int, n: int, use_cache: bool, device: str) -> float:
    """Codes per second decoding `n` sequences of `length` codes with the tiny prior."""
    config = tiny("videogpt", VideoGPTConfig)
    torch.manual_seed(0)
    transformer = Transformer(config, latent_shape(length), 16, 64, 0).to(device).eval()
    torch.nn.init.normal_(transformer.head.weight, std=0.5)
    table = torch.randn(64, 16, device=device)
    uniform = torch.rand(n, length, device=device)
    seconds = timed(lambda: decode_codes(transformer, table, uniform, use_cache=use_cache), repeats=1, warmup=0,
                    device=device)
    return n * length / seconds


def rows(threads: int = 1, device: str = "cpu", lengths: tuple[int, ...] = (64, 256, 1024), samples: int = 4):
    """The VideoGPT rows `(what, config, value, unit)`; also run by `benchmarks/models.py`."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    where = f"{device} {threads} thread(s)"
    spec = VideoSpec(3, 8, 32, 0)
    out = [
        ("vqvae_train_step", f"tiny 8x32x32 batch 8 ({where})", round(vqvae_step(spec, 8, device) * 1e3, 1), "ms"),
        ("prior_train_step", f"tiny 256 codes batch 8 incl. VQ-VAE encode ({where})",
         round(prior_step(spec, 8, device) * 1e3, 1), "ms"),
    ]
    for length in lengths:
        cached = sampling(length, samples, True, device)
        uncached = sampling(length, samples, False, device)
        config = f"tiny prior L={length} n={samples} ({where})"
        out += [("sampling_kv_cache", config, round(cached), "codes/s"),
                ("sampling_no_cache", config, round(uncached), "codes/s"),
                ("kv_cache_speedup", config, round(cached / uncached, 1), "x")]
    torch.set_num_threads(previous)
    return out


# The comparison configs (the same in both implementations): a small one and the paper's UCF-101 network.
OFFICIAL_CONFIGS = {
    "small": dict(hidden=64, layers=2, downsample=(2, 4, 4), codes=512, dim=64, frames=8, resolution=32, batch=4),
    "paper": dict(hidden=240, layers=4, downsample=(4, 4, 4), codes=1024, dim=256, frames=16, resolution=64, batch=2),
}


def _official_vqvae_class(videogpt_dir: str):
    """`VQVAE` from a clone of wilson1yan/VideoGPT, loading only the modules it needs."""
    package_dir = Path(videogpt_dir) / "videogpt"
    if not (package_dir / "vqvae.py").is_file():
        raise FileNotFoundError(f"{package_dir / 'vqvae.py'} not found: point --videogpt-dir at a VideoGPT clone")
    package = types.ModuleType("videogpt")
    package.__path__ = [str(package_dir)]  # a namespace for its relative imports, without running its __init__
    sys.modules["videogpt"] = package
    if "skvideo" not in sys.modules:  # utils.py imports scikit-video for its video writer only
        sys.modules["skvideo"] = types.ModuleType("skvideo")
        sys.modules["skvideo.io"] = sys.modules["skvideo"].io = types.ModuleType("skvideo.io")
    from videogpt.vqvae import VQVAE

    return VQVAE


def _training_steps(ours: VideoGPTVQVAE, theirs, video: torch.Tensor):
    """One training step of each (forward, loss, backward, each one's configure_optimizers Adam) on `video`."""
    our_optimizer, their_optimizer = ours.configure_optimizers(), theirs.configure_optimizers()

    def our_step():
        reconstruction, quantized = ours(video)
        loss = ours.reconstruction_loss(video, reconstruction) + quantized.commitment_loss
        our_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        our_optimizer.step()

    def their_step():
        loss = theirs.training_step({"video": video * 0.5}, 0)  # it takes [-0.5, 0.5]; ours scales inside
        their_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        their_optimizer.step()

    return our_step, their_step


def official_rows(videogpt_dir: str, steps: int = 5, threads: tuple[int, ...] = (1, 2), configs=OFFICIAL_CONFIGS):
    """Training step of our VQ-VAE against the official one, alternating step by step."""
    official_cls = _official_vqvae_class(videogpt_dir)
    previous = torch.get_num_threads()
    out = []
    for name, c in configs.items():
        spec = VideoSpec(3, c["frames"], c["resolution"], 0)
        torch.manual_seed(0)
        ours = VideoGPTVQVAE(VQVAEConfig(hidden_channels=c["hidden"], residual_channels=c["hidden"] // 2,
                                         residual_layers=c["layers"], downsample=c["downsample"],
                                         codebook_size=c["codes"], embedding_dim=c["dim"]), spec).train()
        theirs = official_cls(argparse.Namespace(embedding_dim=c["dim"], n_codes=c["codes"], n_hiddens=c["hidden"],
                                                 n_res_layers=c["layers"], downsample=c["downsample"],
                                                 sequence_length=c["frames"], resolution=c["resolution"])).train()
        video = torch.rand(c["batch"], 3, c["frames"], c["resolution"], c["resolution"]) * 2 - 1
        our_step, their_step = _training_steps(ours, theirs, video)
        n_ours = sum(p.numel() for p in ours.parameters())
        n_theirs = sum(p.numel() for p in theirs.parameters())
        label = (f"{name}: hidden {c['hidden']}, {c['layers']} res layers, down {'x'.join(map(str, c['downsample']))}"
                 f", {c['codes']}x{c['dim']} codes, batch {c['batch']} {c['frames']}x{c['resolution']}^2")
        for n_threads in threads:
            torch.set_num_threads(n_threads)
            times: dict[str, list[float]] = {"ours": [], "official": []}
            for i in range(steps + 1):  # one warm-up pair
                for key, step in (("ours", our_step), ("official", their_step)):
                    start = time.perf_counter()
                    step()
                    if i:
                        times[key].append(time.perf_counter() - start)
            where = f"{label} cpu {n_threads} thread(s)"
            out += [("vqvae_step ours", where, round(1e3 * statistics.median(times["ours"]), 1), "ms"),
                    ("vqvae_step official", where, round(1e3 * statistics.median(times["official"]), 1), "ms"),
                    ("vqvae_step ratio ours/official (median of per-pair ratios)", where,
                     round(statistics.median(a / b for a, b in zip(times["ours"], times["official"])), 3), "x")]
        out += [("vqvae parameters ours", label, n_ours, "count"), ("vqvae parameters official", label, n_theirs,
                                                                       "count")]
    torch.set_num_threads(previous)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: stable on shared CPUs)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 1024], help="codes per sequence")
    parser.add_argument("--samples", type=int, default=4, help="sequences decoded in parallel")
    parser.add_argument("--videogpt-dir", default=os.environ.get("VIDEOGPT_DIR"),
                        help="a clone of wilson1yan/VideoGPT: adds the rows against its VQ-VAE (env VIDEOGPT_DIR)")
    parser.add_argument("--official-only", action="store_true", help="only the rows against the official VQ-VAE")
    parser.add_argument("--official-configs", nargs="+", default=list(OFFICIAL_CONFIGS), choices=list(OFFICIAL_CONFIGS))
    parser.add_argument("--official-steps", type=int, default=5, help="timed step pairs per config and thread count")
    parser.add_argument("--official-threads", type=int, nargs="+", default=[1, 2], help="thread counts")
    args = parser.parse_args()
    print("what,config,value,unit")
    if not args.official_only:
        for row in rows(args.threads, args.device, tuple(args.lengths), args.samples):
            print(",".join(str(v) for v in row), flush=True)
    if args.videogpt_dir:
        for key in args.official_configs:  # rows as soon as each config and thread count is done
            for n in args.official_threads:
                for row in official_rows(args.videogpt_dir, args.official_steps, (n,), {key: OFFICIAL_CONFIGS[key]}):
                    print(",".join(str(v) for v in row), flush=True)
    else:
        print("no --videogpt-dir / VIDEOGPT_DIR: skipping the rows against the official VQ-VAE", file=sys.stderr)


if __name__ == "__main__":
    main()
