"""`modelmaker search` (modelmaker.search) and the refusal that names the zoo entries that fit."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import optuna
import pytest
import yaml

from modelmaker.cli import main
from modelmaker.search.pareto import TrialRow, dominates, mark_pareto
from modelmaker.search.space import build_space, scale_args
from modelmaker.search.study import base_overrides, SearchOptions
from modelmaker.search.trial import ATTR_REASON, ATTR_STAGE, STAGE_DEVICE, TrialContext, objective

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "timeseries_classification.yaml"


def _projects(tmp_path: Path) -> list[str]:
    return ["--set", f"common.projects_path={tmp_path / 'projects'}"]


def test_width_and_depth_are_zoo_arguments():
    ladder = {"channels": [8, 16, 24, 32], "kernel_sizes": [7, 5, 3, 3], "strides": [2, 2, 2, 2], "head": "gap"}
    assert scale_args(ladder, 0.5, 0) == {**ladder, "channels": [4, 8, 12, 16]}
    assert scale_args(ladder, 1.0, -1) == {"channels": [8, 16, 24], "kernel_sizes": [7, 5, 3], "strides": [2, 2, 2],
                                           "head": "gap"}
    # a repeated last stage keeps the length (stride 1, kernel 3); widths round to multiples of 4
    assert scale_args(ladder, 1.5, 1) == {"channels": [12, 24, 36, 48, 48], "kernel_sizes": [7, 5, 3, 3, 3],
                                          "strides": [2, 2, 2, 2, 1], "head": "gap"}
    assert scale_args({"width": 16, "blocks": 2}, 0.75, 1) == {"width": 12, "blocks": 3}
    assert scale_args({"width": 16, "blocks": 1}, 0.5, -1) == {"width": 8, "blocks": 1}


def test_pareto_front_keeps_the_non_dominated_trials():
    def row(n, acc, flash, lat):
        return TrialRow(n, "complete", {"model": "m"}, acc, 0.5, {"flash_bytes": flash, "ram_bytes": 100,
                                                                  "latency_ms": lat})
    a, b, c, d = row(0, 0.90, 1000, 1.0), row(1, 0.95, 4000, 2.0), row(2, 0.85, 2000, 1.5), row(3, 0.90, 900, 1.2)
    assert dominates(a, c) and not dominates(a, b) and not dominates(b, a)
    front = mark_pareto([a, b, c, d, TrialRow(4, "pruned (device)", {"model": "m"})])
    assert [r.number for r in front] == [1, 0, 3]  # best accuracy first; c is dominated by a
    assert not c.pareto


def _context(tmp_path: Path, **opts) -> TrialContext:
    from modelmaker.runner import load_run_config

    overrides = base_overrides(SearchOptions(overrides={"common": {"projects_path": str(tmp_path)}}, **opts))
    cfg = load_run_config(CONFIG, overrides)
    space = build_space(cfg, (1, 150), 1)
    return TrialContext(str(CONFIG), overrides, space, tmp_path / "search")


@pytest.mark.parametrize("params, budget, why", [
    # half-width residual net at one block: its FC reads 8 features, the NPU wants 16
    ({"model": "CLS_RES_5k_NPU", "width": 0.5, "depth": -1}, None, "fc: FC in_features 8 is below 16"),
    # the 55k ladder at double width is far over a 1 ms budget on F28P55
    ({"model": "CLS_55k_NPU", "width": 2.0, "depth": 0}, 1.0, "latency: estimated"),
])
def test_an_infeasible_point_is_pruned_before_training(tmp_path, params, budget, why):
    ctx = _context(tmp_path, budget_ms=budget)
    point = {**params, "features": "as configured", "learning_rate": 0.005, "epochs": 1, "time_shift": 0.0,
             "scale": 0.0, "noise": 0.0, "dropout": 0.0}
    trial = optuna.trial.FixedTrial(point)
    with pytest.raises(optuna.TrialPruned, match="does not fit F28P55"):
        objective(trial, ctx)
    assert trial.user_attrs[ATTR_STAGE] == STAGE_DEVICE
    assert why in trial.user_attrs[ATTR_REASON]
    assert trial.user_attrs["latency_ms"] > 0 and trial.user_attrs["flash_bytes"] > 0  # costed, for the report
    assert not (tmp_path / "search" / "trials").exists()  # nothing trained


def test_search_on_gunpoint_writes_a_pareto_table_and_a_run_folder(tmp_path, capsys):
    code = main(["search", str(CONFIG), "--device", "F28P55", "--trials", "2", "--trial-epochs", "1",
                 "--final-epochs", "1", "--finalists", "1", "--jobs", "1", *_projects(tmp_path),
                 "--set", "compilation.exporters=[onnx_int8]", "--set", "compilation.golden_vectors=0"])
    assert code == 0
    out = capsys.readouterr().out
    search_dir = next((tmp_path / "projects").glob("*_GunPoint_search"))
    summary = json.loads((search_dir / "search.json").read_text())
    trained = [t for t in summary["trials"] if t["state"] != "pruned (device)"]
    assert len(trained) == 2
    report = (search_dir / "search_report.md").read_text()
    assert "## Pareto front (validation accuracy vs flash / RAM / latency)" in report
    assert "**winner**" in report and "![Pareto front](pareto.png)" in report
    assert (search_dir / "pareto.png").stat().st_size > 0
    with (search_dir / "trials.csv").open() as f:
        assert len(list(csv.DictReader(f))) == len(summary["trials"])
    winner = next(t for t in summary["trials"] if t["number"] == summary["winner"])
    assert winner["pareto"] and winner["int8_val_acc"] is not None  # TFLM on the validation split
    assert winner["costs"]["latency_ms"] > 0
    # the winner, retrained with the full schedule, in an ordinary run folder
    run_dir = Path(summary["final_run"]["run_dir"])
    run_summary = json.loads((run_dir / "summary.json").read_text())
    assert run_summary["state"] == "complete" and run_summary["model"]["name"] == winner["params"]["model"]
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["training"]["model_args"] == summary["winner_overrides"]["training"]["model_args"]
    assert resolved["training"]["epochs"] == 1
    assert run_summary["device"]["totals"]["latency_ms"] == pytest.approx(winner["costs"]["latency_ms"])
    assert f"run folder: {run_dir}" in out


def test_a_search_nothing_fits_says_so_in_one_line(tmp_path, capsys):
    code = main(["search", str(CONFIG), "--device", "F28P55", "--budget-ms", "0.001", "--trials", "1",
                 "--jobs", "1", *_projects(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("modelmaker: error: no configuration of the search space fits F28P55 within 0.001 ms (20 "
                          "tried; most often: ")
    assert err.endswith("→ raise --budget-ms, pick a larger device, or shorten the input")


def test_a_refused_model_names_the_entries_that_fit(tmp_path, capsys):
    """ItalyPowerDemand's 24-step series kept as they are: CLS_4k_NPU's global pool sees 2 steps, the NPU wants 3."""
    code = main(["run", str(CONFIG), *_projects(tmp_path), "--set", "dataset.ucr_name=ItalyPowerDemand",
                 "--set", "dataset.input_length=null"])
    err = capsys.readouterr().err
    assert code == 2
    assert "gap: AVGPOOL spatial 2 is below 3 → use at least 3 (H*W must be > 2)" in err
    fitting = err.split("zoo entries that fit F28P55 with this input: ")[1].strip()
    names = [item.split(" (")[0] for item in fitting.split(", ")]
    assert names[0] == "CLS_100_NPU" and "CLS_1k_NPU" in names and "CLS_RES_5k_NPU" in names
    assert "CLS_4k_NPU" not in names and "CLS_2k_NPU" not in names
    assert not any(n.startswith("TEACHER_") for n in names)  # never ships
    assert not (tmp_path / "projects").exists()
