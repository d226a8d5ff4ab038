"""Pixel-autoregressive video models: PixelCNN, Gated PixelCNN, Row LSTM and Diagonal BiLSTM frame decoders behind
one interface, conditioned on a causal temporal context.

Papers: "Pixel Recurrent Neural Networks" (van den Oord, Kalchbrenner, Kavukcuoglu, ICML 2016,
https://arxiv.org/abs/1601.06759: Row LSTM, Diagonal BiLSTM, PixelCNN); "Conditional Image Generation with
PixelCNN Decoders" (van den Oord et al., NeurIPS 2016, https://arxiv.org/abs/1606.05328: Gated PixelCNN, class
conditioning); the video factorisation p(x) = prod_t p(x_t | x_<t) with a causal context network follows "Video Pixel
Networks" (Kalchbrenner et al., ICML 2017, https://arxiv.org/abs/1610.00527). No official code exists for any of them.

Every sub-pixel is a 256-way softmax, in raster order and R -> G -> B inside a pixel; the loss is the negative
log-likelihood and bits/dim = NLL / (ln 2 * C * T * H * W). Sampling goes frame by frame, pixel by pixel, colour by
colour; `sample(..., cached=True)` (the default) runs the decoders incrementally (per-layer caches for the
convolutional ones, carried states for the recurrent ones) and draws exactly what the uncached path draws.

Deviations, all for the zoo's scale or because the papers leave a detail open:
* Sizes: the decoders default to the PixelRNN paper's CIFAR-10 sizes as recalled in our notes (unverified against
  the paper's appendix): 12 LSTM layers of h = 128, PixelCNN 15 residual blocks of 2h = 256 features, Gated PixelCNN
  15 gated layers of 128 units; 7x7 first layer; 1024-wide output head.
* Adam (lr 1e-3) for every decoder; PixelRNN used RMSProp. No Polyak averaging (PixelCNN++ only).
* The class embedding is added to the context map; each layer's 1x1 conditioning convolution projects the sum, which
  equals the paper's per-layer V^T h bias plus the spatial V * s term (Conditional PixelCNN, Sec. 2.3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from einops import rearrange

from zoo.config import heldout_data_config, valid_ranges
from zoo.errors import ZooError
from zoo.models.base import VideoGenerativeModel, VideoSpec
from zoo.models.pixel.common import LEVELS, FrameDecoder
from zoo.models.pixel.context import TemporalContext
from zoo.models.pixel.pixelcnn import GatedPixelCNNDecoder, PixelCNNDecoder
from zoo.models.pixel.pixelrnn import DiagonalBiLSTMDecoder, RowLSTMDecoder
from zoo.models.prediction import check_context

DECODERS = ("pixelcnn", "gated_pixelcnn", "row_lstm", "diagonal_bilstm")


@valid_ranges(
    hidden="[1, 8192]", layers="[1, 256]", first_kernel="[1, 31]", kernel="[1, 31]", out_hidden="[1, 16384]",
    context=("convlstm", "conv3d"), context_width="[1, 8192]", context_blocks="[0, 256]", context_layers="[1, 64]",
    context_kernel_t="[1, 31]", lr="(0, 1]", val_every="[0, inf)", val_clips="[1, 100000]",
)
@dataclass
class PixelConfig:
    """Shared fields; each registered variant sets its paper's defaults in a subclass."""

    hidden: int = 128  # PixelCNN: feature maps (2h); Gated: units per stack; LSTMs: h (features 2h)
    layers: int = 12  # residual blocks / gated layers / LSTM layers after the first convolution
    first_kernel: int = 7  # first mask-A convolution (Gated: vertical and horizontal stack width), pixels
    kernel: int = 3  # PixelCNN / Gated PixelCNN kernel after the first layer, pixels (LSTMs: fixed by the paper)
    out_hidden: int = 1024  # width of the output head's hidden 1x1 layer
    context: str = "convlstm"  # temporal context over past frames: convlstm (VPN) | conv3d (causal 3-D convolutions)
    context_width: int = 128  # D, context feature maps
    context_blocks: int = 8  # dilated residual blocks of the per-frame encoder
    context_layers: int = 2  # conv3d only: causal 3-D convolutions
    context_kernel_t: int = 3  # conv3d only: temporal kernel of each, frames
    class_conditional: bool = False  # condition on the clip label (Conditional PixelCNN); needs a labelled dataset
    lr: float = 1e-3  # Adam learning rate
    val_every: int = 1000  # steps between held-out bits/dim evaluations (0 = never)
    val_clips: int = 64  # held-out clips per evaluation


@dataclass
class PixelCNNConfig(PixelConfig):
    hidden: int = 256  # 2h feature maps; the residual blocks' inner width is h
    layers: int = 15  # residual blocks


@dataclass
class GatedPixelCNNConfig(PixelConfig):
    layers: int = 15  # gated layers after the first

    def validate(self) -> None:
        for name in ("first_kernel", "kernel"):  # the stacks reach kernel // 2 pixels each side of the centre
            if getattr(self, name) % 2 == 0:
                raise ValueError(f"model.{name} = {getattr(self, name)} must be odd for gated_pixelcnn: its vertical "
                                 "and horizontal stacks are centred on the current pixel")


@dataclass
class RowLSTMConfig(PixelConfig):
    pass


@dataclass
class DiagonalBiLSTMConfig(PixelConfig):
    pass


def pixel_levels(videos: torch.Tensor) -> torch.Tensor:
    """8-bit values of `[-1, 1]` videos, exactly as `video_io.to_uint8` quantizes them (long, same shape)."""
    return (videos * 127.5 + 128.0).clamp(0, 255).floor().long()


def from_levels(levels: torch.Tensor) -> torch.Tensor:
    return levels.float() / 127.5 - 1.0


class PixelVideoModel(VideoGenerativeModel):
    """The LightningModule shared by the four registered variants (`decoder` names which frame decoder)."""

    decoder_key: str = ""

    def __init__(self, config: PixelConfig, spec: VideoSpec):
        super().__init__(config, spec)
        c = config
        if c.class_conditional and spec.num_classes == 0:
            raise ValueError("model.class_conditional needs a labelled dataset (num_classes > 0)")
        if spec.channels not in (1, 3):
            raise ValueError(f"pixel models order colours R -> G -> B: 1 or 3 channels, got {spec.channels}")
        smallest = min(c.hidden // 2 if self.decoder_key == "pixelcnn" else c.hidden, c.out_hidden)
        if smallest < spec.channels:
            raise ValueError(f"model.hidden and model.out_hidden must hold one feature block per colour "
                             f"({spec.channels}), got {c.hidden} and {c.out_hidden}")
        self.context = TemporalContext(spec.channels, c.context_width, c.context_blocks, c.context, c.context_layers,
                                       c.context_kernel_t, spec.num_classes if c.class_conditional else 0)
        self.decoder = build_decoder(self.decoder_key, c, spec.channels)

    # -- likelihood ---------------------------------------------------------------------------------------------

    def forward(self, videos: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits `(B, 256, C, T, H, W)` of every sub-pixel of `videos` `(B, C, T, H, W)` given the earlier ones."""
        return self.logits_of(from_levels(pixel_levels(videos)), labels)  # the network sees the values it models

    def logits_of(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """`forward` without the quantization, so that gradients w.r.t. the input exist (the causality tests)."""
        b = x.shape[0]
        cond = self.context(x, self._labels(labels))  # (B, D, T, H, W)
        logits = self.decoder(rearrange(x, "b c t h w -> (b t) c h w"), rearrange(cond, "b d t h w -> (b t) d h w"))
        return rearrange(logits, "(b t) (c k) h w -> b k c t h w", b=b, k=LEVELS)

    def bits_per_dim(self, videos: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Negative log2-likelihood per sub-pixel of each video: float `(B,)` (the harness's `bpd` hook)."""
        nll = F.cross_entropy(self(videos, labels), pixel_levels(videos), reduction="none")  # (B, C, T, H, W) nats
        return nll.flatten(1).mean(1) / math.log(2)

    @property
    def label_classes(self) -> int:
        return self.spec.num_classes if self.config.class_conditional else 0

    def _labels(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        if not self.config.class_conditional:
            return None
        if labels is None or (labels < 0).any():
            raise ZooError("this class-conditional model needs the clips' labels (got none or -1)")
        return labels

    # -- training -----------------------------------------------------------------------------------------------

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.config.lr)

    def configure_callbacks(self):
        return [HeldOutBitsPerDim(self.config.val_every, self.config.val_clips)] if self.config.val_every else []

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        nll = F.cross_entropy(self(batch["video"], batch.get("label")), pixel_levels(batch["video"]))  # nats/dim
        self.log_losses({"nll": nll, "bpd": nll / math.log(2)}, prog_bar=("bpd",))
        return nll

    # -- sampling -----------------------------------------------------------------------------------------------

    def sample(self, n, labels=None, generator=None, frames=None, cached: bool = True):
        """Videos `(n, C, T, H, W)`, one sub-pixel at a time; `cached=False` recomputes the whole frame decoder for
        every sub-pixel (the reference the cache is tested against: both draw identical samples)."""
        c, h, w = self.spec.channels, self.spec.resolution, self.spec.resolution
        frames = frames or self.spec.frames
        with self.evaluating():
            labels = self.check_labels(n, labels, generator) if self.config.class_conditional or labels is not None \
                else None
            video = torch.zeros(n, c, frames, h, w, device=self.device)
            self._continue(video, 0, labels, generator, cached)
        return video

    def _continue(self, video: torch.Tensor, start: int, labels, generator, cached: bool) -> None:
        """Sample frames `start:` of `video` `(n, C, T, H, W)` in place, each given every frame before it."""
        for t in range(start, video.shape[2]):
            cond = self.context(video[:, :, : t + 1], labels)[:, :, t]  # (n, D, H, W) from frames < t
            video[:, :, t] = self._sample_frame(cond, generator, cached)

    def predict(self, context, horizon, n=1, generator=None):
        """Video prediction: the factorisation p(x) = prod_t p(x_t | x_<t) (VPN, Sec. 2) continues any prefix, so
        the future is sampled exactly as `sample` samples frame t >= T_c, with the observed frames as x_<t.

        Args:
            context: float `[B, C, T_c, H, W]` in [-1, 1]; the network reads its 8-bit levels (`pixel_levels`), the
                values it was trained on.
            horizon: frames to sample after the context (>= 1).
            n: futures per context.
            generator: source of all randomness.

        Returns:
            float `[B, n, C, T_c + horizon, H, W]` in [-1, 1]: `context` exactly as given, then the sampled frames.
            Class-conditional models draw one label per sample uniformly (the contract carries no labels).
        """
        b, c, t_c, h, w = check_context(self, context, horizon, n)
        with self.evaluating():
            labels = self.check_labels(b * n, None, generator) if self.config.class_conditional else None
            video = torch.zeros(b * n, c, t_c + horizon, h, w, device=self.device)
            seen = from_levels(pixel_levels(context.to(self.device, torch.float32)))
            video[:, :, :t_c] = seen.repeat_interleave(n, dim=0)  # (B n) C T_c H W, sample-major within a context
            self._continue(video, t_c, labels, generator, cached=True)
        video = rearrange(video, "(b n) c t h w -> b n c t h w", b=b)
        video[:, :, :, :t_c] = context.to(video).unsqueeze(1)
        return video

    def _sample_frame(self, cond: torch.Tensor, generator, cached: bool) -> torch.Tensor:
        n, _, h, w = cond.shape
        channels = self.spec.channels
        canvas = cond.new_zeros(n, channels, h, w)
        cache = self.decoder.begin(cond) if cached else None
        for y in range(h):
            for x in range(w):
                for c in range(channels):
                    if cached:
                        logits = self.decoder.step(cache, canvas, y, x)  # (n, C * 256)
                    else:
                        logits = self.decoder(canvas, cond)[:, :, y, x]
                    canvas[:, c, y, x] = from_levels(draw(logits[:, c * LEVELS : (c + 1) * LEVELS], generator))
            if cached:
                self.decoder.end_row(cache, canvas, y)
        return canvas


def draw(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One level per row of `(n, 256)` logits by inverting the CDF at a uniform draw (one draw per row, so the
    cached and uncached samplers consume the generator identically)."""
    device = generator.device if generator is not None else logits.device
    u = torch.rand(logits.shape[0], 1, generator=generator, device=device).to(logits.device)
    cdf = torch.softmax(logits.float(), dim=1).cumsum(1)
    return torch.searchsorted(cdf, u).clamp(max=LEVELS - 1)[:, 0]


def build_decoder(key: str, c: PixelConfig, channels: int) -> FrameDecoder:
    d = c.context_width
    if key == "pixelcnn":
        return PixelCNNDecoder(channels, c.hidden, c.layers, c.first_kernel, c.kernel, c.out_hidden, d)
    if key == "gated_pixelcnn":
        return GatedPixelCNNDecoder(channels, c.hidden, c.layers, c.first_kernel, c.kernel, c.out_hidden, d)
    if key == "row_lstm":
        return RowLSTMDecoder(channels, c.hidden, c.layers, c.first_kernel, c.out_hidden, d)
    if key == "diagonal_bilstm":
        return DiagonalBiLSTMDecoder(channels, c.hidden, c.layers, c.first_kernel, c.out_hidden, d)
    raise ValueError(f"unknown pixel decoder {key!r}; valid: {', '.join(DECODERS)}")


class HeldOutBitsPerDim(pl.Callback):
    """Logs `val/bpd` every `every` steps on `clips` held-out clips: the data config's `test` split with the next
    data seed (UCF-101: the test list; procedural `shapes`: videos never generated for training). DDP ranks score
    disjoint shares; the logged value is the mean over all clips."""

    def __init__(self, every: int, clips: int):
        self.every, self.clips = every, clips

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.iteration % self.every:
            return
        datamodule = trainer.datamodule
        config = heldout_data_config(datamodule.config)
        held_out = type(datamodule)(config, datamodule.batch_size, datamodule.seed, eval_clips=self.clips)
        total = torch.zeros(2, dtype=torch.float64, device=pl_module.device)  # (sum of bits/dim, clips)
        with pl_module.evaluating():
            for raw in held_out.eval_dataloader(rank=trainer.global_rank, world_size=trainer.world_size):
                item = held_out.on_after_batch_transfer(raw, 0)
                labels = item["label"].to(pl_module.device) if pl_module.config.class_conditional else None
                bpd = pl_module.bits_per_dim(item["video"].to(pl_module.device), labels)
                total += torch.stack([bpd.double().sum(), torch.tensor(float(len(bpd)), device=total.device,
                                                                       dtype=torch.float64)])
        if trainer.world_size > 1:
            torch.distributed.all_reduce(total)
        if trainer.is_global_zero:  # straight to the loggers: `self.log` would repeat the value at every later step
            for logger in trainer.loggers:
                logger.log_metrics({"val/bpd": float(total[0] / total[1])}, step=pl_module.iteration - 1)
