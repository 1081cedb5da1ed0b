"""An S3-drop job folder (``inbox/<job>/``) -> the job's start input.

What a folder may hold and how each object is recognised (the README's "On AWS" section says the same):

* the source face: an object named ``source.<video ext>`` (any case: a video whose first frame with a face
  is animated), else the first image (png, jpg, jpeg, webp, bmp, gif) in key order; a video needs that
  name because an mp4/webm could as well be the speech;
* reference videos: objects named ``ref_pose.<video ext>`` / ``ref_eyeblink.<video ext>`` (any case) become
  the ``ref_pose`` / ``ref_eyeblink`` parameters unless params.json names them itself; a video is never
  taken as the speech by its name alone;
* the speech: the first audio file in key order that is not a named video (wav, mp3, m4a, aac, flac,
  ogg, opus, webm, mp4);
* ``params.json`` (optional): read whole when at most MAX_PARAMS_BYTES; an oversized or unparseable file is
  passed on as text, so ValidateJob fails the job with InvalidParams and an error.json instead of the drop
  silently doing nothing.

The folder is read when the job is admitted, a settle delay after its media appeared (functions/starter.py,
functions/admit_job.py), so objects uploaded together - in any order - are all seen.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from .jobs import JobKeys
from .params import MAX_PARAMS_BYTES
from .stages.validate_job import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from .storage import Storage

REFERENCE_KINDS = ("ref_pose", "ref_eyeblink")
SOURCE_VIDEO = "source"  # the object name (before the extension) of a video used as the source face
_NAMED_RE = re.compile(r"^(source|ref_pose|ref_eyeblink)\.[^./]+$", re.I)


@dataclass(frozen=True)
class DropFolder:
    image: str | None
    audio: str | None
    references: dict[str, str]
    params_key: str | None

    @property
    def complete(self) -> bool:
        """A portrait and a speech file: enough to start."""
        return self.image is not None and self.audio is not None


def video_kind(key: str) -> str | None:
    """"source", "ref_pose" or "ref_eyeblink" for a video object of that name, else None."""
    name = key.rsplit("/", 1)[-1]
    m = _NAMED_RE.match(name)
    return m.group(1).lower() if m and name.lower().endswith(VIDEO_EXTENSIONS) else None


def reference_kind(key: str) -> str | None:
    kind = video_kind(key)
    return kind if kind in REFERENCE_KINDS else None


def video_key(job: JobKeys, kind: str, path: str | PurePath) -> str:
    """Where an uploaded video of ``kind`` goes so that the drop folder recognises it: inbox/<job>/<kind>.<ext>."""
    return f"{job.inbox}{kind}{PurePath(path).suffix.lower()}"


def is_video(path: str | PurePath) -> bool:
    return str(path).lower().endswith(VIDEO_EXTENSIONS)


def read_folder(keys: list[str], job: JobKeys) -> DropFolder:
    keys = sorted(k for k in keys if k.startswith(job.inbox) and "/" not in k[len(job.inbox):])
    named = {k: kind for k in keys if (kind := video_kind(k))}
    references = {kind: k for k, kind in named.items() if kind in REFERENCE_KINDS}
    media = [k for k in keys if k not in named]
    image = next((k for k, kind in named.items() if kind == SOURCE_VIDEO), None)
    image = image or next((k for k in media if k.lower().endswith(IMAGE_EXTENSIONS)), None)
    audio = next((k for k in media if k.lower().endswith(AUDIO_EXTENSIONS)), None)
    return DropFolder(image, audio, references, job.params_file if job.params_file in keys else None)


def job_input(storage: Storage, bucket: str, job: JobKeys, folder: DropFolder) -> dict[str, Any]:
    """The StartExecution input of a complete folder (what ValidateJob checks)."""
    params: Any = {}
    if folder.params_key:
        # at most one byte over the limit is read: JobParams.load refuses the text by size (InvalidParams)
        data = storage.get(folder.params_key, limit=MAX_PARAMS_BYTES + 1)
        text = data.decode("utf-8", "replace")
        try:
            params = json.loads(text) if len(data) <= MAX_PARAMS_BYTES else text
        except ValueError:
            params = text
    if isinstance(params, dict):
        for kind, key in folder.references.items():
            params.setdefault(kind, key)
    return {"image": f"s3://{bucket}/{folder.image}", "audio": f"s3://{bucket}/{folder.audio}", "params": params}
