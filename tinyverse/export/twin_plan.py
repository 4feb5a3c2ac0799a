"""The plan of a spec model's TF/Keras twin: a list of NHWC ops with their weights already in Keras layout.

Every layer type writes its own part of the plan: ``Layer.twin_ops(twin)`` reads its inputs from a
:class:`TwinBuilder` and emits **primitive twin ops** through it (no list of layer types here). The primitives are
ops of the fixed vocabulary the TFLite worker (:mod:`tinyverse.export.tflite_worker`) knows, so a layer registered
from an extension file exports by composing them — data, not code:

=================  ===============================================  =========================================
builder call       plan op (``kind``)                               TFLite op(s) after conversion
=================  ===============================================  =========================================
``conv``           ``conv`` / ``dwconv`` (groups = in channels)     CONV_2D / DEPTHWISE_CONV_2D (+ fused act)
``dense``          ``dense``                                        FULLY_CONNECTED (+ fused act)
``pool``           ``maxpool`` / ``avgpool``                        MAX_POOL_2D / AVERAGE_POOL_2D
``act``            ``act`` (relu, relu6, tanh, sigmoid, linear)     RELU, RELU6, TANH, LOGISTIC, -
``affine``         ``affine`` (x * scale + shift, per channel)      MUL (+ ADD, unless the converter folds it)
``add``, ``mul``   ``add`` / ``mul`` (elementwise, 2+ inputs)       ADD / MUL
``mean``           ``mean`` (elementwise mean of 2+ inputs)         ADD + MUL
``concat``         ``concat``                                       CONCATENATION
``reshape``        ``reshape`` / ``permute`` / ``gather``           RESHAPE (TRANSPOSE/GATHER only if needed)
``depth_to_time``  ``reshape``                                      RESHAPE
``identity``       ``identity``                                     - (folded away)
=================  ===============================================  =========================================

Layout choice: the twin's input is NHWC ``(N, L, W, C)`` and the runners transpose the ``(N, C, L, W)`` data once,
outside the graph, so the converted graph holds no TRANSPOSE ops. Feature maps stay NHWC throughout; a flatten of
a feature map yields values in (L, W, C) order, which the next Dense absorbs by reordering its weight columns (no
op). Only a flat tensor that reaches something other than a Dense/elementwise op (a model output, a Concat, a
Reshape) is put back into torch order by a GATHER. The builder does this bookkeeping (``TwinTensor.perm``), so a
layer's ``twin_ops`` states *what* it computes in torch terms (torch-layout weights, torch axes).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from torch import nn

from tinyverse.layers.base import pair
from tinyverse.models.spec import LayerInfo, ModelSpec

BN_EPS_DEFAULT = 1e-5
ACTIVATIONS = ("relu", "relu6", "tanh", "sigmoid", "linear")  # what ``act`` and a fused ``activation`` accept


class TwinError(ValueError):
    """A spec the Keras twin cannot express. ``str()`` names the layer and what to change."""


@dataclass
class TwinTensor:
    """Where a torch tensor lives in the twin: its op name, torch per-sample shape and, for flat tensors, the torch
    index of each value (``perm``; None when values are in torch order or the tensor is a feature map)."""

    name: str
    shape: tuple[int, ...]
    perm: np.ndarray | None = None


@dataclass
class TwinPlan:
    inputs: list[dict[str, Any]] = field(default_factory=list)
    ops: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "ops": self.ops, "outputs": self.outputs}


def nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
    """(N, C, L, W) data → the twin's (N, L, W, C); other ranks are left as they are."""
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1))) if x.ndim == 4 else x


def nhwc_to_nchw(y: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(y, (0, 3, 1, 2))) if y.ndim == 4 else y


def nhwc_shape(shape: Sequence[int]) -> list[int]:
    """A torch per-sample shape (C, H, W) as the twin's (H, W, C); other ranks unchanged."""
    return [shape[1], shape[2], shape[0]] if len(shape) == 3 else list(shape)


def flat_perm(shape: Sequence[int]) -> np.ndarray:
    """Torch flat index of each value of an NHWC-flattened (C, H, W) feature map."""
    c, h, w = shape
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


def batchnorm_affine(bn: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """BatchNorm at inference as y = x * scale + shift (its own eps, so Keras' 1e-3 default never enters)."""
    var = bn.running_var.detach().double().numpy()
    mean = bn.running_mean.detach().double().numpy()
    gamma = bn.weight.detach().double().numpy() if bn.weight is not None else np.ones_like(var)
    beta = bn.bias.detach().double().numpy() if bn.bias is not None else np.zeros_like(var)
    scale = gamma / np.sqrt(var + bn.eps)
    return scale, beta - mean * scale


def torch_weights(module: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """A conv's or linear's weight and bias (zeros without one) as float64 numpy, torch layout."""
    w = module.weight.detach().double().numpy()
    b = module.bias.detach().double().numpy() if module.bias is not None else np.zeros(w.shape[0])
    return w, b


def fold_batchnorm(weight: np.ndarray, bias: np.ndarray, bn: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """A conv (O, I, kh, kw) or linear (O, I) followed by ``bn``, as one op: exact at inference, one op fewer."""
    scale, shift = batchnorm_affine(bn)
    return weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1)), bias * scale + shift


def _keras_padding(in_hw: tuple[int, int], out_hw: tuple[int, int], k: tuple[int, int], s: tuple[int, int],
                   d: tuple[int, int], p: tuple[int, int]) -> tuple[str, list[list[int]] | None]:
    """Keras 'valid'/'same' when it reproduces torch's symmetric padding exactly, else an explicit PAD."""
    if p == (0, 0):
        return "valid", None
    same_ok = True
    for n, o, kk, ss, dd, pp in zip(in_hw, out_hw, k, s, d, p):
        total = max((o - 1) * ss + (kk - 1) * dd + 1 - n, 0)
        if -(-n // ss) != o or total // 2 != pp:
            same_ok = False
    if same_ok and (s == (1, 1) or d == (1, 1)):
        return "same", None
    return "valid", [[p[0], p[0]], [p[1], p[1]]]


def _window_out(n: int, k: int, s: int, d: int, p: int) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


class TwinBuilder:
    """What ``Layer.twin_ops(twin)`` reads and writes: the layer being translated (``name``, ``module``,
    ``inputs``, ``in_shapes``, ``out_shape``) and the primitive ops it may emit. Every primitive takes and returns
    :class:`TwinTensor` s, in torch terms; the returned tensor of ``twin_ops`` is the layer's output.

    An op's name defaults to the layer's name for its first op and ``<layer>__<kind><n>`` after that.
    """

    # torch module → numpy helpers, here so that a layer's twin_ops needs no import
    torch_weights = staticmethod(torch_weights)
    fold_batchnorm = staticmethod(fold_batchnorm)
    batchnorm_affine = staticmethod(batchnorm_affine)

    def __init__(self, model: nn.Module, spec: ModelSpec) -> None:
        self.spec = spec
        self.plan = TwinPlan()
        self._modules: dict[str, nn.Module] = dict(model.layers.items())  # type: ignore[attr-defined]
        self._where: dict[str, TwinTensor] = {}
        self._names: set[str] = set()
        self._info: LayerInfo | None = None
        for name, shape in spec.inputs.items():
            self.plan.inputs.append({"name": name, "shape": nhwc_shape(shape)})
            self._where[name] = TwinTensor(name, tuple(shape))
            self._names.add(name)

    # -- the layer being translated ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._info.name

    @property
    def module(self) -> nn.Module:
        return self._modules[self._info.name]

    @property
    def inputs(self) -> list[TwinTensor]:
        return [self._where[s] for s in self._info.sources]

    @property
    def in_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(s) for s in self._info.in_shapes]

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(self._info.out_shape)

    def error(self, message: str) -> TwinError:
        """A TwinError naming the layer: ``raise twin.error("...")``."""
        return TwinError(f"layers.{self.name}: {message}")

    # -- building --------------------------------------------------------------------------------------------
    def translate(self) -> TwinPlan:
        for name, info in self.spec.info.items():
            self._info = info
            out = info.layer.twin_ops(self)
            if not isinstance(out, TwinTensor):
                raise self.error(f"{info.layer.type_name()}.twin_ops returned {type(out).__name__}; return the "
                                 f"TwinTensor of the layer's output (what the builder's last call returned)")
            if tuple(out.shape) != tuple(info.out_shape):
                raise self.error(f"{info.layer.type_name()}.twin_ops produced shape {list(out.shape)} but the spec "
                                 f"says {list(info.out_shape)}")
            self._where[name] = out
        self.plan.outputs = [self.materialize(self._where[o]).name for o in self.spec.outputs]
        return self.plan

    def _op_name(self, kind: str, name: str | None) -> str:
        if name is None:
            name = self.name if self.name not in self._names else f"{self.name}__{kind}"
            n = 1
            while name in self._names:
                n += 1
                name = f"{self.name}__{kind}{n}"
        elif name in self._names:
            raise self.error(f"twin op name {name!r} is used twice")
        self._names.add(name)
        return name

    def emit(self, kind: str, srcs: Sequence[TwinTensor], torch_shape: Sequence[int], *, name: str | None = None,
             perm: np.ndarray | None = None, weights: dict[str, np.ndarray] | None = None,
             **attrs: Any) -> TwinTensor:
        """Append one op of the worker's vocabulary (the module docstring) whose output has ``torch_shape``; prefer
        the typed calls below. ``attrs`` are the op's fields, ``weights`` its arrays (Keras layout)."""
        op = {"kind": kind, "name": self._op_name(kind, name), "src": [s.name for s in srcs], **attrs}
        for key, arr in (weights or {}).items():
            self.plan.weights[f"{op['name']}/{key}"] = np.asarray(arr, dtype=np.float32)
        self.plan.ops.append(op)
        return TwinTensor(op["name"], tuple(int(d) for d in torch_shape), perm)

    def materialize(self, x: TwinTensor) -> TwinTensor:
        """``x`` in torch order (one GATHER, shared) — needed before outputs, Concat and Reshape of flat values."""
        if x.perm is None or np.array_equal(x.perm, np.arange(len(x.perm))):
            return TwinTensor(x.name, x.shape)
        gname = f"{x.name}__torch_order"
        if gname not in self._names:
            self.emit("gather", [x], x.shape, name=gname, indices=np.argsort(x.perm).tolist())
        return TwinTensor(gname, x.shape)

    # -- primitives ------------------------------------------------------------------------------------------
    def conv(self, x: TwinTensor, weight: np.ndarray, bias: np.ndarray | None = None, *, stride: Any = 1,
             dilation: Any = 1, padding: Any = 0, groups: int = 1, activation: str | None = None,
             name: str | None = None) -> TwinTensor:
        """A torch ``Conv2d`` on a (C, H, W) map: ``weight`` (O, I/groups, kh, kw), symmetric ``padding``.
        groups = 1 → CONV_2D; groups = in channels → DEPTHWISE_CONV_2D; ``activation`` is fused."""
        if len(x.shape) != 3:
            raise self.error(f"conv needs a (C, L, W) input, got shape {list(x.shape)}")
        w = np.asarray(weight, dtype=np.float64)
        b = np.zeros(w.shape[0]) if bias is None else np.asarray(bias, dtype=np.float64)
        cin, h_in, w_in = x.shape
        cout = w.shape[0]
        k, s, d, p = tuple(w.shape[2:]), pair(stride), pair(dilation), pair(padding, 0)
        if s != (1, 1) and d != (1, 1):
            raise self.error(f"Keras cannot combine stride {s} with dilation {d}; use one of them")
        out_hw = (_window_out(h_in, k[0], s[0], d[0], p[0]), _window_out(w_in, k[1], s[1], d[1], p[1]))
        pad_mode, pad = _keras_padding((h_in, w_in), out_hw, k, s, d, p)
        op = {"strides": list(s), "dilation": list(d), "padding": pad_mode, "pad": pad,
              "activation": self._activation(activation)}
        shape = (cout, *out_hw)
        if groups == 1:
            return self.emit("conv", [x], shape, name=name, weights={"w": w.transpose(2, 3, 1, 0), "b": b}, **op)
        if groups == cin and cout % cin == 0:
            mult = cout // cin  # torch out channel c*mult+j ↔ keras (c, j)
            return self.emit("dwconv", [x], shape, name=name, depth_multiplier=mult,
                             weights={"w": w.reshape(cin, mult, *k).transpose(2, 3, 0, 1), "b": b}, **op)
        raise self.error(f"grouped conv (groups={groups}, in={cin}) has no TFLM kernel; use groups=1 or a "
                         f"depthwise conv")

    def dense(self, x: TwinTensor, weight: np.ndarray, bias: np.ndarray | None = None, *,
              activation: str | None = None, name: str | None = None) -> TwinTensor:
        """A torch ``Linear`` on flat values: ``weight`` (out, in) in torch input order; ``activation`` is fused."""
        w = np.asarray(weight, dtype=np.float64)
        if x.perm is not None:
            w = w[:, x.perm]  # keras input value i is torch value perm[i]
        b = np.zeros(w.shape[0]) if bias is None else np.asarray(bias, dtype=np.float64)
        return self.emit("dense", [x], (w.shape[0],), name=name, activation=self._activation(activation),
                         weights={"w": w.T, "b": b})

    def pool(self, x: TwinTensor, kind: str, kernel: Any, stride: Any = None, padding: Any = 0, *,
             name: str | None = None) -> TwinTensor:
        """Max or average pooling (``kind``: "max" / "avg") with torch's geometry (stride None = kernel)."""
        if kind not in ("max", "avg"):
            raise self.error(f"pool kind must be 'max' or 'avg', got {kind!r}")
        k = pair(kernel)
        s = pair(stride) if stride is not None else k
        p = pair(padding, 0)
        c, h, w = x.shape
        out_hw = (_window_out(h, k[0], s[0], 1, p[0]), _window_out(w, k[1], s[1], 1, p[1]))
        pad_mode, pad = _keras_padding((h, w), out_hw, k, s, (1, 1), p)
        if pad is not None and kind == "max":
            raise self.error(f"MaxPool padding {p} has no exact TFLite form; use padding 0")
        return self.emit(f"{kind}pool", [x], (c, *out_hw), name=name, pool=list(k), strides=list(s),
                         padding=pad_mode, pad=pad)

    def act(self, x: TwinTensor, fn: str, *, name: str | None = None) -> TwinTensor:
        """An elementwise activation (``ACTIVATIONS``)."""
        return self.emit("act", [x], x.shape, name=name, perm=x.perm, fn=self._activation(fn))

    def affine(self, x: TwinTensor, scale: Any, shift: Any = 0.0, *, name: str | None = None) -> TwinTensor:
        """x * scale + shift: scalars, or one value per channel (feature maps) / per feature (flat, torch order)."""
        scale = np.broadcast_to(np.asarray(scale, np.float64), (x.shape[0],)).copy()
        shift = np.broadcast_to(np.asarray(shift, np.float64), (x.shape[0],)).copy()
        if x.perm is not None:
            scale, shift = scale[x.perm], shift[x.perm]
        return self.emit("affine", [x], x.shape, name=name, perm=x.perm, weights={"scale": scale, "shift": shift})

    def add(self, xs: Sequence[TwinTensor], *, name: str | None = None) -> TwinTensor:
        return self._elementwise("add", xs, name)

    def mul(self, xs: Sequence[TwinTensor], *, name: str | None = None) -> TwinTensor:
        return self._elementwise("mul", xs, name)

    def mean(self, xs: Sequence[TwinTensor], *, name: str | None = None) -> TwinTensor:
        return self._elementwise("mean", xs, name)

    def _elementwise(self, kind: str, xs: Sequence[TwinTensor], name: str | None) -> TwinTensor:
        if len(xs) < 2 or len({tuple(x.shape) for x in xs}) != 1:
            raise self.error(f"{kind} needs two or more inputs of one shape, got {[list(x.shape) for x in xs]}")
        perms = [x.perm for x in xs]
        same = all((p is None and perms[0] is None) or (p is not None and perms[0] is not None
                                                         and np.array_equal(p, perms[0])) for p in perms)
        srcs = list(xs) if same else [self.materialize(x) for x in xs]
        return self.emit(kind, srcs, xs[0].shape, name=name, perm=perms[0] if same else None)

    def concat(self, xs: Sequence[TwinTensor], axis: int = 0, *, name: str | None = None) -> TwinTensor:
        """Concatenate along torch per-sample ``axis`` (0 = channels / features)."""
        rank = len(xs[0].shape)
        axis = axis % rank
        keras_axis = {0: 3, 1: 1, 2: 2}[axis] if rank == 3 else axis + 1
        shape = list(xs[0].shape)
        shape[axis] = sum(x.shape[axis] for x in xs)
        return self.emit("concat", [self.materialize(x) for x in xs], shape, name=name, axis=keras_axis)

    def identity(self, x: TwinTensor, *, name: str | None = None) -> TwinTensor:
        return self.emit("identity", [x], x.shape, name=name, perm=x.perm)

    def depth_to_time(self, x: TwinTensor, factor: int, *, name: str | None = None) -> TwinTensor:
        """(C*r, L, 1) → (C, L*r, 1) with block-major channels: NHWC (L, 1, r*C) and (L*r, 1, C) hold the same
        bytes in that order, so it is a RESHAPE (no copy)."""
        c, length, w = x.shape
        shape = (c // factor, length * factor, w)
        return self.emit("reshape", [self.materialize(x)], shape, name=name, shape=nhwc_shape(shape))

    def reshape(self, x: TwinTensor, shape: Sequence[int], *, name: str | None = None) -> TwinTensor:
        """A torch ``reshape`` per sample, with as little data movement as the layout allows."""
        in_shape, out_shape = tuple(x.shape), tuple(int(d) for d in shape)
        if len(in_shape) == 3 and len(out_shape) == 1:  # flatten: keep NHWC order, remember the permutation
            return self.emit("reshape", [x], out_shape, name=name, perm=flat_perm(in_shape), shape=[out_shape[0]])
        if in_shape == out_shape:
            return self.identity(x, name=name)
        if len(in_shape) == 1 and len(out_shape) == 1:
            return self.emit("identity", [self.materialize(x)], out_shape, name=name)
        if len(out_shape) == 3 and x.perm is None and self._sole_dense_reader(x):
            # an FC read only here (an autoencoder's expand layer): put its outputs in NHWC order instead, so the
            # reshape is a plain RESHAPE and the .tflite holds no TRANSPOSE
            perm = flat_perm(out_shape)
            self.plan.weights[f"{x.name}/w"] = self.plan.weights[f"{x.name}/w"][:, perm]
            self.plan.weights[f"{x.name}/b"] = self.plan.weights[f"{x.name}/b"][perm]
            return self.emit("reshape", [x], out_shape, name=name, shape=nhwc_shape(out_shape))
        # general reshape: go to torch order, reshape there, come back to NHWC (TRANSPOSE ops)
        final = self._op_name("reshape", name)
        self._names.discard(final)  # reserved for the last op below
        src = self.materialize(x)
        if len(in_shape) == 3:
            src = self.emit("permute", [src], in_shape, name=f"{final}__to_nchw", dims=[3, 1, 2])
        tgt = final if len(out_shape) != 3 else f"{final}__nchw"
        out = self.emit("reshape", [src], out_shape, name=tgt, shape=list(out_shape))
        if len(out_shape) == 3:
            out = self.emit("permute", [out], out_shape, name=final, dims=[2, 3, 1])
        return out

    def _sole_dense_reader(self, x: TwinTensor) -> bool:
        """True when ``x`` is the Dense op of a layer that only the current layer reads (and no model output)."""
        readers = [n for n, i in self.spec.info.items() if x.name in i.sources]
        return (readers == [self.name] and x.name not in self.spec.outputs
                and any(o["name"] == x.name and o["kind"] == "dense" for o in self.plan.ops))

    def _activation(self, fn: str | None) -> str | None:
        if fn is not None and fn not in ACTIVATIONS:
            raise self.error(f"activation {fn!r} is not a twin primitive; use one of {', '.join(ACTIVATIONS)}")
        return fn


def build_plan(model: nn.Module, spec: ModelSpec) -> TwinPlan:
    """Translate a GenericModelWithSpec into a TwinPlan: each layer's ``twin_ops`` emits its primitive ops."""
    return TwinBuilder(model, spec).translate()
