"""Speech input: decoding any audio/video file to 16 kHz mono, and SadTalker's mel features."""

from .decode import SAMPLE_RATE, decode_audio, probe, resample
from .features import (
    FPS,
    SAMPLES_PER_FRAME,
    AudioFeatures,
    compute_features,
    fit_to_frames,
    frame_count,
    frame_windows,
    mel_basis,
    melspectrogram,
    window_starts,
)

__all__ = [
    "FPS",
    "SAMPLES_PER_FRAME",
    "SAMPLE_RATE",
    "AudioFeatures",
    "compute_features",
    "decode_audio",
    "fit_to_frames",
    "frame_count",
    "frame_windows",
    "mel_basis",
    "melspectrogram",
    "probe",
    "resample",
    "window_starts",
]
