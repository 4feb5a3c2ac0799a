"""Worked example (d): a minimal extra modality (an AI_MODULES entry).

A modality is a class with ``load_data(cfg)`` (called before the run folder exists, so data errors surface
early) and ``run(cfg, run_dir, resume=False, data=None) -> dict`` (the summary written to summary.json). This one
"trains" a majority-class baseline on any time-series dataset — a yardstick a real model must beat.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from modelmaker.ai_modules import AI_MODULES
from modelmaker.run_folder import write_json


@AI_MODULES.register("majority_baseline", tasks=("classification",))
class MajorityBaseline:
    name = "majority_baseline"
    tasks = ("classification",)

    def load_data(self, cfg):
        from tinyverse.timeseries.data import TimeSeriesData, load_registered

        return load_registered(cfg.dataset.name, cfg.dataset.params, TimeSeriesData, "majority_baseline")

    def run(self, cfg, run_dir: Path, resume: bool = False, data=None) -> dict:
        data = data if data is not None else self.load_data(cfg)
        majority = int(np.bincount(data.y_train, minlength=data.num_classes).argmax())
        acc = float((data.y_test == majority).mean())
        write_json(run_dir / "baseline.json", {"class": data.class_names[majority], "test_accuracy": acc})
        return {"modality": self.name, "dataset": data.summary(),
                "test": {"accuracy": acc, "num_samples": int(len(data.y_test))}}
