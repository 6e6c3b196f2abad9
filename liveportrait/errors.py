"""Errors a user can act on.

Everything the command line reports without a traceback derives from ``LivePortraitError``;
its ``exit_code`` becomes the process exit status.
"""


class LivePortraitError(Exception):
    """Base class: a message meant for the user, and the exit code that goes with it."""

    exit_code = 1


class InputError(LivePortraitError):
    """A file the user gave is missing, unreadable, empty or of the wrong kind."""

    exit_code = 2


class FrameError(InputError, ValueError):
    """Pixels or a frame rate a writer cannot take (no frames, float pixels, fps 0). Also a ValueError, what
    such a mistake raises in numpy and PyAV, so either ``except`` catches it."""


class NoFaceError(InputError):
    """No usable human face was found where one is needed."""

    exit_code = 3


class WeightsError(LivePortraitError):
    """Checkpoints are missing, incomplete or do not match the networks."""

    exit_code = 4


class OutputError(LivePortraitError):
    """The output cannot be written where it was asked for (read-only, no permission, a file in the way)."""

    exit_code = 6


class UnsafeFileError(InputError):
    """A file would execute code or smuggle objects when loaded (a hostile pickle)."""

    exit_code = 5


class AddressInUseError(LivePortraitError):
    """The address a server was asked to listen on is taken (another server, or this one started twice)."""

    exit_code = 9


class VirtualCameraError(LivePortraitError):
    """No virtual camera to send frames to: pyvirtualcam is missing, or no driver (OBS Virtual Camera,
    v4l2loopback) is installed."""

    exit_code = 10


class MissingExtraError(LivePortraitError):
    """A command needs an optional part of the install (a pip extra) that is not installed."""

    exit_code = 7


class CredentialsError(LivePortraitError):
    """The C2PA signing credentials (certificate chain and key) are missing, unreadable, malformed, expired,
    do not belong together, or the C2PA SDK refuses them. ``reason`` says so without the files' paths."""

    exit_code = 8

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message


def require_extra(extra: str, modules: tuple[str, ...], what: str) -> None:
    """An optional extra's modules, or a MissingExtraError saying how to install them, before any work
    (not after the networks have loaded)."""
    import importlib.util

    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise MissingExtraError(f"{what} needs the '{extra}' extra, which is not installed (no module {module}): "
                                    f"run `bash scripts/install.sh {extra}` (or `pip install -e '.[{extra}]'`)")
