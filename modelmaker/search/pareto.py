"""The search report: every trial's validation accuracy against its flash, RAM and latency on the device, the
Pareto front of those four, why each pruned trial was pruned, the finalists' int8 (TFLM) accuracy and the winner."""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tinyverse.devices.latency import fmt_ms

COSTS = ("flash_bytes", "ram_bytes", "latency_ms")  # lower is better; accuracy higher


@dataclass
class TrialRow:
    number: int
    state: str  # "complete", "pruned (device)", "pruned (training)", "failed"
    params: dict[str, Any]  # what Optuna sampled
    val_acc: float | None = None
    val_loss: float | None = None
    costs: dict[str, Any] = field(default_factory=dict)  # params, macs, flash_bytes, ram_bytes, latency_ms
    reason: str = ""
    pareto: bool = False
    int8_val_acc: float | None = None
    int8_note: str = ""

    @property
    def label(self) -> str:
        p = self.params
        return (f"{p.get('model')} w{p.get('width'):g} d{p.get('depth'):+d}" if "width" in p else str(p.get("model")))


def dominates(a: TrialRow, b: TrialRow) -> bool:
    """``a`` is at least as good as ``b`` in accuracy and every known cost, and better in one."""
    pairs = [(a.val_acc, b.val_acc, True)] + [(a.costs.get(k), b.costs.get(k), False) for k in COSTS]
    pairs = [(x, y, up) for x, y, up in pairs if x is not None and y is not None]
    no_worse = all((x >= y) if up else (x <= y) for x, y, up in pairs)
    better = any((x > y) if up else (x < y) for x, y, up in pairs)
    return no_worse and better


def mark_pareto(rows: Sequence[TrialRow]) -> list[TrialRow]:
    """Flags the completed trials no other completed trial dominates; returns them, best accuracy first."""
    done = [r for r in rows if r.state == "complete" and r.val_acc is not None]
    for r in done:
        r.pareto = not any(dominates(o, r) for o in done if o is not r)
    return sorted([r for r in done if r.pareto], key=rank_key)


def rank_key(r: TrialRow) -> tuple:
    """Best first: validation accuracy, then validation loss, then latency and flash."""
    return (-(r.val_acc or 0.0), r.val_loss if r.val_loss is not None else float("inf"),
            r.costs.get("latency_ms") or 0.0, r.costs.get("flash_bytes") or 0)


def _cost(r: TrialRow, key: str) -> str:
    v = r.costs.get(key)
    if v is None:
        return "-"
    return fmt_ms(v) if key == "latency_ms" else f"{int(v):,}"


def _params(p: dict[str, Any]) -> str:
    skip = {"model", "width", "depth"}
    return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in p.items() if k not in skip)


def markdown(head: dict[str, Any], rows: Sequence[TrialRow], winner: TrialRow | None, plot: str | None,
             final: dict[str, Any] | None) -> str:
    out = [f"# Search: {head['dataset']} on {head['device'] or 'no device'}", ""]
    out += [f"- {k}: {v}" for k, v in head.items() if k not in ("space",)]
    out += ["", "## Search space", ""] + [f"- {line}" for line in head.get("space", [])]
    front = sorted((r for r in rows if r.pareto), key=rank_key)
    out += ["", "## Pareto front (validation accuracy vs flash / RAM / latency)", "",
            "Scored on the validation split only; the test split is read once, by the winner's final run.", "",
            "| trial | model | val acc | int8 TFLM val acc | flash (B) | RAM (B) | latency (ms) | params | recipe |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in front:
        int8 = ("-" if r.int8_val_acc is None else f"{r.int8_val_acc:.4f}") + (f" {r.int8_note}" if r.int8_note else "")
        star = " **winner**" if winner is not None and r.number == winner.number else ""
        costs = " | ".join(_cost(r, k) for k in (*COSTS, "params"))
        out.append(f"| {r.number} | {r.label}{star} | {r.val_acc:.4f} | {int8} | {costs} | {_params(r.params)} |")
    if plot:
        out += ["", f"![Pareto front]({plot})"]
    done = [r for r in rows if r.state == "complete"]
    out += ["", f"## All trials ({len(rows)}: {len(done)} complete, "
                f"{sum(r.state == 'pruned (device)' for r in rows)} pruned before training, "
                f"{sum(r.state == 'pruned (training)' for r in rows)} stopped by the pruner)", "",
            "| trial | state | model | val acc | val loss | flash (B) | RAM (B) | latency (ms) | why / recipe |",
            "|---:|---|---|---:|---:|---:|---:|---:|---|"]
    for r in sorted(rows, key=lambda r: r.number):
        acc = "-" if r.val_acc is None else f"{r.val_acc:.4f}"
        loss = "-" if r.val_loss is None else f"{r.val_loss:.4f}"
        why = r.reason if r.state != "complete" else _params(r.params)
        out.append(f"| {r.number} | {r.state}{' (Pareto)' if r.pareto else ''} | {r.label} | {acc} | {loss} | "
                   f"{_cost(r, 'flash_bytes')} | {_cost(r, 'ram_bytes')} | {_cost(r, 'latency_ms')} | {why} |")
    if winner is not None:
        out += ["", "## Winner", "", f"Trial {winner.number}: {winner.label}, {_params(winner.params)}.",
                f"Validation accuracy {winner.val_acc:.4f} (float)"
                + (f", {winner.int8_val_acc:.4f} (int8, TFLM)" if winner.int8_val_acc is not None else "") + "."]
        if final:
            test = f" — test {final['metric']} {final['value']:.4f}" if final.get("value") is not None else ""
            out.append(f"Retrained with the full schedule ({final.get('epochs')} epochs) and compiled: "
                       f"[{final['run_dir']}]({final['run_dir']}/report.md){test}")
    return "\n".join(out) + "\n"


def plot_front(rows: Sequence[TrialRow], path: Path, title: str, winner: TrialRow | None) -> Path | None:
    """Validation accuracy against flash, RAM and latency: every complete trial, the front, the winner starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r.state == "complete" and r.val_acc is not None]
    keys = [k for k in COSTS if any(r.costs.get(k) is not None for r in done)]
    if not done or not keys:
        return None
    labels = {"flash_bytes": "flash (bytes)", "ram_bytes": "RAM (bytes)", "latency_ms": "latency (ms)"}
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        pts = [(r.costs[key], r.val_acc, r) for r in done if r.costs.get(key) is not None]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], c="0.7", s=18, label="trials")
        front = sorted([p for p in pts if p[2].pareto], key=lambda p: p[0])
        ax.scatter([p[0] for p in front], [p[1] for p in front], c="C0", s=26, label="Pareto front")
        if winner is not None and winner.costs.get(key) is not None:
            ax.scatter([winner.costs[key]], [winner.val_acc], marker="*", c="C3", s=160, label="winner")
        ax.set_xlabel(labels[key])
        ax.set_ylabel("validation accuracy")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_csv(rows: Sequence[TrialRow], path: Path) -> None:
    keys = sorted({k for r in rows for k in r.params})
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["trial", "state", *keys, "val_acc", "val_loss", "int8_val_acc", "params", "macs", *COSTS,
                    "pareto", "reason"])
        for r in sorted(rows, key=lambda r: r.number):
            w.writerow([r.number, r.state, *[r.params.get(k, "") for k in keys], r.val_acc, r.val_loss,
                        r.int8_val_acc, r.costs.get("params"), r.costs.get("macs"), *[r.costs.get(k) for k in COSTS],
                        r.pareto, r.reason])


def to_json(rows: Sequence[TrialRow]) -> list[dict[str, Any]]:
    return [json.loads(json.dumps(asdict(r), default=str)) for r in rows]


__all__ = ["TrialRow", "dominates", "mark_pareto", "markdown", "plot_front", "rank_key", "to_json", "write_csv"]
