"""The suite's own rules: under CI=true a missing dependency or ../shared fails; elsewhere it skips with the reason.

Runs pytest on a scratch copy of tests/conftest.py (so ../shared is absent there) with and without CI=true.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

SCRATCH_TESTS = textwrap.dedent('''
    import pytest

    from tests.conftest import require_module, requires, skip_or_fail


    def test_needs_shared(examples_dir):
        pass


    @requires(False, "numba is not installed")
    def test_needs_numba():
        pass


    def test_needs_a_module():
        require_module("no_such_module_for_liveportrait", "pip install it")


    def test_plain_skip():
        pytest.skip("a skip that does not use the helpers")


    def test_helper_skip():
        skip_or_fail("the browser is not installed")


    @pytest.mark.ci_may_skip
    @pytest.mark.skipif(True, reason="needs a CUDA device")
    def test_cuda():
        pass


    def test_runs():
        pass
''')


def run_scratch(tmp_path: Path, ci: str | None) -> tuple[int, str]:
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "conftest.py", project / "tests" / "conftest.py")
    (project / "tests" / "test_scratch.py").write_text(SCRATCH_TESTS)
    (project / "tests" / "test_module_level.py").write_text(
        "import pytest\n\nmod = pytest.importorskip('no_such_module_for_liveportrait')\n\n\ndef test_a():\n    pass\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "LIVEPORTRAIT_SHARED", "PYTEST_ADDOPTS")}
    if ci is not None:
        env["CI"] = ci
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--import-mode=importlib", "-rA", "-q",
           "--continue-on-collection-errors", "tests"]
    proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def test_outside_ci_missing_things_skip_with_the_reason(tmp_path):
    code, out = run_scratch(tmp_path, None)
    assert code == 0, out
    assert "1 passed, 7 skipped" in out, out
    assert "SKIPPED [1] tests/test_scratch.py:11: numba is not installed" in out  # the test's place, not the helper's
    assert "../shared (examples and conformance kit) not found" in out
    assert "SKIPPED" in out and "numba is not installed" in out and "no_such_module_for_liveportrait" in out


@pytest.mark.parametrize("ci", ["true", "1"])
def test_under_ci_every_skip_but_the_cuda_one_fails_and_says_why(tmp_path, ci):
    code, out = run_scratch(tmp_path, ci)
    assert code == 1, out
    lines = out.splitlines()

    def outcome(name: str) -> str:
        found = [ln.split()[0] for ln in lines if ln.startswith(("PASSED", "FAILED", "ERROR", "SKIPPED"))
                 and f"::{name}" in ln]
        assert len(found) == 1, (name, out)
        return found[0]

    for name in ("test_needs_shared", "test_needs_numba"):  # raised while setting up: reported as errors
        assert outcome(name) == "ERROR"
    for name in ("test_needs_a_module", "test_plain_skip", "test_helper_skip"):
        assert outcome(name) == "FAILED"
    assert outcome("test_runs") == "PASSED"
    assert "1 skipped" in out and [ln for ln in lines if ln.startswith("SKIPPED")] == [
        "SKIPPED [1] tests/test_scratch.py:28: needs a CUDA device"]
    assert "ERROR tests/test_module_level.py" in out  # a module-level skip is a collection error
    assert "../shared (examples and conformance kit) not found" in out and "CI=true" in out
    assert "a skip that does not use the helpers" in out


def test_install_script_drops_only_mediapipes_undeclared_dependency_conflicts():
    """pip prints mediapipe's unused declared dependencies (jax, matplotlib, ...) in red as conflicts on later
    installs; scripts/install.sh drops those lines and keeps any other message."""
    script = HERE.parent / "scripts" / "install.sh"
    pip_said = ("ERROR: pip's dependency resolver does not currently take into account all the packages that are "
                "installed. This behaviour is the source of the following dependency conflicts.\n"
                "mediapipe 0.10.21 requires jax, which is not installed.\n"
                "mediapipe 0.10.21 requires matplotlib, which is not installed.\n"
                "gradio 6.31.0 requires pillow<13, but you have pillow 13.0 which is incompatible.\n")
    run = subprocess.run(["bash", "-c", f'eval "$(sed -n "/^drop_mediapipe_conflicts()/,/^}}/p" {script})"; '
                          "drop_mediapipe_conflicts"], input=pip_said, capture_output=True, text=True, timeout=30)
    assert run.stderr == "gradio 6.31.0 requires pillow<13, but you have pillow 13.0 which is incompatible.\n"
