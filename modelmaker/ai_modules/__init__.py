"""Modalities (``AI_MODULES``): each owns how a config of its kind becomes calls of tinyverse.

An AI module is a class with ``name``, ``tasks`` (TASKS names it runs) and ``run(cfg, run_dir, resume)``. The
built-ins subclass :class:`modelmaker.ai_modules.base.AIModule`, which runs the shared stages (describe → train →
test → compile) and holds their plumbing once; a modality supplies its data, model and outputs. Built-ins register
through the same API an extension uses.
"""
from tinyverse import extensions as _extensions
from tinyverse.registry import Registry

AI_MODULES = Registry("ai_module", builtins=["modelmaker.ai_modules.timeseries", "modelmaker.ai_modules.audio"])

# Extensions may add modalities (a .py file or the `modelmaker.ai_modules` entry-point group): an AI module
# registered by an extension needs ``load_data(cfg)`` and ``run(cfg, run_dir, resume, data)``.
_extensions.bind_group("modelmaker.ai_modules", AI_MODULES, label="ai_modules")

__all__ = ["AI_MODULES"]
