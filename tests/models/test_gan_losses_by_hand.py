"""Every GAN loss and discriminator readout recomputed by hand from the network outputs: MoCoGAN (D_I, D_V with its
category term, G), TGANv2 (the levels' scores pooled into one mean, the 3-D ResNet's global *sum* readout), DVD-GAN
(hinge for D_S and D_T, the projection heads' sums). StyleGAN-V's are in test_stylegan_v_by_hand.py.

Each loss is computed once by the model, then the model is reset to its state before the call, the random draws are
replayed in the model's order, and the loss formula is applied here to the networks' outputs."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from zoo.models.base import VideoSpec
from zoo.models.dvdgan import DVDGAN, DVDGANConfig
from zoo.models.mocogan import MoCoGAN, MoCoGANConfig
from zoo.models.tgan2 import ResNetVideoDiscriminator, TGANv2, TGANv2Config

torch.set_num_threads(1)


def model_loss_then_reset(model, loss_fn, seed: int):
    """`loss_fn()` under `seed`; afterwards the model's state (spectral-norm vectors, BN statistics) as before and the
    global RNG at `seed` again, so the caller can replay the same draws."""
    state = copy.deepcopy(model.state_dict())
    torch.manual_seed(seed)
    out = loss_fn()
    model.load_state_dict(state)
    torch.manual_seed(seed)
    return out


def close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


# -- MoCoGAN: non-saturating BCE for D_I, D_V and G; InfoGAN category cross-entropy ------------------------------------


def mocogan(categorical: bool = False, use_noise: bool = True) -> MoCoGAN:
    torch.manual_seed(0)
    config = MoCoGANConfig(ngf=4, ndf=4, image_batch_size=3, categorical=categorical, category_weight=0.7,
                           use_noise=use_noise)
    return MoCoGAN(config, VideoSpec(3, 4, 32, 5 if categorical else 0)).train()


def mocogan_batch(labels=(0, 3)) -> dict:
    torch.manual_seed(1)
    return {"video": torch.rand(2, 3, 4, 32, 32) * 2 - 1, "label": torch.tensor(labels),
            "independent_frames": torch.rand(3, 3, 32, 32) * 2 - 1}


def test_mocogan_image_discriminator_loss_by_hand():
    """-mean log sigmoid(D_I(x)) - mean log(1 - sigmoid(D_I(G_I(z)))) over the patch map (instance noise on)."""
    model, batch = mocogan(), mocogan_batch()
    loss, logs = model_loss_then_reset(model, lambda: model.image_discriminator_loss(batch), seed=4)
    with torch.no_grad():
        fake = model.generate_images(3)
    real_map, fake_map = model.image_discriminator(batch["independent_frames"]), model.image_discriminator(fake)
    assert real_map.shape[0] == 3 and real_map[0].numel() > 1, "patch maps: the mean runs over every patch"
    expected = F.softplus(-real_map).mean() + F.softplus(fake_map).mean()
    close(loss, expected)
    close(logs["d_image"], expected)


def test_mocogan_video_discriminator_loss_with_category_term_by_hand():
    """D_V: BCE on real / fake videos + lambda * CE(real class logits, labels), unlabelled (-1) clips left out."""
    model, batch = mocogan(categorical=True), mocogan_batch(labels=(4, -1))
    loss, logs = model_loss_then_reset(model, lambda: model.video_discriminator_loss(batch), seed=5)
    with torch.no_grad():
        fake = model.generate(2, 4, model._categories(2))
    real_logit, real_classes = model.video_discriminator(batch["video"])
    fake_logit, _ = model.video_discriminator(fake)
    adversarial = F.softplus(-real_logit).mean() + F.softplus(fake_logit).mean()
    category = -torch.log_softmax(real_classes[0], dim=0)[4]  # only clip 0 is labelled
    close(logs["d_video"], adversarial)
    close(logs["d_category"], category)
    close(loss, adversarial + 0.7 * category)


def test_mocogan_generator_loss_by_hand():
    """G: -log sigmoid(D_I(G_I(z))) over `image_batch_size` frames + -log sigmoid(D_V(G(z))) + lambda * CE(D_V's
    class logits of the fakes, the drawn categories)."""
    model, batch = mocogan(categorical=True), mocogan_batch()
    loss, logs = model_loss_then_reset(model, lambda: model.generator_loss(batch), seed=6)
    images = model.generate_images(3)
    image_term = F.softplus(-model.image_discriminator(images)).mean()
    categories = model._categories(2)
    fake_logit, fake_classes = model.video_discriminator(model.generate(2, 4, categories))
    video_term = F.softplus(-fake_logit).mean()
    category = -torch.log_softmax(fake_classes, dim=1)[torch.arange(2), categories].mean()
    close(logs["g_image"], image_term)
    close(logs["g_video"], video_term)
    close(logs["g_category"], category)
    close(loss, image_term + video_term + 0.7 * category)


# -- TGANv2: one BCE over every level's scores; the 3-D ResNet D's global sum readout ----------------------------------


TGAN_TINY = dict(z_dim=16, clstm_channels=8, ch=4, channel_multipliers=[4, 2, 1, 1], dis_channels=2, levels=3)


def test_tgan2_discriminator_loss_pools_every_levels_scores_into_one_mean():
    """`DiracUpdater`: y_real, y_fake = every level's scores concatenated, loss = mean softplus(-y_real) + mean
    softplus(y_fake). With batch subsampling the levels hold 4, 2, 1 clips, so one mean over the 7 scores differs
    from the mean of the three levels' means."""
    torch.manual_seed(0)
    model = TGANv2(TGANv2Config(**TGAN_TINY, subsample_batch=True, gp_weight=0.0), VideoSpec(3, 8, 16, 0)).train()
    video = torch.rand(4, 3, 8, 16, 16) * 2 - 1
    loss, logs = model_loss_then_reset(model, lambda: model.discriminator_loss({"video": video}, 0), seed=8)
    reals, _ = model.real_levels(video, None)
    with torch.no_grad():
        fakes, _ = model.fakes(4, None)
    real = torch.cat([d(x) for d, x in zip(model.discriminator.levels, reals)])
    fake = torch.cat([d(x) for d, x in zip(model.discriminator.levels, fakes)])
    assert real.shape == fake.shape == (7,)
    expected = F.softplus(-real).mean() + F.softplus(fake).mean()
    close(logs["d_loss"], expected)
    close(loss, expected)  # gp_weight 0: nothing else
    per_level = [F.softplus(-r).mean() + F.softplus(f).mean()
                 for r, f in zip(real.split([4, 2, 1]), fake.split([4, 2, 1]))]
    assert not torch.allclose(expected, sum(per_level) / 3), "the two poolings must differ here"


def test_tgan2_generator_loss_pools_every_levels_scores_into_one_mean():
    """G: mean softplus(-y_fake) over the 4 + 2 + 1 fake scores of the levels (batch subsampling on)."""
    torch.manual_seed(0)
    model = TGANv2(TGANv2Config(**TGAN_TINY, subsample_batch=True), VideoSpec(3, 8, 16, 0)).train()
    video = torch.rand(4, 3, 8, 16, 16) * 2 - 1
    loss, logs = model_loss_then_reset(model, lambda: model.generator_loss({"video": video}), seed=11)
    fakes, _ = model.fakes(4, None)
    fake = torch.cat([d(x) for d, x in zip(model.discriminator.levels, fakes)])
    assert fake.shape == (7,)
    close(loss, F.softplus(-fake).mean())
    close(logs["g_loss"], F.softplus(-fake).mean())


def test_tgan2_discriminator_readout_is_the_global_sum_of_the_last_features():
    """Official `ResNetVideoDiscriminator`: h = sum over (T, H, W) of ReLU(last block), score = w . h + b, plus
    <embed(y), h> when class-conditional. The last map keeps several positions here, so a mean would differ."""
    torch.manual_seed(0)
    d = ResNetVideoDiscriminator(3, 2, num_classes=4)
    x, labels = torch.rand(2, 3, 16, 48, 48) * 2 - 1, torch.tensor([1, 3])
    h = x
    for block in d.blocks:
        h = block(h)
    assert h[0, 0].numel() > 1, "the last feature map must keep more than one position"
    pooled = F.relu(h).sum(dim=(2, 3, 4))
    expected = pooled @ d.linear.weight[0] + d.linear.bias[0] + (d.embed.weight[labels] * pooled).sum(1)
    close(d(x, labels), expected)


# -- DVD-GAN: hinge loss for each of D_S and D_T, summed; projection heads sum over space and frames -------------------


def dvdgan() -> DVDGAN:
    torch.manual_seed(0)
    return DVDGAN(DVDGANConfig(dim_z=16, dim_class=8, g_ch=4, d_ch=4, k_frames=4), VideoSpec(3, 8, 32, 9)).train()


def dvdgan_batch() -> dict:
    torch.manual_seed(1)
    return {"video": torch.rand(2, 3, 8, 32, 32) * 2 - 1, "label": torch.tensor([2, 7])}


def hinge_d(real, fake):
    return torch.clamp(1 - real, min=0).mean() + torch.clamp(1 + fake, min=0).mean()


def test_dvdgan_discriminator_loss_is_the_hinge_of_each_discriminator_summed():
    model, batch = dvdgan(), dvdgan_batch()
    loss, logs = model_loss_then_reset(model, lambda: model.discriminator_loss(batch, 0), seed=9)
    with torch.no_grad():  # the model's order of draws: fake labels and z, then D_S's frames (real, then fake)
        fake, fake_labels = model.fakes(2)
    real_s = model.spatial_discriminator(batch["video"], batch["label"])
    real_t = model.temporal_discriminator(batch["video"], batch["label"])
    fake_s = model.spatial_discriminator(fake, fake_labels)
    fake_t = model.temporal_discriminator(fake, fake_labels)
    close(logs["d_spatial"], hinge_d(real_s, fake_s))
    close(logs["d_temporal"], hinge_d(real_t, fake_t))
    close(loss, hinge_d(real_s, fake_s) + hinge_d(real_t, fake_t))


def test_dvdgan_generator_loss_is_minus_the_mean_fake_score_of_each_discriminator():
    model, batch = dvdgan(), dvdgan_batch()
    loss, logs = model_loss_then_reset(model, lambda: model.generator_loss(batch), seed=10)
    fake, labels = model.fakes(2)
    spatial, temporal = model.spatial_discriminator(fake, labels), model.temporal_discriminator(fake, labels)
    close(logs["g_spatial"], -spatial.mean())
    close(logs["g_temporal"], -temporal.mean())
    close(loss, -spatial.mean() - temporal.mean())


def test_dvdgan_projection_head_sums_relu_features_over_space():
    """Miyato & Koyama: h = sum_{x,y} ReLU(f), score = w . h + b + <e(y), h> (eval mode: fixed spectral norm)."""
    model = dvdgan().eval()
    head = model.spatial_discriminator.head
    x, labels = torch.randn(3, head.linear.in_features, 4, 4), torch.tensor([0, 5, 8])
    with torch.no_grad():
        got = head(x, labels)
        pooled = F.relu(x).sum(dim=(2, 3))
        expected = head.linear(pooled)[:, 0] + (head.embed(labels) * pooled).sum(1)
    close(got, expected)


def test_dvdgan_temporal_score_is_the_sum_of_its_per_frame_scores():
    """D_T: after its 3-D blocks, the 2-D blocks and the projection score each remaining frame; the clip's score is
    their sum over time."""
    model = dvdgan().eval()
    d_t = model.temporal_discriminator
    videos, labels = torch.rand(2, 3, 8, 32, 32) * 2 - 1, torch.tensor([1, 4])
    with torch.no_grad():
        features = d_t.blocks3d(d_t.pooled(videos))  # (B, C, T', H', W')
        t = features.shape[2]
        assert t > 1, "more than one frame left: a mean over frames would differ"
        per_frame = torch.stack([d_t.head(d_t.blocks2d(features[:, :, j]), labels) for j in range(t)], dim=1)
        close(d_t(videos, labels), per_frame.sum(dim=1))
