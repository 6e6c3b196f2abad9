"""File helpers shared by every package that reads or writes files: input checks, atomic outputs, exact frame
rates (below every other module, so that checkpoints, media, provenance and the server use one set).

Outputs are written to a hidden temporary file beside the target and renamed into place only when
complete, so a crash, an exception or Ctrl-C never leaves a half-written file under the real name.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Iterator

from .errors import FrameError, InputError, OutputError

PathLike = str | os.PathLike

# rates like 29.97 are stored as floats by many tools; snap them back to the NTSC fractions
_NTSC_BASES = (24, 30, 48, 60, 120, 240)


def check_input_file(path: PathLike, what: str) -> Path:
    """Return ``path`` as a Path, or raise InputError when it is missing, a folder or empty."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: {what} not found")
    if p.is_dir():
        raise InputError(f"{p}: expected a {what} file, got a folder")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise InputError(f"{p}: cannot read {what} ({exc.strerror or exc})") from exc
    if size == 0:
        raise InputError(f"{p}: {what} file is empty (0 bytes)")
    if not os.access(p, os.R_OK):
        raise InputError(f"{p}: {what} is not readable (permission denied)")
    return p


def read_head(path: PathLike, n: int = 64) -> bytes:
    """First ``n`` bytes of a file, or b"" when it cannot be read (used for cheap sniffing)."""
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError:
        return b""


def as_fps(value: Fraction | float | int | str) -> Fraction:
    """An exact positive frame rate; floats near 29.97-style rates become 30000/1001 and so on."""
    if isinstance(value, Fraction):
        fps = value
    elif isinstance(value, int):
        fps = Fraction(value)
    else:
        f = float(value)
        if not math.isfinite(f):
            raise FrameError(f"frame rate must be finite, got {value!r}")
        fps = _snap_float_fps(f)
    if fps <= 0:
        raise FrameError(f"frame rate must be positive, got {value!r}")
    return fps


def _snap_float_fps(f: float) -> Fraction:
    for base in _NTSC_BASES:
        ntsc = Fraction(base * 1000, 1001)
        if abs(f - float(ntsc)) < 5e-4:
            return ntsc
    return Fraction(f).limit_denominator(1001)


def by_extension(path: PathLike, table: dict, what: str):
    """``table``'s entry for ``path``'s extension, or one InputError listing the known ones."""
    ext = Path(path).suffix.lower()
    if ext not in table:
        raise InputError(f"{path}: cannot write {what} as {ext or '(no extension)'}; use one of "
                         f"{', '.join(sorted(table))}")
    return table[ext]


def _default_mode() -> int:
    """The permission bits a plain ``open(path, "w")`` would give (mkstemp uses 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def _deepest_existing(folder: Path) -> Path:
    p = folder
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_folder_writable(folder: PathLike) -> Path:
    """Raise OutputError unless files can be created in ``folder`` (made later if missing).

    Checked before any work starts, without creating anything that stays: the deepest folder that
    exists must be a folder (not a file in the way) in which a file can really be created, which
    catches read-only mounts, immutable folders and missing permissions alike.
    """
    folder = Path(folder).expanduser().absolute()
    base = _deepest_existing(folder)
    if not base.is_dir():
        raise OutputError(f"cannot write to {folder}: {base} is a file, not a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=".liveportrait-write-check.", dir=base)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise OutputError(f"cannot write to {base}: {_reason(exc)}") from None
    return folder


def check_output(path: PathLike) -> Path:
    """Absolute path of an output file that can be written; nothing is created."""
    final = Path(path).expanduser().absolute()
    if final.is_dir():
        raise OutputError(f"{final}: the output path is an existing folder")
    check_folder_writable(final.parent)
    return final


@contextlib.contextmanager
def remove_new_folders_on_error(*paths: PathLike, contents: bool = False) -> Iterator[None]:
    """On an error, remove the folders above ``paths`` that this block created and left empty, so a
    failed run leaves the disk as it found it. ``contents``: remove them with what this block put in them
    (a failed download's partial files and the hub's bookkeeping)."""
    missing: list[Path] = []
    for path in paths:
        p = Path(path).expanduser().absolute()
        while not p.exists() and p != p.parent:
            missing.append(p)
            p = p.parent
    try:
        yield
    except BaseException:
        for d in sorted(set(missing), key=lambda d: len(d.parts), reverse=True):
            if contents:
                shutil.rmtree(d, ignore_errors=True)
            with contextlib.suppress(OSError):
                d.rmdir()  # only if empty
        raise


def make_folder(folder: Path) -> None:
    """``mkdir -p`` whose failure is one clear OutputError."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot write to {folder}: a file is in the way") from None
    except OSError as exc:
        raise OutputError(f"cannot create the folder {folder}: {_reason(exc)}") from None


# a writer's hidden temporary file: ".NAME." + mkstemp's 8 characters + ".part" and an extension
_PART_FILE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.part(\.[A-Za-z0-9]+)?$")
STALE_PART_SECONDS = 24 * 3600


def sweep_stale_parts(folder: Path, older_than: float = STALE_PART_SECONDS) -> list[Path]:
    """Remove writers' temporary files left in ``folder`` by runs killed outright (SIGKILL, power loss: no
    clean-up ran) once they are a day old; a younger one may belong to a run still writing."""
    removed = []
    now = time.time()
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if not _PART_FILE.match(entry.name) or not entry.is_file(follow_symlinks=False):
                continue
            with contextlib.suppress(OSError):
                if now - entry.stat(follow_symlinks=False).st_mtime > older_than:
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def temp_path_beside(final: Path, suffix: str = "") -> Path:
    """Reserve a hidden, unique file name in the target's folder (same filesystem, so rename is atomic);
    day-old ones of killed runs there are swept first."""
    sweep_stale_parts(final.parent)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".part{suffix}", dir=final.parent)
    except OSError as exc:
        raise OutputError(f"cannot write to {final.parent}: {_reason(exc)}") from None
    os.close(fd)
    return Path(name)


def commit(tmp: Path, final: Path) -> None:
    """Give the finished temp file normal permissions and move it over the target in one step."""
    try:
        os.chmod(tmp, _default_mode())
        os.replace(tmp, final)
    except OSError as exc:
        raise OutputError(f"cannot write {final}: {_reason(exc)}") from None


def discard(tmp: Path | None) -> None:
    """Remove a temp file or folder, ignoring one that is already gone."""
    if tmp is None:
        return
    with contextlib.suppress(FileNotFoundError):
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink()


def prepare_output(path: PathLike) -> Path:
    """Absolute output path whose parent folder exists (created if needed)."""
    final = check_output(path)
    make_folder(final.parent)
    return final


@contextlib.contextmanager
def atomic_output(path: PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces ``path``, on error it is deleted."""
    final = prepare_output(path)
    tmp = temp_path_beside(final, suffix)
    try:
        yield tmp
        commit(tmp, final)
    except BaseException:
        discard(tmp)
        raise
