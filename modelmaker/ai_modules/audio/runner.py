"""Audio runner: capture → model (built, or loaded from compilation.model_path) and its device check, both before
the run folder → aligned windows → amp-modelling training → validation ESR + verdict → model.nam, listening
WAVs, plots → optional QAT → streaming exports (ONNX / TFLite, float and int8) verified block by block → summary."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from modelmaker.ai_modules import AI_MODULES
from modelmaker.ai_modules.audio import knob_run
from modelmaker.ai_modules.base import AIModule, RunContext
from modelmaker.ai_modules.audio.constants import DEFAULT_MONITOR, MODALITY, TASK_TYPES
from modelmaker.ai_modules.audio.quantization import qat_stage, quantization_summary
from modelmaker.ai_modules.keys import KeyIssue, changed
from modelmaker.compilation import ModelFileError, Prepared, precheck_device, target_device
from modelmaker.config.errors import one_line
from modelmaker.run_folder import write_json
from tinyverse.verification import failed_rows

log = logging.getLogger("modelmaker")


def scale_for_output_level(model: Any, gain: float) -> None:
    """Start the model at 1 / ``gain`` of its output scale, so that training against the target at the normalised
    level (loss × ``gain``) leaves a model that outputs the capture's own level: what NAM's trainer does when it
    rescales head_scale on export. A model without ``scale_output`` trains from its usual scale (the loss is still
    taken at the normalised level)."""
    try:
        model.scale_output(1.0 / gain)
    except (AttributeError, NotImplementedError) as e:
        log.info("output level: %s; only the loss is taken at the normalised level", e)
        return
    log.info("output level: target × %.3f during training (model output scale × %.3f at start)", gain, 1 / gain)
AUDIO_BLOCK = 512  # samples per block of the streaming exports (a plugin-sized buffer: 10.7 ms at 48 kHz)


@AI_MODULES.register("audio", tasks=TASK_TYPES)
class AudioModule(AIModule):
    name = MODALITY
    tasks = TASK_TYPES

    @classmethod
    def unused_keys(cls, cfg) -> list[KeyIssue]:
        """Keys of the config that the audio modality would ignore (checked while the config is validated; the
        task's own keys — label_smoothing, augmentation, loss — are checked against the task's constructor)."""
        out: list[KeyIssue] = []
        if not cfg.dataset.enable:
            out.append(KeyIssue("dataset.enable", "the audio modality needs its capture: it trains on it, reports "
                                   "the validation ESR on it and calibrates the int8 exports with it",
                                   "set dataset.enable: true (training.enable: false with compilation.model_path "
                                   "compiles a model you already have)"))
        out += [KeyIssue(f"feature_extraction.{k}", "not used by the audio modality: its models read the raw "
                            "capture sample by sample (feature extraction is a timeseries stage)",
                            "remove the feature_extraction section")
                for k in ("enable", "preset", "transforms") if changed(cfg, f"feature_extraction.{k}")]
        out += [KeyIssue(f"testing.{k}", "not used by the audio modality: a capture has no test split; the run "
                            "reports the ESR on the capture's validation block", "remove it")
                for k in ("enable", "batch_size") if changed(cfg, f"testing.{k}")]
        out += knob_run.knob_key_issues(cfg)  # a knob task with plain data or model, and what it cannot use yet
        if changed(cfg, "compilation.input_range_percentile"):
            out.append(KeyIssue("compilation.input_range_percentile", "not used by the audio modality: its int8 "
                                "exports are calibrated on the capture's own level", "remove it"))
        if changed(cfg, "compilation.golden_vectors"):
            out.append(KeyIssue("compilation.golden_vectors", "not used by the audio modality: it writes no C "
                                   "golden vectors (each streaming export is verified block by block instead)",
                                   "remove it"))
        if not cfg.compilation.exporters:
            return out
        from tinyverse.audio.verify import audio_exporters  # torch: only when exporters are named

        streamed = audio_exporters()  # the built-in streaming exports and registered exporters declaring audio
        out += [KeyIssue("compilation.exporters", f"{name!r} is not an export of the audio modality",
                            f"choose from {', '.join(streamed)} (streaming ONNX / TFLite, or an exporter "
                            f"registered with modalities including 'audio')")
                for name in cfg.compilation.exporters if name not in streamed][:1]
        return out

    def load_data(self, cfg):
        from tinyverse.registry import DATASETS

        return DATASETS.get(cfg.dataset.name)(**cfg.dataset.params).load()

    def build_model(self, cfg, name: str | None = None, args: dict[str, Any] | None = None):
        """``create_model(name, **args)`` (default: training.model_name + model_args); arguments the zoo function
        cannot use fail as one line naming them."""
        from tinyverse.layers import SpecError
        from tinyverse.models import create_model

        name = name or cfg.training.model_name
        args = dict(cfg.training.model_args if args is None else args)
        try:
            return create_model(name, **args), args
        except (TypeError, ValueError, SpecError) as err:
            given = ", ".join(f"{k}={v!r}" for k, v in args.items()) or "its defaults"
            raise SpecError(f"training.model_args: {name} cannot be built from {given}: {one_line(str(err))}") \
                from None

    def prepare(self, cfg, data) -> Prepared:
        """The model (built, or loaded from compilation.model_path) and its device check at the capture's sample
        rate, before the run folder exists: a model over a budget of common.target_device stops a strict run here."""
        from modelmaker.ai_modules.audio.model_file import load_audio_model

        t, comp = cfg.training, cfg.compilation
        if data is None:  # the config check refuses dataset.enable: false; a caller may still pass none
            raise ModelFileError("the audio modality needs its capture: set dataset.enable: true")
        if comp.model_path and t.enable:
            raise ModelFileError("compilation.model_path compiles a model you already have: set training.enable: "
                                 "false (fine-tuning a loaded model is not supported)")
        if comp.model_path:
            prep = load_audio_model(cfg, data.sample_rate, lambda name, args: self.build_model(cfg, name, args)[0])
        elif not t.enable:
            raise ModelFileError("training.enable is false and compilation.model_path is not set: the run would "
                                 "evaluate and export an untrained network; set compilation.model_path to a trained "
                                 "audio run's checkpoints/best.ckpt or a .nam file, or enable training")
        else:
            # a knob capture's model is built with its knob declaration
            model, args = self.build_model(cfg, args=knob_run.knob_model_args(t.model_args, data))
            prep = Prepared(model=model, model_args=args, model_name=t.model_name)
        knob_run.check_pairing(data, prep.model, prep.model_name)
        rate = getattr(prep.model, "sample_rate", None)  # a chain whose stages run at one rate (model Sequential)
        if rate is not None and int(rate) != int(data.sample_rate):
            raise ModelFileError(f"training.model_args.models: the stages run at {int(rate)} Hz, the capture is "
                                 f"{data.sample_rate} Hz; use a capture at {int(rate)} Hz (IRs and zoo stages follow "
                                 f"training.model_args.sample_rate: {data.sample_rate})")
        # An export the model cannot have (model contract: unavailable_exports) asked for by name: say so now.
        missing = getattr(prep.model, "unavailable_exports", dict)()
        asked = [e for e in (comp.exporters or []) if e in missing] if comp.enable else []
        if asked:
            raise ModelFileError(f"compilation.exporters: {asked[0]} is not available for {prep.model_name}: "
                                 f"{missing[asked[0]]}; remove it (the default exporters leave it out)")
        prep.device_report = precheck_device(prep.model, target_device(cfg), comp.strict,
                                             prep.model_name or "model", sample_rate=data.sample_rate)
        return prep

    # -- the stages (modelmaker.ai_modules.base.AIModule.run calls them in order) ----------------------------------
    def auto_threads(self, cores: int) -> int | None:
        """NAM's models are small-channel convs / LSTMs: memory-bound, so threads beyond a few add contention.
        On a 2-core machine one thread (measured 1.85 s vs 8-12 s per nano batch under load; NAM's trainer took
        194 s per epoch with its default threads against 31 s with one); elsewhere half the cores, at most 4."""
        return 1 if cores <= 2 else min(4, cores // 2)

    def describe(self, ctx: RunContext) -> None:
        from tinyverse.devices import model_cost

        cfg, data, prepared, model = ctx.cfg, ctx.data, ctx.prepared, ctx.model
        knobbed = knob_run.is_knob_model(model)
        if not knobbed:  # a knob run's dataset.json holds every setting's capture (knob_run.describe)
            write_json(ctx.run_dir / "dataset.json", {"summary": data.summary(), "layout": data.layout.__dict__,
                                                      "latency": data.latency.to_dict()})
        model_name = cfg.training.model_name or prepared.model_name
        rf = int(getattr(model, "receptive_field", 1))
        params = sum(p.numel() for p in model.parameters())
        cost = model_cost(model) or {"params": params, "weights": params, "macs_per_sample": None}
        ctx.summary.update({
            "modality": self.name, "task_type": cfg.common.task_type, "dataset": data.summary(),
            "model": {"name": model_name, "args": prepared.model_args, "params": cost["params"],
                      "macs_per_sample": cost["macs_per_sample"], "receptive_field": rf},
        })
        if prepared.model_path:
            ctx.summary["model"]["source"] = prepared.model_path
        log.info("model %s: %s params, %s MAC/sample, receptive field %d", model_name, f"{cost['params']:,}",
                 "-" if cost["macs_per_sample"] is None else f"{cost['macs_per_sample']:,}", rf)
        ctx.extra.update(model_name=model_name, rf=rf, cost=cost)
        if knobbed:
            knob_run.describe(ctx)

    def train(self, ctx: RunContext) -> None:
        from tinyverse.registry import TASKS
        from tinyverse.training import TrainConfig, fit, load_task_weights
        from tinyverse.training.plots import plot_loss_curves

        cfg, run_dir, data, t = ctx.cfg, ctx.run_dir, ctx.data, ctx.cfg.training
        rf, sr = ctx.extra["rf"], data.sample_rate
        knobbed = knob_run.is_knob_model(ctx.model)
        if not knobbed:  # a knob capture validates per setting (knob_run.training_arrays, knob_run.test)
            Xv, Yv = data.validation(rf)
            ctx.extra.update(Xv=Xv, Yv=Yv)
        if not t.enable:
            log.info("compile-only: %s as loaded from %s, not trained", ctx.extra["model_name"],
                     ctx.prepared.model_path)
            ctx.model = ctx.model.eval()
            return
        task_type = cfg.common.task_type
        # (audio, target) windows, or a knob model's (audio, knobs, target) of every training setting
        train_arrays, val_arrays = knob_run.training_arrays(data, rf) if knobbed else (data.windows(rf), (Xv, Yv))
        Y, Yv = train_arrays[-1], val_arrays[-1]
        monitor, mode = (t.monitor, "min") if t.monitor else DEFAULT_MONITOR[task_type]
        level = {}
        if t.output_level_dbfs is not None:  # NAM's output normalisation (the task's key check allows it)
            from tinyverse.audio.training import output_gain  # torch: imported when training

            level = {"output_level_dbfs": t.output_level_dbfs, "target_rms": float(np.sqrt(np.mean(np.square(Y))))}
            scale_for_output_level(ctx.model, output_gain(level["output_level_dbfs"], level["target_rms"]))
        task = TASKS.get(task_type)(model=ctx.model, optimizer=t.optimizer, learning_rate=t.learning_rate,
                                    weight_decay=t.weight_decay, lr_scheduler=t.lr_scheduler, epochs=t.epochs,
                                    **({"sample_rate": sr} if knobbed else {}), **level)  # (a knob model's record)
        train_cfg = TrainConfig(
            epochs=t.epochs, batch_size=t.batch_size, seed=cfg.common.seed, accelerator=t.accelerator,
            devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy, precision=t.precision,
            early_stopping_patience=t.early_stopping_patience, monitor=monitor, monitor_mode=mode,
            num_workers=t.num_workers, progress_bar=cfg.common.verbose)
        log.info("training on %d windows of %d samples (%.1f s of audio), validating on %.1f s",
                 len(Y), Y.shape[1], Y.size / sr, Yv.size / sr)
        started = time.time()
        result = fit(task, train_arrays, val_arrays, run_dir, train_cfg,
                     resume_from=run_dir / "checkpoints" / "last.ckpt" if ctx.resume else None)
        train_s = time.time() - started
        load_task_weights(task, result.best_checkpoint)
        ctx.summary["training"] = {"epochs_run": result.epochs_run, "best_checkpoint": result.best_checkpoint,
                                   f"best_{monitor}": result.best_score, "train_seconds": round(train_s, 1),
                                   "train_samples_per_s": round(Y.size * max(result.epochs_run, 1) / train_s)}
        plot_loss_curves(result.metrics_csv, run_dir / "loss_curves.png")
        ctx.model = task.model.eval()

    def test(self, ctx: RunContext) -> None:
        """Validation ESR and verdict, model.nam (re-loaded and streamed as a player would), listening files, plots."""
        import soundfile as sf
        import torch

        from tinyverse.audio import esr, esr_verdict
        from tinyverse.audio.nam import load_nam, model_from_nam, save_nam
        from tinyverse.audio.plots import plot_spectra, plot_waveforms
        from tinyverse.audio.stream import StreamProcessor, process_file
        from tinyverse.audio.training import output_esrs

        if knob_run.is_knob_model(ctx.model):  # ESR per setting, knob model file, snapshots (no model.nam)
            self.report_blocks.update(knob_run.test(ctx))
            return
        cfg, run_dir, data, model, summary = ctx.cfg, ctx.run_dir, ctx.data, ctx.model, ctx.summary
        rf, sr, model_name = ctx.extra["rf"], data.sample_rate, ctx.extra["model_name"]
        Xv, Yv = ctx.extra["Xv"], ctx.extra["Yv"]
        # Recurrent models: store the state after 48,000 zeros as the initial state, as NAM's trainer does on export
        # (a .nam file holds that state already).
        if ctx.prepared.source != "nam":
            model.prepare_for_inference()
        with torch.no_grad():
            pred = model(torch.as_tensor(Xv)).numpy()[0]
        target = Yv[0]
        val_esr = esr(target, pred)
        verdict = esr_verdict(val_esr)
        summary["validation"] = {"esr": val_esr, "verdict": verdict, "seconds": round(len(target) / sr, 2)}
        log.info("validation ESR %.4f — %s", val_esr, verdict)
        submodels = output_esrs(model, Xv, target)  # a container: every submodel's (the ESR above is the full one's)
        if submodels:
            summary["validation"]["submodels"] = submodels
            log.info("validation ESR per submodel: %s", ", ".join(f"{k} {v:.4f}" for k, v in submodels.items()))

        meta = {"validation_esr": val_esr, "latency": data.latency.to_dict(), **data.metadata}
        meta.setdefault("name", cfg.common.run_name if "{" not in cfg.common.run_name else run_dir.name)
        meta.setdefault("modeled_by", "tinyverse modelmaker")
        nam_path = run_dir / "model.nam"
        save_nam(model, nam_path, metadata=meta, sample_rate=sr)
        # What a player computes from the file, block by block, vs the torch model on the same audio.
        reloaded = model_from_nam(load_nam(nam_path))
        v0, v1 = data.layout.validation[-1]
        stream_in = data.x[max(0, v0 - rf + 1):v1]
        streamed, secs = process_file(StreamProcessor(reloaded), stream_in, block_size=512)
        streamed = streamed[-len(target):]
        summary["nam"] = {"path": nam_path.name, "weights": ctx.extra["cost"]["weights"],
                          "stream_esr_vs_target": esr(target, streamed),
                          "render_rtf": round(secs / (len(stream_in) / sr), 4)}

        # Listening files (validation block) and plots.
        listen = run_dir / "listening"
        listen.mkdir(exist_ok=True)
        sf.write(listen / "input.wav", data.x[v0:v1], sr, subtype="FLOAT")
        sf.write(listen / "target.wav", target, sr, subtype="FLOAT")
        sf.write(listen / "prediction.wav", pred.astype(np.float32), sr, subtype="FLOAT")
        title = f"{model_name}: validation ESR {val_esr:.4f} ({verdict})"
        plot_waveforms(target, pred, sr, run_dir / "waveforms.png", title)
        plot_spectra(target, pred, sr, run_dir / "spectra.png", title)
        summary["artifacts"] = ["model.nam", "listening/input.wav", "listening/target.wav",
                                "listening/prediction.wav", "waveforms.png", "spectra.png"]
        ctx.extra["target"] = target

    def compile(self, ctx: RunContext) -> list[str]:
        """QAT (training.quantization: qat), then the streaming exports, each rendered block by block and judged;
        the failed rows."""
        t = ctx.cfg.training
        try:
            if knob_run.is_knob_model(ctx.model):  # (the config refuses QAT for knob models)
                ctx.summary["compilation"], self.report_blocks["Verification"] = knob_run.compile_exports(
                    ctx, AUDIO_BLOCK)
                return failed_rows(ctx.summary["compilation"]["rows"])
            qat = None
            if t.quantization == "qat" and t.qat_epochs > 0:  # model.nam and the listening files stay the float's
                qat = qat_stage(ctx.cfg, ctx.model, ctx.data, ctx.extra["rf"], ctx.run_dir, ctx.extra["Xv"],
                                ctx.extra["Yv"])
                log.info("QAT: float validation ESR %.4f before, %.4f after fine-tuning",
                         ctx.summary["validation"]["esr"], qat["float_esr"])
            ctx.summary["compilation"] = self._compile(ctx.cfg, ctx.model, ctx.data, ctx.extra["rf"], ctx.run_dir,
                                                       ctx.extra["Xv"], ctx.extra["target"])
            ctx.summary["quantization"] = quantization_summary(ctx.summary["compilation"]["rows"],
                                                               ctx.summary["validation"]["esr"], qat)
            return failed_rows(ctx.summary["compilation"]["rows"])
        except Exception as e:  # the training result stands; the report says what failed
            log.exception("compilation failed")
            ctx.summary["compilation"] = {"error": f"{type(e).__name__}: {e}"}
            return [f"compilation: {type(e).__name__}: {e}"]

    def _compile(self, cfg, model, data, rf, run_dir: Path, Xv, target) -> dict[str, Any]:
        """Streaming exports (ONNX float/int8, TFLite float/int8/int16x8) and their verification table: each
        artifact renders the validation audio block by block; ESR vs PyTorch and vs the target, real-time
        factor. A failed artifact records its error in its row; the others go on."""
        from tinyverse.audio.verify import DEFAULT_EXPORTERS, RUNTIMES, export_and_verify, format_table, stream_rows

        comp = cfg.compilation
        exporters = list(DEFAULT_EXPORTERS if comp.exporters is None else comp.exporters)  # EXPORTERS names
        # The default set leaves out the exports the model cannot have (e.g. no TFLite twin): rows saying why.
        missing = getattr(model, "unavailable_exports", dict)() if comp.exporters is None else {}
        skipped = [(v, missing[e]) for e, v in stream_rows(exporters) if e in missing]
        not_available = {v.label: why for v, why in skipped}
        exporters = [e for e in exporters if e not in missing]
        for a, why in not_available.items():
            log.info("%-24s n/a   %s", a, why)
        num_calib = comp.calibration_samples if "calibration_samples" in comp.model_fields_set else 64
        t0, t1 = data.layout.train
        log.info("compiling: streaming exports %s, blocks of %d, int8 calibration on %d blocks of training audio",
                 ", ".join(exporters), AUDIO_BLOCK, num_calib)

        def on_row(row: dict[str, Any]) -> None:
            verdict = row.get("verdict") or {}
            if "error" in row:
                log.warning("%-24s FAIL  %s", row["artifact"], row["error"])
            else:
                (log.info if verdict.get("status") != "FAIL" else log.warning)(
                    "%-24s %-4s  ESR vs PyTorch %.2e, vs target %.4f, render RTF %.3f%s", row["artifact"],
                    verdict.get("status", "-"), row["esr_vs_torch"], row["esr_vs_target"], row["rtf"],
                    "" if verdict.get("status") != "FAIL" else " | " + "; ".join(verdict.get("failures", [])))

        result = export_and_verify(model, run_dir, Xv[0], target, data.x[t0:t1], data.sample_rate, AUDIO_BLOCK,
                                   exporters, num_calib=num_calib, on_row=on_row, tolerances=comp.tolerances)
        table = format_table(result) + "".join(
            f"\n| {v.label} | {RUNTIMES[v.runtime]} | not available | – | – | – | – | – | {why} | |"
            for v, why in skipped)
        blocks = dict(getattr(self, "report_blocks", None) or {})
        blocks["Verification"] = (f"Streaming exports, validation audio ({result['validation_seconds']} s) rendered in "
                                  f"blocks of {AUDIO_BLOCK} samples (see compile_report.md).\n\n" + table)
        self.report_blocks = blocks
        (run_dir / "compile_report.md").write_text(
            f"# Streaming exports: validation audio ({result['validation_seconds']} s) in blocks of {AUDIO_BLOCK}\n\n"
            "ESR vs PyTorch: against the float model rendering the whole block at once; ESR vs target: against "
            "the recorded device. RTF: processing seconds per second of audio on this CPU, one thread "
            "(TFLite on LiteRT's reference kernels; TFLM is the MCU interpreter run on the host).\n\n"
            + table + "\n")
        write_json(run_dir / "compile_report.json", result)
        out = {"block_size": AUDIO_BLOCK, "rows": result["rows"], "exports": result["exports"],
               "report": "compile_report.md"}
        if not_available:
            out["not_available"] = not_available
        # kept for readers of earlier summaries: the float ONNX row
        onnx = next((r for r in result["rows"] if r["artifact"] == "ONNX float"), None)
        if onnx is not None:
            out["onnx"] = {"path": onnx["file"], "block_size": AUDIO_BLOCK,
                           **({"error": onnx["error"]} if "error" in onnx else
                              {"esr_vs_target": onnx["esr_vs_target"], "esr_vs_torch": onnx["esr_vs_torch"]})}
        return out
