"""The model contract every entry of the zoo implements, and checkpoint loading.

A model is a `VideoGenerativeModel` (a LightningModule) registered under a short key. It owns its networks, losses
and optimizers, keeps the paper's hyper-parameters in a config dataclass (`config_class`), and implements
`sample(n, labels=None, generator=None, frames=None) -> [n, C, T, H, W] in [-1, 1]`; the evaluation harness needs
nothing else. Checkpoints record the model key, its config and the video spec, so `load_model(path)` rebuilds any
model from its checkpoint alone.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch

from zoo import __version__
from zoo.config import update_dataclass
from zoo.errors import ZooError
from zoo.registry import MODELS


@dataclass(frozen=True)
class VideoSpec:
    """What the data looks like, as far as a model needs to know (models never import datasets)."""

    channels: int = 3  # colour channels
    frames: int = 16  # frames per training clip
    resolution: int = 64  # height = width, pixels
    num_classes: int = 0  # 0 = unlabelled data


class VideoGenerativeModel(pl.LightningModule, abc.ABC):
    """Base class of every model in the zoo.

    Subclasses set `config_class`, build their networks from `(config, spec)` and implement `sample`. They log
    losses with `log_losses` (synced across DDP ranks, so the logged value is the global mean). `self.iteration`
    counts training steps (one batch each, whatever number of optimizers the model steps); it is saved in
    checkpoints and drives per-step seeding, so resumed training is exact.
    """

    registry_key: ClassVar[str]
    config_class: ClassVar[type]
    ddp_find_unused_parameters: ClassVar[bool] = False  # GANs set True: each backward reaches one sub-network

    def __init__(self, config: Any, spec: VideoSpec):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} expects a {self.config_class.__name__}, got {type(config)}")
        self.config = config
        self.spec = spec
        self.iteration = 0
        self.experiment: dict = {}  # the resolved experiment config, recorded in checkpoints for provenance

    # -- the contract -------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        frames: int | None = None,
    ) -> torch.Tensor:
        """Generate `n` videos.

        Args:
            n: number of videos.
            labels: long `[n]` class labels for class-conditional models (None: drawn uniformly when needed).
            generator: source of all randomness, for reproducible samples (any device).
            frames: clip length (default: the training length); models that cannot change it raise `ZooError`.

        Returns:
            float `[n, C, T, H, W]` in [-1, 1] on the model's device.
        """

    def grid_videos(self, real: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        """What the training sample grid shows next to the real clips `real["video"]` `[n, C, T, H, W]`.

        Default: samples from `generator` (class-conditional models get the real clips' labels). A model whose
        quality is judged against real clips overrides it (VQ-VAE: reconstructions; frame-conditioned: continuations).
        """
        labels = real["label"] if self.spec.num_classes else None
        return self.sample(len(real["video"]), labels=labels, generator=generator)

    @classmethod
    def from_checkpoint_meta(cls, config: Any, spec: VideoSpec, meta: dict) -> VideoGenerativeModel:
        """An untrained model of a checkpoint's architecture, for `load_model` to load the weights into.

        Models whose constructor reads other files (VideoGPT's stage-1 checkpoint) rebuild from what their
        `on_save_checkpoint` recorded in `meta`, so that a checkpoint is all `zoo sample` / `zoo eval` need.
        """
        return cls(config, spec)

    # -- helpers for subclasses ---------------------------------------------------------------------------------

    def randn(self, *shape: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard normal noise on `self.device`, drawn from `generator` wherever that generator lives."""
        if generator is None:
            return torch.randn(*shape, device=self.device)
        return torch.randn(*shape, generator=generator, device=generator.device).to(self.device)

    def randint(self, high: int, *shape: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if generator is None:
            return torch.randint(high, shape, device=self.device)
        return torch.randint(high, shape, generator=generator, device=generator.device).to(self.device)

    def check_frames(self, frames: int | None) -> int:
        """Resolve `frames` for models whose clip length is fixed by their architecture."""
        if frames is not None and frames != self.spec.frames:
            raise ZooError(f"{self.registry_key} generates exactly {self.spec.frames} frames, not {frames}")
        return self.spec.frames

    def check_labels(self, n: int, labels: torch.Tensor | None, generator: torch.Generator | None) -> torch.Tensor:
        """Validate (or draw uniformly) class labels `[n]` for class-conditional sampling."""
        if self.spec.num_classes == 0:
            if labels is not None:
                raise ZooError(f"this {self.registry_key} model was trained without labels; do not pass labels")
            return torch.zeros(n, dtype=torch.long, device=self.device)
        if labels is None:
            return self.randint(self.spec.num_classes, n, generator=generator)
        labels = torch.as_tensor(labels, dtype=torch.long, device=self.device).reshape(-1)
        if labels.numel() != n or labels.min() < 0 or labels.max() >= self.spec.num_classes:
            raise ZooError(f"labels must be {n} integers in [0, {self.spec.num_classes}), got {labels.tolist()}")
        return labels

    def log_losses(self, losses: dict[str, torch.Tensor], prog_bar: tuple[str, ...] = ()) -> None:
        """Log scalars as `train/<name>`, averaged over DDP ranks (the logged value is the global one)."""
        for name, value in losses.items():
            self.log(f"train/{name}", value.detach(), sync_dist=True, prog_bar=name in prog_bar, on_step=True)

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Eval mode and no grad for sampling, restoring the previous mode afterwards."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.train(was_training)

    # -- checkpoints ----------------------------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["zoo"] = {
            "model_name": self.registry_key,
            "model_config": dataclasses.asdict(self.config),
            "spec": dataclasses.asdict(self.spec),
            "iteration": self.iteration,
            "experiment": self.experiment,
            "zoo_version": __version__,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        meta = checkpoint_meta(checkpoint, source="checkpoint")
        if meta["model_name"] != self.registry_key:
            raise ZooError(f"checkpoint holds a {meta['model_name']!r} model, not {self.registry_key!r}")
        self.iteration = int(meta["iteration"])
        self.experiment = meta.get("experiment", {})


def checkpoint_meta(checkpoint: dict, source: str) -> dict:
    meta = checkpoint.get("zoo") if isinstance(checkpoint, dict) else None
    if not meta:
        raise ZooError(f"{source} is not a video-zoo checkpoint (no 'zoo' record); was it written by `zoo fit`?")
    return meta


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint file on CPU with a clear error when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"checkpoint {path} does not exist")
    try:
        # Lightning checkpoints hold loop and optimizer state beyond tensors; only load files you trust.
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise ZooError(f"cannot read checkpoint {path}: {e}") from None


def load_model(path: str | Path, expected: str | None = None, map_location: str | torch.device = "cpu"):
    """Rebuild a registered model from a `zoo fit` checkpoint.

    Args:
        path: checkpoint file.
        expected: registry key the checkpoint must hold (raises `ZooError` on a mismatch).
        map_location: device for the returned model.

    Returns:
        The model in eval mode, weights (and EMA weights, where the model keeps them) restored.
    """
    checkpoint = read_checkpoint(path)
    meta = checkpoint_meta(checkpoint, source=str(path))
    key = meta["model_name"]
    if expected is not None and key != expected:
        raise ZooError(f"{path} holds a {key!r} model, not {expected!r}")
    cls = MODELS.get(key)
    config = update_dataclass(cls.config_class(), meta["model_config"], "model")
    model = cls.from_checkpoint_meta(config, VideoSpec(**meta["spec"]), meta)
    model.load_state_dict(checkpoint["state_dict"])
    model.on_load_checkpoint(checkpoint)
    return model.to(map_location).eval()
