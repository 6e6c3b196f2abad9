"""The portrait editor and the web app.

* :mod:`.editor`: ``Editor`` (prepare a portrait once, render slider edits with W and G only,
  expression from a driving photo, keyframed animations) and ``retarget_video``;
* :mod:`.backend`: what the app's controls do, without Gradio;
* :mod:`.uploads`: checks on uploaded files;
* :mod:`.ui`: the Gradio interface (imports gradio; ``liveportrait app`` starts it).

The keypoint math of the edits lives in :mod:`liveportrait.motion.editing`.
"""

from __future__ import annotations

from .._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), {
    "editor": ("Editor", "EditSource", "retarget_video"),
    "backend": ("AppBackend",),
})
