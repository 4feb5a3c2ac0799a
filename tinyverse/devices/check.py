"""The rule checker: a spec against a device profile, layer by layer, before training.

Each layer gets its op class, where it runs (accelerator / CPU fallback / unsupported) and why, in one line
with the fix. Totals are compared with the budgets: flash (weights at the profile's weight bits, biases at
32 bits), RAM (peak live int8 activations of the graph, input included, plus conv scratch) and MACs.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tinyverse.devices.latency import apply_estimate, estimate_layers, estimate_stream, fmt_ms
from tinyverse.devices.profile import DeviceProfile, FieldRule, load_device_profile
from tinyverse.layers.base import LayerOp, numel
from tinyverse.models.contract import SizeChoices
from tinyverse.models.spec import ModelSpec
from tinyverse.registry import DEVICES

CONV_CLASSES = ("FCONV", "GCONV", "DWCONV", "PWCONV")
# Budget rows of a report: per-inference models count MACs per inference, streaming models per output sample.
BUDGET_KEYS = ("flash_bytes", "ram_bytes", "macs", "macs_per_sample", "latency_ms")


class UncheckableModel(TypeError):
    """A model with neither a spec nor a cost of its own (e.g. a plain nn.Module): no device rule can read it."""


def get_device(device: str | Path | DeviceProfile) -> DeviceProfile:
    """A profile by registry name, or from a YAML file path."""
    if isinstance(device, DeviceProfile):
        return device
    if isinstance(device, Path) or str(device).endswith((".yaml", ".yml")):
        return load_device_profile(device)
    return DEVICES.get(str(device))


def op_attributes(op: LayerOp) -> dict[str, Any]:
    """The attributes rules may name."""
    kh, kw = op.kernel or (None, None)
    sh, sw = op.stride or (None, None)
    dh, dw = op.dilation or (None, None)
    spatial = op.in_shape[1] * op.in_shape[2] if len(op.in_shape) == 3 else None
    return {"in_channels": op.in_channels, "out_channels": op.out_channels, "channels": op.in_channels,
            "kernel_h": kh, "kernel_w": kw, "kernel": list(op.kernel) if op.kernel else None,
            "stride": list(op.stride) if op.stride else None, "stride_h": sh, "stride_w": sw,
            "dilation_h": dh, "dilation_w": dw, "groups": op.groups, "in_features": op.in_features,
            "out_features": op.out_features, "activation": op.activation, "global": bool(op.attrs.get("global")),
            "spatial": spatial, "kernel_area": kh * kw if kh and kw else None}


def _breaks(attr: str, value: Any, rule: FieldRule) -> str | None:
    """One-line description of how ``value`` breaks ``rule``, with the fix; None if it complies."""
    if value is None:
        return None
    msg = None
    if rule.equals is not None and value != rule.equals:
        msg = f"{attr} is {value}, must be {rule.equals}"
    elif rule.multiple_of and isinstance(value, int) and value % rule.multiple_of:
        msg = (f"{attr} {value} is not a multiple of {rule.multiple_of} → use "
               f"{math.ceil(value / rule.multiple_of) * rule.multiple_of}")
    elif rule.max is not None and value > rule.max:
        msg = f"{attr} {value} exceeds {rule.max:g} → use at most {rule.max:g}"
    elif rule.min is not None and value < rule.min:
        msg = f"{attr} {value} is below {rule.min:g} → use at least {rule.min:g}"
    elif rule.one_of is not None and value not in rule.one_of:
        msg = f"{attr} {value} is not one of {rule.one_of}"
    if msg and rule.why:
        msg += f" ({rule.why})"
    return msg


@dataclass
class LayerCheck:
    layer: str
    type: str
    op_class: str  # the class the layer is checked as
    placement: str  # accelerator name ("NPU"), "CPU", "runtime" or "unsupported"
    reasons: list[str]
    params: int
    macs: int
    weight_bytes: int
    out_shape: list[int]
    latency_ms: float | None = None  # estimated by the profile's cost model (tinyverse.devices.latency)

    @property
    def line(self) -> str:
        why = "; ".join(self.reasons) if self.reasons else "ok"
        return f"{self.layer}: {self.op_class} on {self.placement} — {why}"


@dataclass
class DeviceReport:
    device: str
    kind: str
    model: str
    layers: list[LayerCheck]
    totals: dict[str, int | None]
    budgets: dict[str, int | None]
    violations: list[str]
    notes: list[str] = field(default_factory=list)
    measured: dict[str, Any] = field(default_factory=dict)
    # A model of alternatives (a SlimmableContainer): each one's fit; the report is about the one picked.
    choices: list[dict[str, Any]] = field(default_factory=list)
    picked: str | None = None

    @property
    def fits(self) -> bool:
        return not self.violations

    def add_violation(self, line: str) -> None:
        if line not in self.violations:
            self.violations.append(line)

    def to_dict(self) -> dict[str, Any]:
        out = {"device": self.device, "kind": self.kind, "model": self.model, "fits": self.fits,
               "violations": list(self.violations), "notes": list(self.notes), "totals": dict(self.totals),
               "budgets": dict(self.budgets), "measured": dict(self.measured),
               "layers": [{**asdict(layer), "line": layer.line} for layer in self.layers]}
        if self.choices:
            out.update(choices=[dict(c) for c in self.choices], picked=self.picked)
        return out

    def to_markdown(self) -> str:
        out = [f"### Device check: {self.model} on {self.device} — {'fits' if self.fits else 'DOES NOT FIT'}", "",
               "| layer | type | op class | runs on | params | MACs | why / fix |",
               "|---|---|---|---|---:|---:|---|"]
        for lc in self.layers:
            why = "; ".join(lc.reasons) if lc.reasons else "ok"
            out.append(f"| {lc.layer} | {lc.type} | {lc.op_class} | {lc.placement} | {lc.params:,} | {lc.macs:,} "
                       f"| {why} |")
        out += ["", "| budget | estimate | limit |", "|---|---:|---:|"]
        for key in [k for k in BUDGET_KEYS if k in self.totals or k in self.budgets]:
            est, lim = self.totals.get(key), self.budgets.get(key)
            num = fmt_ms if key == "latency_ms" else _num
            out.append(f"| {key} | {num(est)} | {num(lim)} |")
        for key, val in self.measured.items():
            out.append(f"| measured {key} | {val if not isinstance(val, int) else f'{val:,}'} | |")
        if self.choices:
            out += ["", "| submodel | slim | MACs/sample | params | fits |", "|---|---|---:|---:|---|"]
            out += [f"| {c['name']}{' (picked)' if c['name'] == self.picked else ''} | "
                    f"{c['slim'][0]:g}–{c['slim'][1]:g} | {_num(c.get('macs_per_sample'))} | {_num(c.get('params'))} | "
                    f"{'yes' if c['fits'] else 'no: ' + c['violations'][0]} |" for c in self.choices]
        if self.violations:
            out += ["", "**Violations**", ""] + [f"- {v}" for v in self.violations]
        if self.notes:
            out += ["", "**Notes**", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(out)


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:,}"


def _weights_biases(op: LayerOp) -> tuple[int, int]:
    """(weights, 32-bit values) an op stores after BN folding."""
    if op.op_class in CONV_CLASSES and op.kernel and op.in_channels and op.out_channels:
        w = op.out_channels * (op.in_channels // max(op.groups, 1)) * op.kernel[0] * op.kernel[1]
        return w, (op.out_channels if op.params > w else 0)
    if op.op_class == "FC" and op.in_features and op.out_features:
        w = op.in_features * op.out_features
        return w, max(op.params - w, 0)
    if op.op_class == "BN":
        return 0, op.params
    return op.params, 0


def _classify(op: LayerOp, profile: DeviceProfile) -> tuple[str, list[str]]:
    cls, notes = op.op_class, []
    attrs = op_attributes(op)
    for rc in profile.reclassify:
        if rc.from_ == cls and any(_breaks(a, attrs.get(a), r) for a, r in rc.unless.items()):
            notes.append(f"checked as {rc.to}: {rc.why}" if rc.why else f"checked as {rc.to}")
            cls = rc.to
    return cls, notes


def _peak_ram(spec: ModelSpec) -> tuple[int, str]:
    """Peak bytes of int8 tensors alive at once while running the layers in order (inputs included)."""
    order = list(spec.info)
    last_use: dict[str, int] = {}
    for i, name in enumerate(order):
        for s in spec.info[name].sources:
            last_use[s] = i
    for o in spec.outputs:
        last_use[o] = len(order)
    size = {**{k: numel(v) for k, v in spec.inputs.items()}, **spec.activation_sizes()}
    born = {**{k: -1 for k in spec.inputs}, **{n: i for i, n in enumerate(order)}}
    peak, where = 0, ""
    for i, name in enumerate(order):
        live = sum(size[t] for t in size if born[t] <= i and last_use.get(t, born[t]) >= i)
        if live > peak:
            peak, where = live, name
    return peak, where


def check_spec(spec: ModelSpec, profile: DeviceProfile | str | Path) -> DeviceReport:
    """Check every layer of ``spec`` against ``profile`` and compare totals with its budgets."""
    profile = get_device(profile)
    layers: list[LayerCheck] = []
    violations: list[str] = []
    notes: list[str] = []
    flash = 0
    scratch = 0
    costed: list[tuple[str, str, list]] = []  # (layer, placement, [(class, op)]) for the latency estimate
    for name, info in spec.info.items():
        reasons: list[str] = []
        placement = profile.accelerator
        checked = []
        wbytes = 0
        for op in info.ops:
            cls, rc_notes = _classify(op, profile)
            reasons += rc_notes
            checked.append(cls)
            w, b = _weights_biases(op)
            wbytes += math.ceil(w * profile.weight_bits / 8) + 4 * b
            if cls in CONV_CLASSES and op.kernel and op.in_channels:
                scratch = max(scratch, 2 * 2 * (op.in_channels // max(op.groups, 1)) * op.kernel[0] * op.kernel[1])
            if cls in profile.native_ops:
                attrs = op_attributes(op)
                broken = [m for a, r in profile.rules.get(cls, {}).items() if (m := _breaks(a, attrs.get(a), r))]
                for m in broken:
                    violations.append(f"{name}: {cls} {m}")
                if broken:
                    placement = "CPU" if profile.kind in ("npu_mcu", "npu") else "unsupported"
                    reasons += broken
            elif cls in profile.free_ops:
                placement = "-"
                reasons.append("no compute (view / identity at inference)")
            elif cls in profile.cpu_ops:
                placement = "CPU"
                reasons.append(f"{cls} is not a {profile.accelerator} op on {profile.name}: runs on the CPU")
            else:
                placement = "unsupported"
                msg = f"{cls} is not supported on {profile.name}"
                reasons.append(msg)
                violations.append(f"{name}: {msg}")
            if profile.op_class_tflite.get(cls):
                reasons.append("→ " + "/".join(profile.op_class_tflite[cls]))
        flash += wbytes
        if placement == "CPU" and not any("runs on the CPU" in r or "falls back" in r for r in reasons):
            reasons.append(f"falls back to the CPU on {profile.name}")
        layers.append(LayerCheck(name, info.layer.type_name(), "+".join(dict.fromkeys(checked)) or "-", placement,
                                 reasons, info.params, info.macs, wbytes, list(info.out_shape)))
        costed.append((name, placement, list(zip(checked, info.ops))))
    peak, peak_at = _peak_ram(spec)
    flash_total = flash + profile.flash_overhead_bytes
    ram_total = peak + scratch + profile.ram_overhead_bytes
    totals = {"params": spec.params, "macs": spec.macs, "flash_bytes": flash_total, "ram_bytes": ram_total,
              "weights_bytes": flash, "peak_activation_bytes": peak, "scratch_bytes": scratch}
    budgets = {"flash_bytes": profile.flash_bytes, "ram_bytes": profile.ram_bytes,
               "macs": profile.max_macs_per_inference}
    if profile.flash_bytes is not None and flash_total > profile.flash_bytes:
        violations.append(f"flash: estimated {flash_total:,} bytes (weights at {profile.weight_bits} bit + 32-bit "
                          f"biases{' + runtime' if profile.flash_overhead_bytes else ''}) exceed the "
                          f"{profile.flash_bytes:,} byte budget → pick a smaller model")
    if profile.ram_bytes is not None and ram_total > profile.ram_bytes:
        violations.append(f"RAM: estimated {ram_total:,} bytes (peak activations {peak:,} at {peak_at} + scratch "
                          f"{scratch:,}) exceed the {profile.ram_bytes:,} byte budget → shorten the input or "
                          f"stride earlier")
    if profile.max_macs_per_inference is not None and spec.macs > profile.max_macs_per_inference:
        violations.append(f"MACs: {spec.macs:,} per inference exceed the budget of "
                          f"{profile.max_macs_per_inference:,} → pick a smaller model")
    cpu = [lc.layer for lc in layers if lc.placement == "CPU"]
    if cpu and profile.kind in ("npu_mcu", "npu"):
        notes.append(f"{len(cpu)} layer(s) run on the CPU: {', '.join(cpu)}")
    report = DeviceReport(profile.name, profile.kind, spec.name or "model", layers, totals, budgets, violations, notes)
    apply_estimate(report, profile, estimate_layers(profile, costed))
    return report


def check_tflite_ops(ops: list[str], profile: DeviceProfile | str) -> list[str]:
    """Violations for TFLite builtin ops (of a converted file) that the target's runtime does not register."""
    profile = get_device(profile)
    if profile.tflite_ops is None:
        return []
    allowed = set(profile.tflite_ops)
    missing = sorted(set(ops) - allowed)
    return [f"TFLite op {op} is not registered by the {profile.name} runtime (TFLM)" for op in missing]


# -- one entry point for every model ------------------------------------------------------------------------
def check_model(model: Any, device: str | Path | DeviceProfile, *, sample_rate: int | None = None,
                model_name: str | None = None) -> DeviceReport:
    """The device check of any model, asked of the model itself: a spec (a ``ModelSpec``, or a model with
    ``.spec``) layer by layer (:func:`check_spec`); a model that implements the model contract (``cost()``,
    ``device_ops()``; e.g. a streaming NAM model) by its op classes and budgets (:func:`check_cost`).

    ``sample_rate`` (Hz) is checked against a streaming device's rates when given. Raises
    :class:`UncheckableModel` for a model that has neither.
    """
    profile = get_device(device)
    if isinstance(model, SizeChoices) and model.device_choices():
        return check_choices(model, profile, sample_rate=sample_rate, model_name=model_name)
    spec = model if isinstance(model, ModelSpec) else getattr(model, "spec", None)
    if isinstance(spec, ModelSpec):
        report = check_spec(spec, profile)
        if model_name:
            report.model = model_name
        return report
    name = model_name or type(model).__name__
    cost = model_cost(model)
    if cost is None:
        raise UncheckableModel(f"{name} has no spec and does not implement the model contract (cost(), "
                               f"device_ops()): no device rule can read it")
    return check_cost(cost, profile, sample_rate=sample_rate, model_name=name)


def check_choices(model: SizeChoices, device: str | Path | DeviceProfile, *, sample_rate: int | None = None,
                  model_name: str | None = None) -> DeviceReport:
    """A model of alternatives (a SlimmableContainer's submodels, smallest first): every alternative is checked; the
    report is the one of the largest that fits (``picked``, with the knob range that selects it), or — none fitting
    — of the smallest, whose violations say what is over; ``choices`` holds each alternative's fit."""
    profile = get_device(device)
    name = model_name or type(model).__name__
    reports = [(label, tuple(slim), check_model(m, profile, sample_rate=sample_rate, model_name=f"{name} [{label}]"))
               for label, slim, m in model.device_choices()]
    fitting = [i for i, (_, _, r) in enumerate(reports) if r.fits]
    label, slim, report = reports[fitting[-1] if fitting else 0]
    report.model = name
    report.choices = [{"name": lab, "slim": list(s), "fits": r.fits, "params": r.totals.get("params"),
                       "macs_per_sample": r.totals.get("macs_per_sample"), "violations": list(r.violations)}
                      for lab, s, r in reports]
    # A host loads every alternative (NAM Core builds all submodels) and runs one: params and weights are all of
    # them, MACs and streaming state the one that runs.
    weight_bytes = sum(int(r.totals.get("weights_bytes") or 0) for _, _, r in reports)
    report.totals.update(params=sum(int(r.totals.get("params") or 0) for _, _, r in reports),
                         flash_bytes=weight_bytes, weights_bytes=weight_bytes)
    if profile.flash_bytes is not None and weight_bytes > profile.flash_bytes:
        report.add_violation(f"flash: {weight_bytes:,} bytes of weights of all {len(reports)} submodels (the host "
                             f"loads them all) over the {profile.flash_bytes:,} byte budget of {profile.name}")
    if fitting and report.fits:
        last = fitting[-1] == len(reports) - 1
        report.picked = label
        knob = slim[1] if last else slim[0]
        report.notes.insert(0, f"runs submodel {label} ({fitting[-1] + 1} of {len(reports)}): size knob (slim) "
                               f"{slim[0]:g}–{slim[1]:g}, e.g. modelmaker render --slim {knob:g}"
                               + ("" if last else "; the larger submodels do not fit"))
    elif fitting:
        report.notes.insert(0, f"submodel {label} would run, but the weights of all submodels do not fit")
    else:
        report.notes.insert(0, f"no submodel fits {profile.name}; the smallest, {label}, is shown")
    return report


def model_cost(model: Any) -> dict[str, Any] | None:
    """What a model without a spec reports about itself through the model contract
    (:mod:`tinyverse.models.contract`: ``cost()``, ``device_ops()``, ``describe()``), as the device check reads
    it: ``architecture``, ``params``, ``weights``, ``macs_per_sample`` (or ``macs_per_inference``),
    ``receptive_field``, ``ops`` (op classes with the attributes device rules read) and ``state_values`` (values
    kept between samples while streaming). None for a model that does not implement the contract."""
    cost_fn, ops_fn = getattr(model, "cost", None), getattr(model, "device_ops", None)
    if not (callable(cost_fn) and callable(ops_fn)):
        return None
    cost = cost_fn()
    out = dict(cost.to_dict() if hasattr(cost, "to_dict") else cost)
    describe = getattr(model, "describe", None)
    out["architecture"] = (describe() if callable(describe) else {}).get("architecture", type(model).__name__)
    out["weights"] = out.get("weights") or out["params"]
    out["ops"] = list(ops_fn())
    out["state_values"] = streaming_state_values(model)
    return out


def streaming_state_values(model: Any) -> int:
    """Values a streaming engine keeps between samples: each causal conv's history (in_channels x dilation x
    (kernel - 1)) and each recurrent layer's state. A lower bound of the RAM a block-based engine needs."""
    from torch import nn

    own = getattr(model, "state_values", None)
    if callable(own):  # a model whose convs are not modules (e.g. generated weights) counts its own
        return int(own())
    total = 0
    for m in model.modules():
        if isinstance(m, nn.Conv1d):
            total += m.in_channels * m.dilation[0] * (m.kernel_size[0] - 1)
        elif isinstance(m, nn.LSTM):
            total += 2 * m.hidden_size * m.num_layers
        elif isinstance(m, (nn.GRU, nn.RNN)):
            total += m.hidden_size * m.num_layers
    return int(total)


# Samples per block a streaming host runs a knob model's per-block conditioning for (a pedal-sized buffer; a longer
# block spreads it thinner).
CONDITIONING_BLOCK = 64


def conditioning_per_sample(cost: dict[str, Any], block_size: int = CONDITIONING_BLOCK) -> tuple[int, str] | None:
    """A knob model's knob-only work (``conditioning_macs`` per ``conditioning_per``) as MACs per sample, and a note
    saying how it was counted; None for a model without it. Per sample (knobs as input channels) it counts in full,
    per block (an embedding, a hypernet) spread over ``block_size`` samples."""
    macs = int(cost.get("conditioning_macs") or 0)
    if not macs:
        return None
    if cost.get("conditioning_per") == "sample":
        return macs, f"knob conditioning: {macs:,} MACs/sample (the knobs are input channels: their columns run " \
                     "with every sample), included in MACs/sample"
    extra = math.ceil(macs / block_size)
    return extra, f"knob conditioning: {macs:,} MACs once per block of {block_size} samples (knob embedding / " \
                  f"hypernet) = +{extra:,} MACs/sample, included in MACs/sample"


def check_cost(cost: dict[str, Any], profile: DeviceProfile | str | Path, *, sample_rate: int | None = None,
               model_name: str = "model", block_size: int = CONDITIONING_BLOCK) -> DeviceReport:
    """A contract model's cost (:func:`model_cost`) against a profile: every op class native to the device and
    within its rules, MACs per sample within ``max_macs_per_sample`` (a whole-input model: MACs per inference
    within ``max_macs_per_inference``), the sample rate one the device runs, weights within the flash budget and
    the streaming state within the RAM budget. A knob model's conditioning (:func:`conditioning_per_sample`, blocks of
    ``block_size``) is a row of its own and counts in MACs per sample."""
    profile = get_device(profile)
    value_bytes = max(1, profile.weight_bits // 8)
    per_sample = cost.get("macs_per_sample") is not None  # else a whole-input model: MACs per inference
    macs = int(cost["macs_per_sample"] if per_sample else cost.get("macs_per_inference") or 0)
    conditioning = conditioning_per_sample(cost, block_size) if per_sample else None
    params, weights = int(cost["params"]), int(cost.get("weights") or cost["params"])
    weight_bytes = math.ceil(weights * profile.weight_bits / 8)
    state_bytes = int(cost.get("state_values") or 0) * value_bytes
    layers: list[LayerCheck] = []
    violations: list[str] = []
    for i, op in enumerate(cost.get("ops") or []):
        cls = op["op_class"]
        reasons: list[str] = []
        if cls in profile.native_ops:
            placement = profile.accelerator
        elif cls in profile.cpu_ops:
            placement = "CPU"
        elif cls in profile.free_ops:
            placement = "-"
        else:
            placement = "unsupported"
            reasons.append(f"{cls} is not supported by {profile.name} (runs: {', '.join(profile.native_ops)})")
        reasons += [m for attr, rule in profile.rules.get(cls, {}).items() if (m := _breaks(attr, op.get(attr), rule))]
        first = i == 0  # the whole model's cost sits on its first op (the ops after it are its activations)
        layers.append(LayerCheck(layer=cls.lower(), type=str(cost.get("architecture", model_name)), op_class=cls,
                                 placement=placement, reasons=reasons, params=params if first else 0,
                                 macs=macs if first else 0, weight_bytes=weight_bytes if first else 0, out_shape=[1]))
        violations += [f"{cls}: {r}" for r in reasons]
    if conditioning and layers:  # the knob-only work runs where the model runs
        layers.insert(1, LayerCheck(layer="conditioning", type=f"knobs, per {cost.get('conditioning_per')}",
                                    op_class=layers[0].op_class, placement=layers[0].placement, reasons=[], params=0,
                                    macs=conditioning[0], weight_bytes=0, out_shape=[1]))
        macs += conditioning[0]
    budget = profile.max_macs_per_sample if per_sample else profile.max_macs_per_inference
    unit = "MACs/sample" if per_sample else "MACs/inference"
    if budget is not None and macs > budget:
        violations.append(f"{unit}: {macs:,} over the {budget:,} budget of {profile.name} → pick a model under "
                          f"{budget:,} {unit}{' (a smaller preset)' if per_sample else ''}")
    rates = profile.sample_rate
    if sample_rate is not None and rates is not None:
        allowed = rates if isinstance(rates, list) else [rates]
        if int(sample_rate) not in allowed:
            violations.append(f"sample rate: {int(sample_rate):,} Hz is not one of the rates of {profile.name} "
                              f"({', '.join(f'{r:,}' for r in allowed)} Hz) → capture at {allowed[-1]:,} Hz")
    if profile.flash_bytes is not None and weight_bytes > profile.flash_bytes:
        violations.append(f"flash: {weight_bytes:,} bytes of weights ({profile.weight_bits}-bit) over the "
                          f"{profile.flash_bytes:,} byte budget of {profile.name} → pick a smaller model")
    if profile.ram_bytes is not None and state_bytes > profile.ram_bytes:
        violations.append(f"RAM: {state_bytes:,} bytes of streaming state over the {profile.ram_bytes:,} byte "
                          f"budget of {profile.name} → fewer channels or shorter dilations")
    notes = [f"RAM estimate: streaming state ({cost.get('state_values', 0):,} values at {value_bytes * 8}-bit: conv "
             f"histories, recurrent state)"]
    if sample_rate is not None and per_sample:
        rate = int(sample_rate)
        notes.insert(0, f"{macs:,} MACs/sample × {rate:,} Hz = {macs * rate / 1e6:.1f} M MAC/s")
    if cost.get("receptive_field") is not None:
        notes.append(f"receptive field {int(cost['receptive_field']):,} samples")
    if conditioning:
        notes.append(conditioning[1])
    key = "macs_per_sample" if per_sample else "macs"
    totals: dict[str, Any] = {"params": params, key: macs, "flash_bytes": weight_bytes, "ram_bytes": state_bytes,
                              "weights_bytes": weight_bytes, "state_bytes": state_bytes}
    budgets: dict[str, Any] = {"flash_bytes": profile.flash_bytes, "ram_bytes": profile.ram_bytes, key: budget}
    report = DeviceReport(device=profile.name, kind=profile.kind, model=model_name, layers=layers, totals=totals,
                          budgets=budgets, violations=violations, notes=notes)
    if layers:  # the model's cost sits on its first op
        apply_estimate(report, profile, estimate_stream(profile, cost, layers[0].op_class, layers[0].placement,
                                                        sample_rate=sample_rate))
    return report
