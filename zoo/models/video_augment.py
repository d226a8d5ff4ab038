"""Video-consistent differentiable augmentation with an adaptive probability (ADA, Karras et al., NeurIPS 2020).

StyleGAN-V (Sec. 3.3, official `video_consistent_aug`) augments every clip with ONE draw of each transform, applied
identically to all of its frames: per-frame augmentation would itself look like motion to the discriminator.
Implemented here, each applied per clip with probability p: x-flip, rotation by a multiple of 90 degrees and integer
translation (ADA's "blit" group), brightness, contrast and saturation (part of its "color" group). ADA's geometric
group (scaling, arbitrary rotation, fractional translation) and luma-flip / hue are not implemented (see StyleGAN-V's
docstring). As in the official `augment.py`: integer translation fills the uncovered border by reflection (its
geometric pass pads with `mode='reflect'`; the official pass also resamples through its 2x up/down filter, which
this one does not), and contrast scales about 0 (`scale3d(c, c, c)` on [-1, 1] pixels), not about the clip's mean.
Every op is differentiable w.r.t. the video, so the generator's gradient flows through it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def reflect_shift(clip: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """`(C, T, H, W)` content moved down `dy` and right `dx` pixels, the uncovered border filled by reflection."""
    c, t, h, w = clip.shape
    if not dy and not dx:
        return clip
    py, px = abs(dy), abs(dx)
    padded = F.pad(clip.reshape(1, c * t, h, w), (px, px, py, py), mode="reflect")
    return padded[0, :, py - dy : py - dy + h, px - dx : px - dx + w].reshape(c, t, h, w)


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
        video = torch.stack([reflect_shift(v, round(float(dy) * h), round(float(dx) * w))
                             for v, (dy, dx) in zip(video, shift)])
        video = video + (torch.randn(b, device=device) * self.brightness * chosen()).reshape(b, 1, 1, 1, 1)
        contrast = torch.exp2(torch.randn(b, device=device) * self.contrast * chosen()).reshape(b, 1, 1, 1, 1)
        video = video * contrast  # about 0, the official centre
        grey = video.mean(dim=1, keepdim=True)
        saturation = torch.exp2(torch.randn(b, device=device) * self.saturation * chosen()).reshape(b, 1, 1, 1, 1)
        return (video - grey) * saturation + grey
