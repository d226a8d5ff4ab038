"""`lpips`: LPIPS (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric", CVPR 2018)
of conditional outputs against their real targets, per frame, mean over frames then clips.

torchmetrics ships LPIPS's linear heads (`lpips_models/{alex,vgg,squeeze}.pth`) but builds the backbone through
torchvision, which downloads ImageNet weights at run time. The zoo never downloads here: the backbone comes from a
local file (torchvision's own checkpoint, e.g. `alexnet-owt-7be5be79.pth`), checked against the SHA-256 prefix in its
name as `torch.hub` checks it, loaded with `weights_only=True`. Without torchvision or without that file the metric
refuses in one line saying what is missing and how to provide it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from zoo.errors import ZooError
from zoo.metrics.conditional import ClipMeanMetric, _pair
from zoo.metrics.feature_metric import ToolNotState
from zoo.registry import register_metric

# LPIPS backbone -> torchvision's checkpoint (the file torchvision would download; its name carries its SHA-256 prefix)
BACKBONES = {
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "squeeze": "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
}


def torchvision_available() -> bool:
    return importlib.util.find_spec("torchvision") is not None


def _what_is_missing(net: str, weights: str | Path | None) -> list[str]:
    missing = []
    if not torchvision_available():
        missing.append(f"torchvision (install the build that matches torch {torch.__version__.split('+')[0]}: see "
                       "https://github.com/pytorch/vision#installation)")
    url = BACKBONES[net]
    if weights is None:
        missing.append(f"the {net} backbone weights (download {url} where there is network and pass its path as "
                       "weights=PATH)")
    elif not Path(weights).is_file():
        missing.append(f"the {net} backbone weights file {weights} (it does not exist; it is {url})")
    return missing


def load_lpips(net: str = "alex", weights: str | Path | None = None) -> torch.nn.Module:
    """torchmetrics' LPIPS network with its packaged linear heads and the backbone from the local file `weights`.

    Args:
        net: `alex` (default, as LPIPS v0.1), `vgg` or `squeeze`.
        weights: torchvision's checkpoint of that backbone (`BACKBONES`).

    Returns:
        An eval-mode module: two float `[N, 3, H, W]` in [-1, 1] -> `[N, 1, 1, 1]` distances.
    """
    if net not in BACKBONES:
        raise ZooError(f"unknown LPIPS backbone {net!r}; valid: {', '.join(BACKBONES)}")
    missing = _what_is_missing(net, weights)
    if missing:
        raise ZooError(f"lpips cannot run: missing {'; and '.join(missing)}; torchmetrics would download the backbone "
                       "at run time, which the zoo does not do")
    from torchmetrics.functional.image.lpips import _NoTrainLpips

    from zoo.metrics.detectors.weights import load_weights_file, sha256_of

    path = Path(weights)
    prefix = BACKBONES[net].rsplit("-", 1)[1].split(".")[0]
    sha = sha256_of(path)
    if not sha.startswith(prefix):
        raise ZooError(f"{path} has SHA-256 {sha}, not torchvision's {Path(BACKBONES[net]).name} (SHA-256 starting "
                       f"{prefix}); download {BACKBONES[net]}")
    state = load_weights_file(path, f"LPIPS {net} backbone")
    model = _NoTrainLpips(net=net, pretrained=True, pnet_rand=True)  # packaged heads; backbone random until loaded
    # torchmetrics splits torchvision's `features` into slices that keep the original layer indices as names
    for slice_ in model.net.children():
        for index, layer in slice_.named_children():
            own = {k.split(".", 2)[2]: v for k, v in state.items() if k.startswith(f"features.{index}.")}
            if own:
                layer.load_state_dict(own, strict=True)
    return model.eval()


@register_metric(
    "lpips",
    description="conditional: per-frame LPIPS (AlexNet, v0.1 heads) of outputs vs real targets, mean over frames "
                "then clips; needs torchvision and a local backbone file",
    paper="Zhang et al., The Unreasonable Effectiveness of Deep Features as a Perceptual Metric, CVPR 2018",
)
class VideoLPIPS(ToolNotState, ClipMeanMetric):
    """Mean LPIPS: torchmetrics' network per frame (inputs [-1, 1] RGB; grey frames repeated to 3 channels), mean
    over the clip's frames, then over clips. Lower is better.

    Args:
        weights: torchvision's backbone checkpoint (`BACKBONES[net]`), a local file.
        net: `alex` | `vgg` | `squeeze`.
        batch: frames per network call.
    """

    name = "lpips"
    higher_is_better = False
    tool_attribute = "network"

    def __init__(self, weights: str | Path | None = None, net: str = "alex", batch: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.network = load_lpips(net, weights)
        self.batch = batch

    @torch.inference_mode()
    def update(self, videos: torch.Tensor, target: torch.Tensor) -> None:
        """Args: as `zoo.metrics.conditional.VideoPSNR.update`."""
        self._add(self.frame_scores(videos, target).mean(1))

    @torch.inference_mode()
    def frame_scores(self, videos: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-frame LPIPS distance, float `[B, T]` (lower is closer), in `update`'s convention."""
        fake, real = _pair(videos, target)
        b = fake.shape[0]
        fake, real = fake.flatten(0, 1) * 2 - 1, real.flatten(0, 1) * 2 - 1  # ((B T), C, H, W) in [-1, 1]
        if fake.shape[1] == 1:
            fake, real = fake.expand(-1, 3, -1, -1), real.expand(-1, 3, -1, -1)
        device = next(self.network.parameters()).device
        scores = torch.cat([self.network(fake[i : i + self.batch].to(device), real[i : i + self.batch].to(device))
                            .flatten().cpu() for i in range(0, len(fake), self.batch)])
        return scores.reshape(b, -1)
