"""``liveportrait crop`` end to end (needs mediapipe and ../shared)."""

from __future__ import annotations

import cv2
import numpy as np

from liveportrait.cli import main


def test_crop_writes_crops_and_prints_boxes_and_ratios(cropper, source_dir, tmp_path, capsys):
    rc = main(["crop", str(source_dir / "s1.jpg"), "-o", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "1 face(s)" in out and "face 0: box=" in out and "eye=[" in out and "lip=[" in out
    crop = cv2.imread(str(tmp_path / "s1_face0.png"))
    assert crop.shape == (512, 512, 3)


def test_crop_all_faces_of_a_group_picture(cropper, source_dir, load_rgb, tmp_path, capsys):
    a, b = load_rgb(source_dir / "s1.jpg"), load_rgb(source_dir / "s0.jpg")
    b = cv2.resize(b, (a.shape[0] * b.shape[1] // b.shape[0], a.shape[0]))
    pic = tmp_path / "pair.png"
    cv2.imwrite(str(pic), np.concatenate([a, b], 1)[:, :, ::-1])
    assert main(["crop", str(pic), "--face", "all", "-o", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["pair_face0.png", "pair_face1.png"]
    assert "2 face(s)" in capsys.readouterr().out


def test_crop_driving_framing_of_a_video(cropper, driving_dir, tmp_path, capsys):
    assert main(["crop", str(driving_dir / "d0.mp4"), "--driving", "-q", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "78 frames, 78 with a face, 0 without" in out
    cap = cv2.VideoCapture(str(tmp_path / "d0_crop.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 78
    cap.release()


def test_no_face_exits_non_zero_and_suggests_crop_box(cropper, source_dir, tmp_path, capsys):
    rc = main(["crop", str(source_dir / "s25.jpg"), "-o", str(tmp_path)])
    assert rc == 3
    err = capsys.readouterr().err
    assert "no human face" in err and "--crop-box x0,y0,x1,y1" in err
    rc = main(["crop", str(source_dir / "s25.jpg"), "-o", str(tmp_path), "--crop-box", "50,20,460,430"])
    assert rc == 0 and (tmp_path / "s25_face0.png").is_file()


def test_bad_inputs_are_reported(tmp_path, capsys):
    assert main(["crop", str(tmp_path / "missing.jpg")]) == 2
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a picture")
    assert main(["crop", str(junk), "-o", str(tmp_path)]) == 2
    assert main(["crop", str(junk), "--face", "left"]) == 2
    assert "error:" in capsys.readouterr().err
