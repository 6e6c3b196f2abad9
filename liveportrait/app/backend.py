"""What the web app's buttons and sliders do, without Gradio: plain functions raising InputError.

``AppBackend`` holds the networks, the face cropper and a small cache of prepared portraits keyed
by the upload's content and crop scale, so that a slider move only renders (W and G). It also holds
the animal pipeline (loaded on first use), where the speech-driving weights are, and the crop box
drawn on the source picture by two clicks (``click_box``).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import tempfile
import threading
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..config import SOURCE_SCALE
from ..errors import InputError
from ..motion.editing import CONTROL, CONTROLS, EDIT_FIELDS, INTERPOLATIONS, TRANSFER_REGIONS, Edit, Keyframe
from ..pipeline.editor import EDIT_CROP_SCALE, Editor, EditSource, retarget_video
from ..uploads import UploadLimits, check_audio, check_upload, load_photo

Progress = Callable[[Iterator, "int | None", str], Iterator]
SLIDER_NAMES = tuple(c.name for c in CONTROLS)


# the Animate tab's (and its API's) names for options whose config field is longer
APP_OPTION_NAMES = {"scale": "source_scale", "vx": "source_vx", "vy": "source_vy"}


def _file_key(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _LRU:
    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def edit_from_values(values: dict[str, Any], source: EditSource | None = None) -> Edit:
    """Slider values (by name) to an Edit; ratio sliders at the source's own value do not retarget."""
    vals = {}
    for name in SLIDER_NAMES:
        v = values.get(name)
        if v is None:
            continue
        vals[name] = float(v)
    edit = Edit.from_dict(vals)
    return source.effective(edit) if source is not None else edit


def parse_keyframes(text: str) -> list[Keyframe]:
    """``[{"time": 0, "smile": 0.5, ...}, ...]``: controls left out keep their neutral values."""
    try:
        items = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise InputError(f"the keyframes are not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InputError('keyframes are a JSON list like [{"time": 0}, {"time": 1.5, "smile": 0.8}]')
    out = []
    for i, item in enumerate(items):
        item = dict(item)
        if "time" not in item:
            raise InputError(f"keyframe {i + 1} has no time")
        t = item.pop("time")
        if not isinstance(t, (int, float)):
            raise InputError(f"keyframe {i + 1}: time must be a number of seconds")
        out.append(Keyframe(float(t), Edit.from_dict(item)))
    return out


def keyframe_json(keyframes: list[dict]) -> str:
    return json.dumps(keyframes, indent=1)


class AppBackend:
    """The app's work: prepare and edit portraits, animate, retarget videos, keyframe animations."""

    def __init__(self, pipe, device: str = "cpu", precision: str = "fp32", workdir: str | os.PathLike | None = None,
                 limits: UploadLimits = UploadLimits(), cropper=None, cache_size: int = 4, watermark: bool = True,
                 animal=None, audio_weights: str | os.PathLike | None = None):
        """``pipe``: the ``LivePortraitPipeline`` every tab runs on (or plain networks, run as given on
        ``device`` in ``precision``). ``animal``: the animal pipeline (``variant="animal"``), animal
        networks, or a function that loads it on the first animal job (None: no animal mode).
        ``audio_weights``: the JoyVASA-layout folder for speech driving (None: the audio weights' lookup,
        ``$LIVEPORTRAIT_AUDIO_WEIGHTS`` then the user cache)."""
        from ..animator import Animator
        from ..api import LivePortraitPipeline
        from ..provenance import Stamp

        if not isinstance(pipe, LivePortraitPipeline):
            pipe = LivePortraitPipeline(pipe, device=device, precision=precision, backend="eager", cropper=cropper,
                                        tune_memory=False)
        self.pipe = pipe
        self.networks = pipe.networks
        self.device, self.precision = pipe.compute.device, pipe.compute.precision
        self.limits = limits
        if workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="liveportrait-app-"))
            atexit.register(shutil.rmtree, self.workdir, True)  # results live as long as the app
        else:
            self.workdir = Path(workdir)
            self.workdir.mkdir(parents=True, exist_ok=True)
        self._cropper = cropper
        self.editor = Editor(Animator(self.networks, self.device, self.precision), cropper)
        self.sources = _LRU(cache_size)
        self.driven = _LRU(cache_size)
        self.watermark = watermark
        from ..provenance.c2pa import content_credentials

        # one run id for the app's session; signed with C2PA when the pipeline signs (from_pretrained(c2pa=...))
        self.stamp = Stamp(watermark=watermark, c2pa=content_credentials(
            getattr(pipe, "c2pa", None), backend=pipe.compute.backend, precision=pipe.compute.precision))
        self._animal = animal
        self._animal_lock = threading.Lock()
        self.audio_weights = audio_weights
        self._box_pictures = _LRU(cache_size)

    @property
    def cropper(self):
        if self._cropper is None:
            self._cropper = self.editor.cropper  # one MediaPipe instance for every tab
        return self._cropper

    @property
    def animal_pipe(self):
        """The animal pipeline, loaded (or built from animal networks) on first use, sharing the face finder."""
        from ..api import LivePortraitPipeline

        with self._animal_lock:
            a = self._animal
            if a is None:
                raise InputError("animal mode is not available in this app: it was started without the animal "
                                 "weights")
            if not isinstance(a, LivePortraitPipeline):
                if callable(a) and not hasattr(a, "F"):
                    a = a()  # the loader: a WeightsError (what to fetch where) when the files are missing
                if not isinstance(a, LivePortraitPipeline):
                    a = LivePortraitPipeline(a, device=self.device, precision=self.precision, backend="eager",
                                             cropper=self.cropper, tune_memory=False, variant="animal")
                self._animal = a
            return a

    def audio_problem(self) -> str | None:
        """Why speech driving cannot run here (the message the command line gives), or None when it can."""
        from ..errors import LivePortraitError, require_extra

        try:
            require_extra("audio", ("transformers",), "speech driving")
            from ..audio.weights import locate_audio_weights

            locate_audio_weights(self.audio_weights)
        except LivePortraitError as exc:
            return str(exc)
        return None

    def _out(self, name: str) -> Path:
        """A fresh folder for one result (``name`` empty: the folder itself)."""
        d = self.workdir / uuid.uuid4().hex[:12]
        d.mkdir(parents=True)
        return d / name if name else d

    def _write_picture(self, image: np.ndarray, name: str) -> Path:
        from ..media import write_image

        path = self._out(name)
        write_image(path, image, stamp=self.stamp)  # the writer labels and watermarks it
        return path

    # -- Edit tab ------------------------------------------------------------------------------------

    def source(self, photo, scale: float = EDIT_CROP_SCALE) -> tuple[str, EditSource]:
        """The prepared portrait for an upload (cached: F and M run once per photo and crop scale)."""
        p, _ = check_upload(photo, ("image",), "a portrait photo", self.limits)
        scale = float(scale)
        if not 1.5 <= scale <= 4.0:
            raise InputError(f"crop scale {scale:g} is outside 1.5 to 4")
        key = f"{_file_key(p)}:{scale:.3f}"
        src = self.sources.get(key)
        if src is None:
            src = self.editor.prepare(load_photo(p, limits=self.limits), scale=scale)
            self.sources.put(key, src)
        return key, src

    def prepare(self, photo, scale: float = EDIT_CROP_SCALE) -> tuple[np.ndarray, float | None, float | None, str]:
        """Framed face, the source's eye and lip ratios (the ratio sliders' start), a status line."""
        _, src = self.source(photo, scale)
        eye, lip = src.eye_ratio, src.lip_ratio
        msg = f"Ready: eyes-open ratio {eye:.2f}, lip-open ratio {lip:.2f}. Move a slider to edit." \
            if eye is not None and lip is not None else "Ready. Move a slider to edit."
        return src.crop_512, eye, lip, msg

    def _driven(self, key: str, src: EditSource, driving, region: str, relative: bool) -> EditSource:
        p, _ = check_upload(driving, ("image",), "a driving photo", self.limits)
        if region not in TRANSFER_REGIONS:
            raise InputError(f"region must be one of {', '.join(TRANSFER_REGIONS)}")
        dkey = (key, _file_key(p), region, bool(relative))
        out = self.driven.get(dkey)
        if out is None:
            out = self.editor.drive(src, load_photo(p, "a driving photo", self.limits), region, bool(relative))
            self.driven.put(dkey, out)
        return out

    def edit(self, photo, scale: float, values: dict[str, Any], stitching: bool = True, driving=None,
             region: str = "exp", relative: bool = True) -> Path:
        """Render one edit (W and G) and return the pasted-back picture's file."""
        key, src = self.source(photo, scale)
        if driving:
            src = self._driven(key, src, driving, region, relative)
        edit = edit_from_values(values, src)
        image = self.editor.render(src, edit, stitching=bool(stitching))
        return self._write_picture(image, "edited.png")

    def add_keyframe(self, text: str, time_s: float, values: dict[str, Any], photo=None,
                     scale: float = EDIT_CROP_SCALE) -> str:
        """The keyframe list with the current sliders added at ``time_s`` (replacing one at that time)."""
        keys = json.loads(text) if text and text.strip() else []
        parse_keyframes(json.dumps(keys))  # validate what is there
        src = None
        if photo:
            _, src = self.source(photo, scale)
        edit = edit_from_values(values, src)
        item: dict[str, Any] = {"time": round(float(time_s), 3)}
        for name in EDIT_FIELDS:
            v = getattr(edit, name)
            neutral = CONTROL[name].neutral
            if v is not None and not (v == neutral):
                item[name] = v
        keys = [k for k in keys if abs(float(k.get("time", -1)) - item["time"]) > 1e-9] + [item]
        keys.sort(key=lambda k: k["time"])
        return keyframe_json(keys)

    def render_keyframes(self, photo, scale: float, text: str, fps: float = 25, method: str = "catmull-rom",
                         stitching: bool = True, driving=None, region: str = "exp", relative: bool = True,
                         progress: Progress | None = None) -> Path:
        key, src = self.source(photo, scale)
        if driving:
            src = self._driven(key, src, driving, region, relative)
        keys = parse_keyframes(text)
        if method not in INTERPOLATIONS:
            raise InputError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}")
        fps = float(fps)
        if not 1 <= fps <= 60:
            raise InputError("fps must be between 1 and 60")
        return self.editor.animate(src, keys, self._out("keyframes.mp4"), fps=fps, method=method,
                                   stitching=bool(stitching), progress=progress, watermark=self.watermark,
                                   c2pa=self.stamp.c2pa)

    # -- Animate tab ---------------------------------------------------------------------------------

    def pipeline(self, config, progress: Progress | None = None):
        return self.pipe.engine(config, progress)

    def _animate_config(self, options: dict[str, Any] | None):
        """(pipeline, config) for the tab's options: ``animal`` picks the animal pipeline and its defaults
        (then ``stitching``/``paste_back`` as given), ``crop_box`` "x0,y0,x1,y1" frames that box."""
        from ..api import make_config
        from ..config import AnimateConfig

        given = dict(options or {})
        animal = bool(given.pop("animal", False))
        box = parse_box_text(given.pop("crop_box", None))
        given = {APP_OPTION_NAMES.get(k, k): v for k, v in given.items()}
        if box:
            given["crop"] = box
        base = AnimateConfig(save_template=False, watermark=self.watermark)
        if animal:
            base = base.as_animal()
        config = make_config(base, **given)  # options checked before the animal weights load
        return (self.animal_pipe if animal else self.pipe), config

    def animate(self, source, driving, options: dict[str, Any] | None = None,
                progress: Progress | None = None) -> tuple[Path, bool]:
        """Animate through the Python API; ``options`` by the tab's names (those of ``AnimateConfig`` and
        ``MotionOptions``, with ``scale``/``vx``/``vy`` for the source crop, ``animal`` and ``crop_box``).
        Returns the result file and whether it is a video."""
        from ..config import ANIMAL_PHOTO_ONLY
        from ..plan import plan_job

        src, src_kind = check_upload(source, ("image", "video"), "a source photo or video", self.limits)
        drv, drv_kind = check_upload(driving, ("video", "image", "template"),
                                     "a driving video, photo or motion template", self.limits)
        if (options or {}).get("animal") and src_kind != "image":
            raise InputError(ANIMAL_PHOTO_ONLY)
        pipe, config = self._animate_config(options)
        if src_kind == "image":
            load_photo(src, "a source photo", self.limits)  # pixel limit before the pipeline decodes it
        plan = plan_job(src, drv, self._out(""), config)  # in a fresh folder; the plan names the result
        result = pipe.animate_planned(plan, config, progress=progress).save_planned(plan)
        return result.output, not result.still

    def animate_speech(self, source, audio, seed: int | float | None = None, options: dict[str, Any] | None = None,
                       progress: Progress | None = None) -> tuple[Path, int]:
        """A photo moved by speech (JoyVASA motion) through the Python API's ``pipe(photo, audio=, seed=)``:
        an mp4 at the model's fps as long as the speech, with the speech as its sound. ``seed`` None: a
        fresh one (so is -1, the tab's "new each time"). Returns the video and the seed (the same seed gives the
        same frames)."""
        import secrets

        from ..errors import require_extra

        src, _ = check_upload(source, ("image",), "a source photo (speech drives a photo)", self.limits)
        seed = _seed(seed)
        pipe, config = self._animate_config(options)
        require_extra("audio", ("transformers",), "speech driving")
        from ..audio.weights import locate_audio_weights

        layout = locate_audio_weights(self.audio_weights)  # the command line's message when they are missing
        speech = check_audio(audio, "a speech recording", self.limits)
        load_photo(src, "a source photo", self.limits)
        if seed is None:
            seed = secrets.randbelow(2 ** 31)
        ticks: list = []  # the web page's progress bar, once the frame count is known

        def tick(index, frame):
            if ticks:
                next(ticks[0], None)

        out = pipe(src, audio=speech, seed=seed, audio_weights=layout.root, config=config,
                   callback_on_frame=tick if progress is not None else None)
        if progress is not None:
            ticks.append(iter(progress(range(out.frame_count), out.frame_count, "speech")))
        result = out.save(self._out(f"{src.stem}--{speech.stem}.mp4"))
        return result.output, seed

    # -- the crop box, drawn on the source picture ---------------------------------------------------

    def box_picture(self, source) -> np.ndarray:
        """The source photo at its own size: a crop box is in its pixels, as ``--crop-box`` and
        ``liveportrait crop`` take it (the pipeline scales the box with the photo when it shrinks it)."""
        p, _ = check_upload(source, ("image",), "a source photo", self.limits)
        key = (str(p), p.stat().st_size, p.stat().st_mtime_ns)
        picture = self._box_pictures.get(key)
        if picture is None:
            picture = load_photo(p, "a source photo", self.limits)
            self._box_pictures.put(key, picture)
        return picture

    def click_box(self, source, corner, point) -> tuple[np.ndarray, str, list[int] | None]:
        """One click on the picture at ``point`` (x, y pixels): the first of two sets a corner (marked);
        the second closes the box. Returns (the picture with the box or corner drawn, the box as
        "x0,y0,x1,y1" or "" while a corner is pending, the pending corner or None)."""
        picture = self.box_picture(source)
        h, w = picture.shape[:2]
        try:
            x, y = (int(round(float(v))) for v in point)
        except (TypeError, ValueError):
            raise InputError("click on the picture to set a corner of the box") from None
        x, y = min(max(x, 0), w - 1), min(max(y, 0), h - 1)
        if not corner:
            return draw_box(picture, corner=(x, y)), "", [x, y]
        (x0, x1), (y0, y1) = sorted((int(corner[0]), x)), sorted((int(corner[1]), y))
        least = max(8, min(h, w) // 50)
        if x1 - x0 < least or y1 - y0 < least:
            raise InputError(f"the two corners are too close ({x1 - x0} x {y1 - y0} pixels): click two opposite "
                             "corners of the face, around the whole head")
        box = f"{x0},{y0},{x1},{y1}"
        return draw_box(picture, box=box), box, None

    def show_box(self, source, box_text: str | None) -> np.ndarray:
        """The picture with a typed box drawn (an empty box: the plain picture)."""
        picture = self.box_picture(source)
        box = parse_box_text(box_text)
        return draw_box(picture, box=box) if box else picture

    # -- Retarget video tab --------------------------------------------------------------------------

    def retarget(self, video, eye_ratio: float | None, lip_ratio: float | None, smooth: float = 3e-6,
                 silent: bool = False, scale: float = SOURCE_SCALE, progress: Progress | None = None) -> Path:
        from ..config import AnimateConfig

        src, _ = check_upload(video, ("video",), "a source video", self.limits)
        smooth = float(smooth)
        if smooth < 0:
            raise InputError("the smoothing strength cannot be negative")
        config = AnimateConfig(source_scale=float(scale), watermark=self.watermark, device=self.device,
                               precision=self.precision)
        out = self._out(f"{src.stem}_retargeting.mp4")
        result = retarget_video(self.pipeline(config, progress), src, out, eye_ratio=eye_ratio, lip_ratio=lip_ratio,
                                smooth=smooth, silent=bool(silent), progress=progress)
        return result.output


def _seed(seed) -> int | None:
    """The seed field's value: None (empty or -1) for a fresh one, else a whole number from 0."""
    if seed is None or (isinstance(seed, str) and not seed.strip()) or seed in (-1, "-1"):
        return None
    try:
        value = float(seed)
    except (TypeError, ValueError):
        raise InputError(f"the seed must be a whole number, got {seed!r}") from None
    if value != int(value) or not 0 <= value < 2 ** 63:
        raise InputError(f"the seed must be a whole number from 0, got {seed!r}")
    return int(value)


def parse_box_text(text) -> str | None:
    """A crop box typed or drawn as "x0,y0,x1,y1" (spaces allowed), normalised; None when empty."""
    from ..config import parse_box

    if text is None or not str(text).strip():
        return None
    try:
        b = parse_box(str(text))
    except ValueError as exc:
        raise InputError(f"crop box: {exc}") from None
    return ",".join(f"{v:g}" for v in b)


BOX_COLOR = (255, 40, 40)
SQUARE_COLOR = (255, 220, 60)


def draw_box(picture: np.ndarray, box: str | None = None, corner: tuple[int, int] | None = None) -> np.ndarray:
    """A copy of ``picture`` with the crop box (and the square the crop takes around it) or a pending
    corner drawn on it."""
    import cv2

    from ..config import parse_box

    out = np.ascontiguousarray(picture.copy())
    h, w = out.shape[:2]
    thick = max(2, round(max(h, w) / 320))
    if corner is not None:
        x, y = int(corner[0]), int(corner[1])
        r = max(6, thick * 5)
        cv2.line(out, (x - r, y), (x + r, y), BOX_COLOR, thick)
        cv2.line(out, (x, y - r), (x, y + r), BOX_COLOR, thick)
    if box:
        x0, y0, x1, y1 = (int(round(v)) for v in parse_box(box))
        # the crop is the square of the box's longer side around its centre: drawn thin, under the box
        cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) / 2
        cv2.rectangle(out, (int(cx - half), int(cy - half)), (int(cx + half), int(cy + half)), SQUARE_COLOR,
                      max(1, thick // 2))
        cv2.rectangle(out, (x0, y0), (x1, y1), BOX_COLOR, thick)
    return out
