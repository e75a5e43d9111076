"""The compiled guard (decision 0047) behaves exactly as its sources: the wheel built with
``CREWLINE_COMPILE=1`` is unpacked, and every guard test runs again against it.

Slow (building the wheel compiles twenty modules, about 45 s on two cores): run with
``-m slow``, as CI does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.compiled_guard import ROOT, compiled_environment, unpack_compiled_wheel

# Building the wheel and running about 1,200 guard tests: minutes on a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

_WHICH_GUARD = (
    "import os, forge.guard as g; from bot.doctor import check_guard; "
    "print(g.compiled(), os.path.dirname(os.path.dirname(os.path.dirname(g.__file__)))); "
    "print(check_guard().line())"
)
# Not run against the wheel: white-box tests that patch the guard's module attributes or
# subclass ``Guard`` (compiled modules and classes refuse both), and the end-to-end runs
# whose sandboxed demo agent cannot see a wheel unpacked under this test's /tmp.
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
SOURCE_ONLY = {"test_guard_prefilter.py", "test_guard_off_loop.py", "test_guard_redaction.py"}


def test_the_guard_tests_pass_against_the_compiled_wheel(tmp_path: Path) -> None:
    site = unpack_compiled_wheel(tmp_path)
    env = compiled_environment(site)
    # Outside the checkout, so that the working directory does not put the sources first.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    # What the compiled build reports about itself, and what `crewline doctor` says of it.
    which = subprocess.run(
        [sys.executable, "-c", _WHICH_GUARD],
        cwd=run_dir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert which.stdout.splitlines() == [f"True {site}", "OK   guard: compiled with mypyc"], (
        which.stdout + which.stderr
    )
    guard_tests = sorted(
        str(path)
        for path in (ROOT / "tests").glob("test_guard*.py")
        if path.name not in SOURCE_ONLY
    )
    assert len(guard_tests) >= 8
    result = subprocess.run(
        # Every worker refuses to start unless it imported the compiled guard.
        [*PYTEST, "-p", "tests.support.require_compiled_guard", "-n", "2", *guard_tests],
        cwd=run_dir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and " failed" not in result.stdout
