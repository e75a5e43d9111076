"""Merge-request labels, through the shared label rules of :mod:`sim.issues.labels`: labels
are created on the fly, and scoped labels are exclusive on the premium tier."""

from __future__ import annotations

from typing import Any

from sim.core.base import Sim
from sim.core.hook_payloads import label_hook_json
from sim.core.http import Params
from sim.issues.labels import ensure_labels, next_label_names


async def apply_label_params(
    sim: Sim, project_id: int, current: list[str], params: Params
) -> list[str]:
    """The MR's label names after ``labels``/``add_labels``/``remove_labels``; creates labels
    that do not exist yet."""
    names = next_label_names(
        current,
        replace=params.get_list("labels"),
        add=params.get_list("add_labels"),
        remove=params.get_list("remove_labels"),
        exclusive_scopes=sim.premium,
    )
    if names:
        async with sim.store.write() as conn:
            await ensure_labels(conn, project_id, names)
    return names


async def hook_labels(sim: Sim, project_id: int, names: list[str]) -> list[dict[str, Any]]:
    """Labels as webhook payloads show them (``title``, not ``name``), sorted by title."""
    if not names:
        return []
    marks = ", ".join("?" for _ in names)
    rows = await sim.store.fetchall(
        f"SELECT * FROM labels WHERE project_id = ? AND name IN ({marks}) ORDER BY name",
        (project_id, *names),
    )
    return [label_hook_json(row) for row in rows]


async def label_changes(
    sim: Sim, project_id: int, previous: list[str], current: list[str]
) -> dict[str, Any]:
    """The ``changes.labels`` entry of a webhook payload, or nothing when unchanged."""
    if sorted(previous) == sorted(current):
        return {}
    return {
        "labels": {
            "previous": await hook_labels(sim, project_id, previous),
            "current": await hook_labels(sim, project_id, current),
        }
    }
