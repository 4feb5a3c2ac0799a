"""NAM's own trainer on one bench job; run by bench/bench_vs_nam.py with the NAM venv's python (bench/nam_venv.sh).

    bench/.venv-nam/bin/python bench/nam_worker.py JOB.json

It imports only neural-amp-modeler (0.13.0) and its dependencies, never tinyverse. The job (written by
``bench_vs_nam.py``) holds NAM ``nam-full`` data / model / learning configs; this script fills in the loss,
optimizer and learning-rate schedule of NAM 0.13's own training recipe (its packaged
``nam/train/_resources/config_model_packed.json``: Adam lr 0.004, weight decay 3.17e-7, ExponentialLR 0.994,
MRSTFT weight 5e-4, validation loss ESR), sets the torch thread count when the job names one, seeds torch, and
runs ``nam.train.full.main`` (what the ``nam-full`` CLI runs). ``pytorch_lightning.Trainer.fit`` is timed. The
exported ``model.nam`` is then loaded back with NAM's own reader (``nam.models.init_from_nam``) and renders the
validation input (with receptive-field context), saved for the bench to score. The result goes to the job's
``result`` path as JSON.
"""
from __future__ import annotations

import json
import sys
import time
from importlib import metadata, resources
from pathlib import Path

import numpy as np


def nam_recipe() -> dict:
    """Loss, optimizer and schedule of NAM 0.13's default training (the packed A2 config it ships)."""
    packed = json.loads(resources.files("nam.train._resources").joinpath("config_model_packed.json").read_text())
    return {k: packed[k] for k in ("loss", "optimizer", "lr_scheduler")}


def main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    started = time.perf_counter()
    import torch

    if job.get("threads") is not None:
        torch.set_num_threads(int(job["threads"]))
    threads = {"torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
               "requested": job.get("threads")}
    import pytorch_lightning as pl
    from nam.models import init_from_nam
    from nam.train import full

    model_config = {**nam_recipe(), **job["model_config"]}
    state: dict = {}
    fit = pl.Trainer.fit

    def timed_fit(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fit(self, *args, **kwargs)
        finally:
            state.update(fit_s=time.perf_counter() - t0, epochs_run=int(self.current_epoch),
                         best_checkpoint=self.checkpoint_callback.best_model_path,
                         best_val_loss=(None if self.checkpoint_callback.best_model_score is None
                                        else float(self.checkpoint_callback.best_model_score)))

    pl.Trainer.fit = timed_fit
    outdir = Path(job["outdir"])
    outdir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(int(job.get("seed", 0)))
    imported = time.perf_counter()
    full.main(job["data_config"], model_config, job["learning_config"], outdir, no_show=True, make_plots=False)
    trained = time.perf_counter()

    nam_path = outdir / "model.nam"
    exported = json.loads(nam_path.read_text())
    net = init_from_nam(exported)
    net.eval()
    x = np.load(job["render"]["input"]).astype(np.float32).reshape(-1)
    n_out = int(job["render"]["length"])
    with torch.no_grad():
        y = net(torch.from_numpy(x), pad_start=True).numpy().reshape(-1)[-n_out:]
    np.save(job["render"]["output"], y.astype(np.float32))
    result = {
        "nam_version": metadata.version("neural-amp-modeler"), "torch_version": torch.__version__,
        "threads": threads, "fit_s": round(state.get("fit_s", float("nan")), 2),
        "main_s": round(trained - imported, 2), "process_s": round(time.perf_counter() - started, 2),
        "import_s": round(imported - started, 2), "epochs_run": state.get("epochs_run"),
        "best_checkpoint": state.get("best_checkpoint"), "best_val_loss": state.get("best_val_loss"),
        "params": sum(p.numel() for p in net.parameters()), "receptive_field": int(net.receptive_field),
        "nam_path": str(nam_path), "nam_file_version": exported.get("version"),
        "model_config": model_config,
    }
    Path(job["result"]).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
