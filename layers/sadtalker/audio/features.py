"""Mel features of SadTalker (the original's audio.py and its data preparation), in float64 numpy/scipy like the original.

The original computes with librosa; we compute the STFT with numpy (no numba JIT warm-up) and the
Slaney mel filter bank ourselves, rounded to float32 as librosa builds it (its default dtype), which
reproduces the golden filter bank bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16000
FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640
N_FFT = 800
HOP = 200
WIN = 800
N_MELS = 80
FMIN = 55.0
FMAX = 7600.0
PREEMPHASIS = 0.97
MIN_LEVEL_DB = -100.0
REF_LEVEL_DB = 20.0
MAX_ABS_VALUE = 4.0
MEL_STEP = 16  # mel rows per video frame window
_STFT_BLOCK = 4096  # STFT frames per block: bounds memory for long clips


def frame_count(num_samples: int) -> int:
    """Video frames (25 fps) of a 16 kHz clip: the original's ``int(len / (sr / fps))``."""
    return int(num_samples / (SAMPLE_RATE / FPS))


def fit_to_frames(wav: np.ndarray, num_frames: int) -> np.ndarray:
    """Cut or zero-pad the waveform to exactly ``num_frames * 640`` samples."""
    n = int(num_frames * (SAMPLE_RATE / FPS))
    if len(wav) >= n:
        return wav[:n]
    return np.pad(wav, (0, n - len(wav)))


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    f_sp = 200.0 / 3
    hz = np.asanyarray(hz, dtype=np.float64)
    mels = hz / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep, mels)


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), freqs)


@lru_cache(maxsize=1)
def mel_basis() -> np.ndarray:
    """(80, 401) Slaney-normalised triangular filters, float32 values held in float64."""
    fft_freqs = np.fft.rfftfreq(N_FFT, d=1.0 / SAMPLE_RATE)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(np.array(FMIN)), _hz_to_mel(np.array(FMAX)), N_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)
    enorm = 2.0 / (mel_f[2 : N_MELS + 2] - mel_f[:N_MELS])
    # librosa scales its float32 array in place: float64 product, rounded back to float32.
    weights = (weights.astype(np.float64) * enorm[:, None]).astype(np.float32)
    out = weights.astype(np.float64)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=1)
def _hann_periodic() -> np.ndarray:
    from scipy.signal import get_window

    return get_window("hann", WIN, fftbins=True).astype(np.float64)


def melspectrogram(wav: np.ndarray) -> np.ndarray:
    """(T_mel, 80) float64 normalised log-mel, T_mel = 1 + len(wav) // 200."""
    from scipy.signal import lfilter

    y = lfilter([1.0, -PREEMPHASIS], [1.0], np.asarray(wav))  # float64 from here on
    pad = N_FFT // 2
    y = np.pad(y, (pad, pad))  # center=True with zero padding
    n_frames = 1 + (len(y) - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP][:n_frames]
    window = _hann_periodic()
    basis = mel_basis()
    mel = np.empty((n_frames, N_MELS), dtype=np.float64)
    for s in range(0, n_frames, _STFT_BLOCK):
        mag = np.abs(np.fft.rfft(frames[s : s + _STFT_BLOCK] * window, n=N_FFT, axis=1))  # (block, 401)
        mel[s : s + _STFT_BLOCK] = (basis @ mag.T).T
    min_level = np.exp(MIN_LEVEL_DB / 20 * np.log(10))
    db = 20 * np.log10(np.maximum(min_level, mel)) - REF_LEVEL_DB
    return np.clip(
        (2 * MAX_ABS_VALUE) * ((db - MIN_LEVEL_DB) / (-MIN_LEVEL_DB)) - MAX_ABS_VALUE, -MAX_ABS_VALUE, MAX_ABS_VALUE
    )


def window_starts(num_frames: int) -> np.ndarray:
    """First mel row of each video frame's window: ``int(80.0 * ((i - 2) / 25.0))`` (truncation)."""
    i = np.arange(num_frames, dtype=np.float64)
    return np.trunc(80.0 * ((i - 2) / float(FPS))).astype(np.int64)


def frame_windows(mel: np.ndarray, num_frames: int) -> np.ndarray:
    """(T, 80, 16) float32: for each video frame, 16 mel rows (clamped at the clip ends), transposed."""
    idx = window_starts(num_frames)[:, None] + np.arange(MEL_STEP)[None, :]
    idx = np.clip(idx, 0, mel.shape[0] - 1)
    return np.ascontiguousarray(mel[idx].transpose(0, 2, 1), dtype=np.float32)


@dataclass(frozen=True)
class AudioFeatures:
    """What the coefficient networks need from a clip."""

    wav: np.ndarray  # (num_frames * 640,) float32, the waveform actually used
    mel: np.ndarray  # (1 + len(wav) // 200, 80) float64
    indiv_mels: np.ndarray  # (num_frames, 80, 16) float32
    num_frames: int


def compute_features(wav16k: np.ndarray) -> AudioFeatures:
    """Frame count, cut/pad, mel spectrogram and per-frame windows of a 16 kHz mono waveform."""
    num_frames = frame_count(len(wav16k))
    wav = np.ascontiguousarray(fit_to_frames(np.asarray(wav16k, dtype=np.float32), num_frames))
    mel = melspectrogram(wav)
    return AudioFeatures(wav=wav, mel=mel, indiv_mels=frame_windows(mel, num_frames), num_frames=num_frames)
