"""Landmark backends: dlib offline on the kit's astronaut, backend selection, face_alignment weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reference_data import reference_dir
from sadtalker.errors import NoFaceDetected, WeightsMissing
from sadtalker.face.landmarks import (
    FA_DETECTOR_FILE,
    FA_LANDMARK_FILE,
    FaceAlignmentLandmarks,
    get_landmark_backend,
    resolve_backend_name,
)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.asarray(Image.open(reference_dir("sadtalker") / "astronaut.png").convert("RGB"))


def test_dlib_finds_the_astronaut_landmarks(astronaut) -> None:
    expected = np.load(reference_dir("sadtalker") / "astronaut_lm68.npy")
    face = get_landmark_backend("dlib").detect(astronaut)
    assert face.lm68.shape == (68, 2) and face.lm68.dtype == np.float32
    err = np.abs(face.lm68 - expected).max()
    assert err <= 3.0, f"landmarks off by {err:.2f} px"
    assert face.num_faces >= 1


def test_largest_of_several_faces_is_chosen(astronaut) -> None:
    small = np.asarray(Image.fromarray(astronaut).resize((256, 256), Image.BILINEAR))
    canvas = np.full((600, 900, 3), 128, np.uint8)
    canvas[:512, :512] = astronaut
    canvas[300:556, 620:876] = small
    face = get_landmark_backend("dlib").detect(canvas)
    assert face.num_faces >= 2
    x1, y1, x2, y2 = face.box
    assert x2 <= 512 and (x2 - x1) > 60  # the big face, not the half-size copy


def test_no_face_raises() -> None:
    flat = np.tile(np.linspace(0, 255, 320, dtype=np.uint8)[None, :, None], (240, 1, 3))
    backend = get_landmark_backend("dlib")
    assert backend.find(flat) is None
    with pytest.raises(NoFaceDetected):
        backend.detect(flat)


def test_backend_is_memoized() -> None:
    assert get_landmark_backend("dlib") is get_landmark_backend("dlib")


def test_auto_falls_back_to_dlib_without_fa_weights(tmp_path: Path) -> None:
    assert resolve_backend_name("auto", tmp_path) == "dlib"
    assert resolve_backend_name("auto", None) == "dlib"
    assert get_landmark_backend("auto", tmp_path).name == "dlib"


def test_face_alignment_needs_its_weights(tmp_path: Path) -> None:
    with pytest.raises(WeightsMissing, match=FA_DETECTOR_FILE):
        get_landmark_backend("face_alignment", tmp_path)


@pytest.mark.heavy
def test_face_alignment_loads_from_the_store(tmp_path: Path, monkeypatch) -> None:
    """With both files in the store, auto picks face_alignment and loads them (never from the network)."""
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    torch.manual_seed(0)
    torch.save(s3fd().state_dict(), tmp_path / FA_DETECTOR_FILE)
    torch.save(FAN(4).state_dict(), tmp_path / FA_LANDMARK_FILE)

    def no_network(*args, **kwargs):
        raise AssertionError("face_alignment tried to download weights")

    monkeypatch.setattr("torch.hub.load_state_dict_from_url", no_network)
    monkeypatch.setattr("face_alignment.utils.load_file_from_url", no_network)
    monkeypatch.setattr("face_alignment.api.load_file_from_url", no_network)
    assert resolve_backend_name("auto", tmp_path) == "face_alignment"
    backend = FaceAlignmentLandmarks(tmp_path)
    assert backend.name == "face_alignment"
    # Random weights make S3FD's boxes meaningless, so inject two boxes to check the FAN glue:
    # 68 (x, y) points of the larger box come back, with the face count.
    boxes = [np.array([200.0, 200.0, 260.0, 260.0, 0.99]), np.array([100.0, 80.0, 300.0, 300.0, 0.9])]
    backend._fa.face_detector.detect_from_image = lambda image: boxes
    face = backend.find(np.zeros((400, 400, 3), np.uint8))
    assert face is not None and face.lm68.shape == (68, 2) and face.lm68.dtype == np.float32
    assert face.box == (100.0, 80.0, 300.0, 300.0) and face.num_faces == 2


def test_large_photo_detected_on_a_reduced_copy_and_ties_go_to_the_real_face(astronaut) -> None:
    """At 3x the astronaut's suit patch gets a box as big as the face: the confident real face wins,
    and the landmarks fitted on the full-resolution photo match the kit's within a few pixels."""
    import cv2

    expected = np.load(reference_dir("sadtalker") / "astronaut_lm68.npy")
    big = cv2.resize(astronaut, (1536, 1536), interpolation=cv2.INTER_CUBIC)
    face = get_landmark_backend("dlib").detect(big)
    assert np.abs(face.lm68 / 3 - expected).max() <= 3.0
