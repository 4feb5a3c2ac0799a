"""Device profiles: what a target runs natively, the per-op rules, and its budgets — as data (YAML)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ProfileError(ValueError):
    """A device profile file that cannot be loaded. ``str()`` is one line naming the file and the key."""


class FieldRule(BaseModel):
    """A constraint on one attribute of an op (in_channels, kernel_h, stride, ...). Unset parts are not checked."""

    model_config = ConfigDict(extra="forbid")
    equals: Any = None
    multiple_of: int | None = None
    min: float | None = None
    max: float | None = None
    one_of: list[Any] | None = None
    why: str | None = None  # appended to the violation line (e.g. the source of the rule)


class Reclassify(BaseModel):
    """Check an op as another class when a condition fails, e.g. a first conv on a multi-channel input is a
    GCONV on TI's NPU, not an FCONV."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str
    to: str
    unless: dict[str, FieldRule] = {}
    why: str = ""

    @model_validator(mode="before")
    @classmethod
    def _alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "from" in data:
            data = dict(data)
            data["from_"] = data.pop("from")
        return data


class OpRate(BaseModel):
    """How fast one op class runs on an engine of the device (see :class:`LatencyModel`), with where the figure
    comes from. ``macs_per_cycle`` needs the model's ``clock_hz``; ``macs_per_second`` does not (a DSP whose clock
    and IPC are not published). For ops without multiplies (pools, Add, ReLU) the MACs are the values the spec
    counts for them. ``.inf`` makes an op free (fused into the op before it)."""

    model_config = ConfigDict(extra="forbid")
    macs_per_cycle: float | None = Field(None, gt=0)
    macs_per_second: float | None = Field(None, gt=0)
    overhead_cycles: float = Field(0.0, ge=0)  # fixed cost per op (setup, requantisation, the op's last block)
    overhead_cycles_per_channel: float = Field(0.0, ge=0)  # fixed cost per output channel of the op
    source: str  # document, table and version the figure was read or derived from

    @model_validator(mode="after")
    def _one_rate(self) -> "OpRate":
        if (self.macs_per_cycle is None) == (self.macs_per_second is None):
            raise ValueError("give exactly one of macs_per_cycle and macs_per_second")
        return self


class LatencyModel(BaseModel):
    """A device's cost model: the time of an op is ``overhead_cycles / clock + MACs / rate`` on the engine it is placed
    on (``native``: the accelerator, or a plain MCU's runtime kernels, or a pedal's DSP; ``cpu``: ops an NPU leaves to
    the host CPU). Keys are op classes; ``"*"`` covers the classes not listed. Estimates are ms per inference at
    ``clock_hz`` (per block of ``block_samples`` for a streaming audio model, whose real-time deadline is the block's
    duration)."""

    model_config = ConfigDict(extra="forbid")
    clock_hz: float | None = Field(None, gt=0)
    clock_source: str = ""
    cpu_clock_hz: float | None = Field(None, gt=0)  # the host CPU, when it is clocked apart from the accelerator
    native: dict[str, OpRate]
    cpu: dict[str, OpRate] = {}
    budget_ms: float | None = Field(None, gt=0)  # an inference over this fails the device check
    block_samples: int = Field(64, ge=1)  # streaming audio: samples per processing block
    notes: list[str] = []

    @model_validator(mode="after")
    def _clocks(self) -> "LatencyModel":
        for engine, rates, clock in (("native", self.native, self.clock_hz),
                                     ("cpu", self.cpu, self.cpu_clock_hz or self.clock_hz)):
            cyc = [k for k, r in rates.items()
                   if r.macs_per_cycle is not None or r.overhead_cycles or r.overhead_cycles_per_channel]
            if cyc and clock is None:
                raise ValueError(f"{engine}.{cyc[0]} counts cycles: set clock_hz")
        return self


class DeviceProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    kind: Literal["npu_mcu", "mcu", "npu", "pedal"]
    #: op classes the accelerator (or, for a plain MCU, the runtime) executes
    native_ops: list[str]
    #: op classes that run on the host CPU instead (fine, but slower); anything else is unsupported
    cpu_ops: list[str] = []
    #: op classes that cost nothing at run time (a flatten is a view, dropout is gone at inference)
    free_ops: list[str] = ["RESHAPE", "IDENTITY"]
    rules: dict[str, dict[str, FieldRule]] = {}
    reclassify: list[Reclassify] = []
    flash_bytes: int | None = None
    ram_bytes: int | None = None
    flash_overhead_bytes: int = 0  # runtime/code that shares the flash budget
    ram_overhead_bytes: int = 0  # runtime state that shares the RAM budget
    max_macs_per_inference: int | None = None
    sample_rate: int | list[int] | None = None  # audio targets
    max_macs_per_sample: int | None = None
    numeric_formats: list[str] = ["int8"]
    export_formats: list[str] = ["tflite_int8"]
    weight_bits: int = 8
    #: TFLite builtin ops the target's runtime registers (checked on the converted int8 file)
    tflite_ops: list[str] | None = None
    #: op class -> the TFLite builtin ops the Keras twin emits for it (spec-level check before conversion)
    op_class_tflite: dict[str, list[str]] = {}
    #: an external compiler to run on the int8 file (e.g. vela for Ethos-U)
    compiler: dict[str, Any] | None = None
    #: cycles (or MACs/s) per op class, with sources: estimated latency, and an optional latency budget
    latency: LatencyModel | None = None
    source: str = "builtin"

    @property
    def accelerator(self) -> str:
        return {"npu_mcu": "NPU", "npu": "NPU", "mcu": "runtime", "pedal": "DSP"}[self.kind]


def load_device_profile(path: str | Path, source: str | None = None) -> DeviceProfile:
    """Load and validate a profile YAML file; every error is one line naming the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ProfileError(f"{path}: device profile file not found") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ProfileError(f"{path}: not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a device profile must be a mapping (name, kind, native_ops, ...)")
    data.setdefault("source", source or str(path))
    try:
        return DeviceProfile(**data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ProfileError(f"{path}: {key}: {first['msg']}") from None
