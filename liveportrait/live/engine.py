"""The causal live engine: each driving frame's motion relative to the first frame's, as it arrives."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .sources import FrameSource


class MotionSmoother:
    """Causal exponential smoothing of the driving motion (``alpha`` = weight of the new frame).

    Rotations are blended as matrices and re-orthonormalised (SVD), which is exact for alpha 1.
    """

    def __init__(self, alpha: float = 1.0):
        if not 0 < alpha <= 1:
            raise ValueError("smoothing alpha must be in (0, 1]")
        self.alpha = alpha
        self.state = None

    def __call__(self, motion):
        from ..motion.compose import Motion

        if self.alpha >= 1 or self.state is None:
            self.state = motion
            return motion
        a = self.alpha
        s = self.state
        r = a * motion.R + (1 - a) * s.R
        u, _, vh = torch.linalg.svd(r)
        r = u @ vh
        self.state = Motion(R=r, exp=a * motion.exp + (1 - a) * s.exp, t=a * motion.t + (1 - a) * s.t,
                            scale=a * motion.scale + (1 - a) * s.scale)
        return self.state


@dataclass
class LiveStats:
    arrived: int = 0
    rendered: int = 0
    dropped: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.rendered / self.seconds if self.seconds > 0 else 0.0

    def latency(self, q: float = 50) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else 0.0

    def summary(self) -> str:
        return (f"{self.rendered} frames rendered of {self.arrived} arrived ({self.dropped} dropped), "
                f"{self.fps:.2f} fps, latency median {self.latency(50):.0f} ms, p95 {self.latency(95):.0f} ms")


class LiveEngine:
    """Causal animation: each driving frame's motion relative to the first frame's, as it arrives.

    ``crop_driving(frame) -> (crop256, eye, lip) | None`` frames the driving face (None skips the
    frame); ``compose(out512) -> frame`` pastes the result back; ``sink(index, frame)`` shows or
    writes it. ``delay_s`` slows the renderer down artificially (tests, demonstrations).
    """

    def __init__(self, anim, src, options=None, crop_driving: Callable | None = None,
                 compose: Callable | None = None, smoothing: float = 1.0, delay_s: float = 0.0):
        from ..motion.compose import MotionOptions

        self.anim, self.src = anim, src
        self.options = options or MotionOptions()
        self.crop_driving = crop_driving or _resize_256
        self.compose = compose or (lambda out: out)
        self.smoother = MotionSmoother(smoothing)
        self.delay_s = delay_s
        self.reference = None

    def render(self, frame: np.ndarray) -> np.ndarray | None:
        from ..animator import to_uint8

        framed = self.crop_driving(frame)
        if framed is None:
            return None
        crop256, eye, lip = framed
        info = self.anim.extract_motion(crop256)
        motion = self.smoother(info.motion)
        if self.reference is None:
            self.reference = motion
        eye_t = None if eye is None else torch.as_tensor(np.asarray(eye, np.float32).reshape(1, 2))
        lip_t = None if lip is None else torch.as_tensor(np.asarray(lip, np.float32).reshape(1, 1))
        x_d = self.anim.driving_keypoints(self.src, motion, self.reference, self.options, True, eye_t, lip_t)
        out = to_uint8(self.anim.render(self.src, x_d))[0]
        if self.delay_s:
            time.sleep(self.delay_s)
        return self.compose(out)

    def warmup(self) -> None:
        """Run every network once (first calls allocate, build fast plans, load kernels)."""
        self.anim.extract_motion(np.zeros((256, 256, 3), np.uint8))
        self.anim.render(self.src, self.src.x_s)

    def run(self, source: FrameSource, sink: Callable[[int, np.ndarray], None], max_frames: int | None = None,
            stop: Callable[[], bool] | None = None, report: Callable[[LiveStats], None] | None = None,
            report_every: float = 2.0, warmup: bool = True) -> LiveStats:
        if warmup:
            self.warmup()
        stats = LiveStats()
        t0 = time.perf_counter()
        last_report = t0
        source.start()
        try:
            while max_frames is None or stats.rendered < max_frames:
                item = source.box.take(timeout=0.5)
                if item is None:
                    if source.box._closed and source.box._item is None:
                        break
                    continue
                out = self.render(item.frame)
                if out is None:
                    continue
                stats.rendered += 1
                stats.latencies_ms.append((time.perf_counter() - item.time) * 1e3)
                sink(item.index, out)
                if stop is not None and stop():
                    break
                now = time.perf_counter()
                if report is not None and now - last_report >= report_every:
                    stats.seconds = now - t0
                    stats.arrived = source.box.arrived
                    stats.dropped = stats.arrived - stats.rendered
                    report(stats)
                    last_report = now
        finally:
            source.stop()
        stats.seconds = time.perf_counter() - t0
        stats.arrived = source.box.arrived
        stats.dropped = max(0, stats.arrived - stats.rendered)
        return stats


def _resize_256(frame: np.ndarray):
    """A driving frame that is already framed: the network input as the pipeline makes it, no ratios."""
    from ..pipeline import resize_256

    return resize_256(frame), None, None
