"""Test-split evaluation of a task kind: the metrics, the headline metric the verification table repeats per
exported artifact, and what the export needs to carry (e.g. an anomaly threshold).

Each task kind (a ``TASKS`` entry) implements ``evaluate`` with the functions of its module here
(``classification``, and the modules of the other task kinds), so the pipeline never branches on the task name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

MetricFn = Callable[[np.ndarray], float]


@dataclass
class Evaluation:
    """What a task reports about a model's outputs on the test split.

    metrics: JSON-able test metrics (``summary.json["test"]``); ``headline`` names the one the verification
    table recomputes for every artifact with ``metric_fn(outputs)``; ``state`` is what the deployed model needs
    besides its weights (e.g. ``{"threshold": 0.12}``), written to the summary and the C header.
    """

    metrics: dict[str, float]
    headline: str
    higher_is_better: bool = True
    metric_fn: MetricFn | None = None
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float:
        return float(self.metrics[self.headline])

    def to_dict(self) -> dict[str, Any]:
        return {**self.metrics, "headline": self.headline, **({"state": self.state} if self.state else {})}


__all__ = ["Evaluation", "MetricFn"]
