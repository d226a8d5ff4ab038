"""Settings inside every declared range that used to crash the first training step (or that a float32 cannot hold)
are refused when the config is resolved, in one line naming the fields, before any file is written."""

import importlib.util

import pytest

from tests.conftest import REPO
from zoo.config import resolve_config
from zoo.errors import ZooError
from zoo.registry import MODELS, load_all
from zoo.training import fit

load_all()


def resolve(model: str, *sets: str):
    tiny = REPO / "experiments" / model / "tiny.yaml"
    return resolve_config(model, "shapes", MODELS.get(model).config_class, [tiny], list(sets))


# StyleGAN-V tiny: data.frames 3, 32 px, max_distance = sparse_max_distance = 8, channel_base 256, channel_max 32,
# batch 4; each of these crashed step 0 with an IndexError / ValueError / RuntimeError / ZeroDivisionError
REFUSED = [
    ("stylegan_v", ["model.max_num_frames=2"], r"model\.max_num_frames = 2 is too small: .* at least 8"),
    ("stylegan_v", ["model.max_num_frames=7"], r"model\.max_num_frames = 7 is too small"),
    ("stylegan_v", ["model.max_num_frames=9", "data.sparse_max_distance=16"], r"max_num_frames = 9 .* at least 16"),
    ("stylegan_v", ["model.max_distance=1"], r"model\.max_distance = 1 cannot span 3 distinct frames"),
    ("stylegan_v", ["model.mbstd_group_size=3"], r"model\.mbstd_group_size = 3 must divide train\.batch_size = 4"),
    ("stylegan_v", ["model.channel_max=1"], r"width at model\.concat_res = 16 is 1 .* below model\.frames_div_factor"),
    ("stylegan_v", ["model.frames_div_factor=64"], r"below model\.frames_div_factor = 64"),
    ("stylegan_v", ["model.channel_base=16"], r"model\.channel_base = 16 leaves no channels at 32 px"),
    ("gated_pixelcnn", ["model.first_kernel=4"], r"model\.first_kernel = 4 must be odd for gated_pixelcnn"),
    ("gated_pixelcnn", ["model.kernel=2"], r"model\.kernel = 2 must be odd"),
    ("tgan2", ["model.eps=1e-50"], r"model\.eps = 1e-50 is beyond what a float32 .* can hold"),
    ("mocogan", ["model.lr=1e-40"], r"model\.lr = 1e-40 is beyond what a float32"),
]


@pytest.mark.parametrize("model, sets, message", REFUSED, ids=[" ".join(s) for _, s, _ in REFUSED])
def test_refused_when_resolved(model, sets, message):
    with pytest.raises(ZooError, match=message) as e:
        resolve(model, *sets)
    assert "\n" not in str(e.value)


def test_values_at_the_limits_resolve():
    resolve("tgan2", "model.eps=1e-37")  # a normal float32
    resolve("stylegan_v", "model.mbstd_group_size=8")  # a group larger than the batch is the whole batch
    resolve("gated_pixelcnn", "model.first_kernel=5", "model.kernel=1")


def test_stylegan_v_at_every_limit_trains_a_step(tmp_path):
    # the constraints are exact, not just safe: each setting at its limit at once trains
    config = resolve("stylegan_v", "model.max_num_frames=8", "model.channel_base=32", "model.channel_max=2",
                     "model.mbstd_group_size=2", "model.max_distance=8", f"train.run_dir={tmp_path / 'run'}",
                     "train.max_steps=1", "train.accelerator=cpu", "data.num_videos=8")
    assert fit(config).model.iteration == 1


def test_strategy_lightning_cannot_run_is_one_line_before_any_file(tmp_path):
    if importlib.util.find_spec("deepspeed") is not None:
        pytest.skip("deepspeed is installed here")
    run_dir = tmp_path / "run"
    config = resolve("mocogan", f"train.run_dir={run_dir}", "train.strategy=deepspeed", "train.max_steps=1",
                     "data.num_videos=8")
    with pytest.raises(ZooError, match=r"cannot run --strategy deepspeed .*: To use the `DeepSpeedStrategy`, you must "
                                       r"have DeepSpeed installed") as e:
        fit(config)
    assert "\n" not in str(e.value)
    assert not run_dir.exists()
