"""Parity: crop geometry and crop images of the original Preprocesser (golden_crop.npz).

Inputs (image, injected dlib landmarks) come from the golden file; every output is compared with the
kit's tolerances: exact for boxes, sizes and images, 1e-9 relative for the float64 quad.
"full"/"extfull" must crop exactly like "crop"/"extcrop", so they are checked against the same outputs.
"""

from __future__ import annotations

import numpy as np
import pytest

from reference_data import load_golden
from sadtalker.face.crop import crop_face, crop_geometry, cut_face

GOLDEN = "golden_crop.npz"
# (our mode, the golden's key prefix)
MODES = [("crop", "crop"), ("full", "crop"), ("extcrop", "extcrop"), ("extfull", "extcrop")]
OUTPUTS = {
    "crop": ["crop_rsize", "crop_box", "crop_quad_f64", "crop_cropped", "crop_256", "crop_info_size",
             "crop_info_box", "crop_info_quad_f64"],
    "extcrop": ["extcrop_box", "extcrop_quad_f64", "extcrop_cropped", "extcrop_256", "extcrop_info_size"],
}
CASES = [(mode, key) for mode, prefix in MODES for key in OUTPUTS[prefix]]


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    return load_golden("sadtalker", GOLDEN)


def _ours(golden: dict[str, np.ndarray], mode: str, key: str) -> np.ndarray:
    image, lm = golden["image"], golden["lm68"]
    geom = crop_geometry(lm, (image.shape[1], image.shape[0]), mode)
    field = key.split("_", 1)[1]
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
    if field.isdigit():  # crop_256 / extcrop_256: the size is part of the key
        return crop_face(image, geom, int(field))
    raise AssertionError(f"no rule for golden output {key}")


@pytest.mark.parametrize(("mode", "key"), CASES, ids=[f"{m}-{k}" for m, k in CASES])
def test_crop_output(golden, mode: str, key: str) -> None:
    expected = golden[key]
    ours = _ours(golden, mode, key)
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
