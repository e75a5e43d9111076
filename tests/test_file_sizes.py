"""Small modules with one job: no Python file of the product, the simulator, the benchmarks or
the tests grows past 400 lines (issue 16). A file that does is split by concern, not trimmed."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 400
CHECKED = ("bot", "roles", "workflow", "forge", "storage", "sim", "bench", "tests")


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
    offenders = over_limit(line_counts(ROOT))
    assert offenders == {}, f"split these by concern into modules under {LIMIT} lines: {offenders}"


def test_the_count_sees_nested_files_and_counts_every_line(tmp_path: Path) -> None:
    nested = tmp_path / "sim" / "deep" / "big.py"
    nested.parent.mkdir(parents=True)
    nested.write_text("x = 1\n" * (LIMIT + 1))
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "small.py").write_text("\n" * LIMIT)
    assert over_limit(line_counts(tmp_path)) == {"sim/deep/big.py": LIMIT + 1}
