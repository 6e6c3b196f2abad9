"""Help texts and usage errors of every subcommand, through the real command line."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from liveportrait.cli import build_parser

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "liveportrait.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def parsers(parser: argparse.ArgumentParser = None, name: str = "liveportrait"):
    """Every (name, parser) of the command line, subcommands of subcommands included."""
    parser = parser or build_parser()
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, p in action.choices.items():
                yield from parsers(p, f"{name} {sub}")


def test_every_option_of_every_command_says_what_it_does():
    missing = [f"{name} {a.option_strings or a.dest}" for name, p in parsers() for a in p._actions
               if not isinstance(a, argparse._SubParsersAction) and not a.help]
    assert missing == []


def test_animate_help_explains_region_option_device_and_points_to_the_benchmark():
    out = cli("animate", "--help").stdout
    flat = " ".join(out.split())
    assert "--animation-region {all,exp,pose,lip,eyes} what the driving moves" in flat
    assert "pose-friendly takes it as it is" in flat
    assert "where the networks run; auto: CUDA, then Apple MPS, then the CPU" in flat
    assert "'liveportrait benchmark' measures them on this machine" in flat
    assert "1.7" not in out and "1.9x" not in out  # no speed-up figure that ages in the help


@pytest.mark.parametrize("args, message", [
    (["animate", "-d", "driving.mp4"], "the following arguments are required: -s/--source"),
    (["animate", "-s", "a.jpg", "-d", "b.mp4", "--animation-region", "nose"],
     "argument --animation-region: invalid choice: 'nose'"),
    (["animate", "-s", "a.jpg", "-d", "b.mp4", "--crf", "99"], "argument --crf: 99 must be at most 51"),
    (["app", "--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    (["live", "-s", "a.jpg"], "one of the arguments --camera --driving is required"),
    # an unknown option after a subcommand is that subcommand's error, not the top level's
    (["animate", "-s", "a.jpg", "-d", "b.mp4", "--frames", "3"], "unrecognized arguments: --frames 3"),
    (["crop", "a.jpg", "--zzz"], "unrecognized arguments: --zzz"),
])
def test_a_usage_error_is_one_line_and_a_hint_to_help(args, message):
    run = cli(*args)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    command = f"liveportrait {args[0]}"
    assert lines == [lines[0], f"run '{command} --help' for the options"], run.stderr
    assert lines[0].startswith(f"{command}: error: ") and message in lines[0]
    assert "usage:" not in run.stderr and run.stdout == ""


def test_an_unknown_command_points_to_the_list_of_commands():
    run = cli("animat")
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        run.stderr.splitlines()[0], "run 'liveportrait --help' for the commands"]
    assert "invalid choice: 'animat'" in run.stderr and "usage:" not in run.stderr


def test_every_command_reports_usage_errors_the_same_way(capsys):
    names = [name for name, _ in parsers()]
    assert {"liveportrait animate", "liveportrait crop", "liveportrait train stage1",
            "liveportrait data prepare"} <= set(names)
    for name, parser in parsers():
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(["--no-such-option"])
        assert exc.value.code == 2, name
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 2 and lines[0].startswith(f"{name}: error: "), err
        assert lines[1].startswith(f"run '{name} --help' for the "), err
        assert "usage:" not in err


def test_benchmark_help_says_what_bf16_puts_in_bfloat16():
    parser = dict(parsers())["liveportrait benchmark"]
    text = next(a.help for a in parser._actions if "--precision" in a.option_strings)
    assert "G in bfloat16, W exact float32" in text and "W and G in bfloat16" not in text
