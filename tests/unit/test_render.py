"""Renderer unit tests on the reduced configuration (synthetic weights of the reduced shapes).

- chunking: rendering [0, a) + [a, b) + [b, n) through the render_chunk stage equals rendering [0, n) at once.
  With chunk bounds that are multiples of batch_size the batch compositions match and the frames are
  bit-identical; otherwise a frame may share its batch with different neighbours, which changes float
  rounding (observed up to ~1e-4 before quantisation), so that case is checked with a tolerance.
- bad input: wrong coefficient width, out-of-clip / empty ranges -> named errors, no chunk object written.
- end to end: a 3 s clip from coefficients to a playable MP4 with audio (h264 + aac, 75 frames).
"""

from __future__ import annotations

import io
import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import wavfile

from reference_data import cache_root, load_golden, reference_dir
from sadtalker.errors import InvalidChunk, InvalidCoefficients, InvalidImage, InvalidInput
from sadtalker.jobs import JobKeys
from sadtalker.params import JobParams
from sadtalker.paste_back import PasteBack
from sadtalker.render.animate import load_renderer
from sadtalker.render.reduced import write_reduced_weights
from sadtalker.stages.render_chunk import render_chunk
from sadtalker.storage import LocalStorage
from sadtalker.video import concat_segments, probe
from sadtalker.weights import ModelStore


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # reduced nets are tiny: one thread is faster than two on a shared 2-core machine, and deterministic
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def reduced_models() -> ModelStore:
    final = cache_root() / "reduced-v1"
    if not (final / "PROFILE").exists():
        tmp = final.with_name(f"reduced-v1.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        write_reduced_weights(tmp)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    models = ModelStore(final)
    assert models.profile == "reduced"
    return models


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def _job(tmp_path, frames: int | None = None, coeffs: np.ndarray | None = None):
    storage = LocalStorage(tmp_path / "bucket")
    job = JobKeys("job-1")
    if coeffs is None:
        coeffs = load_golden("sadtalker", "golden_audio2pose.npz")["coeffs_pred"][:frames]
    storage.put_npz(job.coeffs, {"coeffs": coeffs.astype(np.float32), "num_frames": np.int64(len(coeffs))})
    crop = load_golden("sadtalker", "golden_crop.npz")
    storage.put_npz(
        job.face,
        {
            "coeff_3dmm": load_golden("sadtalker", "golden_face3d.npz")["coeff_3dmm"],
            "crop_info_size": crop["crop_info_size"].astype(np.int64),
            "crop_info_box": crop["crop_info_box"].astype(np.int64),
            "crop_info_quad_f64": crop["crop_info_quad_f64"],
        },
    )
    storage.put(job.source_image, _png(crop["crop_256"]))
    storage.put(job.original_image, _png(crop["image"]))
    return storage, job


def _render(storage, job, ranges, params, models) -> np.ndarray:
    """The chunks' lossless frames: with an enhancer set, a chunk keeps its frames for the enhancement task
    (the render itself does not depend on the enhancer)."""
    params = JobParams.load(**{**json.loads(params.to_json()), "enhancer": "gfpgan"})
    parts = []
    for start, end in ranges:
        res = render_chunk(storage, job, start, end, params, models)
        assert res["key"] == job.chunk(start, end) and res["frames"] == end - start
        z = storage.get_npz(job.chunk(start, end))
        assert int(z["start"]) == start and int(z["end"]) == end
        assert z["frames"].dtype == np.uint8 and z["frames"].shape == (end - start, params.size, params.size, 3)
        parts.append(z["frames"])
    return np.concatenate(parts)


# A clip long enough that windows are clamped at both clip ends and chunk ends are not clip ends.
FRAMES = 20


@pytest.mark.parametrize(
    "params",
    [
        JobParams.load(batch_size=2, still=False, input_yaw=[-10, 10], expression_scale=1.3),
        JobParams.load(batch_size=3, preprocess="full"),
    ],
    ids=["crop-bs2-yaw", "full-bs3"],
)
@pytest.mark.heavy
def test_chunks_concatenate_to_the_whole_clip_bit_exactly(tmp_path, reduced_models, params):
    storage, job = _job(tmp_path, FRAMES)
    whole = _render(storage, job, [(0, FRAMES)], params, reduced_models)
    bs = params.batch_size
    a, b = 2 * bs, 5 * bs
    chunked = _render(storage, job, [(0, a), (a, b), (b, FRAMES)], params, reduced_models)
    np.testing.assert_array_equal(chunked, whole)
    assert whole.std() > 5, "frames look constant: the renderer did not run"


@pytest.mark.heavy
def test_unaligned_chunks_match_within_rounding(tmp_path, reduced_models):
    params = JobParams.load(batch_size=2, still=False)
    storage, job = _job(tmp_path, FRAMES)
    whole = _render(storage, job, [(0, FRAMES)], params, reduced_models)
    chunked = _render(storage, job, [(0, 3), (3, 10), (10, FRAMES)], params, reduced_models)
    diff = np.abs(chunked.astype(int) - whole.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.01


def test_chunk_windows_are_clamped_at_the_clip_not_the_chunk(tmp_path, reduced_models):
    """A chunk in the middle must see coefficients outside its own range (else [a, b) != whole)."""
    params = JobParams.load(batch_size=1, still=False)
    storage, job = _job(tmp_path, FRAMES)
    mid = _render(storage, job, [(8, 10)], params, reduced_models)
    # render the same two frames as the last frames of a shorter clip: windows clamp differently
    storage2, job2 = _job(tmp_path / "short", 10)
    short_end = _render(storage2, job2, [(8, 10)], params, reduced_models)
    assert np.abs(mid.astype(int) - short_end.astype(int)).max() > 0


def test_source_work_runs_once_per_chunk(tmp_path, reduced_models):
    """Keypoint detector, source mapping and source encoder run once per chunk, not per frame or batch."""
    params = JobParams.load(batch_size=2)
    renderer = load_renderer(reduced_models, params.size, params.full_mode)
    calls = {"kp": 0, "encode": 0, "mapping_rows": 0}
    h1 = renderer.kp_detector.register_forward_hook(lambda m, a, o: calls.__setitem__("kp", calls["kp"] + 1))
    h2 = renderer.mapping.register_forward_hook(
        lambda m, a, o: calls.__setitem__("mapping_rows", calls["mapping_rows"] + a[0].shape[0])
    )
    original = renderer.generator.encode_source

    def counted(image):
        calls["encode"] += 1
        return original(image)

    renderer.generator.encode_source = counted
    try:
        storage, job = _job(tmp_path, 12)
        render_chunk(storage, job, 2, 9, params, reduced_models)
    finally:
        h1.remove()
        h2.remove()
        del renderer.generator.encode_source
    assert calls == {"kp": 1, "encode": 1, "mapping_rows": 1 + 7}


def test_load_renderer_is_memoized(reduced_models):
    assert load_renderer(reduced_models, 256, False) is load_renderer(reduced_models, 256, False)
    assert load_renderer(reduced_models, 256, True) is not load_renderer(reduced_models, 256, False)


@pytest.mark.parametrize("width", [64, 73])
def test_wrong_coefficient_width_is_rejected(tmp_path, reduced_models, width):
    storage, job = _job(tmp_path, coeffs=np.zeros((10, width), np.float32))
    with pytest.raises(InvalidCoefficients):
        render_chunk(storage, job, 0, 5, JobParams.load(), reduced_models)
    assert not storage.exists(job.chunk(0, 5))


@pytest.mark.parametrize("start,end", [(0, 11), (-1, 3), (4, 4), (6, 2), (10, 12)])
def test_bad_chunk_ranges_are_rejected(tmp_path, reduced_models, start, end):
    storage, job = _job(tmp_path, 10)
    with pytest.raises(InvalidChunk):
        render_chunk(storage, job, start, end, JobParams.load(), reduced_models)
    assert not storage.exists(job.chunk(start, end))
    assert storage.list(job.work + "chunks/") == []


def test_missing_inputs_and_bad_source_are_named_errors(tmp_path, reduced_models):
    storage, job = _job(tmp_path, 10)
    storage.put(job.source_image, b"not a png")
    with pytest.raises(InvalidImage):
        render_chunk(storage, job, 0, 2, JobParams.load(), reduced_models)
    storage.put(job.source_image, _png(np.zeros((100, 120, 3), np.uint8)))
    with pytest.raises(InvalidImage, match="256"):
        render_chunk(storage, job, 0, 2, JobParams.load(), reduced_models)
    storage.delete(job.face)
    with pytest.raises(InvalidInput, match="face data .* is missing"):
        render_chunk(storage, job, 0, 2, JobParams.load(), reduced_models)
    storage.put_npz(job.coeffs, {"coeffs": np.zeros((10, 70), np.float32), "num_frames": np.int64(12)})
    with pytest.raises(InvalidCoefficients, match="12"):
        render_chunk(storage, job, 0, 2, JobParams.load(), reduced_models)
    assert storage.list(job.work + "chunks/") == []


def test_without_an_enhancer_a_chunk_writes_its_pasted_back_segment(tmp_path, reduced_models):
    """No enhancer: the chunk's frames pasted back onto the photo, encoded as the segment job.segment(s, e)
    whose frames carry the chunk's clip times; no lossless chunk is left behind."""
    from sadtalker.video import decode_frames

    params = JobParams.load(batch_size=2, preprocess="full")
    storage, job = _job(tmp_path, 12)
    res = render_chunk(storage, job, 4, 10, params, reduced_models)
    assert res["key"] == job.segment(4, 10) and res["frames"] == 6
    assert storage.list(job.chunks) == [] and storage.list(job.segments) == [job.segment(4, 10)]
    lossless = _render(storage, job, [(4, 10)], params, reduced_models)
    face = storage.get_npz(job.face)
    original = np.array(Image.open(io.BytesIO(storage.get(job.original_image))).convert("RGB"))
    paste = PasteBack(face, original, params)
    expected = np.stack([paste(f) for f in lossless])
    seg = tmp_path / "seg.ts"
    seg.write_bytes(storage.get(job.segment(4, 10)))
    decoded = decode_frames(seg)[:, : expected.shape[1], : expected.shape[2]]
    assert decoded.shape == expected.shape
    mse = ((decoded.astype(float) - expected) ** 2).mean()
    assert 10 * np.log10(255**2 / mse) > 32  # H.264 at CRF 18, 4:2:0 chroma of a textured photo
    out = tmp_path / "one.mp4"
    assert concat_segments([seg], None, 6, out).frames == 6 and probe(out).frames == 6


@pytest.mark.heavy
def test_three_second_clip_to_playable_mp4(tmp_path, reduced_models):
    """Coefficients -> chunks -> aspect resize -> H.264 segments -> concat + AAC MP4 (the kit's speech_3s.wav)."""
    rate, pcm = wavfile.read(reference_dir("sadtalker") / "speech_3s.wav")
    assert rate == 16000
    wav = pcm.astype(np.float32) / 32768
    frames_total = int(len(wav) / 640)
    assert frames_total == 75
    params = JobParams.load(batch_size=4, chunk_frames=25)
    coeffs = load_golden("sadtalker", "golden_audio2pose.npz")["coeffs_pred"]
    assert len(coeffs) == frames_total
    storage, job = _job(tmp_path, coeffs=coeffs)
    ranges = [(s, min(s + params.chunk_frames, frames_total)) for s in range(0, frames_total, params.chunk_frames)]
    segments = []
    for start, end in ranges:
        render_chunk(storage, job, start, end, params, reduced_models)
        segments.append(tmp_path / f"{start}.ts")
        segments[-1].write_bytes(storage.get(job.segment(start, end)))

    out = tmp_path / "video.mp4"
    info = concat_segments(segments, wav, frames_total, out)
    assert info.frames == frames_total
    p = probe(out)
    assert (p.video_codec, p.audio_codec) == ("h264", "aac")
    assert p.pix_fmt == "yuv420p" and p.width % 2 == 0 and p.height % 2 == 0
    assert p.frames == frames_total
    assert abs(p.video_duration - len(wav) / 16000) <= 0.05
    assert abs(p.audio_duration - len(wav) / 16000) <= 0.05
    assert abs(p.duration - len(wav) / 16000) <= 0.05


def test_a_chunk_that_cannot_finish_in_time_stops_with_a_retryable_error(tmp_path, reduced_models):
    from sadtalker.errors import TransientError

    storage, job = _job(tmp_path, 10)
    params = JobParams.load(batch_size=2)
    with pytest.raises(TransientError, match=r"out of time: 2 of 10 frames rendered .* will be retried"):
        render_chunk(storage, job, 0, 10, params, reduced_models, time_left=lambda: 5.0)
    assert storage.list(job.chunks) == []  # nothing half-written
    assert storage.list(job.segments) == []
    out = render_chunk(storage, job, 0, 10, params, reduced_models, time_left=lambda: 3600.0)
    assert out["frames"] == 10 and storage.exists(job.segment(0, 10))
