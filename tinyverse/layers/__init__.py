"""The layer vocabulary of the spec language, registered in ``LAYERS`` (TI's names plus graph layers)."""
from tinyverse.layers.base import Layer, LayerOp, Shape, SpecError, count_params
from tinyverse.layers.conv import (ConvBNLayer, ConvBNReLULayer, ConvLayer, DWConvBNReLULayer,
                                   PWConvBNReLULayer)
from tinyverse.layers.depth_to_time import DepthToTimeLayer
from tinyverse.layers.graph import Add, Concat, Mean
from tinyverse.layers.linear import DropoutLayer, LinearLayer, ReshapeLayer
from tinyverse.layers.norm_act import BatchNormLayer, ReLULayer, SigmoidLayer, TanhLayer
from tinyverse.layers.pool import AvgPoolLayer, GlobalAvgPoolLayer, MaxPoolLayer
from tinyverse.registry import LAYERS

__all__ = [
    "LAYERS", "Layer", "LayerOp", "Shape", "SpecError", "count_params", "ConvLayer", "ConvBNReLULayer",
    "ConvBNLayer", "DWConvBNReLULayer", "PWConvBNReLULayer", "MaxPoolLayer", "AvgPoolLayer",
    "GlobalAvgPoolLayer", "ReshapeLayer", "LinearLayer", "DropoutLayer", "BatchNormLayer", "ReLULayer",
    "TanhLayer", "SigmoidLayer", "Add", "Concat", "Mean", "DepthToTimeLayer",
]
