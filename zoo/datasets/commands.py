"""`zoo data cliplist | prepare | check`: the data layer's command-line tools (wired in by `zoo.cli._add_data`)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from zoo.errors import ZooError

DATA_FLAGS = {  # flag -> (DataConfig field, type, help)
    "data_root": ("root", str, "dataset directory"),
    "split": ("split", str, "train | test | all (UCF-101); train | val | test (Kinetics)"),
    "fold": ("fold", int, "UCF-101 fold 1..3"),
    "frames": ("frames", int, "frames per clip"),
    "frame_stride": ("frame_stride", int, "take every n-th source frame"),
    "resolution": ("resolution", int, "output height = width in pixels"),
    "resize": ("resize", str, "short_side_crop | stretch"),
    "clips_per_video": ("clips_per_video", int, "evaluation clips per video"),
    "video_stream": ("video_stream", int, "n-th video stream of multi-stream files (default: most pixels)"),
    "split_dir": ("split_dir", str, "UCF-101 ucfTrainTestlist folder"),
    "annotations": ("annotations", str, "Kinetics annotation CSV"),
    "decode_threads": ("decode_threads", int, "decoder threads"),
}


def _add_common(p: argparse.ArgumentParser, defaults: dict | None = None) -> None:
    from zoo.registry import DATASETS

    p.add_argument("--data", required=True, help=f"dataset key: {', '.join(DATASETS.keys())}")
    p.add_argument("--set", action="append", default=[], metavar="data.KEY=VALUE", help="any other DataConfig field")
    for flag, (_, kind, text) in DATA_FLAGS.items():
        p.add_argument("--" + flag.replace("_", "-"), type=kind, default=(defaults or {}).get(flag), help=text)


def _config(args, **forced):
    """The `DataConfig` the flags and `--set` assignments describe (`forced` fields win)."""
    from zoo.config import DataConfig, parse_set, update_dataclass

    fields = {field: getattr(args, flag) for flag, (field, _, _) in DATA_FLAGS.items()}
    fields = {k: v for k, v in fields.items() if v is not None}
    for assignment in args.set:
        section, key, value = parse_set(assignment)
        if section != "data":
            raise ZooError(f"--set here takes data.KEY=VALUE, got {assignment!r}")
        fields[key] = value
    fields.update(forced)
    return update_dataclass(DataConfig(name=args.data), {k: v for k, v in fields.items() if k != "name"}, "data")


def _build(args, **forced):
    from zoo.datasets import build_dataset

    return build_dataset(args.data, _config(args, **forced))


def add_data_tools(tools) -> None:
    """Add `cliplist`, `prepare` and `check` to the `zoo data` sub-parsers."""
    p = tools.add_parser("cliplist", help="write a deterministic evaluation clip list (JSON)",
                         description="Draw the real clips every model's FVD is computed on, and save them.")
    _add_common(p)
    p.add_argument("--num", type=int, default=2048, help="number of clips (default 2048)")
    p.add_argument("--seed", type=int, default=0, help="clip-list seed")
    p.add_argument("--out", required=True, help="output .json")
    p.set_defaults(run=run_cliplist)

    p = tools.add_parser("prepare", help="decode a dataset once into uint8 frames at training resolution",
                         description="Decode every video once, resized, into DIR/frames.u8 + DIR/meta.json; "
                                     "train from it with --set data.prepared=DIR.")
    _add_common(p, {"frames": 1})
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--workers", type=int, default=2, help="decoding processes")
    p.set_defaults(run=run_prepare)

    p = tools.add_parser("check", help="count found / missing / unreadable / too-short videos",
                         description="Index a dataset copy and report what is usable; --decode also reads the first "
                                     "and last frame of every video. Exit status: 0 every file usable, 1 some file "
                                     "bad (listed above the counts), 2 the copy cannot be checked (one-line error).")
    _add_common(p)
    p.add_argument("--decode", action="store_true", help="decode first and last frame of every video")
    p.set_defaults(run=run_check)


def run_cliplist(args) -> None:
    from zoo.datasets.cliplist import make_clip_list

    dataset = _build(args, seed=args.seed)
    clip_list = make_clip_list(dataset, args.num, args.seed)
    path = clip_list.save(args.out)
    print(f"wrote {len(clip_list)} clips of {args.data} ({dataset.config.split}) to {path}; "
          f"protocol fingerprint {clip_list.fingerprint}")


def run_prepare(args) -> None:
    from zoo.datasets.prepared import prepare

    dataset = _build(args)
    if not hasattr(dataset, "records"):
        raise ZooError(f"{args.data} is procedural; there is nothing to prepare")
    if not dataset.preparable:
        raise ZooError(f"{args.data} cannot be prepared: it reads a source beside every target")
    counts = prepare(dataset, args.out, workers=args.workers)
    print(f"prepared {counts['videos']} videos ({counts['frames']} frames, {dataset.config.resolution}px, "
          f"{counts['failed']} failed) in {Path(args.out)}; train with --set data.prepared={args.out}")


CHECK_OK, CHECK_BAD = 0, 1  # `zoo data check` exit status: every file usable | some file bad (listed); 2: error


def run_check(args) -> int:
    """Report the copy; exit status `CHECK_BAD` when any file counts as bad (missing where the dataset counts
    missing files, unreadable, too large, or, with --decode, undecodable), so scripts can rely on it."""
    from tqdm import tqdm

    from zoo.datasets.clips import ClipDataset
    from zoo.datasets.decode import DecodeError
    from zoo.registry import DATASETS

    config, cls = _config(args), DATASETS.get(args.data)
    if not issubclass(cls, ClipDataset):
        print(f"{args.data}: procedural, {len(cls(config))} videos, nothing to check")
        return CHECK_OK
    dataset = cls(config, refuse_bad=False)  # list every bad file, however many
    counts = dict(dataset.counts)
    problems = [(e.path, e.problem) for e in dataset.entries if e.problem is not None]
    bad = set(dataset.bad_at_index)
    if args.decode:
        failed = 0
        usable = [i for i, r in enumerate(dataset.records) if r.meta is not None]
        for i in tqdm(usable, desc="decoding", unit="video"):
            r = dataset.records[i]
            try:
                dataset.decode_check(i)
            except DecodeError as e:
                failed += 1
                problems.append((r.path, f"undecodable: {e}"))
                bad.add(r.path)
        counts["undecodable"] = failed
        counts["usable"] -= failed
    for path, problem in problems[:50]:
        print(f"  {path}: {problem}")
    if len(problems) > 50:
        print(f"  ... and {len(problems) - 50} more")
    c = dataclasses.asdict(dataset.config)
    print(f"{args.data} {c['split']} (root {dataset.root}): " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if bad:
        print(f"{len(bad)} bad file(s): exit status {CHECK_BAD}")
        return CHECK_BAD
    return CHECK_OK
