"""Parity: crop geometry and crop images of the original Preprocesser, at every size the kit has
(golden_crop.npz: 256, golden_crop_512.npz: ``--size 512``).

Inputs (image, injected dlib landmarks) and the render size come from the golden: ``size`` where the
file stores it, else the size that names its final crops (``crop_<size>``, ``extcrop_<size>``). Boxes,
sizes and images exact, float64 quads 1e-9 relative (kit README). "full"/"extfull" must crop exactly like
"crop"/"extcrop".
"""

from __future__ import annotations

import numpy as np
import pytest

from reference_data import load_golden
from sadtalker.face.crop import crop_face, crop_geometry, cut_face

GOLDENS = ["golden_crop.npz", "golden_crop_512.npz"]
# (our mode, the golden's key prefix)
MODES = [("crop", "crop"), ("full", "crop"), ("extcrop", "extcrop"), ("extfull", "extcrop")]
# every output of the file except the size-named final crop, which is added per file from ``size``
GEOMETRY = {
    "crop": ["rsize", "box", "quad_f64", "cropped", "info_size", "info_box", "info_quad_f64"],
    "extcrop": ["box", "quad_f64", "cropped", "info_size"],
}
CASES = [(mode, prefix, field) for mode, prefix in MODES for field in GEOMETRY[prefix] + ["resized"]]


@pytest.fixture(scope="module", params=GOLDENS)
def golden(request) -> dict[str, np.ndarray]:
    return load_golden("sadtalker", request.param)


def _size(golden: dict[str, np.ndarray]) -> int:
    if "size" in golden:
        return int(golden["size"])
    (key,) = [k for k in golden if k.startswith("crop_") and k[5:].isdigit()]
    return int(key[5:])


def _key(golden: dict[str, np.ndarray], prefix: str, field: str) -> str:
    return f"{prefix}_{_size(golden)}" if field == "resized" else f"{prefix}_{field}"


def _ours(golden: dict[str, np.ndarray], mode: str, field: str) -> np.ndarray:
    image, lm = golden["image"], golden["lm68"]
    geom = crop_geometry(lm, (image.shape[1], image.shape[0]), mode)
    if field == "rsize":
        return np.asarray(geom.rsize)
    if field in ("box", "info_box"):
        return np.asarray(geom.box)
    if field in ("quad_f64", "info_quad_f64"):
        return np.asarray(geom.quad, dtype=np.float64)
    if field == "info_size":
        return np.asarray(geom.size)
    if field == "cropped":
        return cut_face(image, geom)
    if field == "resized":
        return crop_face(image, geom, _size(golden))
    raise AssertionError(f"no rule for golden output {field}")


def test_file_holds_every_checked_output(golden) -> None:
    """Nothing stored goes unchecked: the file's outputs are exactly the ones this module compares."""
    inputs = {"size", "image", "lm68"}
    checked = {_key(golden, prefix, field) for _, prefix, field in CASES}
    assert set(golden) - inputs == checked


@pytest.mark.parametrize(("mode", "prefix", "field"), CASES, ids=[f"{m}-{p}_{f}" for m, p, f in CASES])
def test_crop_output(golden, mode: str, prefix: str, field: str) -> None:
    key = _key(golden, prefix, field)
    expected = golden[key]
    ours = _ours(golden, mode, field)
    assert ours.shape == expected.shape, f"{key}: shape {ours.shape} != {expected.shape}"
    if key.endswith("_f64"):
        np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=0, err_msg=key)
    else:
        diff = np.abs(ours.astype(np.int64) - expected.astype(np.int64))
        assert diff.max() == 0, f"{key}: {int((diff > 0).sum())} values differ, max {int(diff.max())}"


def test_resize_mode_has_no_crop(golden) -> None:
    """resize (not in the golden): the whole photo, crop_info = ((W, H), None, None) -> -1 in the npz."""
    image = golden["image"]
    geom = crop_geometry(golden["lm68"], (image.shape[1], image.shape[0]), "resize")
    arrays = geom.as_arrays()
    assert arrays["crop_info_size"].tolist() == [image.shape[1], image.shape[0]]
    assert arrays["crop_info_box"].tolist() == [-1] * 4 and arrays["crop_info_quad_f64"].tolist() == [-1.0] * 4
    assert cut_face(image, geom) is image
