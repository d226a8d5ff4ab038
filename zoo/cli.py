"""The `zoo` command: fit, sample, list, data (and eval, leaderboard from the evaluation harness).

Every subcommand is a small function taking parsed arguments; user errors (`ZooError`) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from zoo.errors import ZooError

FIT_FLAGS = {  # flag -> (section, key, type, help)
    "data_root": ("data", "root", str, "dataset directory"),
    "frames": ("data", "frames", int, "frames per clip"),
    "resolution": ("data", "resolution", int, "frame height = width in pixels"),
    "frame_stride": ("data", "frame_stride", int, "take every n-th source frame"),
    "batch_size": ("train", "batch_size", int, "videos per device per step"),
    "max_steps": ("train", "max_steps", int, "training steps (batches)"),
    "devices": ("train", "devices", int, "devices (processes) per node"),
    "accelerator": ("train", "accelerator", str, "cpu | gpu | auto"),
    "strategy": ("train", "strategy", str, "auto | ddp | ddp_spawn | ..."),
    "num_nodes": ("train", "num_nodes", int, "number of nodes"),
    "precision": ("train", "precision", str, "32-true | bf16-mixed | 16-mixed"),
    "logger": ("train", "logger", str, "csv | tensorboard | wandb (CSV is always written)"),
    "run_dir": ("train", "run_dir", str, "run directory (default runs/<model>-<data>)"),
    "seed": ("train", "seed", int, "experiment seed"),
}


def _add_fit(sub) -> None:
    from zoo.registry import DATASETS, MODELS

    p = sub.add_parser("fit", help="train a model", description="Train a model of the zoo on a dataset.")
    p.add_argument("--model", required=True, help=f"model key: {', '.join(MODELS.keys())}")
    p.add_argument("--data", default="shapes", help=f"dataset key: {', '.join(DATASETS.keys())} (default shapes)")
    p.add_argument("--config", action="append", default=[], metavar="FILE", help="YAML overrides (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="one override")
    for flag, (_, _, kind, text) in FIT_FLAGS.items():
        p.add_argument("--" + flag.replace("_", "-"), type=kind, default=None, help=text)
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="CKPT",
                   help="continue from CKPT (default: <run-dir>/checkpoints/last.ckpt)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    _add_threads(p, "training")
    p.set_defaults(run=_run_fit)


def _add_threads(p, what: str) -> None:
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help=f"CPU cores for {what} and its data workers (default: $OMP_NUM_THREADS, else the cores this "
                        "process may use, cgroup quota included); each data worker takes one")


def _resolve(args):
    from zoo.config import resolve_config
    from zoo.registry import DATASETS, MODELS

    model_cls = MODELS.get(args.model)
    DATASETS.get(args.data)
    flags: dict[str, dict] = {}
    for flag, (section, key, _, _) in FIT_FLAGS.items():
        flags.setdefault(section, {})[key] = getattr(args, flag)
    return resolve_config(args.model, args.data, model_cls.config_class, args.config, args.set, flags)


def _check_fit(config) -> None:
    """What the declared ranges cannot say: training needs clips of at least 2 frames (data views of 1 frame exist)."""
    if config.data.frames < 2:
        raise ZooError(f"data.frames (--frames) must be at least 2 (a video needs at least 2 frames), "
                       f"got {config.data.frames}")


def _run_fit(args) -> None:
    config = _resolve(args)
    _check_fit(config)
    if args.print_config:
        print(config.to_yaml(), end="")
        return
    from zoo.threads import apply_threads
    from zoo.training import fit

    cpu = config.train.accelerator == "cpu" or (config.train.accelerator == "auto" and not _cuda_available())
    apply_threads(args.threads, config.data.num_workers, config.train.devices if cpu else 1)
    result = fit(config, resume=args.resume)
    print(f"run directory: {result.run_dir}")


# `zoo sample` limits, refused up front with the limit in the message (docs/safety.md lists them)
SAMPLE_MAX_NUM = 1024  # videos in one grid (a 32 x 32 grid); score more with `zoo eval`
SAMPLE_MAX_TILE = 1024  # pixels a video is enlarged to
SAMPLE_FPS = (0.1, 240.0)  # frame rates of an MP4 (a frame every 10 s to 240 a second)
SAMPLE_GIF_MAX_FPS = 50.0  # GIF delays are whole 1/100 s, and players slow down delays under 2/100 s
SAMPLE_MAX_SEED = 2**64 - 1  # what torch.Generator.manual_seed takes; negative seeds would wrap onto these
SAMPLE_FRAMES_FACTOR, SAMPLE_MIN_FRAMES_CAP = 8, 128  # --frames at most max(8 x the training length, 128)
SAMPLE_MAX_BYTES = 2 << 30  # estimated memory of the videos (float32) and the grid (uint8, twice: tiles and grid)


def _add_sample(sub) -> None:
    p = sub.add_parser("sample", help="write samples of a checkpoint as a GIF/MP4 grid (conditional models: "
                                      "condition | translation | real target)")
    p.add_argument("--ckpt", required=True, help="checkpoint written by `zoo fit`")
    p.add_argument("--num", type=int, default=16, help=f"number of videos (at most {SAMPLE_MAX_NUM})")
    p.add_argument("--out", help="output .gif or .mp4 (default: runs/samples/<run>-<checkpoint>.gif, under "
                                 "$ZOO_HOME when set); an existing file is replaced only with --force")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--labels", type=int, nargs="+", help="class labels (one, or one per video)")
    p.add_argument("--frames", type=int, help=f"clip length (default: the training length; at most "
                                              f"the larger of {SAMPLE_FRAMES_FACTOR}x it and {SAMPLE_MIN_FRAMES_CAP})")
    p.add_argument("--seed", type=int, default=0, help="noise seed, 0 to 2**64-1")
    p.add_argument("--fps", type=float, default=8.0,
                   help=f"frames per second (default 8): {SAMPLE_FPS[0]:g} to {SAMPLE_FPS[1]:g}, at most "
                        f"{SAMPLE_GIF_MAX_FPS:g} for a .gif")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--tile", type=int, default=None, metavar="PX",
                   help="enlarge each video (nearest neighbour) to about PX pixels for viewing (default 96; 0 = "
                        f"original size; at most {SAMPLE_MAX_TILE})")
    p.add_argument("--condition-from", metavar="VIDEO_OR_DIR",
                   help="conditional models: translate these videos (their edges, or the videos as the source)")
    p.add_argument("--data-root", help="conditional models: read the held-out conditions from this dataset root")
    _add_threads(p, "sampling")
    p.set_defaults(run=_run_sample)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def check_device(device: str, flag: str = "--device") -> str:
    """`cpu`, `cuda` or `cuda:N`, refused in one line when this machine cannot run it."""
    import torch

    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()) or (kind == "cpu" and index):
        raise ZooError(f"{flag} must be cpu, cuda or cuda:N, got {device!r}")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ZooError(f"{flag} {device}: no CUDA device is visible here (torch {torch.__version__}, "
                           f"CUDA build: {torch.version.cuda or 'none'}); use {flag} cpu")
        if index and int(index) >= torch.cuda.device_count():
            raise ZooError(f"{flag} {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return device


def _check_sample_flags(args) -> None:
    """Refuse, before loading anything, the flags `zoo sample` cannot honour (each message states the limit)."""
    if not args.num >= 1:
        raise ZooError(f"--num must be at least 1, got {args.num}")
    if args.num > SAMPLE_MAX_NUM:
        raise ZooError(f"--num {args.num} is more than a viewing grid takes (at most {SAMPLE_MAX_NUM}); score more "
                       "samples with `zoo eval`")
    if args.frames is not None and args.frames < 2:
        raise ZooError(f"--frames must be at least 2 (a video), got {args.frames}; omit it for the training length")
    low, high = SAMPLE_FPS
    if not low <= args.fps <= high:  # also refuses nan and inf
        raise ZooError(f"--fps must lie in [{low:g}, {high:g}], got {args.fps:g}")
    if not 0 <= args.seed <= SAMPLE_MAX_SEED:
        raise ZooError(f"--seed must lie in [0, 2**64-1] (what torch.Generator takes), got {args.seed}")
    if args.tile is not None and not 0 <= args.tile <= SAMPLE_MAX_TILE:
        raise ZooError(f"--tile must be 0 (original size) or a pixel size up to {SAMPLE_MAX_TILE}, got {args.tile}")
    check_device(args.device)


def default_sample_path(ckpt: str | Path) -> Path:
    """`runs/samples/<run>-<checkpoint>.gif` (under `$ZOO_HOME` when set): never a file in the working directory,
    so samples of a checkout's runs stay out of git (`runs/` is ignored)."""
    from zoo.paths import runs_root

    ckpt = Path(ckpt)
    run = ckpt.parent.parent.name if ckpt.parent.name == "checkpoints" else ckpt.parent.name  # zoo fit's layout
    return runs_root() / "samples" / (f"{run}-{ckpt.stem}.gif" if run else f"{ckpt.stem}.gif")


def check_output_file(path: Path, force: bool, flag: str = "--out") -> None:
    """`path` can be written: not a directory or a special file, in a folder that is not a file, and new unless
    `force` (which replaces regular files only: never /dev/null and kin)."""
    if path.is_dir():
        raise ZooError(f"{flag} {path} is a directory; name a file in it, e.g. {flag} {path / 'samples.gif'}")
    if path.exists() and not path.is_file():
        raise ZooError(f"{flag} {path} is not a regular file; name a .gif or .mp4 file")
    if path.exists() and not force:
        raise ZooError(f"{flag} {path} already exists; pass --force to replace it, or choose another {flag}")
    blocking = next((p for p in path.parents if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise ZooError(f"{flag} {path}: {blocking} is a file, not a folder")


def _check_sample_size(args, model) -> None:
    """Refuse a clip length over the model-aware cap, and videos plus grid estimated over `SAMPLE_MAX_BYTES`."""
    from zoo.video_io import DEFAULT_TILE, grid_shape

    trained = model.spec.frames
    frames = args.frames or trained
    cap = max(SAMPLE_FRAMES_FACTOR * trained, SAMPLE_MIN_FRAMES_CAP)
    if frames > cap:
        raise ZooError(f"--frames {frames} is more than this {model.registry_key} model samples here (at most "
                       f"max({SAMPLE_FRAMES_FACTOR} x its {trained} training frames, {SAMPLE_MIN_FRAMES_CAP}) = {cap})")
    size, channels = model.spec.resolution, model.spec.channels
    tile = DEFAULT_TILE if args.tile is None else args.tile
    videos = args.num * channels * frames * size * size * 4
    grid = math.prod(grid_shape(args.num, frames, size, tile or None))
    estimate = videos + 2 * grid
    if estimate > SAMPLE_MAX_BYTES:
        raise ZooError(f"--num {args.num} x --frames {frames} at --tile {tile} needs about {estimate / 2**30:.1f} GiB "
                       f"(at most {SAMPLE_MAX_BYTES / 2**30:.0f} GiB); lower --num, --frames or --tile")


def _sample_output(args) -> Path:
    """The file `zoo sample` writes, refused before any work when it cannot (or must not) be written."""
    out = Path(args.out) if args.out else default_sample_path(args.ckpt)
    check_output_file(out, args.force)
    if out.suffix.lower() not in (".gif", ".mp4"):
        raise ZooError(f"--out must end in .gif or .mp4, got {out}")
    if out.suffix.lower() == ".gif" and args.fps > SAMPLE_GIF_MAX_FPS:
        raise ZooError(f"--fps {args.fps:g} is faster than a GIF plays (at most {SAMPLE_GIF_MAX_FPS:g}: its frame "
                       f"delays are whole 1/100 s); write an .mp4 for up to {SAMPLE_FPS[1]:g}")
    return out


def _sample_labels(args, model):
    """`--labels` as a tensor of one label per video, or None; refused when the model cannot take them."""
    import torch

    if not args.labels:
        return None
    classes = model.label_classes
    if classes == 0:
        raise ZooError(f"{args.ckpt} holds an unconditional {model.registry_key} model: it cannot take --labels "
                       "(train with model.categorical / model.class_conditional for class-conditional sampling)")
    if len(args.labels) not in (1, args.num):
        raise ZooError(f"--labels takes one label or one per video ({args.num}), got {len(args.labels)}")
    if min(args.labels) < 0 or max(args.labels) >= classes:
        raise ZooError(f"--labels must lie in [0, {classes - 1}] for this model, got {args.labels}")
    return torch.tensor(args.labels * args.num if len(args.labels) == 1 else args.labels)


def _run_sample(args) -> None:
    _check_sample_flags(args)
    out = _sample_output(args)
    import torch

    from zoo.models import load_model
    from zoo.threads import apply_threads
    from zoo.video_io import DEFAULT_TILE, make_grid, write_video

    apply_threads(args.threads)
    model = load_model(args.ckpt, map_location=args.device)
    from zoo.models.base import ConditionalVideoModel

    if isinstance(model, ConditionalVideoModel):
        _translate(args, model, out)
        return
    if args.condition_from or args.data_root:
        raise ZooError(f"{args.ckpt} holds an unconditional {model.registry_key} model: it samples from noise and "
                       "takes no --condition-from / --data-root")
    labels = _sample_labels(args, model)
    _check_sample_size(args, model)
    generator = torch.Generator(device=args.device).manual_seed(args.seed)
    videos = model.sample(args.num, labels=labels, generator=generator, frames=args.frames)
    tile = DEFAULT_TILE if args.tile is None else args.tile
    path = write_video(make_grid(videos.cpu(), tile=tile or None), out, fps=args.fps)
    print(f"wrote {args.num} samples of {model.registry_key} to {path}")


def _translate(args, model, out: Path) -> None:
    """`zoo sample` of a conditional model: held-out conditions (or the user's videos) | translations | targets."""
    import torch

    from zoo.translate import condition_preview, conditions_from, heldout_items
    from zoo.video_io import DEFAULT_TILE, side_by_side, write_video

    if args.labels or args.frames:
        raise ZooError(f"{model.registry_key} translates conditions at their own length and takes no --labels or "
                       "--frames")
    _check_sample_size(args, model)
    generator = torch.Generator(device=args.device).manual_seed(args.seed)
    tile = DEFAULT_TILE if args.tile is None else args.tile
    with model.evaluating():
        if args.condition_from:
            condition = conditions_from(args.condition_from, model, args.num)
            blocks = [condition_preview(condition, model.spec.condition)]
            blocks.append(model.translate(condition, generator=generator).cpu())
            what = f"{len(condition)} videos of {args.condition_from}"
        else:
            items = heldout_items(model, args.num, args.data_root)
            blocks = [condition_preview(items["condition"], model.spec.condition)]
            blocks += [model.translate(items["condition"], generator=generator).cpu(), items["video"]]
            what = f"{args.num} held-out conditions"
    path = write_video(side_by_side(*blocks, tile=tile or None), out, fps=args.fps)
    print(f"wrote {model.registry_key} translations of {what} to {path} (condition | output"
          f"{'' if args.condition_from else ' | real target'})")


def _add_list(sub) -> None:
    p = sub.add_parser("list", help="list registered models, datasets and metrics")
    p.add_argument("what", nargs="?", choices=["models", "datasets", "metrics"], help="one table only")
    p.set_defaults(run=_run_list)


def _run_list(args) -> None:
    from zoo.registry import DATASETS, METRICS, MODELS

    for registry in (MODELS, DATASETS, METRICS):
        if args.what and registry.kind + "s" != args.what:
            continue
        print(f"{registry.kind}s:")
        for entry in registry:
            print(f"  {entry.key:<18} {entry.description}")
            if entry.paper:
                print(f"  {'':<18} {entry.paper}")


def _add_data(sub) -> None:
    p = sub.add_parser("data", help="dataset tools")
    tools = p.add_subparsers(dest="tool", required=True)
    synth = tools.add_parser("synth", help="write `shapes` clips as .mp4 files (class = folder name)")
    synth.add_argument("--out", required=True, help="output directory")
    synth.add_argument("--num", type=int, default=64, help="number of clips")
    synth.add_argument("--frames", type=int, default=32)
    synth.add_argument("--resolution", type=int, default=64)
    synth.add_argument("--fps", type=float, default=25.0)
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(run=_run_data_synth)
    from zoo.datasets.commands import add_data_tools

    add_data_tools(tools)


def _run_data_synth(args) -> None:
    from tqdm import tqdm

    from zoo.datasets.shapes import MOTIONS, SHAPES, render_clip
    from zoo.video_io import write_video

    out = Path(args.out)
    for index in tqdm(range(args.num), desc="writing shapes clips"):
        clip = render_clip(args.seed, index, args.frames, args.resolution)
        shape, motion = divmod(int(clip["label"]), len(MOTIONS))
        write_video(clip["pixels"].numpy(), out / f"{SHAPES[shape]}_{MOTIONS[motion]}" / f"{index:06d}.mp4", args.fps)
    print(f"wrote {args.num} clips to {out}")


def build_parser() -> argparse.ArgumentParser:
    from zoo.registry import load_all

    load_all()
    parser = argparse.ArgumentParser(prog="zoo", description="video-zoo: train and evaluate video generative models")
    sub = parser.add_subparsers(dest="command", required=True)
    from zoo.bench import add_bench_parser
    from zoo.evaluation.command import add_eval_parser
    from zoo.leaderboard import add_leaderboard_parser
    from zoo.metrics.detectors.weights import add_weights_parser

    for add in (_add_fit, _add_sample, _add_list, _add_data, add_eval_parser, add_leaderboard_parser,
                add_weights_parser, add_bench_parser):
        add(sub)
    return parser


def _end_progress_bars() -> None:
    """Close the bars an error left open (a loop it broke out of), so the error starts on a line of its own instead
    of being glued to a half-drawn bar."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.run(args)  # a subcommand may return its exit status (`zoo data check`: 1 = bad files)
    except ZooError as e:
        _end_progress_bars()
        print(f"zoo {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _end_progress_bars()
        print(f"zoo {args.command}: interrupted", file=sys.stderr)
        return 130
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
