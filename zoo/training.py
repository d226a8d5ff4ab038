"""Builds and runs the Lightning Trainer for `zoo fit`: run directory, loggers, callbacks, DDP, exact resume.

A run directory holds `config.yaml` (the resolved experiment), `checkpoints/` (`step=NNNNNNN.ckpt` every
`train.checkpoint_every` steps and `last.ckpt`), `samples/` (GIF grids: real clips left, generated right) and
`metrics.csv`. One training step is one batch, whatever number of optimizer updates the model makes for it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
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
from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning.callbacks import Callback, ModelSummary, TQDMProgressBar
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities.model_summary.model_summary import _format_summary_table

from zoo.config import ExperimentConfig, check_experiment
from zoo.csv_log import ContinuingCSVLogger
from zoo.datasets.datamodule import VideoDataModule
from zoo.errors import ZooError
from zoo.models.base import (
    ConditionalVideoModel,
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


class TrainingDiverged(ZooError):
    """A logged loss or a weight became NaN or infinite; training stopped before any checkpoint held that state."""


def first_nonfinite_loss(metrics: dict[str, Any]) -> tuple[str, float] | None:
    """The first `train/...` scalar of this step (Lightning's callback metrics, synced over DDP ranks, so every rank
    sees the same) that is NaN or infinite, with its value."""
    for name, value in metrics.items():
        if name.startswith("train/") and isinstance(value, torch.Tensor) and not torch.isfinite(value).all():
            return name, float(value.detach().float().reshape(-1)[0])
    return None


def first_nonfinite_tensor(module: torch.nn.Module) -> str | None:
    """The name of the first floating-point weight or buffer holding a NaN or an infinity (EMA copies included)."""
    for name, tensor in module.state_dict().items():
        if torch.is_tensor(tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            return name
    return None


class TrainingProgress(Callback):
    """Counts steps, seeds each step, checkpoints every N steps and stops at `max_steps`; stops a diverged run.

    Seeding each step from (seed, rank, step) makes every random draw of a step (noise, dropout, frame choices)
    independent of what ran before, so N straight steps and N/2 + resume + N/2 give the same weights, and DDP ranks
    draw different noise. Every step's logged losses, and the weights before each checkpoint, must be finite: the
    first NaN or infinity raises `TrainingDiverged` before anything of that state is written, so `last.ckpt` stays the
    last finite checkpoint (`last_finite`: its path and step; the resumed checkpoint until this run saves one).
    """

    def __init__(self, seed: int, max_steps: int, checkpoint_every: int, checkpoint_dir: Path,
                 resumed_from: tuple[Path, int] | None = None):
        self.seed, self.max_steps, self.every, self.dir = seed, max_steps, checkpoint_every, checkpoint_dir
        self.last_finite = resumed_from

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        torch.manual_seed(step_seed(self.seed, trainer.global_rank, pl_module.iteration))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        bad = first_nonfinite_loss(trainer.callback_metrics)
        if bad is not None:
            raise TrainingDiverged(f"training diverged at step {pl_module.iteration + 1}: {bad[0]} = {bad[1]}")
        average_buffers_across_ranks(pl_module)
        pl_module.iteration += 1
        step = pl_module.iteration
        if step % self.every == 0 or step >= self.max_steps:
            self.save(trainer, pl_module, step)
        if step >= self.max_steps:
            trainer.should_stop = True

    def save(self, trainer: pl.Trainer, model: torch.nn.Module, step: int) -> None:
        bad = first_nonfinite_tensor(model)  # finite losses can still leave NaN weights (a NaN gradient)
        if bad is not None:
            raise TrainingDiverged(f"training diverged at step {step}: the weights {bad} are not finite")
        path = self.dir / f"step={step:07d}.ckpt"
        trainer.save_checkpoint(path, weights_only=False)  # all state; SameFolderCheckpointIO writes beside, renames
        if trainer.is_global_zero:  # last.ckpt is replaced atomically: an interruption never leaves half a file
            tmp = self.dir / temp_name("last.ckpt")
            shutil.copyfile(path, tmp)
            _fsync(tmp)
            os.replace(tmp, self.dir / "last.ckpt")
        self.last_finite = (self.dir / "last.ckpt", step)


def temp_name(name: str) -> str:
    """The name a file is written under before it is renamed to `name`: hidden, and marked with the writer's pid."""
    return f".{name}.{os.getpid()}.tmp"


_CHECKPOINT_TEMP = re.compile(r"^\.(?P<name>.+\.ckpt)\.(?P<pid>\d+)\.tmp$")  # temp_name of a checkpoint


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_checkpoint_temps(checkpoint_dir: Path) -> None:
    """Delete the checkpoint temp files (`temp_name`) that a killed save left in `checkpoint_dir`: those of processes
    that are gone (a live writer's file is its save in progress). Nothing else is touched."""
    if not checkpoint_dir.is_dir():
        return
    stale = [p for p in checkpoint_dir.iterdir() if p.is_file() and (m := _CHECKPOINT_TEMP.match(p.name))
             and int(m["pid"]) != os.getpid() and not _process_alive(int(m["pid"]))]
    if not stale:
        return
    size = sum(p.stat().st_size for p in stale)
    for p in stale:
        p.unlink(missing_ok=True)
    print(f"zoo fit: removed {len(stale)} temporary file(s) ({size / 1e6:.1f} MB) that an interrupted checkpoint "
          f"save left in {checkpoint_dir}", file=sys.stderr)


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
        tmp = path.parent / temp_name(path.name)
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
    """Writes `<run_dir>/config.yaml` (atomically, rank 0) once the first step has trained, i.e. after Lightning
    restored a resumed checkpoint and the settings proved they run: a run that fails before that (a bad checkpoint, a
    refused resume, a first step that crashes or diverges) leaves the file as it was.
    """

    def __init__(self, run_dir: Path, config: ExperimentConfig):
        self.run_dir, self.config = run_dir, config
        self.written = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.written:
            return
        self.written = True
        if trainer.is_global_zero:  # the settings, then facts of the run (the video reader) that are not settings
            recorded = yaml.safe_dump({"recorded": pl_module.experiment.get("recorded", {})})
            write_atomic(self.run_dir / "config.yaml", self.config.to_yaml() + recorded)


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` by `text` through a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / temp_name(path.name)
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
        if isinstance(model, ConditionalVideoModel):  # condition | translation | real target
            from zoo.translate import condition_preview

            grid = side_by_side(condition_preview(real["condition"], model.spec.condition), fake.cpu(), real["video"])
        else:
            grid = side_by_side(real["video"], fake.cpu())
        path = write_video(grid, self.dir / f"step={model.iteration:07d}.gif")
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

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # a run stopped by an error (divergence, a bad file) ends its bar here: left open, the next line printed
        # (the error) is glued to it, and every later bar of the process is drawn one line lower
        if self._train_progress_bar is not None:
            self._train_progress_bar.close()


def default_run_dir(config: ExperimentConfig) -> Path:
    return Path(config.train.run_dir or runs_root() / f"{config.model_name}-{config.data.name}")


def build_model(config: ExperimentConfig, datamodule: VideoDataModule) -> VideoGenerativeModel:
    dataset = datamodule.dataset
    spec = VideoSpec(dataset.channels, config.data.frames, config.data.resolution, dataset.num_classes,
                     config.data.condition, dataset.condition_channels)
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


def is_child_process() -> bool:
    """Whether this process is a DDP worker that Lightning started (rank 0 is the one `zoo fit` runs in)."""
    return os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0"


def check_run_dir(run_dir: Path) -> None:
    """Refuse a run directory that is a file, lies under a file, or cannot be written, before anything starts."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ZooError(f"--run-dir {run_dir} is a file, not a folder; pass a folder (it is created if missing)")
    ancestor = next((p for p in run_dir.absolute().parents if p.exists()), None)
    if not run_dir.exists() and ancestor is not None and not ancestor.is_dir():
        raise ZooError(f"--run-dir {run_dir}: {ancestor} is a file, so no folder can be made under it")
    writable = run_dir if run_dir.exists() else ancestor
    if writable is not None and not os.access(writable, os.W_OK | os.X_OK):
        raise ZooError(f"--run-dir {run_dir}: {writable} is not writable by this user")


RUN_FILES = ("config.yaml", "metrics.csv")  # what a run leaves before (or without) its first checkpoint


def resolve_resume(resume: str | bool | None, run_dir: Path, model_name: str) -> tuple[Path | None, dict | None]:
    """The checkpoint to resume from and its contents (validated), or `(None, None)` for a fresh run that
    overwrites nothing."""
    checkpoints = run_dir / "checkpoints"
    if not resume:
        if is_child_process():
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


class CompactModelSummary(ModelSummary):
    """Lightning's model summary without its FLOPs column and "Total Flops" line: Lightning counts FLOPs only for a
    model with an `example_input_array`, which no zoo model has, so they always read 0."""

    @staticmethod
    def summarize(summary_data, total_parameters, trainable_parameters, model_size, total_training_modes,
                  total_flops, **summarize_kwargs) -> None:
        columns = [column for column in summary_data if column[0] != "FLOPs"]
        table = _format_summary_table(total_parameters, trainable_parameters, model_size, total_training_modes,
                                      total_flops, *columns)
        lines = [line for line in table.splitlines() if not line.endswith("Total Flops")]
        logging.getLogger("pytorch_lightning.callbacks.model_summary").info("\n" + "\n".join(lines))


class _DropLightningTips(logging.Filter):
    """Drops Lightning's advertisements ("💡 Tip: ... try installing litlogger"): nothing a user of the zoo acts on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("💡 Tip")


def quiet_lightning_tips() -> None:
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropLightningTips) for f in logger.filters):
            logger.addFilter(_DropLightningTips())


def entries_of(folder: Path) -> set[str] | None:
    """The names in `folder`, or None when it does not exist (what a failed fresh start may remove is the rest)."""
    return {p.name for p in folder.iterdir()} if folder.is_dir() else None


def remove_new_entries(folder: Path, before: set[str] | None) -> list[str]:
    """Delete what appeared in `folder` since `before = entries_of(folder)` (and `folder` itself if it was made and is
    left empty); return the removed names. Used only for what this run wrote within its own failed first step."""
    if not folder.is_dir():
        return []
    removed = sorted({p.name for p in folder.iterdir()} - (before or set()))
    for name in removed:
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if before is None and not any(folder.iterdir()):
        folder.rmdir()
    return removed


def diverged_message(error: TrainingDiverged, progress: TrainingProgress, removed: bool) -> str:
    """The one line a diverged run ends with: what diverged, and what is left to resume from."""
    if progress.last_finite is not None:
        path, step = progress.last_finite
        flag = "--resume" if path == progress.dir / "last.ckpt" else f"--resume {path}"
        kept = f"{path} (step {step}) is the last finite checkpoint; `zoo fit {flag}` continues from it, e.g. with a " \
               "lower model.lr"
    else:
        kept = "no checkpoint was written" + (" and the run left no files" if removed else "")
    return f"{error}; stopped without writing a checkpoint of this state: {kept}. Check the settings (learning rate, " \
           "eps and other small constants) or the data"


@dataclass
class FitResult:
    run_dir: Path
    model: VideoGenerativeModel  # the trained model, as in the last checkpoint (rank 0's copy under DDP)


def fit(config: ExperimentConfig, resume: str | bool | None = None, extra_callbacks: list[Callback] = ()) -> FitResult:
    """Train `config` (resuming from a checkpoint if asked) and return the run directory and trained model.

    `extra_callbacks` run after the zoo's own (e.g. timers in benchmarks)."""
    train = config.train
    check_experiment(config)  # resolve_config checked it too; a config edited since (dataclasses.replace) is not
    run_dir = default_run_dir(config)
    check_run_dir(run_dir)
    ckpt_path, checkpoint = resolve_resume(resume, run_dir, config.model_name)
    if not is_child_process():
        remove_stale_checkpoint_temps(run_dir / "checkpoints")
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

    before = entries_of(run_dir)
    progress = TrainingProgress(train.seed, train.max_steps, train.checkpoint_every, run_dir / "checkpoints",
                                resumed_from=(ckpt_path, resumed_step) if ckpt_path is not None else None)
    try:
        run_trainer(config, model, datamodule, run_dir, ckpt_path, resumed_step, progress, extra_callbacks)
    except BaseException as e:
        # a run that fails before its first step completes (a crash, a divergence, Ctrl-C) leaves the folder as it
        # found it, so that the same command can be retried; later failures keep the run's files
        first_step_failed = model.iteration == (resumed_step or 0) and not is_child_process()
        removed = remove_new_entries(run_dir, before) if first_step_failed else []
        if isinstance(e, TrainingDiverged):
            raise TrainingDiverged(diverged_message(e, progress, bool(removed))) from None
        raise
    return FitResult(run_dir, model)


def run_trainer(config: ExperimentConfig, model: VideoGenerativeModel, datamodule: VideoDataModule, run_dir: Path,
                ckpt_path: Path | None, resumed_step: int | None, progress: TrainingProgress,
                extra_callbacks: list[Callback]) -> None:
    """Build the Lightning Trainer around the run's `progress` and train."""
    train = config.train
    callbacks = [
        progress,
        StepProgressBar(train.max_steps),
        SampleGrid(train.sample_every, train.sample_count, run_dir / "samples", train.seed),
        RunConfigWriter(run_dir, config),
        CompactModelSummary(),
        *extra_callbacks,
    ]
    quiet_lightning_tips()
    try:
        trainer = build_trainer(config, model, run_dir, resumed_step, callbacks)
    except MisconfigurationException as e:  # e.g. --strategy deepspeed without the deepspeed package
        raise ZooError(f"Lightning cannot run --strategy {train.strategy} --accelerator {train.accelerator} "
                       f"--precision {train.precision} here: {str(e).splitlines()[0]}") from None
    with warnings.catch_warnings():
        # torch 2.13 deprecates LeafSpec, which Lightning 2.6 still builds for every batch: nothing a user can act on
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
        # ResumableSampler restarts mid-epoch exactly (tests/test_resume.py); Lightning cannot know and warns otherwise
        warnings.filterwarnings("ignore", message=r"You're resuming from a checkpoint that ended before the epoch")
        if eval_modules_are_frozen(model):
            warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)


def build_trainer(config: ExperimentConfig, model: VideoGenerativeModel, run_dir: Path, resumed_step: int | None,
                  callbacks: list[Callback]) -> pl.Trainer:
    train = config.train
    return pl.Trainer(
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
        enable_model_summary=False,  # CompactModelSummary prints it (else Lightning says it skips its own)
        default_root_dir=run_dir,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # ResumableSampler shards across ranks itself
        sync_batchnorm=multi_gpu(train),  # BatchNorm statistics over the global batch (GPU only in PyTorch)
    )
