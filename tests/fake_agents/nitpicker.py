"""The demo agent with a reviewer that is never satisfied: every review of a new head
finds one more nit on line 1 of the first changed file of app/, and every fix adds a line
(so each round pushes a new head, which gets a new nit)."""

import hashlib
import sys
from pathlib import Path

from review_kit import Finding, changed_python_files, run


def review(prompt: str) -> list[Finding]:
    paths = sorted(path for path in changed_python_files(prompt) if path.startswith("app/"))
    nit = hashlib.sha256(prompt.encode()).hexdigest()[:6]
    return [{"path": paths[0], "line": 1, "body": f"Nit {nit}: tidy this line."}] if paths else []


def fix(workspace: Path, ident: str, path: str) -> str:
    target = workspace / path
    with target.open("a", encoding="utf-8") as file:
        file.write(f"# tidied for thread {ident[:8]}\n")
    return f"Tidied `{path}`."


sys.exit(run(review, fix))
