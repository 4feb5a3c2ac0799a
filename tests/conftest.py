"""Fixtures shared by the test files."""
from __future__ import annotations

import pytest

from tinyverse import extensions


@pytest.fixture
def restore_registries():
    """Whatever a test registers or loads from an extension is removed afterwards (registries and the record of
    loaded/failed extension files), so tests do not see each other's entries."""
    before = {label: set(reg.names()) for label, reg in extensions.registries().items()}
    state = (dict(extensions._STATE.loaded), dict(extensions._STATE.failed))
    yield
    for label, reg in extensions.registries().items():
        for name in set(reg.names()) - before.get(label, set()):
            reg.unregister(name)
    extensions._STATE.loaded, extensions._STATE.failed = state
