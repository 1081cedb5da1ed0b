"""ValidateJob: cheap checks before any compute is spent (no torch, no pixel decoding).

* the start input: ``image``/``audio`` are ``s3://<our bucket>/<safe key>`` URIs (or plain keys); ``audio``
  is left out in idle mode (``params.length_of_audio``), where giving one is an error (which would win?),
* both objects exist and have sensible sizes,
* the image is a PNG/JPEG/WebP/BMP/GIF whose header gives plausible dimensions (PIL reads the header only),
  or a video (mp4/mov/webm/mkv/avi by extension) whose first bytes are a container ffmpeg is allowed to
  read (``face.limits.video_format``); its frame size is checked when Preprocess decodes it,
* the speech file has a known audio extension, a sane size, and starts like an audio container whose
  header makes sense (``media_probe.probe_audio``: WAV, MP3, M4A/MP4, AAC, FLAC, Ogg, WebM),
* the parameters parse (``JobParams.load``), and reference videos named in them exist and start like a
  video container (the same check as a video source's).

Nothing is downloaded whole: each medium costs a HEAD (its size) and a ranged GET of its first
PROBE_BYTES (ValidateJob is a light function: no ffmpeg, no torch, 1 GB of memory).

Decisions: images up to 25 MB and 8192 px a side (at least 64 px), source videos and speech up to 200 MB; the decoded
length limit (``params.max_audio_seconds``) is enforced by AudioFeatures, which decodes the file.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Callable
from typing import Any

from ..errors import InvalidAudio, InvalidImage, InvalidInput, InvalidParams
from ..face.limits import MAX_SIDE, MIN_SIDE, video_format
from ..jobs import INBOX, JobKeys
from ..media_probe import probe_audio
from ..params import JobParams
from ..storage import Storage

MAX_IMAGE_BYTES = 25 * 1024 * 1024
MAX_AUDIO_BYTES = 200 * 1024 * 1024
MAX_SOURCE_VIDEO_BYTES = 200 * 1024 * 1024
MIN_AUDIO_BYTES = 64
# What ValidateJob reads of a medium: the first 64 KiB (one ranged GET) and the size (one HEAD). Enough for
# every container header we check; a JPEG whose frame header is further in gets 1 MiB, then the whole
# file (at most MAX_IMAGE_BYTES).
PROBE_BYTES = 64 * 1024
ESCALATE_BYTES = 1024 * 1024
IMAGE_FORMATS = {"PNG", "JPEG", "WEBP", "BMP", "GIF"}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
AUDIO_EXTENSIONS = (".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".opus", ".webm", ".mp4")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".mkv", ".avi")

# S3 keys are UTF-8 (up to 1024 bytes): spaces and non-ASCII letters ("Jürgen.jpg") are fine; control
# characters, a leading '/' and backslashes are not (they only ever come from mistakes or attacks).
_KEY_RE = re.compile(r"^[^\x00-\x1f\x7f/\\][^\x00-\x1f\x7f\\]*\Z")
MAX_KEY_BYTES = 1024


def check_key(key: str, what: str) -> str:
    """Keys come from users: no absolute paths, no '..', no empty segments, no control characters."""
    if not isinstance(key, str) or not _KEY_RE.match(key) or len(key.encode("utf-8", "replace")) > MAX_KEY_BYTES:
        shown = key if not isinstance(key, str) or len(key) <= 120 else key[:120] + "..."
        raise InvalidInput(
            f"the {what} key {shown!r} is not a safe object key (at most {MAX_KEY_BYTES} bytes, "
            "no control characters, no leading '/' or backslashes)"
        )
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidInput(f"the {what} key {key!r} contains an empty, '.' or '..' path segment")
    if not key.startswith(INBOX):
        # the stages' roles may read inputs only there (functions/contract.py): refuse early and by name
        raise InvalidInput(f"the {what} key {key!r} is not under {INBOX}: upload the job's inputs to {INBOX}<job>/")
    return key


def parse_location(value: Any, what: str, bucket: str) -> str:
    """``s3://bucket/key`` (bucket must be ours) or a bare key -> the key."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"the job input needs '{what}' as an s3://{bucket}/... URI, got {value!r}")
    if value.startswith("s3://"):
        rest = value[5:]
        got_bucket, _, key = rest.partition("/")
        if got_bucket != bucket:
            raise InvalidInput(f"the {what} is in bucket {got_bucket!r}; this pipeline only reads its own bucket {bucket!r}")
        return check_key(key, what)
    if "://" in value:
        raise InvalidInput(f"the {what} must be an s3:// URI or a key in bucket {bucket!r}, got {value!r}")
    return check_key(value, what)


def parse_job_input(data: Any, bucket: str) -> tuple[str, str, JobParams]:
    """The StartExecution input ``{"image", "audio", "params"}`` -> (image key, audio key, params).

    The audio key is "" for an idle-mode job without speech (the stages' events keep one type)."""
    if not isinstance(data, dict):
        raise InvalidInput(f"the job input must be a JSON object with 'image' and 'audio', got {type(data).__name__}")
    unknown = sorted(set(data) - {"image", "audio", "params"})
    if unknown:
        raise InvalidInput(f"unknown field(s) in the job input: {', '.join(unknown)} (allowed: image, audio, params)")
    if data.get("image") is None:  # a missing job parameter, like a missing params field
        raise InvalidParams(f"the job input needs 'image': an s3://{bucket}/... URI of the image file")
    image_key = parse_location(data["image"], "image", bucket)
    params = JobParams.load(data.get("params") if data.get("params") is not None else {})
    if data.get("audio") is None:
        if params.idle:
            return image_key, "", params
        raise InvalidParams(f"the job input needs 'audio': an s3://{bucket}/... URI of the audio file "
                            "(or params.length_of_audio for idle mode without speech)")
    audio_key = parse_location(data["audio"], "audio", bucket)
    return image_key, audio_key, params


def _probe(storage: Storage, key: str, what: str, error: type, limit: int) -> tuple[int, bytes]:
    """(object size, its first PROBE_BYTES): a HEAD and one ranged GET, never the whole object."""
    if not storage.exists(key):
        raise error(f"the {what} {key!r} does not exist in the bucket")
    try:
        size = storage.size(key)
        head = storage.get(key, limit=PROBE_BYTES) if size else b""
    except KeyError:  # removed between the checks
        raise error(f"the {what} {key!r} does not exist in the bucket") from None
    if size > limit:
        raise error(f"the {what} {key!r} is {size / 1e6:.1f} MB; at most {limit / 1e6:.0f} MB are accepted")
    return size, head


# Signatures of the accepted image formats: only a file that starts like one is worth reading further.
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"GIF87a", b"GIF89a")


def _looks_like_image(head: bytes) -> bool:
    return head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _open_header(data: bytes) -> tuple[str, tuple[int, int]]:
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as im:
            return im.format, im.size


def inspect_image(data: bytes, key: str, size: int | None = None,
                  more: Callable[[int], bytes] | None = None) -> dict[str, Any]:
    """Format and dimensions from the header only (no pixel decoding).

    ``data`` is the object's first bytes (all of it when ``size`` is None). A PNG or BMP header sits in
    the first few dozen bytes, but a JPEG's frame header follows its EXIF/ICC segments (a phone photo's
    can exceed 64 KB) and PIL's WebP reader wants the whole file: when a file that starts like an image
    cannot be opened from its prefix, ``more(n)`` reads a longer one (1 MB, then the whole object,
    which the size limit bounds)."""
    from PIL import Image

    size = len(data) if size is None else size
    if not size:
        raise InvalidImage(f"the image {key!r} is empty")
    attempts = [data]
    if more is not None and len(data) < size and _looks_like_image(data):
        attempts += sorted({min(n, size) for n in (ESCALATE_BYTES, size)} - {len(data)})
    for i, attempt in enumerate(attempts):
        chunk = attempt if isinstance(attempt, bytes) else more(attempt)
        try:
            fmt, (w, h) = _open_header(chunk)
            probed = len(chunk)
            break
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InvalidImage(
                f"the image {key!r} declares too many pixels to be decoded safely; each side must be between "
                f"{MIN_SIDE} and {MAX_SIDE} pixels"
            ) from None
        except Exception:
            if i == len(attempts) - 1:
                raise InvalidImage(f"the image {key!r} is not a PNG, JPEG, WebP, BMP or GIF file that can be read") from None
    if fmt not in IMAGE_FORMATS:
        raise InvalidImage(f"the image {key!r} is a {fmt} file; use PNG, JPEG, WebP, BMP or GIF (or a video)")
    if min(w, h) < MIN_SIDE or max(w, h) > MAX_SIDE:
        raise InvalidImage(
            f"the image {key!r} is {w}x{h} pixels; each side must be between {MIN_SIDE} and {MAX_SIDE} pixels"
        )
    return {"format": fmt, "width": w, "height": h, "bytes": size, "probed_bytes": probed}


def inspect_source_video(storage: Storage, key: str) -> dict[str, Any]:
    """A video as the source face: its container from the first bytes (the frames are Preprocess's)."""
    size, head = _probe(storage, key, "source video", InvalidImage, MAX_SOURCE_VIDEO_BYTES)
    if not size:
        raise InvalidImage(f"the source video {key!r} is empty")
    container = video_format(head)
    if container is None:
        raise InvalidImage(f"the source video {key!r} is not an MP4/MOV, WebM/MKV or AVI file "
                           f"(it starts with bytes {head[:8].hex(' ')})")
    return {"format": "video", "container": container, "bytes": size, "probed_bytes": len(head)}


def inspect_audio(storage: Storage, key: str) -> dict[str, Any]:
    ext = "." + key.rsplit(".", 1)[-1].lower() if "." in key.rsplit("/", 1)[-1] else ""
    if ext not in AUDIO_EXTENSIONS:
        raise InvalidAudio(
            f"the speech file {key!r} has extension {ext or '(none)'!r}; use one of {', '.join(AUDIO_EXTENSIONS)}"
        )
    size, head = _probe(storage, key, "speech file", InvalidAudio, MAX_AUDIO_BYTES)
    if size < MIN_AUDIO_BYTES:
        raise InvalidAudio(f"the speech file {key!r} is only {size} bytes, too short to hold any sound")
    facts = probe_audio(head, size, key)
    return {"extension": ext, "bytes": size, "probed_bytes": len(head), **facts}


def validate_job(storage: Storage, job: JobKeys, image_key: str, audio_key: str, params: JobParams) -> dict[str, Any]:
    """Check the inputs of one job; returns small metadata for the console."""
    check_key(image_key, "image")
    if params.idle and audio_key:
        raise InvalidParams(f"parameter 'length_of_audio' asks for idle mode (no speech), but the job also has the "
                            f"speech file {audio_key!r}: leave out one of them")
    if audio_key:
        check_key(audio_key, "audio")
    lowered = image_key.lower()
    if lowered.endswith(VIDEO_EXTENSIONS):
        image = inspect_source_video(storage, image_key)
    elif lowered.endswith(IMAGE_EXTENSIONS):
        size, head = _probe(storage, image_key, "image", InvalidImage, MAX_IMAGE_BYTES)
        image = inspect_image(head, image_key, size, more=lambda n: storage.get(image_key, limit=n))
    else:
        raise InvalidImage(f"the image {image_key!r} must end in one of "
                           f"{', '.join(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)}")
    audio = inspect_audio(storage, audio_key) if audio_key else {"idle_seconds": params.length_of_audio}
    for field in ("ref_pose", "ref_eyeblink"):
        ref = getattr(params, field)
        if ref is None:
            continue
        check_key(ref, field)
        if not ref.lower().endswith(VIDEO_EXTENSIONS):
            raise InvalidParams(f"parameter '{field}' = {ref!r} must be a video ({', '.join(VIDEO_EXTENSIONS)})")
        if not storage.exists(ref):
            raise InvalidParams(f"parameter '{field}' names {ref!r}, which does not exist in the bucket")
        size, head = _probe(storage, ref, f"{field} video", InvalidParams, MAX_SOURCE_VIDEO_BYTES)
        if video_format(head) is None:  # the same container check as a video source's
            raise InvalidParams(f"parameter '{field}' names {ref!r}, which is not an MP4/MOV, WebM/MKV or AVI video "
                                f"(it starts with bytes {head[:8].hex(' ')})")
    return {
        "job_id": job.job_id,
        "image_key": image_key,
        "audio_key": audio_key,
        "image": image,
        "audio": audio,
        "seed": params.effective_seed(job.job_id),
    }
