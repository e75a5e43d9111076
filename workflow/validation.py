"""Validation of a workflow: every problem a user can act on, each naming its key and a fix."""

from __future__ import annotations

import re
from collections import defaultdict

from workflow.model import (
    CAME_FROM,
    MAX_LABEL_LENGTH,
    SCOPE_SEPARATOR,
    Outcome,
    State,
    StateKind,
    Workflow,
    label_name_problem,
    label_text_problem,
)

_COLOR = re.compile(r"#[0-9A-Fa-f]{6}")
_ROLE_KINDS = (StateKind.READY, StateKind.RUNNING)


def validate(wf: Workflow) -> list[str]:
    """Every problem with `wf`, in a stable order; an empty list means it is usable."""
    return [
        *_scope_problems(wf),
        *(problem for state in wf for problem in _state_problems(wf, state)),
        *_duplicate_label_problems(wf),
        *_role_problems(wf),
        *_transition_problems(wf),
        *_reachability_problems(wf),
        *_dangling_problems(wf),
    ]


def _known(wf: Workflow) -> str:
    return ", ".join(wf.states)


def _scope_problems(wf: Workflow) -> list[str]:
    problem = label_text_problem(wf.scope)
    if problem is None:
        return []
    return [f'workflow scope "{wf.scope}" {problem}; choose a plain scope such as "workflow"']


def _state_problems(wf: Workflow, state: State) -> list[str]:
    where = f'state "{state.name}"'
    problems: list[str] = []
    if state.name == CAME_FROM:
        problems.append(f'{where}: "{CAME_FROM}" is reserved as a transition target; rename it')
    prefix = wf.scope + SCOPE_SEPARATOR
    if not state.label.startswith(prefix):
        problems.append(
            f'{where}: label "{state.label}" is not in the workflow scope; '
            f'it must start with "{prefix}"'
        )
    else:
        name_problem = label_name_problem(state.label.removeprefix(prefix))
        if name_problem is not None:
            problems.append(
                f'{where}: label name "{state.label.removeprefix(prefix)}" {name_problem}; '
                "rename it in workflow.labels"
            )
    if len(state.label) > MAX_LABEL_LENGTH:
        problems.append(
            f'{where}: label "{state.label}" is longer than GitLab\'s {MAX_LABEL_LENGTH} '
            "characters; choose a shorter name in workflow.labels"
        )
    if not _COLOR.fullmatch(state.color):
        problems.append(
            f'{where}: colour "{state.color}" is not #RRGGBB; use six hex digits like "#1F75CB"'
        )
    if state.kind in _ROLE_KINDS and state.role is None:
        problems.append(f"{where} is a {state.kind} state but names no role; give it its role")
    if state.kind not in _ROLE_KINDS and state.role is not None:
        problems.append(
            f'{where} is a {state.kind} state and cannot belong to role "{state.role}"; '
            "only ready and running states have a role"
        )
    if (state.kind is StateKind.GATE) != (state.gate is not None):
        problems.append(
            f'{where}: kind "{state.kind}" with gate {state.gate!r}; a gate state names its gate '
            '("plan" or "merge") and no other state does'
        )
    return problems


def _duplicate_label_problems(wf: Workflow) -> list[str]:
    owners: dict[str, list[str]] = defaultdict(list)
    for state in wf:
        owners[state.label].append(state.name)
    return [
        f'label "{label}" is used by states {_quoted(names)}; '
        "give each state its own label in workflow.labels"
        for label, names in owners.items()
        if len(names) > 1
    ]


def _role_problems(wf: Workflow) -> list[str]:
    problems: list[str] = []
    for role in wf.roles:
        for kind in _ROLE_KINDS:
            names = [s.name for s in wf if s.role == role and s.kind is kind]
            if len(names) != 1:
                found = _quoted(names) if names else "none"
                problems.append(
                    f'role "{role}" has {len(names)} {kind} states ({found}); '
                    "each role needs exactly one ready and one running state"
                )
        problems.extend(_claim_problems(wf, role))
    return problems


def _claim_problems(wf: Workflow, role: str) -> list[str]:
    """The engine claims by moving ready -> running on `claimed`; nothing else may happen."""
    ready = [s.name for s in wf if s.role == role and s.kind is StateKind.READY]
    running = [s.name for s in wf if s.role == role and s.kind is StateKind.RUNNING]
    if len(ready) != 1 or len(running) != 1:
        return []  # already reported by _role_problems
    target = wf.transitions.get((ready[0], Outcome.CLAIMED))
    if target == running[0]:
        return []
    return [
        f'transition "{ready[0]}.{Outcome.CLAIMED}" must lead to "{running[0]}" so the {role} '
        f'role can claim work, but it leads to {_describe(target)}; set it to "{running[0]}"'
    ]


def _transition_problems(wf: Workflow) -> list[str]:
    problems: list[str] = []
    for (source, outcome), target in wf.transitions.items():
        key = f'transition "{source}.{outcome}"'
        if source not in wf.states:
            problems.append(
                f'{key} starts from unknown state "{source}"; '
                f"use one of the known states: {_known(wf)}"
            )
        if target != CAME_FROM and target not in wf.states:
            problems.append(
                f'{key} leads to unknown state "{target}"; use one of the known states: '
                f'{_known(wf)}, or "{CAME_FROM}" to return to the ready state it came from'
            )
    return problems


def _reachability_problems(wf: Workflow) -> list[str]:
    if wf.entry not in wf.states:
        return [f'entry state "{wf.entry}" is unknown; use one of: {_known(wf)}']
    # CAME_FROM only returns to a ready state the issue has already been in: it reaches nothing new.
    successors: dict[str, set[str]] = defaultdict(set)
    for (source, _), target in wf.transitions.items():
        if target in wf.states:
            successors[source].add(target)
    reached = {wf.entry}
    frontier = [wf.entry]
    while frontier:
        for target in successors[frontier.pop()] - reached:
            reached.add(target)
            frontier.append(target)
    return [
        f'state "{name}" cannot be reached from the entry state "{wf.entry}"; '
        f'add a transition that leads to it (e.g. "<state>.<outcome>" = "{name}")'
        for name in wf.states
        if name not in reached
    ]


def _dangling_problems(wf: Workflow) -> list[str]:
    sources = {source for source, _ in wf.transitions}
    return [
        f'state "{state.name}" ({state.kind}) has no outgoing transition, so an issue there '
        f'would be stuck; add one, e.g. "{state.name}.{Outcome.BLOCKED}" = "blocked"'
        for state in wf
        if state.kind is not StateKind.TERMINAL and state.name not in sources
    ]


def _quoted(names: list[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


def _describe(target: str | None) -> str:
    return "nothing" if target is None else f'"{target}"'
