"""Unit tests for the workflow model, the default workflow, transitions and label changes."""

from __future__ import annotations

import re

import pytest

from workflow import (
    CAME_FROM,
    DEFAULT_TRANSITIONS,
    InvalidTransition,
    LabelChange,
    Outcome,
    StateKind,
    UnknownState,
    Workflow,
    WorkflowSettings,
    apply,
    default_states,
    default_workflow,
    label_change,
    label_scope,
    next_state,
    read_state,
    repair_target,
)

WF = default_workflow()
RUNNING_STATES = ("pm-running", "dev-running", "review-running", "qa-running")
READY_STATES = ("pm-ready", "dev-ready", "review-ready", "qa-ready")


# --- model -------------------------------------------------------------------------------


def test_roles_are_in_pipeline_order() -> None:
    assert WF.roles == ("pm", "dev", "review", "qa")


@pytest.mark.parametrize("role", ["pm", "dev", "review", "qa"])
def test_each_role_has_its_ready_and_running_state(role: str) -> None:
    assert WF.ready_state(role).name == f"{role}-ready"
    assert WF.ready_state(role).kind is StateKind.READY
    assert WF.running_state(role).name == f"{role}-running"
    assert WF.running_state(role).kind is StateKind.RUNNING


def test_unknown_role_names_the_known_roles() -> None:
    with pytest.raises(UnknownState, match=r"role 'ops'; roles: pm, dev, review, qa"):
        WF.ready_state("ops")


def test_unknown_state_names_the_known_states() -> None:
    with pytest.raises(UnknownState, match=r"'ghost'; known states: pm-ready, pm-running"):
        WF.state("ghost")


def test_state_kinds_roles_and_gates() -> None:
    kinds = {state.name: state.kind for state in WF}
    assert [n for n, k in kinds.items() if k is StateKind.GATE] == ["plan-review", "merge-ready"]
    assert [n for n, k in kinds.items() if k is StateKind.WAITING] == ["needs-input"]
    assert {n for n, k in kinds.items() if k is StateKind.TERMINAL} == {"done", "failed", "blocked"}
    assert WF.gate_state("plan").name == "plan-review"
    assert WF.gate_state("merge").name == "merge-ready"
    assert all(state.role is None for state in WF if state.kind not in ("ready", "running"))


def test_labels_are_scoped_state_names_with_colour_and_description() -> None:
    assert WF.labels() == tuple(f"workflow::{name}" for name in WF.states)
    assert len(WF.labels()) == 14
    colours = [state.color for state in WF]
    assert all(re.fullmatch(r"#[0-9A-F]{6}", colour) for colour in colours)
    assert len(set(colours)) == len(colours)
    assert all(state.description.startswith("crewline: ") for state in WF)


def test_state_for_label_is_exact() -> None:
    assert WF.state_for_label("workflow::dev-ready") == WF.state("dev-ready")
    assert WF.state_for_label("workflow::foo") is None
    assert WF.state_for_label("dev-ready") is None
    assert WF.state_for_label("Workflow::dev-ready") is None


@pytest.mark.parametrize(
    ("label", "in_scope"),
    [
        ("workflow::dev-ready", True),
        ("workflow::anything", True),
        ("workflow::", True),
        ("workflow::a::b", False),  # GitLab puts this in scope "workflow::a"
        ("Workflow::dev-ready", False),
        ("priority::workflow", False),
        ("workflow", False),
        ("bug", False),
    ],
)
def test_in_scope_follows_gitlabs_last_separator_rule(label: str, in_scope: bool) -> None:
    assert WF.in_scope(label) is in_scope


def test_label_scope() -> None:
    assert label_scope("workflow::a::b") == "workflow::a"
    assert label_scope("bug") is None


def test_is_terminal_and_outcomes_from() -> None:
    assert [WF.is_terminal(n) for n in ("done", "failed", "blocked", "needs-input")] == [
        True,
        True,
        True,
        False,
    ]
    assert WF.outcomes_from("done") == ()
    assert WF.outcomes_from("failed") == (Outcome.REQUEUED,)
    assert WF.outcomes_from("pm-ready") == (Outcome.CLAIMED, Outcome.BLOCKED)


def test_workflow_is_immutable() -> None:
    with pytest.raises(AttributeError, match="immutable"):
        WF.scope = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        WF.transitions[("done", Outcome.REQUEUED)] = "pm-ready"  # type: ignore[index]
    with pytest.raises(TypeError):
        WF.states["x"] = WF.state("done")  # type: ignore[index]


def test_constructor_refuses_duplicate_state_names_and_unknown_outcomes() -> None:
    states = default_states()
    with pytest.raises(ValueError, match="'done' is declared twice"):
        Workflow([*states, states[-1]], DEFAULT_TRANSITIONS)
    with pytest.raises(ValueError, match="'vanished'"):
        Workflow(states, {("done", "vanished"): "pm-ready"})  # type: ignore[dict-item]


def test_constructor_copies_its_inputs_and_equality_is_by_value() -> None:
    table = dict(DEFAULT_TRANSITIONS)
    workflow = Workflow(default_states(), table)
    table[("done", Outcome.REQUEUED)] = "pm-ready"
    assert workflow == WF
    assert WorkflowSettings().build() == WF
    assert workflow != Workflow(default_states(), table)
    assert workflow != Workflow(default_states("flow"), DEFAULT_TRANSITIONS, scope="flow")


# --- the default transitions (SPEC §2) -----------------------------------------------------

DESIGNED = [
    ("pm-ready", "claimed", "pm-running"),
    ("pm-running", "succeeded", "plan-review"),
    ("pm-running", "failed", "blocked"),
    ("pm-running", "blocked", "blocked"),
    ("plan-review", "approved", "dev-ready"),
    ("plan-review", "rejected", "pm-ready"),
    ("dev-ready", "claimed", "dev-running"),
    ("dev-ready", "blocked", "blocked"),
    ("dev-running", "succeeded", "review-ready"),
    ("dev-running", "failed", "failed"),
    ("dev-running", "blocked", "blocked"),
    ("review-ready", "claimed", "review-running"),
    ("review-ready", "succeeded", "qa-ready"),
    ("review-running", "succeeded", "qa-ready"),
    ("review-running", "rejected", "dev-ready"),
    ("review-running", "failed", "failed"),
    ("review-running", "blocked", "blocked"),
    ("qa-ready", "claimed", "qa-running"),
    ("qa-running", "succeeded", "merge-ready"),
    ("qa-running", "failed", "dev-ready"),
    ("qa-running", "blocked", "blocked"),
    ("merge-ready", "merged", "done"),
    ("merge-ready", "rejected", "dev-ready"),
    ("merge-ready", "head_moved", "qa-ready"),
    ("needs-input", "timed_out", "blocked"),
]


@pytest.mark.parametrize(("state", "outcome", "target"), DESIGNED)
def test_designed_transitions(state: str, outcome: str, target: str) -> None:
    assert next_state(WF, state, outcome) == target
    assert next_state(WF, state, Outcome(outcome)) == target


@pytest.mark.parametrize("running", RUNNING_STATES)
def test_every_running_state_can_expire_exhaust_and_ask(running: str) -> None:
    role = WF.state(running).role
    assert role is not None
    assert next_state(WF, running, Outcome.EXPIRED) == f"{role}-ready"
    assert next_state(WF, running, Outcome.EXHAUSTED) == "failed"
    assert next_state(WF, running, Outcome.NEEDS_INPUT) == "needs-input"


def test_every_non_terminal_state_can_be_blocked_and_terminals_cannot() -> None:
    for state in WF:
        blockable = (state.name, Outcome.BLOCKED) in WF.transitions
        assert blockable is (state.kind is not StateKind.TERMINAL), state.name


@pytest.mark.parametrize("state", ["review-ready", "review-running", "qa-ready", "qa-running"])
def test_a_hand_merge_after_the_mr_exists_means_done(state: str) -> None:
    assert next_state(WF, state, Outcome.MERGED) == "done"


@pytest.mark.parametrize(
    ("state", "outcome"),
    [("needs-input", "answered"), ("failed", "requeued"), ("blocked", "requeued")],
)
def test_return_transitions_go_where_the_caller_says(state: str, outcome: str) -> None:
    assert WF.transitions[(state, Outcome(outcome))] == CAME_FROM
    for ready in READY_STATES:
        assert next_state(WF, state, outcome, came_from=ready) == ready
    # A running state stands for its role's ready state (the stage that asked / failed).
    assert next_state(WF, state, outcome, came_from="review-running") == "review-ready"


@pytest.mark.parametrize("came_from", [None, "done", "plan-review", "ghost"])
def test_return_transitions_refuse_a_missing_or_wrong_came_from(came_from: str | None) -> None:
    with pytest.raises(InvalidTransition, match=r"came_from.*pm-ready, dev-ready") as caught:
        next_state(WF, "needs-input", Outcome.ANSWERED, came_from=came_from)
    assert caught.value.state == "needs-input"
    assert caught.value.outcome == "answered"


def test_came_from_is_ignored_by_ordinary_transitions() -> None:
    assert next_state(WF, "dev-ready", Outcome.CLAIMED, came_from="qa-ready") == "dev-running"


def test_invalid_transition_names_state_outcome_and_allowed_outcomes() -> None:
    with pytest.raises(InvalidTransition) as caught:
        next_state(WF, "dev-ready", Outcome.MERGED)
    message = str(caught.value)
    assert "'merged'" in message
    assert "'dev-ready'" in message
    assert "allowed outcomes: claimed, blocked" in message
    assert caught.value.allowed == ("claimed", "blocked")


def test_invalid_transition_from_a_final_state_and_for_an_unknown_outcome() -> None:
    with pytest.raises(InvalidTransition, match=r"none \(the state is final\)"):
        next_state(WF, "done", Outcome.REQUEUED)
    with pytest.raises(InvalidTransition, match=r"'vanished' is not allowed.*claimed, blocked"):
        next_state(WF, "pm-ready", "vanished")


def test_invalid_transition_from_an_unknown_state_lists_the_known_ones() -> None:
    with pytest.raises(InvalidTransition, match=r"unknown state 'ghost'.*known states: pm-ready"):
        next_state(WF, "ghost", Outcome.CLAIMED)


# --- label changes ----------------------------------------------------------------------------


def test_label_change_swaps_the_workflow_label_and_leaves_others() -> None:
    labels = ["bug", "workflow::dev-ready", "priority::high"]
    change = label_change(WF, labels, "dev-running")
    assert change == LabelChange(add=("workflow::dev-running",), remove=("workflow::dev-ready",))
    assert apply(labels, change) == ["bug", "priority::high", "workflow::dev-running"]


def test_label_change_removes_every_other_workflow_scoped_label() -> None:
    labels = [
        "workflow::qa-ready",
        "workflow::blocked",
        "workflow::by-hand",
        "workflow::a::b",
        "Workflow::qa-ready",
        "frontend",
        "workflow::blocked",
    ]
    change = label_change(WF, labels, "qa-ready")
    assert change.add == ()
    assert change.remove == ("workflow::blocked", "workflow::by-hand")
    assert apply(labels, change) == [
        "workflow::qa-ready",
        "workflow::a::b",
        "Workflow::qa-ready",
        "frontend",
    ]


def test_label_change_is_empty_when_already_there() -> None:
    change = label_change(WF, ["x", "workflow::done"], "done")
    assert change.is_empty
    assert apply(["x", "workflow::done"], change) == ["x", "workflow::done"]
    assert not label_change(WF, [], "done").is_empty


def test_label_change_to_an_unknown_state_fails() -> None:
    with pytest.raises(UnknownState, match="'ghost'"):
        label_change(WF, [], "ghost")


def test_apply_keeps_order_and_adds_once() -> None:
    change = LabelChange(add=("c", "c", "a"), remove=("b",))
    assert apply(["a", "b", "d"], change) == ["a", "d", "c"]
    original = ["a"]
    assert apply(original, LabelChange()) == ["a"]
    assert apply(original, LabelChange()) is not original


# --- reading and repairing --------------------------------------------------------------------


def test_read_state_with_exactly_one_workflow_label() -> None:
    reading = read_state(WF, ["bug", "workflow::qa-running", "workflow::a::b"])
    assert reading.state == WF.state("qa-running")
    assert reading.extra == ()
    assert not reading.needs_repair


def test_read_state_without_workflow_labels() -> None:
    reading = read_state(WF, ["bug"])
    assert reading.state is None
    assert not reading.needs_repair


def test_read_state_with_only_unknown_workflow_labels() -> None:
    reading = read_state(WF, ["workflow::foo", "bug"])
    assert reading.state is None
    assert reading.extra == ("workflow::foo",)
    assert reading.needs_repair
    assert repair_target(WF, ["workflow::foo"]) is None


def test_read_state_with_two_known_and_one_unknown_label() -> None:
    labels = ["workflow::dev-ready", "workflow::foo", "workflow::blocked"]
    reading = read_state(WF, labels)
    assert reading.state == WF.state("blocked")
    assert reading.extra == ("workflow::dev-ready", "workflow::foo")
    assert reading.needs_repair
    assert apply(labels, label_change(WF, labels, "blocked")) == ["workflow::blocked"]


@pytest.mark.parametrize(
    ("pair", "kept"),
    [
        (("dev-running", "blocked"), "blocked"),  # a human's stop wins over a finishing agent
        (("done", "blocked"), "blocked"),  # terminal ties: declaration order (blocked first)
        (("done", "failed"), "failed"),
        (("dev-ready", "needs-input"), "needs-input"),  # an open question is not dropped
        (("qa-running", "merge-ready"), "merge-ready"),  # the human gate holds
        (("dev-ready", "dev-running"), "dev-running"),  # never hand a claimed issue out again
        (("dev-ready", "review-ready"), "dev-ready"),  # redo a stage rather than skip one
        (("plan-review", "merge-ready"), "plan-review"),
        (("pm-running", "qa-running"), "pm-running"),
    ],
)
def test_repair_target_keeps_the_most_cautious_state(pair: tuple[str, str], kept: str) -> None:
    labels = [f"workflow::{name}" for name in pair]
    assert repair_target(WF, labels) == kept
    assert repair_target(WF, list(reversed(labels))) == kept
    assert read_state(WF, labels).state == WF.state(kept)
