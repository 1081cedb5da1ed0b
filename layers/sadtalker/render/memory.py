"""Process memory settings for the render workers: fewer page faults per frame.

A 256 px frame allocates and frees a few GB of activations. With glibc's defaults every block above the
dynamic mmap threshold is a fresh ``mmap`` (zeroed pages, one fault per 4 KB page) and freed heap memory is
trimmed back to the OS, so each frame pays ~1e6 page faults (~2 s of system time on the benchmark machine).
``tune_allocator`` keeps blocks up to 32 MB in the heap and stops trimming; ``THP_MEM_ALLOC_ENABLE=1``
(read by torch once, at its first allocation: set it before ``import torch``) puts large tensors on
transparent huge pages. docs/performance.md has the measured effect.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from functools import lru_cache

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc malloc.h
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's upper limit for this setting on 64-bit
TRIM_THRESHOLD = 2**31 - 1  # an int: never give freed heap memory back during a job
TOP_PAD = 1024 * 1024 * 1024


def enable_huge_pages_env() -> None:
    """Ask torch for transparent-huge-page aligned large allocations (effective only before torch loads)."""
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


@lru_cache(maxsize=1)
def tune_allocator() -> bool:
    """glibc only (Lambda, Fargate, Linux); a no-op elsewhere. Returns whether the settings were applied."""
    name = ctypes.util.find_library("c")
    if not name or "libc" not in name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(k, v) == 1 for k, v in (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD)))
