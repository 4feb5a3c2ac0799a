"""Latency estimates from the device profiles' cost models (tinyverse.devices.latency) and latency budgets."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelmaker.cli import main
from tinyverse.devices import DEVICES, ProfileError, check_model, check_spec, load_device_profile
from tinyverse.devices.latency import op_channels, op_ms
from tinyverse.models import ModelSpec, create_model

ROOT = Path(__file__).resolve().parents[1]


def test_cortex_m4_estimate_is_the_profile_arithmetic():
    """CLS_4k_NPU at 1x150 on the Cortex-M4, by hand: MACs per op class over the YAML's MACs/cycle, at 168 MHz."""
    report = check_model(create_model("CLS_4k_NPU", input_shape=(1, 150), num_classes=2), "cortex-m4")
    # conv1 1->8 k7 s2: 75 outputs x 8 x 7 = 4,200; conv2 8->16 k5: 38 x 16 x 8 x 5 = 24,320;
    # conv3 16->24 k3: 19 x 24 x 16 x 3 = 21,888; conv4 24->32 k3: 10 x 32 x 24 x 3 = 23,040;
    # global average pool 32 x 10 = 320 values; FC 32 -> 2 = 64.
    cycles = (4200 + 24320 + 21888 + 23040) / 0.2674 + 320 / 0.25 + 64 / 0.2559
    assert report.totals["latency_ms"] == pytest.approx(1e3 * cycles / 168e6, rel=1e-5)
    per_layer = {lc.layer: lc.latency_ms for lc in report.layers}
    assert per_layer["conv1"] == pytest.approx(1e3 * 4200 / 0.2674 / 168e6, rel=1e-5)
    assert per_layer["flatten"] == 0  # a view costs nothing
    assert any("1.64 ms per inference at 168 MHz" in n for n in report.notes)


def test_f28p55_estimate_counts_channel_overheads_on_the_npu():
    report = check_model(create_model("CLS_4k_NPU", input_shape=(1, 150), num_classes=2), "F28P55")
    conv1 = next(lc for lc in report.layers if lc.layer == "conv1")
    assert conv1.placement == "NPU"
    # 8 output channels x 763.1 cycles + 4,200 MACs / 2.1126 MACs per cycle, at 150 MHz
    assert conv1.latency_ms == pytest.approx(1e3 * (8 * 763.1 + 4200 / 2.1126) / 150e6, rel=1e-5)


def _ti_cls_1k_npu(channels: int, length: int, classes: int) -> ModelSpec:
    """TI's CLS_1k_NPU (tinyml-modelzoo models/classification.py): BN, Conv5 8, Conv5 8, MaxPool 3/2, Conv3 16,
    GAP, FC."""
    return ModelSpec({"inputs": {"x": [channels, length, 1]}, "layers": {
        "bn0": {"type": "BatchNormLayer"},
        "c1": {"type": "ConvBNReLULayer", "out_channels": 8, "kernel_size": 5},
        "c1a": {"type": "ConvBNReLULayer", "out_channels": 8, "kernel_size": 5},
        "mp": {"type": "MaxPoolLayer", "kernel_size": 3, "stride": 2, "padding": 1},
        "c3": {"type": "ConvBNReLULayer", "out_channels": 16, "kernel_size": 3},
        "gap": {"type": "GlobalAvgPoolLayer"}, "flat": {"type": "ReshapeLayer", "shape": [-1]},
        "fc": {"type": "LinearLayer", "out_features": classes}}})


@pytest.mark.parametrize("channels, length, classes, measured_ms", [
    (10, 64, 3, 80_339 / 150e3),  # TI gas_sensor readme: 80,339 NPU cycles at 150 MHz
    (1, 512, 2, 1.257),  # TI run_info.py: CLS_1k_NPU on F28P55, 1,257 µs
])
def test_f28p55_cost_model_reproduces_tis_measurements(channels, length, classes, measured_ms):
    """The figures in F28P55.yaml are the ones TI's published CLS_1k_NPU timings give (as TI ran it: every conv,
    pool and FC on the NPU, the input BatchNorm on the C28x)."""
    model = DEVICES.get("F28P55").latency
    total = sum(op_ms(model, "cpu" if op.op_class == "BN" else "native", op.op_class, op.macs, op_channels(op))
                for op in _ti_cls_1k_npu(channels, length, classes).ops() if op.op_class != "RESHAPE")
    assert total == pytest.approx(measured_ms, rel=5e-3)


def test_every_builtin_profile_has_a_sourced_cost_model():
    for name in DEVICES.names():
        profile = DEVICES.get(name)
        if profile.source != "builtin":
            continue
        assert profile.latency is not None, name
        rates = {**profile.latency.native, **profile.latency.cpu}
        assert rates and all(r.source.strip() for r in rates.values()), name


def _profile_with_budget(tmp_path: Path, budget_ms: float) -> Path:
    data = yaml.safe_load((ROOT / "tinyverse/devices/profiles/cortex-m4.yaml").read_text())
    data["name"] = "m4-with-budget"
    data["latency"]["budget_ms"] = budget_ms
    path = tmp_path / "m4_budget.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_budget_failure_message_from_a_profile(tmp_path, capsys):
    code = main(["check", "CLS_4k_NPU", "--device", str(_profile_with_budget(tmp_path, 0.5)), "--input-shape", "1,150"])
    out = capsys.readouterr().out
    assert code == 1
    assert ("latency: estimated 1.64 ms per inference at 168 MHz exceeds the 0.5 ms budget of m4-with-budget → pick "
            "a smaller model, a shorter input, or stride earlier") in out
    assert "latency_ms   1.64" in out and "0.5" in out  # the budget table row: estimate and limit
    assert main(["check", "CLS_4k_NPU", "--device", str(_profile_with_budget(tmp_path, 5.0)),
                 "--input-shape", "1,150"]) == 0


def test_models_command_prints_the_estimate(capsys):
    assert main(["models", "--include", "CLS_4k_NPU", "--input-shape", "1,150", "--device", "cortex-m4"]) == 0
    out = capsys.readouterr().out
    assert "est. ms" in out and "1.64" in out


def test_config_budget_fails_before_the_run_folder(tmp_path):
    from modelmaker.compilation import DeviceCheckError
    from modelmaker.runner import run

    data = yaml.safe_load((ROOT / "configs/timeseries_classification.yaml").read_text())
    data["common"].update(projects_path=str(tmp_path / "projects"), latency_budget_ms=0.5)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(data))
    with pytest.raises(DeviceCheckError) as err:
        run(cfg)
    message = str(err.value)
    assert "latency: estimated 0.813 ms per inference at 150 MHz exceeds the 0.5 ms budget of F28P55" in message
    # the zoo entries that fit the budget are named, smallest first, with their estimates
    fitting = message.split("zoo entries that fit F28P55 with this input: ")[1]
    assert fitting == "CLS_100_NPU (0.103 ms), CLS_500_NPU (0.218 ms), CLS_1k_NPU (0.354 ms)"
    assert not (tmp_path / "projects").exists()


def test_a_budget_needs_a_cost_model(tmp_path):
    from tinyverse.devices.latency import with_budget

    profile = load_device_profile(ROOT / "misc/devices/my_board.yaml")
    with pytest.raises(ProfileError, match="no cost model .* latency budget of 2 ms"):
        with_budget(profile, 2)
    bad = yaml.safe_load((ROOT / "tinyverse/devices/profiles/cortex-m4.yaml").read_text())
    del bad["latency"]["clock_hz"]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ProfileError, match="latency: .*set clock_hz"):
        load_device_profile(tmp_path / "bad.yaml")


def test_audio_model_says_whether_it_runs_in_real_time():
    model = create_model("NAM_WaveNet_standard")
    fits = check_model(model, "pocket-master", sample_rate=48_000)
    # 64 samples x 13,321 MACs/sample at 672 M MAC/s = 1.269 ms of the block's 64 / 48,000 s = 1.333 ms
    assert fits.totals["latency_ms"] == pytest.approx(1e3 * 64 * 13_321 / 672e6, rel=1e-6)
    assert fits.budgets["latency_ms"] == pytest.approx(1e3 * 64 / 48_000)
    assert any(n.startswith("real time: yes") and "95 %" in n for n in fits.notes)
    slow = check_model(model, "nam-pedal-lite", sample_rate=48_000)
    assert any(v.startswith("real time: no — a block of 64 samples at 48,000 Hz takes ~17.8 ms on nam-pedal-lite")
               for v in slow.violations)


def test_spec_report_markdown_has_the_latency_row():
    report = check_spec(create_model("CLS_1k_NPU", input_shape=(1, 150), num_classes=2).spec, "ethos-u55")
    md = report.to_markdown()
    assert "| latency_ms |" in md and report.totals["latency_ms"] > 0
