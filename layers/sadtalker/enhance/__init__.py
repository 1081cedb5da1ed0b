"""Face enhancement as SadTalker's ``--enhancer gfpgan`` does it: GFPGAN v1.4 face restoration pasted
into a 2x frame, whose background is Lanczos-upscaled or Real-ESRGAN x2 (``--background_enhancer``)."""

from .face_restore import FoundFace, align_face, paste_faces, restore_frame, tensor_to_face
from .hint import face_hint_for_frames
from .loaders import load_gfpgan, load_rrdbnet
from .stream import EnhanceStats, FrameEnhancer, background_tile, enhance_frames, frame_seed
from .upsampler import TiledUpsampler

__all__ = [
    "EnhanceStats",
    "FoundFace",
    "FrameEnhancer",
    "TiledUpsampler",
    "align_face",
    "background_tile",
    "enhance_frames",
    "face_hint_for_frames",
    "frame_seed",
    "load_gfpgan",
    "load_rrdbnet",
    "paste_faces",
    "restore_frame",
    "tensor_to_face",
]
