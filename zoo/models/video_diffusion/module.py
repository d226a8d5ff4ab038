"""Video Diffusion Models.

Ho, Salimans, Gritsenko, Chan, Norouzi, Fleet. NeurIPS 2022. https://arxiv.org/abs/2204.03458

A continuous-time Gaussian diffusion model (Sec. 2; `schedule.py`) whose denoiser is a factorized space-time 3-D
U-Net (Sec. 3; `unet3d.py`). This module is the LightningModule: training loss, joint image-video training
(Sec. 3.2), classifier-free guidance, and reconstruction-guided conditional sampling (Sec. 3.1) that extends videos
beyond the training length and predicts future frames. Paper UCF-101 settings are the config defaults: base
channels 256, multipliers (1, 2, 4, 8), 2 blocks per level, attention at 8, 16, 32, head dim 64, dropout 0.1,
conditioning MLP 1024 x 4 layers, Adam(0.9, 0.99) lr 3e-4, EMA 0.9999 (sampling uses the EMA weights), ancestral
sampler with 256 steps and gamma = 0.1. bf16 autocast on GPU. The U-Net's residual blocks are the DDPM ones of the
Google diffusion code (GroupNorm-SiLU-conv, GroupNorm scaled and shifted by the noise-level / class embedding,
SiLU-dropout-conv starting at zero, 1x1 skip where widths differ; 1x3x3 convolutions); down- and up-sampling are
separate layers between blocks (a stride-2 convolution; nearest up-sampling then a convolution), not BigGAN-style
residual blocks that resample inside.

The EMA is updated after each optimizer update that happened: under 16-bit mixed precision a gradient scaler skips
the update of a step whose gradients overflowed (its scale then drops), and the EMA skips it too.

Deviations from the paper (which released no code), and choices it leaves open:
* v-prediction is the default, as issue 5 asks; the paper's UCF-101 model used epsilon-prediction, so
  `experiments/video_diffusion/ucf101.yaml` sets `prediction: eps`.
* The Langevin predictor-corrector sampler (used for the paper's BAIR and Kinetics numbers) is not implemented;
  the ancestral sampler (UCF-101's) and DDIM are.
* Relative position embeddings in time are a learned per-head bias per clipped relative distance (T5-style,
  +-32 frames); the paper does not say which relative scheme it used.
* The noise-level input of the network is t of the cosine schedule (sinusoidal features of 1000 t), as the Google
  diffusion code feeds arctan(exp(-lambda / 2)) / (pi / 2); the class embedding is added after the MLP.
* GroupNorm statistics are per frame, which the paper does not state but which joint image-video training needs
  for the appended images to be independent of the video (with 5-D GroupNorm they would share statistics).
* Joint training: image frames are noised at the clip's noise level (one level per example); the paper does not
  say. Reconstruction guidance is applied together with the replacement method (z^a drawn from q(z_t | x^a));
  predictions are clipped to [-1, 1] after guidance. The squared error is summed (the paper's ||.||^2).
* No learning-rate warm-up or gradient clipping (the paper lists none).
* EMA warm-up (`ema_warmup`, on by default; the paper states none): the decay after n updates is
  min(ema_decay, (1 + n) / (10 + n)) (TensorFlow's `ExponentialMovingAverage` with `num_updates`), so sample grids of
  the first thousands of steps show trained weights, not the initial ones (0.9999 alone keeps 37% of the first
  weights after 10k steps). It reaches 0.9999 only at n = 90k, so over the paper's 60k steps the average is slightly
  shorter (decay 0.99985 at the end); `ema_warmup: false` gives the plain EMA.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from zoo.config import valid_ranges
from zoo.errors import ZooError
from zoo.models.base import VideoGenerativeModel, VideoSpec
from zoo.models.ema import EMA
from zoo.models.video_diffusion.schedule import (
    PREDICTIONS,
    SAMPLERS,
    CosineLogSNR,
    alpha_sigma,
    diffuse,
    predict_x,
    sample_loop,
    training_target,
)
from zoo.models.video_diffusion.unet3d import UNet3D
from zoo.registry import register_model


@valid_ranges(
    base_channels="[1, 8192]", channel_mults="[1, 64]", blocks_per_level="[1, 64]", attention_resolutions="[1, 4096]",
    head_dim="[1, 4096]", dropout="[0, 1)", emb_dim="[1, 65536]", emb_layers="[1, 64]", norm_groups="[1, 1024]",
    max_relative_distance="[1, 4096]", prediction=("v", "eps"), logsnr_min="[-100, 100]", logsnr_max="[-100, 100]",
    p_uncond="[0, 1]", guidance_weight="[0, 100]", sampler=("ancestral", "ddim"), sampling_steps="[1, 100000]",
    gamma="[0, 1]", reconstruction_weight="[0, inf)", extension_context="[1, 4096]",
    lr="(0, 1]", beta1="[0, 1)", beta2="[0, 1)", weight_decay="[0, 1]",
    ema_decay="[0, 1]",
)
@dataclass
class VideoDiffusionConfig:
    base_channels: int = 256  # U-Net width at full resolution (paper UCF-101: 256)
    channel_mults: tuple[int, ...] = (1, 2, 4, 8)  # width multiplier per level; every level but the last halves H, W
    blocks_per_level: int = 2  # residual blocks per level (down path; the up path has one more)
    attention_resolutions: tuple[int, ...] = (8, 16, 32)  # feature-map sizes (pixels) with spatial+temporal attention
    head_dim: int = 64  # channels per attention head
    dropout: float = 0.1  # residual-block dropout probability
    emb_dim: int = 1024  # conditioning MLP width
    emb_layers: int = 4  # conditioning MLP linear layers
    norm_groups: int = 32  # GroupNorm groups (at most; fewer where a width is not a multiple)
    max_relative_distance: int = 32  # frames; larger time offsets share one relative position embedding
    prediction: str = "v"  # network output: v | eps
    logsnr_min: float = -20.0  # log-SNR at t = 1
    logsnr_max: float = 20.0  # log-SNR at t = 0
    class_conditional: bool = False  # condition on the dataset's class labels (needs a labelled dataset)
    p_uncond: float = 0.1  # probability of training with the null class (classifier-free guidance)
    guidance_weight: float = 0.0  # classifier-free guidance w: (1 + w) cond - w uncond (0 = plain conditional)
    sampler: str = "ancestral"  # ancestral | ddim
    sampling_steps: int = 256  # network evaluations per sample (per block when extending)
    gamma: float = 0.1  # ancestral sampler's log-variance interpolation
    clip_denoised: bool = True  # clip each x_hat to [-1, 1] while sampling
    reconstruction_weight: float = 9.0  # w_r of reconstruction guidance (paper: 9 on Kinetics, 50 on BAIR)
    extension_context: int | None = None  # frames conditioned on per extension block (None: half the clip length)
    lr: float = 3e-4  # Adam learning rate
    beta1: float = 0.9  # Adam beta1
    beta2: float = 0.99  # Adam beta2
    weight_decay: float = 0.0  # Adam weight decay
    ema_decay: float = 0.9999  # EMA of the U-Net weights, per optimizer update
    ema_warmup: bool = True  # decay min(ema_decay, (1 + n) / (10 + n)) after n updates (TF num_updates warm-up)
    sample_with_ema: bool = True  # sample (and so evaluate) with the EMA weights
    bf16: bool = True  # bf16 autocast for the U-Net on GPU (ignored on CPU)

    def validate(self) -> None:
        if self.prediction not in PREDICTIONS:
            raise ZooError(f"model.prediction must be one of {', '.join(PREDICTIONS)}, got {self.prediction!r}")
        if self.sampler not in SAMPLERS:
            raise ZooError(f"model.sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.sampling_steps < 1:
            raise ZooError(f"model.sampling_steps must be >= 1, got {self.sampling_steps}")


@register_model(
    "video_diffusion",
    description="continuous-time diffusion with a factorized space-time 3-D U-Net, joint image-video training",
    paper="Ho et al., Video Diffusion Models, NeurIPS 2022, https://arxiv.org/abs/2204.03458",
)
class VideoDiffusion(VideoGenerativeModel):
    """Video Diffusion Models (Ho et al. 2022); see the module docstring for the method and deviations."""

    config_class = VideoDiffusionConfig

    def __init__(self, config: VideoDiffusionConfig, spec: VideoSpec):
        super().__init__(config, spec)
        config.validate()
        if config.class_conditional and spec.num_classes == 0:
            raise ValueError("model.class_conditional needs a labelled dataset (num_classes > 0)")
        self.num_classes = spec.num_classes if config.class_conditional else 0
        self.schedule = CosineLogSNR(config.logsnr_min, config.logsnr_max)
        self.unet = UNet3D(
            channels=spec.channels,
            base_channels=config.base_channels,
            channel_mults=tuple(config.channel_mults),
            blocks_per_level=config.blocks_per_level,
            attention_resolutions=tuple(config.attention_resolutions),
            resolution=spec.resolution,
            head_dim=config.head_dim,
            dropout=config.dropout,
            emb_dim=config.emb_dim,
            emb_layers=config.emb_layers,
            num_classes=self.num_classes,
            groups=config.norm_groups,
            max_distance=config.max_relative_distance,
        )
        self.ema = EMA(self.unet, config.ema_decay)

    def configure_optimizers(self):
        c = self.config
        # fused: one kernel for all parameters (CPU and GPU), the same update up to float rounding
        return torch.optim.Adam(self.unet.parameters(), lr=c.lr, betas=(c.beta1, c.beta2), weight_decay=c.weight_decay,
                                fused=True)

    def optimizer_step(self, *args, **kwargs) -> None:
        scaler = getattr(self.trainer.strategy.precision_plugin, "scaler", None)  # 16-mixed only
        scale = scaler.get_scale() if scaler is not None else None
        super().optimizer_step(*args, **kwargs)
        if scaler is not None and scaler.get_scale() < scale:
            return  # the scaler found inf/NaN gradients and skipped the update (its scale only drops then)
        self.update_ema()  # here, not in on_train_batch_end: checkpoints written by callbacks include it

    @torch.no_grad()
    def update_ema(self) -> None:
        """Average the U-Net's weights into the EMA, with the warm-up decay when `ema_warmup`."""
        decay = self.config.ema_decay
        if self.config.ema_warmup:
            n = int(self.ema.averaged.n_averaged)  # updates so far (saved in checkpoints: exact resume)
            decay = min(decay, (1 + n) / (10 + n))
        self.ema.update(self.unet, decay)

    # -- the network ------------------------------------------------------------------------------------------------

    def network_output(
        self, net: nn.Module, z: torch.Tensor, log_snr: torch.Tensor, labels: torch.Tensor | None,
        video_frames: int | None = None,
    ) -> torch.Tensor:
        """The U-Net's eps or v prediction, float32 `[B, C, T, H, W]` (bf16 autocast on GPU)."""
        autocast = self.device.type == "cuda" and self.config.bf16
        context = torch.autocast("cuda", dtype=torch.bfloat16) if autocast else nullcontext()
        with context:
            out = net(z, self.schedule.time(log_snr), labels, video_frames=video_frames)
        return out.float()

    def predict_clean(self, net: nn.Module, z: torch.Tensor, log_snr: torch.Tensor, labels: torch.Tensor | None):
        """x_hat(z_t) `[B, C, T, H, W]`, with classifier-free guidance for class-conditional models (not clipped)."""
        w = self.config.guidance_weight
        if self.num_classes and w != 0.0:
            null = torch.full_like(labels, self.num_classes)
            both = self.network_output(net, torch.cat([z, z]), torch.cat([log_snr, log_snr]), torch.cat([labels, null]))
            cond, uncond = both.chunk(2)
            out = (1 + w) * cond - w * uncond  # outputs are linear in eps and in v, so guiding either is the same
        else:
            out = self.network_output(net, z, log_snr, labels)
        return predict_x(z, out, log_snr, self.config.prediction)

    # -- training -----------------------------------------------------------------------------------------------------

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, video_frames = self.joint_clip(batch)
        loss = self.diffusion_loss(x, self.training_labels(batch), video_frames)
        self.log_losses({"loss": loss}, prog_bar=("loss",))
        return loss

    @staticmethod
    def joint_clip(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """The clip with the batch's independent image frames appended in time (Sec. 3.2), and its video length.

        Returns:
            float `[B, C, T + K, H, W]` and T (K = 0 without `image_frames`).
        """
        video = batch["video"]
        images = batch.get("image_frames")
        if images is None:
            return video, video.shape[2]
        return torch.cat([video, images.to(video.dtype)], dim=2), video.shape[2]  # (B, C, T + K, H, W)

    def training_labels(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """Class labels with the null class for unlabelled clips and, with probability p_uncond, for any clip."""
        if not self.num_classes:
            return None
        labels = batch["label"].clone()
        drop = torch.rand(labels.shape, device=labels.device) < self.config.p_uncond
        return torch.where((labels < 0) | drop, torch.full_like(labels, self.num_classes), labels)

    def diffusion_loss(self, x: torch.Tensor, labels: torch.Tensor | None, video_frames: int) -> torch.Tensor:
        """Mean squared error of the eps or v prediction at t ~ U(0, 1), over all frames (video and images).

        Args:
            x: float `[B, C, T, H, W]` in [-1, 1], frames after `video_frames` being independent images.
            labels: long `[B]` (null = num_classes) or None.
            video_frames: length of the video part.
        """
        t = torch.rand(x.shape[0], device=self.device)
        log_snr = self.schedule.log_snr(t)
        eps = self.randn(*x.shape)
        z = diffuse(x, eps, log_snr)
        out = self.network_output(self.unet, z, log_snr, labels, video_frames)
        return F.mse_loss(out, training_target(x, eps, log_snr, self.config.prediction))

    # -- sampling -----------------------------------------------------------------------------------------------------

    @property
    def sampling_network(self) -> nn.Module:
        return self.ema.module if self.config.sample_with_ema else self.unet

    @property
    def label_classes(self) -> int:
        return self.num_classes

    def _labels(self, n: int, labels: torch.Tensor | None, generator) -> torch.Tensor | None:
        checked = self.check_labels(n, labels, generator)  # an unconditional model raises on labels here
        return checked if self.num_classes else None

    def generate(
        self,
        n: int,
        frames: int,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        context: torch.Tensor | None = None,
        reconstruction_weight: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One sampler run over `frames` frames, optionally conditioned on its first frames (Sec. 3.1).

        With `context` x^a (the first c frames), z^a_t is drawn from q(z_t | x^a) at every step (replacement) and the
        prediction of the other frames is corrected by reconstruction guidance:
        x~^b = x_hat^b - (w_r alpha_t / 2) grad_{z^b} ||x^a - x_hat^a(z_t)||^2.

        Args:
            n: number of videos.
            frames: frames to sample, context included.
            labels: long `[n]` with the null class where unconditional, or None.
            generator: source of all noise.
            context: float `[n, C, c, H, W]` in [-1, 1], c < frames, or None.
            reconstruction_weight: w_r (default: the config's).

        Returns:
            videos float `[n, C, frames, H, W]` in [-1, 1] (the context frames copied in), and the squared
            reconstruction error of the context at each step, float `[steps]` (empty without context).
        """
        c = self.config
        net = self.sampling_network
        shape = (n, self.spec.channels, frames, self.spec.resolution, self.spec.resolution)
        errors: list[torch.Tensor] = []
        w_r = c.reconstruction_weight if reconstruction_weight is None else reconstruction_weight

        def finish(x_hat: torch.Tensor) -> torch.Tensor:
            return x_hat.clamp(-1.0, 1.0) if c.clip_denoised else x_hat

        def denoise(z: torch.Tensor, log_snr: torch.Tensor) -> torch.Tensor:
            if context is None:
                return finish(self.predict_clean(net, z, log_snr, labels))
            k = context.shape[2]
            z_a = diffuse(context, self.randn(*context.shape, generator=generator), log_snr)  # replacement
            z = torch.cat([z_a, z[:, :, k:]], dim=2).detach().requires_grad_(True)
            with torch.enable_grad():
                x_hat = self.predict_clean(net, z, log_snr, labels)
                error = (context - x_hat[:, :, :k]).square().sum()
                (grad,) = torch.autograd.grad(error, z)
            errors.append(error.detach() / n)
            alpha, _ = alpha_sigma(log_snr)
            x_b = x_hat[:, :, k:].detach() - (w_r * alpha / 2).view(-1, 1, 1, 1, 1) * grad[:, :, k:]
            return torch.cat([context, finish(x_b)], dim=2)

        z = self.randn(*shape, generator=generator)
        videos = sample_loop(
            denoise, z, self.schedule, c.sampling_steps, c.sampler, c.gamma,
            noise=lambda: self.randn(*shape, generator=generator),
        )
        return videos.clamp(-1.0, 1.0), torch.stack(errors) if errors else torch.zeros(0, device=self.device)

    def predict_frames(
        self, context: torch.Tensor, frames: int, labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Frame prediction / video extension: continue `context` to `frames` frames in total.

        Blocks of the training length are sampled one after another, each conditioned (reconstruction guidance) on
        the last `extension_context` frames so far, until `frames` frames exist.

        Args:
            context: float `[n, C, c, H, W]` in [-1, 1], e.g. the first frames of real clips.
            frames: total length wanted, > c.
            labels: long `[n]` class labels (class-conditional models).
            generator: source of all noise.

        Returns:
            float `[n, C, frames, H, W]` in [-1, 1] whose first c frames are `context`.
        """
        with self.evaluating():
            n, block = context.shape[0], self.spec.frames
            labels = self._labels(n, labels, generator)
            keep = self.config.extension_context or max(1, block // 2)
            if not 1 <= keep < block:
                raise ZooError(f"model.extension_context must be in [1, {block}), got {keep}")
            video = context.to(self.device, torch.float32)
            while video.shape[2] < frames:
                window = video[:, :, -min(keep, video.shape[2]):]
                new = min(block - window.shape[2], frames - video.shape[2])
                extended, _ = self.generate(n, window.shape[2] + new, labels, generator, context=window)
                video = torch.cat([video, extended[:, :, window.shape[2]:]], dim=2)
            return video

    def predict(self, context, horizon, n=1, generator=None):
        """Video prediction by reconstruction guidance (Sec. 3.1; the paper's BAIR task: 1 frame -> 15).

        The first block (the training length) is one sampler run conditioned on the context's last
        min(T_c, frames - 1) frames -- all of them when they fit; longer horizons continue block by block as
        `predict_frames` does, each block conditioned on the last `extension_context` frames so far.

        Args:
            context: float `[B, C, T_c, H, W]` in [-1, 1].
            horizon: frames to predict (>= 1).
            n: futures per context.
            generator: source of all noise.

        Returns:
            float `[B, n, C, T_c + horizon, H, W]` in [-1, 1]: `context` exactly as given, then the predicted frames.
            Class-conditional models draw one label per sample uniformly (the contract carries no labels).
        """
        from zoo.models.prediction import check_context

        b, _, t_c, _, _ = check_context(self, context, horizon, n)
        block = self.spec.frames
        if block < 2:
            raise ZooError("video_diffusion predicts by conditioning a sampler run on observed frames: the model "
                           f"must be trained on clips of >= 2 frames, not {block}")
        with self.evaluating():
            observed = context.to(self.device, torch.float32).repeat_interleave(n, dim=0)  # (B n) C T_c H W
            labels = self._labels(b * n, None, generator)
            window = observed[:, :, -min(t_c, block - 1):]
            new = min(block - window.shape[2], horizon)
            first, _ = self.generate(b * n, window.shape[2] + new, labels, generator, context=window)
            video = torch.cat([observed, first[:, :, window.shape[2]:]], dim=2)
            if new < horizon:
                video = self.predict_frames(video, t_c + horizon, labels, generator)
        video = video.reshape(b, n, *video.shape[1:])
        video[:, :, :, :t_c] = context.to(video).unsqueeze(1)
        return video

    def sample(self, n, labels=None, generator=None, frames=None):
        """`n` videos of `frames` frames (default: the training length). Up to the training length they come from
        one sampler run; longer videos are extended block by block with reconstruction guidance."""
        frames = frames or self.spec.frames
        with self.evaluating():
            labels = self._labels(n, labels, generator)
            first, _ = self.generate(n, min(frames, self.spec.frames), labels, generator)
        if frames <= self.spec.frames:
            return first
        return self.predict_frames(first, frames, labels, generator)
