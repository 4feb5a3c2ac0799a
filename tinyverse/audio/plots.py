"""Report plots for audio models: waveform overlay and spectra of target vs prediction; a knob model's ESR per
setting (a heat map for two knobs)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["plot_knob_esr", "plot_waveforms", "plot_spectra"]


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


# How a setting was used in training, as the ESR plot marks it.
_ROLE_MARK = {"seen": "", "unseen": "unseen", "outside": "outside"}


def plot_knob_esr(rows: Sequence[Mapping[str, Any]], path: str | Path, title: str = "") -> Path:
    """ESR per knob setting; ``rows``: ``{setting: {knob: value}, role: seen | unseen | outside, esr}``.

    Two knobs on a full grid: a heat map (log colour scale, each cell labelled with its ESR and, for held-out
    settings, its role); two knobs elsewhere (a Latin hypercube): the settings as coloured points; one knob: ESR
    against its value; more: one bar per setting. The colour / height is the validation ESR at that setting."""
    from matplotlib.colors import LogNorm

    plt = _plt()
    names = list(rows[0]["setting"])
    esrs = np.array([float(r["esr"]) for r in rows])
    positive = esrs[esrs > 0]
    lo, hi = (float(positive.min()), float(positive.max())) if positive.size else (1e-3, 1.0)
    norm = LogNorm(vmin=lo, vmax=max(hi, lo * 1.01))
    fig, ax = plt.subplots(figsize=(7, 5.5) if len(names) == 2 else (9, 4.5))
    if len(names) == 2:
        xs = sorted({r["setting"][names[0]] for r in rows})
        ys = sorted({r["setting"][names[1]] for r in rows})
        if len(xs) * len(ys) == len(rows) and len({tuple(r["setting"].values()) for r in rows}) == len(rows):
            grid = np.full((len(ys), len(xs)), np.nan)
            for r, e in zip(rows, esrs):
                grid[ys.index(r["setting"][names[1]]), xs.index(r["setting"][names[0]])] = e
            im = ax.imshow(grid, origin="lower", cmap="viridis", norm=norm, aspect="auto")
            ax.set_xticks(range(len(xs)), [f"{v:g}" for v in xs])
            ax.set_yticks(range(len(ys)), [f"{v:g}" for v in ys])
            for r, e in zip(rows, esrs):
                i, j = ys.index(r["setting"][names[1]]), xs.index(r["setting"][names[0]])
                mark = _ROLE_MARK.get(r["role"], r["role"])
                ax.text(j, i, f"{e:.3f}" + (f"\n{mark}" if mark else ""), ha="center", va="center", fontsize=9,
                        color="white" if norm(e) < 0.6 else "black", fontweight="bold" if mark else "normal")
        else:
            im = ax.scatter([r["setting"][names[0]] for r in rows], [r["setting"][names[1]] for r in rows], c=esrs,
                            norm=norm, cmap="viridis", s=160, edgecolors=["red" if r["role"] != "seen" else "none"
                                                                         for r in rows], linewidths=2)
            for r, e in zip(rows, esrs):
                ax.annotate(f"{e:.3f}", (r["setting"][names[0]], r["setting"][names[1]]), textcoords="offset points",
                            xytext=(0, 10), ha="center", fontsize=8)
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        fig.colorbar(im, ax=ax, label="validation ESR (log scale)")
    elif len(names) == 1:
        for role, marker in (("seen", "o"), ("unseen", "s"), ("outside", "^")):
            sel = [(r["setting"][names[0]], e) for r, e in zip(rows, esrs) if r["role"] == role]
            if sel:
                ax.plot(*zip(*sorted(sel)), marker, ms=8, label=role)
        ax.set_xlabel(names[0])
        ax.set_ylabel("validation ESR")
        ax.set_yscale("log")
        ax.legend()
    else:
        colours = {"seen": "tab:blue", "unseen": "tab:orange", "outside": "tab:red"}
        labels = [", ".join(f"{k}={v:g}" for k, v in r["setting"].items()) for r in rows]
        ax.bar(range(len(rows)), esrs, color=[colours.get(r["role"], "grey") for r in rows])
        ax.set_xticks(range(len(rows)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("validation ESR")
        ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()], labels=list(colours))
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
