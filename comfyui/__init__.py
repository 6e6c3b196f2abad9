"""LivePortrait nodes for ComfyUI: a thin layer over ``liveportrait.LivePortraitPipeline``.

Link (or copy) this folder into ComfyUI's ``custom_nodes/`` and install the library into ComfyUI's Python
(``pip install -r requirements.txt`` from this folder). Importing it loads neither torch nor ComfyUI.
"""

from .host import register_model_folder
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

register_model_folder()  # models/liveportrait, when ComfyUI's folder_paths is there

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
