"""What the web app's buttons and sliders do, without Gradio: plain functions raising InputError.

``AppBackend`` holds the networks, the face cropper and a small cache of prepared portraits keyed
by the upload's content and crop scale, so that a slider move only renders (W and G).
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
from .editor import EDIT_CROP_SCALE, Editor, EditSource, retarget_video
from .uploads import UploadLimits, check_upload, load_photo

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
                 limits: UploadLimits = UploadLimits(), cropper=None, cache_size: int = 4, watermark: bool = True):
        """``pipe``: the ``LivePortraitPipeline`` every tab runs on (or plain networks, run as given on
        ``device`` in ``precision``)."""
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
        self.stamp = Stamp(watermark=watermark)

    @property
    def cropper(self):
        if self._cropper is None:
            self._cropper = self.editor.cropper  # one MediaPipe instance for every tab
        return self._cropper

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
                                   stitching=bool(stitching), progress=progress, watermark=self.watermark)

    # -- Animate tab ---------------------------------------------------------------------------------

    def pipeline(self, config, progress: Progress | None = None):
        return self.pipe.engine(config, progress)

    def animate(self, source, driving, options: dict[str, Any] | None = None,
                progress: Progress | None = None) -> tuple[Path, bool]:
        """Animate through the Python API; ``options`` by the tab's names (those of ``AnimateConfig`` and
        ``MotionOptions``, with ``scale``/``vx``/``vy`` for the source crop). Returns the result file and
        whether it is a video."""
        from ..api import make_config
        from ..config import AnimateConfig
        from ..plan import plan_job

        src, src_kind = check_upload(source, ("image", "video"), "a source photo or video", self.limits)
        drv, drv_kind = check_upload(driving, ("video", "image", "template"),
                                     "a driving video, photo or motion template", self.limits)
        given = {APP_OPTION_NAMES.get(k, k): v for k, v in (options or {}).items()}
        config = make_config(AnimateConfig(save_template=False, watermark=self.watermark), **given)
        if src_kind == "image":
            load_photo(src, "a source photo", self.limits)  # pixel limit before the pipeline decodes it
        plan = plan_job(src, drv, self._out(""), config)  # in a fresh folder; the plan names the result
        result = self.pipe.animate_planned(plan, config, progress=progress).save_planned(plan)
        return result.output, not result.still

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
