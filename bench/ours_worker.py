"""Our trainer on one bench job, in its own process; run by bench/bench_vs_nam.py with the project's python.

    .venv/bin/python bench/ours_worker.py JOB.json

The job names a modelmaker config (written by ``bench_vs_nam.py``: the user's WAV files, the bench's train and
validation ranges, the latency, the preset, the epochs, no compilation). The run goes through
``modelmaker.runner.run`` exactly as ``./run.sh`` would. A process of its own keeps the torch thread setting the
runner makes (one thread on a 2-core CPU) from leaking into the bench, and is what NAM's side gets too. The result
(run folder, training seconds, the threads torch used) goes to the job's ``result`` path as JSON.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    started = time.perf_counter()
    import torch

    from modelmaker import runner

    imported = time.perf_counter()
    summary = runner.run(job["config"])
    ran = time.perf_counter()
    training = summary.get("training") or {}
    result = {
        "run_dir": summary["run_dir"], "torch_version": torch.__version__,
        # What torch used after the run (the runner sets it); summary["threads"] where the runner records it.
        "threads": {"torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
                    "runner": summary.get("threads")},
        "fit_s": training.get("train_seconds"), "run_s": round(ran - imported, 2),
        "process_s": round(time.perf_counter() - started, 2), "import_s": round(imported - started, 2),
        "epochs_run": training.get("epochs_run"), "validation_esr": (summary.get("validation") or {}).get("esr"),
        "params": (summary.get("model") or {}).get("params"),
        "receptive_field": (summary.get("model") or {}).get("receptive_field"),
        "nam_path": str(Path(summary["run_dir"]) / "model.nam"),
        "dataset_split": (summary.get("dataset") or {}).get("split"),
    }
    Path(job["result"]).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
