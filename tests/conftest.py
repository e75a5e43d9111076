"""Shared fixtures. The simulator runs on a real loopback socket in its own thread."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.core.app import RunningSim, running_sim
from sim.core.base import SimConfig
from tests.support.signals import restore_ctrl_c

restore_ctrl_c()  # the tests send crewline processes Ctrl-C

# Every `python3` the tests start (validation commands, CI jobs, agents) is the interpreter
# running the tests: found first on PATH, not behind a version manager's shim (pyenv's runs
# a dozen shell processes, about 80 ms of CPU, before Python starts).
os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that declare a long timeout start first, longest first: pytest-xdist hands out
    tests in this order, so a minute-long test begun last would hold up the whole run."""

    def declared_limit(item: pytest.Item) -> float:
        marker = item.get_closest_marker("timeout")
        return float(marker.args[0]) if marker and marker.args else 0.0

    items.sort(key=declared_limit, reverse=True)  # stable: the rest keep their order


def pytest_collection_finish(session: pytest.Session) -> None:
    """Everything collection imported (the product, the test modules, hypothesis) lives until
    the run ends: frozen, the cyclic garbage collector stops walking it again on every
    full collection (about a tenth of the run's CPU went to that walk)."""
    gc.collect()
    gc.freeze()
