"""The simulator's fault rules from tests (see sim/core/faults.py for the admin API)."""

from __future__ import annotations

import re
from typing import Any

import requests

from sim.core.app import RunningSim

ROOT_TOKEN = "sim-root-token"


def faults_url(sim: RunningSim) -> str:
    return f"{sim.base_url}/api/v4/_sim/faults"


def add_fault(sim: RunningSim, **rule: Any) -> requests.Response:
    return requests.post(
        faults_url(sim), json=rule, headers={"PRIVATE-TOKEN": ROOT_TOKEN}, timeout=5
    )


def lose_answer(sim: RunningSim, method: str, path_regex: str, **rule: Any) -> dict[str, Any]:
    """The next matching request is performed and its answer lost (503 unless told)."""
    rule = {"status": 503, **rule} if not rule.get("drop") else rule
    answer = add_fault(sim, method=method, path_regex=path_regex, when="after", count=1, **rule)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def rules(sim: RunningSim) -> list[dict[str, Any]]:
    listed = requests.get(faults_url(sim), headers={"PRIVATE-TOKEN": ROOT_TOKEN}, timeout=5)
    return list(listed.json())


_POST_MARKER = re.compile(r"\n\n<!-- crewline:post id=[0-9a-f]+ -->$")


def as_written(body: str) -> str:
    """A note's body without the one-off marker crewline appends to find it again
    (forge/markers.py), i.e. as its author wrote it."""
    return _POST_MARKER.sub("", body)
