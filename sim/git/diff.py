"""Parsers of git output: ``git diff`` into GitLab diff objects, ``git ls-tree`` entries."""

from __future__ import annotations

from typing import Any

_MISSING_MODE = "000000"


def parse_diff(raw: bytes, patch: bytes) -> list[dict[str, Any]]:
    """Combine ``git diff --raw -z`` (paths, modes, status) with the patch text of the same
    diff (the files come in the same order) into GitLab's diff objects."""
    files = _parse_raw(raw)
    texts = _split_patch(patch.decode(errors="replace"))
    diffs = []
    for index, (status, a_mode, b_mode, old_path, new_path) in enumerate(files):
        text = texts[index] if index < len(texts) else ""
        diffs.append(
            {
                "old_path": old_path,
                "new_path": new_path,
                "a_mode": a_mode if status != "A" else "0",
                "b_mode": b_mode if status != "D" else "0",
                "new_file": status == "A",
                "renamed_file": status == "R",
                "deleted_file": status == "D",
                "generated_file": False,
                "diff": text,
            }
        )
    return diffs


def _parse_raw(raw: bytes) -> list[tuple[str, str, str, str, str]]:
    tokens = raw.decode(errors="replace").split("\0")
    files = []
    position = 0
    while position < len(tokens):
        meta = tokens[position]
        if not meta.startswith(":"):
            position += 1
            continue
        a_mode, b_mode, _old_sha, _new_sha, status = meta[1:].split()
        letter = status[0]
        if letter in ("R", "C"):
            old_path, new_path = tokens[position + 1], tokens[position + 2]
            position += 3
        else:
            old_path = new_path = tokens[position + 1]
            position += 2
        files.append((letter, a_mode, b_mode, old_path, new_path))
    return files


def _split_patch(patch: str) -> list[str]:
    """Each file's patch from its first hunk on (GitLab drops the ``diff --git`` header)."""
    chunks = patch.split("\ndiff --git ")
    texts = []
    for chunk in chunks:
        if not chunk.strip():
            continue
        lines = chunk.split("\n")
        start = next((i for i, line in enumerate(lines) if line.startswith("@@")), None)
        if start is None:
            binary = [line for line in lines if line.startswith("Binary files")]
            texts.append(binary[0] + "\n" if binary else "")
        else:
            texts.append("\n".join(lines[start:]).rstrip("\n") + "\n")
    return texts


def parse_ls_tree(out: bytes) -> list[dict[str, Any]]:
    entries = []
    for record in out.decode(errors="replace").split("\0"):
        if not record:
            continue
        meta, path = record.split("\t", 1)
        mode, kind, sha, size = meta.split()
        entries.append(
            {
                "mode": mode,
                "type": kind,
                "id": sha,
                "size": int(size) if size.isdigit() else 0,
                "path": path,
                "name": path.rsplit("/", 1)[-1],
            }
        )
    return entries
