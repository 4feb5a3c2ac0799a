"""``report.md`` and ``report.html`` of a run folder, from the summary dict (any modality) plus optional markdown
blocks.

A modality hands richer views it already has (the spec summary table, ``CompileReport.to_markdown()``,
``DeviceReport.to_markdown()``) as ``blocks``: an ordered mapping of section title → markdown. Where a block is
missing, the section is rendered from the summary alone, so every run gets a report. The head says what a reader
wants first: the headline metric (time series: the test split's; audio: the validation ESR and its verdict), the
verification status, whether the model fits the device, and the run's state.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from modelmaker.report_html import render_html

# Files a reader does not need listed one by one (Lightning's per-version logs).
_SKIP_DIRS = ("logs",)
# What the audio runner's listening files are (summary["artifacts"]).
_LISTENING = {"input.wav": "the validation block sent into the device",
              "target.wav": "what the device recorded",
              "prediction.wav": "what the model plays for the same input"}
# summary["state"] while the report is written: every stage ran, the strict checks come after the report.
_STATES = {"running": "all stages ran (status.json holds the final state)"}


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


def _cell(v: Any) -> str:
    """A table cell: a ``|`` or a line break in a name or an error would end the cell or the row."""
    return _fmt(v).replace("|", "\\|").replace("\n", " ")


def _link(rel: str) -> str:
    """A markdown link target for a run-folder path (angle brackets: spaces and parentheses stay in it)."""
    return "<" + rel.replace("<", "%3C").replace(">", "%3E") + ">"


def _kv_table(rows: list[tuple[str, Any]]) -> str:
    out = ["| | |", "|---|---|"]
    out += [f"| {_cell(k)} | {_cell(v)} |" for k, v in rows if v is not None]
    return "\n".join(out)


def _dataset(ds: Mapping[str, Any]) -> str:
    rows = [("name", ds.get("name")), ("input shape", "x".join(map(str, ds.get("input_shape") or [])) or None),
            ("classes", ds.get("num_classes"))]
    rows += [(f"{split} samples", n) for split, n in (ds.get("counts") or {}).items()]
    # audio captures
    rows += [("sample rate (Hz)", ds.get("sample_rate")), ("audio (s)", ds.get("seconds")),
             ("training audio (s)", ds.get("train_seconds")), ("validation audio (s)", ds.get("validation_seconds")),
             ("latency (samples)", ds.get("latency")), ("repeatability ESR", ds.get("repeatability_esr"))]
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
                      ("MACs per inference", m.get("macs")), ("MACs per sample", m.get("macs_per_sample")),
                      ("receptive field (samples)", m.get("receptive_field")), ("source", m.get("source"))])


def _verification(comp: Mapping[str, Any]) -> str:
    metric = comp.get("metric", "metric")
    out = [f"| artifact | verdict | {metric} | max abs diff | TFLM arena (bytes) | error |",
           "|---|---|---:|---:|---:|---|"]
    for r in comp.get("verification", []):
        out.append(f"| {r['artifact']} | {r.get('status', '-')} | {_fmt(r.get('metric'))} | "
                   f"{_fmt(r.get('max_abs_diff'), '.3g')} | {_fmt(r.get('arena_bytes'))} | "
                   f"{_cell(r.get('error') or '')} |")
    return "\n".join(out)


def _sci(v: Any) -> str:
    return "-" if v is None else format(v, ".2e")


def _streaming_verification(comp: Mapping[str, Any]) -> str:
    """Audio: each streaming export rendering the validation audio block by block, with its pass rule."""
    out = [f"Streaming exports, validation audio rendered in blocks of {_fmt(comp.get('block_size'))} samples.", "",
           "| artifact | runtime | verdict | ESR vs PyTorch | ESR vs target | max abs diff | render RTF | file "
           "| rule |",
           "|---|---|---|---:|---:|---:|---:|---|---|"]
    for r in comp.get("rows", []):
        verdict = r.get("verdict") or {}
        failed = "error" in r or verdict.get("status") == "FAIL"
        status = "**FAIL**: " + "; ".join(verdict.get("failures") or [r.get("error")]) if failed else \
            verdict.get("status", "-")
        out.append(f"| {r['artifact']} | {r.get('runtime', '-')} | {_cell(status)} | {_sci(r.get('esr_vs_torch'))} | "
                   f"{_fmt(r.get('esr_vs_target'))} | {_sci(r.get('max_abs_diff'))} | {_fmt(r.get('rtf'), '.3f')} | "
                   f"{r.get('file') or '-'} | {_cell(verdict.get('rule', '-'))} |")
    return "\n".join(out)


def _compilation(comp: Mapping[str, Any]) -> str | None:
    if "rows" in comp:
        return _streaming_verification(comp)
    if "verification" in comp:
        return _verification(comp)
    if comp.get("error"):  # the stage itself failed; training results stand
        return f"**Compilation failed**: {comp['error']}"
    return None


def _device(dev: Mapping[str, Any]) -> str:
    out = [f"**{dev.get('model')} on {dev.get('device')}: {'fits' if dev.get('fits') else 'DOES NOT FIT'}**", ""]
    out += [f"- {v}" for v in dev.get("violations", [])]
    out += [f"- note: {n}" for n in dev.get("notes", [])]
    totals, budgets = dev.get("totals") or {}, dev.get("budgets") or {}
    if totals or budgets:
        out += ["", "| budget | estimate | limit |", "|---|---:|---:|"]
        out += [f"| {k} | {_fmt(totals.get(k))} | {_fmt(budgets.get(k))} |" for k in dict.fromkeys([*totals, *budgets])]
        out += [f"| measured {k} | {_fmt(v)} | |" for k, v in (dev.get("measured") or {}).items()]
    return "\n".join(out).strip()


def _validation(val: Mapping[str, Any]) -> str:
    return ("ESR (error-to-signal ratio) of the model's output against the recorded target on the validation "
            "block; the verdict is the comment NAM's trainer gives the same value.\n\n"
            + _kv_table([("ESR", val.get("esr")), ("verdict", val.get("verdict")),
                         ("validation audio (s)", val.get("seconds"))]
                        # a container: each submodel's (the ESR above is the full-size one's)
                        + [(f"ESR of submodel {k}", v) for k, v in (val.get("submodels") or {}).items()]))


def _nam(nam: Mapping[str, Any]) -> str:
    path = nam.get("path")
    out = f"[{path}]({_link(path)}): load it in a NAM player (the NeuralAmpModeler plugin).\n\n" if path else ""
    return out + _kv_table([("file", path), ("weights", nam.get("weights")),
                            ("streamed ESR vs target (blocks of 512, from the file)", nam.get("stream_esr_vs_target")),
                            ("render real-time factor (s per s of audio)", nam.get("render_rtf"))])


def _listening(files: list[str]) -> str | None:
    wavs = [f for f in files if f.lower().endswith(".wav")]
    pngs = [f for f in files if f.lower().endswith(".png")]
    if not wavs and not pngs:
        return None
    out = [f"- [{f}{': ' + _LISTENING[Path(f).name] if Path(f).name in _LISTENING else ''}]({_link(f)})"
           for f in wavs]
    return "\n\n".join(["\n".join(out), *(f"![{f}]({_link(f)})" for f in pngs)]).strip()


def _listening_files(summary: Mapping[str, Any], run_dir: Path | None) -> list[str]:
    """The audio runner's listening WAVs and their plots (summary["artifacts"]), and any WAV in listening/."""
    files = [f for f in summary.get("artifacts") or [] if f.lower().endswith((".wav", ".png"))]
    if run_dir is not None and (run_dir / "listening").is_dir():
        files += [p.relative_to(run_dir).as_posix() for p in sorted((run_dir / "listening").glob("*.wav"))]
    if run_dir is not None:  # a file the summary names but the folder lacks is not shown as a broken player
        files = [f for f in files if (run_dir / f).is_file()]
    return list(dict.fromkeys(files))


def _plots(run_dir: Path | None, summary: Mapping[str, Any], shown: list[str]) -> str | None:
    if run_dir is not None:
        pngs = [p.relative_to(run_dir).as_posix() for p in sorted(run_dir.rglob("*.png"))
                if p.relative_to(run_dir).parts[0] not in _SKIP_DIRS]
    else:
        pngs = [f for f in summary.get("artifacts") or [] if f.lower().endswith(".png")]
    pngs = [f for f in pngs if f not in shown]
    return "\n\n".join(f"![{f}]({_link(f)})" for f in pngs) or None


def _own_files(summary: Mapping[str, Any]) -> set[str]:
    """The report being written (report.md or report_resumed[_N].md) and its html twin."""
    name = Path(summary.get("report") or "report.md")
    return {name.name, name.with_suffix(".html").name}


def _artifacts(run_dir: Path, skip: set[str]) -> str:
    out = ["| file | bytes |", "|---|---:|"]
    for p in sorted(run_dir.rglob("*")):
        rel = p.relative_to(run_dir)
        if p.is_file() and rel.parts[0] not in _SKIP_DIRS and rel.as_posix() not in skip:
            out.append(f"| {_cell(rel.as_posix())} | {p.stat().st_size:,} |")
    return "\n".join(out)


def _device_of(summary: Mapping[str, Any]) -> Mapping[str, Any] | None:
    dev = summary.get("device")
    dev = dev if isinstance(dev, Mapping) else summary.get("device_check")  # audio's earlier key
    return dev if isinstance(dev, Mapping) else None


def _headline(summary: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The number a run is judged by: audio's validation ESR and verdict, or the test split's headline metric
    (and what the int8 export scored on it)."""
    rows: list[tuple[str, Any]] = []
    val = summary.get("validation")
    if isinstance(val, Mapping) and val.get("esr") is not None:
        rows += [("validation ESR", val["esr"]), ("verdict", val.get("verdict"))]
    test = summary.get("test")
    if isinstance(test, Mapping) and test.get("headline") in test:
        rows.append((f"test {test['headline']}", test[test["headline"]]))
    q = summary.get("quantization")
    if isinstance(q, Mapping) and q.get("int8_metric") is not None:
        rows.append((f"int8 {q.get('metric', 'metric')} ({q.get('int8_artifact', 'int8')})", q["int8_metric"]))
    return rows


def _head(summary: Mapping[str, Any]) -> list[str]:
    ver = summary.get("verification") or {}
    dev = _device_of(summary)
    fit = None if dev is None else \
        f"{'fits' if dev.get('fits') else 'DOES NOT FIT'} {dev.get('device')}" + \
        ("" if dev.get("fits") else f" ({len(dev.get('violations') or [])} violation(s))")
    state = summary.get("state")
    rows = [*_headline(summary), ("verification", ver.get("status")), ("device", fit),
            ("state", _STATES.get(state, state)), ("error", summary.get("error")),
            ("config", summary.get("config")), ("modality", summary.get("modality")),
            ("task", summary.get("task_type")), ("wall time (s)", summary.get("wall_time_s"))]
    out = [_kv_table(rows), ""]
    if ver.get("status") == "FAIL":  # first thing a reader sees: which export disagrees with its reference
        out += ["**VERIFICATION FAILED**: these exports disagree with their reference beyond "
                "`compilation.tolerances`:", ""] + [f"- {f}" for f in ver.get("failures", [])] + [""]
    if dev is not None and not dev.get("fits"):
        out += [f"**DOES NOT FIT {dev.get('device')}**:", ""] + [f"- {v}" for v in dev.get("violations", [])] + [""]
    return out


def render_report(summary: Mapping[str, Any], run_dir: str | Path | None = None,
                  blocks: Mapping[str, str] | None = None) -> str:
    blocks = dict(blocks or {})
    run_dir = Path(run_dir) if run_dir is not None else None
    title = Path(summary.get("run_dir") or run_dir or "run").name
    out = [f"# Run report: {title}", "", *_head(summary)]

    def section(name: str, default: str | None) -> None:
        body = blocks.pop(name, None) or default
        if body:
            out.extend([f"## {name}", "", body.strip(), ""])

    def table(key: str) -> str | None:
        value = summary.get(key)
        return _kv_table(list(value.items())) if isinstance(value, Mapping) else None

    section("Dataset", _dataset(summary["dataset"]) if summary.get("dataset") else None)
    fe = summary.get("feature_extraction")
    section("Feature extraction", _feature_extraction(fe) if isinstance(fe, Mapping) else None)
    section("Model", _model(summary["model"]) if summary.get("model") else None)
    section("Model summary", None)  # the spec's layer table, when the modality has one
    section("Training", table("training"))
    section("Test", table("test"))
    val = summary.get("validation")
    section("Validation", _validation(val) if isinstance(val, Mapping) else None)
    nam = summary.get("nam")
    section("NAM file", _nam(nam) if isinstance(nam, Mapping) else None)
    listening = _listening_files(summary, run_dir)
    section("Listening files", _listening(listening))
    section("ONNX parity", table("onnx"))
    section("Quantization", table("quantization"))
    comp = summary.get("compilation")
    section("Verification", _compilation(comp) if isinstance(comp, Mapping) else None)
    dev = _device_of(summary)
    section("Device", _device(dev) if dev is not None else None)
    for name, body in list(blocks.items()):  # anything else a modality wants in its report
        section(name, body)
    section("Plots", _plots(run_dir, summary, listening))
    if run_dir is not None:
        section("Artifacts", _artifacts(run_dir, _own_files(summary)))
    elif summary.get("artifacts"):
        section("Artifacts", "\n".join(f"- {f}" for f in summary["artifacts"]))
    return "\n".join(out).rstrip() + "\n"


def write_report(run_dir: str | Path, summary: Mapping[str, Any], blocks: Mapping[str, str] | None = None,
                 name: str = "report.md") -> Path:
    """``name`` (report.md, or report_resumed[_N].md for a resumed run) and the html page beside it, same stem."""
    run_dir = Path(run_dir)
    text = render_report({**summary, "report": name}, run_dir, blocks)
    path = run_dir / name
    path.write_text(text)
    title = f"Run report: {Path(summary.get('run_dir') or run_dir).name}"
    path.with_suffix(".html").write_text(render_html(text, run_dir, title=title))
    return path
