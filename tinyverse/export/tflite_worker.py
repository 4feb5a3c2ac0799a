"""The TFLite conversion worker of both modalities: build the TensorFlow twin of a plan, check it against torch,
convert it to the .tflite files asked for (float32, full int8, int16 activations with int8 weights).

Run as a script (``python tflite_worker.py JOB_DIR``; :func:`tinyverse.export.tflite_job.run_tflite_job` does) so
TensorFlow is imported only here and a converter crash cannot take the caller down. It imports nothing from
tinyverse. JOB_DIR holds ``plan.json`` (``{"inputs": [{"name", "shape"}], "ops": [...], "outputs": [...]}``; shapes
without the batch axis, NHWC), ``weights.npz`` (``<op name>/<key>``, Keras layout), ``calib.npz`` (representative
inputs, one array per plan input, in order), ``ref_in.npz`` / ``ref_out.npy`` (torch's outputs on them, in the twin's
layout) and ``job.json`` (``{"float": path|null, "int8": path|null, "int16": path|null, "tolerance": float,
"signature": bool, "metadata": {name: text}}``: each written file carries ``metadata`` as TFLite metadata entries);
it writes ``result.json``
(``build_s``, ``twin_max_abs_diff``, ``convert_<mode>_s``, ``errors`` per mode; ``error`` when the twin disagrees
with torch), rewritten after each mode so a converter that dies mid-way leaves what it wrote.

The op vocabulary (``kind``), implemented once in :func:`apply_op`; each op reads the tensors named in ``src``:

=============  ========================================================  =========================================
kind           fields (weights)                                          TFLite op(s) after conversion
=============  ========================================================  =========================================
``conv``       strides, dilation, padding, pad, activation (w, b?)       [PAD +] CONV_2D (+ fused act)
``dwconv``     as conv, depth_multiplier (w, b?)                         [PAD +] DEPTHWISE_CONV_2D (+ fused act)
``dense``      activation (w, b?)                                        FULLY_CONNECTED (+ fused act)
``maxpool``    pool, strides, padding, pad                               MAX_POOL_2D
``avgpool``    pool, strides, padding, pad                               [PAD +] AVERAGE_POOL_2D
``act``        fn: relu, relu6, tanh, sigmoid, linear, hardtanh,         RELU, RELU6, TANH, LOGISTIC, -,
               fasttanh                                                  RELU_N1_TO_1 / MINIMUM+MAXIMUM, arithmetic
``affine``     (scale, shift): x * scale + shift per channel             MUL (+ ADD)
``add``        2+ inputs                                                 ADD
``mul``        2+ inputs                                                 MUL
``mean``       2+ inputs (elementwise mean)                              ADD + MUL
``concat``     axis                                                      CONCATENATION
``reshape``    shape (without batch)                                     RESHAPE
``permute``    dims (as Keras' Permute)                                  TRANSPOSE
``gather``     indices (last axis)                                       GATHER
``identity``   -                                                         - (folded away)
``crop``       top: drop the first ``top`` steps of the time axis        STRIDED_SLICE
``history``    length, shape: the last ``length`` steps of the source    VAR_HANDLE + READ_VARIABLE +
               from the previous invoke (a resource variable, zeros at   CONCATENATION + STRIDED_SLICE +
               the start) before the source; the variable keeps them     ASSIGN_VARIABLE (CALL_ONCE initialises)
``broadcast``  shape (without batch): repeat the size-1 axes to it       BROADCAST_TO (TILE's int8 version is
                                                                         not in LiteRT's reference kernels, TFLM)
``matmul``     2 inputs, both tensors (a generated weight matrix)        BATCH_MATMUL
``lstm``       units (kernel, recurrent, b); sequences in and out        UNIDIRECTIONAL_SEQUENCE_LSTM
=============  ========================================================  =========================================

How: a plan without ``lstm`` is traced as one ``tf.function`` with constant weights and converted from its concrete
function (seconds for a ~200-op WaveNet; the same graph as a Keras model took 30-100 s to convert). A plan with
``lstm`` is a tf_keras functional model (the other ops become its TFOpLambda layers) converted with
``from_keras_model``: that is what turns the Keras LSTM into one fused UNIDIRECTIONAL_SEQUENCE_LSTM whose state is a
variable tensor carried from one invoke to the next. The ops issue the TensorFlow calls tf_keras' layers issue, so
the converted graphs are the ones a Keras twin gave (see shared/reference/toolchain.md).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

MODES = ("float", "int8", "int16")
ACTIVATIONS = ("relu", "relu6", "tanh", "sigmoid", "linear", "hardtanh", "fasttanh")


def activation(fn: str | None) -> Callable[[Any], Any]:
    """The TensorFlow function of an activation name (None and "linear": the identity)."""
    import tensorflow as tf

    if fn in (None, "linear"):
        return lambda t: t
    if fn == "relu":
        return tf.nn.relu
    if fn == "relu6":
        return tf.nn.relu6
    if fn == "tanh":
        return tf.tanh
    if fn == "sigmoid":
        return tf.sigmoid
    if fn == "hardtanh":
        return lambda t: tf.clip_by_value(t, -1.0, 1.0)
    if fn == "fasttanh":  # NeuralAmpModelerCore's rational approximation (tinyverse.audio.nam.fast_tanh)
        def fast(t):
            ax, x2 = tf.abs(t), t * t
            num = t * (2.45550750702956 + 2.45550750702956 * ax + (0.893229853513558 + 0.821226666969744 * ax) * x2)
            den = 2.44506634652299 + (2.44506634652299 + x2) * tf.abs(t + 0.814642734961073 * t * ax)
            return num / den
        return fast
    raise ValueError(f"unknown activation {fn!r} (known: {', '.join(ACTIVATIONS)})")


def _padded(tf, x, op: dict):
    """The explicit zero padding of a conv or pool whose torch padding no Keras mode reproduces."""
    pad = op.get("pad")
    return tf.pad(x, [[0, 0], list(pad[0]), list(pad[1]), [0, 0]]) if pad else x


def _biased(tf, y, op: dict, w: Callable[[str], Any]):
    b = w("b", optional=True)
    y = tf.nn.bias_add(y, b) if b is not None else y
    return activation(op.get("activation"))(y)


def apply_op(op: dict, xs: list, w: Callable[..., Any]):
    """One plan op on its input tensors ``xs``; ``w(key)`` gives the op's weight ``key`` as a constant."""
    import tensorflow as tf

    kind, x = op["kind"], xs[0]
    if kind == "conv":
        y = tf.nn.conv2d(_padded(tf, x, op), w("w"), strides=list(op["strides"]), padding=op["padding"].upper(),
                         dilations=list(op["dilation"]))
        return _biased(tf, y, op, w)
    if kind == "dwconv":
        y = tf.nn.depthwise_conv2d(_padded(tf, x, op), w("w"), strides=[1, *op["strides"], 1],
                                   padding=op["padding"].upper(), dilations=list(op["dilation"]))
        return _biased(tf, y, op, w)
    if kind == "dense":
        kernel = w("w")
        if len(x.shape) == 2:
            y = tf.matmul(x, kernel)
        else:  # a sequence (an LSTM's outputs): the last axis, as Keras' Dense does
            y = tf.tensordot(x, kernel, [[len(x.shape) - 1], [0]])
        return _biased(tf, y, op, w)
    if kind in ("maxpool", "avgpool"):
        pool = tf.nn.max_pool2d if kind == "maxpool" else tf.nn.avg_pool2d
        return pool(_padded(tf, x, op), ksize=[1, *op["pool"], 1], strides=[1, *op["strides"], 1],
                    padding=op["padding"].upper())
    if kind == "act":
        return activation(op["fn"])(x)
    if kind == "affine":
        return x * w("scale") + w("shift")
    if kind in ("add", "mul", "mean"):
        y = xs[0]
        for t in xs[1:]:
            y = tf.multiply(y, t) if kind == "mul" else tf.add(y, t)
        return y / len(xs) if kind == "mean" else y
    if kind == "concat":
        return tf.concat(xs, axis=op["axis"])
    if kind == "reshape":
        return tf.reshape(x, (tf.shape(x)[0], *op["shape"]))
    if kind == "permute":
        return tf.transpose(x, perm=(0, *op["dims"]))
    if kind == "gather":
        return tf.gather(x, tf.constant(op["indices"], dtype=tf.int32), axis=-1)
    if kind == "identity":
        return x
    if kind == "crop":
        return x[:, op["top"]:]
    if kind == "broadcast":  # a knob vector held over the block's time steps
        return tf.broadcast_to(x, [1, *op["shape"]])
    if kind == "matmul":  # activations times a matrix computed in the graph (a hypernetwork's weights)
        return tf.matmul(xs[0], xs[1])
    raise ValueError(f"unknown twin op kind {kind!r} ({op['name']})")


def build(plan: dict, weights: dict[str, np.ndarray], signature: bool = False):
    """``(call, make_converter)``: ``call(*xs)`` runs the twin on one ``(1, *shape)`` example of each plan input
    (in order), ``make_converter()`` gives a
    fresh ``TFLiteConverter`` for it. ``signature``: the file gets a "serving_default" signature (LiteRT's signature
    runner; the converter then goes through a SavedModel, ~1-2 s more per file on a 200-op graph); a plan with an
    LSTM always has one."""
    import tensorflow as tf

    if len(plan["outputs"]) != 1:
        raise ValueError(f"the worker converts one output, the plan has {len(plan['outputs'])}")
    inputs = plan["inputs"]
    # created once, before tracing (captured constants): the graph's node order, hence the .tflite's op order and
    # TFLM's memory plan, is the order of the ops alone
    consts = {key: tf.constant(value) for key, value in weights.items()}

    def weight(op: dict) -> Callable[..., Any]:
        def w(key: str, optional: bool = False):
            full = f"{op['name']}/{key}"
            if full not in consts and not optional:
                raise ValueError(f"twin op {op['name']!r} has no weight {key!r}")
            return consts.get(full)
        return w

    if any(op["kind"] == "lstm" for op in plan["ops"]):
        import tf_keras as keras

        def graph(*xs):
            tensors = {i["name"]: x for i, x in zip(inputs, xs)}
            for op in plan["ops"]:
                xs = [tensors[s] for s in op["src"]]
                if op["kind"] == "lstm":
                    layer = keras.layers.LSTM(op["units"], return_sequences=True, name=op["name"])
                    tensors[op["name"]] = layer(xs[0])
                    layer.set_weights([weights[f"{op['name']}/{k}"] for k in ("kernel", "recurrent", "b")])
                else:
                    tensors[op["name"]] = apply_op(op, xs, weight(op))
            return tensors[plan["outputs"][0]]

        xs = [keras.Input(shape=tuple(i["shape"]), batch_size=1, name=i["name"]) for i in inputs]
        model = keras.Model(xs if len(xs) > 1 else xs[0], graph(*xs))
        return (lambda *t: model(list(t) if len(t) > 1 else t[0], training=False)), \
            (lambda: tf.lite.TFLiteConverter.from_keras_model(model))

    # a history op's resource variable (a composed model's per-stage input history), created before tracing
    histories = {op["name"]: tf.Variable(tf.zeros([1, *op["shape"]]), trainable=False, name=op["name"])
                 for op in plan["ops"] if op["kind"] == "history"}

    def graph(*xs):
        tensors = {i["name"]: x for i, x in zip(inputs, xs)}
        for op in plan["ops"]:
            srcs = [tensors[s] for s in op["src"]]
            tensors[op["name"]] = history(histories[op["name"]], srcs[0], op["length"]) if op["kind"] == "history" \
                else apply_op(op, srcs, weight(op))
        return tensors[plan["outputs"][0]]

    fn = tf.function(graph, input_signature=[tf.TensorSpec([1, *i["shape"]], tf.float32, name=i["name"])
                                             for i in inputs])
    concrete = fn.get_concrete_function()
    owner = fn
    if signature:  # a tf.Module as the trackable object gives the file its "serving_default" signature
        owner = tf.Module()
        owner.fn = fn
    if histories:  # the converter keeps a variable as one only when the trackable object tracks it
        owner = tf.Module()
        owner.histories = list(histories.values())

    def make_converter():
        for v in histories.values():  # the file starts from the variables' values now: a stream from silence
            v.assign(tf.zeros_like(v))
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], owner)
        if histories:
            converter.experimental_enable_resource_variables = True
            converter._experimental_variable_quantization = True  # int8 variables, not float ones beside int8 ops
        return converter

    return fn, make_converter


def history(var, x, length: int):
    """``x`` with the last ``length`` steps of the previous invoke's ``x`` before it (the variable ``var``), and
    ``var`` set to this invoke's last ``length`` steps."""
    import tensorflow as tf

    full = tf.concat([var.read_value(), x], axis=1)
    var.assign(full[:, -length:])
    return full


def tie_variable_scales(model: bytes) -> bytes:
    """``model`` with each READ_VARIABLE's output quantized as the value its variable is assigned: the int16x8
    quantizer calibrates the two apart (a history read at one scale but written at another is off by their ratio);
    unchanged without resource variables."""
    from tensorflow.lite.python import schema_py_generated as schema_fb
    from tensorflow.lite.tools import flatbuffer_utils

    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in obj.operatorCodes]
    op_enum = schema_fb.BuiltinOperator
    changed = False
    for sub in obj.subgraphs:
        # a variable is named by its VAR_HANDLE's shared name (each use may have its own handle tensor)
        handle = {op.outputs[0]: op.builtinOptions.sharedName for op in sub.operators
                  if codes[op.opcodeIndex] == op_enum.VAR_HANDLE}
        written = {handle.get(op.inputs[0], op.inputs[0]): op.inputs[1] for op in sub.operators
                   if codes[op.opcodeIndex] == op_enum.ASSIGN_VARIABLE}
        for op in sub.operators:
            key = handle.get(op.inputs[0], op.inputs[0]) if op.inputs is not None and len(op.inputs) else None
            if codes[op.opcodeIndex] != op_enum.READ_VARIABLE or key not in written:
                continue
            out, value = sub.tensors[op.outputs[0]], sub.tensors[written[key]]
            q, v = out.quantization, value.quantization
            if q is None or v is None or v.scale is None or out.type != value.type:
                continue
            if q.scale is None or not (np.array_equal(q.scale, v.scale) and np.array_equal(q.zeroPoint, v.zeroPoint)):
                out.quantization = v
                changed = True
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj)) if changed else model


def configure(converter, mode: str, calib: np.ndarray | list[np.ndarray] | None,
              names: list[str] | None = None) -> None:
    """The converter settings of each mode: float32 as is; "int8" full integer (int8 weights, activations, input
    and output; per-channel conv weights); "int16" int16 activations with int8 weights ("16x8", int16 input and
    output). Both quantized modes calibrate on ``calib`` (an array, or one per input named in ``names``: the file's
    signature inputs, since the converter orders a graph's inputs its own way), one sample per step."""
    import tensorflow as tf

    if mode == "float":
        return
    if mode not in MODES:
        raise ValueError(f"unknown conversion mode {mode!r} (known: {', '.join(MODES)})")

    arrays = calib if isinstance(calib, (list, tuple)) else [calib]

    def representative():  # one example of every input per step; several inputs by name (the signature's)
        for i in range(arrays[0].shape[0]):
            sample = [a[i:i + 1].astype(np.float32) for a in arrays]
            yield sample if len(sample) == 1 else dict(zip(names or [], sample))

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    if mode == "int8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    else:
        ops = tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        converter.target_spec.supported_ops = [ops]
        converter.inference_input_type = tf.int16
        converter.inference_output_type = tf.int16


def with_metadata(model: bytes, metadata: dict[str, str]) -> bytes:
    """``model`` with each ``name: text`` as a TFLite metadata entry (a buffer named in ``Model.metadata``), added the
    way the converter adds its own conversion metadata (TensorFlow's flatbuffer_utils); an entry of the same name is
    replaced. Interpreters ignore entries they do not know."""
    from tensorflow.lite.python import schema_py_generated as schema_fb
    from tensorflow.lite.tools import flatbuffer_utils

    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    obj.metadata = list(obj.metadata or [])
    for name, text in metadata.items():
        buf = schema_fb.BufferT()
        buf.data = np.frombuffer(text.encode(), np.uint8)
        entry = next((m for m in obj.metadata if m.name.decode() == name), None)
        if entry is not None:
            obj.buffers[entry.buffer] = buf
            continue
        obj.buffers.append(buf)
        entry = schema_fb.MetadataT()
        entry.name, entry.buffer = name, len(obj.buffers) - 1
        obj.metadata.append(entry)
    return flatbuffer_utils.convert_object_to_bytearray(obj)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[-1] if text else ''}".rstrip(": ")


def _arrays(path: Path) -> list[np.ndarray]:
    """The arrays of an .npz written with ``np.savez(path, *arrays)``, in order (one per plan input)."""
    with np.load(path) as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


def main(job_dir: str) -> int:
    # before TensorFlow loads (only functions import it): quiet logs, and tf_keras as Keras (its LSTM fuses)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    job_path = Path(job_dir)
    job = json.loads((job_path / "job.json").read_text())
    plan = json.loads((job_path / "plan.json").read_text())
    weights = dict(np.load(job_path / "weights.npz"))
    result: dict[str, Any] = {}

    def write() -> None:
        (job_path / "result.json").write_text(json.dumps(result))

    t0 = time.perf_counter()
    # several inputs: a signature names them (the representative dataset feeds them by name)
    call, make_converter = build(plan, weights, bool(job.get("signature")) or len(plan["inputs"]) > 1)
    result["build_s"] = time.perf_counter() - t0
    ref_in, ref_out = _arrays(job_path / "ref_in.npz"), np.load(job_path / "ref_out.npy")
    twin = np.concatenate([np.asarray(call(*(a[i:i + 1] for a in ref_in))) for i in range(ref_in[0].shape[0])])
    if twin.size != ref_out.size:
        result["error"] = (f"the twin's outputs have shape {list(twin.shape)}, torch's {list(ref_out.shape)}: "
                           f"a layer was translated wrongly")
        write()
        return 2
    diff = float(np.max(np.abs(twin.reshape(ref_out.shape) - ref_out)))
    result["twin_max_abs_diff"] = diff
    if diff > job["tolerance"] * max(1.0, float(np.max(np.abs(ref_out)))):
        result["error"] = (f"the TensorFlow twin disagrees with torch: max abs diff {diff:.3g} > tolerance "
                           f"{job['tolerance']:.1g}; a layer was translated wrongly")
        write()
        return 2
    calib = _arrays(job_path / "calib.npz")
    metadata = job.get("metadata") or {}
    result["errors"] = {}
    for mode in MODES:
        if not job.get(mode):
            continue
        t0 = time.perf_counter()
        try:
            converter = make_converter()
            configure(converter, mode, calib, [i["name"] for i in plan["inputs"]])
            data = tie_variable_scales(converter.convert())
            Path(job[mode]).write_bytes(with_metadata(data, metadata) if metadata else data)
            result[f"convert_{mode}_s"] = time.perf_counter() - t0
        except Exception as err:  # noqa: BLE001 - one mode that fails to convert does not lose the others
            result["errors"][mode] = _one_line(err)
        write()
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
