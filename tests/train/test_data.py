"""Data preparation (clips, filters, manifest, resume) and the training datasets."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest
import torch

from liveportrait.cli import main
from liveportrait.errors import InputError
from liveportrait.train.data import (
    MANIFEST,
    PROGRESS,
    PairDataset,
    StepBatchSampler,
    format_report,
    prepare,
    read_manifest,
    write_summary,
)
from liveportrait.train.quality import BasicQualityScorer, load_scorer
from tests.conftest import skip_or_fail


def test_prepare_keeps_one_face_clips_and_drops_the_rest(prepared):
    rows = read_manifest(prepared)
    by_id = {}
    for r in rows:
        by_id.setdefault(r["identity"], []).append(r)
    # alice: 3 s -> two 1.5 s clips, 2 s -> one clip (the 0.5 s rest is too short); bob: two clips
    assert sorted(by_id) == ["alice", "bob"]
    assert len(by_id["alice"]) == 3 and len(by_id["bob"]) == 2
    for r in rows:
        assert r["seconds"] <= 1.5 + 1e-9 and r["frames"] >= 8
        assert set(r["scores"]) == {"sharpness", "brightness", "clipped", "face_size"}
        folder = prepared / r["dir"]
        assert len(list(folder.glob("*.jpg"))) == r["frames"]
        with np.load(folder / "meta.npz") as meta:
            assert meta["landmarks"].shape == (r["frames"], 478, 2)
            assert meta["eye_ratio"].shape == (r["frames"], 2) and np.isfinite(meta["pose"]).all()
            # the synthetic faces roll by up to 0.12 rad; pitch and yaw are zero
            assert np.abs(meta["pose"][:, 2]).max() < 10 and np.abs(meta["pose"][:, :2]).max() < 1e-3
    report = write_summary(prepared)
    assert report["identities"]["carol"]["clips"] == 0  # two faces in every frame
    assert report["identities"]["dave"]["clips"] == 0  # blurred
    assert report["rejected"]["blurry"] == 1
    assert report["rejected"]["not exactly one face"] == 1
    text = format_report(report)
    assert "alice" in text and "dropped:" in text


def test_prepare_resumes_without_redoing_finished_videos(synthetic_videos, blob_cropper, prepare_options, synthetic,
                                                        tmp_path):
    out = tmp_path / "prep"
    videos = tmp_path / "videos"
    shutil.copytree(synthetic_videos / "alice", videos / "alice")
    shutil.copytree(synthetic_videos / "bob", videos / "bob")
    first = prepare(videos, out, prepare_options(), cropper=blob_cropper, log=None)
    assert first.videos == 3 and first.clips == 5
    stamps = {p: p.stat().st_mtime_ns for p in (out / "clips").rglob("*.jpg")}

    class Counting:  # a backend wrapper that counts detections
        def __init__(self, inner):
            self.inner, self.calls = inner, 0
            self.num_landmarks = inner.num_landmarks

        def detect(self, image, thorough=False):
            self.calls += 1
            return self.inner.detect(image, thorough)

        def landmarks(self, image, face):
            return self.inner.landmarks(image, face)

    from liveportrait.face.cropper import Cropper

    counting = Counting(blob_cropper.backend)
    again = prepare(videos, out, prepare_options(), cropper=Cropper(counting), log=None)
    assert again.videos == 0 and again.videos_skipped == 3 and counting.calls == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "clips").rglob("*.jpg")} == stamps

    # an interrupted run: bob's video finished writing clips but not its progress line
    lines = (out / PROGRESS).read_text().splitlines()
    (out / PROGRESS).write_text("\n".join(line for line in lines if "bob/" not in line) + "\n")
    (out / "clips" / "bob__b1__c000.partial").mkdir()  # and a half-written folder
    third = prepare(videos, out, prepare_options(), cropper=Cropper(counting), log=None)
    assert third.videos == 1 and third.videos_skipped == 2 and counting.calls > 0
    rows = read_manifest(out)
    assert len(rows) == 5 and len({r["clip"] for r in rows}) == 5
    assert not list((out / "clips").glob("*.partial"))
    alice = [p for p in stamps if "alice" in p.name or "alice" in str(p.parent)]
    assert all(p.stat().st_mtime_ns == stamps[p] for p in alice)

    # a video replaced by a different one is prepared again, its old clips forgotten
    synthetic.write_video(videos / "alice" / "a2.mp4", synthetic.frames(10, seed=7))  # 1 s: one clip
    fourth = prepare(videos, out, prepare_options(), cropper=blob_cropper, log=None)
    assert fourth.videos == 1
    rows = read_manifest(out)
    assert sum(r["video"] == "alice/a2.mp4" for r in rows) == 1 and len(rows) == 5
    assert len(list((out / "clips").iterdir())) == 5


def test_prepare_errors_and_custom_scorer(tmp_path, synthetic_videos, blob_cropper, prepare_options):
    with pytest.raises(InputError, match="no videos"):
        prepare(tmp_path, tmp_path / "out", prepare_options(), cropper=blob_cropper)
    with pytest.raises(InputError, match="MODULE:NAME"):
        load_scorer("nonsense")
    assert isinstance(load_scorer("liveportrait.train.quality:BasicQualityScorer"), BasicQualityScorer)

    class RejectAll:
        def frame_scores(self, face_crop, face_size):
            return {"x": 1.0}

        def verdict(self, scores, width, height):
            return "not wanted"

    videos = tmp_path / "v"
    shutil.copytree(synthetic_videos / "bob", videos / "bob")
    s = prepare(videos, tmp_path / "o2", prepare_options(), cropper=blob_cropper, scorer=RejectAll(), log=None)
    assert s.clips == 0 and s.rejected["not wanted"] == 2


def test_step_sampler_partitions_samples_across_ranks_and_steps():
    a = list(StepBatchSampler(0, 3, grad_accum=2, batch_size=2, rank=0, world_size=2))
    b = list(StepBatchSampler(0, 3, grad_accum=2, batch_size=2, rank=1, world_size=2))
    flat = sorted(i for batch in a + b for i in batch)
    assert flat == list(range(24)) and len(a) == 6
    assert list(StepBatchSampler(1, 3, 2, 2, 1, 2)) == b[2:]  # resuming at step 1


def test_pair_dataset_is_deterministic_and_stage2_pairs_cross_identities(prepared):
    ds = PairDataset(prepared, 64, 128, "stage1", seed=3)
    a, b = ds[5], ds[5]
    assert set(a) >= {"source", "driving", "driving_target", "source_lm", "driving_pose", "driving_lm_valid"}
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["source"].shape == (3, 64, 64) and a["driving_target"].shape == (3, 128, 128)
    assert a["source_lm"].abs().max() <= 1.0 and bool(a["source_lm_valid"])
    assert not torch.equal(ds[5]["source"], ds[6]["source"])
    ds2 = PairDataset(prepared, 64, 128, "stage2", seed=0)
    assert ds2.num_identities == 2
    item = ds2[0]
    assert item["source_mask"].shape == (1, 128, 128) and 0 < item["source_mask"].mean() < 1
    assert item["source_eye"].shape == (2,) and item["driving_lip"].shape == (1,)
    # the cross frame always comes from a clip of the other identity
    for i in range(8):
        item = ds2[i]
        assert ds2.clips[int(item["clip"])].group != ds2.clips[int(item["cross_clip"])].group


def test_data_cli_on_a_real_video_with_the_face_backend(examples_dir, tmp_path, capsys):
    """`liveportrait data prepare` with MediaPipe on an example driving video (symlinked, not copied)."""
    if importlib.util.find_spec("mediapipe") is None:
        skip_or_fail("mediapipe is not installed (pip install --no-deps mediapipe==0.10.21 'protobuf>=4.25.3,<5')")
    videos = tmp_path / "videos" / "person"
    videos.mkdir(parents=True)
    (videos / "d0.mp4").symlink_to(examples_dir / "driving" / "d0.mp4")
    out = tmp_path / "out"
    args = ["data", "prepare", str(tmp_path / "videos"), "-o", str(out), "--max-seconds", "1.2", "--min-seconds",
            "0.5", "--frame-step", "3", "--size", "128", "--check-every", "4", "-q"]
    assert main(args) == 0
    rows = [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]
    assert len(rows) >= 2 and {r["identity"] for r in rows} == {"person"}
    assert all(r["seconds"] <= 1.2 + 1e-9 for r in rows)
    with np.load(out / rows[0]["dir"] / "meta.npz") as meta:
        lm = meta["landmarks"][0]
        assert 0 < lm[:, 0].min() and lm[:, 0].max() < 128  # the face lies inside the crop
        assert np.isfinite(meta["pose"]).all() and np.abs(meta["pose"]).max() < 45
    assert "person" in capsys.readouterr().out
    assert main(args) == 0  # everything done: nothing to redo
    assert main(["data", "stats", str(out)]) == 0
