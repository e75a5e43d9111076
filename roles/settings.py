"""Settings of the agent roles and the coding agents they run."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

AgentKind = Literal["codex", "claude", "gemini", "aider", "command", "demo"]

DEFAULT_EXECUTABLES: dict[str, str] = {
    "codex": "codex",
    "claude": "claude",
    "gemini": "gemini",
    "aider": "aider",
}

# What every agent may see from crewline's own environment; tokens are never on this list.
BASE_ENV_ALLOW: tuple[str, ...] = ("PATH", "HOME", "LANG", "LC_ALL", "TERM", "TMPDIR", "USER")


class AgentSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: AgentKind
    command: str | None = Field(
        default=None, description="Executable; defaults to the agent's usual name"
    )
    args: list[str] = Field(default_factory=list, description="Extra arguments for every run")
    model: str | None = None
    timeout_seconds: float = Field(default=1800.0, gt=0)
    env_allow: list[str] = Field(
        default_factory=list,
        description="Extra environment variables passed to the agent (e.g. ANTHROPIC_API_KEY)",
    )

    @model_validator(mode="after")
    def _command_for_generic_kinds(self) -> AgentSettings:
        if self.kind == "command" and not self.command:
            raise ValueError("an agent of kind 'command' needs 'command' (the executable to run)")
        return self

    def executable(self) -> str | None:
        """The program looked up on PATH, or None for the built-in demo agent."""
        if self.kind == "demo":
            return None
        return self.command or DEFAULT_EXECUTABLES[self.kind]


class RoleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    concurrency: int = Field(
        default=1, ge=1, le=64, description="Runs of this role at once on this host"
    )
    agent: str | None = Field(
        default=None, description="Agent (a key of [agents]); default: roles.agent"
    )
    max_attempts: int = Field(
        default=3, ge=1, le=20, description="Attempts before an issue is failed"
    )


class QaSettings(RoleSettings):
    """The QA role: its run settings, and how often it may send red work back.

    ``concurrency`` counts QA runs doing something (reading a pipeline, triaging, rebasing):
    a run waiting for a pipeline is parked and holds no slot (roles/qa/parking.py), so the
    default of one slot watches any number of merge requests."""

    max_round_trips: int = Field(
        default=3,
        ge=1,
        le=20,
        description=(
            "Times QA may send a red pipeline back to the developer; the next red one blocks "
            "the issue with every round's pipeline and log excerpt"
        ),
    )


class FlakyDoctorSettings(BaseModel):
    """The flaky-test doctor (roles/flaky/, decision 0030): on ``schedule.flaky_cron`` it
    files one issue per test that passes and fails on one commit (or that QA excused),
    reproduces it, has it diagnosed, and proves the fix by N green runs out of N."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Run the flaky-test doctor's pass")
    label: str = Field(
        default="flaky-test",
        min_length=1,
        pattern=r"^[^,]+$",
        description="Label on the issues it files (besides its flaky:: state label)",
    )
    junit_path: str = Field(
        default="report.xml",
        min_length=1,
        description="The JUnit report in each test job's artifacts (also under artifacts:paths)",
    )
    window: int = Field(
        default=200, ge=1, le=5000, description="Recent pipelines the detector reads per project"
    )
    reproduce_runs: int = Field(
        default=10, ge=1, le=200, description="Runs of a suspect test's job when reproducing it"
    )
    validate_floor: int = Field(
        default=4, ge=1, le=1000, description="Fewest green runs that validate a fix"
    )
    validate_ceiling: int = Field(
        default=60, ge=1, le=1000, description="Most runs the validator spends on one fix"
    )
    diagnose_agent_role: str = Field(
        default="dev",
        min_length=1,
        description="Whose configured agent diagnoses a reproduced flaky test",
    )
    max_attempts: int = Field(
        default=3,
        ge=1,
        le=20,
        description="Attempts of one doctor step (a crash or an error) before it fails",
    )


class ModelPrice(BaseModel):
    """What a model costs, for agents that report tokens but no dollars (Codex, Gemini)."""

    model_config = ConfigDict(extra="forbid")

    input_usd_per_mtok: float = Field(ge=0, description="USD per million input tokens")
    output_usd_per_mtok: float = Field(ge=0, description="USD per million output tokens")


class BudgetSettings(BaseModel):
    """Caps on what agents may spend, from what they report; None means no cap. A cap
    reached holds new agent turns (PM, developer, review) at their ready state with one
    notice a day; QA and merges go on. Daily caps count the whole fleet (roles/budget.py)."""

    model_config = ConfigDict(extra="forbid")

    issue_usd: float | None = Field(default=None, gt=0, description="Per issue, all runs")
    issue_tokens: int | None = Field(default=None, gt=0, description="Per issue, all runs")
    project_day_usd: float | None = Field(
        default=None, gt=0, description="Per project per day (UTC), every host's runs"
    )
    fleet_day_usd: float | None = Field(
        default=None, gt=0, description="All projects, every host, per day (UTC)"
    )
    fleet_day_tokens: int | None = Field(default=None, gt=0)
    prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description=(
            "Price of a model (the agent's `model`, else the agent's name in [agents]) for "
            "turns that report tokens but no dollars"
        ),
    )
    usd_per_hour: float | None = Field(
        default=None,
        gt=0,
        description="The most an agent turn spends per hour: a turn's timeout is cut to "
        "the dollars left at this rate",
    )
    tokens_per_minute: int | None = Field(
        default=None,
        gt=0,
        description="The most tokens an agent turn uses per minute: a turn's timeout is cut "
        "to the tokens left at this rate",
    )


class RolesSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: str | None = Field(default=None, description="Default agent for every role")
    max_concurrent: int = Field(
        default=4, ge=1, le=256, description="Runs of all roles at once on this host"
    )
    pm: RoleSettings = Field(default_factory=RoleSettings)
    dev: RoleSettings = Field(default_factory=RoleSettings)
    review: RoleSettings = Field(default_factory=RoleSettings)
    qa: QaSettings = Field(default_factory=QaSettings)
    flaky: FlakyDoctorSettings = Field(default_factory=FlakyDoctorSettings)
    budgets: BudgetSettings = Field(default_factory=BudgetSettings)
    review_rounds: int = Field(default=3, ge=1, le=20, description="Review rounds before blocked")
    pipeline_poll_seconds: float = Field(
        default=15.0, gt=0, description="How often QA looks at a running pipeline"
    )
    pipeline_timeout_seconds: float = Field(
        default=3600.0, gt=0, description="QA gives up waiting for a pipeline after this long"
    )
    flaky_retries: int = Field(
        default=2, ge=0, le=10, description="Retries of a failed job before it counts as real"
    )

    def by_name(self) -> dict[str, RoleSettings]:
        return {
            "pm": self.pm,
            "dev": self.dev,
            "review": self.review,
            "qa": self.qa,
        }
