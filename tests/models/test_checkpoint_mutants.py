"""Checkpoint loading (zoo/models/base.py) checked in-process against files written here by hand (issue 19).

The older checkpoint tests (tests/test_safety.py, the model contract) reach `load_model` through a real `zoo fit`
run, too slow to repeat per mutant; these build the checkpoint dict the way Lightning stores it (`state_dict` plus
the zoo record) with `torch.save`, so every expectation (restored tensors, iteration, the exact one-line message) is
written here, not produced by the loader.
"""

import dataclasses
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from zoo.errors import ZooError
from zoo.models.base import (
    VideoSpec,
    check_state_dict,
    checkpoint_meta,
    load_model,
    model_from_meta,
    read_checkpoint,
    state_dict_mismatch,
)
from zoo.registry import MODELS

SPEC = VideoSpec(channels=3, frames=8, resolution=32, num_classes=0)


def _tiny_mocogan():
    cls = MODELS.get("mocogan")
    config = dataclasses.replace(cls.config_class(), ngf=8, ndf=8, image_batch_size=4)
    torch.manual_seed(0)
    return cls(config, SPEC), config


def _record(config, **kw) -> dict:
    record = {"model_name": "mocogan", "model_config": dataclasses.asdict(config), "spec": dataclasses.asdict(SPEC),
              "iteration": 7, "experiment": {"note": "hand-written"}, "zoo_version": "0.1.0"}
    record.update(kw)
    return record


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A checkpoint of a tiny MoCoGAN whose every weight is set to a value drawn here (not its initialisation)."""
    model, config = _tiny_mocogan()
    gen = torch.Generator().manual_seed(123)
    state = {k: torch.randn(v.shape, generator=gen).to(v.dtype) if v.is_floating_point() else v + 3
             for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("ckpt") / "hand.ckpt"
    torch.save({"state_dict": state, "zoo": _record(config)}, path)
    return {"path": path, "state": state, "config": config}


def test_load_model_restores_every_weight_the_record_and_eval_mode(saved):
    model = load_model(saved["path"], expected="mocogan")
    restored = model.state_dict()
    assert set(restored) == set(saved["state"])
    for k, v in saved["state"].items():
        assert torch.equal(restored[k], v), k
    assert model.iteration == 7 and model.experiment == {"note": "hand-written"}
    assert not model.training and not any(m.training for m in model.modules())
    assert model.config == saved["config"] and model.spec == SPEC
    on_meta = load_model(saved["path"], map_location="meta")
    assert all(p.device.type == "meta" for p in on_meta.parameters())


def test_load_model_refuses_another_models_checkpoint(saved):
    with pytest.raises(ZooError, match=r"hand\.ckpt holds a 'mocogan' model, not 'videogpt'$"):
        load_model(saved["path"], expected="videogpt")


def test_on_load_checkpoint_refuses_another_key_and_keeps_a_set_experiment(saved):
    model, config = _tiny_mocogan()
    with pytest.raises(ZooError, match=r"^checkpoint holds a 'tgan' model, not 'mocogan'$"):
        model.on_load_checkpoint({"zoo": _record(config, model_name="tgan")})
    model.experiment = {"train": {"max_steps": 9}}  # a resumed fit keeps its own config
    model.on_load_checkpoint({"zoo": _record(config, iteration="12")})
    assert model.iteration == 12 and isinstance(model.iteration, int)
    assert model.experiment == {"train": {"max_steps": 9}}


def test_read_checkpoint_messages_name_each_kind_of_unusable_file(saved, tmp_path):
    def message(path) -> str:
        with pytest.raises(ZooError) as e:
            read_checkpoint(path)
        assert "\n" not in str(e.value)
        return str(e.value)

    missing = tmp_path / "missing.ckpt"
    assert message(missing) == f"checkpoint {missing} does not exist"
    assert message(tmp_path) == f"checkpoint {tmp_path} is not a file"
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    assert message(empty).startswith(f"checkpoint {empty} is empty (0 bytes)")
    data = saved["path"].read_bytes()
    half = tmp_path / "half.ckpt"
    half.write_bytes(data[: len(data) // 2])
    assert message(half) == (f"checkpoint {half} is truncated or corrupt ({len(data) // 2} bytes, incomplete archive): "
                             "it was not written completely or was damaged in transfer; use another checkpoint")
    text = tmp_path / "text.ckpt"
    text.write_bytes(b"model: mocogan\n")
    assert message(text) == f"{text} is not a checkpoint (not a torch.save archive): was it written by `zoo fit`?"
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(b"\x80\x02")  # a pickle stream that stops after its protocol opcode: torch raises EOFError
    assert message(cut) == f"checkpoint {cut} is truncated (2 bytes): use another checkpoint"
    raw = tmp_path / "raw.ckpt"
    raw.write_bytes(pickle.dumps({}, protocol=2))
    assert message(raw) == (f"{raw} is a raw pickle, not a PyTorch checkpoint that can be loaded safely; video-zoo "
                            "checkpoints are written by `zoo fit`")
    listed = tmp_path / "list.ckpt"
    torch.save([torch.zeros(2)], listed)
    assert message(listed) == f"{listed} holds a list, not a video-zoo checkpoint; was it written by `zoo fit`?"
    hostile = tmp_path / "hostile.ckpt"
    torch.save({"state_dict": {}, "zoo": {"x": zipfile.ZipInfo("a")}}, hostile)  # any class outside the allow-list
    assert message(hostile) == (f"checkpoint {hostile} refers to the Python object zipfile.ZipInfo, which safe "
                                "(weights-only) loading refuses: loading it could run code. video-zoo checkpoints "
                                "hold only tensors and plain values; do not load this file")
    unreadable = Path("/proc/self/mem")  # a regular file whose first bytes cannot be read (EIO), even as root
    if unreadable.is_file():
        assert message(unreadable) == f"cannot read checkpoint {unreadable}: Input/output error"
    assert read_checkpoint(str(saved["path"]))["zoo"]["iteration"] == 7  # a str path works too


def test_checkpoint_meta_requires_a_non_empty_zoo_record():
    for bad in ({}, {"zoo": {}}, {"zoo": "mocogan"}, [1]):
        with pytest.raises(ZooError, match=r"^src is not a video-zoo checkpoint \(no 'zoo' record\)"):
            checkpoint_meta(bad, source="src")
    assert checkpoint_meta({"zoo": {"a": 1}}, source="src") == {"a": 1}


def test_state_dict_mismatch_names_missing_unexpected_and_reshaped_weights():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))  # weights 0.weight (3, 2), 0.bias (3,), 1.weight, 1.bias
    own = {k: v.clone() for k, v in model.state_dict().items()}
    assert state_dict_mismatch(model, own) is None
    state = dict(own, extra=torch.zeros(1))
    del state["1.bias"]
    state["0.weight"] = torch.zeros(2, 3)
    state["0.bias"] = "not a tensor"  # only tensors are compared by shape
    assert state_dict_mismatch(model, state) == ("missing weights 1.bias; unexpected weights extra; "
                                                 "different shapes (checkpoint vs model) 0.weight (2, 3) vs (3, 2)")
    assert state_dict_mismatch(model, {}) == "missing weights 0.weight, 0.bias, 1.weight (+1 more)"
    three = {k: v for k, v in own.items() if k != "1.bias"}
    assert state_dict_mismatch(model, dict(three, **{"a": 1, "b": 2, "c": 3})) == (
        "missing weights 1.bias; unexpected weights a, b, c")


def test_check_state_dict_refuses_absent_and_mismatched_weights():
    model = nn.Linear(2, 1)
    check_state_dict(model, {"state_dict": {k: v.clone() for k, v in model.state_dict().items()}}, "src")
    with pytest.raises(ZooError, match=r"^src has no state_dict of weights"):
        check_state_dict(model, {"state_dict": [1]}, "src")
    with pytest.raises(ZooError, match=r"^src: the weights do not match the architecture its config describes: "
                                       r"missing weights bias$"):
        check_state_dict(model, {"state_dict": {"weight": torch.zeros(1, 2)}}, "src")


def test_model_from_meta_builds_the_recorded_architecture_or_says_why_not(saved):
    config = saved["config"]
    model = model_from_meta(_record(config), "src")
    assert type(model) is MODELS.get("mocogan") and model.config == config and model.spec == SPEC
    cases = [
        (_record(config, model_name=None), r"^src has no model name in its 'zoo' record"),
        (_record(config, model_name="nope"), r"^src: unknown model 'nope'"),
        (_record(config, model_config={"ngf": "wide"}), r"^src records a config this version cannot use: "),
        (_record(config, spec={**dataclasses.asdict(SPEC), "depth": 2}),
         r"^src has an incomplete or foreign 'zoo' record \(TypeError: "),
        ({k: v for k, v in _record(config).items() if k != "spec"},
         r"^src has an incomplete or foreign 'zoo' record \(KeyError: 'spec'\)"),
        (_record(config, spec={**dataclasses.asdict(SPEC), "resolution": 7}),
         r"^src: cannot build the mocogan model its record describes: "),
    ]
    for meta, pattern in cases:
        with pytest.raises(ZooError, match=pattern):
            model_from_meta(meta, "src")


def test_on_save_checkpoint_writes_the_record_load_model_reads():
    model, config = _tiny_mocogan()
    model.iteration, model.experiment = 5, {"data": {"frames": 8}}
    checkpoint = {}
    model.on_save_checkpoint(checkpoint)
    assert checkpoint == {"zoo": _record(config, iteration=5, experiment={"data": {"frames": 8}})}


def test_load_model_names_the_file_in_every_refusal(saved, tmp_path):
    path = tmp_path / "bad.ckpt"
    cases = [
        ({"state_dict": {}}, f"{path} is not a video-zoo checkpoint (no 'zoo' record)"),
        ({"state_dict": {}, "zoo": {"model_name": 3}}, f"{path} has no model name in its 'zoo' record"),
        ({"state_dict": {"x": torch.zeros(1)}, "zoo": _record(saved["config"])},
         f"{path}: the weights do not match the architecture its config describes: missing weights "),
        ({"state_dict": {}, "zoo": _record(saved["config"], model_config={"ngf": "wide"})},
         f"{path} records a config this version cannot use: model.ngf"),
    ]
    for checkpoint, start in cases:
        torch.save(checkpoint, path)
        with pytest.raises(ZooError) as e:
            load_model(path)
        assert str(e.value).startswith(start), str(e.value)


def test_on_load_checkpoint_errors_and_defaults():
    model, config = _tiny_mocogan()
    with pytest.raises(ZooError, match=r"^checkpoint is not a video-zoo checkpoint \(no 'zoo' record\)"):
        model.on_load_checkpoint({"state_dict": {}})
    record = _record(config)
    del record["experiment"]  # older checkpoints: no experiment record
    model.on_load_checkpoint({"zoo": record})
    assert model.experiment == {} and model.iteration == 7


def test_model_from_meta_hands_the_record_to_the_model():
    """VideoGPT rebuilds its frozen VQ-VAE from the record (`from_checkpoint_meta` gets the whole meta)."""
    from zoo.models.videogpt.gpt import VideoGPTConfig
    from zoo.models.videogpt.vqvae import VQVAEConfig

    vq = dataclasses.replace(VQVAEConfig(), hidden_channels=32, residual_channels=16, residual_layers=1,
                             downsample=(2, 4, 4), codebook_size=64, embedding_dim=16)
    gpt = dataclasses.replace(VideoGPTConfig(), layers=1, heads=2, width=16, mlp_width=32)
    meta = {"model_name": "videogpt", "model_config": dataclasses.asdict(gpt), "spec": dataclasses.asdict(SPEC),
            "vqvae": {"model_config": dataclasses.asdict(vq), "spec": dataclasses.asdict(SPEC)}}
    model = model_from_meta(meta, "src")
    assert model.vqvae.config == vq and model.config.vqvae_ckpt is None
