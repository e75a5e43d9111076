"""What the scripted model answers in the contract tests: one small goal, app/shout.py, whose
first attempt fails its acceptance check (a fix turn follows)."""

from __future__ import annotations

import json
from typing import Any

from tests.contract.model_server import Reply, Request

GOAL_TITLE = "Add a shout helper"
GOAL = "Add app/shout.py with shout(text): the text in upper case, then '!'."
CHECK = "python3 -c \"from app.shout import shout; assert shout('hi') == 'HI!'\""
PLAN = {
    "summary": "Add shout() in app/shout.py.",
    "steps": ["Write app/shout.py with shout(text)"],
    "acceptance": [CHECK],
    "owned_paths": ["app/shout.py"],
    "depends_on": [],
    "risks": [],
    "questions": [],
}
FIRST = "def shout(text):\n    return text.upper()\n"
FIXED = 'def shout(text):\n    return text.upper() + "!"\n'
LEARNINGS = (
    "```crewline-learnings\n"
    '[{"kind": "remember", "text": "acceptance checks import from app/"}]\n'
    "```"
)
REVIEW = 'The change is right.\n\n```crewline-review\n{"findings": []}\n```'

# Which of crewline's prompts a request answers, by a phrase only that prompt has.
FIX = "Validation failed after your last change"
REVIEWING = "You are reviewing merge request"
PLANNING = "You are the product manager"
IMPLEMENTING = "You are a software developer"
LEARNINGS_ASK = "you did not report what you learned"


def plan_reply() -> str:
    return "Here is the plan.\n\n```json\n" + json.dumps(PLAN, indent=2) + "\n```"


def last_user_text(request: Request) -> str:
    """The text of the last user message (chat completions, Messages or Responses input)."""
    body = request.body
    entries: list[Any] = body.get("messages") or body.get("input") or []
    for entry in reversed(entries):
        if isinstance(entry, dict) and entry.get("role") == "user":
            return _text(entry.get("content"))
    return ""


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def which_prompt(request: Request) -> str:
    text = last_user_text(request)
    for phrase in (FIX, REVIEWING, PLANNING, IMPLEMENTING, LEARNINGS_ASK):
        if phrase in text:
            return phrase
    return ""


def aider_script(request: Request) -> Reply:
    """aider's diff edit format: a SEARCH/REPLACE block per change, an empty SEARCH for a
    new file."""
    kind = which_prompt(request)
    if kind == PLANNING:
        return Reply(plan_reply())
    if kind == IMPLEMENTING:
        edit = f"app/shout.py\n```python\n<<<<<<< SEARCH\n=======\n{FIRST}>>>>>>> REPLACE\n```"
        return Reply(f"I'll add the helper.\n\n{edit}\n\n{LEARNINGS}")
    if kind == FIX:
        edit = (
            f"app/shout.py\n```python\n<<<<<<< SEARCH\n{FIRST}=======\n{FIXED}>>>>>>> REPLACE\n```"
        )
        return Reply(f"The '!' was missing.\n\n{edit}\n\n{LEARNINGS}")
    if kind == REVIEWING:
        return Reply(REVIEW)
    return Reply(LEARNINGS)


QUESTION = "Should shout() also strip trailing spaces?"
ANSWER = "No, keep the text as it is."


def _write(content: str) -> str:
    lines = " ".join("'" + line.replace("'", "'\"'\"'") + "'" for line in content.splitlines())
    return f"mkdir -p app && printf '%s\\n' {lines} > app/shout.py"


def shell_script(request: Request, *, ask: bool = True) -> Reply:
    """For agents that edit through a shell tool (Claude Code's Bash, Codex's exec_command):
    the PM asks a question first (when ``ask``), the developer writes the file with one
    command per turn."""
    kind = which_prompt(request)
    text = last_user_text(request)
    if kind == PLANNING:
        if ask and "Answer from" not in text:
            plan = {**PLAN, "questions": [QUESTION]}
            return Reply("```json\n" + json.dumps(plan) + "\n```")
        return Reply(plan_reply())
    if kind == IMPLEMENTING:
        return Reply(f"Added app/shout.py.\n\n{LEARNINGS}", command=_write(FIRST))
    if kind == FIX:
        return Reply(f"Added the '!'.\n\n{LEARNINGS}", command=_write(FIXED))
    if kind == REVIEWING:
        return Reply(REVIEW)
    return Reply(LEARNINGS)
