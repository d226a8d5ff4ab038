"""GAN losses and regularizers, written once for every model in the zoo.

All functions take raw discriminator logits (any shape: patch discriminators give maps) and return a scalar mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nonsaturating_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator BCE: -log D(real) - log(1 - D(fake)) (Goodfellow et al. 2014)."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def nonsaturating_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: -log D(fake)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator loss (Lim & Ye 2017; used by DVD-GAN, TGANv2)."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


def r1_penalty(real_logits: torch.Tensor, real_inputs: torch.Tensor) -> torch.Tensor:
    """R1 = E ||grad_x D(x)||^2 on real data (Mescheder et al. 2018); `real_inputs` must require grad."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_inputs, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()


def zero_centred_gradient_penalty_sum(
    logits: torch.Tensor | list[torch.Tensor], inputs: torch.Tensor | list[torch.Tensor]
) -> torch.Tensor:
    """sum_inputs sum_samples ||grad_x sum(logits)||^2: a zero-centred penalty *summed* over the batch.

    TGANv2's `DiracUpdater` (reg_type 'real') penalizes the gradient of all its discriminators' outputs with respect
    to every level's real input this way: `F.sum(F.square(dydx))` per input, added over inputs, no batch mean (so its
    lambda scales with the per-device batch). `r1_penalty` is the batch-mean form of the same quantity for one input.

    Args:
        logits: one tensor or a list (e.g. one per discriminator); their total sum is differentiated.
        inputs: the tensor(s) the logits were computed from; each must require grad.

    Returns:
        scalar tensor, differentiable (the graph is kept for the discriminator's backward pass).
    """
    logits = logits if isinstance(logits, (list, tuple)) else [logits]
    inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    total = sum(logit.sum() for logit in logits)
    grads = torch.autograd.grad(total, inputs, create_graph=True)
    return sum(grad.square().sum() for grad in grads)


def lsgan_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Least-squares discriminator loss (Mao et al. 2017): mean (D(real) - 1)^2 + mean D(fake)^2 (pix2pixHD and
    vid2vid's `GANLoss(use_lsgan=True)`: MSE to targets 1 and 0; those codebases halve the sum themselves)."""
    return (real_logits - 1).square().mean() + fake_logits.square().mean()


def lsgan_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Least-squares generator loss: mean (D(fake) - 1)^2."""
    return (fake_logits - 1).square().mean()


def masked_l1(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |mask * prediction - mask * target| over every element (vid2vid's `MaskedL1Loss`: the mean runs over all
    pixels, masked or not, so the loss shrinks with the masked-out share). `mask` `[N, 1, H, W]` broadcasts over the
    channels of `prediction` / `target` `[N, C, H, W]`."""
    mask = mask.to(prediction.dtype).expand_as(prediction)
    return (prediction * mask - target * mask).abs().mean()
