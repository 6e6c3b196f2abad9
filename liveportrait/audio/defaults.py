"""The reference's constants for audio driving, importable without torch (the command line's --help)."""

from ..config import CFG_SCALE, SMOOTH_ALPHA  # noqa: F401 - the sampling's defaults, with their options

SAMPLE_RATE = 16000  # HuBERT's input rate


def smoothing_alpha(value: float) -> float | None:
    """The EMA factor on head pose and scale as the sampler takes it (``SpeechOptions.audio_smooth``, checked to
    be in (0, 1] already): None for 1, the raw motion."""
    return None if value >= 1 else float(value)
