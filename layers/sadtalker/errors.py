"""Named errors: every failure a user can cause or fix has its own class.

The class name is the error name the state machine reports (Catch -> RecordFailure -> Fail with
that name) and the one written to ``outputs/<job>/error.json``; the message is one human sentence.
The state machine retries only ``TransientError`` (and AWS's own service errors): its Retry lists
name it.
"""

from __future__ import annotations


class UsageError(Exception):
    """A command-line usage problem (a missing input file, an unknown option value): exit code 2, not a
    job failure, so it is no named error of the catalogue."""


class SadTalkerError(Exception):
    """Base of all named errors. ``str(err)`` is a sentence meant for the user."""

    @property
    def name(self) -> str:
        return type(self).__name__


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


class ClipTooLong(SadTalkerError):
    """The job could not finish within the stack's time limits (a state's or the execution's timeout) with
    these settings: refused before any rendering is paid for."""


class CostLimitExceeded(SadTalkerError):
    """The job's quote (sadtalker.pricing) is above its ``max_cost_usd``: refused before anything is
    rendered."""


class WeightsMissing(SadTalkerError):
    """A checkpoint file that the job needs is not in the model store."""


class CheckpointError(SadTalkerError):
    """A checkpoint file is truncated, of the wrong layout, or does not match the network."""


class RenderFailed(SadTalkerError):
    """A render chunk failed for a reason that retrying will not fix."""


class FinalizeFailed(SadTalkerError):
    """The finalize step (paste-back, enhancement, mux) exited without writing its result."""


class AccessDenied(SadTalkerError):
    """A stage touched an object its role may not: a defect of the deployment (or of the stage), never of
    the user's input. On AWS S3 answers 403; the local runtime enforces the same policies."""


class TransientError(SadTalkerError):
    """A failure worth retrying (a worker that died, a storage hiccup)."""


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
        ClipTooLong,
        CostLimitExceeded,
        WeightsMissing,
        CheckpointError,
        RenderFailed,
        FinalizeFailed,
        AccessDenied,
        TransientError,
    )
)


def error_from_record(record: dict, default: type[SadTalkerError] = FinalizeFailed,
                      suffix: str = "") -> SadTalkerError:
    """``{"error": name, "message": ...}`` (error.json, a range task's range-errors/ record) -> the named exception.

    An unknown name becomes ``default`` with the name kept in the message: a record never makes a client
    crash with a foreign class, nor hides what the record said."""
    name = str(record.get("error") or "")
    message = f"{record.get('message') or 'failed without a message'}{suffix}"
    cls = globals().get(name)
    if isinstance(cls, type) and issubclass(cls, SadTalkerError):
        return cls(message)
    return default(f"{name}: {message}" if name and name != default.__name__ else message)
