"""tinyverse: the TinyML library under modelmaker — layers, spec-dict models, data, training, export, devices.

tinyverse never imports modelmaker; it is usable alone from Python.
"""
__version__ = "0.1.0"
