"""Subprocess worker: build the Keras twin from a TwinPlan, check it against torch, convert to TFLite.

It knows a fixed vocabulary of primitive ops (``kind``; see ``twin_plan``'s table): conv, dwconv, dense, maxpool,
avgpool, act, affine, add, mul, mean, concat, reshape, permute, gather, identity. A layer type never ships Keras code:
its ``twin_ops`` composes these.

Run as a script (``python _keras_twin.py JOB_DIR``) so TensorFlow is imported only here and a converter crash
cannot take the caller down. JOB_DIR holds plan.json, weights.npz, calib.npy, ref_in.npy, ref_out.npy and
job.json ({"float": path|null, "int8": path|null, "tolerance": float}); the worker writes result.json.
Uses tf_keras (Keras 2): its layers convert to single fused TFLite ops (see shared/reference/toolchain.md).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402


def build(plan: dict, weights: dict):
    import tensorflow as tf
    import tf_keras as keras
    L = keras.layers

    tensors = {}
    model_inputs = []
    for inp in plan["inputs"]:
        t = keras.Input(shape=tuple(inp["shape"]), batch_size=1, name=inp["name"])
        tensors[inp["name"]] = t
        model_inputs.append(t)

    def w(op, key):
        return weights[f"{op['name']}/{key}"]

    def act(fn):  # relu6 as tf.nn.relu6: the converter fuses it (RELU6) like relu
        return tf.nn.relu6 if fn == "relu6" else fn

    for op in plan["ops"]:
        kind, name = op["kind"], op["name"]
        xs = [tensors[s] for s in op["src"]]
        x = xs[0]
        if kind in ("conv", "dwconv", "maxpool", "avgpool") and op.get("pad"):
            x = L.ZeroPadding2D(padding=tuple(tuple(p) for p in op["pad"]), name=f"{name}__pad")(x)
        if kind == "conv":
            kernel = w(op, "w")
            layer = L.Conv2D(kernel.shape[3], kernel.shape[:2], strides=op["strides"], padding=op["padding"],
                             dilation_rate=op["dilation"], activation=act(op["activation"]), name=name)
            y = layer(x)
            layer.set_weights([kernel, w(op, "b")])
        elif kind == "dwconv":
            kernel = w(op, "w")
            layer = L.DepthwiseConv2D(kernel.shape[:2], strides=op["strides"], padding=op["padding"],
                                      depth_multiplier=op["depth_multiplier"], dilation_rate=op["dilation"],
                                      activation=act(op["activation"]), name=name)
            y = layer(x)
            layer.set_weights([kernel, w(op, "b")])
        elif kind == "dense":
            kernel = w(op, "w")
            layer = L.Dense(kernel.shape[1], activation=act(op["activation"]), name=name)
            y = layer(x)
            layer.set_weights([kernel, w(op, "b")])
        elif kind == "maxpool":
            y = L.MaxPooling2D(op["pool"], op["strides"], padding=op["padding"], name=name)(x)
        elif kind == "avgpool":
            y = L.AveragePooling2D(op["pool"], op["strides"], padding=op["padding"], name=name)(x)
        elif kind == "reshape":
            y = L.Reshape(tuple(op["shape"]), name=name)(x)
        elif kind == "permute":
            y = L.Permute(tuple(op["dims"]), name=name)(x)
        elif kind == "gather":
            idx = tf.constant(op["indices"], dtype=tf.int32)
            y = L.Lambda(lambda t, idx=idx: tf.gather(t, idx, axis=-1), name=name)(x)
        elif kind == "identity":
            y = L.Activation("linear", name=name)(x)
        elif kind == "act":
            y = L.Activation(act(op["fn"]), name=name)(x)
        elif kind == "affine":
            scale, shift = tf.constant(w(op, "scale")), tf.constant(w(op, "shift"))
            y = L.Lambda(lambda t, s=scale, b=shift: t * s + b, name=name)(x)
        elif kind == "add":
            y = L.Add(name=name)(xs)
        elif kind == "mul":
            y = L.Multiply(name=name)(xs)
        elif kind == "mean":
            y = L.Average(name=name)(xs)
        elif kind == "concat":
            y = L.Concatenate(axis=op["axis"], name=name)(xs)
        else:
            raise ValueError(f"unknown twin op kind {kind!r} ({name})")
        tensors[name] = y
    outputs = [tensors[o] for o in plan["outputs"]]
    return keras.Model(model_inputs, outputs if len(outputs) > 1 else outputs[0])


def convert(model, calib: np.ndarray | None) -> bytes:
    import tensorflow as tf

    spec = [tf.TensorSpec(t.shape, tf.float32, name=t.name.split(":")[0]) for t in model.inputs]
    fn = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0]))
    concrete = fn.get_concrete_function(*spec)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    if calib is not None:
        def representative():
            for i in range(calib.shape[0]):
                yield [calib[i:i + 1].astype(np.float32)]
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


def main(job_dir: str) -> int:
    job_path = Path(job_dir)
    job = json.loads((job_path / "job.json").read_text())
    plan = json.loads((job_path / "plan.json").read_text())
    weights = dict(np.load(job_path / "weights.npz"))
    result: dict = {}
    t0 = time.perf_counter()
    model = build(plan, weights)
    result["build_s"] = time.perf_counter() - t0
    ref_in, ref_out = np.load(job_path / "ref_in.npy"), np.load(job_path / "ref_out.npy")
    twin = np.asarray(model(ref_in, training=False))
    if twin.ndim == 4:  # back to the torch layout of the reference
        twin = np.transpose(twin, (0, 3, 1, 2))
    diff = float(np.max(np.abs(twin - ref_out)))
    result["twin_max_abs_diff"] = diff
    if diff > job["tolerance"] * max(1.0, float(np.max(np.abs(ref_out)))):
        result["error"] = (f"the Keras twin disagrees with torch: max abs diff {diff:.3g} > tolerance "
                           f"{job['tolerance']:.1g}; a layer was translated wrongly")
        (job_path / "result.json").write_text(json.dumps(result))
        return 2
    for kind, calib in (("float", None), ("int8", np.load(job_path / "calib.npy"))):
        if not job.get(kind):
            continue
        t0 = time.perf_counter()
        Path(job[kind]).write_bytes(convert(model, calib))
        result[f"convert_{kind}_s"] = time.perf_counter() - t0
    (job_path / "result.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
