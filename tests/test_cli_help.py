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
    code = "import sys; from liveportrait.cli import main\ntry: main(['animate', '--help'])\nexcept SystemExit: pass\n" \
           "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"
