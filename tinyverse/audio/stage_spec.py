"""One stage of a chain trained from a config (``training.model_name: Sequential``), as data.

Kept apart from :mod:`tinyverse.audio.composition` (which loads files and torch) so the zoo entry can annotate its
``models`` argument with it: the config check validates every stage (an unknown key, a ``frozen`` that is not a
boolean) before any work, naming ``training.model_args.models[i]``.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ChainStage"]


class ChainStage(BaseModel):
    """``model``: a .nam file, an impulse response (.wav/.flac/.aif[f]), a zoo model name or an audio run's checkpoint
    (.ckpt); ``frozen``: kept exactly as loaded while the other stages train; ``config``: a zoo model's arguments;
    ``channel``: the channel of a multi-channel impulse response."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(min_length=1)
    frozen: bool = False
    config: dict[str, Any] | None = None
    channel: int | None = Field(None, ge=0)
