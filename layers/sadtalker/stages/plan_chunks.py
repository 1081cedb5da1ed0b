"""PlanChunks: split the clip's frame range into render chunks (the Map's items).

A chunk is ``{"start": s, "end": e}`` (half-open frame indices into the job's one coefficient file).
Chunks are ``params.chunk_frames`` long except the last. The number of chunks is capped at
``MAX_CHUNKS``: each Map iteration costs about a dozen execution-history events and a standard
execution allows 25,000, so a very long clip gets longer chunks instead of more of them.
"""

from __future__ import annotations

import math

from ..errors import InvalidChunk
from ..params import JobParams

MAX_CHUNKS = 1000


def plan_chunks(num_frames: int, params: JobParams) -> list[dict[str, int]]:
    if not isinstance(num_frames, int) or isinstance(num_frames, bool) or num_frames < 1:
        raise InvalidChunk(f"the clip has {num_frames!r} frames; at least one frame is needed to plan render chunks")
    size = max(params.chunk_frames, math.ceil(num_frames / MAX_CHUNKS))
    return [{"start": s, "end": min(s + size, num_frames)} for s in range(0, num_frames, size)]


def check_plan(chunks: list[dict[str, int]], num_frames: int) -> None:
    """The chunks must tile [0, num_frames) in order without gaps or overlaps (finalize relies on it)."""
    pos = 0
    for c in chunks:
        if c["start"] != pos or c["end"] <= c["start"]:
            raise InvalidChunk(f"render chunk {c['start']}-{c['end']} does not continue the clip at frame {pos}")
        pos = c["end"]
    if pos != num_frames:
        raise InvalidChunk(f"the render chunks cover {pos} frames but the clip has {num_frames}")
