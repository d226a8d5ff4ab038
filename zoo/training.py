"""Builds and runs the Lightning Trainer for `zoo fit`: run directory, loggers, callbacks, DDP, exact resume.

A run directory holds `config.yaml` (the resolved experiment), `checkpoints/` (`step=NNNNNNN.ckpt` every
`train.checkpoint_every` steps and `last.ckpt`), `samples/` (GIF grids: real clips left, generated right) and
`metrics.csv`. One training step is one batch, whatever number of optimizer updates the model makes for it.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import yaml
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import Callback, TQDMProgressBar
from pytorch_lightning.loggers import Logger

from zoo.config import ExperimentConfig
from zoo.csv_log import ContinuingCSVLogger
from zoo.datasets.datamodule import VideoDataModule
from zoo.errors import ZooError
from zoo.models.base import (
    VideoGenerativeModel,
    VideoSpec,
    checkpoint_meta,
    load_model,
    read_checkpoint,
    state_dict_mismatch,
)
from zoo.paths import runs_root
from zoo.registry import MODELS
from zoo.video_io import side_by_side, write_video


def step_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (experiment seed, rank, step)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class TrainingProgress(Callback):
    """Counts steps, seeds each step, checkpoints every N steps and stops at `max_steps`.

    Seeding each step from (seed, rank, step) makes every random draw of a step (noise, dropout, frame choices)
    independent of what ran before, so N straight steps and N/2 + resume + N/2 give the same weights, and DDP ranks
    draw different noise.
    """

    def __init__(self, seed: int, max_steps: int, checkpoint_every: int, checkpoint_dir: Path):
        self.seed, self.max_steps, self.every, self.dir = seed, max_steps, checkpoint_every, checkpoint_dir

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        torch.manual_seed(step_seed(self.seed, trainer.global_rank, pl_module.iteration))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        average_buffers_across_ranks(pl_module)
        pl_module.iteration += 1
        step = pl_module.iteration
        if step % self.every == 0 or step >= self.max_steps:
            self.save(trainer, step)
        if step >= self.max_steps:
            trainer.should_stop = True

    def save(self, trainer: pl.Trainer, step: int) -> None:
        path = self.dir / f"step={step:07d}.ckpt"
        trainer.save_checkpoint(path, weights_only=False)  # all state; SameFolderCheckpointIO writes beside, renames
        if trainer.is_global_zero:  # last.ckpt is replaced atomically: an interruption never leaves half a file
            tmp = self.dir / f".last.ckpt.{os.getpid()}.tmp"
            shutil.copyfile(path, tmp)
            _fsync(tmp)
            os.replace(tmp, self.dir / "last.ckpt")


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


class SameFolderCheckpointIO(TorchCheckpointIO):
    """Checkpoint files written crash-safely and read without running code.

    Saving writes `.<name>.<pid>.tmp` in the checkpoint's own folder, fsyncs it and renames it (atomic on one file
    system), so a killed process or a full disk never leaves a truncated file under a checkpoint's name, and nothing
    goes through the system temp folder (Lightning's own atomic save stages the file in `$TMPDIR` and moves it across
    file systems). Loading (Lightning's resume path) goes through `read_checkpoint`: `weights_only=True` whatever
    the caller asks, one-line errors.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def load_checkpoint(self, path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return read_checkpoint(path)


class RunConfigWriter(Callback):
    """Writes `<run_dir>/config.yaml` (atomically, rank 0) once training starts, i.e. after Lightning restored a
    resumed checkpoint: a run that fails before that (a bad checkpoint, a refused resume) leaves the file as it was.
    """

    def __init__(self, run_dir: Path, config: ExperimentConfig):
        self.run_dir, self.config = run_dir, config

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:  # the settings, then facts of the run (the video reader) that are not settings
            recorded = yaml.safe_dump({"recorded": pl_module.experiment.get("recorded", {})})
            write_atomic(self.run_dir / "config.yaml", self.config.to_yaml() + recorded)


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` by `text` through a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    tmp.write_text(text)
    os.replace(tmp, path)


def average_buffers_across_ranks(module: torch.nn.Module) -> None:
    """Average floating-point buffers (BatchNorm running statistics, their EMA copies) over DDP ranks.

    DDP keeps parameters identical but each rank updates running statistics from its own shard, so ranks drift
    apart between broadcasts. One flattened all-reduce per step keeps every rank's model identical to the
    checkpoint, on CPU (gloo) where SyncBatchNorm is unavailable as much as on GPUs.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    world = torch.distributed.get_world_size()
    buffers = [b for b in module.buffers() if b.is_floating_point()]
    if world == 1 or not buffers:
        return
    flat = torch.cat([b.detach().reshape(-1).float() for b in buffers])
    torch.distributed.all_reduce(flat)
    flat /= world
    offset = 0
    for b in buffers:
        b.copy_(flat[offset : offset + b.numel()].view_as(b))
        offset += b.numel()


class SampleGrid(Callback):
    """Writes `samples/step=NNNNNNN.gif`: real clips (left) next to samples from fixed noise (right)."""

    def __init__(self, every: int, count: int, out_dir: Path, seed: int):
        self.every, self.count, self.dir, self.seed = every, count, out_dir, seed

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every and pl_module.iteration % self.every == 0 and not trainer.should_stop:
            self.write(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self.write(trainer, pl_module)

    def write(self, trainer: pl.Trainer, model: VideoGenerativeModel) -> None:
        if not trainer.is_global_zero:
            return
        real = trainer.datamodule.real_batch(self.count)
        generator = torch.Generator().manual_seed(self.seed)  # the same noise at every step: progress is visible
        with model.evaluating():
            fake = model.grid_videos({k: v.to(model.device) for k, v in real.items()}, generator)
        path = write_video(side_by_side(real["video"], fake.cpu()), self.dir / f"step={model.iteration:07d}.gif")
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                logger.log_video("samples", [str(path)], step=model.iteration, format=["gif"])


class StepProgressBar(TQDMProgressBar):
    """Lightning's bar counting training steps up to `max_steps` ("steps 300/300"), not batches of an epoch of the
    sampler ("Epoch 0: 59% 300/512", which reads as if the run stopped early); one bar across epochs and resumes."""

    def __init__(self, max_steps: int):
        super().__init__(refresh_rate=1)
        self.max_steps = max_steps

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        bar = self.train_progress_bar
        bar.reset(total=self.max_steps)
        bar.initial = bar.n = pl_module.iteration  # a resumed run starts where its checkpoint stopped
        bar.set_description("steps")

    def on_train_epoch_start(self, trainer, *_) -> None:
        pass  # epochs of the sampler are no unit of a run

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        bar = self.train_progress_bar
        if bar is not None and not bar.disable:
            bar.n = min(pl_module.iteration, self.max_steps)
            bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
            bar.refresh()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        pass  # the bar stays open until training ends


def default_run_dir(config: ExperimentConfig) -> Path:
    return Path(config.train.run_dir or runs_root() / f"{config.model_name}-{config.data.name}")


def build_model(config: ExperimentConfig, datamodule: VideoDataModule) -> VideoGenerativeModel:
    dataset = datamodule.dataset
    spec = VideoSpec(dataset.channels, config.data.frames, config.data.resolution, dataset.num_classes)
    try:
        model = MODELS.get(config.model_name)(config.model, spec)
    except ValueError as e:  # a model's own check of config against data (resolution, labels)
        raise ZooError(f"cannot build {config.model_name} for this data: {e}") from None
    model.experiment = {**config.to_dict(), "recorded": {"video_reader": dataset.video_reader}}
    return model


def _has_wandb_key() -> bool:
    netrc = Path.home() / ".netrc"
    return bool(os.environ.get("WANDB_API_KEY")) or (netrc.is_file() and "api.wandb.ai" in netrc.read_text())


def build_loggers(config: ExperimentConfig, run_dir: Path, resumed_step: int | None = None) -> list[Logger]:
    loggers: list[Logger] = [ContinuingCSVLogger(run_dir, keep_before_step=resumed_step)]  # always written
    kind = config.train.logger
    if kind == "tensorboard":
        try:
            from pytorch_lightning.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(save_dir=run_dir, name="tensorboard", version=""))
        except ModuleNotFoundError:
            raise ZooError("--logger tensorboard needs the tensorboard package: pip install tensorboard") from None
    elif kind == "wandb":
        from pytorch_lightning.loggers import WandbLogger

        offline = not _has_wandb_key()  # no key configured: log locally, `wandb sync` later
        name = run_dir.name
        loggers.append(WandbLogger(project="video-zoo", name=name, save_dir=str(run_dir), offline=offline))
    elif kind != "csv":
        raise ZooError(f"unknown logger {kind!r}; valid loggers: csv, tensorboard, wandb")
    return loggers


def check_devices(accelerator: str, devices: int) -> None:
    """Refuse more devices than the machine has, before Lightning spawns anything."""
    use_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    available = torch.cuda.device_count() if use_gpu else (os.cpu_count() or 1)
    kind = "GPU" if use_gpu else "CPU core"
    if accelerator in ("gpu", "cuda") and available == 0:
        raise ZooError("--accelerator gpu but no CUDA device is visible; use --accelerator cpu")
    if devices > available:
        raise ZooError(f"--devices {devices} but only {available} {kind}(s) are available here")


def check_one_global_batch(videos: int, batch_size: int, ranks: int, data_name: str) -> None:
    """Refuse a dataset smaller than one global batch before anything trains: no step could ever run."""
    if videos >= batch_size * ranks:
        return
    fix = (f"lower --batch-size to {videos // ranks} or less" if videos >= ranks
           else f"use at most {videos} --devices")
    raise ZooError(f"data {data_name!r} has {videos} training video(s), fewer than one global batch ({batch_size} per "
                   f"device x {ranks} device(s)): {fix}, or add videos")


def eval_modules_are_frozen(model: torch.nn.Module) -> bool:
    """Whether every module in eval mode lies inside a frozen part (parameters, none trainable), such as VideoGPT's
    stage-1 VQ-VAE: kept in eval mode on purpose, so Lightning's "modules in eval mode" warning is noise."""
    frozen = set()
    for module in model.modules():
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            frozen.update(id(m) for m in module.modules())
    return all(id(m) in frozen for m in model.modules() if not m.training)


def multi_gpu(train) -> bool:
    gpu = train.accelerator in ("gpu", "cuda") or (train.accelerator == "auto" and torch.cuda.is_available())
    return gpu and train.devices * train.num_nodes > 1


def build_strategy(config: ExperimentConfig, model: VideoGenerativeModel):
    strategy = config.train.strategy
    if strategy in ("ddp", "ddp_spawn"):
        from pytorch_lightning.strategies import DDPStrategy

        start = "spawn" if strategy == "ddp_spawn" else "popen"
        return DDPStrategy(start_method=start, find_unused_parameters=model.ddp_find_unused_parameters)
    return strategy


RUN_FILES = ("config.yaml", "metrics.csv")  # what a run leaves before (or without) its first checkpoint


def resolve_resume(resume: str | bool | None, run_dir: Path, model_name: str) -> tuple[Path | None, dict | None]:
    """The checkpoint to resume from and its contents (validated), or `(None, None)` for a fresh run that
    overwrites nothing."""
    checkpoints = run_dir / "checkpoints"
    if not resume:
        is_child = os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0"
        if is_child:
            return None, None
        if checkpoints.is_dir() and any(checkpoints.glob("*.ckpt")):
            raise ZooError(
                f"{run_dir} already holds checkpoints; pass --resume to continue it or --run-dir for a new run"
            )
        found = [name for name in RUN_FILES if (run_dir / name).exists()]
        if found:
            raise ZooError(
                f"{run_dir} already holds another run's {' and '.join(found)} (no checkpoint to resume from); "
                "pass --run-dir for a new run, or delete those files to reuse the folder"
            )
        return None, None
    path = Path(resume) if isinstance(resume, str) else checkpoints / "last.ckpt"
    if not path.is_file():
        raise ZooError(f"--resume: no checkpoint at {path}; train first or pass --resume PATH")
    checkpoint = read_checkpoint(path)
    meta = checkpoint_meta(checkpoint, source=str(path))
    if meta.get("model_name") != model_name:
        raise ZooError(f"--resume: {path} holds a {meta.get('model_name')!r} model, not {model_name!r}")
    if not isinstance(meta.get("iteration"), int):
        raise ZooError(f"--resume: {path} records no training step ('iteration'); was it written by `zoo fit`?")
    return path, checkpoint


def _flat(prefix: str, d: Any) -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out = {}
    for k, v in d.items():
        out.update(_flat(f"{prefix}.{k}", v))
    return out


def check_resume_architecture(model: VideoGenerativeModel, checkpoint: dict, path: Path) -> None:
    """Refuse a resume whose config builds other weights than the checkpoint holds, naming the config keys that
    differ from the run's (checkpoint's) and the first differing weights."""
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict):
        raise ZooError(f"--resume: {path} has no state_dict of weights; was it written by `zoo fit`?")
    problem = state_dict_mismatch(model, state)
    if problem is None:
        return
    meta = checkpoint["zoo"]
    then = {**_flat("model", meta.get("model_config") or {}), **_flat("spec", meta.get("spec") or {})}
    now = {**_flat("model", dataclasses.asdict(model.config)), **_flat("spec", dataclasses.asdict(model.spec))}
    keys = [f"{k} ({then.get(k)!r} in the run, {now.get(k)!r} now)" for k in sorted(set(then) | set(now))
            if then.get(k) != now.get(k)]
    differ = f"the config differs in {', '.join(keys)}" if keys else "the config builds other weights"
    raise ZooError(f"--resume: {differ}, which changes the architecture of {path} ({problem}); resume with the run's "
                   "own settings or start a new run with --run-dir")


@dataclass
class FitResult:
    run_dir: Path
    model: VideoGenerativeModel  # the trained model, as in the last checkpoint (rank 0's copy under DDP)


def fit(config: ExperimentConfig, resume: str | bool | None = None, extra_callbacks: list[Callback] = ()) -> FitResult:
    """Train `config` (resuming from a checkpoint if asked) and return the run directory and trained model.

    `extra_callbacks` run after the zoo's own (e.g. timers in benchmarks)."""
    train = config.train
    run_dir = default_run_dir(config)
    ckpt_path, checkpoint = resolve_resume(resume, run_dir, config.model_name)
    if checkpoint is not None and checkpoint["zoo"]["iteration"] >= train.max_steps:
        step = checkpoint["zoo"]["iteration"]
        print(f"zoo fit: {ckpt_path} is at step {step} and --max-steps is {train.max_steps}: nothing to train "
              f"(pass --max-steps above {step} to continue); no file was written", file=sys.stderr)
        return FitResult(run_dir, load_model(ckpt_path))
    check_devices(train.accelerator, train.devices)
    pl.seed_everything(train.seed, workers=True, verbose=False)

    datamodule = VideoDataModule(config.data, train.batch_size, train.seed)
    check_one_global_batch(len(datamodule.dataset), train.batch_size, train.devices * train.num_nodes,
                           config.data.name)
    model = build_model(config, datamodule)
    if checkpoint is not None:
        check_resume_architecture(model, checkpoint, ckpt_path)
    resumed_step = checkpoint["zoo"]["iteration"] if checkpoint is not None else None
    del checkpoint  # Lightning reads the file again (through SameFolderCheckpointIO) to restore everything

    callbacks = [
        TrainingProgress(train.seed, train.max_steps, train.checkpoint_every, run_dir / "checkpoints"),
        StepProgressBar(train.max_steps),
        SampleGrid(train.sample_every, train.sample_count, run_dir / "samples", train.seed),
        RunConfigWriter(run_dir, config),
        *extra_callbacks,
    ]
    trainer = pl.Trainer(
        accelerator=train.accelerator,
        devices=train.devices,
        num_nodes=train.num_nodes,
        strategy=build_strategy(config, model),
        precision=train.precision,
        max_epochs=-1,  # TrainingProgress stops at max_steps (Lightning's counts optimizer updates, not steps)
        max_steps=-1,
        logger=build_loggers(config, run_dir, resumed_step),
        callbacks=callbacks,
        plugins=[SameFolderCheckpointIO()],
        log_every_n_steps=train.log_every,
        enable_checkpointing=False,  # TrainingProgress writes step and last checkpoints itself
        default_root_dir=run_dir,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # ResumableSampler shards across ranks itself
        sync_batchnorm=multi_gpu(train),  # BatchNorm statistics over the global batch (GPU only in PyTorch)
    )
    with warnings.catch_warnings():
        # torch 2.13 deprecates LeafSpec, which Lightning 2.6 still builds for every batch: nothing a user can act on
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
        if eval_modules_are_frozen(model):
            warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    return FitResult(run_dir, model)
