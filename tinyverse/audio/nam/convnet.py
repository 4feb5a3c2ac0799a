"""NAM's ConvNet (NeuralAmpModelerCore ``NAM/convnet.*``, NAM trainer ``nam/models/conv_net.py``): a chain of
dilated convs with kernel 2 (each followed by an optional batch norm and the activation), then a 1×1 head.

Core still reads it (``"architecture": "ConvNet"``), so it is the plain model a frozen
:class:`tinyverse.audio.nam.knob_models.NAMHyperConvNet` becomes: the hypernet's generated weights at one knob
setting are exactly a ConvNet's. Weight order (Core's ``ConvNet`` constructor): per block the conv weight (out,
in, 2) row-major and its bias (none with batch norm), then with batch norm running mean, running variance, weight,
bias and eps; then the head weight (1, channels) and bias. Core folds a batch norm into ``scale·x + loc`` with
``scale = weight / sqrt(eps + var)``, ``loc = bias − scale·mean``; so does :meth:`NAMConvNet.forward`.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from tinyverse.models.contract import DeviceOp

from .activations import LEGACY_ACTIVATION_NAMES, NamActivation
from .models import NAMModel, NamWeightError
from .wavenet_layers import ConvHistory, check_int

__all__ = ["NAMConvNet"]


class _BatchNorm(nn.Module):
    """Core's inference-time batch norm: the trainer's running statistics and affine weights, and eps (a weight)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))
        self.register_buffer("eps", torch.tensor(1e-5))

    def ordered_tensors(self) -> list[torch.Tensor]:
        return [self.running_mean, self.running_var, self.weight, self.bias, self.eps.reshape(1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight / torch.sqrt(self.eps + self.running_var)
        return x * scale[:, None] + (self.bias - scale * self.running_mean)[:, None]


class NAMConvNet(NAMModel):
    """See the module docstring. ``activation``: a Core activation name or object (the version-0.5 names are
    written as plain strings, which every Core reads). Mono in and out, ungrouped convs (as NAM's trainer
    writes it)."""

    nam_architecture = "ConvNet"

    def __init__(self, channels: int, dilations: Sequence[int], batchnorm: bool = False,
                 activation: str | dict[str, Any] = "Tanh") -> None:
        super().__init__()
        self.channels = check_int(channels, "ConvNet channels")
        if not isinstance(dilations, (list, tuple)) or not dilations:
            raise ValueError("ConvNet dilations must be a non-empty list")
        self.dilations = [check_int(d, "ConvNet dilations") for d in dilations]
        if not isinstance(batchnorm, bool):
            raise ValueError(f"ConvNet batchnorm must be true or false, got {batchnorm!r}")
        self.batchnorm = batchnorm
        self.activation = NamActivation.from_json(activation, "ConvNet activation")
        self.activation.check_channels(self.channels, "ConvNet activation", False)
        self.convs = nn.ModuleList(nn.Conv1d(1 if i == 0 else self.channels, self.channels, 2, dilation=d,
                                             bias=not batchnorm) for i, d in enumerate(self.dilations))
        self.norms = nn.ModuleList(_BatchNorm(self.channels) for _ in self.dilations) if batchnorm else None
        self.head = nn.Conv1d(self.channels, 1, 1)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> NAMConvNet:
        """Build from a .nam ``config`` (Core's keys; ``groups``, ``in_channels``, ``out_channels`` only at 1)."""
        known = {"channels", "dilations", "batchnorm", "activation", "groups", "in_channels", "out_channels"}
        extra = sorted(set(config) - known)
        if extra:
            raise ValueError(f"ConvNet config uses unsupported key(s): {', '.join(extra)} "
                             f"(known: {', '.join(sorted(known))})")
        for key in ("groups", "in_channels", "out_channels"):
            if config.get(key, 1) != 1:
                raise ValueError(f"ConvNet {key} {config[key]!r}: only 1 is supported (mono, ungrouped)")
        missing = [k for k in ("channels", "dilations", "batchnorm", "activation") if k not in config]
        if missing:
            raise ValueError(f"ConvNet config lacks {', '.join(missing)}")
        return cls(config["channels"], config["dilations"], config["batchnorm"], config["activation"])

    @property
    def receptive_field(self) -> int:
        return 1 + sum(self.dilations)  # kernel 2: each block looks back its dilation

    def ordered_tensors(self) -> list[torch.Tensor]:
        """Core's weight order."""
        out: list[torch.Tensor] = []
        for i, conv in enumerate(self.convs):
            out.append(conv.weight)
            if conv.bias is not None:
                out.append(conv.bias)
            if self.norms is not None:
                out += self.norms[i].ordered_tensors()
        return out + [self.head.weight, self.head.bias]

    @property
    def num_weights(self) -> int:
        return sum(t.numel() for t in self.ordered_tensors())

    def nam_config(self, sample_rate: float | None = None) -> dict[str, Any]:
        act = self.activation
        return {"channels": self.channels, "dilations": list(self.dilations), "batchnorm": self.batchnorm,
                "activation": act.type if act.legacy_name is not None else act.to_json()}

    def nam_version(self) -> str:
        # Activation objects came with the 0.6 layout; the plain names are read by every Core since 0.5.
        return "0.5.4" if self.activation.type in LEGACY_ACTIVATION_NAMES else "0.6.0"

    @torch.no_grad()
    def import_weights(self, flat: Sequence[float]) -> None:
        tensors = self.ordered_tensors()
        expected = sum(t.numel() for t in tensors)
        if len(flat) != expected:
            raise NamWeightError(f"weight count mismatch for ConvNet: expected {expected} got {len(flat)}")
        src = torch.as_tensor(list(flat) if not isinstance(flat, torch.Tensor) else flat, dtype=torch.float64)
        pos = 0
        for t in tensors:
            t.copy_(src[pos:pos + t.numel()].reshape(t.shape).to(t.dtype))
            pos += t.numel()

    def export_weights(self) -> list[float]:
        return torch.cat([t.detach().reshape(-1).to(torch.float64) for t in self.ordered_tensors()]).tolist()

    # -- compute ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def scale_output(self, gain: float) -> None:
        """The 1x1 head conv: scale its weight and bias."""
        self.head.weight.mul_(float(gain))
        self.head.bias.mul_(float(gain))

    def forward_channels(self, x: torch.Tensor, hist: ConvHistory | None = None) -> torch.Tensor:
        """(N, 1, L) → (N, 1, ·): valid mode, or one streamed block when ``hist`` holds buffers."""
        hist = hist or ConvHistory()
        for i, conv in enumerate(self.convs):
            x = hist(conv, x)
            if self.norms is not None:
                x = self.norms[i](x)
            x = self.activation(x)
        return self.head(x)

    def forward(self, x: torch.Tensor, pad_start: bool = False) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(f"expected input of shape (N, L) or (N, 1, L), got {tuple(x.shape)}")
        if pad_start:
            x = F.pad(x, (self.receptive_field - 1, 0))
        return self.forward_channels(x)[:, 0]

    def stream_init(self, dtype: torch.dtype = torch.float32) -> Any:
        # One history buffer per conv, pre-warmed on silence as Core's Reset does (mPrewarmSamples = 1 + Σ dilations).
        buffers: list[torch.Tensor] = []
        self.stream_block(torch.zeros(1, self.receptive_field, dtype=dtype), buffers)
        return buffers

    @torch.no_grad()
    def stream_block(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        return self.forward_channels(x.unsqueeze(1), ConvHistory(state))[0, 0], state

    # -- the contract ----------------------------------------------------------------------------------------
    def _macs_per_sample(self) -> int:
        convs = sum(c.weight.numel() for c in self.convs) + self.head.weight.numel()
        return int(convs + (len(self.dilations) * self.channels if self.batchnorm else 0))

    def describe(self) -> dict[str, Any]:
        return {"architecture": self.nam_architecture, "channels": self.channels, "blocks": len(self.dilations),
                "activations": [self.activation.type], "batchnorm": self.batchnorm}

    def device_ops(self) -> list[DeviceOp]:
        return [{"op_class": "CONVNET", "channels": self.channels, "blocks": len(self.dilations), "kernel_size": 2,
                 "receptive_field": int(self.receptive_field)}, {"op_class": self.activation.type.upper()}]
