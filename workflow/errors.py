"""Errors raised by the workflow package; all are ValueErrors so config loaders report them."""

from __future__ import annotations

from collections.abc import Sequence


class WorkflowError(ValueError):
    """A workflow (usually built from configuration) is invalid; `problems` lists every reason."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: list[str] = list(problems)
        listing = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"invalid workflow:\n{listing}")


class UnknownState(ValueError):
    """A state (or role) name that the workflow does not define."""


class InvalidTransition(ValueError):
    """An outcome that the workflow does not allow from a state."""

    def __init__(
        self,
        message: str,
        *,
        state: str,
        outcome: str,
        allowed: Sequence[str] = (),
    ) -> None:
        self.state = state
        self.outcome = outcome
        self.allowed: tuple[str, ...] = tuple(allowed)
        super().__init__(message)
