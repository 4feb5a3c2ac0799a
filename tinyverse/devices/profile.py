"""Device profiles: what a target runs natively, the per-op rules, and its budgets — as data (YAML)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator


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
