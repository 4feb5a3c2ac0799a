"""On-the-fly batch augmentation for time series (training batches only; never at evaluation or export)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

# Random values at this many evenly spaced knots, linearly interpolated, make a warp curve: a few slow bends
# over the series, not sample-to-sample jitter.
WARP_KNOTS = 4


def _smooth_curves(n: int, length: int, strength: float, device: torch.device) -> torch.Tensor:
    """(n, length) curves through WARP_KNOTS + 2 knots drawn from [1 - strength, 1 + strength]."""
    knots = 1.0 + (torch.rand(n, 1, WARP_KNOTS + 2, device=device) * 2 - 1) * strength
    return F.interpolate(knots, size=length, mode="linear", align_corners=True)[:, 0]


@dataclass(frozen=True)
class BatchAugment:
    """Random per-sample time shift, amplitude scaling, additive noise and warps on (N, C, L, 1) batches.

    time_shift: largest shift as a fraction of the length; the series is shifted and the vacated end is filled
        with its edge value (not wrapped around, which would join the end to the start).
    scale: amplitude factor drawn from [1 - scale, 1 + scale].
    noise: standard deviation of added Gaussian noise (in normalised units).
    time_warp: smooth random time-axis warping: the local playback speed follows a smooth curve in
        [1 - time_warp, 1 + time_warp]; the warped series keeps its first and last sample and its length, and is
        read by linear interpolation (all channels of a series warp alike).
    magnitude_warp: multiply each series by a smooth random curve in [1 - magnitude_warp, 1 + magnitude_warp].
    """

    time_shift: float = 0.0
    scale: float = 0.0
    noise: float = 0.0
    time_warp: float = 0.0
    magnitude_warp: float = 0.0

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
        if self.time_warp and length > 1:
            x = self._time_warp(x)
        if self.scale:
            factor = 1.0 + (torch.rand(n, 1, 1, 1, device=x.device) * 2 - 1) * self.scale
            x = x * factor
        if self.magnitude_warp:
            x = x * _smooth_curves(n, length, self.magnitude_warp, x.device)[:, None, :, None]
        if self.noise:
            x = x + torch.randn_like(x) * self.noise
        return x

    def _time_warp(self, x: torch.Tensor) -> torch.Tensor:
        n, length = x.shape[0], x.shape[2]
        speed = _smooth_curves(n, length - 1, self.time_warp, x.device)  # > 0 since time_warp < 1: monotonic
        t = torch.cat([torch.zeros(n, 1, device=x.device), torch.cumsum(speed, dim=1)], dim=1)
        t = t / t[:, -1:] * (length - 1)  # warped read positions from 0 to length - 1
        lo = t.floor().long().clamp(0, length - 2)
        frac = (t - lo).to(x.dtype)[:, None, :, None]

        def gather(idx: torch.Tensor) -> torch.Tensor:
            return torch.gather(x, 2, idx[:, None, :, None].expand(-1, x.shape[1], -1, x.shape[3]))

        return gather(lo) * (1 - frac) + gather(lo + 1) * frac
