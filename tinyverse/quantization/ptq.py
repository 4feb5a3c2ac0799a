"""Post-training int8 quantization of ONNX files (onnxruntime static quantization, QDQ format).

Weights: int8, per-channel, symmetric (what NPUs and CMSIS-NN expect). Activations: int8, asymmetric, ranges from
MinMax calibration on data from the training split — never the test split, which verifies the result.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)


def _calibration_reader(input_names: Sequence[str], arrays: Sequence[np.ndarray], batch_size: int):
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
            str(float_path), str(int8_path), _calibration_reader(input_names, arrays, batch_size),
            quant_format=QuantFormat.QDQ, per_channel=per_channel, activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
    finally:
        root.setLevel(level)
    log.info("int8 ONNX written to %s (calibrated on %d samples)", int8_path, arrays[0].shape[0])
    return Path(int8_path)
