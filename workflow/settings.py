"""The `[workflow]` section of crewline.toml: scope, label renames and transition overrides."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from workflow.default import DEFAULT_TRANSITIONS, STATE_NAMES, default_states
from workflow.errors import WorkflowError
from workflow.model import (
    CAME_FROM,
    DEFAULT_ENTRY,
    DEFAULT_SCOPE,
    SCOPE_SEPARATOR,
    Outcome,
    Workflow,
    label_name_problem,
    label_text_problem,
)
from workflow.validation import validate

_KNOWN_STATES = ", ".join(STATE_NAMES)
_OUTCOME_VALUES = frozenset(str(outcome) for outcome in Outcome)
_KNOWN_OUTCOMES = ", ".join(str(outcome) for outcome in Outcome)


class WorkflowSettings(BaseModel):
    """Customise the default workflow's names and transitions; `build()` validates the result.

    - `scope`: the label scope, ``workflow`` gives labels like ``workflow::dev-ready``.
    - `labels`: canonical state name -> label name within the scope,
      e.g. ``{"dev-ready": "ready-for-dev"}`` gives ``workflow::ready-for-dev``.
    - `transitions`: ``"<state>.<outcome>"`` -> target state (canonical names), overriding or
      adding transitions, e.g. ``{"qa-running.failed": "blocked"}``; the target
      ``"came_from"`` returns to the ready state the caller names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scope: str = DEFAULT_SCOPE
    labels: dict[str, str] = Field(default_factory=dict)
    transitions: dict[str, str] = Field(default_factory=dict)

    def build(self) -> Workflow:
        """The configured workflow; raises `WorkflowError` listing every problem at once."""
        overrides, problems = self._parse_transitions()
        problems = [*self._scope_problems(), *self._label_problems(), *problems]
        if problems:
            raise WorkflowError(problems)
        workflow = Workflow(
            default_states(self.scope, self.labels),
            {**DEFAULT_TRANSITIONS, **overrides},
            scope=self.scope,
            entry=DEFAULT_ENTRY,
        )
        problems = validate(workflow)
        if problems:
            raise WorkflowError(problems)
        return workflow

    def _scope_problems(self) -> list[str]:
        problem = label_text_problem(self.scope)
        if problem is None:
            return []
        return [f'workflow.scope = "{self.scope}" {problem}; use a plain word such as "workflow"']

    def _label_problems(self) -> list[str]:
        problems: list[str] = []
        for state, name in self.labels.items():
            key = f'workflow.labels."{state}"'
            if state not in STATE_NAMES:
                problems.append(
                    f"{key}: unknown state {state!r}; rename one of the states: {_KNOWN_STATES}"
                )
            problem = label_name_problem(name)
            if problem is None:
                continue
            hint = ""
            if SCOPE_SEPARATOR in name:
                short = name.rpartition(SCOPE_SEPARATOR)[2]
                hint = (
                    f' (give only the part after "{self.scope}{SCOPE_SEPARATOR}", e.g. "{short}")'
                )
            problems.append(f'{key} = "{name}" {problem}; choose another label name{hint}')
        return problems

    def _parse_transitions(self) -> tuple[dict[tuple[str, Outcome], str], list[str]]:
        overrides: dict[tuple[str, Outcome], str] = {}
        problems: list[str] = []
        for key, target in self.transitions.items():
            where = f'workflow.transitions."{key}"'
            state, separator, outcome = key.rpartition(".")
            if not separator or not state:
                problems.append(
                    f'{where}: the key must look like "<state>.<outcome>", '
                    'e.g. "review-running.rejected"'
                )
                continue
            key_problems = [
                *_name_problem(where, "state", state, self.labels),
                *_outcome_problem(where, outcome),
                *_target_problem(where, target, self.labels),
            ]
            problems.extend(key_problems)
            if not key_problems:
                overrides[(state, Outcome(outcome))] = target
        return overrides, problems


def _name_problem(where: str, what: str, name: str, labels: dict[str, str]) -> list[str]:
    if name in STATE_NAMES:
        return []
    renamed_from = [state for state, label in labels.items() if label == name]
    hint = (
        f' (did you mean "{renamed_from[0]}"? transitions use state names, not labels)'
        if renamed_from
        else ""
    )
    return [f'{where}: unknown {what} "{name}"{hint}; use one of: {_KNOWN_STATES}']


def _outcome_problem(where: str, outcome: str) -> list[str]:
    if outcome in _OUTCOME_VALUES:
        return []
    return [f'{where}: unknown outcome "{outcome}"; use one of: {_KNOWN_OUTCOMES}']


def _target_problem(where: str, target: str, labels: dict[str, str]) -> list[str]:
    if target == CAME_FROM:
        return []
    problems = _name_problem(where, "target state", target, labels)
    return [f'{problem} or "{CAME_FROM}"' for problem in problems]
