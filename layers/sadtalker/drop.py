"""An S3-drop job folder (``inbox/<job>/``) -> the job's start input.

What a folder may hold and how each object is recognised (the README's "On AWS" section says the same):

* the portrait: the first image (png, jpg, jpeg, webp, bmp) in key order;
* reference videos: objects named ``ref_pose.<video ext>`` / ``ref_eyeblink.<video ext>`` (any case) become
  the ``ref_pose`` / ``ref_eyeblink`` parameters unless params.json names them itself; a video is never
  taken as the speech by its name alone;
* the speech: the first audio file in key order that is not a reference video (wav, mp3, m4a, aac, flac,
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
from typing import Any

from .jobs import JobKeys
from .params import MAX_PARAMS_BYTES
from .stages.validate_job import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from .storage import Storage

REFERENCE_KINDS = ("ref_pose", "ref_eyeblink")
_REFERENCE_RE = re.compile(r"^(ref_pose|ref_eyeblink)\.[^./]+$", re.I)


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


def reference_kind(key: str) -> str | None:
    name = key.rsplit("/", 1)[-1]
    m = _REFERENCE_RE.match(name)
    return m.group(1).lower() if m and name.lower().endswith(VIDEO_EXTENSIONS) else None


def read_folder(keys: list[str], job: JobKeys) -> DropFolder:
    keys = sorted(k for k in keys if k.startswith(job.inbox) and "/" not in k[len(job.inbox):])
    references = {kind: k for k in keys if (kind := reference_kind(k))}
    media = [k for k in keys if k not in references.values()]
    image = next((k for k in media if k.lower().endswith(IMAGE_EXTENSIONS)), None)
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
