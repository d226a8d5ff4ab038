import pytest
import torch

from tests.models.contract import ModelContract
from tests.models.distances import video_distance
from zoo.models.base import VideoSpec
from zoo.models.mocogan import MoCoGAN, MoCoGANConfig


class TestMoCoGAN(ModelContract):
    model_key = "mocogan"

    def check_forward(self, model, batch):
        video = batch["video"]
        b, c, t, h, w = video.shape
        logit, classes = model.video_discriminator(video)
        assert logit.shape == (b,) and classes.shape == (b, model.num_categories)
        patches = model.image_discriminator(video[:, :, 0])
        assert patches.shape == (b, 1, h // 16, w // 16)


@pytest.mark.parametrize("frames,resolution", [(16, 64), (8, 32), (4, 16), (24, 128)])
def test_any_frames_and_resolution(frames, resolution):
    model = MoCoGAN(MoCoGANConfig(ngf=4, ndf=4), VideoSpec(3, frames, resolution, 0))
    videos = model.sample(2)
    assert videos.shape == (2, 3, frames, resolution, resolution)
    logit, _ = model.video_discriminator(videos)
    assert logit.shape == (2,)


def test_paper_networks_at_64x64_16_frames():
    """At the paper's size the networks are the official ones: G_I 1->4->...->64, D_V time 16->13->10->7->4->1."""
    model = MoCoGAN(MoCoGANConfig(), VideoSpec(3, 16, 64, 0))
    convs = [m for m in model.generator.image_generator.net if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [512, 256, 128, 64, 3]
    assert convs[0].in_channels == 50 + 6 + 10  # z_C, the random 6-d category code (dim_z_category), z_M
    d_v = [m for m in model.video_discriminator.net if isinstance(m, torch.nn.Conv3d)]
    assert [tuple(c.kernel_size) for c in d_v] == [(4, 4, 4)] * 5
    assert not any(isinstance(m, torch.nn.ConstantPad3d) for m in model.video_discriminator.net)


def test_motion_is_recurrent_so_any_length_can_be_sampled():
    model = MoCoGAN(MoCoGANConfig(ngf=4, ndf=4), VideoSpec(3, 8, 32, 0))
    g = torch.Generator().manual_seed(0)
    long = model.sample(2, frames=20, generator=g)
    assert long.shape[2] == 20
    # content is fixed per video and motion evolves: the first 8 frames of a 20-frame sample equal an 8-frame one
    short = model.sample(2, frames=8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(long[:, :, :8], short)
    assert not torch.allclose(long[:, :, 0], long[:, :, -1]), "frames must differ over time"


def test_categorical_sampling_follows_labels():
    model = MoCoGAN(MoCoGANConfig(ngf=4, ndf=4, categorical=True), VideoSpec(3, 8, 32, 9))
    a = model.sample(2, labels=torch.tensor([0, 0]), generator=torch.Generator().manual_seed(0))
    b = model.sample(2, labels=torch.tensor([5, 5]), generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(a, b), "the category code must change the video"
    with pytest.raises(Exception, match="labels"):
        model.sample(2, labels=torch.tensor([0, 9]))


def test_categorical_needs_labels():
    with pytest.raises(ValueError, match="labelled"):
        MoCoGAN(MoCoGANConfig(categorical=True), VideoSpec(3, 16, 64, 0))


def test_video_distance_separates_real_from_noise():
    """The learning check's distance must be able to tell: real vs real is far closer than real vs noise."""
    from zoo.datasets import build_dataset

    dataset = build_dataset("shapes", frames=8, resolution=32)
    a = torch.stack([dataset[i]["video"] for i in range(64)])
    b = torch.stack([dataset[i]["video"] for i in range(64, 128)])
    noise = torch.rand_like(a) * 2 - 1
    assert abs(video_distance(a, b)) < 0.1 * video_distance(a, noise)


@pytest.mark.slow
def test_mocogan_learns_shapes(tmp_path):
    """Briefly trained on `shapes`, samples get much closer to real clips than the initial network's."""
    from zoo.config import resolve_config
    from zoo.datasets.datamodule import VideoDataModule
    from zoo.training import build_model, fit

    sets = [f"train.run_dir={tmp_path}", "train.max_steps=200", "train.sample_every=0", "train.checkpoint_every=1000"]
    config = resolve_config("mocogan", "shapes", MoCoGANConfig, sets=sets)
    datamodule = VideoDataModule(config.data, config.train.batch_size, config.train.seed)
    torch.manual_seed(config.train.seed)
    initial = build_model(config, datamodule)
    trained = fit(config).model.cpu()
    real = torch.stack([datamodule.dataset[i]["video"] for i in range(128)])
    d_initial = video_distance(real, initial.sample(128, generator=torch.Generator().manual_seed(0)))
    d_trained = video_distance(real, trained.sample(128, generator=torch.Generator().manual_seed(0)))
    assert d_trained < 0.5 * d_initial, (d_initial, d_trained)
