"""The reference's constants for audio driving, importable without torch (the command line's --help)."""

SAMPLE_RATE = 16000  # HuBERT's input rate
CFG_SCALE = 2.8  # inference.py's guidance default (its README uses 2.0, the Gradio app 4.0)
SMOOTH_ALPHA = 0.01  # the reference's EMA factor on scale, t and the angles
