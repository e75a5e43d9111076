"""Property tests: any walk through any valid workflow, from any labels, keeps ONE workflow label."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from workflow import (
    CAME_FROM,
    STATE_NAMES,
    InvalidTransition,
    Outcome,
    StateKind,
    Workflow,
    WorkflowError,
    WorkflowSettings,
    apply,
    default_workflow,
    label_change,
    label_name_problem,
    next_state,
    read_state,
    repair_target,
)

WF = default_workflow()
# Where a walk may claim to have come from: valid choices, and ones next_state must refuse.
CAME_FROM_CHOICES: tuple[str | None, ...] = (*STATE_NAMES, None, "ghost")
Steps = Sequence[tuple[int, int]]

PROPERTY = settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])

label_text = (
    st.text(
        st.characters(
            categories=("L", "N", "P", "S"), include_characters=" ", exclude_characters=","
        ),
        min_size=1,
        max_size=12,
    )
    .map(str.strip)
    .filter(lambda text: label_name_problem(text) is None)
)
unknown_workflow_labels = label_text.filter(lambda name: name not in STATE_NAMES).map(
    lambda name: f"workflow::{name}"
)
unrelated_labels = st.one_of(
    st.sampled_from(
        [
            "bug",
            "priority::high",
            "workflow::a::b",
            "Workflow::dev-ready",
            "workflow",
            "x::workflow",
        ]
    ),
    st.text(max_size=20).filter(lambda label: not WF.in_scope(label)),
)
any_labels = st.lists(
    st.one_of(st.sampled_from(WF.labels()), unknown_workflow_labels, unrelated_labels),
    max_size=8,
    unique=True,  # GitLab holds an issue's labels as a set
)
steps = st.lists(st.tuples(st.integers(0, 99), st.integers(0, 99)), max_size=30)


def walk(wf: Workflow, labels: list[str], choices: Steps) -> list[str]:
    """Settle the labels on one state, then follow `choices`; check the invariants every step.

    Each choice picks an allowed outcome and a came_from by index, so the same choices take
    the same path through any workflow with the same transitions, whatever its labels."""
    outside = [label for label in labels if not wf.in_scope(label)]
    reading = read_state(wf, labels)
    current = reading.state.name if reading.state is not None else wf.entry
    labels = apply(labels, label_change(wf, labels, current))
    assert_settled(wf, labels, current, outside)
    path = [current]
    for outcome_pick, came_from_pick in choices:
        allowed = wf.outcomes_from(current)
        if not allowed:
            break
        outcome = allowed[outcome_pick % len(allowed)]
        came_from = CAME_FROM_CHOICES[came_from_pick % len(CAME_FROM_CHOICES)]
        try:
            target = next_state(wf, current, outcome, came_from=came_from)
        except InvalidTransition:
            # Only a return transition may refuse, and only for a came_from that is no stage.
            assert wf.transitions[(current, outcome)] == CAME_FROM
            origin = wf.states.get(came_from) if came_from is not None else None
            assert origin is None or origin.kind not in (StateKind.READY, StateKind.RUNNING)
            continue
        assert target in wf.states
        labels = apply(labels, label_change(wf, labels, target))
        assert_settled(wf, labels, target, outside)
        current = target
        path.append(current)
    return path


def assert_settled(wf: Workflow, labels: list[str], state: str, outside: list[str]) -> None:
    assert [label for label in labels if wf.in_scope(label)] == [wf.state(state).label]
    assert [label for label in labels if not wf.in_scope(label)] == outside
    reading = read_state(wf, labels)
    assert reading.state == wf.state(state)
    assert not reading.needs_repair
    assert label_change(wf, labels, state).is_empty


@PROPERTY
@given(labels=any_labels, choices=steps)
def test_any_walk_from_any_labels_keeps_exactly_one_workflow_label(
    labels: list[str], choices: Steps
) -> None:
    path = walk(WF, labels, choices)
    assert all(name in WF.states for name in path)


@PROPERTY
@given(state=st.sampled_from(STATE_NAMES), outcome=st.sampled_from(list(Outcome)))
def test_next_state_is_defined_exactly_where_the_table_says(state: str, outcome: Outcome) -> None:
    if (state, outcome) in WF.transitions:
        target = next_state(WF, state, outcome, came_from="dev-ready")
        assert target in WF.states
        return
    with pytest.raises(InvalidTransition) as caught:
        next_state(WF, state, outcome)
    assert repr(state) in str(caught.value) and repr(str(outcome)) in str(caught.value)
    assert all(str(allowed) in str(caught.value) for allowed in WF.outcomes_from(state))


@PROPERTY
@given(labels=any_labels, seed=st.randoms(use_true_random=False))
def test_repair_choice_is_present_and_independent_of_label_order(
    labels: list[str], seed: object
) -> None:
    chosen = repair_target(WF, labels)
    shuffled = list(labels)
    seed.shuffle(shuffled)  # type: ignore[attr-defined]
    assert repair_target(WF, shuffled) == chosen
    known = [label for label in labels if WF.state_for_label(label) is not None]
    if chosen is None:
        assert known == []
    else:
        assert WF.state(chosen).label in known
        kinds = [WF.state_for_label(label).kind for label in known]  # type: ignore[union-attr]
        # Never a ready state while a less automatic one is present.
        assert WF.state(chosen).kind is not StateKind.READY or set(kinds) == {StateKind.READY}


renames = st.dictionaries(st.sampled_from(STATE_NAMES), label_text, max_size=len(STATE_NAMES))
scopes = label_text


@PROPERTY
@given(
    scope=scopes,
    labels_by_state=renames,
    start=st.lists(st.sampled_from(STATE_NAMES), max_size=3, unique=True),
    unknown=st.lists(label_text, max_size=2, unique=True),
    outside=st.lists(
        st.sampled_from(["bug", "priority::high", "x::y::z"]), max_size=3, unique=True
    ),
    choices=steps,
)
def test_renamed_labels_behave_the_same(
    scope: str,
    labels_by_state: dict[str, str],
    start: list[str],
    unknown: list[str],
    outside: list[str],
    choices: Steps,
) -> None:
    renamed = WorkflowSettings(scope=scope, labels=labels_by_state)
    names = [labels_by_state.get(state, state) for state in STATE_NAMES]
    assume(len(set(names)) == len(names))  # distinct labels; duplicates are refused elsewhere
    assume(scope != "workflow" or labels_by_state)
    assume(scope != "priority")  # keep the unrelated labels unrelated in both workflows
    other = renamed.build()
    assume(not any(name in names or name in STATE_NAMES for name in unknown))

    def labels_in(wf: Workflow) -> list[str]:
        own = [wf.state(state).label for state in start]
        return [*outside, *own, *(f"{wf.scope}::{name}" for name in unknown)]

    assert walk(other, labels_in(other), choices) == walk(WF, labels_in(WF), choices)
    assert repair_target(other, labels_in(other)) == repair_target(WF, labels_in(WF))


transition_keys = st.one_of(
    st.tuples(st.sampled_from(STATE_NAMES), st.sampled_from(list(Outcome))).map(
        lambda key: f"{key[0]}.{key[1]}"
    ),
    st.text(max_size=15),
)
transition_targets = st.one_of(st.sampled_from([*STATE_NAMES, CAME_FROM]), st.text(max_size=8))


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    overrides=st.dictionaries(transition_keys, transition_targets, max_size=6),
    labels=any_labels,
    choices=steps,
)
def test_any_configuration_either_is_refused_or_keeps_one_label(
    overrides: dict[str, str], labels: list[str], choices: Steps
) -> None:
    try:
        wf = WorkflowSettings(transitions=overrides).build()
    except WorkflowError as error:
        assert error.problems
        event("refused")
        return
    event("built")
    assert wf.scope == "workflow"
    walk(wf, labels, choices)
