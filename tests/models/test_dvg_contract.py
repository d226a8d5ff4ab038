"""The shared model contract for DVG on real `shapes` clips (experiments/dvg/tiny.yaml).

DVG predicts from observed frames and refuses `sample()` from noise, so the contract's sampling checks run on
`predict` of the batch's first `n_past` frames instead (shape, range, determinism, modes and RNG, checkpoints)."""

from __future__ import annotations

import pytest
import torch

from tests.models.contract import ModelContract
from tests.models.vid2vid_synthetic import one_thread
from zoo.errors import ZooError


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    yield from one_thread()


def contexts(datamodule, model, n: int = 2) -> torch.Tensor:
    batch = datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)
    return batch["video"][:n, :, :model.config.n_past]


class TestDVGContract(ModelContract):
    model_key = "dvg"
    sets = ("model.trigger_threshold=0.0",)  # every predicted step draws from the GP: seeds must matter

    def check_forward(self, model, batch):
        b, c, t, h, w = batch["video"].shape
        terms = model.joint_losses(model.training_frames(batch["video"]))
        assert all(v.shape == () and torch.isfinite(v) for v in terms.values())
        out = model.predict(batch["video"][:, :, :2], horizon=t - 2)
        assert out.shape == (b, 1, c, t, h, w)

    def test_sample_shape_dtype_range(self):
        model, datamodule = self.build()
        spec = model.spec
        out = model.predict(contexts(datamodule, model), spec.frames - model.config.n_past, n=2,
                            generator=torch.Generator().manual_seed(0))
        assert out.shape == (2, 2, spec.channels, spec.frames, spec.resolution, spec.resolution)
        assert out.dtype == torch.float32 and torch.isfinite(out).all() and out.abs().max() <= 1
        with pytest.raises(ZooError, match="video-prediction"):
            model.sample(3, generator=torch.Generator().manual_seed(0))

    def test_labels_only_for_class_conditional_models(self):
        model, _ = self.build()
        assert model.label_classes == 0

    def test_same_seed_same_samples(self):
        model, datamodule = self.build()
        ctx = contexts(datamodule, model)

        def run(seed):
            return model.predict(ctx, 2, n=2, generator=torch.Generator().manual_seed(seed))

        torch.testing.assert_close(run(123), run(123), rtol=0, atol=0)
        assert not torch.equal(run(123), run(124)), "different seeds must give different futures"

    def test_sample_leaves_training_mode_and_global_rng_alone(self):
        model, datamodule = self.build()
        ctx = contexts(datamodule, model)
        for mode in (True, False):
            model.train(mode)
            modes = {name: m.training for name, m in model.named_modules()}
            rng = torch.get_rng_state()
            model.predict(ctx, 2, generator=torch.Generator().manual_seed(0))
            assert {name: m.training for name, m in model.named_modules()} == modes
            assert torch.equal(torch.get_rng_state(), rng)

    def test_checkpoint_round_trip(self, trained):
        result, loaded = self.reloaded(trained)
        ctx = torch.rand(2, 3, 2, 16, 16) * 2 - 1
        a = result.model.predict(ctx, 2, n=2, generator=torch.Generator().manual_seed(5))
        b = loaded.predict(ctx, 2, n=2, generator=torch.Generator().manual_seed(5))
        torch.testing.assert_close(a, b, rtol=0, atol=0)
