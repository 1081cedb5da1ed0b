"""The storage layout of one job: every artefact's key, in one place.

``inbox/<job>/`` holds what the user dropped (never modified), ``work/<job>/`` the intermediates
(lifecycle-expired on AWS), ``outputs/<job>/`` the results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidInput

JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$")


def check_job_id(job_id: str) -> str:
    """Job ids double as Step Functions execution names and key segments: 1-80 safe characters."""
    if not JOB_ID_RE.match(job_id or ""):
        raise InvalidInput(
            f"job id {job_id!r} is not valid: use 1-80 letters, digits, '-' or '_' (starting with a letter or digit)"
        )
    return job_id


@dataclass(frozen=True)
class JobKeys:
    job_id: str

    def __post_init__(self) -> None:
        check_job_id(self.job_id)

    # --- work/ ---------------------------------------------------------------------------------------
    @property
    def work(self) -> str:
        return f"work/{self.job_id}/"

    @property
    def original_image(self) -> str:
        """The decoded source photo (RGB PNG), the canvas of paste-back."""
        return self.work + "original.png"

    @property
    def source_image(self) -> str:
        """The size x size face crop the renderer animates (lossless PNG)."""
        return self.work + "source.png"

    @property
    def face(self) -> str:
        """Preprocess output: first coefficients, crop info, landmarks (npz)."""
        return self.work + "face.npz"

    @property
    def audio(self) -> str:
        """AudioFeatures output: 16 kHz waveform, mel windows, frame count (npz)."""
        return self.work + "audio.npz"

    @property
    def coeffs(self) -> str:
        """Audio2Coeff output: the per-frame 70-d coefficient sequence (npz)."""
        return self.work + "coeffs.npz"

    def ref_coeffs(self, kind: str) -> str:
        """Per-frame coefficients of a reference video (npz); kind is "pose" or "eyeblink"."""
        if kind not in ("pose", "eyeblink"):
            raise ValueError(f"reference kind must be 'pose' or 'eyeblink', got {kind!r}")
        return f"{self.work}ref_{kind}.npz"

    def chunk(self, start: int, end: int) -> str:
        """Rendered frames [start, end) as lossless uint8 arrays (npz)."""
        return self.work + f"chunks/{start:06d}-{end:06d}.npz"

    def enhanced_chunk(self, start: int, end: int) -> str:
        """Enhanced frames [start, end) (GFPGAN + 2x background) as lossless uint8 arrays (npz)."""
        return self.work + f"enhanced/{start:06d}-{end:06d}.npz"

    # --- outputs/ ------------------------------------------------------------------------------------
    @property
    def outputs(self) -> str:
        return f"outputs/{self.job_id}/"

    @property
    def video(self) -> str:
        return self.outputs + "video.mp4"

    @property
    def preview(self) -> str:
        return self.outputs + "preview.jpg"

    @property
    def result(self) -> str:
        return self.outputs + "result.json"

    @property
    def error(self) -> str:
        return self.outputs + "error.json"
