"""``liveportrait --help`` and every subcommand's help: fast (no torch) and free of empty defaults."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from liveportrait.cli import SUBCOMMANDS, build_parser


def _subparsers():
    action = build_parser()._subparsers._group_actions[0]
    return action.choices


def test_every_subcommand_is_registered():
    assert sorted(_subparsers()) == sorted(name.rsplit(".", 1)[1] for name in SUBCOMMANDS)


@pytest.mark.parametrize("command", sorted(n.rsplit(".", 1)[1] for n in SUBCOMMANDS))
def test_help_shows_only_meaningful_defaults(command):
    text = " ".join(_subparsers()[command].format_help().split())
    assert "(default: None)" not in text and "(default: False)" not in text
    assert not re.search(r"\(default: [^)]*\) \(default:", text)  # no option states its default twice


def test_help_does_not_import_torch():
    code = ("import sys; from liveportrait.cli import main\n"
            "try: main(['animate', '--help'])\nexcept SystemExit: pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize(("command", "option", "value"), [
    ("animate", "--crf", "-3"), ("animate", "--crf", "52"), ("animate", "--crf", "high"),
    ("animate", "--scale", "0"), ("animate", "--scale", "1e400"), ("animate", "--vx", "nan"),
    ("animate", "--vy", "inf"), ("animate", "--max-dim", "-5"), ("animate", "--smooth", "-1"),
    ("animate", "--source-video-smooth", "-1e-7"), ("animate", "--batch-size", "0"),
    ("animate", "--reference-frame", "-1"), ("animate", "--face", "left"), ("animate", "--driving-multiplier", "nan"),
    ("animate", "--driving-multiplier", "-1"),
    ("live", "--smooth", "0"), ("live", "--smooth", "1.5"), ("live", "--max-frames", "0"),
    ("app", "--port", "70000"), ("app", "--max-upload-mb", "0"), ("benchmark", "--frames", "0"),
    ("crop", "--scale", "-1"), ("animate", "--crop-box", "1,2,3"), ("animate", "--crop-box", "10,10,5,5"),
    ("crop", "--crop-box", "a,b,c,d"),
])
def test_out_of_range_options_are_usage_errors(command, option, value, capsys):
    """Caught while parsing (exit 2, one message naming the option), not deep inside with a traceback."""
    required = {"animate": ["-s", "a.jpg", "-d", "b.mp4"], "live": ["-s", "a.jpg", "--camera", "0"],
                "crop": ["a.jpg"]}.get(command, [])
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([command, *required, f"{option}={value}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and "Traceback" not in err


@pytest.mark.parametrize(("command", "args"), [
    ("animate", ["--crf", "0", "--scale", "1.7", "--vx", "-0.1", "--max-dim", "0", "--reference-frame", "auto",
                 "--smooth", "1e-6", "--driving-multiplier", "0.5", "--face", "2"]),
    ("live", ["--smooth", "1", "--max-frames", "5"]),
    ("app", ["--port", "0"]),
])
def test_values_in_range_are_kept(command, args):
    required = {"animate": ["-s", "a.jpg", "-d", "b.mp4"], "live": ["-s", "a.jpg", "--camera", "0"]}.get(command, [])
    parsed = vars(build_parser().parse_args([command, *required, *args]))
    for option, value in zip(args[::2], args[1::2]):
        got = parsed[option[2:].replace("-", "_")]
        assert str(got) == value or got == float(value), (option, got)


def test_animate_defaults_are_the_configs():
    """Every option animate leaves at its default gives AnimateConfig's default: the defaults are written once."""
    from dataclasses import fields

    from liveportrait.commands.animate import config_from_args
    from liveportrait.config import AnimateConfig, MotionOptions

    args = build_parser().parse_args(["animate", "-s", "a.jpg", "-d", "b.mp4"])
    got, want = config_from_args(args), AnimateConfig()
    differing = [f.name for f in fields(AnimateConfig)
                 if f.name not in ("device", "precision", "backend", "motion") and getattr(got, f.name) != getattr(
                     want, f.name)]
    differing += [f"motion.{f.name}" for f in fields(MotionOptions) if getattr(got.motion, f.name) != getattr(
        want.motion, f.name)]
    assert differing == []


@pytest.mark.parametrize("command", ["animate", "app", "live", "serve"])
def test_every_command_that_loads_takes_the_one_compute_block(command):
    from liveportrait.config import BACKENDS, DEVICES, PRECISIONS
    from liveportrait.speed.compute import AUTO_PRECISION

    actions = {a.dest: a for a in _subparsers()[command]._actions}
    assert tuple(actions["device"].choices) == DEVICES and tuple(actions["precision"].choices) == PRECISIONS
    assert tuple(actions["backend"].choices) == ("auto",) + BACKENDS
    assert actions["device"].default == actions["precision"].default == actions["backend"].default == "auto"
    assert actions["precision"].help == AUTO_PRECISION  # what auto picks, from the one rule (bf16 included)
