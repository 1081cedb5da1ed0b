"""The face renderer: motion preparation, chunked rendering from per-job source state, reduced test weights."""

from .animate import FaceRenderer, RenderConfig, load_renderer, to_ubyte
from .semantics import MotionInputs, prepare_motion

__all__ = ["FaceRenderer", "MotionInputs", "RenderConfig", "load_renderer", "prepare_motion", "to_ubyte"]
