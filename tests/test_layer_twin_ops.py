"""Layer types declare their own twin ops: built-ins through Layer.twin_ops, and a layer type from an extension file
(examples/extensions/layer/mobile_layers.py: ConvReLU6Layer, SiLULayer) exports to TFLite float + int8 and runs in
TFLM, matching PyTorch, with no tinyverse file naming it."""
from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import torch

from tinyverse import extensions
from tinyverse.compile import compile_model
from tinyverse.export import TwinError, build_plan
from tinyverse.layers import Layer
from tinyverse.models import GenericModelWithSpec
from tinyverse.registry import LAYERS

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "extensions" / "layer" / "mobile_layers.py"

SPEC = {"inputs": {"x": [2, 64, 1]}, "layers": {
    "c1": {"type": "ConvReLU6Layer", "out_channels": 8, "kernel_size": 5, "stride": 2},
    "silu": {"type": "SiLULayer"},
    "c2": {"type": "ConvBNReLULayer", "out_channels": 8, "kernel_size": 3},
    "gap": {"type": "GlobalAvgPoolLayer"},
    "flat": {"type": "ReshapeLayer"},
    "fc": {"type": "LinearLayer", "out_features": 4}}}


@pytest.fixture()
def clean_registries(monkeypatch, tmp_path, restore_registries):
    """Whatever a test registers or loads is removed afterwards (the shared restore_registries fixture)."""
    monkeypatch.setattr(extensions, "DEFAULT_FOLDER", tmp_path / "no-default-folder")


@pytest.fixture()
def custom_layers(clean_registries):
    extensions.load_extensions([EXAMPLE], strict=True)
    return EXAMPLE


def test_every_builtin_layer_type_declares_its_twin_ops():
    for name in LAYERS.names():
        entry = LAYERS.entry(name)
        if entry.source == "builtin":
            assert entry.obj.twin_ops is not Layer.twin_ops, name


def test_custom_layers_export_to_tflite_and_run_in_tflm(custom_layers, tmp_path):
    for name in ("ConvReLU6Layer", "SiLULayer"):
        entry = LAYERS.entry(name)
        assert entry.source == f"extension:{EXAMPLE.resolve()}"
        assert Path(inspect.getsourcefile(entry.obj.twin_ops)).resolve() == EXAMPLE.resolve()
    torch.manual_seed(0)
    model = GenericModelWithSpec(SPEC).eval()
    with torch.no_grad():
        model.layers["c1"][0].weight.mul_(8)  # large pre-activations, so ReLU6 clips (ReLU would not)
    rs = np.random.RandomState(0)
    calib = rs.randn(64, 2, 64, 1).astype(np.float32)
    test_X = rs.randn(120, 2, 64, 1).astype(np.float32)  # other data than the calibration set
    with torch.no_grad():
        assert float((model.layers["c1"][0](torch.as_tensor(test_X)) > 6).float().mean()) > 0.05
        test_y = model(torch.as_tensor(test_X)).argmax(1).numpy()

    report = compile_model(model, None, tmp_path, calib, test_X, test_y, exporters=["tflite", "tflite_int8"])
    assert [r.artifact for r in report.rows] == ["PyTorch float", "TFLite float (LiteRT)", "TFLite int8 (LiteRT)",
                                                 "TFLite int8 (TFLM)"]
    assert report.verified, report.to_markdown()
    assert report.row("TFLite float (LiteRT)").max_abs_diff < 1e-4
    tflm = report.row("TFLite int8 (TFLM)")
    assert tflm.argmax_agreement >= 0.9 and tflm.arena_bytes > 0
    assert any(c.name.startswith("vs LiteRT") and c.passed for c in tflm.verdict.checks)
    ops = report.info["tflite_int8_ops"]
    assert "LOGISTIC" in ops and "MUL" in ops  # SiLU as sigmoid · x
    assert "RELU" not in ops and "RELU6" not in ops  # ReLU6 fused into the conv
    assert (tmp_path / "model_int8.tflite").stat().st_size > 0


def test_twin_plan_of_custom_layers_is_made_of_primitives(custom_layers):
    torch.manual_seed(0)
    model = GenericModelWithSpec(SPEC).eval()
    plan = build_plan(model, model.spec)
    kinds = [(op["name"], op["kind"], op.get("activation") or op.get("fn")) for op in plan.ops]
    assert kinds[:3] == [("c1", "conv", "relu6"), ("silu", "act", "sigmoid"), ("silu__mul", "mul", None)]
    assert plan.ops[2]["src"] == ["c1", "silu"]
    # the Keras kernel is the torch weight moved to (k, 1, in, out)
    w = model.layers["c1"][0].weight.detach().numpy()
    assert np.array_equal(plan.weights["c1/w"], w.transpose(2, 3, 1, 0))


def test_a_layer_without_twin_ops_is_a_failed_row_naming_it(clean_registries, tmp_path):
    from torch import nn

    @LAYERS.register("NoTwinLayer")
    class NoTwinLayer(Layer):
        def output_shape(self, in_shapes):
            return in_shapes[0]

        def build(self, in_shapes):
            return nn.Identity()

    spec = {"inputs": {"x": [1, 16, 1]}, "layers": {"n": {"type": "NoTwinLayer"}, "flat": {"type": "ReshapeLayer"},
                                                    "fc": {"type": "LinearLayer", "out_features": 2}}}
    model = GenericModelWithSpec(spec).eval()
    with pytest.raises(TwinError, match=r"layers\.n: NoTwinLayer has no Keras twin: give the layer type a twin_ops"):
        build_plan(model, model.spec)
    X = np.random.RandomState(0).randn(16, 1, 16, 1).astype(np.float32)
    report = compile_model(model, None, tmp_path, X, X, exporters=["onnx", "tflite"])
    assert report.row("ONNX float").status == "PASS"
    row = report.row("TFLite float (LiteRT)")
    assert row.status == "FAIL" and "NoTwinLayer has no Keras twin" in row.error
    assert not (tmp_path / "model_float.tflite").exists()


def test_twin_ops_of_the_wrong_shape_is_an_error(clean_registries):
    from torch import nn

    @LAYERS.register("BadTwinLayer")
    class BadTwinLayer(Layer):
        def output_shape(self, in_shapes):
            return in_shapes[0]

        def build(self, in_shapes):
            return nn.Identity()

        def twin_ops(self, twin):
            return twin.pool(twin.inputs[0], "max", 2)  # halves the length: not what output_shape says

    spec = {"inputs": {"x": [1, 16, 1]}, "layers": {"b": {"type": "BadTwinLayer"}}}
    model = GenericModelWithSpec(spec).eval()
    with pytest.raises(TwinError, match=r"layers\.b: BadTwinLayer\.twin_ops produced shape \[1, 8, 1\] but the spec "
                                        r"says \[1, 16, 1\]"):
        build_plan(model, model.spec)
