"""The contract every model of the zoo must satisfy, run on its `experiments/<key>/tiny.yaml` config.

Use it by subclassing in `tests/models/test_<key>.py`:

    class TestMyModel(ModelContract):
        model_key = "my_model"

and override `check_forward(model, batch)` to assert the model's own forward shapes.
"""

from __future__ import annotations

import pytest
import torch

from tests.conftest import REPO
from zoo.config import resolve_config
from zoo.datasets.datamodule import VideoDataModule
from zoo.errors import ZooError
from zoo.models.base import load_model
from zoo.registry import MODELS, load_all
from zoo.training import build_model, fit

load_all()


class ModelContract:
    model_key: str = ""
    data_key: str = "shapes"
    sets: tuple[str, ...] = ()  # extra `--set` overrides on top of tiny.yaml

    # -- helpers -------------------------------------------------------------------------------------------------

    def config(self, tmp_path=None, *extra_sets: str):
        cls = MODELS.get(self.model_key)
        tiny = REPO / "experiments" / self.model_key / "tiny.yaml"
        assert tiny.is_file(), f"every model ships {tiny}"
        sets = list(self.sets) + list(extra_sets)
        if tmp_path is not None:
            sets.append(f"train.run_dir={tmp_path}")
        return resolve_config(self.model_key, self.data_key, cls.config_class, [tiny], sets)

    def build(self):
        config = self.config()
        datamodule = VideoDataModule(config.data, config.train.batch_size, config.train.seed)
        torch.manual_seed(0)
        return build_model(config, datamodule), datamodule

    def reloaded(self, trained):
        """The trained fit's result and its last checkpoint loaded back, checked to hold the same step and weights
        bit for bit (each model's round-trip test then compares what it generates)."""
        _, result = trained
        loaded = load_model(result.run_dir / "checkpoints" / "last.ckpt", expected=self.model_key)
        assert loaded.iteration == result.model.iteration
        for (name, a), b in zip(result.model.state_dict().items(), loaded.state_dict().values()):
            torch.testing.assert_close(a.cpu(), b, rtol=0, atol=0, msg=f"{name} differs after the round trip")
        return result, loaded

    def check_forward(self, model, batch) -> None:
        """Model-specific forward-shape checks; override in the model's test."""

    @pytest.fixture(scope="class")
    def trained(self, tmp_path_factory):
        """A real `fit` of the tiny config (a few steps) and its checkpoint."""
        run_dir = tmp_path_factory.mktemp(f"{self.model_key}-run")
        config = self.config(run_dir)
        torch.manual_seed(config.train.seed)
        initial, _ = self.build()
        result = fit(config)
        return initial, result

    # -- the contract ----------------------------------------------------------------------------------------------

    def test_sample_shape_dtype_range(self):
        model, datamodule = self.build()
        spec = model.spec
        videos = model.sample(3, generator=torch.Generator().manual_seed(0))
        assert videos.shape == (3, spec.channels, spec.frames, spec.resolution, spec.resolution)
        assert videos.dtype == torch.float32
        assert torch.isfinite(videos).all()
        assert videos.min() >= -1.0 and videos.max() <= 1.0

    def test_labels_only_for_class_conditional_models(self):
        """`label_classes` is the contract: 0 refuses labels (never silently ignored), > 0 takes them."""
        model, _ = self.build()
        labels = torch.zeros(2, dtype=torch.long)
        if model.label_classes == 0:
            with pytest.raises(ZooError, match="unconditional"):
                model.sample(2, labels=labels, generator=torch.Generator().manual_seed(0))
        else:
            assert model.sample(2, labels=labels, generator=torch.Generator().manual_seed(0)).shape[0] == 2

    def test_same_seed_same_samples(self):
        model, _ = self.build()
        a = model.sample(2, generator=torch.Generator().manual_seed(123))
        b = model.sample(2, generator=torch.Generator().manual_seed(123))
        c = model.sample(2, generator=torch.Generator().manual_seed(124))
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert not torch.equal(a, c), "different seeds must give different samples"

    def test_sample_leaves_training_mode_and_global_rng_alone(self):
        """`sample()` restores every submodule's train/eval mode and, given a generator, draws nothing from the global
        RNG (evaluation and sample grids must not perturb the training run's random stream)."""
        model, _ = self.build()
        for mode in (True, False):
            model.train(mode)
            modes = {name: m.training for name, m in model.named_modules()}
            rng = torch.get_rng_state()
            model.sample(2, generator=torch.Generator().manual_seed(0))
            assert {name: m.training for name, m in model.named_modules()} == modes, f"sample() changed modes ({mode})"
            assert torch.equal(torch.get_rng_state(), rng), "sample(generator=...) consumed the global RNG"

    def test_forward_shapes(self):
        model, datamodule = self.build()
        batch = next(iter(datamodule.train_dataloader()))  # what Lightning does: load, transfer, convert
        self.check_forward(model, datamodule.on_after_batch_transfer(batch, 0))

    def test_training_updates_weights_without_nan(self, trained):
        """Most trainable parameters change (not buffers: BatchNorm statistics and EMA copies move even at lr 0) and
        nothing becomes NaN."""
        initial, result = trained
        model = result.model
        assert model.iteration == result_steps(model), "fit must stop at train.max_steps"
        for name, after in model.state_dict().items():
            assert torch.isfinite(after.float()).all(), f"{name} is not finite after training"
        before = dict(initial.named_parameters())
        trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        assert trainable, "the model has no trainable parameter"
        unchanged = [name for name, p in trainable if torch.equal(before[name], p.detach().cpu())]
        assert len(unchanged) <= len(trainable) // 2, f"{len(unchanged)} of {len(trainable)} trainable parameters " \
            f"did not change: {unchanged[:8]}"

    def test_resume_continues_exactly(self, trained, tmp_path):
        """Half the steps, then `--resume` to the end, gives the straight run's trainable parameters bit for bit, and
        they differ from the half-way ones (the resumed run really trained on instead of stopping or restarting)."""
        _, straight = trained
        steps = result_steps(straight.model)
        half = fit(self.config(tmp_path, f"train.max_steps={steps // 2}")).model
        resumed = fit(self.config(tmp_path), resume=True).model
        assert resumed.iteration == steps
        halfway = {name: p.detach().clone() for name, p in half.named_parameters()}
        moved = 0
        for (name, a), b in zip(straight.model.named_parameters(), resumed.parameters()):
            assert torch.equal(a, b), f"{name} differs between straight and resumed training"
            moved += a.requires_grad and not torch.equal(a, halfway[name])
        assert moved > 0, "the resumed run did not change any trainable parameter after the half-way checkpoint"

    def test_checkpoint_round_trip(self, trained):
        result, loaded = self.reloaded(trained)
        a = result.model.sample(2, generator=torch.Generator().manual_seed(5))
        b = loaded.sample(2, generator=torch.Generator().manual_seed(5))
        torch.testing.assert_close(a.cpu(), b, rtol=0, atol=0)

    def test_checkpoint_of_another_model_is_rejected(self, trained):
        _, result = trained
        other = next(k for k in MODELS.keys() if k != self.model_key) if len(MODELS.keys()) > 1 else "not_a_model"
        with pytest.raises(ZooError, match=self.model_key):
            load_model(result.run_dir / "checkpoints" / "last.ckpt", expected=other)


def result_steps(model) -> int:
    return model.experiment["train"]["max_steps"]
