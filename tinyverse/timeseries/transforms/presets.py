"""Named feature-extraction presets (TI Tiny ML Tensorlab's names), each a fixed pipeline of the primitives.

A preset is a TRANSFORMS entry like any other (``{name: Generic_1024Input_FFTBIN_64Feature_8Frame}`` in
``feature_extraction.transforms``, or ``feature_extraction.preset``). ``arithmetic()`` spells out what it
computes, step by step, so C code on the device can reproduce it; docs/feature_extraction.md holds the same text.

Naming (TI's): ``<N>Input`` is the frame size N, ``<F>Feature`` the features per frame, ``<M>Frame`` the frames
concatenated, so one model input covers M*N samples. TI cuts every frame-hop of a long recording into one
sample (frames i-M+1..i for each i); here a series is one sample built from its first M frames, so a
bring-your-own folder with ``dataset.frame_size: M*N`` and ``dataset.stride: N`` gives TI's samples.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyverse.registry import TRANSFORMS
from tinyverse.timeseries.transforms import Transform, TransformError, build_transform

TI = "TI Tiny ML Tensorlab preset of the same name"


class Preset(Transform):
    """A fixed pipeline of registered transforms; ``steps`` is ``((name, kwargs), ...)``.

    Steps pass float64 arrays to each other; the preset's output is rounded to float32 once, at the end.
    """

    steps: tuple[tuple[str, dict[str, Any]], ...] = ()
    origin: str = ""
    notes: str = ""

    def __init__(self) -> None:
        self.transforms = [build_transform(name, params) for name, params in self.steps]

    @property
    def samples_needed(self) -> int:
        frame = self.transforms[0]
        return frame.samples_needed() if hasattr(frame, "samples_needed") else 1

    def _run(self, X: np.ndarray, fit: bool) -> np.ndarray:
        try:
            for t in self.transforms:
                if fit and hasattr(t, "fit"):
                    t.fit(X)
                X = t(X)
        except TransformError as exc:  # say which preset the failing step belongs to
            raise TransformError(f"{type(self).__name__}: {exc}") from None
        return X

    def fit(self, X: np.ndarray) -> "Preset":
        self._run(X, fit=True)
        return self

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self._run(X, fit=False), dtype=np.float32)

    def output_shape(self, channels: int) -> tuple[int, int]:
        return tuple(self(np.zeros((1, channels, self.samples_needed), np.float32)).shape[1:])

    def arithmetic(self) -> str:
        c, length = self.output_shape(1)
        lines = [f"{type(self).__name__} ({self.origin}): (N, C, L >= {self.samples_needed}) -> (N, C, {length}); "
                 f"each channel separately; the first {self.samples_needed} samples of each series are used"]
        lines += [f"  {i}. {t.arithmetic()}" for i, t in enumerate(self.transforms, 1)]
        lines.append("  Steps pass float64 values; the output is rounded to float32.")
        if self.notes:
            lines.append(f"  Notes: {self.notes}")
        return "\n".join(lines)


def _register(name: str, steps: list[tuple[str, dict[str, Any]]], origin: str = TI, notes: str = "") -> None:
    doc = f"{origin}: {' -> '.join(s for s, _ in steps)}. {notes} The exact arithmetic is ``arithmetic()``."
    cls = type(name, (Preset,), {"steps": tuple(steps), "origin": origin, "notes": notes, "__doc__": doc,
                                 "__module__": __name__})
    TRANSFORMS.register(name, cls, kind="preset")


def _fftbin(frame: int, features: int, frames: int) -> list[tuple[str, dict[str, Any]]]:
    # TI: FFT_FE, FFT_POS_HALF, DC_REMOVE, ABS, BINNING (normalize_bin, bin size frame//2//features), LOG_DB
    # (log_mul 20, log_base 10, log_threshold 1e-100), CONCAT with '2D1' stacking; no window.
    return [("Frame", {"frame_size": frame, "num_frames": frames}), ("FFT", {"positive_half": True}),
            ("Magnitude", {}), ("DropDCBin", {}),
            ("Binning", {"num_bins": features, "bin_size": frame // 2 // features, "normalize": True}),
            ("LogDB", {"multiplier": 20.0, "base": 10.0, "eps": 1e-100}), ("Concat", {"num_frames": frames})]


_FFTBIN_NOTES = ("Matches TI's arithmetic (no window, unscaled FFT, bins 0..N/2 kept, bin 0 dropped so bins "
                 "1..N/2 are averaged in groups, 20*log10(x + 1e-100), frames concatenated frame-major per channel). "
                 "TI lists DC_REMOVE before ABS but its code drops bin 0 after ABS; the result is the same. "
                 "Differs: one sample per series from its first frames (TI: one sample per frame hop).")
for _frame, _features in ((1024, 64), (512, 32), (256, 16)):
    _register(f"Generic_{_frame}Input_FFTBIN_{_features}Feature_8Frame", _fftbin(_frame, _features, 8),
              notes=_FFTBIN_NOTES)

_FFT_NOTES = ("Matches TI's arithmetic (FFT_FE, FFT_POS_HALF, ABS, DC_REMOVE, LOG_DB with log_mul 20, log_base 10, "
              "log_threshold 1e-100, one frame): features are bins 1..N/2 (Nyquist included) in dB.")
for _frame in (1024, 512, 256):
    _register(f"Generic_{_frame}Input_FFT_{_frame // 2}Feature_1Frame",
              [("Frame", {"frame_size": _frame, "num_frames": 1}), ("FFT", {"positive_half": True}),
               ("Magnitude", {}), ("DropDCBin", {}), ("LogDB", {"multiplier": 20.0, "base": 10.0, "eps": 1e-100}),
               ("Concat", {"num_frames": 1})], notes=_FFT_NOTES)

_RAW_NOTES = ("Matches TI's RAW_FE with dc_remove=True: TI subtracts np.sum(x) // len(x), i.e. floor of the frame "
              "mean (meant for integer ADC samples); on standardised float data that removes at most the integer "
              "part of the mean.")
for _frame in (512, 256, 128):
    _register(f"Generic_{_frame}Input_RAW_{_frame}Feature_1Frame",
              [("Frame", {"frame_size": _frame, "num_frames": 1}), ("RemoveMean", {"rounding": "floor"}),
               ("Concat", {"num_frames": 1})], notes=_RAW_NOTES)

_register("Generic_128Input_STATS_8Feature_8Frame",
          [("Frame", {"frame_size": 128, "num_frames": 8}),
           ("Statistics", {"stats": ["mean", "std", "min", "max", "rms", "skew", "kurtosis", "zcr"]}),
           ("Concat", {"num_frames": 8})],
          origin="tinyverse preset in TI's naming (TI has no generic statistics preset)",
          notes="8 statistics per frame of 128 samples, 8 frames: 64 features per channel.")


def preset_names() -> list[str]:
    return TRANSFORMS.names(kind="preset")

