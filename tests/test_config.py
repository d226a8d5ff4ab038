import pytest
import yaml

from zoo.config import DataConfig, TrainConfig, config_from_dict, parse_set, resolve_config, update_dataclass
from zoo.errors import ZooError
from zoo.models.mocogan import MoCoGANConfig


def resolve(*files, sets=(), flags=None, data="shapes"):
    return resolve_config("mocogan", data, MoCoGANConfig, list(files), list(sets), flags)


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(content))
    return path


def test_defaults_are_the_dataclass_defaults_for_unknown_dataset_files(tmp_path):
    config = resolve(data="no_experiment_file_for_this")
    assert config.model == MoCoGANConfig()
    assert config.train == TrainConfig()
    assert config.data == DataConfig(name="no_experiment_file_for_this")


def test_experiment_file_overrides_defaults():
    config = resolve()  # experiments/mocogan/shapes.yaml
    assert config.model.categorical is True
    assert config.train.max_steps == 1200


def test_precedence_chain(tmp_path):
    """defaults < experiments yaml < --config (in order) < --set < flags."""
    first = write(tmp_path, "a.yaml", {"train": {"max_steps": 11, "batch_size": 5}, "model": {"ngf": 7}})
    second = write(tmp_path, "b.yaml", {"train": {"max_steps": 12}})
    config = resolve(first, second)
    assert (config.train.max_steps, config.train.batch_size, config.model.ngf) == (12, 5, 7)
    config = resolve(first, second, sets=["train.max_steps=13", "model.ngf=9"])
    assert (config.train.max_steps, config.model.ngf) == (13, 9)
    config = resolve(first, second, sets=["train.max_steps=13"], flags={"train": {"max_steps": 14, "seed": None}})
    assert config.train.max_steps == 14
    assert config.train.seed == TrainConfig().seed, "a flag left at None must not override"


def test_unknown_key_lists_valid_keys(tmp_path):
    bad = write(tmp_path, "bad.yaml", {"model": {"n_gf": 3}})
    with pytest.raises(ZooError, match=r"unknown key\(s\) model.n_gf; valid model keys: dim_z_content"):
        resolve(bad)
    with pytest.raises(ZooError, match="valid train keys"):
        resolve(sets=["train.epochs=3"])
    with pytest.raises(ZooError, match="unknown top-level"):
        resolve(write(tmp_path, "top.yaml", {"optimizer": {}}))
    with pytest.raises(ZooError, match="unknown section"):
        parse_set("trainer.max_steps=3")


def test_wrong_types_are_errors(tmp_path):
    with pytest.raises(ZooError, match="train.max_steps: expected an integer"):
        resolve(sets=["train.max_steps=many"])
    with pytest.raises(ZooError, match="model.categorical: expected true/false"):
        resolve(sets=["model.categorical=3"])
    with pytest.raises(ZooError, match="model.lr: expected a number"):
        resolve(sets=["model.lr=fast"])
    assert resolve(sets=["model.lr=1"]).model.lr == 1.0  # ints are fine where floats are expected
    assert resolve(sets=["data.root=null"]).data.root is None


def test_set_values_are_parsed_as_yaml():
    assert resolve(sets=["model.lr=1e-4"]).model.lr == 1e-4  # YAML 1.1 reads 1e-4 as a string
    assert parse_set("data.root=/a=b") == ("data", "root", "/a=b")


def test_yaml_is_loaded_safely(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("model: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ZooError, match="not valid YAML"):
        resolve(evil)


def test_missing_config_file():
    with pytest.raises(ZooError, match="does not exist"):
        resolve("/nonexistent/config.yaml")


def test_config_of_another_model_is_rejected(tmp_path):
    other = write(tmp_path, "other.yaml", {"model_name": "videogpt"})
    with pytest.raises(ZooError, match="for model 'videogpt'"):
        resolve(other)


def test_round_trip_through_saved_yaml():
    config = resolve(sets=["model.ngf=9", "data.frames=8"])
    again = config_from_dict(yaml.safe_load(config.to_yaml()), MoCoGANConfig)
    assert again == config
    assert again.config_hash() == config.config_hash()
    assert resolve(sets=["model.ngf=10"]).config_hash() != config.config_hash()


def test_update_dataclass_does_not_mutate():
    base = DataConfig()
    new = update_dataclass(base, {"frames": 4}, "data")
    assert base.frames == 16 and new.frames == 4


# -- valid ranges ------------------------------------------------------------------------------------------------

import dataclasses  # noqa: E402
import math  # noqa: E402
import typing  # noqa: E402

from zoo.config import Interval, check_ranges, describe_ranges, ranges_of, valid_ranges  # noqa: E402
from zoo.models.video_diffusion.module import VideoDiffusionConfig  # noqa: E402
from zoo.models.videogpt.gpt import VideoGPTConfig  # noqa: E402
from zoo.models.videogpt.vqvae import VQVAEConfig  # noqa: E402
from zoo.registry import MODELS, load_all  # noqa: E402

load_all()
COVERED = [("data", DataConfig), ("train", TrainConfig), ("model", MoCoGANConfig), ("model", VQVAEConfig),
           ("model", VideoGPTConfig), ("model", VideoDiffusionConfig)]
# strings that are free text or paths, not names from a fixed list
FREE_TEXT = {"name", "root", "run_dir", "split_dir", "annotations", "prepared", "index_cache", "vqvae_ckpt"}


def _is_numeric(annotation) -> bool:
    args = [a for a in typing.get_args(annotation) if a is not type(None) and a is not Ellipsis]
    return annotation in (int, float) or any(_is_numeric(a) for a in args)


@pytest.mark.parametrize("section,cls", COVERED, ids=[c.__name__ for _, c in COVERED])
def test_every_numeric_and_named_field_has_a_range(section, cls):
    hints = typing.get_type_hints(cls)
    table = ranges_of(cls)
    for f in dataclasses.fields(cls):
        if hints[f.name] is bool or f.name in FREE_TEXT:
            continue
        if _is_numeric(hints[f.name]) or hints[f.name] is str:
            assert f.name in table, f"{cls.__name__}.{f.name} has no declared valid range"


def test_declared_ranges_name_real_fields_and_contain_the_defaults():
    """Every registered model (present and future), plus data and train: a typo in a range table, or a paper default
    outside its own range, fails here rather than in a user's run."""
    classes = [DataConfig, TrainConfig] + [entry.obj.config_class for entry in MODELS]
    for cls in classes:
        names = {f.name for f in dataclasses.fields(cls)}
        assert set(ranges_of(cls)) <= names, f"{cls.__name__}: ranges for unknown fields {set(ranges_of(cls)) - names}"
        check_ranges(cls(), "model")


def _outside(check, annotation):
    """Values that must be refused for a field of type `annotation` declared with `check`."""
    if not isinstance(check, Interval):
        return ["not-a-valid-name"]
    out = []
    is_int = annotation is int or int in typing.get_args(annotation) or (
        typing.get_origin(annotation) is tuple and typing.get_args(annotation)[0] is int)
    if math.isfinite(check.low):
        out.append(int(check.low) - 1 if is_int else (check.low if not check.low_closed else check.low - 1e-3))
    if math.isfinite(check.high):
        out.append(int(check.high) + 1 if is_int else (check.high if not check.high_closed else check.high + 1e-3))
    if not is_int:
        out.append(float("nan"))
    return out


CASES = [(section, cls, name, bad) for section, cls in COVERED for name, check in ranges_of(cls).items()
         for bad in _outside(check, typing.get_type_hints(cls)[name])]


@pytest.mark.parametrize("section,cls,name,bad", CASES, ids=[f"{c.__name__}.{n}={b}" for _, c, n, b in CASES])
def test_out_of_range_values_are_refused_naming_field_value_and_range(section, cls, name, bad):
    default = getattr(cls(), name)
    value = (bad,) + tuple(default[1:]) if isinstance(default, tuple) else bad
    with pytest.raises(ZooError) as e:
        update_dataclass(cls(), {name: value}, section)
    message = str(e.value)
    assert f"{section}.{name} = " in message and "out of range; valid: " in message and "\n" not in message
    assert repr(bad) in message


def test_range_messages_read_well():
    with pytest.raises(ZooError, match=r"^train\.batch_size = 0 is out of range; valid: a number in \[1, 65536\] "
                                       r"\(videos per rank per step\)$"):
        update_dataclass(TrainConfig(), {"batch_size": 0}, "train")
    with pytest.raises(ZooError, match=r"data\.max_bad_fraction = nan is out of range; valid: a number in \[0, 1\]"):
        update_dataclass(DataConfig(), {"max_bad_fraction": float("nan")}, "data")
    with pytest.raises(ZooError, match=r"train\.precision = 'fp17' is out of range; valid: one of 32-true, "):
        update_dataclass(TrainConfig(), {"precision": "fp17"}, "train")
    with pytest.raises(ZooError, match=r"model\.lr = 0\.0 is out of range; valid: a number in \(0, 1\]"):
        update_dataclass(MoCoGANConfig(), {"lr": 0}, "model")
    with pytest.raises(ZooError, match=r"model\.channel_mults = \(1, 0\) \(element 0\) is out of range"):
        update_dataclass(VideoDiffusionConfig(), {"channel_mults": [1, 0]}, "model")


def test_range_errors_name_their_source_and_reach_the_cli_as_one_line(tmp_path, capsys):
    from zoo.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  checkpoint_every: 0\n")
    with pytest.raises(ZooError, match=rf"^{bad}: train\.checkpoint_every = 0 is out of range"):
        resolve_config("mocogan", "shapes", MoCoGANConfig, [bad])
    with pytest.raises(ZooError, match=r"^--set: model\.image_batch_size = 0 "):
        resolve_config("mocogan", "shapes", MoCoGANConfig, sets=["model.image_batch_size=0"])
    with pytest.raises(ZooError, match=r"^flags: data\.num_workers = -1 "):
        resolve_config("mocogan", "shapes", MoCoGANConfig, flags={"data": {"num_workers": -1}})
    for argv in (["--strategy", "ddp9"], ["--accelerator", "tpu9"], ["--frame-stride", "0"], ["--devices", "0"],
                 ["--set", "data.max_bad_fraction=.nan"], ["--set", "model.beta1=1.0"]):
        assert main(["fit", "--model", "mocogan", "--print-config", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "out of range; valid: " in err, err


def test_fields_without_a_range_are_not_checked():
    @valid_ranges(size="[1, 8]")
    @dataclasses.dataclass
    class Partly:
        size: int = 4  # declared
        free: float = -1e9  # not declared: anything of the right type

    @dataclasses.dataclass
    class Undeclared:
        anything: int = -5

    assert update_dataclass(Partly(), {"free": float("nan")}, "model").free != 0
    assert update_dataclass(Undeclared(), {"anything": -10**9}, "model").anything == -10**9
    with pytest.raises(ZooError, match="model.size = 9"):
        update_dataclass(Partly(), {"size": 9}, "model")
    with pytest.raises(TypeError):
        valid_ranges(size="1..8")
    assert ("model.size", "[1, 8]", "declared") in describe_ranges(Partly, "model")


def test_a_config_whose_batch_would_not_fit_in_memory_is_refused():
    flags = {"train": {"batch_size": 16}, "data": {"frames": 16, "extra_frames": 0}}
    with pytest.raises(ZooError, match=r"one training batch would take 12\.0 GiB .* over the 8 GiB limit"):
        flags["data"]["resolution"] = 2048  # 4 bytes x 16 x 3 x 16 x 2048^2 = 12 GiB
        resolve_config("mocogan", "shapes", MoCoGANConfig, flags=flags)
    flags["data"]["resolution"] = 1024  # 3 GiB: accepted
    resolve_config("mocogan", "shapes", MoCoGANConfig, flags=flags)


def test_a_config_check_of_the_model_itself_is_a_zoo_error():
    with pytest.raises(ZooError, match="powers of two"):
        update_dataclass(VQVAEConfig(), {"downsample": [3, 4, 4]}, "model")


def test_non_utf8_yaml_is_one_line(tmp_path):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("train:\n  max_steps: 5 # r\xe9sum\xe9\n".encode("latin-1"))
    with pytest.raises(ZooError, match=r"is not UTF-8 text \(byte 0xe9 at offset \d+\)"):
        resolve_config("mocogan", "shapes", MoCoGANConfig, [bad])
    binary = tmp_path / "model.yaml"
    binary.write_bytes(b"\x80\x04\x95" + bytes(range(256)))
    with pytest.raises(ZooError, match="not UTF-8 text"):
        resolve_config("mocogan", "shapes", MoCoGANConfig, [binary])


def test_the_safety_page_lists_the_data_and_train_ranges_the_code_checks():
    """docs/safety.md's valid-ranges table (moved there from the README) is the code's, row for row."""
    from tests.conftest import REPO

    text = (REPO / "docs" / "safety.md").read_text()
    assert text.count("<!-- ranges:begin -->") == 1 and text.count("<!-- ranges:end -->") == 1
    block = text.split("<!-- ranges:begin -->")[1].split("<!-- ranges:end -->")[0]
    documented = [line.strip() for line in block.strip().splitlines()[2:]]
    expected = [f"| `{name}` | {valid} |" for cls, section in ((DataConfig, "data"), (TrainConfig, "train"))
                for name, valid, _ in describe_ranges(cls, section)]
    assert len(expected) > 20  # every data and train field with a range: the table cannot pass by being empty
    assert documented == expected
