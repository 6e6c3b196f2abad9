"""A photo animated by speech: the audio-driven branch of pass 2, and the whole job for one photo.

Frames stream: each 4 s window of audio is encoded and sampled while the frames of the previous one are
pasted back and encoded, and the speech itself is muxed into the video (marked and labelled as every
output of the project is).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..animator import to_uint8
from .drive import AudioDriving, keypoint_batches


def animate_image_audio(pipeline, image: np.ndarray, faces: list, driving: AudioDriving) -> Iterator[np.ndarray]:
    """Output frames for a still source moved by speech: the same motion for every face, pasted back.
    ``pipeline`` is a ``liveportrait.pipeline.Pipeline``; ``faces`` its ``prepare_image(image)``."""
    from ..pipeline.render import RenderStage

    cfg, anim = pipeline.config, pipeline.animator
    stitch = anim.networks.S.stitch_delta if cfg.motion.stitching else None
    for batch in keypoint_batches(driving, [f.prepared for f in faces], cfg.motion, stitch, max(1, cfg.batch_size)):
        renders = [to_uint8(anim.render(f.prepared, x_d)) for f, x_d in zip(faces, batch)]
        for j in range(batch[0].shape[0]):
            yield RenderStage._compose(image, faces, [r[j] for r in renders])


def speech_job(source, driving: AudioDriving, pipeline):
    """(Rendering, JobPlan) of a photo moved by speech, for ``liveportrait.pipeline.write`` or the API's
    ``AnimationOutput``: the photo prepared now, the frames lazily, the speech as the sound."""
    from ..errors import InputError
    from ..media import read_image
    from ..pipeline import Rendering
    from ..pipeline.frames import limit_size, shrink_scale
    from ..plan import JobPlan, MediaInput, as_input

    src = as_input(source, "source")
    if src.kind != "image":
        raise InputError("speech drives a photo; give an image as the source")
    original = src.image if src.image is not None else read_image(src.path)
    image = limit_size(original, pipeline.config.source_max_dim)
    faces = pipeline.prepare_image(image, shrink_scale(original.shape, image))
    frames = animate_image_audio(pipeline, image, faces, driving)
    rendering = Rendering(frames, driving.fps, len(driving), len(faces), driving.path, False, None,
                          [f.crop for f in faces])
    speech = MediaInput(driving.path, "audio", len(driving), driving.fps, has_audio=True)
    return rendering, JobPlan(src, [speech], image_output=False, fps=driving.fps)


@dataclass
class SpeechResult:
    """What ``animate_speech`` wrote (``result``: the pipeline's AnimationResult) and how fast."""

    result: object
    seed: int
    first_frame_s: float  # from the start of pass 2 to the first frame out (the first window sampled)


def animate_speech(source, output: str | os.PathLike, pipeline, driving: AudioDriving) -> SpeechResult:
    """Write ``output`` from a photo ``source`` (path or RGB array) and an opened ``driving``, through the
    pipeline's own writer (atomic, marked, the speech muxed)."""
    from dataclasses import replace

    from ..pipeline import write

    rendering, plan = speech_job(source, driving, pipeline)
    plan = plan.with_output(output, pipeline.config)
    t0, first = time.perf_counter(), []

    def timed(frames):
        for frame in frames:
            if not first:
                first.append(time.perf_counter() - t0)
            yield frame

    result = write(replace(rendering, frames=timed(rendering.frames)), plan, pipeline)
    return SpeechResult(result, driving.seed, first[0] if first else 0.0)
