"""Make the two stages configs/audio_rig_finetune.yaml starts from (run from the repository root):

* ``amp_drive_nano.nam``: the generated capture's "amp" alone — the default generated device with its post-drive
  low-pass and level taken out (``lowpass_hz: 20000``; ``level_db: -4``, as at 0 dB the clipped drive reaches full
  scale) — captured into NAM_WaveNet_nano by the ordinary amp-capture run (configs/audio_amp_capture.yaml, 8 epochs;
  validation ESR 0.245);
* ``cab_start.wav``: a generic 256-tap "cabinet" to start from: the impulse response of a 2nd-order 4 kHz low-pass
  and a 1st-order 120 Hz high-pass, at -6 dB (causal, as a cabinet's; deliberately not the generated device's 6 kHz
  low-pass and -8 dB level: the fine-tune has something to correct).

The full-rig capture the config trains against is the default generated capture (drive, then the 6 kHz low-pass and
-8 dB level): behind the frozen amp, the cabinet IR is what is left to learn.

    python misc/rigs/make_rig_assets.py
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import butter, lfilter

HERE = Path(__file__).resolve().parent
SR = 48_000


def cab_start(taps: int = 256) -> np.ndarray:
    impulse = np.zeros(taps)
    impulse[0] = 1.0
    b, a = butter(2, 4_000, fs=SR)
    hb, ha = butter(1, 120, "highpass", fs=SR)
    return (0.5 * lfilter(hb, ha, lfilter(b, a, impulse))).astype(np.float32)


def main() -> int:
    sf.write(HERE / "cab_start.wav", cab_start(), SR, subtype="FLOAT")
    from modelmaker.cli import main as cli

    with tempfile.TemporaryDirectory() as tmp:
        code = cli(["run", "configs/audio_amp_capture.yaml",
                    "--set", "dataset.device={lowpass_hz: 20000, level_db: -4}", "--set", "training.epochs=8", "--set", "compilation.enable=false",
                    "--set", "common.run_name=rig_amp_drive_nano", "--set", f"common.projects_path={tmp}"])
        if code == 0:
            shutil.copyfile(Path(tmp) / "rig_amp_drive_nano" / "model.nam", HERE / "amp_drive_nano.nam")
    return code


if __name__ == "__main__":
    sys.exit(main())
