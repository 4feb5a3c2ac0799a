"""bench/bench_ucr.py: the --best-fit rule and the per-set table (no training here)."""
from __future__ import annotations

import pytest

from bench.bench_ucr import BEST_FIT_MAX_LENGTH, BEST_FIT_RAM_HEADROOM, best_fit, set_means, table
from tinyverse.devices.check import get_device
from tinyverse.devices.fitting import check_entry, shippable_entries


def test_best_fit_is_the_largest_entry_that_fits():
    pick = best_fit("GunPoint", "F28P55")
    assert pick["input"] == [1, 150]
    args = {"input_shape": pick["input"], "num_classes": 2}
    assert check_entry(pick["model"], "F28P55", args).fits
    for entry in shippable_entries("classification"):
        fit = check_entry(entry, "F28P55", args)
        if fit.fits:
            assert (fit.params or 0) <= pick["params"], entry
    assert not pick["model"].startswith("TEACHER_")


def test_best_fit_keeps_ram_headroom():
    # CLS_150k_NPU at 1,024 steps is estimated inside F28P55's RAM but TFLM's arena is not: the headroom rules it out
    budget = get_device("F28P55").ram_bytes
    big = check_entry("CLS_150k_NPU", "F28P55", {"input_shape": [1, 1024], "num_classes": 10})
    assert big.fits and big.ram_bytes > (1 - BEST_FIT_RAM_HEADROOM) * budget
    pick = best_fit("ACSF1", "F28P55")
    assert pick["input"] == [1, BEST_FIT_MAX_LENGTH]
    assert pick["model"] != "CLS_150k_NPU" and pick["ram_bytes"] <= (1 - BEST_FIT_RAM_HEADROOM) * budget


def test_best_fit_follows_the_device_budget():
    small = get_device("F28P55").model_copy(update={"name": "F28P55-8k", "flash_bytes": 8192})
    pick = best_fit("GunPoint", small)
    big = best_fit("GunPoint", "F28P55")
    assert pick["flash_bytes"] <= 8192
    assert pick["params"] < big["params"]


def test_best_fit_says_when_nothing_fits():
    none = get_device("F28P55").model_copy(update={"name": "F28P55-64B", "flash_bytes": 64})
    with pytest.raises(SystemExit, match="no classification zoo entry fits"):
        best_fit("GunPoint", none)


def row(name, seed, f, q):
    return {"set": name, "seed": seed, "model": "M", "input": [1, 8], "float_acc": f, "int8_acc": q, "params": 10,
            "flash_bytes": 1, "ram_bytes": 1, "fits": True}


def test_table_mean_gap_is_over_set_means_with_drops():
    refs = {"A": 100.0, "B": 90.0, "C": None}
    rows = [row("A", 1, 1.0, 0.98), row("A", 2, 1.0, 1.0), row("B", 1, 0.9, 0.9), row("C", 1, 0.5, 0.5)]
    means = set_means(rows, refs)
    assert means["A"]["int8"] == pytest.approx(99.0) and means["A"]["drop"] == pytest.approx(1.0)
    assert means["A"]["seeds"] == 2 and means["C"]["gap"] is None
    text, stats = table(rows, refs)
    assert stats["mean_gap"] == pytest.approx((-1.0 + 0.0) / 2)
    assert stats["sets_with_reference"] == ["A", "B"] and stats["without_reference"] == ["C"]
    assert stats["max_int8_drop"] == pytest.approx(2.0)
    assert "2.00" in text.splitlines()[1]  # seed 1 of A: 100 -> 98 in its drop column


def test_set_overrides_reach_the_run_config(tmp_path):
    """`--set dataset.val_fraction=0` (dotted, as `modelmaker run --set`) lands in the run's dataset section next to
    what the bench sets per set; it used to fail every run with "'int' object is not iterable"."""
    import argparse

    from bench.bench_ucr import CONFIG, set_overrides
    from modelmaker.config import apply_overrides, load_config, parse_overrides

    overrides = apply_overrides({}, parse_overrides(["dataset.val_fraction=0", "training.final_checkpoint=last",
                                                     "training.teacher={model_name: TEACHER_FCN}"]))[0]
    args = argparse.Namespace(best_fit=None, teacher=None)
    sets = set_overrides(overrides, args, "GunPoint")
    sets["dataset"]["ucr_name"] = "GunPoint"
    cfg = load_config(CONFIG, overrides=sets)
    assert cfg.dataset.params["val_fraction"] == 0 and cfg.dataset.params["ucr_name"] == "GunPoint"
    assert cfg.training.final_checkpoint == "last" and cfg.training.teacher.model_name == "TEACHER_FCN"
    assert cfg.training.model_name == "CLS_4k_NPU"  # the rest of the config file is kept
