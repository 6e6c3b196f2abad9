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


# -- liveportrait download --audio (offline here: the message, the exit code, and a stand-in hub) ----------


def _one_line(msg: str) -> str:
    assert "\n" not in msg.strip(), msg
    return msg


def test_offline_audio_download_says_what_to_fetch(tmp_path, monkeypatch):
    from liveportrait.audio.weights import download_audio_weights

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError) as info:
        download_audio_weights(tmp_path / "dl")
    msg = _one_line(str(info.value))
    assert msg.startswith("could not download jdh-algo/JoyVASA from the Hugging Face Hub")
    assert str(tmp_path / "dl") in msg and "TencentGameMate/chinese-hubert-base" in msg
    assert "JoyVASA/motion_generator/motion_generator_hubert_chinese.pt" in msg and "--audio-weights" in msg
    assert info.value.exit_code == 4


def test_download_audio_command_offline_exit_code(tmp_path, monkeypatch, capsys):
    from liveportrait.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["download", "--audio", "--dest", str(tmp_path / "dl")]) == WeightsError.exit_code == 4
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: could not download jdh-algo/JoyVASA") and "Traceback" not in err
    assert len(err.splitlines()) == 1


def _fake_hub(tiny_audio_weights, calls: list, skip: tuple[str, ...] = ()):
    """snapshot_download as the hub would do it: the repository's files matching allow_patterns written
    under local_dir, from a folder standing in for each repository."""
    import fnmatch
    from pathlib import Path

    repos = {"jdh-algo/JoyVASA": tiny_audio_weights / "JoyVASA",
             "TencentGameMate/chinese-hubert-base": tiny_audio_weights / "TencentGameMate:chinese-hubert-base"}

    def snapshot_download(repo_id, allow_patterns=None, local_dir=None, **kw):
        calls.append((repo_id, list(allow_patterns), Path(local_dir)))
        root = repos[repo_id]
        files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
        files.append("preprocessor_config.json") if repo_id.startswith("Tencent") else None
        files += ["README.md", "chinese-hubert-base-fairseq-ckpt.pt"]  # not asked for: must not be written
        for name in files:
            if any(fnmatch.fnmatch(name, pat) for pat in allow_patterns) and name not in skip:
                out = Path(local_dir) / name
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes((root / name).read_bytes() if (root / name).is_file() else b"{}")
        return local_dir

    return snapshot_download


def test_download_audio_into_the_cache_resolves_and_loads(tiny_audio_weights, no_env, monkeypatch, capsys):
    import huggingface_hub

    from liveportrait.audio import AudioMotionModel, locate_audio_weights
    from liveportrait.cli import main

    calls: list = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _fake_hub(tiny_audio_weights, calls))
    assert main(["download", "--audio"]) == 0
    cache = no_env / "audio"
    assert capsys.readouterr().out.strip() == f"audio weights ready in {cache}"
    assert [(r, sorted(p), d) for r, p, d in calls] == [
        ("jdh-algo/JoyVASA", ["motion_generator/motion_generator_hubert_chinese.pt",
                              "motion_template/motion_template.pkl"], cache / "JoyVASA"),
        ("TencentGameMate/chinese-hubert-base", ["config.json", "preprocessor_config.json", "pytorch_model.bin"],
         cache / "TencentGameMate:chinese-hubert-base")]
    got = sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file())
    assert got == ["JoyVASA/motion_generator/motion_generator_hubert_chinese.pt",
                   "JoyVASA/motion_template/motion_template.pkl",
                   "TencentGameMate:chinese-hubert-base/config.json",
                   "TencentGameMate:chinese-hubert-base/preprocessor_config.json",
                   "TencentGameMate:chinese-hubert-base/pytorch_model.bin"]
    layout = locate_audio_weights()  # no flag, no environment: the cache it was downloaded into
    assert layout.root == cache and layout.missing() == []
    assert AudioMotionModel.from_pretrained(layout).geometry.n_motions == 20  # the tiny generator's windows


def test_download_audio_to_dest_with_a_file_the_hub_lacks(tiny_audio_weights, no_env, monkeypatch, tmp_path):
    import huggingface_hub

    from liveportrait.audio.weights import download_audio_weights

    calls: list = []
    fake = _fake_hub(tiny_audio_weights, calls, skip=("motion_template/motion_template.pkl",))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    with pytest.raises(WeightsError) as info:
        download_audio_weights(tmp_path / "dest")
    msg = _one_line(str(info.value))
    assert f"audio weights not found in {tmp_path / 'dest'}" in msg
    assert "missing: JoyVASA/motion_template/motion_template.pkl)" in msg
    assert not (no_env / "audio").exists()  # --dest, not the cache


def test_where_audio_lists_the_search_path_in_order(tiny_audio_weights, no_env, monkeypatch, tmp_path, capsys):
    from liveportrait.cli import main

    monkeypatch.setenv("LIVEPORTRAIT_AUDIO_WEIGHTS", str(tmp_path / "env_empty"))
    assert main(["download", "--audio", "--where", "--dest", str(tiny_audio_weights)]) == 0
    lines = capsys.readouterr().out.rstrip("\n").splitlines()
    assert len(lines) == 3
    assert lines[0].split(": ", 1) == ["--audio-weights".rjust(28), f"{tiny_audio_weights} (complete)"]
    assert lines[1].split(": ", 1) == ["$LIVEPORTRAIT_AUDIO_WEIGHTS".rjust(28),
                                       f"{tmp_path / 'env_empty'} (3 file(s) missing)"]
    assert lines[2].split(": ", 1) == ["cache".rjust(28), f"{no_env / 'audio'} (3 file(s) missing)"]
    assert not (no_env / "audio").exists()  # --where fetches nothing
