"""vid2vid: compositing, Markov window, losses recomputed by hand, update order, refusals, checkpoints (synthetic
batches in the `shapes` segmentation format; the shared contract on real data lives in test_vid2vid_contract.py)."""

from __future__ import annotations

import pytest
import torch
from einops import rearrange

from tests.models.vid2vid_synthetic import fit_steps, loader, moving_squares, one_thread, spec_for
from zoo.errors import ZooError
from zoo.models.base import VideoSpec, load_model
from zoo.models.layers.pix2pixhd import MultiscaleDiscriminator, feature_matching_loss
from zoo.models.losses import lsgan_d_loss, lsgan_g_loss, masked_l1
from zoo.models.vid2vid import Vid2Vid, Vid2VidConfig
from zoo.models.vid2vid.discriminators import compose_flows, gather_groups, temporal_groups
from zoo.models.vid2vid.generator import Generated, composite, pyramid
from zoo.models.vid2vid.module import Chunk
from zoo.warp import warp


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    yield from one_thread()


TINY = dict(ngf=8, n_downsample_g=2, n_blocks=2, n_blocks_local=1, ndf=8, n_layers_d=2, n_frames_total=3,
            max_frames_per_update=3)


def tiny(frames: int = 6, size: int = 16, **overrides) -> Vid2Vid:
    torch.manual_seed(0)
    return Vid2Vid(Vid2VidConfig(**{**TINY, **overrides}), spec_for(frames, size))


def batch_of(items):
    return next(iter(loader(items, batch_size=len(items))))


# -- the generator ---------------------------------------------------------------------------------------------------


def test_composite_is_warp_where_m_is_0_and_h_where_m_is_1():
    g = torch.Generator().manual_seed(0)
    prev, h = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    flow = torch.zeros(2, 2, 8, 8)
    flow[:, 0] = 1.0  # read one pixel to the right
    torch.testing.assert_close(composite(prev, h, flow, torch.zeros(2, 1, 8, 8))[..., :-1], prev[..., 1:])
    torch.testing.assert_close(composite(prev, h, flow, torch.ones(2, 1, 8, 8)), h)
    m = torch.full((2, 1, 8, 8), 0.25)
    torch.testing.assert_close(composite(prev, h, flow, m), 0.75 * warp(prev, flow) + 0.25 * h)


@pytest.mark.parametrize("bias,expect", [(-60.0, "warp"), (60.0, "h")])
def test_generator_frame_follows_its_mask(bias, expect):
    """Forcing the mask head to 0 (1) makes the network's frame the warped previous frame (its h)."""
    model = tiny()
    net = model.generator.scales[0]
    with torch.no_grad():
        net.mask_head[1].weight.zero_()
        net.mask_head[1].bias.fill_(bias)
    labels, prev = torch.rand(2, 9, 16, 16), torch.rand(2, 6, 16, 16) * 2 - 1
    out = net(labels, prev, None)
    target = warp(prev[:, -3:], out.flow) if expect == "warp" else out.hallucinated
    torch.testing.assert_close(out.frame, target)


def test_markov_window_by_perturbation():
    """Frame t is a function of s_{t-2..t} and x_{t-2}, x_{t-1} only: regenerated alone from those it is the same;
    s_{t-2} and s_t change it; future source maps do not change earlier frames."""
    model = tiny(frames=8)  # training mode: norms on batch statistics, as vid2vid runs (and translates)
    g = model.generator
    cond = torch.rand(1, 3, 7, 16, 16, generator=torch.Generator().manual_seed(1))
    past = pyramid(torch.rand(1, 3, 2, 16, 16) * 2 - 1, 1)
    with torch.no_grad():
        full = g.generate(cond, past).frames[0]  # 5 frames: frame j from cond j..j+2
        alone = g.generate(cond[:, :, 3:6], [full[:, :, 1:3]]).frames[0]  # frame 3 from its window and x_1, x_2
        torch.testing.assert_close(alone[:, :, 0], full[:, :, 3], rtol=0, atol=1e-6)
        for j in range(3):  # s_{t-2}, s_{t-1}, s_t each change frame t
            other = cond[:, :, 3:6].clone()
            other[:, :, j] = torch.rand_like(other[:, :, j])
            out = g.generate(other, [full[:, :, 1:3]]).frames[0][:, :, 0]
            assert (out - full[:, :, 3]).abs().max() > 1e-3, j
        previous = full[:, :, 1:3].clone()
        previous[:, :, 0] = -previous[:, :, 0]  # x_{t-2} changes frame t too
        assert (g.generate(cond[:, :, 3:6], [previous]).frames[0][:, :, 0] - full[:, :, 3]).abs().max() > 1e-3
        future = cond.clone()
        future[:, :, 6] += 1  # s of the last frame only
        torch.testing.assert_close(g.generate(future, past).frames[0][:, :, :4], full[:, :, :4], rtol=0, atol=0)


def test_translate_is_causal_and_uses_first_frames():
    model = tiny()
    cond = batch_of(moving_squares(2, 6, 16))["condition"]
    out = model.translate(cond)
    assert out.shape == (2, 3, 6, 16, 16) and out.abs().max() <= 1
    later = cond.clone()
    later[:, :, 4:] = later[:, :, 4:].flip(1)
    torch.testing.assert_close(model.translate(later)[:, :, :4], out[:, :, :4], rtol=0, atol=0)
    first = torch.rand(2, 3, 2, 16, 16) * 2 - 1
    started = model.translate(cond, first_frames=first)
    torch.testing.assert_close(started[:, :, :2], first)
    assert not torch.allclose(started[:, :, 2:], out[:, :, 2:])
    with pytest.raises(ZooError, match="first_frames"):
        model.translate(cond, first_frames=first[:, :, :1])


def test_translate_leaves_state_and_modes_alone():
    model = tiny()
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.translate(batch_of(moving_squares(2, 6, 16))["condition"])
    assert model.training and all(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_coarse_to_fine_and_foreground_shapes():
    model = tiny(n_scales_spatial=2, fg=True, fg_labels=(1,))
    out = model.generator.generate(torch.rand(2, 3, 5, 16, 16), pyramid(torch.zeros(2, 3, 2, 16, 16), 2))
    assert [f.shape[-1] for f in out.frames] == [16, 8] and out.flow.shape == (2, 2, 3, 16, 16)
    assert out.mask.shape == (2, 1, 3, 16, 16) and [p.shape[2] for p in out.past] == [2, 2]
    assert model.generator.scales[1].flow_scale == 40.0  # 20 * 2^s


# -- discriminator inputs ------------------------------------------------------------------------------------------


def test_temporal_groups_follow_the_official_skipping():
    """Buffer of 8 frames, the last 6 new, K = 3: scale 0 groups end at frames 7 and 4; scale 1 (every 3rd frame)
    one group 1, 4, 7; scale 2 needs 19 frames."""
    assert temporal_groups(8, 6, 0, 3) == [(5, 1), (2, 1)]
    assert temporal_groups(8, 6, 1, 3) == [(1, 3)]
    assert temporal_groups(8, 6, 2, 3) == []
    video = torch.arange(8.0).view(1, 1, 8, 1, 1)
    assert gather_groups(video, [(1, 3)], 3).flatten().tolist() == [1.0, 4.0, 7.0]


def test_composed_flow_chains_one_frame_flows():
    flows = torch.zeros(1, 2, 2, 12, 12)
    flows[:, 0, 0], flows[:, 0, 1], flows[:, 1, 1] = 1.0, 2.0, -1.0  # older step +1 x; newer +2 x, -1 y
    total = compose_flows(flows)
    torch.testing.assert_close(total[:, :, 3:-3, 3:-3], torch.tensor([3.0, -1.0]).view(1, 2, 1, 1).expand(1, 2, 6, 6))


# -- losses by hand --------------------------------------------------------------------------------------------------


def test_loss_primitives_by_hand():
    real, fake = torch.tensor([1.5, 0.5]), torch.tensor([0.2, -0.4])
    assert lsgan_d_loss(real, fake).item() == pytest.approx((0.25 + 0.25) / 2 + (0.04 + 0.16) / 2)
    assert lsgan_g_loss(fake).item() == pytest.approx((0.64 + 1.96) / 2)
    x, y = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]]), torch.zeros(1, 2, 1, 2)
    mask = torch.tensor([[[[1.0, 0.0]]]])
    assert masked_l1(x, y, mask).item() == pytest.approx((1 + 3) / 4)
    d = MultiscaleDiscriminator(3, 4, 2, 2, "batch")
    a, b = d(torch.rand(2, 3, 16, 16)), d(torch.rand(2, 3, 16, 16))
    by_hand = sum(10 * (4 / 3) / 2 * (fa - fb).abs().mean() for sa, sb in zip(a, b) for fa, fb in zip(sa[:-1], sb[:-1]))
    torch.testing.assert_close(feature_matching_loss(a, b, n_layers=2, weight=10), by_hand)


def make_chunk(model: Vid2Vid, batch) -> Chunk:
    k, n = 3, 3
    video, cond = batch["video"], batch["condition"]
    gen = model.generator.generate(cond[:, :, :k - 1 + n], pyramid(video[:, :, :k - 1], 1))
    fake = gen.frames[0]
    fake_prev = torch.cat([video[:, :, 1:2], fake[:, :, :-1].detach()], dim=2)
    temporal, _ = model.temporal_inputs(None, video[:, :, 2:5], fake, batch["flow_back"][:, :, 1:4])
    return Chunk(cond[:, :, 2:5], video[:, :, 2:5], video[:, :, 1:4], fake_prev, gen, batch["flow_back"][:, :, 1:4],
                 batch["flow_back_valid"][:, None, 1:4].float(), temporal)


def test_each_loss_term_by_hand():
    """Every logged G and D term recomputed from the networks' raw outputs with the official formulas."""
    model = tiny(no_first_img=True)
    batch = batch_of(moving_squares(2, 6, 16))
    chunk = make_chunk(model, batch)
    _, logs = model.generator_loss(chunk)
    assert len(chunk.temporal) == 1  # 3 generated frames: one group at frame rate 1, none at 1/3

    def f(x):
        return rearrange(x, "b c t h w -> (b t) c h w")

    cond, real, mask = f(chunk.condition), f(chunk.real), f(chunk.valid)
    flow, m, ref = f(chunk.generated.flow), f(chunk.generated.mask), f(chunk.flow_ref)
    d = model.image_discriminator
    pred_real = d(torch.cat([cond, real], 1))
    gan = feat = 0
    for x in (f(chunk.generated.frames[0]), f(chunk.generated.hallucinated)):
        pred = d(torch.cat([cond, x], 1))
        gan += sum(((p[-1] - 1) ** 2).mean() for p in pred)
        feat += sum(10 * (4 / 3) / 2 * (a - b).abs().mean() for sp, sr in zip(pred, pred_real)
                    for a, b in zip(sp[:-1], sr[:-1]))
    torch.testing.assert_close(logs["g_gan"], gan)
    torch.testing.assert_close(logs["g_feat"], feat)
    torch.testing.assert_close(logs["f_flow"], 10 * (mask * flow - mask * ref).abs().mean())
    torch.testing.assert_close(logs["f_warp"], 10 * (mask * warp(f(chunk.real_prev), flow) - mask * real).abs().mean())
    torch.testing.assert_close(logs["w_mask"], (mask * m).abs().mean())
    target = warp(f(chunk.fake_prev), ref)
    torch.testing.assert_close(logs["g_warp"], 10 * (mask * f(chunk.generated.frames[0]) - mask * target).abs().mean())
    real_t, fake_t = chunk.temporal[0]
    assert real_t.shape == (2, 3 * 3 + 2 * 2, 16, 16)  # frames (t c) then flows / 20
    torch.testing.assert_close(real_t[:, 9:11], f(batch["flow_back"][:, :, 2:3]) / 20)
    dt = model.temporal_discriminators[0]
    pr, pf = dt(real_t), dt(fake_t)
    torch.testing.assert_close(logs["g_t_gan0"], sum(((p[-1] - 1) ** 2).mean() for p in pf))
    d_loss, _ = model.image_discriminator_loss(chunk)
    by_hand = 0.5 * sum(((r[-1] - 1) ** 2).mean() + (p[-1] ** 2).mean() for x in (chunk.generated.frames[0],
                        chunk.generated.hallucinated) for r, p in zip(pred_real, d(torch.cat([cond, f(x)], 1))))
    torch.testing.assert_close(d_loss, by_hand)
    t_loss, _ = model.temporal_discriminator_loss(chunk, 0)
    by_hand = 0.5 * sum(((r[-1] - 1) ** 2).mean() + (p[-1] ** 2).mean() for r, p in zip(pr, pf))
    torch.testing.assert_close(t_loss, by_hand)


def test_no_mask_loss_with_real_first_frames():
    model = tiny()
    _, logs = model.generator_loss(make_chunk(model, batch_of(moving_squares(2, 6, 16))))
    assert logs["w_mask"] == 0 and logs["f_flow"] > 0


# -- training ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained():
    """Two steps on synthetic batches, recording every optimizer step's order."""
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    order = []
    original = model.configure_optimizers

    def configure():
        opts = original()
        for i, opt in enumerate(opts):
            opt.register_step_pre_hook(lambda *_, i=i: order.append(i))
        return opts

    model.configure_optimizers = configure
    fit_steps(model, loader(moving_squares(4, 6, 16)), 2)
    return model, before, order


def test_official_update_order_and_every_network_trains(trained):
    model, before, order = trained
    assert order == [0, 1, 2] * 2  # G, D_I, D_V at frame rate 1 (no group at 1/3 in 3 frames), per chunk
    changed = {k.split(".")[0] + ("." + k.split(".")[1] if k.startswith("temporal") else "")
               for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"generator", "image_discriminator", "temporal_discriminators.0"}
    assert all(torch.isfinite(v.float()).all() for v in model.state_dict().values())


def test_deviations_are_recorded_in_the_run(trained):
    model, _, _ = trained
    recorded = model.experiment["recorded"]["vid2vid"]
    assert "vgg_loss" in recorded and "flow" not in recorded
    other = tiny()
    with pytest.warns(UserWarning, match="no flow_back"):
        fit_steps(other, loader(moving_squares(2, 6, 16), drop=("flow_back", "flow_back_valid")), 1)
    assert "flow_back" in other.experiment["recorded"]["vid2vid"]["flow"]


def test_curriculum_and_learning_rate_follow_the_official_epochs():
    model = tiny(frames=30, n_frames_total=6, niter_step=5, epoch_steps=10, niter=10, niter_decay=10)
    model.iteration = 49  # epoch 4 done
    assert model.frames_to_generate(30) == 6 and model.learning_rate() == 2e-4
    model.iteration = 50
    assert model.frames_to_generate(30) == 12
    model.iteration = 150
    assert model.frames_to_generate(30) == 28  # capped at the clip minus the 2 given frames
    assert model.learning_rate() == pytest.approx(2e-4 * 0.5)


def test_checkpoint_round_trip(trained, tmp_path):
    model, _, _ = trained
    checkpoint = {"state_dict": model.state_dict()}
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "v.ckpt")
    loaded = load_model(tmp_path / "v.ckpt", expected="vid2vid")
    cond = batch_of(moving_squares(2, 6, 16))["condition"]
    torch.testing.assert_close(loaded.translate(cond), model.translate(cond), rtol=0, atol=0)
    assert not any("vgg" in k for k in loaded.state_dict())


# -- refusals ----------------------------------------------------------------------------------------------------------


def test_refuses_wrong_condition_kind_and_shape():
    with pytest.raises(ValueError, match="data.condition"):
        Vid2Vid(Vid2VidConfig(**TINY), VideoSpec(3, 6, 16, 0, "none", 0))
    with pytest.raises(ValueError, match="segmentation"):
        Vid2Vid(Vid2VidConfig(**TINY, fg=True, fg_labels=(1,)), VideoSpec(3, 6, 16, 0, "edges", 1))
    with pytest.raises(ValueError, match="fg_labels"):
        Vid2Vid(Vid2VidConfig(**TINY, fg=True, fg_labels=(5,)), spec_for(6, 16))
    with pytest.raises(ValueError, match="divisible"):
        Vid2Vid(Vid2VidConfig(**TINY), spec_for(6, 18))
    model = tiny()
    with pytest.raises(ZooError, match=r"\[B, 3, T, 16, 16\]"):
        model.translate(torch.zeros(1, 4, 6, 16, 16))
    with pytest.raises(ZooError, match="does not sample from noise"):
        model.sample(2)
    with pytest.raises(ZooError, match="condition"):
        fit_steps(tiny(), loader(moving_squares(2, 6, 16), drop=("condition",)), 1)


def test_vgg_loss_from_a_local_state_dict(tmp_path):
    from zoo.models.layers.vgg import VGGLoss, vgg19_features

    state = {f"features.{k}": v for k, v in vgg19_features().state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(1)  # a whole torchvision vgg19 state dict: the rest is ignored
    torch.save(state, tmp_path / "vgg19.pth")
    loss = VGGLoss(tmp_path / "vgg19.pth")
    x = torch.rand(1, 3, 32, 32)
    assert loss(x, x).item() == 0 and loss(x, torch.rand(1, 3, 32, 32)).item() > 0
    model = tiny(vgg_weights=str(tmp_path / "vgg19.pth"))
    chunk = make_chunk(model, batch_of(moving_squares(2, 6, 16)))
    _, logs = model.generator_loss(chunk)
    f = [rearrange(x, "b c t h w -> (b t) c h w") for x in (chunk.generated.frames[0], chunk.generated.hallucinated,
                                                              chunk.real)]
    torch.testing.assert_close(logs["g_vgg"], 10 * (loss(f[0], f[2]) + loss(f[1], f[2])))
    assert not any("vgg" in k or "features" in k for k in model.state_dict()), "VGG weights stay out of checkpoints"
    torch.save({"features.0.weight": torch.zeros(2)}, tmp_path / "bad.pth")
    with pytest.raises(ZooError, match="VGG19"):
        VGGLoss(tmp_path / "bad.pth")
    with pytest.raises(ZooError, match="does not exist"):
        VGGLoss(tmp_path / "missing.pth")


def test_generated_dataclass_is_what_generate_returns():
    out = tiny().generator.generate(torch.rand(1, 3, 3, 16, 16), pyramid(torch.zeros(1, 3, 2, 16, 16), 1))
    assert isinstance(out, Generated) and out.frames[0].shape == (1, 3, 1, 16, 16)


def test_growing_starts_from_a_coarser_checkpoint(tmp_path):
    """`pretrained` (official --load_pretrain): a 1-scale, 2-D-scale checkpoint starts a 2-scale, 3-D-scale model:
    generator scale 0 and every same-shape discriminator weight carried over, D scales shifted to the coarse end."""
    small = tiny(size=32, ndf=64)  # widths min(64, ndf 2^k) all 64: every D scale matches in shape, as at ndf 64
    checkpoint = {"state_dict": small.state_dict()}
    small.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "small.ckpt")
    big = tiny(size=32, ndf=64, n_scales_spatial=2, num_d=3, pretrained=str(tmp_path / "small.ckpt"))
    for k, v in small.generator.scales[0].state_dict().items():
        assert torch.equal(big.generator.scales[0].state_dict()[k], v), k
    old, new = small.image_discriminator.scales, big.image_discriminator.scales
    for k in range(2):  # old scale k (finest first) -> new k + 1, as the official names scale{num_D - 1 - k} match
        assert torch.equal(new[k + 1].blocks[1][0].weight, old[k].blocks[1][0].weight)
    assert not torch.equal(new[0].blocks[1][0].weight, old[0].blocks[1][0].weight)
    with pytest.raises(ZooError, match="does not exist"):
        tiny(pretrained=str(tmp_path / "missing.ckpt"))
