"""A generated default capture: a standard-style reamp input and a reference "device" rendered with pedalboard.

The input follows the layout of NAM's standard capture signal (v3_0_0.wav), shortened so that a 2-core CPU
trains on it in minutes::

    validation block | silence | blip, blip | chirps | noise | plucked-string phrases at several levels
    | silence | validation block (identical to the first)

Everything is deterministic from ``seed``. :func:`generated_capture` caches the pair (``input.wav``,
``output.wav``) and a ``capture.json`` sidecar (layout + device settings) under
``~/.cache/tinyverse/captures/<hash>/`` (or ``$TINYVERSE_CACHE``), so a run never regenerates it.

A user who reamps their own amp with this ``input.wav`` gets the same layout (read from the sidecar next
to the input file), so latency calibration and the validation blocks work on their recording too.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CaptureLayout", "DeviceSettings", "generated_capture", "standard_input", "render_device",
           "cache_root", "LAYOUT_VERSION"]

LAYOUT_VERSION = "tinyverse-capture-1"


@dataclass
class CaptureLayout:
    """Where things are in a standard-style input (sample indices at ``sample_rate``)."""

    sample_rate: int
    length: int
    validation: list[list[int]]  # [[start, stop), [start, stop)] — the two identical validation blocks
    blips: list[int]  # sample index of each blip
    blip_window: list[int]  # [start, stop) region holding the blips (silence around them)
    background: list[int]  # [start, stop) of silence just before the blips (noise floor for latency)
    train: list[int]  # [start, stop) the region used for training (between the validation blocks)
    segments: dict[str, list[int]] = field(default_factory=dict)  # name -> [start, stop)
    version: str = LAYOUT_VERSION

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CaptureLayout":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class DeviceSettings:
    """The reference device: input gain → tone (high-pass + mid peak) → drive/clipping → low-pass → level.

    ``noise_db`` adds a seeded noise floor to the recording, as a real reamp has; ``latency`` delays the
    output by whole samples, as an audio interface would.
    """

    input_gain_db: float = 6.0
    highpass_hz: float = 90.0
    mid_hz: float = 800.0
    mid_gain_db: float = 4.0
    mid_q: float = 0.9
    drive_db: float = 18.0
    clip_threshold_db: float = -3.0
    lowpass_hz: float = 6000.0
    level_db: float = -8.0
    noise_db: float = -90.0
    latency: int = 12
    gear_make: str = "tinyverse"
    gear_model: str = "Generated Overdrive"
    gear_type: str = "pedal"
    tone_type: str = "overdrive"


def cache_root() -> Path:
    env = os.environ.get("TINYVERSE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tinyverse"


# ------------------------------------------------------------------------------------------ input signal


def _pluck(rng: np.random.Generator, freq: float, dur: int, sr: int, decay: float = 0.996) -> np.ndarray:
    """One Karplus-Strong plucked string (noise burst in a damped delay line)."""
    period = max(2, int(round(sr / freq)))
    buf = rng.uniform(-1, 1, period)
    buf -= buf.mean()
    out = np.empty(dur)
    # Vectorised by periods: each new period is the averaged, damped previous one.
    n_periods = dur // period + 1
    tiles = np.empty((n_periods, period))
    tiles[0] = buf
    for k in range(1, n_periods):
        prev = tiles[k - 1]
        tiles[k] = decay * 0.5 * (prev + np.roll(prev, -1))
    out[:] = tiles.reshape(-1)[:dur]
    return out


_SCALE = np.array([82.41, 110.0, 146.83, 196.0, 246.94, 329.63])  # open strings E2..E4


def _phrase(rng: np.random.Generator, seconds: float, sr: int, level_db: float) -> np.ndarray:
    """Plucked notes and chords with random onsets, normalised to peak ``level_db`` dBFS."""
    n = int(seconds * sr)
    out = np.zeros(n)
    t = 0
    while t < n - sr // 10:
        dur = int(rng.uniform(0.15, 0.8) * sr)
        chord = rng.random() < 0.3
        notes = rng.choice(len(_SCALE), size=3 if chord else 1, replace=False)
        for i in notes:
            fret = rng.integers(0, 8)
            f = _SCALE[i] * 2 ** (fret / 12)
            start = t + (rng.integers(0, sr // 100) if chord else 0)
            d = min(int(dur * 1.5), n - start)
            if d > 0:
                out[start:start + d] += rng.uniform(0.5, 1.0) * _pluck(rng, f, d, sr, decay=rng.uniform(0.990, 0.998))
        t += dur
    peak = np.max(np.abs(out)) or 1.0
    return out / peak * 10 ** (level_db / 20)


def _chirp(seconds: float, sr: int, f0: float = 20.0, f1: float = 20_000.0, level_db: float = -6.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    k = np.log(f1 / f0) / seconds
    phase = 2 * np.pi * f0 * (np.exp(k * t) - 1) / k
    fade = np.minimum(1.0, np.minimum(t, seconds - t) / 0.01)
    return np.sin(phase) * fade * 10 ** (level_db / 20)


def standard_input(sample_rate: int = 48_000, seed: int = 0, seconds: float = 40.0) -> tuple[np.ndarray, CaptureLayout]:
    """The standard-style input (float32, mono) and its layout. ``seconds`` is the approximate total."""
    sr = int(sample_rate)
    rng = np.random.default_rng(seed)
    # Proportions loosely follow v3_0_0.wav; the phrase section takes whatever is left.
    val_s = max(1.0, round(0.1 * seconds, 2))
    silence_s, blip_s, chirp_s, noise_s, tail_s = 0.5, 2.0, max(1.0, 0.08 * seconds), max(1.0, 0.06 * seconds), 0.5
    phrase_s = max(2.0, seconds - 2 * val_s - silence_s - blip_s - chirp_s - noise_s - tail_s)

    vrng = np.random.default_rng(seed + 1)
    validation = np.concatenate([_phrase(vrng, 0.6 * val_s, sr, -6.0), _phrase(vrng, 0.4 * val_s, sr, -18.0)])
    parts: list[tuple[str, np.ndarray]] = [("validation_1", validation), ("silence_1", np.zeros(int(silence_s * sr)))]
    blips = np.zeros(int(blip_s * sr))
    blip_offsets = [int(0.5 * sr), int(1.5 * sr)]  # 1 s apart, as in NAM's capture
    for o in blip_offsets:
        blips[o] = 0.5
    parts.append(("blips", blips))
    parts.append(("chirps", np.concatenate([_chirp(chirp_s / 2, sr, level_db=-12.0), _chirp(chirp_s / 2, sr, level_db=-1.0)])))
    noise = rng.standard_normal(int(noise_s * sr))
    noise_env = np.linspace(0.02, 0.3, noise.size)  # rising level sweeps the nonlinearity
    parts.append(("noise", np.clip(noise * noise_env, -1, 1)))
    levels = (-24.0, -12.0, -6.0, -1.0)
    for i, lvl in enumerate(levels):
        parts.append((f"phrases_{int(-lvl)}dB", _phrase(rng, phrase_s / len(levels), sr, lvl)))
    parts.append(("silence_2", np.zeros(int(tail_s * sr))))
    parts.append(("validation_2", validation.copy()))

    segments: dict[str, list[int]] = {}
    pos = 0
    for name, a in parts:
        segments[name] = [pos, pos + a.size]
        pos += a.size
    x = np.concatenate([a for _, a in parts]).astype(np.float32)
    b0 = segments["blips"][0]
    layout = CaptureLayout(
        sample_rate=sr, length=int(x.size),
        validation=[segments["validation_1"], segments["validation_2"]],
        blips=[b0 + o for o in blip_offsets],
        blip_window=segments["blips"],
        background=[segments["silence_1"][0], b0 + blip_offsets[0] - sr // 10],
        train=[segments["validation_1"][1], segments["validation_2"][0]],
        segments=segments,
    )
    return x, layout


# ------------------------------------------------------------------------------------------ reference device


def render_device(x: np.ndarray, sample_rate: int, settings: DeviceSettings | None = None, seed: int = 0) -> np.ndarray:
    """Run ``x`` through the reference device (pedalboard), return float32 mono of the same length."""
    from pedalboard import Clipping, Distortion, Gain, HighpassFilter, LowpassFilter, Pedalboard, PeakFilter

    s = settings or DeviceSettings()
    board = Pedalboard([
        Gain(gain_db=s.input_gain_db),
        HighpassFilter(cutoff_frequency_hz=s.highpass_hz),
        PeakFilter(cutoff_frequency_hz=s.mid_hz, gain_db=s.mid_gain_db, q=s.mid_q),
        Distortion(drive_db=s.drive_db),
        Clipping(threshold_db=s.clip_threshold_db),
        LowpassFilter(cutoff_frequency_hz=s.lowpass_hz),
        Gain(gain_db=s.level_db),
    ])
    y = board(np.asarray(x, dtype=np.float32)[None, :], float(sample_rate), reset=True)[0].astype(np.float64)
    if s.noise_db > -200:
        y += np.random.default_rng(seed + 7).standard_normal(y.size) * 10 ** (s.noise_db / 20)
    if s.latency > 0:
        y = np.concatenate([np.zeros(s.latency), y[:-s.latency]])
    return y.astype(np.float32)


# ------------------------------------------------------------------------------------------ cached pair


def _key(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def generated_capture(sample_rate: int = 48_000, seed: int = 0, seconds: float = 40.0,
                      device: DeviceSettings | dict[str, Any] | None = None,
                      cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Make (or reuse) the generated capture; returns paths, layout, settings and whether it was cached.

    The cache key hashes every parameter that changes the audio, so a changed setting makes a new pair.
    """
    import soundfile as sf

    settings = device if isinstance(device, DeviceSettings) else DeviceSettings(**(device or {}))
    params = {"layout": LAYOUT_VERSION, "sample_rate": int(sample_rate), "seed": int(seed),
              "seconds": float(seconds), "device": asdict(settings)}
    folder = Path(cache_dir) if cache_dir else cache_root() / "captures" / _key(params)
    sidecar = folder / "capture.json"
    if sidecar.is_file() and (folder / "input.wav").is_file() and (folder / "output.wav").is_file():
        meta = json.loads(sidecar.read_text())
        if meta.get("params") == params:
            return {**meta, "input_path": str(folder / "input.wav"), "output_path": str(folder / "output.wav"),
                    "folder": str(folder), "cached": True}
    folder.mkdir(parents=True, exist_ok=True)
    x, layout = standard_input(sample_rate, seed, seconds)
    y = render_device(x, sample_rate, settings, seed)
    # Written to temporary names then renamed, so an interrupted run never leaves a half pair in the cache.
    for name, a in (("input.wav", x), ("output.wav", y)):
        sf.write(folder / (name + ".tmp.wav"), a, int(sample_rate), subtype="FLOAT")
        os.replace(folder / (name + ".tmp.wav"), folder / name)
    meta = {"params": params, "layout": asdict(layout), "device": asdict(settings),
            "description": "tinyverse generated capture: standard-style input through a pedalboard "
                           "gain → high-pass → mid peak → distortion → clipping → low-pass → level chain"}
    tmp = folder / "capture.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, sidecar)
    # The layout also sits next to the input under the name a user's reamp is looked up by.
    (folder / "input.layout.json").write_text(json.dumps(asdict(layout), indent=1))
    return {**meta, "input_path": str(folder / "input.wav"), "output_path": str(folder / "output.wav"),
            "folder": str(folder), "cached": False}
