"""int8 quantization: post-training (ONNX, with calibration data) and a small QAT fine-tuning helper."""
from tinyverse.quantization.ptq import quantize_onnx_static
from tinyverse.quantization.qat import PerChannelSymmetricFakeQuant, qat_finetune

__all__ = ["quantize_onnx_static", "qat_finetune", "PerChannelSymmetricFakeQuant"]
