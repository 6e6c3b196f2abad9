"""Speech to LivePortrait motion: the loaded JoyVASA model and its window-by-window sampler.

    model = AudioMotionModel.from_pretrained("pretrained_weights")       # JoyVASA layout
    for window in model.stream(read_audio_chunks("speech.wav"), noise=RandomNoise(seed=0)):
        window["exp"], window["R"], ...                                     # per-frame motion, 25 fps

Built from the checkpoint's stored args (any released variant), loaded strictly: a checkpoint missing a
tensor would give random output in the reference, so it is refused here.
"""

from __future__ import annotations

import os
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import nn

from ..errors import WeightsError
from ..networks.checkpoint import check_state_dict
from .defaults import CFG_SCALE
from .dit import MotionGenerator
from .hubert import HubertFeatures, build_hubert, load_hubert_state
from .sampler import EmaSmoother, RandomNoise, WindowGeometry, ddpm_coefficients, denormalize, iter_windows
from .weights import AudioWeightsLayout, StoredArgs, locate_audio_weights, read_motion_generator, read_motion_template

ENCODER_PREFIX = "audio_encoder."
DISCARDED = ("denoising_net.TE.pe",)  # the reference drops it and builds a 501-row table
SUPPORTED_AUDIO_MODELS = ("hubert", "hubert_zh", "hubert_zh_ori")


def generator_kwargs(args: StoredArgs, state: dict[str, torch.Tensor]) -> dict:
    """MotionGenerator's arguments from the stored args, checked against the tensors' shapes."""
    kw = {k: getattr(args, k) for k in ("motion_feat_dim", "feature_dim", "n_motions", "n_prev_motions",
                                        "n_diff_steps")}
    missing = [k for k, v in kw.items() if v is None]
    if missing:
        raise WeightsError(f"the checkpoint's args lack {', '.join(missing)}")
    if "audio_feature_map.weight" in state:
        kw["audio_hidden"] = int(state["audio_feature_map.weight"].shape[1])
    return {k: int(v) for k, v in kw.items()}


class AudioMotionModel(nn.Module):
    """HuBERT encoder + motion generator + template: window samples in, normalised and LivePortrait motion out."""

    def __init__(self, encoder: HubertFeatures, generator: MotionGenerator, template: dict,
                 geometry: WindowGeometry):
        super().__init__()
        self.encoder, self.generator, self.template, self.geometry = encoder, generator, template, geometry

    @classmethod
    def from_pretrained(cls, weights: str | os.PathLike | AudioWeightsLayout | None = None,
                        legacy_pe: bool = False) -> "AudioMotionModel":
        """From a JoyVASA-layout folder (``--audio-weights``, $LIVEPORTRAIT_AUDIO_WEIGHTS, the cache).
        ``legacy_pe``: the positional encoding as before the reference's Dec 2025 fix (opt-in)."""
        layout = weights if isinstance(weights, AudioWeightsLayout) else locate_audio_weights(weights)
        args, state = read_motion_generator(layout.motion_generator)
        audio_model = args.audio_model or "hubert_zh"
        if audio_model not in SUPPORTED_AUDIO_MODELS:
            raise WeightsError(f"{layout.motion_generator}: audio_model '{audio_model}' is not supported "
                               f"(only the HuBERT ones: {', '.join(SUPPORTED_AUDIO_MODELS)})")
        generator = MotionGenerator(**generator_kwargs(args, state), legacy_pe=legacy_pe)
        own = {k: v for k, v in state.items() if not k.startswith(ENCODER_PREFIX) and k not in DISCARDED}
        check_state_dict(generator, own, str(layout.motion_generator))
        generator.load_state_dict(own, strict=True)
        hubert = build_hubert(layout.hubert_dir)
        # the encoder fine-tuned in training, stored in the checkpoint, overrides the folder's
        stored = {k[len(ENCODER_PREFIX):]: v for k, v in state.items() if k.startswith(ENCODER_PREFIX)}
        if stored:
            load_hubert_state(hubert, stored, f"{layout.motion_generator} ({ENCODER_PREFIX}*)")
        fps = float(args.fps or 25)
        geometry = WindowGeometry(n_motions=generator.n_motions, fps=fps, pad_mode=args.pad_mode or "zero")
        template = read_motion_template(layout.motion_template)
        return cls(HubertFeatures(hubert, fps), generator, template, geometry).eval()

    @property
    def fps(self) -> float:
        return self.geometry.fps

    # -- one window --------------------------------------------------------------------------------

    @torch.inference_mode()
    def encode(self, samples: torch.Tensor, stages: dict | None = None) -> torch.Tensor:
        """(B, S) window samples -> (B, N, D) audio features."""
        hidden = self.encoder(samples, self.generator.n_motions, stages)
        feat = self.generator.audio_feature_map(hidden)
        if stages is not None:
            stages["audio_feat"] = feat
        return feat

    @torch.inference_mode()
    def sample(self, audio_feat: torch.Tensor, prev_motion: torch.Tensor, prev_audio: torch.Tensor,
               x_T: torch.Tensor, noise, window: int = 0, cfg_scale: float = CFG_SCALE,
               stages: dict | None = None) -> torch.Tensor:
        """x0 (1, N, Mf) by T ancestral steps with classifier-free guidance against the null audio."""
        g = self.generator
        net, sched, n = g.denoising_net, g.diffusion_sched, g.n_motions
        null = g.null_audio_feat.expand(1, n, -1)
        audio2 = torch.cat([null, audio_feat], dim=0)
        prev_m2, prev_a2 = prev_motion.expand(2, -1, -1), prev_audio.expand(2, -1, -1)
        x, xs, outs = x_T, [], []
        for t in range(g.n_diff_steps, 0, -1):
            z = noise.step(window, t, x.shape) if t > 1 else torch.zeros_like(x)
            xs.append(x)
            r = net(x.expand(2, -1, -1), audio2, prev_m2, prev_a2, torch.full((2,), t, dtype=torch.long))
            outs.append(r)
            r_u, r_c = r[0:1, -n:], r[1:2, -n:]
            x0 = r_u + cfg_scale * (r_c - r_u)
            c0, c1, sigma = ddpm_coefficients(sched, t)
            x = c0 * x + c1 * x0 + sigma * z
        if stages is not None:
            stages.update(xt=torch.cat(xs), denoiser_out_tT=outs[0], denoiser_out_t1=outs[-1], motion_feat=x)
        return x

    # -- a whole stream ------------------------------------------------------------------------------

    @torch.inference_mode()
    def stream_coefficients(self, chunks: Iterable[np.ndarray], noise=None, cfg_scale: float = CFG_SCALE,
                            stages: list | None = None) -> Iterator[np.ndarray]:
        """Normalised motion (frames, Mf) window by window: each window's context is the last P frames of
        the previous one's motion and audio features (window 0: the learned start), and every window starts
        from the same x_T, as in the reference. ``stages`` (a list) receives each window's intermediates."""
        g = self.generator
        noise = noise if noise is not None else RandomNoise()
        prev_motion, prev_audio = g.start_motion_feat, g.start_audio_feat
        x_T = None
        for w, (samples, keep) in enumerate(iter_windows(chunks, self.geometry)):
            st = {} if stages is not None else None
            feat = self.encode(torch.from_numpy(samples)[None], st)
            if x_T is None:
                x_T = noise.initial((1, g.n_motions, g.motion_feat_dim))
            if st is not None:
                st.update(audio=samples, keep=keep, prev_motion_in=prev_motion.detach(),
                          prev_audio_in=prev_audio.detach())
            x0 = self.sample(feat, prev_motion, prev_audio, x_T, noise, w, cfg_scale, st)
            prev_motion, prev_audio = x0[:, -g.n_prev_motions:], feat[:, -g.n_prev_motions:]
            if stages is not None:
                stages.append(st)
            yield x0[0, :keep].numpy()

    def stream(self, chunks: Iterable[np.ndarray], noise=None, cfg_scale: float = CFG_SCALE,
               smooth_alpha: float | None = None) -> Iterator[dict[str, np.ndarray]]:
        """LivePortrait motion per window: exp (F, 21, 3), scale (F, 1), t (F, 3), pitch/yaw/roll (F, 1,
        degrees), R (F, 3, 3), coef (F, Mf). ``smooth_alpha`` (the reference uses 0.01) smooths head pose and
        scale causally across windows; None leaves them raw."""
        smoother = EmaSmoother(smooth_alpha) if smooth_alpha is not None else None
        for coef in self.stream_coefficients(chunks, noise, cfg_scale):
            m = denormalize(coef, self.template)
            if smoother is not None:
                m = smoother(m)
            yield {**m, "coef": coef}
