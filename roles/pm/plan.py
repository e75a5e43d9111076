"""The plan a PM agent writes: a strict format, validated before anyone acts on it.

Agents answer with one JSON object (bare, or in a ```json fenced block; the last block
wins). The plan note crewline posts carries the same JSON back in a fenced block, so the
developer role and other hosts read exactly what the human approved.
"""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_FENCED_JSON = re.compile(r"```json[^\n]*\n(.*?)\n```", re.S)
_ISSUE_REF = re.compile(r"^#?(\d+)$")


class PlanError(ValueError):
    """The agent's answer is not a valid plan; the message says what to fix."""


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    summary: str = Field(min_length=1, max_length=2000)
    steps: list[str] = Field(min_length=1, max_length=50)
    acceptance: list[str] = Field(
        min_length=1, max_length=30, description="Shell commands that must exit 0"
    )
    owned_paths: list[str] = Field(
        min_length=1, max_length=100, description="Globs of the files this work may change"
    )
    depends_on: list[int] = Field(default_factory=list, description="Issue iids")
    risks: list[str] = Field(default_factory=list)
    questions: list[str] = Field(default_factory=list)

    @field_validator("steps", "acceptance", "risks", "questions")
    @classmethod
    def _no_blank_items(cls, items: list[str]) -> list[str]:
        if any(not item.strip() for item in items):
            raise ValueError("items must not be blank")
        return [item.strip() for item in items]

    @field_validator("owned_paths")
    @classmethod
    def _relative_globs(cls, globs: list[str]) -> list[str]:
        for glob in globs:
            path = PurePosixPath(glob)
            if not glob.strip() or path.is_absolute() or ".." in path.parts:
                raise ValueError(
                    f"{glob!r} is not a path inside the repository (relative, no '..')"
                )
        return globs

    @field_validator("depends_on", mode="before")
    @classmethod
    def _issue_refs(cls, refs: object) -> object:
        if not isinstance(refs, list):
            return refs
        parsed: list[object] = []
        for ref in refs:
            match = _ISSUE_REF.match(str(ref).strip()) if isinstance(ref, str | int) else None
            if match is None or int(match.group(1)) < 1:
                raise ValueError(f"{ref!r} is not an issue reference like 12 or '#12'")
            parsed.append(int(match.group(1)))
        return parsed

    def to_markdown(self) -> str:
        """The plan note: readable first, then the exact JSON for machines."""
        sections = [
            f"### Plan\n\n{self.summary}",
            "**Steps**\n\n" + "\n".join(f"{n}. {step}" for n, step in enumerate(self.steps, 1)),
            "**Acceptance checks**\n\n" + "\n".join(f"- `{cmd}`" for cmd in self.acceptance),
            "**Owned paths**: " + ", ".join(f"`{glob}`" for glob in self.owned_paths),
        ]
        if self.depends_on:
            sections.append("**Depends on**: " + ", ".join(f"#{n}" for n in self.depends_on))
        if self.risks:
            sections.append("**Risks**\n\n" + "\n".join(f"- {risk}" for risk in self.risks))
        if self.questions:
            sections.append("**Open questions**\n\n" + "\n".join(f"- {q}" for q in self.questions))
        machine = json.dumps(self.model_dump(), indent=2, ensure_ascii=False)
        sections.append(
            f"<details><summary>plan.json</summary>\n\n```json\n{machine}\n```\n</details>"
        )
        return "\n\n".join(sections)


def parse_plan(text: str) -> Plan:
    """The plan in an agent's answer or a plan note; PlanError says what is wrong."""
    blocks = _FENCED_JSON.findall(text)
    candidate = blocks[-1] if blocks else text.strip()
    try:
        data = json.loads(candidate)
    except json.JSONDecodeError as error:
        raise PlanError(
            f"the plan is not valid JSON ({error.msg} at line {error.lineno}); answer with "
            "one JSON object with keys summary, steps, acceptance, owned_paths, depends_on, "
            "risks, questions"
        ) from error
    if not isinstance(data, dict):
        raise PlanError("the plan must be a JSON object, not " + type(data).__name__)
    try:
        return Plan.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or 'plan'}: {item['msg']}"
            for item in error.errors()
        )
        raise PlanError(f"the plan does not match the format: {problems}") from error


PLAN_FORMAT = """Answer with ONE JSON object in a ```json fenced block, with exactly these keys:
- "summary": what will be done and why (a paragraph)
- "steps": ordered implementation steps (strings)
- "acceptance": shell commands, run from the repository root, that exit 0 only when the
  goal is met (at least one)
- "owned_paths": globs of the files the work may create or change, e.g. "app/text.py",
  "tests/test_text.py" (changes outside them stop the work)
- "depends_on": iids of issues that must be done first, e.g. [12] (or [])
- "risks": what could go wrong (strings, may be empty)
- "questions": questions a human must answer before work starts (usually empty)"""
