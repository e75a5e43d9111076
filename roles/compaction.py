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


def learnings_markdown(items: list[LearningItem]) -> str:
    lines = ["### Learnings", ""]
    lines += [f"- **{item.kind}**: {item.text}" for item in items]
    return "\n".join(lines)
