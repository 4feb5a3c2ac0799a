"""``training.quantization`` in an audio run: the optional QAT step of the compile stage and the quantization
section of the summary.

Audio's int8 / int16x8 exports are always post-training quantized (onnxruntime static QDQ, the TFLite converter),
calibrated on training audio. ``none`` and ``ptq`` therefore mean the same thing here, as in a time-series run:
the exports quantize the trained float model. ``qat`` first fine-tunes that model for ``training.qat_epochs`` epochs
under int8 fake-quant (:func:`tinyverse.quantization.qat_finetune`, the amp-modelling task's own loss, a tenth of
the learning rate), removes the fake-quant and hands the float weights trained under int8 noise to the same
exporters.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("modelmaker")

# Rows to read the deployed int8 ESR from, best first (the MCU interpreter, then the desktop runtimes).
INT8_ROWS = ("TFLite int8 (TFLM)", "TFLite int8 (LiteRT)", "ONNX int8")


def validation_esr(model, Xv: np.ndarray, target: np.ndarray) -> float:
    """The float model's ESR on the validation block (the test stage's figure)."""
    import torch

    from tinyverse.audio import esr

    with torch.no_grad():
        pred = model(torch.as_tensor(Xv)).numpy()[0]
    return esr(target, pred)


def qat_stage(cfg, model, data, rf: int, run_dir: Path, Xv: np.ndarray, Yv: np.ndarray) -> dict[str, Any]:
    """Fine-tune ``model`` in place under int8 fake-quant on the training windows; writes ``model_qat.pt``.

    Returns the QAT facts for the summary: epochs, learning rate, the float validation ESR after QAT and the
    per-epoch validation ESR measured under the fake-quant."""
    import torch

    from tinyverse.quantization import qat_finetune
    from tinyverse.registry import TASKS

    t = cfg.training
    X, Y = data.windows(rf)
    lr = t.learning_rate * 0.1  # as time series: a fine-tuning step from the trained weights, not a new training
    log.info("QAT: %d epoch(s) of int8 fake-quant fine-tuning (weights per channel; activations and input per "
             "tensor, min/max ranges as the exporters calibrate them) on %d windows, learning rate %.2g",
             t.qat_epochs, len(X), lr)
    # The task only supplies its training / validation steps (loss, burn-in, ESR); qat_finetune runs the loop.
    task = TASKS.get(cfg.common.task_type)(model=model, learning_rate=lr)
    qat_finetune(model, (X, Y), (Xv, Yv), epochs=t.qat_epochs, lr=lr, batch_size=t.batch_size,
                 seed=cfg.common.seed, task=task, quantize_input=True, observer="minmax")
    # A recurrent model streams from silence's steady state: settle it again for the new weights.
    model.prepare_for_inference()
    torch.save(model.state_dict(), run_dir / "model_qat.pt")
    after = validation_esr(model, Xv, Yv[0])
    return {"epochs": t.qat_epochs, "learning_rate": lr, "float_esr": after,
            "fake_quant_esr": [h["val_loss"] for h in model.qat_history]}


def quantization_summary(rows: list[dict[str, Any]], float_esr: float | None,
                         qat: dict[str, Any] | None = None) -> dict[str, Any]:
    """``summary["quantization"]`` as a time-series run writes it, with the validation ESR as the metric: the
    float model's, the deployed int8 export's (``int8_artifact``), their difference, and after QAT the QAT
    model's float ESR and what quantizing it cost."""
    row = next((r for name in INT8_ROWS for r in rows if r["artifact"] == name and "error" not in r), None)
    int8 = None if row is None else row["esr_vs_target"]
    out: dict[str, Any] = {"mode": "qat" if qat is not None else "ptq", "metric": "esr", "float_metric": float_esr,
                           "int8_metric": int8, "int8_artifact": None if row is None else row["artifact"],
                           "drop_points": None}
    if float_esr is not None and int8 is not None:
        out["delta"] = int8 - float_esr
    if qat is not None:
        out.update(qat_epochs=qat["epochs"], qat_learning_rate=qat["learning_rate"],
                   qat_fake_quant_esr=qat["fake_quant_esr"], qat_float_metric=qat["float_esr"])
        if int8 is not None:  # the int8 export's own float twin: what quantizing after QAT itself cost
            out["qat_float_delta"] = int8 - qat["float_esr"]
    return out
