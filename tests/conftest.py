"""Shared test fixtures, and the one rule for tests that cannot run here.

Real media and the conformance kit live in ../shared beside the checkout; tests that need them
skip with a clear reason when it is absent (for example in a newcomer's clone or a published sdist).

Skipping or failing: with ``CI=true`` (also ``1``/``yes``) in the environment, a missing ../shared,
mediapipe, numba, onnx/onnxruntime/openvino, the browser or any other test dependency is a FAILURE
that says what is missing; outside CI the test skips with that reason. Every skip site goes through
these helpers (this file is imported by pytest as ``tests.conftest``, so other test modules and
conftests use ``from tests.conftest import skip_or_fail, require_module, requires``):

- ``skip_or_fail(reason)``: skip outside CI, fail under CI (usable in tests, fixtures and at module level);
- ``require_module(name, how)``: import and return a module, else ``skip_or_fail`` naming it and how to install it;
- ``@requires(condition, reason)`` (a mark): ``skip_or_fail(reason)`` at setup when ``condition`` is false.

As a guard, under CI any other skip (``pytest.skip``, ``skipif``, ``importorskip``) is reported as a
failure too, unless the test carries ``@pytest.mark.ci_may_skip``: only for skips that no installation
can fix (no CUDA device, another operating system).

Fixtures beyond the data: ``tiny_weights`` (tiny networks in the released layout) and ``winograd_calls``
(lowers the fast backend's Winograd thresholds for tiny networks and records each Winograd convolution,
so that a test can assert that path ran).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> NoReturn:
    """Skip with ``reason`` outside CI; under ``CI=true`` fail with it (a CI run must not skip silently)."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this test must run, so its absence is a failure)", pytrace=False)
    try:  # reported at the test's place, as a skip mark is, rather than at this line
        skipped = pytest.skip.Exception(reason, allow_module_level=True, _use_item_location=True)
    except TypeError:  # pragma: no cover - a pytest without that (private) option
        skipped = pytest.skip.Exception(reason, allow_module_level=True)
    raise skipped


def require_module(name: str, how: str = "") -> ModuleType:
    """``import name``, or ``skip_or_fail`` saying it is not installed (and ``how`` to install it)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        skip_or_fail(f"{name} is not installed ({how or exc})")


def requires(condition: bool, reason: str) -> pytest.MarkDecorator:
    """A mark: ``skip_or_fail(reason)`` when the test is set up, if ``condition`` is false."""
    return pytest.mark.requires(bool(condition), reason)


# Under pytest-xdist (scripts/test.sh runs two workers, one a core) each worker computes on one thread: two
# workers of two threads each would fight over the two cores. Processes the tests start inherit it.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if XDIST_WORKER:
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def made_once(tmp_path_factory, name: str, make) -> Path:
    """A folder that ``make(folder)`` fills once per run, shared by the run's xdist workers (each would
    otherwise build its own copy of the full-size weights): the first worker builds it under a lock."""
    if not XDIST_WORKER:
        out = tmp_path_factory.mktemp(name)
        make(out)
        return out
    import fcntl

    root = tmp_path_factory.getbasetemp().parent  # the run's folder, above each worker's own
    out, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            out.mkdir(exist_ok=True)
            make(out)
            done.touch()
    return out


def pytest_configure(config):
    config.addinivalue_line("markers", "requires(condition, reason): skip outside CI, fail under CI=true, "
                                       "when condition is false (see tests/conftest.py)")
    config.addinivalue_line("markers", "ci_may_skip: the test's skip cannot be fixed by installing anything "
                                       "(no CUDA device, another OS), so CI may skip it")


# What makes a test slow here (seconds to minutes on 2 cores): full-size networks (audio's too), a real browser,
# a Ray cluster, a job server in its own process, the animal finder (seconds a picture). Such tests carry the
# ``slow`` mark by what they use, so that ``pytest -m "not slow"`` is the inner loop (minutes) and CI still runs
# everything.
# (fixturenames holds the fixtures a test uses through others too: conformance_outputs counts as synthetic_weights)
SLOW_FIXTURES = frozenset({"synthetic_weights", "audio_weights", "browser_kit", "ray_address", "start_server",
                           "animal_finder"})


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    for mark in item.iter_markers("requires"):
        condition, reason = mark.args
        if not condition:
            skip_or_fail(reason)


def _skip_reason(longrepr) -> str:
    return longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if (IN_CI and report.skipped and not hasattr(report, "wasxfail")
            and item.get_closest_marker("ci_may_skip") is None):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where every test must run: {_skip_reason(report.longrepr)}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    if IN_CI and report.outcome == "skipped":
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where every test must run: {_skip_reason(report.longrepr)}"
    return report


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
        skip_or_fail("../shared (examples and conformance kit) not found beside the checkout "
                     "(or set LIVEPORTRAIT_SHARED)")
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
    return made_once(tmp_path_factory, "synthetic_weights", lambda out: module.write_checkpoints(str(out)))


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


@pytest.fixture(scope="session")
def animal_weights(tmp_path_factory) -> Path:
    """Tiny networks in the hub's layout: ``liveportrait/`` (human, seed 0, as ``tiny_weights``) and
    ``liveportrait_animals/base_models_v1.1`` (seed 1, so that loading the wrong folder shows)."""
    import torch

    from liveportrait.networks import LivePortraitNetworks, ModelConfig
    from liveportrait.networks.checkpoint import save_released

    root = tmp_path_factory.mktemp("animal_weights")
    torch.manual_seed(0)
    save_released(LivePortraitNetworks(ModelConfig.tiny()), root / "liveportrait")
    torch.manual_seed(1)
    save_released(LivePortraitNetworks(ModelConfig.tiny()), root / "liveportrait_animals", "base_models_v1.1")
    return root


@pytest.fixture
def winograd_calls(monkeypatch) -> list[tuple]:
    """Lowers the fast backend's Winograd thresholds so that tiny networks take that path, and records each
    Winograd convolution it runs (input shape) in the returned list: a test asserts the list is not empty,
    so it fails when the path is bypassed. Build the fast networks (``accelerate``) after requesting it."""
    from liveportrait.speed import fastnets

    for name in ("WINOGRAD_MIN_CHANNELS", "WINOGRAD_MIN_WIDEST", "WINOGRAD_MIN_WIDEST_UNCOMPILED",
                 "WINOGRAD_MIN_SIDE", "WINOGRAD_MIN_SIDE_3D_COMPILED"):
        assert hasattr(fastnets, name), name  # a renamed threshold must not silently leave the path unreached
        monkeypatch.setattr(fastnets, name, 1)
    calls: list[tuple] = []
    real = fastnets.winograd_conv

    def counted(x, *args, **kwargs):
        calls.append(tuple(x.shape))
        return real(x, *args, **kwargs)

    monkeypatch.setattr(fastnets, "winograd_conv", counted)
    return calls


def rel_l2(ours, ref) -> float:
    """Relative L2 error of ``ours`` against the reference ``ref`` (the conformance kit's measure)."""
    import numpy as np

    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape, f"shape {ours.shape} != {ref.shape}"
    return float(np.linalg.norm(ours - ref) / max(np.linalg.norm(ref), 1e-30))


class RecordingCamera:
    """Stands in for pyvirtualcam.Camera (no machine here has a virtual camera driver): notes how each camera
    was opened and closed, and every frame sent."""

    opened: list[dict] = []
    frames: list = []

    def __init__(self, width, height, fps, fmt=None, **kw):
        RecordingCamera.opened.append({"width": width, "height": height, "fps": fps, "fmt": fmt, "closed": False})
        self.device = "/dev/video-test"

    def send(self, frame):
        import numpy as np

        RecordingCamera.frames.append(np.array(frame))

    def close(self):
        RecordingCamera.opened[-1]["closed"] = True


@pytest.fixture
def recording_camera(monkeypatch) -> type[RecordingCamera]:
    """pyvirtualcam.Camera replaced by ``RecordingCamera``, its records emptied; returns the class."""
    pyvirtualcam = require_module("pyvirtualcam", "pip install 'liveportrait[live]'")
    RecordingCamera.opened, RecordingCamera.frames = [], []
    monkeypatch.setattr(pyvirtualcam, "Camera", RecordingCamera)
    return RecordingCamera
