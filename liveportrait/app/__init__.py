"""The web app.

* :mod:`.backend`: what the app's controls do, without Gradio;
* :mod:`.ui`: the Gradio interface (imports gradio; ``liveportrait app`` starts it).

The portrait editor it drives is :mod:`liveportrait.pipeline.editor` (the Python API's ``prepare``/``edit`` use
it too), uploads are checked by :mod:`liveportrait.uploads`, and the keypoint math of the edits lives in
:mod:`liveportrait.motion.editing`.
"""

from __future__ import annotations

from .._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), {
    "backend": ("AppBackend",),
})
