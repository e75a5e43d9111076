"""`crewline labels sync`: every workflow label exists with its colour and description.

Idempotent, and safe with other hosts syncing at the same moment: a label already right is
left alone, one with another colour or description is updated, a missing one is created.
A create that meets the label anyway (GitLab's 409 "Label already exists": another host
created it since the listing, or our own create was performed but its answer lost) adopts
it and goes on as for a label that existed. Labels outside the workflow are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gitlab

from forge.client import ForgeConflict, ForgeNotFound
from forge.ports import GitLabCalls, IssueTracker


@dataclass
class LabelSync:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _same_colour(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


def _differs(have: dict[str, Any], wanted: dict[str, str]) -> bool:
    return not _same_colour(str(have.get("color", "")), wanted["color"]) or (
        (have.get("description") or "") != wanted["description"]
    )


async def sync_labels(gateway: IssueTracker, project: str) -> LabelSync:
    calls = gateway.calls

    def list_(gl: gitlab.Gitlab) -> list[dict[str, Any]]:
        labels = gl.projects.get(project, lazy=True).labels.list(get_all=True, per_page=100)
        return [dict(label.attributes) for label in labels]

    existing = {
        str(label["name"]): label for label in await calls.read("label.list", project, {}, list_)
    }
    result = LabelSync()
    for state in gateway.workflow.states.values():
        wanted = {"name": state.label, "color": state.color, "description": state.description}
        have = existing.get(state.label)
        if have is None:
            have = await _create(calls, project, wanted)
            if not _differs(have, wanted):
                result.created.append(state.label)
                continue
        if _differs(have, wanted):
            await _update(calls, project, wanted)
            result.updated.append(state.label)
        else:
            result.unchanged.append(state.label)
    return result


async def ensure_label(
    gateway: IssueTracker, project: str, name: str, color: str, description: str
) -> None:
    """Create the label ``name`` unless it exists (another host may create it meanwhile)."""
    if await _get(gateway.calls, project, name) is None:
        wanted = {"name": name, "color": color, "description": description}
        await _create(gateway.calls, project, wanted)


async def _get(calls: GitLabCalls, project: str, name: str) -> dict[str, Any] | None:
    def get(gl: gitlab.Gitlab) -> dict[str, Any]:
        return dict(gl.projects.get(project, lazy=True).labels.get(name).attributes)

    try:
        return await calls.read("label.get", f"{project}~{name}", {}, get)
    except ForgeNotFound:
        return None


async def _create(calls: GitLabCalls, project: str, wanted: dict[str, str]) -> dict[str, Any]:
    """Create the label, or adopt it if it exists by now; returns it as GitLab has it."""
    name = wanted["name"]

    def create(gl: gitlab.Gitlab, data: dict[str, Any]) -> dict[str, Any]:
        return dict(gl.projects.get(project, lazy=True).labels.create(data).attributes)

    async def find_created(_: dict[str, Any]) -> dict[str, Any] | None:
        return await _get(calls, project, name)

    try:
        return await calls.write(
            "label.create", f"{project}~{name}", wanted, create,
            text_fields=("description",), find_existing=find_created,
        )  # fmt: skip
    except ForgeConflict:
        adopted = await _get(calls, project, name)
        if adopted is None:  # deleted again in between: nothing sensible to adopt
            raise
        return adopted


async def _update(calls: GitLabCalls, project: str, wanted: dict[str, str]) -> None:
    def update(gl: gitlab.Gitlab, data: dict[str, Any]) -> None:
        gl.projects.get(project, lazy=True).labels.update(
            data["name"], {"color": data["color"], "description": data["description"]}
        )

    await calls.write(
        "label.update", f"{project}~{wanted['name']}", wanted, update,
        text_fields=("description",),
    )  # fmt: skip
