"""The compaction gate: what an agent learned, extracted from its final message.

Agents end their work with a fenced block::

    ```crewline-learnings
    [{"kind": "failure", "text": "the first attempt broke the empty-string case"},
     {"kind": "decision", "text": "kept slugify ASCII-only"},
     {"kind": "remember", "text": "tests run with python3 -m unittest"}]
    ```

No learnings, no merge request: the developer role asks once more, then stops.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_BLOCK = re.compile(r"```crewline-learnings[^\n]*\n(.*?)\n```", re.S)
KINDS = ("failure", "decision", "remember")

LEARNINGS_FORMAT = """End your final message with what you learned, for the next runs, in a block:
```crewline-learnings
[{"kind": "failure", "text": "what failed and why"},
 {"kind": "decision", "text": "what you decided and why"},
 {"kind": "remember", "text": "what the next person working here must know"}]
```
(kinds: failure, decision, remember; at least one entry)."""


@dataclass(frozen=True)
class LearningItem:
    kind: str
    text: str


def parse_learnings(output: str) -> list[LearningItem]:
    """The learnings in the agent's last learnings block; [] when there is none or it is
    malformed (the caller asks again)."""
    blocks = _BLOCK.findall(output)
    if not blocks:
        return []
    try:
        data = json.loads(blocks[-1])
    except json.JSONDecodeError:
        return []
    if not isinstance(data, list):
        return []
    items = []
    for entry in data:
        if not isinstance(entry, dict):
            continue
        kind, text = entry.get("kind"), entry.get("text")
        if kind in KINDS and isinstance(text, str) and text.strip():
            items.append(LearningItem(kind, text.strip()[:2000]))
    return items


LEARNINGS_HEADING = "### Learnings"
_ITEM = re.compile(r"^- \*\*(?P<kind>[a-z]+)\*\*: (?P<text>.*)$")


def learnings_markdown(items: list[LearningItem]) -> str:
    """The learnings note; :func:`learnings_from_markdown` reads it back (other hosts index
    it), so a text's further lines are indented to stay inside its item."""
    lines = [LEARNINGS_HEADING, ""]
    lines += [f"- **{item.kind}**: {item.text.replace(chr(10), chr(10) + '  ')}" for item in items]
    return "\n".join(lines)


def learnings_from_markdown(body: str) -> list[LearningItem]:
    """The items of a note written by :func:`learnings_markdown`; [] for any other text."""
    if not body.startswith(LEARNINGS_HEADING):
        return []
    items: list[LearningItem] = []
    kind, text = "", list[str]()
    for line in body.splitlines()[1:]:
        item = _ITEM.match(line)
        if item is not None:
            if kind:
                items.append(LearningItem(kind, "\n".join(text).strip()))
            kind, text = item.group("kind"), [item.group("text")]
        elif kind and line.startswith("  "):
            text.append(line[2:])
        elif kind:  # the list ended (a blank line, the hidden marker)
            items.append(LearningItem(kind, "\n".join(text).strip()))
            kind, text = "", list[str]()
    if kind:
        items.append(LearningItem(kind, "\n".join(text).strip()))
    return [item for item in items if item.kind in KINDS and item.text]
