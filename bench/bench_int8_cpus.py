"""int8 ONNX on CPUs with and without VNNI: full-range vs 7-bit weights (not a test; run by hand).

    python bench/bench_int8_cpus.py RUN_FOLDER      # a classification run folder (e.g. of the default config)
    python bench/bench_int8_cpus.py                 # trains the default config first (seed 42)

onnxruntime fuses a QDQ model into QLinearConv / QLinearMatMul; on x86 CPUs without VNNI its kernels add pairs of
u8·s8 products in a saturating int16 (VPMADDUBSW), so a full-range int8 model computes something else there than on a
VNNI CPU, on ARM or in TFLM. This bench quantizes the run's float model twice — full-range int8 weights (the old
setting) and our 7-bit weights (`tinyverse.quantization.quantize_onnx_static`) — and runs both on the test split on
this CPU and, when `qemu-x86_64` is installed (Debian: `apt-get install qemu-user`), on QEMU's `Haswell` CPU model
(AVX2, no AVX-512, no VNNI), each with onnxruntime's default session (fused kernels) and with `ORT_DISABLE_ALL` (the
QDQ reference). It writes bench/results/int8_cpus.json; `bench/bench_results.py --render` puts it in docs/results.md.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

# Run in a child process (natively or under QEMU): fused vs reference outputs of one .onnx file.
CHILD = """
import sys, numpy as np, onnxruntime as ort
X = np.load(sys.argv[2])
def run(level):
    so = ort.SessionOptions(); so.graph_optimization_level = level; so.intra_op_num_threads = 1
    s = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: X})[0]
np.save(sys.argv[3], np.stack([run(ort.GraphOptimizationLevel.ORT_ENABLE_ALL),
                               run(ort.GraphOptimizationLevel.ORT_DISABLE_ALL)]))
"""


def quantize_full_range(float_path: Path, out: Path, calib: np.ndarray) -> Path:
    """The setting before 7-bit weights: per-channel symmetric int8 weights over the whole [-127, 127]."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from tinyverse.quantization.ptq import calibration_reader

    quantize_static(str(float_path), str(out), calibration_reader(["x"], [calib], 32), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax, reduce_range=False,
                    extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_folder", nargs="?", help="a classification run folder (default: train the default config)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from modelmaker import runner
    from tinyverse.quantization import onnx_output_step, quantize_onnx_static

    config = ROOT / "configs" / "timeseries_classification.yaml"
    tmp = Path(tempfile.mkdtemp(prefix="bench_int8_cpus_"))
    if args.run_folder:
        run_dir = Path(args.run_folder)
        config = run_dir / "config.yaml"
    else:
        run_dir = Path(runner.run(config, overrides={"common": {"projects_path": str(tmp), "verbose": False,
                                                                "run_name": "default"}})["run_dir"])
    cfg = runner.load_run_config(config)
    data = runner.AI_MODULES.get(cfg.common.modality)().load_data(cfg)
    X = np.ascontiguousarray(data.X_test[..., None], dtype=np.float32)
    calib = np.ascontiguousarray(data.X_train[..., None], dtype=np.float32)
    np.save(tmp / "X.npy", X)
    models = {"full-range int8 (old)": quantize_full_range(run_dir / "model_float.onnx", tmp / "full.onnx", calib),
              "7-bit (`quantize_onnx_static`)": quantize_onnx_static(run_dir / "model_float.onnx", tmp / "7bit.onnx",
                                                                     calib)}
    (tmp / "child.py").write_text(CHILD)
    cpus = {"this CPU": []}
    qemu = shutil.which("qemu-x86_64")
    if qemu:
        cpus["QEMU Haswell (AVX2, no VNNI)"] = [qemu, "-cpu", "Haswell"]
    rows = []
    for weights, path in models.items():
        step = onnx_output_step(path)
        for cpu, prefix in cpus.items():
            out = tmp / "out.npy"
            subprocess.run([*prefix, sys.executable, str(tmp / "child.py"), str(path), str(tmp / "X.npy"), str(out)],
                           check=True, stderr=subprocess.DEVNULL)
            fused, ref = np.load(out)
            rows.append({"weights": weights, "cpu": cpu, "acc_fused": float((fused.argmax(1) == data.y_test).mean()),
                         "acc_reference": float((ref.argmax(1) == data.y_test).mean()),
                         "agreement": float((fused.argmax(1) == ref.argmax(1)).mean()),
                         "max_steps": float(np.abs(fused - ref).max() / step)})
            print(json.dumps(rows[-1]), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    note = f"run folder of `{config.name}`, {len(X)} test series" + ("" if qemu else "; qemu-x86_64 not installed")
    (RESULTS / "int8_cpus.json").write_text(json.dumps({"note": note, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
