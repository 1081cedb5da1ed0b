"""AudioFeatures stage: the speech object -> ``job.audio`` (npz).

``job.audio`` holds ``wav`` (num_frames * 640,) float32 16 kHz mono (cut/zero-padded to whole video
frames; finalize muxes it), ``indiv_mels`` (T, 80, 16) float32 mel windows, ``num_frames`` int64 (25 fps).
Any container ffmpeg reads is accepted (see ``sadtalker.audio.decode``); silence is valid (a still face).
The speech is known from here on, so the HLS stream's AAC segments are written here too (``hls.write_audio``).

Idle mode (``params.length_of_audio``, no speech object): ``int(seconds * 25)`` frames of zero mel windows
and a silent track, as the official demo's idle mode (zeros for the windows, silence for the video's sound).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path, PurePosixPath

import numpy as np

from ..audio import compute_features, decode_audio, frame_count
from ..audio.features import FPS, MEL_STEP, N_MELS, SAMPLES_PER_FRAME
from ..errors import InvalidAudio, InvalidInput, InvalidParams
from ..hls import write_audio
from ..jobs import JobKeys
from ..params import JobParams
from ..storage import Storage


def idle_features(seconds: float, max_seconds: float) -> dict[str, np.ndarray]:
    """The ``job.audio`` arrays of idle mode: silence and zero mel windows for ``int(seconds * 25)`` frames."""
    if seconds > max_seconds:  # the operator's ceiling may be below the job's own max_audio_seconds
        raise InvalidParams(f"parameter 'length_of_audio' = {seconds} s is longer than the {max_seconds:g} s a "
                            "clip may last")
    num_frames = int(seconds * FPS)
    if num_frames < 1:
        raise InvalidParams(f"parameter 'length_of_audio' = {seconds} s is shorter than one video frame (0.04 s)")
    return {"wav": np.zeros(num_frames * SAMPLES_PER_FRAME, np.float32),
            "indiv_mels": np.zeros((num_frames, N_MELS, MEL_STEP), np.float32), "num_frames": np.int64(num_frames)}


def audio_features(storage: Storage, job: JobKeys, audio_key: str, params: JobParams) -> dict:
    t0 = time.perf_counter()
    if params.idle:
        arrays = idle_features(params.length_of_audio, params.max_audio_seconds)
        num_frames = int(arrays["num_frames"])
        write_audio(storage, job, arrays["wav"], num_frames)
        storage.put_npz(job.audio, arrays)
        return {"audio_key": job.audio, "num_frames": num_frames, "seconds": round(num_frames / FPS, 3),
                "timings": {"decode_s": 0.0, "total_s": round(time.perf_counter() - t0, 3)}}
    try:
        data = storage.get(audio_key)
    except KeyError:
        raise InvalidInput(f"the speech object {audio_key!r} does not exist") from None
    if not data:
        raise InvalidAudio("the speech file is empty (0 bytes)")
    # ffmpeg needs a seekable file for some containers (mp4/m4a with the index at the end).
    suffix = PurePosixPath(audio_key).suffix[:16]
    with tempfile.TemporaryDirectory(prefix="sadtalker-audio-") as tmp:
        path = Path(tmp) / f"speech{suffix}"
        path.write_bytes(data)
        del data
        wav = decode_audio(path, params.max_audio_seconds)
    t_decode = time.perf_counter() - t0
    if frame_count(len(wav)) < 1:
        raise InvalidAudio(f"the speech is {len(wav) / 16000:.3f} s long; at least one video frame (0.04 s) is needed")
    feats = compute_features(wav)
    t_stream = time.perf_counter()
    write_audio(storage, job, feats.wav, feats.num_frames)
    t_stream = time.perf_counter() - t_stream
    storage.put_npz(
        job.audio,
        {"wav": feats.wav, "indiv_mels": feats.indiv_mels, "num_frames": np.int64(feats.num_frames)},
    )
    return {
        "audio_key": job.audio,
        "num_frames": feats.num_frames,
        "seconds": round(feats.num_frames / FPS, 3),
        "timings": {"decode_s": round(t_decode, 3), "stream_audio_s": round(t_stream, 3),
                    "total_s": round(time.perf_counter() - t0, 3)},
    }
