"""Settings of the GitLab layer: the instance, the HTTP client, and the projects crewline works on.

Tokens are not settings: they come from the environment only (see ``bot/config.py``).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

_PROJECT_PATH = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*(/[A-Za-z0-9_.][A-Za-z0-9_.-]*)+$")


class GitLabSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Base URL of the GitLab instance, e.g. https://gitlab.example.com")
    timeout_seconds: float = Field(default=30.0, gt=0, description="Timeout of one HTTP request")
    max_retries: int = Field(
        default=5, ge=0, le=20, description="Retries on 5xx, 429 and connection errors"
    )
    retry_budget_seconds: float = Field(
        default=120.0, gt=0, description="Give up retrying after this long"
    )
    threads: int = Field(
        default=4, ge=1, le=64, description="Worker threads for python-gitlab calls"
    )
    ssl_verify: bool = True
    rate_limit_per_minute: int = Field(
        default=2000,
        ge=1,
        description="The bot user's API requests allowed per minute, used while GitLab sends "
        "no RateLimit headers (GitLab.com: 2000)",
    )
    rate_limit_share: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Above this share of the rate limit, polling and the janitor slow down "
        "(up to 8 times) so the calls left go to the runs in flight",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("expected an http(s) URL such as https://gitlab.example.com")
        return value.rstrip("/")


class ProjectSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Full path of the GitLab project, e.g. group/app")
    target_branch: str = Field(
        default="main", min_length=1, description="Branch merge requests target"
    )
    validation: list[str] = Field(
        default_factory=list,
        description="Commands every change must pass before an MR, e.g. 'ruff check .'",
    )
    validation_timeout_seconds: float = Field(default=600.0, gt=0)
    agent: str | None = Field(
        default=None, description="Agent (a key of [agents]) for this project's roles"
    )
    require_second_person: bool = Field(
        default=True, description="The person who filed a goal cannot approve its merge"
    )
    min_filer_access: int = Field(
        default=30,
        ge=10,
        le=50,
        description="Access level (10 Guest, 20 Reporter, 30 Developer, 40 Maintainer, "
        "50 Owner) the author of an issue, or whoever put it at the entry state, needs for "
        "it to count as a goal",
    )
    min_approver_access: int = Field(
        default=30,
        ge=10,
        le=50,
        description="Access level a GitLab user needs for a 👍 on a plan note or an Approve "
        "on a merge request to decide a gate (30 Developer, as the Discord desk's default)",
    )
    agents_hear_guests: bool = Field(
        default=False,
        description="Feed comments of users below Reporter (guests, non-members) to agents",
    )

    @field_validator("path")
    @classmethod
    def _project_path(cls, value: str) -> str:
        if not _PROJECT_PATH.match(value):
            raise ValueError("expected a project path like 'group/project' (namespace and name)")
        return value
