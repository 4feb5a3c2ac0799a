"""Report plots for audio models: waveform overlay and spectra of target vs prediction."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_waveforms", "plot_spectra"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_waveforms(target: np.ndarray, pred: np.ndarray, sample_rate: int, path: str | Path,
                   title: str = "", seconds: float = 0.05) -> Path:
    """Overlay of target and prediction: the whole block, and a zoom on its loudest ``seconds``."""
    plt = _plt()
    fig, (a0, a1) = plt.subplots(2, 1, figsize=(10, 6))
    t = np.arange(len(target)) / sample_rate
    a0.plot(t, target, lw=0.5, label="target")
    a0.plot(t, pred, lw=0.5, alpha=0.7, label="prediction")
    a0.set_xlabel("time (s)")
    a0.legend(loc="upper right")
    a0.set_title(title)
    n = max(16, int(seconds * sample_rate))
    env = np.convolve(np.abs(target), np.ones(n) / n, mode="valid") if len(target) > n else np.abs(target)
    i = int(np.argmax(env))
    sl = slice(i, i + n)
    a1.plot(t[sl], target[sl], label="target")
    a1.plot(t[sl], pred[sl], "--", label="prediction")
    a1.plot(t[sl], target[sl] - pred[sl], lw=0.8, label="error")
    a1.set_xlabel("time (s)")
    a1.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_spectra(target: np.ndarray, pred: np.ndarray, sample_rate: int, path: str | Path, title: str = "") -> Path:
    """Welch power spectra (dB) of target, prediction and error."""
    from scipy.signal import welch

    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for sig, label in ((target, "target"), (pred, "prediction"), (target - pred, "error")):
        f, p = welch(sig, fs=sample_rate, nperseg=min(4096, len(sig)))
        ax.semilogx(f[1:], 10 * np.log10(p[1:] + 1e-20), label=label)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("power (dB)")
    ax.set_xlim(20, sample_rate / 2)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
