"""The options of an animation, their defaults and their checks: written once, importing no torch.

The command line, the web app and the Python API all fill these objects, so a default lives here
and nowhere else, and ``check()`` rejects a bad value before any file is read or network loaded.
Defaults are the reference's (its ``ArgumentConfig``/``CropConfig``), except where noted.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass, replace
from typing import Any, Callable, Literal, Union

from .errors import InputError

REGIONS = ("all", "exp", "pose", "lip", "eyes")
DRIVING_OPTIONS = ("expression-friendly", "pose-friendly")
OUTPUT_FORMATS = ("mp4", "gif", "png", "jpg")
AUDIO_FROM = ("driving", "source")
CROP_DRIVING = ("auto", "always", "never")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
BACKENDS = ("eager", "fast", "compile", "onnxruntime", "openvino")

SOURCE_SCALE = 2.3  # crop side over face size for sources
SOURCE_VX = 0.0
SOURCE_VY = -0.125  # negative: the crop moves up
SOURCE_MAX_DIM = 1920  # longest side of a source photo kept for output (area interpolation)
# A source video's frames follow the reference's resize_to_limit instead (spec 4.2, v2v-notes section 1):
# longest side at most 1280, OpenCV's default bilinear resize, the other side truncated with int(), then
# the bottom and right edges trimmed to multiples of 2. Photos keep the larger limit on purpose: it bounds
# the one picture the animated face is pasted back into, so a large photo keeps more of its resolution for
# the cost of one frame, and its face crop differs from the reference's by resampling only. A video's frames
# are each cropped, pasted into and encoded at that size: they are the reference's frames, so a video source
# gives the reference's crops, keypoints and frame size (its video-to-video conformance check).
SOURCE_VIDEO_MAX_DIM = 1280
SOURCE_DIVISION = 2  # a source video frame's sides are trimmed to multiples of this
CRF = 18  # x264 quality: visually lossless, what the reference passes to ffmpeg
SOURCE_VIDEO_SMOOTH = 3e-7  # the reference's Kalman observation variance for source videos
LIP_NORMALIZE_THRESHOLD = 0.03
SOURCE_VIDEO_EYE_THRESHOLD = 0.18
# Source-video eye retargeting (spec 4.7 "Eye normalisation before animation", v2v-notes section 6.3): the
# eye-open target is the mean of frame 0's two eye ratios, or this when that mean is under the threshold
SOURCE_VIDEO_EYE_FALLBACK_TARGET = 0.39
# Animal mode (spec 6): the stitching network was not trained on animals, so it is off, and without it the
# reference does not paste back (its paste-back needs stitching; the animal app's default is off too)
ANIMAL_STITCHING = False
ANIMAL_PASTE_BACK = False
ANIMAL_PHOTO_ONLY = "animal mode animates a photo; a source video is not supported (as in the reference)"

Region = Literal["all", "exp", "pose", "lip", "eyes"]
FaceChoice = Union[str, int]


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise InputError(message)


def _finite(value, name: str, low: float | None = None, above: float | None = None) -> None:
    _need(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
          f"{name} must be a finite number, got {value!r}")
    if low is not None:
        _need(value >= low, f"{name} must be at least {low:g}, got {value:g}")
    if above is not None:
        _need(value > above, f"{name} must be greater than {above:g}, got {value:g}")


def _choice(value, name: str, choices) -> None:
    _need(value in choices, f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")


def parse_box(text: str) -> tuple[float, float, float, float]:
    """'x0,y0,x1,y1' (a crop box: ``--crop-box``, the API's ``crop=``, a job's option) -> four floats, in the
    picture's pixels from its top-left corner; the box must have a positive area. The one parser of boxes."""
    try:
        vals = [float(v) for v in str(text).replace(" ", "").split(",")]
    except ValueError:
        vals = []
    if len(vals) != 4 or not all(math.isfinite(v) for v in vals) or vals[2] <= vals[0] or vals[3] <= vals[1]:
        raise ValueError(f"a crop box is x0,y0,x1,y1 with x1>x0 and y1>y0, got {text!r}")
    return vals[0], vals[1], vals[2], vals[3]


# -- the command-line face of the fields -------------------------------------------------------------------
# Each option field carries, in its metadata, how the command line spells it (``Flag``): the commands add their
# options from these (``commands.options``), read the config back from the parsed options, and a test checks
# every parser's defaults against the fields. The Python API and the jobs of ``serve`` and ``batch`` take the
# field names themselves.


class Number:
    """Text -> a finite int or float within bounds (``low``/``high`` inclusive, ``above`` exclusive); a
    ValueError saying what is wrong otherwise. The type of a numeric option."""

    def __init__(self, kind: type = float, low: float | None = None, high: float | None = None,
                 above: float | None = None):
        self.kind, self.low, self.high, self.above = kind, low, high, above
        self.__name__ = kind.__name__  # argparse names the type in its messages

    def __call__(self, text: str):
        try:
            value = self.kind(text)
        except ValueError:
            raise ValueError(f"{text!r} is not {'an integer' if self.kind is int else 'a number'}") from None
        if not math.isfinite(value):
            raise ValueError(f"{text!r} is not a finite number")
        problem = self.out_of_bounds(value)
        if problem:
            raise ValueError(f"{text} {problem}")
        return value

    def out_of_bounds(self, value) -> str:
        """What is wrong with a number's size ("must be at least 0"), or ""."""
        if self.above is not None and not value > self.above:
            return f"must be greater than {self.above:g}"
        if self.low is not None and value < self.low:
            return f"must be at least {self.low:g}"
        if self.high is not None and value > self.high:
            return f"must be at most {self.high:g}"
        return ""

    def check(self, value, label: str) -> None:
        """An InputError unless ``value`` (not text: a config's, the API's or a job's) is a number of this
        kind within these bounds."""
        whole = self.kind is int
        _need(isinstance(value, int if whole else (int, float)) and not isinstance(value, bool)
              and math.isfinite(value), f"{label} must be a {'whole' if whole else 'finite'} number, got {value!r}")
        problem = self.out_of_bounds(value)
        _need(not problem, f"{label} {problem}, got {value!r}")


def _word_or_number(text: str, words: tuple[str, ...], message: str) -> Union[int, str]:
    if text in words:
        return text
    try:
        number = int(text)
    except ValueError:
        number = -1
    if number < 0:
        raise ValueError(message)
    return number


def parse_face(text: str) -> FaceChoice:
    """'largest', 'all' or a face number counted from the left (0: the leftmost)."""
    return _word_or_number(text, ("largest", "all"), "takes largest, all or a face number (0 = leftmost)")


def parse_reference_frame(text: str) -> Union[int, str]:
    """A driving frame number (0 is the first) or 'auto'."""
    return _word_or_number(text, ("auto",), "takes a frame number (0 is the first) or auto")


def parse_crop_box(text: str) -> str:
    """A crop box checked by ``parse_box`` and kept as the text the pipeline takes."""
    parse_box(text)
    return text


VALUE = object()  # a Flag's ``const`` when it takes a value (not a switch)


@dataclass(frozen=True)
class Flag:
    """One command-line spelling of a field. A switch (``const`` given) sets the field to ``const`` when it is
    present (``--no-stitching``: stitching=False; ``--absolute``: relative=False; ``--no-crop``: crop="none");
    otherwise the option takes a value, parsed by ``parse`` (a ValueError is a usage error), and its default is
    the field's. ``unset``: the option's default is None, which leaves the field (and the ``also`` fields, set
    with it) at their own defaults (``--max-dim``). ``group``: the heading of ``--help`` it is listed under."""

    names: tuple[str, ...]
    help: str
    const: Any = VALUE
    parse: Callable[[str], Any] | None = None
    choices: tuple | None = None
    metavar: str | None = None
    group: str | None = None
    also: tuple[str, ...] = ()
    unset: bool = False

    @property
    def switch(self) -> bool:
        return self.const is not VALUE

    @property
    def dest(self) -> str:
        """The attribute argparse stores it under (from its first long name, as argparse derives it)."""
        long = next((n for n in self.names if n.startswith("--")), self.names[0])
        return long.lstrip("-").replace("-", "_")


def option(default: Any = MISSING, *flags: Flag, default_factory: Any = MISSING, internal: str = "",
           api: bool = True) -> Any:
    """A config field with its command-line spellings; none, with ``internal`` saying why (set by code, or a
    value a command line cannot give), for a field the commands do not offer. ``api``: whether the Python API's
    keyword arguments and a job's options may set it (False: the pipeline sets it, e.g. the resolved device)."""
    assert flags or internal, "a field is on the command line or says why not"
    return field(default=default, default_factory=default_factory,
                 metadata={"flags": flags, "internal": internal, "api": api})


def flag(*names: str, help: str, **how) -> Flag:
    return Flag(names, help, **how)


def flags_of(f: Field) -> tuple[Flag, ...]:
    return f.metadata.get("flags", ())


def option_fields(cls) -> list[tuple[tuple[str, ...], Field]]:
    """Every field of an options dataclass as (path, field), nested options dataclasses walked in
    (``("motion", "stitching")``)."""
    out = []
    for f in fields(cls):
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        if is_dataclass(default):
            out += [((f.name,) + path, g) for path, g in option_fields(type(default))]
        else:
            out.append(((f.name,), f))
    return out


def _number(obj, name: str, label: str, like: str | None = None) -> None:
    """A numeric field checked by the bounds its option parses with (those of ``like``'s where it has none of
    its own), so that the bounds are written once; None passes where it is the field's default."""
    value, fields_ = getattr(obj, name), obj.__dataclass_fields__
    if value is None and field_default(fields_[name]) is None:
        return
    next(fl.parse for fl in flags_of(fields_[like or name]) if isinstance(fl.parse, Number)).check(value, label)


def api_options(cls) -> dict[str, tuple[str, ...]]:
    """The keyword arguments the Python API (and a job's options) take for ``cls``: each field's own name
    (a nested options dataclass's fields by theirs) -> its path."""
    return {path[-1]: path for path, f in option_fields(cls) if f.metadata.get("api", True)}


def with_options(obj, values: dict[tuple[str, ...], Any], _prefix: tuple[str, ...] = ()):
    """``obj`` (an options dataclass) with the fields at ``values``' paths changed, nested ones included."""
    changes = {}
    for f in fields(obj):
        value, path = getattr(obj, f.name), _prefix + (f.name,)
        if is_dataclass(value):
            inner = with_options(value, values, path)
            if inner is not value:
                changes[f.name] = inner
        elif path in values:
            changes[f.name] = values[path]
    return replace(obj, **changes) if changes else obj


def field_default(f: Field) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


def option_choices(cls, name: str) -> tuple:
    """The choices of a field's option, for a form's radio buttons (``option_choices(AnimateConfig, "region")``)."""
    for path, f in option_fields(cls):
        if path[-1] == name:
            return next(fl.choices for fl in flags_of(f) if fl.choices)
    raise KeyError(name)


def check_compute(device: str = "auto", precision: str = "auto", backend: str = "auto") -> None:
    """The compute choices by name, before any file is read or network built (an InputError otherwise)."""
    _choice(device, "device", DEVICES)
    _choice(precision, "precision", PRECISIONS)
    _choice(backend, "backend", ("auto",) + BACKENDS)


@dataclass(frozen=True)
class ComputeOptions:
    """Where and how the networks run, as the commands that load them take it (one block for all of them);
    ``auto`` is resolved by ``speed.compute`` once the device is known."""

    device: str = option("auto", flag("--device", choices=DEVICES, group="compute",
                                      help="where the networks run; auto: CUDA, then Apple MPS, then the CPU"))
    # the help of --precision is speed.compute.AUTO_PRECISION, written beside the rule it describes
    precision: str = option("auto", flag("--precision", choices=PRECISIONS, group="compute",
                                         help="how precisely the networks compute (auto: by the device)"))
    backend: str = option("auto", flag("--backend", choices=("auto",) + BACKENDS, group="compute", help=(
        "how the networks run: auto is fast (exact rewrites of eager) on the CPU and eager on a GPU; "
        "'liveportrait benchmark' measures them on this machine")))
    threads: int | None = option(None, flag("--threads", parse=Number(int, 1), group="compute",
                                            help="intra-op threads (default: all allowed CPUs)"))

    def __post_init__(self) -> None:
        check_compute(self.device, self.precision, self.backend)


@dataclass(frozen=True)
class LiveOptions:
    """What ``live`` takes beyond an animation's options (which are AnimateConfig's)."""

    # weight of the newest frame's motion in the causal exponential smoothing (1: off)
    smoothing: float = option(1.0, flag("--smooth", parse=Number(above=0, high=1), metavar="ALPHA", help=(
        "causal smoothing of the motion: weight of the newest frame (1 = off, 0.5 = strong)")))


# JoyVASA's sampling (speech driving): its inference.py's guidance default (its README uses 2.0, the Gradio app
# 4.0), and its EMA factor on scale, translation and the angles
CFG_SCALE = 2.8
SMOOTH_ALPHA = 0.01


@dataclass(frozen=True)
class SpeechOptions:
    """How speech becomes motion (JoyVASA's sampling), beyond an animation's options: the speech options of
    ``animate`` and ``motion``, and the API's keyword arguments of the same names."""

    seed: int | None = option(None, flag("--seed", parse=Number(int), group="speech", help=(
        "seed of the motion sampling: the same seed, the same frames (default: a fresh one, printed)")))
    cfg_scale: float = option(CFG_SCALE, flag("--cfg-scale", parse=Number(float, low=0), group="speech", help=(
        f"guidance towards the audio (JoyVASA: {CFG_SCALE:g})")))
    audio_smooth: float = option(SMOOTH_ALPHA, flag("--audio-smooth", parse=Number(above=0, high=1),
                                                    group="speech", help=(
        f"EMA factor on head pose and scale (JoyVASA's {SMOOTH_ALPHA:g} keeps the head nearly still; 1: raw)")))
    max_seconds: float | None = option(None, flag("--max-seconds", parse=Number(above=0), metavar="S",
                                                  group="speech", help=(
        "only the first S seconds of the driving, for a quick preview (speech: of the audio; the rest is not "
        "read)")))

    def check(self) -> "SpeechOptions":
        for name in ("seed", "cfg_scale", "audio_smooth", "max_seconds"):
            _number(self, name, name)
        return self


@dataclass(frozen=True)
class MotionOptions:
    """How driving motion becomes driving keypoints; defaults are the reference CLI's."""

    relative: bool = option(True, flag("--absolute", const=False, group="motion", help=(
        "copy the driving's pose and expression as they are instead of its motion relative to the reference frame")))
    region: Region = option("all", flag("--animation-region", choices=REGIONS, group="motion", help=(
        "what the driving moves: all, exp (expression only), pose (head only), lip or eyes")))
    driving_option: str = option("expression-friendly", flag("--driving-option", choices=DRIVING_OPTIONS,
                                                              group="motion", help=(
        "expression-friendly scales a driving video's motion to the source's face size; pose-friendly takes it as "
        "it is")))
    # scale of the driving expression (0 keeps the source's, above 1 exaggerates)
    multiplier: float = option(1.0, flag("--driving-multiplier", parse=Number(low=0), group="motion",
                                         help="scale of the motion (larger exaggerates; 0 keeps the source's)"))
    stitching: bool = option(True, flag("--no-stitching", const=False, group="motion",
                                        help="turn off the stitching network"))
    # the reference's animal rule (spec 6): the driving's absolute pose and expression on the source's scale,
    # moved from the neutral driving frame and scaled by the hull-volume ratio; set by AnimateConfig.as_animal
    animal_motion: bool = option(False, internal="set with animal mode (--animal)")
    eye_retargeting: bool = option(False, flag("--eye-retargeting", const=True, group="motion",
                                               help="drive the eyes by the driving's eye ratio"))
    lip_retargeting: bool = option(False, flag("--lip-retargeting", const=True, group="motion",
                                               help="drive the lips by the driving's lip ratio"))
    normalize_lip: bool = option(False, flag("--normalize-lip", const=True, group="motion",
                                             help="close the source's mouth before animating"))
    lip_normalize_threshold: float = option(LIP_NORMALIZE_THRESHOLD, internal="the reference's constant")
    source_video_eye_retargeting: bool = option(False, flag(
        "--source-video-eye-retargeting", const=True, group="motion",
        help="keep the source video's eyes as open as in its first frame"))
    source_video_eye_threshold: float = option(SOURCE_VIDEO_EYE_THRESHOLD, internal="the reference's constant")

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> "MotionOptions":
        _choice(self.region, "animation region", REGIONS)
        _choice(self.driving_option, "driving option", DRIVING_OPTIONS)
        # a negative multiplier turns a smile into a frown and a blink into wide eyes: not a scale
        _number(self, "multiplier", "driving multiplier")
        _finite(self.lip_normalize_threshold, "lip normalisation threshold", low=0)
        _finite(self.source_video_eye_threshold, "source-video eye threshold", low=0)
        return self

    def but(self, **changes) -> "MotionOptions":
        return replace(self, **changes)


@dataclass(frozen=True)
class AnimateConfig:
    """Every option of an animation; the CLI, the web app and the Python API all fill this one object."""

    motion: MotionOptions = field(default_factory=MotionOptions)
    # the source is a cat or dog: animal face finder (the driving stays a human's)
    animal: bool = option(False, flag("--animal", const=True, group="framing", help=(
        "the source photo is a cat or dog: the animal weights and face finder, the reference's animal defaults "
        "(no stitching, no paste-back); the driving is a human face as usual")))
    # framing
    # "auto" (detect faces), "none" (input already framed), or a box "x0,y0,x1,y1"
    crop: str = option("auto", flag("--no-crop", const="none", group="framing",
                                    help="the source is already a framed face"),
                       flag("--crop-box", parse=parse_crop_box, metavar="x0,y0,x1,y1", unset=True, group="framing",
                            help="frame this box instead of detecting a face"))
    face: FaceChoice = option("largest", flag("--face", parse=parse_face, metavar="largest|all|N", group="framing",
                                              help=(
        "which face to animate: the largest, every one (photos and videos; for a video, the faces of its first "
        "frame), or number N counted from the left, starting at 0")))
    source_scale: float = option(SOURCE_SCALE, flag("--scale", parse=Number(above=0), group="framing",
                                                    help="source crop scale (larger: more around the face)"))
    source_vx: float = option(SOURCE_VX, flag("--vx", parse=Number(), group="framing",
                                              help="source crop horizontal shift"))
    source_vy: float = option(SOURCE_VY, flag("--vy", parse=Number(), group="framing",
                                              help="source crop vertical shift (negative: up)"))
    crop_driving: str = option("auto", flag("--crop-driving", choices=CROP_DRIVING, group="framing",
                                            help="crop the driving video's face (auto: only when it is not square)"))
    paste_back: bool = option(True, flag("--no-paste-back", const=False, group="framing",
                                         help="output the animated crop only"))
    source_max_dim: int = option(SOURCE_MAX_DIM, flag(
        "--max-dim", parse=Number(int, 0), unset=True, also=("source_video_max_dim",), group="framing",
        help=f"longest side of the source kept for output (default: {SOURCE_MAX_DIM} for a photo, "
             f"{SOURCE_VIDEO_MAX_DIM} for a video as the reference; 0: no limit)"))  # photos (0: no limit)
    # the frames of a source video (0: no limit)
    source_video_max_dim: int = option(SOURCE_VIDEO_MAX_DIM, internal="given with --max-dim (source_max_dim's)")
    # motion over time
    reference_frame: Union[int, str] = option(0, flag(
        "--reference-frame", parse=parse_reference_frame, metavar="N|auto", group="motion",
        help="driving frame taken as neutral; auto picks the frame with eyes open and mouth closed"))
    # Kalman observation variance for the driving motion of still sources (0: off)
    smooth: float = option(0.0, flag("--smooth", parse=Number(low=0), metavar="VARIANCE", group="motion", help=(
        "temporal smoothing of the driving motion for photo sources (Kalman observation variance; try 1e-6; "
        "0 is off)")))
    source_video_smooth: float = option(SOURCE_VIDEO_SMOOTH, flag(
        "--source-video-smooth", parse=Number(low=0), metavar="VARIANCE", group="motion",
        help="smoothing of the motion for video sources"))
    # output
    output_format: str | None = option(None, flag("--format", choices=OUTPUT_FORMATS, group="input and output",
                                                  help=(
        "output format (default: from -o, else mp4 for videos and png for a single image; png with a video gives "
        "a folder of frames)")))
    crf: int = option(CRF, flag("--crf", parse=Number(int, 0, 51), group="input and output",
                                help=f"H.264 quality: lower is better, {CRF} is visually lossless"))
    audio_from: str = option("driving", flag("--audio-from", choices=AUDIO_FROM, group="input and output",
                                             help="which input's sound goes into the output (falls back to the other)"))
    # a quick preview: at most this many frames of every video input (None: all)
    max_frames: int | None = option(None, flag("--max-frames", parse=Number(int, 1), metavar="N",
                                               group="input and output", help=(
        "only the first N frames of a video driving or source: a quick preview of a long job (--max-seconds S does "
        "the same in seconds)")))
    comparison: bool = option(False, flag("--comparison", const=True, group="input and output",
                                          help="also write OUTPUT_concat with driving | source | result side by side"))
    save_template: bool = option(True, flag("--no-template", const=False, group="input and output",
                                            help="do not save the driving video's motion as a template next to the "
                                                 "output"))
    watermark: bool = option(True, flag("--no-watermark", const=False, group="input and output",
                                        help="leave out the invisible watermark (the 'AI-generated' metadata label "
                                             "stays)"))
    # C2PA Content Credentials: a provenance.c2pa.C2paSettings (certificate chain and key, checked when made) signs
    # every output; None (the default) signs nothing. Not a job option of the server (a file on the server).
    c2pa: object | None = option(None, internal="made from --c2pa-cert/--c2pa-key (commands.c2pa_settings)")
    # compute
    device: str = option("cpu", internal="resolved from ComputeOptions.device by the pipeline", api=False)
    precision: str = option("fp32", internal="resolved from ComputeOptions.precision by the pipeline", api=False)
    batch_size: int = option(1, flag("--batch-size", parse=Number(int, 1), group="compute",
                                     help="driving frames rendered at once"))
    # one of BACKENDS, or "auto" until the device is known
    backend: str = option("eager", internal="resolved from ComputeOptions.backend by the pipeline", api=False)

    def check(self) -> "AnimateConfig":
        """Raise InputError for the first option that makes no sense; cheap, reads no file."""
        self.motion.check()
        _need(isinstance(self.animal, bool), f"animal must be True or False, got {self.animal!r}")
        if self.crop not in ("auto", "none"):
            try:
                parse_box(self.crop)
            except ValueError as exc:
                raise InputError(f"crop box: {exc}") from None
        _need(self.face in ("largest", "all") or (isinstance(self.face, int) and not isinstance(self.face, bool)
                                                   and self.face >= 0),
              f"face must be largest, all or a face number from 0, got {self.face!r}")
        _number(self, "source_scale", "source crop scale")
        _number(self, "source_vx", "source crop vx")
        _number(self, "source_vy", "source crop vy")
        _choice(self.crop_driving, "crop driving", CROP_DRIVING)
        _number(self, "source_max_dim", "source max dim")
        _number(self, "source_video_max_dim", "source video max dim", like="source_max_dim")
        _need(self.reference_frame == "auto" or (isinstance(self.reference_frame, int)
                                                 and not isinstance(self.reference_frame, bool)
                                                 and self.reference_frame >= 0),
              f"reference frame must be a frame number from 0 or auto, got {self.reference_frame!r}")
        _number(self, "smooth", "smoothing variance")
        _number(self, "source_video_smooth", "source-video smoothing variance")
        if self.output_format is not None:
            _choice(self.output_format, "output format", OUTPUT_FORMATS)
        _number(self, "crf", "crf")
        _choice(self.audio_from, "audio from", AUDIO_FROM)
        _number(self, "max_frames", "max frames (None: all)")
        # provenance.c2pa.C2paSettings (this module sits below provenance: it is recognised by what it does)
        _need(self.c2pa is None or all(callable(getattr(self.c2pa, m, None)) for m in ("read", "check")),
              "c2pa must be None or C2paSettings(cert, key) made in Python (a server's jobs cannot name one), got "
              f"{type(self.c2pa).__name__}")
        _choice(self.device, "device", DEVICES)
        _choice(self.precision, "precision", PRECISIONS)
        _number(self, "batch_size", "batch size")
        _choice(self.backend, "backend", ("auto",) + BACKENDS)
        return self

    def but(self, **changes) -> "AnimateConfig":
        return replace(self, **changes)

    @classmethod
    def defaults(cls, variant: str = "human") -> "AnimateConfig":
        """The defaults of a variant of the weights: "human", or "animal" (the reference's animal defaults)."""
        _choice(variant, "variant", ("human", "animal"))
        return cls().as_animal() if variant == "animal" else cls()

    def as_animal(self) -> "AnimateConfig":
        """This config in animal mode with the reference's animal defaults (no stitching, no paste-back)."""
        return self.but(animal=True, paste_back=ANIMAL_PASTE_BACK, motion=self.motion.but(stitching=ANIMAL_STITCHING,
                                                                                        animal_motion=True))

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))
