"""A photo animated by speech: the audio-driven branch of pass 2, and the whole job for one photo.

Frames stream: each 4 s window of audio is encoded and sampled while the frames of the previous one are
pasted back and encoded, and the speech itself is muxed into the video (marked and labelled as every
output of the project is).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ..animator import to_uint8
from .drive import AudioDriving, keypoint_batches


def animate_image_audio(pipeline, image: np.ndarray, faces: list, driving: AudioDriving) -> Iterator[np.ndarray]:
    """Output frames for a still source moved by speech: the same motion for every face, pasted back.
    ``pipeline`` is a ``liveportrait.pipeline.Pipeline``; ``faces`` its ``source.prepare_image(image)``."""
    from ..pipeline.render import compose_faces

    cfg, anim = pipeline.config, pipeline.animator
    stitch = anim.stitcher.stitch_delta if cfg.motion.stitching else None
    for batch in keypoint_batches(driving, [f.prepared for f in faces], cfg.motion, stitch, max(1, cfg.batch_size)):
        renders = [to_uint8(anim.render(f.prepared, x_d)) for f, x_d in zip(faces, batch)]
        for j in range(batch[0].shape[0]):
            yield compose_faces(image, faces, [r[j] for r in renders])


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
    faces = pipeline.source.prepare_image(image, shrink_scale(original.shape, image))
    frames = animate_image_audio(pipeline, image, faces, driving)
    rendering = Rendering(frames, driving.fps, len(driving), len(faces), driving.path, False, None,
                          [f.crop for f in faces])
    speech = MediaInput(driving.path, "audio", len(driving), driving.fps, has_audio=True)
    return rendering, JobPlan(src, [speech], image_output=False, fps=driving.fps)
