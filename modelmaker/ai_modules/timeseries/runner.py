"""Time-series runner: dataset → model → Lightning training → test → ONNX export + parity → summary."""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from modelmaker.ai_modules import AI_MODULES
from modelmaker.ai_modules.base import AIModule, RunContext
from modelmaker.ai_modules.keys import KeyIssue
from modelmaker.ai_modules.timeseries import compilation as comp_stage
from modelmaker.ai_modules.timeseries import distillation as distill
from modelmaker.ai_modules.timeseries.constants import HIGHER_IS_BETTER_SUFFIXES, MODALITY, TASK_TYPES
from modelmaker.ai_modules.timeseries.layout import as_nchw
from modelmaker.config.errors import one_line
from modelmaker.run_folder import write_json

log = logging.getLogger("modelmaker")


def build_configured_model(cfg, args: dict[str, Any]):
    """``create_model(training.model_name, **args)``; arguments the zoo function cannot use (a list where it needs
    an int, lengths that disagree, an input too short for its layers) fail as one line naming the arguments and where
    they came from, not as a traceback from inside the zoo function."""
    from tinyverse.layers import SpecError
    from tinyverse.models import create_model

    name, t = cfg.training.model_name, cfg.training
    try:
        return create_model(name, **args)
    except (TypeError, ValueError, SpecError) as err:
        mine = ", ".join(f"{k}={v!r}" for k, v in args.items() if k in t.model_args)
        filled = ", ".join(f"{k}={v!r}" for k, v in args.items() if k not in t.model_args)
        if t.model_config_path and mine:
            mine += f" (model_config {t.model_config_path} and model_args)"
        given = f"{mine} with {filled} from the dataset" if mine and filled else \
            mine or (f"{filled} (from the dataset)" if filled else "its defaults")
        raise SpecError(f"{'training.model_args' if mine else 'training.model_name'}: {name} cannot be built from "
                        f"{given}: {one_line(str(err))}") from None


def check_single_input(model, model_name: str, data) -> None:
    """The time-series runner feeds one array per sample (``as_nchw(X)``); a spec model declaring several named
    inputs (e.g. a knob-conditioned one) cannot be trained from such a dataset: say so before the run folder."""
    from tinyverse.layers import SpecError

    spec = getattr(model, "spec", None)
    if spec is None or len(spec.inputs) == 1:
        return
    ins = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in spec.inputs.items())
    have = "x".join(map(str, as_nchw(data.X_train[:1]).shape[1:]))
    raise SpecError(f"training.model_name: {model_name} takes {len(spec.inputs)} inputs ({ins}), but dataset "
                    f"{data.name!r} provides one input per sample ({have}) and the timeseries runner feeds only that; "
                    f"choose a model with a single input (`modelmaker models`)")


@AI_MODULES.register("timeseries", tasks=TASK_TYPES)
class TimeSeriesModule(AIModule):
    name = MODALITY
    tasks = TASK_TYPES
    fits_input = True  # dataset.input_channels / input_length (tinyverse.timeseries.data.input_fit)
    chooses_checkpoint = True  # training.final_checkpoint: best or last

    @classmethod
    def unused_keys(cls, cfg) -> list[KeyIssue]:
        """Config combinations this modality refuses before any work: a teacher (never ships) as the model to ship,
        a teacher without training."""
        from tinyverse.models.roles import TEACHER, registered_role

        t = cfg.training
        out: list[KeyIssue] = []
        if t.model_name and registered_role(t.model_name) == TEACHER and (
                cfg.compilation.enable or cfg.common.target_device):
            out.append(KeyIssue("training.model_name", f"{t.model_name} is a teacher: a float model that never ships, "
                                   "so it is not checked against a device or exported",
                                   f"distil it into a device model with training.teacher: {{model_name: "
                                   f"{t.model_name}}}, or train it alone with compilation.enable: false and "
                                   f"common.target_device: null"))
        if t.teacher is not None and not t.enable:
            out.append(KeyIssue("training.teacher", "distillation trains the student, but training.enable is false",
                                "remove training.teacher, or enable training"))
        return out

    def load_data(self, cfg):
        from modelmaker.ai_modules.timeseries.constants import TASK_CLASSIFICATION
        from tinyverse.timeseries.data import load_registered
        from tinyverse.timeseries.data.checks import check_dataset, check_finite
        from tinyverse.timeseries.data.splits import TimeSeriesData

        data = load_registered(cfg.dataset.name, cfg.dataset.params, TimeSeriesData, "the timeseries modality")
        source = f"dataset.name: {cfg.dataset.name}"
        check_finite(data, source)  # NaN in the raw data is named here, not found as a NaN loss in training
        data = self.apply_feature_extraction(cfg, data)
        fe = " -> ".join(data.info.get("feature_extraction", []))
        t = cfg.training
        # Keeping the last epoch of a fixed schedule (FCN's protocol) chooses nothing on validation: no split needed.
        chooses = t.enable and (t.final_checkpoint == "best" or t.early_stopping_patience is not None)
        found = check_dataset(data, source, stage=f"feature_extraction ({fe})" if fe else "",
                              need_test=cfg.testing.enable or cfg.compilation.enable, need_val=chooses,
                              classes=cfg.common.task_type == TASK_CLASSIFICATION)
        data.info["warnings"] = [*data.info.get("warnings", []), *found]  # dataset.json and the report show them
        for warning in found:
            log.warning(warning)
        # after the checks, which are about the user's data (the zero channels added here are constant on purpose)
        return self.fit_input(cfg, data)

    def apply_feature_extraction(self, cfg, data):
        """``feature_extraction.transforms`` (TRANSFORMS entries) in order, fitted on train, applied to every split."""
        fe = cfg.feature_extraction
        specs = ([(fe.preset, {})] if fe.preset else []) + [(t.name, t.params) for t in fe.transforms]
        self.fitted_transforms = []
        if not fe.enable or not specs:
            return data
        import dataclasses

        from tinyverse.timeseries.transforms import apply_transforms

        splits, fitted = apply_transforms(specs, {s: getattr(data, f"X_{s}") for s in ("train", "val", "test")})
        # Kept for the golden feature vectors: device code recomputes these features from raw samples.
        self.fitted_transforms = [(name, dict(params), t) for (name, params), t in zip(specs, fitted)]
        self.raw_test_X = data.X_test
        info = {**data.info, "feature_extraction": [name for name, _ in specs]}
        log.info("feature extraction %s: input %s -> %s", " -> ".join(n for n, _ in specs),
                 "x".join(map(str, data.input_shape)), "x".join(map(str, splits["train"].shape[1:])))
        return dataclasses.replace(data, X_train=splits["train"], X_val=splits["val"], X_test=splits["test"],
                                   info=info)

    def fit_input(self, cfg, data):
        """Zero channels and a resampled length so the configured model (and common.target_device) accept the data
        (dataset.input_channels / input_length); a task whose targets depend on the input's shape keeps it as is. A
        compile-only run is fitted to its model file's input in ``prepare``."""
        from tinyverse.registry import TASKS
        from tinyverse.timeseries.data.input_fit import apply_input_fit, choose_input_fit

        ds, t = cfg.dataset, cfg.training
        if not getattr(TASKS.get(cfg.common.task_type), "fits_input", False) or cfg.compilation.model_path \
                or not t.model_name:
            return data
        channels, length = ds.input_channels, ds.input_length
        pinned = t.model_args.get("input_shape")
        accepts = self.input_acceptor(cfg, data)
        if pinned is not None:  # the model's input was set by hand: fit the data to it
            channels = channels if isinstance(channels, int) else int(pinned[0])
            length = length if isinstance(length, int) else int(pinned[1])
        elif accepts is None:  # a model of fixed input (no input_shape argument): nothing "auto" can choose
            channels, length = (v if isinstance(v, int) else None for v in (channels, length))
        if length == "auto" and data.info.get("feature_extraction"):
            # features (FFT bins, frames) are not a time axis to resample: only what the model itself needs
            length = "model"
        fit = choose_input_fit(data, channels, length, accepts)
        if fit.changed:
            log.info("input fit: %s", fit.describe())
        return apply_input_fit(data, fit)

    def input_acceptor(self, cfg, data):
        """``accepts(channels, length)``: the problems of the configured model on that input (it cannot be built, or
        it breaks a rule or budget of common.target_device); [] when it is fine."""
        from tinyverse.devices import check_model
        from tinyverse.models import create_model, model_arguments

        name, device = cfg.training.model_name, cfg.common.target_device
        accepted = model_arguments(name)
        args = dict(cfg.training.model_args)
        if "num_classes" in accepted and data.is_classification:
            args.setdefault("num_classes", data.num_classes)

        def accepts(channels: int, length: int) -> list[str]:
            try:
                model = create_model(name, **{**args, "input_shape": [channels, length]})
            except Exception as err:  # noqa: BLE001 - a shape the zoo function cannot take is a problem to avoid
                return [one_line(str(err))]
            return check_model(model, device).violations if device and getattr(model, "spec", None) else []

        return accepts if "input_shape" in accepted else None

    def build_model(self, cfg, data):
        from tinyverse.models import create_model, model_arguments

        args = dict(cfg.training.model_args)
        accepted = model_arguments(cfg.training.model_name)
        # The data decide the input shape and class count unless the user pinned them.
        if "input_shape" in accepted:
            args.setdefault("input_shape", list(data.input_shape))
        if "num_classes" in accepted and data.is_classification:
            args.setdefault("num_classes", data.num_classes)
        if "num_outputs" in accepted and not data.is_classification:  # value targets: one output per value
            args.setdefault("num_outputs", int(np.prod(data.target_shape)))
        model = build_configured_model(cfg, args)
        check_single_input(model, cfg.training.model_name, data)
        return model, args

    def prepare(self, cfg, data):
        """The model (built, or loaded from compilation.model_path) and its device check, before the run folder."""
        from tinyverse.timeseries.data.checks import check_length

        from tinyverse.layers import SpecError
        from tinyverse.models.roles import never_ships

        if cfg.compilation.model_path and data is not None:
            self.fit_input_to_file(cfg, data)
        prepared = comp_stage.prepare(self, cfg, data)
        if prepared.source == "checkpoint":  # rebuilt from its model_spec.yaml, not by build_model
            check_single_input(prepared.model, prepared.model_name or "compilation.model_path", data)
            if never_ships(prepared.model):
                raise SpecError(f"compilation.model_path: {prepared.model_name} is a teacher "
                                f"({never_ships(prepared.model)}); compile the student it trained instead")
        self.teacher = distill.prepare_teacher(cfg, data, lambda name, args: self.build_teacher(cfg, name, args)) \
            if data is not None else None
        receptive_field = getattr(prepared.model, "receptive_field", None)
        if receptive_field and data is not None:  # shorter series would be mostly padding
            check_length(data, int(receptive_field), f"the receptive field of {prepared.model_name or 'the model'}",
                         f"dataset.name: {cfg.dataset.name}")
        return prepared

    def build_teacher(self, cfg, name: str, args: dict[str, Any]):
        """``create_model`` for training.teacher; arguments it cannot use are one line naming the key."""
        from tinyverse.layers import SpecError
        from tinyverse.models import create_model

        try:
            return create_model(name, **args)
        except (TypeError, ValueError, SpecError) as err:
            given = ", ".join(f"{k}={v!r}" for k, v in args.items())
            raise SpecError(f"training.teacher.model_name: {name} cannot be built from {given}: "
                            f"{one_line(str(err))}") from None

    def fit_input_to_file(self, cfg, data) -> None:
        """Compile-only: fit the data (in place) to the input of the model file's spec, as its training run did."""
        from pathlib import Path

        from tinyverse.models import ModelSpec
        from tinyverse.registry import TASKS
        from tinyverse.timeseries.data.input_fit import apply_input_fit, choose_input_fit

        path = Path(cfg.compilation.model_path)
        spec_file = next((f / "model_spec.yaml" for f in (path.parent, path.parent.parent)
                          if (f / "model_spec.yaml").is_file()), None)
        if spec_file is None or path.suffix.lower() == ".onnx" or \
                not getattr(TASKS.get(cfg.common.task_type), "fits_input", False):
            return
        shape = next(iter(ModelSpec.from_yaml(spec_file).inputs.values()))
        want = (int(shape[0]), int(shape[1]))
        if want == tuple(data.input_shape):
            return
        auto = lambda v, w: w if v == "auto" else v  # noqa: E731 - "auto" means: what the model file takes
        fit = choose_input_fit(data, auto(cfg.dataset.input_channels, want[0]), auto(cfg.dataset.input_length,
                                                                                   want[1]))
        fitted = apply_input_fit(data, fit)
        for split in ("train", "val", "test"):
            setattr(data, f"X_{split}", getattr(fitted, f"X_{split}"))
        data.info = fitted.info
        log.info("input fit (to %s): %s", spec_file, fit.describe())

    # -- the stages (modelmaker.ai_modules.base.AIModule.run calls them in order) ----------------------------------
    def describe(self, ctx: RunContext) -> None:
        cfg, run_dir, data, prepared = ctx.cfg, ctx.run_dir, ctx.data, ctx.prepared
        write_json(run_dir / "dataset.json", {"summary": data.summary(), "info": data.info})
        log.info("dataset %s: train %d / val %d / test %d, input %s, %s", data.name, len(data.y_train),
                 len(data.y_val), len(data.y_test), "x".join(map(str, data.input_shape)),
                 f"{data.num_classes} classes" if data.is_classification
                 else f"targets {'x'.join(map(str, data.target_shape))}")
        if prepared.source == "onnx":  # compile-only from an .onnx file: nothing to train or test in PyTorch
            ctx.summary.update(comp_stage.onnx_file_summary(self, cfg, data, prepared))
            return
        model = prepared.model
        summary = ctx.summary
        summary.update({
            "modality": self.name, "task_type": cfg.common.task_type, "dataset": data.summary(),
            "model": {"name": cfg.training.model_name or prepared.model_name, "args": prepared.model_args,
                      "params": sum(p.numel() for p in model.parameters())},
        })
        if prepared.model_path:
            summary["model"]["source"] = prepared.model_path
        spec = getattr(model, "spec", None)
        if spec is not None:
            (run_dir / "model_summary.txt").write_text(spec.summary() + "\n")
            spec.to_yaml(run_dir / "model_spec.yaml")
            summary["model"]["macs"] = spec.macs
            log.info("\n%s", spec.summary())
        else:  # a plain nn.Module (e.g. from an extension): nothing to read layer by layer before training
            log.info("model %s has no spec (plain nn.Module): spec summary and spec-level device checks skipped",
                     cfg.training.model_name)
        if getattr(model, "receptive_field", None) is not None:
            summary["model"]["receptive_field"] = int(model.receptive_field)
        if data.info.get("input_fit"):  # what device code must do to its raw series, too
            from tinyverse.timeseries.data.input_fit import InputFit

            summary["input"] = {**data.info["input_fit"],
                                "description": InputFit(**data.info["input_fit"]).describe()}
        ctx.extra["X"] = {s: as_nchw(getattr(data, f"X_{s}")) for s in ("train", "val", "test")}
        ctx.extra["y"] = {s: getattr(data, f"y_{s}") for s in ("train", "val", "test")}

    def train(self, ctx: RunContext) -> None:
        from tinyverse.training import TrainConfig, fit, load_task_weights
        from tinyverse.training.plots import plot_loss_curves
        from tinyverse.training.tasks import build_task

        if ctx.prepared.source == "onnx":
            return
        cfg, run_dir, data, t = ctx.cfg, ctx.run_dir, ctx.data, ctx.cfg.training
        X, y = ctx.extra["X"], ctx.extra["y"]
        task_kwargs = dict(optimizer=t.optimizer, learning_rate=t.learning_rate, weight_decay=t.weight_decay,
                           lr_scheduler=t.lr_scheduler, epochs=t.epochs, label_smoothing=t.label_smoothing,
                           num_classes=data.num_classes or None, loss=t.loss, augmentation=t.augmentation.model_dump())
        task = build_task(cfg.common.task_type, ctx.model, **task_kwargs)
        monitor, mode = (t.monitor, "max" if t.monitor.endswith(HIGHER_IS_BETTER_SUFFIXES) else "min") \
            if t.monitor else getattr(task, "default_monitor", ("val_loss", "min"))
        train_cfg = TrainConfig(
            epochs=t.epochs, batch_size=t.batch_size, seed=cfg.common.seed, accelerator=t.accelerator,
            devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy, precision=t.precision,
            early_stopping_patience=t.early_stopping_patience, monitor=monitor, monitor_mode=mode,
            num_workers=t.num_workers, progress_bar=cfg.common.verbose)
        has_val = len(y["val"]) > 0
        if t.enable and getattr(self, "teacher", None) is not None:  # train (or load) it, then the student learns from it
            teacher = distill.teacher_stage(ctx, self.teacher, task_kwargs, train_cfg)
            task = build_task(cfg.common.task_type, ctx.model, **task_kwargs, teacher=teacher)
        if t.enable:
            result = fit(task, (X["train"], y["train"]), (X["val"], y["val"]) if has_val else None, run_dir,
                         train_cfg, resume_from=run_dir / "checkpoints" / "last.ckpt" if ctx.resume else None)
            kept = result.checkpoint(t.final_checkpoint)
            load_task_weights(task, kept)
            ctx.summary["training"] = {"epochs_run": result.epochs_run, "best_checkpoint": result.best_checkpoint,
                                       f"best_{result.monitor}": result.best_score,
                                       "final_checkpoint": t.final_checkpoint, "kept_checkpoint": kept}
            plot_loss_curves(result.metrics_csv, run_dir / "loss_curves.png")
        ctx.extra["task"] = task
        ctx.model = task.model.eval()

    def test(self, ctx: RunContext) -> None:
        import torch

        from tinyverse.export import export_onnx, run_onnx

        if ctx.prepared.source == "onnx":
            return
        cfg, run_dir, data, model, summary = ctx.cfg, ctx.run_dir, ctx.data, ctx.model, ctx.summary
        X, task = ctx.extra["X"], ctx.extra["task"]
        evaluation, outputs = None, None
        if cfg.testing.enable:
            outputs = comp_stage.split_outputs(model, X, cfg.testing.batch_size)
            evaluation = comp_stage.evaluate(task, outputs, data)
            if evaluation is not None:
                summary["test"] = evaluation.to_dict()
                task.write_plots(run_dir, outputs, data, evaluation,
                                 f"{cfg.training.model_name or ctx.prepared.model_name} on {data.name}")
                log.info("test: %s", ", ".join(f"{k} {v:.4g}" for k, v in evaluation.metrics.items()))

            # The float ONNX model is checked on the whole test split, against PyTorch.
            onnx_path = export_onnx(model, run_dir / "model.onnx", (torch.as_tensor(X["train"][:2]),))
            ref, onnx_out = outputs["test"], run_onnx(onnx_path, X["test"]).reshape(outputs["test"].shape)
            diff = float(np.abs(onnx_out - ref).max())
            summary["onnx"] = {"path": onnx_path.name, "max_abs_diff": diff, "parity": diff < 1e-4}
            if evaluation is not None and evaluation.metric_fn is not None:
                onnx_metric = evaluation.metric_fn(onnx_out)
                summary["onnx"][evaluation.headline] = onnx_metric
                # value metrics (RMSE, sMAPE) move in the last digits with float noise: equal to 1e-4 relative
                summary["onnx"]["parity"] = bool(diff < 1e-4 and np.isclose(onnx_metric, evaluation.value,
                                                                             rtol=1e-4, atol=1e-7))
            if data.is_classification:
                summary["onnx"]["argmax_agreement"] = float((onnx_out.argmax(1) == ref.argmax(1)).mean())
            log.info("ONNX parity on the test split: max |diff| %.2e", diff)
        ctx.extra["evaluation"], ctx.extra["outputs"] = evaluation, outputs
        comp_stage.report_blocks(self, getattr(model, "spec", None), ctx.prepared.device_report)
        if ctx.prepared.device_report is not None:
            summary["device"] = ctx.prepared.device_report.to_dict()
        if summary.get("input", {}).get("description") and (summary["input"]["zero_channels"]
                                                            or summary["input"]["resampled"]):
            self.report_blocks["Input"] = (f"{summary['input']['description']}. Device code does the same to its raw "
                                           f"series before calling the model (dataset.json: info.input_fit).")
        if cfg.testing.enable:
            distill.record_student(ctx)
        self.distillation_block(summary, run_dir)

    def compile(self, ctx: RunContext) -> list[str]:
        """Quantize (PTQ or QAT), export, verify every artifact, check the device; the failed rows."""

        cfg, run_dir = ctx.cfg, ctx.run_dir
        if ctx.prepared.source == "onnx":
            return comp_stage.run_onnx_file(self, cfg, run_dir, ctx.data, ctx.prepared, ctx.summary)
        if getattr(self, "fitted_transforms", None):  # golden features for device code
            from tinyverse.timeseries.transforms.golden import export_feature_extraction

            ctx.summary["feature_extraction"] = export_feature_extraction(
                self.fitted_transforms, self.raw_test_X, run_dir, count=cfg.compilation.golden_vectors)
        ctx.model, failures = comp_stage.compile_stage(self, cfg, run_dir, ctx.model, ctx.extra["X"], ctx.extra["y"],
                                                       ctx.summary, ctx.extra["task"], ctx.data,
                                                       ctx.extra["evaluation"], ctx.extra["outputs"])
        distill.record_int8(ctx.summary)
        self.distillation_block(ctx.summary, run_dir)
        return failures

    def distillation_block(self, summary: dict[str, Any], run_dir) -> None:
        block = distill.report_block(summary)
        if block:
            self.report_blocks["Distillation"] = block
            distill.write_summary_file(run_dir, summary)
