"""The activations NeuralAmpModelerCore knows (``NAM/activations.*``), as objects read from and written to a .nam
config: a name (``"Tanh"``) or an object (``{"type": "LeakyReLU", "negative_slope": 0.01}``).

Each activation computes what Core computes, including its quirks: ``Hardtanh`` is always [-1, 1] (Core ignores
``min_val`` / ``max_val``, so other values are refused rather than silently computed differently), ``PReLU``'s
slopes are per channel, a bare ``"LeakyReLU"`` has slope 0.01. Unknown types and unknown keys are refused.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["CORE_ACTIVATION_TYPES", "LEGACY_ACTIVATION_NAMES", "NamActivation", "fast_tanh"]

# Every type Core 0.5.5 parses (ActivationConfig::from_json); "LeakyHardTanh" is Core's alternative spelling.
CORE_ACTIVATION_TYPES = ("Tanh", "Hardtanh", "Fasttanh", "ReLU", "LeakyReLU", "PReLU", "Sigmoid", "SiLU",
                         "Hardswish", "LeakyHardtanh", "Softsign")
# The names the 0.5.x-era engines know (a plain string in a version-0.5 file).
LEGACY_ACTIVATION_NAMES = ("Tanh", "Hardtanh", "Fasttanh", "ReLU", "Sigmoid")
_SPELLINGS = {"LeakyHardTanh": "LeakyHardtanh"}
# Parameters each type reads (Core ignores any other key; we refuse it). Hardtanh: the trainer writes its
# (fixed) bounds, which Core ignores.
_PARAMS: dict[str, tuple[str, ...]] = {
    "LeakyReLU": ("negative_slope",),
    "PReLU": ("negative_slope", "negative_slopes"),
    "LeakyHardtanh": ("min_val", "max_val", "min_slope", "max_slope"),
    "Hardtanh": ("min_val", "max_val"),
}
_LEAKY_HARDTANH_DEFAULTS = {"min_val": -1.0, "max_val": 1.0, "min_slope": 0.01, "max_slope": 0.01}


def fast_tanh(x: torch.Tensor) -> torch.Tensor:
    """The rational tanh approximation of Core's ``fast_tanh`` (used for "Fasttanh", and for "Tanh"
    when a plugin enables fast tanh)."""
    ax = x.abs()
    x2 = x * x
    num = x * (2.45550750702956 + 2.45550750702956 * ax + (0.893229853513558 + 0.821226666969744 * ax) * x2)
    den = 2.44506634652299 + (2.44506634652299 + x2) * (x + 0.814642734961073 * x * ax).abs()
    return num / den


def _number(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{what} must be a finite number, got {v!r}")
    return float(v)


@dataclass(frozen=True)
class NamActivation:
    """One Core activation. ``negative_slopes`` (PReLU) has one slope per channel; the other fields are the
    parameters of LeakyReLU / PReLU (``negative_slope``) and LeakyHardtanh (``min_val`` ... ``max_slope``)."""

    type: str
    negative_slope: float | None = None
    negative_slopes: tuple[float, ...] | None = None
    min_val: float | None = None
    max_val: float | None = None
    min_slope: float | None = None
    max_slope: float | None = None

    @classmethod
    def from_json(cls, obj: Any, where: str = "activation") -> NamActivation:
        """Parse a config value (a name or a ``{"type": ...}`` object); errors name ``where``."""
        if isinstance(obj, str):
            name = _SPELLINGS.get(obj, obj)
            if name not in CORE_ACTIVATION_TYPES:
                raise ValueError(f"{where}: unknown activation {obj!r} "
                                 f"(NAM Core knows: {', '.join(CORE_ACTIVATION_TYPES)})")
            return cls(name)
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: expected an activation name or object, got {obj!r}")
        if "type" not in obj:
            raise ValueError(f"{where}: activation object has no 'type'")
        name = _SPELLINGS.get(obj["type"], obj["type"])
        if name not in CORE_ACTIVATION_TYPES:
            raise ValueError(f"{where}: unknown activation type {obj['type']!r} "
                             f"(NAM Core knows: {', '.join(CORE_ACTIVATION_TYPES)})")
        allowed = _PARAMS.get(name, ())
        extra = sorted(set(obj) - {"type", *allowed})
        if extra:
            raise ValueError(f"{where}: unsupported key(s) {', '.join(extra)} for activation {name}"
                             + (f" (it reads: {', '.join(allowed)})" if allowed else " (it takes no parameters)"))
        if name == "Hardtanh":
            # Core's Hardtanh is fixed to [-1, 1]; a file asking for other bounds would render differently.
            for key, core in (("min_val", -1.0), ("max_val", 1.0)):
                if key in obj and _number(obj[key], f"{where}: Hardtanh {key}") != core:
                    raise ValueError(f"{where}: Hardtanh {key}={obj[key]} is not supported: NAM Core always "
                                     f"uses [-1, 1] (use LeakyHardtanh for other bounds)")
            return cls(name)
        if name == "LeakyReLU":
            return cls(name, negative_slope=_number(obj.get("negative_slope", 0.01), f"{where}: negative_slope"))
        if name == "PReLU":
            if "negative_slope" in obj:  # Core reads the single slope first
                return cls(name, negative_slope=_number(obj["negative_slope"], f"{where}: negative_slope"))
            if "negative_slopes" in obj:
                slopes = obj["negative_slopes"]
                if not isinstance(slopes, list) or not slopes:
                    raise ValueError(f"{where}: PReLU negative_slopes must be a non-empty list")
                return cls(name, negative_slopes=tuple(_number(s, f"{where}: negative_slopes") for s in slopes))
            return cls(name, negative_slope=0.01)
        if name == "LeakyHardtanh":
            vals = {k: _number(obj.get(k, d), f"{where}: {k}") for k, d in _LEAKY_HARDTANH_DEFAULTS.items()}
            return cls(name, **vals)
        return cls(name)

    def to_json(self) -> dict[str, Any]:
        """The object form NAM's trainer writes (``{"type": ..., params}``)."""
        out: dict[str, Any] = {"type": self.type}
        if self.type == "LeakyReLU":
            out["negative_slope"] = self.negative_slope if self.negative_slope is not None else 0.01
        elif self.type == "PReLU":
            if self.negative_slopes is not None:
                out["negative_slopes"] = list(self.negative_slopes)
            else:
                out["negative_slope"] = self.negative_slope if self.negative_slope is not None else 0.01
        elif self.type == "LeakyHardtanh":
            for k, d in _LEAKY_HARDTANH_DEFAULTS.items():
                v = getattr(self, k)
                out[k] = d if v is None else v
        return out

    @property
    def legacy_name(self) -> str | None:
        """The plain name a version-0.5 file uses for this activation, or None if it needs the newer layout."""
        return self.type if self.type in LEGACY_ACTIVATION_NAMES else None

    def check_channels(self, channels: int, where: str, per_channel_path: bool) -> None:
        """PReLU's slopes must match the channels it acts on. ``per_channel_path``: Core applies it channel by
        channel (gating / blending), where a single slope is out of bounds for more than one channel."""
        if self.type != "PReLU":
            return
        n = len(self.negative_slopes) if self.negative_slopes is not None else 1
        if n == channels or (n == 1 and (channels == 1 or not per_channel_path)):
            return
        raise ValueError(f"{where}: PReLU has {n} slope(s) for {channels} channels (give one per channel)")

    def __call__(self, x: torch.Tensor, fast_tanh_enabled: bool = False) -> torch.Tensor:
        """Apply to ``x`` (N, C, L) (channels on axis 1, for PReLU's per-channel slopes)."""
        t = self.type
        if t == "Tanh":
            return fast_tanh(x) if fast_tanh_enabled else torch.tanh(x)
        if t == "Fasttanh":
            return fast_tanh(x)
        if t == "Hardtanh":
            return F.hardtanh(x)
        if t == "ReLU":
            return F.relu(x)
        if t == "Sigmoid":
            return torch.sigmoid(x)
        if t == "SiLU":
            return x * torch.sigmoid(x)
        if t == "Hardswish":
            return F.hardswish(x)
        if t == "Softsign":
            return x / (1.0 + x.abs())
        if t == "LeakyReLU":
            return F.leaky_relu(x, 0.01 if self.negative_slope is None else self.negative_slope)
        if t == "PReLU":  # x > 0 ? x : slope · x, a slope per channel (axis 1)
            slopes = self.negative_slopes if self.negative_slopes is not None else \
                (0.01 if self.negative_slope is None else self.negative_slope,)
            return F.prelu(x, torch.tensor(slopes, dtype=x.dtype, device=x.device))
        if t == "LeakyHardtanh":
            lo, hi = self.min_val, self.max_val
            out = torch.where(x < lo, (x - lo) * self.min_slope + lo, x)
            return torch.where(x > hi, (x - hi) * self.max_slope + hi, out)
        raise ValueError(f"unknown activation {t!r}")
