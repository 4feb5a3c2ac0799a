"""The capture bench: one standard-style reamp input rendered through several "devices" (figures, not a test).

    python bench/captures.py --list                      # the recipes, and which can run on this machine
    python bench/captures.py                             # render every available capture (60 s each), cached
    python bench/captures.py --names comp_eq lv2_studiopre --seconds 20

The input is the standard-style signal of the generated capture (:func:`tinyverse.audio.capture.standard_input`:
validation block | silence | blips | chirps | noise | plucked phrases at four levels | silence | the validation
block again), so every capture has the same layout, latency blips and repeated validation block. Devices, in
rising difficulty:

* pedalboard chains (pedalboard is a project dependency): a clean compressor + EQ, the generated capture's
  overdrive, a two-stage high-gain distortion with pre and post EQ;
* circuit-modelled LV2 plugins from guitarix (Debian ``guitarix-lv2``, GPL-2+) run by ``lv2apply`` (Debian
  ``lilv-utils``, ISC): a Tube Screamer, a two-stage 12AX7 studio preamp, a JCM800 preamp. These are optional
  bench tools, never runtime dependencies: ``apt-get install --no-install-recommends lilv-utils guitarix-lv2``.
  Without them the LV2 captures are listed as unavailable and skipped.

Each capture is a folder ``bench/captures/<name>-<seconds>s-seed<seed>/`` (git-ignored) holding ``input.wav`` and
``output.wav`` (48 kHz, float32, mono), ``input.layout.json`` (the layout sidecar the dataset reads) and
``capture.json`` (how it was made: recipe, tool versions, the latency found from the blips, levels, the
repeatability ESR of the two validation recordings, SHA-256 of both files' samples). Everything is seeded; a
folder whose ``capture.json`` has the same parameters is reused.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinyverse.audio.capture import (LAYOUT_VERSION, CaptureLayout, DeviceSettings,  # noqa: E402
                                     render_device, standard_input)
from tinyverse.audio.dataset import calibrate_latency  # noqa: E402
from tinyverse.audio.metrics import esr  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT / "bench" / "captures"
SAMPLE_RATE = 48_000
RECIPE_VERSION = 1  # bump when a recipe's rendering changes, so cached folders are rendered again
GX = "http://guitarix.sourceforge.net/plugins/"
PREROLL_SECONDS = 2.0
LV2_INSTALL = "apt-get install --no-install-recommends lilv-utils guitarix-lv2"


@dataclass(frozen=True)
class Recipe:
    """One device. ``kind``: "pedalboard" (``chain`` names a builder below) or "lv2" (``plugin`` URI and its
    ``controls``). The rendered output is scaled to ``output_peak_dbfs`` (a recording level), gets a seeded
    noise floor at ``noise_db`` and is delayed by ``latency`` samples (an interface)."""

    name: str
    kind: str
    difficulty: int
    description: str
    chain: str = ""
    plugin: str = ""
    controls: dict[str, float] = field(default_factory=dict)
    output_peak_dbfs: float = -3.0
    noise_db: float = -90.0
    latency: int = 0


RECIPES: dict[str, Recipe] = {r.name: r for r in [
    Recipe("comp_eq", "pedalboard", 1, "clean: high-pass, compressor (4:1, 5 ms / 80 ms), mid bump, high shelf cut",
           chain="comp_eq", output_peak_dbfs=-6.0),
    Recipe("overdrive", "pedalboard", 2, "the generated capture's device: gain, tone, tanh drive 18 dB, clipping, "
           "low-pass (tinyverse.audio.capture.DeviceSettings defaults)", chain="overdrive", latency=12),
    Recipe("highgain", "pedalboard", 3, "high gain: pre-EQ (high-pass, mid push), two tanh stages with a tilt "
           "between, hard clip, post-EQ (low shelf, mid scoop, low-pass)", chain="highgain"),
    Recipe("lv2_ts9", "lv2", 2, "guitarix GxTubeScreamer (ts9sim, circuit-modelled TS9 overdrive), drive 0.7",
           plugin=GX + "gxts9#ts9sim", controls={"fslider2_": 0.7, "fslider1_": 500.0, "fslider0_": -6.0}),
    Recipe("lv2_studiopre", "lv2", 3, "guitarix Gx Studio Preamp (circuit-modelled two-stage 12AX7 preamp)",
           plugin=GX + "gx_studiopre#studiopre", controls={"volume": 0.7, "master": 0.5}),
    Recipe("lv2_jcm800pre", "lv2", 4, "guitarix Gxjcm800pre (circuit-modelled JCM800 preamp), preamp 0.8",
           plugin=GX + "gx_jcm800pre_#_jcm800pre_", controls={"P6v": 0.8}),
]}


# ------------------------------------------------------------------------------------------ rendering


def _pedalboard_chain(name: str):
    from pedalboard import (Clipping, Compressor, Distortion, Gain, HighpassFilter, HighShelfFilter, LowpassFilter,
                            LowShelfFilter, Pedalboard, PeakFilter)

    if name == "comp_eq":
        return Pedalboard([HighpassFilter(70.0), Compressor(threshold_db=-24.0, ratio=4.0, attack_ms=5.0,
                                                             release_ms=80.0),
                           PeakFilter(1200.0, gain_db=3.0, q=1.0), HighShelfFilter(4000.0, gain_db=-4.0),
                           Gain(6.0)])
    if name == "highgain":
        return Pedalboard([HighpassFilter(120.0), PeakFilter(700.0, gain_db=6.0, q=0.7), Gain(12.0),
                           Distortion(drive_db=24.0), HighpassFilter(40.0), PeakFilter(2500.0, gain_db=-6.0, q=0.8),
                           Distortion(drive_db=12.0), Clipping(threshold_db=-6.0),
                           LowShelfFilter(100.0, gain_db=3.0), PeakFilter(500.0, gain_db=-5.0, q=0.8),
                           LowpassFilter(5000.0)])
    raise KeyError(name)


def lv2_missing(recipe: Recipe) -> str | None:
    """Why ``recipe`` cannot be rendered here (None when it can): the host or the plugin is not installed."""
    if recipe.kind != "lv2":
        return None
    if shutil.which("lv2apply") is None or shutil.which("lv2ls") is None:
        return f"lv2apply not found (optional bench tool: {LV2_INSTALL})"
    plugins = subprocess.run(["lv2ls"], capture_output=True, text=True, check=False).stdout.split()
    if recipe.plugin not in plugins:
        return f"LV2 plugin {recipe.plugin} not installed ({LV2_INSTALL})"
    return None


def _render_lv2(recipe: Recipe, x: np.ndarray, sr: int) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        sf.write(inp, x, sr, subtype="FLOAT")
        cmd = ["lv2apply", "-i", str(inp), "-o", str(out)]
        for sym, val in recipe.controls.items():
            cmd += ["-c", sym, repr(float(val))]
        done = subprocess.run([*cmd, recipe.plugin], capture_output=True, text=True, check=False)
        if done.returncode != 0 or not out.is_file():
            raise RuntimeError(f"{recipe.name}: lv2apply failed ({done.returncode}): "
                               f"{(done.stderr or done.stdout).strip()[-300:]}")
        y, sr_y = sf.read(out, dtype="float32", always_2d=True)
    if sr_y != sr or len(y) != len(x):
        raise RuntimeError(f"{recipe.name}: lv2apply wrote {len(y)} samples at {sr_y} Hz for {len(x)} at {sr} Hz")
    return y[:, 0].astype(np.float64)


def render(recipe: Recipe, x: np.ndarray, sr: int, seed: int) -> tuple[np.ndarray, float]:
    """The recording of ``x`` through ``recipe``'s device (float32) and the gain applied to reach its peak."""
    # A silent pre-roll lets the device settle (plugins ramp their controls from the defaults after start-up;
    # without it the first validation recording differs from the second: TS9 repeatability ESR 0.08).
    pre = int(PREROLL_SECONDS * sr)
    xp = np.concatenate([np.zeros(pre, np.float32), np.asarray(x, np.float32)])
    if recipe.kind == "lv2":
        problem = lv2_missing(recipe)
        if problem:
            raise RuntimeError(f"{recipe.name}: {problem}")
        y = _render_lv2(recipe, xp, sr)
    elif recipe.chain == "overdrive":  # the device itself, without its own noise and latency (added below)
        y = render_device(xp, sr, DeviceSettings(noise_db=-300.0, latency=0), seed).astype(np.float64)
    else:
        y = _pedalboard_chain(recipe.chain)(xp[None, :], float(sr), reset=True)[0].astype(np.float64)
    y = y[pre:]
    if not np.all(np.isfinite(y)) or np.max(np.abs(y)) == 0:
        raise RuntimeError(f"{recipe.name}: the rendered output is silent or not finite")
    gain = 10 ** (recipe.output_peak_dbfs / 20) / float(np.max(np.abs(y)))
    y = y * gain
    if recipe.noise_db > -200:
        y += np.random.default_rng(seed + 7).standard_normal(y.size) * 10 ** (recipe.noise_db / 20)
    if recipe.latency > 0:
        y = np.concatenate([np.zeros(recipe.latency), y[:-recipe.latency]])
    return y.astype(np.float32), gain


# ------------------------------------------------------------------------------------------ cached captures


def _versions(recipe: Recipe) -> dict[str, str | None]:
    if recipe.kind == "pedalboard":
        return {"pedalboard": metadata.version("pedalboard")}

    def deb(pkg: str) -> str | None:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True,
                              check=False) if shutil.which("dpkg-query") else None
        return done.stdout.strip() or None if done and done.returncode == 0 else None

    return {"lilv-utils (lv2apply)": deb("lilv-utils"), "guitarix-lv2": deb("guitarix-lv2")}


def samples_sha256(path: Path) -> str:
    """Hash of the audio samples (float32): the WAV bytes also hold libsndfile's PEAK chunk with a time stamp."""
    a, _ = sf.read(path, dtype="float32", always_2d=True)
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _db(v: float) -> float:
    return round(20 * float(np.log10(max(v, 1e-12))), 2)


def capture_params(recipe: Recipe, seconds: float, seed: int) -> dict[str, Any]:
    return {"recipe": asdict(recipe), "recipe_version": RECIPE_VERSION, "layout": LAYOUT_VERSION,
            "sample_rate": SAMPLE_RATE, "seconds": float(seconds), "seed": int(seed)}


def make_capture(name: str, seconds: float = 60.0, seed: int = 0, root: str | Path | None = None) -> dict[str, Any]:
    """Render (or reuse) capture ``name``; returns its ``capture.json`` plus ``folder``, ``input_path``,
    ``output_path`` and ``cached``."""
    if name not in RECIPES:
        raise KeyError(f"unknown capture {name!r} (known: {', '.join(RECIPES)})")
    recipe = RECIPES[name]
    params = capture_params(recipe, seconds, seed)
    folder = Path(root or CAPTURES) / f"{name}-{seconds:g}s-seed{seed}"
    sidecar, inp, out = folder / "capture.json", folder / "input.wav", folder / "output.wav"
    paths = {"folder": str(folder), "input_path": str(inp), "output_path": str(out)}
    if sidecar.is_file() and inp.is_file() and out.is_file():
        meta = json.loads(sidecar.read_text())
        if meta.get("params") == params:
            # The latency is found again from the cached output: a capture rendered before a fix to
            # calibrate_latency kept a stale one (lv2_ts9 at 30 s: 14 samples where the response starts at 0, so
            # neither trainer could learn it), and both trainers are given this value.
            y, _ = sf.read(out, dtype="float32")
            fresh = _alignment(y, CaptureLayout.from_dict(meta["layout"]))
            if fresh["latency"] != meta.get("latency"):
                meta.update(fresh)
                _write_json(sidecar, meta)
            return {**meta, **paths, "cached": True}
    x, layout = standard_input(SAMPLE_RATE, seed, seconds)
    y, gain = render(recipe, x, SAMPLE_RATE, seed)
    folder.mkdir(parents=True, exist_ok=True)
    # Temporary names then renames: an interrupted render never leaves a half pair behind.
    for path, a in ((inp, x), (out, y)):
        tmp = path.with_name(path.stem + ".tmp.wav")
        sf.write(tmp, a, SAMPLE_RATE, subtype="FLOAT")
        os.replace(tmp, path)
    (folder / "input.layout.json").write_text(json.dumps(asdict(layout), indent=1))
    meta = {"name": name, "description": recipe.description, "difficulty": recipe.difficulty, "params": params,
            "tools": _versions(recipe),
            "licence": "guitarix-lv2: GPL-2+; lilv-utils: ISC (run as programs, not linked)"
            if recipe.kind == "lv2" else "pedalboard: GPL-3.0 (a project dependency)",
            "layout": asdict(layout),
            **_alignment(y, layout),
            "levels": {"output_gain_db": _db(gain), "output_peak_dbfs": _db(float(np.max(np.abs(y)))),
                       "output_rms_dbfs": _db(float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))),
                       "input_rms_dbfs": _db(float(np.sqrt(np.mean(x.astype(np.float64) ** 2))))},
            "samples_sha256": {"input.wav": samples_sha256(inp), "output.wav": samples_sha256(out)}}
    _write_json(sidecar, meta)
    return {**meta, **paths, "cached": False}


def _alignment(y: np.ndarray, layout: CaptureLayout) -> dict[str, Any]:
    """The latency found from the blips, and the ESR between the two validation recordings after it is
    corrected (as the dataset aligns them): how repeatable the device is."""
    latency = calibrate_latency(y, layout)
    d = latency.delay
    y_al = y[d:] if d >= 0 else np.concatenate([np.zeros(-d, np.float32), y[:d]])
    (a0, a1), (b0, b1) = layout.validation
    k = min(a1 - a0, len(y_al) - b0)
    return {"latency": {"recommended": latency.delay, "delays": latency.delays, "warnings": latency.warnings},
            "repeatability_esr": esr(y_al[a0:a0 + k], y_al[b0:b0 + k])}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")  # then a rename: an interrupted write never leaves half a file
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def layout_of(capture: dict[str, Any]) -> CaptureLayout:
    return CaptureLayout.from_dict(capture["layout"])


def available(names: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """(recipes that can render here, {recipe: why not} for the others)."""
    ok, missing = [], {}
    for name in names or list(RECIPES):
        problem = lv2_missing(RECIPES[name])
        if problem:
            missing[name] = problem
        else:
            ok.append(name)
    return ok, missing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--names", nargs="+", choices=list(RECIPES), default=None)
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the standard-style input")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--root", default=str(CAPTURES))
    ap.add_argument("--list", action="store_true", help="list the recipes and whether they can run here")
    args = ap.parse_args()
    ok, missing = available(args.names)
    if args.list:
        for name in args.names or RECIPES:
            r = RECIPES[name]
            print(f"{name:15s} {r.kind:10s} difficulty {r.difficulty}  {r.description}"
                  + (f"  [unavailable: {missing[name]}]" if name in missing else ""))
        return
    for name, why in missing.items():
        print(f"skip {name}: {why}")
    print(f"{'capture':15s} {'latency':>7s} {'out peak':>8s} {'out rms':>8s} {'repeat ESR':>10s}  folder")
    for name in ok:
        c = make_capture(name, args.seconds, args.seed, args.root)
        rep = c["repeatability_esr"]
        print(f"{name:15s} {c['latency']['recommended']:7d} {c['levels']['output_peak_dbfs']:8.1f} "
              f"{c['levels']['output_rms_dbfs']:8.1f} {'-' if rep is None else format(rep, '.2e'):>10s}  "
              f"{c['folder']}{' (cached)' if c['cached'] else ''}")


if __name__ == "__main__":
    main()
