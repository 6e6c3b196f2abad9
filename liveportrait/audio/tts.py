"""Text to speech for ``--text``: espeak-ng (Debian's ``espeak-ng`` package), offline and on every machine.

It is run as a program, the text on its standard input (never on a command line a shell reads), and writes
a 22.05 kHz mono WAV that the audio reader resamples to the model's 16 kHz like any other speech.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ..errors import InputError, MissingExtraError

TTS_PROGRAM = "espeak-ng"
MAX_TEXT_CHARS = 20_000  # about 25 minutes of speech; longer texts belong in an audio file
TTS_HINT = "run `bash scripts/install-tts.sh` (Debian: apt-get install espeak-ng)"


def check_text(text: str) -> str:
    """The text to speak, stripped, or an InputError saying what is wrong with it (before any work)."""
    text = (text or "").strip()
    if not text:
        raise InputError("--text is empty: give the words to speak")
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"--text has {len(text)} characters, more than {MAX_TEXT_CHARS}: put long speech in "
                         "an audio file and drive with -d speech.wav")
    return text


def tts_program() -> str:
    """The espeak-ng executable (``$LIVEPORTRAIT_ESPEAK`` names another), or a MissingExtraError."""
    program = shutil.which(os.environ.get("LIVEPORTRAIT_ESPEAK", TTS_PROGRAM))
    if program is None:
        raise MissingExtraError(f"--text needs {TTS_PROGRAM}, which is not installed: {TTS_HINT}")
    return program


def speak(text: str, path: str | os.PathLike, voice: str | None = None, words_per_minute: int = 160) -> Path:
    """Speak ``text`` into the WAV file ``path`` with espeak-ng; returns the path."""
    text, program, path = check_text(text), tts_program(), Path(path)
    cmd = [program, "--stdin", "-w", str(path), "-s", str(int(words_per_minute))]
    if voice:
        cmd += ["-v", voice]
    run = subprocess.run(cmd, input=text, capture_output=True, text=True, timeout=600)
    if run.returncode != 0 or not path.is_file() or path.stat().st_size <= 44:  # 44: a WAV header alone
        why = (run.stderr.strip().splitlines() or ["no sound was written"])[-1]
        raise InputError(f"{TTS_PROGRAM} could not speak the text{f' with voice {voice!r}' if voice else ''}: {why}")
    return path
