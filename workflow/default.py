"""The default workflow of SPEC §2: fourteen states, four roles, two human gates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from workflow.model import (
    CAME_FROM,
    DEFAULT_ENTRY,
    DEFAULT_SCOPE,
    Gate,
    Outcome,
    State,
    StateKind,
    Workflow,
    scoped_label,
)

ROLES: Final = ("pm", "dev", "review", "qa")


@dataclass(frozen=True, slots=True)
class _Spec:
    name: str
    kind: StateKind
    color: str
    description: str
    role: str | None = None
    gate: Gate | None = None


_READY, _RUNNING, _GATE = StateKind.READY, StateKind.RUNNING, StateKind.GATE
_WAITING, _TERMINAL = StateKind.WAITING, StateKind.TERMINAL

# Each role has one hue: a light tint while the issue waits, the saturated colour while an agent
# works. Declaration order is pipeline order; repair_target() relies on it (earlier wins), which
# is why the terminals are listed blocked, failed, done: the one a human will look at first.
_SPECS: Final = (
    _Spec("pm-ready", _READY, "#A8C6F0", "crewline: waiting for the PM role to plan it", "pm"),
    _Spec("pm-running", _RUNNING, "#1F75CB", "crewline: a PM agent is writing the plan", "pm"),
    _Spec("plan-review", _GATE, "#CC338B", "crewline: a human approves or rejects the plan",
          gate="plan"),
    _Spec("dev-ready", _READY, "#9ED9B0", "crewline: planned; waiting for a developer agent",
          "dev"),
    _Spec("dev-running", _RUNNING, "#108548", "crewline: a developer agent is implementing it",
          "dev"),
    _Spec("review-ready", _READY, "#F5C27A", "crewline: MR open; waiting for the review role",
          "review"),
    _Spec("review-running", _RUNNING, "#C17D10", "crewline: a review agent is answering threads",
          "review"),
    _Spec("qa-ready", _READY, "#C9B8F2", "crewline: waiting for QA to watch the MR pipeline",
          "qa"),
    _Spec("qa-running", _RUNNING, "#6E49CB", "crewline: QA is watching the MR pipeline", "qa"),
    _Spec("merge-ready", _GATE, "#00857A", "crewline: QA passed; a human approves the merge",
          gate="merge"),
    _Spec("needs-input", _WAITING, "#E67E22", "crewline: an agent asked a question; answer it"),
    _Spec("blocked", _TERMINAL, "#5E5E5E", "crewline: stopped; needs a human to unblock it"),
    _Spec("failed", _TERMINAL, "#DD2B0E", "crewline: failed after every attempt; retry or close"),
    _Spec("done", _TERMINAL, "#2DA160", "crewline: merged; nothing left to do"),
)  # fmt: skip

STATE_NAMES: Final = tuple(spec.name for spec in _SPECS)


def default_states(
    scope: str = DEFAULT_SCOPE, label_names: Mapping[str, str] | None = None
) -> tuple[State, ...]:
    """The default states, labelled ``<scope>::<name>`` unless `label_names` renames them."""
    renamed = label_names or {}
    return tuple(
        State(
            name=spec.name,
            kind=spec.kind,
            label=scoped_label(scope, renamed.get(spec.name, spec.name)),
            color=spec.color,
            description=spec.description,
            role=spec.role,
            gate=spec.gate,
        )
        for spec in _SPECS
    )


def _default_transitions() -> dict[tuple[str, Outcome], str]:
    table: dict[tuple[str, Outcome], str] = {}
    for role in ROLES:
        ready, running = f"{role}-ready", f"{role}-running"
        table[(ready, Outcome.CLAIMED)] = running
        table[(running, Outcome.EXPIRED)] = ready  # the janitor re-queues an expired claim
        table[(running, Outcome.EXHAUSTED)] = "failed"  # ...until the attempts are spent
        table[(running, Outcome.NEEDS_INPUT)] = "needs-input"
        # The agent run itself could not finish after its retries; pm and qa override below.
        table[(running, Outcome.FAILED)] = "failed"

    # Any state a role, a gate or a question holds may be stopped: a budget stop, a diff outside
    # the plan's owned paths, a dependency cycle, or a human's "stop" all land in blocked.
    for spec in _SPECS:
        if spec.kind is not StateKind.TERMINAL:
            table[(spec.name, Outcome.BLOCKED)] = "blocked"

    # Once the MR exists a human may merge it by hand at any stage; the work is then done.
    for name in ("review-ready", "review-running", "qa-ready", "qa-running", "merge-ready"):
        table[(name, Outcome.MERGED)] = "done"

    table.update(
        {
            ("pm-running", Outcome.SUCCEEDED): "plan-review",
            ("pm-running", Outcome.FAILED): "blocked",  # plan still invalid after retries
            ("plan-review", Outcome.APPROVED): "dev-ready",
            ("plan-review", Outcome.REJECTED): "pm-ready",  # with the human's feedback
            ("dev-running", Outcome.SUCCEEDED): "review-ready",
            ("review-ready", Outcome.SUCCEEDED): "qa-ready",  # nothing to review: straight to QA
            ("review-running", Outcome.SUCCEEDED): "qa-ready",
            ("review-running", Outcome.REJECTED): "dev-ready",  # with the review feedback
            ("qa-running", Outcome.SUCCEEDED): "merge-ready",
            ("qa-running", Outcome.FAILED): "dev-ready",  # with the CI failure excerpt
            ("merge-ready", Outcome.REJECTED): "dev-ready",  # with the human's feedback
            ("merge-ready", Outcome.HEAD_MOVED): "qa-ready",  # new commits need a new pipeline
            ("needs-input", Outcome.ANSWERED): CAME_FROM,
            ("needs-input", Outcome.TIMED_OUT): "blocked",
            ("blocked", Outcome.REQUEUED): CAME_FROM,  # a human's retry
            ("failed", Outcome.REQUEUED): CAME_FROM,
        }
    )
    return table


DEFAULT_TRANSITIONS: Final[Mapping[tuple[str, Outcome], str]] = MappingProxyType(
    _default_transitions()
)


def default_workflow() -> Workflow:
    """The default workflow, scope ``workflow``, labels named after the states."""
    return Workflow(default_states(), DEFAULT_TRANSITIONS, scope=DEFAULT_SCOPE, entry=DEFAULT_ENTRY)
