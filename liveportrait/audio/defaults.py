"""The reference's constants for audio driving, importable without torch (the command line's --help)."""

SAMPLE_RATE = 16000  # HuBERT's input rate
CFG_SCALE = 2.8  # inference.py's guidance default (its README uses 2.0, the Gradio app 4.0)
SMOOTH_ALPHA = 0.01  # the reference's EMA factor on scale, t and the angles


def smoothing_alpha(value: float, name: str = "audio smoothing") -> float | None:
    """The EMA factor on head pose and scale as the sampler takes it: (0, 1), or None for 1 (the raw motion).
    Anything else is an InputError (the command line's --audio-smooth, the API's audio_smooth=)."""
    from ..errors import InputError

    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 1:
        raise InputError(f"{name} must be in (0, 1], got {value!r}")
    return None if value >= 1 else float(value)
