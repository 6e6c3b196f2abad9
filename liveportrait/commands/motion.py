"""``liveportrait motion``: speech to a motion template (the audio package's command)."""

from ..audio.cli import register  # noqa: F401
