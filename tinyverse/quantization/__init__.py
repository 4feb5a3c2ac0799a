"""int8 quantization: post-training (ONNX, with calibration data) and a small QAT fine-tuning helper."""
from tinyverse.quantization.ptq import MAX_WEIGHT_Q, int8_weight_bound, onnx_output_step, quantize_onnx_static
from tinyverse.quantization.qat import (OBSERVERS, PerChannelSymmetricFakeQuant, activation_points, qat_finetune,
                                        quantized_weights)

__all__ = ["quantize_onnx_static", "int8_weight_bound", "onnx_output_step", "MAX_WEIGHT_Q", "qat_finetune", "PerChannelSymmetricFakeQuant",
           "OBSERVERS", "activation_points", "quantized_weights"]
