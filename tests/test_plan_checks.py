"""The checks a PM plan goes through against its repository before it is posted."""

from __future__ import annotations

import asyncio
import os

from roles.pm.plan_checks import file_tree, shell_syntax_errors, unmatched_note, unmatched_owned

FILES = ["README.md", "app/__init__.py", "app/text.py", "tests/test_text.py"]


def test_the_file_tree_is_bounded_and_says_how_many_more() -> None:
    many = [f"src/module_{n:03}.py" for n in range(250)]
    tree = file_tree(many, limit=100)
    lines = tree.splitlines()
    assert lines[:100] == many[:100]
    assert lines[100:] == ["... and 150 more (250 files in all)"]
    assert file_tree(FILES) == "\n".join(FILES)
    assert file_tree([]) == "(the branch has no files yet)"


def test_globs_matching_nothing_are_flagged_but_new_files_are_not() -> None:
    owned = ["app/*.py", "lib/**/*.py", "app/slug.py", "docs/", "tests/test_t?xt.py"]
    assert unmatched_owned(owned, FILES) == ["lib/**/*.py", "docs/"]
    note = unmatched_note(["lib/**/*.py"], "main")
    assert "`lib/**/*.py`" in note and "`main`" in note


async def test_acceptance_checks_are_syntax_checked_without_running_them() -> None:
    marker = "/tmp/crewline-plan-check-must-not-exist"
    commands = [
        f"touch {marker} && python3 -m pytest -q",
        'echo "unterminated',
        "if true; then echo yes",
        "for f in *.py; do python3 -m py_compile $f; done",
    ]
    problems = await shell_syntax_errors(commands)
    assert len(problems) == 2
    assert problems[0].startswith('acceptance check 2 (`echo "unterminated`) is not valid shell:')
    assert "Unterminated quoted string" in problems[0]
    assert problems[1].startswith("acceptance check 3 (`if true; then echo yes`)")
    assert 'expecting "fi"' in problems[1]
    assert not await asyncio.to_thread(os.path.exists, marker)
