"""Keep freed memory in the process instead of handing it back to the kernel (glibc only).

A full-size frame allocates and frees hundreds of megabytes of temporaries, many of them larger
than glibc's 32 MB ceiling for reusing mapped blocks. By default each such block is a fresh
``mmap`` and every one of its pages faults in again on every frame: about 15% of the CPU time of
W and G goes to page faults. Serving every block from the heap and never trimming it makes the
second frame reuse the first frame's pages. The cost is a few hundred megabytes more resident
memory (the heap keeps its high-water mark), which is why it is a setting of the running
program (the CLI turns it on) and not something importing the package does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4

ENV_SWITCH = "LIVEPORTRAIT_ALLOCATOR"


def _glibc():
    if platform.system() != "Linux":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # musl and others have no such symbol
    except (OSError, AttributeError):
        return None
    return libc


def tune_allocator() -> bool:
    """Serve large blocks from the heap and never trim it. True when the setting took effect.

    Set ``LIVEPORTRAIT_ALLOCATOR=default`` to leave the C library as it is.
    """
    if os.environ.get(ENV_SWITCH, "").lower() == "default":
        return False
    libc = _glibc()
    if libc is None:
        return False
    # mallopt returns 1 on success; the trim threshold is an int: the largest one means "never"
    ok = libc.mallopt(_M_MMAP_MAX, 0) == 1
    ok = libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(2**31 - 1)) == 1 and ok
    return ok
