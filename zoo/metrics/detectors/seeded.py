"""Deterministic stand-in weights for tests and benchmarks (never used by `zoo eval`, which only loads real files).

The rule is the one of `shared/reference/README.md` section A.2, so that the reference vectors can be reproduced:
for every state-dict entry, `seed = crc32(name)`, `r = randn(shape, generator=seed) * 0.05`; `running_var` gets
`|r| + 1`, `num_batches_tracked` stays 0, and in the `bn_gamma1` variant BatchNorm weights (`.bn.weight`) get
`|r| + 1` too, which keeps activations alive through the network.
"""

from __future__ import annotations

import zlib

import torch
from torch import nn


def seeded_state_dict(model: nn.Module, variant: str = "bn_gamma1") -> dict[str, torch.Tensor]:
    """The crc32-seeded state dict of `model` (variant `bn_gamma1` or `spec`), float32 on CPU."""
    if variant not in ("bn_gamma1", "spec"):
        raise ValueError(f"variant must be 'bn_gamma1' or 'spec', got {variant!r}")
    out: dict[str, torch.Tensor] = {}
    for name, tensor in sorted(model.state_dict().items()):
        if name.endswith("num_batches_tracked"):
            out[name] = torch.zeros_like(tensor)
            continue
        g = torch.Generator().manual_seed(zlib.crc32(name.encode("utf-8")))
        r = torch.randn(tuple(tensor.shape), generator=g) * 0.05
        if name.endswith("running_var") or (variant == "bn_gamma1" and name.endswith(".bn.weight")):
            r = r.abs() + 1
        out[name] = r
    return out


def seeded_i3d_state_dict(variant: str = "bn_gamma1") -> dict[str, torch.Tensor]:
    """The 344-entry seeded I3D state dict in pytorch-i3d naming."""
    from zoo.metrics.detectors.i3d import InceptionI3d

    return seeded_state_dict(InceptionI3d(), variant)


def seeded_c3d_npz(path, mean_path) -> None:
    """Write a seeded C3D in the Chainer npz layout (`conv1a/W`, ..., `fc8/b`) and a `mean2.npz`-shaped mean."""
    import numpy as np

    from zoo.metrics.detectors.c3d import C3D

    model = C3D()
    arrays = {}
    for name, tensor in seeded_state_dict(model, "spec").items():
        if name == "mean":
            continue
        layer, kind = name.rsplit(".", 1)
        scale = 1.0 if kind == "bias" else 1.0 / 0.05 * (2.0 / tensor[0].numel()) ** 0.5  # He-scaled weights
        scale *= 1e-3 if layer == "conv1a" else 1.0  # inputs are on a 0..256 scale; keep the softmax unsaturated
        arrays[f"{layer}/{'W' if kind == 'weight' else 'b'}"] = (tensor * scale).numpy()
    np.savez(path, **arrays)
    g = torch.Generator().manual_seed(zlib.crc32(b"mean"))
    mean = 100.0 + 10.0 * torch.rand((3, 16, 128, 171), generator=g)
    np.savez(mean_path, mean=mean.numpy())
