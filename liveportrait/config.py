"""The options of an animation, their defaults and their checks: written once, importing no torch.

The command line, the web app and the Python API all fill these objects, so a default lives here
and nowhere else, and ``check()`` rejects a bad value before any file is read or network loaded.
Defaults are the reference's (its ``ArgumentConfig``/``CropConfig``), except where noted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Literal, Union

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


def check_compute(device: str = "auto", precision: str = "auto", backend: str = "auto") -> None:
    """The compute choices by name, before any file is read or network built (an InputError otherwise)."""
    _choice(device, "device", DEVICES)
    _choice(precision, "precision", PRECISIONS)
    _choice(backend, "backend", ("auto",) + BACKENDS)


@dataclass(frozen=True)
class MotionOptions:
    """How driving motion becomes driving keypoints; defaults are the reference CLI's."""

    relative: bool = True
    region: Region = "all"
    driving_option: str = "expression-friendly"
    multiplier: float = 1.0  # scale of the driving expression (0 keeps the source's, above 1 exaggerates)
    stitching: bool = True
    # the reference's animal rule (spec 6): the driving's absolute pose and expression on the source's scale,
    # moved from the neutral driving frame and scaled by the hull-volume ratio; set by AnimateConfig.as_animal
    animal_motion: bool = False
    eye_retargeting: bool = False
    lip_retargeting: bool = False
    normalize_lip: bool = False
    lip_normalize_threshold: float = LIP_NORMALIZE_THRESHOLD
    source_video_eye_retargeting: bool = False
    source_video_eye_threshold: float = SOURCE_VIDEO_EYE_THRESHOLD

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> "MotionOptions":
        _choice(self.region, "animation region", REGIONS)
        _choice(self.driving_option, "driving option", DRIVING_OPTIONS)
        # a negative multiplier turns a smile into a frown and a blink into wide eyes: not a scale
        _finite(self.multiplier, "driving multiplier", low=0)
        _finite(self.lip_normalize_threshold, "lip normalisation threshold", low=0)
        _finite(self.source_video_eye_threshold, "source-video eye threshold", low=0)
        return self

    def but(self, **changes) -> "MotionOptions":
        return replace(self, **changes)


@dataclass(frozen=True)
class AnimateConfig:
    """Every option of an animation; the CLI, the web app and the Python API all fill this one object."""

    motion: MotionOptions = field(default_factory=MotionOptions)
    animal: bool = False  # the source is a cat or dog: animal face finder (the driving stays a human's)
    # framing
    crop: str = "auto"  # "auto" (detect faces), "none" (input already framed), or a box "x0,y0,x1,y1"
    face: FaceChoice = "largest"  # "largest", "all", or an index counted from the left
    source_scale: float = SOURCE_SCALE
    source_vx: float = SOURCE_VX
    source_vy: float = SOURCE_VY
    crop_driving: str = "auto"  # "auto" (crop non-square videos), "always", "never"
    paste_back: bool = True
    source_max_dim: int = SOURCE_MAX_DIM  # photos (0: no limit)
    source_video_max_dim: int = SOURCE_VIDEO_MAX_DIM  # the frames of a source video (0: no limit)
    # motion over time
    reference_frame: Union[int, str] = 0  # driving frame taken as neutral, or "auto"
    smooth: float = 0.0  # Kalman observation variance for the driving motion of still sources (0: off)
    source_video_smooth: float = SOURCE_VIDEO_SMOOTH
    # output
    output_format: str | None = None  # from the output extension when None
    crf: int = CRF
    audio_from: str = "driving"  # or "source"
    max_frames: int | None = None  # a quick preview: at most this many frames of every video input (None: all)
    comparison: bool = False
    save_template: bool = True
    watermark: bool = True
    # C2PA Content Credentials: a provenance.c2pa.C2paSettings (certificate chain and key, checked when made) signs
    # every output; None (the default) signs nothing. Not a job option of the server (a file on the server).
    c2pa: object | None = None
    # compute
    device: str = "cpu"
    precision: str = "fp32"
    batch_size: int = 1
    backend: str = "eager"  # one of BACKENDS, or "auto" until the device is known

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
        _finite(self.source_scale, "source crop scale", above=0)
        _finite(self.source_vx, "source crop vx")
        _finite(self.source_vy, "source crop vy")
        _choice(self.crop_driving, "crop driving", CROP_DRIVING)
        _need(isinstance(self.source_max_dim, int) and self.source_max_dim >= 0,
              f"source max dim must be a whole number from 0, got {self.source_max_dim!r}")
        _need(isinstance(self.source_video_max_dim, int) and self.source_video_max_dim >= 0,
              f"source video max dim must be a whole number from 0, got {self.source_video_max_dim!r}")
        _need(self.reference_frame == "auto" or (isinstance(self.reference_frame, int)
                                                 and not isinstance(self.reference_frame, bool)
                                                 and self.reference_frame >= 0),
              f"reference frame must be a frame number from 0 or auto, got {self.reference_frame!r}")
        _finite(self.smooth, "smoothing variance", low=0)
        _finite(self.source_video_smooth, "source-video smoothing variance", low=0)
        if self.output_format is not None:
            _choice(self.output_format, "output format", OUTPUT_FORMATS)
        _need(isinstance(self.crf, int) and 0 <= self.crf <= 51, f"crf must be 0 to 51, got {self.crf!r}")
        _choice(self.audio_from, "audio from", AUDIO_FROM)
        _need(self.max_frames is None or (isinstance(self.max_frames, int) and not isinstance(self.max_frames, bool)
                                          and self.max_frames >= 1),
              f"max frames must be a whole number from 1 (or None: all), got {self.max_frames!r}")
        # provenance.c2pa.C2paSettings (this module sits below provenance: it is recognised by what it does)
        _need(self.c2pa is None or all(callable(getattr(self.c2pa, m, None)) for m in ("read", "check")),
              "c2pa must be None or C2paSettings(cert, key) made in Python (a server's jobs cannot name one), got "
              f"{type(self.c2pa).__name__}")
        _choice(self.device, "device", DEVICES)
        _choice(self.precision, "precision", PRECISIONS)
        _need(isinstance(self.batch_size, int) and self.batch_size >= 1,
              f"batch size must be a whole number from 1, got {self.batch_size!r}")
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
