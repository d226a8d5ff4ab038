"""What conditional video synthesis (vid2vid and kin) translates from: the items' `condition` maps.

With `data.condition` other than `none`, every item (`raw_item`, `dataset[key]`) and every training batch carries
`condition`, float `[C_c, T, H, W]` (batches `[B, C_c, T, H, W]`), frame-aligned with the clip, `C_c =
dataset.condition_channels`. It is computed per item, in the loader workers, from the item's own keys, so
`dataset[i]["condition"]` (what the evaluation harness reads beside `dataset[i]["video"]`) and the batches a model
trains on come from one function. The maps:

* `segmentation`: one-hot label maps (`one_hot`), values in {0, 1}, one channel per class;
* `edges`: Canny edges of the decoded frames' luminance (`edge_maps`), values in {0, 1}, one channel;
* `keypoints`: one Gaussian heatmap per keypoint (`keypoint_heatmaps`), values in (0, 1];
* `source`: a paired folder's source video as RGB in [-1, 1] (3 channels, `video_io.from_uint8`).

Which dataset offers which is its `conditions` tuple; asking for another is a one-line `ZooError` (`check_condition`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange

from zoo.config import DataConfig
from zoo.errors import ZooError

# The DataConfig fields each condition reads besides `condition` itself (they join the protocol fingerprint).
CONDITION_FIELDS = {
    "none": (),
    "segmentation": ("condition_classes",),
    "edges": ("edge_low", "edge_high"),
    "keypoints": ("keypoint_sigma",),
    "source": (),
}


def check_condition(dataset: str, config: DataConfig, offered: Sequence[str]) -> None:
    """Refuse a `data.condition` the dataset cannot provide, and inconsistent edge thresholds, in one line.

    Args:
        dataset: registry key (for the message).
        config: the data config.
        offered: the conditions this dataset provides (`VideoDataset.conditions`).
    """
    if config.condition not in offered:
        raise ZooError(f"data.condition={config.condition} is not available for {dataset}; valid for {dataset}: "
                       f"{', '.join(offered)}")
    if config.condition == "edges" and config.edge_low > config.edge_high:
        raise ZooError(f"data.edge_low={config.edge_low} is above data.edge_high={config.edge_high}: Canny's "
                       "hysteresis needs low <= high")


def one_hot(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """Label maps as one-hot channels.

    Args:
        labels: integer `[T, H, W]`, ids in [0, classes).
        classes: channels of the output.

    Returns:
        float32 `[classes, T, H, W]` in {0, 1}, exactly one 1 per pixel.
    """
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise ValueError(f"label ids must lie in [0, {classes}), got [{int(labels.min())}, {int(labels.max())}]")
    out = torch.zeros((classes, *labels.shape), dtype=torch.float32)
    return out.scatter_(0, labels.long()[None], 1.0)


def keypoint_heatmaps(keypoints: torch.Tensor, height: int, width: int, sigma: float) -> torch.Tensor:
    """One isotropic Gaussian per keypoint: `exp(-|p - k|^2 / (2 sigma^2))` at every pixel centre p.

    Args:
        keypoints: float `[T, K, 2]`, (x, y) in pixels, pixel-index convention (the centre of pixel column j is
            x = j, as `zoo.warp`).
        height, width: map size.
        sigma: standard deviation in pixels.

    Returns:
        float32 `[K, T, H, W]` in [0, 1] (1 only where a keypoint sits exactly on a pixel centre).
    """
    ys = torch.arange(height, dtype=torch.float32)[:, None]  # (H, 1)
    xs = torch.arange(width, dtype=torch.float32)[None, :]  # (1, W)
    kx = keypoints[..., 0, None, None].float()  # (T, K, 1, 1)
    ky = keypoints[..., 1, None, None].float()
    maps = torch.exp(-((xs - kx) ** 2 + (ys - ky) ** 2) / (2 * sigma**2))  # (T, K, H, W)
    return rearrange(maps, "t k h w -> k t h w").contiguous()


# Canny's Gaussian blur before the Sobel gradient (kornia's defaults): a 5x5 window of sigma 1 pixel.
CANNY_KERNEL, CANNY_SIGMA = 5, 1.0


def edge_maps(pixels: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Canny edges of each frame's luminance (`kornia.filters.canny`, deterministic).

    The luminance is ITU-R 601 (`kornia.color.rgb_to_grayscale`: 0.299 R + 0.587 G + 0.114 B) of the frames scaled
    to [0, 1]; it is blurred by a 5x5 Gaussian of sigma 1 pixel, and the thresholds compare with the unnormalised
    Sobel magnitude of that (a unit step from 0 to 1 reaches about 2.59, a step of 40 grey levels about 0.41).
    Hysteresis keeps a weak pixel (magnitude > low) 8-connected to a strong one (> high). Across a step, of two
    tied pixels the left (upper) one is kept: the edge lies on the last pixel before the step.

    Args:
        pixels: uint8 `[T, H, W, 3]`.
        low, high: hysteresis thresholds, `0 < low <= high`.

    Returns:
        float32 `[1, T, H, W]` in {0, 1}.
    """
    from kornia.color import rgb_to_grayscale
    from kornia.filters import canny

    frames = rearrange(pixels, "t h w c -> t c h w").float() / 255.0
    grey = rgb_to_grayscale(frames)  # (T, 1, H, W)
    _, edges = canny(grey, low, high, kernel_size=CANNY_KERNEL, sigma=(CANNY_SIGMA, CANNY_SIGMA))
    return rearrange(edges, "t 1 h w -> 1 t h w").contiguous()
