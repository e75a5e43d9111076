"""The server-side git hooks installed in every simulated bare repository.

Protected branches are enforced the way GitLab does it: in ``pre-receive``, so a refused
push changes nothing and git shows our message as ``remote: GitLab: ...``. The hook needs
no callback into the simulator: ``git_http`` passes the rules that apply to the pushing
user in :data:`PUSH_RULES_ENV` (JSON, see :func:`push_rules_env`). Pushes that do not come
through smart HTTP (none today) see no variable and are not checked.

``post-receive`` appends the ``old new ref`` lines git gives it to the file named by
:data:`PUSH_LOG_ENV`, which ``git_http`` reads after the push to emit push events.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

PUSH_RULES_ENV = "CREWLINE_SIM_PUSH_RULES"
PUSH_LOG_ENV = "CREWLINE_SIM_PUSH_LOG"

ZERO_SHA = "0" * 40


@dataclass(frozen=True)
class PushRule:
    """What one protected-branch pattern allows the pushing user."""

    pattern: str  # GitLab wildcard: ``*`` matches anything, ``/`` included
    can_push: bool
    allow_force_push: bool


def wildcard_regex(pattern: str) -> str:
    """The full-match regular expression for a GitLab protected-branch wildcard."""
    return "".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern))


def push_rules_env(rules: list[PushRule]) -> str:
    return json.dumps(
        [
            {
                "regex": wildcard_regex(rule.pattern),
                "can_push": rule.can_push,
                "allow_force_push": rule.allow_force_push,
            }
            for rule in rules
        ]
    )


_PRE_RECEIVE = r"""
import json, os, re, subprocess, sys

ZERO = "0" * 40


def refusal(rules, old, new, branch):
    matching = [rule for rule in rules if re.fullmatch(rule["regex"], branch)]
    if not matching:
        return None
    # As on GitLab, the most permissive matching rule decides.
    can_push = any(rule["can_push"] for rule in matching)
    can_force = any(rule["can_push"] and rule["allow_force_push"] for rule in matching)
    if new == ZERO:
        return "You can only delete protected branches using the web interface."
    if not can_push:
        if old == ZERO:
            return "You are not allowed to create protected branches on this project."
        return "You are not allowed to push code to protected branches on this project."
    if old != ZERO and not can_force:
        fast_forward = subprocess.run(["git", "merge-base", "--is-ancestor", old, new]).returncode == 0
        if not fast_forward:
            return "You are not allowed to force push code to a protected branch on this project."
    return None


def main():
    raw = os.environ.get("%(rules_env)s")
    if not raw:
        return 0
    rules = json.loads(raw)
    for line in sys.stdin:
        old, new, ref = line.split()
        if not ref.startswith("refs/heads/"):
            continue
        message = refusal(rules, old, new, ref[len("refs/heads/"):])
        if message:
            print("GitLab: " + message, file=sys.stderr)
            return 1
    return 0


sys.exit(main())
"""

# A shell script: git runs it on every push, and sh starts in a tenth of Python's time.
_POST_RECEIVE = """\
#!/bin/sh
if [ -n "$%(log_env)s" ]; then cat >> "$%(log_env)s"; fi
"""


def install_hooks(repo: Path) -> None:
    """Write (or refresh) the hooks of the bare repository ``repo``."""
    values = {"rules_env": PUSH_RULES_ENV, "log_env": PUSH_LOG_ENV}
    # -I -S: the hook needs the standard library alone, so it skips site-packages (and the
    # virtual environment's path hooks) and any PYTHON* variable of the pushing process.
    pre_receive = f"#!{sys.executable} -IS\n" + _PRE_RECEIVE % values
    hooks = repo / "hooks"
    hooks.mkdir(exist_ok=True)
    for name, text in (("pre-receive", pre_receive), ("post-receive", _POST_RECEIVE % values)):
        hook = hooks / name
        if not hook.exists() or hook.read_text(encoding="utf-8") != text:
            hook.write_text(text, encoding="utf-8")
        hook.chmod(hook.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def read_push_log(path: Path) -> list[tuple[str, str, str]]:
    """The ``(before, after, ref)`` updates a post-receive hook logged to ``path``."""
    if not path.exists():
        return []
    updates = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 3:
            updates.append((parts[0], parts[1], parts[2]))
    return updates


def hook_env(rules: list[PushRule], log_path: Path) -> dict[str, str]:
    return {PUSH_RULES_ENV: push_rules_env(rules), PUSH_LOG_ENV: os.fspath(log_path)}
