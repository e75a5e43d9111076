"""Small modules with one job (issue 16): every Python file of the product, its tests and
its benchmarks stays under 400 lines; a module that grows past it is split by what it does."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("bot", "roles", "workflow", "forge", "storage", "sim", "tests", "bench")
LIMIT = 400
# Data the simulator serves to the demo (a seeded project's files), not crewline's code.
NOT_CODE = ROOT / "sim" / "core" / "seed"


def test_every_module_stays_under_400_lines() -> None:
    modules = [
        path
        for folder in FOLDERS
        for path in (ROOT / folder).rglob("*.py")
        if NOT_CODE not in path.parents
    ]
    assert len(modules) > 300  # the walk found the code
    too_long = {
        str(path.relative_to(ROOT)): lines
        for path in modules
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) >= LIMIT
    }
    assert too_long == {}, f"split these modules by what they do: {too_long}"
