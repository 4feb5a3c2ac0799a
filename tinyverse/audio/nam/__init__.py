"""NAM (Neural Amp Modeler) compatibility: modules that compute what NeuralAmpModelerCore computes,
and a reader/writer for .nam files."""

from .format import (
    GEAR_TYPES,
    TONE_TYPES,
    WRITE_VERSION,
    NamFile,
    NamFormatError,
    load_nam,
    model_from_nam,
    nam_from_dict,
    nam_to_dict,
    save_nam,
)
from .presets import A1_LSTM, A1_WAVENET, A2_CHANNELS, A2_HEAD_SCALE, A2_MAX_VALUES, a1_wavenet_layers, a2_wavenet_layers
from .activations import NamActivation
from .container import NAMSlimmableContainer
from .dag import NAMDAG, DagNode
from .knob_stage import KnobStage
from .sequential import NAMSequential
from .models import (
    CORE_ACTIVATIONS,
    FILE_VERSIONS,
    NAMLSTM,
    NAMLinear,
    NAMModel,
    NAMWaveNet,
    NamWeightError,
    fast_tanh,
    nam_object,
    render,
)
from .wavenet_layers import LayerArraySpec

__all__ = [
    "A1_LSTM",
    "A1_WAVENET",
    "a1_wavenet_layers",
    "A2_CHANNELS",
    "A2_HEAD_SCALE",
    "A2_MAX_VALUES",
    "a2_wavenet_layers",
    "CORE_ACTIVATIONS",
    "DagNode",
    "FILE_VERSIONS",
    "GEAR_TYPES",
    "KnobStage",
    "LayerArraySpec",
    "NAMLSTM",
    "NAMDAG",
    "NAMLinear",
    "NAMModel",
    "NAMSlimmableContainer",
    "NAMSequential",
    "NAMWaveNet",
    "NamActivation",
    "NamFile",
    "NamFormatError",
    "NamWeightError",
    "TONE_TYPES",
    "WRITE_VERSION",
    "fast_tanh",
    "load_nam",
    "model_from_nam",
    "nam_from_dict",
    "nam_object",
    "nam_to_dict",
    "render",
    "save_nam",
]
