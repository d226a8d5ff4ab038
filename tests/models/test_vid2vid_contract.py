"""The shared model contract for vid2vid on real `shapes` segmentation data (experiments/vid2vid/tiny.yaml).

vid2vid is conditional: `sample()` from noise is refused, so the contract's sampling checks run on `translate` of the
held-out batch's conditions instead (shape, range, determinism, modes and global RNG left alone, checkpoints)."""

from __future__ import annotations

import pytest
import torch

from tests.models.contract import ModelContract
from tests.models.vid2vid_synthetic import one_thread
from zoo.errors import ZooError


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    yield from one_thread()


def conditions(datamodule, n: int = 2) -> torch.Tensor:
    batch = datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)
    return batch["condition"][:n]


class TestVid2VidContract(ModelContract):
    model_key = "vid2vid"

    def check_forward(self, model, batch):
        b, _, t, h, w = batch["video"].shape
        assert batch["condition"].shape == (b, 4, t, h, w) and batch["flow_back"].shape == (b, 2, t - 1, h, w)
        out = model.translate(batch["condition"])
        assert out.shape == (b, 3, t, h, w)

    def test_sample_shape_dtype_range(self):
        model, datamodule = self.build()
        videos = model.translate(conditions(datamodule, 2))
        spec = model.spec
        assert videos.shape == (2, spec.channels, spec.frames, spec.resolution, spec.resolution)
        assert videos.dtype == torch.float32 and torch.isfinite(videos).all()
        assert videos.min() >= -1.0 and videos.max() <= 1.0
        with pytest.raises(ZooError, match="conditional"):
            model.sample(3, generator=torch.Generator().manual_seed(0))

    def test_labels_only_for_class_conditional_models(self):
        model, _ = self.build()
        assert model.label_classes == 0

    def test_same_seed_same_samples(self):
        model, datamodule = self.build()
        cond = conditions(datamodule)
        a = model.translate(cond, generator=torch.Generator().manual_seed(1))
        b = model.translate(cond, generator=torch.Generator().manual_seed(2))  # vid2vid draws no noise
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert not torch.equal(a, model.translate(cond.flip(1)))

    def test_sample_leaves_training_mode_and_global_rng_alone(self):
        model, datamodule = self.build()
        cond = conditions(datamodule)
        for mode in (True, False):
            model.train(mode)
            modes = {name: m.training for name, m in model.named_modules()}
            rng = torch.get_rng_state()
            model.translate(cond)
            assert {name: m.training for name, m in model.named_modules()} == modes
            assert torch.equal(torch.get_rng_state(), rng)

    def test_checkpoint_round_trip(self, trained):
        result, loaded = self.reloaded(trained)
        cond = torch.zeros(2, 4, 6, 16, 16)
        cond[:, 0] = 1
        torch.testing.assert_close(result.model.translate(cond), loaded.translate(cond), rtol=0, atol=0)

    def test_run_records_its_deviations(self, trained):
        import yaml

        _, result = trained
        recorded = yaml.safe_load((result.run_dir / "config.yaml").read_text())["recorded"]
        assert "vgg_loss" in recorded["vid2vid"] and "flow" not in recorded["vid2vid"]  # shapes has flow_back
