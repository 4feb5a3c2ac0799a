"""Pass rules of the verification table: every exported artifact against its reference, with a stated tolerance.

Each row of a verification table (time series: whole test split; audio: streaming render) is judged by the rule of
its artifact kind:

- ``reference``: the PyTorch float model every other row is compared with (always PASS);
- ``float``: a float export must compute the same function: max |y − ref| ≤ ``float_rel_diff`` · max(1, max |ref|)
  (audio: ESR vs PyTorch ≤ ``audio_float_max_esr``);
- ``int8`` (and ``int16``, int16x8 activations): quantization may cost a little, within bounds: for classifiers the
  argmax agreement with the float model ≥ ``int8_min_agreement`` and the metric drop ≤ ``int8_max_drop``; for value
  outputs rms(y − ref) / rms(ref) ≤ ``int8_max_rel_rms`` and the metric change within ``int8_max_drop`` (metrics
  where higher is better, absolute) or ``int8_max_rel_increase`` (lower is better, relative); audio: ESR vs PyTorch
  ≤ ``audio_int8_max_esr`` / ``audio_int16_max_esr``.

On top of these, a quantized artifact run by an optimised runtime is checked against the *same file* computed by a
reference path, because fused int8 kernels differ between CPUs: onnxruntime's default session (fused QLinear
kernels, whose AVX2 u8·s8 pair sums saturate in int16 on CPUs without VNNI) against the same file with
``ORT_DISABLE_ALL`` (DequantizeLinear → float op → QuantizeLinear), and TFLM / the C array against LiteRT's reference
kernels. They must agree to ``runtime_max_steps`` output quantization steps: each int8 layer may round its
requantization differently (TFLM and LiteRT differ by 1–2 steps on a deep autoencoder), while a saturating kernel is
off by tens of steps (68 on the default classifier under QEMU's Haswell). An int16x8 file's steps are 256x finer:
its bound is ``runtime_max_steps_int16``. A row that failed to export or run is a
FAIL too: nothing the user asked for is silently missing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

PASS, FAIL = "PASS", "FAIL"
KINDS = ("reference", "float", "int8", "int16")


class Tolerances(BaseModel):
    """The bounds of the pass rules (``compilation.tolerances`` in a config)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    float_rel_diff: float = Field(1e-5, gt=0)
    int8_min_agreement: float = Field(0.90, ge=0, le=1)
    int8_max_drop: float = Field(0.03, ge=0)
    int8_max_rel_increase: float = Field(1.0, ge=0)
    int8_max_rel_rms: float = Field(0.15, gt=0)
    runtime_max_steps: float = Field(4.0, ge=0)
    # int16 output steps are 256x finer than int8's: 64 is a quarter of an int8 step (TFLM and LiteRT round int16
    # FiLM / tanh layers differently by up to ~25 steps on a trained knob WaveNet); a saturating kernel is thousands.
    runtime_max_steps_int16: float = Field(64.0, ge=0)
    audio_float_max_esr: float = Field(1e-6, gt=0)
    audio_int8_max_esr: float = Field(0.1, gt=0)
    audio_int16_max_esr: float = Field(0.01, gt=0)


FLOAT_SLACK = 1e-9  # far below any tolerance's resolution, far above float64 rounding of metric differences


@dataclass
class Check:
    """One comparison of a row: ``value`` must be ``op`` ``bound`` (``<=`` or ``>=``)."""

    name: str
    value: float | None
    bound: float
    op: str = "<="

    @property
    def symbol(self) -> str:
        return "≤" if self.op == "<=" else "≥"

    @property
    def passed(self) -> bool:
        if self.value is None or not np.isfinite(self.value):
            return False
        # A value that equals its bound up to float rounding passes: 3 of 100 test series flipped is a drop of
        # 0.87 - 0.84 = 0.030000000000000027, which is the bound 0.03, not over it.
        slack = FLOAT_SLACK * max(1.0, abs(self.bound))
        return self.value <= self.bound + slack if self.op == "<=" else self.value >= self.bound - slack

    def failure(self) -> str:
        """A failed check as a reader takes it in: "accuracy drop 0.04 (must be ≤ 0.03)", not "0.04 ≤ 0.03"."""
        return f"{self.name} {self.shown} (must be {self.symbol} {self.bound:.3g})"

    @property
    def shown(self) -> str:
        return "n/a" if self.value is None else f"{self.value:.3g}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "bound": self.bound, "op": self.op, "pass": self.passed}


@dataclass
class Verdict:
    """The checks of one row and its status; ``failures`` names what broke."""

    checks: list[Check] = field(default_factory=list)
    error: str | None = None

    @property
    def status(self) -> str:
        return PASS if self.error is None and all(c.passed for c in self.checks) else FAIL

    @property
    def failures(self) -> list[str]:
        out = [f"failed to export or run: {self.error}"] if self.error else []
        return out + [c.failure() for c in self.checks if not c.passed]

    @property
    def rule(self) -> str:
        return "; ".join(f"{c.name} {c.symbol} {c.bound:.3g}" for c in self.checks) or "-"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "rule": self.rule, "checks": [c.to_dict() for c in self.checks],
                "failures": self.failures}


def rel_rms(y: np.ndarray, ref: np.ndarray) -> float:
    """rms(y − ref) / rms(ref): the value-output analogue of ESR (as a square root)."""
    ref = np.asarray(ref, np.float64)
    den = float(np.sqrt(np.mean(ref ** 2))) or 1.0
    return float(np.sqrt(np.mean((np.asarray(y, np.float64).reshape(ref.shape) - ref) ** 2)) / den)


def judge_outputs(kind: str, y: np.ndarray | None, ref: np.ndarray, tol: Tolerances, *, metric: str = "metric",
                  value: float | None = None, ref_value: float | None = None, higher_is_better: bool = True,
                  classifier: bool = False, error: str | None = None) -> Verdict:
    """The verdict of a whole-input row: ``y`` (outputs on the test split) against the float reference ``ref``."""
    if kind not in KINDS:
        raise ValueError(f"unknown artifact kind {kind!r}; use one of {KINDS}")
    verdict = Verdict(error=error)
    if error is not None or kind == "reference" or y is None:
        return verdict
    y = np.asarray(y, np.float32).reshape(ref.shape)
    if kind == "float":
        scale = max(1.0, float(np.max(np.abs(ref))))
        verdict.checks.append(Check("max |diff| / max(1, |ref|)", float(np.max(np.abs(y - ref))) / scale,
                                    tol.float_rel_diff))
        return verdict
    if classifier:
        verdict.checks.append(Check("argmax agreement", float(np.mean(y.argmax(1) == ref.argmax(1))),
                                    tol.int8_min_agreement, ">="))
    else:
        verdict.checks.append(Check("rms diff / rms ref", rel_rms(y, ref), tol.int8_max_rel_rms))
    if value is not None and ref_value is not None:
        if higher_is_better:
            verdict.checks.append(Check(f"{metric} drop", ref_value - value, tol.int8_max_drop))
        else:
            verdict.checks.append(Check(f"{metric} increase (relative)",
                                        (value - ref_value) / max(abs(ref_value), 1e-12), tol.int8_max_rel_increase))
    return verdict


def runtime_check(name: str, y: np.ndarray, y_ref: np.ndarray, step: float | None, tol: Tolerances,
                  kind: str | None = None) -> Check:
    """An optimised runtime against the reference computation of the same quantized file, in output steps.

    ``step`` is the output quantization step (scale); without one, the difference is measured relative to the
    reference's range (one step of 256 over it). ``kind`` "int16" (an int16x8 file) takes
    ``runtime_max_steps_int16``, every other kind ``runtime_max_steps``.
    """
    y_ref = np.asarray(y_ref, np.float32)
    diff = float(np.max(np.abs(np.asarray(y, np.float32).reshape(y_ref.shape) - y_ref))) if y_ref.size else 0.0
    if not step:
        step = max(float(np.ptp(y_ref)) / 255.0, 1e-12) if y_ref.size else 1.0
    # rounded: a dequantized one-step difference is 1 ± float noise, and must pass a bound of 1
    bound = tol.runtime_max_steps_int16 if kind == "int16" else tol.runtime_max_steps
    return Check(f"{name} (output steps)", round(diff / step, 3), bound)


def audio_esr_check(kind: str, esr_vs_torch: float | None, tol: Tolerances) -> Check | None:
    """The bound on a streaming row's ESR vs the PyTorch render, by artifact kind (None for the reference)."""
    bound = {"float": tol.audio_float_max_esr, "int8": tol.audio_int8_max_esr,
             "int16": tol.audio_int16_max_esr}.get(kind)
    return None if bound is None else Check("ESR vs PyTorch", esr_vs_torch, bound)


def failed_rows(rows: list[dict[str, Any]]) -> list[str]:
    """``artifact: what broke`` for every FAIL row of a table (rows as dicts with ``artifact`` and ``verdict``)."""
    out = []
    for r in rows:
        v = r.get("verdict") or {}
        if v.get("status") == FAIL:
            out.append(f"{r['artifact']}: {'; '.join(v.get('failures', [])) or 'failed'}")
    return out


__all__ = ["Tolerances", "Check", "Verdict", "judge_outputs", "runtime_check", "audio_esr_check", "rel_rms",
           "failed_rows", "PASS", "FAIL", "KINDS"]
