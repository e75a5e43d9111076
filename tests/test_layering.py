"""The house rules of docs/SPEC.md §1, read from every module's imports: `workflow/` imports
nothing of ours; `storage/` and `forge/` import `workflow/` at most; nothing outside `bot/`
imports `bot/`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "roles", "workflow", "forge", "storage")
ALLOWED = {
    "workflow": {"workflow"},
    "storage": {"storage", "workflow"},
    "forge": {"forge", "workflow"},
    "roles": {"roles", "forge", "storage", "workflow"},
    "bot": set(PACKAGES),
}


def ours_imported_by(path: Path) -> set[str]:
    """The packages of ours that ``path`` imports (at any depth: a function-level import
    counts as much as one at the top)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found |= {name.split(".")[0] for name in names} & set(PACKAGES)
    return found


def modules(package: str) -> list[Path]:
    return sorted(
        path
        for path in (ROOT / package).rglob("*.py")
        if "seed" not in path.relative_to(ROOT).parts  # the demo project's own files
    )


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_only_what_the_layering_allows(package: str) -> None:
    breaches = {
        str(path.relative_to(ROOT)): sorted(extra)
        for path in modules(package)
        if (extra := ours_imported_by(path) - ALLOWED[package])
    }
    assert breaches == {}, f"{package}/ may import only {sorted(ALLOWED[package])}"


def test_the_check_sees_imports_at_any_depth(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from storage.leases import Lease\n    import bot.cli\n")
    assert ours_imported_by(module) == {"storage", "bot"}
