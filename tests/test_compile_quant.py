"""QAT helper: fine-tunes under int8 fake-quant and returns a plain float model."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tinyverse.models import create_model
from tinyverse.quantization import qat_finetune


def test_qat_returns_float_model_that_still_classifies():
    torch.manual_seed(0)
    model = create_model("CLS_100_NPU", input_shape=(1, 64), num_classes=2)
    rs = np.random.RandomState(0)
    y = rs.randint(0, 2, 96)
    X = (rs.randn(96, 1, 64, 1) * 0.3 + (y * 2 - 1)[:, None, None, None]).astype(np.float32)
    out = qat_finetune(model, (X[:64], y[:64]), (X[64:], y[64:]), epochs=3, lr=1e-2, batch_size=16)
    assert out is model
    assert not any("parametrizations" in n for n, _ in model.named_parameters())
    assert all(isinstance(p, nn.Parameter) for p in model.parameters())
    assert len(model.qat_history) == 3 and model.qat_history[-1]["val_accuracy"] >= 0.9
    with torch.no_grad():
        assert model(torch.as_tensor(X[:4])).shape == (4, 2)
