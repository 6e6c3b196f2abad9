"""``--pose-from`` / ``pose_from=``: where the head pose of a speech-driven animation comes from.

``check_pose_from`` runs before any network loads: ``still`` (the source's own pose, held), a motion template
(the reference's ``.pkl`` through the restricted reader, or ``.lpt.npz``: read now), a ``MotionTemplate``, or a
driving video (probed now, its motion extracted later by ``resolve_pose`` with the LivePortrait networks).
Anything else is one InputError line (a hostile pickle: UnsafeFileError). The pose itself is composed by
``compose.with_pose``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .compose import PoseTrack

STILL = "still"
TAKES = "a motion template (.pkl, .lpt.npz), a driving video, or still (the source's own pose)"


@dataclass(frozen=True)
class PendingVideoPose:
    """A driving video whose pose is wanted: checked, its motion not extracted yet."""

    path: Path


def check_pose_from(value, flag: str = "--pose-from") -> PoseTrack | PendingVideoPose | None:
    """The checked pose source (None: the model's sampled pose). Cheap: reads a template, probes a video."""
    if value is None or isinstance(value, (PoseTrack, PendingVideoPose)):
        return value
    from ..media import MotionTemplate

    if isinstance(value, MotionTemplate):
        return PoseTrack.from_template(value)
    if not isinstance(value, (str, os.PathLike)):
        raise InputError(f"{flag} takes {TAKES}; got a {type(value).__name__}")
    if str(value) == STILL:
        return PoseTrack.still()
    path = Path(value)
    if not path.exists():
        raise InputError(f"{flag} {path}: no such file (it takes {TAKES})")
    from ..media import media_kind
    from .io import is_audio_file

    kind = media_kind(path)
    if kind == "template":
        from ..media import load_template

        return PoseTrack.from_template(load_template(path), name=path.name)
    if kind == "video":
        from ..media import probe

        probe(path)  # unreadable, corrupt, no frame: one line now
        return PendingVideoPose(path)
    if kind == "image":
        raise InputError(f"{flag} {path}: a photo has one pose, which does not move; use {flag} still to keep "
                         "the source's own pose, or give a video or a motion template")
    what = "an audio file" if is_audio_file(path) else "not a motion template or a video"
    raise InputError(f"{flag} {path}: {what} (it takes {TAKES})")


def resolve_pose(checked: PoseTrack | PendingVideoPose | None, pipeline) -> PoseTrack | None:
    """The pose track; a video's motion is extracted by ``pipeline`` (a ``liveportrait.pipeline.Pipeline``)."""
    if not isinstance(checked, PendingVideoPose):
        return checked
    return PoseTrack.from_template(pipeline.driving.load(checked.path).template, name=checked.path.name)
