"""Estimated latency from a device profile's cost model (``DeviceProfile.latency``).

Each op is timed on the engine the device check placed it on — the accelerator (or a plain MCU's runtime kernels, a
pedal's DSP: ``native``) or the host CPU an NPU leaves it to (``cpu``) — as ``overhead / clock + MACs / rate`` of its
op class, from figures each profile states with their source. Ops that cost nothing (views) are free; unsupported
ops and classes without a rate are not costed and the estimate says so.

A whole-input model is estimated per inference; a streaming (audio) model per block of ``block_samples`` samples,
which must finish within the block's duration at the sample rate to run in real time.

The arithmetic is kept in :func:`op_ms` so a report, a test and a reader of the YAML compute the same number.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from tinyverse.devices.profile import DeviceProfile, LatencyModel, OpRate, ProfileError

NATIVE, CPU = "native", "cpu"
DEFAULT_SAMPLE_RATE = 48_000  # audio: the rate a block deadline is computed at when the caller gives none


@dataclass
class LatencyEstimate:
    """What a device's cost model says about one model."""

    ms: float  # per inference; per block of ``block_samples`` for a streaming model
    clock_hz: float | None
    budget_ms: float | None  # the profile's (or the config's) budget; a streaming model's block deadline if lower
    per_layer: dict[str, float] = field(default_factory=dict)  # layer -> ms
    by_engine: dict[str, float] = field(default_factory=dict)  # native / cpu -> ms
    uncosted: list[str] = field(default_factory=list)  # "layer: why" for ops the model cannot time
    sources: list[str] = field(default_factory=list)  # the figures used, once each
    stream: dict[str, Any] | None = None  # block_samples, sample_rate, deadline_ms, load

    @property
    def over_budget(self) -> bool:
        return self.budget_ms is not None and self.ms > self.budget_ms


def rate_for(model: LatencyModel, engine: str, op_class: str) -> OpRate | None:
    rates = model.native if engine == NATIVE else model.cpu
    return rates.get(op_class) or rates.get("*")


def engine_clock(model: LatencyModel, engine: str) -> float | None:
    return model.clock_hz if engine == NATIVE else (model.cpu_clock_hz or model.clock_hz)


def op_ms(model: LatencyModel, engine: str, op_class: str, macs: float, out_channels: int = 0) -> float | None:
    """Milliseconds of one op: ``(overhead_cycles + overhead_cycles_per_channel * out_channels) / clock + MACs /
    (macs_per_cycle * clock)`` (or ``MACs / macs_per_second``); None when the engine has no rate for the class."""
    rate = rate_for(model, engine, op_class)
    if rate is None:
        return None
    clock = engine_clock(model, engine)
    fixed = rate.overhead_cycles + rate.overhead_cycles_per_channel * out_channels
    seconds = fixed / clock if fixed else 0.0
    if macs:
        seconds += macs / (rate.macs_per_cycle * clock) if rate.macs_per_cycle is not None else \
            macs / rate.macs_per_second
    return seconds * 1e3


def engine_of(placement: str, profile: DeviceProfile) -> str | None:
    """The engine an op placed by the device check runs on; None for no work ("-") or no engine ("unsupported")."""
    if placement == profile.accelerator:
        return NATIVE
    if placement == "CPU":
        return CPU if profile.latency is not None and profile.latency.cpu else NATIVE
    return None


def op_channels(op: Any) -> int:
    """Output channels of an op (LayerOp or a contract op dict): what per-channel overheads count."""
    get = op.get if isinstance(op, dict) else lambda k, d=None: getattr(op, k, d)
    shape = get("out_shape") or ()
    return int(get("out_channels") or get("out_features") or (shape[0] if len(shape) else 0) or 0)


def estimate_layers(profile: DeviceProfile, layers: Iterable[tuple[str, str, list[tuple[str, Any]]]],
                    budget_ms: float | None = None) -> LatencyEstimate | None:
    """A whole-input model, layer by layer: ``layers`` are ``(name, placement, [(op class as checked, op), ...])``
    with each op's ``macs`` (a LayerOp or an op dict of the model contract's ``device_ops()``). None without a cost
    model."""
    model = profile.latency
    if model is None:
        return None
    est = LatencyEstimate(0.0, model.clock_hz, budget_ms if budget_ms is not None else model.budget_ms)
    for name, placement, ops in layers:
        engine = engine_of(placement, profile)
        layer_ms = 0.0
        for cls, op in ops:
            macs = op.get("macs", 0) if isinstance(op, dict) else op.macs
            if placement == "-":
                continue
            if engine is None:
                est.uncosted.append(f"{name}: {cls} is not supported on {profile.name}")
                continue
            ms = op_ms(model, engine, cls, macs, op_channels(op))
            if ms is None:
                est.uncosted.append(f"{name}: no {engine} rate for {cls} in the {profile.name} cost model")
                continue
            layer_ms += ms
            est.by_engine[engine] = est.by_engine.get(engine, 0.0) + ms
            _add_source(est, model, engine, cls)
        est.per_layer[name] = layer_ms
        est.ms += layer_ms
    return est


def estimate_stream(profile: DeviceProfile, cost: dict[str, Any], op_class: str, placement: str,
                    sample_rate: int | None = None, budget_ms: float | None = None) -> LatencyEstimate | None:
    """A model that reports its own cost (the model contract's ``cost()``): a streaming one per block of
    ``block_samples`` samples at ``sample_rate`` (its real-time deadline is the block's duration), a whole-input
    one per inference. The cost sits on its first op (``op_class``, placed at ``placement``)."""
    model = profile.latency
    if model is None:
        return None
    engine = engine_of(placement, profile)
    budget = budget_ms if budget_ms is not None else model.budget_ms
    est = LatencyEstimate(0.0, model.clock_hz, budget)
    if engine is None or rate_for(model, engine, op_class) is None:
        est.uncosted.append(f"{op_class}: not supported on {profile.name}" if engine is None
                            else f"{op_class}: no {engine} rate in the {profile.name} cost model")
        return est
    per_sample = cost.get("macs_per_sample")
    if per_sample is None:  # a whole-input contract model
        est.ms = op_ms(model, engine, op_class, int(cost.get("macs_per_inference") or 0)) or 0.0
    else:
        n = model.block_samples
        rate = int(sample_rate or DEFAULT_SAMPLE_RATE)
        macs = n * int(per_sample)
        conditioning = int(cost.get("conditioning_macs") or 0)  # a knob model's work per knob change
        if conditioning:
            # per sample when the knobs are input channels, else once per block (knobs moving every block: worst)
            macs += n * conditioning if cost.get("conditioning_per") == "sample" else conditioning
        est.ms = op_ms(model, engine, op_class, macs) or 0.0
        deadline = 1e3 * n / rate
        est.stream = {"block_samples": n, "sample_rate": rate, "deadline_ms": deadline, "load": est.ms / deadline}
        est.budget_ms = deadline if budget is None else min(budget, deadline)
    est.by_engine[engine] = est.ms
    est.per_layer[op_class.lower()] = est.ms
    _add_source(est, model, engine, op_class)
    return est


def _add_source(est: LatencyEstimate, model: LatencyModel, engine: str, op_class: str) -> None:
    rate = rate_for(model, engine, op_class)
    line = f"{engine} {op_class}: {rate.source}" if rate is not None else ""
    if line and line not in est.sources:
        est.sources.append(line)


def fmt_ms(ms: float | None) -> str:
    """A latency for tables: 3 significant digits."""
    if ms is None:
        return "-"
    return f"{ms:.3g}" if ms < 1000 else f"{ms:,.0f}"


def apply_estimate(report: Any, profile: DeviceProfile, est: LatencyEstimate | None) -> None:
    """Put an estimate into a DeviceReport: ``totals["latency_ms"]``, ``budgets["latency_ms"]``, per-layer ms, a
    violation when over the budget (or not in real time), a note with the clock and what was not costed."""
    if est is None:
        report.notes.append(f"latency not estimated: the {profile.name} profile has no cost model (a latency: "
                            f"section)")
        return
    report.totals["latency_ms"] = round(est.ms, 6)
    report.budgets["latency_ms"] = est.budget_ms
    for lc in report.layers:
        if lc.layer in est.per_layer:
            lc.latency_ms = round(est.per_layer[lc.layer], 6)
    clock = f" at {est.clock_hz / 1e6:g} MHz" if est.clock_hz else ""
    if est.stream is not None:
        s = est.stream
        what = f"a block of {s['block_samples']} samples at {s['sample_rate']:,} Hz"
        if s["load"] <= 1:
            report.notes.insert(0, f"real time: yes — {what} takes ~{fmt_ms(est.ms)} ms{clock} of its "
                                   f"{fmt_ms(s['deadline_ms'])} ms ({100 * s['load']:.0f} % of the "
                                   f"{profile.accelerator})")
        else:
            report.add_violation(f"real time: no — {what} takes ~{fmt_ms(est.ms)} ms on {profile.name}, its "
                                 f"deadline is {fmt_ms(s['deadline_ms'])} ms ({s['load']:.1f}x the "
                                 f"{profile.accelerator}'s throughput) → pick a smaller preset")
        if est.budget_ms is not None and est.budget_ms < s["deadline_ms"] and est.over_budget:
            report.add_violation(f"latency: ~{fmt_ms(est.ms)} ms per block exceeds the {est.budget_ms:g} ms budget")
    else:
        engines = ", ".join(f"{k} {fmt_ms(v)} ms" for k, v in est.by_engine.items()) if len(est.by_engine) > 1 else ""
        report.notes.append(f"latency: ~{fmt_ms(est.ms)} ms per inference{clock} (cost model of the "
                            f"{profile.name} profile{'; ' + engines if engines else ''})")
        if est.over_budget:
            report.add_violation(f"latency: estimated {fmt_ms(est.ms)} ms per inference{clock} exceeds the "
                                 f"{est.budget_ms:g} ms budget of {profile.name} → pick a smaller model, a shorter "
                                 f"input, or stride earlier")
    if est.uncosted:
        report.notes.append(f"latency leaves out {len(est.uncosted)} op(s): " + "; ".join(est.uncosted[:3]))


def with_budget(profile: DeviceProfile, budget_ms: float | None) -> DeviceProfile:
    """``profile`` with its latency budget set to ``budget_ms`` (e.g. ``common.latency_budget_ms``); unchanged for
    None. A profile without a cost model cannot check a budget: ProfileError, naming the profile."""
    if budget_ms is None:
        return profile
    if profile.latency is None:
        raise ProfileError(f"{profile.source if profile.source != 'builtin' else profile.name}: no cost model (a "
                           f"latency: section) to check a latency budget of {budget_ms:g} ms against → add one "
                           f"(see tinyverse/devices/profiles/cortex-m4.yaml) or remove the budget")
    return profile.model_copy(update={"latency": profile.latency.model_copy(update={"budget_ms": float(budget_ms)})})


__all__ = ["LatencyEstimate", "apply_estimate", "estimate_layers", "estimate_stream", "fmt_ms", "op_ms",
           "with_budget"]
