"""Which host paths a confined command needs to see, found from the command itself: its
program (and the interpreter of a script), the directories on its PATH, and what git needs
when the working directory is a linked worktree."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_SHEBANG_BYTES = 256


def _prefix(directory: Path) -> list[Path]:
    """``directory``, plus its parent when it is a ``bin`` directory (a venv's or a tool's
    prefix holds its libraries beside it), never ``/`` itself."""
    found = [directory]
    if directory.name in ("bin", "sbin") and directory.parent != Path("/"):
        found.append(directory.parent)
    return found


def search_path_dirs(path_env: str | None) -> list[Path]:
    """The existing directories on ``PATH`` and their prefixes."""
    found: list[Path] = []
    for entry in (path_env or "").split(os.pathsep):
        directory = Path(entry)
        if entry and directory.is_absolute() and directory.is_dir():
            found += _prefix(directory)
    return found


def _interpreter(program: Path) -> Path | None:
    """The absolute interpreter named by a script's ``#!`` line, if any."""
    try:
        with program.open("rb") as handle:
            head = handle.read(_SHEBANG_BYTES)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].split()
    if not words or not words[0].startswith(b"/"):
        return None
    return Path(os.fsdecode(words[0]))


def _node_modules(file: Path) -> list[Path]:
    """The outermost ``node_modules`` directory holding ``file``, if any: an npm CLI loads its
    dependencies (Codex its native binary, ``@openai/codex-linux-x64``) from sibling packages
    there, not from its own package directory."""
    parts = file.parts
    if "node_modules" not in parts:
        return []
    return [Path(*parts[: parts.index("node_modules") + 1])]


def program_dirs(program: str, path_env: str | None) -> list[Path]:
    """Where ``program`` (as found on ``path_env``), its real file and a script's interpreter
    live, with their prefixes (and the npm tree of a program inside one); empty when it cannot
    be found (the launch then fails inside)."""
    located = shutil.which(program, path=path_env)
    if located is None:
        return []
    found: list[Path] = []
    for candidate in (Path(located).absolute(), Path(os.path.realpath(located))):
        found += _prefix(candidate.parent) + _node_modules(candidate)
        interpreter = _interpreter(candidate)
        if interpreter is not None:
            for file in (interpreter, Path(os.path.realpath(interpreter))):
                found += _prefix(file.parent)
    return found


@dataclass(frozen=True, slots=True)
class GitDirs:
    """What git needs for a linked worktree: the shared repository (read-only: objects, refs,
    config) and this worktree's own administrative directory (read-write: HEAD, index)."""

    common: Path
    private: Path


def linked_worktree(worktree: Path) -> GitDirs | None:
    """The git directories behind ``worktree`` when its ``.git`` is a ``gitdir:`` file
    pointing elsewhere (``git worktree add``); None for a plain checkout or no repository."""
    marker = worktree / ".git"
    if not marker.is_file():
        return None
    try:
        text = marker.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("gitdir:"):
        return None
    private = Path(text.removeprefix("gitdir:").strip())
    if not private.is_absolute():
        private = worktree / private
    private = Path(os.path.normpath(private))
    common = private
    commondir = private / "commondir"
    if commondir.is_file():
        relative = commondir.read_text(encoding="utf-8").strip()
        common = Path(os.path.normpath(private / relative))
    if not private.is_dir() or not common.is_dir():
        return None
    return GitDirs(common=common, private=private)


def by_depth(paths: Iterable[Path]) -> list[Path]:
    """Unique absolute paths, parents before children (a later mount covers an earlier one)."""
    unique = {Path(os.path.normpath(path)) for path in paths if path.is_absolute()}
    return sorted(unique, key=lambda path: (len(path.parts), str(path)))


def within(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents
