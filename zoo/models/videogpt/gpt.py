"""VideoGPT stage 2: a GPT prior over the codes of a frozen VideoGPT VQ-VAE.

Yan, Zhang, Abbeel, Srinivas. "VideoGPT: Video Generation using VQ-VAE and Transformers", 2021.
https://arxiv.org/abs/2104.10157

Sec. 3.2: the T' x H' x W' codes of a clip are flattened in raster order (time, then rows, then columns) and
modelled autoregressively by a decoder-only transformer (Image-GPT style, pre-norm blocks). As in the official code
(`wilson1yan/VideoGPT`, `videogpt/gpt.py` and `videogpt/attention.py`, checked) the input of position i is the
codebook embedding of code i - 1 through a linear layer, and position 0 gets a learned start token (`RightShift.sos`:
a width-sized vector, N(0, 0.02^2) at initialisation, inserted after that linear layer); spatio-temporal position
embeddings are broadcast from one table per axis; dropout follows attention and the MLP (residual dropout); the
output layer starts at zero. Class conditioning goes through conditional LayerNorm (gain and bias chosen by the label,
Sec. 3.2); frame conditioning through cross-attention on features of the first frames. The UCF-101 setting (Table 8):
20 layers, 8 heads, width 1024, MLP 4096, dropout 0.2, batch 32, Adam(3e-4, (0.9, 0.999)) with cosine annealing; no
dropout on attention probabilities, because the reported (released) UCF-101 prior uses the official sparse attention,
which ignores `attn_dropout` (the official dense attention's default is 0.3). Sampling runs the
transformer one position at a time with a key/value cache, so each new code costs O(length) instead of O(length^2).

Deviations:
* Position embeddings: the per-axis tables are summed, each the full width, instead of concatenated with width / 3
  channels each (the official concatenation needs width % 3 == 0, which the paper's 1024 is not).
* Dense causal attention through `F.scaled_dot_product_attention`; the paper trains UCF-101 with DeepSpeed's
  strided sparse attention, which needs a special build. No gradient checkpointing (memory only, same maths).
* Class-conditional priors leave clips labelled -1 (unlabelled) out of the loss; the official code has no such case.
* Frame conditioning encodes the first `cond_frames` frames with a small strided 3-D conv stack (spatial / 4,
  `cond_width` channels) instead of the official ResNet-34. `sample()` then needs `context=` real clips.
* Standard LayerNorm (eps inside the square root); the official LayerNorm adds eps to 1/sigma.
* The frozen VQ-VAE (weights, config and data spec) is stored in this model's checkpoints, so a prior checkpoint
  is self-contained: `zoo sample` / `zoo eval` never need the stage-1 file named in `vqvae_ckpt`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from zoo.config import update_dataclass, valid_ranges
from zoo.errors import ZooError
from zoo.models.base import VideoGenerativeModel, VideoSpec, load_model
from zoo.models.videogpt.vqvae import SamePadConv3d, VideoGPTVQVAE, VQVAEConfig
from zoo.registry import register_model


@valid_ranges(
    layers="[1, 256]", heads="[1, 256]", width="[1, 65536]", mlp_width="[1, 262144]", dropout="[0, 1)",
    attn_dropout="[0, 1)", cond_frames="[0, 4096]", cond_width="[1, 8192]",
    lr="(0, 1]", beta1="[0, 1)", beta2="[0, 1)", cosine_steps="[0, inf)",
)
@dataclass
class VideoGPTConfig:
    vqvae_ckpt: str | None = None  # stage-1 checkpoint from `zoo fit --model videogpt_vqvae` (required)
    layers: int = 20  # transformer blocks (Table 8, UCF-101)
    heads: int = 8  # attention heads
    width: int = 1024  # residual stream width
    mlp_width: int = 4096  # hidden width of each block's MLP
    dropout: float = 0.2  # dropout after attention and after the MLP
    attn_dropout: float = 0.0  # dropout on attention probabilities (the reported model's sparse attention has none)
    class_conditional: bool = False  # conditional LayerNorm on the class label (needs labelled data)
    cond_frames: int = 0  # condition on the first k real frames through cross-attention (0 = off)
    cond_width: int = 240  # channels of the conditioning-frame features (official ResNet width)
    lr: float = 3e-4  # Adam learning rate
    beta1: float = 0.9  # Adam beta1
    beta2: float = 0.999  # Adam beta2
    cosine_steps: int = 0  # length of the cosine LR decay in steps; 0 = the run's train.max_steps


class BroadcastPositionEmbedding(nn.Module):
    """One learnt table per axis of a (T', H', W') grid, broadcast and summed: `(T'H'W', width)` in raster order."""

    def __init__(self, shape: tuple[int, ...], width: int):
        super().__init__()
        self.tables = nn.ParameterList(nn.Parameter(torch.randn(size, width) * 0.01) for size in shape)

    def forward(self) -> torch.Tensor:
        t, h, w = self.tables
        grid = t[:, None, None] + h[None, :, None] + w[None, None, :]  # (T', H', W', width)
        return rearrange(grid, "t h w c -> (t h w) c")


class ConditionalLayerNorm(nn.Module):
    """LayerNorm whose gain and bias are chosen by the class label when `num_classes > 0` (Sec. 3.2)."""

    def __init__(self, width: int, num_classes: int):
        super().__init__()
        self.width, self.num_classes = width, num_classes
        if num_classes:
            self.gain = nn.Embedding(num_classes, width)  # gain = 1 + gain[label]
            self.bias = nn.Embedding(num_classes, width)
            nn.init.constant_(self.gain.weight, 1.0 / math.sqrt(num_classes))  # the official initialisation
            nn.init.uniform_(self.bias.weight, -1.0 / math.sqrt(num_classes), 1.0 / math.sqrt(num_classes))
        else:
            self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if not self.num_classes:
            return self.norm(x)
        x = F.layer_norm(x, (self.width,))
        return x * (1 + self.gain(labels)[:, None]) + self.bias(labels)[:, None]  # labels (B,) -> (B, 1, width)


class KVCache:
    """Keys and values of every layer for positions already decoded, plus the conditioning frames' keys/values."""

    def __init__(self, layers: int, batch: int, heads: int, length: int, head_dim: int, like: torch.Tensor):
        self.k = like.new_zeros(layers, batch, heads, length, head_dim)
        self.v = like.new_zeros(layers, batch, heads, length, head_dim)
        self.context: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * layers
        self.length = 0  # positions stored


class Attention(nn.Module):
    """Multi-head attention; causal self-attention when `context_width` is None, else cross-attention."""

    def __init__(self, width: int, heads: int, layers: int, attn_dropout: float, context_width: int | None = None):
        super().__init__()
        self.heads, self.attn_dropout = heads, attn_dropout
        self.q = nn.Linear(width, width, bias=False)
        self.kv = nn.Linear(context_width or width, 2 * width, bias=False)
        self.out = nn.Linear(width, width)
        nn.init.normal_(self.q.weight, std=1.0 / math.sqrt(width))  # the official initialisation
        nn.init.normal_(self.kv.weight, std=1.0 / math.sqrt(context_width or width))
        nn.init.normal_(self.out.weight, std=1.0 / math.sqrt(width * layers))

    def keys_values(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = rearrange(self.kv(source), "b l (two nh d) -> two b nh l d", two=2, nh=self.heads)
        return k, v

    def forward(self, x, context=None, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        q = rearrange(self.q(x), "b l (nh d) -> b nh l d", nh=self.heads)
        dropout = self.attn_dropout if self.training else 0.0
        if context is not None:  # cross-attention; its keys/values are computed once per sample
            if cache is None:
                k, v = self.keys_values(context)
            else:
                if cache.context[layer] is None:
                    cache.context[layer] = self.keys_values(context)
                k, v = cache.context[layer]
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        elif cache is None:
            k, v = self.keys_values(x)
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        else:  # one new position: append its key/value, attend to everything so far (no mask needed)
            if x.shape[1] != 1:
                raise ValueError("cached decoding takes one position at a time")
            k, v = self.keys_values(x)  # (B, nh, 1, d)
            end = cache.length + 1
            cache.k[layer, :, :, cache.length : end] = k
            cache.v[layer, :, :, cache.length : end] = v
            out = F.scaled_dot_product_attention(q, cache.k[layer, :, :, :end], cache.v[layer, :, :, :end])
        return self.out(rearrange(out, "b nh l d -> b l (nh d)"))


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x), the official `GeLU2`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
    """Pre-norm transformer block: causal self-attention, optional cross-attention to frames, MLP; dropout after
    each, before the residual sum."""

    def __init__(self, c: VideoGPTConfig, num_classes: int):
        super().__init__()
        self.norm_attn = ConditionalLayerNorm(c.width, num_classes)
        self.attn = Attention(c.width, c.heads, c.layers, c.attn_dropout)
        if c.cond_frames:
            self.norm_cross = ConditionalLayerNorm(c.width, num_classes)
            self.cross = Attention(c.width, c.heads, c.layers, 0.0, context_width=c.cond_width)
        self.norm_mlp = ConditionalLayerNorm(c.width, num_classes)
        self.mlp = nn.Sequential(nn.Linear(c.width, c.mlp_width), QuickGELU(), nn.Linear(c.mlp_width, c.width))
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x, labels, context, cache: KVCache | None, layer: int) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm_attn(x, labels), cache=cache, layer=layer))
        if context is not None:
            x = x + self.drop(self.cross(self.norm_cross(x, labels), context=context, cache=cache, layer=layer))
        return x + self.drop(self.mlp(self.norm_mlp(x, labels)))


class FrameEncoder(nn.Module):
    """Conditioning frames `(B, C, k, H, W)` in [-1, 1] -> tokens `(B, k H/4 W/4, cond_width)`."""

    def __init__(self, channels: int, frames: int, resolution: int, width: int):
        super().__init__()
        self.net = nn.Sequential(
            SamePadConv3d(channels, width, 4, (1, 2, 2)), nn.ReLU(),
            SamePadConv3d(width, width, 4, (1, 2, 2)), nn.ReLU(),
            SamePadConv3d(width, width, 3),
        )  # fmt: skip
        self.position = BroadcastPositionEmbedding((frames, resolution // 4, resolution // 4), width)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return rearrange(self.net(frames), "b c t h w -> b (t h w) c") + self.position()


class Transformer(nn.Module):
    """The prior: code embeddings `(B, L, D)` -> next-code logits `(B, L, K)`; position i sees codes < i."""

    def __init__(self, c: VideoGPTConfig, latent_shape: tuple[int, int, int], code_dim: int, codebook_size: int,
                 num_classes: int):
        super().__init__()
        self.config, self.length = c, math.prod(latent_shape)
        self.embed = nn.Linear(code_dim, c.width, bias=False)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.start = nn.Parameter(torch.randn(c.width) * 0.02)  # learned input of position 0 (official `sos`)
        self.position = BroadcastPositionEmbedding(latent_shape, c.width)
        self.blocks = nn.ModuleList(Block(c, num_classes) for _ in range(c.layers))
        self.norm = ConditionalLayerNorm(c.width, num_classes)
        self.head = nn.Linear(c.width, codebook_size, bias=False)
        nn.init.zeros_(self.head.weight)  # uniform predictions at the start, as the official code

    def forward(self, embeddings, labels=None, context=None) -> torch.Tensor:
        """Teacher-forced logits. `embeddings` `(B, L <= length, D)`: codebook vectors of codes 0..L-1."""
        x = self.embed(embeddings[:, :-1])  # (B, L - 1, width): position i gets code i - 1 ...
        start = self.start.to(x.dtype).expand(x.shape[0], 1, -1)  # ... and position 0 the start token
        x = torch.cat([start, x], dim=1) + self.position()[: embeddings.shape[1]]  # (B, L, width)
        for block in self.blocks:
            x = block(x, labels, context, None, 0)
        return self.head(self.norm(x, labels))

    def new_cache(self, batch: int, like: torch.Tensor) -> KVCache:
        c = self.config
        return KVCache(c.layers, batch, c.heads, self.length, c.width // c.heads, like)

    def step(self, previous, cache: KVCache, labels=None, context=None) -> torch.Tensor:
        """Logits `(B, K)` for position `cache.length`, given the embedding `(B, 1, D)` of the code before it
        (ignored at position 0, which gets the start token); appends this position's keys and values to `cache`."""
        i = cache.length
        x = self.embed(previous) if i else self.start.to(previous.dtype).expand(previous.shape[0], 1, -1)
        x = x + self.position()[i : i + 1]
        for layer, block in enumerate(self.blocks):
            x = block(x, labels, context, cache, layer)
        cache.length += 1
        return self.head(self.norm(x, labels))[:, 0]


def categorical(logits: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Draw from softmax(logits) `(B, K)` by inverting the CDF at `uniform` `(B,)` in [0, 1): one draw per row,
    so cached and uncached decoding consume identical randomness."""
    cdf = logits.float().softmax(-1).cumsum(-1)
    index = torch.searchsorted(cdf, (uniform * cdf[:, -1])[:, None].contiguous(), right=True)
    return index[:, 0].clamp(max=logits.shape[-1] - 1)


@torch.no_grad()
def decode_codes(transformer: Transformer, table: torch.Tensor, uniform: torch.Tensor, labels=None, context=None,
                 use_cache: bool = True) -> torch.Tensor:
    """Draw codes autoregressively in raster order.

    Args:
        transformer: the prior.
        table: codebook `(K, D)` that embeds the codes fed back in.
        uniform: `(n, L)` uniforms in [0, 1), one per position, so cached and uncached decoding draw alike.
        labels, context: conditioning, as for `Transformer.forward`.
        use_cache: True: one position per step with the key/value cache, O(L) per code; False: recompute the whole
            prefix at every position, O(L^2) per code (the reference the cache is tested and benchmarked against).

    Returns:
        long `(n, L)`.
    """
    n, length = uniform.shape
    codes = torch.zeros(n, length, dtype=torch.long, device=uniform.device)
    cache = transformer.new_cache(n, table) if use_cache else None
    for i in range(length):
        if cache is not None:
            previous = F.embedding(codes[:, i - 1 : i], table) if i else table.new_zeros(n, 1, table.shape[1])  # unused
            logits = transformer.step(previous, cache, labels, context)  # (n, K)
        else:
            logits = transformer(F.embedding(codes[:, : i + 1], table), labels, context)[:, i]  # code i is unused
        codes[:, i] = categorical(logits, uniform[:, i])
    return codes


def load_vqvae(path: str | None, spec: VideoSpec) -> VideoGPTVQVAE:
    if not path:
        raise ZooError(
            "videogpt needs a trained VQ-VAE: run `zoo fit --model videogpt_vqvae ...` first, then pass "
            "--set model.vqvae_ckpt=RUN_DIR/checkpoints/last.ckpt"
        )
    vqvae = load_model(path, expected="videogpt_vqvae")
    own = (vqvae.spec.channels, vqvae.spec.frames, vqvae.spec.resolution)
    if own != (spec.channels, spec.frames, spec.resolution):
        raise ZooError(f"{path} was trained on {own} (channels, frames, resolution) clips, but the data gives "
                       f"{(spec.channels, spec.frames, spec.resolution)}; train the VQ-VAE on the same data config")
    return vqvae


@register_model(
    "videogpt",
    description="VideoGPT stage 2: GPT prior over a frozen videogpt_vqvae's codes, KV-cached sampling",
    paper="Yan et al., VideoGPT: Video Generation using VQ-VAE and Transformers, 2021, https://arxiv.org/abs/2104.10157",
)
class VideoGPT(VideoGenerativeModel):
    """VideoGPT's prior (Yan et al. 2021, Sec. 3.2); see the module docstring for the architecture and deviations."""

    config_class = VideoGPTConfig

    def __init__(self, config: VideoGPTConfig, spec: VideoSpec, vqvae: VideoGPTVQVAE | None = None):
        """`vqvae`: the stage-1 model (default: loaded from `config.vqvae_ckpt`)."""
        super().__init__(config, spec)
        if config.width % config.heads:
            raise ValueError(f"model.width {config.width} must be divisible by model.heads {config.heads}")
        if config.class_conditional and spec.num_classes == 0:
            raise ValueError("model.class_conditional needs a labelled dataset (num_classes > 0)")
        if config.cond_frames >= spec.frames or config.cond_frames < 0:
            raise ValueError(f"model.cond_frames must be in [0, {spec.frames}), got {config.cond_frames}")
        self.vqvae = (vqvae or load_vqvae(config.vqvae_ckpt, spec)).requires_grad_(False).eval()
        self.num_classes = spec.num_classes if config.class_conditional else 0
        codebook = self.vqvae.codebook
        self.transformer = Transformer(config, self.vqvae.latent_shape, codebook.dim, codebook.size, self.num_classes)
        if config.cond_frames:
            self.frame_encoder = FrameEncoder(spec.channels, config.cond_frames, spec.resolution, config.cond_width)

    def train(self, mode: bool = True):
        super().train(mode)
        self.vqvae.eval()  # frozen: BatchNorm statistics and the codebook never change
        return self

    # -- conditioning -----------------------------------------------------------------------------------------------

    @property
    def label_classes(self) -> int:
        """0 unless class-conditional: an unconditional prior on labelled data refuses labels (never ignores them)."""
        return self.num_classes

    def _labels(self, n: int, labels, generator=None) -> torch.Tensor | None:
        checked = self.check_labels(n, labels, generator)  # an unconditional prior raises on labels here
        return checked if self.num_classes else None

    def _context(self, n: int, context: torch.Tensor | None) -> torch.Tensor | None:
        """Conditioning-frame tokens from the first `cond_frames` frames of `context` `[n, C, >=k, H, W]`."""
        k = self.config.cond_frames
        if not k:
            return None
        if context is None:
            raise ZooError(f"this videogpt model is conditioned on the first {k} frames: pass context=VIDEOS "
                           f"([n, C, >= {k}, H, W] in [-1, 1])")
        if context.shape[0] != n or context.shape[2] < k:
            raise ZooError(f"context must be [{n}, C, >= {k}, H, W], got {list(context.shape)}")
        return self.frame_encoder(context[:, :, :k].to(self.device))

    # -- likelihood ---------------------------------------------------------------------------------------------------

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes `(B, L)` long -> frozen codebook vectors `(B, L, D)`."""
        return F.embedding(codes, self.vqvae.codebook.embeddings)

    def logits(self, codes: torch.Tensor, labels=None, context=None) -> torch.Tensor:
        """Teacher-forced next-code logits `(B, L, K)` for flattened codes `(B, L)`."""
        return self.transformer(self.embed(codes), labels, context)

    def nll(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean negative log-likelihood per code (nats) of the batch's clips under the prior; a class-conditional
        prior leaves clips labelled -1 (unlabelled) out (0 with the graph intact when none is labelled)."""
        video = batch["video"]
        codes = rearrange(self.vqvae.encode(video), "b t h w -> b (t h w)")
        labels, keep = None, None
        if self.num_classes:
            keep = batch["label"] >= 0  # (B,)
            labels = batch["label"].clamp(min=0)  # any valid class for the left-out clips' forward pass
        logits = self.logits(codes, labels, self._context(video.shape[0], video))
        nll = F.cross_entropy(rearrange(logits, "b l k -> b k l"), codes, reduction="none")  # (B, L)
        if keep is None:
            return nll.mean()
        return (nll.mean(1) * keep).sum() / keep.sum().clamp(min=1)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.nll(batch)
        self.log_losses({"loss": loss}, prog_bar=("loss",))
        return loss

    def configure_optimizers(self):
        c = self.config
        # this run's max_steps: on resume `on_load_checkpoint` (before this) replaces `experiment` by the checkpoint's
        experiment = getattr(self, "_run_experiment", None) or self.experiment
        steps = max(1, c.cosine_steps or int(experiment.get("train", {}).get("max_steps", 200_000)))
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=c.lr, betas=(c.beta1, c.beta2), fused=True)

        def cosine(step: int) -> float:  # CosineAnnealingLR(T_max=steps, eta_min=0) in closed form
            return 0.5 * (1.0 + math.cos(math.pi * min(step, steps) / steps))

        # a function is not saved with the scheduler's state: a run resumed with a larger max_steps decays over the
        # new length (CosineAnnealingLR would restore the old T_max and drop to zero at the old end)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._run_experiment = self.experiment  # the resuming run's config, for the LR schedule
        super().on_load_checkpoint(checkpoint)

    def on_train_start(self) -> None:
        """After a resume, put the learning rate on this run's schedule (the restored optimizer holds the one the
        interrupted run computed for its own max_steps); a no-op when nothing changed."""
        for config in self.trainer.lr_scheduler_configs:
            s = config.scheduler
            for group, base, factor in zip(s.optimizer.param_groups, s.base_lrs, s.lr_lambdas):
                group["lr"] = base * factor(s.last_epoch)

    def grid_videos(self, real, generator):
        """A frame-conditioned prior's sample grid continues the real clips' first frames."""
        labels = real["label"] if self.num_classes else None
        context = real["video"] if self.config.cond_frames else None
        return self.sample(len(real["video"]), labels=labels, generator=generator, context=context)

    # -- checkpoints: self-contained, the stage-1 architecture travels with the prior -------------------------------

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["zoo"]["vqvae"] = {
            "model_config": dataclasses.asdict(self.vqvae.config),
            "spec": dataclasses.asdict(self.vqvae.spec),
        }

    @classmethod
    def from_checkpoint_meta(cls, config, spec, meta):
        if "vqvae" not in meta:
            return cls(config, spec)
        vqvae_config = update_dataclass(VQVAEConfig(), meta["vqvae"]["model_config"], "model")
        vqvae = VideoGPTVQVAE(vqvae_config, VideoSpec(**meta["vqvae"]["spec"]))
        return cls(config, spec, vqvae=vqvae)  # weights come with the prior's state dict

    # -- sampling -----------------------------------------------------------------------------------------------------

    def uniform(self, *shape: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if generator is None:
            return torch.rand(*shape, device=self.device)
        return torch.rand(*shape, generator=generator, device=generator.device).to(self.device)

    def sample_codes(self, n, labels=None, generator=None, context=None, use_cache: bool = True) -> torch.Tensor:
        """Codes `(n, L)` from the prior in raster order (see `decode_codes`)."""
        uniform = self.uniform(n, self.transformer.length, generator=generator)
        return decode_codes(self.transformer, self.vqvae.codebook.embeddings, uniform, labels, context, use_cache)

    def predict(self, context, horizon, n=1, generator=None):
        """Video prediction with a frame-conditioned prior (the paper's BAIR setting: the first frames condition it
        through cross-attention, the whole clip's codes are sampled and decoded).

        Only a prior trained with `cond_frames` = T_c predicts, and only its clip length: T_c + horizon = the
        training frames. An unconditional prior refuses: priming its code sequence with a context's codes would need
        codes of a prefix alone, but the VQ-VAE's codes mix neighbouring frames (its encoder's receptive field and
        temporal downsampling cross the context's end), and the paper never primes one.

        Args:
            context: float `[B, C, T_c, H, W]` in [-1, 1], T_c = `cond_frames`.
            horizon: frames after the context, T_c + horizon = the model's clip length.
            n: futures per context.
            generator: source of all randomness.

        Returns:
            float `[B, n, C, T_c + horizon, H, W]` in [-1, 1]: `context` exactly as given, then frames T_c.. of the
            decoded sample. The decoded clip's own first T_c frames (the prior's re-synthesis of the context, which
            the paper's videos show) are replaced by the context.
        """
        from zoo.models.prediction import check_context

        b, _, t_c, _, _ = check_context(self, context, horizon, n)
        k, frames = self.config.cond_frames, self.spec.frames
        if not k:
            raise ZooError("this videogpt prior is unconditional (model.cond_frames = 0): VideoGPT predicts only with "
                           "a frame-conditioned prior (train one with --set model.cond_frames=C)")
        if t_c != k or t_c + horizon != frames:
            raise ZooError(f"this videogpt prior continues {k} frames to its {frames}-frame clip: give --context {k} "
                           f"--horizon {frames - k}, not {t_c} and {horizon}")
        observed = context.to(self.device, torch.float32).repeat_interleave(n, dim=0)  # (B n) C T_c H W
        video = self.sample(b * n, generator=generator, context=observed)  # (B n) C T H W
        video = video.reshape(b, n, *video.shape[1:]).clamp(-1, 1)
        video[:, :, :, :t_c] = context.to(video).unsqueeze(1)
        return video

    def sample(self, n, labels=None, generator=None, frames=None, context=None, use_cache: bool = True):
        """Generate `n` clips `[n, C, T, H, W]` in [-1, 1]: codes from the prior, decoded by the frozen VQ-VAE.

        Args:
            n, labels, generator, frames: as `VideoGenerativeModel.sample` (labels only for class-conditional
                models; others refuse them).
            context: real clips `[n, C, >= cond_frames, H, W]` in [-1, 1] for frame-conditioned models.
            use_cache: decode with the key/value cache (same codes, much faster).
        """
        self.check_frames(frames)
        with self.evaluating():
            labels = self._labels(n, labels, generator)
            codes = self.sample_codes(n, labels, generator, self._context(n, context), use_cache)
            t, h, w = self.vqvae.latent_shape
            return self.vqvae.decode(rearrange(codes, "b (t h w) -> b t h w", t=t, h=h, w=w))
