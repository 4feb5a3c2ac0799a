"""The pass rules of the verification table, on hand-made outputs (tinyverse.verification)."""
from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from tinyverse.verification import FAIL, PASS, Tolerances, Verdict, judge_outputs, rel_rms, runtime_check

TOL = Tolerances()


def _logits(n=200, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 3)).astype(np.float32) * 3


def test_float_rows_must_match_to_a_relative_1e_5():
    ref = _logits()
    assert judge_outputs("float", ref + 1e-6, ref, TOL).status == PASS
    bad = judge_outputs("float", ref + 1e-3, ref, TOL)
    assert bad.status == FAIL and bad.failures[0].startswith("max |diff| / max(1, |ref|)")
    # the bound scales with the output's size: 1e-4 off on outputs of 100 is float noise
    assert judge_outputs("float", 100 * ref + 1e-4, 100 * ref, TOL).status == PASS


def test_int8_classifier_rule_is_agreement_and_drop():
    ref = _logits()
    close = ref + np.random.default_rng(1).normal(0, 0.01, ref.shape).astype(np.float32)
    ok = judge_outputs("int8", close, ref, TOL, metric="accuracy", value=0.90, ref_value=0.91, classifier=True)
    assert ok.status == PASS and [c.name for c in ok.checks] == ["argmax agreement", "accuracy drop"]
    flipped = ref.copy()
    flipped[:40] = -flipped[:40]  # 20 % of the samples change class
    bad = judge_outputs("int8", flipped, ref, TOL, metric="accuracy", value=0.78, ref_value=0.99, classifier=True)
    assert bad.status == FAIL and len(bad.failures) == 2


def test_a_drop_equal_to_the_bound_passes_despite_float_rounding():
    """3 of 100 test series flipped (0.87 -> 0.84) is a drop of exactly int8_max_drop (0.03), which float64 computes
    as 0.030000000000000027; one series more is over it."""
    ref = _logits(100)
    assert 0.87 - 0.84 > TOL.int8_max_drop  # the rounding the rule must see through
    at = judge_outputs("int8", ref, ref, TOL, metric="accuracy", value=0.84, ref_value=0.87, classifier=True)
    assert at.status == PASS
    over = judge_outputs("int8", ref, ref, TOL, metric="accuracy", value=0.83, ref_value=0.87, classifier=True)
    assert over.status == FAIL and over.failures == ["accuracy drop 0.04 (must be ≤ 0.03)"]


def test_int8_value_rule_follows_the_metric_direction():
    ref = np.random.default_rng(0).standard_normal((100, 12)).astype(np.float32)
    y = ref * 1.02
    # RMSE: lower is better, bounded relative to the float value
    assert judge_outputs("int8", y, ref, TOL, metric="rmse", value=1.1, ref_value=1.0,
                         higher_is_better=False).status == PASS
    worse = judge_outputs("int8", y, ref, TOL, metric="rmse", value=2.5, ref_value=1.0, higher_is_better=False)
    assert worse.status == FAIL and "rmse increase (relative)" in worse.failures[0]
    # AUC: higher is better, an absolute drop
    assert judge_outputs("int8", y, ref, TOL, metric="auc", value=0.90, ref_value=0.95).status == FAIL
    assert rel_rms(y, ref) == pytest.approx(0.02, rel=1e-3)
    assert judge_outputs("int8", ref * 1.5, ref, TOL).status == FAIL  # rms diff / rms ref 0.5 > 0.15


def test_runtime_check_counts_output_steps_and_errors_fail():
    ref = np.linspace(-1, 1, 50, dtype=np.float32)
    step = 2 / 255
    assert runtime_check("fused", ref + step, ref, step, TOL).passed  # one step: rounding, allowed
    assert runtime_check("fused", ref + 4 * step, ref, step, TOL).passed  # per-layer rounding of a deep net
    assert not runtime_check("fused", ref + 5 * step, ref, step, TOL).passed  # beyond: a kernel is wrong
    # an int16x8 file's steps are 256x finer: tens of steps are rounding, a saturating kernel is thousands
    step16 = 2 / 65535
    assert runtime_check("tflm", ref + 24 * step16, ref, step16, TOL, kind="int16").passed
    assert not runtime_check("tflm", ref + 24 * step16, ref, step16, TOL, kind="int8").passed
    assert not runtime_check("tflm", ref + 65 * step16, ref, step16, TOL, kind="int16").passed
    assert Verdict(error="converter exploded").status == FAIL
    assert judge_outputs("reference", None, ref, TOL).status == PASS
    with pytest.raises(ValueError):
        judge_outputs("int4", ref, ref, TOL)


def test_tolerances_are_strict_config():
    assert Tolerances.model_validate({"int8_max_drop": 0}).int8_max_drop == 0
    with pytest.raises(ValidationError):
        Tolerances.model_validate({"int8_max_dorp": 0.1})
    with pytest.raises(ValidationError):
        Tolerances.model_validate({"int8_min_agreement": 1.5})
