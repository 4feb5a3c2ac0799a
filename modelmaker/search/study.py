"""``modelmaker search``: an Optuna study over the zoo, widths/depths, input features and recipe settings under a
device's rules, flash, RAM and latency budget; the Pareto front; int8 (TFLM) accuracy of the finalists; the winner
retrained with the full schedule and compiled into an ordinary run folder (``modelmaker.runner.run``).

The study lives in a journal file in the search folder, so several worker processes (``--jobs``) run trials of one
study side by side when the machine has the cores.
"""
from __future__ import annotations

import collections
import json
import logging
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from modelmaker.search.pareto import TrialRow, mark_pareto, markdown, plot_front, rank_key, to_json, write_csv
from modelmaker.search.space import SearchSpace, build_space, merge
from modelmaker.search.errors import SearchError
from modelmaker.search.trial import (ATTR_OVERRIDES, ATTR_REASON, ATTR_STAGE, STAGE_DEVICE, TrialContext, objective,
                                     trial_config, trial_data)

log = logging.getLogger("modelmaker")

STUDY = "search"
JOURNAL = "study.journal"
MAX_ATTEMPTS_PER_TRIAL = 20  # trials pruned before training are cheap, but a space that is nearly all infeasible ends
INT8_ROWS = ("TFLite int8 (TFLM)", "TFLite int8 (LiteRT)")


@dataclass
class SearchOptions:
    device: str | None = None
    budget_ms: float | None = None
    trials: int = 20  # trials that train (those pruned before training do not count)
    time_budget_min: float | None = None  # wall time for the trials; finalists and the final run come after
    trial_epochs: int | None = None  # longest trial schedule (default: the config's epochs, at most 40)
    final_epochs: int | None = None  # the winner's full schedule (default: the config's training.epochs)
    jobs: int | None = None  # worker processes (None: one per 2 cores)
    finalists: int = 3
    seed: int | None = None
    models: list[str] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # --set


@dataclass
class WorkerSpec:
    """What a worker process needs to join the study (picklable)."""

    config_path: str
    overrides: dict
    space: SearchSpace
    search_dir: str
    trials: int
    deadline: float | None
    seed: int
    threads: int
    startup: int


def _sampler(seed: int, startup: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


def _pruner(trial_epochs: int, startup: int) -> optuna.pruners.BasePruner:
    return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=max(1, trial_epochs // 4))


def _storage(search_dir: Path) -> optuna.storages.BaseStorage:
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(search_dir / JOURNAL)))


def trained(trial: optuna.trial.FrozenTrial) -> bool:
    """The trial got past the device check and trained (completed, or stopped by the pruner)."""
    return trial.user_attrs.get(ATTR_STAGE) not in (None, STAGE_DEVICE)


class StopWhenEnough:
    """Stops the study once ``trials`` trials have trained, or after MAX_ATTEMPTS_PER_TRIAL x ``trials`` attempts."""

    def __init__(self, trials: int) -> None:
        self.trials = trials

    def __call__(self, study: optuna.Study, _: optuna.trial.FrozenTrial) -> None:
        done = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
        if sum(trained(t) for t in done) >= self.trials or len(done) >= MAX_ATTEMPTS_PER_TRIAL * self.trials:
            study.stop()


def worker_main(spec: WorkerSpec) -> None:
    """One worker: joins the study and runs trials until enough have trained or the deadline passes."""
    from tinyverse.training.fit import quiet_lightning

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=STUDY, storage=_storage(Path(spec.search_dir)),
                              sampler=_sampler(spec.seed, spec.startup),
                              pruner=_pruner(spec.space.epochs[1], spec.startup))
    ctx = TrialContext(spec.config_path, spec.overrides, spec.space, Path(spec.search_dir), spec.threads)
    timeout = None if spec.deadline is None else max(1.0, spec.deadline - time.time())
    with quiet_lightning():
        study.optimize(lambda trial: objective(trial, ctx), timeout=timeout, callbacks=[StopWhenEnough(spec.trials)])


def auto_jobs(cores: int | None = None) -> int:
    """One worker per two cores: each trains a tiny model on a thread or two, the rest stays for the machine."""
    return max(1, (cores or os.cpu_count() or 1) // 2)


def base_overrides(opts: SearchOptions) -> dict[str, Any]:
    common: dict[str, Any] = {}
    if opts.device is not None:
        common["target_device"] = opts.device
    if opts.budget_ms is not None:
        common["latency_budget_ms"] = float(opts.budget_ms)
    if opts.seed is not None:
        common["seed"] = int(opts.seed)
    return merge(opts.overrides, {"common": common} if common else {})


def run_search(config_path: str | Path, opts: SearchOptions) -> dict[str, Any]:
    """The whole search; returns its summary (also ``search.json``). Raises :class:`SearchError` (one line) when the
    config cannot be searched or no point of the space fits the device."""
    from modelmaker.ai_modules import AI_MODULES
    from modelmaker.compilation import target_device
    from modelmaker.run_folder import create_run_folder, expand_run_name
    from modelmaker.runner import load_run_config, seed_everything

    started = time.time()
    config_path = str(config_path)
    overrides = base_overrides(opts)
    cfg = load_run_config(config_path, overrides)
    if cfg.common.modality != "timeseries" or cfg.common.task_type != "classification":
        raise SearchError(f"{config_path}: modelmaker search covers time-series classification (the CLS_* zoo); "
                          f"this config is {cfg.common.modality} {cfg.common.task_type}")
    if cfg.compilation.model_path or not cfg.training.enable:
        raise SearchError(f"{config_path}: modelmaker search trains models; remove compilation.model_path and set "
                          f"training.enable: true")
    if opts.trials < 1 or opts.finalists < 1:
        raise SearchError("--trials and --finalists must be at least 1")
    device = target_device(cfg)  # a budget without a cost model fails here, in one line
    module = AI_MODULES.get(cfg.common.modality)()
    seed_everything(cfg.common.seed)
    data = module.load_data(cfg)
    if len(data.y_val) == 0:
        raise SearchError(f"{config_path}: the search scores on the validation split, which is empty → set "
                          f"dataset.val_fraction above 0")
    trial_epochs = opts.trial_epochs or min(cfg.training.epochs, 40)
    space = build_space(cfg, data.input_shape, trial_epochs, opts.models)
    if not space.models:
        raise SearchError(f"no zoo entry of task {cfg.common.task_type} to search (`modelmaker models --task "
                          f"{cfg.common.task_type}`)")
    name = expand_run_name("{date}-{time}_{dataset}_search", model_name="search", dataset=data.name,
                           task_type=cfg.common.task_type)
    search_dir = create_run_folder(cfg.common.projects_path, name, unique=True)
    handler = logging.FileHandler(search_dir / "search.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    try:
        return _search(config_path, opts, overrides, cfg, device, data, space, search_dir, trial_epochs, started)
    finally:
        log.removeHandler(handler)
        handler.close()


def _search(config_path, opts, overrides, cfg, device, data, space, search_dir, trial_epochs, started):
    from modelmaker.run_folder import write_json

    cores = os.cpu_count() or 1
    jobs = max(1, opts.jobs or auto_jobs(cores))
    threads = max(1, cores // jobs)
    seed = cfg.common.seed
    startup = max(3, min(10, opts.trials // 2))  # random trials first (those the device rules out count too)
    deadline = None if opts.time_budget_min is None else started + 60 * float(opts.time_budget_min)
    device_name = getattr(device, "name", device)
    log.info("search %s: %s on %s%s, %d trial(s) of up to %d epochs, %d worker(s) x %d thread(s); folder %s",
             config_path, data.name, device_name or "no device",
             f" within {cfg.common.latency_budget_ms:g} ms" if cfg.common.latency_budget_ms else "", opts.trials,
             trial_epochs, jobs, threads, search_dir)
    optuna.create_study(study_name=STUDY, storage=_storage(search_dir), direction="maximize",
                        sampler=_sampler(seed, startup), pruner=_pruner(trial_epochs, startup))
    specs = [WorkerSpec(config_path, overrides, space, str(search_dir), opts.trials, deadline, seed + i, threads,
                        startup) for i in range(jobs)]
    procs = [multiprocessing.get_context("spawn").Process(target=worker_main, args=(s,), daemon=True)
             for s in specs[1:]]
    for p in procs:
        p.start()
    try:
        worker_main(specs[0])
    finally:
        for p in procs:
            p.join()
    failed = [p.exitcode for p in procs if p.exitcode]
    if failed:
        log.warning("%d search worker(s) exited with an error (see %s)", len(failed), search_dir / "search.log")
    study = optuna.load_study(study_name=STUDY, storage=_storage(search_dir))
    rows = [_row(t) for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    search_s = time.time() - started
    if not any(r.state == "complete" for r in rows):
        raise SearchError(_nothing_fits(rows, device_name, cfg.common.latency_budget_ms, search_dir))
    front = mark_pareto(rows)
    finalists = front[:opts.finalists]
    ctx = TrialContext(config_path, overrides, space, search_dir, threads)
    for r in finalists:
        _int8_on_validation(r, study.trials[r.number], ctx)
    # best int8 (TFLM) validation accuracy — what ships — then the front's own order
    winner = min(finalists, key=lambda r: (-(r.int8_val_acc if r.int8_val_acc is not None else -1.0), rank_key(r)))
    head = {"config": config_path, "dataset": data.name, "device": device_name,
            "latency budget (ms)": cfg.common.latency_budget_ms or (getattr(getattr(device, "latency", None),
                                                                            "budget_ms", None) or "-"),
            "trials": f"{len(rows)} ({sum(r.state != 'pruned (device)' for r in rows)} trained)",
            "workers": f"{jobs} x {threads} thread(s)", "search wall time": f"{search_s / 60:.1f} min",
            "input": "x".join(map(str, data.input_shape)), "space": space.describe()}
    plot = plot_front(rows, search_dir / "pareto.png", f"{data.name} on {device_name or 'no device'}", winner)
    summary = {"search_dir": str(search_dir), "config": config_path, "dataset": data.name, "device": device_name,
               "trials": to_json(rows), "pareto": [r.number for r in front], "finalists": [r.number for r in finalists],
               "winner": winner.number, "winner_overrides": _final_overrides(study.trials[winner.number], opts),
               "search_s": round(search_s, 1)}
    write_csv(rows, search_dir / "trials.csv")
    report = search_dir / "search_report.md"
    report.write_text(markdown(head, rows, winner, plot.name if plot else None, None))
    write_json(search_dir / "search.json", summary)
    log.info("search: %d trial(s), Pareto front %s; winner trial %d (%s); retraining it with the full schedule",
             len(rows), [r.number for r in front], winner.number, winner.label)
    final = _final_run(config_path, overrides, summary["winner_overrides"])
    summary["final_run"] = final
    summary["wall_time_s"] = round(time.time() - started, 1)
    head["total wall time"] = f"{summary['wall_time_s'] / 60:.1f} min"
    report.write_text(markdown(head, rows, winner, plot.name if plot else None, final))
    write_json(search_dir / "search.json", summary)
    return summary


def _row(t: optuna.trial.FrozenTrial) -> TrialRow:
    stage = t.user_attrs.get(ATTR_STAGE)
    if t.state == optuna.trial.TrialState.COMPLETE:
        state = "complete"
    elif t.state == optuna.trial.TrialState.PRUNED:
        state = "pruned (device)" if stage == STAGE_DEVICE else "pruned (training)"
    else:
        state = "failed"
    costs = {k: t.user_attrs[k] for k in ("params", "macs", "flash_bytes", "ram_bytes", "latency_ms")
             if t.user_attrs.get(k) is not None}
    return TrialRow(t.number, state, dict(t.params), t.value if state == "complete" else None,
                    t.user_attrs.get("val_loss"), costs, t.user_attrs.get(ATTR_REASON, ""))


def _nothing_fits(rows: list[TrialRow], device: str | None, budget: float | None, search_dir: Path) -> str:
    reasons = collections.Counter(r.reason.split(":", 1)[-1].split(" (+")[0].strip() for r in rows
                                  if r.state == "pruned (device)")
    if reasons and len(reasons) and sum(reasons.values()) == len(rows):
        why, n = reasons.most_common(1)[0]
        within = f" within {budget:g} ms" if budget else ""
        return (f"no configuration of the search space fits {device}{within} ({len(rows)} tried; most often: "
                f"{why} [{n}x]) → raise --budget-ms, pick a larger device, or shorten the input")
    return f"no trial completed ({len(rows)} tried; see {search_dir / 'search_report.md'} and search.log)"


def _final_overrides(trial: optuna.trial.FrozenTrial, opts: SearchOptions) -> dict[str, Any]:
    """The winner's point, with the full schedule: the config's epochs (or --final-epochs), not the trial's."""
    point = json.loads(trial.user_attrs[ATTR_OVERRIDES])
    point["training"].pop("epochs", None)
    if opts.final_epochs:
        point["training"]["epochs"] = int(opts.final_epochs)
    return point


def _final_run(config_path: str, overrides: dict, point: dict) -> dict[str, Any]:
    """The winner retrained and compiled into an ordinary run folder (``modelmaker run`` with its overrides)."""
    from modelmaker.runner import run

    summary = run(config_path, overrides=merge(overrides, point))
    test = summary.get("test") or {}
    headline = test.get("headline") or "accuracy"
    value = test.get(headline)
    return {"run_dir": summary["run_dir"], "epochs": (summary.get("training") or {}).get("epochs_run"),
            "metric": headline, "value": value, "quantization": summary.get("quantization"),
            "device_fits": (summary.get("device") or {}).get("fits")}


def _int8_on_validation(row: TrialRow, trial: optuna.trial.FrozenTrial, ctx: TrialContext) -> None:
    """The finalist's trained weights quantized to int8 and run in TFLM on the validation split (calibrated on the
    training split); the device check then includes what the converted file measured (arena, ops; vela)."""
    import numpy as np

    from modelmaker.ai_modules import AI_MODULES
    from modelmaker.ai_modules.timeseries.layout import as_nchw
    from modelmaker.compilation import target_device
    from tinyverse.compile import compile_model
    from tinyverse.training.fit import load_task_weights

    point = json.loads(trial.user_attrs[ATTR_OVERRIDES])
    cfg = trial_config(ctx, point)
    module = AI_MODULES.get(cfg.common.modality)()
    data = trial_data(module, cfg)
    model, _ = module.build_model(cfg, data)
    load_task_weights(model, Path(trial.user_attrs["checkpoint"]))
    X_train, X_val = as_nchw(data.X_train), as_nchw(data.X_val)
    n = min(len(X_train), cfg.compilation.calibration_samples)
    calib = X_train[np.sort(np.random.default_rng(cfg.common.seed).permutation(len(X_train))[:n])]
    try:
        rep = compile_model(model, getattr(model, "spec", None), ctx.search_dir / "finalists" / f"{row.number:04d}",
                            calib, X_val, data.y_val, metric="accuracy", device=target_device(cfg),
                            exporters=["tflite_int8"], golden_vectors=0, classifier=True)
    except Exception as err:  # noqa: BLE001 - a finalist whose export fails keeps its float score, and says why
        row.int8_note = f"(int8 failed: {' '.join(str(err).split())[:120]})"
        return
    int8 = next((r for name in INT8_ROWS for r in rep.rows if r.artifact == name and r.metric is not None), None)
    if int8 is None:
        row.int8_note = "(int8 failed)"
        return
    row.int8_val_acc = float(int8.metric)
    if rep.device is not None and not rep.device.fits:
        row.int8_note = f"(compiled: {rep.device.violations[0]})"


__all__ = ["SearchOptions", "auto_jobs", "run_search", "worker_main"]
