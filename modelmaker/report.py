"""``report.md`` of a run folder, from the summary dict (any modality) plus optional markdown blocks.

A modality hands richer views it already has (the spec summary table, ``CompileReport.to_markdown()``,
``DeviceReport.to_markdown()``) as ``blocks``: an ordered mapping of section title → markdown. Where a block is
missing, the section is rendered from the summary alone, so every run gets a report.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

# Files a reader does not need listed one by one (Lightning's per-version logs).
_SKIP_DIRS = ("logs",)


def _fmt(v: Any, spec: str = ".4f") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e4):
            return format(v, ".3g")
        return format(v, ".4g" if abs(v) >= 1 else spec)
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _kv_table(rows: list[tuple[str, Any]]) -> str:
    out = ["| | |", "|---|---|"]
    out += [f"| {k} | {_fmt(v)} |" for k, v in rows if v is not None]
    return "\n".join(out)


def _dataset(ds: Mapping[str, Any]) -> str:
    rows = [("name", ds.get("name")), ("input shape", "x".join(map(str, ds.get("input_shape") or [])) or None),
            ("classes", ds.get("num_classes"))]
    rows += [(f"{split} samples", n) for split, n in (ds.get("counts") or {}).items()]
    out = _kv_table(rows)
    if ds.get("warnings"):  # dataset checks that did not stop the run
        out += "\n\n**Warnings**\n\n" + "\n".join(f"- {w}" for w in ds["warnings"])
    return out


def _shape(shape: Any) -> str | None:
    return "x".join(map(str, shape or [])) or None


def _feature_extraction(fe: Mapping[str, Any]) -> str:
    return _kv_table([("transforms", " -> ".join(fe.get("transforms") or []) or None),
                      ("raw input (channels x length)", _shape(fe.get("input_shape"))),
                      ("features (channels x length)", _shape(fe.get("output_shape"))),
                      ("pipeline and arithmetic", fe.get("file")), ("golden feature vectors", fe.get("golden"))])


def _model(m: Mapping[str, Any]) -> str:
    args = ", ".join(f"{k}={v}" for k, v in (m.get("args") or {}).items())
    return _kv_table([("name", m.get("name")), ("arguments", args or None), ("parameters", m.get("params")),
                      ("MACs per inference", m.get("macs")), ("source", m.get("source"))])


def _verification(comp: Mapping[str, Any]) -> str:
    metric = comp.get("metric", "metric")
    out = [f"| artifact | verdict | {metric} | max abs diff | TFLM arena (bytes) | error |",
           "|---|---|---:|---:|---:|---|"]
    for r in comp.get("verification", []):
        out.append(f"| {r['artifact']} | {r.get('status', '-')} | {_fmt(r.get('metric'))} | "
                   f"{_fmt(r.get('max_abs_diff'), '.3g')} | {_fmt(r.get('arena_bytes'))} | {r.get('error') or ''} |")
    return "\n".join(out)


def _device(dev: Mapping[str, Any]) -> str:
    out = [f"**{dev.get('model')} on {dev.get('device')}: {'fits' if dev.get('fits') else 'DOES NOT FIT'}**", ""]
    out += [f"- {v}" for v in dev.get("violations", [])]
    out += [f"- note: {n}" for n in dev.get("notes", [])]
    return "\n".join(out)


def _artifacts(run_dir: Path) -> str:
    out = ["| file | bytes |", "|---|---:|"]
    for p in sorted(run_dir.rglob("*")):
        rel = p.relative_to(run_dir)
        if p.is_file() and rel.parts[0] not in _SKIP_DIRS and rel.name != "report.md":
            out.append(f"| {rel.as_posix()} | {p.stat().st_size:,} |")
    return "\n".join(out)


def render_report(summary: Mapping[str, Any], run_dir: str | Path | None = None,
                  blocks: Mapping[str, str] | None = None) -> str:
    blocks = dict(blocks or {})
    title = Path(summary.get("run_dir") or run_dir or "run").name
    out = [f"# Run report: {title}", ""]
    ver = summary.get("verification") or {}
    head = [("config", summary.get("config")), ("modality", summary.get("modality")),
            ("task", summary.get("task_type")), ("wall time (s)", summary.get("wall_time_s")),
            ("verification", ver.get("status"))]
    out += [_kv_table(head), ""]
    if ver.get("status") == "FAIL":  # first thing a reader sees: which export disagrees with its reference
        out += ["**VERIFICATION FAILED**: these exports disagree with their reference beyond "
                "`compilation.tolerances`:", ""] + [f"- {f}" for f in ver.get("failures", [])] + [""]

    def section(name: str, default: str | None) -> None:
        body = blocks.pop(name, None) or default
        if body:
            out.extend([f"## {name}", "", body.strip(), ""])

    section("Dataset", _dataset(summary["dataset"]) if summary.get("dataset") else None)
    fe = summary.get("feature_extraction")
    section("Feature extraction", _feature_extraction(fe) if isinstance(fe, Mapping) else None)
    section("Model", _model(summary["model"]) if summary.get("model") else None)
    section("Model summary", None)  # the spec's layer table, when the modality has one
    tr = summary.get("training")
    section("Training", _kv_table(list(tr.items())) if isinstance(tr, Mapping) else None)
    test = summary.get("test")
    section("Test", _kv_table(list(test.items())) if isinstance(test, Mapping) else None)
    onnx = summary.get("onnx")
    section("ONNX parity", _kv_table(list(onnx.items())) if isinstance(onnx, Mapping) else None)
    q = summary.get("quantization")
    section("Quantization", _kv_table(list(q.items())) if isinstance(q, Mapping) else None)
    comp = summary.get("compilation")
    section("Verification", _verification(comp) if isinstance(comp, Mapping) else None)
    dev = summary.get("device")
    section("Device", _device(dev) if isinstance(dev, Mapping) else None)
    for name, body in list(blocks.items()):  # anything else a modality wants in its report
        section(name, body)
    if run_dir is not None:
        section("Artifacts", _artifacts(Path(run_dir)))
    return "\n".join(out).rstrip() + "\n"


def write_report(run_dir: str | Path, summary: Mapping[str, Any], blocks: Mapping[str, str] | None = None) -> Path:
    path = Path(run_dir) / "report.md"
    path.write_text(render_report(summary, run_dir, blocks))
    return path
