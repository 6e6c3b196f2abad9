"""liveportrait: portrait animation with stitching and retargeting control.

Weight-compatible with the released LivePortrait checkpoints.
"""

__version__ = "0.1.0"
