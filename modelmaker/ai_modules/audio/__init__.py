"""The audio modality: amp / pedal capture → NAM-compatible model (.nam), listening files and plots."""
from modelmaker.ai_modules.audio.runner import AudioModule

__all__ = ["AudioModule"]
