"""One sink for every text crewline writes: hidden markers only where crewline meant them.

crewline finds its own state again through hidden ``<!-- crewline:... -->`` markers in
what it writes (forge/markers.py, forge/trust.py). Text it writes often quotes others'
words (an agent's summary, a CI log excerpt, a review finding, goal text); a marker in
those words would count as crewline's once posted under crewline's name. So every text
crewline writes passes :func:`unmark` (``AuditedCalls.write`` for every GitLab write,
``commit_all`` for the commits it authors): each marker becomes a visible remark unless
crewline *sealed* it, i.e. the code that put it there on purpose wrote ``seal(marker)``.

The seal is a random string drawn when the process starts and removed here: quoted text
cannot carry it (nobody outside the process knows it, and it never reaches GitLab), so a
marker is crewline's exactly when crewline's code sealed it. A new write path cannot
skip the sink (it is in the one function that sends writes); a new marker that someone
forgets to seal is removed, which the tests of that feature notice (decision 0043).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection, Mapping
from typing import Any

# Lenient on purpose (spacing, case, an unterminated comment): whatever any reader might
# take for a marker is removed from text crewline did not mark as its own.
_MARKER = re.compile(r"<!--\s*crewline\s*:.*?(?:-->|\Z)", re.S | re.I)
# The strict form crewline's own markers take (one line, one space each side).
_OWN = re.compile(r"<!-- crewline:[a-z][a-z-]*(?: [^<>\n]*?)? -->")
FORGED = "[a hidden crewline marker was removed: only crewline's own notes carry one]"
# NUL never occurs in a note, an issue or a commit message: the seal cannot be mistaken.
_SEAL = f"\x00crewline-seal-{secrets.token_hex(16)}\x00"


def carries_marker(text: str) -> bool:
    return _MARKER.search(text) is not None


def defang(text: str) -> str:
    """``text`` with every hidden crewline marker replaced by a visible remark."""
    return _MARKER.sub(FORGED, text)


def seal(marker: str) -> str:
    """``marker``, which crewline writes on purpose, sealed so that :func:`unmark` keeps
    it. Use it only where the marker is built, never on text from elsewhere."""
    if not _OWN.fullmatch(marker):
        raise ValueError(f"{marker!r} is not a crewline marker (<!-- crewline:kind ... -->)")
    return _SEAL + marker


def seal_all(text: str) -> str:
    """``text``, which crewline verified as its own (a description ``Trust.issue`` kept
    the markers of), with each of its markers sealed: for a read-modify-write."""
    return _OWN.sub(lambda found: _SEAL + found.group(), text)


def unmark(text: str) -> str:
    """``text`` as crewline may write it: sealed markers kept (seal removed), every other
    marker replaced by a visible remark."""
    if _SEAL not in text:
        return defang(text) if "<!--" in text else text
    head, *sealed = text.split(_SEAL)
    parts = [defang(head)]
    for part in sealed:
        own = _OWN.match(part)
        if own is None:  # a seal without a marker after it: nothing to keep
            parts.append(defang(part))
            continue
        parts += [own.group(), defang(part[own.end() :])]
    return "".join(parts)


def unmark_payload(payload: Mapping[str, Any], keep: Collection[str] = ()) -> dict[str, Any]:
    """``payload`` with :func:`unmark` applied to every string at any depth, except the
    fields named in ``keep`` (file contents and branch names: no reader looks for markers
    there, and a file's bytes must be committed as written)."""
    return {key: value if key in keep else _unmarked(value) for key, value in payload.items()}


def _unmarked(value: Any) -> Any:
    if isinstance(value, str):
        return unmark(value)
    if isinstance(value, Mapping):
        return unmark_payload(value)
    if isinstance(value, list | tuple):
        return [_unmarked(item) for item in value]
    return value
