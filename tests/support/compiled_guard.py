"""The compiled guard as it ships: a wheel built with ``CREWLINE_COMPILE=1`` (decision
0047), unpacked where a test run or a benchmark can import it instead of the sources."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What a wheel is not built from: at the top, version control, environments, build output
# and what is not packaged; anywhere, caches.
_TOP_LEVEL_SKIPPED = frozenset(
    {".git", ".venv", "build", "dist", ".hypothesis", "tests", "bench", "var"}
)
_SKIPPED_ANYWHERE = shutil.ignore_patterns("__pycache__", ".*_cache", "*.egg-info")


def _not_built_from(directory: str, names: list[str]) -> set[str]:
    skipped = set(_SKIPPED_ANYWHERE(directory, names))
    if Path(directory) == ROOT:
        skipped |= _TOP_LEVEL_SKIPPED.intersection(names)
    return skipped


def unpack_compiled_wheel(workdir: Path) -> Path:
    """Build crewline's wheel with the compiled guard and unpack it into ``workdir/site``
    (put that directory on ``PYTHONPATH``). Raises ``RuntimeError`` with pip's output when
    the build fails (no C compiler, no mypy)."""
    # Built from a copy: pip builds in the source tree, and its build/ directory would
    # leave a second copy of every module in the checkout.
    source = workdir / "source"
    shutil.copytree(ROOT, source, ignore=_not_built_from)
    wheels = workdir / "wheel"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(source)],
        env={**os.environ, "CREWLINE_COMPILE": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    found = sorted(wheels.glob("crewline-*.whl"))
    if built.returncode != 0 or not found:
        raise RuntimeError(f"building the compiled wheel failed:\n{built.stdout}{built.stderr}")
    site = workdir / "site"
    with zipfile.ZipFile(found[0]) as wheel:
        wheel.extractall(site)
    return site


def compiled_environment(site: Path) -> dict[str, str]:
    """The environment of a process that imports crewline from ``site`` first."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
