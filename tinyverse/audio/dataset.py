"""The capture dataset (``DATASETS["nam_capture"]``): a reamp input/output pair, checked, aligned and windowed.

``NamCaptureDataset(input_path=..., output_path=...)`` reads a user's recording; with neither path it uses
the generated default capture (:mod:`tinyverse.audio.capture`). ``load()`` returns :class:`CaptureData`:
the aligned full signals, the layout, the calibrated latency, the repeatability ESR and the warnings;
``CaptureData.windows(receptive_field, ny)`` gives the training arrays once the model is known.

Every problem with the files is a :class:`tinyverse.errors.DatasetError` with a one-line message.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyverse.audio.audiofile import AudioFileError, read_audio
from tinyverse.audio.capture import CaptureLayout, DeviceSettings, generated_capture, standard_input
from tinyverse.audio.metrics import esr
from tinyverse.audio.split import detect_layout, find_repeats, parse_range, subtract_regions
from tinyverse.errors import DatasetError
from tinyverse.registry import DATASETS

log = logging.getLogger("tinyverse.audio")

__all__ = ["CaptureData", "NamCaptureDataset", "calibrate_latency", "LatencyResult", "alignment_lag"]

SAMPLE_RATES = (44_100, 48_000)
REPEATABILITY_LIMIT = 0.01
# The largest latency the blip calibration looks for (NAM's look-back after a blip). An output this much
# shorter than its input is a normal export that stops with the input; more means audio is missing.
LATENCY_SLACK = 10_000
# Cross-correlation check of the aligned pair: below MIN_CORRELATION the peak says nothing; a residual lag
# over WARN_LAG samples (NAM's blip-disagreement limit) is a warning, over MISALIGNED_SECONDS an error.
MIN_CORRELATION = 0.1
WARN_LAG = 20
MISALIGNED_SECONDS = 0.01
# NAM captures are usually recorded so the output peaks within about -20..-1 dBFS; far below, the noise floor and
# quantization weigh in the ESR; (clipping above is an error of its own).
QUIET_OUTPUT_PEAK_DB = -30.0


@dataclass
class LatencyResult:
    delay: int  # samples the output is shifted left by (NAM's "recommended" delay)
    delays: list[int]  # first threshold crossing after each blip, in samples
    threshold: float
    manual: bool
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"manual": self.delay if self.manual else None,
                "calibration": None if self.manual else {"algorithm_version": 1, "delays": self.delays,
                                                         "safety_factor": 1, "recommended": self.delay,
                                                         "threshold": self.threshold,
                                                         "warnings": {"messages": self.warnings}}}


def calibrate_latency(y: np.ndarray, layout: CaptureLayout, abs_threshold: float = 3e-4,
                      rel_threshold: float = 1e-3, safety: int = 1, look_back: int = 1000,
                      look_ahead: int = LATENCY_SLACK) -> LatencyResult:
    """NAM-style latency from the blips: first crossing of a threshold set from the background level just
    before the blips; recommended delay = earliest crossing − ``safety``. Delays that disagree by ≥ 20 samples,
    and delays at the earliest possible value (the output is already loud ``look_back`` samples before the
    blip: NAM's "lookahead" warning), are warned about."""
    b0, b1 = layout.background
    # The later half of the silence only: gear rings out for a moment after the loud audio before it (the
    # generated device's release: 0.16 in the first 0.1 s of the window, 1e-4 after, at a 30 s layout).
    b0 = max(b0, b1 - (b1 - b0) // 2)
    background = float(np.max(np.abs(y[b0:b1]))) if b1 > b0 else 0.0
    threshold = max(background + abs_threshold, (1.0 + rel_threshold) * background)
    delays, warnings = [], []
    for i, blip in enumerate(layout.blips):
        lo, hi = max(0, blip - look_back), min(len(y), blip + look_ahead)
        hits = np.flatnonzero(np.abs(y[lo:hi]) > threshold)
        if hits.size == 0:
            warnings.append(f"no response found to blip {i + 1} at sample {blip}")
            continue
        delays.append(int(lo + hits[0] - blip))
        if hits[0] == 0 and lo == blip - look_back:
            warnings.append(f"blip {i + 1}: the output is already above the trigger {look_back} samples before "
                            "the blip; the output is probably not aligned with the input")
    if not delays:
        raise DatasetError("latency calibration failed: the output never responds to the blips "
                           "(is the output silent, or is the input not the standard layout? set dataset.latency: N)")
    if max(delays) - min(delays) >= 20:
        warnings.append(f"blip delays disagree ({delays}); check the recording or set dataset.latency by hand")
    return LatencyResult(int(min(delays)) - safety, delays, threshold, False, warnings)


def alignment_lag(x: np.ndarray, y: np.ndarray, sample_rate: int, max_lag_seconds: float = 2.0,
                  segment_seconds: float = 10.0) -> tuple[int, float]:
    """Where ``y`` best matches ``x``: (lag in samples, positive when ``y`` is late; peak normalised
    cross-correlation, 0..1). Measured on a segment from the middle of the pair, lags up to
    ``max_lag_seconds`` (or a quarter of the length); a weak peak (< 0.1) means the lag says nothing."""
    from scipy.signal import correlate

    n = min(len(x), len(y))
    max_lag = min(int(max_lag_seconds * sample_rate), n // 4)
    seg = min(int(segment_seconds * sample_rate), n - 2 * max_lag)
    if seg <= 0:
        return 0, 0.0
    c = (n - seg) // 2
    xs = np.asarray(x[c:c + seg], np.float64)
    ys = np.asarray(y[c - max_lag:c + seg + max_lag], np.float64)
    r = correlate(ys, xs, mode="valid", method="fft")  # r[k] = sum_i ys[k + i] xs[i]: lag k − max_lag
    k = int(np.argmax(np.abs(r)))
    norm = float(np.sqrt(np.sum(xs ** 2) * np.sum(ys[k:k + seg] ** 2)))
    return k - max_lag, (float(abs(r[k])) / norm if norm > 0 else 0.0)


def _read_mono(path: Path, what: str, label: str, warnings: list[str]) -> tuple[np.ndarray, int]:
    try:
        a, sr = read_audio(path, label)
    except AudioFileError as e:
        raise DatasetError(str(e)) from None
    if a.shape[1] > 1:
        warnings.append(f"{what} {path.name} has {a.shape[1]} channels; using channel 0 (left)")
        log.warning("%s", warnings[-1])
    return a[:, 0].copy(), int(sr)


@dataclass
class CaptureData:
    """An aligned capture: ``x[n]`` → ``y[n]`` after latency correction."""

    x: np.ndarray
    y: np.ndarray
    sample_rate: int
    layout: CaptureLayout
    latency: LatencyResult
    repeatability_esr: float | None
    warnings: list[str]
    info: dict[str, Any]
    ny: int = 8192
    metadata: dict[str, Any] = field(default_factory=dict)
    name: str = "nam_capture"
    # Regions training never touches: audio whose input repeats the validation input (see tinyverse.audio.split).
    excluded: list[list[int]] = field(default_factory=list)

    def train_regions(self) -> list[list[int]]:
        """The training region minus :attr:`excluded`, as disjoint ``[start, stop)`` pieces."""
        return subtract_regions(self.layout.train, self.excluded)

    def summary(self) -> dict[str, Any]:
        v0, v1 = self.layout.validation[-1]
        train = sum(b - a for a, b in self.train_regions())
        return {"name": self.name, "sample_rate": self.sample_rate, "seconds": round(len(self.x) / self.sample_rate, 2),
                "train_seconds": round(train / self.sample_rate, 2),
                "validation_seconds": round((v1 - v0) / self.sample_rate, 2),
                "latency": self.latency.delay, "latency_delays": self.latency.delays,
                "latency_manual": self.latency.manual, "repeatability_esr": self.repeatability_esr,
                "warnings": list(self.warnings), **self.info}

    def validation(self, receptive_field: int) -> tuple[np.ndarray, np.ndarray]:
        """(x with receptive-field context, y) of the last validation block, each of shape (1, ·)."""
        v0, v1 = self.layout.validation[-1]
        ctx = receptive_field - 1
        xs = self.x[max(0, v0 - ctx):v1]
        xs = np.concatenate([np.zeros(ctx - (v0 - max(0, v0 - ctx)), np.float32), xs])
        return xs[None, :].astype(np.float32), self.y[v0:v1][None, :].astype(np.float32)

    def windows(self, receptive_field: int, ny: int | None = None, stride: int | None = None,
                region: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Training windows of ``ny`` output samples, each input window with ``receptive_field − 1`` samples
        of context before it: x (N, ny + rf − 1), y (N, ny). A window (context included) never overlaps
        :attr:`excluded` audio."""
        t0, t1 = region or self.layout.train
        ctx = receptive_field - 1
        ny = ny or self.ny
        stride = stride or ny
        pieces = subtract_regions([t0, t1], self.excluded)
        # Context may reach before a piece, but never into excluded audio or before the file.
        floor = {a: max(0, max([e1 for e0, e1 in self.excluded if e1 <= a], default=0)) for a, _ in pieces}
        starts = np.concatenate([np.arange(max(a, floor[a] + ctx), b - ny + 1, stride) for a, b in pieces]) \
            if pieces else np.zeros(0, int)
        starts = starts.astype(int)
        if starts.size == 0:
            raise DatasetError(f"training region ({(t1 - t0) / self.sample_rate:.1f} s) is shorter than one window of "
                               f"{ny} samples plus {ctx} of context; use a longer capture or a smaller window")
        X = np.stack([self.x[s - ctx:s + ny] for s in starts]).astype(np.float32)
        Y = np.stack([self.y[s:s + ny] for s in starts]).astype(np.float32)
        return X, Y


@DATASETS.register("nam_capture", task="amp_modelling", modality="audio")
class NamCaptureDataset:
    """A reamp capture: ``input_path`` (the dry signal sent to the gear) and ``output_path`` (the recording).

    With neither path, the generated default capture is used (``generated_seconds``, ``seed``, ``device``
    settings of :class:`tinyverse.audio.capture.DeviceSettings`). ``latency``: ``"auto"`` (from the blips)
    or a number of samples. ``length_tolerance``: samples the two files may differ by (the longer is cut).
    ``ny``: output samples per training window (NAM: 8192). ``metadata``: .nam metadata for the exported
    model (name, modeled_by, gear_make, gear_model, gear_type, tone_type, input_level_dbu, ...).
    The layout (validation blocks, blips) comes from ``<input>.layout.json`` next to the input, from recognising
    the generated input, or from NAM's layout found by content (:func:`tinyverse.audio.split.detect_layout`);
    otherwise the last ``validation_seconds`` are the validation block. ``train_range`` / ``validation_range``
    (``[start, stop]``, seconds or ``"N samples"``, negative from the end) override the regions. No training
    window overlaps audio whose input repeats the scored validation input (``CaptureData.excluded``).
    """

    def __init__(self, input_path: str | None = None, output_path: str | None = None, latency: int | str = "auto",
                 length_tolerance: int = 48_000, generated_seconds: float = 40.0, seed: int = 0,
                 device: dict[str, Any] | None = None, validation_seconds: float = 4.0,
                 clip_level: float = 0.999, silence_db: float = -60.0, sample_rate: int = 48_000,
                 ny: int = 8192, metadata: dict[str, Any] | None = None,
                 train_range: list[Any] | None = None, validation_range: list[Any] | None = None) -> None:
        if (input_path is None) != (output_path is None):
            missing = "output_path" if output_path is None else "input_path"
            raise DatasetError(f"dataset.{missing}: give both input_path and output_path, or neither for the "
                               "generated capture")
        if not (latency == "auto" or (isinstance(latency, int) and not isinstance(latency, bool))):
            raise DatasetError(f"dataset.latency: expected 'auto' or a number of samples, got {latency!r}")
        self.input_path, self.output_path = input_path, output_path
        self.latency, self.length_tolerance = latency, int(length_tolerance)
        self.generated_seconds, self.seed, self.device = float(generated_seconds), int(seed), device
        self.validation_seconds, self.clip_level, self.silence_db = validation_seconds, clip_level, silence_db
        self.sample_rate = int(sample_rate)
        self.ny, self.metadata = int(ny), dict(metadata or {})
        for key, value in (("train_range", train_range), ("validation_range", validation_range)):
            if value is not None and (not isinstance(value, (list, tuple)) or len(value) != 2):
                raise DatasetError(f"dataset.{key}: expected [start, stop] in seconds (or 'N samples'; null for the "
                                   f"edge; negative counts from the end), got {value!r}")
        self.train_range, self.validation_range = train_range, validation_range

    # -- layout ------------------------------------------------------------------------------------------
    def _layout(self, inp: Path, x: np.ndarray, sr: int, warnings: list[str]) -> tuple[CaptureLayout, str]:
        for side in (inp.with_suffix(".layout.json"), inp.parent / (inp.name + ".layout.json"),
                     inp.parent / "input.layout.json", inp.parent / "capture.json"):
            if side.is_file():
                d = json.loads(side.read_text())
                d = d.get("layout", d)
                layout = CaptureLayout.from_dict(d)
                if layout.length == len(x) and layout.sample_rate == sr:
                    return layout, f"sidecar {side.name}"
        # The generated input is recognised by its content (a user who played it through their amp).
        for seconds in (self.generated_seconds,):
            ref, layout = standard_input(sr, self.seed, seconds)
            if len(ref) == len(x) and np.allclose(ref, x, atol=1e-4):
                return layout, "recognised generated input"
        # NAM's standard input (or one built like it): a validation block that repeats, blips after it.
        layout = detect_layout(x, sr)
        if layout is not None:
            return layout, "detected by content (a validation block that repeats, blips)"
        if self.validation_range is not None:  # the user says where to validate: no tail fallback needed
            n = len(x)
            return CaptureLayout(sample_rate=sr, length=n, validation=[[n, n]], blips=[], blip_window=[0, 0],
                                 background=[0, 0], train=[0, n]), "custom ranges"
        n, v = len(x), int(self.validation_seconds * sr)
        if n < 4 * v:
            raise DatasetError(f"dataset.validation_seconds: {self.validation_seconds} s is more than a quarter of the "
                               f"{n / sr:.1f} s capture")
        warnings.append("input layout not recognised: validating on the last "
                        f"{self.validation_seconds:g} s, no repeatability check; set dataset.latency if the "
                        "interface delays the output")
        log.warning("%s", warnings[-1])
        layout = CaptureLayout(sample_rate=sr, length=n, validation=[[n - v, n]], blips=[], blip_window=[0, 0],
                               background=[0, 0], train=[0, n - v])
        return layout, "tail"

    # -- split -------------------------------------------------------------------------------------------
    def _split(self, layout: CaptureLayout, x: np.ndarray, sr: int, info: dict[str, Any],
               warnings: list[str]) -> list[list[int]]:
        """Apply ``train_range`` / ``validation_range`` to ``layout``; return the audio training must skip: every
        place whose input repeats the scored validation input. What was done goes to ``info`` (dataset.json)."""
        n = len(x)
        # Ranges count on the input file as written (as NAM's do), then are cut to the latency-aligned length.
        if self.validation_range is not None:
            v = parse_range(self.validation_range, sr, layout.length, "dataset.validation_range")
            layout.validation = [[v[0], min(v[1], n)]]
        if self.train_range is not None:
            t = parse_range(self.train_range, sr, layout.length, "dataset.train_range")
            layout.train = [t[0], min(t[1], n)]
        v0, v1 = layout.validation[-1]
        if v1 <= v0:
            raise DatasetError("dataset.validation_range: required for this capture (its layout has no validation "
                               "block); give [start, stop] in seconds")
        t0, t1 = layout.train
        if self.train_range is not None and t0 < v1 and v0 < t1:
            raise DatasetError(f"dataset.train_range: [{t0}, {t1}) overlaps the validation block [{v0}, {v1}) (samples); "
                               "training on the scored audio leaks the validation ESR")
        repeats = find_repeats(x, [v0, v1], [0, n], sr)
        overlap = [[max(a, t0), min(b, t1)] for a, b in repeats if a < t1 and t0 < b]
        excluded = sorted(repeats + [[v0, v1]])  # nor the scored block itself (a default train region may hold it)
        info["split"] = {"train": [t0, t1], "validation": [v0, v1],
                         "custom": {"train_range": self.train_range, "validation_range": self.validation_range},
                         "validation_input_repeats": repeats,
                         "excluded_from_training_seconds": round(sum(b - a for a, b in overlap) / sr, 3)}
        if overlap:
            warnings.append(f"the training region holds {info['split']['excluded_from_training_seconds']:g} s whose "
                            "input repeats the validation input; those windows are left out of training so the "
                            "validation ESR is not leaked")
            log.warning("%s", warnings[-1])
        return excluded

    # -- pair checks -------------------------------------------------------------------------------------
    def _check_lengths(self, inp: Path, out: Path, nx: int, ny: int, sr: int) -> None:
        """NAM's rule, with the latency as slack: the output may run on past the input (up to
        ``length_tolerance``) but may not stop more than the latency slack before it."""
        slack = min(self.length_tolerance,
                    max(LATENCY_SLACK, abs(self.latency) if isinstance(self.latency, int) else 0))
        durations = f"output {out} is {ny / sr:.2f} s, input {inp} is {nx / sr:.2f} s"
        if nx - ny > slack:
            raise DatasetError(f"lengths differ: {durations}: the output is {(nx - ny) / sr:.2f} s shorter, more "
                               f"than the latency slack of {slack} samples ({slack / sr:.2f} s), so part of the "
                               "recording is missing (cut at the start or the end?); export the recording of the "
                               "whole input again (longer is fine, shorter is not)")
        if ny - nx > self.length_tolerance:
            raise DatasetError(f"lengths differ: {durations}: the output is {(ny - nx) / sr:.2f} s longer, more "
                               f"than dataset.length_tolerance={self.length_tolerance} samples; check that it is the "
                               "recording of this input and trim it to the input's length")

    @staticmethod
    def _check_alignment(inp: Path, out: Path, x: np.ndarray, y: np.ndarray, sr: int, delay: int,
                         warnings: list[str]) -> tuple[int | None, float]:
        """The blips (or a manual latency) aligned the pair; cross-correlation must agree, or the model would
        learn a shifted target (a 1 s cut trains to ESR 1.0)."""
        lag, peak = alignment_lag(x, y, sr)
        if peak < MIN_CORRELATION:
            warnings.append(f"cannot check the alignment: the output barely correlates with the input (peak "
                            f"{peak:.3f}); check that {out.name} is the recording of {inp.name}")
            log.warning("%s", warnings[-1])
            return None, round(peak, 4)
        if abs(lag) > WARN_LAG:
            where = "behind" if lag > 0 else "ahead of"
            problem = (f"output {out} is misaligned with input {inp}: after the latency correction of {delay} "
                       f"samples the output is still {abs(lag)} samples ({1000 * abs(lag) / sr:.1f} ms) {where} the "
                       "input by cross-correlation")
            if abs(lag) > MISALIGNED_SECONDS * sr:
                raise DatasetError(f"{problem} (cut or padded at the start?); export the output aligned with the "
                                   f"input from its first sample, or set dataset.latency: {delay + lag}")
            warnings.append(f"{problem}; set dataset.latency: {delay + lag} if the latency calibration is wrong")
            log.warning("%s", warnings[-1])
        return lag, round(peak, 4)

    # -- load --------------------------------------------------------------------------------------------
    def load(self) -> CaptureData:
        warnings: list[str] = []
        info: dict[str, Any] = {}
        if self.input_path is None:
            if self.sample_rate not in SAMPLE_RATES:
                raise DatasetError(f"dataset.sample_rate: {self.sample_rate} is not one of {SAMPLE_RATES}")
            cap = generated_capture(self.sample_rate, self.seed, self.generated_seconds, self.device)
            info.update(source="generated", capture_folder=cap["folder"], cached=cap["cached"],
                        device=cap["device"])
            inp, out = Path(cap["input_path"]), Path(cap["output_path"])
            labels = ("generated capture input", "generated capture output")
        else:
            inp, out = Path(self.input_path).expanduser(), Path(self.output_path).expanduser()
            info.update(source="files", input_path=str(inp), output_path=str(out))
            labels = ("dataset.input_path", "dataset.output_path")
        x, sr_x = _read_mono(inp, "input", labels[0], warnings)
        y, sr_y = _read_mono(out, "output", labels[1], warnings)
        if sr_x != sr_y:
            raise DatasetError(f"sample rates differ: input {inp.name} is {sr_x} Hz, output {out.name} is {sr_y} Hz; "
                               "record the output at the input's rate")
        if sr_x not in SAMPLE_RATES:
            warnings.append(f"sample rate {sr_x} Hz: NAM players expect 44100 or 48000 Hz")
        self._check_lengths(inp, out, len(x), len(y), sr_x)
        # The layout belongs to the input file as written (a sidecar's length is the input's).
        layout, how = self._layout(inp, x, sr_x, warnings)
        info["layout"] = how
        n = min(len(x), len(y))
        if len(x) != len(y):
            warnings.append(f"lengths differ by {abs(len(x) - len(y))} samples; cut both to {n}")
        x, y = x[:n], y[:n]
        for a, what, path in ((x, "input", inp), (y, "output", out)):
            peak = float(np.max(np.abs(a))) if a.size else 0.0
            if peak <= 10 ** (self.silence_db / 20):
                raise DatasetError(f"{what} {path.name} is silent (peak {20 * np.log10(peak + 1e-12):.0f} dBFS); "
                                   "check the recording chain")
            clipped = int(np.sum(np.abs(a) >= self.clip_level))
            if what == "output" and clipped > 0:
                raise DatasetError(f"output {path.name} clips: {clipped} samples at or above {self.clip_level} "
                                   "full scale; lower the recording level and record again")

        if self.latency == "auto":
            if not layout.blips:
                latency = LatencyResult(0, [], 0.0, True, ["no blips in the layout: latency 0 assumed"])
                warnings.append(latency.warnings[0])
            else:
                latency = calibrate_latency(y, layout)
                warnings.extend(latency.warnings)
        else:
            latency = LatencyResult(int(self.latency), [], 0.0, True)
        d = latency.delay
        if d > 0:
            x, y = x[:-d], y[d:]
        elif d < 0:
            x, y = x[-d:], y[:d]
        # The layout stays in input-sample coordinates; cut the regions to the aligned length.
        m = len(x)
        layout.validation = [[a, min(b, m)] for a, b in layout.validation]
        layout.train = [layout.train[0], min(layout.train[1], m)]
        info["alignment_lag"], info["alignment_correlation"] = self._check_alignment(inp, out, x, y, sr_x, d,
                                                                                     warnings)

        rep = None
        if len(layout.validation) >= 2:
            (a0, a1), (b0, b1) = layout.validation[0], layout.validation[-1]
            k = min(a1 - a0, b1 - b0)
            rep = esr(y[a0:a0 + k], y[b0:b0 + k])
            if rep > REPEATABILITY_LIMIT:
                warnings.append(f"the two validation recordings differ (ESR {rep:.4f} > {REPEATABILITY_LIMIT}): "
                                "likely noise/hum, a time-based effect (delay, reverb, modulation) or a knob moved "
                                "during the recording")
                log.warning("%s", warnings[-1])
        excluded = self._split(layout, x, sr_x, info, warnings)
        peak_db = 20 * np.log10(float(np.max(np.abs(y))) + 1e-12)
        if peak_db < QUIET_OUTPUT_PEAK_DB:
            warnings.append(f"output {out.name} peaks at {peak_db:.0f} dBFS, far below NAM's usual range (about -20 to "
                            "-1 dBFS): noise and quantization weigh in the ESR; record the output hotter")
            log.warning("%s", warnings[-1])
        meta = {k: v for k, v in (info.get("device") or {}).items() if k.startswith(("gear_", "tone_"))}
        meta.update(self.metadata)
        data = CaptureData(x.astype(np.float32), y.astype(np.float32), sr_x, layout, latency, rep, warnings, info,
                           ny=self.ny, metadata=meta, excluded=excluded)
        log.info("capture: %.1f s at %d Hz, latency %d samples (%s), repeatability ESR %s", len(x) / sr_x, sr_x,
                 latency.delay, "manual" if latency.manual else f"blips {latency.delays}",
                 "n/a" if rep is None else f"{rep:.2e}")
        return data


# Keep DeviceSettings importable from here for configs that build device dicts.
__all__.append("DeviceSettings")
