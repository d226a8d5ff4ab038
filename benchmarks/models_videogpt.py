"""VideoGPT speed: VQ-VAE and prior training steps, and sampling throughput with and without the key/value cache.

    python benchmarks/models_videogpt.py [--threads 1] [--device cpu] [--lengths 64 256 1024]

Prints CSV rows `what,config,value,unit`. Training steps use the tiny configs (experiments/*/tiny.yaml) on random
clips; the prior's step includes encoding the clips with the frozen VQ-VAE, as in training. Sampling times the
tiny prior decoding `n` sequences of T'H'W' codes: the cache costs O(L) per code, recomputing the prefix O(L^2), so
the speed-up should grow roughly linearly with the length L.
"""

from __future__ import annotations

import argparse
import time
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: stable on shared CPUs)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 1024], help="codes per sequence")
    parser.add_argument("--samples", type=int, default=4, help="sequences decoded in parallel")
    args = parser.parse_args()
    print("what,config,value,unit")
    for row in rows(args.threads, args.device, tuple(args.lengths), args.samples):
        print(",".join(str(v) for v in row), flush=True)


if __name__ == "__main__":
    main()
