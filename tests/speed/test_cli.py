"""``liveportrait live`` and ``liveportrait benchmark`` on tiny networks."""

from __future__ import annotations

import re
import sys
from fractions import Fraction

import numpy as np
import pytest

from liveportrait.cli import main


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from liveportrait.media import VideoWriter

    path = tmp_path_factory.mktemp("clip") / "driving.mp4"
    rng = np.random.default_rng(0)
    w = VideoWriter(path, Fraction(25), crf=23)
    base = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    for i in range(40):  # 1.6 s at 25 fps
        w.write(np.roll(base, i, axis=1))
    w.close()
    return path


@pytest.fixture(scope="module")
def source_image(tmp_path_factory):
    from liveportrait.media import write_image

    path = tmp_path_factory.mktemp("src") / "face.png"
    write_image(path, np.random.default_rng(1).integers(0, 255, (256, 256, 3), dtype=np.uint8))
    return path


def test_live_drops_frames_when_the_renderer_is_slow(tiny_weights, clip, source_image, tmp_path, capsys):
    """The command end to end with a renderer slowed to 200 ms a frame (frames arrive every 40 ms). Which frames
    are dropped is checked without the clock in test_stream.py (the newest frame is taken, none are queued);
    here only bounds no load can break: a frame takes at least the 200 ms delay."""
    out = tmp_path / "live.mp4"
    code = main(["live", "--source", str(source_image), "--driving", str(clip), "--no-crop",
                 "--weights", str(tiny_weights), "--model-config", "tiny", "--backend", "fast",
                 "--delay-ms", "200", "-o", str(out), "-q"])
    assert code == 0
    text = capsys.readouterr().out
    m = re.search(r"(\d+) frames rendered of (\d+) arrived \((\d+) dropped\), ([\d.]+) fps, latency median (\d+)",
                  text)
    assert m, text
    rendered, arrived, dropped = int(m[1]), int(m[2]), int(m[3])
    # 40 frames at 25 fps against at least 200 ms per rendered frame: frames are dropped
    assert arrived == 40 and rendered >= 1 and dropped > 0 and rendered + dropped == arrived
    assert int(m[5]) >= 200  # the latency includes the render delay
    from liveportrait.media import probe

    info = probe(out)
    assert info.frame_count >= rendered  # dropped frames are filled so the video keeps real time


def test_live_without_delay_keeps_up_on_tiny_networks(tiny_weights, clip, source_image, capsys):
    code = main(["live", "--source", str(source_image), "--driving", str(clip), "--no-crop", "--no-window",
                 "--weights", str(tiny_weights), "--model-config", "tiny", "--backend", "eager",
                 "--smooth", "0.5", "-q"])
    assert code == 0
    m = re.search(r"(\d+) frames rendered of (\d+) arrived", capsys.readouterr().out)
    assert int(m[2]) == 40 and int(m[1]) >= 1


def test_live_needs_a_driving(source_image, capsys):
    with pytest.raises(SystemExit) as info:
        main(["live", "--source", str(source_image)])
    assert info.value.code == 2  # a usage error, not a success
    err = capsys.readouterr().err
    assert re.search(r"one of the arguments --camera --driving is required", err), err


def test_benchmark_prints_a_table(capsys, tmp_path):
    import json

    out = tmp_path / "rows.json"
    code = main(["benchmark", "--weights", "synthetic", "--model-config", "tiny", "--frames", "1",
                 "--backend", "eager", "--backend", "fast", "--in-process", "--allocator", "default",
                 "--end-to-end", "0", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "| backend | precision | allocator | M ms | W ms | G ms | S ms | crop ms | paste ms | decode ms" in text
    assert re.search(r"\| eager \| fp32 \| default \|", text) and re.search(r"\| fast \| fp32 \| default \|", text)
    assert "synthetic random" in text
    # the CPU's features are named, present or not, with its model name
    assert re.search(r"machine: .+ \((no )?avx2, (no )?fma, (no )?avx512f, (no )?avx512_vnni, (no )?avx512_bf16, "
                     r"(no )?amx_bf16\)", text)
    # the keypoints W is timed on are M's on a face: the example photo framed as animate frames it
    from liveportrait.bench import EXAMPLE_PHOTO, example_file

    assert ("source s1.jpg (its face framed as animate frames it), driving d0.mp4, batch 1" if example_file(
        EXAMPLE_PHOTO) else "source: a synthetic picture (example media not found") in text
    rows = json.loads(out.read_text())["rows"]
    assert all(r["fps"] > 0 and r["peak_rss_mb"] > 0 and set(r["gflops"]) == {"M", "W", "G"} for r in rows)


@pytest.mark.ci_may_skip
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the allocator setting is for glibc")
def test_benchmark_rows_run_with_the_allocator_of_animate(capsys, tmp_path):
    import json

    out = tmp_path / "rows.json"
    code = main(["benchmark", "--weights", "synthetic", "--model-config", "tiny", "--frames", "1",
                 "--backend", "eager", "--end-to-end", "0", "--json", str(out)])
    assert code == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["backend"], r["allocator"]) for r in rows] == [("eager", "default"), ("eager", "tuned")]
    table = capsys.readouterr().out
    # the speed-up column is relative to the default-allocator row
    assert re.search(r"\| eager \| fp32 \| default \|( [^|]+ \|){9} 1\.00 \|", table)


def test_benchmark_end_to_end_takes_turns():
    """Whole animate jobs, float32 eager (the reference's way) and animate's default in processes of their
    own, taking turns: wall and network seconds per frame, and the speed-up over eager."""
    from liveportrait import bench

    order = []
    results = bench.compare_end_to_end(1, "cpu", 1, "synthetic", "tiny",
                                       echo=lambda r, res: order.append((r, res["backend"], res["precision"])))
    # the default is fast/fp32 here, fast/bf16 on a CPU with native bfloat16
    assert [o[:2] for o in order] == [(0, "eager"), (0, "fast")]
    eager, default = results
    assert (eager["backend"], eager["precision"], eager["allocator"]) == ("eager", "fp32", "default")
    assert default["allocator"] == "tuned" and len(default["rounds"]) == 1
    for r in results:
        # per frame: the difference of a 3-frame and a 2-frame job (tiny networks: within the noise)
        (wall2, net2), (wall3, net3) = r["jobs"]["2"], r["jobs"]["3"]
        assert wall3 > net3 > 0 and wall2 > net2 > 0, r
        assert r["wall_s"] == pytest.approx(wall3 - wall2) and r["net_s"] == pytest.approx(net3 - net2)
        assert ("source s1.jpg" if bench.example_file(bench.EXAMPLE_PHOTO) else "synthetic picture") in r["note"]
    text = bench.format_end_to_end(results, 1)
    assert "animate end to end (1 interleaved round(s)" in text and "1.00x float32 eager" in text


def test_benchmark_precision_rows():
    import argparse

    from liveportrait.commands.benchmark import specs_from_args

    args = argparse.Namespace(backend=["eager", "fast"], precision=["fp32", "bf16"], allocator="tuned",
                              in_process=False)
    # float32 eager also with the default allocator: the reference's way, the baseline of "x eager"
    assert specs_from_args(args) == [("eager", "fp32", "default"), ("eager", "fp32", "tuned"),
                                     ("eager", "bf16", "tuned"), ("fast", "fp32", "tuned"), ("fast", "bf16", "tuned")]
    args.allocator = "default"
    assert specs_from_args(args) == [("eager", "fp32", "default"), ("eager", "bf16", "default"),
                                     ("fast", "fp32", "default"), ("fast", "bf16", "default")]
    args.precision = ["fp16"]
    assert specs_from_args(args) == [("eager", "fp16", "default")]  # the fast rewrites have no fp16


@pytest.mark.parametrize("native", [True, False])
def test_benchmark_default_rows_include_the_auto_precision(native, monkeypatch):
    """Without --precision: float32 rows, and on a CPU with native bfloat16 also the default path of animate
    (fast, bf16); --precision auto is that precision."""
    import argparse

    from liveportrait.commands.benchmark import precision_note, specs_from_args
    from liveportrait.speed import compute

    monkeypatch.setattr(compute, "cpu_has_native_bf16", lambda cpuinfo=None: native)
    args = argparse.Namespace(backend=["eager", "fast"], precision=None, allocator="default", in_process=False,
                              device="cpu")
    extra = [("fast", "bf16", "default")] if native else []
    assert specs_from_args(args) == [("eager", "fp32", "default"), ("fast", "fp32", "default")] + extra
    args.precision = ["auto"]
    assert specs_from_args(args) == ([("eager", "bf16", "default"), ("fast", "bf16", "default")] if native else
                                     [("eager", "fp32", "default"), ("fast", "fp32", "default")])
    assert precision_note("cpu").startswith("bf16 with backend fast" if native else "fp32 with backend fast")


def test_benchmark_checks_its_inputs_before_timing(tmp_path, capsys):
    from liveportrait.errors import InputError, WeightsError

    assert main(["benchmark", "--weights", str(tmp_path), "--frames", "1", "--backend", "eager"]) \
        == WeightsError.exit_code
    err = capsys.readouterr().err
    assert err.startswith("error: LivePortrait weights not found") and err.count("\n") == 1
    assert main(["benchmark", "--weights", "synthetic", "--model-config", "tiny", "--image",
                 str(tmp_path / "nope.jpg")]) == InputError.exit_code
    assert "--image" in capsys.readouterr().err
