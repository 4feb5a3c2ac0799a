"""Audio models and tools (amp / pedal capture). Submodules: ``nam`` (.nam compatibility), ``metrics``.

Kept light: importing ``tinyverse.audio`` loads no torch; import ``tinyverse.audio.nam`` for the models.
"""

from .metrics import ESR_VERDICTS, esr, esr_verdict

__all__ = ["ESR_VERDICTS", "esr", "esr_verdict"]
