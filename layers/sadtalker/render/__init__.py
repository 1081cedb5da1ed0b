"""The face renderer: motion preparation, chunked rendering from per-job source state, reduced test weights."""

from .memory import enable_huge_pages_env

# before torch allocates anything (it reads the switch once): large tensors on transparent huge pages
enable_huge_pages_env()

from .animate import FaceRenderer, RenderConfig, load_renderer, to_ubyte  # noqa: E402 - after the switch
from .semantics import MotionInputs, prepare_motion  # noqa: E402

__all__ = ["FaceRenderer", "MotionInputs", "RenderConfig", "load_renderer", "prepare_motion", "to_ubyte"]
