"""``modelmaker search CONFIG [--device X] [--budget-ms N] [--trials N] [--time-budget MIN] ...``

Searches zoo entries, widths/depths, input features and recipe settings (learning rate, epochs, augmentation,
dropout) for the config's data under the device's rules, flash, RAM and latency budget — every point is checked
before it trains, infeasible ones are pruned with the reason — with short trials that Optuna's median pruner stops
early, scored on the validation split. Writes ``<projects>/<date>-<time>_<dataset>_search/`` (search_report.md with
the Pareto table and pareto.png, trials.csv, search.json, the study journal), then retrains the winner with the full
schedule into an ordinary run folder. Exit 0 when done; 2 for a config that cannot be searched or a space nothing
of which fits the device (one line).
"""
from __future__ import annotations

import argparse


def _jobs(text: str) -> int | None:
    if text == "auto":
        return None
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a worker count, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 worker, got {n}")
    return n


def _positive(kind):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return v
    return parse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search the zoo, widths/depths, features and recipe for the best model that "
                                      "fits a device (Optuna); retrain the winner into a run folder")
    p.add_argument("config", help="path to a YAML config (time-series classification)")
    p.add_argument("--device", help="device profile name or YAML (default: the config's common.target_device)")
    p.add_argument("--budget-ms", type=_positive(float), metavar="N",
                   help="latency budget per inference, from the device's cost model (sets common.latency_budget_ms)")
    p.add_argument("--trials", type=_positive(int), default=20, metavar="N",
                   help="trials that train (those the device rules out before training do not count; default 20)")
    p.add_argument("--time-budget", type=_positive(float), metavar="MIN",
                   help="minutes for the trials (the finalists' int8 check and the final run come after)")
    p.add_argument("--trial-epochs", type=_positive(int), metavar="N",
                   help="longest trial schedule (default: the config's epochs, at most 40); trials draw N/2..N")
    p.add_argument("--final-epochs", type=_positive(int), metavar="N",
                   help="the winner's schedule (default: the config's training.epochs)")
    p.add_argument("--finalists", type=_positive(int), default=3, metavar="K",
                   help="Pareto-front trials whose int8 (TFLM) validation accuracy is measured (default 3)")
    p.add_argument("--jobs", type=_jobs, default=None, metavar="N|auto",
                   help="worker processes running trials side by side (default auto: one per 2 cores)")
    p.add_argument("--models", nargs="+", metavar="NAME", help="search only these zoo entries")
    p.add_argument("--seed", type=int, help="seed of the sampler and of every trial (default: common.seed)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a config value for every trial and the final run (as in modelmaker run)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from modelmaker.config import parse_overrides
    from modelmaker.search.study import SearchOptions, run_search
    from tinyverse.registry import MODEL_REGISTRY

    for name in args.models or []:
        MODEL_REGISTRY.get(name)  # an unknown name: one line with did-you-mean (exit 2)
    opts = SearchOptions(device=args.device, budget_ms=args.budget_ms, trials=args.trials,
                         time_budget_min=args.time_budget, trial_epochs=args.trial_epochs,
                         final_epochs=args.final_epochs, jobs=args.jobs, finalists=args.finalists, seed=args.seed,
                         models=args.models, overrides=parse_overrides(args.overrides))
    summary = run_search(args.config, opts)
    final = summary.get("final_run") or {}
    winner = next(t for t in summary["trials"] if t["number"] == summary["winner"])
    line = (f"search folder: {summary['search_dir']} | winner: trial {winner['number']} {winner['params']['model']} "
            f"(val acc {winner['val_acc']:.2%}")
    if winner.get("int8_val_acc") is not None:
        line += f", int8 {winner['int8_val_acc']:.2%}"
    latency = (winner.get("costs") or {}).get("latency_ms")
    if latency is not None:
        line += f", ~{latency:.3g} ms on {summary['device']}"
    line += ")"
    if final:
        line += f" | run folder: {final['run_dir']}"
        if final.get("value") is not None:
            line += f" | test {final['metric']} {final['value']:.2%}"
    print(line)
    return 0
