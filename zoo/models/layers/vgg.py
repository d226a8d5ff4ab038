"""VGG19 perceptual loss of pix2pixHD / vid2vid (Wang et al. 2018, pix2pixHD Sec. 3.3; official `VGGLoss`, `Vgg19`).

The first 30 layers of torchvision's VGG19 `features` (up to relu5_1) as plain modules, with the same indices, so a
torchvision `vgg19` state dict (keys `features.<i>.weight`) loads as is. torchvision is not a dependency: the weights
come from a local file only (`torch.load(weights_only=True)`), and without one the loss is off (the models record
that as a deviation). As in the official code the images enter in [-1, 1], without ImageNet normalisation.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from zoo.errors import ZooError

_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512)  # to conv5_1
SLICE_ENDS = (2, 7, 12, 21, 30)  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 (official slices)
LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)  # official VGGLoss weights per slice


def vgg19_features() -> nn.Sequential:
    """VGG19 `features[:30]`: 3x3 convolutions with ReLU, 2x2 max pooling, indices as torchvision's."""
    layers: list[nn.Module] = []
    channels = 3
    for item in _LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=False)]
            channels = item
    return nn.Sequential(*layers)


class VGGLoss(nn.Module):
    """sum_i w_i * L1(VGG_i(x), VGG_i(y) detached) over relu1_1 .. relu5_1, w = (1/32, 1/16, 1/8, 1/4, 1); inputs
    wider than 1024 pixels are halved first (2x2 average) until they are not. Weights frozen."""

    def __init__(self, weights_path: str | Path):
        super().__init__()
        self.features = vgg19_features()
        path = Path(weights_path)
        if not path.is_file():
            raise ZooError(f"VGG19 weights file {path} does not exist (model.vgg_weights)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - one line for the user
            raise ZooError(f"cannot load VGG19 weights from {path}: {type(e).__name__}") from None
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        own = {k.removeprefix("features."): v for k, v in state.items()
               if k.startswith("features.") or k.split(".")[0].isdigit()}
        own = {k: v for k, v in own.items() if int(k.split(".")[0]) < len(self.features)}
        try:
            self.features.load_state_dict(own)
        except RuntimeError as e:
            raise ZooError(f"{path} is not a VGG19 state dict: {str(e).splitlines()[0]}") from None
        self.features.requires_grad_(False)

    def slices(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, start = [], 0
        for end in SLICE_ENDS:
            x = self.features[start:end](x)
            out.append(x)
            start = end
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """`x`, `y` float `[N, 3, H, W]` in [-1, 1] -> scalar."""
        while x.shape[-1] > 1024:
            x, y = nn.functional.avg_pool2d(x, 2), nn.functional.avg_pool2d(y, 2)
        loss = x.new_zeros(())
        for w, fx, fy in zip(LAYER_WEIGHTS, self.slices(x), self.slices(y)):
            loss = loss + w * (fx - fy.detach()).abs().mean()
        return loss
