"""Paste-back: aspect resize for crop/extcrop/resize, seamlessClone box choice for full/extfull."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sadtalker.params import JobParams
from sadtalker.paste_back import PasteBack, compose_frame, face_box

FACE = {
    "crop_info_size": np.array([120, 150], np.int64),
    "crop_info_box": np.array([40, 30, 220, 230], np.int64),
    "crop_info_quad_f64": np.array([10.7, 12.2, 130.9, 162.5]),
}


def _photo():
    rng = np.random.default_rng(3)
    return cv2.GaussianBlur(rng.integers(0, 255, (300, 280, 3), dtype=np.uint8), (9, 9), 3)


def _frame(size=256):
    f = np.zeros((size, size, 3), np.uint8)
    f[..., 0] = np.linspace(0, 255, size, dtype=np.uint8)[None]
    f[..., 2] = 200
    return f


@pytest.mark.parametrize("mode", ["crop", "extcrop", "resize"])
def test_crop_modes_resize_to_the_crop_aspect(mode):
    params = JobParams.load(preprocess=mode)
    out = compose_frame(_frame(), FACE, _photo(), params)
    assert out.shape == (int(256 * 150 / 120), 256, 3)
    np.testing.assert_array_equal(out, cv2.resize(_frame(), (256, 320)))


def test_face_box_uses_quad_or_crop_box():
    assert face_box(FACE, ext_mode=False) == (40 + 10, 30 + 12, 40 + 130, 30 + 162)
    assert face_box(FACE, ext_mode=True) == (40, 30, 220, 230)


@pytest.mark.parametrize("mode", ["full", "extfull"])
def test_full_modes_clone_into_the_photo(mode):
    params = JobParams.load(preprocess=mode)
    photo = _photo()
    paste = PasteBack(FACE, photo, params)
    out = paste(_frame())
    assert out.shape == photo.shape and out.dtype == np.uint8
    ox1, oy1, ox2, oy2 = face_box(FACE, params.ext_mode)
    outside = np.ones(photo.shape[:2], bool)
    outside[oy1:oy2, ox1:ox2] = False
    np.testing.assert_array_equal(out[outside], photo[outside])  # only the box changes
    assert np.abs(out[oy1:oy2, ox1:ox2].astype(int) - photo[oy1:oy2, ox1:ox2]).mean() > 5
    # same as the original's recipe, done by hand on BGR arrays
    patch = cv2.resize(cv2.cvtColor(cv2.resize(_frame(), (256, 320)), cv2.COLOR_RGB2BGR), (ox2 - ox1, oy2 - oy1))
    want = cv2.seamlessClone(
        patch, cv2.cvtColor(photo, cv2.COLOR_RGB2BGR), np.full(patch.shape, 255, np.uint8),
        ((ox1 + ox2) // 2, (oy1 + oy2) // 2), cv2.NORMAL_CLONE,
    )  # fmt: skip
    np.testing.assert_array_equal(out, cv2.cvtColor(want, cv2.COLOR_BGR2RGB))
    np.testing.assert_array_equal(compose_frame(_frame(), FACE, photo, params), out)
