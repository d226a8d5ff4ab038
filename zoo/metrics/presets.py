"""Protocol presets, named like StyleGAN-V's metrics: each a documented set of (samples, frames, stride, detector,
resize mode, aspect policy, covariance / split convention). Registered in METRICS, so `zoo list metrics` shows them
and `zoo eval --metric fvd2048_16f` means `--metric fvd --preset fvd2048_16f`.

The resolution is the dataset's (StyleGAN-V feeds clips at dataset resolution and resizes inside the detector); it
goes into the protocol record with everything else.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from zoo.registry import register_metric


@dataclass(frozen=True)
class Preset:
    name: str
    metric: str  # fvd | kvd | is | acd | prdc | bpd
    num_real: int  # real clips (0: the metric uses none)
    num_fake: int  # generated videos
    frames: int  # frames per clip fed to the detector
    frame_stride: int  # source frames between clip frames (real: dataset stride; generated: every n-th frame)
    detector: str  # zoo.metrics.detectors.DETECTOR_WEIGHTS key
    resize: str = "torch_bilinear"  # zoo.metrics.preprocess.RESIZE_MODES (I3D only)
    aspect: str = "stretch"  # stretch | short_side_crop (I3D only)
    covariance: str = "unbiased"  # FVD: unbiased (N-1) | biased (N)
    splits: int = 1  # IS splits per sample set
    repeats: int = 1  # IS: independent sample sets (TGANv2 loops)
    is_convention: str = "tgan2"  # IS: tgan2 | stylegan_v
    description: str = ""

    def protocol(self) -> dict:
        d = asdict(self)
        d.pop("description")
        return d


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("fvd2048_16f", "fvd", 2048, 2048, 16, 1, "i3d_torchscript", covariance="biased",
               description="StyleGAN-V: 2048 real / 2048 fake, 16 consecutive frames, /N covariance"),
        Preset("fvd2048_128f", "fvd", 2048, 2048, 128, 1, "i3d_torchscript", covariance="biased",
               description="StyleGAN-V: 128 consecutive frames"),
        Preset("fvd2048_128f_subsample8f", "fvd", 2048, 2048, 16, 8, "i3d_torchscript", covariance="biased",
               description="StyleGAN-V: 16 frames at stride 8 spanning 128"),
        Preset("fvd2048_16f_tf", "fvd", 2048, 2048, 16, 1, "i3d_pretrained_400", resize="tf_legacy_bilinear",
               description="TF FVD conventions: TF1 legacy bilinear stretch to 224, /(N-1) covariance"),
        Preset("fvd256_16f_videogpt", "fvd", 256, 256, 16, 1, "i3d_pretrained_400", aspect="short_side_crop",
               description="VideoGPT (BAIR) sizes: 256/256, short-side resize + centre crop (BN eps stays 1e-3)"),
        Preset("kvd2048_16f", "kvd", 2048, 2048, 16, 1, "i3d_torchscript",
               description="KVD on the fvd2048_16f features: unbiased poly-MMD^2, full sets (+ TF-GAN blocks)"),
        Preset("isv2048_ucf", "is", 0, 2048, 16, 1, "c3d_ucf101_torchscript", splits=10, is_convention="stylegan_v",
               description="StyleGAN-V: 2048 fake, TorchScript C3D, 10 splits after RandomState(42) shuffle"),
        Preset("is2048_ucf", "is", 0, 2048 * 10, 16, 1, "c3d_ucf101_npz", repeats=10,
               description="TGANv2: 10 loops x 2048 fake, Chainer-npz C3D, 1 split each, mean +- std over loops"),
        # the embedded `shapes` benchmark: the in-repo detector (zoo/metrics/detectors/shapes_net.py), CPU-sized
        # counts; at 16 frames (T >= 8 works: `--set` of the bench uses the model's own length)
        Preset("fvd_shapes", "fvd", 1024, 1024, 16, 1, "shapes_net", resize="bilinear_antialias_32",
               description="shapes benchmark: FVD on shapes_net's 128 features, 1024 / 1024, /(N-1) covariance"),
        Preset("kvd_shapes", "kvd", 1024, 1024, 16, 1, "shapes_net", resize="bilinear_antialias_32",
               description="shapes benchmark: KVD (unbiased cubic MMD^2) on the fvd_shapes features"),
        Preset("prdc_shapes", "prdc", 1024, 1024, 16, 1, "shapes_net", resize="bilinear_antialias_32",
               description="shapes benchmark: precision / recall / density / coverage (k=5) on the fvd_shapes "
                           "features; the value is coverage"),
        Preset("is_shapes", "is", 0, 1024, 16, 1, "shapes_net_probs", resize="bilinear_antialias_32",
               description="shapes benchmark: IS on shapes_net's 9-class posteriors, 1 split (max 9)"),
        Preset("acd_shapes", "acd", 1024, 1024, 16, 1, "shapes_net_frames", resize="bilinear_antialias_32",
               description="shapes benchmark: MoCoGAN's average content distance on shapes_net per-time-step "
                           "features (real ACD as a secondary value)"),
        Preset("bpd", "bpd", 2048, 0, 16, 1, "none",
               description="bits/dim of 2048 real test-split clips under the model's own likelihood (pixel family); "
                           "frames and resolution are the model's"),
    )
}
SHAPES_PRESETS = ("fvd_shapes", "kvd_shapes", "prdc_shapes", "is_shapes", "acd_shapes")
# the protocol of a plain metric key (`--metric fvd`); every registered metric has one
DEFAULT_PRESET = {"fvd": "fvd2048_16f", "kvd": "kvd2048_16f", "is": "is2048_ucf", "prdc": "prdc_shapes",
                  "acd": "acd_shapes", "bpd": "bpd"}
# Presets whose 16 frames are a default, not a published protocol: a checkpoint is scored at its own clip length
# (`eval_frames`), the way `zoo bench` scores it, so `zoo eval` and the bench give one model one number.
MODEL_LENGTH_PRESETS = SHAPES_PRESETS


def eval_frames(sample_frames: int | None, trained_frames: int) -> int:
    """Frames per scored clip of a checkpoint under `MODEL_LENGTH_PRESETS`: the model's own sample length
    (`model.sample_frames` for models trained on sparse frames, else its training clip length), raised to the
    detector's minimum for models that can generate longer clips than they were trained on (autoregressive models,
    StyleGAN-V). A fixed-length model shorter than that is refused by its `check_frames` at evaluation."""
    from zoo.metrics.detectors.shapes_net import MIN_FRAMES

    return max(sample_frames or trained_frames, MIN_FRAMES)


def for_checkpoint(preset: Preset, run: dict) -> Preset:
    """`preset` as it scores the checkpoint whose record (`checkpoint["zoo"]`) is `run`: at the model's own clip
    length for `MODEL_LENGTH_PRESETS` (bits/dim: its training clip length), unchanged for published protocols."""
    trained_frames = (run.get("spec") or {}).get("frames")
    if not isinstance(trained_frames, int):
        return preset  # (a record without a spec is refused, with the reason, when the model is loaded)
    if preset.metric == "bpd":  # a likelihood over the model's own clips
        return replace(preset, frames=trained_frames)
    if preset.name not in MODEL_LENGTH_PRESETS:
        return preset
    sample_frames = (run.get("model_config") or {}).get("sample_frames")
    return replace(preset, frames=eval_frames(sample_frames, trained_frames))


def too_few_samples(preset: Preset) -> str | None:
    """Why `preset`'s sample counts cannot give its metric a value (each metric's minimum), or None."""
    from zoo.metrics.frechet import TFGAN_BLOCK_SIZE
    from zoo.metrics.prdc import NEAREST_NEIGHBOURS

    real, fake = 0, 1  # the least each side needs, and why
    why = "a value needs at least one video"
    if preset.metric == "fvd":
        real, fake, why = 2, 2, "FVD needs at least 2 clips per side for a covariance"
    elif preset.metric == "kvd":
        blocks = math.ceil(max(preset.num_real, preset.num_fake) / TFGAN_BLOCK_SIZE)
        real = fake = 2 * blocks
        why = (f"KVD's unbiased MMD needs at least 2 clips per side in each of its {blocks} TF-GAN block(s) of at "
               f"most {TFGAN_BLOCK_SIZE}")
    elif preset.metric == "prdc":
        real = fake = NEAREST_NEIGHBOURS + 1
        why = f"PRDC needs more than its k={NEAREST_NEIGHBOURS} nearest neighbours per side"
    elif preset.metric == "is":
        fake = preset.splits * preset.repeats
        why = f"IS cuts the generated videos into {preset.repeats} set(s) of {preset.splits} split(s), none empty"
    elif preset.metric == "bpd":
        real, fake = 1, 0
    elif preset.metric == "acd":
        real = 1 if preset.num_real else 0
    for flag, have, need in (("--num-real", preset.num_real, real), ("--num-samples", preset.num_fake, fake)):
        if have < need:
            return f"{flag} {have} is too few for {preset.name}: {why}; pass {flag} {need} or more"
    return None


for _preset in PRESETS.values():
    register_metric(_preset.name, description=f"[{_preset.metric} preset] {_preset.description}")(_preset)
