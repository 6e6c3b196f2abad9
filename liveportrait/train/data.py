"""Training data: prepare clips from raw videos, then serve training pairs from them.

Preparation (``prepare``) turns a folder of portrait videos into a folder of clips::

    OUT_DIR/
      manifest.jsonl        one line per kept clip: clip, video, identity, frames, fps, scores, dir
      progress.jsonl        one line per finished video (what makes the run resumable)
      summary.json          counts per identity, rejections by reason
      clips/<video>__cNNN/  000000.jpg ... (face crops), meta.npz (landmarks, pose, eye/lip ratios)

A video is read twice: first every sampled frame is searched for faces and measured; the frames
with exactly one face are cut into clips (at most ``max_seconds``, breaking where the face jumps or
leaves the crop), clips are scored for quality; then the kept clips' crops are written.  A clip's
folder appears complete or not at all (written under a temporary name, then renamed), and a video
counts as done once its line is in progress.jsonl, so an interrupted run resumes where it stopped.

Identity is the first folder below INPUT_DIR (``INPUT_DIR/alice/talk.mp4`` -> ``alice``) unless
``identity="none"``; videos directly in INPUT_DIR have no identity.

Serving (``PairDataset``) is index-deterministic: sample ``i`` is a pure function of (seed, i), and
``StepBatchSampler`` maps (step, micro-step, rank) to sample indices.  Resuming at step N therefore
feeds exactly the samples an uninterrupted run would have, with any number of loader workers.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..errors import InputError
from ..face import geometry
from ..face.ratios import eye_ratio, lip_ratio
from . import landmarks as lmk
from .quality import QualityScorer, QualityThresholds, aggregate, load_scorer

VIDEO_EXTENSIONS = {".mp4", ".mov", ".avi", ".webm", ".mkv", ".m4v"}
MANIFEST, PROGRESS, SUMMARY, CLIPS = "manifest.jsonl", "progress.jsonl", "summary.json", "clips"
META = "meta.npz"
FORMAT = 1
FACE_SCORE_SCALE = 1.2  # the crop quality scorers see: 1.2 x the face


@dataclass
class PrepareOptions:
    max_seconds: float = 30.0  # longest clip
    min_seconds: float = 2.0  # shorter stretches are dropped
    frame_step: int = 1  # keep every N-th frame
    size: int = 512  # side of the stored crops
    framing: str = "driving"  # "driving" (scale 2.2, upright) or "source" (scale 2.3, roll-corrected)
    crop_mode: str = "clip"  # "clip": one box per clip (keeps head motion), "frame": a box per frame
    check_every: int = 1  # count faces with a full detection every N sampled frames (tracking between)
    max_jump: float = 0.5  # a face moving more than this x its size between frames starts a new clip
    max_drift: float = 0.2  # clip mode: a face leaving the clip's box by this x its side starts a new clip
    jpeg_quality: int = 95
    identity: str = "folder"  # "folder" or "none"
    thresholds: QualityThresholds = field(default_factory=QualityThresholds)
    scorer: str | None = None  # "module:name" of a custom quality scorer

    def check(self) -> None:
        if self.max_seconds <= 0 or self.min_seconds < 0 or self.min_seconds > self.max_seconds:
            raise InputError("need 0 <= --min-seconds <= --max-seconds and --max-seconds > 0")
        if self.frame_step < 1 or self.check_every < 1:
            raise InputError("--frame-step and --check-every must be at least 1")
        if self.size < 64:
            raise InputError("--size must be at least 64")
        if self.framing not in ("driving", "source"):
            raise InputError(f"--framing must be driving or source, got {self.framing!r}")
        if self.crop_mode not in ("clip", "frame"):
            raise InputError(f"--crop-mode must be clip or frame, got {self.crop_mode!r}")
        if self.identity not in ("folder", "none"):
            raise InputError(f"--identity must be folder or none, got {self.identity!r}")


@dataclass
class FrameRecord:
    index: int  # frame number in the video
    faces: int  # faces found by a full detection, -1 where the face was only tracked
    landmarks: np.ndarray | None  # (478, 3) in original pixels when exactly one face
    rect: geometry.FaceRect | None = None
    scores: dict = field(default_factory=dict)


@dataclass
class PrepareSummary:
    videos: int = 0
    videos_skipped: int = 0  # already done (resume)
    clips: int = 0
    frames: int = 0
    rejected: Counter = field(default_factory=Counter)
    per_identity: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# discovery


def find_videos(input_dir: Path) -> list[Path]:
    return sorted(p for p in input_dir.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(input_dir).parts))


def identity_of(rel: Path, mode: str) -> str | None:
    return rel.parts[0] if mode == "folder" and len(rel.parts) > 1 else None


def clip_folder_prefix(rel: Path) -> str:
    stem = rel.with_suffix("").as_posix()
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem.replace("/", "__"))


def _framing(opts: PrepareOptions):
    from ..face.cropper import DRIVING, SOURCE

    return DRIVING if opts.framing == "driving" else SOURCE


# ---------------------------------------------------------------------------------------------
# pass 1: faces and scores


def _face_size(lm: np.ndarray) -> float:
    pts = geometry.framing_points(lm)
    return float((pts.max(0) - pts.min(0)).max())


def analyse_video(path: Path, cropper, opts: PrepareOptions, scorer: QualityScorer):
    """Faces and quality scores of every sampled frame: ``(fps, width, height, records)``."""
    from ..face.backend import Face, landmarks_box
    from ..media import VideoReader

    framing = _framing(opts)
    records: list[FrameRecord] = []
    prev = None
    since_check = opts.check_every
    with VideoReader(path) as reader:
        fps, width, height = float(reader.info.fps), reader.info.width, reader.info.height
        for i, frame in enumerate(reader):
            if i % opts.frame_step:
                continue
            lm, count = None, -1
            if prev is not None and since_check < opts.check_every:
                lm = cropper.backend.landmarks(frame, Face(box=landmarks_box(prev), score=1.0, landmarks=prev))
                since_check += 1
            if lm is None:
                faces = cropper.faces(frame)
                count, since_check = len(faces), 1
                lm = faces[0].landmarks if count == 1 else None
            rec = FrameRecord(i, count, None if lm is None else np.asarray(lm, np.float32))
            if rec.landmarks is not None:
                if rec.landmarks.shape[1] == 2:  # a 2-D backend: no depth, pose from the image plane
                    rec.landmarks = np.concatenate([rec.landmarks, np.zeros_like(rec.landmarks[:, :1])], 1)
                rec.rect = geometry.face_rect(rec.landmarks, framing.scale, framing.vx_ratio, framing.vy_ratio)
                # quality is judged on the face itself, not on the background around it
                tight = geometry.face_rect(rec.landmarks, FACE_SCORE_SCALE, 0.0, 0.0)
                m = geometry.crop_matrix(tight.center, tight.size, tight.angle, 256, True)
                rec.scores = scorer.frame_scores(geometry.warp(frame, m, 256), _face_size(rec.landmarks))
            prev = rec.landmarks
            records.append(rec)
    return fps, width, height, records


def split_clips(records: list[FrameRecord], fps: float, opts: PrepareOptions) -> tuple[list[list[int]], Counter]:
    """Cut the sampled frames into clips (lists of positions in ``records``) and count what was dropped."""
    dropped: Counter = Counter()
    clips: list[list[int]] = []
    cur: list[int] = []

    def close():
        nonlocal cur
        if cur:
            span = (records[cur[-1]].index - records[cur[0]].index + opts.frame_step) / fps
            if span + 1e-9 >= opts.min_seconds and len(cur) >= 2:
                clips.append(cur)
            else:
                dropped["too short (a one-face stretch under --min-seconds)"] += 1
        cur = []

    for pos, r in enumerate(records):
        if r.rect is None:
            close()
            continue
        if cur:
            first, last = records[cur[0]], records[cur[-1]]
            jump = np.linalg.norm(r.rect.center - last.rect.center) > opts.max_jump * last.rect.size or \
                abs(math.log(r.rect.size / last.rect.size)) > math.log1p(opts.max_jump)
            span = (r.index - first.index + opts.frame_step) / fps
            drift = False
            if opts.crop_mode == "clip":
                c = np.mean([records[k].rect.center for k in cur], axis=0)
                s = float(np.mean([records[k].rect.size for k in cur]))
                drift = np.linalg.norm(r.rect.center - c) > opts.max_drift * s or \
                    abs(math.log(r.rect.size / s)) > math.log1p(2 * opts.max_drift)
            if jump or drift or span > opts.max_seconds + 1e-9:
                close()
        cur.append(pos)
    close()
    return clips, dropped


# ---------------------------------------------------------------------------------------------
# pass 2: crops


def _clip_matrices(records: list[FrameRecord], clip: list[int], opts: PrepareOptions) -> list[np.ndarray]:
    framing = _framing(opts)
    if opts.crop_mode == "clip":
        c = np.mean([records[k].rect.center for k in clip], axis=0)
        s = float(np.mean([records[k].rect.size for k in clip]))
        m = geometry.crop_matrix(c, s, 0.0, opts.size, rotate=False)
        return [m] * len(clip)
    return [geometry.crop_matrix(records[k].rect.center, records[k].rect.size, records[k].rect.angle, opts.size,
                                 framing.rotate) for k in clip]


def _crop_landmarks(lm: np.ndarray, m: np.ndarray) -> np.ndarray:
    xy = geometry.transform_points(lm[:, :2], m)
    scale = math.sqrt(abs(float(np.linalg.det(np.asarray(m, np.float64)[:2, :2]))))
    return np.concatenate([xy, lm[:, 2:3] * scale], axis=1).astype(np.float32)


def write_clips(path: Path, records: list[FrameRecord], clips: list[tuple[str, list[int]]], out_dir: Path,
                opts: PrepareOptions) -> dict[str, dict]:
    """Decode the video again and write every clip's crops and meta; returns name -> meta summary."""
    from ..media import VideoReader

    jobs: dict[int, list[tuple[str, int, np.ndarray]]] = defaultdict(list)  # frame -> (clip, slot, M)
    metas: dict[str, dict] = {}
    for name, clip in clips:
        mats = _clip_matrices(records, clip, opts)
        lms = np.stack([_crop_landmarks(records[k].landmarks, m) for k, m in zip(clip, mats)])
        poses = np.stack([p if (p := lmk.pose_from_landmarks(lm)) is not None else np.full(3, np.nan, np.float32)
                          for lm in lms])
        metas[name] = {
            "landmarks": lms[:, :, :2].astype(np.float32),
            "pose": poses.astype(np.float32),
            "eye_ratio": np.stack([eye_ratio(lm) for lm in lms]).astype(np.float32),
            "lip_ratio": np.stack([lip_ratio(lm) for lm in lms]).astype(np.float32),
            "frame_index": np.array([records[k].index for k in clip], np.int64),
            "size": np.array(opts.size, np.int64),
        }
        tmp = out_dir / CLIPS / f"{name}.partial"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        for slot, (k, m) in enumerate(zip(clip, mats)):
            jobs[records[k].index].append((name, slot, m))
    params = [cv2.IMWRITE_JPEG_QUALITY, int(opts.jpeg_quality)]
    last = max(jobs) if jobs else -1
    with VideoReader(path) as reader:
        for i, frame in enumerate(reader):
            if i > last:
                break
            for name, slot, m in jobs.get(i, ()):
                crop = geometry.warp(frame, m, opts.size)
                ok, buf = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), params)
                if not ok:
                    raise InputError(f"{path}: could not encode frame {i} as JPEG")
                (out_dir / CLIPS / f"{name}.partial" / f"{slot:06d}.jpg").write_bytes(buf.tobytes())
    for name, meta in metas.items():
        tmp = out_dir / CLIPS / f"{name}.partial"
        written = len(list(tmp.glob("*.jpg")))
        if written != len(meta["frame_index"]):
            raise InputError(f"{path}: the video ended early on the second read ({written} of "
                             f"{len(meta['frame_index'])} frames of {name})")
        np.savez(tmp / META, **meta)
        final = out_dir / CLIPS / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    return metas


# ---------------------------------------------------------------------------------------------
# the whole preparation


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by an interruption
    return out


def _append_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _video_key(path: Path, rel: Path) -> dict:
    st = path.stat()
    return {"video": rel.as_posix(), "bytes": st.st_size}


def _clean_unfinished(out_dir: Path, done: set[str]) -> None:
    """Drop manifest lines and clip folders of videos that were not finished."""
    manifest = out_dir / MANIFEST
    rows = _read_jsonl(manifest)
    keep = [r for r in rows if r.get("video") in done]
    if len(keep) != len(rows):
        tmp = manifest.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in keep), encoding="utf-8")
        os.replace(tmp, manifest)
    clips = out_dir / CLIPS
    if clips.is_dir():
        known = {Path(r["dir"]).name for r in keep}
        for d in clips.iterdir():
            if d.is_dir() and d.name not in known:
                shutil.rmtree(d)


def prepare(input_dir: str | Path, out_dir: str | Path, opts: PrepareOptions | None = None, cropper=None,
            scorer: QualityScorer | None = None, log: Callable[[str], None] | None = print) -> PrepareSummary:
    """Prepare every video under ``input_dir`` into ``out_dir`` (see the module docstring)."""
    opts = opts or PrepareOptions()
    opts.check()
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    if not input_dir.is_dir():
        raise InputError(f"{input_dir} is not a folder of videos")
    videos = find_videos(input_dir)
    if not videos:
        raise InputError(f"no videos ({', '.join(sorted(VIDEO_EXTENSIONS))}) found under {input_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    scorer = scorer or load_scorer(opts.scorer, opts.thresholds)
    say = log or (lambda _msg: None)

    progress = {r["video"]: r for r in _read_jsonl(out_dir / PROGRESS)}
    # a video that changed since it was prepared is prepared again: forget its old clips
    changed = {k["video"] for k in (_video_key(p, p.relative_to(input_dir)) for p in videos)
               if k["video"] in progress and progress[k["video"]].get("bytes") != k["bytes"]}
    if changed:
        for v in changed:
            del progress[v]
        tmp = out_dir / (PROGRESS + ".tmp")
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in progress.values()), encoding="utf-8")
        os.replace(tmp, out_dir / PROGRESS)
    _clean_unfinished(out_dir, set(progress))
    summary = PrepareSummary()
    if cropper is None:
        from ..face.cropper import Cropper

        cropper = Cropper()
    for n, path in enumerate(videos, 1):
        rel = path.relative_to(input_dir)
        key = _video_key(path, rel)
        if key["video"] in progress:
            summary.videos_skipped += 1
            continue
        identity = identity_of(rel, opts.identity)
        say(f"[{n}/{len(videos)}] {rel}")
        rows, rejected = _prepare_video(path, rel, identity, out_dir, opts, cropper, scorer)
        _append_jsonl(out_dir / MANIFEST, rows)
        _append_jsonl(out_dir / PROGRESS, [{**key, "identity": identity, "clips": [r["clip"] for r in rows],
                                            "rejected": rejected, "format": FORMAT}])
        summary.videos += 1
        for r in rows:
            say(f"    kept {r['clip']}: {r['frames']} frames, {r['seconds']:.1f} s")
        for r in rejected:
            say(f"    dropped {r['what']}: {r['reason']}")
    report = write_summary(out_dir)
    summary.clips = report["clips"]
    summary.frames = report["frames"]
    summary.rejected = Counter(report["rejected"])
    summary.per_identity = report["identities"]
    return summary


def _prepare_video(path: Path, rel: Path, identity: str | None, out_dir: Path, opts: PrepareOptions, cropper,
                   scorer: QualityScorer) -> tuple[list[dict], list[dict]]:
    prefix = clip_folder_prefix(rel)
    clips_dir = out_dir / CLIPS
    if clips_dir.is_dir():  # leftovers of an interrupted attempt at this video
        for d in clips_dir.glob(f"{prefix}__c*"):
            shutil.rmtree(d)
    try:
        fps, width, height, records = analyse_video(path, cropper, opts, scorer)
    except InputError as exc:
        return [], [{"what": rel.as_posix(), "reason": f"unreadable ({exc})"}]
    clips, dropped = split_clips(records, fps, opts)
    rejected = [{"what": rel.as_posix(), "reason": reason, "count": c} for reason, c in dropped.items()]
    if not clips:
        seen = Counter(r.faces for r in records if r.faces >= 0)
        many = sum(c for f, c in seen.items() if f > 1)
        none = seen.get(0, 0)
        rejected.append({"what": rel.as_posix(),
                         "reason": f"not exactly one face (no {opts.min_seconds:g} s stretch with one face: "
                                   f"{none} sampled frames without a face, {many} with several)"})
        return [], rejected
    kept: list[tuple[str, list[int], dict]] = []
    for k, clip in enumerate(clips):
        name = f"{prefix}__c{k:03d}"
        scores = aggregate([records[i].scores for i in clip])
        reason = scorer.verdict(scores, width, height)
        if reason is not None:
            rejected.append({"what": name, "reason": reason})
            continue
        kept.append((name, clip, scores))
    write_clips(path, records, [(n, c) for n, c, _ in kept], out_dir, opts)
    rows = []
    for name, clip, scores in kept:
        first, last = records[clip[0]].index, records[clip[-1]].index
        rows.append({
            "clip": name, "dir": f"{CLIPS}/{name}", "video": rel.as_posix(), "identity": identity,
            "frames": len(clip), "fps": fps / opts.frame_step, "start": first / fps,
            "seconds": (last - first + opts.frame_step) / fps, "size": opts.size,
            "scores": {k: round(v, 4) for k, v in scores.items()}, "format": FORMAT,
        })
    return rows, rejected


def read_manifest(root: str | Path) -> list[dict]:
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise InputError(f"{root} has no {MANIFEST}: prepare it with `liveportrait data prepare VIDEOS -o {root}`")
    done = {r["video"] for r in _read_jsonl(root / PROGRESS)}
    rows = [r for r in _read_jsonl(path) if not done or r.get("video") in done]
    return rows


def write_summary(out_dir: Path) -> dict:
    """Counts per identity (videos, clips, frames, seconds) and rejections by reason; also saved as JSON."""
    rows = _read_jsonl(out_dir / MANIFEST)
    progress = _read_jsonl(out_dir / PROGRESS)
    done = {r["video"] for r in progress}
    rows = [r for r in rows if r.get("video") in done]
    ident: dict[str, dict] = defaultdict(lambda: {"videos": 0, "clips": 0, "frames": 0, "seconds": 0.0})
    for p in progress:
        ident[p.get("identity") or "(none)"]["videos"] += 1
    for r in rows:
        d = ident[r["identity"] or "(none)"]
        d["clips"] += 1
        d["frames"] += r["frames"]
        d["seconds"] = round(d["seconds"] + r["seconds"], 3)
    rejected: Counter = Counter()
    for p in progress:
        for r in p.get("rejected", []):
            rejected[_reason_kind(r["reason"])] += int(r.get("count", 1))
    report = {"videos": len(progress), "clips": len(rows), "frames": sum(r["frames"] for r in rows),
              "identities": dict(sorted(ident.items())), "rejected": dict(sorted(rejected.items()))}
    tmp = out_dir / (SUMMARY + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / SUMMARY)
    return report


def _reason_kind(reason: str) -> str:
    return reason.split(" (")[0]


def format_report(report: dict) -> str:
    lines = [f"{report['videos']} videos -> {report['clips']} clips, {report['frames']} frames"]
    if report["identities"]:
        w = max(8, *(len(k) for k in report["identities"]))
        lines.append(f"{'identity':<{w}}  videos  clips  frames  seconds")
        for k, d in report["identities"].items():
            lines.append(f"{k:<{w}}  {d['videos']:>6}  {d['clips']:>5}  {d['frames']:>6}  {d['seconds']:>7.1f}")
    if report["rejected"]:
        lines.append("dropped: " + ", ".join(f"{k} x{v}" for k, v in report["rejected"].items()))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# serving


@dataclass
class Clip:
    key: str
    dir: Path
    frames: int
    group: str  # identity, or the video for clips without one


def load_clips(root: str | Path) -> list[Clip]:
    root = Path(root)
    clips = []
    for r in read_manifest(root):
        if r.get("frames", 0) < 2:
            continue
        clips.append(Clip(r["clip"], root / r["dir"], int(r["frames"]),
                          r["identity"] if r.get("identity") else f"video:{r['video']}"))
    if not clips:
        raise InputError(f"{root}: the manifest lists no usable clips (each needs at least 2 frames)")
    return clips


def read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"cannot read the prepared frame {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)


class PairDataset(Dataset):
    """Training samples drawn deterministically from prepared clips.

    ``mode="stage1"``: a source and a driving frame of one clip.  ``mode="stage2"`` adds a
    cross-identity driving frame (from a clip of another identity, for stitching), the face mask
    of the source, and the eye/lip ratios of source and driving.

    Every item is a dict of tensors: images in [0, 1] (``*`` at the network's input size,
    ``*_target`` at its output size), landmarks (478, 2) in [-1, 1], poses (3,) in degrees, with
    ``*_valid`` flags where preparation could not measure something.
    """

    def __init__(self, root: str | Path, input_size: int, output_size: int, mode: str = "stage1", seed: int = 0,
                 max_frame_gap: int = 0, mask_dilation: float = 0.1, cache_clips: int = 64):
        if mode not in ("stage1", "stage2"):
            raise ValueError(mode)
        self.clips = load_clips(root)
        self.input_size, self.output_size = input_size, output_size
        self.mode, self.seed = mode, int(seed)
        self.max_frame_gap = int(max_frame_gap)
        self.mask_dilation = mask_dilation
        self._cache: OrderedDict[int, dict] = OrderedDict()
        self._cache_size = cache_clips
        groups: dict[str, list[int]] = defaultdict(list)
        for i, c in enumerate(self.clips):
            groups[c.group].append(i)
        self.groups = dict(sorted(groups.items()))
        self.group_names = list(self.groups)

    def __len__(self) -> int:
        return sum(c.frames for c in self.clips)

    @property
    def num_identities(self) -> int:
        return len(self.groups)

    def _meta(self, ci: int) -> dict:
        if ci in self._cache:
            self._cache.move_to_end(ci)
            return self._cache[ci]
        path = self.clips[ci].dir / META
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read {path} ({exc}); prepare the data again") from None
        self._cache[ci] = meta
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return meta

    def _frame(self, ci: int, fi: int, prefix: str, with_target: bool) -> dict[str, torch.Tensor]:
        clip, meta = self.clips[ci], self._meta(ci)
        img = read_rgb(clip.dir / f"{fi:06d}.jpg")
        side = img.shape[0]
        out = {prefix: _to_tensor(cv2.resize(img, (self.input_size,) * 2, interpolation=cv2.INTER_AREA))}
        if with_target:
            shrink = side > self.output_size
            tgt = img if side == self.output_size else cv2.resize(
                img, (self.output_size,) * 2, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            out[f"{prefix}_target"] = _to_tensor(tgt)
        lm = meta["landmarks"][fi] if "landmarks" in meta else None
        valid = lm is not None and bool(np.isfinite(lm).all())
        out[f"{prefix}_lm"] = torch.from_numpy(lmk.normalise_points(lm, side) if valid else
                                               np.zeros((lmk.NUM_LANDMARKS, 2), np.float32))
        out[f"{prefix}_lm_valid"] = torch.tensor(valid)
        pose = meta["pose"][fi] if "pose" in meta else np.full(3, np.nan, np.float32)
        pvalid = bool(np.isfinite(pose).all())
        out[f"{prefix}_pose"] = torch.from_numpy(np.nan_to_num(pose.astype(np.float32)))
        out[f"{prefix}_pose_valid"] = torch.tensor(pvalid)
        if self.mode == "stage2":
            eye = meta["eye_ratio"][fi] if "eye_ratio" in meta else np.zeros(2, np.float32)
            lip = meta["lip_ratio"][fi] if "lip_ratio" in meta else np.zeros(1, np.float32)
            out[f"{prefix}_eye"] = torch.from_numpy(np.asarray(eye, np.float32).reshape(2))
            out[f"{prefix}_lip"] = torch.from_numpy(np.asarray(lip, np.float32).reshape(1))
            if prefix == "source":
                px = None if not valid else lm * (self.output_size / side)
                out["source_mask"] = torch.from_numpy(lmk.face_mask(px, self.output_size, self.mask_dilation))[None]
        return out

    def _pair_frames(self, rng: np.random.Generator, n: int) -> tuple[int, int]:
        a = int(rng.integers(n))
        if self.max_frame_gap > 0:
            lo, hi = max(0, a - self.max_frame_gap), min(n - 1, a + self.max_frame_gap)
            choices = [k for k in range(lo, hi + 1) if k != a]
            b = int(choices[int(rng.integers(len(choices)))]) if choices else a
        else:
            b = int(rng.integers(n - 1))
            b += b >= a
        return a, b

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(index)])
        ci = int(rng.integers(len(self.clips)))
        s, d = self._pair_frames(rng, self.clips[ci].frames)
        item = self._frame(ci, s, "source", with_target=self.mode == "stage2")
        item.update(self._frame(ci, d, "driving", with_target=True))
        if self.mode == "stage2":
            own = self.clips[ci].group
            others = [g for g in self.group_names if g != own] or [own]
            group = self.groups[others[int(rng.integers(len(others)))]]
            cj = group[int(rng.integers(len(group)))]
            fc = int(rng.integers(self.clips[cj].frames))
            cross = self._frame(cj, fc, "cross", with_target=False)
            item["cross"] = cross["cross"]
            item["cross_clip"] = torch.tensor(cj)
        item["clip"] = torch.tensor(ci)
        item["index"] = torch.tensor(int(index))
        return item


class StepBatchSampler(Sampler):
    """Yields, for every optimiser step from ``start_step`` and each of its micro-steps, this
    rank's batch of sample indices: ``((step * accum + micro) * world + rank) * batch + j``."""

    def __init__(self, start_step: int, steps: int, grad_accum: int, batch_size: int, rank: int = 0,
                 world_size: int = 1):
        self.start, self.steps = int(start_step), int(steps)
        self.accum, self.batch = int(grad_accum), int(batch_size)
        self.rank, self.world = int(rank), int(world_size)

    def __iter__(self):
        for step in range(self.start, self.steps):
            for micro in range(self.accum):
                base = ((step * self.accum + micro) * self.world + self.rank) * self.batch
                yield list(range(base, base + self.batch))

    def __len__(self) -> int:
        return max(0, self.steps - self.start) * self.accum
