"""The config schema: one pydantic model per YAML section, strict types, no unknown keys.

Names that refer to registries (task, device, dataset, transform, model, exporter) are checked against the
registry while validating, and keyword arguments meant for a registered object (dataset, transform, zoo
model) are checked against its signature, so a typo fails before any work starts.

Validators raise ``PydanticCustomError("config", ...)`` whose context carries ``key`` (extra key path below the
validated model), ``problem`` and ``hint``; ``modelmaker.config.load`` turns those into one-line ConfigErrors.
Paths (``model_config``, ``model_path``, ``extensions``) are resolved against ``base_dir`` from the
validation context (the config file's folder), then the current directory, and stored absolute.
"""
from __future__ import annotations

import difflib
import inspect
import os
import string
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_serializer,
                      model_validator)
from pydantic_core import PydanticCustomError

from tinyverse.registry import DATASETS, DEVICES, EXPORTERS, MODEL_REGISTRY, TASKS, TRANSFORMS, Registry, closest
from tinyverse.verification import Tolerances

from .arguments import argument_type_problem
from .errors import ConfigError
from .yaml_io import read_yaml

RUN_NAME_FIELDS = ("date", "time", "model_name", "dataset")
# Lightning 2.x precision values; the legacy spellings are normalised so a dump round-trips.
PRECISIONS = ("transformer-engine", "transformer-engine-float16", "16-true", "16-mixed", "bf16-true",
              "bf16-mixed", "32-true", "64-true")
_LEGACY_PRECISION = {64: "64-true", "64": "64-true", 32: "32-true", "32": "32-true", 16: "16-mixed",
                     "16": "16-mixed", "bf16": "bf16-mixed"}


# -- helpers shared by the validators ------------------------------------------------------------------------
def config_error(problem: str, key: str = "", hint: str = "") -> PydanticCustomError:
    """An error pydantic passes through untouched; ``key`` is appended to the location of the model."""
    return PydanticCustomError("config", "{problem}", {"problem": problem, "key": key, "hint": hint})


def _listing(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def suggestions(name: str, valid: list[str]) -> list[str]:
    """The closest names, keeping only those about as close as the best one (no far-fetched extras)."""
    hits = closest(name, valid)
    exact = [h for h in hits if h.lower() == name.lower()]
    if exact:  # only the case differs: that is the one
        return exact
    ratio = [difflib.SequenceMatcher(None, name.lower(), h.lower()).ratio() for h in hits]
    return [h for h, r in zip(hits, ratio) if r >= ratio[0] - 0.1]


def unknown_name_hint(name: str, valid: list[str]) -> str:
    hits = suggestions(name, valid)
    if hits:
        return f"did you mean {', '.join(repr(h) for h in hits)}? (valid: {_listing(valid)})"
    return f"valid: {_listing(valid)}" if valid else "none are defined"


def registered(registry: Registry, name: str, key: str) -> Any:
    """The object registered as ``name``, or a config error naming the closest registered names."""
    if name not in registry:
        problem = registry.unknown_message(name).partition("; ")[0]  # "unknown model 'x'"
        names = registry.names()
        hits = suggestions(str(name), names)
        if hits:
            hint = f"did you mean {', '.join(repr(h) for h in hits)}?"
        elif names:
            hint = f"registered: {_listing(names)}"
        else:
            hint = f"no {registry.kind}s are registered (is the module or extension that registers them loaded?)"
        raise config_error(problem, key, hint)
    return registry.get(name)


def keyword_parameters(obj: Any) -> tuple[dict[str, inspect.Parameter], bool]:
    """Keyword-passable parameters of a class's constructor or a factory, and whether it takes **kwargs."""
    try:
        sig = inspect.signature(obj)  # for a class this is __init__ without self
    except (TypeError, ValueError):  # C extensions without a signature: nothing to check against
        return {}, True
    params = {n: p for n, p in sig.parameters.items()
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    return params, takes_any


def check_arguments(obj: Any, args: dict[str, Any], what: str, key: str, *, require: bool) -> None:
    """Every key of ``args`` must be a parameter of ``obj``; with ``require``, every required one present."""
    params, takes_any = keyword_parameters(obj)
    valid = list(params)
    if not takes_any:
        for arg in args:
            if arg not in params:
                sub = f"{key}.{arg}" if key else str(arg)
                raise config_error(f"unknown argument of {what}", sub, unknown_name_hint(str(arg), valid))
    if require:
        missing = [n for n, p in params.items() if p.default is p.empty and n not in args]
        if missing:
            raise config_error(f"{what} needs {', '.join(repr(m) for m in missing)} (required, no default)", key,
                               f"add {', '.join(f'{m}: ...' for m in missing)} under this section")


def base_dir_of(info: ValidationInfo) -> Path | None:
    base = (info.context or {}).get("base_dir")
    return Path(base) if base else None


def resolve_path(value: str, base: Path | None) -> Path | None:
    """``value`` relative to the config file's folder, then to the current directory; None if neither exists."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path if path.exists() else None
    for folder in ([Path(base)] if base else []) + [Path.cwd()]:
        candidate = folder / path
        if candidate.exists():
            return candidate.resolve()
    return None


def not_found(value: str, base: Path | None, what: str) -> str:
    where = [str(base.resolve())] if base else []
    where.append(str(Path.cwd()))
    return f"{what} not found: {value!r} (looked in {', '.join(dict.fromkeys(where))})"


# -- base classes -------------------------------------------------------------------------------------------
class StrictModel(BaseModel):
    """No unknown keys (with a did-you-mean), no silent type coercion ("10" is not an int)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        # Done here rather than by extra="forbid" alone so the message can list the valid keys.
        if isinstance(data, dict):
            valid = list(cls.model_fields)
            for key in data:
                if key not in cls.model_fields:
                    raise config_error("unknown key", str(key), unknown_name_hint(str(key), valid))
        return data


class FlatParamsModel(BaseModel):
    """A section whose extra keys are keyword arguments of a registered object, kept flat in YAML.

    ``{name: ucr, ucr_name: GunPoint}`` validates to ``name='ucr', params={'ucr_name': 'GunPoint'}`` and
    dumps back flat. ``params=`` may also be given explicitly (from Python).
    """

    model_config = ConfigDict(extra="forbid", strict=True)
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _collect_params(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        own = {k: v for k, v in data.items() if k in cls.model_fields and k != "params"}
        loose = {k: v for k, v in data.items() if k not in cls.model_fields}
        explicit = data.get("params") or {}
        if not isinstance(explicit, dict):
            raise config_error(f"expected a mapping, got {type(explicit).__name__}", "params")
        both = sorted(set(explicit) & set(loose), key=str)
        if both:
            raise config_error("given both flat and under params", str(both[0]), "write it once")
        return {**own, "params": {**explicit, **loose}}

    @model_serializer(mode="wrap")
    def _flatten(self, handler: Any) -> Any:
        out = handler(self)
        if isinstance(out, dict):
            out.update(out.pop("params", None) or {})
        return out


# -- sections -----------------------------------------------------------------------------------------------
class CommonSection(StrictModel):
    task_type: str = "classification"
    modality: str = "timeseries"  # an AI_MODULES name (built-in or registered by an extension)
    target_device: str | None = None
    # ms per inference (audio: per processing block) the device's cost model may estimate; over it the device check
    # fails like a flash or RAM budget (it replaces the profile's own latency.budget_ms)
    latency_budget_ms: float | None = Field(None, gt=0)
    run_name: str = "{date}-{time}_{model_name}"
    projects_path: str = "./projects"
    seed: int = Field(42, ge=0, le=2**32 - 1)  # Lightning's seed_everything range
    verbose: bool = True

    @field_validator("task_type")
    @classmethod
    def _task(cls, v: str) -> str:
        registered(TASKS, v, "")
        return v

    @field_validator("modality")
    @classmethod
    def _modality(cls, v: str) -> str:
        from modelmaker.ai_modules import AI_MODULES

        registered(AI_MODULES, v, "")
        return v

    @field_validator("target_device")
    @classmethod
    def _device(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        if v.endswith((".yaml", ".yml")):  # a user's profile file (misc/devices/*.yaml style)
            from tinyverse.devices import ProfileError, load_device_profile

            path = resolve_path(v, base_dir_of(info))
            if path is None or not path.is_file():
                raise config_error(not_found(v, base_dir_of(info), "device profile"), "",
                                   "give a path relative to the config file or the current directory, "
                                   "or a registered name")
            try:
                load_device_profile(path)
            except ProfileError as exc:
                raise config_error(str(exc), "") from None
            return str(path)
        registered(DEVICES, v, "")
        return v

    @model_validator(mode="after")
    def _budget_needs_device(self) -> "CommonSection":
        if self.latency_budget_ms is not None and self.target_device is None:
            raise config_error("a latency budget needs a device to estimate against", "latency_budget_ms",
                               "set common.target_device (`modelmaker devices`), or remove the budget")
        return self

    @field_validator("run_name")
    @classmethod
    def _run_name(cls, v: str) -> str:
        allowed = ", ".join("{" + f + "}" for f in RUN_NAME_FIELDS)
        try:
            parts = list(string.Formatter().parse(v))
        except ValueError as exc:
            raise config_error(f"bad placeholder in {v!r}: {exc}", "", f"use {allowed}; write '{{{{' for a brace")
        for _, field, spec, conversion in parts:
            if field is None:
                continue
            if field not in RUN_NAME_FIELDS or spec or conversion:
                hint = unknown_name_hint(field, list(RUN_NAME_FIELDS)) if field not in RUN_NAME_FIELDS else ""
                raise config_error(f"unknown placeholder {{{field}{'!' + conversion if conversion else ''}"
                                   f"{':' + spec if spec else ''}}}", "", hint or f"use {allowed}")
        literal = "".join(text for text, *_ in parts)
        if not v.strip() or "/" in literal or "\\" in literal or v.strip() in (".", ".."):
            raise config_error(f"{v!r} is not a folder name", "", "use a non-empty name without '/' or '\\'")
        return v

    @field_validator("projects_path")
    @classmethod
    def _projects_path(cls, v: str) -> str:
        if not v.strip():
            raise config_error("must not be empty", "", "e.g. ./projects")
        return v


InputSize = Annotated[int, Field(ge=1)] | Literal["auto"] | None


class DatasetSection(FlatParamsModel):
    enable: bool = True
    name: str = "ucr"
    # The input the model reads (tinyverse.timeseries.data.input_fit): "auto" appends zero channels until the model
    # fits common.target_device and resamples series to a length the model supports (long ones shortened, short ones
    # stretched, variable-length sets edge-padded to their longest first); a number sets it; null keeps the data's own.
    # Opt-in for now ("auto" changed every shipped set's input; the tests that pin those shapes come first).
    input_channels: InputSize = None
    input_length: InputSize = None

    @field_validator("input_channels", "input_length", mode="before")
    @classmethod
    def _input_size(cls, v: Any) -> Any:
        # checked by hand: pydantic's union errors would name every member type
        if not (v is None or v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1)):
            raise config_error(f"expected 'auto', a positive count or null, got {v!r}")
        return v

    @model_validator(mode="after")
    def _check(self) -> "DatasetSection":
        factory = registered(DATASETS, self.name, "name")
        # A disabled dataset may leave out required arguments, but must not contain misspelled ones.
        check_arguments(factory, self.params, f"dataset '{self.name}'", "", require=self.enable)
        return self


class TransformSpec(FlatParamsModel):
    name: str

    @model_validator(mode="after")
    def _check(self) -> "TransformSpec":
        factory = registered(TRANSFORMS, self.name, "name")
        check_arguments(factory, self.params, f"transform '{self.name}'", "", require=True)
        return self


class FeatureExtractionSection(StrictModel):
    enable: bool = False
    transforms: list[TransformSpec] = Field(default_factory=list)
    preset: str | None = None

    @field_validator("preset")
    @classmethod
    def _preset(cls, v: str | None) -> str | None:
        if v is not None:
            registered(TRANSFORMS, v, "")
        return v


class AugmentationSection(StrictModel):
    """Training-batch augmentation (see tinyverse.training.augment.BatchAugment)."""

    time_shift: float = Field(0.0, ge=0, lt=1)
    scale: float = Field(0.0, ge=0, lt=1)
    noise: float = Field(0.0, ge=0, lt=1)
    time_warp: float = Field(0.0, ge=0, lt=1)
    magnitude_warp: float = Field(0.0, ge=0, lt=1)


class TeacherSection(StrictModel):
    """``training.teacher``: distil a float teacher into the student (tinyverse.training.distill). The teacher is
    trained first (``model_name``, e.g. TEACHER_FCN; ``epochs`` / ``learning_rate`` default to the student's) or
    loaded (``checkpoint``: a run's checkpoints/best.ckpt, its model_spec.yaml beside the folder)."""

    model_name: str | None = None
    model_args: dict[str, Any] = Field(default_factory=dict)
    checkpoint: str | None = None
    epochs: int | None = Field(None, ge=1)
    learning_rate: float | None = Field(None, gt=0)
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.5, ge=0, le=1)
    # also train the same student without the teacher (same seed and recipe) and report the three side by side
    compare_student_alone: bool = False

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> "TeacherSection":
        if (self.model_name is None) == (self.checkpoint is None):
            raise config_error("give either model_name (a teacher to train) or checkpoint (one to load), not "
                               f"{'both' if self.model_name else 'neither'}", "model_name" if self.model_name else "",
                               "e.g. teacher: {model_name: TEACHER_FCN} (`modelmaker models --include 'TEACHER_*'`)")
        if self.checkpoint is not None:
            for key in ("model_args", "epochs", "learning_rate"):
                if getattr(self, key):
                    raise config_error("used only when the teacher is trained (model_name), not loaded", key,
                                       "remove it, or train a teacher with model_name instead of checkpoint")
            path = resolve_path(self.checkpoint, base_dir_of(info))
            if path is None or not path.is_file():
                raise config_error(not_found(self.checkpoint, base_dir_of(info), "teacher checkpoint"), "checkpoint",
                                   "point it at a run's checkpoints/best.ckpt (e.g. <run>/teacher/checkpoints/"
                                   "best.ckpt of a distillation run)")
            self.checkpoint = str(path)
            return self
        factory = registered(MODEL_REGISTRY, self.model_name, "model_name")
        check_arguments(factory, self.model_args, f"model '{self.model_name}'", "model_args", require=False)
        wrong = argument_type_problem(factory, self.model_args)
        if wrong:
            raise config_error(wrong[1], f"model_args.{wrong[0]}", wrong[2])
        return self


class TrainingSection(StrictModel):
    enable: bool = True
    model_name: str | None = None
    # Resolved absolute path of a YAML of zoo-function arguments (provenance: its content is merged into
    # model_args while validating, so model_args alone says how the model is built).
    model_config_path: str | None = Field(None, alias="model_config")
    model_args: dict[str, Any] = Field(default_factory=dict)
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr_scheduler: Literal["cosine", "onecycle", "exponential", "none"] = "cosine"
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    loss: Literal["mse", "huber", "mae"] | None = None  # value-target tasks (regression, forecasting); None: mse
    augmentation: AugmentationSection = Field(default_factory=AugmentationSection)
    early_stopping_patience: int | None = Field(30, ge=0)
    monitor: str | None = None
    # The weights the run tests, quantizes and exports: "best", the epoch that scored best on training.monitor (on
    # validation; on its training twin, e.g. train_loss, when there is no validation split), or "last", the last
    # epoch of a fixed schedule (nothing chosen). With dataset.val_fraction: 0 every training series is learnt from.
    final_checkpoint: Literal["best", "last"] = "best"
    accelerator: str = "auto"
    devices: int | list[int] | str = "auto"
    num_nodes: int = Field(1, ge=1)
    strategy: str = "auto"
    precision: Literal[PRECISIONS] = "32-true"  # type: ignore[valid-type]
    num_workers: int = Field(0, ge=0)
    # torch CPU threads for training and evaluation: "auto" asks the modality (AIModule.auto_threads), or a count.
    threads: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    # Audio: train with the target scaled to this RMS level (NAM's trainer: -18 dBFS), the model starting scaled
    # by the inverse gain so it still outputs the capture's level; None trains at the level it was recorded.
    output_level_dbfs: float | None = Field(None, le=0)
    quantization: Literal["none", "ptq", "qat"] = "none"
    qat_epochs: int = Field(10, ge=0)
    teacher: TeacherSection | None = None  # distillation (classification): see TeacherSection

    # "model_config" is pydantic's own attribute name, hence the alias; both spellings are accepted.
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True, serialize_by_alias=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            valid = [("model_config" if n == "model_config_path" else n) for n in cls.model_fields]
            for key in data:
                if key not in valid and key != "model_config_path":
                    raise config_error("unknown key", str(key), unknown_name_hint(str(key), valid))
        return data

    @field_validator("lr_scheduler", "quantization", mode="before")
    @classmethod
    def _null_is_none(cls, v: Any) -> Any:
        return "none" if v is None else v  # `quantization: null` reads naturally in YAML

    @field_validator("precision", mode="before")
    @classmethod
    def _precision(cls, v: Any) -> Any:
        return _LEGACY_PRECISION.get(v, v) if isinstance(v, (int, str)) and not isinstance(v, bool) else v

    @field_validator("devices", mode="before")
    @classmethod
    def _devices(cls, v: Any) -> Any:
        # Checked by hand: pydantic's union errors would name every member type.
        ok = (isinstance(v, int) and not isinstance(v, bool) and v >= -1) or (isinstance(v, str) and v.strip()) or (
            isinstance(v, list) and v and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v))
        if not ok:
            raise config_error(f"expected 'auto', a device count (-1 for all) or a list of device indices, got {v!r}")
        return v

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> "TrainingSection":
        if self.model_name is None:
            if self.enable:
                names = MODEL_REGISTRY.names()
                raise config_error("required when training.enable is true", "model_name",
                                   f"pick one of: {_listing(names)}" if names else "no models are registered")
            if self.model_config_path or self.model_args:
                raise config_error("model arguments given without a model_name", "model_name")
            return self
        factory = registered(MODEL_REGISTRY, self.model_name, "model_name")
        what = f"model '{self.model_name}'"
        file_args: dict[str, Any] = {}
        if self.model_config_path is not None:
            path = resolve_path(self.model_config_path, base_dir_of(info))
            if path is None or not path.is_file():
                raise config_error(not_found(self.model_config_path, base_dir_of(info), "file"), "model_config",
                                   "give a path relative to the config file or the current directory")
            try:
                data, file_lines = read_yaml(path)
            except ConfigError as exc:
                raise config_error(str(exc), "model_config") from None
            if data is None:
                data = {}
            if not isinstance(data, dict):
                raise config_error(f"{path}: top level must be a mapping of {what} arguments, "
                                   f"got {type(data).__name__}", "model_config")
            try:
                check_arguments(factory, data, what, "", require=False)
            except PydanticCustomError as exc:
                ctx = exc.context or {}
                raise config_error(f"{path}: {ctx.get('key')}: {ctx.get('problem')}", "model_config",
                                   str(ctx.get("hint", ""))) from None
            wrong = argument_type_problem(factory, data)
            if wrong:
                line = file_lines.get((wrong[0],))
                raise config_error(f"{path}{f' line {line}' if line else ''}: {wrong[0]}: {wrong[1]}", "model_config",
                                   wrong[2])
            file_args = data
            self.model_config_path = str(path)
        check_arguments(factory, self.model_args, what, "model_args", require=False)
        wrong = argument_type_problem(factory, self.model_args)
        if wrong:
            raise config_error(wrong[1], f"model_args.{wrong[0]}", wrong[2])
        self.model_args = {**file_args, **self.model_args}  # inline arguments win over the file
        return self


class TestingSection(StrictModel):
    __test__ = False  # not a pytest class, despite the name
    enable: bool = True
    batch_size: int = Field(256, ge=1)


class CompilationSection(StrictModel):
    enable: bool = False
    strict: bool = True
    model_path: str | None = None
    calibration_samples: int = Field(256, ge=1)
    exporters: list[str] | None = None  # None: the default set of the modality, chosen by the runner
    golden_vectors: int = Field(4, ge=0)
    # The int8 input's range: 100 spans the calibration samples' extremes; lower clips the calibration samples to
    # [the (100 - p)th, the p-th] percentile of their values first, so a few spikes no longer coarsen the input's 256
    # levels for every other sample (values outside saturate, as they do on the device). Timeseries only.
    input_range_percentile: float = Field(100.0, gt=50, le=100)
    # Pass rules of the verification table (tinyverse.verification); a FAIL row fails a strict run after its report.
    tolerances: Tolerances = Field(default_factory=Tolerances)

    @field_validator("exporters")
    @classmethod
    def _exporters(cls, v: list[str] | None) -> list[str] | None:
        for i, name in enumerate(v or []):
            registered(EXPORTERS, name, str(i))
        if v is not None and len(set(v)) != len(v):
            raise config_error("an exporter is listed twice", "", "list each exporter once")
        return v

    @model_validator(mode="after")
    def _model_path(self, info: ValidationInfo) -> "CompilationSection":
        if self.model_path is not None:
            path = resolve_path(self.model_path, base_dir_of(info))
            if path is not None:
                self.model_path = str(path)
            elif self.enable:
                raise config_error(not_found(self.model_path, base_dir_of(info), "model"), "model_path")
        return self


def resolve_extensions(items: list[str], base: Path | None) -> list[str]:
    out = []
    for i, item in enumerate(items):
        path = resolve_path(item, base)
        if path is None:
            raise config_error(not_found(item, base, "extension file or folder"), str(i))
        out.append(str(path))
    return out


class ExtensionsOnly(BaseModel):
    """Just the ``extensions`` list: validated (and loaded) before the rest, whose names may come from them."""

    model_config = ConfigDict(extra="ignore", strict=True)
    extensions: list[str] = Field(default_factory=list)

    @field_validator("extensions", mode="before")
    @classmethod
    def _null(cls, v: Any) -> Any:
        return [] if v is None else v

    @field_validator("extensions")
    @classmethod
    def _resolve(cls, v: list[str], info: ValidationInfo) -> list[str]:
        return resolve_extensions(v, base_dir_of(info))


_SECTIONS = ("common", "dataset", "feature_extraction", "training", "testing", "compilation")


class Config(StrictModel):
    """The whole run: one field per YAML section."""

    common: CommonSection = Field(default_factory=CommonSection)
    dataset: DatasetSection = Field(default_factory=DatasetSection)
    feature_extraction: FeatureExtractionSection = Field(default_factory=FeatureExtractionSection)
    training: TrainingSection = Field(default_factory=TrainingSection)
    testing: TestingSection = Field(default_factory=TestingSection)
    compilation: CompilationSection = Field(default_factory=CompilationSection)
    extensions: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        # `testing:` with nothing under it is YAML null; it means "all defaults", not a type error. Absent
        # sections are validated from {} too, so their errors carry the section name and the base folder.
        if isinstance(data, dict):
            data = {**{k: {} for k in _SECTIONS}, **data}
            data = {k: ({} if v is None and k in _SECTIONS else v) for k, v in data.items()}
            if data.get("extensions") is None and "extensions" in data:
                data["extensions"] = []
        return data

    @field_validator("extensions")
    @classmethod
    def _extensions(cls, v: list[str], info: ValidationInfo) -> list[str]:
        return resolve_extensions(v, base_dir_of(info))

    @model_validator(mode="after")
    def _cross_section(self) -> "Config":
        c = self.compilation
        if c.enable and not self.training.enable and c.model_path is None:
            raise config_error("required when compilation is enabled and training is not", "compilation.model_path",
                               "point it at a trained checkpoint, or enable training")
        if self.training.loss is not None and self.common.task_type in TASKS:  # a loss the task would ignore
            params, takes_any = keyword_parameters(TASKS.get(self.common.task_type))
            if "loss" not in params and not takes_any:
                raise config_error(f"task '{self.common.task_type}' has its own loss and takes no training.loss",
                                   "training.loss", "remove it (it applies to regression and forecasting)")
        from modelmaker.ai_modules.keys import config_issues  # what the modality and the task use

        issues = config_issues(self)
        if issues:  # the first, on one line; fixing it shows the next
            raise config_error(issues[0].problem, issues[0].key, issues[0].hint)
        return self
