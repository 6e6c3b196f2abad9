"""The animated portrait as a camera that video-call apps can pick (pyvirtualcam: OBS Virtual Camera on Windows
and macOS, v4l2loopback on Linux). A camera carries pictures only, no sound."""

from __future__ import annotations

import sys

import numpy as np

from ..errors import VirtualCameraError


def driver_hint() -> str:
    """What to install on this system for a virtual camera to exist."""
    if sys.platform.startswith("linux"):
        return ("install v4l2loopback (e.g. apt-get install v4l2loopback-dkms, then "
                "modprobe v4l2loopback exclusive_caps=1)")
    return "install OBS Studio (its OBS Virtual Camera), start its virtual camera once, then stop it"


class VirtualCamera:
    """Sends RGB frames of one size to a virtual camera; frames of another size are resized to it."""

    def __init__(self, width: int, height: int, fps: float = 25.0):
        try:
            import pyvirtualcam
        except ImportError:
            raise VirtualCameraError(
                "--virtual-camera needs pyvirtualcam (the 'live' extra: bash scripts/install.sh live) and a driver: "
                + driver_hint()) from None
        try:
            self.camera = pyvirtualcam.Camera(width=int(width), height=int(height), fps=float(fps),
                                              fmt=pyvirtualcam.PixelFormat.RGB)
        except RuntimeError as exc:
            text = str(exc).strip() or "no virtual camera device"
            first = text.splitlines()[0].split(". ")[0].rstrip(".")  # pyvirtualcam's first sentence
            raise VirtualCameraError(f"no virtual camera to send to ({first}): {driver_hint()}") from None
        self.size = (int(width), int(height))
        self.sent = 0

    @property
    def device(self) -> str:
        return str(getattr(self.camera, "device", "virtual camera"))

    def send(self, frame: np.ndarray) -> None:
        w, h = self.size
        if frame.shape[1] != w or frame.shape[0] != h:
            import cv2

            frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        self.camera.send(np.ascontiguousarray(frame, dtype=np.uint8))
        self.sent += 1

    def close(self) -> None:
        self.camera.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
