"""The plan of a spec model's TF/Keras twin: a list of NHWC ops with their weights already in Keras layout.

The plan is built here from the torch module and its spec (no TensorFlow import); ``_keras_twin`` turns it
into a Keras model in a subprocess. Layout choice: the twin's input is NHWC ``(N, L, W, C)`` and the runners
transpose the ``(N, C, L, W)`` data once, outside the graph, so the converted graph holds no TRANSPOSE ops.
Feature maps stay NHWC throughout; a flatten of a feature map yields values in (L, W, C) order, which the
next Dense absorbs by reordering its weight columns (no op). Only a flat tensor that reaches something other
than a Dense/elementwise op (a model output, a Concat, a Reshape) is put back into torch order by a GATHER.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from tinyverse.layers import (Add, AvgPoolLayer, BatchNormLayer, Concat, DepthToTimeLayer, DropoutLayer,
                              GlobalAvgPoolLayer, LinearLayer, MaxPoolLayer, Mean, ReLULayer, ReshapeLayer,
                              SigmoidLayer, TanhLayer)
from tinyverse.layers.base import pair
from tinyverse.layers.conv import _ConvBase
from tinyverse.models.spec import ModelSpec

BN_EPS_DEFAULT = 1e-5


class TwinError(ValueError):
    """A spec the Keras twin cannot express. ``str()`` names the layer and what to change."""


@dataclass
class _Tensor:
    """Where a torch tensor lives in the twin: its op name and, for flat tensors, the torch index of each value."""

    name: str
    torch_shape: tuple[int, ...]
    perm: np.ndarray | None = None  # flat tensors only: keras value i holds torch value perm[i]


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


def _nhwc_shape(shape: tuple[int, ...]) -> list[int]:
    return [shape[1], shape[2], shape[0]] if len(shape) == 3 else list(shape)


def _flat_perm(shape: tuple[int, ...]) -> np.ndarray:
    """Torch flat index of each value of an NHWC-flattened (C, H, W) feature map."""
    c, h, w = shape
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


def _conv_parts(module: nn.Module) -> tuple[nn.Conv2d, nn.BatchNorm2d | None]:
    mods = list(module) if isinstance(module, nn.Sequential) else [module]
    conv = next(m for m in mods if isinstance(m, nn.Conv2d))
    bn = next((m for m in mods if isinstance(m, nn.BatchNorm2d)), None)
    return conv, bn


def _bn_affine(bn: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """BatchNorm at inference as y = x * scale + shift (its own eps, so Keras' 1e-3 default never enters)."""
    var = bn.running_var.detach().double().numpy()
    mean = bn.running_mean.detach().double().numpy()
    gamma = bn.weight.detach().double().numpy() if bn.weight is not None else np.ones_like(var)
    beta = bn.bias.detach().double().numpy() if bn.bias is not None else np.zeros_like(var)
    scale = gamma / np.sqrt(var + bn.eps)
    return scale, beta - mean * scale


def _padding(in_hw: tuple[int, int], out_hw: tuple[int, int], k: tuple[int, int], s: tuple[int, int],
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


def build_plan(model: nn.Module, spec: ModelSpec) -> TwinPlan:
    """Translate a GenericModelWithSpec into a TwinPlan (weights copied, BN folded, Dense rows reordered)."""
    modules: dict[str, nn.Module] = dict(model.layers.items())  # type: ignore[attr-defined]
    plan = TwinPlan()
    where: dict[str, _Tensor] = {}
    for name, shape in spec.inputs.items():
        plan.inputs.append({"name": name, "shape": _nhwc_shape(shape)})
        where[name] = _Tensor(name, shape)

    def add(op: dict[str, Any], **arrays: np.ndarray) -> None:
        for key, arr in arrays.items():
            plan.weights[f"{op['name']}/{key}"] = np.asarray(arr, dtype=np.float32)
        plan.ops.append(op)

    def materialize(t: _Tensor) -> str:
        """A flat tensor in torch order (GATHER once) — needed before outputs, Concat and Reshape."""
        if t.perm is None or np.array_equal(t.perm, np.arange(len(t.perm))):
            return t.name
        gname = f"{t.name}__torch_order"
        if not any(o["name"] == gname for o in plan.ops):
            add({"kind": "gather", "name": gname, "src": [t.name], "indices": np.argsort(t.perm).tolist()})
        return gname

    def sole_dense_consumer(src: str, consumer: str) -> bool:
        """True when ``src`` is a Dense op of the plan that only ``consumer`` reads (and no model output)."""
        readers = [n for n, i in spec.info.items() if src in i.sources]
        return (readers == [consumer] and src not in spec.outputs
                and any(o["name"] == src and o["kind"] == "dense" for o in plan.ops))

    for name, info in spec.info.items():
        layer, module = info.layer, modules[name]
        srcs = [where[s] for s in info.sources]
        src_names = [s.name for s in srcs]
        out = _Tensor(name, info.out_shape)
        if isinstance(layer, _ConvBase):
            conv, bn = _conv_parts(module)
            w = conv.weight.detach().double().numpy()  # (O, I/g, kh, kw)
            b = conv.bias.detach().double().numpy() if conv.bias is not None else np.zeros(w.shape[0])
            if bn is not None:  # fold BN into the conv: exact at inference, one op fewer
                scale, shift = _bn_affine(bn)
                w = w * scale[:, None, None, None]
                b = b * scale + shift
            cin, cout, groups = info.in_shapes[0][0], info.out_shape[0], conv.groups
            k, s, d = pair(conv.kernel_size), pair(conv.stride), pair(conv.dilation)
            if s != (1, 1) and d != (1, 1):
                raise TwinError(f"layers.{name}: Keras cannot combine stride {s} with dilation {d}; use one of them")
            padding, pad = _padding(info.in_shapes[0][1:], info.out_shape[1:], k, s, d, pair(conv.padding, 0))
            op = {"name": name, "src": src_names, "strides": list(s), "dilation": list(d), "padding": padding,
                  "pad": pad, "activation": "relu" if any(isinstance(m, nn.ReLU) for m in
                                                          (module if isinstance(module, nn.Sequential) else []))
                  else None}
            if groups == 1:
                add({"kind": "conv", **op}, w=w.transpose(2, 3, 1, 0), b=b)
            elif groups == cin and cout % cin == 0:
                mult = cout // cin  # torch out channel c*mult+j ↔ keras (c, j)
                add({"kind": "dwconv", "depth_multiplier": mult, **op},
                    w=w.reshape(cin, mult, *k).transpose(2, 3, 0, 1), b=b)
            else:
                raise TwinError(f"layers.{name}: grouped conv (groups={groups}, in={cin}) has no TFLM kernel; "
                                f"use groups=1 or a depthwise conv")
        elif isinstance(layer, (MaxPoolLayer, AvgPoolLayer)):
            k, s, p = layer._geometry()
            padding, pad = _padding(info.in_shapes[0][1:], info.out_shape[1:], k, s, (1, 1), p)
            if pad is not None and isinstance(layer, MaxPoolLayer):
                raise TwinError(f"layers.{name}: MaxPool padding {p} has no exact TFLite form; use padding 0")
            kind = "maxpool" if isinstance(layer, MaxPoolLayer) else "avgpool"
            add({"kind": kind, "name": name, "src": src_names, "pool": list(k), "strides": list(s),
                 "padding": padding, "pad": pad})
        elif isinstance(layer, GlobalAvgPoolLayer):
            _, h, w_ = info.in_shapes[0]
            add({"kind": "avgpool", "name": name, "src": src_names, "pool": [h, w_], "strides": [h, w_],
                 "padding": "valid", "pad": None})
        elif isinstance(layer, LinearLayer):
            fc = module[0] if isinstance(module, nn.Sequential) else module
            w = fc.weight.detach().double().numpy()  # (out, in) in torch input order
            if srcs[0].perm is not None:
                w = w[:, srcs[0].perm]  # keras input value i is torch value perm[i]
            b = fc.bias.detach().double().numpy() if fc.bias is not None else np.zeros(w.shape[0])
            add({"kind": "dense", "name": name, "src": src_names, "activation": "relu" if layer.relu else None},
                w=w.T, b=b)
        elif isinstance(layer, ReshapeLayer):
            in_shape, out_shape = info.in_shapes[0], info.out_shape
            if len(in_shape) == 3 and len(out_shape) == 1:
                add({"kind": "reshape", "name": name, "src": src_names, "shape": [int(out_shape[0])]})
                out.perm = _flat_perm(in_shape)
            elif in_shape == out_shape:
                add({"kind": "identity", "name": name, "src": src_names})
                out.perm = srcs[0].perm
            elif len(in_shape) == 1 and len(out_shape) == 1:
                add({"kind": "identity", "name": name, "src": [materialize(srcs[0])]})
            elif len(out_shape) == 3 and srcs[0].perm is None and sole_dense_consumer(info.sources[0], name):
                # an FC read only here (an autoencoder's expand layer): put its outputs in NHWC order instead, so
                # the reshape is a plain RESHAPE and the .tflite holds no TRANSPOSE
                perm = _flat_perm(out_shape)
                src = srcs[0].name
                plan.weights[f"{src}/w"] = plan.weights[f"{src}/w"][:, perm]
                plan.weights[f"{src}/b"] = plan.weights[f"{src}/b"][perm]
                add({"kind": "reshape", "name": name, "src": src_names, "shape": _nhwc_shape(out_shape)})
            else:
                # general reshape: go to torch order, reshape there, come back to NHWC (TRANSPOSE ops)
                src = materialize(srcs[0])
                if len(in_shape) == 3:
                    add({"kind": "permute", "name": f"{name}__to_nchw", "src": [src], "dims": [3, 1, 2]})
                    src = f"{name}__to_nchw"
                tgt = name if len(out_shape) != 3 else f"{name}__nchw"
                add({"kind": "reshape", "name": tgt, "src": [src], "shape": list(out_shape)})
                if len(out_shape) == 3:
                    add({"kind": "permute", "name": name, "src": [tgt], "dims": [2, 3, 1]})
        elif isinstance(layer, DepthToTimeLayer):
            # NHWC (L, 1, r*C) and (L*r, 1, C) hold the same bytes in this channel order: a RESHAPE, no copy.
            add({"kind": "reshape", "name": name, "src": [materialize(srcs[0])], "shape": _nhwc_shape(info.out_shape)})
        elif isinstance(layer, DropoutLayer):
            add({"kind": "identity", "name": name, "src": src_names})
            out.perm = srcs[0].perm
        elif isinstance(layer, (ReLULayer, TanhLayer, SigmoidLayer)):
            fn = {ReLULayer: "relu", TanhLayer: "tanh", SigmoidLayer: "sigmoid"}[type(layer)]
            add({"kind": "act", "name": name, "src": src_names, "fn": fn})
            out.perm = srcs[0].perm
        elif isinstance(layer, BatchNormLayer):
            scale, shift = _bn_affine(module)
            if srcs[0].perm is not None:
                scale, shift = scale[srcs[0].perm], shift[srcs[0].perm]
            add({"kind": "affine", "name": name, "src": src_names}, scale=scale, shift=shift)
            out.perm = srcs[0].perm
        elif isinstance(layer, (Add, Mean)):
            perms = [s.perm for s in srcs]
            same = all((p is None and perms[0] is None) or (p is not None and perms[0] is not None
                                                             and np.array_equal(p, perms[0])) for p in perms)
            names = src_names if same else [materialize(s) for s in srcs]
            add({"kind": "add" if isinstance(layer, Add) else "mean", "name": name, "src": names})
            out.perm = perms[0] if same else None
        elif isinstance(layer, Concat):
            rank = len(info.in_shapes[0])
            axis = layer.axis % rank
            keras_axis = {0: 3, 1: 1, 2: 2}[axis] if rank == 3 else axis + 1
            add({"kind": "concat", "name": name, "src": [materialize(s) for s in srcs], "axis": keras_axis})
        else:
            raise TwinError(f"layers.{name}: {layer.type_name()} has no Keras twin yet "
                            f"(supported: convs, pools, GAP, Linear, Reshape, DepthToTime, Dropout, "
                            f"ReLU/Tanh/Sigmoid, BatchNorm, Add, Mean, Concat)")
        where[name] = out
    plan.outputs = [materialize(where[o]) for o in spec.outputs]
    return plan
