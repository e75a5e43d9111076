"""The demo agent with a reviewer that wants a module docstring in every changed Python
file of app/: one finding per file without one (line 1), clean once they all have one.
Asked to address discussions, it adds the docstring where missing and leaves a comment
naming the thread in the file the thread is about, and replies ``fixed``."""

import sys
from pathlib import Path

from review_kit import Finding, changed_python_files, run

DOCSTRING = '"""Reviewed: this module now says what it is for."""\n'


def review(prompt: str) -> list[Finding]:
    return [
        {"path": path, "line": 1, "body": f"`{path}` has no module docstring: say what it is for."}
        for path, added in changed_python_files(prompt).items()
        if path.startswith("app/") and not (added and added[0].startswith('"""'))
    ]


def fix(workspace: Path, ident: str, path: str) -> str:
    target = workspace / path
    text = target.read_text(encoding="utf-8")
    if not text.startswith('"""'):
        text = DOCSTRING + text
    target.write_text(f"{text}# review thread {ident[:8]} addressed\n", encoding="utf-8")
    return f"`{path}` now opens with a module docstring."


sys.exit(run(review, fix))
