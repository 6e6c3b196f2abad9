"""The portrait editor and the web app.

* :mod:`.editor`: ``Editor`` (prepare a portrait once, render slider edits with W and G only,
  expression from a driving photo, keyframed animations) and ``retarget_video``;
* :mod:`.backend`: what the app's controls do, without Gradio;
* :mod:`.uploads`: checks on uploaded files;
* :mod:`.ui`: the Gradio interface (imports gradio; ``liveportrait app`` starts it).

The keypoint math of the edits lives in :mod:`liveportrait.motion.editing`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {"Editor": ".editor", "EditSource": ".editor", "retarget_video": ".editor", "AppBackend": ".backend"}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
