"""How fast VideoGPT's VQ-VAE learns `shapes`, ours against the official `videogpt/vqvae.py`, trained side by side.

    python benchmarks/vqvae_learning_vs_official.py --videogpt-dir CLONE [--steps 1000] [--eval-every 200] [--lr 1e-3]

Both VQ-VAEs are built at the same small size (hidden 32, residual 16, 1 residual layer, down-sampling 2x4x4, 64 codes
of width 16; 8x32x32 clips), start from seed 0, and train in one plain loop (no Lightning) on the same 256 `shapes`
training clips, the same random batches of 8, each with Adam at the same learning rate and its own loss. Every
`--eval-every` steps both reconstruct the same 64 held-out clips, scored by `fvd_shapes` against 64 other real clips
(the learning checks' distance, `tests/models/distances.py`). Answers whether a slow start on `shapes` (grey blobs
for the first few hundred steps) is the architecture or this implementation. CSV rows `what,config,value,unit`.

The official code is not a dependency: clone wilson1yan/VideoGPT anywhere; only its `vqvae.py`, `attention.py` and
`utils.py` are loaded (see `benchmarks/models_videogpt.py`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.models_videogpt import _official_vqvae_class  # noqa: E402
from tests.models.distances import fvd_shapes_distance  # noqa: E402
from zoo.config import DataConfig  # noqa: E402
from zoo.datasets import build_dataset  # noqa: E402
from zoo.models.base import VideoSpec  # noqa: E402
from zoo.models.videogpt.vqvae import VideoGPTVQVAE, VQVAEConfig  # noqa: E402

SIZE = dict(hidden=32, residual=16, layers=1, downsample=(2, 4, 4), codes=64, dim=16, frames=8, resolution=32)


def shapes_clips(num: int, seed: int) -> torch.Tensor:
    """`num` float clips `[N, 3, T, H, W]` in [-1, 1] of a `shapes` dataset drawn with `seed`."""
    dataset = build_dataset("shapes", DataConfig(frames=SIZE["frames"], resolution=SIZE["resolution"],
                                                 num_videos=max(num, 8), seed=seed))
    return torch.stack([dataset[i]["video"] for i in range(num)])


def build_pair(videogpt_dir: str, lr: float):
    """(ours, theirs), both initialised from seed 0 at `SIZE`, in training mode."""
    torch.manual_seed(0)
    ours = VideoGPTVQVAE(VQVAEConfig(hidden_channels=SIZE["hidden"], residual_channels=SIZE["residual"],
                                     residual_layers=SIZE["layers"], downsample=SIZE["downsample"],
                                     codebook_size=SIZE["codes"], embedding_dim=SIZE["dim"], lr=lr),
                         VideoSpec(3, SIZE["frames"], SIZE["resolution"], 0)).train()
    torch.manual_seed(0)
    theirs = _official_vqvae_class(videogpt_dir)(argparse.Namespace(
        embedding_dim=SIZE["dim"], n_codes=SIZE["codes"], n_hiddens=SIZE["hidden"], n_res_layers=SIZE["layers"],
        downsample=SIZE["downsample"], sequence_length=SIZE["frames"], resolution=SIZE["resolution"])).train()
    return ours, theirs


@torch.no_grad()
def official_reconstruction(theirs, clips: torch.Tensor) -> torch.Tensor:
    """The official model's reconstruction in [-1, 1] (it works in [-0.5, 0.5]), in eval mode."""
    theirs.eval()
    reconstruction = theirs.decode(theirs.encode(clips * 0.5)).clamp(-0.5, 0.5) * 2
    theirs.train()
    return reconstruction


def rows(videogpt_dir: str, steps: int, eval_every: int, lr: float) -> list[tuple]:
    train, real, held_out = shapes_clips(256, 0), shapes_clips(64, 7), shapes_clips(64, 123)
    ours, theirs = build_pair(videogpt_dir, lr)
    our_optimizer = torch.optim.Adam(ours.parameters(), lr=lr)
    their_optimizer = torch.optim.Adam(theirs.parameters(), lr=lr)
    batches = torch.Generator().manual_seed(0)
    config = f"shapes 8x32x32, 256 clips, batch 8, Adam lr {lr:g}, hidden 32, 64x16 codes"
    out = []
    for step in range(1, steps + 1):
        clips = train[torch.randint(len(train), (8,), generator=batches)]
        reconstruction, quantized = ours(clips)
        loss = ours.reconstruction_loss(clips, reconstruction) + quantized.commitment_loss
        our_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        our_optimizer.step()
        their_loss = theirs.training_step({"video": clips * 0.5}, 0)
        their_optimizer.zero_grad(set_to_none=True)
        their_loss.backward()
        their_optimizer.step()
        if step % eval_every == 0 or step == steps:
            with torch.no_grad():
                fvd_ours = fvd_shapes_distance(real, ours.reconstruct(held_out))  # in eval mode, as the official
            fvd_theirs = fvd_shapes_distance(real, official_reconstruction(theirs, held_out))
            out += [("reconstruction fvd_shapes ours", f"{config}, step {step}", round(fvd_ours, 1), "fvd"),
                    ("reconstruction fvd_shapes official", f"{config}, step {step}", round(fvd_theirs, 1), "fvd")]
            for row in out[-2:]:
                print(",".join(str(v) for v in row), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videogpt-dir", default=os.environ.get("VIDEOGPT_DIR"), help="a clone of wilson1yan/VideoGPT")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not args.videogpt_dir:
        raise SystemExit("--videogpt-dir (or VIDEOGPT_DIR): a clone of wilson1yan/VideoGPT is needed")
    torch.set_num_threads(args.threads)
    print("what,config,value,unit", flush=True)
    rows(args.videogpt_dir, args.steps, args.eval_every, args.lr)


if __name__ == "__main__":
    main()
