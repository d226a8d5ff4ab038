"""MoCoGAN: Decomposing Motion and Content for Video Generation.

Tulyakov, Liu, Yang, Kautz. CVPR 2018. https://arxiv.org/abs/1707.04993

A video is a sequence of images from one image generator G_I; each frame's code is [z_C, z_A, z_M(t)]:
content z_C ~ N(0, I_50) fixed for the whole video, a one-hot category z_A ("categorical dynamics") and motion
z_M(t) = h_t from a GRU cell driven by fresh N(0, I_10) noise each step (Sec. 3). An image discriminator D_I judges
single frames, a spatio-temporal video discriminator D_V judges clips and, with categories, also classifies them
(InfoGAN-style category loss, Sec. 3.2). Architectures and training follow the official code
(`sergeytulyakov/mocogan`, `src/models.py`, `src/trainers.py`, `src/train.py`, checked): DCGAN-style G_I, patch D_I,
3-D conv D_V with kernel 4 and stride (1, 2, 2) whose last convolution has no bias; non-saturating BCE losses;
Adam(2e-4, (0.5, 0.999), weight decay 1e-5) for every network, stepping as the PyTorch 0.x Adam the official code
ran on (eps added to sqrt(v) before the bias correction; one-step transplant in docs/models/mocogan.md). Per step,
as the official trainer: a D_I update on `image_batch_size` real frames of independently drawn videos (the official
`ImageDataset`; the data layer serves them as `batch["independent_frames"]`) against fresh fake frames, a D_V update
on the video batch against fresh fake videos, then a G update on fresh fake frames and fresh fake videos. A fake
frame is one random frame of its own generated video (official `sample_images`). The official generator always
appends a random one-hot category code of `dim_z_category` = 6 dimensions, even when training unconditionally, and
D_V always has 6 category outputs; so does this one (`model.dim_z_category`, 0 removes it).

Deviations from the official code:
* Clip length and stride come from the data config like every model of the zoo (the official loader hard-codes 16
  frames, every 2nd frame; `experiments/mocogan/ucf101.yaml` sets exactly that).
* Any power-of-two resolution >= 16 works: G_I adds or removes up-sampling stages (the paper's 64x64 uses exactly
  the official layers), and D_V's last convolution covers whatever spatial and temporal extent is left (for 16
  frames at 64x64 this is the official 4x4x4 kernel). For clips shorter than 13 frames D_V pads in time.
* `model.categorical` uses the dataset's labels as the category (size = number of classes): D_V's category head is
  trained with cross-entropy on real labels (official `--use_categories`; clips labelled -1 are left out) and the
  generator with cross-entropy on its sampled categories (lambda = 1, official `--use_infogan`). Unconditional runs
  train no category loss (the official defaults), so the random 6-d code is extra noise there.
* Real frames for D_I are drawn as a uniform video then a uniform frame of it; the official `ImageDataset` draws
  uniformly over all frames of the dataset, so long videos weigh more there.
* Instance noise (`use_noise`) is added in training mode only (the official layer also adds it in eval mode, where
  the discriminators are never used).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from zoo.config import valid_ranges
from zoo.models.base import VideoSpec
from zoo.models.gan import GANModel, Losses
from zoo.models.losses import nonsaturating_d_loss, nonsaturating_g_loss
from zoo.models.optim import eps_before_bias_correction
from zoo.registry import register_model


@valid_ranges(
    dim_z_content="[1, 4096]", dim_z_motion="[1, 4096]", category_weight="[0, inf)", ngf="[1, 4096]", ndf="[1, 4096]",
    image_batch_size="[1, 65536]", noise_sigma="[0, inf)", dim_z_category="[0, 4096]",
    lr="(0, 1]", beta1="[0, 1)", beta2="[0, 1)", weight_decay="[0, 1]",
)
@dataclass
class MoCoGANConfig:
    dim_z_content: int = 50  # z_C, sampled once per video
    dim_z_motion: int = 10  # z_M(t): GRU cell state and noise size
    dim_z_category: int = 6  # size of the random one-hot code z_A when not `categorical` (official default; 0 = none)
    categorical: bool = False  # z_A = the dataset's class, D_V learns real labels, G the InfoGAN loss (needs labels)
    category_weight: float = 1.0  # lambda of the InfoGAN-style category loss
    ngf: int = 64  # G_I base width
    ndf: int = 64  # D_I and D_V base width
    image_batch_size: int = 10  # frames per D_I / G update (official default 10; video batch = train.batch_size)
    use_noise: bool = False  # instance noise in front of every discriminator layer
    noise_sigma: float = 0.1  # its standard deviation
    lr: float = 2e-4  # Adam learning rate of G, D_I and D_V
    beta1: float = 0.5  # Adam beta1
    beta2: float = 0.999  # Adam beta2
    weight_decay: float = 1e-5  # Adam L2 weight decay (official)


class InstanceNoise(nn.Module):
    """Adds N(0, sigma^2) to its input during training (the official `Noise` layer)."""

    def __init__(self, enabled: bool, sigma: float):
        super().__init__()
        self.enabled, self.sigma = enabled, sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.enabled and self.training:
            return x + self.sigma * torch.randn_like(x)
        return x


class ImageGenerator(nn.Module):
    """G_I: DCGAN-style transposed convolutions from a 1x1 code to a resolution x resolution image, tanh output.

    For 64x64: 1 -> 4 (8 ngf) -> 8 (4 ngf) -> 16 (2 ngf) -> 32 (ngf) -> 64 (channels), BN + ReLU between.
    """

    def __init__(self, dim_z: int, channels: int, resolution: int, ngf: int):
        super().__init__()
        ups = int(math.log2(resolution)) - 2  # 4 -> resolution
        width = [ngf * min(8, 2 ** (ups - 1 - i)) for i in range(ups)]  # 8 ngf .. ngf for 64x64
        layers: list[nn.Module] = [nn.ConvTranspose2d(dim_z, width[0], 4, 1, 0, bias=False)]
        layers += [nn.BatchNorm2d(width[0]), nn.ReLU(True)]
        for w_in, w_out in zip(width[:-1], width[1:]):
            layers += [nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False), nn.BatchNorm2d(w_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(width[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])  # (N, dim_z) -> (N, C, H, W)


class PatchImageDiscriminator(nn.Module):
    """D_I: four stride-2 4x4 convolutions, LeakyReLU 0.2, BN after all but the first; patch logits (res/16)^2."""

    def __init__(self, channels: int, ndf: int, use_noise: bool, noise_sigma: float):
        super().__init__()

        def noise():
            return InstanceNoise(use_noise, noise_sigma)

        self.net = nn.Sequential(
            noise(), nn.Conv2d(channels, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
            noise(), nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, True),
            noise(), nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, True),
            noise(), nn.Conv2d(ndf * 4, 1, 4, 2, 1, bias=False),
        )  # fmt: skip

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)  # (N, C, H, W) -> (N, 1, H/16, W/16)


class VideoDiscriminator(nn.Module):
    """D_V: four 3-D convolutions, kernel 4, stride (1, 2, 2), then one without bias covering the rest; logits for
    real/fake plus one per category (the official `CategoricalVideoDiscriminator`)."""

    def __init__(self, channels: int, frames: int, resolution: int, ndf: int, num_categories: int, noise):
        super().__init__()
        widths = [channels, ndf, ndf * 2, ndf * 4, ndf * 8]
        layers: list[nn.Module] = []
        t = frames
        for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:])):
            if t - 3 < 1:  # too short for a valid kernel-4 convolution in time: keep the length instead
                layers.append(nn.ConstantPad3d((0, 0, 0, 0, 1, 2), 0.0))
            else:
                t -= 3
            layers += [noise(), nn.Conv3d(w_in, w_out, 4, stride=(1, 2, 2), padding=(0, 1, 1), bias=False)]
            if i > 0:
                layers.append(nn.BatchNorm3d(w_out))
            layers.append(nn.LeakyReLU(0.2, True))
        layers.append(nn.Conv3d(widths[-1], 1 + num_categories, (t, resolution // 16, resolution // 16), bias=False))
        # channels-last 3-D convolutions run about twice as fast on CPU (benchmarks/models_mocogan.py)
        self.net = nn.Sequential(*layers).to(memory_format=torch.channels_last_3d)

    def forward(self, videos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        videos = videos.contiguous(memory_format=torch.channels_last_3d)
        out = self.net(videos).flatten(1)  # (B, C, T, H, W) -> (B, 1 + categories)
        return out[:, 0], out[:, 1:]


class MotionContentGenerator(nn.Module):
    """Draws [z_C, z_A, z_M(t)] codes and renders every frame with G_I (`num_categories` = size of z_A)."""

    def __init__(self, config: MoCoGANConfig, spec: VideoSpec, num_categories: int):
        super().__init__()
        self.config, self.num_categories = config, num_categories
        self.recurrent = nn.GRUCell(config.dim_z_motion, config.dim_z_motion)
        dim_z = config.dim_z_content + num_categories + config.dim_z_motion
        self.image_generator = ImageGenerator(dim_z, spec.channels, spec.resolution, config.ngf)

    def codes(self, noise, n: int, frames: int, categories: torch.Tensor | None) -> torch.Tensor:
        """Per-frame codes `(n, frames, dim_z)`; `noise(*shape)` draws N(0, 1) on the right device."""
        c = self.config
        content = noise(n, c.dim_z_content)  # drawn before the motion noise: a longer video extends a shorter one
        h = noise(n, c.dim_z_motion)  # Gaussian initial GRU state
        motion = []
        for _ in range(frames):
            h = self.recurrent(noise(n, c.dim_z_motion), h)
            motion.append(h)
        parts = [repeat(content, "n d -> n t d", t=frames), torch.stack(motion, dim=1)]
        if self.num_categories:
            one_hot = F.one_hot(categories, self.num_categories).to(parts[0].dtype)
            parts.insert(1, repeat(one_hot, "n k -> n t k", t=frames))
        return torch.cat(parts, dim=-1)

    def render(self, codes: torch.Tensor) -> torch.Tensor:
        frames = self.image_generator(rearrange(codes, "n t d -> (n t) d"))
        return rearrange(frames, "(n t) c h w -> n c t h w", n=codes.shape[0])


@register_model(
    "mocogan",
    description="motion/content decomposed GAN: GRU motion codes, shared image generator, image + video critics",
    paper="Tulyakov et al., MoCoGAN, CVPR 2018, https://arxiv.org/abs/1707.04993",
)
class MoCoGAN(GANModel):
    """MoCoGAN (Tulyakov et al. 2018); see the module docstring for the architecture, training and deviations."""

    config_class = MoCoGANConfig
    progress_bar_losses = ("d_video", "g_video")

    def __init__(self, config: MoCoGANConfig, spec: VideoSpec):
        super().__init__(config, spec)
        if spec.resolution < 16 or spec.resolution & (spec.resolution - 1):
            raise ValueError(f"MoCoGAN needs a power-of-two resolution >= 16, got {spec.resolution}")
        if config.categorical and spec.num_classes == 0:
            raise ValueError("model.categorical needs a labelled dataset (num_classes > 0)")
        self.num_categories = spec.num_classes if config.categorical else config.dim_z_category

        def noise():
            return InstanceNoise(config.use_noise, config.noise_sigma)

        self.generator = MotionContentGenerator(config, spec, self.num_categories)
        self.image_discriminator = PatchImageDiscriminator(spec.channels, config.ndf, config.use_noise,
                                                           config.noise_sigma)
        self.video_discriminator = VideoDiscriminator(
            spec.channels, spec.frames, spec.resolution, config.ndf, self.num_categories, noise
        )

    @property
    def independent_frames_per_batch(self) -> int:
        """Real frames of independently drawn videos D_I needs per step: the data layer adds them to each training
        batch as `independent_frames`, float `[N, C, H, W]` (models never import datasets; the DataModule asks)."""
        return self.config.image_batch_size

    def configure_optimizers(self):
        c = self.config

        def adam(module: nn.Module) -> torch.optim.Adam:
            # fused: one kernel per step instead of a loop over tensors; the same update up to rounding
            optimizer = torch.optim.Adam(module.parameters(), lr=c.lr, betas=(c.beta1, c.beta2),
                                         weight_decay=c.weight_decay, fused=True)
            # the official code ran on PyTorch 0.x, whose Adam adds eps to sqrt(v) before the bias correction (the
            # step Chainer's Adam takes too): lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)
            optimizer.register_step_pre_hook(eps_before_bias_correction(1e-8))
            return optimizer

        return adam(self.generator), adam(self.image_discriminator), adam(self.video_discriminator)

    # -- sampling ---------------------------------------------------------------------------------------------------

    @property
    def label_classes(self) -> int:
        return self.num_categories if self.config.categorical else 0

    def _categories(self, n: int, labels: torch.Tensor | None = None, generator=None) -> torch.Tensor | None:
        """z_A's class per video `[n]`: the given labels when categorical (else drawn uniformly), random otherwise
        (an unconditional model trains on labelled data without its labels, and refuses labels when sampling)."""
        if self.config.categorical or labels is not None:  # an unconditional model refuses labels
            return self.check_labels(n, labels, generator)
        if not self.num_categories:
            return None
        return self.randint(self.num_categories, n, generator=generator)

    def _codes(self, n: int, frames: int, categories: torch.Tensor | None, generator=None) -> torch.Tensor:
        return self.generator.codes(lambda *s: self.randn(*s, generator=generator), n, frames, categories)

    def generate(self, n: int, frames: int, categories: torch.Tensor | None, generator=None) -> torch.Tensor:
        """Videos `(n, C, frames, H, W)` in [-1, 1], differentiable w.r.t. the generator's weights."""
        return self.generator.render(self._codes(n, frames, categories, generator))

    def generate_images(self, n: int) -> torch.Tensor:
        """`n` fake frames `(n, C, H, W)`, each one random frame of its own generated video (official
        `sample_images`: only the chosen frames are rendered)."""
        codes = self._codes(n, self.spec.frames, self._categories(n))  # (n, T, dim_z)
        time = self.randint(self.spec.frames, n)
        return self.generator.image_generator(codes[torch.arange(n, device=self.device), time])

    def sample(self, n, labels=None, generator=None, frames=None):
        with self.evaluating():
            categories = self._categories(n, labels, generator)
            return self.generate(n, frames or self.spec.frames, categories, generator)

    # -- training: D_I, D_V, then G, each on fresh fakes and inside its optimizer's toggle (GANModel.optimize) ----

    def discriminator_update(self, batch: dict[str, torch.Tensor], optimizers: list, step: int) -> Losses:
        image_optimizer, video_optimizer = optimizers
        logs = self.optimize(image_optimizer, lambda: self.image_discriminator_loss(batch))
        logs.update(self.optimize(video_optimizer, lambda: self.video_discriminator_loss(batch)))
        return logs

    def real_images(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        images = batch.get("independent_frames")
        if images is None:
            raise ValueError("MoCoGAN's D_I needs batch['independent_frames'] (float [N, C, H, W]); VideoDataModule "
                             "adds them when training through `zoo fit`")
        return images

    def image_discriminator_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Losses]:
        real = self.real_images(batch)
        with torch.no_grad():
            fake = self.generate_images(real.shape[0])
        loss = nonsaturating_d_loss(self.image_discriminator(real), self.image_discriminator(fake))
        return loss, {"d_image": loss}

    def video_discriminator_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Losses]:
        real = batch["video"]
        b, t = real.shape[0], real.shape[2]
        with torch.no_grad():
            fake = self.generate(b, t, self._categories(b))
        real_logit, real_classes = self.video_discriminator(real)
        fake_logit, _ = self.video_discriminator(fake)
        loss = nonsaturating_d_loss(real_logit, fake_logit)
        logs = {"d_video": loss}
        if self.config.categorical:
            labels = batch["label"]
            labelled = labels >= 0  # unlabelled clips (-1) train no category
            category = F.cross_entropy(real_classes[labelled], labels[labelled]) if labelled.any() else loss * 0
            logs["d_category"] = category
            loss = loss + self.config.category_weight * category
        return loss, logs

    def generator_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Losses]:
        b, t = batch["video"].shape[0], batch["video"].shape[2]
        image = nonsaturating_g_loss(self.image_discriminator(self.generate_images(self.config.image_batch_size)))
        categories = self._categories(b)
        fake_logit, fake_classes = self.video_discriminator(self.generate(b, t, categories))
        video = nonsaturating_g_loss(fake_logit)
        logs = {"g_image": image, "g_video": video}
        loss = image + video
        if self.config.categorical:
            category = F.cross_entropy(fake_classes, categories)
            logs["g_category"] = category
            loss = loss + self.config.category_weight * category
        return loss, logs
