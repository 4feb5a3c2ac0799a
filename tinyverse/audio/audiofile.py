"""Reading audio files for the audio modality: one reader, so every caller gets the same checks.

:func:`read_audio` is ``soundfile.read`` plus what libsndfile does not report: a WAV whose data chunk is cut
short (an interrupted copy or recording) is read without a word, only fewer samples come back. The header is
compared with the bytes on disk, and a short file is an error naming it.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

__all__ = ["AudioFileError", "read_audio", "wav_truncation"]

_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # a streaming writer that never went back to fill in the size


class AudioFileError(ValueError):
    """An audio file that cannot be used; ``str()`` is one line naming the file and the fix. (The capture
    dataset re-raises it as its DatasetError; ``modelmaker render`` prints it.)"""


def wav_truncation(path: str | Path) -> tuple[int, int, int] | None:
    """``(declared frames, frames on disk, sample rate)`` when a RIFF/RF64 WAV file holds less audio than its
    header declares; ``None`` for a complete WAV, a WAV of unknown length, or another format."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            return None
        block_align, rate, ds64_data = 0, 0, None
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            cid, csize = struct.unpack("<4sI", f.read(8))
            if cid == b"ds64" and csize >= 24:  # RF64: the 64-bit sizes live here
                ds64_data = struct.unpack("<QQQ", f.read(24))[1]
            elif cid == b"fmt " and csize >= 14:
                _, _, rate, _, block_align = struct.unpack("<HHIIH", f.read(14))
            elif cid == b"data":
                declared = ds64_data if (csize == 0xFFFFFFFF and ds64_data is not None) else csize
                if declared in _UNKNOWN_SIZES or block_align == 0:
                    return None
                present = size - (pos + 8)
                if present >= declared:
                    return None
                return declared // block_align, present // block_align, rate
            pos += 8 + csize + (csize & 1)  # chunks are word-aligned
    return None


def read_audio(path: str | Path, label: str) -> tuple[np.ndarray, int]:
    """``(samples (frames, channels) float32, sample rate)``. ``label`` names the file in errors (a config key
    such as ``dataset.input_path``, or "input WAV"). A missing, unreadable, truncated or empty file is a
    one-line :class:`AudioFileError`."""
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise AudioFileError(f"{label}: no such file: {path}")
    if not path.is_file():
        raise AudioFileError(f"{label}: not a file: {path}")
    cut = wav_truncation(path)
    if cut is None:
        try:
            declared = sf.info(str(path)).frames
            a, sr = sf.read(str(path), dtype="float32", always_2d=True)
        except (RuntimeError, TypeError, OSError) as e:  # libsndfile's errors are multi-line RuntimeErrors
            raise AudioFileError(f"{label}: cannot read {path}: {str(e).splitlines()[0]}; "
                               "check that it is a complete WAV, FLAC or AIFF file") from None
        # Other formats (FLAC, AIFF) carry a frame count too; fewer samples than that is the same fault.
        if 0 < declared < 1 << 62 and len(a) < declared:
            cut = (int(declared), len(a), int(sr))
    if cut is not None:
        declared, present, rate = cut
        secs = (lambda n: f"{n / rate:.2f} s") if rate else (lambda n: "? s")
        raise AudioFileError(f"{label}: {path} is truncated: its header declares {declared} samples "
                           f"({secs(declared)}) but the file holds {present} ({secs(present)}); copy or export "
                           "it again")
    if len(a) == 0:
        raise AudioFileError(f"{label}: {path} holds no audio (0 samples); export it again")
    return a, int(sr)
