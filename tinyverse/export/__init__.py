"""Exporters (``EXPORTERS``): every exported artifact is verified by running it, never by its existence."""
from tinyverse.export.onnx_float import ExportError, export_onnx, onnx_session, run_onnx, torch_outputs
from tinyverse.registry import EXPORTERS

__all__ = ["EXPORTERS", "ExportError", "export_onnx", "onnx_session", "run_onnx", "torch_outputs"]
