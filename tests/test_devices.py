"""Device profiles and the spec rule checker."""
from __future__ import annotations

import json

import pytest

from tinyverse.compile import check_model, fitting_models
from tinyverse.devices import DEVICES, DeviceProfile, ProfileError, check_spec, load_device_profile
from tinyverse.models import ModelSpec, get_model_spec, list_models
from tinyverse.models.roles import TEACHER, registered_role



def test_builtin_profiles_registered():
    assert {"F28P55", "cortex-m4", "cortex-m7", "ethos-u55"} <= set(DEVICES.names())
    assert isinstance(DEVICES.get("F28P55"), DeviceProfile)
    assert DEVICES.entry("F28P55").source == "builtin"


@pytest.mark.parametrize("name", [n for n in list_models(task="classification") if registered_role(n) != TEACHER])
@pytest.mark.parametrize("length", [512, 150])
def test_zoo_fits_f28p55(name, length):
    report = check_spec(get_model_spec(name, input_shape=(1, length)), "F28P55")
    assert report.fits, report.violations
    json.dumps(report.to_dict())
    assert "| layer |" in report.to_markdown()


BROKEN = {"inputs": {"x": [1, 128, 1]}, "layers": {
    "conv1": {"type": "ConvBNReLULayer", "out_channels": 8, "kernel_size": 5, "stride": 2},
    "conv2": {"type": "ConvBNReLULayer", "out_channels": 8, "kernel_size": 9},
    "conv3": {"type": "ConvBNReLULayer", "out_channels": 6, "kernel_size": 3},
    "conv4": {"type": "ConvBNReLULayer", "out_channels": 16, "kernel_size": 3, "stride": 2},
    "gap": {"type": "GlobalAvgPoolLayer"},
    "flat": {"type": "ReshapeLayer"},
    "fc1": {"type": "LinearLayer", "out_features": 3},
    "fc2": {"type": "LinearLayer", "out_features": 2}}}


def test_broken_spec_one_violation_per_problem():
    report = check_spec(ModelSpec(BROKEN), "F28P55")
    assert not report.fits
    assert report.violations == [
        "conv2: GCONV kernel_h 9 exceeds 7 → use at most 7",
        "conv3: GCONV out_channels 6 is not a multiple of 4 → use 8",
        "conv4: GCONV in_channels 6 is not a multiple of 4 → use 8",
        "fc2: FC in_features 3 is below 16 → use at least 16 (at 8-bit weights; 8 at 4-bit)",
    ]
    placement = {lc.layer: lc.placement for lc in report.layers}
    assert placement["conv1"] == "NPU" and placement["conv2"] == "CPU" and placement["flat"] == "-"


def test_multichannel_first_conv_is_checked_as_gconv():
    spec = ModelSpec({"inputs": {"x": [3, 64, 1]}, "layers": {
        "conv1": {"type": "ConvBNReLULayer", "out_channels": 8, "kernel_size": 3}}})
    report = check_spec(spec, "F28P55")
    assert report.layers[0].op_class == "GCONV"
    assert report.violations == ["conv1: GCONV in_channels 3 is not a multiple of 4 → use 4"]


def test_cpu_ops_are_reported_not_violations():
    report = check_model("CLS_RES_5k_NPU", "F28P55", (1, 512))
    assert report.fits
    relu = next(lc for lc in report.layers if lc.layer == "b1_relu")
    assert relu.placement == "CPU" and "runs on the CPU" in relu.reasons[0]


def test_budgets_flash_too_small(tmp_path):
    f = tmp_path / "tiny.yaml"
    f.write_text("name: tiny\nkind: mcu\nnative_ops: [FCONV, GCONV, PWCONV, FC, AVGPOOL]\nflash_bytes: 16384\n"
                 "ram_bytes: 1000000\n")
    report = check_model("CLS_55k_NPU", load_device_profile(f), (1, 512))
    assert not report.fits
    assert len(report.violations) == 1 and report.violations[0].startswith("flash: estimated 5")
    assert report.totals["flash_bytes"] > 50_000


def test_budget_ram_and_macs(tmp_path):
    f = tmp_path / "small.yaml"
    f.write_text("name: small\nkind: mcu\nnative_ops: [FCONV, GCONV, FC, AVGPOOL]\nram_bytes: 2048\n"
                 "max_macs_per_inference: 1000\n")
    report = check_model("CLS_1k_NPU", load_device_profile(f), (1, 512))
    assert [v.split(":")[0] for v in report.violations] == ["RAM", "MACs"]


def test_fitting_models_rows():
    rows = fitting_models("cortex-m4", (1, 512), task="classification")
    assert {r["name"] for r in rows} == set(list_models(task="classification"))
    assert all(r["fits"] for r in rows)
    assert all(r["flash_bytes"] > 0 and r["ram_bytes"] > 0 for r in rows)


def test_example_profile_loads():
    p = load_device_profile("misc/devices/my_board.yaml")
    assert p.kind == "mcu" and p.ram_bytes == 32768


@pytest.mark.parametrize("text, needle", [
    ("name: x\nkind: toaster\nnative_ops: []\n", "kind"),
    ("name: x\nkind: mcu\nnative_ops: []\nflash_byts: 3\n", "flash_byts"),
    ("name: x\nkind: mcu\n  native_ops: [\n", "not valid YAML"),
    ("- a list\n", "must be a mapping"),
])
def test_profile_errors_are_one_line_naming_the_file(tmp_path, text, needle):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ProfileError) as err:
        load_device_profile(f)
    msg = str(err.value)
    assert "\n" not in msg and str(f) in msg and needle in msg


def test_missing_profile_file(tmp_path):
    with pytest.raises(ProfileError, match="not found"):
        load_device_profile(tmp_path / "nope.yaml")


def test_unknown_device_suggests():
    with pytest.raises(KeyError, match="did you mean"):
        DEVICES.get("F28P5")


def test_ethos_u55_reports_vela_or_its_absence(tmp_path):
    from tinyverse.devices.vela import run_vela, vela_available

    res = run_vela(tmp_path / "missing.tflite", DEVICES.get("ethos-u55"))
    if not vela_available():
        assert res["available"] is False and "not installed" in res["message"]
    else:
        assert res["ok"] is False  # no such file: reported, not raised
