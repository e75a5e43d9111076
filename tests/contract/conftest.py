"""The ``backend`` fixture of the GitLab contract suite: every test runs twice, once on the
in-memory fake and once on the real gateway against the simulator, so the fake passes
exactly what the real gateway passes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.forge_backends import Backend, fake_backend, sim_backend


@pytest.fixture(params=["fake", "sim"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "fake":
        yield fake_backend()
        return
    # The simulator is started only for the simulator's half of the suite.
    async with sim_backend(request.getfixturevalue("sim"), tmp_path / "db.sqlite3") as found:
        yield found


@pytest.fixture(params=["fake", "sim"])
async def free_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """The same two backends emulating GitLab Free: scoped labels are not exclusive."""
    if request.param == "fake":
        yield fake_backend(premium=False)
        return
    running = request.getfixturevalue("free_sim")
    async with sim_backend(running, tmp_path / "db.sqlite3") as found:
        yield found
