"""Live animation's glass-to-glass latency and frame rate: the command line's path and the browser's (WebRTC),
tiny and full-size networks, with the live loop's stages overlapped and one after the other.

    python benchmarks/bench_live.py [--weights DIR] [--seconds 20] [--only tiny|full]

- CLI path (``liveportrait live``): d0.mp4 played in real time at 25 fps as the camera; latency from a frame's
  arrival to the portrait frame handed to the window.
- Browser path (the app's Live tab): an in-process WebRTC client (aiortc, VP8 both ways over loopback) sends the
  same clip as its camera; latency from the moment its track hands a frame to the encoder to the moment the
  portrait frame made from it is decoded back in the client.

The driving face is tracked in every frame, as a webcam's is. Full-size networks are the conformance kit's
synthetic weights (../shared/conformance) unless --weights names released ones; the CPU is named.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_load import synth  # noqa: E402

from liveportrait.bench import EXAMPLE_CLIP, EXAMPLE_PHOTO, machine_description  # noqa: E402

SHARED = REPO.parent / "shared" / "examples"


def tiny_weights(folder: Path) -> Path:
    import torch

    from liveportrait.networks import LivePortraitNetworks, ModelConfig
    from liveportrait.networks.checkpoint import save_released

    torch.manual_seed(0)
    save_released(LivePortraitNetworks(ModelConfig.tiny()), folder)
    return folder


def clip_frames(n: int = 100) -> list[np.ndarray]:
    from liveportrait.media import VideoReader

    with VideoReader(SHARED / EXAMPLE_CLIP) as reader:
        return [f for _, f in zip(range(n), reader)]


def cli_path(pipe, image, seconds: float, overlap: bool, max_frames: int | None = None) -> dict:
    from liveportrait.live import FileSource
    from liveportrait.live.session import live_config, make_engine, prepare_portrait

    portrait = prepare_portrait(pipe, image, live_config())
    source = FileSource(SHARED / EXAMPLE_CLIP, loop=True)
    engine = make_engine(portrait, "always", source.fps)
    end = time.perf_counter() + seconds
    stats = engine.run(source, lambda index, frame: None, stop=lambda: time.perf_counter() > end, overlap=overlap,
                       max_frames=max_frames)
    return {"fps": stats.fps, "latency": stats.latency(50), "p95": stats.latency(95), "frames": stats.rendered,
            "size": portrait.output_size, "stages": stats.stages_line()}


def browser_path(pipe, image, frames, seconds: float) -> dict:
    from liveportrait.app.live import STREAM_MAX_DIM
    from liveportrait.live.loopback import run_client
    from liveportrait.live.session import live_config, make_engine, prepare_portrait
    from liveportrait.live.webrtc import LiveHub
    from liveportrait.provenance import Stamp

    portrait = prepare_portrait(pipe, image, live_config().but(source_max_dim=STREAM_MAX_DIM))
    hub = LiveHub(idle_timeout=30)
    ended = {}
    hub.on_end = lambda session: ended.update(stats=session.stats)  # the server's side of the session
    try:
        stamp = Stamp()
        engine = make_engine(portrait, "always", 25.0, mark=stamp.mark)  # as the app: every frame marked
        token = hub.register(engine)  # renders the first frame (W+G warm)
        engine.anim.extract_motion(np.zeros((256, 256, 3), np.uint8))  # M warm
        result = hub.call(run_client(hub, token, frames, fps=25.0, seconds=seconds), timeout=seconds + 120)
        hub.wait_ended(token, 60)
    finally:
        hub.close()
    stages = ended["stats"].stages_line() if "stats" in ended else ""
    return {"fps": result.fps, "latency": result.latency(50), "p95": result.latency(95), "frames": result.received,
            "size": portrait.output_size, "stages": stages}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", help="full-size weights (default: the conformance kit's synthetic ones)")
    ap.add_argument("--seconds", type=float, default=20.0, help="how long each path streams")
    ap.add_argument("--only", choices=("tiny", "full"), help="one network size only")
    ap.add_argument("--backend", default="auto")
    args = ap.parse_args()
    if not (SHARED / EXAMPLE_CLIP).exists():
        print(f"bench_live.py needs the example media in {SHARED}", file=sys.stderr)
        return 2

    from liveportrait.api import LivePortraitPipeline
    from liveportrait.media import read_image

    image = read_image(SHARED / EXAMPLE_PHOTO)
    frames = clip_frames()
    print(f"machine: {machine_description()}")
    print(f"photo {EXAMPLE_PHOTO}, camera {EXAMPLE_CLIP} at 25 fps (face tracked in every frame), "
          f"{args.seconds:.0f} s a path, backend {args.backend}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sizes = [s for s in ("tiny", "full") if args.only in (None, s)]
        for size in sizes:
            if size == "tiny":
                weights, config = tiny_weights(Path(tmp) / "tiny"), "tiny"
            else:
                weights, config = Path(args.weights) if args.weights else synth(Path(tmp) / "full"), "released"
            pipe = LivePortraitPipeline.from_pretrained(weights, backend=args.backend, model_config=config, quiet=True)
            cli_path(pipe, image, 600, False, max_frames=3)  # unmeasured: the face tracker's and networks' first calls
            for name, run in (("CLI, one render thread", lambda: cli_path(pipe, image, args.seconds, False)),
                              ("CLI, stages overlapped", lambda: cli_path(pipe, image, args.seconds, True)),
                              ("browser (WebRTC), as the app", lambda: browser_path(pipe, image, frames,
                                                                                    args.seconds))):
                r = run()
                rows.append((size, name, r))
                w, h = r["size"]
                print(f"{size:4s}  {name:30s}  {r['fps']:5.2f} fps  glass-to-glass median {r['latency']:6.0f} ms, "
                      f"p95 {r['p95']:6.0f} ms  ({r['frames']} frames, {w}x{h})", flush=True)
                if r["stages"]:
                    print(f"      per frame: {r['stages']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
