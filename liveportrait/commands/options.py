"""The commands' options made from the fields of ``config`` (their ``Flag`` metadata), the config read back from
the parsed options, and the check that a parser's defaults are the fields'. Imports no torch: ``--help`` stays
fast."""

from __future__ import annotations

import argparse
from typing import Any, Callable, Iterable

from ..config import Flag, field_default, flags_of, option_fields, with_options

DESTS = "_config_dests"  # the parsed attribute naming, for each config class, the attributes its options set


def argparse_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` (text -> value, a ValueError saying what is wrong) as an argparse ``type``: a bad value is a
    usage error with that message, not argparse's bare "invalid value"."""

    def convert(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = getattr(parse, "__name__", "value")  # argparse names the type in its messages
    return convert


def add_options(parser, cls, only: Iterable[str] | None = None, groups: dict | None = None,
                help: dict[str, str] | None = None) -> list[argparse.Action]:
    """Add the options of the config dataclass ``cls`` (nested options dataclasses included) to ``parser``,
    each with its field's default, choices, type and help. ``only``: the option names to add (all when None);
    ``groups``: argument groups by the heading a ``Flag`` names (else the parser); ``help``: a command's own
    wording of an option, by its name, where the command uses it differently. Two spellings of one field
    (``--no-crop``, ``--crop-box``) exclude each other. Each action is tagged with its field, for
    ``check_parser``."""
    only = None if only is None else set(only)
    groups, help = groups or {}, help or {}
    added = []
    for path, f in option_fields(cls):
        chosen = [fl for fl in flags_of(f) if only is None or only.intersection(fl.names)]
        if not chosen:
            continue
        container = groups.get(chosen[0].group, parser)
        if len(chosen) > 1:
            container = container.add_mutually_exclusive_group()
        for fl in chosen:
            kwargs: dict[str, Any] = {"help": next((help[n] for n in fl.names if n in help), fl.help)}
            if fl.switch:
                kwargs["action"] = "store_true"
            else:
                kwargs["default"] = None if fl.unset else field_default(f)
                if fl.parse is not None:
                    kwargs["type"] = argparse_type(fl.parse)
                if fl.choices is not None:
                    kwargs["choices"] = fl.choices
                if fl.metavar is not None:
                    kwargs["metavar"] = fl.metavar
            action = container.add_argument(*fl.names, **kwargs)
            action.config_option = (cls, path, fl)
            added.append(action)
    # which parsed attributes are this config's: another config's option may share a name (live's --smooth is
    # LiveOptions.smoothing, not AnimateConfig.smooth); argument groups share their parser's defaults
    dests = parser._defaults.setdefault(DESTS, {})
    dests[cls.__name__] = dests.get(cls.__name__, frozenset()) | {a.dest for a in added}
    return added


def options_given(args: argparse.Namespace, cls) -> dict[tuple[str, ...], Any]:
    """The field values the parsed options ``args`` give, by field path (options a parser lacks are skipped)."""
    values: dict[tuple[str, ...], Any] = {}
    mine = getattr(args, DESTS, {}).get(cls.__name__)  # None: a namespace made by hand, every name is cls's
    for path, f in option_fields(cls):
        for fl in flags_of(f):
            if not hasattr(args, fl.dest) or (mine is not None and fl.dest not in mine):
                continue
            given = getattr(args, fl.dest)
            if fl.switch:
                if given:
                    values[path] = fl.const
            elif not (fl.unset and given is None):
                for name in (path[-1],) + fl.also:
                    values[path[:-1] + (name,)] = given
    return values


def config_from_namespace(args: argparse.Namespace, cls, base=None):
    """The config ``cls`` (or ``base`` changed) that the parsed options ``args`` describe: the inverse of
    ``add_options``; a field whose options the parser lacks keeps its default (or ``base``'s value)."""
    return with_options(base if base is not None else cls(), options_given(args, cls))


def _expected_default(cls, path: tuple[str, ...], fl: Flag):
    field = dict(option_fields(cls))[path]
    return False if fl.switch else None if fl.unset else field_default(field)


def check_parser(parser: argparse.ArgumentParser, classes: Iterable[type]) -> list[str]:
    """What in ``parser`` disagrees with the config fields its options map to, one line each: a default that
    is not the field's (``set_defaults`` included), other choices, a switch that would not change its field,
    or, in a parser that takes options of one of ``classes``, another of that class's options typed by hand
    instead of made by ``add_options``. Empty: all agree."""
    used = {a.config_option[0] for a in parser._actions if hasattr(a, "config_option")}
    known = {name: cls.__name__ for cls in classes if cls in used for _, f in option_fields(cls)
             for fl in flags_of(f) for name in fl.names}
    problems = []
    for action in parser._actions:
        tag = getattr(action, "config_option", None)
        name = "/".join(action.option_strings) or action.dest
        if tag is None:
            hand = [n for n in action.option_strings if n in known]
            if hand:
                problems.append(f"{parser.prog} {name}: typed by hand, not made from {known[hand[0]]}'s field")
            continue
        cls, path, fl = tag
        field = ".".join(path)
        expected, got = _expected_default(cls, path, fl), parser.get_default(action.dest)
        if got != expected or type(got) is not type(expected):
            problems.append(f"{parser.prog} {name}: default {got!r}, but {cls.__name__}.{field} gives {expected!r}")
        if fl.choices is not None and tuple(action.choices or ()) != tuple(fl.choices):
            problems.append(f"{parser.prog} {name}: choices {action.choices!r}, not {cls.__name__}.{field}'s "
                            f"{fl.choices!r}")
        if fl.switch and field_default(dict(option_fields(cls))[path]) == fl.const:
            problems.append(f"{parser.prog} {name}: sets {cls.__name__}.{field} to its default {fl.const!r}")
    return problems


def missing_options(parser: argparse.ArgumentParser, cls, leave_out: Iterable[str] = ()) -> list[str]:
    """The option names of ``cls``'s fields that ``parser`` lacks (but ``leave_out``): a field meant for the
    command line with no option."""
    have = {n for a in parser._actions for n in a.option_strings}
    return [n for _, f in option_fields(cls) for fl in flags_of(f) for n in fl.names
            if n not in have and n not in set(leave_out)]
