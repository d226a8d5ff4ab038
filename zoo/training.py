"""Builds and runs the Lightning Trainer for `zoo fit`: run directory, loggers, callbacks, DDP, exact resume.

A run directory holds `config.yaml` (the resolved experiment), `checkpoints/` (`step=NNNNNNN.ckpt` every
`train.checkpoint_every` steps and `last.ckpt`), `samples/` (GIF grids: real clips left, generated right) and
`metrics.csv`. One training step is one batch, whatever number of optimizer updates the model makes for it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, TQDMProgressBar
from pytorch_lightning.loggers import Logger

from zoo.config import ExperimentConfig
from zoo.csv_log import ContinuingCSVLogger
from zoo.datasets.datamodule import VideoDataModule
from zoo.errors import ZooError
from zoo.models.base import VideoGenerativeModel, VideoSpec, checkpoint_meta, read_checkpoint
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
        trainer.save_checkpoint(path)
        if trainer.is_global_zero:  # last.ckpt is replaced atomically: an interruption never leaves half a file
            tmp = self.dir / "last.ckpt.tmp"
            shutil.copyfile(path, tmp)
            os.replace(tmp, self.dir / "last.ckpt")


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
    model.experiment = config.to_dict()
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


def resolve_resume(resume: str | bool | None, run_dir: Path, model_name: str) -> tuple[Path | None, int | None]:
    """The checkpoint to resume from (validated) and its step, or `(None, None)` for a fresh run that overwrites
    nothing."""
    checkpoints = run_dir / "checkpoints"
    if not resume:
        is_child = os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0"
        if not is_child and checkpoints.is_dir() and any(checkpoints.glob("*.ckpt")):
            raise ZooError(
                f"{run_dir} already holds checkpoints; pass --resume to continue it or --run-dir for a new run"
            )
        return None, None
    path = Path(resume) if isinstance(resume, str) else checkpoints / "last.ckpt"
    if not path.is_file():
        raise ZooError(f"--resume: no checkpoint at {path}; train first or pass --resume PATH")
    meta = checkpoint_meta(read_checkpoint(path), source=str(path))
    if meta["model_name"] != model_name:
        raise ZooError(f"--resume: {path} holds a {meta['model_name']!r} model, not {model_name!r}")
    return path, int(meta["iteration"])


@dataclass
class FitResult:
    run_dir: Path
    model: VideoGenerativeModel  # the trained model, as in the last checkpoint (rank 0's copy under DDP)


def fit(config: ExperimentConfig, resume: str | bool | None = None, extra_callbacks: list[Callback] = ()) -> FitResult:
    """Train `config` (resuming from a checkpoint if asked) and return the run directory and trained model.

    `extra_callbacks` run after the zoo's own (e.g. timers in benchmarks)."""
    train = config.train
    run_dir = default_run_dir(config)
    ckpt_path, resumed_step = resolve_resume(resume, run_dir, config.model_name)
    check_devices(train.accelerator, train.devices)
    pl.seed_everything(train.seed, workers=True, verbose=False)

    datamodule = VideoDataModule(config.data, train.batch_size, train.seed)
    model = build_model(config, datamodule)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(config.to_yaml())

    callbacks = [
        TrainingProgress(train.seed, train.max_steps, train.checkpoint_every, run_dir / "checkpoints"),
        StepProgressBar(train.max_steps),
        SampleGrid(train.sample_every, train.sample_count, run_dir / "samples", train.seed),
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
        log_every_n_steps=train.log_every,
        enable_checkpointing=False,  # TrainingProgress writes step and last checkpoints itself
        default_root_dir=run_dir,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # ResumableSampler shards across ranks itself
        sync_batchnorm=multi_gpu(train),  # BatchNorm statistics over the global batch (GPU only in PyTorch)
    )
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    return FitResult(run_dir, model)
