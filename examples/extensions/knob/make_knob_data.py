"""Generate an example capture for knob_audio.py: input.wav, output.wav and knobs.csv.

The "device" is a tanh drive whose gain follows the gain knob (drive 1..20), and whose output level follows
the tone knob — simple enough to learn in a few seconds of CPU, non-linear enough that bypass is a poor model. ``python make_knob_data.py OUT_DIR [seconds]``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def make_knob_data(out_dir: str | Path, seconds: float = 3.0, sample_rate: int = 16000, seed: int = 0) -> dict:
    import soundfile as sf

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    # A few notes with decaying envelopes plus a little noise: broadband enough to excite the drive.
    x = np.zeros(n)
    for start in np.arange(0, seconds, 0.25):
        f = rng.uniform(80, 800)
        env = np.exp(-np.clip(t - start, 0, None) * 6) * (t >= start)
        x += rng.uniform(0.2, 0.5) * env * np.sin(2 * np.pi * f * t)
    x = 0.8 * x / np.abs(x).max() + 0.01 * rng.standard_normal(n)
    # Knob automation, logged at 50 Hz: gain sweeps slowly, tone steps.
    kt = np.arange(0, seconds + 0.02, 0.02)
    gain = 0.5 + 0.5 * np.sin(2 * np.pi * kt / seconds * 2)
    tone = np.where((kt // 0.5) % 2 == 0, 0.2, 0.8)
    g = np.interp(t, kt, gain)
    k = np.interp(t, kt, tone)
    drive = 1 + 19 * g  # gain knob 0..1 -> drive 1..20
    driven = np.tanh(drive * x)
    y = (0.3 + 0.5 * k) * driven  # tone knob as a level/brightness stand-in: scales the driven signal
    paths = {"input_wav": out / "input.wav", "output_wav": out / "output.wav", "knobs_csv": out / "knobs.csv"}
    sf.write(paths["input_wav"], x.astype(np.float32), sample_rate, subtype="FLOAT")
    sf.write(paths["output_wav"], y.astype(np.float32), sample_rate, subtype="FLOAT")
    with open(paths["knobs_csv"], "w") as f:
        f.write("time_s,gain,tone\n")
        for row in zip(kt, gain, tone):
            f.write(",".join(f"{v:.6f}" for v in row) + "\n")
    return {k: str(v) for k, v in paths.items()}


if __name__ == "__main__":
    print(make_knob_data(sys.argv[1] if len(sys.argv) > 1 else "knob_data",
                         float(sys.argv[2]) if len(sys.argv) > 2 else 3.0))
