"""Small modules with one job: no Python file of the product, the simulator, the benchmarks or
the tests grows past 400 lines (issue 16). A file that does is split by concern, not trimmed."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 400
CHECKED = ("bot", "roles", "workflow", "forge", "storage", "sim", "bench", "tests")
# Files still over the limit while their owners split them. This list only shrinks: remove a
# file the moment it is under the limit (the second test insists), never add one.
NOT_YET_SPLIT = {
    "forge/guard/assignments.py",
}


def line_counts(root: Path) -> dict[str, int]:
    counts = {}
    for folder in CHECKED:
        for path in (root / folder).rglob("*.py"):
            with path.open("rb") as lines:
                counts[str(path.relative_to(root))] = sum(1 for _ in lines)
    return counts


def over_limit(counts: dict[str, int]) -> dict[str, int]:
    return {path: n for path, n in sorted(counts.items()) if n > LIMIT}


def test_no_python_file_exceeds_400_lines() -> None:
    offenders = {
        path: n for path, n in over_limit(line_counts(ROOT)).items() if path not in NOT_YET_SPLIT
    }
    assert offenders == {}, f"split these by concern into modules under {LIMIT} lines: {offenders}"


def test_the_allow_list_names_only_files_still_over_the_limit() -> None:
    stale = sorted(NOT_YET_SPLIT - set(over_limit(line_counts(ROOT))))
    assert stale == [], f"these are split now (or gone): remove them from NOT_YET_SPLIT: {stale}"


def test_the_count_sees_nested_files_and_counts_every_line(tmp_path: Path) -> None:
    nested = tmp_path / "sim" / "deep" / "big.py"
    nested.parent.mkdir(parents=True)
    nested.write_text("x = 1\n" * (LIMIT + 1))
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "small.py").write_text("\n" * LIMIT)
    assert over_limit(line_counts(tmp_path)) == {"sim/deep/big.py": LIMIT + 1}
