"""The HuBERT-base audio encoder, through transformers' ``HubertModel`` (audio-driving-spec 2.5, 3.2).

The network is transformers' own; this file only builds it from a local Hugging Face folder (never the
Hub), fills it with tensors read by the project's safe reader, and feeds it the way JoyVASA does: raw,
unnormalised 16 kHz samples, double reflect padding, then 50 Hz states averaged pairwise to 25 Hz.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MissingExtraError, WeightsError
from ..networks.checkpoint import check_state_dict, read_state_dict

# legacy weight-norm names (the released folder) -> torch's parametrization names (what HubertModel holds)
_WEIGHT_NORM = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}
PAD_UNIT, PAD_THRESHOLD = 320, 80


def _transformers():
    try:
        import transformers
    except ImportError:
        raise MissingExtraError("audio driving needs transformers: pip install 'liveportrait[audio]' "
                                "(or bash scripts/install.sh audio)") from None
    return transformers


def rename_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Both namings of the positional conv's weight norm, as the model names them."""
    out = {}
    for k, v in state.items():
        head, _, leaf = k.rpartition(".")
        out[f"{head}.{_WEIGHT_NORM[leaf]}" if leaf in _WEIGHT_NORM else k] = v
    return out


def hubert_weights_file(folder: Path) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    raise WeightsError(f"{folder}: no HuBERT weights (model.safetensors or pytorch_model.bin)")


def build_hubert(folder: str | os.PathLike, load_weights: bool = True) -> nn.Module:
    """HubertModel from ``folder``'s config.json (local files only), in eval mode, with the folder's weights."""
    tf = _transformers()
    folder = Path(folder)
    try:
        config = tf.HubertConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{folder}: unreadable HuBERT config.json ({exc})") from None
    model = tf.HubertModel(config).eval()
    if load_weights:
        path = hubert_weights_file(folder)
        load_hubert_state(model, read_state_dict(path, "hubert"), str(path))
    return model


def load_hubert_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Strict load (every tensor named and shaped as the model's), either weight-norm naming."""
    state = rename_weight_norm(state)
    check_state_dict(model, state, source)
    model.load_state_dict(state, strict=True)


def pad_audio(x: torch.Tensor) -> torch.Tensor:
    """JoyVASA's padding to whole 20 ms units plus the receptive field: a reflect pad applied twice
    (the second reflects the first), then one replicated sample per side when the side pad is odd."""
    n = x.shape[-1]
    side = math.ceil((PAD_UNIT * (n // PAD_UNIT) + PAD_THRESHOLD - n) / 2)
    if side < 0:
        return x
    r = side // 2
    x = x[:, None]
    if r > 0:
        x = F.pad(F.pad(x, (r, r), mode="reflect"), (r, r), mode="reflect")
    if side % 2:
        x = F.pad(x, (1, 1), mode="replicate")
    return x[:, 0]


class HubertFeatures(nn.Module):
    """A HubertModel fed as JoyVASA's replaced forward does: window samples (B, S) -> (B, N, 768) at the motion
    rate. The CNN output is cut to 2N * 50 / fps frames and resampled to 2N (identities at 25 fps), then
    transformers' own projection and encoder run, then the 2N states are resampled to N."""

    def __init__(self, model: nn.Module, fps: float = 25.0):
        super().__init__()
        self.model = model
        self.fps = float(fps)

    @torch.inference_mode()
    def forward(self, audio: torch.Tensor, n_frames: int, stages: dict | None = None) -> torch.Tensor:
        padded = pad_audio(audio)
        cnn = self.model.feature_extractor(padded)  # B x 512 x T at 50 Hz
        cnn = cnn[:, :, : round(2 * n_frames * 50 / self.fps)]
        feats = resample_frames(cnn.transpose(1, 2), 2 * n_frames)
        hidden = self.model.encoder(self.model.feature_projection(feats)).last_hidden_state
        out = resample_frames(hidden, n_frames)
        if stages is not None:
            stages.update(audio_padded=padded, cnn_features=cnn, hidden=hidden, hidden_25fps=out)
        return out


def resample_frames(x: torch.Tensor, n: int) -> torch.Tensor:
    """(B, T, C) -> (B, n, C) by linear interpolation, align_corners False (T = 2n: pairwise means)."""
    if x.shape[1] == n:
        return x
    return F.interpolate(x.transpose(1, 2), size=n, mode="linear", align_corners=False).transpose(1, 2)
