"""From a size x size face crop to 3DMM coefficients.

Landmarks are detected again on the crop, as the original does. When the detector misses the face
on the crop (rare: it was found on the photo), the photo's landmarks mapped into the crop stand in;
the original fell back to a template, which aligns worse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..nets.face_recon import COEFF_SLICES, FaceReconNet
from .align import align_image, flip_y, network_input
from .landmarks import LandmarkBackend

BATCH = 8  # aligned crops per forward pass (reference videos); ~100 MB of activations at 224 px


@dataclass(frozen=True)
class FaceCoefficients:
    full_3dmm: np.ndarray  # (1, 257) float32
    coeff_3dmm: np.ndarray  # (1, 73) float32: exp 64 | angle 3 | trans 3 | s, tx, ty
    trans_params: np.ndarray  # (5,) float64: W, H, s, tx, ty
    lm68_crop: np.ndarray  # (68, 2) float32, y down, on the crop
    detected_on_crop: bool


def crop_landmarks(backend: LandmarkBackend, crop: np.ndarray, fallback: np.ndarray | None) -> tuple[np.ndarray, bool]:
    """68 landmarks on the crop (y down): detected, else ``fallback`` (None -> None returned as lm)."""
    found = backend.find(crop)
    if found is not None:
        return found.lm68, True
    return (None if fallback is None else np.asarray(fallback, dtype=np.float32)), False


def coeff_3dmm_from(full: np.ndarray, trans_params: np.ndarray) -> np.ndarray:
    """[exp, angle, trans, s, tx, ty] (N, 73) float32 from (N, 257) and (N, 5) transform parameters."""
    full = np.asarray(full, dtype=np.float32)
    tp = np.asarray(trans_params, dtype=np.float64).reshape(-1, 5)
    return np.concatenate(
        [full[:, COEFF_SLICES["exp"]], full[:, COEFF_SLICES["angle"]], full[:, COEFF_SLICES["trans"]],
         tp[:, 2:].astype(np.float32)],
        axis=1,
    )


def regress(net: FaceReconNet, inputs: list[np.ndarray]) -> np.ndarray:
    """(N, 257) float32 for a list of (1, 3, 224, 224) network inputs, in batches."""
    outs = []
    with torch.inference_mode():
        for i in range(0, len(inputs), BATCH):
            batch = torch.from_numpy(np.concatenate(inputs[i:i + BATCH], axis=0))
            outs.append(net(batch).numpy())
    return np.concatenate(outs, axis=0) if outs else np.zeros((0, 257), np.float32)


def face_coefficients(net: FaceReconNet, crop: np.ndarray, lm68_crop: np.ndarray, detected: bool = True) -> FaceCoefficients:
    """Align the crop with its landmarks (y down) and regress the coefficients."""
    aligned = align_image(crop, flip_y(lm68_crop, crop.shape[0]))
    full = regress(net, [network_input(aligned.aligned)])
    return FaceCoefficients(
        full_3dmm=full,
        coeff_3dmm=coeff_3dmm_from(full, aligned.trans_params[None]),
        trans_params=aligned.trans_params,
        lm68_crop=np.asarray(lm68_crop, dtype=np.float32),
        detected_on_crop=detected,
    )
