"""Knob parameters as typed data: continuous (min, max, default) or boolean, ordered by name, normalised to [0, 1].

A knob model sees its knobs as a vector ordered by knob name (NAM's parametric models sorted them the same way),
each value mapped to [0, 1] (``(v - min) / (max - min)``; a boolean is 0 or 1), so a model never depends on a
knob's units. :class:`KnobSet` validates settings (an unknown knob, a value outside [min, max], a missing knob
are one-line :class:`tinyverse.errors.DatasetError` naming where the setting came from), turns them into that
vector, and writes / reads the declaration every exported artifact carries in its metadata.

``controls`` / ``device_range`` are for generated captures only: the
:class:`tinyverse.audio.capture.DeviceSettings` field the knob drives and its values at the knob's min and max.
"""
from __future__ import annotations

from typing import Any, Literal, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from tinyverse.errors import DatasetError

__all__ = ["Knob", "KnobSet"]


class Knob(BaseModel):
    """One knob. ``default``: the value a render uses when the knob is not given (midpoint / off if unset)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["continuous", "bool"] = "continuous"
    min: float = 0.0
    max: float = 1.0
    default: float | None = None
    controls: str | None = None
    device_range: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _check(self) -> "Knob":
        if self.type == "bool":
            if (self.min, self.max) != (0.0, 1.0):
                raise ValueError("a bool knob has no min / max (it is 0 or 1)")
            if self.default not in (None, 0.0, 1.0):
                raise ValueError(f"a bool knob's default is 0 or 1, got {self.default:g}")
        elif not self.max > self.min:
            raise ValueError(f"max ({self.max:g}) must be greater than min ({self.min:g})")
        if self.default is not None and not self.min <= self.default <= self.max:
            raise ValueError(f"default {self.default:g} is outside [{self.min:g}, {self.max:g}]")
        if (self.controls is None) != (self.device_range is None):
            raise ValueError("give controls and device_range together (the device setting the knob drives and its "
                             "values at min and max)")
        return self

    @property
    def default_value(self) -> float:
        if self.default is not None:
            return float(self.default)
        return 0.0 if self.type == "bool" else (self.min + self.max) / 2

    def normalise(self, value: float) -> float:
        return float((value - self.min) / (self.max - self.min))

    def device_value(self, value: float) -> float:
        """The device setting for knob ``value`` (linear between ``device_range`` at min and max)."""
        lo, hi = self.device_range or (0.0, 1.0)
        return float(lo + (hi - lo) * self.normalise(value))

    def declaration(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type, "min": self.min, "max": self.max, "default": self.default_value}
        return d if self.type == "continuous" else {"type": "bool", "default": self.default_value}


class KnobSet:
    """The knobs of a model, ordered by name. ``where`` names the config key in errors (``dataset.knobs``)."""

    def __init__(self, knobs: Mapping[str, Knob | Mapping[str, Any]], where: str = "dataset.knobs") -> None:
        if not isinstance(knobs, Mapping) or not knobs:
            raise DatasetError(f"{where}: expected a mapping of knob names to {{min, max, default}} or {{type: bool}}, "
                               f"got {knobs!r}")
        self.where = where
        self.knobs: dict[str, Knob] = {}
        for name in sorted(knobs):
            spec = knobs[name]
            if not isinstance(name, str) or not name.isidentifier():
                raise DatasetError(f"{where}: knob names are identifiers (letters, digits, _), got {name!r}")
            try:
                self.knobs[name] = spec if isinstance(spec, Knob) else Knob(**(spec or {}))
            except (ValidationError, TypeError) as e:
                errs = e.errors() if isinstance(e, ValidationError) else [{"msg": str(e), "loc": ()}]
                loc = ".".join(str(p) for p in errs[0]["loc"])
                msg = errs[0]["msg"].removeprefix("Value error, ")
                raise DatasetError(f"{where}.{name}{'.' + loc if loc else ''}: {msg}") from None

    @property
    def names(self) -> list[str]:
        return list(self.knobs)

    def __len__(self) -> int:
        return len(self.knobs)

    def check(self, setting: Mapping[str, Any], where: str, fill_defaults: bool = False) -> dict[str, float]:
        """``setting`` validated (every knob present unless ``fill_defaults``, none unknown, each within range)."""
        unknown = [k for k in setting if k not in self.knobs]
        if unknown:
            raise DatasetError(f"{where}: unknown knob {unknown[0]!r}; the knobs are {', '.join(self.names)}")
        out: dict[str, float] = {}
        for name, knob in self.knobs.items():
            if name not in setting:
                if not fill_defaults:
                    raise DatasetError(f"{where}: knob {name!r} is missing (every setting gives all of "
                                       f"{', '.join(self.names)})")
                out[name] = knob.default_value
                continue
            value = setting[name]
            if isinstance(value, str):
                value = {"true": 1, "on": 1, "false": 0, "off": 0}.get(value.strip().lower(), value)
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise DatasetError(f"{where}: knob {name!r} = {value!r} is not a number") from None
            if knob.type == "bool" and v not in (0.0, 1.0):
                raise DatasetError(f"{where}: knob {name!r} is a switch (0 or 1), got {value!r}")
            if not (knob.min <= v <= knob.max) or not np.isfinite(v):
                raise DatasetError(f"{where}: knob {name!r} = {v:g} is outside [{knob.min:g}, {knob.max:g}]")
            out[name] = v
        return out

    def vector(self, setting: Mapping[str, Any], where: str, fill_defaults: bool = False) -> np.ndarray:
        """The normalised knob vector (float32, ordered by name) of a setting."""
        checked = self.check(setting, where, fill_defaults)
        return np.array([self.knobs[n].normalise(checked[n]) for n in self.names], np.float32)

    def declaration(self) -> dict[str, dict[str, Any]]:
        """What artifacts store in their metadata (``knobs``) and ``summary.json`` lists."""
        return {name: knob.declaration() for name, knob in self.knobs.items()}

    @classmethod
    def from_declaration(cls, d: Mapping[str, Mapping[str, Any]], where: str = "metadata.knobs") -> "KnobSet":
        return cls({k: dict(v) for k, v in d.items()}, where)

    # -- settings to capture ------------------------------------------------------------------------------
    def grid(self, points: int = 3) -> list[dict[str, float]]:
        """Every combination of ``points`` evenly spaced values per continuous knob (both values of a switch)."""
        axes = [[0.0, 1.0] if k.type == "bool" else list(np.linspace(k.min, k.max, points))
                for k in self.knobs.values()]
        mesh = np.meshgrid(*axes, indexing="ij")
        return [{n: float(m.flat[i]) for n, m in zip(self.names, mesh)} for i in range(mesh[0].size)]

    def latin_hypercube(self, n: int, seed: int = 0) -> list[dict[str, float]]:
        """``n`` settings from a Latin hypercube over the knobs (scipy's QMC sampler); switches are rounded."""
        from scipy.stats import qmc

        u = qmc.LatinHypercube(d=len(self), seed=seed).random(n)
        out = []
        for row in u:
            s = {}
            for name, knob, v in zip(self.names, self.knobs.values(), row):
                s[name] = float(round(v)) if knob.type == "bool" else float(knob.min + v * (knob.max - knob.min))
            out.append(s)
        return out

    def interior(self, settings: Sequence[Mapping[str, float]]) -> list[int]:
        """Indices of settings with no continuous knob at its min or max (candidates for unseen validation)."""
        return [i for i, s in enumerate(settings)
                if all(k.type == "bool" or k.min < s[n] < k.max for n, k in self.knobs.items())]
