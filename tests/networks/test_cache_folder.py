"""Where weights and ONNX exports go by default: the user cache folder (platformdirs), moved by
$LIVEPORTRAIT_CACHE; on Linux the place it has always been, $XDG_CACHE_HOME or ~/.cache."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from liveportrait.audio.weights import default_audio_cache_dir
from liveportrait.networks.checkpoint import default_cache_dir, weights_search_path
from liveportrait.speed import onnx_backend

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux locations")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("LIVEPORTRAIT_CACHE", raising=False)
    monkeypatch.delenv("LIVEPORTRAIT_WEIGHTS", raising=False)
    return tmp_path / "home"


@linux_only
def test_the_weights_stay_where_existing_linux_users_have_them(home):
    weights = home / ".cache" / "liveportrait" / "KwaiVGI--LivePortrait"
    assert default_cache_dir() == weights
    assert default_audio_cache_dir() == weights / "audio"
    assert onnx_backend.default_cache_dir() == home / ".cache" / "liveportrait" / "onnx"
    assert weights_search_path() == [("cache", weights)]


@linux_only
def test_xdg_cache_home_moves_the_cache(home, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "liveportrait" / "KwaiVGI--LivePortrait"
    assert onnx_backend.default_cache_dir() == tmp_path / "xdg" / "liveportrait" / "onnx"


def test_liveportrait_cache_names_the_weights_folder_itself(home, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("LIVEPORTRAIT_CACHE", "~/weights")
    assert default_cache_dir() == home / "weights"
    assert default_audio_cache_dir() == home / "weights" / "audio"
    assert onnx_backend.default_cache_dir() == home / "weights" / "onnx"
