import pytest

from zoo.errors import ZooError
from zoo.registry import DATASETS, MODELS, Registry, load_all


def test_register_and_lookup():
    registry = Registry("widget")

    @registry.register("small_widget", description="a widget", paper="Nobody 2024")
    class SmallWidget:
        pass

    assert registry.get("small_widget") is SmallWidget
    assert SmallWidget.registry_key == "small_widget"
    assert registry.keys() == ["small_widget"]
    assert registry.entry("small_widget").paper == "Nobody 2024"


@pytest.mark.parametrize("key", ["MoCoGAN", "2gan", "with-dash", "", "space key"])
def test_keys_must_be_lowercase_identifiers(key):
    with pytest.raises(ValueError, match="lowercase"):
        Registry("widget").register(key, description="x")


def test_keys_are_unique():
    registry = Registry("widget")
    registry.register("a", description="first")(type("A", (), {}))
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a", description="second")(type("B", (), {}))


def test_description_is_one_line():
    with pytest.raises(ValueError, match="one-line"):
        Registry("widget").register("a", description="two\nlines")


def test_unknown_key_lists_valid_ones():
    load_all()
    with pytest.raises(ZooError, match="unknown model 'gan9000'.*mocogan"):
        MODELS.get("gan9000")
    with pytest.raises(ZooError, match="valid datasets: .*shapes"):
        DATASETS.get("imagenet")


def test_every_model_has_description_and_paper():
    load_all()
    for entry in MODELS:
        assert entry.description and entry.paper, entry.key
        assert hasattr(entry.obj, "config_class")
