"""A photo animated by speech end to end (tiny networks): an mp4 as long as the audio, with it muxed in."""

from __future__ import annotations

import numpy as np
import pytest

from tests.audio.test_audio_stream import speech_3s  # noqa: F401 - a fixture


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_weights):
    from liveportrait.config import AnimateConfig
    from liveportrait.networks import LivePortraitNetworks, ModelConfig
    from liveportrait.pipeline import Pipeline

    nets = LivePortraitNetworks.from_pretrained(tiny_weights, config=ModelConfig.tiny(), locate=False)
    return Pipeline(nets, AnimateConfig(crop="none", paste_back=False, batch_size=8, backend="eager"))


def _photo() -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:80]
    face = ((xx - 40) ** 2 / 900 + (yy - 48) ** 2 / 1400 < 1)[..., None] * np.array([200, 160, 130])
    return np.clip(face + rng.integers(0, 40, (96, 80, 3)), 0, 255).astype(np.uint8)


def test_speech_gives_a_video_of_its_length_with_its_sound(tiny_pipeline, tiny_audio_model, speech_3s, tmp_path):  # noqa: F811
    from liveportrait.api import AnimationOutput
    from liveportrait.audio.animate import speech_job
    from liveportrait.audio.drive import AudioDriving
    from liveportrait.media import probe, read_frames

    out = tmp_path / "talk.mp4"
    driving = AudioDriving.open(speech_3s, tiny_audio_model, seed=11)
    output = AnimationOutput(*speech_job(_photo(), driving, tiny_pipeline), tiny_pipeline, seed=driving.seed)
    written = output.save(out)
    assert written.frames == 75 and written.fps == 25 and written.has_audio and output.seed == 11
    info = probe(out)
    assert info.has_audio and abs(len(read_frames(out)) - 75) <= 1


def test_the_api_output_object_saves_a_speech_job(tiny_pipeline, tiny_audio_model, speech_3s, tmp_path):  # noqa: F811
    """What ``pipe(source, audio=...)`` would return (proposed for api.py): frames known up front, saved with
    the speech."""
    from liveportrait.api import AnimationOutput
    from liveportrait.audio.animate import speech_job
    from liveportrait.audio.drive import AudioDriving
    from liveportrait.media import probe

    driving = AudioDriving.open(speech_3s, tiny_audio_model, seed=2)
    output = AnimationOutput(*speech_job(_photo(), driving, tiny_pipeline), tiny_pipeline)
    assert output.frame_count == 75 and output.fps == 25 and output.audio == speech_3s and output.faces == 1
    written = output.save(tmp_path / "api.mp4")
    assert written.frames == 75 and written.has_audio and probe(tmp_path / "api.mp4").has_audio


def test_the_same_seed_gives_the_same_frames(tiny_pipeline, tiny_audio_model, speech_3s):  # noqa: F811
    from liveportrait.audio.animate import animate_image_audio
    from liveportrait.audio.drive import AudioDriving

    image = _photo()
    faces = tiny_pipeline.source.prepare_image(image)

    def frames(seed):
        driving = AudioDriving.open(speech_3s, tiny_audio_model, seed=seed)
        return np.stack(list(animate_image_audio(tiny_pipeline, image, faces, driving)))

    a, b, c = frames(4), frames(4), frames(9)
    assert a.shape == (75, *a.shape[1:])
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c).max() > 0
    assert np.abs(a[0].astype(int) - a[-1]).max() > 0  # the face moves
