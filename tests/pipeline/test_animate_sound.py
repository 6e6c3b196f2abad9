"""``animate``'s summary line says whether the written video has sound, and the file agrees."""

from __future__ import annotations

import pytest

from liveportrait.cli import main
from liveportrait.media import probe


@pytest.mark.parametrize(("driving", "sound"), [("d12.mp4", True), ("d0.mp4", False)])
def test_summary_tells_the_sound_of_the_output(tiny_weights, examples_dir, tmp_path, capsys, driving, sound):
    out = tmp_path / "out.mp4"
    code = main(["animate", "-s", str(examples_dir / "source/s1.jpg"), "-d", str(examples_dir / "driving" / driving),
                 "-o", str(out), "--max-dim", "384", "--no-template", "--max-frames", "8",
                 "--weights", str(tiny_weights), "--model-config", "tiny"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    line = next(line for line in captured.out.splitlines() if line.startswith("wrote "))
    assert ("with sound" in line, "no sound" in line) == (sound, not sound), line
    assert probe(out).has_audio is sound  # read back from the file, not from the writer
