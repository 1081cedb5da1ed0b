"""Video segments: per-chunk H.264 MPEG-TS segments joined without re-encoding (video.encode_segment,
video.concat_segments): the concatenation holds exactly the segments' frames, every segment starts on a
keyframe and continues the previous one's timestamps, audio and video agree to within one frame."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

from sadtalker.audio.decode import ffmpeg_exe
from sadtalker.video import GOP_FRAMES, concat_segments, decode_frames, encode_segment, probe

FRAME_S = 1 / 25


def _frames(start: int, end: int, h: int = 48, w: int = 64) -> np.ndarray:
    """Frames whose content depends on the clip index (random halves: x264 would see a scene cut everywhere)."""
    out = np.empty((end - start, h, w, 3), np.uint8)
    for n, i in enumerate(range(start, end)):
        rng = np.random.default_rng(i)
        out[n] = (i * 5) % 256
        out[n, : h // 2] = rng.integers(0, 255, (h // 2, w, 3), dtype=np.uint8)
    return out


def _decoded_span(path, stream: str) -> tuple[float, float, int]:
    """(first timestamp, end of the last frame, frames) of a decoded stream, in seconds, container
    timestamps kept (-copyts)."""
    out = subprocess.run([ffmpeg_exe(), "-nostdin", "-copyts", "-i", str(path), "-map", stream, "-f", "framecrc", "-"],
                         capture_output=True, check=True).stdout.decode()
    num, den = (int(v) for v in re.search(r"#tb 0: (\d+)/(\d+)", out).groups())
    rows = [[int(v) for v in line.split(",")[1:4]] for line in out.splitlines() if line and not line.startswith("#")]
    start = rows[0][1] * num / den
    end = (rows[-1][1] + rows[-1][2]) * num / den
    return start, end, len(rows)


def decode_frames_of(data: bytes, tmp_path) -> np.ndarray:
    path = tmp_path / "segment.ts"
    path.write_bytes(data)
    return decode_frames(path)


def _keyframes(path) -> list[int]:
    err = subprocess.run([ffmpeg_exe(), "-nostdin", "-i", str(path), "-vf", "showinfo", "-f", "null", "-"],
                         capture_output=True, check=True).stderr.decode()
    return [int(n) for n, key in re.findall(r"n:\s*(\d+) .*?iskey:([01])", err) if key == "1"]


def _segments(tmp_path, bounds: list[int], h: int = 48, w: int = 64) -> list[str]:
    paths = []
    for s, e in zip(bounds, bounds[1:], strict=False):
        info = encode_segment(iter(_frames(s, e, h, w)), tmp_path / f"{s:06d}-{e:06d}.ts", s)
        assert (info.frames, info.width, info.height) == (e - s, w + w % 2, h + h % 2)
        paths.append(info.path)
    return paths


def test_concatenation_is_the_segments_frames_in_order(tmp_path):
    bounds = [0, 10, 23, 24, 40]
    paths = _segments(tmp_path, bounds, h=47, w=63)
    wav = (0.1 * np.sin(np.arange(16000 * 2) / 10)).astype(np.float32)  # longer than the video: trimmed
    info = concat_segments(paths, wav, 40, tmp_path / "out" / "video.mp4")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["video.mp4"], "temporary files left behind"
    assert (info.frames, info.width, info.height, info.audio_samples) == (40, 64, 48, 40 * 640)

    joined = decode_frames(info.path)
    parts = [decode_frames(p) for p in paths]
    assert [len(p) for p in parts] == [10, 13, 1, 16]
    np.testing.assert_array_equal(joined, np.concatenate(parts))  # copied, not re-encoded
    # the flat (lower) half survives the lossy encode, in order (odd sizes padded, never cropped)
    source = _frames(0, 40, 47, 63)
    # (neighbouring frames differ by 5 levels there; a frame out of place would be off by 5 on average)
    assert np.abs(joined[:, 26:47, :63].astype(int) - source[:, 26:]).mean(axis=(1, 2, 3)).max() < 2

    p = probe(info.path)
    assert (p.video_codec, p.audio_codec, p.pix_fmt, p.frames) == ("h264", "aac", "yuv420p", 40)
    v0, v1, nv = _decoded_span(info.path, "0:v:0")
    a0, a1, _ = _decoded_span(info.path, "0:a:0")
    assert (v0, nv) == (0.0, 40) and abs(v1 - 40 * FRAME_S) < 1e-6
    assert abs(a0 - v0) < FRAME_S and abs(a1 - v1) < FRAME_S
    data = open(info.path, "rb").read()
    assert data.find(b"moov") < data.find(b"mdat"), "not faststart: moov atom after mdat"


def test_every_segment_starts_on_a_keyframe_and_continues_the_timestamps(tmp_path):
    bounds = [0, 30, 31, 30 + GOP_FRAMES + 5]
    paths = _segments(tmp_path, bounds, 32, 32)
    for (s, e), path in zip(zip(bounds, bounds[1:], strict=False), paths, strict=True):
        # the first frame, then only the fixed GOP (random content would trigger x264's scene cuts)
        assert _keyframes(path) == list(range(0, e - s, GOP_FRAMES))
        start, end, n = _decoded_span(path, "0:v:0")
        assert n == e - s and abs(start - s * FRAME_S) < 1e-6 and abs(end - e * FRAME_S) < 1e-6


def test_bad_input_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        encode_segment(iter([]), tmp_path / "a.ts", 0)
    with pytest.raises(ValueError, match="uint8"):
        encode_segment(iter([np.zeros((8, 8, 3), np.float32)]), tmp_path / "a.ts", 0)
    with pytest.raises(ValueError, match=r"frame 1 is"):
        encode_segment(iter([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)]), tmp_path / "a.ts", 0)
    with pytest.raises(ValueError, match="no segments"):
        concat_segments([], None, 0, tmp_path / "v.mp4")
    assert list(tmp_path.iterdir()) == []


def test_sixty_seconds_keep_lip_sync(tmp_path):
    """1500 synthetic frames (16x16, not a rendered clip) in 25 segments of 60 frames: after the concat the
    audio and the video start and end within one frame of each other and of 60 s."""
    bounds = list(range(0, 1501, 60))
    paths = _segments(tmp_path, bounds, 16, 16)
    wav = (0.1 * np.sin(np.arange(16000 * 59) / 7)).astype(np.float32)  # a second short: padded
    info = concat_segments(paths, wav, 1500, tmp_path / "video.mp4")
    v0, v1, nv = _decoded_span(info.path, "0:v:0")
    a0, a1, _ = _decoded_span(info.path, "0:a:0")
    assert nv == 1500 and v0 == 0.0 and abs(v1 - 60.0) < 1e-6
    assert abs(a0 - v0) < FRAME_S and abs(a1 - v1) < FRAME_S, (a0, a1, v0, v1)
    p = probe(info.path)
    assert abs(p.audio_duration - 60.0) < FRAME_S and p.frames == 1500


# --- enhancement ranges ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def enhance_job(tmp_path_factory):
    """A job ready for EnhanceRanges: record, face data, a 256 px photo (full mode: the frames are the photo
    with the face pasted in, so background tiles repeat), three one-frame lossless render chunks of a
    'talking' crop (the face moves every frame), reduced synthetic enhancer weights."""
    import io

    import cv2
    from PIL import Image

    from reference_data import reference_dir
    from sadtalker.enhance.reduced import write_reduced_enhancers
    from sadtalker.face.crop import crop_face, crop_geometry
    from sadtalker.jobs import JobRecord
    from sadtalker.params import JobParams
    from sadtalker.storage import LocalStorage
    from sadtalker.weights import ModelStore

    root = tmp_path_factory.mktemp("reduced-enh")
    write_reduced_enhancers(root)
    photo = np.asarray(Image.open(reference_dir("sadtalker") / "astronaut.png").convert("RGB"))
    lm = np.load(reference_dir("sadtalker") / "astronaut_lm68.npy").astype(np.float64) * (256 / photo.shape[1])
    photo = cv2.resize(photo, (256, 256), interpolation=cv2.INTER_AREA)
    params = JobParams.load({"enhancer": "gfpgan", "background_enhancer": "realesrgan", "preprocess": "full",
                             "seed": 7})
    geom = crop_geometry(lm, (256, 256), params.preprocess)
    crop = crop_face(photo, geom, params.size)
    storage = LocalStorage(tmp_path_factory.mktemp("bucket"))
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="PNG")
    frames = np.stack([np.roll(crop, 2 * i, axis=0) for i in range(3)])

    def job_with(job_id: str, ranges: list[tuple[int, int]]):
        from sadtalker.jobs import JobKeys
        from sadtalker.stages.plan_chunks import ChunkPlan

        job = JobKeys(job_id)
        storage.put(job.record, JobRecord(job_id, "bucket", "i", "a", params, 7).to_json())
        storage.put_npz(job.face, {**geom.as_arrays(), "lm68": lm, "coeff_3dmm": np.zeros((1, 73), np.float32)})
        storage.put(job.original_image, buf.getvalue())
        chunks = [{"start": s, "end": s + 1} for s in range(3)]
        for c in chunks:
            storage.put_npz(job.chunk(c["start"], c["end"]), {"frames": frames[c["start"]:c["end"]]})
        ChunkPlan(3, 1, 3, chunks, [{"start": s, "end": e} for s, e in ranges]).write(storage, job)
        return job

    return storage, job_with, ModelStore(root)


def test_enhancement_ranges_equal_one_unsplit_range_bit_for_bit(enhance_job):
    """Three ranges (each a separate enhance run, its tile reuse starting empty) give exactly the frames of
    one range over the whole clip."""
    from sadtalker.enhance import EnhanceStats
    from sadtalker.stages.enhance_range import enhanced_frames

    storage, job_with, models = enhance_job
    bounds = [(0, 1), (1, 2), (2, 3)]
    split, whole = job_with("split", bounds), job_with("whole", [(0, 3)])
    stats = EnhanceStats()
    one = list(enhanced_frames(storage, whole, 0, 3, models, stats))
    assert stats.tiles_reused > 0, "nothing to restart: no background tile was reused"
    parts = [f for s, e in bounds for f in enhanced_frames(storage, split, s, e, models)]
    assert len(one) == 3 and one[0].shape == (512, 512, 3)
    assert all(np.array_equal(a, b) for a, b in zip(one, parts, strict=True))
    assert not np.array_equal(one[0], one[1])


def test_an_enhancement_task_records_named_errors_and_retries_the_rest(enhance_job, tmp_path, monkeypatch):
    """functions.enhance_range.main: a range not in the plan -> InvalidChunk recorded in range_error, exit 0;
    no job in the environment -> exit 1 (nothing to record it in); success writes segment + timing."""
    import json

    from functions import common
    from functions.enhance_range import main
    from sadtalker.jobs import JobKeys

    storage, job_with, models = enhance_job
    job = job_with("task", [(0, 2), (2, 3)])
    monkeypatch.setattr(common, "_storage_factory", lambda bucket: storage)
    monkeypatch.setenv("SADTALKER_WEIGHTS", str(models.root))
    env = {"JOB_ID": "task", "SADTALKER_BUCKET": "bucket", "RANGE_START": "0", "RANGE_END": "1"}
    assert main(env) == 0
    rec = json.loads(storage.get(job.range_error(0, 1)))
    assert rec["error"] == "InvalidChunk" and rec["message"].startswith("enhancement range 0-1")
    assert main({**env, "RANGE_START": "2", "RANGE_END": "3"}) == 0
    assert storage.exists(job.segment(2, 3)) and not storage.exists(job.range_error(2, 3))
    assert decode_frames_of(storage.get(job.segment(2, 3)), tmp_path).shape == (1, 512, 512, 3)
    timing = json.loads(storage.get(job.timing(JobKeys.range_name(2, 3))))
    assert timing["frames"] == 1 and timing["enhancer"]["frames"] == 1
    assert main({"SADTALKER_BUCKET": "bucket"}) == 1


# --- Finalize: the concatenation ---------------------------------------------------------------------------
def _finalize_job(tmp_path, params_kw: dict, ranges: list[tuple[int, int]] = ()):
    from sadtalker import hls
    from sadtalker.jobs import JobKeys, JobRecord
    from sadtalker.params import JobParams
    from sadtalker.stages.plan_chunks import ChunkPlan
    from sadtalker.storage import LocalStorage

    storage, job = LocalStorage(tmp_path / "bucket"), JobKeys("fin")
    params = JobParams.load(params_kw)
    storage.put(job.record, JobRecord("fin", "bucket", "i", "a", params, 3).to_json())
    wav = (0.1 * np.sin(np.arange(30 * 640 - 100) / 5)).astype(np.float32)
    storage.put_npz(job.audio, {"wav": wav, "num_frames": np.int64(30)})
    hls.write_audio(storage, job, wav, 30)  # AudioFeatures' part of the stream Finalize closes
    chunks = [{"start": s, "end": s + 10} for s in (0, 10, 20)]
    plan = ChunkPlan(30, 10, 3, chunks, [{"start": s, "end": e} for s, e in ranges])
    plan.write(storage, job)
    for seg in plan.segments:
        s, e = seg["start"], seg["end"]
        encode_segment(iter(_frames(s, e, 40, 48)), tmp_path / f"{s}.ts", s)
        storage.put(job.segment(s, e), (tmp_path / f"{s}.ts").read_bytes())
    return storage, job


def test_finalize_concatenates_the_plan_segments_and_writes_result_json_last(tmp_path):
    import json

    from sadtalker.errors import FinalizeFailed
    from sadtalker.stages.finalize import finalize
    from sadtalker.weights import ModelStore

    storage, job = _finalize_job(tmp_path, {})
    out = finalize(storage, job, ModelStore(tmp_path / "weights"))
    assert out["frames"] == 30 and storage.exists(job.result) and not storage.exists(job.partial_video)
    result = json.loads(storage.get(job.result))
    assert result["plan"]["chunks"] == 3 and result["plan"]["ranges"] == 0 and result["enhancer"] is None
    video_path = tmp_path / "video.mp4"
    video_path.write_bytes(storage.get(job.video))
    segments = [decode_frames_of(storage.get(job.segment(s, s + 10)), tmp_path) for s in (0, 10, 20)]
    np.testing.assert_array_equal(decode_frames(video_path), np.concatenate(segments))  # never re-encoded
    assert _decoded_span(video_path, "0:a:0")[1] == pytest.approx(30 / 25, abs=FRAME_S)
    assert storage.get(job.preview)[:2] == b"\xff\xd8"  # a JPEG
    assert storage.get(job.stream_video).decode().count("#EXTINF") == 3  # the stream: closed, every segment
    assert storage.get(job.stream_video).decode().rstrip().endswith("#EXT-X-ENDLIST")

    storage.delete(job.segment(10, 20))
    for key in job.results:
        storage.delete(key)
    with pytest.raises(FinalizeFailed, match="video segment 10-20 is missing"):
        finalize(storage, job, ModelStore(tmp_path / "weights"))
    assert not any(storage.exists(k) for k in job.results)


def test_finalize_raises_an_enhancement_task_error_by_name(tmp_path):
    import json

    from sadtalker.errors import NoFaceDetected
    from sadtalker.stages.finalize import finalize
    from sadtalker.weights import ModelStore

    storage, job = _finalize_job(tmp_path, {"enhancer": "gfpgan"}, [(0, 20), (20, 30)])
    storage.put(job.range_error(20, 30), json.dumps({"error": "NoFaceDetected", "message": "no face in 20-30"}).encode())
    with pytest.raises(NoFaceDetected, match="no face in 20-30"):
        finalize(storage, job, ModelStore(tmp_path / "weights"))
    assert not storage.exists(job.result)
    storage.delete(job.range_error(20, 30))
    assert finalize(storage, job, ModelStore(tmp_path / "weights"))["frames"] == 30
    assert json.loads(storage.get(job.result))["plan"]["ranges"] == 2
