"""Preprocess stage: the source photo -> face crop, landmarks and first 3DMM coefficients.

The source may be a video or an animated GIF: its first frame that shows a face (within
``face.image.SOURCE_SCAN_FRAMES``) is the picture animated and pasted back into (``original.png``). With
``params.face_index`` the face of that number (left to right from 0) is used instead of the largest; a
number the picture has no face for is InvalidParams naming how many faces there are.

Everything is computed and validated before the first write, so a bad input (undecodable image,
no face, bad reference video) leaves nothing behind. Writes, in this order: the reference
coefficient files (when asked), ``original.png``, ``source.png`` and last ``face.npz`` (so the
presence of face.npz means the stage finished).
"""

from __future__ import annotations

import time

import numpy as np

from ..audio.features import FPS
from ..errors import InvalidInput
from ..face.crop import crop_face, crop_geometry, map_landmarks_to_crop
from ..face.image import encode_png, source_frames
from ..face.landmarks import get_landmark_backend, pick_face
from ..face.reconstruct import crop_landmarks, face_coefficients
from ..face.reference_video import reference_coefficients
from ..jobs import JobKeys
from ..nets.face_recon import load_face_recon
from ..params import JobParams
from ..storage import Storage
from ..weights import ModelStore
from . import MODEL_LOAD_S


def _read(storage: Storage, key: str, what: str) -> bytes:
    try:
        return storage.get(key)
    except KeyError:
        raise InvalidInput(f"{what} {key!r} does not exist in storage") from None


def preprocess(storage: Storage, job: JobKeys, image_key: str, params: JobParams, models: ModelStore) -> dict:
    """Decode, detect, crop, regress; write original/source PNGs, face.npz and reference coefficients."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - since, 4)
        return now

    data = _read(storage, image_key, "the source image")
    backend = get_landmark_backend(params.landmarks, models.root)
    what = f"the source image {image_key.rsplit('/', 1)[-1]!r}"
    frames = source_frames(data, image_key)
    try:
        image, _, face, frame_number = pick_face(frames, backend, params.face_index, what)
    finally:
        frames.close()  # stops a video's ffmpeg and removes its temporary file now, not at garbage collection
    del data, frames
    t = lap("decode_detect_s", t0)

    geom = crop_geometry(face.lm68, (image.shape[1], image.shape[0]), params.preprocess)
    source = crop_face(image, geom, params.size)
    lm_crop, on_crop = crop_landmarks(backend, source, map_landmarks_to_crop(face.lm68, geom, params.size))
    t = lap("crop_s", t)

    net = load_face_recon(models, params.size)
    t = lap(MODEL_LOAD_S, t)
    coeffs = face_coefficients(net, source, lm_crop, on_crop)
    t = lap("coefficients_s", t)

    refs = {}
    by_key = {}  # the same video may serve as both references: compute it once
    for kind, key in (("pose", params.ref_pose), ("eyeblink", params.ref_eyeblink)):
        if key:
            if key not in by_key:
                by_key[key] = reference_coefficients(
                    _read(storage, key, f"the ref_{kind} video"), key, params.preprocess, backend, net,
                    max_frames=int(params.max_audio_seconds * FPS) + 1,
                )
            refs[kind] = by_key[key]
            t = lap(f"ref_{kind}_s", t)

    face_npz = {
        "coeff_3dmm": coeffs.coeff_3dmm.astype(np.float32),
        "full_3dmm": coeffs.full_3dmm.astype(np.float32),
        **geom.as_arrays(),
        "lm68": face.lm68.astype(np.float32),
        "trans_params": coeffs.trans_params.astype(np.float64),
        "num_faces": np.int64(face.num_faces),
    }
    original_png = encode_png(image)
    source_png = encode_png(source)
    t = lap("encode_s", t)

    # --- all inputs valid: write (face.npz last) ------------------------------------------------------
    for kind, ref in refs.items():
        storage.put_npz(job.ref_coeffs(kind), ref.as_arrays())
    storage.put(job.original_image, original_png)
    storage.put(job.source_image, source_png)
    storage.put_npz(job.face, face_npz)
    lap("write_s", t)
    timings["total_s"] = round(time.perf_counter() - t0, 4)

    return {
        "face_key": job.face,
        "source_image_key": job.source_image,
        "original_image_key": job.original_image,
        "ref_coeffs_keys": {kind: job.ref_coeffs(kind) for kind in refs},
        "ref_frames": {kind: int(len(ref.coeffs)) for kind, ref in refs.items()},
        "ref_filled_frames": {kind: ref.filled_frames for kind, ref in refs.items()},
        "num_faces": int(face.num_faces),
        "face_index": int(face.index),
        "source_frame": frame_number,
        "landmarks": backend.name,
        "landmarks_on_crop": bool(on_crop),
        "image_size": [int(image.shape[1]), int(image.shape[0])],
        "crop": geom.to_dict(),
        "timings": timings,
    }
