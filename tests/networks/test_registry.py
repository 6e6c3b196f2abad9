"""Named configurations behind one constructor, and weights folders that describe themselves (config.json)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

from liveportrait.errors import WeightsError
from liveportrait.networks import LivePortraitNetworks, ModelConfig, create_model, list_models, register_model
from liveportrait.networks.checkpoint import MODULES, convert_to_safetensors, resolve_layout
from liveportrait.networks.config import MODEL_CONFIGS, MotionConfig


def outputs(nets: LivePortraitNetworks) -> dict[str, torch.Tensor]:
    """Every network's output on fixed inputs, flattened to named tensors."""
    g = torch.Generator().manual_seed(1)
    c = nets.config
    img = torch.rand(1, 3, 256, 256, generator=g)
    kp = torch.randn(1, c.motion.num_kp, 3, generator=g) * 0.3
    with torch.no_grad():
        feat = nets.F(img)
        out = {"F": feat}
        out |= {f"M.{k}": v for k, v in vars(nets.M(img)).items()}
        w = nets.W(feat, kp_driving=kp + 0.01, kp_source=kp)
        out |= {f"W.{k}": v for k, v in vars(w).items()}
        out["G"] = nets.G(w.out)
        out["S"] = nets.S.stitching(torch.randn(1, c.stitching.stitching.input_size, generator=g))
    return out


def assert_identical(a: LivePortraitNetworks, b: LivePortraitNetworks) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k
    oa, ob = outputs(a), outputs(b)
    assert oa.keys() == ob.keys()
    for k in oa:
        assert torch.equal(oa[k], ob[k]), k


def test_registry_names_the_presets():
    assert list_models()[:3] == ["released", "animal", "tiny"]
    assert create_model("tiny").config == ModelConfig.tiny()
    with torch.device("meta"):  # full size: nothing allocated
        assert create_model().config == ModelConfig.released() == ModelConfig.named("animal")
        assert create_model().model_name == "released"
        assert create_model("animal").model_name == "animal"  # same architecture, its own name
    assert LivePortraitNetworks.from_config(ModelConfig.tiny()).model_name == "tiny"
    with pytest.raises(ValueError, match=r"unknown model config 'huge'.*'released', 'animal', 'tiny'"):
        create_model("huge")
    with pytest.raises(ValueError, match="already registered"):
        register_model("tiny", ModelConfig.tiny)


def test_a_registered_config_is_created_by_name(monkeypatch):
    narrow = dataclasses.replace(ModelConfig.tiny(), motion=MotionConfig(depths=(1, 1, 1, 1), dims=(4, 8, 8, 16)))
    monkeypatch.setitem(MODEL_CONFIGS, "test-narrow-motion", lambda: narrow)
    assert "test-narrow-motion" in list_models()
    nets = create_model("test-narrow-motion")
    assert nets.config == narrow and nets.model_name == "test-narrow-motion"
    assert nets.M.detector.downsample_layers[0][0].weight.shape[0] == 4


def test_config_dict_round_trip_and_refusals():
    tiny = ModelConfig.tiny()
    assert ModelConfig.from_dict(json.loads(json.dumps(tiny.to_dict()))) == tiny
    assert ModelConfig.from_dict({}) == ModelConfig.released()  # absent fields take the defaults
    with pytest.raises(ValueError, match=r"config\.warping\.dense_motion: unknown field\(s\) kernel"):
        ModelConfig.from_dict({"warping": {"dense_motion": {"kernel": 3}}})
    with pytest.raises(ValueError, match="reshape_channel"):  # the configuration's own checks still apply
        ModelConfig.from_dict({"appearance": {"reshape_channel": 16}})


def test_save_pretrained_round_trip(tmp_path):
    torch.manual_seed(3)
    nets = create_model("tiny")
    written = nets.save_pretrained(tmp_path / "w")
    layout = resolve_layout(tmp_path / "w")
    assert all(layout.file(m).suffix == ".safetensors" for m in MODULES)
    assert sorted(p.name for p in written) == sorted([f"{m}.safetensors" for m in MODULES] + ["config.json"])
    described = json.loads((tmp_path / "w" / "base_models" / "config.json").read_text())
    assert described["format"] == "liveportrait" and described["name"] == "tiny"
    assert ModelConfig.from_dict(described["config"]) == ModelConfig.tiny()
    loaded = LivePortraitNetworks.from_pretrained(tmp_path / "w", locate=False)  # no config given: config.json
    assert loaded.config == ModelConfig.tiny() and loaded.model_name == "tiny"
    assert_identical(nets, loaded)


def test_config_json_is_read_instead_of_the_widths(tmp_path):
    """A configuration no preset has (tiny with a wider S) loads from its config.json alone; guessing from F's
    width would pick tiny and fail on S."""
    base = ModelConfig.tiny()
    from liveportrait.networks.config import MLPConfig, StitchingConfig

    custom = ModelConfig(base.appearance, base.motion, base.warping, base.generator,
                         StitchingConfig(MLPConfig(126, (32,), 65), MLPConfig(65, (16,), 63), MLPConfig(66, (16,), 63)))
    torch.manual_seed(4)
    nets = LivePortraitNetworks.from_config(custom)
    assert nets.model_name is None
    nets.save_pretrained(tmp_path / "w")
    assert json.loads((tmp_path / "w" / "base_models" / "config.json").read_text())["name"] is None
    loaded = LivePortraitNetworks.from_pretrained(tmp_path / "w", locate=False)
    assert loaded.config == custom
    assert_identical(nets, loaded)
    (tmp_path / "w" / "base_models" / "config.json").unlink()
    with pytest.raises(WeightsError, match="stitching.mlp"):
        LivePortraitNetworks.from_pretrained(tmp_path / "w", locate=False)


def test_config_json_naming_another_architecture_is_one_clear_error(tmp_path):
    create_model("tiny").save_pretrained(tmp_path / "w")
    path = tmp_path / "w" / "base_models" / "config.json"
    path.write_text(json.dumps({"format": "liveportrait", "name": "released"}))
    with pytest.raises(WeightsError) as err:
        LivePortraitNetworks.from_pretrained(tmp_path / "w", locate=False)
    msg = str(err.value)
    assert "config.json describes the 'released' architecture" in msg
    assert "tensor 'first.conv.weight' has shape (8, 3, 3, 3), expected (64, 3, 3, 3)" in msg


@pytest.mark.parametrize("text, match", [
    ("{not json", "not a readable config.json"),
    ('{"name": "tiny"}', 'not a liveportrait model config'),
    ('{"format": "liveportrait", "name": "huge"}', "unknown model config 'huge'"),
    ('{"format": "liveportrait", "config": {"motion": {"num_kp": 15}}}', "agree on the number of keypoints"),
])
def test_bad_config_json_is_a_weights_error(tmp_path, text, match):
    create_model("tiny").save_pretrained(tmp_path / "w")
    (tmp_path / "w" / "base_models" / "config.json").write_text(text)
    with pytest.raises(WeightsError, match=match):
        LivePortraitNetworks.from_pretrained(tmp_path / "w", locate=False)


def test_released_folder_without_config_json_still_infers(tiny_weights):
    assert not (tiny_weights / "base_models" / "config.json").exists()
    nets = LivePortraitNetworks.from_pretrained(tiny_weights, locate=False)
    assert nets.config == ModelConfig.tiny() and nets.model_name == "tiny"
    torch.manual_seed(0)  # the seed the fixture was made with
    assert_identical(nets, create_model("tiny"))


def test_convert_writes_config_json(tiny_weights, tmp_path):
    written = convert_to_safetensors(resolve_layout(tiny_weights), tmp_path / "st")
    assert written[-1] == tmp_path / "st" / "base_models" / "config.json"
    assert json.loads(written[-1].read_text())["name"] == "tiny"
    assert_identical(LivePortraitNetworks.from_pretrained(tmp_path / "st", locate=False),
                     LivePortraitNetworks.from_pretrained(tiny_weights, locate=False))


def test_convert_names_the_animal_release(tiny_weights, tmp_path, monkeypatch):
    root = tmp_path / "pretrained_weights"
    shutil.copytree(tiny_weights, root / "liveportrait")
    shutil.copytree(tiny_weights / "base_models", root / "liveportrait_animals" / "base_models_v1.1")
    from liveportrait.cli import main

    assert main(["convert", str(root), "--animal", "-o", str(tmp_path / "tiny")]) == 0
    # tiny widths are tiny's, whatever the folder
    assert json.loads((tmp_path / "tiny" / "base_models_v1.1" / "config.json").read_text())["name"] == "tiny"
    # where the animal preset has these widths (as the released animal weights have released ones), it is named
    monkeypatch.setitem(MODEL_CONFIGS, "animal", ModelConfig.tiny)
    assert main(["convert", str(root), "--animal", "-o", str(tmp_path / "animal")]) == 0
    assert json.loads((tmp_path / "animal" / "base_models_v1.1" / "config.json").read_text())["name"] == "animal"
    nets = LivePortraitNetworks.from_pretrained(tmp_path / "animal", animal=True, locate=False)
    assert nets.model_name == "animal" and nets.config == ModelConfig.tiny()
    assert_identical(nets, LivePortraitNetworks.from_pretrained(tiny_weights, locate=False))
