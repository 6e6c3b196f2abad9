"""Live animation: a photo driven by a camera or a video file played in real time, frame by frame.

``liveportrait live`` runs ``LiveEngine`` over a ``CameraSource`` or ``FileSource``; frames the renderer
had no time for are dropped, never queued.
"""

from .engine import LiveEngine, LiveStats, MotionSmoother
from .sources import Arrival, CameraSource, FileSource, FrameSource, LatestFrame

__all__ = ["Arrival", "CameraSource", "FileSource", "FrameSource", "LatestFrame", "LiveEngine", "LiveStats",
           "MotionSmoother"]
