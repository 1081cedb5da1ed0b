"""Named errors: every failure a user can cause or fix has its own class.

The class name is the error name the state machine reports (Catch -> RecordFailure -> Fail with
that name) and the one written to ``outputs/<job>/error.json``; the message is one human sentence.
Only ``TransientError`` subclasses are retried by the state machine.
"""

from __future__ import annotations


class SadTalkerError(Exception):
    """Base of all named errors. ``str(err)`` is a sentence meant for the user."""

    retryable = False

    @property
    def name(self) -> str:
        return type(self).__name__

    def to_record(self) -> dict[str, str]:
        return {"error": self.name, "message": str(self)}


class InvalidParams(SadTalkerError):
    """A job parameter is unknown, of the wrong type or out of range."""


class InvalidImage(SadTalkerError):
    """The source image cannot be decoded, is too small or too large."""


class NoFaceDetected(SadTalkerError):
    """No face was found in the source image (or in any frame of a reference video)."""


class InvalidAudio(SadTalkerError):
    """The speech file cannot be decoded, is empty or is longer than allowed."""


class InvalidInput(SadTalkerError):
    """A job's start input is malformed: a missing object, a non-S3 URI, another bucket."""


class InvalidCoefficients(SadTalkerError):
    """A coefficient file has the wrong shape or content."""


class InvalidChunk(SadTalkerError):
    """A render chunk range is empty or outside the clip."""


class WeightsMissing(SadTalkerError):
    """A checkpoint file that the job needs is not in the model store."""


class CheckpointError(SadTalkerError):
    """A checkpoint file is truncated, of the wrong layout, or does not match the network."""


class RenderFailed(SadTalkerError):
    """A render chunk failed for a reason that retrying will not fix."""


class FinalizeFailed(SadTalkerError):
    """The finalize step (paste-back, enhancement, mux) exited without writing its result."""


class TransientError(SadTalkerError):
    """A failure worth retrying (a worker that died, a storage hiccup)."""

    retryable = True


ERROR_NAMES: tuple[str, ...] = tuple(
    cls.__name__
    for cls in (
        InvalidParams,
        InvalidImage,
        NoFaceDetected,
        InvalidAudio,
        InvalidInput,
        InvalidCoefficients,
        InvalidChunk,
        WeightsMissing,
        CheckpointError,
        RenderFailed,
        FinalizeFailed,
        TransientError,
    )
)
