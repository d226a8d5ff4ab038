"""Experiment configs: dataclass defaults < experiments/<model>/<data>.yaml < --config FILE < --set k=v < flags.

An experiment is three sections, each a dataclass: `model` (the model's own config class, holding the paper's
hyper-parameters), `data` (`DataConfig`) and `train` (`TrainConfig`). YAML files hold only what differs from the
defaults, plus an optional `reference` list with the numbers the paper reports for that setting. Unknown keys and
wrong types are `ZooError`s that list the valid keys; YAML is only ever read with `yaml.safe_load`.

Valid ranges: a config dataclass declares them with the `@valid_ranges(...)` decorator (above `@dataclass`), one
entry per field: an interval string such as `"[1, inf)"` or `"(0, 1]"` (NaN is never inside), or a tuple of allowed
strings. `None` values (optional fields) and fields without an entry are not range-checked; list/tuple fields are
checked element by element. Every value set by a layer is checked when that layer is applied (the error names the
file or flag), and the whole resolved experiment once more at the end, with a memory estimate of one batch.
`describe_ranges` lists them (the table of data and train ranges in docs/safety.md is checked against it by the
tests).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zoo.errors import ZooError

EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"
SECTIONS = ("model", "data", "train")


# ---------------------------------------------------------------------------------------------------------------
# valid ranges


@dataclass(frozen=True)
class Interval:
    """A closed, open or half-open interval of numbers; parsed from `"[1, inf)"`-style text."""

    low: float
    high: float
    low_closed: bool
    high_closed: bool
    text: str

    def __contains__(self, value: float) -> bool:
        if isinstance(value, float) and math.isnan(value):
            return False
        above = value >= self.low if self.low_closed else value > self.low
        below = value <= self.high if self.high_closed else value < self.high
        return above and below

    def __str__(self) -> str:
        return self.text


_INTERVAL = re.compile(r"^\s*([\[(])\s*([^,\s]+)\s*,\s*([^,\s\])]+)\s*([\])])\s*$")


def parse_interval(text: str) -> Interval:
    """`"[a, b]"`, `"(a, b)"`, `"[a, b)"`, `"(a, b]"`; `a`, `b` numbers, `-inf` or `inf`."""
    m = _INTERVAL.match(text)
    if not m:
        raise TypeError(f"range {text!r} is not an interval like '[1, inf)' or '(0, 1]'")
    low, high = float(m.group(2)), float(m.group(3))
    text = f"{m.group(1)}{m.group(2)}, {m.group(3)}{m.group(4)}"
    return Interval(low, high, m.group(1) == "[", m.group(4) == "]", text)


Check = Interval | tuple  # an interval of numbers, or the allowed strings


def valid_ranges(**table: str | tuple[str, ...]):
    """Class decorator declaring the valid range of config fields; put it above `@dataclass`.

    Args:
        **table: field name -> interval text (`"[1, inf)"`, `"(0, 1]"`, `"[0, 1)"`; `inf` allowed) for numbers, or
            a tuple of the allowed strings. Fields left out are not range-checked.

    Example::

        @valid_ranges(frames="[1, 4096]", lr="(0, 1]", sampler=("ancestral", "ddim"))
        @dataclass
        class MyConfig:
            frames: int = 16  # clip length
            lr: float = 1e-4  # Adam learning rate
            sampler: str = "ancestral"  # ancestral | ddim
    """
    parsed: dict[str, Check] = {}
    for name, spec in table.items():
        if isinstance(spec, str):
            parsed[name] = parse_interval(spec)
        elif isinstance(spec, tuple) and spec and all(isinstance(c, str) for c in spec):
            parsed[name] = spec
        else:
            raise TypeError(f"valid range of {name!r} must be an interval string or a tuple of strings, got {spec!r}")

    def decorate(cls: type) -> type:
        inherited = dict(getattr(cls, "__zoo_ranges__", {}))
        cls.__zoo_ranges__ = {**inherited, **parsed}
        return cls

    return decorate


def ranges_of(cls_or_obj: Any) -> dict[str, Check]:
    """The declared valid ranges of a config dataclass (field name -> `Interval` or allowed strings)."""
    return dict(getattr(cls_or_obj, "__zoo_ranges__", {}))


def _comment_of(cls: type, name: str) -> str:
    """The trailing comment of field `name` in the class source (what the field means), or ''."""
    import inspect

    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return ""
    m = re.search(rf"^\s+{re.escape(name)}:[^#\n]*#\s*(.+)$", source, re.MULTILINE)
    return m.group(1).strip() if m else ""


FLOAT32_TINY = 2.0**-126  # smallest normal float32; smaller magnitudes are subnormal or flushed to 0
FLOAT32_MAX = (2 - 2**-23) * 2.0**127  # largest float32; larger magnitudes overflow to inf


def fits_float32(value: float) -> bool:
    """Whether a float setting survives the models' float32 arithmetic: 0, or a normal float32 magnitude.

    A declared interval such as `(0, 1)` admits 1e-50, which float32 rounds to 0 (an Adam eps of 0 divides 0 by 0 at
    the first step); this check applies to every range-checked float, whatever its interval says."""
    return not isinstance(value, float) or value == 0 or FLOAT32_TINY <= abs(value) <= FLOAT32_MAX


def check_ranges(obj: Any, section: str, names: Any = None) -> None:
    """Raise a one-line `ZooError` naming field, value and valid range for the first out-of-range field.

    Args:
        obj: a config dataclass instance.
        section: `model`, `data` or `train` (for the message).
        names: only these fields (default: every field with a declared range).
    """
    table = ranges_of(obj)
    for name, check in table.items():
        if (names is not None and name not in names) or not hasattr(obj, name):
            continue
        value = getattr(obj, name)
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if item is None:
                continue
            if isinstance(check, Interval):
                ok = isinstance(item, (int, float)) and not isinstance(item, bool) and item in check
                valid = f"a number in {check}"
                if ok and not fits_float32(item):
                    raise ZooError(f"{section}.{name} = {value!r} is beyond what a float32 (the precision the models "
                                   f"compute in) can hold: it would become 0 or inf; valid: 0 or a magnitude in "
                                   f"[{FLOAT32_TINY:.4g}, {FLOAT32_MAX:.4g}] within {check}")
            else:
                ok = item in check
                valid = f"one of {', '.join(check)}"
            if not ok:
                meaning = _comment_of(type(obj), name)
                shown = f"{value!r}" if item is value else f"{value!r} (element {item!r})"
                raise ZooError(f"{section}.{name} = {shown} is out of range; valid: {valid}"
                               + (f" ({meaning})" if meaning else ""))


def describe_ranges(cls: type, section: str) -> list[tuple[str, str, str]]:
    """`(section.field, valid range, meaning)` for every field of `cls` with a declared range."""
    out = []
    for f in dataclasses.fields(cls):
        check = ranges_of(cls).get(f.name)
        if check is not None:
            text = str(check) if isinstance(check, Interval) else ", ".join(check)
            out.append((f"{section}.{f.name}", text, _comment_of(cls, f.name)))
    return out


# One training batch of video (float32 `[B, C, T, H, W]` plus joint-training frames) is the least a step holds in
# memory, usually many times over (activations). Past this many bytes per rank the resolution / clip length / batch
# is absurd for every model here: refuse it at resolution time instead of failing inside an allocation.
MAX_BATCH_BYTES = 8 * 2**30


def check_memory(data: DataConfig, train: TrainConfig, channels: int = 3) -> None:
    """Refuse an experiment whose input batch alone exceeds `MAX_BATCH_BYTES` (see there)."""
    frames = data.frames + data.extra_frames
    nbytes = 4 * train.batch_size * channels * frames * data.resolution**2
    if nbytes > MAX_BATCH_BYTES:
        raise ZooError(
            f"one training batch would take {nbytes / 2**30:.1f} GiB before any activation (train.batch_size="
            f"{train.batch_size} x {channels} x (data.frames={data.frames} + data.extra_frames={data.extra_frames}) x "
            f"data.resolution={data.resolution}^2 float32), over the {MAX_BATCH_BYTES / 2**30:.0f} GiB limit per rank; "
            "lower the resolution, frames or batch size"
        )


# What a conditional dataset adds to each item as `condition` (float [C_c, T, H, W]): none (unconditional data),
# one-hot segmentation maps, edge maps of the decoded frames, keypoint heatmaps, or a paired folder's source video.
CONDITIONS = ("none", "segmentation", "edges", "keypoints", "source")
SEED_RANGE = "[0, 4294967295]"  # Lightning's seed_everything takes unsigned 32-bit seeds (else it picks one)


@valid_ranges(
    split=("train", "test", "all", "val", "validate"), fold="[1, 3]", frames="[1, 4096]", frame_stride="[1, 1000]",
    resolution="[4, 4096]", resize=("short_side_crop", "stretch"), seed=SEED_RANGE, num_videos="[1, inf)",
    clips_per_video="[1, 1000]", extra_frames="[0, 4096]", sparse_max_distance="[0, 2048]",
    num_workers="[0, 256]", decode_threads="[0, 256]",
    video_stream="[0, 1000]", decoder=("auto", "decord", "pyav"), max_bad_fraction="[0, 1]",
    crop_jitter="[0, 1]", max_source_pixels="[1, inf)", condition=CONDITIONS,
    edge_low="(0, 100]", edge_high="(0, 100]", keypoint_sigma="[0.1, 1000]", condition_classes="[1, 1024]",
    change_frame="[0, 4096]",
)
@dataclass
class DataConfig:
    """Everything that decides which clips a dataset yields and what they look like."""

    name: str = "shapes"  # registry key of the dataset
    root: str | None = None  # dataset directory (not needed by `shapes`)
    split: str = "train"  # train | test | all (train+test; papers mix these, so it is explicit)
    fold: int = 1  # UCF-101 split fold, 1..3
    frames: int = 16  # frames per clip
    frame_stride: int = 1  # take every n-th frame of the source video
    resolution: int = 64  # output height = width, pixels
    resize: str = "short_side_crop"  # short_side_crop (scale short side, centre crop) | stretch
    seed: int = 0  # seeds procedural data and evaluation clip lists
    num_videos: int | None = None  # cap on videos used (shapes: how many to generate; None = dataset default)
    clips_per_video: int = 1  # evaluation clips drawn per video
    extra_frames: int = 0  # independent frames from other videos appended per item (joint image-video training)
    sparse_max_distance: int = 0  # > 0: training clips = `frames` frames at sparse random times, gap <= this; 0 = off
    num_workers: int = 2  # DataLoader worker processes per rank
    decode_threads: int = 1  # decoder threads per worker
    video_stream: int | None = None  # multi-stream files: n-th video stream (0-based); None = the one with most pixels
    decoder: str = "auto"  # auto (decord, PyAV fallback) | decord | pyav
    split_dir: str | None = None  # UCF-101 ucfTrainTestlist folder (default <root>/ucfTrainTestlist, then beside root)
    annotations: str | None = None  # Kinetics annotation CSV (default <root>/<split>.csv, then beside root)
    folder_labels: bool = True  # `folder`: class = parent folder name (False: every label -1)
    prepared: str | None = None  # directory written by `zoo data prepare`; read instead of decoding
    index_cache: str | None = None  # directory of index caches (default $ZOO_CACHE or ~/.cache/video-zoo)
    max_bad_fraction: float = 0.01  # unreadable videos tolerated (fraction of the dataset) before a hard error
    hflip: bool = False  # training clips: mirrored left-right with p = 0.5, one seeded draw per clip (all its frames)
    crop_jitter: float = 0.0  # training clips: short_side_crop square moved off centre by up to this share of the slack
    max_source_pixels: int = 4096 * 4096  # width x height above which a source video is a bad file: bounds its cost
    condition: str = "none"  # what conditional models translate from (batch key `condition`); see CONDITIONS
    edge_low: float = 0.2  # condition=edges: Canny weak threshold on the unnormalised Sobel magnitude (unit step: 2.59)
    edge_high: float = 0.4  # condition=edges: Canny's strong threshold, >= edge_low (same units)
    keypoint_sigma: float = 1.5  # condition=keypoints: standard deviation of each keypoint's Gaussian heatmap, pixels
    condition_classes: int | None = None  # condition=segmentation of `paired`: label ids 0..n-1 -> n one-hot channels
    change_frame: int = 0  # shapes: > 0 = the motion switches at this clip frame (bounce -> rotate -> scale -> bounce)


def heldout_data_config(config: DataConfig) -> DataConfig:
    """The held-out clips of a training data config: the test split at the next data seed. The seed matters as much
    as the split: procedural data (`shapes`) has no split, so at the training seed it would repeat the training
    videos."""
    return dataclasses.replace(config, split="test", seed=config.seed + 1)


ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
STRATEGIES = ("auto", "ddp", "ddp_spawn", "ddp_fork", "ddp_notebook", "ddp_find_unused_parameters_true",
              "ddp_find_unused_parameters_false", "fsdp", "fsdp_cpu_offload", "deepspeed", "deepspeed_stage_1",
              "deepspeed_stage_2", "deepspeed_stage_2_offload", "deepspeed_stage_3", "deepspeed_stage_3_offload",
              "single_device")
PRECISIONS = ("32-true", "32", "16-mixed", "16", "bf16-mixed", "bf16", "16-true", "bf16-true", "64-true", "64")


@valid_ranges(
    max_steps="[1, inf)", batch_size="[1, 65536]", seed=SEED_RANGE, accelerator=ACCELERATORS, devices="[1, 65536]",
    num_nodes="[1, 100000]", strategy=STRATEGIES, precision=PRECISIONS, logger=("csv", "tensorboard", "wandb"),
    checkpoint_every="[1, inf)", sample_every="[0, inf)", sample_count="[1, 1024]", log_every="[1, inf)",
)
@dataclass
class TrainConfig:
    """How the Lightning Trainer runs; flags of `zoo fit` land here."""

    max_steps: int = 100_000  # training iterations (one batch each, all of the model's optimizer updates for it)
    batch_size: int = 16  # videos per rank per step
    seed: int = 0  # global seed: weights, noise, data order
    accelerator: str = "auto"  # cpu | gpu | auto
    devices: int = 1  # processes per node
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp | ddp_spawn | fsdp ...
    precision: str = "32-true"  # Lightning precision: 32-true | bf16-mixed | 16-mixed
    logger: str = "csv"  # csv | tensorboard | wandb (a metrics CSV is always written)
    run_dir: str | None = None  # default: runs/<model>-<data>
    checkpoint_every: int = 1000  # steps between checkpoints (last.ckpt is refreshed each time)
    sample_every: int = 500  # steps between sample grids (0 = only at the end)
    sample_count: int = 8  # videos per sample grid
    log_every: int = 10  # steps between logged scalars


@dataclass
class ExperimentConfig:
    """A fully resolved experiment: what `zoo fit` runs and what the run directory records."""

    model_name: str
    model: Any  # the registered model's config dataclass instance
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    reference: list[dict] = field(default_factory=list)  # the paper's reported numbers for this setting

    def to_dict(self) -> dict:
        return {
            "model_name": self.model_name,
            "model": dataclasses.asdict(self.model),
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
            "reference": list(self.reference),
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def config_hash(self) -> str:
        """Hash of what shapes the trained weights (model, data and seed; not devices, paths or logging)."""
        d = self.to_dict()
        train = {k: d["train"][k] for k in ("max_steps", "batch_size", "seed")}
        machine_only = ("root", "num_workers", "decode_threads", "split_dir", "annotations", "prepared", "index_cache")
        data = {k: v for k, v in d["data"].items() if k not in machine_only}
        return stable_hash({"model_name": self.model_name, "model": d["model"], "data": data, "train": train})


def stable_hash(obj: Any, length: int = 16) -> str:
    """SHA-256 of the canonical JSON form of `obj`, truncated to `length` hex digits."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


# ---------------------------------------------------------------------------------------------------------------
# dict <-> dataclass with validation


def _check_value(value: Any, annotation: Any, where: str) -> Any:
    """Return `value` converted to `annotation`, or raise a ZooError naming `where`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(value, arg, where)
            except ZooError as e:
                errors.append(str(e))
        raise ZooError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {annotation}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ZooError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ZooError(f"{where}: expected {len(args)} values, got {value!r}")
            return tuple(_check_value(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        return origin(_check_value(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise ZooError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ZooError(f"{where}: expected true/false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ZooError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str):  # PyYAML (YAML 1.1) reads `1e-4` as a string: accept numeric strings
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ZooError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ZooError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"{where}: unsupported config annotation {annotation!r}")


def update_dataclass(obj: Any, values: dict, section: str) -> Any:
    """Return a copy of dataclass `obj` with `values` applied; unknown keys and wrong types raise `ZooError`."""
    if not isinstance(values, dict):
        raise ZooError(f"config section {section!r} must be a mapping of key: value, got {values!r}")
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ZooError(
            f"unknown key(s) {', '.join(f'{section}.{k}' for k in unknown)}; valid {section} keys: {', '.join(names)}"
        )
    checked = {k: _check_value(v, hints[k], f"{section}.{k}") for k, v in values.items()}
    new = dataclasses.replace(obj, **checked)
    check_ranges(new, section, checked)
    validate = getattr(new, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as e:  # a config's own cross-field check
            raise ZooError(str(e) if str(e).startswith(f"{section}.") else f"{section}: {e}") from None
    return new


# ---------------------------------------------------------------------------------------------------------------
# resolution


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"config file {path} does not exist")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ZooError(f"config file {path} is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); "
                       "a YAML config must be a UTF-8 text file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ZooError(f"config file {path} is not valid YAML{at}: {problem}") from None
    data = data or {}
    if not isinstance(data, dict):
        raise ZooError(f"config file {path} must hold a mapping with sections {', '.join(SECTIONS)}")
    return data


def parse_set(assignment: str) -> tuple[str, str, Any]:
    """Parse `section.key=value` (value read as YAML, so `3`, `1e-4`, `[1,2]`, `true` keep their types)."""
    if "=" not in assignment or "." not in assignment.split("=", 1)[0]:
        raise ZooError(f"--set expects section.key=value (sections: {', '.join(SECTIONS)}), got {assignment!r}")
    dotted, raw = assignment.split("=", 1)
    section, key = dotted.split(".", 1)
    if section not in SECTIONS:
        raise ZooError(f"--set {assignment!r}: unknown section {section!r}; valid sections: {', '.join(SECTIONS)}")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return section, key, value


def experiment_file(model_name: str, data_name: str) -> Path:
    return EXPERIMENTS_DIR / model_name / f"{data_name}.yaml"


def resolve_config(
    model_name: str,
    data_name: str,
    model_config_cls: type,
    config_files: list[str | Path] = (),
    sets: list[str] = (),
    flags: dict[str, dict[str, Any]] | None = None,
) -> ExperimentConfig:
    """Apply the precedence chain and return a validated `ExperimentConfig`.

    Args:
        model_name: registry key of the model.
        data_name: registry key of the dataset.
        model_config_cls: the model's config dataclass (defaults = the paper's setting).
        config_files: `--config` files, applied in order after `experiments/<model>/<data>.yaml`.
        sets: `--set section.key=value` overrides, applied in order.
        flags: explicit CLI flags as `{section: {key: value}}` (None values are ignored), applied last.
    """
    layers: list[tuple[str, dict]] = []
    default_file = experiment_file(model_name, data_name)
    if default_file.is_file():
        layers.append((str(default_file), read_yaml(default_file)))
    layers += [(str(f), read_yaml(f)) for f in config_files]
    set_layer: dict[str, dict] = {}
    for assignment in sets:
        section, key, value = parse_set(assignment)
        set_layer.setdefault(section, {})[key] = value
    layers.append(("--set", set_layer))
    layers.append(("flags", {s: {k: v for k, v in kv.items() if v is not None} for s, kv in (flags or {}).items()}))

    model_cfg, data_cfg, train_cfg = model_config_cls(), DataConfig(name=data_name), TrainConfig()
    reference: list[dict] = []
    for source, layer in layers:
        # `recorded` holds facts a run wrote into its config.yaml (e.g. the video reader), not settings
        unknown = sorted(set(layer) - set(SECTIONS) - {"reference", "model_name", "recorded"})
        if unknown:
            raise ZooError(
                f"{source}: unknown top-level key(s) {', '.join(unknown)}; valid: {', '.join(SECTIONS)}, reference"
            )
        if layer.get("model_name", model_name) != model_name:
            raise ZooError(f"{source} is a config for model {layer['model_name']!r}, not {model_name!r}")
        try:
            model_cfg = update_dataclass(model_cfg, layer.get("model") or {}, "model")
            data_cfg = update_dataclass(data_cfg, layer.get("data") or {}, "data")
            train_cfg = update_dataclass(train_cfg, layer.get("train") or {}, "train")
        except ZooError as e:
            raise ZooError(f"{source}: {e}") from None
        if "reference" in layer:
            reference = list(layer["reference"] or [])
    if data_cfg.name != data_name:
        raise ZooError(f"data.name is {data_cfg.name!r} but --data is {data_name!r}; use --data to pick the dataset")
    for section, cfg in (("model", model_cfg), ("data", data_cfg), ("train", train_cfg)):
        check_ranges(cfg, section)  # the defaults too: a class default out of range is caught here
    check_memory(data_cfg, train_cfg)
    config = ExperimentConfig(model_name, model_cfg, data_cfg, train_cfg, reference)
    check_experiment(config)
    return config


def check_experiment(config: ExperimentConfig) -> None:
    """The constraints between sections that no field's range can state, checked on the resolved experiment (never
    on a half-applied layer): the model config's own `check_experiment(data, train)`, where it has one, raising
    `ValueError` with a message that names the fields (StyleGAN-V: its time-gap embedding covers the data's gaps)."""
    check = getattr(config.model, "check_experiment", None)
    if callable(check):
        try:
            check(config.data, config.train)
        except ValueError as e:
            raise ZooError(str(e)) from None


def config_from_dict(d: dict, model_config_cls: type) -> ExperimentConfig:
    """Rebuild an `ExperimentConfig` saved by `to_dict` (e.g. from a checkpoint)."""
    return ExperimentConfig(
        model_name=d["model_name"],
        model=update_dataclass(model_config_cls(), d.get("model", {}), "model"),
        data=update_dataclass(DataConfig(), d.get("data", {}), "data"),
        train=update_dataclass(TrainConfig(), d.get("train", {}), "train"),
        reference=list(d.get("reference", [])),
    )
