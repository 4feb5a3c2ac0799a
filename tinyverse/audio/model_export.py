"""Export a model you already have — a ``.nam`` file, a combined rig — without a capture: every streaming artifact
(ONNX float / int8, TFLite float / int8 / int16x8, the int8 C array), each rendered block by block and judged against
the model itself.

A run (``modelmaker run``) verifies its exports on the capture's validation block. A rig built with ``modelmaker
combine`` has no capture: here the reference is the model's own output for a standard-style input
(:func:`tinyverse.audio.capture.standard_input`, the layout of NAM's capture signal): its validation block is what every
artifact renders (with the receptive field's context before it), its training region calibrates the int8 files.
"ESR vs target" then equals the ESR against the model's whole-input render. The exporters, rows and pass rules are
the audio compile stage's (:func:`tinyverse.audio.verify.export_and_verify`); a rig with knob stages is rendered at
every knob's min, default and max (:func:`tinyverse.audio.verify.knob_stream_rows`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from torch import nn

from tinyverse.audio.flatten import chain_capture
from tinyverse.audio.verify import DEFAULT_EXPORTERS, export_and_verify, format_table, knob_stream_rows, stream_rows

__all__ = ["MODEL_EXPORTERS", "export_model"]

# What a model file is exported to: the audio defaults plus the int8 C array (a pedal / MCU build takes it).
MODEL_EXPORTERS = (*DEFAULT_EXPORTERS, "c_header")


def export_model(model: nn.Module, sample_rate: int, out_dir: str | Path, *, block_size: int = 512,
                 seconds: float = 15.0, exporters: Sequence[str] | None = None, num_calib: int = 64,
                 on_row: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Export ``model`` into ``out_dir`` and verify every artifact on ``seconds`` of standard-style input rendered
    through the model. ``exporters``: ``EXPORTERS`` names (default :data:`MODEL_EXPORTERS` less what the model cannot
    have, ``model.unavailable_exports()``: those get a "not available" line with the reason). Writes
    ``compile_report.md`` and ``compile_report.json``; returns :func:`export_and_verify`'s result plus
    ``not_available`` (row label → why) and ``table`` (Markdown)."""
    out_dir = Path(out_dir)
    model = model.float().eval()
    names = list(MODEL_EXPORTERS if exporters is None else exporters)
    missing = model.unavailable_exports() if exporters is None else {}  # type: ignore[operator]
    not_available = {v.label: missing[e] for e, v in stream_rows(names) if e in missing}
    names = [e for e in names if e not in missing]
    data = chain_capture(model, sample_rate, seconds)
    rf = int(model.receptive_field)  # type: ignore[arg-type]
    Xv, Yv = data.validation(rf)
    t0, t1 = data.layout.train
    out_dir.mkdir(parents=True, exist_ok=True)
    knobs = getattr(model, "knobs", None)
    if names and knobs is not None:  # a rig with knob stages: every artifact at every knob's min, default and max
        # (knob_stream_rows writes the knob C array itself, from the int8 TFLite file)
        result = knob_stream_rows(model, knobs, None, Xv[0], out_dir, [e for e in names if e != "c_header"],
                                  calib_audio=data.x[t0:t1], sample_rate=sample_rate, block_size=block_size,
                                  num_calib=num_calib, c_header="c_header" in names, on_row=on_row)
    elif names:
        result = export_and_verify(model, out_dir, Xv[0], Yv[0], data.x[t0:t1], sample_rate, block_size, names,
                                   num_calib=num_calib, on_row=on_row)
    else:
        result = {"block_size": block_size, "validation_seconds": round(Yv.size / sample_rate, 3), "rows": [],
                  "exports": {}}
    table = format_table(result) + "".join(f"\n| {label} | – | not available | – | – | – | – | – | {why} | |"
                                           for label, why in not_available.items())
    (out_dir / "compile_report.md").write_text(
        f"# Streaming exports: {result['validation_seconds']} s of standard-style input in blocks of {block_size}\n\n"
        "Reference: the model's own whole-input render (ESR vs PyTorch and vs target are against it). RTF: "
        "processing seconds per second of audio on this CPU, one thread.\n\n" + table + "\n")
    result = {**result, "not_available": not_available, "table": table}
    (out_dir / "compile_report.json").write_text(json.dumps({k: v for k, v in result.items() if k != "table"},
                                                            indent=1, default=str))
    return result
