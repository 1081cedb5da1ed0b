"""The HLS stream (sadtalker.hls): after k of n segments the master playlist decodes to exactly the first k
segments' frames with an audio stream; closing lists every segment; a publish never shrinks what is stored;
a failed job's stream is removed; on S3 the playlists carry presigned links the writing role may sign."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from hls_decode import decode_stream
from sadtalker import hls
from sadtalker.errors import AccessDenied, InvalidChunk
from sadtalker.jobs import JobKeys
from sadtalker.stages.plan_chunks import ChunkPlan
from sadtalker.storage import LocalStorage
from sadtalker.video import decode_frames, encode_segment

JOB = JobKeys("hls-job")
BOUNDS = [0, 10, 20, 27]  # three segments; the last one shorter
H, W = 32, 48
BUCKET = "hls-bucket"


def _frames(start: int, end: int) -> np.ndarray:
    out = np.empty((end - start, H, W, 3), np.uint8)
    for n, i in enumerate(range(start, end)):
        out[n] = np.random.default_rng(i).integers(0, 255, (H, W, 3), dtype=np.uint8)
    return out


def _plan() -> ChunkPlan:
    chunks = [{"start": s, "end": e} for s, e in zip(BOUNDS, BOUNDS[1:], strict=False)]
    return ChunkPlan(num_frames=BOUNDS[-1], chunk_frames=10, max_concurrency=3, chunks=chunks)


@pytest.fixture(scope="module")
def encoded(tmp_path_factory) -> dict[tuple[int, int], bytes]:
    """The three segments, encoded once for the module."""
    tmp = tmp_path_factory.mktemp("segments")
    out = {}
    for s, e in zip(BOUNDS, BOUNDS[1:], strict=False):
        out[(s, e)] = Path(encode_segment(iter(_frames(s, e)), tmp / f"{s}.ts", s).path).read_bytes()
    return out


@pytest.fixture(scope="module")
def audio_parts(tmp_path_factory) -> dict[str, bytes]:
    """The stream's audio as AudioFeatures writes it (a 440 Hz tone, 1.08 s)."""
    store = LocalStorage(tmp_path_factory.mktemp("audio"))
    wav = (0.2 * np.sin(2 * np.pi * 440 * np.arange(int(16000 * 1.5)) / 16000)).astype(np.float32)
    hls.write_audio(store, JOB, wav, BOUNDS[-1])
    return {k: store.get(k) for k in store.list(JOB.stream_audio_parts)}


def _job(tmp_path, encoded, audio_parts, done) -> LocalStorage:
    store = LocalStorage(tmp_path / "bucket")
    store.put(JOB.plan, _plan().to_json())
    for key, data in audio_parts.items():
        store.put(key, data)
    for s, e in done:
        store.put(JOB.segment(s, e), encoded[(s, e)])
    return store


def _segment_frames(tmp_path, encoded, bounds) -> np.ndarray:
    out = []
    for s, e in bounds:
        path = tmp_path / f"ref-{s}.ts"
        path.write_bytes(encoded[(s, e)])
        out.append(decode_frames(path))
    return np.concatenate(out)


@pytest.mark.parametrize("k", [1, 2])
def test_after_k_of_n_segments_the_stream_is_exactly_the_first_k(tmp_path, encoded, audio_parts, k):
    segs = list(zip(BOUNDS, BOUNDS[1:], strict=False))
    store = _job(tmp_path, encoded, audio_parts, segs[:k])
    assert hls.publish_stream(store, JOB) == k
    frames, audio_s = decode_stream(store.root / JOB.stream, True, H, W)
    expected = _segment_frames(tmp_path, encoded, segs[:k])
    assert frames.shape == expected.shape and np.array_equal(frames, expected)
    # the audio playlist covers the published video (whole 4 s audio segments) and no more than needed
    assert audio_s >= BOUNDS[k] / 25
    video_pl = store.get(JOB.stream_video).decode()
    assert "#EXT-X-ENDLIST" not in video_pl and "#EXT-X-PLAYLIST-TYPE:EVENT" in video_pl
    assert re.findall(r"#EXTINF:([\d.]+),", video_pl) == [f"{(e - s) / 25:.3f}" for s, e in segs[:k]]


def test_a_gap_stops_the_prefix_and_nothing_is_written_before_the_first_segment(tmp_path, encoded, audio_parts):
    segs = list(zip(BOUNDS, BOUNDS[1:], strict=False))
    store = _job(tmp_path, encoded, audio_parts, segs[1:])  # the first one is still rendering
    assert hls.publish_stream(store, JOB) == 0
    assert not store.exists(JOB.stream) and not store.exists(JOB.stream_video)
    store.put(JOB.segment(*segs[0]), encoded[segs[0]])
    assert hls.publish_stream(store, JOB) == 3


def test_closed_stream_is_every_segment_with_the_fitted_audio(tmp_path, encoded, audio_parts):
    segs = list(zip(BOUNDS, BOUNDS[1:], strict=False))
    store = _job(tmp_path, encoded, audio_parts, segs)
    assert hls.close_stream(store, JOB) == 3
    for key in (JOB.stream_video, JOB.stream_audio):
        assert store.get(key).decode().rstrip().endswith("#EXT-X-ENDLIST")
    frames, audio_s = decode_stream(store.root / JOB.stream, False, H, W)
    assert np.array_equal(frames, _segment_frames(tmp_path, encoded, segs))
    # num_frames / 25 s plus what MPEG-TS cannot trim: the encoder's priming frame (1024 samples, decoded
    # first: the speech is 21 ms late) and the padding of the last AAC frame
    assert 0 <= audio_s - BOUNDS[-1] / 25 <= 2 * 1024 / 48000 + 1e-6
    # a late publisher (a duplicated chunk) never reopens a closed stream
    before = store.get(JOB.stream_video)
    assert hls.publish_stream(store, JOB) == 3 and store.get(JOB.stream_video) == before


def test_close_refuses_a_missing_segment(tmp_path, encoded, audio_parts):
    segs = list(zip(BOUNDS, BOUNDS[1:], strict=False))
    store = _job(tmp_path, encoded, audio_parts, segs[:2])
    with pytest.raises(InvalidChunk, match="000020-000027"):
        hls.close_stream(store, JOB)


def test_a_publish_never_shrinks_the_stored_playlist(tmp_path, encoded, audio_parts):
    segs = list(zip(BOUNDS, BOUNDS[1:], strict=False))
    store = _job(tmp_path, encoded, audio_parts, segs[:2])
    assert hls.publish_stream(store, JOB) == 2
    before = store.get(JOB.stream_video)
    store.delete(JOB.segment(*segs[1]))  # a publisher whose listing is older than the stored playlist
    assert hls.publish_stream(store, JOB) == 2
    assert store.get(JOB.stream_video) == before


def test_failed_job_has_no_stream_and_a_late_publisher_removes_its_own(tmp_path, encoded, audio_parts):
    segs = list(zip(BOUNDS, BOUNDS[1:], strict=False))
    store = _job(tmp_path, encoded, audio_parts, segs[:1])
    assert hls.publish_stream(store, JOB) == 1
    hls.fail_stream(store, JOB)
    assert not store.exists(JOB.stream) and store.list(JOB.stream_parts) == []
    # a chunk still running when RecordFailure ran publishes afterwards: error.json is there, so it cleans up
    for key, data in audio_parts.items():
        store.put(key, data)
    store.put(JOB.error, json.dumps({"error": "RenderFailed"}).encode())
    store.put(JOB.segment(*segs[1]), encoded[segs[1]])
    assert hls.publish_stream(store, JOB) == 0
    assert not store.exists(JOB.stream) and store.list(JOB.stream_parts) == []


def test_on_s3_the_playlists_name_objects_by_presigned_links(encoded, audio_parts):
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    from sadtalker.local.policy import GuardedStorage, S3Policy
    from sadtalker.storage import S3Storage

    with moto.mock_aws():
        from botocore.config import Config

        client = boto3.client("s3", region_name="us-east-1", config=Config(signature_version="s3v4"))
        client.create_bucket(Bucket=BUCKET)
        store = S3Storage(BUCKET, client, link_expiry_s=600)
        store.put(JOB.plan, _plan().to_json())
        for key, data in audio_parts.items():
            store.put(key, data)
        store.put(JOB.segment(0, 10), encoded[(0, 10)])
        assert hls.publish_stream(store, JOB) == 1
        master = store.get(JOB.stream).decode()
        video = store.get(JOB.stream_video).decode()
        uris = [ln for ln in video.splitlines() if ln and not ln.startswith("#")]
        uris += re.findall(r'URI="([^"]+)"', master) + [ln for ln in master.splitlines() if ln.startswith("http")]
        assert len(uris) == 3
        for uri in uris:
            assert uri.startswith(f"https://{BUCKET}.s3.amazonaws.com/") and "X-Amz-Expires=600" in uri
        assert JOB.segment(0, 10) in uris[0]
        with pytest.raises(ValueError, match="1..604800"):
            store.presign(JOB.stream, 8 * 24 * 3600)
        # a role that may not GET the segments would publish dead links: refused by name
        arn = f"arn:aws:s3:::{BUCKET}/"
        policy = S3Policy(BUCKET, ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": arn + JOB.stream},))
        with pytest.raises(AccessDenied, match="s3:GetObject"):
            GuardedStorage(store, policy).link(JOB.segment(0, 10))
        assert GuardedStorage(store, policy).link(JOB.stream).startswith("https://")


def test_audio_features_writes_the_streams_audio_of_the_clips_length(tmp_path):
    from sadtalker.params import JobParams
    from sadtalker.stages.audio_features import audio_features

    store = LocalStorage(tmp_path)
    out = audio_features(store, JOB, "", JobParams.load({"length_of_audio": 4.4}))  # idle mode: 110 frames
    parts = hls.read_audio_index(store, JOB)
    assert out["num_frames"] == 110 and len(parts) == 2  # 4 s segments: 4 s + the rest
    assert parts[0].start == 0 and all(store.exists(p.key) for p in parts)
    assert abs(parts[-1].end - 4.4) <= 2 * 1024 / 48000
