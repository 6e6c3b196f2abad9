"""``liveportrait motion``: speech to a motion template (the audio package's command)."""

from .speech import register  # noqa: F401
