"""Every registered spec-dict model builds, runs forward, exports to ONNX and matches onnxruntime."""
import numpy as np
import pytest
import torch

from tinyverse.export import export_onnx, run_onnx, torch_outputs
from tinyverse.models import create_model, get_model_spec, list_models, model_arguments
from tinyverse.layers import SpecError

MODELS = list_models(task="classification")


def test_ladder_spans_100_to_20k_params_and_names_are_honest():
    assert {"CLS_100_NPU", "CLS_1k_NPU", "CLS_4k_NPU", "CLS_13k_NPU", "CLS_20k_NPU"} <= set(MODELS)
    assert any("RES" in m for m in MODELS)
    sizes = {"100": 100, "500": 500, "1k": 1000, "2k": 2000, "4k": 4000, "6k": 6000, "8k": 8000, "13k": 13000,
             "20k": 20000, "55k": 55000}
    for name in MODELS:
        tag = name.split("_")[-2]
        if tag in sizes:
            params = get_model_spec(name).params
            assert 0.6 * sizes[tag] <= params <= 1.4 * sizes[tag], (name, params)


@pytest.mark.parametrize("name", MODELS)
def test_model_builds_runs_exports_and_matches_onnxruntime(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name, input_shape=(1, 128), num_classes=3).eval()
    # randomise BatchNorm statistics so folding is exercised, not the identity
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    trace = torch.randn(2, 1, 128, 1)
    path = export_onnx(model, tmp_path / "m.onnx", (trace,))
    x = np.random.default_rng(1).standard_normal((5, 1, 128, 1)).astype(np.float32)  # another batch size and data
    ref = torch_outputs(model, x)
    assert ref.shape == (5, 3)
    np.testing.assert_allclose(run_onnx(path, x), ref, atol=1e-4, rtol=1e-4)


def test_multichannel_input_and_other_lengths():
    model = create_model("CLS_4k_NPU", input_shape=(6, 100), num_classes=4)
    assert model(torch.randn(3, 6, 100, 1)).shape == (3, 4)


def test_unknown_model_argument_names_the_valid_ones():
    with pytest.raises(SpecError) as err:
        create_model("CLS_1k_NPU", chanels=[8, 8, 16])
    assert "did you mean 'channels'" in str(err.value) and "input_shape" in str(err.value)


def test_model_arguments_are_overridable():
    args = model_arguments("CLS_1k_NPU")
    assert {"input_shape", "num_classes", "channels", "kernel_sizes", "strides"} <= set(args)
    wide = get_model_spec("CLS_1k_NPU", channels=[8, 16, 32])
    assert wide.info["conv3"].out_shape[0] == 32
