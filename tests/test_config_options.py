"""The commands' options come from config.py's fields: every parser's defaults and choices are the fields', every
field meant for the command line has its option, and the checker catches a default typed again."""

from __future__ import annotations

import argparse

import pytest

from liveportrait.cli import build_parser
from liveportrait.commands.options import add_options, check_parser, config_from_namespace, missing_options
from liveportrait.config import (
    AnimateConfig,
    ComputeOptions,
    LiveOptions,
    SpeechOptions,
    api_options,
    flags_of,
    option_fields,
)

CONFIGS = (AnimateConfig, ComputeOptions, LiveOptions, SpeechOptions)
LOADING = ("animate", "app", "live", "serve", "batch")  # the commands that load the networks


def parsers(parser: argparse.ArgumentParser, name: str = "liveportrait"):
    """Every parser under ``parser``, subcommands' subcommands included, as (name, parser)."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                yield from parsers(child, f"{name} {sub}")


ALL = dict(parsers(build_parser()))


def test_the_walk_finds_every_subcommand():
    assert {"liveportrait animate", "liveportrait live", "liveportrait app", "liveportrait serve",
            "liveportrait batch", "liveportrait crop", "liveportrait motion"} <= set(ALL)
    assert any(n.startswith("liveportrait train ") for n in ALL)  # and the subcommands' own subcommands


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_default_is_its_config_fields(name):
    assert check_parser(ALL[name], CONFIGS) == []


@pytest.mark.parametrize("command", LOADING)
def test_the_commands_that_load_take_the_config_options(command):
    parser = ALL[f"liveportrait {command}"]
    tagged = {a.config_option[0] for a in parser._actions if hasattr(a, "config_option")}
    assert ComputeOptions in tagged
    assert missing_options(parser, ComputeOptions, leave_out=("--threads",)) == []


def test_animate_has_an_option_for_every_field_meant_for_the_command_line():
    parser = ALL["liveportrait animate"]
    assert missing_options(parser, AnimateConfig) == []
    assert missing_options(parser, ComputeOptions, leave_out=("--threads",)) == []
    assert missing_options(ALL["liveportrait live"], LiveOptions) == []
    assert missing_options(parser, SpeechOptions) == []
    assert missing_options(ALL["liveportrait motion"], SpeechOptions) == []
    # a field without an option says why (set by code, a file, or resolved by the pipeline)
    for path, f in option_fields(AnimateConfig):
        assert flags_of(f) or f.metadata["internal"], path


def test_the_parsed_defaults_are_the_config():
    for command, required in (("animate", ["-s", "a.jpg", "-d", "b.mp4"]), ("live", ["-s", "a.jpg", "--camera", "0"])):
        args = build_parser().parse_args([command, *required])
        assert config_from_namespace(args, AnimateConfig) == AnimateConfig()
    args = build_parser().parse_args(["live", "-s", "a.jpg", "--camera", "0"])
    assert config_from_namespace(args, LiveOptions) == LiveOptions()
    args = build_parser().parse_args(["motion", "speech.wav"])
    assert config_from_namespace(args, SpeechOptions) == SpeechOptions()
    args = build_parser().parse_args(["motion", "speech.wav", "--cfg-scale", "2", "--seed", "7"])
    assert config_from_namespace(args, SpeechOptions) == SpeechOptions(seed=7, cfg_scale=2.0)


@pytest.mark.parametrize("option", [n for _, f in option_fields(AnimateConfig) for fl in flags_of(f) if fl.switch
                                    for n in fl.names])
def test_each_switch_sets_its_field(option):
    """--no-stitching is stitching=False, --absolute relative=False, --no-crop crop="none", ... (read back by the
    one inverse of the options, not by hand)."""
    args = build_parser().parse_args(["animate", "-s", "a.jpg", "-d", "b.mp4", option])
    got = config_from_namespace(args, AnimateConfig)
    ((path, f, fl),) = [(p, f, fl) for p, f in option_fields(AnimateConfig) for fl in flags_of(f) if option in fl.names]
    value = got
    for name in path:
        value = getattr(value, name)
    assert value == fl.const != getattr(AnimateConfig.defaults() if len(path) == 1 else AnimateConfig().motion,
                                        path[-1])


def test_values_map_to_their_fields():
    args = build_parser().parse_args(["animate", "-s", "a.jpg", "-d", "b.mp4", "--scale", "2", "--vy", "0.1",
                                      "--max-dim", "640", "--crop-box", "1,2,30,40", "--driving-multiplier", "0.5",
                                      "--animation-region", "lip", "--format", "gif", "--reference-frame", "auto"])
    c = config_from_namespace(args, AnimateConfig)
    assert (c.source_scale, c.source_vy, c.source_max_dim, c.source_video_max_dim, c.crop) == (2.0, 0.1, 640, 640,
                                                                                                 "1,2,30,40")
    assert (c.motion.multiplier, c.motion.region, c.output_format, c.reference_frame) == (0.5, "lip", "gif", "auto")


def test_one_fields_two_spellings_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["animate", "-s", "a.jpg", "-d", "b.mp4", "--no-crop", "--crop-box", "0,0,9,9"])
    assert exc.value.code == 2 and "not allowed with argument --no-crop" in capsys.readouterr().err


def _parser():
    parser = argparse.ArgumentParser(prog="test")
    add_options(parser, AnimateConfig)
    return parser


def test_a_wrong_default_is_caught():
    parser = _parser()
    assert check_parser(parser, CONFIGS) == []
    parser.set_defaults(crf=20, scale=2.0)
    problems = check_parser(parser, CONFIGS)
    assert sorted(problems) == ["test --crf: default 20, but AnimateConfig.crf gives 18",
                                "test --scale: default 2.0, but AnimateConfig.source_scale gives 2.3"]


def test_an_option_typed_again_by_hand_is_caught():
    parser = argparse.ArgumentParser(prog="test")
    add_options(parser, AnimateConfig, only=("--crf",))
    parser.add_argument("--vy", type=float, default=-0.125)  # the right value, but written a second time
    parser.add_argument("--crop-driving", choices=("auto", "never"), default="auto")
    problems = check_parser(parser, CONFIGS)
    assert [p.split(":")[0] for p in problems] == ["test --vy", "test --crop-driving"]
    assert all("typed by hand" in p for p in problems)


def test_wrong_choices_and_a_switch_that_changes_nothing_are_caught():
    parser = _parser()
    action = next(a for a in parser._actions if "--crop-driving" in a.option_strings)
    action.choices = ("auto", "always")
    switch = next(a for a in parser._actions if "--no-stitching" in a.option_strings)
    cls, path, fl = switch.config_option
    switch.config_option = (cls, path, type(fl)(fl.names, fl.help, const=True))
    problems = check_parser(parser, CONFIGS)
    assert any("--crop-driving: choices" in p for p in problems)
    assert any("--no-stitching: sets AnimateConfig.motion.stitching to its default True" in p for p in problems)


def test_the_api_takes_every_field_but_the_pipelines():
    names = set(api_options(AnimateConfig))
    every = {path[-1] for path, _ in option_fields(AnimateConfig)}
    assert every - names == {"device", "precision", "backend"}


def test_a_job_takes_the_apis_names_and_rejects_others():
    from liveportrait.errors import InputError
    from liveportrait.serve.jobs import job_config

    assert job_config({"stitching": False, "crf": 20, "source_scale": 2.0}) == AnimateConfig().but(
        crf=20, source_scale=2.0, motion=AnimateConfig().motion.but(stitching=False))
    with pytest.raises(InputError, match="unknown option 'scale'.*the options are .*source_scale"):
        job_config({"scale": 2.0})  # the command line's spelling is not a job's: the field's name is


def test_the_api_and_the_workers_take_the_compute_blocks_defaults():
    import inspect
    from dataclasses import asdict

    from liveportrait.api import LivePortraitPipeline
    from liveportrait.serve.workers import PipelineSpec

    want = {k: v for k, v in asdict(ComputeOptions()).items() if k != "threads"}
    for function in (LivePortraitPipeline.__init__, LivePortraitPipeline.from_pretrained):
        params = inspect.signature(function).parameters
        assert {k: params[k].default for k in want} == want
    assert {k: getattr(PipelineSpec(), k) for k in want} == want
