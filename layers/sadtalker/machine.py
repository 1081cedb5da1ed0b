"""What this machine offers the job (one answer for the render workers, the enhancer pool and finalize)."""

from __future__ import annotations

import os


def available_cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
