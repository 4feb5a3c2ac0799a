"""Feature-extraction transforms: known answers for each primitive, each preset against an independent numpy
computation (written the way TI's loop does it), fit-on-train-only, golden header round trip (and a C program
that recomputes a preset from the header), and a tiny pipeline run with a preset."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from tinyverse.registry import TRANSFORMS
from tinyverse.timeseries.transforms import TransformError, apply_transforms, build_transform
from tinyverse.timeseries.transforms.golden import (export_feature_extraction, parse_c_float_arrays, run_pipeline,
                                         write_features_golden)

ROOT = Path(__file__).resolve().parents[1]
rng = np.random.default_rng(7)


def series(n=2, c=2, length=64) -> np.ndarray:
    return rng.normal(size=(n, c, length)).astype(np.float32)


# -- primitives: known answers ---------------------------------------------------------------------------------
def test_frame_rows_window_and_too_short():
    x = np.arange(10, dtype=np.float32).reshape(1, 1, 10)
    out = build_transform("Frame", {"frame_size": 4, "stride": 3})(x)
    assert out.shape == (1, 3, 4)  # frames start at 0, 3, 6; sample 9 is after the last frame
    np.testing.assert_array_equal(out[0], [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]])
    two = np.stack([x[0, 0], -x[0, 0]])[None]  # channels: row c*F + f
    out = build_transform("Frame", {"frame_size": 5, "num_frames": 2})(two)
    np.testing.assert_array_equal(out[0], [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [0, -1, -2, -3, -4], [-5, -6, -7, -8, -9]])
    hann = build_transform("Frame", {"frame_size": 8, "window": "hann"})(np.ones((1, 1, 8), np.float32))
    np.testing.assert_allclose(hann[0, 0], 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(8) / 8), atol=1e-7)  # periodic
    sym = build_transform("Frame", {"frame_size": 8, "window": "hann", "symmetric": True})(
        np.ones((1, 1, 8), np.float32))
    np.testing.assert_allclose(sym[0, 0], np.hanning(8), atol=1e-7)
    with pytest.raises(TransformError, match=r"^Frame: series are 10 samples long, shorter than the 12") as info:
        build_transform("Frame", {"frame_size": 4, "num_frames": 3})(x)
    assert "\n" not in str(info.value)
    with pytest.raises(TransformError, match="unknown window 'hanningg'"):
        build_transform("Frame", {"frame_size": 4, "window": "hanningg"})


def test_fft_of_a_sinusoid_peaks_in_its_bin():
    k, b = 64, 5
    x = np.cos(2 * np.pi * b * np.arange(k) / k).astype(np.float32).reshape(1, 1, k)
    spec = build_transform("FFT", {})(x)
    assert spec.shape == (1, 1, 2 * (k // 2 + 1))  # [re, im] of bins 0..K/2
    mag = build_transform("Magnitude", {})(spec)[0, 0]
    assert mag.shape == (k // 2 + 1,) and int(np.argmax(mag)) == b
    np.testing.assert_allclose(mag[b], k / 2, rtol=1e-6)  # unscaled DFT: a unit cosine gives K/2
    assert np.delete(mag, b).max() < 1e-4
    full = build_transform("Magnitude", {})(build_transform("FFT", {"positive_half": False})(x))[0, 0]
    assert full.shape == (k,) and sorted(np.argsort(full)[-2:]) == [b, k - b]
    normed = build_transform("Magnitude", {})(build_transform("FFT", {"normalize": True})(x))[0, 0]
    np.testing.assert_allclose(normed[b], 0.5, rtol=1e-6)
    dc = build_transform("Magnitude", {})(build_transform("FFT", {})(np.full((1, 1, k), 2.0, np.float32)))[0, 0]
    np.testing.assert_allclose(dc[0], 2.0 * k)


def test_magnitude_power_and_dc_bin():
    reim = np.array([[[3.0, 0.0, 4.0, 1.0]]], np.float32)  # re = [3, 0], im = [4, 1]
    np.testing.assert_allclose(build_transform("Magnitude", {})(reim)[0, 0], [5.0, 1.0])
    np.testing.assert_allclose(build_transform("Magnitude", {"power": True})(reim)[0, 0], [25.0, 1.0])
    with pytest.raises(TransformError, match="even length"):
        build_transform("Magnitude", {})(np.ones((1, 1, 3), np.float32))
    np.testing.assert_array_equal(build_transform("DropDCBin", {})(np.arange(4.0).reshape(1, 1, 4))[0, 0], [1, 2, 3])


def test_binning_averages_consecutive_bins():
    x = np.arange(9, dtype=np.float32).reshape(1, 1, 9)
    np.testing.assert_allclose(build_transform("Binning", {"num_bins": 2})(x)[0, 0], [1.5, 5.5])  # 8 used, 1 left
    np.testing.assert_allclose(build_transform("Binning", {"num_bins": 2, "normalize": False})(x)[0, 0], [6, 22])
    np.testing.assert_allclose(build_transform("Binning", {"num_bins": 2, "bin_size": 3, "start": 1})(x)[0, 0], [2, 5])
    with pytest.raises(TransformError, match="need 13 values, the input has 9"):
        build_transform("Binning", {"num_bins": 4, "bin_size": 3, "start": 1})(x)


def test_log_db():
    x = np.array([[[1.0, 10.0, 100.0, 0.0]]], np.float32)
    out = build_transform("LogDB", {})(x)[0, 0]
    np.testing.assert_allclose(out[:3], [0.0, 20.0, 40.0], atol=1e-6)
    assert out[3] == pytest.approx(-2000.0)  # 20*log10(0 + 1e-100): finite, as TI's log_threshold makes it
    np.testing.assert_allclose(build_transform("LogDB", {"multiplier": 10})(x)[0, 0, :3], [0, 10, 20], atol=1e-6)
    np.testing.assert_allclose(build_transform("LogDB", {"multiplier": 1, "base": "e"})(x)[0, 0, 1], np.log(10))
    with pytest.raises(TransformError, match="put Magnitude before LogDB"):
        build_transform("LogDB", {"eps": 0})(np.array([[[-1.0]]], np.float32))


def test_remove_mean_downsample_concat():
    x = np.array([[[1.5, 2.5, 3.5]]], np.float32)
    np.testing.assert_allclose(build_transform("RemoveMean", {})(x)[0, 0], [-1, 0, 1])
    np.testing.assert_allclose(build_transform("RemoveMean", {"rounding": "floor"})(x)[0, 0], [-0.5, 0.5, 1.5])
    np.testing.assert_allclose(build_transform("Downsample", {"factor": 3})(np.arange(10.0).reshape(1, 1, 10))[0, 0],
                               [1, 4, 7])
    framed = np.arange(12, dtype=np.float32).reshape(1, 6, 2)  # 2 channels x 3 frames x 2 features
    flat = build_transform("Concat", {"num_frames": 3})(framed)
    np.testing.assert_array_equal(flat[0], [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]])
    spec = build_transform("Concat", {"num_frames": 3, "layout": "frames_as_length"})(framed)
    np.testing.assert_array_equal(spec[0], [[0, 2, 4], [1, 3, 5], [6, 8, 10], [7, 9, 11]])
    with pytest.raises(TransformError, match="not a whole number"):
        build_transform("Concat", {"num_frames": 4})(framed)


def test_statistics_known_values():
    x = np.array([[[1, -1, 1, -1], [2, 2, 2, 2]]], np.float32)
    out = build_transform("Statistics", {})(x)[0]
    #                     mean std min max rms skew kurt zcr
    np.testing.assert_allclose(out[0], [0, 1, -1, 1, 1, 0, -2, 0.75], atol=1e-6)
    np.testing.assert_allclose(out[1], [2, 0, 2, 2, 2, 0, 0, 0], atol=1e-6)  # constant: skew = kurtosis = 0
    skewed = np.array([[[0, 0, 0, 4]]], np.float32)  # mean 1: central moments by hand
    d = skewed[0, 0] - 1.0
    m2, m3, m4 = (d ** 2).mean(), (d ** 3).mean(), (d ** 4).mean()
    np.testing.assert_allclose(build_transform("Statistics", {"stats": ["skew", "kurtosis"]})(skewed)[0, 0],
                               [m3 / m2 ** 1.5, m4 / m2 ** 2 - 3], rtol=1e-6)
    with pytest.raises(TransformError, match="unknown statistic"):
        build_transform("Statistics", {"stats": ["median"]})


def test_standardize_and_minmax_fit_on_train_only():
    train = series(8, 2, 16) * 3 + 1
    outs, stats = [], []
    for test in (series(4, 2, 16), series(4, 2, 16) * 100):
        out, fitted = apply_transforms([("Standardize", {}), ("MinMaxScale", {"per": "feature"})],
                                       {"train": train, "test": test})
        outs.append(out["train"])
        stats.append((fitted[0].mean.copy(), fitted[0].std.copy(), fitted[1].min.copy(), fitted[1].max.copy()))
    np.testing.assert_array_equal(outs[0], outs[1])  # a different test split changes nothing fitted
    for a, b in zip(*stats):
        np.testing.assert_array_equal(a, b)
    std = build_transform("Standardize", {}).fit(train)
    z = std(train)
    np.testing.assert_allclose(z.mean(axis=(0, 2)), 0, atol=1e-6)
    np.testing.assert_allclose(z.std(axis=(0, 2)), 1, atol=1e-6)
    np.testing.assert_allclose(std.mean[:, 0], train.astype(np.float64).mean(axis=(0, 2)))
    mm = build_transform("MinMaxScale", {"per": "feature"}).fit(train)(train)
    np.testing.assert_allclose(mm.min(axis=0), 0, atol=1e-7)
    np.testing.assert_allclose(mm.max(axis=0), 1, atol=1e-6)
    with pytest.raises(TransformError, match="call fit"):
        build_transform("Standardize", {})(train)


# -- presets against a direct numpy computation --------------------------------------------------------------
def ti_fftbin(x: np.ndarray, frame: int, features: int, frames: int) -> np.ndarray:
    """TI's loop for one channel: FFT, positive half, |.|, drop bin 0, average bins, 20*log10(. + 1e-100)."""
    out = []
    for f in range(frames):
        wave = x[f * frame:(f + 1) * frame].astype(np.float64)
        half = np.abs(np.fft.fft(wave))[:frame // 2 + 1][1:]
        size = frame // 2 // features
        binned = np.array([np.sum(half[k * size:(k + 1) * size]) / size for k in range(features)])
        out.append(20 * np.log10(1e-100 + binned))
    return np.concatenate(out)


def direct_stats(frame: np.ndarray) -> list[float]:
    x = frame.astype(np.float64)
    mean = x.sum() / len(x)
    m2, m3, m4 = (((x - mean) ** j).sum() / len(x) for j in (2, 3, 4))
    skew = m3 / m2 ** 1.5 if m2 > 0 else 0.0
    kurt = m4 / m2 ** 2 - 3 if m2 > 0 else 0.0
    crossings = sum(1 for a, b in zip(np.sign(x[:-1]), np.sign(x[1:])) if a != b)
    return [mean, np.sqrt(m2), x.min(), x.max(), np.sqrt((x * x).sum() / len(x)), skew, kurt, crossings / len(x)]


FFTBIN = [(1024, 64), (512, 32), (256, 16)]


@pytest.mark.parametrize("frame,features", FFTBIN)
def test_fftbin_presets_match_direct_numpy(frame, features):
    name = f"Generic_{frame}Input_FFTBIN_{features}Feature_8Frame"
    X = series(2, 2, 8 * frame + 37)  # extra samples after the 8th frame are not used
    out = TRANSFORMS.get(name)()(X)
    assert out.shape == (2, 2, 8 * features) and out.dtype == np.float32
    for n in range(2):
        for c in range(2):
            np.testing.assert_allclose(out[n, c], ti_fftbin(X[n, c], frame, features, 8), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("frame", [1024, 512, 256])
def test_fft_presets_match_direct_numpy(frame):
    X = series(2, 1, frame)
    out = TRANSFORMS.get(f"Generic_{frame}Input_FFT_{frame // 2}Feature_1Frame")()(X)
    for n in range(2):
        ref = 20 * np.log10(1e-100 + np.abs(np.fft.fft(X[n, 0].astype(np.float64)))[1:frame // 2 + 1])
        np.testing.assert_allclose(out[n, 0], ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("frame", [512, 256, 128])
def test_raw_presets_match_direct_numpy(frame):
    X = series(2, 3, frame + 5) * 4 + 10
    out = TRANSFORMS.get(f"Generic_{frame}Input_RAW_{frame}Feature_1Frame")()(X)
    assert out.shape == (2, 3, frame)
    for n in range(2):
        for c in range(3):
            w = X[n, c, :frame].astype(np.float64)
            np.testing.assert_allclose(out[n, c], w - np.sum(w) // len(w), rtol=1e-6, atol=1e-5)


def test_stats_preset_matches_direct_numpy():
    X = series(2, 2, 1024)
    X[0, 1, :128] = 0.5  # a constant frame
    out = TRANSFORMS.get("Generic_128Input_STATS_8Feature_8Frame")()(X)
    assert out.shape == (2, 2, 64)
    for n in range(2):
        for c in range(2):
            ref = np.concatenate([direct_stats(X[n, c, f * 128:(f + 1) * 128]) for f in range(8)])
            np.testing.assert_allclose(out[n, c], ref, rtol=1e-5, atol=1e-6)


def test_every_preset_documents_its_arithmetic():
    doc = (ROOT / "docs" / "feature_extraction.md").read_text()
    presets = TRANSFORMS.names(kind="preset")
    assert {f"Generic_{f}Input_FFTBIN_{k}Feature_8Frame" for f, k in FFTBIN} <= set(presets)
    for name in presets:
        text = TRANSFORMS.get(name)().arithmetic()
        assert text.startswith(name) and "1." in text
        assert text in doc, f"docs/feature_extraction.md is out of date for {name}"


def test_preset_too_short_is_one_line_error(tmp_path, capsys):
    from modelmaker.cli import main

    with pytest.raises(TransformError, match="^Generic_1024Input_FFTBIN_64Feature_8Frame: Frame: series are 150 "
                                             "samples long, shorter than the 8192") as info:
        apply_transforms([("Generic_1024Input_FFTBIN_64Feature_8Frame", {})], {"train": series(2, 1, 150)})
    assert "\n" not in str(info.value)
    cfg = tmp_path / "cfg.yaml"  # through the CLI: one line, exit 2, before a run folder exists
    cfg.write_text(yaml.safe_dump({
        "common": {"run_name": "run", "projects_path": str(tmp_path / "projects")},
        "dataset": {"ucr_name": "GunPoint"}, "training": {"model_name": "CLS_100_NPU"},
        "feature_extraction": {"enable": True, "preset": "Generic_1024Input_FFTBIN_64Feature_8Frame"}}))
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("modelmaker: error: Generic_1024Input_FFTBIN_64Feature_8Frame: Frame: series are 150")
    assert len(err.splitlines()) == 1 and not (tmp_path / "projects").exists()


# -- golden feature vectors ----------------------------------------------------------------------------------
def fitted_pipeline():
    splits = {s: series(5, 2, 2048 + 11) for s in ("train", "val", "test")}
    specs = [("Generic_256Input_FFTBIN_16Feature_8Frame", {}), ("Standardize", {"per": "feature"})]
    out, fitted = apply_transforms(specs, splits)
    return splits, out, [(n, p, t) for (n, p), t in zip(specs, fitted)]


def test_golden_header_round_trip(tmp_path):
    splits, out, pipeline = fitted_pipeline()
    path, X, F = write_features_golden(pipeline, splits["test"][:3], tmp_path)
    arrays = parse_c_float_arrays(path)
    np.testing.assert_array_equal(arrays["features_golden_inputs"], splits["test"][:3].reshape(3, -1))
    np.testing.assert_array_equal(arrays["features_golden_outputs"], out["test"][:3].reshape(3, -1))
    np.testing.assert_array_equal(F, out["test"][:3])
    text = path.read_text()
    assert "#define FEATURES_GOLDEN_OUTPUT_CHANNELS 2" in text and "#define FEATURES_GOLDEN_OUTPUT_LENGTH 128" in text
    summary = export_feature_extraction(pipeline, splits["test"], tmp_path, count=2)
    record = json.loads((tmp_path / "feature_extraction.json").read_text())
    assert summary["golden"] == "features_golden.h" and record["golden"]["count"] == 2
    assert [s["name"] for s in record["transforms"]] == ["Generic_256Input_FFTBIN_16Feature_8Frame", "Standardize"]
    assert record["transforms"][0]["output_shape"] == [2, 128] and record["output_shape"] == [2, 128]
    assert np.asarray(record["transforms"][1]["state"]["mean"]).shape == (2, 128)  # fitted statistics for C code
    np.testing.assert_array_equal(run_pipeline(pipeline, splits["val"]), out["val"])


C_FFTBIN = r"""
#include <math.h>
#include <stdio.h>
#include "features_golden.h"
#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif
#define K 256
#define G 16
#define FRAMES 8
int main(void) {
  double worst = 0;
  for (int s = 0; s < FEATURES_GOLDEN_COUNT; s++)
    for (int c = 0; c < FEATURES_GOLDEN_INPUT_CHANNELS; c++)
      for (int f = 0; f < FRAMES; f++) {
        const float *x = &features_golden_inputs[s][c * FEATURES_GOLDEN_INPUT_LENGTH + f * K];
        double mag[K / 2 + 1];
        for (int b = 0; b <= K / 2; b++) {  /* DFT bins 0..K/2 */
          double re = 0, im = 0;
          for (int n = 0; n < K; n++) {
            re += x[n] * cos(2 * M_PI * b * n / K);
            im -= x[n] * sin(2 * M_PI * b * n / K);
          }
          mag[b] = sqrt(re * re + im * im);
        }
        for (int k = 0; k < G; k++) {  /* bins 1..K/2 (DC dropped), averaged in groups of K/2/G */
          double sum = 0;
          for (int j = 0; j < K / 2 / G; j++) sum += mag[1 + k * (K / 2 / G) + j];
          double db = 20 * log10(sum / (K / 2 / G) + 1e-100);
          double d = fabs(db - features_golden_outputs[s][c * FEATURES_GOLDEN_OUTPUT_LENGTH + f * G + k]);
          if (d > worst) worst = d;
        }
      }
  printf("%g\n", worst);
  return worst < 1e-3 ? 0 : 1;
}
"""


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_c_code_reproduces_preset_from_golden_header(tmp_path):
    """The documented arithmetic, written in C, recomputes the golden features from the header's raw inputs."""
    splits = {"train": series(3, 2, 2048)}
    out, fitted = apply_transforms([("Generic_256Input_FFTBIN_16Feature_8Frame", {})], splits)
    write_features_golden(fitted, splits["train"], tmp_path)
    (tmp_path / "check.c").write_text(C_FFTBIN)
    subprocess.run(["cc", "-O1", "-o", str(tmp_path / "check"), str(tmp_path / "check.c"), "-lm"], check=True,
                   cwd=tmp_path)
    run = subprocess.run([str(tmp_path / "check")], capture_output=True, text=True)
    assert run.returncode == 0, f"C recomputation differs by {run.stdout.strip()} dB"


# -- end to end: a tiny config with a preset -----------------------------------------------------------------
def write_recordings(root: Path, length: int = 2048 * 3) -> None:
    t = np.arange(length)
    for label, freq in (("low", 0.02), ("high", 0.2)):
        folder = root / "classes" / label
        folder.mkdir(parents=True)
        for i in range(3):
            x = np.sin(2 * np.pi * freq * t + i) + 0.1 * rng.normal(size=length)
            np.save(folder / f"rec{i}.npy", x.astype(np.float32)[:, None])


def test_pipeline_with_preset_writes_matching_golden_features(tmp_path):
    from modelmaker.cli import main
    from tinyverse.timeseries.data import ClassFolderDataset

    write_recordings(tmp_path / "data")
    cfg = {
        "common": {"task_type": "classification", "run_name": "run", "projects_path": str(tmp_path / "projects"),
                   "verbose": False},
        "dataset": {"name": "folder", "path": str(tmp_path / "data"), "frame_size": 2048, "stride": 1024},
        "feature_extraction": {"enable": True, "preset": "Generic_256Input_FFTBIN_16Feature_8Frame",
                               "transforms": [{"name": "Standardize", "per": "feature"}]},
        "training": {"model_name": "CLS_100_NPU", "epochs": 1, "batch_size": 8},
        "compilation": {"enable": True, "golden_vectors": 2, "exporters": ["onnx", "tflite_int8"]},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path)]) == 0
    run_dir = tmp_path / "projects" / "run"
    arrays = parse_c_float_arrays(run_dir / "features_golden.h")
    raw = ClassFolderDataset(str(tmp_path / "data"), frame_size=2048, stride=1024).load().X_test[:2]
    np.testing.assert_array_equal(arrays["features_golden_inputs"], raw.reshape(2, -1))
    record = json.loads((run_dir / "feature_extraction.json").read_text())
    std = record["transforms"][1]["state"]
    expected = (TRANSFORMS.get("Generic_256Input_FFTBIN_16Feature_8Frame")()(raw) - np.asarray(std["mean"])) \
        / np.asarray(std["std"])
    np.testing.assert_allclose(arrays["features_golden_outputs"], expected.reshape(2, -1), rtol=1e-5, atol=1e-5)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["dataset"]["input_shape"] == [1, 128]
    assert summary["feature_extraction"]["golden"] == "features_golden.h"
    assert "## Feature extraction" in (run_dir / "report.md").read_text()
