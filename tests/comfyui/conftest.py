"""Stand-ins for the pieces of ComfyUI the node pack uses, and a small graph runner for API-format workflows.

ComfyUI cannot be installed here, so these modules take its place (with its names and tensor layouts):

- ``folder_paths``: ``models_dir``, ``add_model_folder_path``, ``get_folder_paths``, ``get_input_directory``,
  ``get_output_directory``;
- ``comfy.utils.ProgressBar(total)`` with ``update(n)`` and ``update_absolute(value, total)`` (every call recorded);
- ``comfy.model_management``: ``get_torch_device()``, ``InterruptProcessingException``,
  ``throw_exception_if_processing_interrupted()`` and ``interrupt_current_processing(value)``.

No real ComfyUI server ran these tests.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import skip_or_fail

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / "comfyui"


class StandIns:
    """The state of the stand-in ComfyUI: folders, progress calls, the cancel flag."""

    def __init__(self, root: Path):
        self.root = root
        self.models = root / "models"
        self.input = root / "input"
        self.output = root / "output"
        for d in (self.models, self.input, self.output):
            d.mkdir(parents=True, exist_ok=True)
        self.folders: dict[str, list[str]] = {}
        self.bars: list = []
        self.interrupted = False
        self.interrupt_after_checks: int | None = None  # cancel once this many checks have passed
        self.checks = 0


def _stand_in_modules(state: StandIns) -> dict[str, types.ModuleType]:
    fp = types.ModuleType("folder_paths")
    fp.models_dir = str(state.models)

    def add_model_folder_path(name, path, is_default=False):
        state.folders.setdefault(name, [])
        if path not in state.folders[name]:
            state.folders[name].append(path)

    def get_folder_paths(name):
        return list(state.folders[name])

    fp.add_model_folder_path = add_model_folder_path
    fp.get_folder_paths = get_folder_paths
    fp.get_input_directory = lambda: str(state.input)
    fp.get_output_directory = lambda: str(state.output)

    comfy = types.ModuleType("comfy")
    comfy.__path__ = []
    utils = types.ModuleType("comfy.utils")

    class ProgressBar:
        def __init__(self, total):
            self.total, self.current, self.calls = total, 0, []
            state.bars.append(self)

        def update(self, value):
            self.current += value
            self.calls.append(("update", value))

        def update_absolute(self, value, total=None, preview=None):
            self.current = value
            self.calls.append(("update_absolute", value))

    utils.ProgressBar = ProgressBar

    mm = types.ModuleType("comfy.model_management")

    class InterruptProcessingException(Exception):
        pass

    def throw_exception_if_processing_interrupted():
        state.checks += 1
        if state.interrupt_after_checks is not None and state.checks > state.interrupt_after_checks:
            state.interrupted = True
        if state.interrupted:
            state.interrupted = False
            raise InterruptProcessingException()

    def interrupt_current_processing(value=True):
        state.interrupted = value

    def get_torch_device():
        import torch

        return torch.device("cpu")

    mm.InterruptProcessingException = InterruptProcessingException
    mm.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted
    mm.interrupt_current_processing = interrupt_current_processing
    mm.get_torch_device = get_torch_device
    comfy.utils, comfy.model_management = utils, mm
    return {"folder_paths": fp, "comfy": comfy, "comfy.utils": utils, "comfy.model_management": mm}


def load_pack(name: str = "liveportrait_comfy_pack"):
    """Import the pack as ComfyUI imports a custom node folder: its ``__init__.py`` as a package, by path."""
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]
    spec = importlib.util.spec_from_file_location(name, PACK / "__init__.py", submodule_search_locations=[str(PACK)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def comfy(tmp_path, monkeypatch) -> StandIns:
    state = StandIns(tmp_path / "ComfyUI")
    for name, module in _stand_in_modules(state).items():
        monkeypatch.setitem(sys.modules, name, module)
    return state


@pytest.fixture
def pack(comfy):
    module = load_pack()
    yield module
    module.nodes._PIPES.clear()
    module.nodes._EDIT_SOURCES.clear()


@pytest.fixture
def nodes(pack):
    return pack.NODE_CLASS_MAPPINGS


def call(nodes, class_type: str, **inputs):
    """A node called as ComfyUI calls it: a fresh instance, its FUNCTION, the inputs by name."""
    cls = nodes[class_type]
    out = getattr(cls(), cls.FUNCTION)(**inputs)
    return out["result"] if isinstance(out, dict) else out


def to_image(frames) -> "torch.Tensor":  # noqa: F821
    """uint8 HxWx3 frames (or one frame) as ComfyUI's IMAGE: float32 [B, H, W, 3] in 0..1."""
    import torch

    a = np.asarray(frames)
    if a.ndim == 3:
        a = a[None]
    return torch.from_numpy(a.astype(np.float32) / 255.0)


def to_u8(image) -> np.ndarray:
    return (image.numpy() * 255.0).round().astype(np.uint8)


def needs_mediapipe() -> None:
    """The face finder's models come with mediapipe (found, not imported: its package import pulls in more)."""
    if importlib.util.find_spec("mediapipe") is None:
        skip_or_fail("mediapipe is not installed (pip install --no-deps mediapipe==0.10.21 'protobuf>=4.25.3,<5')")


@pytest.fixture
def pipe(nodes, tiny_weights):
    needs_mediapipe()
    return call(nodes, "LivePortraitLoad", weights="auto", variant="human", precision="fp32", device="cpu",
                weights_dir=str(tiny_weights), backend="auto")[0]


@pytest.fixture(scope="session")
def photo(shared_dir) -> np.ndarray:
    from liveportrait import read_image

    return read_image(shared_dir / "examples" / "source" / "s0.jpg")


@pytest.fixture(scope="session")
def driving_frames(shared_dir) -> np.ndarray:
    from liveportrait.media import VideoReader

    out = []
    with VideoReader(shared_dir / "examples" / "driving" / "d0.mp4") as reader:
        for frame in reader:
            out.append(frame)
            if len(out) == 3:
                break
    return np.stack(out)


# -- the graph runner --------------------------------------------------------------------------------------------


class CoreStandIns:
    """ComfyUI core nodes used by the shipped workflows, with their input names and tensor layouts:
    ``LoadImage`` (image -> IMAGE, MASK), ``LoadAudio`` (audio -> AUDIO), ``LoadVideo`` (file -> VIDEO),
    ``GetVideoComponents`` (video -> images IMAGE, audio AUDIO, fps FLOAT), ``SaveImage`` (images, filename_prefix).
    Files are read from the stand-in input folder; ``LoadVideo`` keeps the first ``max_frames`` frames (to keep
    the tests short on a CPU) and ``LoadAudio`` the first ``max_seconds``."""

    def __init__(self, state: StandIns, max_frames: int = 3, max_seconds: float | None = None):
        self.state, self.max_frames, self.max_seconds = state, max_frames, max_seconds

    def classes(self) -> dict[str, type]:
        state, max_frames, max_seconds = self.state, self.max_frames, self.max_seconds

        class LoadImage:
            RETURN_TYPES = ("IMAGE", "MASK")
            FUNCTION = "load_image"

            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {"image": (sorted(p.name for p in state.input.iterdir()),)}}

            def load_image(self, image):
                import torch

                from liveportrait.media import read_image_rgba

                rgba = read_image_rgba(state.input / image)
                mask = 1.0 - torch.from_numpy(rgba[:, :, 3].astype(np.float32) / 255.0)[None]
                return to_image(rgba[:, :, :3]), mask

        class LoadAudio:
            RETURN_TYPES = ("AUDIO",)
            FUNCTION = "load"

            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {"audio": (sorted(p.name for p in state.input.iterdir()),)}}

            def load(self, audio):
                return (read_audio(state.input / audio, max_seconds),)

        class LoadVideo:
            RETURN_TYPES = ("VIDEO",)
            FUNCTION = "load_video"

            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {"file": (sorted(p.name for p in state.input.iterdir()),)}}

            def load_video(self, file):
                return (state.input / file,)

        class GetVideoComponents:
            RETURN_TYPES = ("IMAGE", "AUDIO", "FLOAT")
            RETURN_NAMES = ("images", "audio", "fps")
            FUNCTION = "get_components"

            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {"video": ("VIDEO",)}}

            def get_components(self, video):
                from liveportrait.media import VideoReader, probe

                frames = []
                with VideoReader(video) as reader:
                    for frame in reader:
                        frames.append(frame)
                        if len(frames) == max_frames:
                            break
                info = probe(video)
                fps = float(info.fps)
                audio = read_audio(video, len(frames) / fps) if info.has_audio else \
                    {"waveform": __import__("torch").zeros(1, 1, 1), "sample_rate": 44100}
                return to_image(np.stack(frames)), audio, fps

        class SaveImage:
            RETURN_TYPES = ()
            FUNCTION = "save_images"
            OUTPUT_NODE = True

            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {"images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "ComfyUI"})}}

            def save_images(self, images, filename_prefix):
                from PIL import Image

                paths = []
                for i, img in enumerate(images):
                    p = state.output / f"{filename_prefix}_{i:05d}_.png"
                    Image.fromarray(to_u8(img)).save(p)
                    paths.append(p)
                return {"ui": {"images": [str(p) for p in paths]}, "result": ()}

        return {c.__name__: c for c in (LoadImage, LoadAudio, LoadVideo, GetVideoComponents, SaveImage)}


def read_audio(path, seconds: float | None = None) -> dict:
    """A file's sound as ComfyUI's AUDIO: float waveform [1, C, T] and its sample rate."""
    import av
    import torch

    chunks = []
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        resampler = av.AudioResampler(format="fltp", rate=rate)
        for frame in container.decode(stream):
            for f in resampler.resample(frame):
                chunks.append(f.to_ndarray())
    data = np.concatenate(chunks, axis=1).astype(np.float32)
    if seconds is not None:
        data = data[:, :int(round(seconds * rate))]
    return {"waveform": torch.from_numpy(np.ascontiguousarray(data))[None], "sample_rate": int(rate)}


LINK_TYPES_ANY = ("*",)


def input_spec(cls, name):
    spec = cls.INPUT_TYPES()
    for group in ("required", "optional"):
        if name in spec.get(group, {}):
            return spec[group][name]
    return None


def run_workflow(workflow: dict, classes: dict[str, type]) -> dict[str, tuple]:
    """Execute an API-format workflow (``{id: {"class_type", "inputs"}}``, inputs as values or
    ``[node_id, output_index]`` links) in dependency order, checking what ComfyUI's validation checks:
    known classes, every required input given, no unknown input, each link's output type equal to the input's
    declared type, combo values among the choices, numbers within min/max."""
    for node_id, node in workflow.items():
        cls = classes.get(node["class_type"])
        assert cls is not None, f"node {node_id}: unknown class_type {node['class_type']!r}"
        spec = cls.INPUT_TYPES()
        required, optional = spec.get("required", {}), spec.get("optional", {})
        inputs = node.get("inputs", {})
        missing = [k for k in required if k not in inputs]
        assert not missing, f"node {node_id} ({node['class_type']}): missing required input(s) {missing}"
        unknown = [k for k in inputs if k not in required and k not in optional]
        assert not unknown, f"node {node_id} ({node['class_type']}): unknown input(s) {unknown}"
        for name, value in inputs.items():
            declared = (required.get(name) or optional.get(name))
            kind, opts = declared[0], (declared[1] if len(declared) > 1 else {})
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                src = workflow.get(value[0])
                assert src is not None, f"node {node_id}.{name}: link to missing node {value[0]}"
                src_cls = classes[src["class_type"]]
                assert value[1] < len(src_cls.RETURN_TYPES), f"node {node_id}.{name}: no output {value[1]}"
                out_type = src_cls.RETURN_TYPES[value[1]]
                assert out_type == kind or kind in LINK_TYPES_ANY, \
                    f"node {node_id}.{name}: link gives {out_type}, the input takes {kind}"
            elif isinstance(kind, list):
                assert value in kind, f"node {node_id}.{name}: {value!r} is not one of {kind}"
            elif kind in ("INT", "FLOAT"):
                assert opts.get("min", -np.inf) <= value <= opts.get("max", np.inf), f"node {node_id}.{name}"
                if kind == "INT":
                    assert isinstance(value, int) and not isinstance(value, bool), f"node {node_id}.{name}"
            elif kind == "BOOLEAN":
                assert isinstance(value, bool), f"node {node_id}.{name}"
            elif kind == "STRING":
                assert isinstance(value, str), f"node {node_id}.{name}"
            else:
                raise AssertionError(f"node {node_id}.{name}: a {kind} input needs a link, got {value!r}")
    results: dict[str, tuple] = {}

    def execute(node_id: str, stack=()):
        if node_id in results:
            return results[node_id]
        assert node_id not in stack, f"a cycle through node {node_id}"
        node = workflow[node_id]
        kwargs = {}
        for name, value in node.get("inputs", {}).items():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                kwargs[name] = execute(value[0], stack + (node_id,))[value[1]]
            else:
                kwargs[name] = value
        cls = classes[node["class_type"]]
        out = getattr(cls(), cls.FUNCTION)(**kwargs)
        out = out["result"] if isinstance(out, dict) else out
        assert isinstance(out, tuple) and len(out) == len(cls.RETURN_TYPES), f"node {node_id}: returned {type(out)}"
        results[node_id] = out
        return out

    for node_id in workflow:
        execute(node_id)
    return results
