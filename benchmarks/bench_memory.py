"""Peak memory of `liveportrait animate` for a short and a long driving video (tiny networks).

    python benchmarks/bench_memory.py [--frames 50 1000] [--video-source]

Streaming means the peak should not grow with the video's length. Driving videos are made by
looping ../shared/examples/driving/d0.mp4; with ``--video-source`` the source is a video too (the
looped s13.mp4, every frame tracked and animated). Each run is a fresh process, whose peak RSS is
printed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO.parent / "shared" / "examples"

CHILD = """
import resource, sys
from liveportrait.cli import main
code = main(sys.argv[1:])
print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
sys.exit(code)
"""


def make_driving(path: Path, frames: int, clip: Path = EXAMPLES / "driving" / "d0.mp4") -> None:
    from liveportrait.media import VideoReader, VideoWriter
    from liveportrait.provenance import NOT_GENERATED

    with VideoReader(clip) as r:
        loop = list(r)
    with VideoWriter(path, 25, stamp=NOT_GENERATED) as w:  # a looped real clip, the input: not marked
        for i in range(frames):
            w.write(loop[i % len(loop)])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, nargs="+", default=[50, 1000])
    ap.add_argument("--video-source", action="store_true", help="animate a looped source video, not a photo")
    args = ap.parse_args()
    import torch

    from liveportrait.networks import LivePortraitNetworks, ModelConfig
    from liveportrait.networks.checkpoint import save_released

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.manual_seed(0)
        save_released(LivePortraitNetworks(ModelConfig.tiny()), tmp / "w")
        rows = []
        for n in args.frames:
            drv = tmp / f"drive{n}.mp4"
            make_driving(drv, n)
            source = EXAMPLES / "source" / "s1.jpg"
            if args.video_source:
                source = tmp / f"source{n}.mp4"
                make_driving(source, n, EXAMPLES / "source" / "s13.mp4")
            t = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", CHILD, "animate", "-s", str(source), "-d", str(drv),
                 "-o", str(tmp / f"out{n}.mp4"), "--weights", str(tmp / "w"), "--model-config", "tiny", "-q"],
                capture_output=True, text=True, check=True)
            peak = int(out.stdout.split("PEAK_RSS_KB")[1].split()[0]) / 1024
            rows.append((n, peak, time.perf_counter() - t))
        print(f"{'driving frames':>15}{'peak RSS (MiB)':>16}{'wall (s)':>10}")
        for n, peak, wall in rows:
            print(f"{n:>15}{peak:>16.1f}{wall:>10.1f}")
        if len(rows) > 1:
            growth = 100 * (rows[-1][1] / rows[0][1] - 1)
            print(f"peak growth from {rows[0][0]} to {rows[-1][0]} frames: {growth:+.1f}%")


if __name__ == "__main__":
    main()
