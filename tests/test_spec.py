import numpy as np
import pytest
import torch

from tinyverse.layers import SpecError
from tinyverse.models import GenericModelWithSpec, ModelSpec

RESIDUAL = {
    "inputs": {"x": [1, 64, 1]},
    "layers": {
        "conv1": {"type": "ConvBNReLULayer", "out_channels": 8, "kernel_size": 5, "stride": 2},
        "conv2": {"type": "ConvBNLayer", "out_channels": 8, "kernel_size": 3},
        "res": {"type": "Add", "inputs": ["conv2", "conv1"]},
        "relu": {"type": "ReLULayer"},
        "dw": {"type": "DWConvBNReLULayer", "kernel_size": 3, "stride": 2},
        "pw": {"type": "PWConvBNReLULayer", "out_channels": 16},
        "pool": {"type": "MaxPoolLayer", "kernel_size": 2},
        "gap": {"type": "GlobalAvgPoolLayer"},
        "flat": {"type": "ReshapeLayer"},
        "fc": {"type": "LinearLayer", "out_features": 3},
    },
}


def test_shapes_are_inferred_without_in_channels():
    spec = ModelSpec(RESIDUAL)
    shapes = {n: i.out_shape for n, i in spec.info.items()}
    assert shapes["conv1"] == (8, 32, 1)
    assert shapes["res"] == (8, 32, 1)
    assert shapes["dw"] == (8, 16, 1)
    assert shapes["pw"] == (16, 16, 1)
    assert shapes["pool"] == (16, 8, 1)
    assert shapes["flat"] == (16,)
    assert shapes["fc"] == (3,)


def test_params_and_macs_match_hand_counts_and_torch():
    spec = ModelSpec(RESIDUAL)
    info = spec.info
    # conv1: 1*8*5 weights + BN 2*8; MACs = out(8*32) * in 1 * k 5
    assert info["conv1"].params == 40 + 16 and info["conv1"].macs == 8 * 32 * 5
    # depthwise: 8*3 weights + BN 16; MACs = 8*16 * 1 * 3
    assert info["dw"].params == 24 + 16 and info["dw"].macs == 8 * 16 * 3
    assert info["fc"].params == 16 * 3 + 3 and info["fc"].macs == 48
    model = GenericModelWithSpec(spec)
    assert spec.params == sum(p.numel() for p in model.parameters())


def test_op_classes_for_the_device_checker():
    spec = ModelSpec(RESIDUAL)
    assert spec.info["conv1"].op_class == "FCONV"
    assert spec.info["conv2"].op_class == "GCONV"
    assert spec.info["dw"].op_class == "DWCONV"
    assert spec.info["pw"].op_class == "PWCONV"
    assert spec.info["fc"].op_class == "FC"
    assert spec.info["res"].op_class == "ADD"
    op = spec.info["conv2"].ops[0]
    assert (op.in_channels, op.out_channels, op.kernel, op.stride) == (8, 8, (3, 1), (1, 1))


def test_forward_follows_named_inputs():
    model = GenericModelWithSpec(RESIDUAL).eval()
    x = torch.randn(4, 1, 64, 1)
    out = model(x)
    assert out.shape == (4, 3)
    # recompute by hand through the module dict: the residual must add conv1's output
    L = model.layers
    c1 = L["conv1"](x)
    r = torch.relu(L["conv2"](c1) + c1)
    h = L["pool"](L["pw"](L["dw"](r)))
    ref = L["fc"](L["flat"](L["gap"](h)))
    torch.testing.assert_close(out, ref)


def test_several_inputs_concat_and_mean():
    spec = {
        "inputs": {"audio": [4, 16, 1], "params": [2]},
        "layers": {
            "a": {"type": "ConvBNReLULayer", "out_channels": 4, "kernel_size": 3, "input": "audio"},
            "b": {"type": "ConvBNReLULayer", "out_channels": 4, "kernel_size": 1, "input": "audio"},
            "m": {"type": "Mean", "inputs": ["a", "b"]},
            "flat": {"type": "ReshapeLayer"},
            "cat": {"type": "Concat", "inputs": ["flat", "params"]},
            "fc": {"type": "LinearLayer", "out_features": 1},
        },
        "outputs": ["fc", "m"],
    }
    model = GenericModelWithSpec(spec).eval()
    assert model.spec.info["cat"].out_shape == (66,)
    y, m = model(torch.randn(3, 4, 16, 1), torch.randn(3, 2))
    assert y.shape == (3, 1) and m.shape == (3, 4, 16, 1)


def test_yaml_round_trip_is_exact(tmp_path):
    spec = ModelSpec({**RESIDUAL, "name": "tiny_res"})
    path = tmp_path / "spec.yaml"
    spec.to_yaml(path)
    back = ModelSpec.from_yaml(path)
    assert back == spec and back.to_dict() == spec.to_dict()
    torch.manual_seed(0)
    a = GenericModelWithSpec(spec)
    b = GenericModelWithSpec(back)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 1, 64, 1)
    torch.testing.assert_close(a.eval()(x), b.eval()(x))


def test_summary_table_lists_every_layer_and_totals():
    spec = ModelSpec(RESIDUAL)
    text = spec.summary()
    for name in RESIDUAL["layers"]:
        assert name in text
    assert f"{spec.params:,}" in text.splitlines()[-1]


@pytest.mark.parametrize("layers, message", [
    ({"c": {"type": "ConvBNReLULayer", "out_channels": 4, "kernal_size": 3}}, "did you mean 'kernel_size'"),
    ({"c": {"type": "ConvBnReluLayer", "out_channels": 4}}, "did you mean 'ConvBNReLULayer'"),
    ({"c": {"type": "Add", "inputs": ["x", "nope"]}}, "input 'nope' is no layer or input"),
    ({"f": {"type": "LinearLayer", "out_features": 2}}, "put a ReshapeLayer"),
    ({"c": {"type": "ConvBNReLULayer", "out_channels": 4, "kernel_size": 99, "padding": "valid"}}, "too short"),
    ({"c": {"type": "ConvBNReLULayer", "out_channels": "four"}}, "layers.c.out_channels"),
])
def test_bad_specs_fail_with_one_line_naming_the_layer(layers, message):
    with pytest.raises(SpecError) as err:
        ModelSpec({"inputs": {"x": [1, 32, 1]}, "layers": layers})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_forward_uses_less_memory_by_freeing_dead_tensors():
    model = GenericModelWithSpec(RESIDUAL)
    # conv1 is read by conv2 and res; it can be dropped right after res
    assert "conv1" in model._free_after["res"]
    assert np.all([o not in sum(model._free_after.values(), []) for o in model.output_names])


def test_spec_models_implement_the_model_contract():
    """A spec model answers the contract from its layers: the same facts the spec reports, no class checks."""
    from tinyverse.models import create_model
    from tinyverse.models.contract import ModelContract

    model = create_model("CLS_1k_NPU", input_shape=(1, 128), num_classes=3)
    assert isinstance(model, ModelContract) and model.stream_kind is None
    cost = model.cost()
    assert cost.params == model.spec.params == model.num_params and cost.macs_per_inference == model.spec.macs
    assert cost.macs_per_sample is None and model.receptive_field == 128
    ops = model.device_ops()
    assert [o["op_class"] for o in ops] == [op.op_class for op in model.spec.ops()]
    assert model.describe()["architecture"] == "spec"
