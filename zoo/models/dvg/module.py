"""The DVG LightningModule: losses, the official three-phase training step, prediction with the GP trigger."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange, repeat

from zoo.config import valid_ranges
from zoo.errors import ZooError
from zoo.models.base import VideoGenerativeModel, VideoSpec
from zoo.models.dvg.gp import GPDynamics, trigger
from zoo.models.dvg.networks import DCGANDecoder, DCGANEncoder, FramePredictor, official_init
from zoo.registry import register_model


@valid_ranges(
    g_dim="[1, 4096]", nf="[1, 4096]", rnn_size="[1, 65536]", rnn_layers="[1, 16]", num_inducing="[1, 4096]",
    n_past="[1, 4096]", n_future="[1, 4096]", lr="(0, 1]", beta1="[0, 1)", beta2="[0, 1)",
    w_ae="[0, inf)", w_pred="[0, inf)", w_latent="[0, inf)", w_gp_recon="[0, inf)", w_elbo="[0, inf)",
    gp_lr_milestones="[0, inf)", gp_lr_gamma="(0, 1]", trigger_threshold="[0, inf)",
)
@dataclass
class DVGConfig:
    g_dim: int = 90  # latent size = number of GPs (official --g_dim)
    nf: int = 64  # encoder / decoder base width (official dcgan_64 nf)
    rnn_size: int = 256  # LSTM hidden units (official --rnn_size)
    rnn_layers: int = 2  # LSTM cells (official --predictor_rnn_layers)
    num_inducing: int = 40  # inducing points per GP (official GPRegressionLayer1)
    n_past: int = 5  # context frames in training (official KTH --n_past)
    n_future: int = 10  # predicted frames in training (official --n_future)
    last_frame_skip: bool = False  # skips from the latest input frame instead of the last context one (official flag)
    lr: float = 0.002  # Adam learning rate of every network and the GP (official, hard-coded)
    beta1: float = 0.9  # Adam beta1 (official --beta1; torch default)
    beta2: float = 0.999  # Adam beta2 (torch default)
    w_ae: float = 1000.0  # weight of the auto-encoder MSE, decode(h_{t+1}) vs x_{t+1} (official train_model)
    w_pred: float = 0.001  # weight of the LSTM prediction MSE, decode(LSTM(h_t)) vs x_{t+1}
    w_latent: float = 0.01  # weight of the latent MSE, LSTM(h_t) vs h_{t+1}
    w_gp_recon: float = 0.001  # weight of the MSE of decode(GP mean) vs x_{t+1}
    w_elbo: float = 0.0001  # weight of -ELBO (summed over the g_dim GPs)
    finetune: bool = True  # after the joint update, an LSTM-only and a GP-only update per step (official --ft)
    gp_lr_milestones: tuple[int, ...] = (600, 1200)  # steps where the GP's lr drops (official MultiStepLR [3, 5]
    # stepped at each 300-step epoch's start: drops at epochs 2 and 4)
    gp_lr_gamma: float = 0.1  # the drop factor (official)
    trigger_threshold: float = 0.05  # mean variance of f above which the trigger fires (not in the code)


Frames = list[torch.Tensor]  # T frames (B, C, H, W)


@register_model(
    "dvg",
    description="video prediction: SVG-style auto-encoder, deterministic LSTM, per-dimension variational GPs whose "
                "variance triggers drawing a new future",
    paper="Shrivastava & Shrivastava, Diverse Video Generation using a Gaussian Process Trigger, ICLR 2021, "
          "https://openreview.net/forum?id=Qm7R_SdqTpT",
)
class DVG(VideoGenerativeModel):
    """DVG (Shrivastava & Shrivastava 2021); see the package docstring for the method, sources and deviations."""

    config_class = DVGConfig
    prediction_only = True  # no prior over first frames: it continues observed ones

    def __init__(self, config: DVGConfig, spec: VideoSpec):
        super().__init__(config, spec)
        c = config
        if spec.resolution < 8 or spec.resolution & (spec.resolution - 1):
            raise ValueError(f"dvg needs a power-of-two resolution >= 8, got {spec.resolution}")
        if spec.frames < c.n_past + c.n_future:
            raise ValueError(f"dvg trains on n_past + n_future = {c.n_past + c.n_future} frames; the clips have "
                             f"{spec.frames} (set data.frames or model.n_past / model.n_future)")
        self.automatic_optimization = False
        self.encoder = DCGANEncoder(spec.channels, c.g_dim, spec.resolution, c.nf)
        self.decoder = DCGANDecoder(spec.channels, c.g_dim, spec.resolution, c.nf)
        self.frame_predictor = FramePredictor(c.g_dim, c.rnn_size, c.rnn_layers)
        for net in (self.encoder, self.decoder, self.frame_predictor):
            net.apply(official_init)
        self.gp = GPDynamics(c.g_dim, c.num_inducing)

    # -- optimisers ---------------------------------------------------------------------------------------------

    def configure_optimizers(self):
        c = self.config

        def adam(params) -> torch.optim.Adam:
            return torch.optim.Adam(params, lr=c.lr, betas=(c.beta1, c.beta2))

        return [adam(self.encoder.parameters()), adam(self.decoder.parameters()),
                adam(self.frame_predictor.parameters()), adam(self.gp.parameters())]

    def gp_learning_rate(self) -> float:
        c = self.config
        return c.lr * c.gp_lr_gamma ** sum(self.iteration >= m for m in c.gp_lr_milestones)

    # -- losses ---------------------------------------------------------------------------------------------------

    def joint_losses(self, x: Frames) -> dict[str, torch.Tensor]:
        """The official `train_model` terms, each summed over the steps t = 1 .. n_past + n_future - 1 with the real
        frame x_{t-1} as input (teacher forcing), and their weighted total under `loss`."""
        c = self.config
        encoded = [self.encoder(frame) for frame in x]  # each frame once: (B, g_dim), skips
        state = self.frame_predictor.initial_state(x[0].shape[0], x[0])
        terms = dict.fromkeys(("ae", "pred", "latent", "gp_recon", "neg_elbo"), x[0].new_zeros(()))
        skip = None
        for t in range(1, len(x)):
            h, skips = encoded[t - 1]
            if c.last_frame_skip or t < c.n_past or skip is None:
                skip = skips
            h_target = encoded[t][0]
            h_pred, state = self.frame_predictor(h, state)
            f = self.gp.latent(h)
            terms["latent"] = terms["latent"] + F.mse_loss(h_pred, h_target)
            terms["neg_elbo"] = terms["neg_elbo"] + self.gp.neg_elbo(f, h_target)
            terms["pred"] = terms["pred"] + F.mse_loss(self.decoder(h_pred, skip), x[t])
            terms["ae"] = terms["ae"] + F.mse_loss(self.decoder(h_target, skip), x[t])
            gp_mean = rearrange(f.mean, "d b -> b d")
            terms["gp_recon"] = terms["gp_recon"] + F.mse_loss(self.decoder(gp_mean, skip), x[t])
        terms["loss"] = (c.w_ae * terms["ae"] + c.w_pred * terms["pred"] + c.w_latent * terms["latent"]
                         + c.w_gp_recon * terms["gp_recon"] + c.w_elbo * terms["neg_elbo"])
        return terms

    def finetune_lstm_loss(self, x: Frames) -> torch.Tensor:
        """Official `train_frame_predictor`: the latent MSE summed over the steps (only the LSTM is stepped)."""
        with torch.no_grad():
            h = [self.encoder(frame)[0] for frame in x]
        state = self.frame_predictor.initial_state(x[0].shape[0], x[0])
        loss = x[0].new_zeros(())
        for t in range(1, len(x)):
            h_pred, state = self.frame_predictor(h[t - 1], state)
            loss = loss + F.mse_loss(h_pred, h[t])
        return loss

    def finetune_gp_loss(self, x: Frames) -> torch.Tensor:
        """Official `train_GP_Frame_predictor`: -ELBO of h_t -> h_{t+1} summed over the steps (only the GP steps)."""
        with torch.no_grad():
            h = [self.encoder(frame)[0] for frame in x]
        return sum(self.gp.neg_elbo(self.gp.latent(h[t - 1]), h[t]) for t in range(1, len(x)))

    # -- training -------------------------------------------------------------------------------------------------

    def training_frames(self, video: torch.Tensor) -> Frames:
        n = self.config.n_past + self.config.n_future
        return list(rearrange(video[:, :, :n], "b c t h w -> t b c h w"))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """One official iteration: the joint update of all four optimisers on the weighted loss, then (`finetune`)
        an LSTM-only update on the latent MSE and a GP-only update on -ELBO, each on the same clips."""
        x = self.training_frames(batch["video"])
        enc_opt, dec_opt, lstm_opt, gp_opt = opts = self.optimizers()
        for group in gp_opt.param_groups:
            group["lr"] = self.gp_learning_rate()
        for opt in opts:
            opt.zero_grad()
        terms = self.joint_losses(x)
        self.manual_backward(terms["loss"])
        for opt in opts:
            opt.step()
        logs = {k: v.detach() for k, v in terms.items()}
        if self.config.finetune:
            lstm_opt.zero_grad()
            loss = self.finetune_lstm_loss(x)
            self.manual_backward(loss)
            lstm_opt.step()
            gp_opt.zero_grad()
            neg_elbo = self.finetune_gp_loss(x)
            self.manual_backward(neg_elbo)
            gp_opt.step()
            logs.update(ft_latent=loss.detach(), ft_neg_elbo=neg_elbo.detach())
        self.log_losses(logs, prog_bar=("loss",))

    # -- prediction -----------------------------------------------------------------------------------------------

    def check_context(self, context: torch.Tensor, horizon: int, n: int) -> torch.Tensor:
        s = self.spec
        if not isinstance(context, torch.Tensor) or context.ndim != 5 or context.shape[2] < 1 \
                or (context.shape[1], *context.shape[-2:]) != (s.channels, s.resolution, s.resolution):
            shape = tuple(context.shape) if isinstance(context, torch.Tensor) else type(context).__name__
            raise ZooError(f"dvg continues clips of shape [B, {s.channels}, T_c >= 1, {s.resolution}, {s.resolution}], "
                           f"got {shape}")
        if horizon < 1 or n < 1:
            raise ZooError(f"dvg needs horizon >= 1 and n >= 1, got horizon={horizon}, n={n}")
        return context.to(self.device, torch.float32)

    def rollout(self, context: torch.Tensor, horizon: int, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The official test-time loop with the paper's trigger (Sec. 3.3): the context frames go through the LSTM;
        each later step encodes the previous output frame, takes the LSTM's prediction, and where the GP's
        variance of f at the current latent (mean over dimensions) exceeds `trigger_threshold` replaces it with a
        draw from the GP's predictive distribution (f's variance + the likelihood's noise); the next frame is
        decoded from it with the skips of the last context input.

        Args:
            context: float `(B, C, T_c, H, W)` in [-1, 1].
            horizon: frames to predict.
            noise: float `(horizon, B, g_dim)` standard normal draws for the GP samples.

        Returns:
            frames float `(B, C, T_c + horizon, H, W)` (the context as given, then the prediction) and the trigger
            bool `(B, horizon)`.
        """
        c = self.config
        ctx = list(rearrange(context, "b c t h w -> t b c h w"))
        t_c = len(ctx)
        state = self.frame_predictor.initial_state(context.shape[0], context)
        out, fired, skip, x_in = list(ctx), [], None, ctx[0]
        for t in range(1, t_c + horizon):
            h, skips = self.encoder(x_in)
            if c.last_frame_skip or t < t_c or skip is None:
                skip = skips
            h_pred, state = self.frame_predictor(h, state)
            if t < t_c:
                x_in = ctx[t]
                continue
            mean, f_var, var = self.gp.predictive(h)
            fire = trigger(f_var, c.trigger_threshold)  # (B,)
            draw = mean + var.sqrt() * noise[t - t_c]
            x_in = self.decoder(torch.where(fire[:, None], draw, h_pred), skip)
            out.append(x_in)
            fired.append(fire)
        return rearrange(torch.stack(out), "t b c h w -> b c t h w"), torch.stack(fired, dim=1)

    def predict(self, context: torch.Tensor, horizon: int, n: int = 1,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """`n` futures of `horizon` frames per context clip (the contract in `zoo/models/base.py`): float
        `[B, n, C, T_c + horizon, H, W]` in [-1, 1], the context frames as given first. Futures differ only where
        the trigger fires; below the threshold DVG continues deterministically."""
        context = self.check_context(context, horizon, n)
        b = context.shape[0]
        noise = self.randn(horizon, b * n, self.config.g_dim, generator=generator)
        with self.evaluating():
            frames, _ = self.rollout(repeat(context, "b c t h w -> (b n) c t h w", n=n), horizon, noise)
        return rearrange(frames, "(b n) c t h w -> b n c t h w", n=n).clamp(-1, 1)

    def sample(self, n, labels=None, generator=None, frames=None) -> torch.Tensor:
        raise ZooError("dvg is a video-prediction model: it continues observed frames and has no prior over first "
                       "frames, so it does not sample from noise; use predict / `zoo eval --task predict`")

    def grid_videos(self, real: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        """The training grid's right side: the first `n_past` real frames, then DVG's continuation to the clip's
        length (the left side shows the real clip, so the real future sits beside the prediction)."""
        video = real["video"]
        n_past = min(self.config.n_past, video.shape[2] - 1)
        return self.predict(video[:, :, :n_past], video.shape[2] - n_past, generator=generator)[:, 0]
