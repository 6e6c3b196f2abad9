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

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402

from ..errors import LivePortraitError  # noqa: E402
from ..motion.compose import DRIVING_OPTIONS, REGIONS  # noqa: E402
from ..motion.editing import CONTROLS, INTERPOLATIONS, TRANSFER_REGIONS  # noqa: E402
from .backend import AnimateOptions, AppBackend  # noqa: E402
from .editor import EDIT_CROP_SCALE  # noqa: E402

COMPUTE = "compute"  # every event that runs networks queues here, one at a time

INTRO = """# LivePortrait
Animate a portrait with a driving video, edit its expression and pose with sliders, or set the eye and
lip opening of a face video. Everything runs on this computer; outputs carry an "AI-generated" label and
an invisible watermark."""


_TEMP_PATH = re.compile(re.escape(tempfile.gettempdir().rstrip(os.sep)) + r"/[^\s:'\"]*/")


_CLI_HINT = re.compile(r"[;,]?\s*(if there is one, )?give its position with --crop-box \S+")


def user_message(exc: Exception) -> str:
    """The error's message for the app: no server-side upload folders, no command-line hints."""
    return _CLI_HINT.sub("", _TEMP_PATH.sub("", str(exc)))


def _user_errors(fn):
    """Run ``fn``; problems the user can fix become a message in the app (gr.Error)."""

    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LivePortraitError as exc:
            raise gr.Error(user_message(exc), print_exception=False) from None

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    wrapper.__signature__ = inspect.signature(fn)
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

    # uploads copied into Gradio's cache are dropped after a day
    with gr.Blocks(title="LivePortrait", analytics_enabled=False, delete_cache=(3600, 86400)) as demo:
        gr.Markdown(INTRO)
        with gr.Tabs():
            # -- Animate ------------------------------------------------------------------------------
            with gr.Tab("Animate", id="animate"):
                with gr.Row():
                    a_source = gr.File(label="Source photo or video", file_types=["image", "video"], type="filepath",
                                       elem_id="animate-source")
                    a_driving = gr.File(label="Driving video, photo or motion template (.pkl, .lpt.npz)",
                                        file_types=["image", "video", ".pkl", ".npz"], type="filepath",
                                        elem_id="animate-driving")
                with gr.Accordion("Options", open=False):
                    with gr.Row():
                        a_relative = gr.Checkbox(True, label="relative motion")
                        a_stitching = gr.Checkbox(True, label="stitching")
                        a_paste = gr.Checkbox(True, label="paste back into the photo")
                        a_normalize = gr.Checkbox(False, label="close the source's mouth first (normalize lip)")
                    with gr.Row():
                        a_region = gr.Radio(list(REGIONS), value="all", label="animation region")
                        a_option = gr.Radio(list(DRIVING_OPTIONS), value="expression-friendly", label="driving option")
                        a_crop_driving = gr.Radio(["auto", "always", "never"], value="auto",
                                                  label="crop the driving face")
                    with gr.Row():
                        a_multiplier = gr.Slider(0, 2, value=1.0, step=0.01, label="driving multiplier")
                        a_smooth = gr.Number(0.0, label="motion smoothing (Kalman variance, e.g. 1e-6; 0 off)")
                    with gr.Row():
                        a_scale = gr.Slider(1.8, 3.2, value=2.3, step=0.05, label="source crop scale")
                        a_vx = gr.Slider(-0.5, 0.5, value=0.0, step=0.01, label="source crop x shift")
                        a_vy = gr.Slider(-0.5, 0.5, value=-0.125, step=0.01, label="source crop y shift")
                a_run = gr.Button("Animate", variant="primary", elem_id="animate-run")
                with gr.Row():
                    a_video = gr.Video(label="Result video", interactive=False, elem_id="animate-video")
                    a_image = gr.Image(label="Result picture", interactive=False, type="filepath",
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
                    k_video = gr.Video(label="Animation", interactive=False)

            # -- Retarget video --------------------------------------------------------------------------
            with gr.Tab("Retarget video", id="retarget"):
                with gr.Row():
                    with gr.Column():
                        r_video = gr.File(label="Face video", file_types=["video"], type="filepath",
                                          elem_id="retarget-video")
                        with gr.Row():
                            r_eye_on = gr.Checkbox(False, label="set eye opening")
                            r_eye = gr.Slider(0, 0.8, value=0.35, step=0.01, label="target eyes-open ratio")
                        with gr.Row():
                            r_lip_on = gr.Checkbox(True, label="set lip opening")
                            r_lip = gr.Slider(0, 0.8, value=0.0, step=0.01, label="target lip-open ratio")
                        r_silent = gr.Checkbox(False, label="keep the lips silent (neutral mouth)")
                        r_smooth = gr.Number(3e-6, label="motion smoothing (Kalman variance)")
                        r_scale = gr.Slider(1.8, 3.2, value=2.3, step=0.05, label="crop scale")
                        r_run = gr.Button("Retarget", variant="primary")
                    r_out = gr.Video(label="Result", interactive=False)

        # -- events ------------------------------------------------------------------------------------
        slider_names = list(sliders)
        slider_inputs = [sliders[n] for n in slider_names]

        def values_of(args) -> dict:
            return dict(zip(slider_names, args))

        # Animate
        animate_names = ["source", "driving", "relative", "region", "driving_option", "multiplier", "stitching",
                         "normalize_lip", "paste_back", "scale", "vx", "vy", "crop_driving", "smooth"]

        def animate(*args):
            v = dict(zip(animate_names, args))
            # gradio passes the tracked gr.Progress of the signature after the inputs
            progress = args[len(animate_names)] if len(args) > len(animate_names) else None
            options = AnimateOptions(**{k: v[k] for k in animate_names[2:]})
            path, is_video = b.animate(v["source"], v["driving"], options,
                                       _progress_adapter(progress) if progress is not None else None)
            return (str(path), None) if is_video else (None, str(path))

        animate.__signature__ = _signature(animate_names, progress=True)
        a_run.click(_user_errors(animate),
                    [a_source, a_driving, a_relative, a_region, a_option, a_multiplier, a_stitching, a_normalize,
                     a_paste, a_scale, a_vx, a_vy, a_crop_driving, a_smooth],
                    [a_video, a_image], api_name="animate", concurrency_id=COMPUTE, concurrency_limit=1)

        # Edit: prepare once per upload (and crop scale)
        def prepare(photo, crop_scale):
            crop, eye, lip, msg = b.prepare(photo, crop_scale)
            return crop, (eye if eye is not None else 0.35), (lip if lip is not None else 0.0), msg

        prep_io = dict(inputs=[e_photo, e_scale], outputs=[e_preview, sliders["eye_ratio"], sliders["lip_ratio"],
                                                           e_status], concurrency_id=COMPUTE, concurrency_limit=1)
        e_photo.upload(_user_errors(prepare), api_name="prepare", **prep_io)
        e_scale.release(_user_errors(prepare), api_visibility="private", **prep_io)

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
        edit_fn = _user_errors(edit)
        common = dict(inputs=edit_inputs, outputs=[e_result], concurrency_id=COMPUTE, concurrency_limit=1,
                      trigger_mode="always_last")
        e_apply.click(edit_fn, api_name="edit", **common)
        for name, s in sliders.items():
            if name in ("eye_ratio", "lip_ratio"):
                box = e_eye_on if name == "eye_ratio" else e_lip_on
                s.release(lambda: True, None, [box], api_visibility="private", queue=False).then(
                    edit_fn, api_visibility="private", **common)
            else:
                s.release(edit_fn, api_visibility="private", **common)
        for comp in (e_stitching, e_eye_on, e_lip_on, e_region, e_relative):
            comp.input(edit_fn, api_visibility="private", **common)
        e_driving.upload(edit_fn, api_visibility="private", **common)
        e_driving.clear(edit_fn, api_visibility="private", **common)

        def reset():
            """The reference's Reset: sliders neutral, crop scale 2.5, stitching on (ratios untouched)."""
            neutral = {c.name: c.neutral for c in CONTROLS}
            return [False, False, True, EDIT_CROP_SCALE] + [
                gr.update() if n in ("eye_ratio", "lip_ratio") else neutral[n] for n in slider_names]

        e_reset.click(reset, None, [e_eye_on, e_lip_on, e_stitching, e_scale] + slider_inputs,
                      api_visibility="private", queue=False).then(edit_fn, api_visibility="private", **common)

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
        k_add.click(_user_errors(add_keyframe), [k_text, k_time, e_photo, e_scale, e_eye_on, e_lip_on] + slider_inputs,
                    [k_text], api_name="add_keyframe", concurrency_id=COMPUTE, concurrency_limit=1)
        k_clear.click(lambda: "[]", None, [k_text], api_visibility="private", queue=False)

        def render_keyframes(photo, crop_scale=EDIT_CROP_SCALE, keyframes="[]", fps=25, interpolation="catmull-rom",
                             stitching=True, driving_photo=None, driving_region="exp", driving_relative=True,
                             progress=gr.Progress()):
            return str(b.render_keyframes(photo, crop_scale, keyframes, fps, interpolation, stitching, driving_photo,
                                          driving_region, driving_relative, _progress_adapter(progress)))

        k_render.click(_user_errors(render_keyframes),
                       [e_photo, e_scale, k_text, k_fps, k_method, e_stitching, e_driving, e_region, e_relative],
                       [k_video], api_name="keyframes", concurrency_id=COMPUTE, concurrency_limit=1)

        # Retarget video
        def retarget(video, eye_on, eye_ratio, lip_on, lip_ratio, silent, smooth, crop_scale, progress=gr.Progress()):
            return str(b.retarget(video, eye_ratio if eye_on else None, lip_ratio if lip_on else None,
                                  smooth if smooth is not None else 3e-6, silent, crop_scale,
                                  _progress_adapter(progress)))

        r_run.click(_user_errors(retarget), [r_video, r_eye_on, r_eye, r_lip_on, r_lip, r_silent, r_smooth, r_scale],
                    [r_out], api_name="retarget", concurrency_id=COMPUTE, concurrency_limit=1)

    demo.queue(default_concurrency_limit=1)
    return demo


def _slider(name: str, value: float | None = None) -> gr.Slider:
    c = next(c for c in CONTROLS if c.name == name)
    v = c.neutral if value is None else value
    return gr.Slider(c.minimum, c.maximum, value=v, step=c.step, label=c.label, min_width=160,
                     elem_id=f"edit-{name.replace('_', '-')}")


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, share: bool = False,
           allowed_paths: list[str] | None = None, max_file_mb: float = 500, block: bool = True, quiet: bool = False):
    """Serve the app; ``block=False`` returns at once (tests). Never shares unless ``share``."""
    return demo.launch(server_name=host, server_port=port, share=bool(share), inbrowser=False,
                       prevent_thread_lock=not block, show_error=True, quiet=quiet,
                       allowed_paths=allowed_paths or [], max_file_size=f"{int(max_file_mb)}mb",
                       footer_links=["api", "settings"], run_history=False, ssr_mode=False, pwa=False,
                       mcp_server=False, enable_monitoring=False)
