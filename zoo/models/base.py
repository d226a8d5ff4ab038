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
import warnings
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
from zoo.safe_load import refusal


@dataclass(frozen=True)
class VideoSpec:
    """What the data looks like, as far as a model needs to know (models never import datasets)."""

    channels: int = 3  # colour channels
    frames: int = 16  # frames per training clip
    resolution: int = 64  # height = width, pixels
    num_classes: int = 0  # 0 = unlabelled data
    condition: str = "none"  # DataConfig.condition of the training data (conditional models translate from it)
    condition_channels: int = 0  # C_c of the batch's `condition` [B, C_c, T, H, W]; 0 = unconditional data


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
    prediction_only: ClassVar[bool] = False  # True: continues observed frames only (`predict`), `sample` refuses

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

    def predict(
        self,
        context: torch.Tensor,
        horizon: int,
        n: int = 1,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Continue clips: `n` sampled futures of `horizon` frames after each context (video prediction).

        Args:
            context: float `[B, C, T_c, H, W]` in [-1, 1], the observed frames.
            horizon: frames to predict after them (>= 1).
            n: samples per context (the protocol's best-of-n).
            generator: source of all randomness, for reproducible futures.

        Returns:
            float `[B, n, C, T_c + horizon, H, W]` in [-1, 1]: the context frames first (as given, or as the model
            reconstructs them), then its continuation.

        Models that cannot continue a clip keep this default: a one-line refusal. `can_predict` says which can.
        """
        raise ZooError(f"{self.registry_key} cannot continue a clip (it has no video-prediction path); models that "
                       "can: see `zoo list models` and docs/evaluation-prediction.md")

    @property
    def can_predict(self) -> bool:
        """Whether this model overrides `predict` (the prediction task takes it)."""
        return type(self).predict is not VideoGenerativeModel.predict

    def grid_videos(self, real: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        """What the training sample grid shows next to the real clips `real["video"]` `[n, C, T, H, W]`.

        Default: samples from `generator` (class-conditional models get the real clips' labels). A model whose
        quality is judged against real clips overrides it (VQ-VAE: reconstructions; frame-conditioned: continuations).
        """
        labels = real["label"] if self.label_classes else None
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

    @property
    def label_classes(self) -> int:
        """How many classes `sample(labels=...)` takes; 0 = unconditional, and labels are refused. Default 0: a
        model that can condition on classes overrides it with the classes it was built with (not the data's: an
        unconditional model trained on labelled data must refuse labels, never silently ignore them)."""
        return 0

    def check_labels(self, n: int, labels: torch.Tensor | None, generator: torch.Generator | None) -> torch.Tensor:
        """Validate (or draw uniformly) class labels `[n]` for class-conditional sampling; an unconditional model
        (`label_classes == 0`) refuses labels."""
        classes = self.label_classes
        if classes == 0:
            if labels is not None:
                raise ZooError(f"this {self.registry_key} model is unconditional (trained without labels, or with its "
                               "class conditioning off); do not pass labels")
            return torch.zeros(n, dtype=torch.long, device=self.device)
        if labels is None:
            return self.randint(classes, n, generator=generator)
        labels = torch.as_tensor(labels, dtype=torch.long, device=self.device).reshape(-1)
        if labels.numel() != n or labels.min() < 0 or labels.max() >= classes:
            raise ZooError(f"labels must be {n} integers in [0, {classes}), got {labels.tolist()}")
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
        if not self.experiment:  # loading for sampling / eval; a resumed fit keeps this run's config (e.g. max_steps)
            self.experiment = meta.get("experiment", {})


class ConditionalVideoModel(VideoGenerativeModel):
    """Base class of conditional video synthesis models (vid2vid, Everybody Dance Now, Deep Video Portraits):
    they translate a condition video (segmentation maps, edge maps, keypoints, a source video) into a video.

    Subclasses set `condition_kinds` (the `DataConfig.condition` values they accept) and implement `translate`.
    Their training batches carry `condition` float `[B, C_c, T, H, W]` beside `video`, plus what the dataset
    provides for training losses (`flow_back`, `valid_back`, `segmentation`, `keypoints`). `sample(n)` from noise
    is refused with one line: the harness evaluates them on the held-out clips' conditions instead.
    """

    condition_kinds: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any, spec: VideoSpec):
        super().__init__(config, spec)
        if spec.condition not in self.condition_kinds:
            accepted = ", ".join(f"data.condition={k}" for k in self.condition_kinds)
            raise ValueError(f"{self.registry_key} translates a condition video; train it on data with {accepted} "
                             f"(this data has data.condition={spec.condition})")
        if spec.condition_channels < 1:
            raise ValueError(f"{self.registry_key} needs a condition with at least one channel")

    @abc.abstractmethod
    def translate(
        self,
        condition: torch.Tensor,
        generator: torch.Generator | None = None,
        first_frames: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Translate condition videos into videos.

        Args:
            condition: float `[B, C_c, T, H, W]` of the kind and channels the model was trained on.
            generator: source of any randomness (models that draw noise), for reproducible outputs.
            first_frames: optional float `[B, C, K, H, W]` in [-1, 1]: real frames the output starts with (models
                whose first frames are otherwise generated without a past use them instead).

        Returns:
            float `[B, C, T, H, W]` in [-1, 1] on the model's device.
        """

    def check_condition(self, condition: torch.Tensor) -> torch.Tensor:
        """`condition` on the model's device, or a one-line `ZooError` when its shape is not what it was trained on."""
        spec = self.spec
        expected = (spec.condition_channels, spec.resolution, spec.resolution)
        if not isinstance(condition, torch.Tensor) or condition.ndim != 5 \
                or (condition.shape[1], *condition.shape[-2:]) != expected:
            shape = tuple(condition.shape) if isinstance(condition, torch.Tensor) else type(condition).__name__
            raise ZooError(f"{self.registry_key} translates {spec.condition} conditions of shape [B, "
                           f"{spec.condition_channels}, T, {spec.resolution}, {spec.resolution}], got {shape}")
        return condition.to(self.device, torch.float32)

    def sample(self, n, labels=None, generator=None, frames=None) -> torch.Tensor:
        raise ZooError(f"{self.registry_key} is a conditional model: it translates {self.spec.condition} "
                       "conditions, it does not sample from noise; use `zoo sample --ckpt CKPT --num N` (held-out "
                       "conditions) or `--condition-from VIDEO_OR_DIR`")

    def grid_videos(self, real: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        """The training grid shows the translations of the real clips' conditions."""
        return self.translate(real["condition"], generator=generator)


def checkpoint_meta(checkpoint: dict, source: str) -> dict:
    meta = checkpoint.get("zoo") if isinstance(checkpoint, dict) else None
    if not isinstance(meta, dict) or not meta:
        raise ZooError(f"{source} is not a video-zoo checkpoint (no 'zoo' record); was it written by `zoo fit`?")
    return meta


_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's archive format (every checkpoint Lightning writes)


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint file on CPU, never running code from it, with a one-line error when it is unusable.

    Loading uses `torch.load(..., weights_only=True)`: tensors and plain Python values (dict, list, tuple, str,
    numbers) only. Every checkpoint `zoo fit` writes is made of those; a file that refers to any other Python object
    (a pickled `__reduce__` payload can run arbitrary code when unpickled) is refused before the object is created.
    """
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"checkpoint {path} does not exist" if not path.exists() else f"checkpoint {path} is not a file")
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise ZooError(f"cannot read checkpoint {path}: {e.strerror or e}") from None
    if size == 0:
        raise ZooError(f"checkpoint {path} is empty (0 bytes): it was not written completely; use another checkpoint")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files: the error says it all
            warnings.simplefilter("ignore")
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - translated below; torch's own messages are multi-line internals
        raise ZooError(_unreadable_message(path, size, head, e)) from None
    if not isinstance(checkpoint, dict):
        raise ZooError(f"{path} holds a {type(checkpoint).__name__}, not a video-zoo checkpoint; was it written by "
                       "`zoo fit`?")
    return checkpoint


def _unreadable_message(path: Path, size: int, head: bytes, error: Exception) -> str:
    """One line saying why `torch.load(weights_only=True)` refused `path` (without torch's internals)."""
    refused = refusal(error, path)
    if refused:
        return (f"checkpoint {path} {refused}, which safe (weights-only) loading refuses: loading it could run code. "
                "video-zoo checkpoints hold only tensors and plain values; do not load this file")
    if head == _ZIP_MAGIC:
        return (f"checkpoint {path} is truncated or corrupt ({size} bytes, incomplete archive): it was not written "
                "completely or was damaged in transfer; use another checkpoint")
    if head[:1] != b"\x80":  # neither a torch.save archive nor a pickle (protocol 2+ starts with 0x80)
        return f"{path} is not a checkpoint (not a torch.save archive): was it written by `zoo fit`?"
    if isinstance(error, EOFError):
        return f"checkpoint {path} is truncated ({size} bytes): use another checkpoint"
    return (f"{path} is a raw pickle, not a PyTorch checkpoint that can be loaded safely; video-zoo checkpoints are "
            "written by `zoo fit`")


def state_dict_mismatch(model: torch.nn.Module, state: dict) -> str | None:
    """Names of the weights where `state` and `model` disagree (missing, unexpected, other shape), or None."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and isinstance(state[k], torch.Tensor) and state[k].shape != own[k].shape]

    def some(items: list[str]) -> str:
        return ", ".join(items[:3]) + (f" (+{len(items) - 3} more)" if len(items) > 3 else "")

    parts = []
    if missing:
        parts.append(f"missing weights {some(missing)}")
    if unexpected:
        parts.append(f"unexpected weights {some(unexpected)}")
    if shapes:
        parts.append(f"different shapes (checkpoint vs model) {some(shapes)}")
    return "; ".join(parts) or None


def model_from_meta(meta: dict, source: str):
    """An untrained model of the architecture a checkpoint's record (`checkpoint["zoo"]`) describes."""
    key = meta.get("model_name")
    if not isinstance(key, str):
        raise ZooError(f"{source} has no model name in its 'zoo' record; was it written by `zoo fit`?")
    try:
        cls = MODELS.get(key)
    except ZooError as e:
        raise ZooError(f"{source}: {e}") from None
    try:
        config = update_dataclass(cls.config_class(), dict(meta["model_config"]), "model")
        spec = VideoSpec(**meta["spec"])
    except ZooError as e:
        raise ZooError(f"{source} records a config this version cannot use: {e}") from None
    except (KeyError, TypeError) as e:
        raise ZooError(f"{source} has an incomplete or foreign 'zoo' record ({type(e).__name__}: {e})") from None
    try:
        return cls.from_checkpoint_meta(config, spec, meta)
    except ZooError:
        raise
    except (ValueError, TypeError, KeyError, RuntimeError) as e:
        raise ZooError(f"{source}: cannot build the {key} model its record describes: {e}") from None


def check_state_dict(model: torch.nn.Module, checkpoint: dict, source: str) -> None:
    """Raise a one-line `ZooError` unless `checkpoint["state_dict"]` fits `model` exactly (keys and shapes)."""
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict):
        raise ZooError(f"{source} has no state_dict of weights; was it written by `zoo fit`?")
    problem = state_dict_mismatch(model, state)
    if problem:
        raise ZooError(f"{source}: the weights do not match the architecture its config describes: {problem}")


def load_model(path: str | Path, expected: str | None = None, map_location: str | torch.device = "cpu"):
    """Rebuild a registered model from a `zoo fit` checkpoint.

    Args:
        path: checkpoint file (loaded with `weights_only=True`: it never runs code).
        expected: registry key the checkpoint must hold (raises `ZooError` on a mismatch).
        map_location: device for the returned model.

    Returns:
        The model in eval mode, weights (and EMA weights, where the model keeps them) restored.

    Raises:
        ZooError: one line, when the file is missing, empty, truncated, not a checkpoint, refers to Python objects,
            holds another model, or holds weights that do not match its recorded config and spec.
    """
    checkpoint = read_checkpoint(path)
    meta = checkpoint_meta(checkpoint, source=str(path))
    key = meta.get("model_name")
    if expected is not None and key != expected:
        raise ZooError(f"{path} holds a {key!r} model, not {expected!r}")
    model = model_from_meta(meta, str(path))
    check_state_dict(model, checkpoint, str(path))
    model.load_state_dict(checkpoint["state_dict"])
    model.on_load_checkpoint(checkpoint)
    return model.to(map_location).eval()
