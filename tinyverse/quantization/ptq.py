"""Post-training int8 quantization of ONNX files (onnxruntime static quantization, QDQ format).

Weights: int8, per-channel, symmetric (what NPUs and CMSIS-NN expect), in 7 bits ([-64, 64]). Activations: int8,
asymmetric, ranges from MinMax calibration on data from the training split — never the test split, which verifies
the result.

Why 7-bit weights: onnxruntime fuses the QDQ graph into QLinearConv / QLinearMatMul, whose x86 kernels on CPUs
without VNNI (AVX2, AVX-512F/BW) multiply u8 activations by s8 weights with VPMADDUBSW, which adds each pair of
products in a *saturating* int16 (255·127·2 = 64,770 > 32,767). On such a CPU a full-range int8 model gives other
answers than the same file on a VNNI CPU, on ARM, or in TFLM (the default GunPoint model: 87 % instead of 98 %,
measured under QEMU's Haswell CPU). With |w| ≤ 64 a pair sums to at most 255·64·2 = 32,640: no CPU saturates, so
the file means the same everywhere (onnxruntime's and OpenVINO's documented remedy). ``int8_weight_bound`` reads
the bound back from a file; the verification table also checks every run against the unfused QDQ reference.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

# 255 (u8 activation) · 64 · 2 products per int16 pair stays below 32,767 on every x86 int8 kernel.
MAX_WEIGHT_Q = 64


def calibration_reader(input_names: Sequence[str], arrays: Sequence[np.ndarray], batch_size: int):
    from onnxruntime.quantization import CalibrationDataReader

    class NumpyCalibrationReader(CalibrationDataReader):
        """Feeds numpy calibration arrays to onnxruntime's calibrator in batches."""

        def __init__(self) -> None:
            self._start = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            n = arrays[0].shape[0]
            if self._start >= n:
                return None
            s = slice(self._start, self._start + batch_size)
            self._start += batch_size
            return {name: np.ascontiguousarray(a[s], dtype=np.float32) for name, a in zip(input_names, arrays)}

        def rewind(self) -> None:
            self._start = 0

    return NumpyCalibrationReader()


def quantize_onnx_static(float_path: str | Path, int8_path: str | Path,
                         calib: np.ndarray | Sequence[np.ndarray], per_channel: bool = True,
                         batch_size: int = 32, max_samples: int = 512) -> Path:
    """Write an int8 QDQ copy of ``float_path`` calibrated on ``calib`` (first ``max_samples`` samples)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    arrays = [calib] if isinstance(calib, np.ndarray) else list(calib)
    arrays = [np.asarray(a, dtype=np.float32)[:max_samples] for a in arrays]
    graph = onnx.load(str(float_path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    input_names = [i.name for i in graph.input if i.name not in initializers]
    if len(input_names) != len(arrays):
        raise ValueError(f"{float_path} takes {len(input_names)} input(s) {input_names}, "
                         f"got {len(arrays)} calibration array(s)")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime logs a "consider pre-processing" WARNING on the root logger
    try:
        quantize_static(
            str(float_path), str(int8_path), calibration_reader(input_names, arrays, batch_size),
            quant_format=QuantFormat.QDQ, per_channel=per_channel, activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax, reduce_range=True,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
    finally:
        root.setLevel(level)
    log.info("int8 ONNX written to %s (calibrated on %d samples)", int8_path, arrays[0].shape[0])
    return Path(int8_path)


def int8_weight_bound(int8_path: str | Path) -> int:
    """The largest |q| of the int8 weights that feed a Conv, MatMul or Gemm (through DequantizeLinear).

    ``quantize_onnx_static`` keeps it ≤ ``MAX_WEIGHT_Q`` so no x86 int8 kernel saturates; a file above it gives
    CPU-dependent results in onnxruntime.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(int8_path)).graph
    inits = {i.name: i for i in graph.initializer}
    dq_of = {n.output[0]: n for n in graph.node if n.op_type == "DequantizeLinear"}
    bound = 0
    for node in graph.node:
        if node.op_type not in ("Conv", "MatMul", "Gemm") or len(node.input) < 2:
            continue
        dq = dq_of.get(node.input[1])
        if dq is not None and dq.input[0] in inits:
            w = numpy_helper.to_array(inits[dq.input[0]])
            if w.dtype == np.int8:
                bound = max(bound, int(np.abs(w.astype(np.int32)).max()))
    return bound


def onnx_output_step(int8_path: str | Path) -> float | None:
    """The quantization step (scale) of a QDQ model's first output: the DequantizeLinear that produces it."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(int8_path)).graph
    inits = {i.name: i for i in graph.initializer}
    name = graph.output[0].name
    for node in graph.node:
        if name in node.output and node.op_type == "DequantizeLinear" and node.input[1] in inits:
            scale = numpy_helper.to_array(inits[node.input[1]])
            return float(np.max(scale))
    return None
