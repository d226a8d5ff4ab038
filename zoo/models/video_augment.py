"""Video-consistent differentiable augmentation with an adaptive probability (ADA, Karras et al., NeurIPS 2020).

StyleGAN-V (Sec. 3.3, official `video_consistent_aug`) augments every clip with ONE draw of each transform, applied
identically to all of its frames: per-frame augmentation would itself look like motion to the discriminator.
Implemented here, each applied per clip with probability p: x-flip, rotation by a multiple of 90 degrees and integer
translation (ADA's "blit" group), brightness, contrast and saturation (part of its "color" group). ADA's geometric
group (scaling, arbitrary rotation, fractional translation) and luma-flip / hue are not implemented (see StyleGAN-V's
docstring). Every op is differentiable w.r.t. the video, so the generator's gradient flows through it.
"""

from __future__ import annotations

import torch
from torch import nn


class VideoAugment(nn.Module):
    """Augments `(B, C, T, H, W)` clips, one random draw per clip shared by its frames; `p` is a buffer (resumes)."""

    def __init__(self, translate: float = 0.125, brightness: float = 0.2, contrast: float = 0.5,
                 saturation: float = 1.0):
        super().__init__()
        self.translate, self.brightness, self.contrast, self.saturation = translate, brightness, contrast, saturation
        self.register_buffer("p", torch.zeros(()))

    def forward(self, video: torch.Tensor, p: float) -> torch.Tensor:
        if p <= 0:
            return video
        b, device = video.shape[0], video.device

        def chosen() -> torch.Tensor:  # (B,) which clips get this transform
            return torch.rand(b, device=device) < p

        def per_clip(mask: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
            return torch.where(mask.reshape(b, 1, 1, 1, 1), new, old)

        video = per_clip(chosen(), video.flip(-1), video)
        turns = torch.randint(4, (b,), device=device) * chosen()
        video = torch.stack([torch.rot90(v, int(k), dims=(-2, -1)) for v, k in zip(video, turns)])
        h, w = video.shape[-2:]
        shift = (torch.rand(b, 2, device=device) * 2 - 1) * self.translate * chosen()[:, None]
        video = torch.stack([torch.roll(v, (round(float(dy) * h), round(float(dx) * w)), dims=(-2, -1))
                             for v, (dy, dx) in zip(video, shift)])
        video = video + (torch.randn(b, device=device) * self.brightness * chosen()).reshape(b, 1, 1, 1, 1)
        mean = video.mean(dim=(1, 2, 3, 4), keepdim=True)
        contrast = torch.exp2(torch.randn(b, device=device) * self.contrast * chosen()).reshape(b, 1, 1, 1, 1)
        video = (video - mean) * contrast + mean
        grey = video.mean(dim=1, keepdim=True)
        saturation = torch.exp2(torch.randn(b, device=device) * self.saturation * chosen()).reshape(b, 1, 1, 1, 1)
        return (video - grey) * saturation + grey
