"""The flaky-test doctor's stages as a workflow of its own, scope ``flaky`` (pure data).

An issue the detector files starts at ``flaky::detected``. The doctor's three steps are
roles with a ready and a running state each, claimed like any other role's work: the
reproducer (``reproduce``), the diagnostician (``diagnose``) and the validator
(``validate``). Between the diagnosis and the validation the ordinary roles plan, implement
and review the fix under their own ``workflow::`` labels; the issue waits at
``flaky::fixing`` meanwhile, and a fix that is ready to prove comes back at
``flaky::fix-ready``. Only N out of N green runs reach ``flaky::validated``, where the
merge is the human's; a failing run goes back to ``flaky::fixing`` with the failing runs.

On a GitLab board the scoped labels read in the order the test travels:
detected, reproducing, reproduced, diagnosing, fixing, fix-ready, validating, validated;
not-reproduced, needs-human, blocked and failed are where it stops.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from workflow.model import CAME_FROM, Outcome, State, StateKind, Workflow, scoped_label

FLAKY_SCOPE: Final = "flaky"
FLAKY_ENTRY: Final = "detected"
FLAKY_ROLES: Final = ("reproduce", "diagnose", "validate")

_READY, _RUNNING = StateKind.READY, StateKind.RUNNING
_WAITING, _TERMINAL = StateKind.WAITING, StateKind.TERMINAL

_SPECS: Final = (
    ("detected", _READY, "#F2C4C4", "crewline: a test looks flaky; waiting to reproduce it",
     "reproduce"),
    ("reproducing", _RUNNING, "#C91C00", "crewline: re-running the test's job on its commit",
     "reproduce"),
    ("reproduced", _READY, "#F6D8B8", "crewline: failure rate measured; waiting for a diagnosis",
     "diagnose"),
    ("diagnosing", _RUNNING, "#D9730D", "crewline: an agent is finding the root cause",
     "diagnose"),
    ("fixing", _WAITING, "#9ED9B0", "crewline: the developer roles are fixing the cause", None),
    ("fix-ready", _READY, "#B8D8F2", "crewline: a fix is pushed; waiting for validation",
     "validate"),
    ("validating", _RUNNING, "#1F75CB", "crewline: running the fixed test N times", "validate"),
    ("needs-human", _WAITING, "#E67E22", "crewline: the cause is unclear; a human decides", None),
    ("validated", _TERMINAL, "#2DA160", "crewline: N/N green; the merge is the human's", None),
    ("not-reproduced", _TERMINAL, "#8C8C8C", "crewline: no failure in k runs; bar raised",
     None),
    ("blocked", _TERMINAL, "#5E5E5E", "crewline: stopped; needs a human to unblock it", None),
    ("failed", _TERMINAL, "#DD2B0E", "crewline: failed after every attempt; retry or close",
     None),
)  # fmt: skip

FLAKY_STATE_NAMES: Final = tuple(spec[0] for spec in _SPECS)


def _transitions() -> dict[tuple[str, Outcome], str]:
    table: dict[tuple[str, Outcome], str] = {}
    for role in FLAKY_ROLES:
        ready, running = _role_states(role)
        table[(ready, Outcome.CLAIMED)] = running
        table[(running, Outcome.EXPIRED)] = ready
        table[(running, Outcome.EXHAUSTED)] = "failed"
        table[(running, Outcome.FAILED)] = "failed"
    for name, kind, *_ in _SPECS:
        if kind is not _TERMINAL:
            table[(name, Outcome.BLOCKED)] = "blocked"
    table.update(
        {
            ("reproducing", Outcome.SUCCEEDED): "reproduced",
            ("reproducing", Outcome.REJECTED): "not-reproduced",  # no failure in k runs
            ("diagnosing", Outcome.SUCCEEDED): "fixing",
            ("diagnosing", Outcome.NEEDS_INPUT): "needs-human",  # unknown or low confidence
            ("needs-human", Outcome.ANSWERED): "fixing",  # a human named the cause
            ("needs-human", Outcome.TIMED_OUT): "blocked",
            ("fixing", Outcome.SUCCEEDED): "fix-ready",
            ("validating", Outcome.SUCCEEDED): "validated",
            ("validating", Outcome.REJECTED): "fixing",  # with the failing runs
            ("validated", Outcome.HEAD_MOVED): "fix-ready",  # a new head needs a new proof
            ("not-reproduced", Outcome.REQUEUED): "detected",  # seen again above the bar
            ("blocked", Outcome.REQUEUED): CAME_FROM,
            ("failed", Outcome.REQUEUED): CAME_FROM,
        }
    )
    return table


def _role_states(role: str) -> tuple[str, str]:
    ready = next(s[0] for s in _SPECS if s[4] == role and s[1] is _READY)
    running = next(s[0] for s in _SPECS if s[4] == role and s[1] is _RUNNING)
    return ready, running


FLAKY_TRANSITIONS: Final[Mapping[tuple[str, Outcome], str]] = MappingProxyType(_transitions())


def flaky_workflow(scope: str = FLAKY_SCOPE) -> Workflow:
    """The doctor's workflow; ``workflow.validate`` checks it like the configured one."""
    states = tuple(
        State(
            name=name,
            kind=kind,
            label=scoped_label(scope, name),
            color=color,
            description=description,
            role=role,
        )
        for name, kind, color, description, role in _SPECS
    )
    return Workflow(states, FLAKY_TRANSITIONS, scope=scope, entry=FLAKY_ENTRY)
