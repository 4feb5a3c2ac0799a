"""Exporters (``EXPORTERS``): every exported artifact is verified by running it, never by its existence.

Registered: ``onnx``, ``onnx_int8``, ``tflite``, ``tflite_int8``, ``tflite_int16``, ``c_header`` — ordinary entries of
the registry: an extension registers its own the same way (the contract is in ``tinyverse.export.base``). Each writes
the artifact the model asks for: a whole-input file, or a streaming one for a streaming model
(``tinyverse.export.onnx_stream``, ``tinyverse.export.tflite_stream``). TensorFlow is imported only in the conversion
subprocess (``tinyverse.export.tflite_worker``); LiteRT/TFLM/onnxruntime are imported when an artifact is run.
"""
from tinyverse.export.base import (CALIBRATION, ExportContext, Exporter, RunResult, Verification, exporter_order,
                                   get_exporter)
from tinyverse.export.c_header import CHeaderExporter, parse_c_array, write_c_model, write_golden_vectors
from tinyverse.export.onnx_exporters import OnnxFloatExporter, OnnxInt8Exporter
from tinyverse.export.onnx_float import ExportError, export_onnx, onnx_session, run_onnx, torch_outputs
from tinyverse.export.tflite import convert_tflite, io_details, measure_tflm_arena, run_litert, run_tflm, tflite_ops
from tinyverse.export.tflite_exporters import TFLiteFloatExporter, TFLiteInt8Exporter, TFLiteInt16Exporter
from tinyverse.export.twin_plan import TwinBuilder, TwinError, TwinTensor, build_plan
from tinyverse.registry import EXPORTERS

__all__ = ["EXPORTERS", "ExportError", "export_onnx", "onnx_session", "run_onnx", "torch_outputs", "Exporter",
           "get_exporter", "OnnxFloatExporter", "OnnxInt8Exporter", "TFLiteFloatExporter", "TFLiteInt8Exporter",
           "TFLiteInt16Exporter", "CHeaderExporter", "convert_tflite", "run_litert", "run_tflm", "tflite_ops",
           "io_details", "measure_tflm_arena", "parse_c_array", "write_c_model", "write_golden_vectors", "TwinError",
           "build_plan", "TwinBuilder", "TwinTensor", "Verification", "RunResult", "ExportContext", "CALIBRATION",
           "exporter_order"]
