"""Face enhancement beyond the goldens: reduced store, exact tile reuse, paste-back geometry, streaming
workers, seeded noise, faces that cannot be found, missing weights and the enhance stage."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from reference_data import reference_dir
from sadtalker.enhance import EnhanceStats, FrameEnhancer, TiledUpsampler, enhance_frames, frame_seed
from sadtalker.enhance.face_restore import (
    FACE_SIZE,
    align_face,
    face_mask_512,
    five_from_68,
    paste_faces,
    refine_hint,
)
from sadtalker.enhance.loaders import load_gfpgan, load_rrdbnet
from sadtalker.enhance.reduced import write_reduced_enhancers
from sadtalker.errors import CheckpointError, WeightsMissing
from sadtalker.jobs import JobKeys
from sadtalker.machine import available_cores
from sadtalker.nets.gfpgan import GFPGANConfig
from sadtalker.params import JobParams
from sadtalker.storage import LocalStorage
from sadtalker.weights import ModelStore

GFPGAN_ONLY = JobParams.load({"enhancer": "gfpgan", "background_enhancer": ""})
WITH_BG_FULL = JobParams.load({"enhancer": "gfpgan", "background_enhancer": "realesrgan", "preprocess": "full"})


@pytest.fixture(scope="module", autouse=True)
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # equal to what 2 workers get on 2 cores, so outputs compare bit for bit
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def reduced(tmp_path_factory) -> ModelStore:
    root = tmp_path_factory.mktemp("reduced-enh")
    write_reduced_enhancers(root)
    return ModelStore(root)


@pytest.fixture(scope="module")
def face256() -> tuple[np.ndarray, np.ndarray]:
    """The kit's astronaut at 256 px and its dlib landmarks scaled with it (a stand-in for a rendered frame)."""
    img = np.asarray(Image.open(reference_dir("sadtalker") / "astronaut.png").convert("RGB"))
    lm = np.load(reference_dir("sadtalker") / "astronaut_lm68.npy").astype(np.float64)
    scale = 256 / img.shape[1]
    return cv2.resize(img, (256, 256), interpolation=cv2.INTER_AREA), lm * scale


def test_reduced_store(reduced):
    assert reduced.profile == "reduced" and reduced.synthetic
    net = load_gfpgan(reduced)
    assert net.cfg != GFPGANConfig() and net.cfg.out_size == 512
    assert load_rrdbnet(reduced).cfg.num_feat < 64
    # The same files in a store without the PROFILE marker are checked against the official manifest.
    full = Path(str(reduced.root) + "-as-full")
    full.mkdir()
    for f in ("GFPGANv1.4.pth", "RealESRGAN_x2plus.pth"):
        (full / f).write_bytes((reduced.root / f).read_bytes())
    with pytest.raises(CheckpointError, match="GFPGANv1.4.pth"):
        load_gfpgan(ModelStore(full))


def test_missing_weights_name_the_file(tmp_path):
    with pytest.raises(WeightsMissing, match=r"GFPGANv1\.4\.pth.*download"):
        load_gfpgan(ModelStore(tmp_path))
    with pytest.raises(WeightsMissing, match="GFPGANv1.4.pth"):
        list(enhance_frames(iter([np.zeros((64, 64, 3), np.uint8)]), params=GFPGAN_ONLY, models=ModelStore(tmp_path), seed=0))


def test_worker_errors_keep_their_names(tmp_path, reduced):
    frame = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(WeightsMissing, match="GFPGANv1.4.pth"):  # checked before any worker starts
        list(enhance_frames(iter([frame]), params=GFPGAN_ONLY, models=ModelStore(tmp_path), seed=0, workers=2))
    (tmp_path / "GFPGANv1.4.pth").write_bytes((reduced.root / "GFPGANv1.4.pth").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="GFPGANv1.4.pth"):  # raised in the worker, not a dead pool
        list(enhance_frames(iter([frame]), params=GFPGAN_ONLY, models=ModelStore(tmp_path), seed=0, workers=2))


def test_tile_reuse_equals_full_recomputation(reduced):
    """Only changed tiles are recomputed, and the result is bit-identical to computing every tile."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (151, 173, 3), dtype=np.uint8)  # odd sides: reflect mod-pad
    b = a.copy()
    b[70:90, 40:60] = 255 - b[70:90, 40:60]  # a "moving face" region
    net = load_rrdbnet(reduced)
    reusing = TiledUpsampler(net, tile=64, tile_pad=10, reuse=True)
    reusing.enhance(a)
    total = reusing.stats.computed
    assert total == 9
    got_b = reusing.enhance(b)
    assert 0 < reusing.stats.reused < total  # some tiles changed, the others were copied
    fresh = TiledUpsampler(net, tile=64, tile_pad=10)
    assert np.array_equal(got_b, fresh.enhance(b))
    rgb = b[:, :, ::-1].astype(np.float32) / np.float32(255)
    reused_before = reusing.stats.reused
    assert torch.equal(reusing.raw(rgb), fresh.raw(rgb))
    assert reusing.stats.reused - reused_before == total  # the repeat of b reused every tile


def test_paste_back_geometry(face256):
    """Pasting the aligned crop itself back must land where it came from (inverse affine, x2, +1.0 offset)."""
    img, lm = face256
    bgr = np.ascontiguousarray(img[:, :, ::-1])
    crop, M = align_face(bgr, five_from_68(lm))
    mask = np.zeros((FACE_SIZE, FACE_SIZE))
    mask[100:412, 100:412] = 1.0
    pasted = paste_faces(bgr, [(crop, M, mask)], None).astype(int)
    lanczos = cv2.resize(bgr, (512, 512), interpolation=cv2.INTER_LANCZOS4).astype(int)
    cx, cy = (2 * five_from_68(lm)[2]).astype(int)
    win = (slice(cy - 30, cy + 30), slice(cx - 30, cx + 30))
    aligned_err = np.abs(pasted[win] - lanczos[win]).mean()
    shifted_err = np.abs(pasted[win] - np.roll(lanczos, 2, axis=1)[win]).mean()
    assert aligned_err < 6 and aligned_err < shifted_err


def test_face_mask_is_soft_and_inside(face256):
    img, lm = face256
    _, M = align_face(np.ascontiguousarray(img[:, :, ::-1]), five_from_68(lm))
    m = face_mask_512(lm @ M[:, :2].T + M[:, 2])
    assert m.shape == (512, 512) and 0 <= m.min() and m.max() <= 1
    assert m[300, 256] > 0.99 and m[:10].max() == 0 and m[20, 20] < 0.01  # face centre kept, corners not
    assert 0.05 < m[100:420, 100:420].mean() < 0.95


def test_hint_refinement(face256):
    img, lm = face256
    found = refine_hint(img, lm + 2.0)  # a slightly off hint snaps to the face
    assert found.source == "refined"
    assert np.abs(found.pts5 - five_from_68(lm)).max() < 4
    # A 5-point hint: dlib's box is placed from the FFHQ-template calibration and the 68 points follow.
    found = refine_hint(img, five_from_68(lm) + [3.0, -2.0])
    assert found.source == "refined" and found.lm68.shape == (68, 2)
    assert np.abs(found.lm68 - lm).mean() < 3


def test_degenerate_hint_passes_through(reduced, face256):
    img, _ = face256
    enh = FrameEnhancer(reduced, GFPGAN_ONLY, seed=0, face_hint=np.full((5, 2), 100.0))
    out, info = enh(0, img)
    assert not info["face"] and np.array_equal(out, cv2.resize(img, (512, 512), interpolation=cv2.INTER_LANCZOS4))


def test_noise_is_seeded_per_frame(reduced, face256):
    img, lm = face256
    enh = FrameEnhancer(reduced, GFPGAN_ONLY, seed=7, face_hint=lm)
    a, info = enh(3, img)
    assert info["face"] and a.shape == (512, 512, 3)
    assert np.array_equal(a, enh(3, img)[0])  # a retry reproduces the frame
    assert not np.array_equal(a, enh(4, img)[0])  # another frame index draws other noise
    assert frame_seed(7, 3) == frame_seed(7, 3) != frame_seed(7, 4) != frame_seed(8, 3)


def _clip(img: np.ndarray, n: int) -> list[np.ndarray]:
    """n frames of a 'talking' face: the mouth region shifts a little from frame to frame."""
    frames = []
    for i in range(n):
        f = img.copy()
        f[160:200, 100:160] = np.roll(img[160:200, 100:160], i, axis=0)
        frames.append(f)
    return frames


def test_clip_to_twice_the_size_and_no_face_frames(reduced, face256):
    """A short clip without a hint (detector path): face frames are restored, a blank frame passes
    through upscaled only and is counted; order and size hold; progress is reported."""
    img, _ = face256
    frames = _clip(img, 3)
    frames.insert(1, np.zeros_like(img))
    stats, seen = EnhanceStats(), []
    out = list(
        enhance_frames(iter(frames), params=GFPGAN_ONLY, models=reduced, seed=1, stats=stats, progress=seen.append)
    )
    assert [o.shape for o in out] == [(512, 512, 3)] * 4 and all(o.dtype == np.uint8 for o in out)
    assert (stats.frames, stats.no_face, stats.no_face_frames, stats.faces_restored) == (4, 1, [1], 3)
    assert seen == [1, 2, 3, 4]
    assert not out[1].any()  # the blank frame: only upscaled
    lanczos = cv2.resize(frames[0], (512, 512), interpolation=cv2.INTER_LANCZOS4)
    assert not np.array_equal(out[0], lanczos)  # the face frame was restored


@pytest.mark.heavy
def test_workers_preserve_order_and_values(reduced, face256):
    """Two spawn workers (1 torch thread each) give the in-process frames, in order, with background reuse."""
    img, lm = face256
    frames = _clip(img, 4)
    kwargs = dict(params=WITH_BG_FULL, models=reduced, seed=3, face_hint=lm, first_index=10, tile=64)
    torch.set_num_threads(max(1, available_cores() // 2))  # the threads each of the 2 workers gets
    single = list(enhance_frames(iter(frames), workers=1, **kwargs))
    torch.set_num_threads(1)
    stats = EnhanceStats()
    multi = list(enhance_frames(iter(frames), workers=2, stats=stats, **kwargs))
    assert len(multi) == 4 and all(np.array_equal(a, b) for a, b in zip(single, multi, strict=True))
    assert stats.tiles_reused > 0  # the unchanged background tiles were copied


@pytest.mark.parametrize("mode", ["crop", "extcrop", "resize", "full"])
def test_face_hint_for_composed_frames(mode):
    """The photo's landmarks mapped into composed frames land on the face the frames show."""
    from sadtalker.enhance import face_hint_for_frames
    from sadtalker.face.crop import crop_face, crop_geometry
    from sadtalker.paste_back import aspect_resize

    photo = np.asarray(Image.open(reference_dir("sadtalker") / "astronaut.png").convert("RGB"))
    lm = np.load(reference_dir("sadtalker") / "astronaut_lm68.npy")
    params = JobParams.load({"preprocess": mode, "enhancer": "gfpgan"})
    geom = crop_geometry(lm, (photo.shape[1], photo.shape[0]), "crop" if mode == "full" else mode)
    face = {**geom.as_arrays(), "lm68": lm}
    frame = photo if params.full_mode else aspect_resize(crop_face(photo, geom, 256), geom.size, 256)
    hint = face_hint_for_frames(face, params.full_mode, params.ext_mode, frame.shape[:2])
    found = refine_hint(frame, hint)
    assert found.source == "refined"
    eye = np.linalg.norm(found.pts5[1] - found.pts5[0])
    assert np.abs(found.lm68 - hint).mean() < 0.1 * eye


@pytest.mark.heavy
def test_rendered_clip_enhanced_at_twice_the_size(tmp_path_factory):
    """A 3 s clip's first frames rendered by render_chunk (reduced renderer), composed by paste-back and
    enhanced by the stage: frames at twice the composed resolution, one enhanced chunk per rendered chunk."""
    from sadtalker.enhance import face_hint_for_frames
    from sadtalker.face.crop import crop_face, crop_geometry
    from sadtalker.paste_back import PasteBack
    from sadtalker.render.reduced import write_reduced_weights
    from sadtalker.stages.render_chunk import render_chunk

    root = tmp_path_factory.mktemp("reduced-all")
    write_reduced_weights(root)
    write_reduced_enhancers(root)
    models = ModelStore(root)
    photo = np.asarray(Image.open(reference_dir("sadtalker") / "astronaut.png").convert("RGB"))
    lm = np.load(reference_dir("sadtalker") / "astronaut_lm68.npy")
    params = JobParams.load({"enhancer": "gfpgan", "background_enhancer": "realesrgan", "seed": 5})
    geom = crop_geometry(lm, (photo.shape[1], photo.shape[0]), params.preprocess)
    face = {**geom.as_arrays(), "lm68": lm, "coeff_3dmm": np.zeros((1, 73), np.float32)}
    storage, job = LocalStorage(tmp_path_factory.mktemp("bucket")), JobKeys("clip3s")
    num_frames = 75  # 3 s at 25 fps
    t = np.arange(num_frames, dtype=np.float32)[:, None]
    coeffs = np.concatenate([0.3 * np.sin(t / 4 + np.arange(64)), np.zeros((num_frames, 6))], axis=1).astype(np.float32)
    storage.put_npz(job.coeffs, {"coeffs": coeffs, "num_frames": np.int64(num_frames)})
    storage.put_npz(job.face, face)
    buf = io.BytesIO()
    Image.fromarray(crop_face(photo, geom, params.size)).save(buf, format="PNG")
    storage.put(job.source_image, buf.getvalue())
    chunks = [render_chunk(storage, job, s, e, params, models) for s, e in ((0, 2), (2, 4))]

    paste = PasteBack(face, photo, params)
    hint = face_hint_for_frames(face, params.full_mode, params.ext_mode, paste.output_shape[:2])
    frames = [paste(f) for c in chunks for f in storage.get_npz(c["key"])["frames"]]
    out = list(enhance_frames(iter(frames), params=params, models=models, seed=params.effective_seed(job.job_id),
                              workers=1, face_hint=hint))
    h, w = paste.output_shape[:2]
    assert len(out) == 4 and all(f.shape == (2 * h, 2 * w, 3) and f.dtype == np.uint8 for f in out)
