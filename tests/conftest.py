"""Shared fixtures. The simulator runs on a real loopback socket in its own thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.core.app import RunningSim, running_sim
from sim.core.base import SimConfig


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[RunningSim]:
    """A fresh simulator (premium tier, no seed) on an ephemeral port."""
    with running_sim(SimConfig(state_dir=tmp_path / "sim")) as running:
        yield running


@pytest.fixture
def free_sim(tmp_path: Path) -> Iterator[RunningSim]:
    """A fresh simulator emulating GitLab Free: scoped labels are not exclusive."""
    with running_sim(SimConfig(state_dir=tmp_path / "sim", tier="free")) as running:
        yield running


@pytest.fixture
def demo_sim(tmp_path: Path) -> Iterator[RunningSim]:
    """A fresh simulator seeded like `crewline demo`: project demo/app, main protected."""
    with running_sim(SimConfig(state_dir=tmp_path / "sim", seed="demo")) as running:
        yield running
