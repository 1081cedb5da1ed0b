"""ffprobe-style checks of a speech file from its first bytes and its size (no decoder, no ffmpeg).

ValidateJob runs as a light function (no ffmpeg binary, no torch) and must not download a 200 MB upload
to refuse it. What a container's header says is enough to catch the common mistakes before any compute
is spent: a file that is not audio at all (a photo or a document renamed .wav), a WAV without a format,
an MP4/M4A cut short before its index (``moov``) box, an MP4 without a sound track. Decoding - and so the
decoded-length limit - stays with AudioFeatures.

``probe_audio(head, size, key)`` returns small facts (``container``, and ``sample_rate`` / ``channels``
where the header states them) or raises ``InvalidAudio`` naming the file and what is wrong. A header
that runs past ``head`` is accepted as far as it was read: the check never guesses about bytes it has
not seen.
"""

from __future__ import annotations

import struct
from typing import Any

from .errors import InvalidAudio

ACCEPTED = "WAV, MP3, M4A/MP4, AAC, FLAC, Ogg (Vorbis/Opus) or WebM"

# MPEG audio frame header tables (ISO 11172-3 / 13818-3): sample rates by version bits, index 3 reserved.
_MPEG_RATES = {0b11: (44100, 48000, 32000), 0b10: (22050, 24000, 16000), 0b00: (11025, 12000, 8000)}
# ADTS sampling_frequency_index 0..12 (13..15 reserved).
_ADTS_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
# Top-level ISO-BMFF boxes a QuickTime/MP4 file may start with (old QuickTime files have no ftyp).
_MP4_FIRST = {b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot"}
# Ogg beginning-of-stream packets of audio codecs ffmpeg decodes.
_OGG_AUDIO = {b"\x01vorbis": "vorbis", b"OpusHead": "opus", b"\x7fFLAC": "flac", b"Speex   ": "speex"}


def _bad(key: str, why: str) -> InvalidAudio:
    return InvalidAudio(f"the speech file {key!r} {why}")


def probe_audio(head: bytes, size: int, key: str) -> dict[str, Any]:
    """Recognise the container from its magic bytes and sanity-check its header."""
    if head[:4] in (b"RIFF", b"RF64", b"BW64"):
        return _wav(head, key)
    if head[:4] == b"fLaC":
        return _flac(head, key)
    if head[:4] == b"OggS":
        return _ogg(head, key)
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return _ebml(head, key)
    if len(head) >= 8 and head[4:8] in _MP4_FIRST:
        return _mp4(head, size, key)
    if head[:3] == b"ID3":
        return _id3(head, size, key)
    if len(head) >= 4 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return _frame_sync(head, key)
    shown = head[:8].hex(" ")
    raise _bad(key, f"is not a {ACCEPTED} file (it starts with bytes {shown}); upload the speech as audio")


# --- RIFF/WAVE -------------------------------------------------------------------------------------------
def _wav(head: bytes, key: str) -> dict[str, Any]:
    if head[8:12] != b"WAVE":
        raise _bad(key, f"is a RIFF file of type {head[8:12]!r}, not WAVE audio")
    pos, facts, byte_rate = 12, {"container": "wav"}, 0
    while pos + 8 <= len(head):
        cid, length = head[pos:pos + 4], struct.unpack("<I", head[pos + 4:pos + 8])[0]
        body = head[pos + 8:pos + 8 + length]
        if cid == b"fmt ":
            if len(body) < 16:
                raise _bad(key, "has a WAV format chunk too short to describe any audio")
            fmt, channels, rate = struct.unpack("<HHI", body[:8])
            if fmt == 0 or channels == 0 or rate == 0:
                raise _bad(key, f"has a WAV format chunk without audio (format {fmt}, {channels} channels, {rate} Hz)")
            facts.update(sample_rate=rate, channels=channels)
            byte_rate = struct.unpack("<I", body[8:12])[0]
        elif cid == b"data":
            if "sample_rate" not in facts:
                raise _bad(key, "has WAV sample data before any format chunk, so it cannot be decoded")
            if byte_rate and length != 0xFFFFFFFF:  # RF64 states its length elsewhere
                facts["seconds"] = round(length / byte_rate, 3)  # what the quote needs before decoding
            return facts
        pos += 8 + length + (length & 1)  # chunks are padded to an even length
    return facts  # the data chunk lies beyond what was read (a long LIST/metadata chunk): fine


# --- FLAC ------------------------------------------------------------------------------------------------
def _flac(head: bytes, key: str) -> dict[str, Any]:
    # the first metadata block must be STREAMINFO (type 0, 34 bytes)
    if len(head) < 8 + 34 or head[4] & 0x7F != 0:
        raise _bad(key, "is a FLAC file without its STREAMINFO header")
    info = head[8:8 + 34]
    rate = int.from_bytes(info[10:13], "big") >> 4
    channels = ((info[12] >> 1) & 0x07) + 1
    if rate == 0:
        raise _bad(key, "is a FLAC file whose header states a sample rate of 0 Hz")
    total = (info[13] & 0x0F) << 32 | int.from_bytes(info[14:18], "big")  # 0 = unknown
    return {"container": "flac", "sample_rate": rate, "channels": channels,
            **({"seconds": round(total / rate, 3)} if total else {})}


# --- Ogg -------------------------------------------------------------------------------------------------
def _ogg(head: bytes, key: str) -> dict[str, Any]:
    if len(head) < 28 or head[4] != 0 or not head[5] & 0x02:
        raise _bad(key, "is not a valid Ogg stream (no beginning-of-stream page)")
    segments = head[26]
    packet = head[27 + segments:27 + segments + 8]
    codec = next((name for magic, name in _OGG_AUDIO.items() if packet.startswith(magic)), None)
    if codec is None:
        raise _bad(key, f"is an Ogg file whose first stream is not audio (starts {packet[:8]!r})")
    return {"container": "ogg", "codec": codec}


# --- Matroska / WebM -------------------------------------------------------------------------------------
def _ebml(head: bytes, key: str) -> dict[str, Any]:
    # The EBML header (its first few dozen bytes) names the document type (element 0x4282); tracks come
    # later and are left to the decoder.
    header = head[:64]
    doctype = next((d for d in (b"webm", b"matroska") if b"\x42\x82" in header and d in header), None)
    if doctype is None:
        raise _bad(key, "is an EBML file that is neither WebM nor Matroska")
    return {"container": doctype.decode()}


# --- MP4 / M4A / QuickTime -------------------------------------------------------------------------------
def _boxes(data: bytes, start: int, end: int):
    """(type, body start, box end) of the ISO-BMFF boxes in data[start:end]; a box may end past ``end``."""
    pos = start
    while pos + 8 <= end:
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if length == 1:
            if pos + 16 > len(data):
                return
            length, header = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        elif length == 0:  # extends to the end of the file
            length = -1
        if 0 <= length < header:
            raise ValueError(f"box {kind!r} declares {length} bytes")
        yield kind, pos + header, (pos + length if length >= 0 else None)
        if length < 0:
            return
        pos += length


def _mp4(head: bytes, size: int, key: str) -> dict[str, Any]:
    facts: dict[str, Any] = {"container": "mp4"}
    if head[4:8] == b"ftyp" and len(head) >= 12:
        facts["brand"] = head[8:12].decode("latin-1").strip()
    seen: list[bytes] = []
    try:
        for kind, body, box_end in _boxes(head, 0, len(head)):
            if not kind.isascii() or not kind.strip(b" ").isalnum():
                raise ValueError(f"box type {kind!r} is not a box name")
            seen.append(kind)
            end = size if box_end is None else box_end
            if end > size:
                if kind == b"moov" or b"moov" not in seen:
                    raise _bad(key, f"is cut short: it ends inside its {kind.decode()!r} box, before the index (moov) "
                                    "box that says where the sound is; upload the complete file")
                return facts  # the index came first: the decoder reads what is there
            if kind == b"moov" and end <= len(head):
                if not _has_sound_track(head, body, end):
                    raise _bad(key, "is an MP4/M4A file without an audio track (a video without sound?)")
                facts["audio_track"] = True
    except ValueError as exc:
        raise _bad(key, f"is not a valid MP4/M4A file ({exc})") from None
    return facts


def _has_sound_track(data: bytes, start: int, end: int) -> bool:
    """moov -> trak -> mdia -> hdlr with handler type 'soun'."""
    for kind, body, box_end in _boxes(data, start, end):
        if kind == b"trak":
            for k2, b2, e2 in _boxes(data, body, box_end or end):
                if k2 == b"mdia":
                    for k3, b3, _ in _boxes(data, b2, e2 or end):
                        # hdlr: version/flags (4), pre_defined (4), handler_type (4)
                        if k3 == b"hdlr" and data[b3 + 8:b3 + 12] == b"soun":
                            return True
    return False


# --- MP3 / AAC -------------------------------------------------------------------------------------------
def _id3(head: bytes, size: int, key: str) -> dict[str, Any]:
    if len(head) < 10 or any(b & 0x80 for b in head[6:10]):
        raise _bad(key, "has a damaged ID3 tag header")
    tag = 10 + (head[6] << 21 | head[7] << 14 | head[8] << 7 | head[9]) + (10 if head[5] & 0x10 else 0)
    if tag >= size:
        raise _bad(key, "holds an ID3 tag (title, cover art) but no audio after it")
    if tag + 4 > len(head):
        return {"container": "mp3"}  # a long tag (cover art): the frames begin beyond what was read
    rest = head[tag:]
    while rest[:1] == b"\0":  # some encoders pad after the tag
        rest = rest[1:]
    if len(rest) >= 4 and rest[0] == 0xFF and rest[1] & 0xE0 == 0xE0:
        return _frame_sync(rest, key)
    raise _bad(key, "holds an ID3 tag followed by something that is not MP3 or AAC audio")


def _frame_sync(head: bytes, key: str) -> dict[str, Any]:
    version, layer = (head[1] >> 3) & 0x03, (head[1] >> 1) & 0x03
    if layer == 0:  # ADTS (AAC): 12-bit sync, layer 00
        if head[1] & 0xF0 != 0xF0:
            raise _bad(key, "has an AAC (ADTS) frame header with a broken sync word")
        rate_index, channels = (head[2] >> 2) & 0x0F, ((head[2] & 0x01) << 2) | (head[3] >> 6)
        if rate_index >= len(_ADTS_RATES):
            raise _bad(key, f"has an AAC (ADTS) header with a reserved sample rate index {rate_index}")
        return {"container": "aac", "sample_rate": _ADTS_RATES[rate_index], **({"channels": channels} if channels else {})}
    bitrate_index, rate_index = head[2] >> 4, (head[2] >> 2) & 0x03
    if version == 0b01 or bitrate_index == 0x0F or rate_index == 0x03:
        raise _bad(key, "has an MPEG audio frame header with reserved values (not an MP3 file)")
    channels = 1 if head[3] >> 6 == 0b11 else 2
    return {"container": "mp3", "sample_rate": _MPEG_RATES[version][rate_index], "channels": channels}
