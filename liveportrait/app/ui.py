"""The Gradio interface: Animate, Edit and Retarget video tabs over :class:`AppBackend`.

Import this module only when the app runs: it imports gradio. It makes no outside request:
analytics are off, the default theme's fonts are served by the app itself, and sharing is off
unless asked for (see ``liveportrait.commands.app``).
"""

from __future__ import annotations

import inspect
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402

from .._lazy import is_loopback  # noqa: E402
from ..config import CROP_DRIVING, DRIVING_OPTIONS, REGIONS, AnimateConfig  # noqa: E402
from ..errors import InputError, LivePortraitError  # noqa: E402
from ..motion.editing import CONTROLS, INTERPOLATIONS, TRANSFER_REGIONS  # noqa: E402
from ..pipeline.editor import EDIT_CROP_SCALE  # noqa: E402
from ..uploads import UploadLimits, check_upload  # noqa: E402
from .backend import AppBackend  # noqa: E402
from .examples import Example, example_sets, write_examples  # noqa: E402
from .live import LiveTab, build_live_tab  # noqa: E402

DEFAULT = AnimateConfig()  # the controls' starting values: the config's defaults, written once there

COMPUTE = "compute"  # every event that runs networks queues here, one at a time

INTRO = """# LivePortrait
Animate a portrait (or a cat or dog) with a driving video or with speech, edit its expression and pose
with sliders, or set the eye and lip opening of a face video. Everything runs on this computer; outputs
carry an "AI-generated" label and an invisible watermark."""

ANIMAL_LABEL = "Animal (cat/dog)"
DRAW_A_BOX = ('draw a box around it: open "Crop box" under the inputs and click two opposite corners of the face '
              'on the picture')


# the Animate examples' thumbnails are pairs (source, arrow, driving): cells of their shape, not squares
APP_CSS = "#animate-examples .thumbnail-item { aspect-ratio: 2.25 / 1; }"

_TEMP_PATH = re.compile(re.escape(tempfile.gettempdir().rstrip(os.sep)) + r"/[^\s:'\"]*/")


# the command line's words in messages, as this app's controls
_APP_WORDS = ((re.compile(r"give its position with --crop-box [\w,]+"), DRAW_A_BOX),
              (re.compile(r"without --animal"), f'with "{ANIMAL_LABEL}" off'),
              (re.compile(r"add --animal"), f'turn on "{ANIMAL_LABEL}"'))


def user_message(exc: Exception) -> str:
    """The error's message for the app: no server-side upload folders; command-line hints say which of
    this app's controls to use instead (a drawn crop box, the animal toggle)."""
    text = _TEMP_PATH.sub("", str(exc))
    for pattern, words in _APP_WORDS:
        text = pattern.sub(words, text)
    return text


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def plain_markdown(text: str) -> str:
    """``text`` shown as it is in a Markdown component (its special characters escaped)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def error_markdown(message: str) -> str:
    """The status line that stays beside the inputs after an error (the toast fades)."""
    if not message:
        return ""
    return "**Error:** " + plain_markdown(message)


class ErrorBoard:
    """The last error of each browser session, so that a ``.failure`` follow-up can show it in the tab.

    A failed event returns no outputs, only the error; ``_user_errors`` notes its message here under
    the session, and the follow-up takes it back out into the tab's status line.
    """

    def __init__(self, size: int = 256):
        self.size = size
        self._items: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, request, message: str) -> None:
        key = getattr(request, "session_hash", None)
        if not key:
            return
        with self._lock:
            self._items[key] = message
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def take(self, request) -> str:
        key = getattr(request, "session_hash", None)
        with self._lock:
            return self._items.pop(key, "") if key else ""

    def show(self, request: gr.Request) -> str:
        """The ``.failure`` follow-up: the session's last error as the status line."""
        return error_markdown(self.take(request))


def _user_errors(fn, board: ErrorBoard | None = None):
    """Run ``fn``; problems the user can fix become a message in the app (gr.Error) and, through
    ``board``, the status line of the tab. The wrapper takes Gradio's request as a last argument."""
    params = [p for p in inspect.signature(fn).parameters.values() if p.name != "request"]
    wants_request = len(params) < len(inspect.signature(fn).parameters)  # fn(..., request=) is given it

    def wrapper(*args, **kwargs):
        request = kwargs.pop("request", None)
        if any(isinstance(a, gr.Request) for a in args):
            request = next(a for a in args if isinstance(a, gr.Request))
            args = tuple(a for a in args if not isinstance(a, gr.Request))
        if wants_request:
            kwargs["request"] = request
        try:
            return fn(*args, **kwargs)
        except LivePortraitError as exc:
            message = user_message(exc)
            if board is not None:
                board.put(request, message)
            raise gr.Error(message, print_exception=False) from None

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    wrapper.__signature__ = inspect.Signature(
        params + [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                    annotation=gr.Request)])
    # Gradio passes the request (and select events' data) by these annotations
    wrapper.__annotations__ = {**getattr(fn, "__annotations__", {}), "request": gr.Request}
    wrapper.user_errors = True  # (tests: every such event has its status follow-up)
    return wrapper


def _progress_adapter(progress: gr.Progress):
    def adapt(iterable, total, desc):
        return progress.tqdm(iterable, total=total, desc=desc)

    return adapt


def _signature(names: list[str], defaults: dict | None = None, progress: bool = False) -> inspect.Signature:
    defaults = defaults or {}
    params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                default=defaults.get(n, inspect.Parameter.empty)) for n in names]
    if progress:
        params.append(inspect.Parameter("progress", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=gr.Progress()))
    return inspect.Signature(params)


def build_app(backend: AppBackend) -> gr.Blocks:
    """The Blocks app; launch it with :func:`launch`."""
    b = backend
    sliders: dict[str, gr.Slider] = {}
    board = ErrorBoard()
    examples = write_examples(b.workdir / "examples")  # painted here: no download, nothing bundled
    example_items = example_sets(examples)
    live = LiveTab(b)

    # uploads copied into Gradio's cache are dropped after a day
    with gr.Blocks(title="LivePortrait", analytics_enabled=False, delete_cache=(3600, 86400)) as demo:
        gr.Markdown(INTRO)
        with gr.Tabs():
            # -- Animate ------------------------------------------------------------------------------
            with gr.Tab("Animate", id="animate"):
                # inputs on the left; the Animate button heads the results on the right, in view at once
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3):
                        with gr.Row():
                            with gr.Column(min_width=240):
                                a_source = gr.File(label="Source photo or video", file_types=["image", "video"],
                                                   type="filepath", elem_id="animate-source")
                                a_source_previews = _previews("animate-source", "Source")
                            with gr.Column(min_width=240):
                                a_driving = gr.File(label="Driving video, photo or motion template (.pkl, .lpt.npz)",
                                                    file_types=["image", "video", ".pkl", ".npz"], type="filepath",
                                                    elem_id="animate-driving")
                                a_driving_previews = _previews("animate-driving", "Driving")
                        a_gallery = _example_gallery(example_items["animate"], "animate-examples",
                                                     "Examples (painted by the app): pick one, then Animate")
                        a_animal = gr.Checkbox(False, label=ANIMAL_LABEL, elem_id="animate-animal",
                                               info="the source is a cat or dog: the animal weights, no stitching, "
                                                    "no paste-back; the driving is a human face as usual")
                        with gr.Accordion("Crop box: draw it on the picture (for a face that is not found: a pet, "
                                          "a drawing)", open=False, elem_id="animate-box-accordion") as a_box_accordion:
                            gr.Markdown("Click two opposite corners of the face, around the whole head with some "
                                        "margin: the crop is the square around the box (drawn thin). Empty: the face "
                                        "is found automatically.")
                            a_box_image = gr.Image(label="Source picture: click two corners", interactive=False,
                                                   type="numpy", height=420, elem_id="animate-box-image")
                            with gr.Row():
                                a_box = gr.Textbox("", label="crop box x0,y0,x1,y1 in the picture's pixels (empty: "
                                                             "find the face)", elem_id="animate-crop-box", scale=3)
                                a_box_clear = gr.Button("Clear box", elem_id="animate-box-clear", scale=1)
                            a_corner = gr.State(None)
                        # speech: its controls only where it can run; elsewhere the reason in their place
                        audio_problem = b.audio_problem()
                        speech = audio_problem is None
                        with gr.Row(visible=speech):
                            a_audio = gr.Audio(label="...or drive it with speech (any sound file; instead of a "
                                                     "driving)", sources=["upload", "microphone"], type="filepath",
                                               format=None, interactive=speech, visible=speech,
                                               elem_id="animate-audio")
                            a_seed = gr.Number(-1, precision=0, minimum=-1, interactive=speech, visible=speech,
                                               label="speech: seed of the motion (-1: a new one each time)",
                                               elem_id="animate-seed")
                        if audio_problem:
                            gr.Markdown("**Speech driving is not available here:** " + plain_markdown(audio_problem),
                                        elem_id="animate-audio-note")
                        with gr.Accordion("Options", open=False):
                            with gr.Row():
                                # every control starts at its config field's default (one source of them)
                                a_relative = gr.Checkbox(DEFAULT.motion.relative, label="relative motion")
                                a_stitching = gr.Checkbox(DEFAULT.motion.stitching, label="stitching")
                                a_paste = gr.Checkbox(DEFAULT.paste_back, label="paste back into the photo")
                                a_normalize = gr.Checkbox(DEFAULT.motion.normalize_lip,
                                                          label="close the source's mouth first (normalize lip)")
                            with gr.Row():
                                a_region = gr.Radio(list(REGIONS), value=DEFAULT.motion.region,
                                                    label="animation region")
                                a_option = gr.Radio(list(DRIVING_OPTIONS), value=DEFAULT.motion.driving_option,
                                                    label="driving option")
                                a_crop_driving = gr.Radio(list(CROP_DRIVING), value=DEFAULT.crop_driving,
                                                          label="crop the driving face")
                            with gr.Row():
                                a_multiplier = gr.Slider(0, 2, value=DEFAULT.motion.multiplier, step=0.01,
                                                         label="driving multiplier")
                                a_smooth = gr.Number(DEFAULT.smooth,
                                                     label="motion smoothing (Kalman variance, e.g. 1e-6; 0 off)")
                            with gr.Row():
                                a_scale = gr.Slider(1.8, 3.2, value=DEFAULT.source_scale, step=0.05,
                                                    label="source crop scale")
                                a_vx = gr.Slider(-0.5, 0.5, value=DEFAULT.source_vx, step=0.01,
                                                 label="source crop x shift")
                                a_vy = gr.Slider(-0.5, 0.5, value=DEFAULT.source_vy, step=0.01,
                                                 label="source crop y shift")
                    with gr.Column(scale=2):
                        a_run = gr.Button("Animate", variant="primary", size="lg", elem_id="animate-run")
                        a_error = gr.Markdown(elem_id="animate-error")
                        a_info = gr.Markdown(elem_id="animate-info")
                        a_video = gr.Video(label="Result video", interactive=False, height=360, elem_id="animate-video")
                        a_image = gr.Image(label="Result picture", interactive=False, type="filepath", height=360,
                                           buttons=["download", "fullscreen"], elem_id="animate-image")

            # -- Edit -------------------------------------------------------------------------------------
            with gr.Tab("Edit", id="edit"):
                with gr.Row():
                    with gr.Column(scale=1):
                        e_photo = gr.File(label="Portrait photo", file_types=["image"], type="filepath",
                                          elem_id="edit-photo")
                        e_scale = gr.Slider(1.8, 3.2, value=EDIT_CROP_SCALE, step=0.05, label="crop scale",
                                            elem_id="edit-scale")
                        e_preview = gr.Image(label="Framed face", interactive=False, height=256,
                                             buttons=["fullscreen"], elem_id="edit-preview")
                        e_status = gr.Markdown(label="status", elem_id="edit-status")
                        e_error = gr.Markdown(elem_id="edit-error")
                        e_gallery = _example_gallery(example_items["edit"], "edit-examples",
                                                     "Example (painted by the app): pick it", columns=2, height=230)
                    with gr.Column(scale=2):
                        e_result = gr.Image(label="Edited", interactive=False, type="filepath",
                                            buttons=["download", "fullscreen"], elem_id="edit-result")
                with gr.Row():
                    e_eye_on = gr.Checkbox(False, label="set eye opening", elem_id="edit-eye-on")
                    sliders["eye_ratio"] = _slider("eye_ratio", 0.35)
                    e_lip_on = gr.Checkbox(False, label="set lip opening", elem_id="edit-lip-on")
                    sliders["lip_ratio"] = _slider("lip_ratio", 0.0)
                rows = (("Head", lambda c: c.group == "pose"), ("Expression", lambda c: c.group == "expression"),
                        ("Mouth", lambda c: c.group == "lips" and not c.ours),
                        ("Mouth shapes (ours: built from the official lip controls)",
                         lambda c: c.group == "lips" and c.ours))
                for title, wanted in rows:
                    gr.Markdown(f"**{title}**")
                    with gr.Row():
                        for c in CONTROLS:
                            if wanted(c):
                                sliders[c.name] = _slider(c.name)
                with gr.Row():
                    e_stitching = gr.Checkbox(True, label="stitching")
                    e_apply = gr.Button("Apply", variant="primary", elem_id="edit-apply")
                    e_reset = gr.Button("Reset", elem_id="edit-reset")
                with gr.Accordion("Expression from another photo", open=False):
                    with gr.Row():
                        e_driving = gr.File(label="Driving photo", file_types=["image"], type="filepath",
                                            elem_id="edit-driving")
                        e_region = gr.Radio(list(TRANSFER_REGIONS), value="exp", label="what to take from it")
                        e_relative = gr.Checkbox(True, label="relative (keep the source's own expression as a base)")
                with gr.Accordion("Keyframes: animate the sliders", open=False):
                    gr.Markdown("Set the sliders, pick a time and add a keyframe; repeat; render. "
                                "The list is JSON and can be edited by hand.")
                    with gr.Row():
                        k_time = gr.Number(0.0, label="time (s)", minimum=0)
                        k_fps = gr.Number(25, label="fps", minimum=1, maximum=60)
                        k_method = gr.Radio(list(INTERPOLATIONS), value="catmull-rom", label="interpolation")
                    k_text = gr.Code("[]", language="json", label="keyframes", interactive=True)
                    with gr.Row():
                        k_add = gr.Button("Add keyframe")
                        k_clear = gr.Button("Clear")
                        k_render = gr.Button("Render animation", variant="primary")
                    k_error = gr.Markdown(elem_id="keyframes-error")
                    k_video = gr.Video(label="Animation", interactive=False)

            # -- Retarget video --------------------------------------------------------------------------
            with gr.Tab("Retarget video", id="retarget"):
                with gr.Row():
                    with gr.Column():
                        r_video = gr.File(label="Face video", file_types=["video"], type="filepath",
                                          elem_id="retarget-video")
                        r_previews = _previews("retarget-video", "Face video")
                        r_gallery = _example_gallery(example_items["retarget"], "retarget-examples",
                                                     "Example (painted by the app): pick it", columns=3, height=230)
                        with gr.Row():
                            r_eye_on = gr.Checkbox(False, label="set eye opening")
                            r_eye = gr.Slider(0, 0.8, value=0.35, step=0.01, label="target eyes-open ratio")
                        with gr.Row():
                            r_lip_on = gr.Checkbox(True, label="set lip opening")
                            r_lip = gr.Slider(0, 0.8, value=0.0, step=0.01, label="target lip-open ratio")
                        r_silent = gr.Checkbox(False, label="keep the lips silent (neutral mouth)")
                        r_smooth = gr.Number(3e-6, label="motion smoothing (Kalman variance)")
                        r_scale = gr.Slider(1.8, 3.2, value=DEFAULT.source_scale, step=0.05, label="crop scale")
                        r_run = gr.Button("Retarget", variant="primary")
                        r_error = gr.Markdown(elem_id="retarget-error")
                    r_out = gr.Video(label="Result", interactive=False)

            # -- Live: the camera drives the portrait over WebRTC (liveportrait.app.live) -------------------
            build_live_tab(gr, live, board, _user_errors, _example_gallery, _pick, example_items["edit"], COMPUTE)

        # -- events ------------------------------------------------------------------------------------
        slider_names = list(sliders)
        slider_inputs = [sliders[n] for n in slider_names]

        def values_of(args) -> dict:
            return dict(zip(slider_names, args))

        def report(event, box: gr.Markdown):
            """After ``event``: its error in ``box`` (it stays there), or ``box`` cleared when it worked."""
            event.failure(board.show, None, [box], queue=False, api_visibility="private")
            event.success(lambda: "", None, [box], queue=False, api_visibility="private")
            return event

        # Animate: a driving video, photo or template, or speech; a human or an animal; a found or drawn crop
        notes = ErrorBoard()  # what a finished animation has to say (the seed of a speech), per session
        animate_names = ["source", "driving", "relative", "region", "driving_option", "multiplier", "stitching",
                         "normalize_lip", "paste_back", "scale", "vx", "vy", "crop_driving", "smooth", "animal",
                         "crop_box", "audio", "seed"]

        def animate(*args, request=None):
            v = dict(zip(animate_names, args))
            # gradio passes the tracked gr.Progress of the signature after the inputs
            progress = args[len(animate_names)] if len(args) > len(animate_names) else None
            adapt = _progress_adapter(progress) if progress is not None else None
            options = {k: v[k] for k in animate_names[2:-2]}
            if v["audio"]:
                if v["driving"]:
                    raise InputError("Give a driving video, photo or template, or speech, not both: clear one of "
                                     "them.")
                path, seed = b.animate_speech(v["source"], v["audio"], v["seed"], options, adapt)
                notes.put(request, f"Speech animated with seed {seed}: give this seed to get the same motion again.")
                return str(path), None
            path, is_video = b.animate(v["source"], v["driving"], options, adapt)
            return (str(path), None) if is_video else (None, str(path))

        animate.__signature__ = _signature(animate_names + ["request"], {"animal": False,
                                                                         "crop_box": "", "audio": None,
                                                                         "seed": -1, "request": None},
                                           progress=True)

        def animate_failed(request: gr.Request):
            """The error in the tab; the crop box opens when the message asks for one."""
            message = board.take(request)
            return error_markdown(message), gr.update(open=True) if DRAW_A_BOX in message else gr.update()

        def animate_done(request: gr.Request):
            return "", notes.take(request)

        a_event = a_run.click(_user_errors(animate, board),
                              [a_source, a_driving, a_relative, a_region, a_option, a_multiplier, a_stitching,
                               a_normalize, a_paste, a_scale, a_vx, a_vy, a_crop_driving, a_smooth, a_animal, a_box,
                               a_audio, a_seed],
                              [a_video, a_image], api_name="animate", concurrency_id=COMPUTE, concurrency_limit=1)
        a_event.failure(animate_failed, None, [a_error, a_box_accordion], queue=False, api_visibility="private")
        a_event.success(animate_done, None, [a_error, a_info], queue=False, api_visibility="private")

        # animal mode starts from the reference's animal defaults: no stitching, no paste-back
        a_animal.input(lambda on: (not on, not on), [a_animal], [a_stitching, a_paste], queue=False,
                       api_visibility="private")

        # the crop box: the source picture, two clicks, the box drawn and typed in
        def box_start(source):
            """A new source: its picture to draw on (none for a video or a bad file), no box."""
            try:
                return (b.box_picture(source) if source else None), "", None
            except LivePortraitError:
                return None, "", None

        def box_click(source, corner, evt: gr.SelectData):
            return b.click_box(source, corner, evt.index)

        def box_typed(source, box):
            return b.show_box(source, box), None

        box_io = dict(concurrency_id="box", concurrency_limit=4, api_visibility="private")
        a_source.change(box_start, [a_source], [a_box_image, a_box, a_corner], **box_io)

        # the chosen files shown as a picture or a video; examples picked from their thumbnails
        def previewer(kinds: tuple[str, ...], what: str):
            def show(path):
                return preview_updates(path, kinds, what, b.limits)

            return show

        a_source.change(previewer(("image", "video"), "a source photo or video"), [a_source], a_source_previews,
                        **box_io)
        a_driving.change(previewer(("image", "video", "template"), "a driving"), [a_driving], a_driving_previews,
                         **box_io)
        r_video.change(previewer(("video",), "a face video"), [r_video], r_previews, **box_io)
        a_gallery.select(_pick(example_items["animate"]), None, [a_source, a_driving], queue=False,
                         api_visibility="private")
        r_gallery.select(_pick(example_items["retarget"]), None, [r_video], queue=False, api_visibility="private")
        a_box_clear.click(box_start, [a_source], [a_box_image, a_box, a_corner], **box_io)
        report(a_box_image.select(_user_errors(box_click, board), [a_source, a_corner],
                                  [a_box_image, a_box, a_corner], **box_io), a_error)
        report(a_box.submit(_user_errors(box_typed, board), [a_source, a_box], [a_box_image, a_corner], **box_io),
               a_error)

        # Edit: prepare once per upload (and crop scale)
        def prepare(photo, crop_scale):
            crop, eye, lip, msg = b.prepare(photo, crop_scale)
            return crop, (eye if eye is not None else 0.35), (lip if lip is not None else 0.0), msg

        prep_io = dict(inputs=[e_photo, e_scale], outputs=[e_preview, sliders["eye_ratio"], sliders["lip_ratio"],
                                                           e_status], concurrency_id=COMPUTE, concurrency_limit=1)
        prepare_fn = _user_errors(prepare, board)
        report(e_photo.upload(prepare_fn, api_name="prepare", **prep_io), e_error)
        report(e_scale.release(prepare_fn, api_visibility="private", **prep_io), e_error)
        report(e_gallery.select(_pick(example_items["edit"]), None, [e_photo], queue=False,
                                api_visibility="private").then(prepare_fn, api_visibility="private", **prep_io),
               e_error)

        edit_names = ["photo", "crop_scale", "stitching", "eye_on", "lip_on", "driving_photo", "driving_region",
                      "driving_relative"] + slider_names
        edit_defaults = {c.name: (c.neutral if c.neutral == c.neutral else None) for c in CONTROLS}
        edit_defaults.update(stitching=True, eye_on=False, lip_on=False, driving_photo=None, driving_region="exp",
                             driving_relative=True, crop_scale=EDIT_CROP_SCALE)

        def edit(*args):
            v = dict(zip(edit_names, args))
            values = values_of(args[8:])
            if not v["eye_on"]:
                values["eye_ratio"] = None
            if not v["lip_on"]:
                values["lip_ratio"] = None
            return str(b.edit(v["photo"], v["crop_scale"], values, v["stitching"], v["driving_photo"],
                              v["driving_region"], v["driving_relative"]))

        edit.__signature__ = _signature(edit_names, edit_defaults)
        edit_inputs = [e_photo, e_scale, e_stitching, e_eye_on, e_lip_on, e_driving, e_region,
                       e_relative] + slider_inputs
        edit_fn = _user_errors(edit, board)
        common = dict(inputs=edit_inputs, outputs=[e_result], concurrency_id=COMPUTE, concurrency_limit=1,
                      trigger_mode="always_last")
        report(e_apply.click(edit_fn, api_name="edit", **common), e_error)
        for name, s in sliders.items():
            if name in ("eye_ratio", "lip_ratio"):
                box = e_eye_on if name == "eye_ratio" else e_lip_on
                report(s.release(lambda: True, None, [box], api_visibility="private", queue=False).then(
                    edit_fn, api_visibility="private", **common), e_error)
            else:
                report(s.release(edit_fn, api_visibility="private", **common), e_error)
        for comp in (e_stitching, e_eye_on, e_lip_on, e_region, e_relative):
            report(comp.input(edit_fn, api_visibility="private", **common), e_error)
        report(e_driving.upload(edit_fn, api_visibility="private", **common), e_error)
        report(e_driving.clear(edit_fn, api_visibility="private", **common), e_error)

        def reset():
            """The reference's Reset: sliders neutral, crop scale 2.5, stitching on (ratios untouched)."""
            neutral = {c.name: c.neutral for c in CONTROLS}
            return [False, False, True, EDIT_CROP_SCALE] + [
                gr.update() if n in ("eye_ratio", "lip_ratio") else neutral[n] for n in slider_names]

        report(e_reset.click(reset, None, [e_eye_on, e_lip_on, e_stitching, e_scale] + slider_inputs,
                             api_visibility="private", queue=False).then(edit_fn, api_visibility="private", **common),
               e_error)

        # keyframes
        def add_keyframe(text, time_s, photo, crop_scale, eye_on, lip_on, *args):
            values = values_of(args)
            if not eye_on:
                values["eye_ratio"] = None
            if not lip_on:
                values["lip_ratio"] = None
            return b.add_keyframe(text, time_s or 0.0, values, photo, crop_scale)

        add_keyframe.__signature__ = _signature(["keyframes", "time", "photo", "crop_scale", "eye_on", "lip_on"]
                                                + slider_names, edit_defaults)
        report(k_add.click(_user_errors(add_keyframe, board),
                           [k_text, k_time, e_photo, e_scale, e_eye_on, e_lip_on] + slider_inputs,
                           [k_text], api_name="add_keyframe", concurrency_id=COMPUTE, concurrency_limit=1), k_error)
        k_clear.click(lambda: "[]", None, [k_text], api_visibility="private", queue=False)

        def render_keyframes(photo, crop_scale=EDIT_CROP_SCALE, keyframes="[]", fps=25, interpolation="catmull-rom",
                             stitching=True, driving_photo=None, driving_region="exp", driving_relative=True,
                             progress=gr.Progress()):
            return str(b.render_keyframes(photo, crop_scale, keyframes, fps, interpolation, stitching, driving_photo,
                                          driving_region, driving_relative, _progress_adapter(progress)))

        report(k_render.click(_user_errors(render_keyframes, board),
                              [e_photo, e_scale, k_text, k_fps, k_method, e_stitching, e_driving, e_region,
                               e_relative],
                              [k_video], api_name="keyframes", concurrency_id=COMPUTE, concurrency_limit=1), k_error)

        # Retarget video
        def retarget(video, eye_on, eye_ratio, lip_on, lip_ratio, silent, smooth, crop_scale, progress=gr.Progress()):
            return str(b.retarget(video, eye_ratio if eye_on else None, lip_ratio if lip_on else None,
                                  smooth if smooth is not None else 3e-6, silent, crop_scale,
                                  _progress_adapter(progress)))

        report(r_run.click(_user_errors(retarget, board),
                           [r_video, r_eye_on, r_eye, r_lip_on, r_lip, r_silent, r_smooth, r_scale],
                           [r_out], api_name="retarget", concurrency_id=COMPUTE, concurrency_limit=1), r_error)

    demo.queue(default_concurrency_limit=1)
    demo.live = live  # its signalling routes and page script are added by launch()
    return demo


def _previews(elem_id: str, what: str) -> list:
    """The hidden picture and video under a file input that show the chosen file (see
    :func:`preview_updates`)."""
    return [gr.Image(label=f"{what}: chosen picture", interactive=False, visible=False, height=260,
                     buttons=["fullscreen"], elem_id=f"{elem_id}-picture"),
            gr.Video(label=f"{what}: chosen video", interactive=False, visible=False, height=260,
                     elem_id=f"{elem_id}-clip")]


def preview_updates(path, kinds: tuple[str, ...], what: str,
                    limits: UploadLimits | None = None) -> tuple[dict, dict]:
    """Updates of the (picture, video) pair of :func:`_previews`: the one that fits the chosen file shows
    it; a template, a wrong or missing file shows neither (Animate says what is wrong with it)."""
    kind = None
    if path:
        try:
            kind = check_upload(path, kinds, what, limits or UploadLimits())[1]
        except LivePortraitError:
            kind = None
    return (gr.update(value=str(path) if kind == "image" else None, visible=kind == "image"),
            gr.update(value=str(path) if kind == "video" else None, visible=kind == "video"))


def _example_gallery(items: list[Example], elem_id: str, label: str, columns: int = 2,
                     height: int = 200) -> gr.Gallery:
    """The examples as thumbnails with their labels; selecting one fills the inputs (see :func:`_pick`)."""
    return gr.Gallery([(str(e.thumbnail), e.label) for e in items], label=label, columns=columns, rows=1,
                      fit_columns=False, height=height, allow_preview=False, interactive=False, object_fit="contain",
                      buttons=[], elem_id=elem_id)


def _pick(items: list[Example]):
    """A gallery's select event: the picked example's files, for the inputs it names."""

    def pick(evt: gr.SelectData):
        chosen = [str(p) for p in items[evt.index].inputs]
        return chosen if len(chosen) > 1 else chosen[0]

    return pick


def _slider(name: str, value: float | None = None) -> gr.Slider:
    c = next(c for c in CONTROLS if c.name == name)
    v = c.neutral if value is None else value
    return gr.Slider(c.minimum, c.maximum, value=v, step=c.step, label=c.label, min_width=160,
                     elem_id=f"edit-{name.replace('_', '-')}")


def serving_message(host: str, port: int, share_url: str | None = None) -> str:
    """Where the app is, in our options' words (Gradio's own banner names ``launch(share=True)``)."""
    if is_loopback(host):
        here = f"http://{'127.0.0.1' if host != 'localhost' else host}:{port}/"
        text = (f"LivePortrait app: {here} (this computer only; 'liveportrait app --host 0.0.0.0' lets other "
                f"machines on your network open http://THIS-COMPUTER:{port}/)")
    else:
        seen_as = "THIS-COMPUTER" if host in ("0.0.0.0", "::") else host
        text = (f"LivePortrait app: http://127.0.0.1:{port}/ here, http://{seen_as}:{port}/ from other machines "
                f"(--host {host})")
    if share_url:
        text += f"; public link (--share): {share_url}"
    return text + ". Ctrl+C stops it."


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, share: bool = False,
           allowed_paths: list[str] | None = None, max_file_mb: float = 500, block: bool = True, quiet: bool = False):
    """Serve the app; ``block=False`` returns at once (tests). Never shares unless ``share``.

    Gradio's start-up banner is silenced (it tells to "set share=True in launch()"); unless ``quiet``,
    :func:`serving_message` says where the app is instead."""
    result = demo.launch(server_name=host, server_port=port, share=bool(share), inbrowser=False,
                         prevent_thread_lock=True, show_error=True, quiet=True,
                         allowed_paths=allowed_paths or [], max_file_size=f"{int(max_file_mb)}mb",
                         footer_links=["api", "settings"], run_history=False, ssr_mode=False, pwa=False,
                         mcp_server=False, enable_monitoring=False, css=APP_CSS,
                         head=demo.live.script if getattr(demo, "live", None) else None)
    if getattr(demo, "live", None) is not None:
        demo.live.add_routes(demo.app)  # the Live tab's signalling, on the app's own server
    if not quiet:
        print(serving_message(host, demo.server_port, demo.share_url if share else None), flush=True)
    if block:
        try:
            while demo.is_running:
                time.sleep(0.2)
        finally:  # Ctrl+C or SIGTERM: close the server, then the command line says how it stopped
            if getattr(demo, "live", None) is not None:
                demo.live.close()  # every live session ends
            demo.close(verbose=False)
            from gradio.tunneling import CURRENT_TUNNELS

            for tunnel in CURRENT_TUNNELS:
                tunnel.kill()
    return result
