"""Every exporter's artifact agrees with torch on a tiny spec model (residual Add, DW/PW convs, pools, flatten→FC)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from tinyverse.compile import compile_model
from tinyverse.export import EXPORTERS, ExportError, get_exporter, parse_c_array, run_tflm
from tinyverse.models import GenericModelWithSpec

TINY = {"inputs": {"x": [2, 64, 1]}, "layers": {
    "conv1": {"type": "ConvBNReLULayer", "out_channels": 8, "kernel_size": 5, "stride": 2},
    "dw": {"type": "DWConvBNReLULayer", "kernel_size": 3},
    "pw": {"type": "PWConvBNReLULayer", "out_channels": 8},
    "add": {"type": "Add", "inputs": ["pw", "conv1"]},
    "pool": {"type": "MaxPoolLayer", "kernel_size": 2},
    "conv2": {"type": "ConvBNReLULayer", "out_channels": 8, "kernel_size": 3},
    "apool": {"type": "AvgPoolLayer", "kernel_size": 2},
    "flat": {"type": "ReshapeLayer"},  # channel-major flatten: the twin reorders the Dense rows instead
    "fc1": {"type": "LinearLayer", "out_features": 16, "relu": True},
    "fc": {"type": "LinearLayer", "out_features": 4}}}


def _tiny_model() -> nn.Module:
    torch.manual_seed(0)
    m = GenericModelWithSpec(TINY)
    for mod in m.modules():  # non-trivial BN statistics, so folding is exercised
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.2, 0.2)
    return m.eval()


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    model = _tiny_model()
    rs = np.random.RandomState(0)
    calib = rs.randn(128, 2, 64, 1).astype(np.float32)
    test_X = rs.randn(200, 2, 64, 1).astype(np.float32)  # other data than the calibration set
    with torch.no_grad():
        test_y = model(torch.as_tensor(test_X)).argmax(1).numpy()
    out = tmp_path_factory.mktemp("compiled")
    report = compile_model(model, None, out, calib, test_X, test_y, device="cortex-m4", golden_vectors=3)
    return model, report, test_X, out


def test_all_exporters_registered():
    assert {"onnx", "onnx_int8", "tflite", "tflite_int8", "c_header"} <= set(EXPORTERS.names())
    for name in EXPORTERS.names():
        exp = get_exporter(name)
        assert exp.name == name and exp.suffix


def test_every_artifact_written_and_ran(compiled):
    _, report, _, out = compiled
    assert [r.error for r in report.rows] == [None] * len(report.rows), report.to_markdown()
    for f in ("model_float.onnx", "model_int8.onnx", "model_float.tflite", "model_int8.tflite", "model_int8.h",
              "model_int8.c", "golden_vectors.h"):
        assert (out / f).stat().st_size > 0, f
    json.dumps(report.to_dict())
    assert "TFLite int8 (TFLM)" in report.to_markdown()


@pytest.mark.parametrize("artifact", ["ONNX float", "TFLite float (LiteRT)"])
def test_float_artifacts_match_torch(compiled, artifact):
    assert compiled[1].row(artifact).max_abs_diff < 1e-4


@pytest.mark.parametrize("artifact", ["ONNX int8", "TFLite int8 (LiteRT)", "TFLite int8 (TFLM)", "C array (TFLM)"])
def test_int8_artifacts_close_to_torch(compiled, artifact):
    model, report, test_X, _ = compiled
    ref = report.rows[0]
    row = report.row(artifact)
    with torch.no_grad():
        span = float(np.ptp(model(torch.as_tensor(test_X)).numpy()))
    assert row.max_abs_diff < 0.05 * span, (row.max_abs_diff, span)
    assert row.argmax_agreement >= 0.95
    assert ref.metric == 1.0 and row.metric >= 0.95


def test_tflm_matches_litert_reference_kernels_and_reports_arena(compiled):
    report = compiled[1]
    tflm, lite = report.row("TFLite int8 (TFLM)"), report.row("TFLite int8 (LiteRT)")
    assert tflm.max_abs_diff == pytest.approx(lite.max_abs_diff, abs=1e-6)
    assert tflm.arena_bytes and 0 < tflm.arena_bytes < 64 * 1024


def test_int8_tflite_has_no_transposes(compiled):
    ops = compiled[1].info["tflite_int8_ops"]
    assert "TRANSPOSE" not in ops and "CONV_2D" in ops and "DEPTHWISE_CONV_2D" in ops


def test_c_array_round_trip(compiled):
    _, _, test_X, out = compiled
    data = parse_c_array(out / "model_int8.c")
    assert data == (out / "model_int8.tflite").read_bytes()
    y_c, _ = run_tflm(data, test_X[:20], raw=True)
    y_f, _ = run_tflm(out / "model_int8.tflite", test_X[:20], raw=True)
    assert np.array_equal(y_c, y_f)
    text = (out / "model_int8.c").read_text()
    assert "alignas(16) const unsigned char g_model_int8[]" in text
    header = (out / "model_int8.h").read_text()
    assert "MODEL_INT8_INPUT_SCALE" in header and "MODEL_INT8_OUTPUT_ZERO_POINT" in header


def test_golden_vectors_are_tflm_outputs(compiled):
    _, _, test_X, out = compiled
    text = (out / "golden_vectors.h").read_text()
    assert "#define GOLDEN_VECTORS_COUNT 3" in text
    y, _ = run_tflm(out / "model_int8.tflite", test_X[:3], raw=True)
    body = text.split("golden_vectors_outputs")[1].split("};")[0]
    nums = [int(v) for v in body[body.index("{"):].replace("{", " ").replace("}", " ").replace(",", " ").split()]
    assert nums == y.reshape(-1).tolist()


def test_device_report_includes_measured_sizes(compiled):
    dev = compiled[1].device
    assert dev.fits, dev.violations
    assert dev.measured["tflite_int8_bytes"] > 0 and dev.measured["tflm_arena_bytes"] > 0


def test_tflite_needs_a_spec_model(tmp_path):
    plain = nn.Sequential(nn.Flatten(), nn.Linear(8, 2))
    with pytest.raises(ExportError, match="spec-dict model.*litert-torch.*is not installed"):
        get_exporter("tflite").export(plain, None, tmp_path, np.zeros((4, 8), np.float32))


def test_plain_module_still_exports_onnx(tmp_path):
    plain = nn.Sequential(nn.Flatten(), nn.Linear(8, 2)).eval()
    X = np.random.RandomState(1).randn(16, 8).astype(np.float32)
    exp = get_exporter("onnx")
    y = exp.run(exp.export(plain, None, tmp_path, X), X)
    with torch.no_grad():
        assert np.abs(y - plain(torch.as_tensor(X)).numpy()).max() < 1e-5


def test_tflite_int16_is_written_by_the_same_job_and_passes_in_litert_and_tflm(tmp_path):
    """compilation.exporters may name tflite_int16 in time series: int16 activations / int8 weights, written by the
    one conversion job that writes the float and int8 files, verified on LiteRT's reference kernels and in TFLM."""
    from modelmaker.config import config_from_dict
    from tinyverse.export import io_details
    from tinyverse.export.tflite import litert_interpreter

    model = _tiny_model()
    rs = np.random.RandomState(0)
    calib, test_X = rs.randn(128, 2, 64, 1).astype(np.float32), rs.randn(120, 2, 64, 1).astype(np.float32)
    with torch.no_grad():
        test_y = model(torch.as_tensor(test_X)).argmax(1).numpy()
    report = compile_model(model, None, tmp_path, calib, test_X, test_y,
                           exporters=["tflite", "tflite_int8", "tflite_int16"])
    rows = {r.artifact: r for r in report.rows}
    assert list(rows)[-2:] == ["TFLite int16x8 (LiteRT)", "TFLite int16x8 (TFLM)"]
    lite, tflm = rows["TFLite int16x8 (LiteRT)"], rows["TFLite int16x8 (TFLM)"]
    for row in (lite, tflm):
        assert row.kind == "int16" and row.status == "PASS", report.to_markdown()
        assert row.path == str(tmp_path / "model_int16.tflite")
        assert [c.name for c in row.verdict.checks][:2] == ["argmax agreement", "accuracy drop"]  # the int8 rules
    assert "vs LiteRT reference kernels (output steps)" in [c.name for c in tflm.verdict.checks]
    assert tflm.arena_bytes > 0
    qin, qout = io_details(tmp_path / "model_int16.tflite")
    assert (qin.dtype, qout.dtype) == ("int16", "int16")
    # 16-bit activations: an output step hundreds of times finer than the int8 file's (its weights are int8 too)
    assert qout.scale < io_details(tmp_path / "model_int8.tflite")[1].scale / 100
    for name in ("model_float.tflite", "model_int8.tflite", "model_int16.tflite"):  # as the Keras twin's files
        assert list(litert_interpreter(tmp_path / name).get_signature_list()) == ["serving_default"], name
    conversion = report.info["tflite_conversion"]  # one job wrote all three files
    assert {"convert_float_s", "convert_int8_s", "convert_int16_s"} <= set(conversion) and not conversion["errors"]
    cfg = config_from_dict({"dataset": {"ucr_name": "GunPoint"}, "training": {"model_name": "CLS_1k_NPU"},
                            "compilation": {"exporters": ["onnx", "tflite_int16"]}})
    assert cfg.compilation.exporters == ["onnx", "tflite_int16"]


def test_a_tflm_arena_too_small_fails_with_tflm_s_reason_and_prints_nothing(compiled, capfd):
    _, _, test_X, out = compiled
    data = (out / "model_int8.tflite").read_bytes()
    _, used = run_tflm(data, test_X[:2])
    capfd.readouterr()
    with pytest.raises(RuntimeError) as err:
        run_tflm(data, test_X[:2], arena_size=max(64, used // 8))
    assert "Failed to" in str(err.value) or "arena" in str(err.value).lower(), str(err.value)
    assert capfd.readouterr().err == ""  # TFLM's own print is in the error, not on the console
