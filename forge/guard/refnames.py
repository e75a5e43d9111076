"""Branch names, checked with git's own rules (``git check-ref-format --branch``).

Kept in Python (no subprocess) so the guard stays pure; the tests compare the verdicts
with the real ``git check-ref-format``.
"""

from __future__ import annotations

_FORBIDDEN_CHARS = {" ": "a space", "~": "'~'", "^": "'^'", ":": "':'", "?": "'?'", "*": "'*'"}
_FORBIDDEN_CHARS |= {"[": "'['", "\\": "a backslash"}


def ref_format_problem(name: str) -> str | None:
    """Why ``name`` is not a valid branch name, or None when git would accept it."""
    if not name:
        return "it is empty"
    if name.startswith("-"):
        return "it starts with '-'"
    if name == "HEAD":
        return "'HEAD' is reserved by git"
    if name == "@":
        # git would create refs/heads/@, but reads a lone "@" as HEAD in every revision.
        return "'@' alone means HEAD to git"
    for char in name:
        if ord(char) < 0x20 or ord(char) == 0x7F:
            return f"it contains the control character U+{ord(char):04X}"
        if char in _FORBIDDEN_CHARS:
            return f"it contains {_FORBIDDEN_CHARS[char]}"
    if ".." in name:
        return "it contains '..'"
    if "@{" in name:
        return "it contains '@{'"
    if name.startswith("/") or name.endswith("/") or "//" in name:
        return "it has an empty path component (leading, trailing or double '/')"
    if name.endswith("."):
        return "it ends with '.'"
    for component in name.split("/"):
        if component.startswith("."):
            return f"the component {component!r} starts with '.'"
        if component.endswith(".lock"):
            return f"the component {component!r} ends with '.lock'"
    return None
