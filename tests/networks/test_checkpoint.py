"""Loading the released layout strictly and safely, converting it, and finding it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from liveportrait.errors import UnsafeFileError, WeightsError
from liveportrait.networks import LivePortraitNetworks, ModelConfig
from liveportrait.networks.checkpoint import (
    ENV_CACHE,
    ENV_WEIGHTS,
    MODULES,
    convert_to_safetensors,
    download_weights,
    locate_weights,
    read_state_dict,
    resolve_layout,
)


def tiny_from(path: Path) -> LivePortraitNetworks:
    return LivePortraitNetworks.from_pretrained(path, ModelConfig.tiny(), locate=False)


@pytest.fixture
def tiny_copy(tiny_weights, tmp_path) -> Path:
    dst = tmp_path / "weights"
    shutil.copytree(tiny_weights, dst)
    return dst


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_released_layout_round_trip(tiny_weights):
    torch.manual_seed(0)
    expected = LivePortraitNetworks(ModelConfig.tiny())
    assert_same_weights(tiny_from(tiny_weights), expected)


def test_stitching_file_has_released_structure(tiny_weights):
    obj = torch.load(tiny_weights / "retargeting_models" / "stitching_retargeting_module.pth", weights_only=True)
    assert set(obj) == {"retarget_shoulder", "retarget_mouth", "retarget_eye"}
    assert all(k.startswith("module.mlp.") for k in obj["retarget_eye"])


def _edit_checkpoint(path: Path, edit) -> None:
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, path)


@pytest.mark.parametrize("change", ["rename", "remove", "reshape"])
def test_damaged_base_checkpoint_names_the_tensor(tiny_copy, change):
    path = tiny_copy / "base_models" / "warping_module.pth"
    key = "dense_motion_network.mask.weight"

    def edit(state):
        if change == "rename":
            state["dense_motion_network.mask.weights"] = state.pop(key)
        elif change == "remove":
            del state[key]
        else:
            state[key] = state[key][:, :, :1]

    _edit_checkpoint(path, edit)
    with pytest.raises(WeightsError) as info:
        tiny_from(tiny_copy)
    msg = str(info.value)
    assert "warping_module.pth" in msg and f"'{key}'" in msg
    if change == "rename":
        assert "unexpected tensor 'dense_motion_network.mask.weights'" in msg
    if change == "reshape":
        assert "has shape" in msg


def test_damaged_stitching_checkpoint_names_the_tensor(tiny_copy):
    path = tiny_copy / "retargeting_models" / "stitching_retargeting_module.pth"
    _edit_checkpoint(path, lambda s: s["retarget_mouth"].pop("module.mlp.2.bias"))
    with pytest.raises(WeightsError, match=r"missing tensor 'lip\.mlp\.2\.bias'"):
        tiny_from(tiny_copy)


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused(tiny_copy, tmp_path):
    marker = tmp_path / "pwned"
    path = tiny_copy / "base_models" / "appearance_feature_extractor.pth"
    state = torch.load(path, weights_only=True)
    state["evil"] = _Payload(marker)
    torch.save(state, path)
    with pytest.raises(UnsafeFileError, match="refused"):
        tiny_from(tiny_copy)
    assert not marker.exists()


@pytest.mark.parametrize("payload", ["call", "class", "legacy_pickle"])
def test_cli_refuses_a_checkpoint_that_would_run_code_in_one_line(tiny_copy, tmp_path, payload):
    """`liveportrait convert` on a hostile .pth: exit 5, one line naming the file and what it holds, and no
    hint at torch's unsafe workaround (re-running with weights_only=False)."""
    import argparse
    import pickle
    import subprocess
    import sys

    marker = tmp_path / "pwned"
    path = tiny_copy / "base_models" / "motion_extractor.pth"
    state = torch.load(path, weights_only=True)
    if payload == "call":
        state["evil"] = _Payload(marker)
        torch.save(state, path)
    elif payload == "class":
        state["evil"] = argparse.Namespace(x=1)
        torch.save(state, path)
    else:  # a plain (non-zip) pickle, as old checkpoints were written
        path.write_bytes(pickle.dumps({"evil": _Payload(marker)}, protocol=4))
    proc = subprocess.run([sys.executable, "-m", "liveportrait.cli", "convert", str(tiny_copy), "-o",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    err = proc.stderr
    assert proc.returncode == UnsafeFileError.exit_code == 5, err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}: refused to load"), err
    assert "weights_only" not in err and "False" not in err and "\x1b" not in err
    assert {"call": "posix.system", "class": "argparse.Namespace", "legacy_pickle": "other than tensors"}[payload] \
        in err.replace("os.system", "posix.system").replace("nt.system", "posix.system")
    assert not marker.exists() and proc.stdout == ""
    # motion_extractor is the second module: the first one converted must not be left behind either
    assert not (tmp_path / "out").exists()


def test_training_checkpoint_and_backbone_that_would_run_code_are_refused(tmp_path):
    from liveportrait.train.backbones import _read_state
    from liveportrait.train.checkpointing import load_checkpoint

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "liveportrait-train/1", "evil": _Payload(marker)}, path)
    for load in (load_checkpoint, _read_state):
        with pytest.raises(UnsafeFileError) as info:
            load(path)
        msg = str(info.value)
        assert msg.startswith(f"{path}: refused to load") and "system" in msg and "\n" not in msg
        assert "weights_only" not in msg and "False" not in msg
    assert not marker.exists()


def test_corrupt_checkpoint_is_a_clear_error(tiny_copy):
    path = tiny_copy / "base_models" / "spade_generator.pth"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="spade_generator.pth: not a readable checkpoint"):
        tiny_from(tiny_copy)


def test_safetensors_conversion_loads_identically(tiny_weights, tmp_path):
    written = convert_to_safetensors(resolve_layout(tiny_weights), tmp_path / "st")
    assert [p.suffix for p in written] == [".safetensors"] * len(MODULES) + [".json"]  # and config.json
    layout = resolve_layout(tmp_path / "st")
    assert all(layout.file(m).suffix == ".safetensors" for m in MODULES)
    assert_same_weights(tiny_from(tmp_path / "st"), tiny_from(tiny_weights))


def test_convert_command(tiny_weights, tmp_path):
    from liveportrait.cli import main

    assert main(["convert", str(tiny_weights), "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "retargeting_models" / "stitching_retargeting_module.safetensors").is_file()


def test_hub_root_and_animal_layouts(tiny_weights, tmp_path):
    root = tmp_path / "pretrained_weights"
    shutil.copytree(tiny_weights, root / "liveportrait")
    shutil.copytree(tiny_weights / "base_models", root / "liveportrait_animals" / "base_models_v1.1")
    human = resolve_layout(root)
    assert human.base_dir == root / "liveportrait" / "base_models" and not human.missing()
    animal = resolve_layout(root, animal=True)
    assert animal.base_dir == root / "liveportrait_animals" / "base_models_v1.1"
    assert animal.retargeting_dir == root / "liveportrait" / "retargeting_models" and not animal.missing()
    LivePortraitNetworks.from_pretrained(root, ModelConfig.tiny(), animal=True, locate=False)


def test_first_animal_release_is_read_when_v1_1_is_absent(tiny_weights, tmp_path):
    """Users who fetched the animals before 2025 have liveportrait_animals/base_models (v1.0) only."""
    root = tmp_path / "pretrained_weights"
    shutil.copytree(tiny_weights, root / "liveportrait")
    v1_0 = root / "liveportrait_animals" / "base_models"
    shutil.copytree(tiny_weights / "base_models", v1_0)
    layout = resolve_layout(root, animal=True)
    assert layout.base_dir == v1_0 and not layout.missing()
    assert resolve_layout(root / "liveportrait_animals", animal=True).base_dir == v1_0
    LivePortraitNetworks.from_pretrained(root, ModelConfig.tiny(), animal=True, locate=False)
    # v1.1 wins once it is complete; a partial v1.1 does not shadow a complete v1.0
    v1_1 = root / "liveportrait_animals" / "base_models_v1.1"
    v1_1.mkdir()
    shutil.copy(tiny_weights / "base_models" / "warping_module.pth", v1_1)
    assert resolve_layout(root, animal=True).base_dir == v1_0
    shutil.rmtree(v1_1)
    shutil.copytree(tiny_weights / "base_models", v1_1)
    assert resolve_layout(root, animal=True).base_dir == v1_1


def test_missing_animal_weights_name_the_current_release(tiny_weights, tmp_path):
    root = tmp_path / "pretrained_weights"
    shutil.copytree(tiny_weights, root / "liveportrait")
    missing = resolve_layout(root, animal=True).missing()
    assert missing and all(p.parent == root / "liveportrait_animals" / "base_models_v1.1" for p in missing)


def test_search_order(tiny_weights, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv(ENV_CACHE, str(cache))
    monkeypatch.delenv(ENV_WEIGHTS, raising=False)
    with pytest.raises(WeightsError, match="liveportrait download"):
        locate_weights()
    shutil.copytree(tiny_weights, cache / "liveportrait")
    assert locate_weights().base_dir == cache / "liveportrait" / "base_models"
    env_dir = tmp_path / "env"
    shutil.copytree(tiny_weights, env_dir)
    monkeypatch.setenv(ENV_WEIGHTS, str(env_dir))
    assert locate_weights().base_dir == env_dir / "base_models"
    assert locate_weights(tiny_weights).base_dir == tiny_weights / "base_models"
    # an explicit folder that is incomplete is an error, not a silent fall-back to the cache
    with pytest.raises(WeightsError, match=str(tmp_path / "empty")):
        locate_weights(tmp_path / "empty")


def test_offline_download_says_what_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError) as info:
        download_weights(tmp_path / "dl")
    msg = str(info.value)
    assert "KwaiVGI/LivePortrait" in msg and str(tmp_path / "dl") in msg
    assert "base_models/motion_extractor.pth" in msg and "--weights" in msg


def test_download_command_offline_exit_code(tmp_path, monkeypatch, capsys):
    from liveportrait.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    kept = tmp_path / "kept"
    kept.mkdir()
    for args in (["download", "--dest", str(tmp_path / "dl" / "weights")], ["download", "--audio", "--dest",
                 str(tmp_path / "audio")], ["download", "--dest", str(kept)]):
        assert main(args) == WeightsError.exit_code
        err = capsys.readouterr().err
        assert err.startswith("error: could not download") and "Traceback" not in err
    # the folders a failed download made are gone (an empty DIR was left before); one the user had stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]


def test_day_old_part_files_of_killed_runs_are_swept_when_the_next_output_is_written(tmp_path):
    """A SIGKILLed run leaves its hidden .NAME.XXXXXXXX.part.mp4 (no clean-up runs); the next write in that
    folder removes those a day old, and leaves younger ones (a run may still be writing) and other files."""
    import time

    from liveportrait.media import write_image

    old = tmp_path / ".clip.mp4.a1b2c3d4.part.mp4"
    young = tmp_path / ".other.mp4.zz9_x8y7.part.mp4"
    lookalike = tmp_path / ".notes.part"  # not a writer's name
    for p in (old, young, lookalike):
        p.write_bytes(b"partial")
    day_ago = time.time() - 25 * 3600
    os.utime(old, (day_ago, day_ago))
    os.utime(lookalike, (day_ago, day_ago))
    write_image(tmp_path / "out.png", np.zeros((8, 8, 3), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([young.name, lookalike.name, "out.png"])


def test_read_state_dict_strips_dataparallel_prefix(tiny_weights):
    state = read_state_dict(tiny_weights / "retargeting_models" / "stitching_retargeting_module.pth",
                            "stitching_retargeting_module")
    assert {k.split(".")[0] for k in state} == {"stitching", "lip", "eye"}
    assert not any("module." in k for k in state)


@pytest.mark.slow
def test_released_synthetic_weights_load(synthetic_weights):
    nets = LivePortraitNetworks.from_pretrained(synthetic_weights, locate=False)
    n_params = {name: sum(p.numel() for p in getattr(nets, name).parameters()) for name in MODULES}
    # parameter counts of the released networks (spec section 1)
    assert n_params == {"appearance_feature_extractor": 836_224, "motion_extractor": 28_118_728,
                        "warping_module": 45_529_829, "spade_generator": 55_365_388,
                        "stitching_retargeting_module": 227_263}


def test_from_pretrained_builds_nothing_the_checkpoint_overwrites(tiny_weights, monkeypatch):
    """Loading must not run random initialisation or the spectral norms' SVDs (seconds of waste at full
    size): the networks are built on the meta device and take the file's tensors as they are."""
    calls = []

    def counted(name, real):
        def wrapper(tensor, *args, **kwargs):
            if not tensor.is_meta:  # work on real memory (on the meta device it costs nothing)
                calls.append(name)
            return real(tensor, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(torch.linalg, "svd", counted("svd", torch.linalg.svd))
    monkeypatch.setattr(torch.nn.init, "kaiming_uniform_", counted("kaiming_uniform_", torch.nn.init.kaiming_uniform_))
    nets = LivePortraitNetworks.from_pretrained(tiny_weights, locate=False)
    assert calls == []
    tensors = dict(nets.named_parameters()) | dict(nets.named_buffers())
    assert not [k for k, v in tensors.items() if v.is_meta or v.device.type != "cpu"]
    torch.manual_seed(0)
    assert_same_weights(nets, LivePortraitNetworks(ModelConfig.tiny()))
