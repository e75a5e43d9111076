"""Pure functions over a Workflow: next state, label changes, reading and repairing labels."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from workflow.errors import InvalidTransition
from workflow.model import CAME_FROM, Outcome, State, StateKind, Workflow


def next_state(
    wf: Workflow, state: str, outcome: Outcome | str, *, came_from: str | None = None
) -> str:
    """The state that follows `state` on `outcome`.

    Where the workflow's target is `CAME_FROM` (an answered question, a human's re-queue) the
    caller names the way back in `came_from`: a ready state, or a running state, which stands
    for its role's ready state. `came_from` is ignored for every other transition, so callers
    may always pass it. Raises `InvalidTransition` naming the allowed outcomes."""
    if state not in wf.states:
        known = ", ".join(wf.states)
        raise InvalidTransition(
            f"cannot move from unknown state {state!r} on {str(outcome)!r}; known states: {known}",
            state=state,
            outcome=str(outcome),
        )
    allowed = tuple(str(o) for o in wf.outcomes_from(state))
    parsed = Outcome(outcome) if outcome in _OUTCOME_VALUES else None
    target = wf.transitions.get((state, parsed)) if parsed is not None else None
    if target is None:
        raise InvalidTransition(
            f"outcome {str(outcome)!r} is not allowed from state {state!r}; "
            f"allowed outcomes: {', '.join(allowed) or 'none (the state is final)'}",
            state=state,
            outcome=str(outcome),
            allowed=allowed,
        )
    if target == CAME_FROM:
        return _resolve_came_from(wf, state, str(outcome), came_from, allowed)
    return target


_OUTCOME_VALUES = frozenset(str(outcome) for outcome in Outcome)


def _resolve_came_from(
    wf: Workflow, state: str, outcome: str, came_from: str | None, allowed: Sequence[str]
) -> str:
    origin = wf.states.get(came_from) if came_from is not None else None
    if origin is not None and origin.kind is StateKind.READY:
        return origin.name
    if origin is not None and origin.kind is StateKind.RUNNING and origin.role is not None:
        return wf.ready_state(origin.role).name
    ready = ", ".join(s.name for s in wf.states_of_kind(StateKind.READY))
    problem = "needs came_from" if came_from is None else f"got came_from={came_from!r}"
    raise InvalidTransition(
        f"{state!r} on {outcome!r} returns to the ready state the issue came from and {problem}; "
        f"pass came_from= one of: {ready} (or a running state for its role's ready state)",
        state=state,
        outcome=outcome,
        allowed=allowed,
    )


@dataclass(frozen=True, slots=True)
class LabelChange:
    """Labels to add and remove in ONE issue update (GitLab's add_labels / remove_labels)."""

    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.add and not self.remove


def label_change(wf: Workflow, current_labels: Iterable[str], target: str) -> LabelChange:
    """The change that leaves exactly one workflow label, `target`'s, and nothing else touched.

    Every other label in the workflow scope goes, known or not (a hand-made ``workflow::foo``
    too), because on GitLab Free scoped labels are not exclusive. Labels outside the scope
    (including deeper scopes such as ``workflow::x::y``) are never touched."""
    wanted = wf.state(target).label
    current = list(current_labels)
    remove = tuple(dict.fromkeys(lbl for lbl in current if lbl != wanted and wf.in_scope(lbl)))
    add = () if wanted in current else (wanted,)
    return LabelChange(add=add, remove=remove)


def apply(labels: Iterable[str], change: LabelChange) -> list[str]:
    """`labels` after `change`: removals dropped, order kept, additions appended.

    GitLab holds an issue's labels as a set, so the result names each label once."""
    removed = set(change.remove)
    return list(dict.fromkeys([*(lbl for lbl in labels if lbl not in removed), *change.add]))


@dataclass(frozen=True, slots=True)
class StateReading:
    """What an issue's labels say about its workflow state.

    `state` is the known state the labels name (chosen by `repair_target` when they name
    several), or None when they name none. `extra` lists the other workflow-scoped labels,
    known or not, which a repair (``label_change(wf, labels, state.name)``) removes."""

    state: State | None
    extra: tuple[str, ...] = ()

    @property
    def needs_repair(self) -> bool:
        return bool(self.extra)


def read_state(wf: Workflow, labels: Iterable[str]) -> StateReading:
    """Read an issue's state from its labels; see `StateReading`."""
    scoped = list(dict.fromkeys(label for label in labels if wf.in_scope(label)))
    chosen = repair_target(wf, scoped)
    if chosen is None:
        return StateReading(state=None, extra=tuple(scoped))
    state = wf.state(chosen)
    return StateReading(state=state, extra=tuple(lbl for lbl in scoped if lbl != state.label))


# How much happens automatically in a state of each kind, least first.
_CAUTION_ORDER = (
    StateKind.TERMINAL,
    StateKind.WAITING,
    StateKind.GATE,
    StateKind.RUNNING,
    StateKind.READY,
)


def repair_target(wf: Workflow, labels: Iterable[str]) -> str | None:
    """The state an issue carrying several workflow labels should keep; None if it names none.

    Rule: keep the state in which the least happens automatically, terminal first, then
    waiting (a question to a human), gate (a human decision), running (a claim holder, whom
    the janitor recovers if it is gone), ready (anyone may claim) last. Among states of one
    kind, the one declared first wins, i.e. the earlier pipeline stage (blocked before failed
    before done for the default terminals).

    Why: two labels come from a race (a human stops an issue while an agent finishes it, the
    janitor re-queues while an agent moves on) or from a hand edit. Picking the more cautious
    state can never start work twice, skip a stage or bypass a human: at worst a stage runs
    again (runs are idempotent) or a human is asked. Picking the more advanced state could
    skip review or QA, and picking ready over running could hand a claimed issue to a second
    worker. Unknown workflow-scoped labels are ignored here; the repair removes them.
    The result does not depend on the order of `labels`."""
    present = set(labels)
    candidates = [state for state in wf.states.values() if state.label in present]
    if not candidates:
        return None
    order = list(wf.states)
    best = min(candidates, key=lambda s: (_CAUTION_ORDER.index(s.kind), order.index(s.name)))
    return best.name
