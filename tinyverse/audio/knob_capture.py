"""Knob captures: one device recorded at several knob settings, as training data for knob-conditioned models.

Three sources (``KnobCaptureDataset``, ``DATASETS["knob_capture"]``; which one is used follows from the paths given):

(a) **one reamp pair per setting** — ``settings``: a CSV or YAML table with a ``file`` column (the output WAV,
    relative to the table) and one column per knob; every output is a recording of the shared ``input_path``.
    Each pair is loaded like a plain capture (:class:`tinyverse.audio.dataset.NamCaptureDataset`: alignment,
    layout, leak-free split), so NAM's standard input works as it is;
(b) **time slices of one long recording** — ``output_path`` and ``input_path`` of the same length, and a
    ``settings`` table with ``start`` / ``stop`` (seconds) and the knob columns: each slice is one setting, its
    last ``validation_seconds`` validate it;
(c) **generated** (neither path): the standard-style input through the pedalboard device of
    :mod:`tinyverse.audio.capture`, each knob driving a device setting (``controls`` / ``device_range``), over a
    ``grid`` or a Latin hypercube (``sampling: lhs``) of settings; each pair is cached like the generated capture.

Held-out settings (``holdout``): ``unseen`` — a setting never trained on, inside the trained range (interpolation;
``auto`` picks the interior setting nearest the centre); ``outside`` — where the settings give a continuous knob
at least three values, every setting at that knob's largest value is held out, so its validation is outside the
trained range (extrapolation, reported separately). Seen settings validate on their own validation block.
"""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from tinyverse.audio.audiofile import AudioFileError, read_audio
from tinyverse.audio.capture import LAYOUT_VERSION, CaptureLayout, DeviceSettings
from tinyverse.audio.dataset import CaptureData, LatencyResult, NamCaptureDataset
from tinyverse.audio.knobs import KnobSet
from tinyverse.audio.split import find_repeats
from tinyverse.errors import DatasetError
from tinyverse.registry import DATASETS

__all__ = ["KnobCaptureData", "KnobCaptureDataset", "SettingCapture", "DEFAULT_KNOBS"]

log = logging.getLogger("tinyverse.audio")

Role = Literal["train", "unseen", "outside"]

# The generated default: a drive knob and a tone knob on the reference device.
DEFAULT_KNOBS: dict[str, dict[str, Any]] = {
    "gain": {"min": 0.0, "max": 10.0, "default": 5.0, "controls": "drive_db", "device_range": [6.0, 30.0]},
    "tone": {"min": 0.0, "max": 10.0, "default": 5.0, "controls": "lowpass_hz", "device_range": [2500.0, 9000.0]},
}


@dataclass
class SettingCapture:
    """One knob setting: its values, the normalised vector, the aligned capture and its role."""

    setting: dict[str, float]
    vector: np.ndarray
    capture: CaptureData
    role: Role = "train"
    source: str = ""

    def label(self) -> str:
        return ", ".join(f"{k}={v:g}" for k, v in self.setting.items())


@dataclass
class KnobCaptureData:
    knobs: KnobSet
    settings: list[SettingCapture]
    sample_rate: int
    info: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    name: str = "knob_capture"

    def role(self, role: Role) -> list[SettingCapture]:
        return [s for s in self.settings if s.role == role]

    def windows(self, receptive_field: int, ny: int | None = None,
                stride: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Training windows over every training setting: audio (N, ny + rf − 1), knobs (N, K), target (N, ny)."""
        xs, ps, ys = [], [], []
        for s in self.role("train"):
            X, Y = s.capture.windows(receptive_field, ny, stride)
            xs.append(X)
            ys.append(Y)
            ps.append(np.repeat(s.vector[None, :], len(X), axis=0))
        return np.concatenate(xs), np.concatenate(ps).astype(np.float32), np.concatenate(ys)

    def validation(self, receptive_field: int) -> list[dict[str, Any]]:
        """Per setting: its role, values, knob vector and validation (x with context, y), each (1, ·)."""
        out = []
        for s in self.settings:
            x, y = s.capture.validation(receptive_field)
            out.append({"role": s.role, "setting": s.setting, "label": s.label(), "params": s.vector, "x": x, "y": y})
        return out

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "sample_rate": self.sample_rate, "knobs": self.knobs.declaration(),
                "settings": [{"setting": s.setting, "role": s.role, "source": s.source,
                              "train_seconds": s.capture.summary()["train_seconds"]} for s in self.settings],
                "warnings": list(self.warnings), **self.info}


def _read_table(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV (header row) or YAML (a list of mappings, or ``{settings: [...]}``) settings table."""
    if not path.is_file():
        raise DatasetError(f"dataset.settings: {path} does not exist")
    if path.suffix.lower() in (".yaml", ".yml"):
        d = yaml.safe_load(path.read_text())
        rows = d.get("settings") if isinstance(d, dict) else d
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise DatasetError(f"{path}: expected a list of settings (mappings), or {{settings: [...]}}")
        return rows
    with path.open(newline="") as f:
        rows = [{k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in r.items() if k is not None}
                for r in csv.DictReader(f)]
    if not rows:
        raise DatasetError(f"{path}: no settings rows (a header row, then one row per setting)")
    return rows


@DATASETS.register("knob_capture", task="knob_modelling", modality="audio")
class KnobCaptureDataset:
    """See the module docstring. ``knobs``: the knob declaration (``{gain: {min: 0, max: 10, default: 5},
    bright: {type: bool}}``; for generated captures each knob also names the device setting it ``controls`` and its
    ``device_range``). ``holdout``: ``{unseen: auto | none | [settings], outside: auto | none}``."""

    def __init__(self, knobs: dict[str, Any] | None = None, input_path: str | None = None,
                 output_path: str | None = None, settings: str | None = None, latency: int | str = "auto",
                 sampling: Literal["grid", "lhs"] = "grid", points: int = 3, samples: int = 9,
                 generated_seconds: float = 12.0, seed: int = 0, device: dict[str, Any] | None = None,
                 validation_seconds: float = 2.0, holdout: dict[str, Any] | None = None, ny: int = 8192,
                 sample_rate: int = 48_000) -> None:
        self.knobs = KnobSet(knobs if knobs is not None else DEFAULT_KNOBS, "dataset.knobs")
        self.input_path, self.output_path, self.settings_path = input_path, output_path, settings
        generated = input_path is None and output_path is None and settings is None
        if not generated and input_path is None:
            raise DatasetError("dataset.input_path: required with dataset.settings (the input every recording shares)")
        if output_path is not None and settings is None:
            raise DatasetError("dataset.settings: required with dataset.output_path (a table of start, stop and the "
                               "knob values of each slice)")
        if generated:
            missing = [n for n, k in self.knobs.knobs.items() if k.controls is None]
            if missing:
                raise DatasetError(f"dataset.knobs.{missing[0]}: a generated knob capture needs controls and "
                                   f"device_range (the device setting the knob drives: one of "
                                   f"{', '.join(f for f in DeviceSettings.__dataclass_fields__ if not f.startswith(('gear', 'tone_')))})")
            for n, k in self.knobs.knobs.items():
                if k.controls not in DeviceSettings.__dataclass_fields__:
                    raise DatasetError(f"dataset.knobs.{n}.controls: {k.controls!r} is not a device setting")
        if sampling not in ("grid", "lhs"):
            raise DatasetError(f"dataset.sampling: 'grid' or 'lhs', got {sampling!r}")
        self.generated, self.latency, self.sampling = generated, latency, sampling
        self.points, self.samples, self.generated_seconds = int(points), int(samples), float(generated_seconds)
        self.seed, self.device, self.validation_seconds = int(seed), dict(device or {}), float(validation_seconds)
        self.holdout = {"unseen": "auto", "outside": "auto", **(holdout or {})}
        unknown = set(self.holdout) - {"unseen", "outside"}
        if unknown:
            raise DatasetError(f"dataset.holdout.{sorted(unknown)[0]}: unknown key (valid: unseen, outside)")
        self.ny, self.sample_rate = int(ny), int(sample_rate)

    # -- sources ------------------------------------------------------------------------------------------
    def _generated(self) -> list[SettingCapture]:
        grid = self.knobs.grid(self.points) if self.sampling == "grid" else self.knobs.latin_hypercube(self.samples,
                                                                                                       self.seed)
        out = []
        for setting in grid:
            device = dict(self.device)
            for name, knob in self.knobs.knobs.items():
                device[knob.controls] = knob.device_value(setting[name])
            cap = NamCaptureDataset(generated_seconds=self.generated_seconds, seed=self.seed, device=device,
                                    sample_rate=self.sample_rate, ny=self.ny, latency=self.latency).load()
            out.append(SettingCapture(setting, self.knobs.vector(setting, "generated setting"), cap,
                                      source=cap.info.get("capture_folder", "")))
        return out

    def _per_setting_files(self) -> list[SettingCapture]:
        table = Path(self.settings_path).expanduser()
        out = []
        for i, row in enumerate(_read_table(table), start=1):
            where = f"{table} row {i}"
            if not row.get("file"):
                raise DatasetError(f"{where}: no 'file' (the output WAV recorded at this setting)")
            wav = (table.parent / str(row["file"])).expanduser()
            if not wav.is_file():
                raise DatasetError(f"{where}: output file {wav} does not exist")
            setting = self.knobs.check({k: v for k, v in row.items() if k != "file"}, where)
            cap = NamCaptureDataset(str(Path(self.input_path).expanduser()), str(wav), latency=self.latency,
                                    validation_seconds=self.validation_seconds, ny=self.ny).load()
            out.append(SettingCapture(setting, self.knobs.vector(setting, where), cap, source=str(wav)))
        return out

    def _slices(self) -> list[SettingCapture]:
        if not (isinstance(self.latency, int) and not isinstance(self.latency, bool)):
            raise DatasetError("dataset.latency: a sliced recording has no blips per slice; give the interface delay "
                               "in samples (0 if the output is aligned)")
        table = Path(self.settings_path).expanduser()
        arrays = []
        for key, p in (("input_path", self.input_path), ("output_path", self.output_path)):
            try:
                a, sr = read_audio(Path(p).expanduser(), f"dataset.{key}")
            except AudioFileError as e:
                raise DatasetError(str(e)) from None
            arrays.append((a[:, 0], sr))
        (x, sr), (y, sr_y) = arrays
        if sr != sr_y:
            raise DatasetError(f"sample rates differ: dataset.input_path is {sr} Hz, dataset.output_path {sr_y} Hz")
        d = int(self.latency)
        if d > 0:
            x, y = x[:-d], y[d:]
        n = min(len(x), len(y))
        out = []
        for i, row in enumerate(_read_table(table), start=1):
            where = f"{table} row {i}"
            try:
                a, b = int(round(float(row["start"]) * sr)), int(round(float(row["stop"]) * sr))
            except (KeyError, TypeError, ValueError):
                raise DatasetError(f"{where}: needs start and stop in seconds") from None
            if not 0 <= a < b <= n:
                raise DatasetError(f"{where}: slice [{row['start']}, {row['stop']}] s is outside the "
                                   f"{n / sr:.2f} s recording")
            setting = self.knobs.check({k: v for k, v in row.items() if k not in ("start", "stop")}, where)
            xs, ys = x[a:b].astype(np.float32), y[a:b].astype(np.float32)
            v = int(self.validation_seconds * sr)
            if len(xs) < 4 * v:
                raise DatasetError(f"{where}: the slice is {len(xs) / sr:.1f} s, shorter than 4 × "
                                   f"dataset.validation_seconds ({self.validation_seconds:g} s)")
            m = len(xs)
            layout = CaptureLayout(sample_rate=sr, length=m, validation=[[m - v, m]], blips=[], blip_window=[0, 0],
                                   background=[0, 0], train=[0, m - v], version=LAYOUT_VERSION)
            excluded = sorted(find_repeats(xs, [m - v, m], [0, m], sr) + [[m - v, m]])
            cap = CaptureData(xs, ys, sr, layout, LatencyResult(d, [], 0.0, True), None, [],
                              {"source": "slice", "slice_seconds": [a / sr, b / sr]}, ny=self.ny, excluded=excluded)
            out.append(SettingCapture(setting, self.knobs.vector(setting, where), cap, source=f"slice {i}"))
        return out

    # -- held-out settings --------------------------------------------------------------------------------
    def _assign_roles(self, caps: list[SettingCapture]) -> dict[str, Any]:
        names = self.knobs.names
        chosen: dict[str, Any] = {"unseen": [], "outside": []}
        outside = self.holdout["outside"]
        if outside == "auto":
            for name, knob in self.knobs.knobs.items():
                values = sorted({c.setting[name] for c in caps})
                if knob.type == "continuous" and len(values) >= 3:
                    top = values[-1]
                    for c in caps:
                        if c.setting[name] == top:
                            c.role = "outside"
                    chosen["outside"] = {"knob": name, "above": values[-2], "value": top}
                    break
        elif outside not in (None, "none"):
            raise DatasetError(f"dataset.holdout.outside: 'auto' or 'none', got {outside!r}")
        unseen = self.holdout["unseen"]
        rest = [c for c in caps if c.role == "train"]
        if unseen == "auto":
            interior = self.knobs.interior([c.setting for c in rest])
            pool = [rest[i] for i in interior] or rest
            if len(rest) >= 3 and pool:
                centre = np.full(len(names), 0.5, np.float32)
                best = min(pool, key=lambda c: float(np.sum((c.vector - centre) ** 2)))
                best.role = "unseen"
                chosen["unseen"] = [best.setting]
        elif isinstance(unseen, list):
            for j, s in enumerate(unseen):
                want = self.knobs.check(s, f"dataset.holdout.unseen[{j}]")
                match = [c for c in rest if all(np.isclose(c.setting[k], want[k]) for k in names)]
                if not match:
                    raise DatasetError(f"dataset.holdout.unseen[{j}]: {s} is not one of the captured settings")
                match[0].role = "unseen"
                chosen["unseen"].append(match[0].setting)
        elif unseen not in (None, "none"):
            raise DatasetError(f"dataset.holdout.unseen: 'auto', 'none' or a list of settings, got {unseen!r}")
        if not any(c.role == "train" for c in caps):
            raise DatasetError("dataset.holdout: every setting is held out; capture more settings or hold out fewer")
        return chosen

    def _load_all(self) -> tuple[list[SettingCapture], str]:
        if self.generated:
            return self._generated(), f"generated ({self.sampling})"
        if self.output_path is None:
            return self._per_setting_files(), "one recording per setting"
        return self._slices(), "slices of one recording"

    def load(self) -> KnobCaptureData:
        caps, source = self._load_all()
        latency: dict[str, Any] = {"samples": caps[0].capture.latency.delay, "per_setting": None}
        delays = [c.capture.latency.delay for c in caps]
        if self.latency == "auto" and len(set(delays)) > 1:
            # One interface, one delay: the blips cross the trigger later at quiet settings, and a knob-dependent
            # shift would be learnt as part of the sound. Use the earliest response for every setting.
            self.latency = min(delays)
            try:
                caps, source = self._load_all()
            finally:
                self.latency = "auto"
            latency = {"samples": min(delays), "per_setting": delays}
        rates = {c.capture.sample_rate for c in caps}
        if len(rates) > 1:
            raise DatasetError(f"dataset.settings: the recordings have different sample rates {sorted(rates)}")
        held = self._assign_roles(caps)
        warnings = [f"{c.label()}: {w}" for c in caps for w in c.capture.warnings]
        log.info("knob capture: %d settings (%s); held out: %d unseen, %d outside the trained range", len(caps),
                 source, sum(c.role == "unseen" for c in caps), sum(c.role == "outside" for c in caps))
        return KnobCaptureData(self.knobs, caps, rates.pop(), {"source": source, "holdout": held, "latency": latency},
                               warnings)
