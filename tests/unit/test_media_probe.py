"""ValidateJob's audio probing from a 64 KiB prefix and the object size: every container ffmpeg writes is
recognised (and a header's facts read), the usual mistakes are refused with a named sentence, and a check
costs one HEAD plus one ranged GET whatever the file's size."""

from __future__ import annotations

import io
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sadtalker.errors import InvalidAudio, InvalidImage
from sadtalker.jobs import JobKeys
from sadtalker.local.memstore import MemoryStorage
from sadtalker.media_probe import probe_audio
from sadtalker.params import JobParams
from sadtalker.stages.validate_job import PROBE_BYTES, validate_job

EXAMPLES = Path(__file__).parents[2] / "examples"


def ffmpeg(args: list[str], out_name: str, seconds: float = 1.0) -> bytes:
    import imageio_ffmpeg

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / out_name
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y",
               "-i", str(EXAMPLES / "speech.wav"), "-t", str(seconds), *args, str(out)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        return out.read_bytes()


ENCODED = {  # name -> (ffmpeg arguments, expected facts)
    "speech.wav": (["-ar", "22050", "-ac", "2", "-c:a", "pcm_s16le"], {"container": "wav", "sample_rate": 22050, "channels": 2}),
    "speech.mp3": (["-ar", "24000", "-c:a", "libmp3lame"], {"container": "mp3", "sample_rate": 24000}),
    "speech.m4a": (["-c:a", "aac"], {"container": "mp4", "audio_track": True}),
    "speech.aac": (["-ar", "16000", "-c:a", "aac", "-f", "adts"], {"container": "aac", "sample_rate": 16000, "channels": 1}),
    "speech.flac": (["-ar", "16000", "-c:a", "flac"], {"container": "flac", "sample_rate": 16000, "channels": 1}),
    "speech.ogg": (["-c:a", "libvorbis"], {"container": "ogg", "codec": "vorbis"}),
    "speech.opus": (["-c:a", "libopus"], {"container": "ogg", "codec": "opus"}),
    "speech.webm": (["-c:a", "libopus"], {"container": "webm"}),
}


@pytest.fixture(scope="module")
def encoded() -> dict[str, bytes]:
    return {name: ffmpeg(args, name) for name, (args, _) in ENCODED.items()}


@pytest.mark.parametrize("name", list(ENCODED))
def test_every_container_is_recognised_from_its_prefix(encoded, name):
    data = encoded[name]
    facts = probe_audio(data[:PROBE_BYTES], len(data), name)
    assert facts.items() >= ENCODED[name][1].items(), facts


class Counting(MemoryStorage):
    """Records every read with its limit (None: the whole object)."""

    def __init__(self, objects: dict[str, bytes]):
        super().__init__(objects)
        self.reads: list[tuple[str, int | None]] = []

    def get(self, key: str, limit: int | None = None) -> bytes:
        self.reads.append((key, limit))
        return super().get(key, limit)


def test_a_long_file_costs_one_head_and_one_ranged_read(encoded):
    """A 100 MB WAV is checked from its first 64 KiB: the storage sees get(limit=64 KiB), never a full get."""
    big = encoded["speech.wav"] + b"\0" * (100 * 1024 * 1024)
    store = Counting({"inbox/j/face.png": (EXAMPLES / "portrait.png").read_bytes(), "inbox/j/speech.wav": big})
    info = validate_job(store, JobKeys("j"), "inbox/j/face.png", "inbox/j/speech.wav", JobParams())
    assert info["audio"]["bytes"] == len(big) and info["audio"]["probed_bytes"] == PROBE_BYTES
    assert info["audio"]["sample_rate"] == 22050
    assert store.reads == [("inbox/j/face.png", PROBE_BYTES), ("inbox/j/speech.wav", PROBE_BYTES)]


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _mp4_video_without_sound() -> bytes:
    import imageio_ffmpeg

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "v.mp4"
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                        "testsrc=size=64x64:rate=25:duration=0.4", "-an", "-c:v", "libx264", str(out)],
                       check=True, capture_output=True, timeout=60)
        return out.read_bytes()


@pytest.mark.parametrize("case,match", [
    ("png", "is not a WAV, MP3"),
    ("text", "is not a WAV, MP3"),
    ("riff-not-wave", "not WAVE audio"),
    ("wav-no-fmt", "before any format chunk"),
    ("wav-zero-rate", "without audio"),
    ("m4a-cut", "cut short"),
    ("mp4-no-sound", "without an audio track"),
    ("id3-only", "no audio after it"),
    ("ogg-video", "first stream is not audio"),
    ("mpeg-reserved", "reserved values"),
])
def test_mistakes_are_refused_by_name(encoded, case, match):
    wav, m4a = encoded["speech.wav"], encoded["speech.m4a"]
    data = {
        "png": _png(),
        "text": b"Hello, this is the transcript, not the recording.\n" * 4,
        "riff-not-wave": wav[:8] + b"AVI " + wav[12:],
        "wav-no-fmt": wav[:12] + b"data" + (8).to_bytes(4, "little") + b"\0" * 80,
        "wav-zero-rate": wav[:24] + b"\0\0\0\0" + wav[28:],
        "m4a-cut": m4a[: len(m4a) // 2],
        "mp4-no-sound": _mp4_video_without_sound(),
        "id3-only": b"ID3\x04\x00\x00\x00\x00\x00\x40" + b"\0" * 64,
        "ogg-video": b"OggS\x00\x02" + b"\0" * 20 + b"\x01\x1e" + b"\x80theora" + b"\0" * 40,
        "mpeg-reserved": b"\xff\xfb\xf0\x00" + b"\0" * 100,
    }[case]
    with pytest.raises(InvalidAudio, match=match):
        probe_audio(data[:PROBE_BYTES], len(data), f"inbox/j/{case}")


def test_cut_m4a_is_judged_by_the_object_size_not_the_prefix(encoded):
    """The prefix of a complete file looks like the start of a cut one: only the size tells them apart."""
    m4a = encoded["speech.m4a"]
    head = m4a[: len(m4a) // 2]
    assert probe_audio(head, len(m4a), "ok.m4a")["container"] == "mp4"
    with pytest.raises(InvalidAudio, match="cut short"):
        probe_audio(head, len(head), "cut.m4a")


def test_a_jpeg_whose_header_lies_beyond_the_prefix_reads_further(tmp_path):
    """A phone JPEG can carry more than 64 KiB of EXIF/ICC before its frame header: ValidateJob reads on,
    and a non-image that merely fails to open does not get a second read."""
    buf = io.BytesIO()
    Image.fromarray(np.full((300, 200, 3), 128, np.uint8)).save(buf, format="JPEG", icc_profile=b"\0" * 200_000)
    jpeg = buf.getvalue()
    store = Counting({"inbox/j/face.jpg": jpeg, "inbox/j/speech.wav": (EXAMPLES / "speech.wav").read_bytes(),
                      "inbox/j/face.png": b"not an image at all" * 10_000})
    info = validate_job(store, JobKeys("j"), "inbox/j/face.jpg", "inbox/j/speech.wav", JobParams())
    assert (info["image"]["width"], info["image"]["height"]) == (200, 300)
    assert len(jpeg) > PROBE_BYTES and info["image"]["probed_bytes"] == len(jpeg)
    assert [r for r in store.reads if r[0].endswith("face.jpg")] == [("inbox/j/face.jpg", PROBE_BYTES),
                                                                     ("inbox/j/face.jpg", len(jpeg))]
    store.reads.clear()
    with pytest.raises(InvalidImage, match="can be read"):
        validate_job(store, JobKeys("j"), "inbox/j/face.png", "inbox/j/speech.wav", JobParams())
    assert store.reads == [("inbox/j/face.png", PROBE_BYTES)]
