"""Where audio weights are found (--audio-weights, then $LIVEPORTRAIT_AUDIO_WEIGHTS, then the user cache) and
what is said when they are not."""

from __future__ import annotations

import shutil

import pytest

from liveportrait.errors import WeightsError


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    monkeypatch.delenv("LIVEPORTRAIT_AUDIO_WEIGHTS", raising=False)
    monkeypatch.setenv("LIVEPORTRAIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_flag_then_environment_then_cache(tiny_audio_weights, no_env, monkeypatch, tmp_path):
    from liveportrait.audio import locate_audio_weights

    other = tmp_path / "other"
    shutil.copytree(tiny_audio_weights, other)
    shutil.copytree(tiny_audio_weights, no_env / "audio")
    assert locate_audio_weights().root == no_env / "audio"
    monkeypatch.setenv("LIVEPORTRAIT_AUDIO_WEIGHTS", str(other))
    assert locate_audio_weights().root == other
    assert locate_audio_weights(tiny_audio_weights).root == tiny_audio_weights


def test_an_incomplete_named_folder_is_an_error_not_skipped(tiny_audio_weights, no_env, tmp_path):
    from liveportrait.audio import locate_audio_weights

    shutil.copytree(tiny_audio_weights, no_env / "audio")  # complete, but not the folder asked for
    partial = tmp_path / "partial"
    shutil.copytree(tiny_audio_weights, partial)
    (partial / "JoyVASA" / "motion_template" / "motion_template.pkl").unlink()
    with pytest.raises(WeightsError) as err:
        locate_audio_weights(partial)
    msg = str(err.value)
    assert "\n" not in msg and "JoyVASA/motion_template/motion_template.pkl" in msg
    assert "--audio-weights" in msg and "LIVEPORTRAIT_AUDIO_WEIGHTS" in msg and err.value.exit_code == 4


def test_nothing_anywhere_names_the_cache(no_env):
    from liveportrait.audio import locate_audio_weights

    with pytest.raises(WeightsError, match="audio weights not found in .*cache.*audio"):
        locate_audio_weights()


def test_the_joyvasa_folder_itself_and_the_windows_hubert_name(tiny_audio_weights, tmp_path):
    from liveportrait.audio import resolve_audio_layout

    root = tmp_path / "pretrained_weights"
    shutil.copytree(tiny_audio_weights, root)
    (root / "TencentGameMate:chinese-hubert-base").rename(root / "chinese-hubert-base")
    layout = resolve_audio_layout(root / "JoyVASA")
    assert layout.missing() == [] and layout.hubert_dir.name == "chinese-hubert-base"
    # the README's tree names the generator iter_0020000.pt
    mg = root / "JoyVASA" / "motion_generator"
    (mg / "motion_generator_hubert_chinese.pt").rename(mg / "iter_0020000.pt")
    assert resolve_audio_layout(root).motion_generator.name == "iter_0020000.pt"
