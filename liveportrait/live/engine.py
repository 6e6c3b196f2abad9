"""The causal live engine: each driving frame's motion relative to the first frame's, as it arrives."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .sources import FrameSource
from .stages import Stage, StageLoop, Timings


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
    stage_ms: dict[str, list[float]] = field(default_factory=dict)  # per step, every rendered frame's time
    where: dict[str, str] = field(default_factory=dict)  # step -> the thread (stage) it ran on

    @property
    def fps(self) -> float:
        return self.rendered / self.seconds if self.seconds > 0 else 0.0

    def latency(self, q: float = 50) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else 0.0

    def add(self, work, now: float) -> None:
        """A frame handed to the sink: its latency and its steps' times."""
        self.rendered += 1
        self.latencies_ms.append((now - work.time) * 1e3)
        for step, ms in work.timings.items():
            self.stage_ms.setdefault(step, []).append(ms)
        self.where.update(work.where)

    def stage_medians(self) -> dict[str, float]:
        return {step: float(np.median(v)) for step, v in self.stage_ms.items() if v}

    def stages_line(self) -> str:
        """What runs where, median ms per frame: 'face tracking 3 ms [front], W+G 40 ms [back], ...'."""
        return ", ".join(f"{step} {ms:.0f} ms [{self.where.get(step, '?')}]"
                         for step, ms in self.stage_medians().items())

    def summary(self) -> str:
        return (f"{self.rendered} frames rendered of {self.arrived} arrived ({self.dropped} dropped), "
                f"{self.fps:.2f} fps, latency median {self.latency(50):.0f} ms, p95 {self.latency(95):.0f} ms")


class LiveEngine:
    """Causal animation: each driving frame's motion relative to the neutral frame's, as it arrives.

    ``crop_driving(frame) -> (crop256, eye, lip) | None`` frames the driving face (None skips the
    frame); ``compose(out512) -> frame`` pastes the result back; ``mark(frame) -> frame`` watermarks what
    is streamed (``Stamp.mark``; None where a writer marks); ``sink(index, frame)`` shows, streams or writes
    it. ``delay_s`` slows the renderer down artificially (tests, demonstrations). The first frame with a face
    is the neutral reference; :meth:`retake_neutral` makes the next one the reference again.
    """

    def __init__(self, anim, src, options=None, crop_driving: Callable | None = None,
                 compose: Callable | None = None, smoothing: float = 1.0, delay_s: float = 0.0,
                 mark: Callable | None = None):
        from ..motion.compose import MotionOptions

        self.anim, self.src = anim, src
        self.options = options or MotionOptions()
        self.crop_driving = crop_driving or _resize_256
        self.compose = compose
        self.paste_back = compose is not None
        self.mark = mark
        self.smoother = MotionSmoother(smoothing)
        self.delay_s = delay_s
        self.reference = None
        self._retake = threading.Event()

    def retake_neutral(self) -> None:
        """The next driving frame with a face becomes the neutral reference ("neutral face now")."""
        self._retake.set()

    def front(self, frame, timings: Timings):
        """Face tracking and M: the driving keypoints x_d of one camera frame (None: no face in it). A frame
        that is not yet an array (a WebRTC peer's decoded picture) becomes RGB here, only if it is used."""
        if not isinstance(frame, np.ndarray):
            with timings.time("camera decode"):
                frame = frame.to_ndarray(format="rgb24")
        with timings.time("face tracking"):
            framed = self.crop_driving(frame)
        if framed is None:
            return None
        with timings.time("M"):
            crop256, eye, lip = framed
            info = self.anim.extract_motion(crop256)
            if self._retake.is_set():
                self._retake.clear()
                self.reference, self.smoother.state = None, None
            motion = self.smoother(info.motion)
            if self.reference is None:
                self.reference = motion
            eye_t = None if eye is None else torch.as_tensor(np.asarray(eye, np.float32).reshape(1, 2))
            lip_t = None if lip is None else torch.as_tensor(np.asarray(lip, np.float32).reshape(1, 1))
            return self.anim.driving_keypoints(self.src, motion, self.reference, self.options, True, eye_t, lip_t)

    def back(self, x_d, timings: Timings) -> np.ndarray:
        """W+G, paste-back and the watermark: the frame to show."""
        from ..animator import to_uint8

        with timings.time("W+G"):
            out = to_uint8(self.anim.render(self.src, x_d))[0]
            if self.delay_s:
                time.sleep(self.delay_s)
        if self.compose is not None and self.paste_back:
            with timings.time("paste-back"):
                out = self.compose(out)
        if self.mark is not None:
            with timings.time("watermark"):
                out = self.mark(out)
        return out

    def render(self, frame: np.ndarray, timings: Timings) -> np.ndarray | None:
        """Every step of one frame, one after the other (the ``render`` stage)."""
        x_d = self.front(frame, timings)
        return None if x_d is None else self.back(x_d, timings)

    def stages(self, overlap: bool) -> list[Stage]:
        """Tracking and M beside W+G (two threads), or every step on one render thread."""
        if overlap:
            return [Stage("front", self.front), Stage("back", self.back)]
        return [Stage("render", self.render)]

    def overlaps(self) -> bool:
        """Whether overlapping the stages pays: where W+G runs on an accelerator, tracking and M beside it use
        the CPU it leaves idle; on the CPU alone both stages compete for the same cores (measured on 2 cores:
        the same rate, a frame more latency), so one thread renders."""
        return str(getattr(self.anim, "device", "cpu")).split(":")[0] not in ("cpu", "")

    def warmup(self) -> None:
        """Run every network once (first calls allocate, build fast plans, load kernels)."""
        self.anim.extract_motion(np.zeros((256, 256, 3), np.uint8))
        self.anim.render(self.src, self.src.x_s)

    def run(self, source: FrameSource, sink: Callable[[int, np.ndarray], None], max_frames: int | None = None,
            stop: Callable[[], bool] | None = None, report: Callable[[LiveStats], None] | None = None,
            report_every: float = 2.0, warmup: bool = True, overlap: bool | None = None) -> LiveStats:
        """Render ``source``'s frames into ``sink`` until it ends, ``stop()`` or ``max_frames``.

        ``overlap``: tracking and M of the next frame run on one thread while W+G of this one runs on
        another (:mod:`.stages`); False: every step on one render thread; None: :meth:`overlaps` decides.
        The sink runs on the calling thread either way (a window must be drawn from the main thread); the
        networks never do (called from a process's main thread they ran several times slower here)."""
        if warmup:
            self.warmup()
        if overlap is None:
            overlap = self.overlaps()
        stats = LiveStats()
        t0 = time.perf_counter()
        last_report = t0
        source.start()
        loop = StageLoop(self.stages(overlap)).start(source.box)
        try:
            while max_frames is None or stats.rendered < max_frames:
                item = loop.output.take(timeout=0.5)
                if item is None:
                    if loop.output.done:
                        break
                    continue
                timings = item.timings
                with timings.time("encode"):
                    sink(item.index, item.value)
                item.where.setdefault("encode", "sink")
                stats.add(item, time.perf_counter())
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
            loop.stop()
        stats.seconds = time.perf_counter() - t0
        stats.arrived = source.box.arrived
        stats.dropped = max(0, stats.arrived - stats.rendered)
        return stats


def _resize_256(frame: np.ndarray):
    """A driving frame that is already framed: the network input as the pipeline makes it, no ratios."""
    from ..pipeline import resize_256

    return resize_256(frame), None, None
