"""Both training stages end to end on synthetic clips, with the tiny networks on the CPU.

What is proved here: stage 1 overfits one pair (the reconstruction error falls clearly), all of
its losses run and its weights export in the released layout; a resumed run repeats an
uninterrupted one exactly; stage 2 changes only S; the result animates with `liveportrait
animate`; two torchrun processes (gloo) keep identical replicas.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from liveportrait.cli import main
from liveportrait.networks import LivePortraitNetworks, ModelConfig
from liveportrait.networks.checkpoint import read_state_dict, resolve_layout
from liveportrait.train.checkpointing import latest_checkpoint, list_checkpoints
from liveportrait.train.config import config_from_dict
from liveportrait.train.engine import read_metrics
from liveportrait.train.run import run_stage

REPO = Path(__file__).resolve().parents[2]
QUIET = dict(log=lambda *a, **k: None)


def tiny_config(root: Path, out_dir: Path, **over) -> dict:
    """Tiny networks, 128-pixel inputs (256 outputs), small discriminators, every stage-1 loss on."""
    cfg = {
        "model": "tiny", "out_dir": str(out_dir), "steps": 4, "batch_size": 1, "lr": 1e-3, "log_every": 1,
        "checkpoint_every": 2, "export_every": 100, "keep_checkpoints": 2, "image_every": 2, "threads": 1,
        "data": {"root": str(root), "input_size": 128, "num_workers": 0},
        "perceptual": {"arch": "tiny"},
        "identity": {"arch": "tiny"},
        "discriminator": {"channels": 4, "max_channels": 8, "num_layers": 3, "num_scales": 2},
        "stage1": {"perceptual_scales": [1.0, 0.5], "identity": 1.0},
    }
    for key, value in over.items():
        node = cfg
        *path, last = key.split(".")
        for p in path:
            node = node.setdefault(p, {})
        node[last] = value
    return cfg


def train(cfg: dict, resume="auto") -> list[dict]:
    run_stage(config_from_dict(cfg).validate(), resume, **QUIET)
    return read_metrics(cfg["out_dir"])


def one_pair(prepared: Path, dst: Path) -> Path:
    """A prepared folder holding one clip of two frames: every sample is that pair."""
    rows = [json.loads(line) for line in (prepared / "manifest.jsonl").read_text().splitlines()]
    r = rows[0]
    clip = dst / "clips" / r["clip"]
    clip.mkdir(parents=True)
    for k, i in enumerate((0, 6)):
        shutil.copy(prepared / r["dir"] / f"{i:06d}.jpg", clip / f"{k:06d}.jpg")
    with np.load(prepared / r["dir"] / "meta.npz") as m:
        np.savez(clip / "meta.npz", **{k: m[k][[0, 6]] if m[k].ndim else m[k] for k in m.files})
    (dst / "manifest.jsonl").write_text(json.dumps({**r, "frames": 2}) + "\n")
    return dst


@pytest.fixture(scope="module")
def stage1_run(prepared, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("stage1")
    cfg = tiny_config(prepared, out)
    metrics = train(cfg, resume="none")
    return {"cfg": cfg, "metrics": metrics, "out": out}


@pytest.fixture(scope="module")
def stage2_run(prepared, stage1_run, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("stage2")
    cfg = tiny_config(prepared, out, stage="stage2", base_weights=str(stage1_run["out"] / "weights"), steps=3,
                      batch_size=2, lr=3e-3)
    metrics = train(cfg, resume="none")
    return {"cfg": cfg, "metrics": metrics, "out": out}


def test_stage1_overfits_one_pair(prepared, tmp_path):
    root = one_pair(prepared, tmp_path / "pair")
    cfg = tiny_config(root, tmp_path / "run", steps=30, lr=3e-3, checkpoint_every=1000, image_every=0,
                      tensorboard=False, **{"stage1.l1": 10.0, "stage1.gan": 0.0, "stage1.feature_matching": 0.0,
                                            "stage1.perceptual_scales": [1.0], "stage1.identity": 0.0,
                                            "stage1.perceptual_face": 0.0, "stage1.perceptual_eye": 0.0,
                                            "stage1.perceptual_lip": 0.0})
    m = train(cfg, resume="none")
    rec = [r["rec_l1"] for r in m]
    assert len(rec) == 30
    first, last = rec[0], float(np.mean(rec[-5:]))
    assert last < 0.65 * first, f"reconstruction L1 {first:.4f} -> {last:.4f}"
    assert np.mean([r["loss/perceptual"] for r in m[-5:]]) < 0.8 * m[0]["loss/perceptual"]


def test_stage1_runs_every_loss_and_exports_released_weights(stage1_run):
    m = stage1_run["metrics"]
    assert [r["step"] for r in m] == [1, 2, 3, 4]
    expected = {"perceptual", "perceptual_face", "perceptual_eye", "perceptual_lip", "gan", "feature_matching",
                "equivariance", "keypoint_prior", "head_pose", "deformation_prior", "landmark", "identity",
                "discriminator", "total"}
    assert {k[5:] for k in m[-1] if k.startswith("loss/")} == expected
    assert all(np.isfinite(v) for r in m for v in r.values())
    out = stage1_run["out"]
    weights = out / "weights"
    # strict load; the exported config.json says which architecture, so none is given here
    nets = LivePortraitNetworks.from_pretrained(weights, locate=False)
    assert nets.config == ModelConfig.tiny()
    assert json.loads((weights / "base_models" / "config.json").read_text())["name"] == "tiny"
    assert json.loads((weights / "training.json").read_text())["step"] == 4
    # the exported G carries updated spectral-norm vectors (power iteration ran in training)
    fresh = LivePortraitNetworks(ModelConfig.tiny())
    key = "G_middle_0.conv_0.weight_u"
    assert not torch.equal(nets.G.state_dict()[key], fresh.G.state_dict()[key])
    assert [p.name for p in list_checkpoints(out)] == ["step_00000002.pt", "step_00000004.pt"]
    # TensorBoard is a test dependency (the dev extra pulls in the train extra): its event file is written
    assert list((out / "logs").glob("events.out.tfevents.*"))


def test_resume_repeats_the_uninterrupted_run(stage1_run, tmp_path):
    """Two steps, stop, resume to four (with a loader worker this time): same losses, same weights."""
    cfg = dict(stage1_run["cfg"], out_dir=str(tmp_path / "resumed"), steps=2)
    train(cfg, resume="none")
    assert latest_checkpoint(tmp_path / "resumed").name == "step_00000002.pt"
    cfg = dict(cfg, steps=4, data=dict(cfg["data"], num_workers=1))
    resumed = {r["step"]: r for r in train(cfg)}
    straight = {r["step"]: r for r in stage1_run["metrics"]}
    for step in (3, 4):
        for k, v in straight[step].items():
            if k.startswith("loss/") or k == "rec_l1":
                assert abs(resumed[step][k] - v) <= 1e-6, (step, k, resumed[step][k], v)
    a = resolve_layout(stage1_run["out"] / "weights")
    b = resolve_layout(tmp_path / "resumed" / "weights")
    for module in ("spade_generator", "motion_extractor"):
        sa, sb = read_state_dict(a.file(module), module), read_state_dict(b.file(module), module)
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_stage2_trains_only_the_retargeting_module(stage1_run, stage2_run):
    m = stage2_run["metrics"]
    assert {k[5:] for k in m[-1] if k.startswith("loss/")} == {
        "stitching", "stitching_delta", "eye", "eye_delta", "lip", "lip_delta", "total"}
    assert all(np.isfinite(v) for r in m for v in r.values())
    before = LivePortraitNetworks.from_pretrained(stage1_run["out"] / "weights", ModelConfig.tiny(), locate=False)
    after = LivePortraitNetworks.from_pretrained(stage2_run["out"] / "weights", ModelConfig.tiny(), locate=False)
    for name in ("F", "M", "W", "G"):
        sa, sb = getattr(before, name).state_dict(), getattr(after, name).state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name
    for part in ("stitching", "eye", "lip"):
        sa, sb = getattr(before.S, part).state_dict(), getattr(after.S, part).state_dict()
        assert any(not torch.equal(sa[k], sb[k]) for k in sa), part


def test_stage2_resume_repeats_the_uninterrupted_run(stage2_run, tmp_path):
    cfg = dict(stage2_run["cfg"], out_dir=str(tmp_path / "s2"), steps=2)
    train(cfg, resume="none")
    resumed = train(dict(cfg, steps=3))[-1]
    straight = stage2_run["metrics"][-1]
    assert resumed["step"] == straight["step"] == 3
    assert all(abs(resumed[k] - v) <= 1e-6 for k, v in straight.items() if k.startswith("loss/"))


def test_trained_weights_animate(stage2_run, prepared, synthetic, tmp_path):
    """The exported folder (stage-2 S on the stage-1 base) loads unchanged in `liveportrait animate`."""
    from liveportrait.media import probe

    src = next((prepared / "clips").glob("alice*")) / "000000.jpg"
    driving = synthetic.write_video(tmp_path / "drive.mp4", synthetic.frames(2, size=128, seed=9))
    out = tmp_path / "anim.mp4"
    rc = main(["animate", "-s", str(src), "-d", str(driving), "-o", str(out), "--weights",
               str(stage2_run["out"] / "weights"), "--model-config", "tiny", "-q", "--no-crop"])
    assert rc == 0 and out.is_file()
    assert probe(out).frame_count == 2


def test_train_export_cli_writes_the_checkpoint_weights(stage1_run, tmp_path, capsys):
    ckpt = latest_checkpoint(stage1_run["out"])
    assert main(["train", "export", str(ckpt), "-o", str(tmp_path / "w")]) == 0
    a = resolve_layout(stage1_run["out"] / "weights")
    b = resolve_layout(tmp_path / "w")
    sa = read_state_dict(a.file("warping_module"), "warping_module")
    sb = read_state_dict(b.file("warping_module"), "warping_module")
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_torchrun_two_processes_keep_replicas_equal(prepared, tmp_path):
    """torchrun --nproc_per_node 2 (gloo) with gradient accumulation: the replicas end bit-identical."""
    cfg = tiny_config(prepared, tmp_path / "ddp", steps=2, grad_accum=2, checkpoint_every=2, image_every=0,
                      tensorboard=False, backend="gloo", device="cpu", **{"stage1.identity": 0.0})
    path = tmp_path / "ddp.json"
    path.write_text(json.dumps(cfg))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "liveportrait.cli", "train", "stage1", "--config", str(path), "--resume", "none", "-q"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-8000:]
    records = [json.loads(line) for line in (tmp_path / "ddp" / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert [r["replica_max_abs_diff"] for r in records if "replica_max_abs_diff" in r] == [0.0]
    steps = [r for r in records if "loss/total" in r]
    assert [r["step"] for r in steps] == [1, 2] and steps[-1]["samples_per_s"] > 0
    state = torch.load(latest_checkpoint(tmp_path / "ddp"), weights_only=True)
    assert state["world_size"] == 2 and state["step"] == 2
