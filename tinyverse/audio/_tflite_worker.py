"""Subprocess worker: build the Keras twin of an audio model from its plan, check it against torch, convert.

Run as a script (``python _tflite_worker.py JOB_DIR``) so TensorFlow is imported only here and a converter crash
cannot take the caller down. JOB_DIR holds ``plan.json`` (ops, see :mod:`tinyverse.audio.tflite`),
``weights.npz``, ``calib.npy`` (representative inputs), ``ref_in.npy`` / ``ref_out.npy`` (torch reference) and
``job.json`` (``{"float": path|null, "int8": path|null, "int16": path|null, "tolerance": float}``); writes
``result.json``. WaveNet / Linear are traced as a ``tf.function``; the LSTM uses tf_keras (Keras 2), whose LSTM
converts to one fused UNIDIRECTIONAL_SEQUENCE_LSTM op.

Layout: the input is ``(1, L, 1, 1)`` (NHWC, time on H) for context models, so every conv is a CONV_2D with a
(K, 1) kernel and a dilation factor (no transposes); ``(1, L, 1)`` for the LSTM.
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


def _activation(fn: str):
    import tensorflow as tf

    if fn == "tanh":
        return tf.tanh
    if fn == "sigmoid":
        return tf.sigmoid
    if fn == "relu":
        return tf.nn.relu
    if fn == "hardtanh":
        return lambda t: tf.clip_by_value(t, -1.0, 1.0)
    if fn == "fasttanh":  # Core's rational approximation (tinyverse.audio.nam.fast_tanh)
        def fast(t):
            ax, x2 = tf.abs(t), t * t
            num = t * (2.45550750702956 + 2.45550750702956 * ax + (0.893229853513558 + 0.821226666969744 * ax) * x2)
            den = 2.44506634652299 + (2.44506634652299 + x2) * tf.abs(t + 0.814642734961073 * t * ax)
            return num / den
        return fast
    raise ValueError(f"unknown activation {fn!r}")


def build(plan: dict, weights: dict):
    """A callable for ``(1, *input_shape)`` float inputs and the converter for it.

    Context models are traced as plain ``tf.function`` graphs with constant weights (converting a ~200-layer
    Keras model took 30-100 s; the same graph as a tf.function converts in ~2 s). The LSTM is a tf_keras model:
    only its layer converts to the fused UNIDIRECTIONAL_SEQUENCE_LSTM op.
    """
    import tensorflow as tf

    shape = [1, *plan["input_shape"]]
    if any(op["kind"] == "lstm" for op in plan["ops"]):
        import tf_keras as keras

        inp = keras.Input(shape=tuple(plan["input_shape"]), batch_size=1, name="x")
        t = inp
        for op in plan["ops"]:
            if op["kind"] == "lstm":
                layer = keras.layers.LSTM(op["units"], return_sequences=True, name=op["name"])
                t = layer(t)
                layer.set_weights([weights[f"{op['name']}/kernel"], weights[f"{op['name']}/recurrent"],
                                   weights[f"{op['name']}/b"]])
            elif op["kind"] == "dense":
                layer = keras.layers.Dense(1, name=op["name"])
                t = layer(t)
                layer.set_weights([weights[f"{op['name']}/w"], weights[f"{op['name']}/b"]])
            else:
                raise ValueError(f"op kind {op['kind']!r} in an LSTM plan")
        model = keras.Model(inp, t)
        return (lambda x: model(x, training=False)), (lambda: tf.lite.TFLiteConverter.from_keras_model(model))

    consts = {k: tf.constant(v) for k, v in weights.items()}

    def graph(x):
        tensors = {"x": x}
        for op in plan["ops"]:
            kind, name = op["kind"], op["name"]
            xs = [tensors[s] for s in op["src"]]
            if kind == "conv":
                y = tf.nn.conv2d(xs[0], consts[f"{name}/w"], 1, "VALID", dilations=[op["dilation"], 1])
                if op["bias"]:
                    y = tf.nn.bias_add(y, consts[f"{name}/b"])
            elif kind == "crop":  # drop the oldest `top` samples along time
                y = xs[0][:, op["top"]:]
            elif kind == "add":
                y = tf.add(xs[0], xs[1])
            elif kind == "mul":
                y = tf.multiply(xs[0], xs[1])
            elif kind == "act":
                y = _activation(op["fn"])(xs[0])
            else:
                raise ValueError(f"unknown op kind {kind!r} ({name})")
            tensors[name] = y
        return tensors[plan["output"]]

    fn = tf.function(graph, input_signature=[tf.TensorSpec(shape, tf.float32, name="x")])
    concrete = fn.get_concrete_function()
    return fn, (lambda: tf.lite.TFLiteConverter.from_concrete_functions([concrete], fn))


def convert(make_converter, calib: np.ndarray | None, mode: str) -> bytes:
    import tensorflow as tf

    conv = make_converter()
    if mode != "float":
        def representative():
            for i in range(calib.shape[0]):
                yield [calib[i:i + 1].astype(np.float32)]
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        if mode == "int8":
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
        else:  # int16 activations, int8 weights ("16x8")
            ops = tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            conv.target_spec.supported_ops = [ops]
            conv.inference_input_type = tf.int16
            conv.inference_output_type = tf.int16
    return conv.convert()


def main(job_dir: str) -> int:
    job_path = Path(job_dir)
    job = json.loads((job_path / "job.json").read_text())
    plan = json.loads((job_path / "plan.json").read_text())
    weights = dict(np.load(job_path / "weights.npz"))
    result: dict = {}
    t0 = time.perf_counter()
    model, make_converter = build(plan, weights)
    result["build_s"] = time.perf_counter() - t0
    ref_in, ref_out = np.load(job_path / "ref_in.npy"), np.load(job_path / "ref_out.npy")
    twin = np.concatenate([np.asarray(model(ref_in[i:i + 1])) for i in range(ref_in.shape[0])])
    twin = twin.reshape(ref_out.shape)
    diff = float(np.max(np.abs(twin - ref_out)))
    result["twin_max_abs_diff"] = diff
    if diff > job["tolerance"] * max(1.0, float(np.max(np.abs(ref_out)))):
        result["error"] = (f"the Keras twin disagrees with torch: max abs diff {diff:.3g} > tolerance "
                           f"{job['tolerance']:.1g}; a layer was translated wrongly")
        (job_path / "result.json").write_text(json.dumps(result))
        return 2
    calib = np.load(job_path / "calib.npy")
    errors = {}
    for mode in ("float", "int8", "int16"):
        if not job.get(mode):
            continue
        t0 = time.perf_counter()
        try:
            Path(job[mode]).write_bytes(convert(make_converter, calib, mode))
            result[f"convert_{mode}_s"] = time.perf_counter() - t0
        except Exception as e:  # one failed mode does not lose the others
            errors[mode] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
        (job_path / "result.json").write_text(json.dumps({**result, "errors": errors}))
    result["errors"] = errors
    (job_path / "result.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
