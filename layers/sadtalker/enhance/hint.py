"""Where the face is in the frames handed to the enhancer, from what preprocessing measured.

The frames are our own renders of the photo's face, composed by paste-back: in full/extfull modes the
photo itself with the face cloned back in place, in crop/extcrop/resize modes the rendered crop resized to
the crop's aspect ratio. The photo's 68 landmarks (job.face ``lm68``) mapped into those frames are a hint
that ``enhance_frames`` refines per frame (see face_restore.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def face_hint_for_frames(face: Mapping[str, np.ndarray], full_mode: bool, ext_mode: bool, frame_hw: tuple[int, int]) -> np.ndarray:
    """(68, 2) float64 landmarks in the coordinates of composed frames of height/width ``frame_hw``.

    Assumes the photo was not shrunk by preprocessing (only faces of 2048 px and more are); an offset of a
    few pixels is corrected by the per-frame refinement.
    """
    lm = np.asarray(face["lm68"], dtype=np.float64).reshape(68, 2)
    fh, fw = int(frame_hw[0]), int(frame_hw[1])
    if full_mode:
        return lm.copy()  # the composed frame is the photo
    box = np.asarray(face["crop_info_box"], dtype=np.int64).reshape(4)
    if np.any(box < 0):  # resize mode: the render is the whole photo
        w, h = (int(v) for v in np.asarray(face["crop_info_size"]).reshape(2))
        x0, y0 = 0, 0
    else:
        clx, cly, crx, cry = (int(v) for v in box)
        x0, y0, w, h = clx, cly, crx - clx, cry - cly
        if not ext_mode:
            lx, ly, rx, ry = (int(v) for v in np.asarray(face["crop_info_quad_f64"]).reshape(4))
            x0, y0 = clx + lx, cly + ly
            w, h = min(rx, w) - lx, min(ry, h) - ly
    return (lm - [x0, y0]) * [fw / max(w, 1), fh / max(h, 1)]
