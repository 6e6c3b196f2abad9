"""Shared test fixtures.

Real media and the conformance kit live in ../shared beside the checkout; tests that need them
skip with a clear reason when it is absent (for example in a published sdist).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _find_shared() -> Path | None:
    env = os.environ.get("LIVEPORTRAIT_SHARED")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared")
    for c in candidates:
        if (c / "examples").is_dir():
            return c
    return None


SHARED = _find_shared()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if SHARED is None:
        pytest.skip("../shared (examples and conformance kit) not found beside the checkout")
    return SHARED


@pytest.fixture(scope="session")
def examples_dir(shared_dir: Path) -> Path:
    return shared_dir / "examples"


@pytest.fixture(scope="session")
def synthetic_weights(shared_dir: Path, tmp_path_factory) -> Path:
    """Full-size weights in the released layout, from the conformance kit's deterministic recipe."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("synth_weights", shared_dir / "conformance" / "synth_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("synthetic_weights")
    module.write_checkpoints(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """Tiny-config networks with seeded random weights, saved in the released layout."""
    import torch

    from liveportrait.networks import LivePortraitNetworks, ModelConfig
    from liveportrait.networks.checkpoint import save_released

    torch.manual_seed(0)
    nets = LivePortraitNetworks(ModelConfig.tiny())
    out = tmp_path_factory.mktemp("tiny_weights")
    save_released(nets, out)
    return out
