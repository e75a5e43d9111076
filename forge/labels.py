"""`crewline labels sync`: every workflow label exists with its colour and description.

Idempotent: a label already right is left alone, one with another colour or description is
updated, a missing one is created. Labels outside the workflow are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gitlab

from forge.gateway import Gateway


@dataclass
class LabelSync:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _same_colour(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


async def sync_labels(gateway: Gateway, project: str) -> LabelSync:
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

            def create(gl: gitlab.Gitlab, data: dict[str, Any]) -> None:
                gl.projects.get(project, lazy=True).labels.create(data)

            await calls.write(
                "label.create", f"{project}~{state.label}", wanted, create,
                text_fields=("description",),
            )  # fmt: skip
            result.created.append(state.label)
        elif not _same_colour(str(have.get("color", "")), state.color) or (
            (have.get("description") or "") != state.description
        ):

            def update(gl: gitlab.Gitlab, data: dict[str, Any]) -> None:
                gl.projects.get(project, lazy=True).labels.update(
                    data["name"], {"color": data["color"], "description": data["description"]}
                )

            await calls.write(
                "label.update", f"{project}~{state.label}", wanted, update,
                text_fields=("description",),
            )  # fmt: skip
            result.updated.append(state.label)
        else:
            result.unchanged.append(state.label)
    return result
