"""Fixtures of the audio-driving tests: the JoyVASA-layout synthetic weights of ../shared/conformance-audio,
written once per session into a temporary folder (about 800 MB, seconds)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.conftest import made_once, require_module, skip_or_fail


@pytest.fixture(scope="session")
def audio_kit(shared_dir: Path) -> Path:
    kit = shared_dir / "conformance-audio"
    if not (kit / "synth_weights_audio.py").is_file():
        skip_or_fail(f"the audio conformance kit is missing ({kit}/synth_weights_audio.py)")
    return kit


@pytest.fixture(scope="session")
def audio_weights(audio_kit: Path, tmp_path_factory) -> Path:
    """Synthetic JoyVASA + HuBERT files in the released layout (preset 'release')."""
    require_module("transformers", "pip install 'liveportrait[audio]'")
    spec = importlib.util.spec_from_file_location("synth_weights_audio", audio_kit / "synth_weights_audio.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return made_once(tmp_path_factory, "audio_weights", lambda out: module.write_all(str(out), "release"))


@pytest.fixture(scope="session")
def audio_model(audio_weights: Path):
    from liveportrait.audio import AudioMotionModel

    return AudioMotionModel.from_pretrained(audio_weights)


# A JoyVASA-layout folder with tiny networks (0.8 s windows, a 2-layer HuBERT), for fast product tests.
TINY_ARGS = dict(motion_feat_dim=73, n_motions=20, n_prev_motions=4, feature_dim=16, n_diff_steps=6,
                 audio_model="hubert_zh", fps=25, pad_mode="zero")
TINY_HUBERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                   conv_dim=[32] * 7, conv_stride=[5, 2, 2, 2, 2, 2, 2], conv_kernel=[10, 3, 3, 3, 3, 2, 2],
                   conv_bias=False, feat_extract_norm="group", num_conv_pos_embeddings=16,
                   num_conv_pos_embedding_groups=4, do_stable_layer_norm=False, feat_proj_layer_norm=True,
                   mask_time_prob=0.05)


def _tiny_template() -> dict:
    import numpy as np

    out = {}
    ranges = {"scale": (1, 1.2, 1.6), "R": (9, -1.0, 1.0), "t": (3, -0.05, 0.05), "exp": (63, -0.05, 0.05),
              "pitch": (1, -10.0, 10.0), "yaw": (1, -15.0, 15.0), "roll": (1, -5.0, 5.0), "lip": (1, 0.0, 0.5),
              "eyes": (2, 0.2, 0.5)}
    for q, (n, lo, hi) in ranges.items():
        out[f"mean_{q}"] = np.full(n, (lo + hi) / 2, np.float32)
        out[f"std_{q}"] = np.full(n, (hi - lo) / 6, np.float32)
        out[f"max_{q}"] = np.full(n, hi, np.float32)
        out[f"min_{q}"] = np.full(n, lo, np.float32)
        out[f"abs_max_{q}"] = np.full(n, max(abs(lo), abs(hi)), np.float32)
    return out


def write_tiny_audio_weights(out: Path, drop: tuple[str, ...] = (), extra: dict | None = None) -> Path:
    """The released layout with tiny seeded networks; ``drop`` leaves keys out of the checkpoint, ``extra``
    adds entries to the saved dict (to build broken files)."""
    import argparse
    import math
    import pathlib
    import pickle

    import torch
    from transformers import HubertConfig, HubertModel

    from liveportrait.audio.dit import MotionGenerator, sinusoid_table

    torch.manual_seed(0)
    hub = out / "TencentGameMate:chinese-hubert-base"
    hub.mkdir(parents=True, exist_ok=True)
    config = HubertConfig(**TINY_HUBERT)
    (hub / "config.json").write_text(config.to_json_string())
    folder_state = HubertModel(config).state_dict()
    torch.save(folder_state, hub / "pytorch_model.bin")
    a = TINY_ARGS
    gen = MotionGenerator(a["motion_feat_dim"], a["feature_dim"], a["n_motions"], a["n_prev_motions"],
                          a["n_diff_steps"], audio_hidden=TINY_HUBERT["hidden_size"])
    state = dict(gen.state_dict())  # torch's default initialisation, plus learned embeddings and biases
    for k, v in state.items():
        if k.endswith(("_feat", "bias")):
            state[k] = torch.randn_like(v) * (1.0 if k.endswith("_feat") else 0.1)
    steps = a["n_diff_steps"]  # a cosine schedule, in float64 then stored as float32
    f = [math.cos(((k / steps) + 0.008) / 1.008 * math.pi / 2) ** 2 for k in range(steps + 1)]
    betas = [0.0] + [min(max(1 - f[k] / f[k - 1], 1e-4), 0.999) for k in range(1, steps + 1)]
    ab = [1.0]
    for b in betas[1:]:
        ab.append(ab[-1] * (1 - b))
    inflex = [0.0] + [math.sqrt((1 - ab[k - 1]) / (1 - ab[k]) * betas[k]) for k in range(1, steps + 1)]
    sched = {"betas": betas, "alphas": [1 - b for b in betas], "alpha_bars": ab,
             "sigmas_flex": [math.sqrt(b) for b in betas], "sigmas_inflex": inflex}
    for name, values in sched.items():
        state[f"diffusion_sched.{name}"] = torch.tensor(values, dtype=torch.float32)
    state["denoising_net.PE.pe"] = gen.denoising_net.PE.pe.clone()
    state["denoising_net.TE.pe"] = sinusoid_table(steps + 1, a["feature_dim"])
    state["denoising_net.motion_dec.2.bias"][63:70] = 0.5
    for k, v in folder_state.items():
        state[f"audio_encoder.{k}"] = v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
    for k in drop:
        state.pop(k)
    args = argparse.Namespace(**a, data_root=pathlib.PosixPath("data"))
    mg = out / "JoyVASA" / "motion_generator"
    mg.mkdir(parents=True, exist_ok=True)
    torch.save({"args": args, "model": state, "iter": 1, **(extra or {})}, mg / "motion_generator_hubert_chinese.pt")
    mt = out / "JoyVASA" / "motion_template"
    mt.mkdir(parents=True, exist_ok=True)
    with open(mt / "motion_template.pkl", "wb") as fh:
        pickle.dump(_tiny_template(), fh, protocol=4)
    return out


@pytest.fixture(scope="session")
def tiny_audio_weights(tmp_path_factory) -> Path:
    require_module("transformers", "pip install 'liveportrait[audio]'")
    return write_tiny_audio_weights(tmp_path_factory.mktemp("tiny_audio_weights"))


@pytest.fixture(scope="session")
def tiny_audio_model(tiny_audio_weights: Path):
    from liveportrait.audio import AudioMotionModel

    return AudioMotionModel.from_pretrained(tiny_audio_weights)


@pytest.fixture
def cli():
    from liveportrait.cli import main

    return main


@pytest.fixture
def bad(cli, tiny_audio_weights, examples_dir, tmp_path, capsys):
    """Runs animate with ``-d`` and expects one error line; --weights points nowhere, so an error about the
    audio proves it was found before any network was loaded."""

    def run(driving, *extra, source=None):
        try:
            code = cli(["animate", "-s", str(source or examples_dir / "source" / "s1.jpg"), "-d", str(driving),
                        "-o", str(tmp_path / "out.mp4"), "--weights", str(tmp_path / "no_weights_here"),
                        "--audio-weights", str(tiny_audio_weights), *extra])
        except SystemExit as exited:  # a value the option's parser refuses: argparse's usage error
            code = exited.code
        err = capsys.readouterr().err.strip()
        lines = err.splitlines()
        # one line; a usage error's is followed by where the options are
        usage = ["run 'liveportrait animate --help' for the options"]
        assert len(lines) == 1 or (code == 2 and lines[1:] == usage), err
        assert not (tmp_path / "out.mp4").exists()
        return code, err

    return run
