"""`shapes_net`: the in-repo detector of the embedded `shapes` benchmark (its FVD / KVD / IS / ACD / PRDC).

Like the small MNIST classifiers behind MNIST FIDs, it is trained by the repository itself
(`zoo weights train shapes_net`, reproducible from a seed, ~14 minutes of one CPU core) and its weights ship inside
the package (`zoo/metrics/detectors/shapes_net.pt`, SHA-256 pinned in `weights.py`, checked on every load). It learns
everything the `shapes` generator draws (`zoo.datasets.shapes`): the class (shape x motion, 9 classes) and, by
regression, the hue, background level, size, first-frame centre, speed, rotation speed and scale-pulse rate.

Input convention (one way for every clip): uint8 `[B, T, H, W, C]` with T >= 8; the first 16 frames are kept when
T > 16 (no temporal resampling, so a clip's speed is what the detector sees); every frame is resized to 32 x 32 by
bilinear interpolation with antialiasing (`torch.nn.functional.interpolate(..., antialias=True)`); grey clips are
repeated to 3 channels; pixels -> [-1, 1]. The network is fully convolutional in time, so 8 to 16 frames all work.

Outputs: `features` (the 128 pooled penultimate activations, after ReLU; the FVD / KVD / PRDC space), class logits
(softmax = IS posteriors), regression outputs, corruption severities, and `frame_features` (per-frame embeddings for
ACD). Training corrupts half the clips (Gaussian noise, coloured speckle, blur, blockiness at a random severity) and
asks for the severity back, so the features respond to artefacts in proportion rather than by saturating.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from zoo.errors import ZooError
from zoo.metrics.detectors.weights import load_network

INPUT_SIZE = 32  # pixels (height = width) fed to the network
MAX_FRAMES = 16  # frames kept (the first ones)
MIN_FRAMES = 8  # shortest clip accepted
NUM_CLASSES = 9  # shapes' (shape, motion) labels
FEATURE_DIM = 128
ACD_STEPS = 4  # time steps of the per-frame features (ACD)
FRAME_DIM = 64  # size of one time step's feature vector
WEIGHTS_FILE = Path(__file__).with_name("shapes_net.pt")

# regression targets: name -> (offset, scale) that map the generator's range to about [-1, 1], and the motion that
# makes the quantity visible (None: always). Units: fractions of the resolution, grey levels, rad per frame.
TARGETS = {
    "hue_cos": (0.0, 1.0, None),
    "hue_sin": (0.0, 1.0, None),
    "background": (0.125, 0.125, None),
    "size": (0.17, 0.03, None),
    "centre_x": (0.5, 0.3, None),
    "centre_y": (0.5, 0.3, None),
    "speed": (0.06, 0.02, 0),
    "rotation_speed": (0.225, 0.075, 1),
    "scale_pulse": (0.325, 0.075, 2),
}

# training-time corruptions (`corrupt`): what generators get wrong early on. A fraction of the training clips gets one
# of them at a random severity in (0, 1]; class and regression targets stay those of the clean clip, and a head reads
# the severity of each kind back (0 for the clean clip), so the features grow with "how corrupted" instead of
# answering unseen artefacts with arbitrary, exploding activations (the detector trained on clean clips only scored
# std-64 Gaussian noise below std 16).
CORRUPTIONS = ("noise", "speckle", "blur", "blocks")
CORRUPT_FRACTION = 0.5  # share of training clips corrupted
NOISE_STD = 96.0  # grey levels (of 255) of additive Gaussian noise at severity 1
SPECKLE_RATE = 0.5  # share of pixels replaced by random colours at severity 1
BLUR_STD = 2.5  # pixels of a 32-pixel frame (scaled with the resolution) of the Gaussian blur at severity 1
BLOCK_SIZE = 8.0  # pixels of a 32-pixel frame (scaled): block size at severity 1 (area-downsampled, nearest-upsampled)


def shapes_input(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 `[B, T, H, W, C]` (T >= 8, C in {1, 3}) -> float `[B, 3, min(T, 16), 32, 32]` in [-1, 1]."""
    if pixels.dtype != torch.uint8 or pixels.ndim != 5 or pixels.shape[-1] not in (1, 3):
        raise ZooError(f"shapes_net takes uint8 videos [B, T, H, W, C] with C = 1 or 3, got {pixels.dtype} "
                       f"{tuple(pixels.shape)}")
    if pixels.shape[1] < MIN_FRAMES:
        raise ZooError(f"shapes_net needs clips of at least {MIN_FRAMES} frames, got {pixels.shape[1]}")
    b, t = pixels.shape[0], min(pixels.shape[1], MAX_FRAMES)
    x = rearrange(pixels[:, :t], "b t h w c -> (b t) c h w").float()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True)
    return rearrange(x / 127.5 - 1.0, "(b t) c h w -> b c t h w", b=b)


def _block(cin: int, cout: int, kernel: tuple, stride: tuple) -> nn.Sequential:
    padding = tuple(k // 2 for k in kernel)
    return nn.Sequential(nn.Conv3d(cin, cout, kernel, stride, padding, bias=False), nn.BatchNorm3d(cout),
                         nn.ReLU(inplace=True))


class ShapesNet(nn.Module):
    """A factorized (2+1)-D convolutional network (R(2+1)D-style, Tran et al. CVPR 2018) sized for CPUs.

    `[B, 3, T, 32, 32]` -> spatial 3x3 (32^2) -> spatial stride 2 + temporal 3 (16^2) -> spatial stride 2 +
    temporal 3 stride 2 (8^2, T/2) -> 3x3x3 stride (1, 2, 2) (4^2) -> average pool to (1, 2, 2) so position survives
    -> 256 -> Linear -> ReLU = the 128 features -> class, regression and corruption-severity heads.
    """

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.trunk = nn.Sequential(
            _block(3, w, (1, 3, 3), (1, 1, 1)),
            _block(w, 2 * w, (1, 3, 3), (1, 2, 2)), _block(2 * w, 2 * w, (3, 1, 1), (1, 1, 1)),
            _block(2 * w, 4 * w, (1, 3, 3), (1, 2, 2)), _block(4 * w, 4 * w, (3, 1, 1), (2, 1, 1)),
            _block(4 * w, 4 * w, (3, 3, 3), (1, 2, 2)),
        )
        self.embed = nn.Linear(4 * w * 4, FEATURE_DIM)
        self.classes = nn.Linear(FEATURE_DIM, NUM_CLASSES)
        self.regress = nn.Linear(FEATURE_DIM, len(TARGETS))
        self.severity = nn.Linear(FEATURE_DIM, len(CORRUPTIONS))  # per kind of `CORRUPTIONS`, 0 = clean

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(x)  # (B, 64, T/2, 4, 4)
        pooled = F.adaptive_avg_pool3d(h, (1, 2, 2)).flatten(1)  # (B, 256)
        features = F.relu(self.embed(pooled))
        # per-frame content embeddings for ACD: spatially pooled trunk activations at 4 time steps (T = 8..16 input
        # frames are 4..8 trunk steps; adaptive pooling makes the count fixed)
        frame_features = F.adaptive_avg_pool3d(h, (ACD_STEPS, 1, 1)).flatten(2).transpose(1, 2)  # (B, 4, 64)
        return {"features": features, "logits": self.classes(features), "regression": self.regress(features),
                "severity": self.severity(features), "frame_features": frame_features}


def load_shapes_net(path: str | Path | None = None) -> ShapesNet:
    """The network from a weights file (default: the shipped one), `weights_only=True`, in eval mode."""
    path = Path(path) if path is not None else WEIGHTS_FILE
    return load_network(ShapesNet(), path, "shapes_net", "zoo weights train shapes_net")


class ShapesExtractor(nn.Module):
    """uint8 `[B, T, H, W, C]` -> float64 `[B, 128]` features (FVD / KVD / PRDC); `probabilities` for IS;
    `frame_features` for ACD."""

    def __init__(self, network: ShapesNet, info, output: str = "features"):
        super().__init__()
        if output not in ("features", "probabilities", "frame_features"):
            raise ValueError(f"output must be features, probabilities or frame_features, got {output!r}")
        self.network, self.info, self.output = network.eval(), info, output
        dims = {"features": FEATURE_DIM, "probabilities": NUM_CLASSES, "frame_features": ACD_STEPS * FRAME_DIM}
        self.dim = dims[output]

    @torch.inference_mode()
    def run(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        device = next(self.network.parameters()).device
        return self.network(shapes_input(pixels.to(device)))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.run(pixels)
        if self.output == "probabilities":
            return out["logits"].double().softmax(1)
        if self.output == "frame_features":
            return out["frame_features"].double().flatten(1)  # (B, 4 * 64); ACD unflattens with FRAME_DIM
        return out["features"].double()


# -- training (`zoo weights train shapes_net`) --------------------------------------------------------------------


def targets_of(items: list[dict], resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalized regression targets `[B, 9]` and their visibility mask `[B, 9]` from `render_clip` items."""
    rows, masks = [], []
    for item in items:
        motion = int(item["label"]) % 3
        hue = float(item["hue"]) * 2 * math.pi
        raw = {
            "hue_cos": math.cos(hue), "hue_sin": math.sin(hue), "background": float(item["background"]),
            "size": float(item["size"]) / resolution, "centre_x": float(item["centre"][0]) / resolution,
            "centre_y": float(item["centre"][1]) / resolution,
            "speed": float(item["velocity"].norm()) / resolution,
            "rotation_speed": abs(float(item["rotation_speed"])), "scale_pulse": float(item["scale_pulse"]),
        }
        rows.append([(raw[k] - off) / scale for k, (off, scale, _) in TARGETS.items()])
        masks.append([float(m is None or m == motion) for _, _, m in TARGETS.values()])
    return torch.tensor(rows), torch.tensor(masks)


def _gaussian_blur(x: torch.Tensor, std: float) -> torch.Tensor:
    """Separable Gaussian blur of float `[N, C, H, W]` (edges repeated)."""
    radius = max(1, math.ceil(3 * std))
    kernel = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / std) ** 2)
    kernel = kernel / kernel.sum()
    n, c = x.shape[:2]
    planes = F.pad(rearrange(x, "n c h w -> (n c) 1 h w"), (radius,) * 4, mode="replicate")
    planes = F.conv2d(F.conv2d(planes, kernel.view(1, 1, 1, -1)), kernel.view(1, 1, -1, 1))
    return rearrange(planes, "(n c) 1 h w -> n c h w", n=n)


def corrupt(clip: torch.Tensor, kind: str, severity: float, generator: torch.Generator) -> torch.Tensor:
    """One uint8 clip `[T, H, W, C]` corrupted by `kind` (of `CORRUPTIONS`) at `severity` in [0, 1]; sizes in pixels
    scale with the resolution (the units of `CORRUPTIONS`' constants are for 32-pixel frames)."""
    x = clip.float()
    t, h, w, c = x.shape
    if kind == "noise":  # independent per pixel, channel and frame
        x = x + severity * NOISE_STD * torch.randn(x.shape, generator=generator)
    elif kind == "speckle":  # salt-and-pepper in colour: pixels replaced by random RGB values
        hit = torch.rand((t, h, w, 1), generator=generator) < severity * SPECKLE_RATE
        x = torch.where(hit, torch.randint(0, 256, x.shape, generator=generator).float(), x)
    elif kind == "blur":
        planes = rearrange(x, "t h w c -> t c h w")
        x = rearrange(_gaussian_blur(planes, max(severity * BLUR_STD * h / INPUT_SIZE, 0.3)), "t c h w -> t h w c")
    elif kind == "blocks":
        block = max(1.0 + severity * (BLOCK_SIZE - 1) * h / INPUT_SIZE, 1.0)
        small = F.interpolate(rearrange(x, "t h w c -> t c h w"), size=(max(1, round(h / block)),
                                                                           max(1, round(w / block))), mode="area")
        x = rearrange(F.interpolate(small, size=(h, w), mode="nearest"), "t c h w -> t h w c")
    else:
        raise ValueError(f"unknown corruption {kind!r}; valid: {', '.join(CORRUPTIONS)}")
    return x.round().clamp(0, 255).to(torch.uint8)


def make_batch(data_seed: int, rng: np.random.Generator, size: int, num_videos: int,
               corrupt_fraction: float = 0.0) -> tuple:
    """A batch of fresh clips: one clip length (8 or 16) and source resolution (16, 32 or 64) per batch, random
    videos and start frames; each clip corrupted with probability `corrupt_fraction` (one kind of `CORRUPTIONS`,
    severity uniform in (0, 1], at the source resolution). Returns (input `[B, 3, T, 32, 32]`, labels, targets,
    masks, severities `[B, len(CORRUPTIONS)]`)."""
    from zoo.datasets.shapes import render_clip  # training only: the detector itself never needs the dataset

    frames = int(rng.choice([8, 16]))
    resolution = int(rng.choice([16, 32, 32, 64]))
    items = [render_clip(data_seed, int(rng.integers(num_videos)), frames, resolution, 1, int(rng.integers(48)))
             for _ in range(size)]
    pixels = torch.stack([it["pixels"] for it in items])
    severities = torch.zeros(size, len(CORRUPTIONS))
    if corrupt_fraction > 0:
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        for i in range(size):
            if rng.random() < corrupt_fraction:
                kind, severity = int(rng.integers(len(CORRUPTIONS))), 1.0 - float(rng.random())  # (0, 1]
                pixels[i] = corrupt(pixels[i], CORRUPTIONS[kind], severity, generator)
                severities[i, kind] = severity
    targets, masks = targets_of(items, resolution)
    return shapes_input(pixels), torch.stack([it["label"] for it in items]), targets, masks, severities


def heldout_set(seed: int, count: int, corrupt_fraction: float = 0.0) -> list[tuple]:
    """Held-out batches from another data seed (videos never seen in training), all lengths and resolutions; clean
    by default, else a corrupted share as in training (another random stream)."""
    rng = np.random.default_rng([seed, 1] if corrupt_fraction == 0 else [seed, 2])
    return [make_batch(10_000 + seed, rng, 50, 100_000, corrupt_fraction) for _ in range(count // 50)]


@torch.no_grad()
def evaluate_heldout(net: ShapesNet, batches: list[tuple]) -> dict[str, float]:
    """Held-out accuracy and mean absolute regression errors in natural units (see `TARGETS`)."""
    net.eval()
    correct = total = 0
    abs_err = torch.zeros(len(TARGETS))
    counts = torch.zeros(len(TARGETS))
    severity_err = 0.0
    for x, labels, targets, masks, severities in batches:
        out = net(x)
        correct += int((out["logits"].argmax(1) == labels).sum())
        total += len(labels)
        scales = torch.tensor([s for _, s, _ in TARGETS.values()])
        abs_err += ((out["regression"] - targets).abs() * scales * masks).sum(0)
        counts += masks.sum(0)
        severity_err += float((out["severity"] - severities).abs().sum())
    err = (abs_err / counts.clamp(min=1)).tolist()
    names = list(TARGETS)
    result = {"accuracy": correct / total}
    result.update({f"mae_{n}": e for n, e in zip(names, err) if not n.startswith("hue")})
    result["mae_hue_vector"] = (err[0] + err[1]) / 2
    result["mae_severity"] = severity_err / (total * len(CORRUPTIONS))  # over every kind's output, 0 = clean
    return result


SEVERITY_WEIGHT = 4.0  # weight of the corruption-severity MSE (severities in [0, 1]) in the training loss


def train_shapes_net(seed: int = 0, steps: int = 3000, batch_size: int = 32, lr: float = 3e-3,
                     out: str | Path = WEIGHTS_FILE, heldout: int = 500, log=None,
                     corrupt_fraction: float = CORRUPT_FRACTION) -> dict[str, float]:
    """Train `ShapesNet` from `seed` on freshly rendered clips (data seed `seed`, 100 000 videos, a share
    `corrupt_fraction` corrupted) and write its state dict atomically to `out`. AdamW with a one-cycle schedule;
    cross-entropy + masked MSE on the regressions + `SEVERITY_WEIGHT` x MSE on the corruption severities.
    Returns the held-out metrics (data seed 10 000 + seed): clean clips, and `corrupted_*` on a half-corrupted set."""
    log = log or (lambda message: print(message, flush=True))
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 0])
    net = ShapesNet()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    start = time.time()
    for step in range(1, steps + 1):
        net.train()
        x, labels, targets, masks, severities = make_batch(seed, rng, batch_size, 100_000, corrupt_fraction)
        result = net(x)
        ce = F.cross_entropy(result["logits"], labels)
        mse = (((result["regression"] - targets) ** 2) * masks).sum() / masks.sum()
        sev = F.mse_loss(result["severity"], severities)
        loss = ce + mse + SEVERITY_WEIGHT * sev
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == 1:
            log(f"step {step}/{steps} loss {loss.item():.4f} ce {ce.item():.4f} mse {mse.item():.4f} "
                f"severity {sev.item():.4f} "
                f"{time.time() - start:.0f}s")
    metrics = evaluate_heldout(net, heldout_set(seed, heldout))
    if corrupt_fraction > 0:
        corrupted = evaluate_heldout(net, heldout_set(seed, heldout, corrupt_fraction))
        metrics.update({f"corrupted_{k}": v for k, v in corrupted.items()})
    log("held-out: " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    out = Path(out)
    tmp = out.with_suffix(".tmp")
    torch.save({k: v.contiguous() for k, v in net.state_dict().items()}, tmp)
    tmp.replace(out)
    log(f"wrote {out}")
    return metrics
