"""`shapes_seg`: the in-repo per-frame segmentation network behind `mask_iou` (conditional synthesis on `shapes`).

It re-segments generated frames so that their layout can be compared with the condition's segmentation, the way
vid2vid-style papers re-segment outputs with a pretrained segmenter (vid2vid, Wang et al., NeurIPS 2018, Sec. 5,
"segmentation accuracy"). Like `shapes_net`, it is trained by the repository itself (`tools/train_shapes_seg.py`,
reproducible from a seed, a few CPU minutes) and ships in the package (`shapes_seg.pt`, SHA-256 pinned in
`weights.py` and checked on every load, `weights_only=True`).

Input convention: uint8 `[B, T, H, W, C]` (C in {1, 3}, any H, W); every frame is resized to 32 x 32 (bilinear,
antialiased, as `shapes_net`), segmented, and its class logits are resized back to H x W (bilinear) before the
argmax, so labels come out at the input's resolution. Classes: 0 = background, 1 + shape index (circle, square,
triangle) -- the labels of `shapes`' `segmentation`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from zoo.errors import ZooError
from zoo.metrics.detectors.weights import load_network

INPUT_SIZE = 32  # pixels (height = width) the network sees
NUM_CLASSES = 4  # background + 3 shapes
WEIGHTS_FILE = Path(__file__).with_name("shapes_seg.pt")
TRAIN_DATA_SEED = 0  # `shapes` data seed of the training clips (100 000 videos)
HELDOUT_DATA_SEED = 1  # held-out clips: the seed `heldout_data_config` gives a model trained on seed 0


def seg_input(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 `[B, T, H, W, C]` (C in {1, 3}) -> float `[B * T, 3, 32, 32]` in [-1, 1]."""
    if pixels.dtype != torch.uint8 or pixels.ndim != 5 or pixels.shape[-1] not in (1, 3):
        raise ZooError(f"shapes_seg takes uint8 videos [B, T, H, W, C] with C = 1 or 3, got {pixels.dtype} "
                       f"{tuple(pixels.shape)}")
    x = rearrange(pixels, "b t h w c -> (b t) c h w").float()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True)
    return x / 127.5 - 1.0


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dilation, dilation, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class ShapesSeg(nn.Module):
    """A small U-Net (Ronneberger et al., MICCAI 2015) on single frames, sized for CPUs (81 k parameters, 343 KB).

    `[N, 3, 32, 32]` -> 32^2 x w -> stride 2: 16^2 x 2w -> stride 2: 8^2 x 4w -> two dilated 3x3 (dilation 2, 4:
    the receptive field spans a whole shape, which is what tells a circle from a square) -> up + skip 16^2 x 2w ->
    up + skip 32^2 x w -> 1x1 -> `[N, 4, 32, 32]` class logits.

    Args:
        width: channels of the first level (w).
    """

    def __init__(self, width: int = 12):
        super().__init__()
        w = width
        self.enc1 = nn.Sequential(_conv(3, w), _conv(w, w))
        self.enc2 = nn.Sequential(_conv(w, 2 * w, stride=2), _conv(2 * w, 2 * w))
        self.enc3 = nn.Sequential(_conv(2 * w, 4 * w, stride=2), _conv(4 * w, 4 * w, dilation=2),
                                  _conv(4 * w, 4 * w, dilation=4))
        self.dec2 = _conv(4 * w + 2 * w, 2 * w)
        self.dec1 = _conv(2 * w + w, w)
        self.head = nn.Conv2d(w, NUM_CLASSES, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)  # (N, w, 32, 32)
        e2 = self.enc2(e1)  # (N, 2w, 16, 16)
        e3 = self.enc3(e2)  # (N, 4w, 8, 8)
        d2 = self.dec2(torch.cat([F.interpolate(e3, scale_factor=2.0, mode="nearest"), e2], 1))  # (N, 2w, 16, 16)
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0, mode="nearest"), e1], 1))  # (N, w, 32, 32)
        return self.head(d1)


def logits_at(net: ShapesSeg, pixels: torch.Tensor) -> torch.Tensor:
    """Class logits float `[B, T, 4, H, W]` of uint8 frames `[B, T, H, W, C]`, resized back to H x W."""
    b, t, h, w = pixels.shape[:4]
    device = next(net.parameters()).device
    logits = net(seg_input(pixels).to(device))
    if (h, w) != (INPUT_SIZE, INPUT_SIZE):
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    return rearrange(logits, "(b t) k h w -> b t k h w", b=b, t=t)


@torch.inference_mode()
def segment(net: ShapesSeg, pixels: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Per-pixel labels long `[B, T, H, W]` (0 = background, 1 + shape index) of uint8 videos `[B, T, H, W, C]`."""
    net.eval()
    step = max(1, batch // max(1, pixels.shape[1]))  # clips per forward pass
    return torch.cat([logits_at(net, pixels[i : i + step]).argmax(2).cpu() for i in range(0, len(pixels), step)])


def load_shapes_seg(path: str | Path | None = None) -> ShapesSeg:
    """The network from a weights file, in eval mode. Default: the packaged file, whose SHA-256 is checked against
    the pin in `weights.py` on every load (the path shared with `shapes_net`, `weights.resolve`); another `path` is
    loaded as given (a retrained file), also with `weights_only=True`."""
    from zoo.metrics.detectors.weights import resolve

    path = resolve("shapes_seg", fetch=False).path if path is None else Path(path)
    return load_network(ShapesSeg(), path, "shapes_seg", "python tools/train_shapes_seg.py")


def confusion(predicted: torch.Tensor, truth: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """float64 `[K, K]` counts (rows: truth, columns: predicted) of two label tensors of one shape."""
    if predicted.shape != truth.shape:
        raise ValueError(f"labels must have one shape, got {tuple(predicted.shape)} and {tuple(truth.shape)}")
    index = truth.reshape(-1).long() * num_classes + predicted.reshape(-1).long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes).double()


def mean_iou(counts: torch.Tensor) -> float:
    """Mean over classes with a non-empty union (in truth or prediction) of intersection / union, from a
    confusion matrix `[K, K]` (the dataset-level mIoU of semantic segmentation benchmarks)."""
    intersection = counts.diagonal()
    union = counts.sum(0) + counts.sum(1) - intersection
    present = union > 0
    return float((intersection[present] / union[present]).mean()) if present.any() else float("nan")


def heldout_clips(count: int, frames: int = 8, resolution: int = 32, seed: int = HELDOUT_DATA_SEED) -> tuple:
    """`count` `shapes` clips of data seed `seed` (start 0): uint8 pixels `[N, T, H, W, 3]`, labels `[N, T, H, W]`."""
    from zoo.datasets.shapes import render_clip  # evaluation of the segmenter only: inference never needs it

    items = [render_clip(seed, i, frames, resolution) for i in range(count)]
    return torch.stack([it["pixels"] for it in items]), torch.stack([it["segmentation"] for it in items])


def weights_record() -> dict:
    """What a `mask_iou` row records of the segmenter: the packaged file, its SHA-256 and its trust (checked now)."""
    from zoo.metrics.detectors.weights import resolve

    weights = resolve("shapes_seg", fetch=False)
    return {"detector": "shapes_seg", "weights": "shapes_seg", "sha256": weights.sha256,
            "verified": weights.verified, "trust": weights.trust}
