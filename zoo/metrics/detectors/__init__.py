"""Feature networks behind the metrics (I3D for FVD/KVD, C3D for IS) and their checksummed weights.

`load_i3d(source)` / `load_c3d_npz(weights, mean)` build networks from files or state dicts; `build_extractor(name)`
resolves a weights file through the table in `weights.py` (download on first use, checksum on every load) and wraps
the network with its input convention into an extractor: uint8 pixels `[B, T, H, W, C]` -> float64 features.
"""

from __future__ import annotations

import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from zoo.errors import ZooError
from zoo.metrics.detectors.c3d import C3D, TorchScriptC3D, load_c3d_npz
from zoo.metrics.detectors.i3d import InceptionI3d
from zoo.metrics.detectors.weights import load_weights_file
from zoo.metrics.preprocess import pixels_to_i3d_input


class TorchScriptI3D(nn.Module):
    """StyleGAN-V's `i3d_torchscript.pt` behind our contract: float `[B, 3, T, 224, 224]` in [-1, 1] -> `[B, 400]`.

    Called with `rescale=False, resize=False` so that our named resize mode, not the file's own (undocumented)
    upsampling, decides the input; `return_features=True` returns the 400 pre-softmax logits.
    """

    def __init__(self, scripted: torch.jit.ScriptModule):
        super().__init__()
        self.scripted = scripted

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scripted(x, rescale=False, resize=False, return_features=True)


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.split("/", 1)[-1].startswith("code/") for n in z.namelist())


def load_i3d(source: str | Path | dict) -> nn.Module:
    """The FVD network from a state dict, a state-dict file or a TorchScript file.

    Args:
        source: a state dict in pytorch-i3d / VideoGPT naming (`Conv3d_1a_7x7.conv3d.weight`, ...,
            `logits.conv3d.bias`; 344 entries), a file holding one (`i3d_pretrained_400.pt`), or a TorchScript file
            with StyleGAN-V's signature (`i3d_torchscript.pt`).

    Returns:
        An `nn.Module` in eval mode: float `[B, 3, T, 224, 224]` in [-1, 1] -> logits `[B, 400]` (time-averaged).
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ZooError(f"I3D weights {path} do not exist")
        if _is_torchscript(path):
            return TorchScriptI3D(torch.jit.load(str(path), map_location="cpu")).eval()
        state = load_weights_file(path, "I3D weights")
        source = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(source, dict):
        raise ZooError(f"I3D source must be a path or a state dict, got {type(source).__name__}")
    model = InceptionI3d()
    source = {k.removeprefix("module."): v for k, v in source.items()}
    missing = sorted(set(model.state_dict()) - set(source))
    unexpected = sorted(set(source) - set(model.state_dict()))
    if missing or unexpected:
        raise ZooError(f"I3D state dict does not use the pytorch-i3d naming: missing {missing[:3]}, "
                       f"unexpected {unexpected[:3]} ({len(missing)} / {len(unexpected)} in all)")
    model.load_state_dict(source, strict=True)
    return model.eval()


@dataclass(frozen=True)
class DetectorInfo:
    """What goes into the protocol record and the leaderboard row about the detector."""

    detector: str  # i3d | c3d
    weights: str  # WEIGHTS key
    sha256: str  # of the weights file (the C3D npz's, joined with the mean's)
    verified: bool  # the official file: its SHA-256 equals the checksum pinned in the weights table
    feature: str  # logits400 | pool1024 | probs101
    resize: str  # resize mode into the detector
    aspect: str  # stretch | short_side_crop
    trust: str  # verified | pinned locally (first-use checksum of this cache) | unverified

    def to_dict(self) -> dict:
        return asdict(self)


class I3DExtractor(nn.Module):
    """uint8 `[B, T, H, W, C]` -> float64 I3D features `[B, 400]` (logits) or `[B, 1024]` (pool)."""

    def __init__(self, network: nn.Module, info: DetectorInfo, size: int = 224):
        super().__init__()
        self.network, self.info, self.size = network.eval(), info, size

    @property
    def dim(self) -> int:
        return 1024 if self.info.feature == "pool1024" else 400

    @torch.inference_mode()
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        device = next(self.network.parameters(), torch.empty(0)).device
        x = pixels_to_i3d_input(pixels.to(device), self.size, self.info.resize, self.info.aspect)
        x = x.to(next(self.network.parameters(), torch.empty(0, dtype=torch.float32)).dtype)
        out = self.network.features(x) if self.info.feature == "pool1024" else self.network(x)
        return out.double()


class C3DExtractor(nn.Module):
    """uint8 `[B, 16, H, W, 3]` -> float64 class probabilities `[B, 101]` (TGANv2 preprocessing inside the C3D)."""

    dim = 101

    def __init__(self, network: nn.Module, info: DetectorInfo):
        super().__init__()
        self.network, self.info = network.eval(), info

    @torch.inference_mode()
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        device = next(self.network.parameters(), next(self.network.buffers(), torch.empty(0))).device
        if pixels.shape[-1] == 1:
            pixels = pixels.expand(-1, -1, -1, -1, 3)
        return self.network.pixel_probabilities(pixels.to(device))


DETECTOR_WEIGHTS = {  # detector key -> WEIGHTS key of its network
    "i3d_torchscript": "i3d_torchscript",
    "i3d_pretrained_400": "i3d_pretrained_400",
    "c3d_ucf101_torchscript": "c3d_ucf101_torchscript",
    "c3d_ucf101_npz": "c3d_ucf101_npz",
    "shapes_net": "shapes_net",  # features (FVD / KVD / PRDC)
    "shapes_net_probs": "shapes_net",  # class posteriors (IS)
    "shapes_net_frames": "shapes_net",  # per-time-step features (ACD)
}


def build_extractor(
    name: str,
    weights_path: str | Path | None = None,
    resize: str = "torch_bilinear",
    aspect: str = "stretch",
    feature: str | None = None,
    fetch: bool = True,
    mean_path: str | Path | None = None,
) -> nn.Module:
    """Resolve (download on first use, checksum) the weights of detector `name` and wrap it as a feature extractor.

    Args:
        name: one of `DETECTOR_WEIGHTS` (`i3d_torchscript`, `i3d_pretrained_400`, `c3d_ucf101_torchscript`,
            `c3d_ucf101_npz`).
        weights_path: `--detector-weights` override (for `c3d_ucf101_npz`, `mean2.npz` is taken from the same folder
            when present, else from the cache).
        resize, aspect: I3D input convention (ignored by the C3Ds, whose convention is fixed).
        feature: `logits400` (default for I3D) or `pool1024`.
        fetch: allow downloads.
        mean_path: `--detector-mean` override of the C3D's `mean2.npz` (`c3d_ucf101_npz` only).
    """
    from zoo.metrics.detectors.weights import resolve, weakest

    if name not in DETECTOR_WEIGHTS:
        raise ZooError(f"unknown detector {name!r}; valid: {', '.join(DETECTOR_WEIGHTS)}")
    got = resolve(DETECTOR_WEIGHTS[name], weights_path, fetch=fetch)
    if name.startswith("shapes_net"):
        from zoo.metrics.detectors.shapes_net import ShapesExtractor, load_shapes_net

        output = {"shapes_net": "features", "shapes_net_probs": "probabilities",
                  "shapes_net_frames": "frame_features"}[name]
        info = DetectorInfo("shapes_net", name, got.sha256, got.verified, output, "bilinear_antialias_32", "stretch",
                            got.trust)
        return ShapesExtractor(load_shapes_net(got.path), info, output)
    if name.startswith("i3d"):
        feature = feature or "logits400"
        if feature == "pool1024" and name == "i3d_torchscript":
            raise ZooError("the TorchScript I3D only exposes logits; use --detector i3d_pretrained_400 for pool1024")
        info = DetectorInfo("i3d", name, got.sha256, got.verified, feature, resize, aspect, got.trust)
        return I3DExtractor(load_i3d(got.path), info)
    if name == "c3d_ucf101_torchscript":
        network = TorchScriptC3D(torch.jit.load(str(got.path), map_location="cpu"))
        info = DetectorInfo("c3d", name, got.sha256, got.verified, "probs101", "in_torchscript", "stretch",
                            got.trust)
        return C3DExtractor(network, info)
    sibling = got.path.parent / "mean2.npz" if weights_path is not None else None
    if mean_path is not None:
        sibling = Path(mean_path)
    mean = resolve("c3d_mean", sibling if sibling is not None and sibling.is_file() else None, fetch=fetch)
    info = DetectorInfo("c3d", name, f"{got.sha256}+{mean.sha256}", got.verified and mean.verified, "probs101",
                        "chainer_bilinear", "stretch", weakest(got.trust, mean.trust))
    return C3DExtractor(load_c3d_npz(got.path, mean.path), info)


__all__ = ["C3D", "C3DExtractor", "DetectorInfo", "I3DExtractor", "InceptionI3d", "TorchScriptC3D",
           "TorchScriptI3D", "build_extractor", "load_c3d_npz", "load_i3d"]
