"""States, outcomes and the immutable `Workflow` that holds them: the state machine as data."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, Literal

from workflow.errors import UnknownState

SCOPE_SEPARATOR: Final = "::"
DEFAULT_SCOPE: Final = "workflow"
DEFAULT_ENTRY: Final = "pm-ready"
MAX_LABEL_LENGTH: Final = 255  # GitLab's limit on a label title
CAME_FROM: Final = "came_from"
"""A transition target meaning "the ready state the caller passes as `came_from`".

Used where the way back depends on history the label does not carry: an answered question
returns to the stage that asked it, a human retry re-queues the stage that failed."""

Gate = Literal["plan", "merge"]


class StateKind(StrEnum):
    """What happens to an issue while it sits in a state."""

    READY = "ready"  # the state's role may claim it
    RUNNING = "running"  # an agent of the state's role holds a claim and works on it
    GATE = "gate"  # a human decides (Discord buttons)
    WAITING = "waiting"  # an agent asked a question and waits for a human's answer
    # No agent acts any more: done for good, or failed/blocked until a human re-queues it.
    TERMINAL = "terminal"


class Outcome(StrEnum):
    """What happened to an issue in its current state; with the state it picks the next one."""

    CLAIMED = "claimed"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    APPROVED = "approved"
    BLOCKED = "blocked"
    NEEDS_INPUT = "needs_input"
    ANSWERED = "answered"
    TIMED_OUT = "timed_out"
    EXPIRED = "expired"
    EXHAUSTED = "exhausted"
    REQUEUED = "requeued"
    HEAD_MOVED = "head_moved"
    MERGED = "merged"


@dataclass(frozen=True, slots=True)
class State:
    """One state: `name` is the canonical key used in code and config, `label` the GitLab label."""

    name: str
    kind: StateKind
    label: str
    color: str
    description: str
    role: str | None = None
    gate: Gate | None = None


def scoped_label(scope: str, name: str) -> str:
    """The full label text for `name` in `scope`, e.g. ``workflow::dev-ready``."""
    return f"{scope}{SCOPE_SEPARATOR}{name}"


def label_scope(label: str) -> str | None:
    """GitLab's scope of a label: everything before the LAST ``::``; None when unscoped.

    ``workflow::a::b`` therefore belongs to scope ``workflow::a``, not ``workflow``, exactly as
    GitLab Premium decides which scoped labels exclude each other."""
    scope, separator, _ = label.rpartition(SCOPE_SEPARATOR)
    return scope if separator else None


def label_text_problem(text: str) -> str | None:
    """Why `text` cannot be (part of) a GitLab label name, or None when it can."""
    if not text:
        return "is empty"
    if text != text.strip():
        return "has leading or trailing whitespace, which GitLab strips"
    if "," in text:
        return "contains a comma, which GitLab uses to separate labels"
    if SCOPE_SEPARATOR in text:
        return f"contains {SCOPE_SEPARATOR!r}, the scope separator"
    if any(not character.isprintable() for character in text):
        return "contains a control character"
    return None


def label_name_problem(name: str) -> str | None:
    """Why `name` cannot follow ``<scope>::`` in a label, or None when it can."""
    if name.startswith(":"):
        # GitLab's scope ends at the LAST "::", so "workflow:::x" would be scope "workflow:".
        return "starts with ':', which GitLab would read as part of the scope"
    return label_text_problem(name)


class Workflow:
    """An immutable workflow: states by name, transitions ``{(state, outcome): target}``.

    A target is a state name or `CAME_FROM`. Build one with `default_workflow()` or
    `WorkflowSettings.build()`; both validate it. Constructing one directly does not validate
    (call `validate()`), but it does refuse duplicate state names and unknown outcomes."""

    __slots__ = ("_by_label", "_entry", "_scope", "_states", "_transitions")

    _scope: str
    _entry: str
    _states: Mapping[str, State]
    _transitions: Mapping[tuple[str, Outcome], str]
    _by_label: Mapping[str, State]

    def __init__(
        self,
        states: Iterable[State],
        transitions: Mapping[tuple[str, Outcome], str],
        *,
        scope: str = DEFAULT_SCOPE,
        entry: str = DEFAULT_ENTRY,
    ) -> None:
        by_name: dict[str, State] = {}
        for state in states:
            if state.name in by_name:
                raise ValueError(f"state {state.name!r} is declared twice; names must be unique")
            by_name[state.name] = state
        by_label: dict[str, State] = {}
        for state in by_name.values():
            by_label.setdefault(state.label, state)  # duplicates are reported by validate()
        frozen_transitions = {
            (source, Outcome(outcome)): target for (source, outcome), target in transitions.items()
        }
        object.__setattr__(self, "_scope", scope)
        object.__setattr__(self, "_entry", entry)
        object.__setattr__(self, "_states", MappingProxyType(by_name))
        object.__setattr__(self, "_transitions", MappingProxyType(frozen_transitions))
        object.__setattr__(self, "_by_label", MappingProxyType(by_label))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a Workflow is immutable; build a new one instead")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Workflow):
            return NotImplemented
        return (
            self._scope == other._scope
            and self._entry == other._entry
            and list(self._states.values()) == list(other._states.values())
            and dict(self._transitions) == dict(other._transitions)
        )

    __hash__ = None  # type: ignore[assignment]  # equality is by value; not meant as a dict key

    def __repr__(self) -> str:
        return (
            f"Workflow(scope={self._scope!r}, entry={self._entry!r}, "
            f"states={list(self._states)!r}, transitions={len(self._transitions)})"
        )

    @property
    def scope(self) -> str:
        return self._scope

    @property
    def entry(self) -> str:
        """The state a new issue starts in."""
        return self._entry

    @property
    def states(self) -> Mapping[str, State]:
        """Every state by canonical name, in declaration (pipeline) order."""
        return self._states

    @property
    def transitions(self) -> Mapping[tuple[str, Outcome], str]:
        return self._transitions

    @property
    def roles(self) -> tuple[str, ...]:
        """Roles in the order their states are declared (pm, dev, review, qa by default)."""
        return tuple(dict.fromkeys(s.role for s in self._states.values() if s.role is not None))

    def __iter__(self) -> Iterator[State]:
        return iter(self._states.values())

    def state(self, name: str) -> State:
        """The state called `name`; raises `UnknownState` naming the known ones."""
        try:
            return self._states[name]
        except KeyError:
            known = ", ".join(self._states)
            raise UnknownState(f"unknown workflow state {name!r}; known states: {known}") from None

    def ready_state(self, role: str) -> State:
        return self._role_state(role, StateKind.READY)

    def running_state(self, role: str) -> State:
        return self._role_state(role, StateKind.RUNNING)

    def _role_state(self, role: str, kind: StateKind) -> State:
        for state in self._states.values():
            if state.role == role and state.kind is kind:
                return state
        roles = ", ".join(self.roles)
        raise UnknownState(f"no {kind} state for role {role!r}; roles: {roles}")

    def gate_state(self, gate: Gate) -> State:
        """The human gate state for `gate` ("plan" or "merge")."""
        for state in self._states.values():
            if state.gate == gate:
                return state
        raise UnknownState(f"no state is the {gate!r} gate")

    def states_of_kind(self, kind: StateKind) -> tuple[State, ...]:
        return tuple(state for state in self._states.values() if state.kind is kind)

    def state_for_label(self, label: str) -> State | None:
        """The state whose label is exactly `label`, or None."""
        return self._by_label.get(label)

    def labels(self) -> tuple[str, ...]:
        """Every state's label, in declaration order."""
        return tuple(state.label for state in self._states.values())

    def in_scope(self, label: str) -> bool:
        """Whether `label` is in this workflow's scope, known to it or not (``workflow::foo``)."""
        return label_scope(label) == self._scope

    def is_terminal(self, name: str) -> bool:
        return self.state(name).kind is StateKind.TERMINAL

    def outcomes_from(self, name: str) -> tuple[Outcome, ...]:
        """Outcomes allowed from state `name`, in `Outcome` declaration order."""
        return tuple(outcome for outcome in Outcome if (name, outcome) in self._transitions)
