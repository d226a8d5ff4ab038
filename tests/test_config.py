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
    assert config.train.max_steps == 300


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
