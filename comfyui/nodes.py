"""The LivePortrait nodes, in ComfyUI's classic node API, each a thin layer over ``liveportrait.LivePortraitPipeline``.

Importing this module loads neither torch nor ComfyUI: the library is imported when a node runs, and
ComfyUI's pieces (model folders, progress bar, cancel check, device) are looked up then too (``host.py``).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

from liveportrait import config

from . import host
from .values import (
    FrameBatch,
    LPMotion,
    LPSource,
    NodeError,
    check_audio,
    check_image,
    cut_audio,
    fraction,
    frame_u8,
    iter_frames_u8,
    silence,
    write_wav,
)

CATEGORY = "LivePortrait"
FACES = ["largest", "all"] + [str(i) for i in range(10)]
# the library's own choices and defaults (liveportrait.config imports no torch): written once, there
REGIONS = list(config.REGIONS)
DRIVING_OPTIONS = list(config.DRIVING_OPTIONS)
PRECISIONS = list(config.PRECISIONS)
DEVICES = list(config.DEVICES)
BACKENDS = ["auto", *config.BACKENDS]
TEMPLATE_SUFFIXES = (".pkl", ".lpt.npz")
SWITCH = ["auto", "on", "off"]
AUTO_NOTE = "auto: the library's default for the weights (on for human, off for animal, as the reference)"
LABEL_NOTE = ("IMAGE tensors cannot carry the file label that marks the result as generated; the frames carry the "
              "invisible watermark. Keep the label by saving with 'Save video (LivePortrait)', or check a file "
              "with `liveportrait verify FILE`.")


def _interrupt_type():
    mm = host._module("comfy.model_management")
    return getattr(mm, "InterruptProcessingException", None) if mm is not None else None


def one_line_errors(fn):
    """Any failure of a node as a NodeError whose message is one line (ComfyUI shows it); a cancel passes as is."""

    @functools.wraps(fn)
    def run(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except Exception as exc:
            interrupt = _interrupt_type()
            if interrupt is not None and isinstance(exc, interrupt):
                raise
            if isinstance(exc, NodeError):
                raise
            text = str(exc).strip() or type(exc).__name__
            raise NodeError(f"{type(self).__name__}: {text}") from exc

    return run


# -- the pipeline cache: one per distinct setting, shared by every node instance and run ----------------------

_PIPES: OrderedDict = OrderedDict()
PIPE_CACHE_SIZE = 2


def _weights_choices() -> list[str]:
    names = ["auto"]
    for folder in host.model_folders():
        names += sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in names)
    return names


def _resolve_weights(weights: str, weights_dir: str) -> str | None:
    if weights_dir.strip():
        path = Path(weights_dir.strip()).expanduser()
        if not path.is_dir():
            raise NodeError(f"weights folder {path} does not exist")
        return str(path.resolve())
    folders = host.model_folders()
    if weights != "auto":
        for folder in folders:
            if (folder / weights).is_dir():
                return str((folder / weights).resolve())
        raise NodeError(f"no folder {weights!r} in ComfyUI's models/{host.MODEL_FOLDER}")
    for folder in folders:  # ComfyUI's models/liveportrait when it holds weights, else the library's search path
        if any(p.suffix in (".pth", ".safetensors") for p in folder.rglob("*")):
            return str(folder.resolve())
    return None


def load_pipeline(weights: str | None, variant: str, precision: str, device: str, backend: str, download: bool):
    key = (weights, variant, precision, device, backend, bool(download))
    if key in _PIPES:
        _PIPES.move_to_end(key)
        return _PIPES[key]
    from liveportrait import LivePortraitPipeline

    pipe = LivePortraitPipeline.from_pretrained(weights, device=device, precision=precision, backend=backend,
                                                variant=variant, download=download, quiet=True)
    pipe.set_progress_bar_config(disable=True)  # ComfyUI's progress bar instead
    _PIPES[key] = pipe
    while len(_PIPES) > PIPE_CACHE_SIZE:
        _PIPES.popitem(last=False)
    return pipe


class LoadLivePortrait:
    DESCRIPTION = ("Loads the LivePortrait networks (human or animal) once per distinct setting; later runs reuse "
                   "them. Weights: ComfyUI's models/liveportrait (the released hub layout or safetensors), a folder "
                   "named in weights_dir, or the library's search path.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("LIVEPORTRAIT_PIPE",)
    RETURN_NAMES = ("pipe",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "weights": (_weights_choices(), {"default": "auto", "tooltip": "a folder of models/liveportrait; "
                                                 "auto: that folder when it holds weights, else the library's "
                                                 "search path"}),
                "variant": (["human", "animal"], {"default": "human"}),
                "precision": (PRECISIONS, {"default": "auto"}),
                "device": (DEVICES, {"default": "auto", "tooltip": "auto: ComfyUI's device"}),
            },
            "optional": {
                "weights_dir": ("STRING", {"default": "", "tooltip": "any folder of weights (overrides weights)"}),
                "backend": (BACKENDS, {"default": "auto"}),
                "allow_download": ("BOOLEAN", {"default": False, "tooltip": "fetch the released weights into the "
                                               "user cache when none are found"}),
            },
        }

    @one_line_errors
    def load(self, weights, variant, precision, device, weights_dir="", backend="auto", allow_download=False):
        folder = _resolve_weights(weights, weights_dir)
        if device == "auto":
            device = host.torch_device()
        return (load_pipeline(folder, variant, precision, device, backend, allow_download),)


# -- the source ---------------------------------------------------------------------------------------------


def _face(value: str):
    return int(value) if value.isdigit() else value


def _config(pipe, **options):
    """The library's config for this pipeline (animal defaults for animal weights) with ``options``."""
    from liveportrait import AnimateConfig
    from liveportrait.api import make_config

    base = AnimateConfig.defaults(getattr(pipe, "variant", "human"))
    return make_config(base, **options)


class PrepareSource:
    DESCRIPTION = ("The picture to animate: one photo, or a batch of frames (a source video at fps). Framing as "
                   "the library's: detect faces (which one, or all), or no crop, or a box x0,y0,x1,y1. Outputs "
                   "the source and its 512 crops for preview.")
    CATEGORY = CATEGORY
    FUNCTION = "prepare"
    RETURN_TYPES = ("LP_SOURCE", "IMAGE")
    RETURN_NAMES = ("source", "crops")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "pipe": ("LIVEPORTRAIT_PIPE",),
                "image": ("IMAGE",),
                "crop": (["auto", "none", "box"], {"default": "auto"}),
                "face": (FACES, {"default": "largest"}),
                "scale": ("FLOAT", {"default": config.SOURCE_SCALE, "min": 1.0, "max": 4.0, "step": 0.05}),
                "vx": ("FLOAT", {"default": 0.0, "min": -0.5, "max": 0.5, "step": 0.01}),
                "vy": ("FLOAT", {"default": config.SOURCE_VY, "min": -0.5, "max": 0.5, "step": 0.005}),
                "fps": ("FLOAT", {"default": 25.0, "min": 1.0, "max": 240.0, "step": 0.001,
                                  "tooltip": "the rate of a source video (a batch of frames)"}),
            },
            "optional": {
                "crop_box": ("STRING", {"default": "", "tooltip": "x0,y0,x1,y1 in pixels, for crop = box"}),
            },
        }

    @one_line_errors
    def prepare(self, pipe, image, crop, face, scale, vx, vy, fps, crop_box=""):
        check_image(image, "source image")
        if crop == "box":
            if not crop_box.strip():
                raise NodeError("PrepareSource: crop = box needs a crop_box x0,y0,x1,y1")
            crop = crop_box.strip()
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise NodeError(f"PrepareSource: fps must be a positive number, got {fps!r}")
        options = {"crop": crop, "face": _face(face), "source_scale": float(scale), "source_vx": float(vx),
                   "source_vy": float(vy)}
        config = _config(pipe, **options)  # checks every option now
        source = LPSource(image, float(fps), options)
        first = source.photo()
        crops = pipe.engine(config).source.crops(first)
        batch = FrameBatch(len(crops))
        for fc in crops:
            batch.add(fc.crop_512 if fc is not None else _square_512(first))
        return source, batch.result()


def _square_512(image):
    import cv2

    return cv2.resize(image, (512, 512), interpolation=cv2.INTER_AREA)


# -- motion -------------------------------------------------------------------------------------------------


class MotionFromFrames:
    DESCRIPTION = ("The motion of driving frames (an IMAGE batch at fps) as a motion template; the optional "
                   "audio goes with it to Animate's output. Frames are read one at a time.")
    CATEGORY = CATEGORY
    FUNCTION = "extract"
    RETURN_TYPES = ("LP_MOTION",)
    RETURN_NAMES = ("motion",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "pipe": ("LIVEPORTRAIT_PIPE",),
                "images": ("IMAGE",),
                "fps": ("FLOAT", {"default": 25.0, "min": 1.0, "max": 240.0, "step": 0.001}),
            },
            "optional": {
                "audio": ("AUDIO",),
                "crop_driving": (["auto", "always", "never"], {"default": "auto"}),
            },
        }

    @one_line_errors
    def extract(self, pipe, images, fps, audio=None, crop_driving="auto"):
        from liveportrait import VideoFrames

        check_image(images, "driving frames")
        if audio is not None:
            check_audio(audio, "driving audio")
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise NodeError(f"MotionFromFrames: fps must be a positive number, got {fps!r}")
        progress = host.Progress(int(images.shape[0]))
        if int(images.shape[0]) == 1:  # one picture: a driving image, as the library treats a photo
            progress.step()
            template = replace(pipe.motion(frame_u8(images, 0), crop_driving=crop_driving), fps=fraction(fps))
        else:
            template = pipe.motion(VideoFrames(iter_frames_u8(images, progress), fraction(fps)),
                                   crop_driving=crop_driving)
        return (LPMotion("template", template, audio=audio),)


def _template_files() -> list[str]:
    folder = host.input_directory()
    if folder is None or not folder.is_dir():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.endswith(TEMPLATE_SUFFIXES))


class LoadMotion:
    DESCRIPTION = ("A motion template from a file: the reference's .pkl (read by the library's restricted reader: "
                   "a pickle holding code is refused) or .lpt.npz; optionally a range of its frames.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("LP_MOTION",)
    RETURN_NAMES = ("motion",)

    @classmethod
    def INPUT_TYPES(cls):
        files = _template_files()
        return {
            "required": {
                "template": (files or [""], {"tooltip": "a .pkl or .lpt.npz in ComfyUI's input folder"}),
                "start_frame": ("INT", {"default": 0, "min": 0, "max": 1_000_000}),
                "frame_count": ("INT", {"default": 0, "min": 0, "max": 1_000_000, "tooltip": "0: to the end"}),
            },
            "optional": {
                "path": ("STRING", {"default": "", "tooltip": "any template file (overrides template)"}),
            },
        }

    @one_line_errors
    def load(self, template, start_frame, frame_count, path=""):
        from liveportrait import load_template

        if path.strip():
            file = Path(path.strip()).expanduser()
        else:
            folder = host.input_directory()
            if not template or folder is None:
                raise NodeError("LoadMotion: no template chosen (put .pkl or .lpt.npz files in ComfyUI's input "
                                "folder, or give a path)")
            file = folder / template
        if not file.name.endswith(TEMPLATE_SUFFIXES):
            raise NodeError(f"LoadMotion: {file.name} is not a motion template (.pkl or .lpt.npz)")
        tpl = load_template(file)
        if start_frame >= tpl.n_frames:
            raise NodeError(f"LoadMotion: start_frame {start_frame} is past the template's {tpl.n_frames} frames")
        if start_frame or frame_count:
            tpl = tpl.slice(start_frame, start_frame + frame_count if frame_count else None)
        return (LPMotion("template", tpl),)


def _next_path(folder: Path, prefix: str, suffix: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if Path(prefix).name != prefix or not prefix.strip() or prefix.startswith("."):
        raise NodeError(f"filename_prefix must be a plain file name, got {prefix!r}")
    i = 1
    while (folder / f"{prefix}_{i:05d}{suffix}").exists():
        i += 1
    return folder / f"{prefix}_{i:05d}{suffix}"


class SaveMotion:
    DESCRIPTION = "Saves a motion template as .lpt.npz in ComfyUI's output folder, to drive later runs."
    CATEGORY = CATEGORY
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"motion": ("LP_MOTION",),
                             "filename_prefix": ("STRING", {"default": "liveportrait_motion"})}}

    @one_line_errors
    def save(self, motion, filename_prefix):
        from liveportrait import save_template

        if not isinstance(motion, LPMotion) or motion.kind != "template":
            kind = getattr(motion, "kind", type(motion).__name__)
            raise NodeError(f"SaveMotion: only a motion template can be saved, got {kind} motion")
        path = _next_path(host.output_directory(), filename_prefix, ".lpt.npz")
        save_template(path, motion.template)
        return {"ui": {"text": [str(path)]}, "result": (str(path),)}


class MotionFromSpeech:
    DESCRIPTION = ("Motion from speech (JoyVASA): ComfyUI AUDIO + seed, optionally the head pose of another "
                   "motion. Needs the audio extra (pip install 'liveportrait[audio]') and the audio weights "
                   "(liveportrait download --audio).")
    CATEGORY = CATEGORY
    FUNCTION = "speak"
    RETURN_TYPES = ("LP_MOTION",)
    RETURN_NAMES = ("motion",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "audio": ("AUDIO",),
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1}),
            },
            "optional": {
                "pose": ("LP_MOTION", {"tooltip": "head pose from this motion template instead of the model's"}),
                "audio_weights": ("STRING", {"default": "", "tooltip": "the JoyVASA folder; empty: the search path"}),
                "max_seconds": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 36000.0, "step": 0.1,
                                          "tooltip": "use only the beginning (0: all)"}),
            },
        }

    @one_line_errors
    def speak(self, audio, seed, pose=None, audio_weights="", max_seconds=0.0):
        import importlib.util

        check_audio(audio, "speech")
        if importlib.util.find_spec("transformers") is None:
            raise NodeError("MotionFromSpeech: speech driving needs the audio extra: pip install "
                            "'liveportrait[audio]' into ComfyUI's Python (or bash scripts/install.sh audio)")
        from liveportrait import WeightsError
        from liveportrait.audio import locate_audio_weights

        try:
            layout = locate_audio_weights(audio_weights.strip() or None)
        except WeightsError as exc:
            raise NodeError(f"MotionFromSpeech: {exc} (fetch them with: liveportrait download --audio)") from None
        if pose is not None and (not isinstance(pose, LPMotion) or pose.kind != "template"):
            raise NodeError("MotionFromSpeech: pose takes a motion template (from frames or a file)")
        return (LPMotion("speech", audio=audio, seed=int(seed), pose=pose.template if pose is not None else None,
                         audio_weights=str(layout.root), max_seconds=float(max_seconds) or None),)


class MotionsPerFace:
    DESCRIPTION = "One driving motion per face of the source (left to right), for a source framed with face = all."
    CATEGORY = CATEGORY
    FUNCTION = "combine"
    RETURN_TYPES = ("LP_MOTION",)
    RETURN_NAMES = ("motion",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"motion_1": ("LP_MOTION",), "motion_2": ("LP_MOTION",)},
                "optional": {"motion_3": ("LP_MOTION",), "motion_4": ("LP_MOTION",)}}

    @one_line_errors
    def combine(self, motion_1, motion_2, motion_3=None, motion_4=None):
        parts = [m for m in (motion_1, motion_2, motion_3, motion_4) if m is not None]
        for i, m in enumerate(parts, 1):
            if not isinstance(m, LPMotion) or m.kind != "template":
                raise NodeError(f"MotionsPerFace: motion_{i} must be a motion template, got "
                                f"{getattr(m, 'kind', type(m).__name__)}")
        return (LPMotion("per_face", parts=parts, audio=parts[0].audio),)


# -- animate ------------------------------------------------------------------------------------------------


class Animate:
    DESCRIPTION = ("Animates the source with the motion (frames, a template, speech, an edit): frames pasted back, "
                   "the 512 crops, the sound of the driving or speech, and the frame rate. " + LABEL_NOTE)
    CATEGORY = CATEGORY
    FUNCTION = "animate"
    RETURN_TYPES = ("IMAGE", "IMAGE", "AUDIO", "FLOAT")
    RETURN_NAMES = ("frames", "crops", "audio", "fps")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "pipe": ("LIVEPORTRAIT_PIPE",),
                "source": ("LP_SOURCE",),
                "motion": ("LP_MOTION",),
                "region": (REGIONS, {"default": "all"}),
                "multiplier": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 3.0, "step": 0.05}),
                "relative": ("BOOLEAN", {"default": True}),
                "driving_option": (DRIVING_OPTIONS, {"default": "expression-friendly"}),
                "stitching": (SWITCH, {"default": "auto", "tooltip": AUTO_NOTE}),
                "eye_retargeting": ("BOOLEAN", {"default": False}),
                "lip_retargeting": ("BOOLEAN", {"default": False}),
                "normalize_lip": ("BOOLEAN", {"default": False}),
                "reference_frame": ("INT", {"default": 0, "min": -1, "max": 1_000_000,
                                            "tooltip": "the driving frame taken as neutral; -1: auto"}),
                "smooth": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 1e-7,
                                     "tooltip": "Kalman smoothing of a photo's driving motion (0: off)"}),
                "paste_back": (SWITCH, {"default": "auto", "tooltip": AUTO_NOTE}),
            },
            "optional": {
                "watermark": ("BOOLEAN", {"default": True, "tooltip": "the invisible mark in the frames"}),
            },
        }

    @one_line_errors
    def animate(self, pipe, source, motion, region, multiplier, relative, driving_option, stitching,
                eye_retargeting, lip_retargeting, normalize_lip, reference_frame, smooth, paste_back,
                watermark=True):
        from liveportrait import VideoFrames
        from liveportrait.provenance import Stamp

        if not isinstance(source, LPSource):
            raise NodeError("Animate: source must come from 'Prepare source (LivePortrait)'")
        if not isinstance(motion, LPMotion):
            raise NodeError("Animate: motion must come from a LivePortrait motion node")
        stamp = Stamp(watermark=bool(watermark))
        if motion.kind == "edit":
            switches = {"stitching": True, "paste_back": True, **_switches(stitching=stitching, paste_back=paste_back)}
            return self._edit(pipe, source, motion, switches["stitching"], switches["paste_back"], stamp)
        options = dict(source.options, region=region, multiplier=float(multiplier), relative=bool(relative),
                       driving_option=driving_option, eye_retargeting=bool(eye_retargeting),
                       lip_retargeting=bool(lip_retargeting), normalize_lip=bool(normalize_lip),
                       reference_frame="auto" if reference_frame < 0 else int(reference_frame), smooth=float(smooth))
        options.update(_switches(stitching=stitching, paste_back=paste_back))
        src = VideoFrames(source.video_frames(), fraction(source.fps)) if source.is_video else source.photo()
        wav = None
        try:
            if motion.kind == "speech":
                if source.is_video:
                    raise NodeError("Animate: speech drives a photo; give one picture as the source")
                wav = write_wav(motion.audio)
                out = pipe(src, audio=str(wav), seed=motion.seed, audio_weights=motion.audio_weights,
                           pose_from=motion.pose, max_seconds=motion.max_seconds, **options)
            else:
                driving = motion.template if motion.kind == "template" else [m.template for m in motion.parts]
                out = pipe(src, driving, **options)
            frames, crops = self._frames(out, stamp, _config(pipe, **options).paste_back)
        finally:
            if wav is not None:
                wav.unlink(missing_ok=True)
        fps = float(out.fps)  # the source video's rate, else the driving's (25 for a still)
        seconds = int(frames.shape[0]) / fps
        audio = motion.audio if motion.audio is not None else None
        audio = cut_audio(audio, seconds) if audio is not None else silence(seconds)
        return frames, crops, audio, fps

    @staticmethod
    def _frames(out, stamp, pasted: bool):
        """Every frame of the output into one IMAGE batch, marked; the 512 crops beside it."""
        from liveportrait.face.geometry import warp

        total = out.frame_count
        frames = FrameBatch(total)
        face_crops = [c for c in out.crops if c is not None]
        # a photo pasted back: each face cut out of the frame again, as the source was framed
        cut = pasted and bool(face_crops) and len(face_crops) == len(out.crops)
        crops = FrameBatch(total) if cut else None
        progress = host.Progress(total)
        it = iter(out)
        try:
            for frame in it:
                marked = stamp.mark(frame)
                frames.add(marked)
                if crops is not None:
                    import numpy as np

                    parts = [warp(marked, fc.M_o2c, 512) for fc in face_crops]
                    crops.add(parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1))
                progress.step()
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()  # stops the library's read-ahead thread at once
        result = frames.result()
        if crops is None:
            return result, result  # the frames are the crops (no paste-back), or a source video's: the same tensor
        return result, crops.result()

    def _edit(self, pipe, source, motion, stitching, paste_back, stamp):
        if source.is_video:
            raise NodeError("Animate: an expression edit applies to a photo; give one picture as the source")
        prepared = _prepare_edit(pipe, source)
        image = stamp.mark(pipe.edit(prepared, stitching=bool(stitching), paste_back=bool(paste_back),
                                     **motion.controls))
        crop = image if not paste_back else stamp.mark(pipe.edit(prepared, stitching=bool(stitching),
                                                                 paste_back=False, **motion.controls))
        frames, crops = FrameBatch(1), FrameBatch(1)
        frames.add(image)
        crops.add(crop)
        return frames.result(), crops.result(), silence(1 / 25), 25.0


def _switches(**values) -> dict:
    """The on/off options set explicitly; "auto" ones are left to the library's defaults for the weights."""
    for name, v in values.items():
        if v not in SWITCH:
            raise NodeError(f"Animate: {name} must be one of {', '.join(SWITCH)}, got {v!r}")
    return {name: v == "on" for name, v in values.items() if v != "auto"}


# -- the expression editor --------------------------------------------------------------------------------

RATIO_CONTROLS = ("eye_ratio", "lip_ratio")


def _controls():
    from liveportrait.motion.editing import CONTROLS

    return CONTROLS


def combine_edits(earlier: dict, mine: dict) -> dict:
    """An edit on top of an earlier one: offsets add, the z scale multiplies, a ratio set here wins."""
    out = dict(earlier)
    for name, value in mine.items():
        if name in RATIO_CONTROLS:
            if value is not None or name not in out:
                out[name] = value
        elif name == "mov_z":
            out[name] = out.get(name, 1.0) * value
        else:
            out[name] = out.get(name, 0.0) + value
    return out


_EDIT_SOURCES: OrderedDict = OrderedDict()


def _prepare_edit(pipe, source):
    """The photo prepared for editing (crop, F, M), kept for the last few photos so that chained editors reuse it."""
    photo = source.photo()
    o = source.options
    key = (id(pipe), hashlib.sha256(photo.tobytes()).hexdigest(), photo.shape, o["source_scale"], o["source_vx"],
           o["source_vy"])
    if key not in _EDIT_SOURCES:
        _EDIT_SOURCES[key] = pipe.prepare(photo, scale=o["source_scale"], vx=o["source_vx"], vy=o["source_vy"])
        while len(_EDIT_SOURCES) > 4:
            _EDIT_SOURCES.popitem(last=False)
    _EDIT_SOURCES.move_to_end(key)
    return _EDIT_SOURCES[key]


class ExpressionEditor:
    DESCRIPTION = ("Edits a photo's head pose, eyes, lips, smile, wink, eyebrows, gaze and mouth shapes. Returns "
                   "the picture and the edit as a motion: chain editors (the edits add up) or drive Animate with "
                   "it. Ratios below 0 leave the eyes / lips as they are. " + LABEL_NOTE)
    CATEGORY = CATEGORY
    FUNCTION = "edit"
    RETURN_TYPES = ("IMAGE", "LP_MOTION")
    RETURN_NAMES = ("image", "motion")

    @classmethod
    def INPUT_TYPES(cls):
        required = {"pipe": ("LIVEPORTRAIT_PIPE",), "source": ("LP_SOURCE",)}
        for c in _controls():
            if c.name in RATIO_CONTROLS:
                required[c.name] = ("FLOAT", {"default": -1.0, "min": -1.0, "max": c.maximum, "step": c.step,
                                              "tooltip": f"{c.label} (below 0: leave as it is)"})
            else:
                required[c.name] = ("FLOAT", {"default": c.neutral, "min": c.minimum, "max": c.maximum,
                                              "step": c.step, "tooltip": c.label})
        return {
            "required": required,
            "optional": {
                "motion": ("LP_MOTION", {"tooltip": "an earlier edit: this one is added to it"}),
                "stitching": ("BOOLEAN", {"default": True}),
                "paste_back": ("BOOLEAN", {"default": True}),
                "watermark": ("BOOLEAN", {"default": True}),
            },
        }

    @one_line_errors
    def edit(self, pipe, source, motion=None, stitching=True, paste_back=True, watermark=True, **controls):
        from liveportrait.provenance import Stamp

        if not isinstance(source, LPSource):
            raise NodeError("ExpressionEditor: source must come from 'Prepare source (LivePortrait)'")
        if source.is_video:
            raise NodeError("ExpressionEditor: edits a photo; give one picture as the source")
        names = {c.name for c in _controls()}
        unknown = sorted(set(controls) - names)
        if unknown:
            raise NodeError(f"ExpressionEditor: unknown control {', '.join(unknown)}")
        mine = {k: (None if k in RATIO_CONTROLS and v < 0 else float(v)) for k, v in controls.items()}
        earlier = {}
        if motion is not None:
            if not isinstance(motion, LPMotion) or motion.kind != "edit":
                raise NodeError("ExpressionEditor: motion must be an earlier expression edit")
            earlier = motion.controls
        combined = combine_edits(earlier, mine)
        prepared = _prepare_edit(pipe, source)
        image = Stamp(watermark=bool(watermark)).mark(pipe.edit(prepared, stitching=bool(stitching),
                                                                paste_back=bool(paste_back), **combined))
        batch = FrameBatch(1)
        batch.add(image)
        return batch.result(), LPMotion("edit", controls=combined)


# -- saving with the label ------------------------------------------------------------------------------------


class SaveVideo:
    DESCRIPTION = ("Writes frames (and sound) as mp4 or gif in ComfyUI's output folder with the label that marks "
                   "them as generated, keeping the watermark the frames carry (the one place the label survives "
                   "in a graph). Check with `liveportrait verify FILE`.")
    CATEGORY = CATEGORY
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE",),
                "fps": ("FLOAT", {"default": 25.0, "min": 1.0, "max": 240.0, "step": 0.001}),
                "filename_prefix": ("STRING", {"default": "liveportrait"}),
                "format": (["mp4", "gif"], {"default": "mp4"}),
            },
            "optional": {"audio": ("AUDIO",)},
        }

    @one_line_errors
    def save(self, frames, fps, filename_prefix, format, audio=None):
        from liveportrait.media import GifWriter, VideoWriter
        from liveportrait.provenance import Stamp, detect

        check_image(frames, "frames")
        if audio is not None:
            check_audio(audio)
        path = _next_path(host.output_directory(), filename_prefix, "." + format)
        found = detect(frame_u8(frames, 0))
        if found.found and found.payload:  # marked by our nodes: label it with the same run id, mark nothing twice
            stamp = Stamp(run_id=found.payload.hex(), watermark=False)
        else:
            stamp = Stamp()
        wav = write_wav(audio, path.parent) if audio is not None and format == "mp4" else None
        try:
            if format == "gif":
                writer = GifWriter(path, fraction(fps), stamp=stamp)
            else:
                writer = VideoWriter(path, fraction(fps), audio_from=wav, stamp=stamp)
            progress = host.Progress(int(frames.shape[0]))
            with writer:
                for frame in iter_frames_u8(frames, progress):
                    writer.write(frame)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        finally:
            if wav is not None:
                wav.unlink(missing_ok=True)
        ui = {"filename": path.name, "subfolder": "", "type": "output", "format": format}
        return {"ui": {"videos": [ui]}, "result": (str(path),)}


NODE_CLASS_MAPPINGS = {
    "LivePortraitLoad": LoadLivePortrait,
    "LivePortraitPrepareSource": PrepareSource,
    "LivePortraitMotionFromFrames": MotionFromFrames,
    "LivePortraitLoadMotion": LoadMotion,
    "LivePortraitSaveMotion": SaveMotion,
    "LivePortraitMotionFromSpeech": MotionFromSpeech,
    "LivePortraitMotionsPerFace": MotionsPerFace,
    "LivePortraitAnimate": Animate,
    "LivePortraitExpressionEditor": ExpressionEditor,
    "LivePortraitSaveVideo": SaveVideo,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "LivePortraitLoad": "Load LivePortrait",
    "LivePortraitPrepareSource": "Prepare source (LivePortrait)",
    "LivePortraitMotionFromFrames": "Motion from frames (LivePortrait)",
    "LivePortraitLoadMotion": "Load motion template (LivePortrait)",
    "LivePortraitSaveMotion": "Save motion template (LivePortrait)",
    "LivePortraitMotionFromSpeech": "Motion from speech (LivePortrait)",
    "LivePortraitMotionsPerFace": "Motions per face (LivePortrait)",
    "LivePortraitAnimate": "Animate (LivePortrait)",
    "LivePortraitExpressionEditor": "Expression editor (LivePortrait)",
    "LivePortraitSaveVideo": "Save video (LivePortrait)",
}
