"""The preprocess stage end to end: detection -> crop -> coefficients for every mode and size, the
npz contract of STAGES.md, reference videos, and bad inputs (named error, nothing written)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from reference_data import load_golden, reference_dir
from sadtalker.errors import InvalidImage, InvalidInput, InvalidParams, NoFaceDetected
from sadtalker.face.reference_video import _fill_missing
from sadtalker.jobs import JobKeys
from sadtalker.params import JobParams
from sadtalker.stages.preprocess import preprocess
from sadtalker.storage import LocalStorage
from sadtalker.weights import ModelStore

torch.set_num_threads(2)
JOB = JobKeys("job-face-1")
FACE_KEYS = {
    "coeff_3dmm": ((1, 73), np.float32),
    "full_3dmm": ((1, 257), np.float32),
    "crop_info_size": ((2,), np.int64),
    "crop_info_box": ((4,), np.int64),
    "crop_info_quad_f64": ((4,), np.float64),
    "lm68": ((68, 2), np.float32),
    "trans_params": ((5,), np.float64),
    "num_faces": ((), np.int64),
}


@pytest.fixture(scope="module")
def weights_face_512(tmp_path_factory) -> Path:
    """A 512 release bundle holding only the face_3drecon tensors (synthetic fill), enough for this stage."""
    from safetensors.numpy import save_file

    from sadtalker.weights import fill_module
    from sadtalker.weights.manifest import sadtalker_manifest

    layout = sadtalker_manifest()["layouts"]["safetensors_512"]
    prefix = next(e["prefix"] for e in layout["entries"] if e["module"] == "face_3drecon")
    out = tmp_path_factory.mktemp("weights512")
    save_file({prefix + k: v for k, v in fill_module("face_3drecon").items()}, str(out / layout["file"]))
    return out


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.asarray(Image.open(reference_dir("sadtalker") / "astronaut.png").convert("RGB"))


def _png(arr: np.ndarray | Image.Image, **kw) -> bytes:
    img = arr if isinstance(arr, Image.Image) else Image.fromarray(arr)
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _jpeg(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95, **kw)
    return buf.getvalue()


def _video(path: Path, frames: list[np.ndarray]) -> bytes:
    h, w = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=25, codec="libx264", quality=9, macro_block_size=16)
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f))
    writer.close()
    return path.read_bytes()


def _store(tmp_path: Path, **inputs: bytes) -> LocalStorage:
    storage = LocalStorage(tmp_path / "bucket")
    for name, data in inputs.items():
        storage.put(f"inbox/{JOB.job_id}/{name.replace('_', '.')}", data)
    return storage


def _written(storage: LocalStorage) -> list[str]:
    return storage.list("work/") + storage.list("outputs/")


# --- the astronaut through every crop mode ---------------------------------------------------------
@pytest.mark.parametrize("mode", ["crop", "extcrop", "resize", "full", "extfull"])
@pytest.mark.parametrize("size", [256, 512])
def test_every_mode(tmp_path, astronaut, weights_256, weights_face_512, mode, size) -> None:
    models = ModelStore(weights_256 if size == 256 else weights_face_512)
    storage = _store(tmp_path, face_png=_png(astronaut))
    params = JobParams.load({"preprocess": mode, "size": size, "landmarks": "dlib"})
    out = preprocess(storage, JOB, f"inbox/{JOB.job_id}/face.png", params, models)

    assert sorted(_written(storage)) == sorted([JOB.original_image, JOB.source_image, JOB.face])
    face = storage.get_npz(JOB.face)
    assert set(face) == set(FACE_KEYS)
    for key, (shape, dtype) in FACE_KEYS.items():
        assert face[key].shape == shape and face[key].dtype == dtype, key
    assert np.isfinite(face["coeff_3dmm"]).all()
    np.testing.assert_array_equal(face["coeff_3dmm"][:, :64], face["full_3dmm"][:, 80:144])
    np.testing.assert_allclose(face["coeff_3dmm"][0, 70:], face["trans_params"][2:].astype(np.float32))
    original = np.asarray(Image.open(io.BytesIO(storage.get(JOB.original_image))))
    np.testing.assert_array_equal(original, astronaut)
    source = np.asarray(Image.open(io.BytesIO(storage.get(JOB.source_image))))
    assert source.shape == (size, size, 3)
    assert out["num_faces"] == int(face["num_faces"]) >= 1 and out["landmarks"] == "dlib"
    assert out["landmarks_on_crop"] is True
    if mode == "resize":
        assert face["crop_info_box"].tolist() == [-1] * 4 and face["crop_info_size"].tolist() == [512, 512]
    else:
        clx, cly, crx, cry = face["crop_info_box"]
        assert 0 <= clx < crx <= 512 and 0 <= cly < cry <= 512
        assert (face["crop_info_size"] > 64).all()


def test_crop_mode_matches_the_goldens(tmp_path, weights_256) -> None:
    """Detection + crop + alignment + net on the golden photo reproduce the kit's outputs end to end."""
    crop_g, face_g = load_golden("sadtalker", "golden_crop.npz"), load_golden("sadtalker", "golden_face3d.npz")
    storage = _store(tmp_path, face_png=_png(crop_g["image"]))
    params = JobParams.load({"preprocess": "crop", "size": crop_g["crop_256"].shape[0], "landmarks": "dlib"})
    preprocess(storage, JOB, f"inbox/{JOB.job_id}/face.png", params, ModelStore(weights_256))
    face = storage.get_npz(JOB.face)
    np.testing.assert_allclose(face["lm68"], crop_g["lm68"], atol=0.5)
    np.testing.assert_array_equal(face["crop_info_box"], crop_g["crop_info_box"])
    np.testing.assert_allclose(face["crop_info_quad_f64"], crop_g["crop_info_quad_f64"], rtol=1e-9)
    source = np.asarray(Image.open(io.BytesIO(storage.get(JOB.source_image))))
    np.testing.assert_array_equal(source, crop_g["crop_256"])
    np.testing.assert_allclose(face["trans_params"], face_g["trans_params_f64"], rtol=1e-9)
    assert np.abs(face["coeff_3dmm"] - face_g["coeff_3dmm"]).max() <= 1e-4
    assert np.abs(face["full_3dmm"] - face_g["full_3dmm"]).max() <= 1e-4


def test_exif_rotated_portrait_is_upright(tmp_path, astronaut, weights_256) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _png(Image.fromarray(np.ascontiguousarray(np.rot90(astronaut, 1))), exif=exif.tobytes())
    storage = _store(tmp_path, face_png=data)
    preprocess(storage, JOB, f"inbox/{JOB.job_id}/face.png", JobParams.load({"landmarks": "dlib"}),
               ModelStore(weights_256))
    original = np.asarray(Image.open(io.BytesIO(storage.get(JOB.original_image))))
    np.testing.assert_array_equal(original, astronaut)


@pytest.mark.parametrize("kind", ["gray16", "rgba"])
def test_unusual_pixel_formats_are_handled(tmp_path, astronaut, weights_256, kind) -> None:
    if kind == "gray16":
        gray = np.asarray(Image.fromarray(astronaut).convert("L")).astype(np.uint16) * 257
        data = _png(Image.fromarray(gray))
    else:
        data = _png(np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)]))
    storage = _store(tmp_path, face_png=data)
    out = preprocess(storage, JOB, f"inbox/{JOB.job_id}/face.png", JobParams.load({"landmarks": "dlib"}),
                     ModelStore(weights_256))
    assert out["num_faces"] >= 1 and storage.exists(JOB.face)


def test_video_and_gif_sources_use_their_first_frame_with_a_face(tmp_path, astronaut, weights_256) -> None:
    gray = np.full_like(astronaut, 90)
    small = np.asarray(Image.fromarray(astronaut).resize((256, 256)))
    frames = [Image.fromarray(f) for f in (np.full_like(small, 90), small)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    storage = _store(tmp_path, face_gif=buf.getvalue(), clip_mp4=_video(tmp_path / "c.mp4", [gray, gray, astronaut]))
    params = JobParams.load({"landmarks": "dlib"})
    out = preprocess(storage, JOB, f"inbox/{JOB.job_id}/clip.mp4", params, ModelStore(weights_256))
    assert out["source_frame"] == 2 and out["image_size"] == [astronaut.shape[1], astronaut.shape[0]]
    original = np.asarray(Image.open(io.BytesIO(storage.get(JOB.original_image))))
    assert np.abs(original.astype(int) - astronaut).mean() < 4  # the frame with the face, not frame 0
    out = preprocess(storage, JOB, f"inbox/{JOB.job_id}/face.gif", params, ModelStore(weights_256))
    assert out["source_frame"] == 1 and out["num_faces"] >= 1


def test_face_index_numbers_faces_left_to_right(tmp_path, astronaut, weights_256) -> None:
    from sadtalker.face.landmarks import get_landmark_backend, pick_face

    small = np.asarray(Image.fromarray(astronaut).resize((256, 256), Image.BILINEAR))
    canvas = np.full((600, 900, 3), 128, np.uint8)
    canvas[300:556, 20:276] = small  # the smaller face on the left: number 0
    canvas[:512, 380:892] = astronaut
    backend = get_landmark_backend("dlib")
    faces = backend.find_all(canvas)
    assert len(faces) >= 2 and [f.index for f in faces] == list(range(len(faces)))
    assert [f.box[0] for f in faces] == sorted(f.box[0] for f in faces)
    _, _, default, _ = pick_face([canvas], backend, None)
    _, _, left, _ = pick_face([canvas], backend, 0)
    assert default.box[0] >= 380 and left.box[2] <= 276  # largest by default, the left one by number
    storage = _store(tmp_path, faces_png=_png(canvas))
    with pytest.raises(InvalidParams, match=r"face_index' = 9.*numbered 0\.\."):
        preprocess(storage, JOB, f"inbox/{JOB.job_id}/faces.png", JobParams.load({"landmarks": "dlib", "face_index": 9}),
                   ModelStore(weights_256))
    assert _written(storage) == []


# --- reference videos -----------------------------------------------------------------------------
def test_reference_videos(tmp_path, astronaut, weights_256) -> None:
    blank = np.full_like(astronaut, 100)
    frames = [np.roll(astronaut, 4 * i, axis=1) for i in range(6)]
    frames[3] = blank  # one frame without a face: filled from its neighbours
    data = _video(tmp_path / "ref.mp4", frames)
    storage = _store(tmp_path, face_png=_png(astronaut), ref_mp4=data)
    params = JobParams.load({"landmarks": "dlib", "ref_pose": f"inbox/{JOB.job_id}/ref.mp4",
                             "ref_eyeblink": f"inbox/{JOB.job_id}/ref.mp4"})
    out = preprocess(storage, JOB, f"inbox/{JOB.job_id}/face.png", params, ModelStore(weights_256))
    for kind in ("pose", "eyeblink"):
        ref = storage.get_npz(JOB.ref_coeffs(kind))
        assert ref["coeffs"].shape == (6, 70) and ref["coeffs"].dtype == np.float32
        assert int(ref["num_frames"]) == 6 and int(ref["filled_frames"]) == 1
        assert float(ref["fps"]) == pytest.approx(25.0)
        np.testing.assert_allclose(ref["coeffs"][3], (ref["coeffs"][2] + ref["coeffs"][4]) / 2, atol=1e-6)
        assert out["ref_filled_frames"][kind] == 1
    # the head moves right inside a fixed crop: x translation changes across frames
    ref = storage.get_npz(JOB.ref_coeffs("pose"))
    assert not np.allclose(ref["coeffs"][0, 67:70], ref["coeffs"][5, 67:70])


def test_fill_missing_holds_ends() -> None:
    rows = [None, np.ones(70, np.float32), None, np.full(70, 3, np.float32), None]
    out, filled = _fill_missing(rows)
    assert filled == 3
    np.testing.assert_allclose(out[:, 0], [1, 1, 2, 3, 3])


def test_reference_video_without_face(tmp_path, astronaut, weights_256) -> None:
    data = _video(tmp_path / "ref.mp4", [np.full_like(astronaut, v) for v in (40, 90, 140)])
    storage = _store(tmp_path, face_png=_png(astronaut), ref_mp4=data)
    params = JobParams.load({"landmarks": "dlib", "ref_eyeblink": f"inbox/{JOB.job_id}/ref.mp4"})
    with pytest.raises(NoFaceDetected, match="reference video"):
        preprocess(storage, JOB, f"inbox/{JOB.job_id}/face.png", params, ModelStore(weights_256))
    assert _written(storage) == []


def test_reference_video_undecodable(tmp_path, astronaut, weights_256) -> None:
    storage = _store(tmp_path, face_png=_png(astronaut), ref_mp4=b"not a video at all")
    params = JobParams.load({"landmarks": "dlib", "ref_pose": f"inbox/{JOB.job_id}/ref.mp4"})
    with pytest.raises(InvalidImage, match="reference video"):
        preprocess(storage, JOB, f"inbox/{JOB.job_id}/face.png", params, ModelStore(weights_256))
    assert _written(storage) == []


# --- bad source inputs: named error, nothing written -----------------------------------------------
def _header_only_png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IEND", b""))


def _bad_inputs(astronaut: np.ndarray) -> dict[str, tuple[str, bytes, type]]:
    jpeg = _jpeg(astronaut)
    gradient = np.tile(np.linspace(0, 255, 640, dtype=np.uint8)[None, :, None], (400, 1, 3))
    return {
        "coffee (no face)": ("coffee.png", _png(skimage.data.coffee()), NoFaceDetected),
        "gradient landscape": ("land.png", _png(gradient), NoFaceDetected),
        "1x1 png": ("tiny.png", _png(np.zeros((1, 1, 3), np.uint8)), InvalidImage),
        "30000x30000 header": ("bomb.png", _header_only_png(30000, 30000), InvalidImage),
        "truncated jpeg": ("cut.jpg", jpeg[: len(jpeg) // 3], InvalidImage),
        "text named .jpg": ("notes.jpg", b"Dear diary, today I did not take a photo.\n" * 20, InvalidImage),
    }


@pytest.mark.parametrize("case", ["coffee (no face)", "gradient landscape", "1x1 png", "30000x30000 header",
                                  "truncated jpeg", "text named .jpg"])
def test_bad_source_rejected_and_nothing_written(tmp_path, astronaut, weights_256, case) -> None:
    name, data, error = _bad_inputs(astronaut)[case]
    storage = LocalStorage(tmp_path / "bucket")
    key = f"inbox/{JOB.job_id}/{name}"
    storage.put(key, data)
    with pytest.raises(error) as info:
        preprocess(storage, JOB, key, JobParams.load({"landmarks": "dlib"}), ModelStore(weights_256))
    assert str(info.value).endswith(tuple("abcdefghijklmnopqrstuvwxyz)")) and "\n" not in str(info.value)
    assert _written(storage) == []


def test_missing_source_object(tmp_path, weights_256) -> None:
    storage = LocalStorage(tmp_path / "bucket")
    with pytest.raises(InvalidInput, match="does not exist"):
        preprocess(storage, JOB, "inbox/nothing.png", JobParams.load({}), ModelStore(weights_256))
    assert _written(storage) == []
