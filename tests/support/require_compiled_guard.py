"""A pytest plugin, ``-p tests.support.require_compiled_guard``: the run stops at once unless
the guard it imports is the compiled one (decision 0047). The guard tests run against the
built wheel load it in every xdist worker, so none of them can fall back to the sources
unnoticed (a path order that put the checkout first would)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    import forge.guard

    if not forge.guard.compiled():
        raise pytest.UsageError(
            f"the guard imported is not the compiled one: {forge.guard.guard.__file__}"
        )
