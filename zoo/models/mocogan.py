"""MoCoGAN: Decomposing Motion and Content for Video Generation.

Tulyakov, Liu, Yang, Kautz. CVPR 2018. https://arxiv.org/abs/1707.04993

A video is a sequence of images from one image generator G_I; each frame's code is [z_C, z_A, z_M(t)]:
content z_C ~ N(0, I_50) fixed for the whole video, an optional one-hot category z_A ("categorical dynamics"),
and motion z_M(t) = h_t from a GRU cell driven by fresh N(0, I_10) noise each step (Sec. 3). An image
discriminator D_I judges single frames, a spatio-temporal video discriminator D_V judges clips and, with categories,
also classifies them (InfoGAN-style category loss, Sec. 3.2). Architectures follow the official code
(`sergeytulyakov/mocogan`, `src/models.py`): DCGAN-style G_I, patch D_I, 3-D conv D_V with kernel 4 and stride
(1, 2, 2); non-saturating BCE losses; Adam(2e-4, (0.5, 0.999), weight decay 1e-5) for every network.

Deviations from the official code, all to honour the zoo's data config:
* The official data loader hard-codes 16 frames and every-2nd-frame sampling; here clip length and stride come
  from the data config like every model in the zoo.
* Any power-of-two resolution >= 16 works: G_I adds or removes up-sampling stages (the paper's 64x64 uses exactly
  the official layers), and D_V's last convolution covers whatever spatial and temporal extent is left (for 16
  frames at 64x64 this is the official 4x4x4 kernel). For clips shorter than 13 frames D_V pads in time.
* The category head is trained with cross-entropy on real labels when the dataset is labelled (official code) and
  the generator with cross-entropy on its sampled categories (lambda = 1, the `--use_infogan` option).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from zoo.config import valid_ranges
from zoo.models.base import VideoGenerativeModel, VideoSpec
from zoo.models.losses import nonsaturating_d_loss, nonsaturating_g_loss
from zoo.registry import register_model


@valid_ranges(
    dim_z_content="[1, 4096]", dim_z_motion="[1, 4096]", category_weight="[0, inf)", ngf="[1, 4096]", ndf="[1, 4096]",
    image_batch_size="[1, 65536]", noise_sigma="[0, inf)",
    lr="(0, 1]", beta1="[0, 1)", beta2="[0, 1)", weight_decay="[0, 1]",
)
@dataclass
class MoCoGANConfig:
    dim_z_content: int = 50  # z_C, sampled once per video
    dim_z_motion: int = 10  # z_M(t): GRU cell state and noise size
    categorical: bool = False  # use a one-hot category z_A and D_V's category head (needs a labelled dataset)
    category_weight: float = 1.0  # lambda of the InfoGAN-style category loss
    ngf: int = 64  # G_I base width
    ndf: int = 64  # D_I and D_V base width
    image_batch_size: int = 10  # frames per step for D_I (official default 10; video batch = train.batch_size)
    use_noise: bool = False  # instance noise in front of every discriminator layer
    noise_sigma: float = 0.1  # its standard deviation
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    weight_decay: float = 1e-5


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
    """D_V: four 3-D convolutions, kernel 4, stride (1, 2, 2), then one covering the rest; logits for real/fake
    plus, with categories, one per class."""

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
        layers.append(nn.Conv3d(widths[-1], 1 + num_categories, (t, resolution // 16, resolution // 16)))
        # channels-last 3-D convolutions run about twice as fast on CPU (benchmarks/models_mocogan.py)
        self.net = nn.Sequential(*layers).to(memory_format=torch.channels_last_3d)

    def forward(self, videos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        videos = videos.contiguous(memory_format=torch.channels_last_3d)
        out = self.net(videos).flatten(1)  # (B, C, T, H, W) -> (B, 1 + categories)
        return out[:, 0], out[:, 1:]


class MotionContentGenerator(nn.Module):
    """Draws [z_C, z_A, z_M(t)] codes and renders every frame with G_I."""

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
class MoCoGAN(VideoGenerativeModel):
    """MoCoGAN (Tulyakov et al. 2018); see the module docstring for the architecture and deviations."""

    config_class = MoCoGANConfig
    ddp_find_unused_parameters = True  # D steps never reach G's parameters and vice versa

    def __init__(self, config: MoCoGANConfig, spec: VideoSpec):
        super().__init__(config, spec)
        if spec.resolution < 16 or spec.resolution & (spec.resolution - 1):
            raise ValueError(f"MoCoGAN needs a power-of-two resolution >= 16, got {spec.resolution}")
        self.automatic_optimization = False
        self.num_categories = spec.num_classes if config.categorical else 0
        if config.categorical and self.num_categories == 0:
            raise ValueError("model.categorical needs a labelled dataset (num_classes > 0)")

        def noise():
            return InstanceNoise(config.use_noise, config.noise_sigma)

        self.generator = MotionContentGenerator(config, spec, self.num_categories)
        self.image_discriminator = PatchImageDiscriminator(spec.channels, config.ndf, config.use_noise,
                                                           config.noise_sigma)
        self.video_discriminator = VideoDiscriminator(
            spec.channels, spec.frames, spec.resolution, config.ndf, self.num_categories, noise
        )

    def configure_optimizers(self):
        c = self.config

        def adam(module: nn.Module) -> torch.optim.Adam:
            return torch.optim.Adam(module.parameters(), lr=c.lr, betas=(c.beta1, c.beta2), weight_decay=c.weight_decay)

        return adam(self.generator), adam(self.image_discriminator), adam(self.video_discriminator)

    def _categories(self, n: int, labels: torch.Tensor | None, generator=None) -> torch.Tensor | None:
        if not self.num_categories:
            return None
        return self.check_labels(n, labels, generator)

    def generate(self, n: int, frames: int, categories: torch.Tensor | None, generator=None) -> torch.Tensor:
        """Videos `(n, C, frames, H, W)` in [-1, 1], differentiable w.r.t. the generator's weights."""
        codes = self.generator.codes(lambda *s: self.randn(*s, generator=generator), n, frames, categories)
        return self.generator.render(codes)

    def sample(self, n, labels=None, generator=None, frames=None):
        with self.evaluating():
            categories = self._categories(n, labels, generator)
            return self.generate(n, frames or self.spec.frames, categories, generator)

    # -- training -------------------------------------------------------------------------------------------------

    def _random_frames(self, videos: torch.Tensor, count: int) -> torch.Tensor:
        """`count` single frames `(count, C, H, W)` drawn from random clips and times of `videos`."""
        b, _, t = videos.shape[:3]
        clip = torch.randint(b, (count,), device=videos.device)
        time = torch.randint(t, (count,), device=videos.device)
        return videos[clip, :, time]

    def _step(self, optimizer, loss: torch.Tensor) -> None:
        self.toggle_optimizer(optimizer)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        optimizer.step()
        self.untoggle_optimizer(optimizer)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        opt_g, opt_di, opt_dv = self.optimizers()
        real = batch["video"]
        b, t = real.shape[0], real.shape[2]
        labels = batch["label"] if self.num_categories else None
        categories = self._categories(b, None) if self.num_categories else None
        fake = self.generate(b, t, categories)
        real_images = self._random_frames(real, self.config.image_batch_size)
        fake_images = self._random_frames(fake, self.config.image_batch_size)

        d_image = self.image_discriminator_loss(real_images, fake_images.detach())
        self._step(opt_di, d_image)
        d_video, d_category = self.video_discriminator_loss(real, fake.detach(), labels)
        self._step(opt_dv, d_video + self.config.category_weight * d_category)
        g_image, g_video, g_category = self.generator_loss(fake_images, fake, categories)
        self._step(opt_g, g_image + g_video + self.config.category_weight * g_category)

        losses = {"d_image": d_image, "d_video": d_video, "g_image": g_image, "g_video": g_video}
        if self.num_categories:
            losses.update(d_category=d_category, g_category=g_category)
        self.log_losses(losses, prog_bar=("d_video", "g_video"))

    def image_discriminator_loss(self, real_images, fake_images) -> torch.Tensor:
        return nonsaturating_d_loss(self.image_discriminator(real_images), self.image_discriminator(fake_images))

    def video_discriminator_loss(self, real, fake, labels) -> tuple[torch.Tensor, torch.Tensor]:
        real_logit, real_classes = self.video_discriminator(real)
        fake_logit, _ = self.video_discriminator(fake)
        category = real.new_zeros(())
        if self.num_categories and labels is not None and (labels >= 0).all():
            category = F.cross_entropy(real_classes, labels)
        return nonsaturating_d_loss(real_logit, fake_logit), category

    def generator_loss(self, fake_images, fake, categories) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image = nonsaturating_g_loss(self.image_discriminator(fake_images))
        fake_logit, fake_classes = self.video_discriminator(fake)
        category = fake.new_zeros(())
        if self.num_categories:
            category = F.cross_entropy(fake_classes, categories)
        return image, nonsaturating_g_loss(fake_logit), category
