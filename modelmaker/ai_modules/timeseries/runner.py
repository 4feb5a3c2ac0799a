"""Time-series runner: dataset → model → Lightning training → test → ONNX export + parity → summary."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from modelmaker.ai_modules import AI_MODULES
from modelmaker.ai_modules.timeseries.constants import DEFAULT_MONITOR, MODALITY, TASK_TYPES
from modelmaker.run_folder import write_json

log = logging.getLogger("modelmaker")


def as_nchw(X: np.ndarray) -> np.ndarray:
    """(N, C, L) → (N, C, L, 1): time along H with (k, 1) kernels, the layout TI's NPU expects."""
    return np.ascontiguousarray(X[..., None], dtype=np.float32)


@AI_MODULES.register("timeseries", tasks=TASK_TYPES)
class TimeSeriesModule:
    name = MODALITY
    tasks = TASK_TYPES

    def load_data(self, cfg):
        from tinyverse.registry import DATASETS

        return DATASETS.get(cfg.dataset.name)(**cfg.dataset.params).load()

    def build_model(self, cfg, data):
        from tinyverse.models import create_model, model_arguments

        args = dict(cfg.training.model_args)
        accepted = model_arguments(cfg.training.model_name)
        # The data decide the input shape and class count unless the user pinned them.
        if "input_shape" in accepted:
            args.setdefault("input_shape", list(data.input_shape))
        if "num_classes" in accepted:
            args.setdefault("num_classes", data.num_classes)
        return create_model(cfg.training.model_name, **args), args

    def run(self, cfg, run_dir: Path, resume: bool = False, data=None) -> dict[str, Any]:
        import torch

        from tinyverse.export import export_onnx, run_onnx, torch_outputs
        from tinyverse.registry import TASKS
        from tinyverse.training import TrainConfig, fit, load_task_weights
        from tinyverse.training.plots import plot_confusion_matrix, plot_loss_curves

        task_type = cfg.common.task_type
        data = data if data is not None else self.load_data(cfg)
        write_json(run_dir / "dataset.json", {"summary": data.summary(), "info": data.info})
        log.info("dataset %s: train %d / val %d / test %d, input %s, %d classes", data.name, len(data.y_train),
                 len(data.y_val), len(data.y_test), "x".join(map(str, data.input_shape)), data.num_classes)

        model, model_args = self.build_model(cfg, data)
        summary: dict[str, Any] = {
            "modality": self.name, "task_type": task_type, "dataset": data.summary(),
            "model": {"name": cfg.training.model_name, "args": model_args,
                      "params": sum(p.numel() for p in model.parameters())},
        }
        spec = getattr(model, "spec", None)
        if spec is not None:
            (run_dir / "model_summary.txt").write_text(spec.summary() + "\n")
            spec.to_yaml(run_dir / "model_spec.yaml")
            summary["model"]["macs"] = spec.macs
            log.info("\n%s", spec.summary())

        X = {s: as_nchw(getattr(data, f"X_{s}")) for s in ("train", "val", "test")}
        y = {s: getattr(data, f"y_{s}") for s in ("train", "val", "test")}
        t = cfg.training
        monitor, mode = (t.monitor, "max" if t.monitor and t.monitor.endswith(("acc", "f1")) else "min") \
            if t.monitor else DEFAULT_MONITOR[task_type]
        task = TASKS.get(task_type)(model=model, optimizer=t.optimizer, learning_rate=t.learning_rate,
                                    weight_decay=t.weight_decay, lr_scheduler=t.lr_scheduler, epochs=t.epochs,
                                    label_smoothing=t.label_smoothing, num_classes=data.num_classes)
        train_cfg = TrainConfig(
            epochs=t.epochs, batch_size=t.batch_size, seed=cfg.common.seed, accelerator=t.accelerator,
            devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy, precision=t.precision,
            early_stopping_patience=t.early_stopping_patience, monitor=monitor, monitor_mode=mode,
            num_workers=t.num_workers, progress_bar=cfg.common.verbose)
        has_val = len(y["val"]) > 0
        if t.enable:
            result = fit(task, (X["train"], y["train"]), (X["val"], y["val"]) if has_val else None, run_dir,
                         train_cfg, resume_from=run_dir / "checkpoints" / "last.ckpt" if resume else None)
            load_task_weights(task, result.best_checkpoint)
            summary["training"] = {"epochs_run": result.epochs_run, "best_checkpoint": result.best_checkpoint,
                                   f"best_{monitor}": result.best_score}
            plot_loss_curves(result.metrics_csv, run_dir / "loss_curves.png")
        model = task.model.eval()

        if cfg.testing.enable:
            logits = torch_outputs(model, X["test"], batch_size=cfg.testing.batch_size)
            pred = logits.argmax(axis=1)
            acc = float((pred == y["test"]).mean())
            summary["test"] = {"accuracy": acc, "num_samples": int(len(y["test"]))}
            plot_confusion_matrix(y["test"], pred, data.class_names, run_dir / "confusion_matrix.png",
                                  title=f"{cfg.training.model_name} on {data.name} (test acc {acc:.1%})")
            log.info("test accuracy %.2f%% on %d samples", 100 * acc, len(y["test"]))

            # The float ONNX model is checked on the whole test split, against PyTorch.
            onnx_path = export_onnx(model, run_dir / "model.onnx", (torch.as_tensor(X["train"][:2]),))
            onnx_logits = run_onnx(onnx_path, X["test"])
            diff = float(np.abs(onnx_logits - logits).max())
            onnx_acc = float((onnx_logits.argmax(axis=1) == y["test"]).mean())
            summary["onnx"] = {"path": onnx_path.name, "max_abs_diff": diff, "accuracy": onnx_acc,
                               "argmax_agreement": float((onnx_logits.argmax(1) == pred).mean()),
                               "parity": bool(diff < 1e-4 and onnx_acc == acc)}
            log.info("ONNX parity on the test split: max |diff| %.2e, accuracy %.2f%%", diff, 100 * onnx_acc)
        return summary
