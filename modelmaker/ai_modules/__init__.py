"""Modalities (``AI_MODULES``): each owns how a config of its kind becomes calls of tinyverse.

An AI module is a class with ``name``, ``tasks`` (TASKS names it runs) and ``run(cfg, run_dir, resume)``.
Built-ins register through the same API an extension uses.
"""
from tinyverse.registry import Registry

AI_MODULES = Registry("ai_module", builtins=["modelmaker.ai_modules.timeseries"])

__all__ = ["AI_MODULES"]
