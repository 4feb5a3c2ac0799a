"""On-the-fly batch augmentation for time series (training batches only; never at evaluation or export)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class BatchAugment:
    """Random per-sample time shift, amplitude scaling and additive noise on (N, C, L, 1) batches.

    time_shift: largest shift as a fraction of the length; the series is shifted and the vacated end is filled
        with its edge value (not wrapped around, which would join the end to the start).
    scale: amplitude factor drawn from [1 - scale, 1 + scale].
    noise: standard deviation of added Gaussian noise (in normalised units).
    """

    time_shift: float = 0.0
    scale: float = 0.0
    noise: float = 0.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not 0.0 <= value < 1.0:
                raise ValueError(f"augmentation.{name} must be in [0, 1), got {value}")

    @property
    def active(self) -> bool:
        return any(asdict(self).values())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, length = x.shape[0], x.shape[2]
        if self.time_shift:
            max_shift = max(1, int(round(self.time_shift * length)))
            shifts = torch.randint(-max_shift, max_shift + 1, (n,), device=x.device)
            idx = torch.arange(length, device=x.device)[None, :] - shifts[:, None]
            idx = idx.clamp(0, length - 1)  # edge fill
            x = torch.gather(x, 2, idx[:, None, :, None].expand(-1, x.shape[1], -1, x.shape[3]))
        if self.scale:
            factor = 1.0 + (torch.rand(n, 1, 1, 1, device=x.device) * 2 - 1) * self.scale
            x = x * factor
        if self.noise:
            x = x + torch.randn_like(x) * self.noise
        return x
