"""Conformance entry point: compute, from a fixture's inputs alone, every output the reference produced.

``run_fixture`` never sees expected outputs. Tests compare its result with the kit in
``../shared/conformance`` (synthetic weights in the released format), which proves that a user's
downloaded weights give the reference pictures.
"""

from __future__ import annotations

import functools
import hashlib
import os
from fractions import Fraction

import numpy as np
import torch

from .animator import Animator
from .motion import keypoints as kpm
from .motion.compose import Motion, MotionOptions
from .networks import LivePortraitNetworks
from .speed import accelerate, pick_backend


@functools.lru_cache(maxsize=2)
def _networks(weights_dir: str, backend: str):
    nets = LivePortraitNetworks.from_pretrained(weights_dir, locate=False)
    return accelerate(nets, pick_backend(backend, "cpu", "fp32"))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def image_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, H, W) float32 in [0, 1], divided as the reference does."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).float() / 255.0
    return x.clamp(0, 1).permute(2, 0, 1)[None]


@torch.inference_mode()
def module_outputs(nets, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    src = image_to_tensor(inputs["source_rgb_256"])

    out["F_out"] = _np(nets.F(src))

    raw = nets.M(src)
    for k, v in vars(raw).items():
        out[f"M_raw_{k}"] = _np(v)
    info = kpm.kp_info(raw)
    for k, v in info.items():
        out[f"info_{k}"] = _np(v)
    R_s = kpm.rotation_matrix(info["pitch"], info["yaw"], info["roll"])
    out["R_s"] = _np(R_s)
    x_s = kpm.transform_keypoints(info["kp"], R_s, info["exp"], info["scale"], info["t"])
    out["x_s"] = _np(x_s)

    angles = torch.from_numpy(inputs["rot_probe_angles_deg"]).float()
    out["rot_probe_R"] = _np(kpm.rotation_matrix(angles[:, 0], angles[:, 1], angles[:, 2]))
    out["headpose_probe_deg"] = _np(kpm.headpose_to_degrees(torch.from_numpy(inputs["headpose_probe_bins"])))

    kp_s = torch.from_numpy(inputs["W_kp_source"]).float()
    kp_d = torch.from_numpy(inputs["W_kp_driving"]).float()
    f_s = torch.from_numpy(out["F_out"])
    w = nets.W(f_s, kp_driving=kp_d, kp_source=kp_s)
    out["W_out"] = _np(w.out)
    out["W_occlusion_map"] = _np(w.occlusion_map)
    out["W_deformation"] = _np(w.deformation)
    out["G_out"] = _np(nets.G(w.out))

    delta = nets.S.stitch_delta(kp_s, kp_d)
    out["S_stitch_delta"] = _np(delta)
    out["S_stitching_kp"] = _np(kpm.apply_stitching(kp_d, delta))
    out["S_eye_delta"] = _np(nets.S.eye_delta(x_s, torch.from_numpy(inputs["S_eye_ratio"]).float()))
    out["S_lip_delta"] = _np(nets.S.lip_delta(x_s, torch.from_numpy(inputs["S_lip_ratio"]).float()))
    return out


# fixture variant -> options of the real pipeline (all others at the reference CLI defaults)
PIPELINE_VARIANTS: dict[str, dict] = {
    "default": {},
    "pose_friendly": {"driving_option": "pose-friendly"},
    "no_stitching": {"stitching": False},
    "absolute": {"relative": False},
    "absolute_no_stitching": {"relative": False, "stitching": False},
    "region_exp": {"region": "exp"},
    "region_pose": {"region": "pose"},
    "region_lip": {"region": "lip"},
    "region_eyes": {"region": "eyes"},
    "multiplier_1p5": {"multiplier": 1.5},
    "pose_friendly_multiplier_0p5": {"driving_option": "pose-friendly", "multiplier": 0.5},
}
IMAGE_DRIVING_VARIANTS = {"image_driving": {}, "image_driving_absolute": {"relative": False}}
RENDERED = {"default": 3, "image_driving": 1, "image_driving_absolute": 1}


def template_motion(inputs: dict[str, np.ndarray]) -> Motion:
    n = inputs["template_motion_R"].shape[0]
    return Motion(
        R=torch.from_numpy(inputs["template_motion_R"]).float().reshape(n, 3, 3),
        exp=torch.from_numpy(inputs["template_motion_exp"]).float().reshape(n, -1, 3),
        t=torch.from_numpy(inputs["template_motion_t"]).float().reshape(n, 3),
        scale=torch.from_numpy(inputs["template_motion_scale"]).float().reshape(n, 1),
    )


def pipeline_outputs(animator: Animator, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Driving keypoints of every variant, and rendered frames, through the pipeline's own code."""
    out: dict[str, np.ndarray] = {}
    src = animator.prepare_source(inputs["source_rgb_256"])
    drv = template_motion(inputs)
    cases = [(name, opts, drv, drv[0], True) for name, opts in PIPELINE_VARIANTS.items()]
    cases += [(name, opts, drv[0], None, False) for name, opts in IMAGE_DRIVING_VARIANTS.items()]
    for name, opts, frames, ref, is_video in cases:
        x_d = animator.driving_keypoints(src, frames, ref, MotionOptions(**opts), driving_is_video=is_video)
        out[f"pipe_{name}_kp_driving"] = _np(x_d)
        if name in RENDERED:
            out[f"pipe_{name}_out"] = _np(animator.render(src, x_d[: RENDERED[name]]))
    return out


# video-to-video fixture variant -> options (a MotionOptions field, or an AnimateConfig one such as the
# smoothing variance); every other option keeps the reference CLI default
VIDEO_VARIANTS: dict[str, dict] = {
    "default": {},
    "no_smooth": {"source_video_smooth": 0.0},
    "smooth_strong": {"source_video_smooth": 1e-3},
    "eye_retarget": {"source_video_eye_retargeting": True},
    "normalize_lip": {"normalize_lip": True},
    "pre_deltas_no_stitching": {"source_video_eye_retargeting": True, "normalize_lip": True, "stitching": False},
    "no_stitching": {"stitching": False},
    "region_exp": {"region": "exp"},
    "region_pose": {"region": "pose"},
    "region_lip": {"region": "lip"},
    "region_eyes": {"region": "eyes"},
    "absolute": {"relative": False},
    "absolute_region_exp": {"relative": False, "region": "exp"},
    "absolute_region_pose": {"relative": False, "region": "pose"},
    "pose_friendly": {"driving_option": "pose-friendly"},
    "multiplier_1p5": {"multiplier": 1.5},
}
VIDEO_IMAGE_DRIVING_VARIANTS = {"image_driving": {}, "image_driving_absolute": {"relative": False}}
VIDEO_RENDERED = {"default": 2}


class FixtureLandmarks:
    """A face backend that knows a fixture's frames: it finds one face per frame, with the fixture's
    203 landmarks (synthetic: no landmark model runs here), so that the product's own ``Cropper``
    measures the eye and lip ratios from them as it does from a real landmark model's."""

    num_landmarks = 203

    def __init__(self, frames, landmarks):
        self._landmarks = {self._key(f): np.asarray(lm, np.float32) for f, lm in zip(frames, landmarks)}

    @staticmethod
    def _key(image: np.ndarray) -> bytes:
        return hashlib.sha1(np.ascontiguousarray(image).tobytes()).digest()

    def detect(self, image_rgb: np.ndarray, thorough: bool = False) -> list:
        from .face.backend import Face

        lm = self._landmarks.get(self._key(image_rgb))
        if lm is None:
            return []
        return [Face(box=np.concatenate([lm.min(0), lm.max(0)]).astype(np.float64), score=1.0, source="fixture")]

    def landmarks(self, image_rgb: np.ndarray, face) -> np.ndarray | None:
        return self._landmarks.get(self._key(image_rgb))


def _driving(motion: Motion, is_video: bool):
    from .media import MotionTemplate
    from .pipeline import DrivingMotion

    template = MotionTemplate(fps=25, R=motion.R.numpy(), exp=motion.exp.numpy(), t=motion.t.numpy(),
                              scale=motion.scale.numpy())
    return DrivingMotion(template, is_video=is_video)


def video_outputs(nets, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The ``v2v_*`` outputs of a video-to-video fixture through the pipeline's own source-video path:
    pass 1 (``source.video_motions``), the keypoints of every variant (``video_keypoints``: composition,
    Kalman smoothing, pre-animation deltas, stitching) and pass 2 (``frames.animate_video``). The frames are
    taken as already framed (``--crop none``, no paste-back), as the reference was run."""
    from .config import AnimateConfig
    from .face.cropper import Cropper
    from .pipeline import Pipeline
    from .plan import STILL_FPS, MediaInput

    frames = list(inputs["v2v_source_rgb_256"])
    cropper = Cropper(FixtureLandmarks(frames, inputs["v2v_source_lmk"]))
    fps = float(inputs["v2v_fps"]) if "v2v_fps" in inputs else 0.0
    source = MediaInput(path=None, kind="video", frames=len(frames),
                        fps=Fraction(fps).limit_denominator(1001) if fps > 0 else STILL_FPS, sequence=frames)
    drv = template_motion(inputs)
    video, image = _driving(drv, True), _driving(drv[0], False)
    base = AnimateConfig(crop="none", paste_back=False)
    record = Pipeline(nets, base, cropper).source.video_motions(source, len(video))[0]

    out: dict[str, np.ndarray] = {}
    motion = record.motion
    for j, name in enumerate(("pitch", "yaw", "roll")):
        out[f"v2v_{name}"] = _np(record.angles[:, j:j + 1])
    out.update(v2v_kp=_np(record.kp), v2v_exp=_np(motion.exp), v2v_t=_np(motion.t), v2v_scale=_np(motion.scale),
               v2v_R_s=_np(motion.R), v2v_x_s=_np(record.x_s))

    config_fields = set(AnimateConfig.field_names())
    cases = [(name, opts, video) for name, opts in VIDEO_VARIANTS.items()]
    cases += [(name, opts, image) for name, opts in VIDEO_IMAGE_DRIVING_VARIANTS.items()]
    for name, opts, driving in cases:
        motion_opts = {k: v for k, v in opts.items() if k not in config_fields}
        config = base.but(motion=MotionOptions(**motion_opts), **{k: v for k, v in opts.items() if k in config_fields})
        pipe = Pipeline(nets, config, cropper)
        x_d = pipe.frames.video_keypoints(record, driving)
        out[f"v2v_{name}_kp_driving"] = _np(x_d)
        if name in VIDEO_RENDERED:
            renders = [torch.cat([r for _, r in faces]) if faces else torch.empty(0, 3, 512, 512)
                       for _, faces in pipe.frames.video_renders(source, record, x_d[: VIDEO_RENDERED[name]])]
            out[f"v2v_{name}_out"] = _np(torch.cat(renders))
    return out


def run_fixture(inputs: dict[str, np.ndarray], weights_dir: str | os.PathLike,
                backend: str = "auto") -> dict[str, np.ndarray]:
    """Every module-level, pipeline-level and video-to-video output key of a conformance fixture.

    ``backend="auto"`` computes as ``liveportrait animate`` does on a CPU in float32 (the fast exact
    rewrites); ``"eager"`` runs the plain modules, as on a GPU.
    """
    nets = _networks(str(weights_dir), backend)
    out: dict[str, np.ndarray] = {}
    if "source_rgb_256" in inputs:
        out.update(module_outputs(nets, inputs))
        if "template_motion_R" in inputs:
            out.update(pipeline_outputs(Animator(nets, "cpu", "fp32"), inputs))
    if "v2v_source_rgb_256" in inputs:
        out.update(video_outputs(nets, inputs))
    return out


# ---------------------------------------------------------------------------------------------------
# audio driving (JoyVASA): the kit in ../shared/conformance-audio

# audio fixture variant -> (MotionOptions changes from JoyVASA's defaults, smoothing on)
AUDIO_VARIANTS: dict[str, tuple[dict, bool]] = {
    "default": ({}, True),
    "no_smooth": ({}, False),
    "stitching": ({"stitching": True}, True),
    "relative": ({"relative": True}, True),
    "relative_stitching": ({"relative": True, "stitching": True}, True),
    "relative_pose_friendly": ({"relative": True, "driving_option": "pose-friendly"}, True),
    "multiplier_1": ({"multiplier": 1.0}, True),
    "region_exp": ({"region": "exp"}, True),
    "region_pose": ({"region": "pose"}, True),
    "region_lip": ({"region": "lip"}, True),
    "region_eyes": ({"region": "eyes"}, True),
}
AUDIO_WINDOW_STAGES = {"audio": "win_audio", "audio_padded": "win_audio_padded", "cnn_features": "win_cnn_features",
                       "hidden": "win_hubert_hidden", "hidden_25fps": "win_hubert_hidden_25fps",
                       "audio_feat": "win_audio_feat", "prev_motion_in": "win_prev_motion_in",
                       "prev_audio_in": "win_prev_audio_in", "xt": "win_xt", "denoiser_out_tT": "win_denoiser_out_tT",
                       "denoiser_out_t1": "win_denoiser_out_t1", "motion_feat": "win_motion_feat"}
UNBATCHED_STAGES = ("audio", "xt", "denoiser_out_tT", "denoiser_out_t1")


@functools.lru_cache(maxsize=1)
def _audio_model(audio_weights_dir: str):
    from .audio.model import AudioMotionModel

    return AudioMotionModel.from_pretrained(audio_weights_dir)


def _audio_coefficients(model, inputs: dict[str, np.ndarray], cfg_scale: float, legacy_pe: bool = False,
                        stages: list | None = None) -> np.ndarray:
    from .audio.sampler import RecordedNoise

    net = model.generator.denoising_net
    net.legacy_pe = legacy_pe
    try:
        noise = RecordedNoise(inputs["noise_xT"], inputs["noise_z"])
        return np.concatenate(list(model.stream_coefficients([inputs["audio_16k"]], noise, cfg_scale, stages)))
    finally:
        net.legacy_pe = False


def run_audio_fixture(inputs: dict[str, np.ndarray], audio_weights_dir: str | os.PathLike,
                      weights_dir: str | os.PathLike, backend: str = "auto") -> dict[str, np.ndarray]:
    """Every output key of an audio-driving fixture (``fixture_espeak.npz``) from its inputs alone: the audio,
    the recorded noise and the source's LivePortrait values (``src_*``, ``source_rgb_256``)."""
    from .animator import PreparedSource
    from .audio.compose import AUDIO_MOTION_OPTIONS, AudioKeypoints, as_motion
    from .audio.defaults import CFG_SCALE
    from .audio.hubert import HubertFeatures, build_hubert
    from .audio.sampler import EmaSmoother, denormalize
    from .audio.weights import locate_audio_weights

    model = _audio_model(str(audio_weights_dir))
    out: dict[str, np.ndarray] = {}
    stages: list[dict] = []
    coef = _audio_coefficients(model, inputs, CFG_SCALE, stages=stages)
    for name, key in AUDIO_WINDOW_STAGES.items():  # per window; batch-of-one stages lose that axis
        arrays = [np.asarray(s[name].cpu() if torch.is_tensor(s[name]) else s[name]) for s in stages]
        out[key] = np.stack([a if name in UNBATCHED_STAGES else a[0] for a in arrays])
    out["win_indicator"] = np.stack([(np.arange(model.generator.n_motions) < s["keep"]).astype(np.float32)
                                     for s in stages])
    # the folder's encoder alone (the checkpoint's fine-tuned copy replaces it in the model)
    folder = HubertFeatures(build_hubert(locate_audio_weights(audio_weights_dir).hubert_dir), model.fps)
    hidden: dict = {}
    folder(torch.from_numpy(out["win_audio"][:1]), model.generator.n_motions, hidden)
    out["folder_hubert_hidden"] = _np(hidden["hidden"])

    out["motion_coef"] = coef
    raw = denormalize(coef, model.template)
    smooth = EmaSmoother()(raw)
    for k in ("exp", "scale", "t", "pitch", "yaw", "roll", "R"):
        out[f"motion_{k}"], out[f"smooth_{k}"] = raw[k], smooth[k]

    nets = _networks(str(weights_dir), backend)
    animator = Animator(nets, "cpu", "fp32")
    t = {k: torch.from_numpy(np.asarray(inputs[f"src_{k}"], np.float32)) for k in ("kp", "exp", "t", "scale", "R",
                                                                                     "x_s")}
    src_motion = Motion(R=t["R"], exp=t["exp"], t=t["t"], scale=t["scale"])
    for name, (changes, smoothed) in AUDIO_VARIANTS.items():
        keypoints = AudioKeypoints(t["kp"], src_motion, t["x_s"], AUDIO_MOTION_OPTIONS.but(**changes),
                                   nets.S.stitch_delta)
        out[f"pipe_{name}_kp_driving"] = _np(keypoints(as_motion(smooth if smoothed else raw)))
    src = PreparedSource(f_s=animator.appearance(inputs["source_rgb_256"]), kp_c=t["kp"], motion=src_motion,
                         x_s=t["x_s"])
    out["pipe_default_out"] = _np(animator.render(src, torch.from_numpy(out["pipe_default_kp_driving"][:1])))

    out["cfg2p0_motion_coef"] = _audio_coefficients(model, inputs, 2.0)
    out["legacy_pe_motion_coef"] = _audio_coefficients(model, inputs, CFG_SCALE, legacy_pe=True)
    return out

