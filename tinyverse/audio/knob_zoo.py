"""Knob-conditioned entries of ``MODEL_REGISTRY`` (task ``knob_modelling``): a size ladder per conditioning.

``NAM_CatLSTM_*``, ``NAM_CatWaveNet_*``, ``NAM_HyperConvNet_*``, ``NAM_FiLMWaveNet_*`` with ``nano``, ``feather``
and ``standard`` sizes whose parameter counts roughly match across the four (for the default two knobs: nano
≈ 0.85–1.25k, feather ≈ 2.9–3.8k, standard ≈ 13–15.5k), so a bench compares conditionings, not sizes. The WaveNets
keep the A1 preset's audio path (receptive field 4,093); the LSTM's hidden size and the HyperConvNet's channels,
blocks and hypernet width are chosen to meet the count. Every entry takes ``knobs`` (the dataset's knob declaration,
``dataset.knobs``: the model carries it) or ``num_knobs``; every other argument overrides the size.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

from tinyverse.audio.nam.knob_models import NAMCatLSTM, NAMCatWaveNet, NAMFiLMWaveNet, NAMHyperConvNet
from tinyverse.registry import MODEL_REGISTRY

__all__ = ["KNOB_LADDER", "KNOB_MODELS"]

_POW2_10 = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]

# size → constructor arguments, per conditioning.
KNOB_LADDER: dict[str, dict[str, dict[str, Any]]] = {
    "CatLSTM": {"nano": {"hidden_size": 12}, "feather": {"hidden_size": 24}, "standard": {"hidden_size": 56}},
    "CatWaveNet": {"nano": {"preset": "nano"}, "feather": {"preset": "feather"},
                   "standard": {"preset": "standard"}},
    "FiLMWaveNet": {size: {"preset": size, "embedding_size": 2, "hidden_size": 4}
                    for size in ("nano", "feather", "standard")},
    "HyperConvNet": {"nano": {"channels": 4, "dilations": _POW2_10, "hyper_units": 2},
                     "feather": {"channels": 6, "dilations": _POW2_10, "hyper_units": 3},
                     "standard": {"channels": 8, "dilations": _POW2_10 * 2, "hyper_units": 4}},
}
_CLASSES = {"CatLSTM": NAMCatLSTM, "CatWaveNet": NAMCatWaveNet, "FiLMWaveNet": NAMFiLMWaveNet,
            "HyperConvNet": NAMHyperConvNet}
KNOB_MODELS: list[str] = []


def _entry(arch: str, size: str) -> Callable[..., Any]:
    cls, defaults = _CLASSES[arch], KNOB_LADDER[arch][size]

    valid = sorted(set(inspect.signature(cls).parameters) - {"knobs", "num_knobs"})

    def build(knobs: dict[str, Any] | None = None, num_knobs: int | None = None, **overrides: Any):
        bad = sorted(set(overrides) - set(valid))
        if bad:
            raise ValueError(f"model_config.{bad[0]}: NAM_{arch}_{size} takes no argument {bad[0]!r} (valid: knobs, "
                             f"num_knobs, {', '.join(valid)})")
        if knobs is None and num_knobs is None:
            num_knobs = 2  # the default generated knob capture's gain and tone
        return cls(num_knobs=num_knobs, knobs=knobs, **{**defaults, **overrides})

    build.__name__ = f"NAM_{arch}_{size}"
    build.__doc__ = f"Knob-conditioned {arch}, size '{size}' ({cls.__doc__.splitlines()[0] if cls.__doc__ else ''})"
    build.__tinyverse_origin__ = cls  # type: ignore[attr-defined]
    return build


for _arch in KNOB_LADDER:
    for _size in KNOB_LADDER[_arch]:
        MODEL_REGISTRY.register(f"NAM_{_arch}_{_size}", _entry(_arch, _size), task="knob_modelling", modality="audio",
                                architecture=_arch, preset=_size, inputs=["audio", "params"])
        KNOB_MODELS.append(f"NAM_{_arch}_{_size}")
