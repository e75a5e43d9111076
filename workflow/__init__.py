"""The workflow state machine as data: pure, no I/O, imports nothing of ours."""

from workflow.default import (
    DEFAULT_TRANSITIONS,
    ROLES,
    STATE_NAMES,
    default_states,
    default_workflow,
)
from workflow.errors import InvalidTransition, UnknownState, WorkflowError
from workflow.flaky import FLAKY_SCOPE, FLAKY_STATE_NAMES, flaky_workflow
from workflow.model import (
    CAME_FROM,
    DEFAULT_ENTRY,
    DEFAULT_SCOPE,
    Gate,
    Outcome,
    State,
    StateKind,
    Workflow,
    label_name_problem,
    label_scope,
    label_text_problem,
    scoped_label,
)
from workflow.settings import WorkflowSettings
from workflow.transitions import (
    LabelChange,
    StateReading,
    apply,
    label_change,
    next_state,
    read_state,
    repair_target,
)
from workflow.validation import validate

__all__ = [
    "CAME_FROM",
    "DEFAULT_ENTRY",
    "DEFAULT_SCOPE",
    "DEFAULT_TRANSITIONS",
    "FLAKY_SCOPE",
    "FLAKY_STATE_NAMES",
    "ROLES",
    "STATE_NAMES",
    "Gate",
    "InvalidTransition",
    "LabelChange",
    "Outcome",
    "State",
    "StateKind",
    "StateReading",
    "UnknownState",
    "Workflow",
    "WorkflowError",
    "WorkflowSettings",
    "apply",
    "default_states",
    "default_workflow",
    "flaky_workflow",
    "label_change",
    "label_name_problem",
    "label_scope",
    "label_text_problem",
    "next_state",
    "read_state",
    "repair_target",
    "scoped_label",
    "validate",
]
