"""The Python API, in the conventions of diffusers: ``from_pretrained``, a ``__call__`` that returns an
output object, helpers for IO.

    from liveportrait import LivePortraitPipeline

    pipe = LivePortraitPipeline.from_pretrained()       # the weights search path; downloaded once
    out = pipe("photo.jpg", "driving.mp4")              # checked now; frames come as you iterate
    out.save("animated.mp4")                            # with the driving's sound, marked

The command line runs exactly this (``liveportrait animate`` is plan, ``from_pretrained``, call,
save), so a Python caller gets the same backend, precision, allocator setting and pictures.
"""

from __future__ import annotations

import os
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .config import CRF, AnimateConfig, ComputeOptions, MotionOptions, api_options, with_options
from .errors import InputError
from .plan import JobPlan, plan_job

FrameCallback = Callable[[int, np.ndarray], None]

# the keyword arguments an animation takes: the fields of AnimateConfig and its MotionOptions by name (but the
# compute ones, which belong to the pipeline), from config.py's field metadata
_OPTIONS = api_options(AnimateConfig)


def make_config(base: AnimateConfig | None = None, **options) -> AnimateConfig:
    """``base`` (or the defaults) with ``options`` applied: any field of ``AnimateConfig`` (but the compute
    ones, which belong to the pipeline) or of ``MotionOptions`` by name, or ``motion=`` a whole
    ``MotionOptions``; an unknown name is an InputError naming the valid ones."""
    base = base or AnimateConfig()
    if "motion" in options:
        base = base.but(motion=options.pop("motion"))
    unknown = [k for k in options if k not in _OPTIONS]
    if unknown:
        compute = [k for k in unknown if k in ComputeOptions.__dataclass_fields__]
        where = f" ({', '.join(compute)}: the pipeline's, given to from_pretrained)" if compute else ""
        raise InputError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}{where}; "
                         f"the options are {', '.join(sorted([*_OPTIONS, 'motion']))}")
    config = with_options(base, {_OPTIONS[k]: v for k, v in options.items()})
    if not isinstance(config.motion, MotionOptions):
        raise InputError(f"motion must be a MotionOptions, got {type(config.motion).__name__}")
    return config.check()


class LivePortraitPipeline:
    """Networks loaded once, run on the fastest faithful backend for the device; animate, prepare, edit
    and extract motion with them. Thread-compatible, not thread-safe: one call at a time per pipeline."""

    # device, precision and backend default to the compute block's (config.ComputeOptions: auto)
    def __init__(self, networks, *, device: str = ComputeOptions.device, precision: str = ComputeOptions.precision,
                 backend: str = ComputeOptions.backend, cropper=None, tune_memory: bool = True, variant: str = "human",
                 c2pa=None):
        from .speed import accelerate
        from .speed.backends import networks_precision
        from .speed.compute import resolve_compute

        if tune_memory:
            from .speed.allocator import tune_allocator

            tune_allocator()  # keep freed frames' memory (LIVEPORTRAIT_ALLOCATOR=default opts out)
        self.compute = resolve_compute(device, precision, backend)
        self.variant = variant  # the weights' kind: "animal" pipelines start from the reference's animal defaults
        from .provenance.c2pa import C2paSettings

        # C2PA Content Credentials every output is signed with, unless a call's config has its own (None: none)
        self.c2pa = C2paSettings.coerce(c2pa)
        self.base_networks = networks
        # networks accelerated already (the benchmark's, warmed up) are used as they are
        c = self.compute
        same = networks.backend == c.backend and networks.precision == \
            networks_precision(c.backend, c.device, c.precision)
        self.networks = networks if same else accelerate(networks, c.backend, device=c.device, precision=c.precision)
        from .pipeline.stage import FaceModels

        self.faces = FaceModels(cropper)  # made on first use, shared by every call's stages
        self._progress_kwargs: dict[str, Any] = {}
        from .pipeline.source import SourceCache

        # photos prepared by earlier calls (crop, F, M), so many drivings of one photo prepare it once
        self.source_cache = SourceCache()

    @classmethod
    def from_pretrained(cls, weights: str | os.PathLike | None = None, *, device: str = ComputeOptions.device,
                        backend: str = ComputeOptions.backend, precision: str = ComputeOptions.precision,
                        variant: str = "human",
                        model_config: str | None = None, download: bool = True, tune_memory: bool = True,
                        quiet: bool = False, c2pa=None, cropper=None) -> "LivePortraitPipeline":
        """``weights``: None (``$LIVEPORTRAIT_WEIGHTS``, then the user cache, downloading there once), a
        folder in the released layout (.pth or safetensors), or ``"KwaiVGI/LivePortrait"``.
        ``variant``: "human" or "animal". ``model_config``: a registered configuration's name (``list_models()``),
        by default the one the files are. Offline without weights: a WeightsError saying what to copy where.
        ``c2pa``: sign every output with C2PA Content Credentials: ``C2paSettings(cert, key)`` or a (cert, key)
        pair of PEM paths, checked before the weights load (a CredentialsError when they cannot sign).
        ``cropper``: a face finder already made (the command line's, which looked for the source's face first)."""
        from .config import check_compute
        from .provenance.c2pa import C2paSettings

        # every choice checked before a file is read: a typo fails in milliseconds, not after the load
        if variant not in ("human", "animal"):
            raise InputError(f"variant must be human or animal, got {variant!r}")
        check_compute(device, precision, backend)
        c2pa = C2paSettings.coerce(c2pa)
        from .networks import LivePortraitNetworks, list_models
        from .speed.compute import pick_device

        if model_config is not None and model_config not in list_models():
            raise InputError(f"model_config must be one of {', '.join(list_models())}, got {model_config!r}")
        pick_device(device)
        nets = LivePortraitNetworks.from_pretrained(weights, model_config, animal=variant == "animal",
                                                    download=download, quiet=quiet, announce=not quiet)
        return cls(nets, device=device, precision=precision, backend=backend, tune_memory=tune_memory,
                   variant=variant, c2pa=c2pa, cropper=cropper)

    # -- settings -----------------------------------------------------------------------------------

    def _config(self, config: AnimateConfig | None, **options) -> AnimateConfig:
        """``make_config`` from this pipeline's defaults; animal mode must match the weights loaded."""
        base = config or AnimateConfig.defaults(self.variant)
        return self._check_variant(make_config(base, **options))

    def _check_variant(self, config: AnimateConfig) -> AnimateConfig:
        """Animal mode needs the animal weights and human mode the human ones (checked on every path in)."""
        if config.animal != (self.variant == "animal"):
            raise InputError(f"this pipeline has the {self.variant} weights: animal={config.animal} needs "
                             f"from_pretrained(variant={'animal' if config.animal else 'human'!r})")
        return config

    def set_progress_bar_config(self, **kwargs) -> None:
        """tqdm options for the progress bars (``disable=True`` turns them off), as in diffusers."""
        self._progress_kwargs.update(kwargs)

    @property
    def cropper(self):
        return self.faces.cropper

    @property
    def animal_finder(self):
        """The cat and dog face finder, made once per pipeline (not per call); it skips human faces."""
        return self.faces.animal_finder

    def _progress(self, iterable, total, desc):
        if self._progress_kwargs.get("disable"):
            return iterable
        from tqdm import tqdm

        kwargs = {"unit": "frame", "dynamic_ncols": True, "leave": False, **self._progress_kwargs}
        return tqdm(iterable, total=total, desc=desc, **kwargs)

    def engine(self, config: AnimateConfig, progress=None):
        """The orchestration for one config, on this pipeline's networks, face finder and progress bars
        (or ``progress(iterable, total, description)``, e.g. a web page's)."""
        from .pipeline import Pipeline

        c = self.compute
        self._check_variant(config)
        return Pipeline(self.networks, config.but(device=c.device, precision=c.precision, backend=c.backend,
                                                  c2pa=config.c2pa or self.c2pa),
                        progress=progress or self._progress, source_cache=self.source_cache, faces=self.faces)

    # -- animate ------------------------------------------------------------------------------------

    def __call__(self, source, driving=None, *, audio=None, seed: int | None = None, audio_weights=None,
                 pose_from=None, max_seconds: float | None = None, cfg_scale: float | None = None,
                 audio_smooth: float | None = None, config: AnimateConfig | None = None,
                 callback_on_frame: FrameCallback | None = None, **options) -> "AnimationOutput":
        """Animate ``source`` with ``driving``; returns at once with the motion extracted, the frames
        rendered as the output is iterated or saved.

        ``source``: a photo or video (path), an RGB array or PIL image, or video frames (a list or a
        (T, H, W, 3) array). ``driving``: the same, a motion template (``MotionTemplate``, e.g. from
        ``pipe.motion`` or an audio-driven tool), an iterator of frames, or a list with one per face.
        ``options``: fields of ``AnimateConfig``/``MotionOptions`` (``region="exp"``, ``multiplier=1.2``,
        ``face="all"``, ``reference_frame="auto"``, ``comparison=True`` ...), checked before any network runs.
        ``audio``: speech (an audio file, or a video's sound) instead of a driving: a photo moved by JoyVASA
        motion (``seed`` for repeatable sampling; ``audio_weights`` a folder, else the audio weights' lookup;
        ``max_seconds`` uses only the audio's beginning; ``cfg_scale``, the guidance towards the audio, JoyVASA's
        2.8 by default; ``audio_smooth``, the EMA factor on head pose and scale, 0.01 by default, 1 for the raw
        motion). The seed used is ``output.seed``. ``pose_from``: the head pose of a speech animation from
        a motion template (path or ``MotionTemplate``), a driving video, or ``"still"`` (the source's own pose)
        instead of the model's; relative to its first frame, played back and forth when shorter than the speech.
        """
        config = self._config(config, **options)
        speech = {"seed": seed, "audio_weights": audio_weights, "pose_from": pose_from, "max_seconds": max_seconds,
                  "cfg_scale": cfg_scale, "audio_smooth": audio_smooth}
        if audio is None:
            for name, value in speech.items():
                if value is not None and name not in ("seed", "audio_weights"):
                    raise InputError(f"{name}= is for speech driving: give audio= too")
        if audio is not None:
            if driving is not None:
                raise InputError("give a driving or audio=, not both")
            return self._speak(source, audio, config, callback_on_frame, **speech)
        if driving is None:
            raise InputError("no driving input was given (a video, image, motion template, or audio=)")
        plan = plan_job(source, driving, None, config, decide_output=False)
        return self.animate_planned(plan, config, callback_on_frame)

    def _speak(self, source, audio, config, callback_on_frame, seed=None, audio_weights=None, pose_from=None,
               max_seconds=None, cfg_scale=None, audio_smooth=None) -> "AnimationOutput":
        """A photo animated by speech: JoyVASA motion sampled window by window as frames are rendered."""
        from .audio import AudioDriving, AudioMotionModel, locate_audio_weights
        from .audio.animate import speech_job
        from .audio.defaults import smoothing_alpha
        from .audio.io import probe_audio
        from .audio.pose import check_pose_from, resolve_pose
        from .config import SpeechOptions

        # everything checked before any model loads; None: the option's default
        given = {"seed": seed, "cfg_scale": cfg_scale, "audio_smooth": audio_smooth, "max_seconds": max_seconds}
        options = SpeechOptions(**{k: v for k, v in given.items() if v is not None}).check()
        pose = check_pose_from(pose_from, "pose_from")
        info = probe_audio(audio, max_seconds=options.max_seconds)
        layout = locate_audio_weights(audio_weights)
        engine = self.engine(config)
        track = resolve_pose(pose, engine)
        if getattr(self, "_audio", (None,))[0] != layout.root:
            self._audio = (layout.root, AudioMotionModel.from_pretrained(layout))  # loaded once per folder
        driving = AudioDriving.open(audio, self._audio[1], options.seed, options.cfg_scale,
                                    smoothing_alpha(options.audio_smooth), info=info, pose=track)
        return AnimationOutput(*speech_job(source, driving, engine), engine, callback_on_frame, seed=driving.seed)

    def animate_planned(self, plan: JobPlan, config: AnimateConfig, callback_on_frame: FrameCallback | None = None,
                        progress=None) -> "AnimationOutput":
        """``__call__`` for a job already checked by ``plan_job`` (the command line checks before loading)."""
        from .pipeline import render

        engine = self.engine(config, progress)
        return AnimationOutput(render(plan, engine), plan, engine, callback_on_frame)

    def motion(self, driving, **options) -> "MotionTemplate":  # noqa: F821 - liveportrait.media
        """The motion of a driving (video, image, frames) as a template: save it with ``save_template`` and
        drive with it later, anywhere, without the driving's faces."""
        from .plan import as_input

        config = self._config(None, **options)
        return self.engine(config).driving.load(as_input(driving, "driving")).template

    # -- edit ------------------------------------------------------------------------------------------

    def prepare(self, source, **crop) -> "EditSource":  # noqa: F821 - liveportrait.pipeline.editor
        """A photo prepared once for editing: cropped, its appearance and motion extracted. ``crop``:
        ``scale``, ``vx``, ``vy`` of the editor's framing."""
        from .plan import as_input

        src = as_input(source, "source")
        if src.kind != "image":
            raise InputError("prepare takes a photo; animate a video source with the pipeline's call")
        image = src.image
        if image is None:
            from .media import read_image

            image = read_image(src.path)
        return self._editor().prepare(image, **crop)

    def edit(self, prepared, stitching: bool = True, paste_back: bool = True, **controls) -> np.ndarray:
        """One edited picture of a prepared photo: ``controls`` are the editor's (``smile``, ``yaw``,
        ``eye_ratio``, ``wink``, ...); each call runs only W and G (and the small S networks)."""
        from .motion.editing import Edit

        edit = Edit.from_dict(controls).in_range()
        return self._editor().render(prepared, edit, stitching=stitching, paste_back=paste_back)

    def _editor(self):
        from .animator import Animator
        from .pipeline.editor import Editor

        if getattr(self, "_editor_cache", None) is None:
            c = self.compute
            self._editor_cache = Editor(Animator(self.networks, c.device, c.precision), cropper=self.cropper)
        return self._editor_cache


class AnimationOutput:
    """The result of a call: iterate it for frames as they are rendered (memory stays flat), or
    ``save`` it. Either reads the frames once. ``fps``, ``frame_count``, ``faces``, ``audio`` (the file
    whose sound goes with it), ``motion`` (the driving's template), ``crops`` (per face) are known at once."""

    def __init__(self, rendering, plan: JobPlan, engine, callback: FrameCallback | None = None,
                 seed: int | None = None):
        self._r, self._plan, self._engine, self._callback = rendering, plan, engine, callback
        self._used = False
        self.seed = seed  # a speech animation's sampling seed (the one drawn when none was given); else None

    @property
    def fps(self) -> Fraction:
        return self._r.fps

    @property
    def frame_count(self) -> int:
        return self._r.total

    @property
    def faces(self) -> int:
        return self._r.faces

    @property
    def audio(self) -> Path | None:
        return self._r.audio

    @property
    def motion(self):
        return self._r.template

    @property
    def crops(self) -> list:
        return self._r.crops

    @property
    def is_still(self) -> bool:
        return self._r.still

    @property
    def notes(self) -> list[str]:
        return list(self._r.notes)

    def _take(self) -> Iterator:
        if self._used:
            raise RuntimeError("the frames of this output were already read (iterated or saved): call the "
                               "pipeline again, or keep the frames you iterated")
        self._used = True
        frames = self._r.frames
        if self._callback is None:
            return frames

        def called():
            for i, item in enumerate(frames):
                self._callback(i, item[0] if self._r.comparison else item)
                yield item

        return called()

    def __iter__(self) -> Iterator[np.ndarray]:
        """Output frames (HxWx3 uint8 RGB, pasted back), rendered one batch ahead in a thread."""
        from .media.streams import prefetch

        for item in prefetch(self._take(), depth=2):
            yield item[0] if self._r.comparison else item

    @property
    def image(self) -> np.ndarray:
        """The picture of a still result (a photo driven by a photo or a one-frame template)."""
        if not self._r.still:
            raise ValueError("this result is a video: iterate it, or save it")
        return next(iter(self))

    def save(self, path: str | os.PathLike, **options):
        """Write the result (mp4, gif, png, jpg, or a folder of png frames) with sound and provenance,
        atomically; ``options``: ``output_format``, ``crf``, ``watermark``, ``save_template``, ``c2pa``.
        Returns what was written (``AnimationResult``)."""
        allowed = ("output_format", "crf", "watermark", "save_template", "c2pa")
        unknown = [k for k in options if k not in allowed]
        if unknown:
            raise InputError(f"save() takes {', '.join(allowed)}, not {', '.join(unknown)}")
        config = self._engine.config.but(**options).check()
        return self.save_planned(self._plan.with_output(path, config), config)

    def save_planned(self, plan: JobPlan, config: AnimateConfig | None = None):
        """``save`` to the output of a plan checked already (``plan_job`` with an output), written as ``config``
        says (this animation's own by default)."""
        from .pipeline import write

        return write(replace(self._r, frames=self._take()), plan, config or self._engine.config,
                     self._engine.context.progress)


def export_to_video(frames, path: str | os.PathLike, fps: float | Fraction = 25, *, audio_from=None,
                    crf: int = CRF, c2pa=None, source=None, driving=None) -> Path:
    """Write RGB frames (any iterable of HxWx3 uint8) as H.264 mp4 (or gif by extension), marked as
    generated, with the sound of ``audio_from`` if given. Returns the path. ``c2pa``: C2PA Content
    Credentials (``C2paSettings`` or a (cert, key) pair) with ``source`` and ``driving`` as ingredients."""
    from .media import GifWriter, VideoWriter

    path = Path(path)
    stamp = _c2pa_stamp(c2pa, source, driving)
    if path.suffix.lower() == ".gif":
        writer = GifWriter(path, fps, stamp=stamp)
    else:
        writer = VideoWriter(path, fps, crf=crf, audio_from=audio_from, stamp=stamp)
    with writer:
        for frame in frames:
            writer.write(np.asarray(frame))
    return path


def export_to_image(image: np.ndarray, path: str | os.PathLike, *, c2pa=None, source=None, driving=None) -> Path:
    """Write one RGB picture (png, jpg, webp by extension), marked as generated (and signed, as
    ``export_to_video``, with ``c2pa``)."""
    from .media import write_image

    return write_image(path, np.asarray(image), stamp=_c2pa_stamp(c2pa, source, driving))


def _c2pa_stamp(c2pa, source, driving):
    """A fresh run's stamp, with C2PA Content Credentials when ``c2pa`` is given (checked now)."""
    from .provenance import Stamp
    from .provenance.c2pa import C2paSettings, content_credentials

    settings = C2paSettings.coerce(c2pa)
    return Stamp(c2pa=content_credentials(settings, source=source, drivings=[driving] if driving is not None else []))
