"""The vid2vid LightningModule: config, losses, the official update order and curriculum, translation.

See the package docstring (`zoo/models/vid2vid/__init__.py`) for the paper, the sources of the defaults and the
deviations.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from einops import rearrange
from torch import nn

from zoo.config import valid_ranges
from zoo.errors import ZooError
from zoo.models.base import ConditionalVideoModel, VideoSpec
from zoo.models.gan import GANModel, Losses
from zoo.models.layers.pix2pixhd import NORMS, feature_matching_loss, pix2pixhd_init
from zoo.models.layers.vgg import VGGLoss
from zoo.models.losses import lsgan_d_loss, lsgan_g_loss, masked_l1
from zoo.models.vid2vid.discriminators import (
    gather_group_flows,
    gather_groups,
    image_discriminator,
    temporal_discriminator,
    temporal_groups,
    temporal_input,
)
from zoo.models.vid2vid.generator import Generated, SequentialGenerator, pyramid
from zoo.registry import register_model
from zoo.warp import warp


@valid_ranges(
    n_frames_g="[2, 16]", ngf="[2, 4096]", n_downsample_g="[1, 8]", n_blocks="[0, 64]", n_blocks_local="[0, 64]",
    norm=NORMS, n_scales_spatial="[1, 6]", fg_labels="[0, 4096]", ndf="[1, 4096]", n_layers_d="[1, 8]",
    num_d="[1, 6]", n_frames_d="[2, 16]", n_scales_temporal="[0, 6]", lambda_feat="[0, inf)", lambda_f="[0, inf)",
    lambda_t="[0, inf)", lr="(0, 1]", beta1="[0, 1)", beta2="[0, 1)", niter="[0, inf)", niter_decay="[0, inf)",
    epoch_steps="[1, inf)", n_frames_total="[1, 4096]", niter_step="[1, inf)", max_frames_per_update="[1, 4096]",
    niter_fix_global="[0, inf)",
)
@dataclass
class Vid2VidConfig:
    # generator (options/base_options.py; scripts/street/train_512.sh, Cityscapes 512 x 256)
    n_frames_g: int = 3  # source maps per generated frame (Markov window L + 1; L = 2 previous frames)
    ngf: int = 128  # width of the coarsest scale's stems; scale s has ngf / 2^s
    n_downsample_g: int = 3  # stride-2 stages of the global (coarsest) generator
    n_blocks: int = 9  # residual blocks of the global generator (5 in the encoders, 4 in each decoder)
    n_blocks_local: int = 3  # residual blocks of each finer (local enhancer) scale
    norm: str = "batch"  # batch | instance (official default: batch; G and every D)
    n_scales_spatial: int = 1  # coarse-to-fine scales (Cityscapes: 1 at 512, 2 at 1024, 3 at 2048)
    fg: bool = False  # foreground/background prior (Eq. 4; the Cityscapes scripts set --fg; segmentation only)
    fg_labels: tuple[int, ...] = (26,)  # foreground classes (official default 26: Cityscapes 'car')
    no_first_img: bool = False  # G also learns the sequence's first frames from no past (official --no_first_img)
    use_flow: bool = True  # predict flow w and mask m (False: official --no_flow, x_t = h)
    # discriminators (options/train_options.py)
    ndf: int = 64  # discriminator width
    n_layers_d: int = 3  # stride-2 layers per PatchGAN
    num_d: int = 2  # spatial scales per discriminator (Cityscapes: 2 at 512, 3 at 1024, 4 at 2048)
    n_frames_d: int = 3  # K, frames per temporal-discriminator group
    n_scales_temporal: int = 2  # frame rates of the temporal discriminator (steps 1, K, K^2, ...)
    # losses (options/train_options.py)
    lambda_feat: float = 10.0  # discriminator feature matching and VGG weight
    lambda_f: float = 10.0  # flow L1 weight (divided by 2^(n_scales_spatial - 1))
    lambda_t: float = 10.0  # warp losses' weight (the official code's lambda_T)
    vgg_weights: str | None = None  # local torchvision VGG19 state dict for the VGG loss (None: off, recorded)
    # optimisation and curriculum (options/train_options.py, train.py; epochs counted in steps of `epoch_steps`)
    lr: float = 2e-4  # Adam learning rate of G, D_I and every D_V
    beta1: float = 0.5  # Adam beta1
    beta2: float = 0.999  # Adam beta2
    niter: int = 10  # epochs at the initial learning rate
    niter_decay: int = 10  # epochs of linear decay to 0 afterwards (G and D_I; the official code leaves D_V's lr)
    epoch_steps: int = 2975  # training steps per epoch (Cityscapes: 2975 training sequences, batch 1)
    n_frames_total: int = 6  # frames generated per sequence at first (Cityscapes 512 script)
    niter_step: int = 5  # every this many epochs n_frames_total doubles (up to data.frames - (n_frames_g - 1))
    max_frames_per_update: int = 12  # frames per G/D update within a sequence (official max_frames_per_gpu 2 x 6 GPUs)
    niter_fix_global: int = 0  # epochs in which only the finest scale trains (growing; 1024 script: 10)
    pretrained: str | None = None  # vid2vid checkpoint with fewer scales whose weights start this one (load_pretrain)

    def validate(self) -> None:
        if self.ngf % 2 ** (self.n_scales_spatial - 1):
            raise ValueError(f"ngf = {self.ngf} must be divisible by 2^(n_scales_spatial - 1)")


def _d_losses(pred_real: list[list[torch.Tensor]], pred_fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """sum over a multi-scale D's scales of the LSGAN D terms (official `criterionGAN(real, True)` +
    `criterionGAN(fake, False)`)."""
    return sum(lsgan_d_loss(r[-1], f[-1]) for r, f in zip(pred_real, pred_fake))


def _g_loss(pred_fake: list[list[torch.Tensor]]) -> torch.Tensor:
    return sum(lsgan_g_loss(f[-1]) for f in pred_fake)


@dataclass
class Chunk:
    """What one G/D update of a sequence sees (all `[B, C, n, H, W]`)."""

    condition: torch.Tensor  # the n frames' own source maps
    real: torch.Tensor
    real_prev: torch.Tensor  # the real frame before each
    fake_prev: torch.Tensor  # the generated (or first real) frame before each, detached
    generated: Generated
    flow_ref: torch.Tensor | None  # [B, 2, n, H, W] real backward flow, None without flow data
    valid: torch.Tensor | None  # [B, 1, n, H, W] float, where flow_ref holds
    temporal: list[tuple[torch.Tensor, torch.Tensor]]  # per temporal scale with groups: (real, fake) D_V inputs


@register_model(
    "vid2vid",
    description="conditional video synthesis: sequential flow-warping generator, image and multi-rate video critics",
    paper="Wang et al., Video-to-Video Synthesis, NeurIPS 2018, https://arxiv.org/abs/1808.06601",
)
class Vid2Vid(ConditionalVideoModel, GANModel):
    """vid2vid (Wang et al. 2018); see the package docstring for the architecture, training and deviations."""

    config_class = Vid2VidConfig
    condition_kinds = ("segmentation", "edges", "keypoints", "source")
    progress_bar_losses = ("d_image", "g_gan")

    def __init__(self, config: Vid2VidConfig, spec: VideoSpec):
        super().__init__(config, spec)
        c = config
        if c.fg and spec.condition != "segmentation":
            raise ValueError(f"model.fg needs segmentation conditions (this data has data.condition={spec.condition})")
        if c.fg and max(c.fg_labels) >= spec.condition_channels:
            raise ValueError(f"model.fg_labels {list(c.fg_labels)} name classes beyond the {spec.condition_channels} "
                             "of the segmentation")
        factor = 2 ** (c.n_downsample_g + c.n_scales_spatial - 1)
        if spec.resolution % factor:
            raise ValueError(f"vid2vid needs a resolution divisible by 2^(n_downsample_g + n_scales_spatial - 1) = "
                             f"{factor}, got {spec.resolution}")
        if spec.frames < c.n_frames_g:
            raise ValueError(f"vid2vid needs clips of at least n_frames_g = {c.n_frames_g} frames, got {spec.frames}")
        self.generator = SequentialGenerator(spec.condition_channels, c.n_frames_g, c.ngf, c.n_downsample_g,
                                             c.n_blocks, c.n_blocks_local, c.norm, c.n_scales_spatial, c.fg,
                                             c.fg_labels, c.use_flow)
        self.image_discriminator = image_discriminator(spec.condition_channels, c.ndf, c.n_layers_d, c.num_d, c.norm)
        self.temporal_discriminators = nn.ModuleList(temporal_discriminator(c.n_frames_d, c.ndf, c.n_layers_d, c.num_d,
                                                                            c.norm) for _ in range(c.n_scales_temporal))
        self.apply(pix2pixhd_init)
        # kept out of the state dict: a checkpoint must not depend on a local VGG file
        self._vgg: list[VGGLoss] = [VGGLoss(c.vgg_weights)] if c.vgg_weights else []
        self._noted: set[str] = set()
        if c.pretrained:
            self.load_pretrained(c.pretrained)

    # -- deviations recorded in the run ---------------------------------------------------------------------------

    def note(self, key: str, text: str) -> None:
        """Record a deviation of this run once: in `experiment["recorded"]["vid2vid"]` (the run's config.yaml and
        checkpoints) and as one warning."""
        if key in self._noted:
            return
        self._noted.add(key)
        self.experiment.setdefault("recorded", {}).setdefault("vid2vid", {})[key] = text
        warnings.warn(f"vid2vid: {text}", stacklevel=2)

    def on_fit_start(self) -> None:
        if not self._vgg:
            self.note("vgg_loss", "off: no model.vgg_weights (a local VGG19 state dict) was given, so the VGG "
                      "perceptual loss (lambda 10) is not trained")

    # -- optimisers, learning rate, curriculum ------------------------------------------------------------------

    def configure_optimizers(self):
        c = self.config

        def adam(module: nn.Module) -> torch.optim.Adam:
            return torch.optim.Adam(module.parameters(), lr=c.lr, betas=(c.beta1, c.beta2))

        return [adam(self.generator), adam(self.image_discriminator), *map(adam, self.temporal_discriminators)]

    @property
    def epoch(self) -> int:
        """Epochs completed, counted in `epoch_steps` training steps."""
        return self.iteration // self.config.epoch_steps

    def learning_rate(self) -> float:
        """Official `update_learning_rate` after each epoch e > niter: lr (1 - (e - niter) / niter_decay)."""
        c, e = self.config, self.epoch
        if e <= c.niter or c.niter_decay == 0:
            return c.lr if e <= c.niter else 0.0
        return c.lr * max(0.0, 1 - (e - c.niter) / c.niter_decay)

    def frames_to_generate(self, clip_frames: int) -> int:
        """Official `update_training_batch`: n_frames_total doubles every `niter_step` epochs, up to the clip."""
        c = self.config
        return min(c.n_frames_total * 2 ** (self.epoch // c.niter_step), clip_frames - (c.n_frames_g - 1))

    # -- training ---------------------------------------------------------------------------------------------------

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """One sequence, as the official `train.py` loop: chunks of up to `max_frames_per_update` frames, each one G
        forward, then a G update, a D_I update and a D_V update per temporal scale that had groups, from those
        same frames (D's losses on detached fakes)."""
        c = self.config
        if "condition" not in batch:
            raise ZooError(f"vid2vid trains on batches with a `condition` (data.condition={self.spec.condition}); this "
                           "batch has none")
        video, condition = batch["video"], self.check_condition(batch["condition"])
        flows, valid = batch.get("flow_back"), batch.get("flow_back_valid")
        if flows is None:
            self.note("flow", "no flow_back in the training batches: flow, warp and mask losses are off and the "
                      "temporal discriminator gets zero flows")
        g_opt, d_opt, *t_opts = self.optimizers()
        lr = self.learning_rate()
        for opt in (g_opt, d_opt):  # the official code never decays the temporal discriminators' lr
            for group in opt.param_groups:
                group["lr"] = lr
        k = c.n_frames_g
        total = self.frames_to_generate(video.shape[2])
        per = min(c.max_frames_per_update, total)
        past = pyramid(video[:, :, :k - 1], c.n_scales_spatial)
        if c.no_first_img:
            past = [torch.zeros_like(p) for p in past]
        last_fake, buffers, logs = None, None, {}
        train_coarse = self.epoch >= c.niter_fix_global
        for i in range(total // per):
            t0 = k - 1 + i * per
            generated = self.generator.generate(condition[:, :, t0 - (k - 1):t0 + per], past,
                                                raw_only=c.no_first_img and i == 0, train_coarse=train_coarse)
            fake = generated.frames[0]
            first_prev = video[:, :, t0 - 1:t0] if last_fake is None else last_fake
            fake_prev = torch.cat([first_prev, fake[:, :, :-1].detach()], dim=2)
            past, last_fake = generated.past, fake[:, :, -1:].detach()
            flow_ref = flows[:, :, t0 - 1:t0 + per - 1] if flows is not None else None
            mask = valid[:, None, t0 - 1:t0 + per - 1].float() if flows is not None else None
            real = video[:, :, t0:t0 + per]
            temporal, buffers = self.temporal_inputs(buffers, real, fake, flow_ref)
            chunk = Chunk(condition[:, :, t0:t0 + per], real, video[:, :, t0 - 1:t0 + per - 1], fake_prev, generated,
                          flow_ref, mask, temporal)
            logs = self.update(chunk, g_opt, d_opt, t_opts)
        self.log_losses(logs, prog_bar=self.progress_bar_losses)

    def update(self, chunk: Chunk, g_opt, d_opt, t_opts: list) -> Losses:
        """The official order: G, D_I, then each temporal D with groups, every loss inside its optimizer's toggle."""
        logs = self.optimize(g_opt, lambda: self.generator_loss(chunk))
        logs.update(self.optimize(d_opt, lambda: self.image_discriminator_loss(chunk)))
        for s, opt in enumerate(t_opts[:len(chunk.temporal)]):
            logs.update(self.optimize(opt, lambda s=s: self.temporal_discriminator_loss(chunk, s)))
        return logs

    def temporal_inputs(self, buffers, real: torch.Tensor, fake: torch.Tensor, flow_ref: torch.Tensor | None):
        """D_V inputs of this chunk per temporal scale (while scales have groups), and the updated frame buffers
        (the earlier chunks' fakes detached; the official `get_all_skipped_frames`)."""
        c = self.config
        kd = c.n_frames_d
        flow = flow_ref if flow_ref is not None else real.new_zeros(real.shape[0], 2, *real.shape[2:])
        if buffers is None:
            buffers = (real, fake, flow)
        else:
            buffers = tuple(torch.cat([b.detach(), x], dim=2) for b, x in zip(buffers, (real, fake, flow)))
        real_all, fake_all, flow_all = buffers
        inputs = []
        for s in range(c.n_scales_temporal):
            groups = temporal_groups(real_all.shape[2], real.shape[2], s, kd)
            if not groups:
                break
            group_flows = gather_group_flows(flow_all, groups, kd)
            inputs.append((temporal_input(gather_groups(real_all, groups, kd), group_flows),
                           temporal_input(gather_groups(fake_all, groups, kd), group_flows)))
        keep = kd ** max(c.n_scales_temporal - 1, 0) * (kd - 1)
        return inputs, tuple(b[:, :, -keep:] for b in buffers)

    def generator_loss(self, chunk: Chunk) -> tuple[torch.Tensor, Losses]:
        """The official G objective: LSGAN + feature matching (+ VGG) on x_t and on h against D_I, flow L1, the warp
        losses, the mask loss (no_first_img), and LSGAN + feature matching against every D_V scale."""
        c = self.config

        def frames(x):
            return rearrange(x, "b c t h w -> (b t) c h w")

        cond, real = frames(chunk.condition), frames(chunk.real)
        pred_real = self.image_discriminator(torch.cat([cond, real], dim=1))
        gan = feat = vgg = real.new_zeros(())
        for fake in (frames(chunk.generated.frames[0]), frames(chunk.generated.hallucinated)):
            pred_fake = self.image_discriminator(torch.cat([cond, fake], dim=1))
            gan = gan + _g_loss(pred_fake)
            feat = feat + feature_matching_loss(pred_fake, pred_real, c.n_layers_d, c.lambda_feat)
            if self._vgg:
                vgg = vgg + self._vgg_loss(fake, real) * c.lambda_feat
        logs = {"g_gan": gan, "g_feat": feat, **({"g_vgg": vgg} if self._vgg else {})}  # VGG off: not logged
        zero = real.new_zeros(())
        flow_l1 = flow_warp = mask_loss = warp_loss = zero
        if chunk.flow_ref is not None:
            valid, flow_ref, real_prev = frames(chunk.valid), frames(chunk.flow_ref), frames(chunk.real_prev)
            if c.use_flow:
                flow, mask = frames(chunk.generated.flow), frames(chunk.generated.mask)
                flow_l1 = masked_l1(flow, flow_ref, valid) * c.lambda_f / 2 ** (c.n_scales_spatial - 1)
                flow_warp = masked_l1(warp(real_prev, flow), real, valid) * c.lambda_t
                if c.no_first_img:
                    mask_loss = masked_l1(mask, torch.zeros_like(mask), valid)
            warped = warp(frames(chunk.fake_prev), flow_ref).detach()
            warp_loss = masked_l1(frames(chunk.generated.frames[0]), warped, valid) * c.lambda_t
        logs.update(g_warp=warp_loss, f_flow=flow_l1, f_warp=flow_warp, w_mask=mask_loss)
        for s, (real_t, fake_t) in enumerate(chunk.temporal):
            pred_real_t = self.temporal_discriminators[s](real_t)
            pred_fake_t = self.temporal_discriminators[s](fake_t)
            logs[f"g_t_gan{s}"] = _g_loss(pred_fake_t)
            logs[f"g_t_feat{s}"] = feature_matching_loss(pred_fake_t, pred_real_t, c.n_layers_d, c.lambda_feat)
        return sum(logs.values()), logs

    def _vgg_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        vgg = self._vgg[0].to(x.device)
        return vgg(x, y)

    def image_discriminator_loss(self, chunk: Chunk) -> tuple[torch.Tensor, Losses]:
        """0.5 (D_real + D_fake), each summed over D_I's scales and over x_t and h (official `get_losses`; the real
        term is counted once per fake kind, as there)."""
        cond = rearrange(chunk.condition, "b c t h w -> (b t) c h w")
        real = torch.cat([cond, rearrange(chunk.real, "b c t h w -> (b t) c h w")], dim=1)
        pred_real = self.image_discriminator(real)
        loss = real.new_zeros(())
        for fake in (chunk.generated.frames[0], chunk.generated.hallucinated):
            fake = torch.cat([cond, rearrange(fake.detach(), "b c t h w -> (b t) c h w")], dim=1)
            loss = loss + _d_losses(pred_real, self.image_discriminator(fake))
        return 0.5 * loss, {"d_image": 0.5 * loss}

    def temporal_discriminator_loss(self, chunk: Chunk, s: int) -> tuple[torch.Tensor, Losses]:
        real, fake = chunk.temporal[s]
        net = self.temporal_discriminators[s]
        loss = 0.5 * _d_losses(net(real), net(fake.detach()))
        return loss, {f"d_temporal{s}": loss}

    # -- translation ------------------------------------------------------------------------------------------------

    @contextmanager
    def batch_statistics(self):
        """No grad, norms on the batch's statistics (the official test.py never calls eval()), every buffer and
        train/eval mode restored afterwards."""
        buffers = {name: b.clone() for name, b in self.generator.named_buffers()}
        modes = {m: m.training for m in self.modules()}
        self.generator.train()
        try:
            with torch.no_grad():
                yield
        finally:
            for name, b in self.generator.named_buffers():
                b.copy_(buffers[name])
            for m, mode in modes.items():
                m.training = mode

    def translate(self, condition: torch.Tensor, generator: torch.Generator | None = None,
                  first_frames: torch.Tensor | None = None) -> torch.Tensor:
        """Source maps `[B, C_c, T, H, W]` -> video `[B, 3, T, H, W]` in [-1, 1].

        With `first_frames` `[B, 3, K, H, W]` (K >= n_frames_g - 1) the output starts with them and continues from
        their last n_frames_g - 1 (official `--use_real_img`). Without, frame 0 is h from no past (zeros; official
        `--no_first_img`) and the windows before frame 0 repeat its source map. vid2vid draws no noise: `generator` is
        unused.
        """
        condition = self.check_condition(condition)
        c, k = self.config, self.config.n_frames_g
        b, _, t, h, w = condition.shape
        with self.batch_statistics():
            if first_frames is not None:
                if first_frames.ndim != 5 or tuple(first_frames.shape[:2]) != (b, 3) \
                        or tuple(first_frames.shape[-2:]) != (h, w) or first_frames.shape[2] < k - 1:
                    raise ZooError(f"first_frames must be [B={b}, 3, K >= {k - 1}, {h}, {w}], got "
                                   f"{tuple(first_frames.shape)}")
                first = first_frames.to(self.device, torch.float32)[:, :, :t]
                n = first.shape[2]
                if n == t:
                    return first
                out = self.generator.generate(condition[:, :, n - (k - 1):], pyramid(first[:, :, n - (k - 1):n],
                                                                                    c.n_scales_spatial))
                return torch.cat([first, out.frames[0]], dim=2).clamp(-1, 1)
            padded = torch.cat([condition[:, :, :1].expand(-1, -1, k - 1, -1, -1), condition], dim=2)
            zeros = pyramid(condition.new_zeros(b, 3, k - 1, h, w), c.n_scales_spatial)
            start = self.generator.generate(padded[:, :, :k], zeros, raw_only=True)
            frames = [start.frames[0]]
            if t > 1:
                frames.append(self.generator.generate(padded[:, :, 1:], start.past).frames[0])
            return torch.cat(frames, dim=2).clamp(-1, 1)

    def grid_videos(self, real: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        """The translations of the real clips' conditions, continuing from their first n_frames_g - 1 real frames
        as vid2vid trains (official default); with `no_first_img` from no past at all."""
        first = None if self.config.no_first_img else real["video"][:, :, :self.config.n_frames_g - 1]
        return self.translate(real["condition"], generator=generator, first_frames=first)

    # -- growing (official --load_pretrain) --------------------------------------------------------------------------

    def load_pretrained(self, path: str) -> None:
        """Start from a vid2vid checkpoint of fewer spatial scales / discriminator scales (the paper's growing: 512 ->
        1024 -> 2048): its generator scale s -> scale s (coarsest first), its D scale k (finest first) -> scale
        k + (num_d - its num_d), keeping only weights of the same shape (official `load_network`)."""
        from zoo.models.base import checkpoint_meta, read_checkpoint

        checkpoint = read_checkpoint(Path(path))
        meta = checkpoint_meta(checkpoint, source=path)
        if meta.get("model_name") != "vid2vid":
            raise ZooError(f"model.pretrained {path} holds a {meta.get('model_name')!r} model, not vid2vid")
        shift = self.config.num_d - int(meta["model_config"]["num_d"])
        state, own = checkpoint["state_dict"], self.state_dict()

        def renamed(key: str) -> str:
            parts = key.split(".")
            for i, p in enumerate(parts[:-1]):
                if p == "scales" and not key.startswith("generator."):
                    parts[i + 1] = str(int(parts[i + 1]) + shift)
                    break
            return ".".join(parts)

        loaded = {renamed(k): v for k, v in state.items()}
        loaded = {k: v for k, v in loaded.items() if k in own and own[k].shape == v.shape}
        self.load_state_dict(loaded, strict=False)
