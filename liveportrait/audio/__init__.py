"""Audio driving: speech to LivePortrait motion with JoyVASA's released files (HuBERT + diffusion transformer).

Names are imported lazily so that ``import liveportrait.audio`` loads neither torch nor transformers.

    from liveportrait.audio import AudioMotionModel, RandomNoise, read_audio_chunks

    model = AudioMotionModel.from_pretrained("pretrained_weights")
    for motion in model.stream(read_audio_chunks("speech.wav"), RandomNoise(seed=0), smooth_alpha=0.01):
        ...  # exp, R, t, scale of each frame, window by window
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "defaults": ("CFG_SCALE", "SMOOTH_ALPHA", "SAMPLE_RATE"),
    "model": ("AudioMotionModel",),
    "sampler": ("RandomNoise", "RecordedNoise", "WindowGeometry", "EmaSmoother", "denormalize", "iter_windows"),
    "drive": ("AudioDriving", "keypoint_batches"),
    "animate": ("animate_image_audio", "speech_job"),
    "compose": ("AudioKeypoints", "AUDIO_MOTION_OPTIONS", "as_motion", "compose_audio_motion", "PoseTrack",
                "pose_indices", "with_pose"),
    "pose": ("check_pose_from", "resolve_pose"),
    "weights": ("ENV_AUDIO_WEIGHTS", "AudioWeightsLayout", "locate_audio_weights", "resolve_audio_layout",
                "read_motion_generator", "read_motion_template", "download_audio_weights",
                "audio_weights_search_path"),
    "io": ("read_audio", "read_audio_chunks", "probe_audio", "is_audio_file", "AudioInfo"),
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), _EXPORTS)
