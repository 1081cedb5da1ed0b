"""68-point face landmarks behind one small interface, with two backends.

- ``dlib``: dlib's HOG frontal face detector (1 upsample) + the 68-point shape predictor shipped in
  the ``face_recognition_models`` PyPI package. Runs offline; the parity kit's landmarks were made
  exactly this way (dlib 20.0.1, 1 upsample).
- ``face_alignment``: the face-alignment package (S3FD detector + 2D FAN), with its two weight files
  read from the model store directory. They are never downloaded inside a job: when the files are
  missing the backend is unavailable.
- ``auto``: face_alignment when its weights are present, else dlib.

When several faces are found the largest box wins; boxes within 80 % of the largest area count as
equally large and the detector's confidence decides among them. The count is reported so the stage
output can show it. ``face_index`` picks one explicitly instead: faces are numbered from 0 left to right
by their box's left edge (ties: top to bottom), the order ``sadtalker preview-crop`` draws.
"""

from __future__ import annotations

import importlib.util
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..errors import InvalidImage, InvalidParams, NoFaceDetected, WeightsMissing
from .image import SOURCE_SCAN_FRAMES

# face-alignment's own release file names (its download URLs end with these).
FA_DETECTOR_FILE = "s3fd-619a316812.pth"
FA_LANDMARK_FILE = "2DFAN4-11f355bf06.pth.tar"
DLIB_PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
BACKENDS = ("auto", "dlib", "face_alignment")
LARGEST_TIE = 0.8  # faces with >= 80 % of the largest area count as equally large
DETECT_MAX_SIDE = 1280  # dlib searches larger photos on a reduced copy (same landmarks, far less time)


@dataclass(frozen=True)
class FaceLandmarks:
    """The chosen face: 68 (x, y) pixel landmarks, its detector box and how many faces were seen."""

    lm68: np.ndarray  # (68, 2) float32
    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    num_faces: int
    index: int = 0  # its number in the left-to-right order of all faces found
    score: float = 0.0  # the detector's confidence


class LandmarkBackend(ABC):
    name: str = ""

    @abstractmethod
    def _detect_all(self, image: np.ndarray) -> list[tuple[tuple[float, float, float, float], float, np.ndarray]]:
        """Every face found: (box, score, lm68) with lm68 (68, 2) float32."""

    def find_all(self, image: np.ndarray) -> list[FaceLandmarks]:
        """Every face of an RGB uint8 image, numbered left to right (ties top to bottom)."""
        faces = sorted(self._detect_all(np.ascontiguousarray(image)), key=lambda f: (f[0][0], f[0][1]))
        return [FaceLandmarks(np.asarray(lm, dtype=np.float32), tuple(float(v) for v in box), len(faces), i,
                              float(score)) for i, (box, score, lm) in enumerate(faces)]

    def find(self, image: np.ndarray, index: int | None = None) -> FaceLandmarks | None:
        """The face numbered ``index``, or by default the largest face; None when there is no face
        (or fewer than ``index + 1``)."""
        faces = self.find_all(image)
        if index is not None:
            return faces[index] if index < len(faces) else None
        return largest_face(faces)

    def detect(self, image: np.ndarray, what: str = "the source image") -> FaceLandmarks:
        """Like ``find`` but a missing face is the user's NoFaceDetected error."""
        found = self.find(image)
        if found is None:
            raise NoFaceDetected(
                f"no face was found in {what}; use a photo with one clearly visible, roughly frontal face"
            )
        return found


def largest_face(faces: list[FaceLandmarks]) -> FaceLandmarks | None:
    """The default choice among several faces (None for none)."""
    if not faces:
        return None

    def area(face: FaceLandmarks) -> float:
        x1, y1, x2, y2 = face.box
        return (x2 - x1) * (y2 - y1)

    # Boxes of nearly the same size (detector boxes jitter by a few pixels) are a tie, settled by the
    # detector's confidence: a face-like pattern must not win over a real face by one pixel. max() keeps
    # the first of equal scores, as before the faces were ordered.
    largest = max(area(f) for f in faces)
    return max((f for f in faces if area(f) >= LARGEST_TIE * largest), key=lambda f: f.score)


def pick_face(frames: Iterable[np.ndarray], backend: LandmarkBackend, face_index: int | None,
              what: str = "the source image") -> tuple[np.ndarray, list[FaceLandmarks], FaceLandmarks, int]:
    """(frame, all its faces, the chosen face, frame number) of the first frame that shows a face; the
    chosen face is number ``face_index`` or, by default, the largest. Preprocess and preview-crop share it."""
    seen = 0
    for number, frame in enumerate(frames):
        seen += 1
        faces = backend.find_all(frame)
        if not faces:
            continue
        if face_index is None:
            return frame, faces, largest_face(faces), number
        if face_index >= len(faces):
            where = f"frame {number} of {what}" if number else what
            raise InvalidParams(
                f"parameter 'face_index' = {face_index}, but {where} shows {len(faces)} face(s), numbered 0.."
                f"{len(faces) - 1} from left to right (`sadtalker preview-crop` draws them)"
            )
        return frame, faces, faces[face_index], number
    if seen == 0:
        raise InvalidImage(f"{what} contains no frame")
    if seen == 1:
        raise NoFaceDetected(f"no face was found in {what}; use a photo with one clearly visible, roughly frontal face")
    raise NoFaceDetected(f"no face was found in the first {seen} frames of {what} (at most {SOURCE_SCAN_FRAMES} "
                         "are searched); use a clip that shows a clearly visible face early")


def _face_recognition_models_dir() -> Path:
    # Located without importing the package: its __init__ needs pkg_resources, absent on new setuptools.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsMissing("the face_recognition_models package (dlib's landmark model) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class DlibLandmarks(LandmarkBackend):
    name = "dlib"

    def __init__(self, upsample: int = 1):
        import dlib

        path = _face_recognition_models_dir() / DLIB_PREDICTOR_FILE
        if not path.exists():
            raise WeightsMissing(f"dlib's landmark model {path} is missing; reinstall face_recognition_models")
        self.upsample = upsample
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(path))
        # dlib objects are not documented as thread-safe; a warm container may serve threads.
        self._lock = threading.Lock()

    def _detect_all(self, image):
        import dlib

        # The HOG detector's cost grows with the pixel count (x4 with the upsample): large photos are
        # searched on a reduced copy, and the landmarks are then fitted on the full-resolution image.
        h, w = image.shape[:2]
        factor = max(h, w) / DETECT_MAX_SIDE
        small = image
        if factor > 1:
            small = cv2.resize(image, (round(w / factor), round(h / factor)), interpolation=cv2.INTER_AREA)
        with self._lock:
            rects, scores, _ = self._detector.run(small, self.upsample, 0.0)
            faces = []
            for rect, score in zip(rects, scores, strict=True):
                if factor > 1:
                    rect = dlib.rectangle(round(rect.left() * factor), round(rect.top() * factor),
                                          round(rect.right() * factor), round(rect.bottom() * factor))
                shape = self._predictor(image, rect)
                lm = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
                box = (rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1)
                faces.append((box, float(score), lm))
        return faces


def face_alignment_files(models_root: Path) -> tuple[Path, Path]:
    root = Path(models_root)
    return root / FA_DETECTOR_FILE, root / FA_LANDMARK_FILE


def face_alignment_available(models_root: Path) -> bool:
    return all(p.is_file() for p in face_alignment_files(models_root))


class FaceAlignmentLandmarks(LandmarkBackend):
    """face-alignment's S3FD + 2D-FAN with weights from the model store (no download, no torch.compile)."""

    name = "face_alignment"

    def __init__(self, models_root: Path):
        detector_path, fan_path = face_alignment_files(models_root)
        missing = [p.name for p in (detector_path, fan_path) if not p.is_file()]
        if missing:
            raise WeightsMissing(
                f"face_alignment landmarks need {', '.join(missing)} in {models_root}; "
                "copy face-alignment's release files there or choose landmarks='dlib'"
            )
        import torch
        from face_alignment import FaceAlignment, LandmarksType
        from face_alignment.models import FAN

        class _StoreFaceAlignment(FaceAlignment):
            def _load_native(self, network_name, network_size, device, dtype):
                net = FAN(network_size)
                net.load_state_dict(torch.load(fan_path, map_location="cpu", weights_only=True), strict=True)
                return net.to(device, dtype=dtype).eval()

        self._fa = _StoreFaceAlignment(
            LandmarksType.TWO_D,
            device="cpu",
            flip_input=False,
            face_detector="sfd",
            face_detector_kwargs={"path_to_detector": str(detector_path)},
            compile=False,
        )
        self._lock = threading.Lock()

    def _detect_all(self, image):
        import warnings

        with self._lock, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "No faces were detected" is our NoFaceDetected, not a warning
            lms, _, boxes = self._fa.get_landmarks_from_image(image, return_bboxes=True)
        if not lms:
            return []
        faces = []
        for lm, box in zip(lms, boxes, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box[:4])
            score = float(box[4]) if len(box) > 4 else 1.0
            faces.append(((x1, y1, x2, y2), score, np.asarray(lm, dtype=np.float32)[:, :2]))
        return faces


_BACKEND_LOCK = threading.Lock()


@lru_cache(maxsize=4)
def _backend_cached(kind: str, models_root: str) -> LandmarkBackend:
    if kind == "dlib":
        return DlibLandmarks()
    return FaceAlignmentLandmarks(Path(models_root))


def resolve_backend_name(name: str, models_root: Path | None) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown landmark backend {name!r}; known: {', '.join(BACKENDS)}")
    if name == "auto":
        return "face_alignment" if models_root is not None and face_alignment_available(models_root) else "dlib"
    return name


def get_landmark_backend(name: str = "auto", models_root: Path | None = None) -> LandmarkBackend:
    """The backend for ``name`` (auto | dlib | face_alignment), created once per process."""
    kind = resolve_backend_name(name, models_root)
    root = str(Path(models_root).resolve()) if (kind == "face_alignment" and models_root is not None) else ""
    if kind == "face_alignment" and models_root is None:
        raise WeightsMissing("face_alignment landmarks need a model store directory with their weight files")
    with _BACKEND_LOCK:
        return _backend_cached(kind, root)
