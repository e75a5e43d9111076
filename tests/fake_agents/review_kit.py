"""Shared by the fake reviewers: read the current prompt, answer a review or a round of
discussions, and hand every other task to the demo agent.

The fake reviewers look only at the prompt of the current turn (a resumed demo session
would prepend the first prompt, with an older diff)."""

from __future__ import annotations

import io
import json
import os
import re
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

from roles.agents import demo_agent

# "### Discussion `<id>` on `<path>` line <n>" (the position part only for diff threads)
_DISCUSSION = re.compile(r"^### Discussion `([0-9a-f]+)`(?: on `([^`]+)` line \d+)?$", re.M)
_PY_PATH = re.compile(r"\b((?:app|tests)/[\w/]+\.py)\b")
_NEW_FILE = re.compile(r"^\+\+\+ (\S+\.py)\n(.*?)(?=^--- |\Z)", re.M | re.S)

Finding = dict[str, object]
Review = Callable[[str], list[Finding]]
Fix = Callable[[Path, str, str], str]  # (workspace, discussion id, path) -> reply


def changed_python_files(prompt: str) -> dict[str, list[str]]:
    """Path -> added lines of each Python file in the review prompt's diff."""
    return {
        path: [line[1:] for line in body.splitlines() if line.startswith("+")]
        for path, body in _NEW_FILE.findall(prompt)
    }


def discussions(prompt: str) -> list[tuple[str, str]]:
    """(discussion id, path it is about) for each discussion of an address prompt."""
    found = []
    sections = _DISCUSSION.split(prompt)
    # split() gives [head, id, path, body, id, path, body, ...]
    for n in range(1, len(sections) - 2, 3):
        ident, path, body = sections[n], sections[n + 1], sections[n + 2]
        named = path or next(iter(_PY_PATH.findall(body)), "")
        found.append((ident, named))
    return found


def learnings() -> str:
    items = [{"kind": "decision", "text": "Answered every review discussion in the code."}]
    return "```crewline-learnings\n" + json.dumps(items) + "\n```"


def run(review: Review, fix: Fix) -> int:
    kind = os.environ.get("CREWLINE_TASK_KIND", "")
    prompt = sys.stdin.read()
    threads = discussions(prompt) if kind == "fix" else []
    if kind == "review":
        findings = review(prompt)
        print(f"Reviewed the change: {len(findings)} finding(s).")
        print("```crewline-review\n" + json.dumps({"findings": findings}) + "\n```")
    elif threads:
        replies = [
            {"discussion": ident, "action": "fixed", "reply": fix(Path.cwd(), ident, path)}
            for ident, path in threads
        ]
        print("```crewline-replies\n" + json.dumps(replies) + "\n```")
        print(learnings())
    else:
        sys.stdin = io.StringIO(prompt)
        return demo_agent.main()
    session = os.environ.get("CREWLINE_SESSION_ID") or uuid.uuid4().hex[:12]
    print(json.dumps({"session_id": session}))
    return 0
