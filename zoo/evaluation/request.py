"""What `zoo eval` is asked to do (`EvalRequest`) and what it finds (`EvalResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from zoo.metrics.presets import DEFAULT_PRESET, Preset
from zoo.paths import default_leaderboard

METRIC_KEYS = tuple(DEFAULT_PRESET)  # plain metric keys, each scored with its default preset


@dataclass
class EvalRequest:
    """Everything `zoo eval` was asked to do (picklable: it travels to DDP worker processes)."""

    metrics: list  # metric keys (fvd, kvd, is), preset names, or `Preset`s (Python API)
    ckpt: str | None = None  # checkpoint to sample from
    fake_dir: str | None = None  # or: a folder of generated videos
    real_dir: str | None = None  # shorthand for --data folder --data-root DIR
    data: str | None = None  # dataset key of the real clips (default: the checkpoint's)
    data_root: str | None = None
    data_sets: list[str] = field(default_factory=list)  # `--set data.KEY=VALUE` for the DataConfig videos are read with
    clip_list: str | None = None  # exported ClipList JSON pinning the real clips
    preset: str | None = None  # applies to every plain metric key
    num_samples: int | None = None  # override the preset's generated count
    num_real: int | None = None  # override the preset's real count
    resolution: int | None = None  # clip resolution for folders (default: the data config's)
    covariance: str | None = None  # override FVD covariance (unbiased | biased)
    batch_size: int = 16
    devices: int = 1
    device: str = "cpu"  # cpu | cuda
    bootstrap: int = 0  # K resamples for a 95% interval (0 = off)
    stats_only: bool = False  # only compute and cache real statistics
    detector_weights: str | None = None
    lpips_weights: str | None = None  # torchvision's backbone checkpoint for --metric lpips (never downloaded)
    detector_mean: str | None = None  # the C3D's mean clip (`mean2.npz`) to use with custom C3D weights
    seed: int = 0
    leaderboard: str | None = field(default_factory=lambda: str(default_leaderboard()))  # None = do not append
    threads: int | None = None  # CPU threads per process (None: $OMP_NUM_THREADS, else the usable cores)
    samples_gif: bool = True  # write the first generated videos as a GIF beside the leaderboard (HTML embeds it)
    task: str = "generate"  # generate (samples vs real clips) | predict (continue held-out contexts)
    context: int | None = None  # --task predict: observed frames C (default: the dataset's prediction protocol)
    horizon: int | None = None  # --task predict: predicted frames P
    samples: int | None = None  # --task predict: futures per sequence N (best-of-N)
    plot: str | None = None  # --task predict: PNG of PSNR / SSIM per predicted frame
    extractors: dict = field(default_factory=dict)  # detector key -> prebuilt extractor (tests, benchmarks; never CLI)


@dataclass
class EvalResult:
    metric: str
    preset: Preset
    values: dict[str, float]
    interval: tuple[float, float] | None
    num_real: int
    num_fake: int
    fingerprint: str
    detector: dict
    stats_cache: str  # hit | miss | none (REAL_FEATURES says it in words)
