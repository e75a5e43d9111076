"""Settings owned by the bot process: the Discord surface and the scheduler's timings."""

from __future__ import annotations

from typing import Literal

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, field_validator


class DiscordSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=False, description="Start the Discord client with `crewline run`")
    guild_id: int | None = Field(
        default=None, description="The server (guild) the commands live in"
    )
    approvals_channel_id: int | None = Field(
        default=None, description="Where approval cards are posted"
    )
    status_channel_id: int | None = Field(
        default=None, description="One message per issue, edited in place"
    )
    approver_role_ids: list[int] = Field(
        default_factory=list, description="Roles allowed to decide"
    )
    identities: dict[str, str] = Field(
        default_factory=dict, description="Discord user id -> GitLab username"
    )
    min_access_level: int = Field(
        default=30, ge=10, le=50, description="GitLab access level a decider needs (30 Developer)"
    )
    access_cache_seconds: float = Field(
        default=300.0, ge=0, description="How long a GitLab access level check is reused"
    )


class ScheduleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    poll_seconds: float = Field(default=60.0, gt=0, description="Safety-net poll of every role")
    janitor_seconds: float = Field(
        default=60.0, gt=0, description="Expired claims, repairs, stuck work"
    )
    claim_ttl_seconds: float = Field(
        default=900.0, gt=0, description="A claim expires unless renewed"
    )
    stuck_after_seconds: float = Field(
        default=86400.0, gt=0, description="No transition for this long"
    )
    stuck_after_by_state: dict[str, float] = Field(
        default_factory=dict,
        description="Per-state overrides of stuck_after_seconds, e.g. {plan-review = 14400}",
    )
    answer_timeout_seconds: float = Field(
        default=172800.0, gt=0, description="An unanswered agent question -> blocked"
    )
    digest_cron: str = Field(default="0 9 * * *", description="Daily digest (cron, host time zone)")
    flaky_cron: str = Field(default="30 * * * *", description="Flaky-test scan (cron)")

    @field_validator("digest_cron", "flaky_cron")
    @classmethod
    def _a_crontab(cls, value: str) -> str:
        try:
            CronTrigger.from_crontab(value)
        except ValueError as error:
            raise ValueError(
                f"a crontab of five fields (minute hour day month weekday), e.g. '30 * * * *' "
                f"({error})"
            ) from None
        return value


class ObservabilitySettings(BaseModel):
    """The `/metrics`, `/healthz` and `/readyz` listener of `crewline run` and `crewline
    worker`, and the log format. Off by default: two hosts on one machine (a run and a
    worker) would otherwise fight over the port."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=False, description="Serve /metrics, /healthz and /readyz on host:port"
    )
    host: str = Field(
        default="127.0.0.1", description="Interface to listen on; 0.0.0.0 in a container"
    )
    port: int = Field(
        default=9464, ge=0, le=65535, description="Port (Prometheus exporters' 9464; 0: any)"
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="text, or json: one object per line for log stacks"
    )
