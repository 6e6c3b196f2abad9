"""One module per ``liveportrait`` subcommand (see ``liveportrait.cli``)."""

from __future__ import annotations

import argparse

from ..errors import require_extra  # noqa: F401 - re-exported: the commands check their extras with it


class ArgumentParser(argparse.ArgumentParser):
    """Usage errors in two lines, what is wrong and where the options are, instead of argparse's
    usage block (twenty lines for ``animate``) above the one useful line. Exit status 2, as argparse."""

    def error(self, message: str):
        what = "commands" if self._subparsers is not None else "options"
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n"
                     f"run '{self.prog} --help' for the {what}\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default only when it says something: not for flags (False), options
    without one (None), or help texts that already describe their default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


def number(kind: type = float, low: float | None = None, high: float | None = None, above: float | None = None):
    """An argparse ``type`` for a finite int or float within bounds (``low``/``high`` inclusive,
    ``above`` exclusive), so that a bad value is a usage error instead of a failure deep inside."""
    from ..config import Number
    from .options import argparse_type

    return argparse_type(Number(kind, low, high, above))


def crop_box(text: str) -> str:
    """An argparse ``type`` for ``--crop-box``: checked while parsing, kept as the text the pipeline takes."""
    from ..config import parse_crop_box
    from .options import argparse_type

    return argparse_type(parse_crop_box)(text)


def add_c2pa_arguments(parser) -> None:
    """``--c2pa-cert``, ``--c2pa-key`` and ``--c2pa-tsa`` in their own group (what ``c2pa_settings`` reads);
    imports nothing, so that ``--help`` stays fast."""
    g = parser.add_argument_group("content credentials (C2PA)")
    g.add_argument("--c2pa-cert", metavar="PEM", default=None,
                   help="sign every output with a C2PA manifest using this certificate chain (signing certificate "
                        "first; default: $LIVEPORTRAIT_C2PA_CERT); needs --c2pa-key and the c2pa extra")
    g.add_argument("--c2pa-key", metavar="PEM", default=None,
                   help="the certificate's private key, unencrypted PEM (default: $LIVEPORTRAIT_C2PA_KEY)")
    g.add_argument("--c2pa-tsa", metavar="URL", default=None,
                   help="RFC 3161 time-stamp authority contacted for each signature (default: $LIVEPORTRAIT_C2PA_TSA; "
                        "without one nothing is contacted)")


def c2pa_settings(args):
    """The checked ``provenance.c2pa.C2paSettings`` of the command line (or the environment), None when no
    certificate was given; made once per parsed command line. Bad credentials: one CredentialsError (exit
    code 8), before any network loads."""
    if not hasattr(args, "_c2pa_settings"):
        from ..provenance.c2pa import C2paSettings

        args._c2pa_settings = C2paSettings.from_options(getattr(args, "c2pa_cert", None),
                                                        getattr(args, "c2pa_key", None),
                                                        getattr(args, "c2pa_tsa", None))
    return args._c2pa_settings


def listen_socket(host: str, port: int):
    """A socket bound to ``host``:``port``, made before anything loads: a busy address is one line (exit code 9)
    in a second, not a traceback after the networks. The server listens on it; ``app`` closes it and lets
    Gradio bind the port it has just seen free."""
    import socket

    from ..errors import AddressInUseError, InputError

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise InputError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a port in TIME_WAIT is free
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        import errno

        if exc.errno == errno.EADDRINUSE:
            raise AddressInUseError(f"{host}:{port} is already in use (another server?): stop it or choose "
                                    "another --port") from None
        raise InputError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    sock.listen(2048)  # from now on a client waits in the backlog instead of being refused
    return sock


WEIGHTS_HELP = "weights folder (default: $LIVEPORTRAIT_WEIGHTS, then the user cache)"


def add_compute_arguments(parser, weights_help: str = WEIGHTS_HELP, model_config_default: str | None = None,
                          threads: bool = False) -> None:
    """The one block of compute options (weights, device, precision, backend, and ``threads`` where a command
    sets them) that every command loading the networks takes: ``config.ComputeOptions``' fields, with the help
    of the one precision rule."""
    from ..config import ComputeOptions
    from ..speed.compute import AUTO_PRECISION
    from .options import add_options

    parser.add_argument("--weights", help=weights_help)
    add_options(parser, ComputeOptions, only=("--device", "--precision", "--backend") + (("--threads",) if threads
                                                                                          else ()),
                help={"--precision": AUTO_PRECISION})
    parser.add_argument("--model-config", default=model_config_default, choices=("released", "tiny"),
                        help=argparse.SUPPRESS)
