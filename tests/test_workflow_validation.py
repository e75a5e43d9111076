"""Validation problems and WorkflowSettings: every bad input gets a message naming its key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pytest
from pydantic import ValidationError

from workflow import (
    DEFAULT_TRANSITIONS,
    InvalidTransition,
    Outcome,
    State,
    StateKind,
    Workflow,
    WorkflowError,
    WorkflowSettings,
    default_states,
    default_workflow,
    next_state,
    validate,
)

Table = Mapping[tuple[str, Outcome], str]


def variant(
    *,
    states: list[State] | None = None,
    transitions: Table | None = None,
    drop: tuple[tuple[str, Outcome], ...] = (),
    scope: str = "workflow",
    entry: str = "pm-ready",
) -> Workflow:
    """The default workflow with some parts replaced: the tests' way to break one thing."""
    table = dict(DEFAULT_TRANSITIONS if transitions is None else transitions)
    for key in drop:
        del table[key]
    return Workflow(states or list(default_states(scope)), table, scope=scope, entry=entry)


def with_state(target: str, **changes: object) -> list[State]:
    return [replace(s, **changes) if s.name == target else s for s in default_states()]  # type: ignore[arg-type]


def only(problems: list[str]) -> str:
    assert len(problems) == 1, problems
    return problems[0]


# --- validate() -------------------------------------------------------------------------------


def test_the_default_workflow_is_valid() -> None:
    assert validate(default_workflow()) == []


def test_transition_from_an_unknown_state() -> None:
    table = {**DEFAULT_TRANSITIONS, ("ghost", Outcome.CLAIMED): "dev-running"}
    problem = only(validate(variant(transitions=table)))
    assert 'transition "ghost.claimed" starts from unknown state "ghost"' in problem
    assert "known states: pm-ready, pm-running" in problem


def test_transition_to_an_unknown_state() -> None:
    table = {**DEFAULT_TRANSITIONS, ("merge-ready", Outcome.MERGED): "shipped"}
    problem = only(validate(variant(transitions=table)))
    assert 'transition "merge-ready.merged" leads to unknown state "shipped"' in problem
    assert "known states: pm-ready" in problem and '"came_from"' in problem


def test_unreachable_state() -> None:
    table = {**DEFAULT_TRANSITIONS, ("qa-running", Outcome.SUCCEEDED): "done"}
    problem = only(validate(variant(transitions=table)))
    assert 'state "merge-ready" cannot be reached from the entry state "pm-ready"' in problem
    assert "add a transition that leads to it" in problem


def test_came_from_reaches_nothing_new() -> None:
    # Only needs-input.answered (came_from) would lead back out of needs-input's island.
    states = [
        *default_states(),
        State("limbo", StateKind.WAITING, "workflow::limbo", "#000000", "x"),
    ]
    table = {**DEFAULT_TRANSITIONS, ("limbo", Outcome.ANSWERED): "came_from"}
    assert only(validate(variant(states=states, transitions=table))).startswith('state "limbo"')


def test_unknown_entry_state() -> None:
    problem = only(validate(variant(entry="start")))
    assert 'entry state "start" is unknown; use one of: pm-ready' in problem


def test_role_with_two_ready_states() -> None:
    extra = State("dev-ready-2", StateKind.READY, "workflow::dev-ready-2", "#000000", "x", "dev")
    table = {**DEFAULT_TRANSITIONS, ("plan-review", Outcome.TIMED_OUT): "dev-ready-2"}
    table[("dev-ready-2", Outcome.CLAIMED)] = "dev-running"
    problem = only(validate(variant(states=[*default_states(), extra], transitions=table)))
    assert 'role "dev" has 2 ready states ("dev-ready", "dev-ready-2")' in problem
    assert "exactly one ready and one running state" in problem


def test_role_without_a_running_state() -> None:
    problems = validate(variant(states=with_state("qa-running", role="ops")))
    assert any('role "qa" has 0 running states (none)' in p for p in problems)
    assert any('role "ops" has 0 ready states (none)' in p for p in problems)


def test_ready_state_whose_claim_does_not_lead_to_running() -> None:
    table = {**DEFAULT_TRANSITIONS, ("qa-ready", Outcome.CLAIMED): "merge-ready"}
    problem = validate(variant(transitions=table))[0]
    assert 'transition "qa-ready.claimed" must lead to "qa-running"' in problem
    assert 'leads to "merge-ready"; set it to "qa-running"' in problem
    dropped = validate(variant(drop=(("review-ready", Outcome.CLAIMED),)))[0]
    assert 'but it leads to nothing; set it to "review-running"' in dropped


def test_dangling_non_terminal_state() -> None:
    drop = tuple(key for key in DEFAULT_TRANSITIONS if key[0] == "needs-input")
    problem = only(validate(variant(drop=drop)))
    assert 'state "needs-input" (waiting) has no outgoing transition' in problem
    assert '"needs-input.blocked" = "blocked"' in problem


def test_terminal_states_may_have_no_outgoing_transition() -> None:
    drop = tuple(key for key in DEFAULT_TRANSITIONS if key[0] in ("failed", "blocked"))
    assert validate(variant(drop=drop)) == []


def test_duplicate_labels() -> None:
    states = with_state("dev-ready", label="workflow::qa-ready")
    problem = only(validate(variant(states=states)))
    assert 'label "workflow::qa-ready" is used by states "dev-ready", "qa-ready"' in problem
    assert "workflow.labels" in problem


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"label": "workflow::a,b"}, 'state "done": label name "a,b" contains a comma'),
        ({"label": "workflow::"}, 'state "done": label name "" is empty'),
        ({"label": "workflow:: done"}, "leading or trailing whitespace"),
        ({"label": "workflow::x::y"}, "contains '::'"),
        ({"label": "workflow::a\tb"}, "control character"),
        ({"label": "workflow:::x"}, "starts with ':'"),
        ({"label": "flow::done"}, 'label "flow::done" is not in the workflow scope'),
        ({"label": "workflow::" + "d" * 250}, "longer than GitLab's 255 characters"),
        ({"color": "green"}, 'state "done": colour "green" is not #RRGGBB'),
        ({"role": "dev"}, 'state "done" is a terminal state and cannot belong to role "dev"'),
        ({"gate": "merge"}, 'state "done": kind "terminal" with gate \'merge\''),
        ({"name": "came_from"}, 'state "came_from": "came_from" is reserved'),
    ],
)
def test_state_problems(changes: dict[str, object], expected: str) -> None:
    problems = validate(variant(states=with_state("done", **changes)))
    assert any(expected in problem for problem in problems), problems


def test_ready_state_without_role_and_gate_without_gate() -> None:
    problems = validate(variant(states=with_state("pm-ready", role=None)))
    assert any('state "pm-ready" is a ready state but names no role' in p for p in problems)
    problems = validate(variant(states=with_state("plan-review", gate=None)))
    assert any('state "plan-review": kind "gate" with gate None' in p for p in problems)


def test_bad_scope() -> None:
    workflow = Workflow(default_states("a,b"), DEFAULT_TRANSITIONS, scope="a,b")
    assert validate(workflow) == [
        'workflow scope "a,b" contains a comma, which GitLab uses to separate labels; '
        'choose a plain scope such as "workflow"'
    ]


# --- WorkflowSettings ---------------------------------------------------------------------------


def test_default_settings_build_the_default_workflow() -> None:
    assert WorkflowSettings().build() == default_workflow()


def test_renamed_label_and_scope() -> None:
    workflow = WorkflowSettings(scope="flow", labels={"dev-ready": "ready-for-dev"}).build()
    assert workflow.state("dev-ready").label == "flow::ready-for-dev"
    assert workflow.state("qa-ready").label == "flow::qa-ready"
    assert workflow.state_for_label("flow::ready-for-dev") == workflow.state("dev-ready")
    assert workflow.state_for_label("workflow::dev-ready") is None
    assert workflow.in_scope("flow::anything") and not workflow.in_scope("workflow::dev-ready")


def test_transition_overrides_and_additions() -> None:
    settings = WorkflowSettings(
        transitions={
            "qa-running.failed": "blocked",
            "plan-review.timed_out": "blocked",
            "merge-ready.requeued": "came_from",
        }
    )
    workflow = settings.build()
    assert next_state(workflow, "qa-running", Outcome.FAILED) == "blocked"
    assert next_state(workflow, "plan-review", Outcome.TIMED_OUT) == "blocked"
    assert next_state(workflow, "merge-ready", "requeued", came_from="qa-ready") == "qa-ready"
    with pytest.raises(InvalidTransition):
        next_state(default_workflow(), "plan-review", Outcome.TIMED_OUT)


def test_unknown_settings_keys_are_refused_at_load() -> None:
    with pytest.raises(ValidationError, match="label"):
        WorkflowSettings.model_validate({"label": {"dev-ready": "x"}})


def test_settings_are_frozen() -> None:
    with pytest.raises(ValidationError):
        WorkflowSettings().scope = "x"


def build_problems(**settings: object) -> list[str]:
    with pytest.raises(WorkflowError) as caught:
        WorkflowSettings.model_validate(settings).build()
    assert isinstance(caught.value, ValueError)
    assert all(problem in str(caught.value) for problem in caught.value.problems)
    return caught.value.problems


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"scope": "a::b"}, "workflow.scope = \"a::b\" contains '::'"),
        ({"scope": ""}, 'workflow.scope = "" is empty'),
        ({"labels": {"dev-redy": "x"}}, "workflow.labels.\"dev-redy\": unknown state 'dev-redy'"),
        ({"labels": {"done": "a,b"}}, 'workflow.labels."done" = "a,b" contains a comma'),
        ({"labels": {"done": ""}}, 'workflow.labels."done" = "" is empty'),
        ({"labels": {"done": " done"}}, "leading or trailing whitespace"),
        (
            {"labels": {"done": ":"}},
            "starts with ':', which GitLab would read as part of the scope",
        ),
        (
            {"labels": {"done": "workflow::shipped"}},
            'give only the part after "workflow::", e.g. "shipped"',
        ),
        ({"transitions": {"done": "x"}}, 'workflow.transitions."done": the key must look like'),
        ({"transitions": {".merged": "done"}}, "the key must look like"),
        (
            {"transitions": {"ghost.merged": "done"}},
            'workflow.transitions."ghost.merged": unknown state "ghost"; use one of: pm-ready',
        ),
        (
            {"transitions": {"done.reopened": "dev-ready"}},
            'unknown outcome "reopened"; use one of: claimed, succeeded',
        ),
        (
            {"transitions": {"done.requeued": "shipped"}},
            'unknown target state "shipped"; use one of: pm-ready',
        ),
        (
            {
                "labels": {"dev-ready": "ready-for-dev"},
                "transitions": {"qa-running.failed": "ready-for-dev"},
            },
            'did you mean "dev-ready"? transitions use state names, not labels',
        ),
    ],
)
def test_bad_settings_name_the_key_and_the_fix(settings: dict[str, object], expected: str) -> None:
    problems = build_problems(**settings)
    assert any(expected in problem for problem in problems), problems


def test_every_problem_is_reported_at_once() -> None:
    problems = build_problems(
        scope="a,b", labels={"ghost": "x"}, transitions={"done.reopened": "nowhere"}
    )
    assert len(problems) == 4, problems


def test_settings_producing_an_invalid_workflow_are_refused() -> None:
    duplicate = only(build_problems(labels={"dev-ready": "done"}))
    assert 'label "workflow::done" is used by states "dev-ready", "done"' in duplicate
    unreachable = only(build_problems(transitions={"qa-running.succeeded": "done"}))
    assert 'state "merge-ready" cannot be reached' in unreachable
    misrouted = build_problems(transitions={"dev-ready.claimed": "qa-running"})[0]
    assert 'transition "dev-ready.claimed" must lead to "dev-running"' in misrouted
