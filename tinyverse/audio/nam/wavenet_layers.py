"""NAM WaveNet layer arrays with every feature NeuralAmpModelerCore 0.5.5 reads (``NAM/wavenet/*``, ``NAM/film.h``):
the spec of one layer array as a .nam config holds it (:class:`LayerArraySpec`, read from the 0.5, 0.6 and 0.7
layouts and written back in any of them) and the torch modules that compute what Core computes.

Per layer (Core's ``detail::Layer::Process``): optional FiLM before the dilated conv, the conv (``groups_input``),
FiLM after it; the input mixin on the condition (``groups_input_mixin``, FiLM before / after it); their sum, FiLM,
the activation (``gating_mode`` none / gated / blended with a secondary activation), FiLM; ``layer1x1`` (bottleneck
→ channels, optional: without it the residual is the layer input unchanged) and ``head1x1`` (bottleneck → head
channels, optional, FiLM after it). Core applies ``layer1x1_post_film`` only in blended layers (its weights are
read in every mode) — reproduced here, since Core's renders are the reference.

Per layer array: a 1×1 rechannel, the layers, and a head rechannel conv (kernel ``head.kernel_size``, dilation
``head.head_dilation``) over the summed head outputs (plus the previous array's head output).

Every temporal conv runs through :class:`ConvHistory`, so one forward serves both the whole-input ("valid")
mode and block streaming with Core's per-conv history buffers.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from .activations import NamActivation

__all__ = ["FILM_POINTS", "GATING_MODES", "SLIM_METHOD", "ConvHistory", "FiLM", "FiLMSpec", "LayerArraySpec",
           "PostStackHead", "WaveNetLayer", "WaveNetLayerArray", "check_int", "parse_post_stack_head"]

GATING_MODES = ("none", "gated", "blended")
# Core's FiLM hook points, in the order their weights follow a layer's convs.
FILM_POINTS = ("conv_pre_film", "conv_post_film", "input_mixin_pre_film", "input_mixin_post_film",
               "activation_pre_film", "activation_post_film", "layer1x1_post_film", "head1x1_post_film")
SLIM_METHOD = "slice_channels_uniform"

_LA_KEYS = frozenset({"input_size", "condition_size", "channels", "bottleneck", "dilations", "kernel_size",
                      "kernel_sizes", "activation", "gated", "gating_mode", "secondary_activation", "head_size",
                      "head_bias", "head", "groups_input", "groups_input_mixin", "layer1x1", "head1x1", "slimmable",
                      *FILM_POINTS})
_HEAD_KEYS = frozenset({"out_channels", "kernel_size", "bias", "head_dilation"})
_POST_HEAD_KEYS = frozenset({"in_channels", "channels", "out_channels", "kernel_sizes", "activation"})


def check_int(v: Any, what: str, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {v!r}")
    return int(v)


def _check_bool(v: Any, what: str) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"{what} must be true or false, got {v!r}")
    return v


def _object(v: Any, keys: frozenset[str] | set[str], what: str, required: Sequence[str] = ()) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ValueError(f"{what} must be an object, got {v!r}")
    extra = sorted(set(v) - set(keys))
    if extra:
        raise ValueError(f"{what}: unsupported key(s) {', '.join(extra)} (known: {', '.join(sorted(keys))})")
    missing = [k for k in required if k not in v]
    if missing:
        raise ValueError(f"{what} lacks {', '.join(missing)}")
    return v


@dataclass(frozen=True)
class FiLMSpec:
    """An active FiLM: ``x * scale + shift`` with scale (and shift) a grouped 1×1 conv of the condition."""

    shift: bool = True
    groups: int = 1


@dataclass
class LayerArraySpec:
    """One WaveNet layer array, normalised from any .nam layout (per-layer lists have one entry per dilation)."""

    input_size: int
    condition_size: int
    channels: int
    dilations: list[int]
    kernel_sizes: list[int]
    activations: list[NamActivation]
    gating_modes: list[str]
    secondary: list[NamActivation | None]
    head_size: int
    head_bias: bool = False
    head_kernel_size: int = 1
    head_dilation: int = 1
    bottleneck: int | None = None  # None: equal to channels
    groups_input: int = 1
    groups_input_mixin: int = 1
    layer1x1: bool = True
    layer1x1_groups: int = 1
    head1x1: bool = False
    head1x1_out_channels: int = 1
    head1x1_groups: int = 1
    films: dict[str, FiLMSpec] = field(default_factory=dict)
    allowed_channels: list[int] | None = None  # slimmable: the channel counts a slim value picks from

    def __post_init__(self) -> None:
        if self.bottleneck is None:
            self.bottleneck = self.channels

    # -- reading -----------------------------------------------------------------------------------------------
    @classmethod
    def from_json(cls, d: Any, index: int) -> LayerArraySpec:
        """Parse a layer-array object of any layout (0.5: ``kernel_size`` / ``head_size`` / ``gated``; 0.6/0.7:
        ``kernel_sizes``, ``head`` object, per-layer activation objects, ``gating_mode`` ...). Raises ValueError
        naming the layer array and key."""
        w = f"layer array {index}"
        if not isinstance(d, dict):
            raise ValueError(f"{w} is not an object")
        extra = sorted(set(d) - _LA_KEYS)
        if extra:
            raise ValueError(f"{w} uses unsupported key(s): {', '.join(extra)}")
        missing = [k for k in ("input_size", "condition_size", "channels", "dilations") if k not in d]
        if "head" not in d or d["head"] is None:
            missing += [k for k in ("head_size",) if k not in d]
        if "kernel_size" not in d and "kernel_sizes" not in d:
            missing.append("kernel_size")
        if missing:
            raise ValueError(f"{w} lacks {', '.join(missing)}")
        channels = check_int(d["channels"], f"{w}: channels")
        dil = d["dilations"]
        if not isinstance(dil, list) or not dil:
            raise ValueError(f"{w}: dilations must be a non-empty list")
        dilations = [check_int(v, f"{w}: dilations") for v in dil]
        n = len(dilations)

        if "kernel_size" in d and "kernel_sizes" in d:
            raise ValueError(f"{w}: give kernel_size or kernel_sizes, not both")
        if "kernel_sizes" in d:
            ks = d["kernel_sizes"]
            if not isinstance(ks, list) or len(ks) != n:
                raise ValueError(f"{w}: kernel_sizes must be a list with one entry per dilation ({n})")
            kernel_sizes = [check_int(k, f"{w}: kernel_sizes") for k in ks]
        else:
            kernel_sizes = [check_int(d["kernel_size"], f"{w}: kernel_size")] * n

        head = d.get("head")
        if head is not None:
            if "head_size" in d or "head_bias" in d:
                raise ValueError(f"{w}: give the 'head' object or head_size/head_bias, not both")
            h = _object(head, _HEAD_KEYS, f"{w}: head", ("out_channels", "kernel_size", "bias"))
            head_size = check_int(h["out_channels"], f"{w}: head.out_channels")
            head_kernel = check_int(h["kernel_size"], f"{w}: head.kernel_size")
            head_bias = _check_bool(h["bias"], f"{w}: head.bias")
            head_dilation = check_int(h.get("head_dilation", 1), f"{w}: head.head_dilation")
        else:
            head_size = check_int(d["head_size"], f"{w}: head_size")
            head_bias = _check_bool(d.get("head_bias", False), f"{w}: head_bias")
            head_kernel, head_dilation = 1, 1

        act = d.get("activation", "Tanh")
        if isinstance(act, list):
            if len(act) != n:
                raise ValueError(f"{w}: activation list has {len(act)} entries for {n} layers")
            activations = [NamActivation.from_json(a, f"{w}: activation[{j}]") for j, a in enumerate(act)]
        else:
            activations = [NamActivation.from_json(act, f"{w}: activation")] * n

        gating_modes, secondary = cls._parse_gating(d, n, w)

        layer1x1, layer1x1_groups = True, 1
        if "layer1x1" in d:
            o = _object(d["layer1x1"], {"active", "groups"}, f"{w}: layer1x1", ("active", "groups"))
            layer1x1 = _check_bool(o["active"], f"{w}: layer1x1.active")
            layer1x1_groups = check_int(o["groups"], f"{w}: layer1x1.groups")
        head1x1, head1x1_out, head1x1_groups = False, 1, 1
        if "head1x1" in d:
            o = _object(d["head1x1"], {"active", "out_channels", "groups"}, f"{w}: head1x1",
                        ("active", "out_channels", "groups"))
            head1x1 = _check_bool(o["active"], f"{w}: head1x1.active")
            head1x1_out = check_int(o["out_channels"], f"{w}: head1x1.out_channels")
            head1x1_groups = check_int(o["groups"], f"{w}: head1x1.groups")

        films: dict[str, FiLMSpec] = {}
        for key in FILM_POINTS:
            if key not in d or d[key] is False:
                continue
            o = _object(d[key], {"active", "shift", "groups"}, f"{w}: {key}")
            if _check_bool(o.get("active", True), f"{w}: {key}.active"):
                films[key] = FiLMSpec(_check_bool(o.get("shift", True), f"{w}: {key}.shift"),
                                      check_int(o.get("groups", 1), f"{w}: {key}.groups"))

        allowed = None
        slim = d.get("slimmable")
        if slim is not None:
            o = _object(slim, {"method", "kwargs"}, f"{w}: slimmable", ("method",))
            if o["method"] != SLIM_METHOD:
                raise ValueError(f"{w}: slimmable method {o['method']!r} is not supported (NAM Core knows "
                                 f"{SLIM_METHOD!r})")
            kw = _object(o.get("kwargs", {}), {"allowed_channels"}, f"{w}: slimmable.kwargs")
            if "allowed_channels" in kw:
                ac = kw["allowed_channels"]
                if not isinstance(ac, list) or not ac:
                    raise ValueError(f"{w}: slimmable.kwargs.allowed_channels must be a non-empty list")
                allowed = [check_int(c, f"{w}: slimmable allowed_channels") for c in ac]
            else:
                allowed = list(range(1, channels + 1))  # Core's default for slice_channels_uniform

        spec = cls(
            input_size=check_int(d["input_size"], f"{w}: input_size"),
            condition_size=check_int(d["condition_size"], f"{w}: condition_size"),
            channels=channels, dilations=dilations, kernel_sizes=kernel_sizes, activations=activations,
            gating_modes=gating_modes, secondary=secondary, head_size=head_size, head_bias=head_bias,
            head_kernel_size=head_kernel, head_dilation=head_dilation,
            bottleneck=check_int(d.get("bottleneck", channels), f"{w}: bottleneck"),
            groups_input=check_int(d.get("groups_input", 1), f"{w}: groups_input"),
            groups_input_mixin=check_int(d.get("groups_input_mixin", 1), f"{w}: groups_input_mixin"),
            layer1x1=layer1x1, layer1x1_groups=layer1x1_groups, head1x1=head1x1,
            head1x1_out_channels=head1x1_out, head1x1_groups=head1x1_groups, films=films, allowed_channels=allowed)
        spec.validate(index)
        return spec

    @staticmethod
    def _parse_gating(d: dict[str, Any], n: int, w: str) -> tuple[list[str], list[NamActivation | None]]:
        """Core's rules: ``gating_mode`` (one value or one per layer) wins over the old ``gated`` flag; a gated or
        blended layer's secondary activation defaults to Sigmoid; non-gated layers take no secondary."""
        sec = d.get("secondary_activation")
        if "gating_mode" in d:
            gm = d["gating_mode"]
            modes = gm if isinstance(gm, list) else [gm] * n
            if len(modes) != n:
                raise ValueError(f"{w}: gating_mode list has {len(modes)} entries for {n} layers")
            for m in modes:
                if m not in GATING_MODES:
                    raise ValueError(f"{w}: gating_mode {m!r} is not one of {', '.join(GATING_MODES)}")
            if "gated" in d and (d["gated"] is True) != ("gated" in modes):  # Core reads gating_mode only
                raise ValueError(f"{w}: gated={d['gated']} contradicts gating_mode {gm!r}")
            if isinstance(sec, list) and len(sec) != n:
                raise ValueError(f"{w}: secondary_activation list has {len(sec)} entries for {n} layers")
            secs = sec if isinstance(sec, list) else [sec] * n
        else:
            gated = _check_bool(d.get("gated", False), f"{w}: gated")
            modes = ["gated" if gated else "none"] * n
            if sec is not None and not (isinstance(sec, list) and all(s in (None, "") for s in sec)):
                raise ValueError(f"{w}: secondary_activation needs gating_mode (with 'gated' Core uses Sigmoid)")
            secs = [None] * n
        secondary: list[NamActivation | None] = []
        for j, (m, s) in enumerate(zip(modes, secs)):
            if m == "none":
                if s not in (None, ""):
                    raise ValueError(f"{w}: secondary_activation of layer {j} is set but its gating_mode is "
                                     "'none' (NAM Core would ignore it)")
                secondary.append(None)
            else:
                secondary.append(NamActivation("Sigmoid") if s is None else
                                 NamActivation.from_json(s, f"{w}: secondary_activation[{j}]"))
        return list(modes), secondary

    def validate(self, index: int) -> None:
        """Core's construction checks (``detail::Layer``, ``Conv1D`` / ``Conv1x1`` group divisibility)."""
        w = f"layer array {index}"
        bn, ch = self.bottleneck, self.channels
        if not self.layer1x1 and bn != ch:
            raise ValueError(f"{w}: bottleneck ({bn}) must equal channels ({ch}) when layer1x1 is inactive")
        if "layer1x1_post_film" in self.films and not self.layer1x1:
            raise ValueError(f"{w}: layer1x1_post_film cannot be active when layer1x1.active is false")
        if "head1x1_post_film" in self.films and not self.head1x1:
            raise ValueError(f"{w}: head1x1_post_film cannot be active when head1x1.active is false")
        for j, mode in enumerate(self.gating_modes):
            mid = 2 * bn if mode != "none" else bn
            for what, cin, cout, g in (("groups_input", ch, mid, self.groups_input),
                                       ("groups_input_mixin", self.condition_size, mid, self.groups_input_mixin)):
                if cin % g or cout % g:
                    raise ValueError(f"{w}: {what}={g} must divide {cin} input and {cout} output channels")
            self.activations[j].check_channels(bn, f"{w}: activation of layer {j}", mode != "none")
            if self.secondary[j] is not None:
                self.secondary[j].check_channels(bn, f"{w}: secondary_activation of layer {j}", True)
        for what, cin, cout, g, on in (("layer1x1.groups", bn, ch, self.layer1x1_groups, self.layer1x1),
                                       ("head1x1.groups", bn, self.head1x1_out_channels, self.head1x1_groups,
                                        self.head1x1)):
            if on and (cin % g or cout % g):
                raise ValueError(f"{w}: {what}={g} must divide {cin} input and {cout} output channels")
        for key, film in self.films.items():
            for mode in set(self.gating_modes):
                out = (2 if film.shift else 1) * self.film_dim(key, mode)
                if self.condition_size % film.groups or out % film.groups:
                    raise ValueError(f"{w}: {key}.groups={film.groups} must divide the condition size "
                                     f"({self.condition_size}) and its {out} output channels")
        if self.allowed_channels is not None:
            ac = self.allowed_channels
            if any(b <= a for a, b in zip(ac, ac[1:])) or ac[-1] != ch:
                raise ValueError(f"{w}: slimmable allowed_channels {ac} must rise strictly and end at channels ({ch})")
            blockers = [k for k, v in (("groups_input", self.groups_input), ("groups_input_mixin",
                                                                              self.groups_input_mixin),
                                       ("layer1x1.groups", self.layer1x1_groups if self.layer1x1 else 1),
                                       ("head1x1.groups", self.head1x1_groups if self.head1x1 else 1)) if v != 1]
            if self.head_kernel_size != 1:
                blockers.append("head.kernel_size")
            if blockers:
                raise ValueError(f"{w}: a slimmable layer array needs {', '.join(blockers)} = 1 (as NAM Core does)")

    def film_dim(self, key: str, mode: str) -> int:
        """Channels the FiLM at ``key`` modulates in a layer with gating ``mode``."""
        bn = self.bottleneck
        mid = 2 * bn if mode != "none" else bn
        return {"conv_pre_film": self.channels, "conv_post_film": mid, "input_mixin_pre_film": self.condition_size,
                "input_mixin_post_film": mid, "activation_pre_film": mid, "activation_post_film": bn,
                "layer1x1_post_film": self.channels, "head1x1_post_film": self.head1x1_out_channels}[key]

    # -- what the spec needs ------------------------------------------------------------------------------------
    @property
    def head_width(self) -> int:
        """Channels of the head accumulator (what each layer adds to the head path)."""
        return self.head1x1_out_channels if self.head1x1 else int(self.bottleneck)

    @property
    def reach(self) -> int:
        """Input samples this array looks back (Core's ``get_receptive_field``, head rechannel included)."""
        return sum(d * (k - 1) for d, k in zip(self.dilations, self.kernel_sizes)) + \
            self.head_dilation * (self.head_kernel_size - 1)

    def a1_blockers(self) -> list[str]:
        """Features the version-0.5 layout cannot express (empty: write it as 0.5.4)."""
        out = self.v06_blockers()
        if len(set(self.activations)) > 1:
            out.append("per-layer activations")
        names = {a.legacy_name for a in self.activations}
        if None in names:
            out.append(f"{self.activations[0].type if len(names) == 1 else 'new'} activation")
        modes = set(self.gating_modes)
        if "blended" in modes:
            out.append("blended gating")
        if len(modes) > 1:
            out.append("per-layer gating modes")
        if any(s is not None and s.type != "Sigmoid" for s in self.secondary):
            out.append("secondary activation other than Sigmoid")
        if self.bottleneck != self.channels:
            out.append("bottleneck")
        if not self.layer1x1:
            out.append("layer1x1 inactive")
        if self.head1x1:
            out.append("head1x1")
        if self.groups_input != 1 or self.groups_input_mixin != 1 or self.layer1x1_groups != 1:
            out.append("grouped convs")
        out += [f"FiLM ({k})" for k in self.films]
        return out

    def v06_blockers(self) -> list[str]:
        """Features that need file version 0.7 (NAM Core >= 0.4.1 / 0.5): per-layer kernel sizes, a head conv
        with kernel > 1 or a dilation, slimmable layer arrays."""
        out = []
        if len(set(self.kernel_sizes)) > 1:
            out.append("per-layer kernel sizes")
        if self.head_kernel_size != 1:
            out.append(f"head kernel_size {self.head_kernel_size}")
        if self.head_dilation != 1:
            out.append(f"head dilation {self.head_dilation}")
        if self.allowed_channels is not None:
            out.append("slimmable layer array")
        return out

    # -- writing ------------------------------------------------------------------------------------------------
    def to_json(self, layout: str) -> dict[str, Any]:
        """The layer-array object in the 0.5, 0.6 or 0.7 layout (0.7: as NAM's trainer 0.13 writes it)."""
        if layout == "0.5":
            gated = self.gating_modes[0] == "gated"
            return {"input_size": self.input_size, "condition_size": self.condition_size,
                    "head_size": self.head_size, "channels": self.channels, "kernel_size": self.kernel_sizes[0],
                    "dilations": list(self.dilations), "activation": self.activations[0].legacy_name,
                    "gated": gated, "head_bias": self.head_bias}
        same_act = len(set(self.activations)) == 1
        out: dict[str, Any] = {"input_size": self.input_size, "condition_size": self.condition_size}
        if layout == "0.6":  # Core 0.4.0 reads head_size / head_bias and one kernel_size
            out.update(head_size=self.head_size, head_bias=self.head_bias, channels=self.channels,
                       kernel_size=self.kernel_sizes[0], dilations=list(self.dilations),
                       activation=self.activations[0].to_json() if same_act else [a.to_json()
                                                                                   for a in self.activations])
        else:
            head: dict[str, Any] = {"out_channels": self.head_size, "kernel_size": self.head_kernel_size,
                                    "bias": self.head_bias}
            if self.head_dilation != 1:
                head["head_dilation"] = self.head_dilation
            out.update(head=head, channels=self.channels, kernel_sizes=list(self.kernel_sizes),
                       dilations=list(self.dilations), activation=[a.to_json() for a in self.activations])
        out.update(
            bottleneck=self.bottleneck,
            head1x1={"active": self.head1x1, "out_channels": self.head1x1_out_channels, "groups": self.head1x1_groups},
            layer1x1={"active": self.layer1x1, "groups": self.layer1x1_groups},
            groups_input=self.groups_input, groups_input_mixin=self.groups_input_mixin)
        for key in FILM_POINTS:
            f = self.films.get(key)
            out[key] = {"active": f is not None, "shift": f.shift if f else True, "groups": f.groups if f else 1}
        out["gating_mode"] = list(self.gating_modes)
        out["secondary_activation"] = [s.to_json() if s is not None else None for s in self.secondary]
        if layout == "0.7":
            out["slimmable"] = None if self.allowed_channels is None else {
                "method": SLIM_METHOD, "kwargs": {"allowed_channels": list(self.allowed_channels)}}
        return out

    def slimmed(self, channels: int, input_size: int, head_size: int) -> LayerArraySpec:
        """This array at ``channels`` (Core's SlimmableWavenet: the bottleneck scales with the channels)."""
        s = copy.deepcopy(self)
        bn = channels if not self.layer1x1 else max(1, int(self.bottleneck) * channels // self.channels)
        s.channels, s.bottleneck, s.input_size, s.head_size = channels, bn, input_size, head_size
        s.allowed_channels = None
        return s


# ---------------------------------------------------------------------------------------------- modules


class ConvHistory:
    """Runs causal convs either on whole inputs (``buffers`` None: "valid" mode, each conv shortens its input by
    its reach) or block by block: each conv then prepends the inputs it still needs from earlier blocks (Core's
    per-conv ring buffers), one buffer per conv in call order, created as zeros on first use."""

    def __init__(self, buffers: list[torch.Tensor] | None = None) -> None:
        self.buffers = buffers
        self.pos = 0

    def __call__(self, conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
        reach = conv.dilation[0] * (conv.kernel_size[0] - 1)
        if self.buffers is None or reach == 0:
            return conv(x)
        i = self.pos
        self.pos += 1
        if i == len(self.buffers):
            self.buffers.append(x.new_zeros(x.shape[0], x.shape[1], reach))
        full = torch.cat([self.buffers[i], x], dim=2)
        self.buffers[i] = full[..., -reach:]
        return conv(full)


def _conv(cin: int, cout: int, k: int = 1, bias: bool = True, groups: int = 1, dilation: int = 1) -> nn.Conv1d:
    return nn.Conv1d(cin, cout, k, dilation=dilation, bias=bias, groups=groups)


def _tail(t: torch.Tensor, n: int) -> torch.Tensor:
    return t[..., t.shape[-1] - n:]


class FiLM(nn.Module):
    """Core's FiLM: ``scale, shift = Conv1x1(condition)`` (top / bottom halves); ``x * scale + shift``."""

    def __init__(self, condition_size: int, dim: int, spec: FiLMSpec) -> None:
        super().__init__()
        self.dim, self.shift = dim, spec.shift
        self.conv = _conv(condition_size, (2 if spec.shift else 1) * dim, 1, True, spec.groups)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        ss = self.conv(_tail(c, x.shape[-1]))
        if self.shift:
            return x * ss[:, : self.dim] + ss[:, self.dim:]
        return x * ss


class WaveNetLayer(nn.Module):
    """One layer (Core's ``detail::Layer``). Module names ``conv``, ``input_mixer`` and ``one_by_one`` (the
    layer1x1) are the A1 ones, so checkpoints of A1 models keep loading."""

    def __init__(self, spec: LayerArraySpec, j: int, legacy_gating: bool = False) -> None:
        super().__init__()
        bn = int(spec.bottleneck)
        self.mode = spec.gating_modes[j]
        self.activation = spec.activations[j]
        self.secondary = spec.secondary[j]
        self.channels, self.bottleneck = spec.channels, bn
        self.kernel_size, self.dilation = spec.kernel_sizes[j], spec.dilations[j]
        # The old engine's gated layers: act on all 2C rows, then sigmoid of the bottom half.
        self.legacy_gating = legacy_gating and self.mode == "gated" and self.secondary is not None \
            and self.secondary.type == "Sigmoid"
        mid = 2 * bn if self.mode != "none" else bn
        self.conv = _conv(spec.channels, mid, self.kernel_size, True, spec.groups_input, self.dilation)
        self.input_mixer = _conv(spec.condition_size, mid, 1, False, spec.groups_input_mixin)
        self.one_by_one = _conv(bn, spec.channels, 1, True, spec.layer1x1_groups) if spec.layer1x1 else None
        self.head1x1 = _conv(bn, spec.head1x1_out_channels, 1, True, spec.head1x1_groups) if spec.head1x1 else None
        self.films = nn.ModuleDict({k: FiLM(spec.condition_size, spec.film_dim(k, self.mode), f)
                                    for k, f in spec.films.items()})

    @property
    def gated(self) -> bool:
        return self.mode == "gated"

    @property
    def reach(self) -> int:
        return self.dilation * (self.kernel_size - 1)

    def ordered_tensors(self) -> list[torch.Tensor]:
        """Core's weight order (``Layer::set_weights_``)."""
        out = [self.conv.weight, self.conv.bias, self.input_mixer.weight]
        for m in (self.one_by_one, self.head1x1):
            if m is not None:
                out += [m.weight, m.bias]
        for key in FILM_POINTS:
            if key in self.films:
                out += [self.films[key].conv.weight, self.films[key].conv.bias]
        return out

    def _film(self, key: str, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.films[key](x, c) if key in self.films else x

    def forward(self, x: torch.Tensor, c: torch.Tensor, hist: ConvHistory,
                fast_tanh: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (N, channels, L), ``c`` the condition aligned at the end → (residual out, head out), both
        ``L − reach`` long in valid mode (``L`` when streaming)."""
        z = hist(self.conv, self._film("conv_pre_film", x, c))
        n = z.shape[-1]
        ct = _tail(c, n)
        z = self._film("conv_post_film", z, ct)
        m = self.input_mixer(self._film("input_mixin_pre_film", ct, ct))
        z = z + self._film("input_mixin_post_film", m, ct)
        z = self._film("activation_pre_film", z, ct)
        bn = self.bottleneck
        if self.mode == "none":
            a = self.activation(z, fast_tanh)
        elif self.legacy_gating:
            za = self.activation(z, fast_tanh)
            a = za[:, :bn] * torch.sigmoid(za[:, bn:])
        else:
            top, gate = self.activation(z[:, :bn], fast_tanh), self.secondary(z[:, bn:], fast_tanh)
            a = top * gate if self.mode == "gated" else gate * top + (1.0 - gate) * z[:, :bn]
        a = self._film("activation_post_film", a, ct)
        res = _tail(x, n)
        if self.one_by_one is not None:
            r = self.one_by_one(a)
            if self.mode == "blended":  # Core applies layer1x1_post_film in blended layers only
                r = self._film("layer1x1_post_film", r, ct)
            res = res + r
        head = a
        if self.head1x1 is not None:
            head = self._film("head1x1_post_film", self.head1x1(a), ct)
        return res, head


class WaveNetLayerArray(nn.Module):
    """Rechannel, layers, head rechannel (Core's ``detail::LayerArray``)."""

    def __init__(self, spec: LayerArraySpec, legacy_gating: bool = False) -> None:
        super().__init__()
        self.spec = spec
        self.rechannel = _conv(spec.input_size, spec.channels, 1, bias=False)
        self.layers = nn.ModuleList(WaveNetLayer(spec, j, legacy_gating) for j in range(len(spec.dilations)))
        self.head_rechannel = _conv(spec.head_width, spec.head_size, spec.head_kernel_size, spec.head_bias,
                                    1, spec.head_dilation)

    @property
    def reach(self) -> int:
        return self.spec.reach

    def ordered_tensors(self) -> list[torch.Tensor]:
        out = [self.rechannel.weight]
        for layer in self.layers:
            out += layer.ordered_tensors()
        out.append(self.head_rechannel.weight)
        if self.head_rechannel.bias is not None:
            out.append(self.head_rechannel.bias)
        return out

    def forward(self, x: torch.Tensor, c: torch.Tensor, head_in: torch.Tensor | None, hist: ConvHistory,
                fast_tanh: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.rechannel(x)
        head = head_in
        for layer in self.layers:
            x, a = layer(x, c, hist, fast_tanh)
            if head is None:
                head = a
            else:
                n = min(head.shape[-1], a.shape[-1])
                head = _tail(head, n) + _tail(a, n)
        assert head is not None
        return x, hist(self.head_rechannel, head)


def parse_post_stack_head(d: Any, in_channels: int) -> dict[str, Any]:
    """Validate the WaveNet config's post-stack ``head`` object (Core's ``HeadParams``)."""
    h = _object(d, _POST_HEAD_KEYS, "head", ("channels", "out_channels", "kernel_sizes", "activation"))
    if h.get("in_channels") is not None and h["in_channels"] != in_channels:
        raise ValueError(f"head.in_channels ({h['in_channels']}) must equal the last layer array's head size "
                         f"({in_channels})")
    ks = h["kernel_sizes"]
    if not isinstance(ks, list) or not ks:
        raise ValueError("head.kernel_sizes must be a non-empty list")
    return {"channels": check_int(h["channels"], "head.channels"),
            "out_channels": check_int(h["out_channels"], "head.out_channels"),
            "kernel_sizes": [check_int(k, "head.kernel_sizes") for k in ks],
            "activation": NamActivation.from_json(h["activation"], "head.activation")}


class PostStackHead(nn.Module):
    """The optional post-stack head (Core's ``detail::Head``): (activation → conv) per kernel size, applied to
    ``head_scale ×`` the last layer array's head output."""

    def __init__(self, in_channels: int, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.cfg = cfg
        ks = cfg["kernel_sizes"]
        chans = [in_channels] + [cfg["channels"]] * (len(ks) - 1) + [cfg["out_channels"]]
        self.convs = nn.ModuleList(_conv(chans[i], chans[i + 1], k) for i, k in enumerate(ks))
        for i in range(len(ks)):
            cfg["activation"].check_channels(chans[i], f"head activation {i}", False)

    @property
    def reach(self) -> int:
        return sum(k - 1 for k in self.cfg["kernel_sizes"])

    def ordered_tensors(self) -> list[torch.Tensor]:
        return [t for conv in self.convs for t in (conv.weight, conv.bias)]

    def to_json(self) -> dict[str, Any]:
        return {"channels": self.cfg["channels"], "out_channels": self.cfg["out_channels"],
                "kernel_sizes": list(self.cfg["kernel_sizes"]), "activation": self.cfg["activation"].to_json()}

    def forward(self, x: torch.Tensor, hist: ConvHistory, fast_tanh: bool = False) -> torch.Tensor:
        for conv in self.convs:
            x = hist(conv, self.cfg["activation"](x, fast_tanh))
        return x
