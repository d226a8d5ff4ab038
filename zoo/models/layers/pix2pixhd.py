"""pix2pixHD building blocks: global generator, local enhancer, multi-scale PatchGAN discriminator, feature matching.

Wang, Liu, Zhu, Tao, Kautz, Catanzaro. "High-Resolution Image Synthesis and Semantic Manipulation with Conditional
GANs", CVPR 2018. https://arxiv.org/abs/1711.11585 (Sec. 3.2: coarse-to-fine generator and multi-scale
discriminators; Sec. 3.2, Eq. 4: discriminator feature matching). Layer for layer as in `NVIDIA/pix2pixHD` and
`NVIDIA/vid2vid` `models/networks.py` (checked): reflection padding, 7x7 stem and head, stride-2 3x3 down/up
convolutions, residual blocks of two 3x3 convolutions, 4x4 PatchGAN convolutions with LeakyReLU 0.2, and the 3x3
stride-2 average pooling (padding 1, padding not counted) between scales. vid2vid and Everybody Dance Now reuse them.

Every block takes its sizes as explicit arguments; `norm` is `"batch"` (affine BatchNorm, the vid2vid default) or
`"instance"` (InstanceNorm without affine parameters that tracks running statistics, pix2pixHD's default).
"""

from __future__ import annotations

import torch
from torch import nn

NORMS = ("batch", "instance")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """The official `get_norm_layer`: affine BatchNorm2d, or InstanceNorm2d(affine=False, track_running_stats=True)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=True)
    raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {kind!r}")


@torch.no_grad()
def pix2pixhd_init(module: nn.Module) -> None:
    """The official `weights_init` (apply it with `net.apply`): conv weights N(0, 0.02), BatchNorm scale N(1, 0.02) and
    shift 0; conv biases keep PyTorch's default initialisation."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        module.weight.normal_(0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        module.weight.normal_(1.0, 0.02)
        module.bias.zero_()


def stem(in_channels: int, out_channels: int, norm: str) -> list[nn.Module]:
    """Reflection pad 3, 7x7 convolution, norm, ReLU: the first layer of every pix2pixHD generator branch."""
    return [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, out_channels, 7), norm_layer(norm, out_channels),
            nn.ReLU(True)]


def down(in_channels: int, out_channels: int, norm: str) -> list[nn.Module]:
    """Stride-2 3x3 convolution (H, W -> H/2, W/2), norm, ReLU."""
    return [nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1), norm_layer(norm, out_channels), nn.ReLU(True)]


def up(in_channels: int, out_channels: int, norm: str) -> list[nn.Module]:
    """Stride-2 3x3 transposed convolution (H, W -> 2H, 2W), norm, ReLU."""
    return [nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1),
            norm_layer(norm, out_channels), nn.ReLU(True)]


def head(in_channels: int, out_channels: int, activation: nn.Module | None) -> list[nn.Module]:
    """Reflection pad 3 and a 7x7 convolution to the output channels, then `activation` (Tanh, Sigmoid or none)."""
    return [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, out_channels, 7)] + ([activation] if activation else [])


class ResnetBlock(nn.Module):
    """x + [reflect 1, 3x3 conv, norm, ReLU, reflect 1, 3x3 conv, norm](x), same shape in and out."""

    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), norm_layer(norm, channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), norm_layer(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def downsample_2x(x: torch.Tensor) -> torch.Tensor:
    """The pooling between pix2pixHD scales: 3x3 average, stride 2, padding 1 not counted; `[N, C, H, W]` ->
    `[N, C, ceil(H/2), ceil(W/2)]`."""
    return nn.functional.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)


class GlobalGenerator(nn.Module):
    """G1 of pix2pixHD: stem, `n_downsampling` stride-2 convolutions, `n_blocks` residual blocks, as many transposed
    convolutions, 7x7 Tanh head; widths ngf * 2^i capped at 1024.

    Args:
        in_channels: input channels (e.g. one-hot labels).
        out_channels: output channels (3 for RGB).
        ngf: width of the first layer.
        n_downsampling: stride-2 stages (H, W must be divisible by 2^n_downsampling).
        n_blocks: residual blocks at the bottleneck.
        norm: "batch" | "instance".
    """

    def __init__(self, in_channels: int, out_channels: int, ngf: int = 64, n_downsampling: int = 3, n_blocks: int = 9,
                 norm: str = "instance"):
        super().__init__()
        cap = 1024
        layers = stem(in_channels, ngf, norm)
        for i in range(n_downsampling):
            layers += down(min(cap, ngf * 2**i), min(cap, ngf * 2 ** (i + 1)), norm)
        layers += [ResnetBlock(min(cap, ngf * 2**n_downsampling), norm) for _ in range(n_blocks)]
        for i in range(n_downsampling, 0, -1):
            layers += up(min(cap, ngf * 2**i), min(cap, ngf * 2 ** (i - 1)), norm)
        layers += head(ngf, out_channels, nn.Tanh())
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (N, in, H, W) -> (N, out, H, W) in [-1, 1]


class LocalEnhancer(nn.Module):
    """G = {G1, G2}: a global generator of width ngf * 2^n_local_enhancers run on the input downsampled
    `n_local_enhancers` times (its head removed), then per enhancer a stride-2 front end on the finer input whose
    features are added to the coarser output features, `n_blocks_local` residual blocks and a transposed convolution;
    the last enhancer ends in the 7x7 Tanh head (pix2pixHD Sec. 3.2)."""

    def __init__(self, in_channels: int, out_channels: int, ngf: int = 32, n_downsample_global: int = 3,
                 n_blocks_global: int = 9, n_local_enhancers: int = 1, n_blocks_local: int = 3, norm: str = "instance"):
        super().__init__()
        self.n_local_enhancers = n_local_enhancers
        global_net = GlobalGenerator(in_channels, out_channels, ngf * 2**n_local_enhancers, n_downsample_global,
                                     n_blocks_global, norm)
        self.model = nn.Sequential(*list(global_net.model)[:-3])  # without its reflect / conv / Tanh head
        self.front = nn.ModuleList()
        self.back = nn.ModuleList()
        for n in range(1, n_local_enhancers + 1):
            width = ngf * 2 ** (n_local_enhancers - n)
            self.front.append(nn.Sequential(*stem(in_channels, width, norm), *down(width, 2 * width, norm)))
            back = [ResnetBlock(2 * width, norm) for _ in range(n_blocks_local)] + up(2 * width, width, norm)
            if n == n_local_enhancers:
                back += head(ngf, out_channels, nn.Tanh())
            self.back.append(nn.Sequential(*back))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pyramid = [x]
        for _ in range(self.n_local_enhancers):
            pyramid.append(downsample_2x(pyramid[-1]))
        out = self.model(pyramid[-1])
        for n in range(self.n_local_enhancers):
            out = self.back[n](self.front[n](pyramid[-2 - n]) + out)
        return out  # (N, out, H, W) in [-1, 1]


class NLayerDiscriminator(nn.Module):
    """PatchGAN of pix2pixHD: `n_layers` stride-2 4x4 convolutions (the first without norm), one stride-1 4x4
    convolution with norm, a stride-1 4x4 convolution to one logit per patch; widths ndf * 2^i capped at 512, padding 2.

    `forward` returns every block's output (n_layers + 2 tensors, the last the patch logits), for feature matching.
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: str = "instance"):
        super().__init__()
        act = nn.LeakyReLU(0.2, True)
        blocks = [nn.Sequential(nn.Conv2d(in_channels, ndf, 4, stride=2, padding=2), act)]
        width = ndf
        for _ in range(1, n_layers):
            prev, width = width, min(width * 2, 512)
            blocks.append(nn.Sequential(nn.Conv2d(prev, width, 4, stride=2, padding=2), norm_layer(norm, width), act))
        prev, width = width, min(width * 2, 512)
        blocks.append(nn.Sequential(nn.Conv2d(prev, width, 4, stride=1, padding=2), norm_layer(norm, width), act))
        blocks.append(nn.Sequential(nn.Conv2d(width, 1, 4, stride=1, padding=2)))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features


class MultiscaleDiscriminator(nn.Module):
    """`num_d` PatchGANs on the input at full resolution, downsampled once, twice, ... (pix2pixHD Sec. 3.2).

    `scales[k]` judges the input downsampled k times; its width is min(64, ndf * 2^k) (the official
    `MultiscaleDiscriminator`, which names it layer num_D - 1 - k). `forward` returns, per scale (finest first), the
    list of that PatchGAN's intermediate features, the patch logits last.
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, num_d: int = 2, norm: str = "instance"):
        super().__init__()
        self.n_layers = n_layers
        self.scales = nn.ModuleList(NLayerDiscriminator(in_channels, min(64, ndf * 2**k), n_layers, norm)
                                    for k in range(num_d))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        outputs = []
        for k, net in enumerate(self.scales):
            if k:
                x = downsample_2x(x)
            outputs.append(net(x))
        return outputs


def feature_matching_loss(fake: list[list[torch.Tensor]], real: list[list[torch.Tensor]], n_layers: int,
                          weight: float = 10.0) -> torch.Tensor:
    """Discriminator feature matching (pix2pixHD Eq. 4), as the official `GAN_and_FM_loss`:
    weight * sum_scales sum_layers (1 / num_D) * (4 / (n_layers + 1)) * L1(fake features, real features detached),
    over every block's output except the logits.

    Args:
        fake, real: `MultiscaleDiscriminator` outputs for the fakes (with the graph to G) and the reals.
        n_layers: the discriminators' `n_layers` (sets the per-layer weight 4 / (n_layers + 1)).
        weight: lambda_feat (10 in pix2pixHD and vid2vid).

    Returns:
        scalar tensor.
    """
    per_layer = weight * (4.0 / (n_layers + 1)) / len(fake)
    loss = fake[0][0].new_zeros(())
    for fake_scale, real_scale in zip(fake, real):
        for f, r in zip(fake_scale[:-1], real_scale[:-1]):
            loss = loss + per_layer * (f - r.detach()).abs().mean()
    return loss
