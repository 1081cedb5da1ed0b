"""Crop geometry beyond the golden: the shrink branch for very large faces, landmark mapping, sizes."""

from __future__ import annotations

import numpy as np
import pytest

from reference_data import reference_dir
from sadtalker.face.crop import crop_face, crop_geometry, cut_face, map_landmarks_to_crop


@pytest.fixture(scope="module")
def lm68() -> np.ndarray:
    return np.load(reference_dir("sadtalker") / "astronaut_lm68.npy")


def test_shrink_branch_for_faces_over_2048_px(lm68) -> None:
    """qsize >= 2048 px: the original works on the photo reduced by floor(qsize / 1024)."""
    k = 12
    small = crop_geometry(lm68, (512, 512), "crop")
    big = crop_geometry(lm68 * k, (512 * k, 512 * k), "crop")
    shrink = 2  # qsize ~ 182 * 12 = 2184 px
    assert big.rsize == (512 * k // shrink, 512 * k // shrink)
    # the same face at 6x the golden's scale: every number about 6x the golden's
    np.testing.assert_allclose(np.array(big.box, float), np.array(small.box, float) * k / shrink, atol=8)
    np.testing.assert_allclose(big.size, np.array(small.size) * k / shrink, atol=3)
    image = np.zeros((512 * k, 512 * k, 3), np.uint8)
    region = cut_face(image, big)
    assert region.shape[:2] == (big.size[1], big.size[0])
    assert crop_face(image, big, 256).shape == (256, 256, 3)


@pytest.mark.parametrize("mode", ["crop", "extcrop", "resize"])
def test_mapped_landmarks_follow_the_crop(lm68, mode) -> None:
    """Photo landmarks mapped into the crop land where the same pixels went (fallback for re-detection)."""
    h = w = 512
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.dstack([xx // 2, yy // 2, np.zeros_like(xx)]).astype(np.uint8)  # a pixel's colour = its position
    geom = crop_geometry(lm68, (w, h), mode)
    size = 256
    crop = crop_face(image, geom, size)
    mapped = map_landmarks_to_crop(lm68, geom, size)
    for (x, y), (u, v) in zip(lm68[::7], mapped[::7], strict=True):
        iu, iv = int(round(u)), int(round(v))
        assert 0 <= iu < size and 0 <= iv < size
        got = crop[iv, iu].astype(int)
        want = image[int(round(y)), int(round(x))].astype(int)
        # one colour level = 2 photo pixels; a crop pixel spans up to 2 photo pixels here
        assert abs(got[0] - want[0]) <= 2 and abs(got[1] - want[1]) <= 2, (mode, x, y, got, want)


def test_unknown_mode_rejected(lm68) -> None:
    with pytest.raises(ValueError, match="unknown crop mode"):
        crop_geometry(lm68, (512, 512), "zoom")
