"""C3D fine-tuned on UCF-101, the classifier behind the video Inception Score (TGAN / TGANv2 / StyleGAN-V).

"Learning Spatiotemporal Features with 3D Convolutional Networks", Tran et al., ICCV 2015,
https://arxiv.org/abs/1412.0767; IS protocol: TGANv2, Saito et al., IJCV 2020, https://arxiv.org/abs/1811.09245.

Weights are TGANv2's Chainer export `conv3d_deepnetA_ucf.npz` (keys `conv1a/W`, ..., `fc8/b`; Chainer's
`ConvolutionND` and `Linear` layouts equal PyTorch's) plus `mean2.npz` (key `mean`, the Sports-1M mean clip
`[3, 16, 128, 171]`), read with numpy: no Chainer needed. Preprocessing is TGANv2's `C3DVersion1UCF101`:
RGB -> BGR, `x * 128`, corner-aligned bilinear resize of the whole frame to 112x112 (no crop), then
`+ 128 - mean[:, :, 8:120, 8:120]` (TGANv2 crops the mean at offset 8 in both axes). Pools are ceil-mode (Chainer's
`cover_all=True`), so pool5 maps 2x7x7 -> 1x4x4 and fc6 sees 8192 inputs. Dropout is off at inference (TGAN v1
left it on by accident; we never reproduce that).

Input contract: float `[B, 3, 16, H, W]` RGB in [-1, 1]; output: 101 logits (fc8), `probabilities` = softmax.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from zoo.errors import ZooError
from zoo.video_io import from_uint8

CONVS = (("conv1a", 3, 64), ("conv2a", 64, 128), ("conv3a", 128, 256), ("conv3b", 256, 256),
         ("conv4a", 256, 512), ("conv4b", 512, 512), ("conv5a", 512, 512), ("conv5b", 512, 512))
POOL_AFTER = {"conv1a": (1, 2, 2), "conv2a": (2, 2, 2), "conv3b": (2, 2, 2), "conv4b": (2, 2, 2), "conv5b": (2, 2, 2)}
FRAMES, SIZE, NUM_CLASSES = 16, 112, 101


class C3D(nn.Module):
    """TGANv2's `C3DVersion1UCF101` in PyTorch; `mean` is the `[3, 16, 112, 112]` crop of `mean2.npz`."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        for name, cin, cout in CONVS:
            setattr(self, name, nn.Conv3d(cin, cout, 3, padding=1))
        self.fc6 = nn.Linear(512 * 4 * 4, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.fc8 = nn.Linear(4096, num_classes)
        self.register_buffer("mean", torch.full((3, FRAMES, SIZE, SIZE), 128.0))

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """float `[B, 3, 16, H, W]` RGB in [-1, 1] -> BGR, 0..256 scale, resized to 112, mean-subtracted."""
        b = x.shape[0]
        x = x.flip(1) * 128.0  # RGB -> BGR, TGANv2's 1x1x1 `pre` conv
        frames = rearrange(x, "b c t h w -> (b t) c h w")
        frames = F.interpolate(frames, size=(SIZE, SIZE), mode="bilinear", align_corners=True)
        x = rearrange(frames, "(b t) c h w -> b c t h w", b=b)
        return x + (128.0 - self.mean)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float `[B, 3, 16, H, W]` RGB in [-1, 1] -> fc8 logits `[B, 101]`."""
        if x.shape[1:3] != (3, FRAMES):
            raise ValueError(f"C3D takes [B, 3, {FRAMES}, H, W] videos, got {tuple(x.shape)}")
        h = self.preprocess(x)
        for name, _, _ in CONVS:
            h = F.relu(getattr(self, name)(h))
            if name in POOL_AFTER:
                h = F.max_pool3d(h, POOL_AFTER[name], ceil_mode=True)
        h = F.relu(self.fc6(h.flatten(1)))
        h = F.relu(self.fc7(h))
        return self.fc8(h)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax over the 101 classes, float64 `[B, 101]` (TGANv2 stores float64 predictions)."""
        return torch.softmax(self(x).double(), dim=1)

    def pixel_probabilities(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 `[B, 16, H, W, 3]` -> float64 `[B, 101]`."""
        return self.probabilities(from_uint8(pixels))


def load_c3d_npz(weights: str | Path, mean: str | Path) -> C3D:
    """Build the C3D from TGANv2's Chainer npz files (read with numpy).

    Args:
        weights: `conv3d_deepnetA_ucf.npz`.
        mean: `mean2.npz` (key `mean`, `[3, 16, 128, >=120]`).
    """
    model = C3D()
    with np.load(weights) as npz:
        arrays = {k.strip("/").removeprefix("predictor/"): npz[k] for k in npz.files}
    state = {}
    for name in [c[0] for c in CONVS] + ["fc6", "fc7", "fc8"]:
        for chainer_key, torch_key in (("W", "weight"), ("b", "bias")):
            key = f"{name}/{chainer_key}"
            if key not in arrays:
                found = ", ".join(sorted(arrays)[:6])
                raise ZooError(f"{weights} is not TGANv2's C3D npz: no {key!r} (has {found} ...)")
            state[f"{name}.{torch_key}"] = torch.from_numpy(np.asarray(arrays[key], dtype=np.float32))
    with np.load(mean) as npz:
        if "mean" not in npz.files:
            raise ZooError(f"{mean} is not a C3D mean file: no 'mean' array")
        mean_clip = np.asarray(npz["mean"], dtype=np.float32).reshape(3, FRAMES, 128, -1)
    state["mean"] = torch.from_numpy(mean_clip[:, :, 8 : 8 + SIZE, 8 : 8 + SIZE].copy())
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ZooError(f"{weights} does not fit the C3D architecture: {e}") from None
    return model.eval()


class TorchScriptC3D(nn.Module):
    """StyleGAN-V's `c3d_ucf101.pt`: takes uint8 `[B, 3, 16, H, W]` RGB, returns probabilities `[B, 101]`."""

    def __init__(self, scripted: torch.jit.ScriptModule):
        super().__init__()
        self.scripted = scripted

    def pixel_probabilities(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 `[B, 16, H, W, 3]` -> float64 `[B, 101]` (the TorchScript takes the pixels as they are)."""
        return self.scripted(rearrange(pixels, "b t h w c -> b c t h w")).double()
