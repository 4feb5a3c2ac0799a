"""Train / validation splits of a capture that do not leak: layout by content, custom ranges, repeat checks.

NAM's standard input (``v3_0_0.wav``) plays a validation block first and the *same* block again at the end;
a model trained on the first copy and scored on the second has seen the scored input (with a deterministic
device, the scored output too), so its ESR is leaked. Three things keep a split honest:

- :func:`detect_layout` finds that layout in any input by its content — the block at the start that repeats
  later, and the blips after it — so a user's ``v3_0_0.wav`` (or any input built the same way) is recognised
  without a sidecar;
- :func:`parse_range` reads ``dataset.train_range`` / ``dataset.validation_range`` (seconds or samples, NAM's
  negative-from-the-end convention);
- :func:`find_repeats` finds every place in the training region whose input repeats (part of) the validation
  input; :meth:`tinyverse.audio.dataset.CaptureData.windows` never takes a window that overlaps one.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

from tinyverse.audio.capture import CaptureLayout
from tinyverse.errors import DatasetError

__all__ = ["detect_layout", "find_repeats", "parse_range", "subtract_regions"]

SILENCE = 1e-4  # |x| below this is silence (about -80 dBFS)
MATCH_ATOL = 1e-4  # an input "repeats" when samples agree to this (16-bit files round-trip well within it)
MIN_BLOCK_SECONDS = 1.0  # a repeated block shorter than this is not a validation block
ANCHORS = 4  # loud samples of a probe that every candidate start must reproduce before the full check
CHUNK_SECONDS = 0.5  # the validation input is searched for in chunks this long (catches partial repeats)

_UNIT = re.compile(r"^\s*(-?[0-9.]+(?:e-?[0-9]+)?)\s*(s|sec|seconds|samples|smp)?\s*$")


def parse_range(value: Any, sample_rate: int, length: int, key: str) -> list[int]:
    """``[start, stop)`` in samples from ``[start, stop]`` given in seconds (numbers, or strings like ``"9s"``)
    or samples (strings like ``"432000 samples"``); ``null`` is the edge, a negative value counts from the end
    (NAM's ``stop_seconds: -9``)."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise DatasetError(f"{key}: expected [start, stop] (seconds, or strings like '48000 samples'; null for "
                           f"the edge; negative counts from the end), got {value!r}")
    out = []
    for end, v, edge in (("start", value[0], 0), ("stop", value[1], length)):
        if v is None:
            out.append(edge)
            continue
        if isinstance(v, bool):
            raise DatasetError(f"{key}: {end} must be a number of seconds or 'N samples', got {v!r}")
        if isinstance(v, (int, float)):
            n = int(round(float(v) * sample_rate))
        else:
            m = _UNIT.match(str(v))
            if not m:
                raise DatasetError(f"{key}: cannot read {end} {v!r}; write seconds (9.5, '9.5s') or samples "
                                   "('456000 samples')")
            number, unit = float(m.group(1)), (m.group(2) or "s")
            n = int(number) if unit in ("samples", "smp") else int(round(number * sample_rate))
        out.append(length + n if n < 0 else n)
    a, b = out
    if not 0 <= a < b <= length:
        raise DatasetError(f"{key}: {value!r} is [{a}, {b}) in samples, which is empty or outside the capture of "
                           f"{length} samples ({length / sample_rate:.2f} s)")
    return [a, b]


def subtract_regions(region: Sequence[int], holes: Sequence[Sequence[int]]) -> list[list[int]]:
    """``region`` minus ``holes`` (all ``[start, stop)``), as sorted disjoint pieces."""
    pieces = [[int(region[0]), int(region[1])]]
    for h0, h1 in sorted(holes):
        out = []
        for p0, p1 in pieces:
            if h1 <= p0 or h0 >= p1:
                out.append([p0, p1])
                continue
            if h0 > p0:
                out.append([p0, h0])
            if h1 < p1:
                out.append([h1, p1])
        pieces = out
    return pieces


def _match_starts(probe: np.ndarray, x: np.ndarray) -> list[int]:
    """Every start ``s`` where ``x[s:s + len(probe)]`` equals ``probe`` to :data:`MATCH_ATOL`.

    Candidates come from the probe's loudest samples (a start must reproduce them), so the search is a few
    linear scans of ``x`` rather than a correlation; each candidate is then checked sample by sample."""
    n = len(probe)
    if n == 0 or len(x) < n:
        return []
    anchors = np.argsort(-np.abs(probe))[:ANCHORS]
    last = len(x) - n  # the last possible start
    a = int(anchors[0])
    starts = np.flatnonzero(np.abs(x[a:a + last + 1] - probe[a]) <= MATCH_ATOL)
    for b in anchors[1:]:
        if starts.size == 0:
            break
        starts = starts[np.abs(x[starts + int(b)] - probe[int(b)]) <= MATCH_ATOL]
    return [int(s) for s in starts if np.max(np.abs(x[s:s + n] - probe)) <= MATCH_ATOL]


def find_repeats(x: np.ndarray, validation: Sequence[int], search: Sequence[int],
                 sample_rate: int) -> list[list[int]]:
    """Regions of ``x[search]`` whose input repeats part of the validation input ``x[validation]`` (sample for
    sample), merged; silent stretches are ignored (silence repeats everywhere and teaches nothing)."""
    v0, v1 = int(validation[0]), int(validation[1])
    s0, s1 = int(search[0]), int(search[1])
    chunk = max(256, int(CHUNK_SECONDS * sample_rate))
    found: list[list[int]] = []
    for c0 in range(v0, v1, chunk):
        probe = x[c0:min(c0 + chunk, v1)]
        if len(probe) < 256 or np.sqrt(np.mean(probe.astype(np.float64) ** 2)) < SILENCE:
            continue
        for s in _match_starts(probe, x[s0:s1]):
            start = s0 + s
            if v0 <= start < v1:  # the validation block itself
                continue
            found.append([start, start + len(probe)])
    merged: list[list[int]] = []
    for a, b in sorted(found):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return merged


def _blips(x: np.ndarray, lo: int, hi: int, sample_rate: int) -> list[int]:
    """Isolated impulses in ``x[lo:hi]``: a loud sample with silence for 0.1 s on both sides."""
    seg = np.abs(x[lo:hi])
    guard = sample_rate // 10
    audible = np.concatenate([[0], np.cumsum(seg > SILENCE * 10)])
    out: list[int] = []
    for k in np.flatnonzero(seg > 0.05):
        a, b = max(0, k - guard), min(len(seg), k + guard + 1)
        if audible[b] - audible[a] == 1 and (not out or lo + k - out[-1] > guard):  # only the impulse itself
            out.append(lo + int(k))
    return out


def detect_layout(x: np.ndarray, sample_rate: int) -> CaptureLayout | None:
    """The standard layout of ``x`` found by content, or None.

    NAM's layout: a validation block at the start (after leading silence) that repeats sample for sample later
    in the file (the last repeat is the scored block), blips in the silence after the first block. Training is
    what lies between the two copies."""
    x = np.asarray(x, np.float32)
    n, sr = len(x), int(sample_rate)
    loud = np.flatnonzero(np.abs(x) > SILENCE)
    if loud.size == 0:
        return None
    p0 = int(loud[0])
    probe_len = int(MIN_BLOCK_SECONDS * sr)
    if p0 + probe_len > n // 2:
        return None
    starts = [s for s in _match_starts(x[p0:p0 + probe_len], x) if s >= p0 + probe_len]
    if not starts:
        return None
    q = starts[-1]
    # Extend the block while the two copies agree (silence inside the block agrees too).
    m = min(q - p0, n - q)
    diff = np.abs(x[p0:p0 + m] - x[q:q + m]) > MATCH_ATOL
    length = int(np.argmax(diff)) if diff.any() else m
    # A block ends at its last loud sample (the silence after it is not part of it).
    tail = np.flatnonzero(np.abs(x[p0:p0 + length]) > SILENCE)
    length = int(tail[-1]) + 1 if tail.size else length
    if length < probe_len:
        return None
    val1, val2 = [p0, p0 + length], [q, q + length]
    blips = _blips(x, val1[1], min(val2[0], val1[1] + 10 * sr), sr)
    background = [val1[1], blips[0] - sr // 10] if blips else [0, 0]
    blip_window = [blips[0] - sr // 10, blips[-1] + sr // 10] if blips else [0, 0]
    return CaptureLayout(sample_rate=sr, length=n, validation=[val1, val2], blips=blips, blip_window=blip_window,
                         background=background, train=[val1[1], val2[0]], segments={})
