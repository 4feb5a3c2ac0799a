"""Float ONNX export (torch.onnx dynamo exporter, opset 18) and running ONNX files in onnxruntime."""
from __future__ import annotations

import contextlib
import inspect
import io
import logging
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

OPSET = 18

log = logging.getLogger("tinyverse.export")
# The exporter stack narrates: torch.onnx / torch.export progress, onnxscript's optimiser and onnx_ir's passes
# ("Removed 38 unused nodes", "PassManager: No more graph changes ...").
EXPORTER_LOGGERS = ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "onnx_ir")


class ExportError(RuntimeError):
    """An export that failed or produced a file that does not agree with the model."""


def export_onnx(model: nn.Module, path: str | Path, example_inputs: Sequence[torch.Tensor],
                input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
                dynamic_batch: bool = True) -> Path:
    """Export ``model`` to ONNX with a dynamic batch dimension.

    The example batch must be >= 2: a batch-1 trace can silently fix the batch size (seen with LSTMs).
    """
    path = Path(path)
    example_inputs = tuple(example_inputs)
    if any(t.shape[0] < 2 for t in example_inputs):
        raise ExportError("export with an example batch of at least 2 so the batch dimension stays dynamic")
    input_names = list(input_names or getattr(model, "input_names", None) or
                       [f"input{i}" for i in range(len(example_inputs))])
    output_names = list(output_names or getattr(model, "output_names", None) or ["output"])
    dynamic_shapes = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1, max=1 << 16)
        dynamic_shapes = tuple({0: batch} for _ in example_inputs)
        params = inspect.signature(model.forward).parameters.values()
        if any(p.kind == p.VAR_POSITIONAL for p in params):  # forward(*inputs): one entry for the *args tuple
            dynamic_shapes = (dynamic_shapes,)
    was_training = model.training
    model.eval()
    try:
        with quiet_onnx_export():
            program = torch.onnx.export(model, example_inputs, dynamo=True, opset_version=OPSET,
                                        input_names=input_names, output_names=output_names,
                                        dynamic_shapes=dynamic_shapes, verbose=False)
            program.save(str(path))
    finally:
        model.train(was_training)
    return path


class _ToRunLog(logging.Handler):
    """Exporter records at ERROR and above go to every handler (the console too); the rest only to the
    handlers of the ``tinyverse`` logger, which is where a run attaches its run.log."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            log.handle(record)
            return
        for handler in logging.getLogger("tinyverse").handlers:
            if record.levelno >= handler.level:
                handler.handle(record)


@contextlib.contextmanager
def quiet_onnx_export():
    """Around a ``torch.onnx.export`` call: the exporter's log lines, its prints to stdout and its Python
    warnings go to the run log (the ``tinyverse`` logger's handlers), not to the console; errors still show.
    Every torch.onnx export in tinyverse runs inside this."""
    to_log = _ToRunLog()
    saved = []
    for name in EXPORTER_LOGGERS:
        lg = logging.getLogger(name)
        saved.append((lg, lg.level, lg.propagate, lg.handlers[:]))
        lg.handlers, lg.propagate = [to_log], False
        lg.setLevel(logging.INFO)  # DEBUG would be thousands of onnxscript lines
    stdout = io.StringIO()
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(stdout):
            warnings.simplefilter("default")
            yield
    finally:
        for lg, level, propagate, handlers in saved:
            lg.handlers, lg.propagate = handlers, propagate
            lg.setLevel(level)
        for line in stdout.getvalue().splitlines():
            if line.strip():
                to_log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, "%s", (line,), None))
        for w in caught:
            to_log.handle(log.makeRecord(log.name, logging.WARNING, w.filename, w.lineno, "%s: %s",
                                         (w.category.__name__, w.message), None))


def onnx_session(path: str | Path, optimized: bool = True):
    """A CPU session; ``optimized=False`` runs the graph as written (``ORT_DISABLE_ALL``): a QDQ model then computes
    DequantizeLinear → float op → QuantizeLinear, the reference its fused int8 kernels are checked against."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if not optimized:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_onnx(path_or_session, inputs: Sequence[np.ndarray] | np.ndarray, batch_size: int = 512,
             optimized: bool = True) -> np.ndarray:
    """Run an ONNX model on numpy inputs in batches; returns the first output."""
    sess = onnx_session(path_or_session, optimized) if isinstance(path_or_session, (str, Path)) else path_or_session
    arrays = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
    names = [i.name for i in sess.get_inputs()]
    n = arrays[0].shape[0]
    outs = []
    for start in range(0, n, batch_size):
        feed = {name: np.ascontiguousarray(a[start:start + batch_size], dtype=np.float32)
                for name, a in zip(names, arrays)}
        outs.append(sess.run(None, feed)[0])
    return np.concatenate(outs, axis=0)


def torch_outputs(model: nn.Module, inputs: Sequence[np.ndarray] | np.ndarray, batch_size: int = 512) -> np.ndarray:
    arrays = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
    model.eval()
    outs = []
    with torch.no_grad():
        for start in range(0, arrays[0].shape[0], batch_size):
            out = model(*(torch.as_tensor(a[start:start + batch_size], dtype=torch.float32) for a in arrays))
            outs.append((out[0] if isinstance(out, tuple) else out).numpy())
    return np.concatenate(outs, axis=0)
