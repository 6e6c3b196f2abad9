"""Training configs: TOML/JSON reading, overrides, validation."""

from __future__ import annotations

import json

import pytest

from liveportrait.cli import main
from liveportrait.errors import InputError
from liveportrait.train.config import TrainConfig, config_from_dict, load_config, read_config_file


def test_default_toml_round_trips(tmp_path, capsys):
    out = tmp_path / "stage2.toml"
    assert main(["train", "config", "stage2", "-o", str(out)]) == 0
    cfg = config_from_dict(read_config_file(out))
    assert cfg == TrainConfig(stage="stage2", out_dir="runs/stage2")


def test_json_config_overrides_and_relative_paths(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"model": "tiny", "data": {"root": "prepared"}, "stage1": {"gan": 0}}))
    cfg = load_config(tmp_path / "c.json", ["steps=7", "stage1.equivariance=2.5", "betas=[0.9, 0.99]",
                                            "out_dir=\"run\""], stage="stage1")
    assert cfg.steps == 7 and cfg.stage1.equivariance == 2.5 and cfg.stage1.gan == 0.0
    assert cfg.betas == [0.9, 0.99]
    assert cfg.data.root == str(tmp_path / "prepared") and cfg.out_dir == str(tmp_path / "run")


@pytest.mark.parametrize("data, message", [
    ({"stepz": 3}, "unknown key(s) stepz"),
    ({"stage1": {"gann": 1}}, "unknown key(s) gann in [stage1]"),
    ({"steps": "many"}, "steps must be an integer"),
    ({"precision": "fp8"}, "precision must be one of"),
    ({"stage": "stage2"}, "stage 2 needs base_weights"),
    ({}, "data.root must name a folder"),
])
def test_config_errors_are_input_errors(tmp_path, data, message):
    data = {"data": {"root": "x"}, **data} if "data" not in data and data != {} else data
    path = tmp_path / "c.toml"
    path.write_text("\n".join(_toml_lines(data)))
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                       .replace(")", r"\)")):
        load_config(path)


def test_stage_on_command_line_must_match(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('stage = "stage1"\n[data]\nroot = "x"\n')
    with pytest.raises(InputError, match="the config is for stage1"):
        load_config(path, stage="stage2")


def test_train_cli_reports_a_missing_config(tmp_path, capsys):
    assert main(["train", "stage1", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def _toml_lines(data: dict, prefix: str = ""):
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    for k, v in data.items():
        if not isinstance(v, dict):
            yield f"{k} = {json.dumps(v)}"
    for k, v in tables.items():
        yield f"[{k}]"
        yield from _toml_lines(v)
