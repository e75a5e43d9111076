"""What the PM's plan is checked against before it is posted: the repository it plans for.

- the file tree the PM sees in its prompt, bounded so a large repository does not drown it;
- each acceptance check must be valid shell (``sh -n``): an invalid one sends the PM back;
- each owned-path glob should match a file of the tree; one that matches nothing (and is not
  a plain path, i.e. a new file) is flagged in the plan note for the human at the plan gate.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Sequence

TREE_LIMIT = 300
_GLOB_CHARS = frozenset("*?[")
SYNTAX_TIMEOUT_SECONDS = 10.0


def file_tree(files: Sequence[str], limit: int = TREE_LIMIT) -> str:
    """The first ``limit`` paths, one a line, and how many more there are."""
    if not files:
        return "(the branch has no files yet)"
    shown = "\n".join(files[:limit])
    if len(files) > limit:
        shown += f"\n... and {len(files) - limit} more ({len(files)} files in all)"
    return shown


def unmatched_owned(owned: Sequence[str], files: Sequence[str]) -> list[str]:
    """Owned globs that match no file of the tree; a plain path (no glob character, not a
    directory) names a new file and is never flagged."""
    return [
        glob
        for glob in owned
        if (_GLOB_CHARS & set(glob) or glob.endswith("/"))
        and not any(fnmatch.fnmatch(path, glob) for path in files)
    ]


def unmatched_note(unmatched: Sequence[str], target_branch: str) -> str:
    globs = ", ".join(f"`{glob}`" for glob in unmatched)
    return (
        f"**Owned paths that match no file on `{target_branch}`**: {globs}. The developer may "
        "change only files these match: check the paths before approving."
    )


async def shell_syntax_errors(commands: Sequence[str]) -> list[str]:
    """One message per command that ``sh -n`` rejects (parsed, never run)."""
    problems = []
    for number, command in enumerate(commands, 1):
        error = await _syntax_error(command)
        if error is not None:
            problems.append(f"acceptance check {number} (`{command}`) is not valid shell: {error}")
    return problems


async def _syntax_error(command: str) -> str | None:
    process = await asyncio.create_subprocess_exec(
        "sh",
        "-n",
        "-c",
        command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin"},
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), SYNTAX_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        return f"sh -n did not finish within {SYNTAX_TIMEOUT_SECONDS:g} s"
    if process.returncode == 0:
        return None
    text = stderr.decode("utf-8", errors="replace").strip()
    return text.replace("sh: 1: ", "").replace("\n", " ")[:300] or "rejected by sh -n"
